//! Forwarding one request to an upstream and its response back, bodies streamed by framing.
//!
//! Order of events for one request:
//! 1. Pick upstreams in policy order; take a pooled connection or dial (dial errors move on to
//!    the next upstream: nothing has been sent yet).
//! 2. Write the rewritten head, then stream the request body. While the body streams we also
//!    watch the upstream: a `100 Continue` is passed to the client at once, and a final
//!    response that arrives early (e.g. 413) ends the upload and is forwarded.
//! 3. Read the response head (bounded by `response_header_timeout`), pass 1xx heads through,
//!    and either relay after a `101` or stream the body by its framing.
//! 4. Return the upstream connection to the worker's pool when both messages completed cleanly.

use crate::config::limits;
use std::io;
use std::pin::pin;
use std::time::Instant;

use super::io::{pump_body, read_append, write_all, BodyFraming, PumpError};
use super::ConnCtx;
use crate::error::{ClientError, ProxyError, UpstreamError};
use crate::http::chunked::ChunkedTracker;
use crate::http::head::{
    parse_response, RequestBody, RequestHead, ResponseBody, ResponseHead, Version,
};
use crate::http::request::Request;
use crate::http::rewrite::{write_request_head, write_response_head};
use crate::net::stream::{PlainStream, Stream};
use crate::upstream::{dial, UpstreamConn, UpstreamPool};

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
}

/// The upstream side of an upgraded connection, ready for the relay. The client side's early
/// bytes are the request's unread bytes.
pub struct Upgraded {
    pub upstream: PlainStream,
    /// Bytes the upstream sent after its `101` head.
    pub upstream_rest: Vec<u8>,
}

/// How an exchange on one upstream connection ended.
enum ExchangeEnd {
    Done { outcome: Outcome, reusable: bool },
    Upgrade { upstream_rest: Vec<u8> },
}

/// A failed exchange: the error, and whether any response bytes already reached the client
/// (then no synthesized answer may follow; the connection just ends).
pub struct ForwardError {
    pub error: ProxyError,
    pub response_started: bool,
    /// A reused pooled connection ended before any response byte: the upstream most likely
    /// closed it while idle, racing our request.
    stale_pooled: bool,
}

fn before_response(error: impl Into<ProxyError>) -> ForwardError {
    ForwardError { error: error.into(), response_started: false, stale_pooled: false }
}

fn after_response(error: impl Into<ProxyError>) -> ForwardError {
    ForwardError { error: error.into(), response_started: true, stale_pooled: false }
}

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
}

impl<S: Stream> Exchange<'_, S> {
    /// Forward the request and its body, then its response back to the client.
    pub async fn forward(self) -> Result<Outcome, ForwardError> {
        forward(self.client, self.ctx, self.pool, self.request, self.strip_prefixes).await
    }
}

async fn forward<S: Stream>(
    client: &S,
    ctx: &ConnCtx,
    pool: &UpstreamPool,
    request: &mut Request,
    strip_prefixes: &[&str],
) -> Result<Outcome, ForwardError> {
    let head = request.head();
    let order = pool.attempt_order(ctx.peer.ip());
    if order.is_empty() {
        return Err(before_response(UpstreamError::NoneAvailable));
    }
    let transport = &pool.set.transport;
    let mut out = Vec::with_capacity(head.head_len + 256);
    let replayable = matches!(head.body, RequestBody::None | RequestBody::Length(0));
    let mut last_error: Option<UpstreamError> = None;
    let mut chosen: Option<UpstreamConn> = None;
    for index in order {
        let upstream = pool.upstream(index);
        let fctx = ctx.forward_context(request, strip_prefixes, &upstream.display);
        out.clear();
        write_request_head(&fctx, &pool.set.header_up, &mut out);
        let mut conn = match pool.take_idle(index, replayable) {
            Some(conn) => conn,
            None => match dial(upstream, transport.dial_timeout).await {
                Ok(stream) => UpstreamConn { stream, upstream: index, reused: false },
                Err(source) => {
                    pool.record_failure(index);
                    tracing::warn!(conn = ctx.id, upstream = %upstream.display, "dial failed: {source}");
                    last_error =
                        Some(UpstreamError::Connect { upstream: upstream.display.clone(), source });
                    continue;
                }
            },
        };
        if write_all(&conn.stream, &out).await.is_err() && conn.reused {
            // The pooled connection died while idle; one fresh dial to the same upstream.
            match dial(upstream, transport.dial_timeout).await {
                Ok(stream) => conn = UpstreamConn { stream, upstream: index, reused: false },
                Err(source) => {
                    pool.record_failure(index);
                    last_error =
                        Some(UpstreamError::Connect { upstream: upstream.display.clone(), source });
                    continue;
                }
            }
            if let Err(source) = write_all(&conn.stream, &out).await {
                last_error = Some(UpstreamError::Io { upstream: upstream.display.clone(), source });
                continue;
            }
        }
        chosen = Some(conn);
        break;
    }
    let Some(conn) = chosen else {
        return Err(before_response(last_error.unwrap_or(UpstreamError::NoneAvailable)));
    };
    let index = conn.upstream;
    pool.begin_request(index);
    let result = exchange(client, ctx, pool, request, conn, strip_prefixes).await;
    match result {
        // The pooled connection was closed by the upstream while idle and the request has no
        // body, so nothing is lost by sending it again on a fresh connection (once).
        Err(e) if e.stale_pooled && replayable => {
            let upstream = pool.upstream(index);
            let stream = match dial(upstream, transport.dial_timeout).await {
                Ok(stream) => stream,
                Err(source) => {
                    pool.record_failure(index);
                    return Err(before_response(UpstreamError::Connect {
                        upstream: upstream.display.clone(),
                        source,
                    }));
                }
            };
            if let Err(source) = write_all(&stream, &out).await {
                return Err(before_response(UpstreamError::Io {
                    upstream: upstream.display.clone(),
                    source,
                }));
            }
            pool.begin_request(index);
            let conn = UpstreamConn { stream, upstream: index, reused: false };
            exchange(client, ctx, pool, request, conn, strip_prefixes).await
        }
        other => other,
    }
}

/// The exchange on a chosen upstream connection whose request head has been written.
async fn exchange<S: Stream>(
    client: &S,
    ctx: &ConnCtx,
    pool: &UpstreamPool,
    request: &mut Request,
    mut conn: UpstreamConn,
    strip_prefixes: &[&str],
) -> Result<Outcome, ForwardError> {
    let upstream_name: &str = &pool.upstream(conn.upstream).display;
    let index = conn.upstream;
    let result =
        exchange_inner(client, ctx, pool, request, &mut conn, strip_prefixes, upstream_name).await;
    pool.end_request(index);
    match result {
        Ok(ExchangeEnd::Done { outcome, reusable }) => {
            if reusable {
                pool.put_idle(conn);
            }
            Ok(outcome)
        }
        Ok(ExchangeEnd::Upgrade { upstream_rest }) => Ok(Outcome {
            keep_alive: false,
            status: 101,
            bytes: 0,
            upgraded: Some(Upgraded { upstream: conn.stream, upstream_rest }),
        }),
        Err(e) => {
            if matches!(e.error, ProxyError::Upstream(_)) && !e.stale_pooled {
                pool.record_failure(index);
            }
            Err(e)
        }
    }
}

async fn exchange_inner<S: Stream>(
    client: &S,
    ctx: &ConnCtx,
    pool: &UpstreamPool,
    request: &mut Request,
    conn: &mut UpstreamConn,
    strip_prefixes: &[&str],
    upstream_name: &str,
) -> Result<ExchangeEnd, ForwardError> {
    let upstream = &conn.stream;
    let upstream_err =
        |source: io::Error| UpstreamError::Io { upstream: upstream_name.to_owned(), source };

    // Request body, watching for an early response.
    let mut response_buf: Vec<u8> = Vec::new();
    let mut framing = match request.head().body {
        RequestBody::None => BodyFraming::Length(0),
        RequestBody::Length(n) => BodyFraming::Length(n),
        RequestBody::Chunked => BodyFraming::Chunked(ChunkedTracker::new()),
    };
    let mut request_complete = true;
    if !framing.is_done_at_start() {
        match send_body(client, upstream, request, &mut framing, &mut response_buf, upstream_name)
            .await
        {
            Ok(BodySent::Complete) => {}
            Ok(BodySent::ResponseArrived) => request_complete = false,
            Err(e) => return Err(e),
        }
    }

    let head = request.head();
    let fctx = ctx.forward_context(request, strip_prefixes, upstream_name);
    let deadline = pool.set.transport.response_header_timeout.map(|t| Instant::now() + t);
    let mut out = Vec::new();
    loop {
        let nothing_received = response_buf.is_empty();
        let response =
            read_response_head(upstream, &mut response_buf, head, deadline, upstream_name)
                .await
                .map_err(|error| {
                    let closed = matches!(
                        error,
                        ProxyError::Upstream(
                            UpstreamError::ClosedEarly { .. } | UpstreamError::Io { .. }
                        )
                    );
                    let mut e = before_response(error);
                    e.stale_pooled =
                        closed && conn.reused && nothing_received && response_buf.is_empty();
                    if e.stale_pooled {
                        tracing::debug!(
                            conn = ctx.id,
                            upstream = upstream_name,
                            "pooled connection was closed by the upstream; retrying on a fresh one"
                        );
                    }
                    e
                })?;
        conn.reused = false;
        out.clear();
        if response.status == 101 && !head.websocket_upgrade {
            return Err(before_response(UpstreamError::UnexpectedUpgrade {
                upstream: upstream_name.to_owned(),
            }));
        }
        if (100..200).contains(&response.status) {
            if response.status != 101 && head.version == Version::Http10 {
                // An HTTP/1.0 client cannot parse interim responses (RFC 9110 §15.2), and it
                // sends its body without waiting for `100 Continue` anyway: drop them.
                response_buf.drain(..response.head_len);
                continue;
            }
            // A 101, or an interim head (100 Continue, 103 Early Hints): pass it on as is
            // (rewritten), then relay or read the next head.
            write_response_head(
                &response_buf,
                &response,
                &pool.set.header_down,
                &fctx,
                false,
                &mut out,
            );
            write_all(client, &out).await.map_err(|e| after_response(ClientError::Io(e)))?;
            if response.status == 101 {
                let upstream_rest = response_buf[response.head_len..].to_vec();
                return Ok(ExchangeEnd::Upgrade { upstream_rest });
            }
            response_buf.drain(..response.head_len);
            continue;
        }
        let close_client =
            !head.keep_alive || !request_complete || response.body == ResponseBody::CloseDelimited;
        write_response_head(
            &response_buf,
            &response,
            &pool.set.header_down,
            &fctx,
            close_client,
            &mut out,
        );
        response_buf.drain(..response.head_len);
        let mut framing = match response.body {
            ResponseBody::None => BodyFraming::Length(0),
            ResponseBody::Length(n) => BodyFraming::Length(n),
            ResponseBody::Chunked => BodyFraming::Chunked(ChunkedTracker::new()),
            ResponseBody::CloseDelimited => BodyFraming::UntilEof,
        };
        // Send the head together with the body bytes already here: one write for small
        // responses.
        let take = match &mut framing {
            BodyFraming::Length(n) => (*n).min(response_buf.len() as u64) as usize,
            _ => 0,
        };
        if take > 0 {
            out.extend_from_slice(&response_buf[..take]);
            response_buf.drain(..take);
            if let BodyFraming::Length(n) = &mut framing {
                *n -= take as u64;
            }
        }
        write_all(client, &out).await.map_err(|e| after_response(ClientError::Io(e)))?;
        let bytes = match pump_body(upstream, client, &mut response_buf, &mut framing).await {
            Ok(n) => n + take as u64,
            Err(PumpError::Destination(e)) => return Err(after_response(ClientError::Io(e))),
            Err(PumpError::SourceClosed) => {
                return Err(after_response(UpstreamError::ClosedEarly {
                    upstream: upstream_name.to_owned(),
                }))
            }
            Err(PumpError::Source(e)) => return Err(after_response(upstream_err(e))),
            Err(PumpError::Framing(source)) => {
                return Err(after_response(UpstreamError::Chunked {
                    upstream: upstream_name.to_owned(),
                    source,
                }))
            }
        };
        let reusable = response.keep_alive
            && request_complete
            && response_buf.is_empty()
            && !matches!(framing, BodyFraming::UntilEof);
        let outcome =
            Outcome { keep_alive: !close_client, status: response.status, bytes, upgraded: None };
        return Ok(ExchangeEnd::Done { outcome, reusable });
    }
}

enum BodySent {
    Complete,
    /// A final response head started arriving before the body was sent; the rest of the body
    /// is abandoned and both connections close after the response.
    ResponseArrived,
}

/// Stream the request body to the upstream. While waiting on the client (or on the upstream's
/// socket buffer), also wait on the upstream's readability: interim `1xx` heads are forwarded
/// to the client as they come (100-continue), a final head ends the upload.
///
/// Only readiness waits sit inside `select!`; bytes are moved outside it, so no branch that
/// loses the race can drop data.
async fn send_body<S: Stream>(
    client: &S,
    upstream: &PlainStream,
    request: &mut Request,
    framing: &mut BodyFraming,
    response_buf: &mut Vec<u8>,
    upstream_name: &str,
) -> Result<BodySent, ForwardError> {
    loop {
        // Bytes already read from the client go first.
        if !request.unread().is_empty() {
            let (n, done) = framing
                .take(request.unread())
                .map_err(|e| before_response(ClientError::Chunked(e)))?;
            let chunk = &request.unread()[..n];
            let head = request.head();
            let sent =
                write_watching(client, upstream, chunk, response_buf, head, upstream_name).await?;
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
        match ready_or_response(client.readable(), upstream, response_buf, upstream_name).await {
            Woke::Ready(Err(e)) => return Err(before_response(ClientError::Io(e))),
            Woke::Ready(Ok(())) => match read_append(client, request, usize::MAX).await {
                Ok(0) => return Err(before_response(ClientError::ClosedMidRequest)),
                Ok(_) => {}
                Err(e) => return Err(before_response(ClientError::Io(e))),
            },
            Woke::Upstream(Err(e)) => return Err(before_response(e)),
            Woke::Upstream(Ok(())) => {
                if let Some(arrived) =
                    forward_interim(client, response_buf, request.head(), upstream_name).await?
                {
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
    upstream: &PlainStream,
    mut chunk: &[u8],
    response_buf: &mut Vec<u8>,
    request: &RequestHead,
    upstream_name: &str,
) -> Result<Option<BodySent>, ForwardError> {
    while !chunk.is_empty() {
        match upstream.try_write(chunk) {
            Ok(n) => chunk = &chunk[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                match ready_or_response(upstream.writable(), upstream, response_buf, upstream_name)
                    .await
                {
                    Woke::Ready(Ok(())) => {}
                    Woke::Ready(Err(_)) => return Ok(Some(BodySent::ResponseArrived)),
                    Woke::Upstream(Err(e)) => return Err(before_response(e)),
                    Woke::Upstream(Ok(())) => {
                        if let Some(arrived) =
                            forward_interim(client, response_buf, request, upstream_name).await?
                        {
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
    response_buf: &mut Vec<u8>,
    request: &RequestHead,
    upstream_name: &str,
) -> Result<Option<BodySent>, ForwardError> {
    loop {
        let head = match parse_response(response_buf, request.method, limits::MAX_RESPONSE_HEAD) {
            Ok(Some(head)) => head,
            Ok(None) => return Ok(None),
            Err(source) => {
                return Err(before_response(UpstreamError::Head {
                    upstream: upstream_name.to_owned(),
                    source,
                }))
            }
        };
        if !(100..200).contains(&head.status) || head.status == 101 {
            return Ok(Some(BodySent::ResponseArrived));
        }
        let interim = response_buf[..head.head_len].to_vec();
        response_buf.drain(..head.head_len);
        write_all(client, &interim).await.map_err(|e| before_response(ClientError::Io(e)))?;
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
    ready: impl std::future::Future<Output = io::Result<()>>,
    upstream: &PlainStream,
    response_buf: &mut Vec<u8>,
    upstream_name: &str,
) -> Woke {
    let ready = pin!(ready);
    let spoke = pin!(wait_for_response(upstream, response_buf, upstream_name));
    monoio::select! {
        r = ready => Woke::Ready(r),
        s = spoke => Woke::Upstream(s),
    }
}

/// Resolve once the upstream has sent bytes (appended to `response_buf`); an EOF is an error.
async fn wait_for_response(
    upstream: &PlainStream,
    response_buf: &mut Vec<u8>,
    upstream_name: &str,
) -> Result<(), ProxyError> {
    match read_append(upstream, response_buf, limits::MAX_RESPONSE_HEAD).await {
        Ok(0) => Err(UpstreamError::ClosedEarly { upstream: upstream_name.to_owned() }.into()),
        Ok(_) => Ok(()),
        Err(source) => Err(UpstreamError::Io { upstream: upstream_name.to_owned(), source }.into()),
    }
}

/// Read until a complete response head is in `buf`.
async fn read_response_head(
    upstream: &PlainStream,
    buf: &mut Vec<u8>,
    request: &RequestHead,
    deadline: Option<Instant>,
    upstream_name: &str,
) -> Result<ResponseHead, ProxyError> {
    loop {
        if !buf.is_empty() {
            match parse_response(buf, request.method, limits::MAX_RESPONSE_HEAD) {
                Ok(Some(head)) => return Ok(head),
                Ok(None) => {}
                Err(source) => {
                    return Err(
                        UpstreamError::Head { upstream: upstream_name.to_owned(), source }.into()
                    )
                }
            }
        }
        // Right after the request went out the answer is almost never there yet: wait for
        // readiness first instead of a read that would only say EAGAIN.
        let fresh = buf.is_empty();
        let read = async {
            if fresh {
                upstream.readable().await?;
            }
            read_append(upstream, buf, limits::MAX_RESPONSE_HEAD).await
        };
        let got = match deadline {
            Some(d) => {
                match monoio::time::timeout(d.saturating_duration_since(Instant::now()), read).await
                {
                    Ok(r) => r,
                    Err(_) => {
                        return Err(UpstreamError::HeaderTimeout {
                            upstream: upstream_name.to_owned(),
                        }
                        .into())
                    }
                }
            }
            None => read.await,
        };
        match got {
            Ok(0) => {
                return Err(
                    UpstreamError::ClosedEarly { upstream: upstream_name.to_owned() }.into()
                );
            }
            Ok(_) => {}
            Err(source) => {
                return Err(UpstreamError::Io { upstream: upstream_name.to_owned(), source }.into())
            }
        }
    }
}
