//! Listening sockets: one SO_REUSEPORT socket per worker per configured address, so the kernel
//! spreads new connections across workers and no accept queue is shared.
//!
//! monoio's own `TcpListener::bind` turns SO_REUSEPORT on silently, which lets a second process
//! bind the same port and steal half the connections. We build sockets with socket2 instead and
//! first probe the address *without* SO_REUSEPORT: if that fails with EADDRINUSE, someone else
//! owns the port and we refuse to start.

use std::io;
use std::net::{SocketAddr, TcpListener as StdTcpListener};

use socket2::{Domain, Protocol, Socket, Type};

use crate::config::limits;

#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr}: {source}")]
pub struct BindError {
    pub addr: SocketAddr,
    pub source: io::Error,
}

/// Bind `count` sockets sharing `addr`. Port 0 picks one ephemeral port for all of them.
/// An IPv6 wildcard address is bound dual-stack; if the host has IPv6 disabled, we fall back
/// to the IPv4 wildcard.
pub fn bind_reuseport(addr: SocketAddr, count: usize) -> Result<Vec<StdTcpListener>, BindError> {
    let addr = match probe(addr) {
        Ok(bound) => bound,
        Err(e) if addr.is_ipv6() && addr.ip().is_unspecified() && ipv6_unavailable(&e) => {
            let v4 = SocketAddr::new(std::net::Ipv4Addr::UNSPECIFIED.into(), addr.port());
            probe(v4).map_err(|source| BindError { addr: v4, source })?
        }
        Err(source) => return Err(BindError { addr, source }),
    };
    (0..count)
        .map(|_| reuseport_socket(addr).map_err(|source| BindError { addr, source }))
        .collect()
}

fn ipv6_unavailable(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EAFNOSUPPORT) | Some(libc::EADDRNOTAVAIL))
}

/// Bind without SO_REUSEPORT to detect a port held by another process, and to resolve port 0.
/// The probe is closed before the real sockets bind; with port 0 we keep the port it got.
fn probe(addr: SocketAddr) -> io::Result<SocketAddr> {
    let socket = new_socket(addr)?;
    socket.bind(&addr.into())?;
    let bound = socket.local_addr()?.as_socket().unwrap_or(addr);
    Ok(SocketAddr::new(addr.ip(), bound.port()))
}

fn new_socket(addr: SocketAddr) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(false)?;
    }
    // SO_REUSEADDR lets a restart bind while old connections sit in TIME_WAIT.
    socket.set_reuse_address(true)?;
    Ok(socket)
}

fn reuseport_socket(addr: SocketAddr) -> io::Result<StdTcpListener> {
    let socket = new_socket(addr)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(limits::LISTEN_BACKLOG)?;
    Ok(socket.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_zero_gives_every_worker_the_same_port() {
        let listeners = bind_reuseport("127.0.0.1:0".parse().unwrap(), 3).unwrap();
        let ports: Vec<u16> = listeners.iter().map(|l| l.local_addr().unwrap().port()).collect();
        assert_ne!(ports[0], 0);
        assert!(ports.iter().all(|p| *p == ports[0]));
    }

    #[test]
    fn a_port_held_by_another_socket_is_refused() {
        let other = StdTcpListener::bind("127.0.0.1:0").unwrap();
        let addr = other.local_addr().unwrap();
        let err = bind_reuseport(addr, 2).unwrap_err();
        assert_eq!(err.addr, addr);
        assert_eq!(err.source.kind(), io::ErrorKind::AddrInUse);
    }

    #[test]
    fn wildcard_ipv6_accepts_ipv4_clients() {
        let listeners = bind_reuseport("[::]:0".parse().unwrap(), 1).unwrap();
        let port = listeners[0].local_addr().unwrap().port();
        listeners[0].set_nonblocking(false).unwrap();
        let client = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let (accepted, _) = listeners[0].accept().unwrap();
        assert_eq!(accepted.peer_addr().unwrap().port(), client.local_addr().unwrap().port());
    }
}
