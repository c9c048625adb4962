//! The request half of an exchange: stream the request body to the upstream while watching the
//! upstream for an early response. A `100 Continue` (or any interim head) is passed to the
//! client at once; a final response that arrives early ends the upload, and it is forwarded.
//!
//! Only readiness waits sit inside `select!`; bytes are moved outside it, so no branch that
//! loses the race can drop data.
//!
//! Owns the upload and what is watched meanwhile. Does not own the response that follows
//! (`response`) or the choice of connection (`forward`).

use std::future::Future;
use std::io;
use std::pin::pin;
use std::time::Duration;

use super::forward::{before_response, Attempt, ForwardError};
use super::io::{read_append, write_all, BodyFraming};
use crate::config::limits;
use crate::error::{ClientError, ProxyError, UpstreamError};
use crate::http::chunked::ChunkedTracker;
use crate::http::head::{parse_response, Method, RequestBody};
use crate::http::request::Request;
use crate::net::deadline::Deadlines;
use crate::net::stall::{stalled, within, Stalled};
use crate::net::stream::Stream;

/// How the upload ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum BodySent {
    /// The whole body (or none) went to the upstream.
    Complete,
    /// A final response head started arriving before the body was sent; the rest of the body
    /// is abandoned and both connections close after the response.
    ResponseArrived,
}

/// The stall timeouts of an upload (`None`: off), and the worker's table that keeps them.
#[derive(Clone, Copy)]
pub(super) struct Stalls<'w> {
    pub(super) deadlines: &'w Deadlines,
    /// The client's body: `servers { timeouts { read_body } }`.
    pub(super) client_read: Option<Duration>,
    /// The upstream accepting it: `transport http { write_timeout }`.
    pub(super) upstream_write: Option<Duration>,
}

/// How a request body is delimited, as the upload tracks it.
fn request_framing(body: RequestBody) -> BodyFraming {
    match body {
        RequestBody::None => BodyFraming::Length(0),
        RequestBody::Length(n) => BodyFraming::Length(n),
        RequestBody::Chunked => BodyFraming::Chunked(ChunkedTracker::new()),
    }
}

/// Stream the request body to the upstream: first the unread bytes the client already sent,
/// then what it sends next. While waiting on the client (or on the upstream's socket buffer),
/// also wait on the upstream's readability (see the module doc). Bytes the client sent after
/// the body stay unread in `request`.
///
/// `max_body` (`request_body max_size`) bounds a chunked body's data: the chunk that would
/// take it over is not sent, so the upstream sees at most `max_body` bytes of it. A
/// Content-Length over the bound never gets here (the connection driver answers 413 first).
pub(super) async fn send_body<S: Stream>(
    client: &S,
    request: &mut Request,
    attempt: &mut Attempt<'_>,
    stalls: Stalls<'_>,
    max_body: Option<u64>,
) -> Result<BodySent, ForwardError> {
    let mut framing = request_framing(request.head().body);
    if framing.is_done_at_start() {
        return Ok(BodySent::Complete);
    }
    let method = request.head().method;
    loop {
        if !request.unread().is_empty() {
            let (n, done) = framing
                .take(request.unread())
                .map_err(|e| before_response(ClientError::Chunked(e)))?;
            if let (Some(max), BodyFraming::Chunked(tracker)) = (max_body, &framing) {
                if tracker.data_len() > max {
                    return Err(before_response(ClientError::BodyTooLarge { max }));
                }
            }
            let chunk = &request.unread()[..n];
            let sent = write_watching(client, chunk, attempt, stalls, method).await?;
            request.consume(n);
            if let Some(arrived) = sent {
                return Ok(arrived);
            }
            if done {
                return Ok(BodySent::Complete);
            }
            if !request.unread().is_empty() {
                continue;
            }
        }
        let client_readable =
            within(stalls.deadlines, stalls.client_read, Stalled::Read, client.readable());
        match ready_or_response(client_readable, attempt).await {
            Woke::Ready(Err(e)) => return Err(before_response(ClientError::from_io(e))),
            Woke::Ready(Ok(())) => match read_append(client, request, usize::MAX).await {
                Ok(0) => return Err(before_response(ClientError::ClosedMidRequest)),
                Ok(_) => {}
                Err(e) => return Err(before_response(ClientError::from_io(e))),
            },
            Woke::Upstream(Err(e)) => return Err(before_response(e)),
            Woke::Upstream(Ok(())) => {
                if let Some(arrived) = forward_interim(client, attempt, method).await? {
                    return Ok(arrived);
                }
            }
        }
    }
}

/// Write `chunk` to the upstream; while its socket buffer is full, watch for its response.
/// `Some(ResponseArrived)` when a final response head came in (or the upstream stopped
/// accepting the body), `None` when the chunk is written.
async fn write_watching<S: Stream>(
    client: &S,
    mut chunk: &[u8],
    attempt: &mut Attempt<'_>,
    stalls: Stalls<'_>,
    method: Method,
) -> Result<Option<BodySent>, ForwardError> {
    let write_stall = stalls.upstream_write;
    let upstream = attempt.upstream;
    while !chunk.is_empty() {
        match upstream.try_write(chunk) {
            Ok(n) => chunk = &chunk[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                let writable =
                    within(stalls.deadlines, write_stall, Stalled::Write, upstream.writable());
                match ready_or_response(writable, attempt).await {
                    Woke::Ready(Ok(())) => {}
                    Woke::Ready(Err(e)) if stalled(&e) == Some(Stalled::Write) => {
                        let upstream = attempt.name.to_owned();
                        return Err(before_response(UpstreamError::WriteStalled { upstream }));
                    }
                    Woke::Ready(Err(_)) => return Ok(Some(BodySent::ResponseArrived)),
                    Woke::Upstream(Err(e)) => return Err(before_response(e)),
                    Woke::Upstream(Ok(())) => {
                        if let Some(arrived) = forward_interim(client, attempt, method).await? {
                            return Ok(Some(arrived));
                        }
                    }
                }
            }
            // The upstream stopped reading (it may have answered and closed): its response,
            // if any, is read next.
            Err(_) => return Ok(Some(BodySent::ResponseArrived)),
        }
    }
    Ok(None)
}

/// Look at what the upstream sent mid-upload: forward complete interim (1xx, not 101) heads
/// to the client; report a final head as `ResponseArrived`; `None` to keep uploading.
async fn forward_interim<S: Stream>(
    client: &S,
    attempt: &mut Attempt<'_>,
    method: Method,
) -> Result<Option<BodySent>, ForwardError> {
    loop {
        let head = match parse_response(&attempt.received, method, limits::MAX_RESPONSE_HEAD) {
            Ok(Some(head)) => head,
            Ok(None) => return Ok(None),
            Err(source) => {
                let upstream = attempt.name.to_owned();
                return Err(before_response(UpstreamError::Head { upstream, source }));
            }
        };
        attempt.head_seen = true;
        if !head.is_interim() {
            return Ok(Some(BodySent::ResponseArrived));
        }
        write_all(client, &attempt.received[..head.head_len])
            .await
            .map_err(|e| before_response(ClientError::from_io(e)))?;
        attempt.received.drain(..head.head_len);
    }
}

/// What ended a wait during an upload: the awaited readiness, or bytes from the upstream.
enum Woke {
    Ready(io::Result<()>),
    Upstream(Result<(), ProxyError>),
}

/// Wait for `ready` (client readable or upstream writable) while watching the upstream for an
/// early response. Both branches are readiness waits, so the losing one drops without losing
/// data.
async fn ready_or_response(
    ready: impl Future<Output = io::Result<()>>,
    attempt: &mut Attempt<'_>,
) -> Woke {
    let ready = pin!(ready);
    let spoke = pin!(wait_for_response(attempt));
    monoio::select! {
        r = ready => Woke::Ready(r),
        s = spoke => Woke::Upstream(s),
    }
}

/// Resolve once the upstream has sent bytes (appended to `attempt.received`); an EOF is an
/// error.
async fn wait_for_response(attempt: &mut Attempt<'_>) -> Result<(), ProxyError> {
    match read_append(attempt.upstream, &mut attempt.received, limits::MAX_RESPONSE_HEAD).await {
        Ok(0) => Err(attempt.closed_early().into()),
        Ok(_) => Ok(()),
        Err(source) => Err(attempt.io_error(source).into()),
    }
}
