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
/// The port stays bound (but not listening) for as long as this value lives: a port that was
/// merely free when the test looked can be handed to another test's `bind(0)` a moment later,
/// and then the "dead" upstream answers. A bound socket in the closed state keeps the port out
/// of every other bind and ephemeral choice while the kernel still answers SYNs with a reset.
pub struct DeadPort {
    pub addr: SocketAddr,
    _reservation: Socket,
}

impl std::fmt::Display for DeadPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.addr.fmt(f)
    }
}

pub fn dead_port() -> DeadPort {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    socket.bind(&SocketAddr::from((Ipv4Addr::LOCALHOST, 0)).into()).unwrap();
    let addr = socket.local_addr().unwrap().as_socket().unwrap();
    DeadPort { addr, _reservation: socket }
}

/// A free port on every interface (for a Caddy process, which must be told its port).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("[::]:0")
        .or_else(|_| TcpListener::bind((Ipv4Addr::UNSPECIFIED, 0)))
        .unwrap();
    listener.local_addr().unwrap().port()
}

/// A free port below the kernel's ephemeral range, for a port that must be named in a config
/// (`http_port`, `https_port`, a child process's site). A port from [`free_port`] can be handed
/// out again by the kernel to any `bind(0)` or outgoing connection before the proxy binds it,
/// which the tests that open hundreds of connections make likely; a port outside the
/// ephemeral range is never handed out that way.
///
/// A port is handed out once per test process: two picks that land on the same free port
/// before either is bound (pebble's ACME and challenge-server ports were seen to) would
/// otherwise fail one of the two binds.
pub fn unassigned_port() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static CALLS: AtomicU64 = AtomicU64::new(0);
    static HANDED_OUT: std::sync::Mutex<std::collections::BTreeSet<u16>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());

    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next().and_then(|n| n.parse::<u16>().ok()))
        .unwrap_or(32768);
    const LOW: u16 = 20_000;
    if ephemeral_low < LOW + 1000 {
        return free_port();
    }
    for _ in 0..200 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(CALLS.fetch_add(1, Ordering::Relaxed));
        let port = LOW + (h.finish() % u64::from(ephemeral_low - LOW)) as u16;
        let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if handed_out.contains(&port) {
            continue;
        }
        // `[::]` is dual-stack, so this also proves the port free on IPv4.
        let free = match TcpListener::bind(("::", port)) {
            Ok(_) => true,
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => false,
            Err(_) => TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)).is_ok(),
        };
        if free {
            handed_out.insert(port);
            return port;
        }
    }
    panic!("no free port between {LOW} and {ephemeral_low}");
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
        let err = TcpStream::connect_timeout(&addr.addr, Duration::from_secs(2)).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
        // Nobody else can take the port while the test holds it.
        assert!(TcpListener::bind(addr.addr).is_err(), "the dead port could be bound again");
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
