//! The response half of an exchange: read the upstream's response heads, pass interim ones on
//! (or drop them for HTTP/1.0 clients), stop at a `101` for the relay, and deliver the final
//! response: its head rewritten, its body streamed by its framing.
//!
//! What to do with a head ([`next_step`]) and how a final response is delivered
//! ([`plan_delivery`]) are pure decisions, tested at the bottom.
//!
//! Owns reading and forwarding the response. Does not own the upload before it (`upload`) or
//! what becomes of the upstream connection afterwards (`forward`, from [`Ended`]).

use std::time::Instant;

use super::encoded::{pump_encoded, EncodedFraming};
use super::forward::{
    after_response, before_response, Attempt, Ended, Exchange, ForwardError, Outcome,
};
use super::io::{pump_body, read_append, write_all, BodyFraming, PumpError};
use super::upload::BodySent;
use crate::config::{limits, upstream_hostport, Coding, Encode};
use crate::error::{ClientError, ProxyError, UpstreamError};
use crate::http::chunked::ChunkedTracker;
use crate::http::encode::{self, Reencoding, ResponseFacts, StreamEncoder};
use crate::http::head::{parse_response, Method, RequestHead, ResponseBody, ResponseHead, Version};
use crate::http::header_ops::ResponseOps;
use crate::http::rewrite::{write_encoded_response_head, write_response_head_with};
use crate::http::upgrade::check_switch;
use crate::net::deadline::Deadlines;
use crate::net::stall::{stalled, Stalled, Stalling};
use crate::net::stream::Stream;

/// What to do with a response head that came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// A `101` to a request that did not ask to upgrade: 502.
    RefuseUpgrade,
    /// Interim heads mean nothing to an HTTP/1.0 client (RFC 9110 §15.2), which sends its body
    /// without waiting for `100 Continue` anyway.
    DropInterim,
    /// `100 Continue`, `103 Early Hints`…: forward (rewritten), then read the next head.
    PassInterim,
    /// Forward the `101`, then relay.
    Upgrade,
    /// The final response.
    Deliver,
}

fn next_step(request: &RequestHead, response: &ResponseHead) -> Step {
    match response.status {
        101 if !request.websocket_upgrade => Step::RefuseUpgrade,
        101 => Step::Upgrade,
        100..=199 if request.version == Version::Http10 => Step::DropInterim,
        100..=199 => Step::PassInterim,
        _ => Step::Deliver,
    }
}

/// How a final response is delivered, decided from both heads before any byte of it is
/// forwarded.
#[derive(Debug)]
struct Delivery {
    /// The client connection closes after this response (and the client is told so).
    close_client: bool,
    /// How the body is delimited, on the upstream connection and so to the client.
    framing: BodyFraming,
    /// The upstream connection may go back to the pool if the body then ends cleanly with
    /// nothing after it.
    upstream_reusable: bool,
}

fn plan_delivery(request: &RequestHead, sent: BodySent, response: &ResponseHead) -> Delivery {
    let request_complete = sent == BodySent::Complete;
    let framing = body_framing(response);
    let close_delimited = matches!(framing, BodyFraming::UntilEof);
    Delivery {
        // An abandoned upload leaves the rest of its body unread on the client connection.
        close_client: !request.keep_alive || !request_complete || close_delimited,
        // An upstream that refused an upgrade may still expect to switch, or have read the
        // request differently: its connection is not worth the doubt.
        upstream_reusable: response.keep_alive
            && request_complete
            && !close_delimited
            && !request.websocket_upgrade,
        framing,
    }
}

/// How a response's body is delimited on the upstream connection.
pub(super) fn body_framing(response: &ResponseHead) -> BodyFraming {
    match response.body {
        ResponseBody::None => BodyFraming::Length(0),
        ResponseBody::Length(n) => BodyFraming::Length(n),
        ResponseBody::Chunked => BodyFraming::Chunked(ChunkedTracker::new()),
        ResponseBody::CloseDelimited => BodyFraming::UntilEof,
    }
}

impl<'a, S> Exchange<'a, S> {
    /// The ops for this exchange's response heads: the route's `header` ones around
    /// `header_down`.
    fn response_ops(&self) -> ResponseOps<'_, '_> {
        let (headers, down) = (self.headers, &self.pool.set.header_down);
        ResponseOps { immediate: &headers.immediate, down, deferred: &headers.deferred }
    }
}

/// Read and forward the response to a request whose body went out as `sent`.
pub(super) async fn receive<S: Stream>(
    ex: &Exchange<'_, S>,
    attempt: &mut Attempt<'_>,
    sent: BodySent,
) -> Result<Ended, ForwardError> {
    let request = ex.request.head();
    let ctx = ex.forward_context(upstream_hostport(attempt.name));
    let ops = ex.response_ops();
    let deadline = ex.pool.set.transport.response_header_timeout.map(|t| Instant::now() + t);
    let mut out = Vec::new();
    loop {
        let response =
            read_response_head(attempt, request.method, deadline, &ex.ctx.worker.deadlines)
                .await
                .map_err(before_response)?;
        attempt.head_seen = true;
        let step = next_step(request, &response);
        match step {
            Step::RefuseUpgrade => {
                let upstream = attempt.name.to_owned();
                return Err(before_response(UpstreamError::UnexpectedUpgrade { upstream }));
            }
            Step::DropInterim => {}
            // The auth server's interim heads are not the client's business.
            Step::PassInterim if ex.authorizing.is_some() => {}
            Step::Upgrade => {
                let keys = ex.request.values("sec-websocket-key");
                if let Err(reason) = check_switch(keys, &response, &attempt.received) {
                    let upstream = attempt.name.to_owned();
                    return Err(before_response(UpstreamError::BadUpgrade { upstream, reason }));
                }
                out.clear();
                write_response_head_with(&attempt.received, &response, ops, &ctx, false, &mut out);
                write_all(ex.client, &out)
                    .await
                    .map_err(|e| after_response(ClientError::from_io(e)))?;
            }
            Step::PassInterim => {
                // Interim heads get header_down only: the `header` ops are for the response.
                let interim = ResponseOps { down: &ex.pool.set.header_down, ..ResponseOps::NONE };
                out.clear();
                write_response_head_with(
                    &attempt.received,
                    &response,
                    interim,
                    &ctx,
                    false,
                    &mut out,
                );
                write_all(ex.client, &out)
                    .await
                    .map_err(|e| after_response(ClientError::from_io(e)))?;
            }
            Step::Deliver => {
                if let Some(copy) = ex.authorizing.filter(|_| response.status / 100 == 2) {
                    return super::auth::absorb(ex, attempt, &response, copy).await;
                }
                let delivery = plan_delivery(request, sent, &response);
                return deliver(ex, attempt, &response, delivery, out).await;
            }
        }
        attempt.received.drain(..response.head_len);
        if step == Step::Upgrade {
            return Ok(Ended::Upgraded { upstream_rest: std::mem::take(&mut attempt.received) });
        }
    }
}

/// Forward the final response: its head (with the body bytes already here, in one write for
/// small responses), then the rest of the body.
async fn deliver<S: Stream>(
    ex: &Exchange<'_, S>,
    attempt: &mut Attempt<'_>,
    response: &ResponseHead,
    delivery: Delivery,
    mut out: Vec<u8>,
) -> Result<Ended, ForwardError> {
    let Delivery { close_client, mut framing, upstream_reusable } = delivery;
    // A stopping worker ends each kept-alive connection after its current response.
    let close_client = close_client || ex.ctx.worker.draining.is_set();
    let (client, ops) = (ex.client, ex.response_ops());
    out.clear();
    // Room for the rewritten head and the body bytes behind it, so that writing the head does
    // not grow the buffer field by field.
    out.reserve(attempt.received.len() + 64);
    let ctx = ex.forward_context(upstream_hostport(attempt.name));
    if let Some(coding) = ex.encode.and_then(|encode| encoding_for(ex, encode, response, attempt)) {
        // An HTTP/1.0 client reads no chunks: its body ends with the connection.
        let chunked = ex.request.head().version != Version::Http10;
        let encoding = Reencoding { coding, chunked };
        let received = &attempt.received;
        write_encoded_response_head(
            received,
            response,
            ops,
            &ctx,
            close_client,
            encoding,
            &mut out,
        );
        attempt.received.drain(..response.head_len);
        let plan = Delivery { close_client, framing, upstream_reusable };
        // Boxed: the encoder's state would otherwise widen every request's future (and the
        // heap's holes left by it stay behind every idle WebSocket; see docs/benchmarks.md).
        // A compressed response pays one allocation, beside the encoder's own.
        return Box::pin(deliver_encoded(ex, attempt, response, encoding, out, plan)).await;
    }
    write_response_head_with(&attempt.received, response, ops, &ctx, close_client, &mut out);
    attempt.received.drain(..response.head_len);
    let take = match &mut framing {
        BodyFraming::Length(n) => {
            let take = (*n).min(attempt.received.len() as u64);
            *n -= take;
            take as usize
        }
        _ => 0,
    };
    out.extend_from_slice(&attempt.received[..take]);
    attempt.received.drain(..take);
    write_all(client, &out).await.map_err(|e| after_response(ClientError::from_io(e)))?;
    drop(out);
    // Each wait for more of the body is bounded: an upstream that stops sending mid-body would
    // otherwise hold the client, and both connections, for good.
    let limit = ex.pool.set.transport.read_timeout;
    let upstream = Stalling::reads(attempt.upstream, limit, &ex.ctx.worker.deadlines);
    let pumped = pump_body(&upstream, client, &mut attempt.received, &mut framing).await;
    let bytes = pumped.map_err(|e| pump_failed(attempt, e))? + take as u64;
    let outcome = Outcome {
        keep_alive: !close_client,
        status: response.status,
        bytes,
        upgraded: None,
        authorized: None,
    };
    let reusable = upstream_reusable && attempt.received.is_empty();
    Ok(Ended::Complete { outcome, reusable })
}

/// The coding `encode` gives this response, if the client accepts one and the response
/// qualifies (`http::encode`). A `HEAD` is answered with the upstream's head as it is.
fn encoding_for<S: Stream>(
    ex: &Exchange<'_, S>,
    encode: &Encode,
    response: &ResponseHead,
    attempt: &Attempt<'_>,
) -> Option<Coding> {
    let request = ex.request.head();
    if request.method == Method::Head || response.body == ResponseBody::None {
        return None;
    }
    let coding = encode::choose_for(encode, ex.request)?;
    let buf = &attempt.received;
    let field = |name: &'static str| {
        response
            .headers
            .iter()
            .filter(move |h| h.name.get(buf).eq_ignore_ascii_case(name.as_bytes()))
            .map(move |h| h.value.get(buf))
    };
    let facts = ResponseFacts {
        status: response.status,
        content_type: field("content-type").next(),
        already_encoded: field("content-encoding").next().is_some(),
        no_transform: field("cache-control")
            .any(|v| v.windows(12).any(|w| w.eq_ignore_ascii_case(b"no-transform"))),
        content_length: match response.body {
            ResponseBody::Length(n) => Some(n),
            _ => None,
        },
    };
    encode::qualifies(encode, &facts).then_some(coding)
}

/// Forward the final response compressed as `encoding` says: its `head`, written for it, then
/// the body through the encoder (`encoded`). The upstream connection is reusable as for any
/// body read to its end.
async fn deliver_encoded<S: Stream>(
    ex: &Exchange<'_, S>,
    attempt: &mut Attempt<'_>,
    response: &ResponseHead,
    encoding: Reencoding,
    head: Vec<u8>,
    plan: Delivery,
) -> Result<Ended, ForwardError> {
    let Delivery { close_client, mut framing, upstream_reusable } = plan;
    let Reencoding { coding, chunked } = encoding;
    let encode = ex.encode.unwrap_or_else(|| unreachable!("chosen from ex.encode"));
    write_all(ex.client, &head).await.map_err(|e| after_response(ClientError::from_io(e)))?;
    let encoder = StreamEncoder::new(coding, encode).map_err(|e| {
        tracing::error!(conn = ex.ctx.id, "cannot start a {} encoder: {e}", coding.token());
        after_response(ClientError::from_io(e))
    })?;
    let delimit = if chunked { EncodedFraming::Chunked } else { EncodedFraming::UntilClose };
    let limit = ex.pool.set.transport.read_timeout;
    let upstream = Stalling::reads(attempt.upstream, limit, &ex.ctx.worker.deadlines);
    let pumped =
        pump_encoded(&upstream, ex.client, &mut attempt.received, &mut framing, encoder, delimit)
            .await;
    let bytes = pumped.map_err(|e| pump_failed(attempt, e))?;
    let keep_alive = !close_client && chunked;
    let outcome =
        Outcome { keep_alive, status: response.status, bytes, upgraded: None, authorized: None };
    let reusable = upstream_reusable && attempt.received.is_empty();
    Ok(Ended::Complete { outcome, reusable })
}

/// The error for a body that could not be forwarded to its end (the response has started).
fn pump_failed(attempt: &Attempt<'_>, error: PumpError) -> ForwardError {
    match error {
        PumpError::Destination(e) => after_response(ClientError::from_io(e)),
        PumpError::SourceClosed => after_response(attempt.closed_early()),
        PumpError::Source(e) if stalled(&e) == Some(Stalled::Read) => {
            let upstream = attempt.name.to_owned();
            after_response(UpstreamError::ReadStalled { upstream })
        }
        PumpError::Source(e) => after_response(attempt.io_error(e)),
        PumpError::Framing(source) => {
            let upstream = attempt.name.to_owned();
            after_response(UpstreamError::Chunked { upstream, source })
        }
    }
}

/// Read until a complete response head is in `attempt.received`.
async fn read_response_head(
    attempt: &mut Attempt<'_>,
    method: Method,
    deadline: Option<Instant>,
    deadlines: &Deadlines,
) -> Result<ResponseHead, ProxyError> {
    loop {
        if !attempt.received.is_empty() {
            match parse_response(&attempt.received, method, limits::MAX_RESPONSE_HEAD) {
                Ok(Some(head)) => return Ok(head),
                Ok(None) => {}
                Err(source) => {
                    let upstream = attempt.name.to_owned();
                    return Err(UpstreamError::Head { upstream, source }.into());
                }
            }
        }
        // Right after the request went out the answer is almost never there yet: wait for
        // readiness first instead of a read that would only say EAGAIN.
        let fresh = attempt.received.is_empty();
        let upstream = attempt.upstream;
        let received = &mut attempt.received;
        let read = async {
            if fresh {
                upstream.readable().await?;
            }
            read_append(upstream, received, limits::MAX_RESPONSE_HEAD).await
        };
        let got = match deadline {
            Some(d) => match deadlines.until(d, read).await {
                Ok(got) => got,
                Err(_) => {
                    let upstream = attempt.name.to_owned();
                    return Err(UpstreamError::HeaderTimeout { upstream }.into());
                }
            },
            None => read.await,
        };
        match got {
            Ok(0) => return Err(attempt.closed_early().into()),
            Ok(_) => {}
            Err(source) => return Err(attempt.io_error(source).into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::head::parse_request;

    fn parse(raw: &str) -> RequestHead {
        parse_request(raw.as_bytes(), 4096).unwrap().unwrap()
    }

    fn response(raw: &str, request: &RequestHead) -> ResponseHead {
        parse_response(raw.as_bytes(), request.method, 4096).unwrap().unwrap()
    }

    const GET: &str = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    const GET_10: &str = "GET / HTTP/1.0\r\n\r\n";
    const WEBSOCKET: &str =
        "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n";
    const SWITCHING: &str =
        "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n";

    #[test]
    fn each_response_head_gets_its_step() {
        let cases = [
            (GET, "HTTP/1.1 100 Continue\r\n\r\n", Step::PassInterim),
            (GET, "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n", Step::PassInterim),
            (GET_10, "HTTP/1.1 100 Continue\r\n\r\n", Step::DropInterim),
            (WEBSOCKET, SWITCHING, Step::Upgrade),
            (GET, SWITCHING, Step::RefuseUpgrade),
            (GET_10, SWITCHING, Step::RefuseUpgrade),
            (GET, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", Step::Deliver),
            (WEBSOCKET, "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n", Step::Deliver),
        ];
        for (req, resp, want) in cases {
            let request = parse(req);
            assert_eq!(next_step(&request, &response(resp, &request)), want, "{req:?} / {resp:?}");
        }
    }

    #[test]
    fn a_complete_keep_alive_exchange_keeps_both_connections() {
        let request = parse(GET);
        let resp = response("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", &request);
        let delivery = plan_delivery(&request, BodySent::Complete, &resp);
        assert!(!delivery.close_client);
        assert!(delivery.upstream_reusable);
        assert!(matches!(delivery.framing, BodyFraming::Length(5)));
    }

    #[test]
    fn response_bodies_are_framed_as_their_heads_say() {
        let request = parse(GET);
        let chunked = response("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", &request);
        assert!(matches!(
            plan_delivery(&request, BodySent::Complete, &chunked).framing,
            BodyFraming::Chunked(_)
        ));
        let empty = response("HTTP/1.1 204 No Content\r\n\r\n", &request);
        let delivery = plan_delivery(&request, BodySent::Complete, &empty);
        assert!(matches!(delivery.framing, BodyFraming::Length(0)));
        assert!(delivery.upstream_reusable);
        let head = parse_request(b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n", 4096).unwrap().unwrap();
        let sized = response("HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n", &head);
        assert!(matches!(
            plan_delivery(&head, BodySent::Complete, &sized).framing,
            BodyFraming::Length(0)
        ));
    }

    #[test]
    fn a_close_delimited_body_closes_both_connections() {
        let request = parse(GET);
        let resp = response("HTTP/1.1 200 OK\r\n\r\n", &request);
        let delivery = plan_delivery(&request, BodySent::Complete, &resp);
        assert!(matches!(delivery.framing, BodyFraming::UntilEof));
        assert!(delivery.close_client);
        assert!(!delivery.upstream_reusable);
    }

    #[test]
    fn an_abandoned_upload_closes_both_connections() {
        let request = parse("PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 9000\r\n\r\n");
        let resp = response("HTTP/1.1 413 Too Large\r\nContent-Length: 0\r\n\r\n", &request);
        let delivery = plan_delivery(&request, BodySent::ResponseArrived, &resp);
        assert!(delivery.close_client);
        assert!(!delivery.upstream_reusable);
    }

    #[test]
    fn a_refused_upgrade_keeps_the_client_and_drops_the_upstream_connection() {
        let request = parse(WEBSOCKET);
        let resp = response("HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n", &request);
        let delivery = plan_delivery(&request, BodySent::Complete, &resp);
        assert!(!delivery.close_client);
        assert!(!delivery.upstream_reusable);
    }

    #[test]
    fn either_side_asking_to_close_is_honoured_on_its_own_connection() {
        let closing_client = parse("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
        let resp = response("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n", &closing_client);
        let delivery = plan_delivery(&closing_client, BodySent::Complete, &resp);
        assert!(delivery.close_client);
        assert!(delivery.upstream_reusable);

        let request = parse(GET);
        let closing_upstream =
            response("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\n", &request);
        let delivery = plan_delivery(&request, BodySent::Complete, &closing_upstream);
        assert!(!delivery.close_client);
        assert!(!delivery.upstream_reusable);

        let http10 = parse(GET_10);
        let resp = response("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n", &http10);
        assert!(plan_delivery(&http10, BodySent::Complete, &resp).close_client);
    }
}
