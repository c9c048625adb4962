//! The two-way relay after `101 Switching Protocols`: WebSocket bytes move as they arrive,
//! in both directions, until both sides have finished.
//!
//! Both directions run in the connection's own task (polled together), each waiting on its
//! source's readiness with no buffer held. A read lands in the worker's scratch buffer and is
//! written to the other side at once, so an audio frame is never held back to fill a buffer.
//! EOF on one side half-closes the other (`shutdown(SHUT_WR)`, or close_notify for TLS) and the
//! relay keeps running the other direction; an error on either side ends both.
//!
//! Each direction follows the WebSocket frame boundaries of what it forwards
//! ([`FrameTracker`]). When the worker's grace period ends (graceful stop), each direction
//! finishes the frame in flight, if any, then sends its destination a close frame with status
//! 1001 ("going away") and half-closes it: both endpoints learn the proxy is going away, and
//! neither ever sees a frame cut in two. A relay whose `stream_timeout` runs out ends the same
//! way.

use std::cell::Cell;
use std::future::Future;
use std::io;
use std::pin::{pin, Pin};
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::io::{flush, with_scratch, write_all};
use super::ws_frame::{close_frame, FrameTracker, CLOSE_GOING_AWAY};
use crate::config::limits;
use crate::metrics::Counter;
use crate::net::stall::{within, Stalled};
use crate::net::stream::Stream;
use crate::runtime::worker::Worker;

/// Bytes moved by a finished relay, for the access log.
#[derive(Debug, Default, Clone, Copy)]
pub struct RelayTotals {
    pub client_to_upstream: u64,
    pub upstream_to_client: u64,
}

/// Which way a direction moves bytes; it decides whether the close frame the proxy sends is
/// masked (frames to a server must be, frames to a client must not, RFC 6455 §5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    /// Client → upstream.
    Up,
    /// Upstream → client.
    Down,
}

/// How long a relay may run and sit idle.
#[derive(Debug, Clone, Copy, Default)]
pub struct RelayLimits {
    /// No byte in either direction for this long ends the relay (`relay_idle`).
    pub idle_timeout: Option<Duration>,
    /// The relay is closed (1001, at frame boundaries) this long after it started
    /// (`stream_timeout`).
    pub stream_timeout: Option<Duration>,
}

/// Relay until both directions end. `client_prefix` holds bytes the client sent after the
/// upgrade request's head; `upstream_prefix` bytes the upstream sent after its 101 head.
///
/// This and `one_way` are `async` blocks rather than `async fn`s: an `async fn` keeps each
/// argument twice in its state, and this state is what every open WebSocket holds.
#[allow(clippy::manual_async_fn, reason = "an async fn keeps its arguments twice")]
pub fn relay<'a, C: Stream, U: Stream>(
    client: &'a C,
    upstream: &'a U,
    client_prefix: Vec<u8>,
    upstream_prefix: Vec<u8>,
    limits: RelayLimits,
    worker: &'a Worker,
) -> impl Future<Output = io::Result<RelayTotals>> + 'a {
    async move {
        worker.metrics.websockets_open.inc();
        let _open = OpenRelay(worker);
        let started = Instant::now();
        let activity = Rc::new(Cell::new(started));
        let ends_at = limits.stream_timeout.map(|t| started + t);
        let idle_timeout = limits.idle_timeout;
        let leg = |direction, activity| Leg { direction, idle_timeout, ends_at, activity, worker };
        let up = leg(Direction::Up, activity.clone());
        let up = pin!(one_way(client, upstream, client_prefix, up));
        let down = pin!(one_way(upstream, client, upstream_prefix, leg(Direction::Down, activity)));
        both(up, down).await
    }
}

/// Counts the relay in `websockets_open` until it ends, however it ends.
struct OpenRelay<'a>(&'a Worker);

impl Drop for OpenRelay<'_> {
    fn drop(&mut self) {
        self.0.metrics.websockets_open.dec();
    }
}

/// What one direction needs besides its two streams.
struct Leg<'a> {
    direction: Direction,
    idle_timeout: Option<Duration>,
    /// When `stream_timeout` closes the relay.
    ends_at: Option<Instant>,
    /// Last time either direction moved a byte (the idle timeout is for the pair).
    activity: Rc<Cell<Instant>>,
    worker: &'a Worker,
}

impl Leg<'_> {
    /// The relay must close at the next frame boundary: the worker's grace period is over, or
    /// the stream's time is up.
    fn must_close(&self) -> bool {
        self.worker.closing.is_set() || self.ends_at.is_some_and(|t| Instant::now() >= t)
    }

    /// Resolves when [`Leg::must_close`] becomes true.
    async fn close_requested(&self) {
        let Some(ends_at) = self.ends_at else {
            return self.worker.closing.wait().await;
        };
        // Either way the relay closes: the grace period ended, or the deadline passed.
        let _ = self.worker.deadlines.until(ends_at, self.worker.closing.wait()).await;
    }

    fn relayed(&self) -> &Counter {
        match self.direction {
            Direction::Up => &self.worker.metrics.relayed_upstream,
            Direction::Down => &self.worker.metrics.relayed_downstream,
        }
    }

    /// The close frame this direction sends its destination when the proxy goes away.
    fn going_away(&self) -> Vec<u8> {
        let key = match self.direction {
            Direction::Down => None,
            Direction::Up => {
                let mut key = [0u8; 4];
                // The key only has to differ from frame to frame; if the system RNG fails, a
                // time-derived one is as good for a single close frame.
                if ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut key)
                    .is_err()
                {
                    let nanos = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(1, |d| d.subsec_nanos());
                    key = nanos.to_be_bytes();
                }
                Some(key)
            }
        };
        close_frame(CLOSE_GOING_AWAY, key)
    }
}

/// Run both directions; an error in either ends the relay (dropping the other direction).
async fn both(
    mut up: Pin<&mut impl Future<Output = io::Result<u64>>>,
    mut down: Pin<&mut impl Future<Output = io::Result<u64>>>,
) -> io::Result<RelayTotals> {
    monoio::select! {
        sent = &mut up => {
            let sent = sent?;
            let received = down.await?;
            Ok(RelayTotals { client_to_upstream: sent, upstream_to_client: received })
        }
        received = &mut down => {
            let received = received?;
            let sent = up.await?;
            Ok(RelayTotals { client_to_upstream: sent, upstream_to_client: received })
        }
    }
}

enum Step {
    /// Bytes moved; `drained` when the read returned less than it asked for, so the socket
    /// is most likely empty and the next read would only say EAGAIN.
    Moved {
        drained: bool,
    },
    WouldBlock,
    Eof,
    Pending(Vec<u8>),
}

/// What ended a wait for the source.
enum Woke {
    Readable,
    /// The grace period is over: close at the next frame boundary.
    Closing,
}

/// Copy `src` → `dst` until EOF, then half-close `dst`; on a graceful stop, finish the frame in
/// flight and send `dst` a 1001 close frame instead (see the module doc).
#[allow(clippy::manual_async_fn, reason = "an async fn keeps its arguments twice")]
fn one_way<'a, R: Stream, W: Stream>(
    src: &'a R,
    dst: &'a W,
    prefix: Vec<u8>,
    leg: Leg<'a>,
) -> impl Future<Output = io::Result<u64>> + 'a {
    async move {
        let mut frames = FrameTracker::new();
        let mut moved = prefix.len() as u64;
        if !prefix.is_empty() {
            frames.advance(&prefix);
            leg.relayed().add(prefix.len() as u64);
            write_all(dst, &prefix).await?;
        }
        drop(prefix);
        let mut closing = false;
        loop {
            // A direction that never waits (a steady flow) still sees the end of the grace period
            // or of its stream_timeout.
            closing |= leg.must_close();
            if closing {
                match frames.bytes_to_boundary() {
                    Some(0) => {
                        write_all(dst, &leg.going_away()).await?;
                        let _ = dst.shutdown_write();
                        return Ok(moved);
                    }
                    // Framing was lost: no boundary will come, so no close frame can be placed.
                    None => {
                        let _ = dst.shutdown_write();
                        return Ok(moved);
                    }
                    Some(_) => {}
                }
            }
            // While closing, read no further than the end of the frame in flight.
            let limit = match (closing, frames.bytes_to_boundary()) {
                (true, Some(left)) => usize::try_from(left).unwrap_or(usize::MAX),
                _ => usize::MAX,
            };
            let step = with_scratch(|scratch| -> io::Result<Step> {
                let want = scratch.len().min(limit);
                let n = match src.try_read(&mut scratch[..want]) {
                    Ok(0) => return Ok(Step::Eof),
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Step::WouldBlock),
                    Err(e) => return Err(e),
                };
                moved += n as u64;
                frames.advance(&scratch[..n]);
                leg.relayed().add(n as u64);
                let written = match dst.try_write(&scratch[..n]) {
                    Ok(w) => w,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
                    Err(e) => return Err(e),
                };
                if written < n {
                    return Ok(Step::Pending(scratch[written..n].to_vec()));
                }
                Ok(Step::Moved { drained: n < want })
            })?;
            match step {
                Step::Moved { drained } => {
                    leg.activity.set(Instant::now());
                    flush(dst).await?;
                    // Skip the read that would only return EAGAIN: one syscall less per audio
                    // frame. (A TLS source reports buffered plaintext as readable at once.)
                    if drained && !closing {
                        closing = matches!(wait_readable(src, &leg).await?, Woke::Closing);
                    }
                }
                Step::Pending(rest) => {
                    leg.activity.set(Instant::now());
                    write_all(dst, &rest).await?;
                }
                Step::WouldBlock if closing => {
                    let (deadlines, limit) =
                        (&leg.worker.deadlines, Some(limits::FRAME_FINISH_TIMEOUT));
                    within(deadlines, limit, Stalled::Read, src.readable()).await?
                }
                Step::WouldBlock => {
                    closing = matches!(wait_readable(src, &leg).await?, Woke::Closing);
                }
                Step::Eof => {
                    flush(dst).await?;
                    // The peer may already be gone; a failed half-close changes nothing.
                    let _ = dst.shutdown_write();
                    return Ok(moved);
                }
            }
        }
    }
}

/// Wait until `src` is readable or the relay must close, within the relay's idle timeout
/// (which either direction's traffic restarts).
async fn wait_readable<R: Stream>(src: &R, leg: &Leg<'_>) -> io::Result<Woke> {
    loop {
        let left = match leg.idle_timeout {
            None => None,
            Some(limit) => {
                let left = limit.saturating_sub(leg.activity.get().elapsed());
                if left.is_zero() {
                    return Err(io::Error::new(io::ErrorKind::TimedOut, "relay idle timeout"));
                }
                Some(left)
            }
        };
        let closing = pin!(leg.close_requested());
        let readable = pin!(leg.worker.deadlines.within_opt(left, src.readable()));
        // Both are waits, not reads: whichever loses drops without losing a byte.
        monoio::select! {
            () = closing => return Ok(Woke::Closing),
            ready = readable => {
                // Expired: the other direction may have moved meanwhile, so look again.
                if let Ok(ready) = ready {
                    return ready.map(|()| Woke::Readable);
                }
            }
        }
    }
}
