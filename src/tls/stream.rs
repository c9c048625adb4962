//! [`TlsStream`]: an established rustls server session over a nonblocking socket, exposed as a
//! [`Stream`] so the connection driver and the relay run unchanged over TLS.
//!
//! The session sits in a `RefCell` and every method borrows it only for the duration of a
//! synchronous call, never across an `.await`, so the two directions of a relay (two tasks on
//! one worker sharing an `Rc<TlsStream>`) interleave safely.
//!
//! Reading: decrypted bytes already inside rustls are returned first; only when none remain do
//! we pull ciphertext from the socket (`read_tls` straight from `recv(2)` into rustls's own
//! buffer) and decrypt it. rustls refuses `read_tls` while 16 KiB of plaintext are unread, so
//! plaintext is always drained before the next `read_tls`, and [`Stream::readable`] reports
//! ready at once while decrypted bytes or complete records are pending, since the socket may
//! never become readable again for them.
//!
//! Writing: each `try_write` encrypts at most one record's worth of plaintext and pushes the
//! records to the socket immediately: no waiting to fill records, no Nagle-like delay, which
//! is what a WebSocket carrying audio needs. If earlier records are still queued because the
//! socket is full, `try_write` accepts nothing (`WouldBlock`), which bounds what a slow client
//! can make us hold to one record per connection.
//!
//! Memory while idle: rustls keeps its read buffer at 4 KiB after a read that found nothing,
//! frees decrypted chunks as they are read and sent records as they are written, so an idle
//! session holds the rustls state and that 4 KiB (see docs/tls.md for the measured figure).

use std::cell::{Cell, RefCell};
use std::io::{self, Read, Write};
use std::os::fd::BorrowedFd;

use rustls::ServerConnection;

use crate::config::limits;
use crate::net::stream::{PlainStream, Stream};
use crate::net::sys;

/// A TLS session after a completed handshake.
pub struct TlsStream {
    sock: PlainStream,
    /// Boxed: a `ServerConnection` is 1,168 bytes, and the futures that carry the stream (the
    /// connection task while it reads requests, the relay task for the life of a WebSocket)
    /// hold two or three copies of what they are handed by value (an async fn keeps its
    /// arguments next to the locals they are moved into). Inline, that made the relay task
    /// 4 KiB and the connection task 5.6 KiB, and with many handshakes in flight those blocks
    /// fragmented the heap; boxed, an idle wss costs 10 KiB of RSS instead of 15 in the
    /// benchmark (docs/benchmarks.md, experiment 7).
    conn: Box<RefCell<ServerConnection>>,
    close_notify_queued: Cell<bool>,
}

/// `io::Read`/`io::Write` over a nonblocking socket, for rustls's `read_tls`/`write_tls`.
pub(crate) struct SocketIo<'a>(pub BorrowedFd<'a>);

impl Read for SocketIo<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        sys::recv(self.0, buf)
    }
}

impl Write for SocketIo<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        sys::send(self.0, buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Push queued records to the socket. `Ok(true)` when none are left, `Ok(false)` when the
/// socket is full.
pub(crate) fn push_records(conn: &mut ServerConnection, fd: BorrowedFd<'_>) -> io::Result<bool> {
    while conn.wants_write() {
        match conn.write_tls(&mut SocketIo(fd)) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

fn tls_error(e: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

impl TlsStream {
    pub(crate) fn new(sock: PlainStream, conn: ServerConnection) -> Self {
        TlsStream {
            sock,
            conn: Box::new(RefCell::new(conn)),
            close_notify_queued: Cell::new(false),
        }
    }

    /// The underlying TCP socket (addresses, socket options).
    pub fn socket(&self) -> &PlainStream {
        &self.sock
    }

    /// The negotiated ALPN protocol (`http/1.1`), or `None` when the client offered none.
    pub fn alpn_protocol(&self) -> Option<Vec<u8>> {
        self.conn.borrow().alpn_protocol().map(<[u8]>::to_vec)
    }

    /// The SNI name the client asked for.
    pub fn server_name(&self) -> Option<String> {
        self.conn.borrow().server_name().map(str::to_owned)
    }

    pub fn protocol_version(&self) -> Option<rustls::ProtocolVersion> {
        self.conn.borrow().protocol_version()
    }

    /// Whether the handshake was a full one or resumed a session.
    pub fn handshake_kind(&self) -> Option<rustls::HandshakeKind> {
        self.conn.borrow().handshake_kind()
    }

    /// Whether decrypted bytes (or the peer's close_notify) are waiting to be read, after
    /// decrypting any complete records rustls already holds.
    fn has_pending_input(&self) -> bool {
        let mut conn = self.conn.borrow_mut();
        match conn.process_new_packets() {
            Ok(state) => state.plaintext_bytes_to_read() > 0 || state.peer_has_closed(),
            // Let try_read surface the error.
            Err(_) => true,
        }
    }
}

impl Stream for TlsStream {
    fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let fd = self.sock.fd();
        let mut conn = self.conn.borrow_mut();
        // Each pass either returns or pulls at least one byte from the socket, so the loop
        // ends when the socket runs dry (WouldBlock) or closes.
        loop {
            match conn.reader().read(buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                // TCP closed without close_notify. Many WebSocket clients do this; there is no
                // framing-level truncation risk for the proxy, so it reads as end of stream.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                Err(e) => return Err(e),
            }
            // Decrypt complete records still buffered (left over when plaintext was full).
            let state = conn.process_new_packets().map_err(|e| {
                let _ = push_records(&mut conn, fd);
                tls_error(e)
            })?;
            if state.plaintext_bytes_to_read() > 0 || state.peer_has_closed() {
                continue;
            }
            match conn.read_tls(&mut SocketIo(fd)) {
                Ok(0) => {
                    // EOF: let rustls record it, then the reader reports clean or unclean end.
                    conn.process_new_packets().map_err(tls_error)?;
                    return match conn.reader().read(buf) {
                        Ok(n) => Ok(n),
                        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(0),
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
                        Err(e) => Err(e),
                    };
                }
                Ok(_) => {
                    let result = conn.process_new_packets();
                    // Processing can queue records of our own (alerts, key update replies).
                    let _ = push_records(&mut conn, fd);
                    result.map_err(tls_error)?;
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let fd = self.sock.fd();
        let mut conn = self.conn.borrow_mut();
        if !push_records(&mut conn, fd)? {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let take = buf.len().min(limits::MAX_PLAINTEXT_PER_WRITE);
        let n = conn.writer().write(&buf[..take])?;
        // Records left queued here are pushed by the next try_write or try_flush.
        push_records(&mut conn, fd)?;
        if n == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(n)
    }

    fn try_flush(&self) -> io::Result<bool> {
        push_records(&mut self.conn.borrow_mut(), self.sock.fd())
    }

    async fn readable(&self) -> io::Result<()> {
        if self.has_pending_input() {
            return Ok(());
        }
        self.sock.readable().await
    }

    async fn writable(&self) -> io::Result<()> {
        self.sock.writable().await
    }

    /// Queue close_notify, push it, then shut down TCP writes. If the socket cannot take the
    /// alert right now this returns `WouldBlock`: wait for [`Stream::writable`] and call again
    /// (the alert is queued only once).
    fn shutdown_write(&self) -> io::Result<()> {
        let mut conn = self.conn.borrow_mut();
        if !self.close_notify_queued.replace(true) {
            conn.send_close_notify();
        }
        if !push_records(&mut conn, self.sock.fd())? {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        self.sock.shutdown_write()
    }

    fn plaintext_fd(&self) -> Option<BorrowedFd<'_>> {
        None
    }
}
