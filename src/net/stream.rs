//! [`Stream`]: what the connection driver and relay need from a client or upstream leg.
//!
//! Methods take `&self` so that the two directions of a relay (two tasks on the same worker)
//! can share one stream through an `Rc`; implementations keep mutable state in `RefCell`s that
//! are never borrowed across an `.await`.
//!
//! Reads and writes never block and never wait: `WouldBlock` tells the caller to await
//! [`Stream::readable`] / [`Stream::writable`]. Waiting holds no buffer and is cancel-safe, so
//! timeouts can simply drop the wait.

use std::future::Future;
use std::io;
use std::os::fd::BorrowedFd;

use monoio::net::{TcpStream, UnixStream};

use super::sys;

pub trait Stream {
    /// Read available (decrypted) bytes. `Ok(0)` is end of stream; `WouldBlock` means wait.
    fn try_read(&self, buf: &mut [u8]) -> io::Result<usize>;
    /// Write what the stream accepts now; `WouldBlock` means wait for [`Stream::writable`].
    fn try_write(&self, buf: &[u8]) -> io::Result<usize>;
    /// Push internally buffered output (TLS records) to the socket. `Ok(true)` when nothing is
    /// left buffered; `Ok(false)` means wait for writability and call again.
    fn try_flush(&self) -> io::Result<bool>;
    /// Resolves when `try_read` may make progress (may be spurious: callers loop).
    fn readable(&self) -> impl Future<Output = io::Result<()>>;
    /// Resolves when `try_write`/`try_flush` may make progress (may be spurious).
    fn writable(&self) -> impl Future<Output = io::Result<()>>;
    /// Half-close the write direction (TLS: close_notify, then the socket's shutdown).
    fn shutdown_write(&self) -> io::Result<()>;
    /// The socket, for splice(2) and logging. TLS streams return `None` from
    /// [`Stream::plaintext_fd`] since their bytes are not the wire bytes.
    fn plaintext_fd(&self) -> Option<BorrowedFd<'_>>;
}

/// A plaintext stream socket in nonblocking mode, waited on through monoio's driver: TCP (every
/// client, most upstreams) or unix (`unix//path` upstreams).
///
/// Reads and writes go through the descriptor alike for both; only the readiness waits need
/// the runtime's own type, so TCP pays one predictable branch per wait, and no allocation.
pub struct PlainStream {
    socket: Socket,
}

enum Socket {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl PlainStream {
    /// Take ownership of a connected TCP socket: nonblocking, TCP_NODELAY.
    pub fn new(socket: TcpStream) -> io::Result<Self> {
        sys::set_nonblocking(sys::borrow(&socket))?;
        socket.set_nodelay(true)?;
        Ok(PlainStream { socket: Socket::Tcp(socket) })
    }

    /// Take ownership of a connected unix stream socket: nonblocking (there is no Nagle to turn
    /// off).
    pub fn unix(socket: UnixStream) -> io::Result<Self> {
        sys::set_nonblocking(sys::borrow(&socket))?;
        Ok(PlainStream { socket: Socket::Unix(socket) })
    }

    /// The TCP socket (addresses, socket options); `None` for a unix socket.
    pub fn tcp(&self) -> Option<&TcpStream> {
        match &self.socket {
            Socket::Tcp(socket) => Some(socket),
            Socket::Unix(_) => None,
        }
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        match &self.socket {
            Socket::Tcp(socket) => sys::borrow(socket),
            Socket::Unix(socket) => sys::borrow(socket),
        }
    }
}

impl Stream for PlainStream {
    fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        sys::recv(self.fd(), buf)
    }

    fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        sys::send(self.fd(), buf)
    }

    fn try_flush(&self) -> io::Result<bool> {
        Ok(true)
    }

    async fn readable(&self) -> io::Result<()> {
        // relaxed = false: on the legacy driver, re-check with poll(2) so a stale readiness
        // bit after our own EAGAIN does not spin.
        match &self.socket {
            Socket::Tcp(socket) => socket.readable(false).await,
            Socket::Unix(socket) => socket.readable(false).await,
        }
    }

    async fn writable(&self) -> io::Result<()> {
        match &self.socket {
            Socket::Tcp(socket) => socket.writable(false).await,
            Socket::Unix(socket) => socket.writable(false).await,
        }
    }

    fn shutdown_write(&self) -> io::Result<()> {
        sys::shutdown_write(self.fd())
    }

    fn plaintext_fd(&self) -> Option<BorrowedFd<'_>> {
        Some(self.fd())
    }
}
