//! Head rewriting between client and upstream: hop-by-hop removal, X-Forwarded-*, header_up /
//! header_down, prefix stripping, template rendering. OWNER: http helper.

use std::net::IpAddr;

use super::head::{RequestHead, ResponseHead};
use crate::config::{HeaderOp, Template};

/// Request-scoped values placeholders and X-Forwarded-* are filled from.
#[derive(Debug, Clone, Copy)]
pub struct ForwardContext<'a> {
    pub client_ip: IpAddr,
    pub client_port: u16,
    /// `http` or `https`: the scheme the client used to reach us.
    pub scheme: &'static str,
    /// The upstream chosen for this request, as configured (`localhost:8080`).
    pub upstream_hostport: &'a str,
    /// Prefixes removed by `handle_path`, outermost first (lower-case).
    pub strip_prefixes: &'a [&'a str],
}

/// Write the head to send upstream into `out`: origin-form target (prefixes stripped), Host kept,
/// hop-by-hop fields removed (Connection and what it lists, Keep-Alive, Proxy-Connection, TE,
/// Trailer, Upgrade unless this is a WebSocket upgrade), X-Forwarded-For/Proto/Host replaced,
/// then `ops` applied. HTTP/1.0 clients are forwarded as HTTP/1.0 so the upstream does not
/// answer with chunked coding a 1.0 client cannot read.
pub fn write_request_head(
    buf: &[u8],
    head: &RequestHead,
    ops: &[HeaderOp],
    ctx: &ForwardContext<'_>,
    out: &mut Vec<u8>,
) {
    let _ = (buf, head, ops, ctx, out);
    todo!("http helper")
}

/// Write the head to send to the client into `out`: hop-by-hop fields removed (except the
/// `Connection: upgrade`/`Upgrade` pair of a 101), `Connection: close` added when
/// `close_client` is set, then `ops` applied. Framing fields are kept: bodies pass verbatim.
#[allow(clippy::too_many_arguments, reason = "signature fixed by the connection driver")]
pub fn write_response_head(
    buf: &[u8],
    head: &ResponseHead,
    ops: &[HeaderOp],
    request: &RequestHead,
    request_buf: &[u8],
    ctx: &ForwardContext<'_>,
    close_client: bool,
    out: &mut Vec<u8>,
) {
    let _ = (buf, head, ops, request, request_buf, ctx, close_client, out);
    todo!("http helper")
}

/// Render a template for a request into `out`.
pub fn render_template(
    template: &Template,
    request: &RequestHead,
    request_buf: &[u8],
    ctx: &ForwardContext<'_>,
    out: &mut Vec<u8>,
) {
    let _ = (template, request, request_buf, ctx, out);
    todo!("http helper")
}
