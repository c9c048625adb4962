//! Stall timeouts: waits on a [`Stream`] that give up when the peer makes no progress for a
//! while, as opposed to deadlines on a whole body or response.
//!
//! Every byte moved on the data path is moved by a nonblocking call that either makes progress
//! or says "wait" (see `stream`), so bounding each *wait* bounds the time without progress, and
//! any progress starts the next wait afresh. A long upload or a long audio download at a fair
//! rate is therefore never cut, while a peer that stops is.
//!
//! [`Stalling`] bounds the writability waits of the stream it wraps (the client connection:
//! responses, interim heads, answers, relays; an upstream's while its request is written) or
//! its readability waits (an upstream's response body); [`within`] bounds one readiness wait
//! (a request body's reads). A wait that runs out fails with an [`io::Error`]
//! of kind `TimedOut` carrying [`Stalled`], which [`stalled`] recognises, so the error mapping
//! can tell a stall from a reset. The limits are kept by the worker's [`Deadlines`], not by a
//! timer per wait (its module doc says why).

use std::cell::Cell;
use std::future::Future;
use std::io;
use std::os::fd::BorrowedFd;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use super::deadline::{Bounded, Deadlines};
use super::stream::Stream;

/// Which wait ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Stalled {
    #[error("no progress reading for the stall timeout")]
    Read,
    #[error("no progress writing for the stall timeout")]
    Write,
}

/// Which wait ran out, if `e` is a stall timeout's error.
pub fn stalled(e: &io::Error) -> Option<Stalled> {
    if e.kind() != io::ErrorKind::TimedOut {
        return None;
    }
    e.get_ref().and_then(|inner| inner.downcast_ref::<Stalled>()).copied()
}

/// `wait`, given up after `limit` (none: wait as long as it takes) with a [`Stalled`] error.
/// For readiness waits only, which lose nothing when dropped.
pub fn within<F: Future<Output = io::Result<()>>>(
    deadlines: &Deadlines,
    limit: Option<Duration>,
    which: Stalled,
    wait: F,
) -> StallWait<'_, F> {
    StallWait { bounded: deadlines.within_opt(limit, wait), which }
}

pin_project_lite::pin_project! {
    /// A readiness wait bounded by a stall timeout (see [`within`]); written out rather than
    /// an `async fn` for the reason [`Bounded`] is.
    pub struct StallWait<'d, F> {
        #[pin]
        bounded: Bounded<'d, F>,
        which: Stalled,
    }
}

impl<F: Future<Output = io::Result<()>>> Future for StallWait<'_, F> {
    type Output = io::Result<()>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.project();
        match this.bounded.poll(cx) {
            Poll::Ready(Ok(ready)) => Poll::Ready(ready),
            Poll::Ready(Err(_)) => {
                Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, *this.which)))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

/// A stream whose waits give up after its stall timeouts: on writability, a peer that stops
/// reading cannot hold the connection (and the bytes queued for it) forever (the client
/// connection, the upstream side of a relay, a request body going upstream); on readability,
/// an upstream's response body that stops arriving (`transport http { read_timeout }`). A wait
/// without a limit is untouched; phases that bound their own reads (request heads, bodies,
/// relays) leave the read limit off.
pub struct Stalling<S> {
    inner: S,
    deadlines: Rc<Deadlines>,
    read_limit: Option<Duration>,
    /// Changes when a kept-alive connection follows a reload to a new config.
    write_limit: Cell<Option<Duration>>,
}

impl<S: Stream> Stalling<S> {
    /// Writability waits bounded by `limit`, kept by the worker's `deadlines`.
    pub fn writes(inner: S, limit: Option<Duration>, deadlines: &Rc<Deadlines>) -> Self {
        let deadlines = deadlines.clone();
        Stalling { inner, deadlines, read_limit: None, write_limit: Cell::new(limit) }
    }

    /// Readability waits bounded by `limit`, kept by the worker's `deadlines`.
    pub fn reads(inner: S, limit: Option<Duration>, deadlines: &Rc<Deadlines>) -> Self {
        let deadlines = deadlines.clone();
        Stalling { inner, deadlines, read_limit: limit, write_limit: Cell::new(None) }
    }

    pub fn set_write_limit(&self, limit: Option<Duration>) {
        self.write_limit.set(limit);
    }

    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: Stream> Stream for Stalling<S> {
    fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.try_read(buf)
    }

    fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        self.inner.try_write(buf)
    }

    fn try_flush(&self) -> io::Result<bool> {
        self.inner.try_flush()
    }

    fn readable(&self) -> impl Future<Output = io::Result<()>> {
        within(&self.deadlines, self.read_limit, Stalled::Read, self.inner.readable())
    }

    fn writable(&self) -> impl Future<Output = io::Result<()>> {
        let limit = self.write_limit.get();
        within(&self.deadlines, limit, Stalled::Write, self.inner.writable())
    }

    fn shutdown_write(&self) -> io::Result<()> {
        self.inner.shutdown_write()
    }

    fn plaintext_fd(&self) -> Option<BorrowedFd<'_>> {
        self.inner.plaintext_fd()
    }
}

/// A borrowed stream is a stream: lets a wrapper such as [`Stalling`] be put around one
/// side of a relay without taking it over.
impl<S: Stream + ?Sized> Stream for &S {
    fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        (**self).try_read(buf)
    }

    fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        (**self).try_write(buf)
    }

    fn try_flush(&self) -> io::Result<bool> {
        (**self).try_flush()
    }

    fn readable(&self) -> impl Future<Output = io::Result<()>> {
        (**self).readable()
    }

    fn writable(&self) -> impl Future<Output = io::Result<()>> {
        (**self).writable()
    }

    fn shutdown_write(&self) -> io::Result<()> {
        (**self).shutdown_write()
    }

    fn plaintext_fd(&self) -> Option<BorrowedFd<'_>> {
        (**self).plaintext_fd()
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::time::Instant;

    use super::*;
    use crate::net::stream::PlainStream;

    fn connected_pair() -> (PlainStream, std::net::TcpStream) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        server.set_nonblocking(true).unwrap();
        let server = monoio::net::TcpStream::from_std(server).unwrap();
        (PlainStream::new(server).unwrap(), client)
    }

    fn runtime() -> monoio::Runtime<monoio::time::TimeDriver<monoio::LegacyDriver>> {
        monoio::RuntimeBuilder::<monoio::LegacyDriver>::new().enable_timer().build().unwrap()
    }

    /// A deadline table with its sweeper running, as a worker has.
    fn swept() -> Rc<Deadlines> {
        let deadlines = Deadlines::new();
        monoio::spawn(deadlines.clone().sweep());
        deadlines
    }

    #[test]
    fn a_peer_that_stops_reading_fails_the_write_wait_with_a_stall() {
        runtime().block_on(async {
            let (server, _client) = connected_pair();
            let deadlines = swept();
            let stream = Stalling::writes(server, Some(Duration::from_millis(200)), &deadlines);
            let chunk = vec![0u8; 64 * 1024];
            let started = Instant::now();
            let error = loop {
                match stream.try_write(&chunk) {
                    Ok(_) => continue,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        if let Err(e) = stream.writable().await {
                            break e;
                        }
                    }
                    Err(e) => panic!("unexpected error {e}"),
                }
            };
            assert_eq!(stalled(&error), Some(Stalled::Write));
            assert!(started.elapsed() >= Duration::from_millis(200));
            assert!(started.elapsed() < Duration::from_secs(5));
        });
    }

    #[test]
    fn a_peer_that_keeps_reading_never_stalls_the_writer() {
        runtime().block_on(async {
            let (server, mut client) = connected_pair();
            // The reader takes 40 KiB every 50 ms: slower than the writer, faster than the
            // 300 ms stall limit, so every wait ends in progress.
            let reader = std::thread::spawn(move || {
                let mut buf = vec![0u8; 40 * 1024];
                let mut total = 0;
                while total < 2 << 20 {
                    std::thread::sleep(Duration::from_millis(50));
                    match client.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => total += n,
                    }
                }
                total
            });
            let deadlines = swept();
            let stream = Stalling::writes(server, Some(Duration::from_millis(300)), &deadlines);
            let chunk = vec![7u8; 64 * 1024];
            let mut written = 0usize;
            while written < 2 << 20 {
                match stream.try_write(&chunk) {
                    Ok(n) => written += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        stream.writable().await.unwrap()
                    }
                    Err(e) => panic!("unexpected error {e}"),
                }
            }
            drop(stream);
            assert!(reader.join().unwrap() >= 1 << 20);
        });
    }

    #[test]
    fn a_bounded_read_wait_says_which_side_stalled_and_other_errors_are_not_stalls() {
        runtime().block_on(async {
            let (server, _client) = connected_pair();
            let deadlines = swept();
            let limit = Some(Duration::from_millis(50));
            let waited = within(&deadlines, limit, Stalled::Read, server.readable()).await;
            assert_eq!(stalled(&waited.unwrap_err()), Some(Stalled::Read));
            let plain_timeout = io::Error::new(io::ErrorKind::TimedOut, "elsewhere");
            assert_eq!(stalled(&plain_timeout), None);
        });
    }
}
