//! The connection driver: the keep-alive loop of one client connection.
//!
//! ```text
//! accept ─▶ read head ─▶ route ─┬─▶ respond / redir / redirect-to-https ─┐
//!              ▲                └─▶ forward (proxy::forward) ─┬─ done ───┤
//!              │                                              └─ 101 ─▶ relay ─▶ close
//!              └──────────── keep-alive: next request (pipelined bytes stay in `buf`) ◀─┘
//! ```
//!
//! Between routing and the handler, the route's middleware applies: a `forward_auth` asks its
//! auth server first (`proxy::auth`), and its denial is the answer.
//!
//! The read buffer holds only the current head (plus whatever the client sent after it). Once
//! the head is complete the buffer moves into the [`Request`], which keeps the head's bytes for
//! as long as the request is served and hands back what follows them; the buffer is released
//! whenever the connection goes idle, so a quiet keep-alive connection owns no buffer.

use std::future::Future;
use std::time::{Duration, Instant};

use super::access_log;
use super::auth::{self, Verdict};
use super::basic_auth::{self, Credentials};
use super::forward::{Exchange, ForwardError, Outcome, Upgraded};
use super::io::{close_write, lingering_close, read_append, write_all};
use super::middleware::Middleware;
use super::relay::{relay, RelayLimits};
use super::ConnCtx;
use crate::config::route::{resolve, select_site, RequestView};
use crate::config::{BasicAuth, Handler, ListenerKind, Site};
use crate::error::{self, ClientError, ProxyError};
use crate::http::head::{parse_request, Method, RequestBody, RequestHead};
use crate::http::header_ops::{rewrite_own_response, HeaderMiddleware, ResponseOps};
use crate::http::request::Request;
use crate::http::response::{
    write_answer, write_answer_to, write_simple, write_typed, write_unauthorized, Answer,
};
use crate::http::template::render_template;
use crate::net::deadline::Deadlines;
use crate::net::stall::Stalling;
use crate::net::stream::Stream;
use crate::runtime::idle::IdleList;
use crate::runtime::signal::Signal;

/// Path prefix of ACME HTTP-01 challenges (RFC 8555 §8.3).
const ACME_CHALLENGE_PREFIX: &[u8] = b"/.well-known/acme-challenge/";

/// The request as the router sees it.
impl RequestView for Request {
    fn host(&self) -> &str {
        &self.head().host
    }

    fn match_path(&self) -> &str {
        &self.head().match_path
    }

    fn method(&self) -> &str {
        std::str::from_utf8(self.method_token()).unwrap_or("")
    }

    fn header_values(&self, name: &str) -> impl Iterator<Item = &[u8]> {
        let buf = self.head_bytes();
        self.head()
            .headers
            .iter()
            .filter(move |h| h.name.get(buf).eq_ignore_ascii_case(name.as_bytes()))
            .map(move |h| h.value.get(buf))
    }
}

/// Serve one client connection until it closes, errs, or upgrades and the relay ends.
pub fn serve<S: Stream + 'static>(client: S, ctx: ConnCtx) -> impl Future<Output = ()> {
    serve_after(client, ctx, Vec::new())
}

/// [`serve`] a connection whose first bytes were already read off it (`already_read`: what
/// followed its PROXY protocol header); they are the start of its first request.
///
/// An `async` block rather than an `async fn` (here and in `run_relay`): an `async fn` keeps
/// each argument twice in its state (as received and as bound), and this state is what every
/// open connection holds.
#[allow(clippy::manual_async_fn, reason = "an async fn keeps its arguments twice")]
pub fn serve_after<S: Stream + 'static>(
    client: S,
    mut ctx: ConnCtx,
    already_read: Vec<u8>,
) -> impl Future<Output = ()> {
    async move {
        let write_timeout = ctx.snapshot.config.globals.limits.write_timeout;
        let client = Stalling::writes(client, write_timeout, &ctx.worker.deadlines);
        let mut buf: Vec<u8> = already_read;
        let mut first = true;
        loop {
            let limits = &ctx.snapshot.config.globals.limits;
            client.set_write_limit(limits.write_timeout);
            let wait = if first { limits.read_header_timeout } else { limits.idle_timeout };
            let after_response = !first;
            first = false;
            let reading = HeadRead {
                idle_wait: wait,
                header_timeout: limits.read_header_timeout,
                max_head: limits.max_header_bytes,
                after_response,
                draining: &ctx.worker.draining,
                idle: &ctx.worker.idle,
                deadlines: &ctx.worker.deadlines,
            };
            let head = match read_head(&client, &mut buf, reading).await {
                Ok(Some(head)) => head,
                // Idle timeout, the client's EOF, or a graceful stop: a clean end.
                Ok(None) => {
                    close_write(&client, &ctx.worker.deadlines).await;
                    return;
                }
                Err(e) => {
                    let e = ProxyError::Client(e);
                    error::log(&e, ctx.id);
                    if let Some(answer) = error::response_for(&e) {
                        let mut out = Vec::new();
                        write_answer(answer, true, &mut out);
                        if write_all(&client, &out).await.is_ok() {
                            // What the client sent after the bad head is still coming.
                            lingering_close(&client, &ctx.worker.deadlines).await;
                        }
                    }
                    return;
                }
            };
            // A reload since the last request: this one follows the new config.
            follow_reload(&mut ctx);
            let mut request = Request::new(head, std::mem::take(&mut buf));
            // Boxed: the request path's state (heads, rewrite buffers, nested futures) lives on
            // the heap only while a request is in flight, so neither an idle keep-alive connection
            // nor a long-lived WebSocket relay carries it in its task.
            let next = Box::pin(serve_request(&client, &ctx, &mut request)).await;
            // A request body, or requests behind this one, may still be on the way.
            let more_may_follow =
                request.head().body != RequestBody::None || !request.unread().is_empty();
            // The head goes; pipelined bytes (or the client's first relayed bytes) stay.
            let unread = request.into_unread();
            match next {
                Next::Request => {
                    if !unread.is_empty() {
                        buf = unread;
                    }
                    // Otherwise idle: hold no buffer while waiting for the next request.
                }
                Next::Close if more_may_follow => {
                    lingering_close(&client, &ctx.worker.deadlines).await;
                    return;
                }
                Next::Close => {
                    close_write(&client, &ctx.worker.deadlines).await;
                    return;
                }
                Next::Relay(upgraded) => {
                    // A task of its own: the relay, which may live for hours, then holds only its
                    // own state, not this task's (larger) state for reading request heads.
                    monoio::spawn(super::guard::contained(
                        ctx.id,
                        run_relay(client, upgraded, unread, ctx),
                    ));
                    return;
                }
            }
        }
    }
}

/// `client_rest`: bytes the client sent after its upgrade request's head.
#[allow(clippy::manual_async_fn, reason = "an async fn keeps its arguments twice")]
fn run_relay<S: Stream + 'static>(
    client: S,
    upgraded: Upgraded,
    client_rest: Vec<u8>,
    ctx: ConnCtx,
) -> impl Future<Output = ()> {
    async move {
        // The whole context, not only the fields used below: its `open` guard must live as
        // long as the relay (a block captures only the fields it names).
        let ctx = &ctx;
        let limits = &ctx.snapshot.config.globals.limits;
        // The client side's writes are bounded by its own wrapper; an upstream that stops
        // reading is held to the same limit.
        let deadlines = &ctx.worker.deadlines;
        let upstream = Stalling::writes(&upgraded.upstream, limits.write_timeout, deadlines);
        let relay_limits = RelayLimits {
            idle_timeout: limits.relay_idle_timeout,
            stream_timeout: upgraded.stream_timeout,
        };
        let relayed = relay(
            &client,
            &upstream,
            client_rest,
            upgraded.upstream_rest,
            relay_limits,
            &ctx.worker,
        )
        .await;
        if let Err(e) = relayed {
            tracing::debug!(conn = ctx.id, "relay ended: {e}");
        }
    }
}

/// Switch `ctx` to the worker's current snapshot if a reload happened and the connection's
/// listener is still in the config as the same kind; otherwise it keeps its own.
fn follow_reload(ctx: &mut ConnCtx) {
    if ctx.worker.generation() == ctx.snapshot.generation {
        return;
    }
    let kind = ctx.snapshot.config.listeners[ctx.listener].kind;
    if let Some((snapshot, listener)) = ctx.worker.snapshot_for(ctx.bind, kind) {
        ctx.snapshot = snapshot;
        ctx.listener = listener;
    }
}

/// What the connection does after a request.
enum Next {
    Request,
    Close,
    Relay(Upgraded),
}

/// How one head is read.
struct HeadRead<'a> {
    /// How long to wait for the first byte (`read_header` for a new connection, `idle`
    /// between requests).
    idle_wait: Duration,
    header_timeout: Duration,
    max_head: usize,
    after_response: bool,
    /// A graceful stop ends the wait for a request that has not started.
    draining: &'a Signal,
    /// Where a kept-alive connection waits between requests, so it can be shed when
    /// descriptors run out.
    idle: &'a IdleList,
    /// Keeps the idle and header timeouts.
    deadlines: &'a Deadlines,
}

/// Read until a complete head is in `buf`. `Ok(None)` is a clean end: EOF, the idle timeout, or
/// a graceful stop before any byte of a new request.
async fn read_head<S: Stream>(
    client: &S,
    buf: &mut Vec<u8>,
    reading: HeadRead<'_>,
) -> Result<Option<RequestHead>, ClientError> {
    let HeadRead { idle_wait, header_timeout, max_head, after_response, draining, idle, deadlines } =
        reading;
    let mut deadline: Option<Instant> = None;
    loop {
        if !buf.is_empty() {
            if let Some(head) = parse_request(buf, max_head)? {
                return Ok(Some(head));
            }
            if buf.len() >= max_head {
                return Err(ClientError::Head(crate::http::head::HeadError::TooLarge));
            }
        }
        let left = match deadline {
            Some(d) => d.saturating_duration_since(Instant::now()),
            None if buf.is_empty() => idle_wait,
            None => {
                deadline = Some(Instant::now() + header_timeout);
                header_timeout
            }
        };
        if left.is_zero() {
            return Err(ClientError::HeaderTimeout);
        }
        let room = max_head + 1 - buf.len().min(max_head);
        // Between keep-alive requests the next one is rarely there already (pipelined bytes
        // would be in `buf`): wait for readiness first rather than read only to get EAGAIN.
        let wait_first = after_response && buf.is_empty() && deadline.is_none();
        let between_requests = buf.is_empty() && deadline.is_none();
        if between_requests && draining.is_set() {
            return Ok(None);
        }
        // Between requests a graceful stop wins over the wait; a head that has started is
        // read to its end. Both sides are waits (`read_append` is cancel-safe): nothing read
        // is lost to the branch that loses.
        let outcome = {
            let read = std::pin::pin!(async {
                if wait_first {
                    client.readable().await?;
                }
                read_append(client, buf, room).await
            });
            let stopping = std::pin::pin!(async {
                if !between_requests {
                    return std::future::pending().await;
                }
                if !after_response {
                    return draining.wait().await;
                }
                // Kept alive and idle: the first connection to go if descriptors run out.
                let (stop, shed) = (std::pin::pin!(draining.wait()), std::pin::pin!(idle.wait()));
                monoio::select! {
                    () = stop => {}
                    () = shed => {}
                }
            });
            let raced = async {
                monoio::select! {
                    read = read => Some(read),
                    () = stopping => None,
                }
            };
            deadlines.within(left, raced).await
        };
        let read = match outcome {
            Ok(None) => return Ok(None),
            Ok(Some(read)) => Ok(read),
            Err(elapsed) => Err(elapsed),
        };
        match read {
            Ok(Ok(0)) if buf.is_empty() => return Ok(None),
            Ok(Ok(0)) => return Err(ClientError::ClosedMidRequest),
            Ok(Ok(_)) => {
                if deadline.is_none() {
                    deadline = Some(Instant::now() + header_timeout);
                }
            }
            Ok(Err(e)) => return Err(ClientError::Io(e)),
            Err(_) if buf.is_empty() && deadline.is_none() => return Ok(None),
            Err(_) => return Err(ClientError::HeaderTimeout),
        }
    }
}

async fn serve_request<S: Stream>(client: &S, ctx: &ConnCtx, request: &mut Request) -> Next {
    let started = Instant::now();
    let config = &ctx.snapshot.config;
    let listener = &config.listeners[ctx.listener];
    let site = select_site(listener, &request.head().host);
    let handled = handle_request(client, ctx, request, site, listener.kind).await;
    let took = started.elapsed();
    ctx.worker.metrics.request(handled.status, took);
    if let Some(log) = site.and_then(|s| s.access_log.as_ref()) {
        access_log::write(log, ctx, request, handled.status, handled.bytes, took);
    }
    match handled.upgraded {
        Some(upgraded) => Next::Relay(upgraded),
        None if handled.keep_alive && !ctx.worker.draining.is_set() => Next::Request,
        None => Next::Close,
    }
}

/// What happened to one request.
struct Handled {
    keep_alive: bool,
    /// Status sent to the client (0 when none could be sent).
    status: u16,
    /// Response body bytes sent.
    bytes: u64,
    /// A `101` was forwarded: relay next.
    upgraded: Option<Upgraded>,
}

impl Handled {
    /// Nothing could be sent, or the connection cannot go on.
    const CLOSED: Handled = Handled { keep_alive: false, status: 0, bytes: 0, upgraded: None };
}

impl From<Outcome> for Handled {
    fn from(outcome: Outcome) -> Handled {
        Handled {
            keep_alive: outcome.keep_alive,
            status: outcome.status,
            bytes: outcome.bytes,
            upgraded: outcome.upgraded,
        }
    }
}

async fn handle_request<S: Stream>(
    client: &S,
    ctx: &ConnCtx,
    request: &mut Request,
    site: Option<&Site>,
    kind: ListenerKind,
) -> Handled {
    if let Some(answer) = acme_http_challenge(ctx, request, kind) {
        let own = answer_direct(ctx, request.head(), 200, None, answer.as_bytes());
        return finish_direct(client, own.out, own.close, 200, own.bytes).await;
    }
    if let Some(required) = site.and_then(|s| s.tls_options.client_auth.as_ref()) {
        // The Host header can name any site on the listener, whatever the handshake was for:
        // a site that verifies client certificates is only served on a connection whose
        // handshake verified them under its policy (Caddy's strict_sni_host, which it turns
        // on with client_auth). A reload that changed the policy catches kept-alive
        // connections here too.
        if ctx.client_auth.as_deref() != Some(required) {
            return refuse(client, request.head(), Answer::MisdirectedRequest).await;
        }
    }
    let (handler, strip, middleware) = match site.map(|site| resolve(site, &*request)) {
        Some(found) => (found.handler, found.strip_prefixes, Middleware::of(&found.middleware)),
        None => (None, Vec::new(), Middleware::default()),
    };
    let headers = &middleware.headers;
    if let Some(refused) = guard(client, ctx, request, &middleware.basic_auths).await {
        return refused;
    }
    let auths = &middleware.forward_auths;
    let copied = match auth::authorize(client, ctx, request, &strip, auths, headers).await {
        Ok(Verdict::Allow(copied)) => copied,
        Ok(Verdict::Deny(answered)) => return Handled::from(answered),
        Err(e) => return answer_failure(client, ctx, request, &strip, headers, e).await,
    };
    match handler {
        Some(Handler::Proxy(index)) => {
            let max_body = middleware.max_body;
            if let (Some(max), RequestBody::Length(declared)) = (max_body, request.head().body) {
                if declared > max {
                    // Refused before the upstream sees a byte; the body is still coming, so
                    // the connection ends (with a lingering close).
                    let mut out = Vec::new();
                    write_answer_to(Answer::ContentTooLarge, head_only(request), true, &mut out);
                    shape(&mut out, &headers.immediate_only(), ctx, request, &strip);
                    let sent = write_all(client, &out).await.is_ok();
                    let status = if sent { Answer::ContentTooLarge.status() } else { 0 };
                    return Handled { status, ..Handled::CLOSED };
                }
            }
            let pool = ctx.snapshot.pools[*index].clone();
            // What the middleware adds to the request goes first: `copy_headers`, then
            // `encode`'s revalidation; the route's own `header_up` runs after them.
            let mut added = copied;
            added.extend(middleware.revalidation_op(request));
            let header_up = auth::header_up(added, &pool.set.header_up);
            let exchange = Exchange {
                client,
                ctx,
                request,
                strip_prefixes: &strip,
                pool: &pool,
                max_body,
                header_up: &header_up,
                authorizing: None,
                encode: middleware.encode,
                headers,
            };
            match exchange.forward().await {
                Ok(outcome) => Handled::from(outcome),
                Err(e) => answer_failure(client, ctx, request, &strip, headers, e).await,
            }
        }
        Some(Handler::Respond { status, body }) => {
            let mut rendered = Vec::new();
            render_template(body, &ctx.forward_context(request, &strip, ""), &mut rendered);
            let mut own = answer_direct(ctx, request.head(), *status, None, &rendered);
            shape(&mut own.out, headers, ctx, request, &strip);
            finish_direct(client, own.out, own.close, *status, own.bytes).await
        }
        Some(Handler::Redirect { to, status }) => {
            let mut location = Vec::new();
            render_template(to, &ctx.forward_context(request, &strip, ""), &mut location);
            let mut own = answer_direct(ctx, request.head(), *status, Some(&location), b"");
            shape(&mut own.out, headers, ctx, request, &strip);
            finish_direct(client, own.out, own.close, *status, own.bytes).await
        }
        Some(Handler::HttpsRedirect { port }) => https_redirect(client, request, *port).await,
        Some(Handler::Metrics) => {
            let text = ctx.worker.render_metrics();
            let head = request.head();
            let close =
                !head.keep_alive || head.body != RequestBody::None || ctx.worker.draining.is_set();
            let head_only = head.method == Method::Head;
            let mut out = Vec::with_capacity(text.len() + 160);
            let kind = crate::metrics::export::CONTENT_TYPE;
            write_typed(200, None, kind, text.as_bytes(), head_only, close, &mut out);
            shape(&mut out, headers, ctx, request, &strip);
            let bytes = if head_only { 0 } else { text.len() as u64 };
            finish_direct(client, out, close, 200, bytes).await
        }
        Some(Handler::FileServer(server)) => {
            serve_files(client, ctx, request, &strip, &middleware, server).await
        }
        // Middleware never ends a route chain (see `route::resolve`).
        Some(
            Handler::Subroute { .. }
            | Handler::RequestBody { .. }
            | Handler::Header(_)
            | Handler::BasicAuth(_)
            | Handler::ForwardAuth(_)
            | Handler::Encode(_)
            | Handler::Root(_)
            | Handler::TryFiles(_),
        )
        | None => {
            let head = request.head();
            let close =
                !head.keep_alive || head.body != RequestBody::None || ctx.worker.draining.is_set();
            let mut out = Vec::new();
            write_answer(Answer::EmptyOk, close, &mut out);
            // Caddy finishes this answer past every handler: only immediate ops reach it.
            shape(&mut out, &headers.immediate_only(), ctx, request, &strip);
            finish_direct(client, out, close, 200, 0).await
        }
    }
}

/// Check the request against each `basic_auth`, in route order: the first that refuses
/// answers the request.
async fn guard<S: Stream>(
    client: &S,
    ctx: &ConnCtx,
    request: &Request,
    basic_auths: &[&BasicAuth],
) -> Option<Handled> {
    for auth in basic_auths {
        match basic_auth::check(auth, request, &ctx.worker.password_checks).await {
            Credentials::Accepted => {}
            Credentials::Refused => return Some(unauthorized(client, ctx, request, auth).await),
            Credentials::Unchecked => {
                return Some(refuse(client, request.head(), Answer::ServiceUnavailable).await);
            }
        }
    }
    None
}

/// `401` for `basic_auth`; the connection goes on unless a request body is on its way.
async fn unauthorized<S: Stream>(
    client: &S,
    ctx: &ConnCtx,
    request: &Request,
    auth: &BasicAuth,
) -> Handled {
    let head = request.head();
    let close = !head.keep_alive || head.body != RequestBody::None || ctx.worker.draining.is_set();
    let mut out = Vec::new();
    write_unauthorized(&auth.realm, head.method == Method::Head, close, &mut out);
    let bytes = if head.method == Method::Head { 0 } else { out.len() as u64 };
    finish_direct(client, out, close, 401, bytes).await
}

/// Answer a failed exchange with the error's status when no response byte reached the client
/// yet; otherwise (or when the error has no answer) the connection just ends.
async fn answer_failure<S: Stream>(
    client: &S,
    ctx: &ConnCtx,
    request: &Request,
    strip: &[&str],
    headers: &HeaderMiddleware<'_>,
    e: ForwardError,
) -> Handled {
    let head = request.head();
    error::log(&e.error, ctx.id);
    if e.response_started {
        return Handled::CLOSED;
    }
    let Some(answer) = error::response_for(&e.error) else {
        return Handled::CLOSED;
    };
    // After an upstream's failure the client did nothing wrong: when its request was read
    // whole, the connection goes on (as in Caddy and nginx).
    let keep_alive = e.request_read
        && head.keep_alive
        && matches!(e.error, ProxyError::Upstream(_))
        && !ctx.worker.draining.is_set();
    let mut out = Vec::new();
    write_answer_to(answer, head.method == Method::Head, !keep_alive, &mut out);
    // Caddy writes an error answer past the deferring handlers: only immediate ops reach it.
    shape(&mut out, &headers.immediate_only(), ctx, request, strip);
    if write_all(client, &out).await.is_err() {
        return Handled::CLOSED;
    }
    Handled { keep_alive, status: answer.status(), bytes: 0, upgraded: None }
}

/// `file_server` (see `crate::files`). As for our other answers, a request with a body closes
/// the connection afterwards: the body is never read.
async fn serve_files<S: Stream>(
    client: &S,
    ctx: &ConnCtx,
    request: &Request,
    strip: &[&str],
    middleware: &Middleware<'_>,
    server: &crate::config::files::FileServer,
) -> Handled {
    let head = request.head();
    let close = !head.keep_alive || head.body != RequestBody::None || ctx.worker.draining.is_set();
    let headers = &middleware.headers;
    let files = &middleware.files;
    let shape_head = |out: &mut Vec<u8>, error: bool| match error {
        true => shape(out, &headers.immediate_only(), ctx, request, strip),
        false => shape(out, headers, ctx, request, strip),
    };
    let served =
        crate::files::serve(client, request, strip, files, server, close, &shape_head).await;
    let keep_alive = served.complete && !close;
    Handled { keep_alive, status: served.status, bytes: served.bytes, upgraded: None }
}

/// Applies `headers` to a response this proxy wrote into `out`; nothing to do without them.
fn shape(
    out: &mut Vec<u8>,
    headers: &HeaderMiddleware<'_>,
    ctx: &ConnCtx,
    request: &Request,
    strip: &[&str],
) {
    if headers.is_empty() {
        return;
    }
    let ops = ResponseOps { immediate: &headers.immediate, down: &[], deferred: &headers.deferred };
    rewrite_own_response(out, 0, ops, &ctx.forward_context(request, strip, ""));
}

fn head_only(request: &Request) -> bool {
    request.head().method == Method::Head
}

/// Answer `answer` and end the connection.
async fn refuse<S: Stream>(client: &S, head: &RequestHead, answer: Answer) -> Handled {
    let mut out = Vec::new();
    write_answer_to(answer, head.method == Method::Head, true, &mut out);
    let sent = write_all(client, &out).await.is_ok();
    Handled { status: if sent { answer.status() } else { 0 }, ..Handled::CLOSED }
}

/// `308` to the same target on `https://`, then close.
async fn https_redirect<S: Stream>(client: &S, request: &Request, port: Option<u16>) -> Handled {
    let head = request.head();
    let mut location = Vec::with_capacity(64);
    location.extend_from_slice(b"https://");
    if head.host.contains(':') {
        // IPv6 literal.
        location.push(b'[');
        location.extend_from_slice(head.host.as_bytes());
        location.push(b']');
    } else {
        location.extend_from_slice(head.host.as_bytes());
    }
    if let Some(port) = port {
        location.extend_from_slice(format!(":{port}").as_bytes());
    }
    location.extend_from_slice(request.target());
    let mut out = Vec::new();
    write_simple(308, Some(&location), b"", head.method == Method::Head, true, &mut out);
    let sent = write_all(client, &out).await.is_ok();
    Handled { status: if sent { 308 } else { 0 }, ..Handled::CLOSED }
}

/// The key authorization for an ACME HTTP-01 request, if this is one we hold a token for.
/// Served on plaintext listeners (the redirect listener included) before any route.
fn acme_http_challenge(
    ctx: &ConnCtx,
    request: &Request,
    kind: ListenerKind,
) -> Option<std::sync::Arc<str>> {
    if kind == ListenerKind::Tls {
        return None;
    }
    let certs = ctx.snapshot.certs.as_ref()?;
    let token = request.path().strip_prefix(ACME_CHALLENGE_PREFIX)?;
    certs.http_challenge(std::str::from_utf8(token).ok()?)
}

/// A response of our own, written but not yet sent.
struct OwnAnswer {
    out: Vec<u8>,
    /// The connection closes after it.
    close: bool,
    /// Body bytes it sends.
    bytes: u64,
}

/// Answer a request ourselves. A request that carries a body gets `Connection: close`: we do
/// not read bodies we have no use for, so the connection cannot be reused.
fn answer_direct(
    ctx: &ConnCtx,
    head: &RequestHead,
    status: u16,
    location: Option<&[u8]>,
    body: &[u8],
) -> OwnAnswer {
    let close = !head.keep_alive || head.body != RequestBody::None || ctx.worker.draining.is_set();
    let mut out = Vec::new();
    write_simple(status, location, body, head.method == Method::Head, close, &mut out);
    let bytes = if head.method == Method::Head { 0 } else { body.len() as u64 };
    OwnAnswer { out, close, bytes }
}

async fn finish_direct<S: Stream>(
    client: &S,
    out: Vec<u8>,
    close: bool,
    status: u16,
    bytes: u64,
) -> Handled {
    if write_all(client, &out).await.is_err() {
        return Handled::CLOSED;
    }
    Handled { keep_alive: !close, status, bytes, upgraded: None }
}
