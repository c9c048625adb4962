//! [`Listener`] and [`Conn`]: a test backend's listening socket and the connections it accepts,
//! TCP or unix stream, behind one type each, so that a backend written once serves over either
//! (`unix//path` upstreams). Blocking sockets with the test's I/O timeout, as the backends
//! use them; nothing here knows HTTP.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A listening socket.
pub enum Listener {
    Tcp(TcpListener),
    /// The path is removed when the listener is dropped, so a test that binds the same path
    /// again (an upstream restarting) can.
    Unix(UnixListener, PathBuf),
}

impl Listener {
    pub fn tcp(listener: TcpListener) -> Listener {
        Listener::Tcp(listener)
    }

    /// Listen on a unix socket at `path` (which must not exist).
    pub fn unix(path: &Path) -> Listener {
        let listener = UnixListener::bind(path)
            .unwrap_or_else(|e| panic!("cannot listen on {}: {e}", path.display()));
        Listener::Unix(listener, path.to_path_buf())
    }

    pub fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        match self {
            Listener::Tcp(l) => l.set_nonblocking(nonblocking),
            Listener::Unix(l, _) => l.set_nonblocking(nonblocking),
        }
    }

    /// The TCP address; for a unix socket `0.0.0.0:0`, which no test dials.
    pub fn local_addr(&self) -> SocketAddr {
        match self {
            Listener::Tcp(l) => l.local_addr().unwrap(),
            Listener::Unix(..) => unix_peer(),
        }
    }

    /// How a Caddyfile names this listener as an upstream: `127.0.0.1:P` or `unix/PATH`.
    pub fn upstream(&self) -> String {
        match self {
            Listener::Tcp(l) => l.local_addr().unwrap().to_string(),
            Listener::Unix(_, path) => format!("unix/{}", path.display()),
        }
    }

    /// A connection and its peer's address (`0.0.0.0:0` for a unix socket's peer, which has
    /// none), in blocking mode.
    pub fn accept(&self) -> io::Result<(Conn, SocketAddr)> {
        let (conn, peer) = match self {
            Listener::Tcp(l) => l.accept().map(|(s, peer)| (Conn::Tcp(s), peer))?,
            Listener::Unix(l, _) => l.accept().map(|(s, _)| (Conn::Unix(s), unix_peer()))?,
        };
        conn.set_nonblocking(false)?;
        Ok((conn, peer))
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Listener::Unix(_, path) = self {
            let _ = std::fs::remove_file(path);
        }
    }
}

fn unix_peer() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0))
}

/// An accepted connection.
pub enum Conn {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Conn {
    fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        match self {
            Conn::Tcp(s) => s.set_nonblocking(nonblocking),
            Conn::Unix(s) => s.set_nonblocking(nonblocking),
        }
    }

    /// Read and write timeouts, and TCP_NODELAY where there is a Nagle to turn off.
    pub fn prepare(&self, timeout: Duration) -> io::Result<()> {
        match self {
            Conn::Tcp(s) => {
                s.set_read_timeout(Some(timeout))?;
                s.set_write_timeout(Some(timeout))?;
                s.set_nodelay(true)
            }
            Conn::Unix(s) => {
                s.set_read_timeout(Some(timeout))?;
                s.set_write_timeout(Some(timeout))
            }
        }
    }

    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        match self {
            Conn::Tcp(s) => s.shutdown(how),
            Conn::Unix(s) => s.shutdown(how),
        }
    }
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Conn::Tcp(s) => s.read(buf),
            Conn::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Conn::Tcp(s) => s.write(buf),
            Conn::Unix(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Conn::Tcp(s) => s.flush(),
            Conn::Unix(s) => s.flush(),
        }
    }
}
