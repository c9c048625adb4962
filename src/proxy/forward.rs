//! Forwarding one request to an upstream and its response back: the [`Exchange`], the choice
//! of connection, the one replay on a fresh connection, and the retries `lb_retries` /
//! `lb_try_duration` ask for.
//!
//! Order of events for one request:
//! 1. Pick upstreams in policy order; take a pooled connection or dial, and write the rewritten
//!    head (`connect_and_send`; a dial error moves on to the next upstream: nothing has been
//!    sent).
//! 2. Stream the request body, watching the upstream for an early response (`upload`).
//! 3. Read the response head, pass 1xx heads through, and either hand the connection over for
//!    the relay after a `101` or stream the body by its framing (`response`).
//! 4. Return the upstream connection to the worker's pool when both messages completed cleanly.
//!
//! A pooled connection may have been closed by the upstream while it sat idle; the attempt
//! then fails before any response byte. Such an attempt is sent once more on a fresh
//! connection when `may_replay` allows it, and only then.
//!
//! Steps 1 to 3 (with that replay) are one *try*. When the set has `lb_retries` or
//! `lb_try_duration` (Caddy's options) and a try could not deliver the request (no upstream
//! reached, or a connection lost before any response byte whose request `may_retry` allows
//! sending again), the request is tried again from step 1, after `lb_try_interval`, with the
//! attempt order picked anew: up to `lb_retries` more tries and while `lb_try_duration` has not
//! passed since the first. A graceful stop ends the wait, and the tries.
//!
//! Owns: the order of attempts, the pool's bookkeeping (in-flight counts, passive health,
//! returning connections) and the replay and retry decisions. Does not own: the bytes of either
//! message (`upload`, `response`) or what the client is told after a failure (the connection
//! driver).

use std::future::Future;
use std::iter;
use std::time::{Duration, Instant};

use super::io::write_all;
use super::ConnCtx;
use crate::config::{CopyHeader, Encode, HeaderOp};
use crate::error::{ProxyError, UpstreamError};
use crate::http::head::{Method, RequestBody, RequestHead};
use crate::http::header_ops::HeaderMiddleware;
use crate::http::request::Request;
use crate::http::rewrite::write_request_head;
use crate::http::template::ForwardContext;
use crate::net::stall::{stalled, Stalled, Stalling};
use crate::net::stream::{PlainStream, Stream};
use crate::upstream::{dial, is_local_fault, UpstreamConn, UpstreamPool};

/// One request on its way to an upstream: who asked, what they asked, the route's rewrite and
/// the upstreams that may answer.
pub struct Exchange<'a, S> {
    pub client: &'a S,
    pub ctx: &'a ConnCtx,
    /// The request, whose unread bytes start with its body; after a complete exchange they
    /// hold only what the client sent after this request (pipelining).
    pub request: &'a mut Request,
    /// Prefixes removed by enclosing `handle_path` blocks (see `ForwardContext`).
    pub strip_prefixes: &'a [&'a str],
    pub pool: &'a UpstreamPool,
    /// The route's `request_body max_size`, for a chunked body (the upload enforces it).
    pub max_body: Option<u64>,
    /// The route's `encode`, for the response.
    pub encode: Option<&'a Encode>,
    /// The ops applied to the forwarded head: the set's `header_up`, after any a
    /// `forward_auth` added for this request (`auth::header_up`).
    pub header_up: &'a [HeaderOp],
    /// Set when this is a `forward_auth` request, with its `copy_headers`: a 2xx is not
    /// delivered but absorbed (`auth::absorb`), and no interim head reaches the client.
    pub authorizing: Option<&'a [CopyHeader]>,
    /// The route's `header` ops, for the response heads.
    pub headers: &'a HeaderMiddleware<'a>,
}

/// A completed exchange: how the client connection continues, and what the access log
/// records.
pub struct Outcome {
    pub keep_alive: bool,
    pub status: u16,
    /// Response body bytes.
    pub bytes: u64,
    /// Set after a `101`: the caller relays once everything the request needed is freed, so an
    /// idle WebSocket holds nothing of its upgrade request.
    pub upgraded: Option<Upgraded>,
    /// Set when an auth request was answered 2xx: the header ops the request that goes on
    /// gets (nothing reached the client).
    pub authorized: Option<Vec<HeaderOp>>,
}

/// The upstream side of an upgraded connection, ready for the relay. The client side's early
/// bytes are the request's unread bytes.
pub struct Upgraded {
    pub upstream: PlainStream,
    /// Bytes the upstream sent after its `101` head.
    pub upstream_rest: Vec<u8>,
    /// The upstream set's `stream_timeout`.
    pub stream_timeout: Option<Duration>,
}

/// A failed exchange: the error, and whether any response bytes already reached the client
/// (then no synthesized answer may follow; the connection just ends).
#[derive(Debug)]
pub struct ForwardError {
    pub error: ProxyError,
    pub response_started: bool,
    /// The request's body was read to its end (or it had none): the client connection is at a
    /// request boundary, so an answer to this error need not end it.
    pub request_read: bool,
}

pub(super) fn before_response(error: impl Into<ProxyError>) -> ForwardError {
    ForwardError { error: error.into(), response_started: false, request_read: false }
}

pub(super) fn after_response(error: impl Into<ProxyError>) -> ForwardError {
    ForwardError { error: error.into(), response_started: true, request_read: false }
}

/// One upstream connection during an exchange: what the upload and the response share.
pub(super) struct Attempt<'c> {
    pub(super) upstream: &'c PlainStream,
    /// The upstream as configured, for errors and logs; `{upstream_hostport}` is derived from
    /// it (`config::upstream_hostport`) rather than kept beside it, as every request's future
    /// holds an `Attempt`.
    pub(super) name: &'c str,
    /// Bytes from the upstream not forwarded yet: part of a head, or body bytes behind one.
    pub(super) received: Vec<u8>,
    /// A response head (interim or final) came in.
    pub(super) head_seen: bool,
    /// The whole request body (or none) went to the upstream.
    pub(super) body_sent: bool,
}

impl Attempt<'_> {
    pub(super) fn io_error(&self, source: std::io::Error) -> UpstreamError {
        UpstreamError::Io { upstream: self.name.to_owned(), source }
    }

    pub(super) fn closed_early(&self) -> UpstreamError {
        UpstreamError::ClosedEarly { upstream: self.name.to_owned() }
    }

    fn response_seen(&self) -> bool {
        self.head_seen || !self.received.is_empty()
    }
}

/// How an exchange on one upstream connection ended.
pub(super) enum Ended {
    Complete { outcome: Outcome, reusable: bool },
    Upgraded { upstream_rest: Vec<u8> },
}

/// What is known about an attempt that failed on an upstream connection: what the replay
/// decision and passive health need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Attempted {
    upstream: usize,
    /// The connection came from the pool: the upstream may have closed it while it sat idle.
    pooled: bool,
    /// The whole request head was written, so the upstream may have acted on the request.
    head_sent: bool,
    /// Some of a response came in: the connection was alive.
    response_seen: bool,
    /// The attempt ended because the connection did (EOF or an I/O error), which is how an idle
    /// close racing the request looks; not a timeout or an invalid response.
    connection_lost: bool,
    /// The request body was read from the client to its end (or there was none).
    body_read: bool,
}

impl Attempted {
    /// A pooled connection that ended before any byte of a response: most likely the upstream
    /// closed it while it was idle, which says nothing about the upstream's health.
    fn looks_stale(&self) -> bool {
        self.pooled && self.connection_lost && !self.response_seen
    }
}

/// A failed attempt, or no attempt at all (`attempted` is `None` when no upstream could be
/// reached).
struct Failed {
    error: ForwardError,
    attempted: Option<Attempted>,
}

impl Failed {
    fn unreached(error: UpstreamError) -> Failed {
        Failed { error: before_response(error), attempted: None }
    }

    /// The error for the client connection; `bodyless` requests are read once their head is.
    fn into_error(self, bodyless: bool) -> ForwardError {
        let request_read = self.attempted.map_or(bodyless, |attempted| attempted.body_read);
        ForwardError { request_read, ..self.error }
    }
}

/// A request without a body: read whole once its head is, and sendable again without keeping
/// a body.
pub(super) fn is_bodyless(head: &RequestHead) -> bool {
    matches!(head.body, RequestBody::None | RequestBody::Length(0))
}

/// A request that may be sent a second time after its head may have reached the upstream,
/// which may have acted on it: it has no body, and sending it twice means what sending it once
/// does. That is a safe method (RFC 9110 §9.2.1), or any method with an `Idempotency-Key` (or
/// `X-Idempotency-Key`), the rule of Go's transport and so Caddy's. PUT and DELETE are
/// idempotent too (§9.2.2) but are left out as there: a replayed DELETE answers 404 where the
/// first one would have answered 204.
fn is_replayable(request: &Request) -> bool {
    let head = request.head();
    if !is_bodyless(head) {
        return false;
    }
    match head.method {
        Method::Get | Method::Head | Method::Options | Method::Trace => true,
        _ => {
            let mut keys =
                request.values("idempotency-key").chain(request.values("x-idempotency-key"));
            keys.next().is_some()
        }
    }
}

/// Whether a failed attempt may be sent again on a fresh connection: the pooled connection most
/// likely went stale before any response byte (so nothing reached the client), and sending the
/// request twice does no harm: the upstream never had the whole head, or the request is
/// `replayable` (see [`is_replayable`]).
fn may_replay(attempted: &Attempted, replayable: bool) -> bool {
    attempted.looks_stale() && (!attempted.head_sent || replayable)
}

/// Whether a request whose try failed may be tried again (`lb_retries`, `lb_try_duration`): no
/// upstream was reached (nothing was sent), or the connection was lost before any byte of a
/// response came (so nothing reached the client) and sending the request again does no harm:
/// the upstream never had the whole head, or the request is `replayable`. A body that was
/// streamed is never sent again: such a request is not replayable.
fn may_retry(attempted: Option<&Attempted>, replayable: bool) -> bool {
    attempted.is_none_or(|a| a.connection_lost && !a.response_seen && (!a.head_sent || replayable))
}

/// Where `connect_and_send` takes its connections from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Connect {
    PooledOrDialled,
    /// After a stale pooled connection: only fresh ones.
    Dialled,
}

impl<'a, S: Stream> Exchange<'a, S> {
    /// Forward the request and its body, then its response back to the client.
    ///
    /// Each pass of the loop is one try (see the module doc), written out here rather than as
    /// an `async fn` of its own, and the body is an `async` block rather than an `async fn`:
    /// either would keep `self` twice in the state every request's future carries.
    #[allow(clippy::manual_async_fn, reason = "an async fn keeps its arguments twice")]
    pub fn forward(mut self) -> impl Future<Output = Result<Outcome, ForwardError>> + 'a {
        async move {
            let replayable = is_replayable(self.request);
            let bodyless = is_bodyless(self.request.head());
            let mut head = Vec::with_capacity(self.request.head().head_len + 256);
            let started = Instant::now();
            let mut retried = 0;
            loop {
                let mut order = self.pool.attempt_order(self.ctx.peer.ip()).into_iter();
                let first = match self
                    .connect_and_send(&mut order, Connect::PooledOrDialled, &mut head)
                    .await
                {
                    Ok(conn) => self.exchange_on(conn).await,
                    Err(failed) => Err(failed),
                };
                let failed = match first {
                    Ok(outcome) => return Ok(outcome),
                    Err(Failed { attempted: Some(attempted), .. })
                        if may_replay(&attempted, replayable) =>
                    {
                        let stale = attempted.upstream;
                        tracing::debug!(
                            conn = self.ctx.id,
                            upstream = %self.pool.upstream(stale).display,
                            "pooled connection was closed by the upstream; retrying on a fresh one"
                        );
                        let mut again = iter::once(stale).chain(order);
                        let replayed = match self
                            .connect_and_send(&mut again, Connect::Dialled, &mut head)
                            .await
                        {
                            Ok(conn) => self.exchange_on(conn).await,
                            Err(failed) => Err(failed),
                        };
                        match replayed {
                            Ok(outcome) => return Ok(outcome),
                            Err(failed) => failed,
                        }
                    }
                    Err(failed) => failed,
                };
                if !may_retry(failed.attempted.as_ref(), replayable)
                    || !self.wait_to_retry(started, retried).await
                {
                    return Err(failed.into_error(bodyless));
                }
                retried += 1;
                tracing::debug!(
                    conn = self.ctx.id,
                    retry = retried,
                    "request not delivered ({}); trying again",
                    failed.error.error
                );
            }
        }
    }

    /// Whether the set's retry options allow another try after `retried` retries of a request
    /// first tried at `started`; if so, returns after `lb_try_interval` (Caddy's order: the
    /// limits are checked, then the wait runs). A graceful stop beginning (or begun) ends the
    /// wait with `false`: the client is answered now rather than held through the grace
    /// period for an upstream that is not there.
    async fn wait_to_retry(&self, started: Instant, retried: u32) -> bool {
        let retries = self.pool.set.retries;
        let out_of_time = retries.duration.is_some_and(|d| started.elapsed() >= d);
        let out_of_tries = retries.count > 0 && retried >= retries.count;
        let worker = &self.ctx.worker;
        if !retries.enabled() || out_of_time || out_of_tries || worker.draining.is_set() {
            return false;
        }
        if retries.interval.is_zero() {
            return true;
        }
        // The worker's deadline table keeps the wait (no runtime timer per waiting request);
        // it expiring is the interval passing.
        worker.deadlines.within(retries.interval, worker.draining.wait()).await.is_err()
    }

    /// The placeholders' view of this request, sent to `upstream`.
    pub(super) fn forward_context<'s>(&'s self, upstream: &'s str) -> ForwardContext<'s> {
        self.ctx.forward_context(self.request, self.strip_prefixes, upstream)
    }

    /// Take a pooled connection or dial one, to the first upstream in `order` that can be
    /// reached, and write the request head (rendered for that upstream into `head`). A dial
    /// failure moves on to the next upstream: nothing has been sent. A failed write is a failed
    /// attempt, for the caller to judge.
    async fn connect_and_send(
        &self,
        order: &mut impl Iterator<Item = usize>,
        connect: Connect,
        head: &mut Vec<u8>,
    ) -> Result<UpstreamConn, Failed> {
        let mut last_error = None;
        for index in order {
            let upstream = self.pool.upstream(index);
            let pooled = match connect {
                Connect::PooledOrDialled => self.pool.take_idle(index),
                Connect::Dialled => None,
            };
            let conn = match pooled {
                Some(conn) => conn,
                // Boxed: the dial's runtime timer is 128-byte aligned, and inline it would
                // align (and pad) every request's future, pooled or not. A dial is a connect(2)
                // and a handshake; one allocation more is nothing beside them.
                None => {
                    match Box::pin(dial(upstream, self.pool.set.transport.dial_timeout)).await {
                        Ok(stream) => UpstreamConn { stream, upstream: index, reused: false },
                        Err(source) if is_local_fault(&source) => {
                            // Out of descriptors or ports here: not the upstream's failure, and
                            // another upstream would fare no better.
                            let upstream = upstream.display.clone();
                            tracing::error!(conn = self.ctx.id, %upstream, "cannot dial: {source}");
                            return Err(Failed::unreached(UpstreamError::Connect {
                                upstream,
                                source,
                            }));
                        }
                        Err(source) => {
                            self.pool.record_failure(index);
                            let upstream = upstream.display.clone();
                            tracing::warn!(conn = self.ctx.id, %upstream, "dial failed: {source}");
                            last_error = Some(UpstreamError::Connect { upstream, source });
                            continue;
                        }
                    }
                }
            };
            head.clear();
            write_request_head(&self.forward_context(upstream.hostport()), self.header_up, head);
            let limit = self.pool.set.transport.write_timeout;
            let writing = Stalling::writes(&conn.stream, limit, &self.ctx.worker.deadlines);
            let Err(source) = write_all(&writing, head).await else {
                return Ok(conn);
            };
            let write_stalled = stalled(&source) == Some(Stalled::Write);
            let attempted = Attempted {
                upstream: index,
                pooled: conn.reused,
                head_sent: false,
                response_seen: false,
                connection_lost: !write_stalled,
                body_read: is_bodyless(self.request.head()),
            };
            let upstream = upstream.display.clone();
            let error = match write_stalled {
                true => UpstreamError::WriteStalled { upstream },
                false => UpstreamError::Io { upstream, source },
            };
            return Err(self.failed(before_response(error), attempted));
        }
        Err(Failed::unreached(last_error.unwrap_or(UpstreamError::NoneAvailable)))
    }

    /// Run the exchange on a connection whose request head is written, then settle the
    /// connection: back to the pool, handed over for the relay, or dropped.
    async fn exchange_on(&mut self, conn: UpstreamConn) -> Result<Outcome, Failed> {
        let (index, pool) = (conn.upstream, self.pool);
        let name = &pool.upstream(index).display;
        let mut attempt = Attempt {
            upstream: &conn.stream,
            name,
            received: Vec::new(),
            head_seen: false,
            body_sent: false,
        };
        self.pool.begin_request(index);
        let ended = self.run(&mut attempt).await;
        self.pool.end_request(index);
        let (response_seen, body_read) = (attempt.response_seen(), attempt.body_sent);
        match ended {
            Ok(Ended::Complete { outcome, reusable }) => {
                if reusable {
                    self.pool.put_idle(conn);
                }
                Ok(outcome)
            }
            Ok(Ended::Upgraded { upstream_rest }) => Ok(Outcome {
                keep_alive: false,
                status: 101,
                bytes: 0,
                upgraded: Some(Upgraded {
                    upstream: conn.stream,
                    upstream_rest,
                    stream_timeout: self.pool.set.stream_timeout,
                }),
                authorized: None,
            }),
            Err(error) => {
                let connection_lost = matches!(
                    error.error,
                    ProxyError::Upstream(
                        UpstreamError::ClosedEarly { .. } | UpstreamError::Io { .. }
                    )
                );
                let attempted = Attempted {
                    upstream: index,
                    pooled: conn.reused,
                    head_sent: true,
                    response_seen,
                    connection_lost,
                    body_read,
                };
                Err(self.failed(error, attempted))
            }
        }
    }

    async fn run(&mut self, attempt: &mut Attempt<'_>) -> Result<Ended, ForwardError> {
        let stalls = super::upload::Stalls {
            deadlines: &self.ctx.worker.deadlines,
            client_read: self.ctx.snapshot.config.globals.limits.read_body_timeout,
            upstream_write: self.pool.set.transport.write_timeout,
        };
        let sent =
            super::upload::send_body(self.client, self.request, attempt, stalls, self.max_body)
                .await?;
        attempt.body_sent = sent == super::upload::BodySent::Complete;
        super::response::receive(self, attempt, sent).await
    }

    /// Count a failed attempt against its upstream (passive health), unless it only found a
    /// connection the upstream had closed while idle. Only the upstream's faults count: a
    /// client that stalls or leaves mid-body fails with a client error, which never does.
    fn failed(&self, error: ForwardError, attempted: Attempted) -> Failed {
        if matches!(error.error, ProxyError::Upstream(_)) && !attempted.looks_stale() {
            self.pool.record_failure(attempted.upstream);
        }
        Failed { error, attempted: Some(attempted) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::head::parse_request;

    const STALE: Attempted = Attempted {
        upstream: 0,
        pooled: true,
        head_sent: true,
        response_seen: false,
        connection_lost: true,
        body_read: true,
    };

    #[test]
    fn only_bodiless_safe_or_keyed_requests_are_replayable() {
        let cases: &[(&[u8], bool)] = &[
            (b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", true),
            (b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n", true),
            (b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", true),
            (b"TRACE / HTTP/1.1\r\nHost: a\r\n\r\n", true),
            (b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\n", false),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", false),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\n", false),
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", false),
            (b"PATCH / HTTP/1.1\r\nHost: a\r\n\r\n", false),
            (b"DELETE / HTTP/1.1\r\nHost: a\r\n\r\n", false),
            (b"PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", false),
            (b"DELETE / HTTP/1.1\r\nHost: a\r\nIdempotency-Key: \"k1\"\r\n\r\n", true),
            (b"POST / HTTP/1.1\r\nHost: a\r\nx-idempotency-key: k2\r\n\r\n", true),
            (
                b"POST / HTTP/1.1\r\nHost: a\r\nIdempotency-Key: k\r\nContent-Length: 2\r\n\r\n",
                false,
            ),
        ];
        for (raw, want) in cases {
            let head = parse_request(raw, 4096).unwrap().unwrap();
            let request = Request::new(head, raw.to_vec());
            assert_eq!(is_replayable(&request), *want, "{}", String::from_utf8_lossy(raw));
        }
    }

    #[test]
    fn a_stale_pooled_connection_is_replayed_when_the_request_has_no_body() {
        assert!(may_replay(&STALE, true));
        assert!(!may_replay(&STALE, false), "its body may be gone");
    }

    #[test]
    fn a_head_that_never_reached_the_upstream_is_replayed_even_with_a_body() {
        let unsent = Attempted { head_sent: false, ..STALE };
        assert!(may_replay(&unsent, false));
    }

    #[test]
    fn nothing_is_replayed_once_the_connection_showed_it_was_alive() {
        let answered = Attempted { response_seen: true, ..STALE };
        assert!(!may_replay(&answered, true));
        assert!(!answered.looks_stale());
    }

    #[test]
    fn a_request_that_reached_no_upstream_may_always_be_tried_again() {
        assert!(may_retry(None, false));
    }

    #[test]
    fn a_lost_fresh_connection_is_retried_only_if_the_head_never_got_there_or_it_is_replayable() {
        let fresh = Attempted { pooled: false, ..STALE };
        assert!(may_retry(Some(&fresh), true), "a GET on a fresh connection that was reset");
        assert!(!may_retry(Some(&fresh), false), "a POST the upstream may have acted on");
        let unsent = Attempted { head_sent: false, body_read: false, ..fresh };
        assert!(may_retry(Some(&unsent), false), "nothing of it reached the upstream");
    }

    #[test]
    fn nothing_is_retried_after_a_response_began_or_a_failure_other_than_a_lost_connection() {
        let answered = Attempted { response_seen: true, ..STALE };
        let timed_out = Attempted { connection_lost: false, ..STALE };
        for attempted in [answered, timed_out] {
            assert!(!may_retry(Some(&attempted), true), "{attempted:?}");
        }
    }

    #[test]
    fn fresh_connections_and_failures_other_than_a_lost_connection_are_not_replayed() {
        let fresh = Attempted { pooled: false, ..STALE };
        let timed_out = Attempted { connection_lost: false, ..STALE };
        for attempted in [fresh, timed_out] {
            assert!(!may_replay(&attempted, true), "{attempted:?}");
            assert!(!attempted.looks_stale(), "{attempted:?}");
        }
    }
}
