//! The two-way relay after `101 Switching Protocols`: WebSocket bytes move as they arrive,
//! in both directions, until both sides have finished.
//!
//! Both directions run in the connection's own task (polled together), each waiting on its
//! source's readiness with no buffer held. A read lands in the worker's scratch buffer and is
//! written to the other side at once, so an audio frame is never held back to fill a buffer.
//! EOF on one side half-closes the other (`shutdown(SHUT_WR)`, or close_notify for TLS) and the
//! relay keeps running the other direction; an error on either side ends both.

use std::cell::Cell;
use std::future::Future;
use std::io;
use std::pin::{pin, Pin};
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::io::{flush, with_scratch, write_all};
use crate::net::stream::Stream;

/// Bytes moved by a finished relay, for the access log.
#[derive(Debug, Default, Clone, Copy)]
pub struct RelayTotals {
    pub client_to_upstream: u64,
    pub upstream_to_client: u64,
}

/// Relay until both directions end. `client_prefix` holds bytes the client sent after the
/// upgrade request's head; `upstream_prefix` bytes the upstream sent after its 101 head.
pub async fn relay<C: Stream, U: Stream>(
    client: &C,
    upstream: &U,
    client_prefix: Vec<u8>,
    upstream_prefix: Vec<u8>,
    idle_timeout: Option<Duration>,
) -> io::Result<RelayTotals> {
    let activity = Rc::new(Cell::new(Instant::now()));
    let up = pin!(one_way(client, upstream, client_prefix, idle_timeout, activity.clone()));
    let down = pin!(one_way(upstream, client, upstream_prefix, idle_timeout, activity));
    both(up, down).await
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

/// Copy `src` → `dst` until EOF, then half-close `dst`.
async fn one_way<R: Stream, W: Stream>(
    src: &R,
    dst: &W,
    prefix: Vec<u8>,
    idle_timeout: Option<Duration>,
    activity: Rc<Cell<Instant>>,
) -> io::Result<u64> {
    let mut moved = prefix.len() as u64;
    if !prefix.is_empty() {
        write_all(dst, &prefix).await?;
    }
    drop(prefix);
    loop {
        let step = with_scratch(|scratch| -> io::Result<Step> {
            let n = match src.try_read(scratch) {
                Ok(0) => return Ok(Step::Eof),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Step::WouldBlock),
                Err(e) => return Err(e),
            };
            moved += n as u64;
            let written = match dst.try_write(&scratch[..n]) {
                Ok(w) => w,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
                Err(e) => return Err(e),
            };
            if written < n {
                return Ok(Step::Pending(scratch[written..n].to_vec()));
            }
            Ok(Step::Moved { drained: n < scratch.len() })
        })?;
        match step {
            Step::Moved { drained } => {
                activity.set(Instant::now());
                flush(dst).await?;
                // Skip the read that would only return EAGAIN: one syscall less per audio
                // frame. (A TLS source reports buffered plaintext as readable at once.)
                if drained {
                    wait_readable(src, idle_timeout, &activity).await?;
                }
            }
            Step::Pending(rest) => {
                activity.set(Instant::now());
                write_all(dst, &rest).await?;
            }
            Step::WouldBlock => wait_readable(src, idle_timeout, &activity).await?,
            Step::Eof => {
                flush(dst).await?;
                // The peer may already be gone; a failed half-close changes nothing.
                let _ = dst.shutdown_write();
                return Ok(moved);
            }
        }
    }
}

async fn wait_readable<R: Stream>(
    src: &R,
    idle_timeout: Option<Duration>,
    activity: &Cell<Instant>,
) -> io::Result<()> {
    let Some(limit) = idle_timeout else {
        return src.readable().await;
    };
    loop {
        let left = limit.saturating_sub(activity.get().elapsed());
        if left.is_zero() {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "relay idle timeout"));
        }
        // Dropping a readiness wait loses no data, so a plain timeout is safe here. Boxed:
        // a timer is much larger than a readiness wait, and relays without an idle timeout
        // (the default) should not carry its space in every idle WebSocket.
        if let Ok(ready) = Box::pin(monoio::time::timeout(left, src.readable())).await {
            return ready;
        }
    }
}
