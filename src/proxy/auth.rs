//! `forward_auth` on the data path: before a request is answered, a bodiless copy of it asks the
//! auth server; a 2xx lets the request on with `copy_headers` set from the auth response, any
//! other answer goes to the client as the auth server gave it, and the request goes no further.
//!
//! The auth request is a request of its own (`auth_request`): `GET` (`HEAD` for a `HEAD`),
//! the `uri` target (with the client's query when it has none), the client's fields without
//! its body's framing or an upgrade, `X-Forwarded-Method` and `X-Forwarded-Uri`. It travels as
//! any proxied request does, through an [`Exchange`] on the auth set's pool (keep-alive,
//! passive health, one replay on a stale connection, the set's timeouts); the exchange knows
//! it is authorizing, so a 2xx is absorbed here (`absorb`) instead of reaching the client, and
//! the auth server's interim heads never do. The client's body, if any, stays unread on its
//! connection for the real upstream.
//!
//! Owns the auth request and what a 2xx becomes. Does not own the exchange itself (`forward`,
//! `response`) or how the client is answered after a failure (the connection driver).

use std::borrow::Cow;

use super::forward::{
    before_response, is_bodyless, Attempt, Ended, Exchange, ForwardError, Outcome,
};
use super::io::{read_append, BodyFraming};
use super::response::body_framing;
use super::ConnCtx;
use crate::config::{CopyHeader, ForwardAuth, HeaderOp, Template, TemplatePart};
use crate::error::{ClientError, UpstreamError};
use crate::http::head::{parse_request, HeadError, Method, ResponseHead, Version};
use crate::http::header_ops::HeaderMiddleware;
use crate::http::request::Request;
use crate::http::template::{render_template, write_target, ForwardContext};
use crate::net::stall::{stalled, Stalled, Stalling};
use crate::net::stream::Stream;

/// The most of a 2xx auth response's body read (and dropped) to keep its connection: an auth
/// answer is a few bytes; past this the connection is not worth the reading and is closed.
const MAX_ABSORBED_BODY: usize = 64 * 1024;

/// Client fields the auth request does not carry: its body's framing (the auth request has no
/// body), `Expect` (nothing to continue), `Upgrade` (the auth request asks, it never switches)
/// and the two fields it sets itself, so a client cannot choose what they say.
const NOT_ASKED: [&str; 6] = [
    "content-length",
    "transfer-encoding",
    "expect",
    "upgrade",
    "x-forwarded-method",
    "x-forwarded-uri",
];

/// What the auth servers said about a request.
pub(super) enum Verdict {
    /// Every auth server answered 2xx: the request goes on with these header ops applied
    /// before its route's own `header_up`.
    Allow(Vec<HeaderOp>),
    /// An auth server answered otherwise, and that answer went to the client.
    Deny(Outcome),
}

/// Ask each of the request's `forward_auth`s, in route order, until one denies.
pub(super) async fn authorize<S: Stream>(
    client: &S,
    ctx: &ConnCtx,
    request: &Request,
    strip_prefixes: &[&str],
    auths: &[&ForwardAuth],
    headers: &HeaderMiddleware<'_>,
) -> Result<Verdict, ForwardError> {
    let mut copied = Vec::new();
    for auth in auths {
        // Boxed: the auth exchange's state would otherwise widen every request's future,
        // guarded or not.
        match Box::pin(ask(client, ctx, request, strip_prefixes, auth, headers)).await? {
            Verdict::Allow(ops) => copied.extend(ops),
            deny @ Verdict::Deny(_) => return Ok(deny),
        }
    }
    Ok(Verdict::Allow(copied))
}

/// The `header_up` ops for the request that goes on: what the middleware added (the auth
/// servers' `copy_headers`, `encode`'s revalidation), then the route's own (Caddy's middleware
/// changes the request before the next handler sees it, so the route's `header_up` runs after
/// them).
pub(super) fn header_up(copied: Vec<HeaderOp>, route: &[HeaderOp]) -> Cow<'_, [HeaderOp]> {
    if copied.is_empty() {
        return Cow::Borrowed(route);
    }
    let mut ops = copied;
    ops.extend_from_slice(route);
    Cow::Owned(ops)
}

async fn ask<S: Stream>(
    client: &S,
    ctx: &ConnCtx,
    request: &Request,
    strip_prefixes: &[&str],
    auth: &ForwardAuth,
    headers: &HeaderMiddleware<'_>,
) -> Result<Verdict, ForwardError> {
    let asked_about = ctx.forward_context(request, strip_prefixes, "");
    let mut asking =
        auth_request(&asked_about, &auth.uri).map_err(|e| before_response(ClientError::Head(e)))?;
    let pool = ctx.snapshot.pools[auth.set].clone();
    let exchange = Exchange {
        client,
        ctx,
        request: &mut asking,
        strip_prefixes: &[],
        pool: &pool,
        max_body: None,
        header_up: &pool.set.header_up,
        authorizing: Some(&auth.copy_headers),
        encode: None,
        // A denial is the client's answer: the route's `header` ops shape it, as in Caddy.
        headers,
    };
    match exchange.forward().await {
        Ok(Outcome { authorized: Some(ops), .. }) => Ok(Verdict::Allow(ops)),
        Ok(denied) => {
            tracing::debug!(conn = ctx.id, status = denied.status, "forward_auth denied");
            Ok(Verdict::Deny(denied))
        }
        Err(mut failed) => {
            // The auth request had no body, but the client's request may: then it is unread.
            failed.request_read &= is_bodyless(request.head());
            Err(failed)
        }
    }
}

/// The auth request for `request`, as a request of its own. Its `keep_alive` says whether the
/// client connection may go on after a denial: not when the client's body is still unread.
fn auth_request(asked_about: &ForwardContext<'_>, uri: &Template) -> Result<Request, HeadError> {
    let (request, strip_prefixes) = (asked_about.request, asked_about.strip_prefixes);
    let (head, buf) = (request.head(), request.head_bytes());
    let mut raw = Vec::with_capacity(head.head_len + 128);
    // Caddy always asks with GET; a HEAD asks with HEAD so that a denial's answer has no body
    // for a client that expects none.
    raw.extend_from_slice(if head.method == Method::Head { b"HEAD " } else { b"GET " });
    let target_start = raw.len();
    render_template(uri, asked_about, &mut raw);
    // As Caddy's rewrite: a `uri` without a query keeps the client's.
    let query = request.query();
    if !raw[target_start..].contains(&b'?') && !query.is_empty() {
        raw.push(b'?');
        raw.extend_from_slice(query);
    }
    raw.extend_from_slice(match head.version {
        Version::Http10 => b" HTTP/1.0\r\n",
        Version::Http11 => b" HTTP/1.1\r\n",
    });
    for field in &head.headers {
        let name = field.name.get(buf);
        if NOT_ASKED.iter().any(|n| name.eq_ignore_ascii_case(n.as_bytes())) {
            continue;
        }
        write_field(&mut raw, name, field.value.get(buf));
    }
    write_field(&mut raw, b"X-Forwarded-Method", request.method_token());
    raw.extend_from_slice(b"X-Forwarded-Uri: ");
    write_target(request, strip_prefixes, &mut raw);
    raw.extend_from_slice(b"\r\n\r\n");
    let Some(mut asking) = parse_request(&raw, raw.len())? else {
        // The head is complete by construction; only a limit could make it otherwise.
        return Err(HeadError::TooLarge);
    };
    asking.keep_alive = head.keep_alive && is_bodyless(head);
    Ok(Request::new(asking, raw))
}

fn write_field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// A 2xx from the auth server: take the copied headers, read its body away (bounded) so the
/// connection can go back to the pool, and tell the exchange the request is allowed.
pub(super) async fn absorb<S: Stream>(
    ex: &Exchange<'_, S>,
    attempt: &mut Attempt<'_>,
    response: &ResponseHead,
    copy_headers: &[CopyHeader],
) -> Result<Ended, ForwardError> {
    let ops = copied_headers(copy_headers, response, &attempt.received);
    attempt.received.drain(..response.head_len);
    let drained = match body_framing(response) {
        // Only its end could end it; the connection is not reusable either way.
        BodyFraming::UntilEof => false,
        framing => discard_body(ex, attempt, framing).await?,
    };
    let reusable = drained && response.keep_alive && attempt.received.is_empty();
    let outcome = Outcome {
        keep_alive: true,
        status: response.status,
        bytes: 0,
        upgraded: None,
        authorized: Some(ops),
    };
    Ok(Ended::Complete { outcome, reusable })
}

/// Read and drop a body; whether it ended within [`MAX_ABSORBED_BODY`].
async fn discard_body<S: Stream>(
    ex: &Exchange<'_, S>,
    attempt: &mut Attempt<'_>,
    mut framing: BodyFraming,
) -> Result<bool, ForwardError> {
    let limit = ex.pool.set.transport.read_timeout;
    let upstream = Stalling::reads(attempt.upstream, limit, &ex.ctx.worker.deadlines);
    let mut dropped = 0;
    loop {
        let (n, done) = framing.take(&attempt.received).map_err(|source| {
            let upstream = attempt.name.to_owned();
            before_response(UpstreamError::Chunked { upstream, source })
        })?;
        attempt.received.drain(..n);
        dropped += n;
        if done {
            return Ok(true);
        }
        if dropped > MAX_ABSORBED_BODY {
            return Ok(false);
        }
        match read_append(&upstream, &mut attempt.received, MAX_ABSORBED_BODY).await {
            Ok(0) => return Err(before_response(attempt.closed_early())),
            Ok(_) => {}
            Err(e) if stalled(&e) == Some(Stalled::Read) => {
                let upstream = attempt.name.to_owned();
                return Err(before_response(UpstreamError::ReadStalled { upstream }));
            }
            Err(e) => return Err(before_response(attempt.io_error(e))),
        }
    }
}

/// For each `copy_headers` entry: set its field to the auth response's value (several fields
/// joined with `,`, as Caddy's placeholder joins them), or remove it when the auth response
/// has none, so that whatever the client sent under that name never goes on (Caddy 2.11).
fn copied_headers(copy: &[CopyHeader], response: &ResponseHead, buf: &[u8]) -> Vec<HeaderOp> {
    copy.iter()
        .map(|c| {
            let value = response.values(buf, &c.from).collect::<Vec<_>>().join(&b","[..]);
            if value.is_empty() {
                return HeaderOp::Remove { name: c.to.clone() };
            }
            let text = String::from_utf8_lossy(&value).into_owned();
            HeaderOp::Set {
                name: c.to.clone(),
                value: Template { parts: vec![TemplatePart::Literal(text)] },
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::head::parse_response;

    fn copy(from: &str, to: &str) -> CopyHeader {
        CopyHeader { from: from.into(), to: to.into() }
    }

    fn set(name: &str, value: &str) -> HeaderOp {
        let value = Template { parts: vec![TemplatePart::Literal(value.into())] };
        HeaderOp::Set { name: name.into(), value }
    }

    fn request(raw: &[u8]) -> Request {
        Request::new(parse_request(raw, 65536).unwrap().unwrap(), raw.to_vec())
    }

    fn asking(raw: &[u8], strip_prefixes: &[&str], uri: &[TemplatePart]) -> Request {
        let original = request(raw);
        let asked_about = ForwardContext {
            request: &original,
            client_ip: "192.0.2.7".parse().unwrap(),
            client_port: 54321,
            trusted_proxy: false,
            scheme: "https",
            upstream_hostport: "",
            strip_prefixes,
        };
        let uri = Template { parts: uri.to_vec() };
        auth_request(&asked_about, &uri).unwrap()
    }

    fn head_text(request: &Request) -> String {
        String::from_utf8_lossy(request.head_bytes()).into_owned()
    }

    #[test]
    fn the_auth_request_is_a_bodiless_get_with_the_clients_fields_and_where_it_was_going() {
        let raw = b"POST /api/upload?x=1 HTTP/1.1\r\nHost: a.test\r\nAuthorization: Bearer t\r\n\
                    Content-Length: 5\r\nExpect: 100-continue\r\nX-Forwarded-Uri: /forged\r\n\
                    x-forwarded-method: GET\r\n\r\nhello";
        let uri = [
            TemplatePart::Literal("/verify?for=".into()),
            TemplatePart::Placeholder(crate::config::Placeholder::Path),
        ];
        let auth = asking(raw, &[], &uri);
        assert_eq!(
            head_text(&auth),
            "GET /verify?for=/api/upload HTTP/1.1\r\nHost: a.test\r\nAuthorization: Bearer t\r\n\
             X-Forwarded-Method: POST\r\nX-Forwarded-Uri: /api/upload?x=1\r\n\r\n"
        );
        let head = auth.head();
        assert_eq!(head.body, crate::http::head::RequestBody::None);
        assert!(!head.keep_alive, "the client's body is unread: a denial ends its connection");
        assert!(auth.unread().is_empty());
    }

    #[test]
    fn an_upgrade_is_asked_about_without_asking_to_switch() {
        let raw = b"GET /chat HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
                    Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: k\r\n\r\n";
        let auth = asking(raw, &[], &[TemplatePart::Literal("/verify".into())]);
        assert!(!auth.head().websocket_upgrade);
        assert!(auth.head().keep_alive);
        assert!(!head_text(&auth).contains("Upgrade: websocket"), "{}", head_text(&auth));
    }

    #[test]
    fn a_head_asks_with_head_and_handle_path_prefixes_are_stripped_from_the_forwarded_uri() {
        let raw = b"HEAD /api/x?q HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\n\r\n";
        let auth = asking(raw, &["/api"], &[TemplatePart::Literal("/verify".into())]);
        let text = head_text(&auth);
        assert!(text.starts_with("HEAD /verify?q HTTP/1.0\r\n"), "{text}");
        assert!(text.contains("X-Forwarded-Method: HEAD\r\nX-Forwarded-Uri: /x?q\r\n"), "{text}");
        assert!(auth.head().keep_alive);
    }

    #[test]
    fn copied_headers_are_set_from_the_auth_response_or_removed_when_it_has_none() {
        let raw = b"HTTP/1.1 200 OK\r\nx-user-id: 42\r\nX-Plan: pro\r\nX-Plan: beta\r\n\
                    X-Empty:\r\nContent-Length: 0\r\n\r\n";
        let response = parse_response(raw, Method::Get, 4096).unwrap().unwrap();
        let copy = [
            copy("X-User-Id", "X-User-Id"),
            copy("X-Plan", "X-User-Plan"),
            copy("X-Missing", "X-Missing"),
            copy("X-Empty", "X-Empty"),
        ];
        assert_eq!(
            copied_headers(&copy, &response, raw),
            [
                set("X-User-Id", "42"),
                set("X-User-Plan", "pro,beta"),
                HeaderOp::Remove { name: "X-Missing".into() },
                HeaderOp::Remove { name: "X-Empty".into() },
            ]
        );
    }

    #[test]
    fn the_route_header_up_runs_after_the_copied_headers() {
        let route = [set("X-Front", "rp")];
        assert!(matches!(header_up(Vec::new(), &route), Cow::Borrowed(_)));
        let ops = header_up(vec![set("X-User-Id", "1")], &route);
        assert_eq!(&*ops, [set("X-User-Id", "1"), set("X-Front", "rp")]);
    }
}
