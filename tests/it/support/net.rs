//! Loopback addresses that misbehave on purpose: a port with nothing listening, a port whose
//! listener never completes a handshake, and free ports for processes that need one up front.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use socket2::{Domain, Socket, Type};

/// How long any test socket waits for a read or write before the test fails. Generous, so that
/// a slow CI machine does not flake; bounded, so that no test can hang.
pub const IO_TIMEOUT: Duration = Duration::from_secs(20);

/// A loopback port with nothing listening: connecting is refused at once.
///
/// The port was free when we bound it; the kernel does not hand the same ephemeral port to the
/// next `bind(0)` straight away, so it stays unused for the length of a test.
pub fn dead_port() -> SocketAddr {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    listener.local_addr().unwrap()
}

/// A free port on every interface (for a Caddy process, which must be told its port).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("[::]:0")
        .or_else(|_| TcpListener::bind((Ipv4Addr::UNSPECIFIED, 0)))
        .unwrap();
    listener.local_addr().unwrap().port()
}

/// A listener whose accept queue is full, so new SYNs are dropped and a dial neither succeeds
/// nor fails until the dialer's own timeout: the loopback stand-in for an unreachable host.
pub struct Blackhole {
    pub addr: SocketAddr,
    _listener: Socket,
    _fillers: Vec<TcpStream>,
}

impl Blackhole {
    pub fn start() -> Blackhole {
        let listener = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        listener.bind(&SocketAddr::from((Ipv4Addr::LOCALHOST, 0)).into()).unwrap();
        // Backlog 0: Linux keeps one completed connection queued, then drops further SYNs.
        listener.listen(0).unwrap();
        let addr = listener.local_addr().unwrap().as_socket().unwrap();
        let mut fillers = Vec::new();
        for _ in 0..8 {
            match TcpStream::connect_timeout(&addr, Duration::from_millis(300)) {
                Ok(stream) => fillers.push(stream),
                Err(_) => {
                    return Blackhole { addr, _listener: listener, _fillers: fillers };
                }
            }
        }
        panic!("blackhole listener kept accepting handshakes; SYNs are not being dropped");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn dead_port_refuses_connections() {
        let addr = dead_port();
        let err = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
    }

    #[test]
    fn blackhole_makes_a_dial_time_out() {
        let hole = Blackhole::start();
        let started = Instant::now();
        let err = TcpStream::connect_timeout(&hole.addr, Duration::from_millis(500)).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut, "{err}");
        assert!(started.elapsed() >= Duration::from_millis(450));
    }
}
