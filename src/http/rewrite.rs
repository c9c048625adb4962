//! Head rewriting between client and upstream: hop-by-hop removal, X-Forwarded-*, header_up /
//! header_down, prefix stripping, template rendering.
//!
//! Every head that crosses the proxy is re-serialized here from the validated spans, never
//! copied as a block: the upstream sees one canonical framing field (`Content-Length: n` or
//! `Transfer-Encoding: chunked`), one Host, CRLF line ends, and nothing the client meant only
//! for us. Output goes into the caller's `out` without other allocations.
//!
//! Rules beyond the function docs:
//! - Header ops never touch framing or hop-by-hop fields (Content-Length, Transfer-Encoding,
//!   Connection, Keep-Alive, Proxy-Connection, TE, Trailer, Upgrade): such ops are ignored, so
//!   no configuration can make the two sides disagree about where a body ends.
//! - Ops run in order with Caddy's meaning: `Set` replaces every field of that name (the
//!   received ones and X-Forwarded-*/Host we generate), `Add` appends, `Remove` deletes; a later
//!   op wins over an earlier one on the same name. `+Host` acts as `Host` (one Host only).
//! - Rendered values lose control characters, so a placeholder can never split a head.
//! - `handle_path` prefixes are removed ASCII-case-insensitively from the path as received when
//!   it is already in normal form; otherwise (`//api/x`, `/api/../api/x`, `/%61pi/x`) from its
//!   decoded, dot-resolved form, re-escaped, so the stripped path is the one that was routed.

use std::io::Write as _;
use std::net::IpAddr;

use super::head::{RequestBody, RequestHead, ResponseHead, Version};
use super::path::{is_clean, percent_decode_into, remove_dot_segments};
use super::response::reason_phrase;
use super::{list_elements, HeaderField};
use crate::config::{HeaderOp, Placeholder, Template, TemplatePart};

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

/// Fields that describe one connection, never a message (RFC 9110 §7.6.1).
const HOP_BY_HOP: [&str; 6] =
    ["connection", "keep-alive", "proxy-connection", "te", "trailer", "upgrade"];

/// Fields the request writer generates itself; received copies are dropped.
const REGENERATED: [&str; 6] = [
    "host",
    "content-length",
    "transfer-encoding",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
];

/// Write the head to send upstream into `out`: origin-form target (prefixes stripped), Host kept,
/// hop-by-hop fields removed (Connection and what it lists, Keep-Alive, Proxy-Connection, TE,
/// Trailer, Upgrade unless this is a WebSocket upgrade), X-Forwarded-For/Proto/Host replaced,
/// then `ops` applied. HTTP/1.0 clients are forwarded as HTTP/1.0 so the upstream does not
/// answer with chunked coding a 1.0 client cannot read.
///
/// Host is the routed authority (`head.host_port`: the absolute-form authority when there was
/// one), omitted only for an HTTP/1.0 request without Host.
pub fn write_request_head(
    buf: &[u8],
    head: &RequestHead,
    ops: &[HeaderOp],
    ctx: &ForwardContext<'_>,
    out: &mut Vec<u8>,
) {
    out.extend_from_slice(head.method_span.get(buf));
    out.push(b' ');
    write_target(buf, head, ctx.strip_prefixes, out);
    out.extend_from_slice(match head.version {
        Version::Http10 => b" HTTP/1.0\r\n",
        Version::Http11 => b" HTTP/1.1\r\n",
    });

    if !head.host_port.is_empty() && !claimed_by_ops(ops, b"host") {
        write_field(out, b"Host", head.host_port.as_bytes());
    }
    let nominations = Nominations::new(&head.headers, buf);
    for field in &head.headers {
        let name = field.name.get(buf);
        let keep_upgrade = head.websocket_upgrade && name.eq_ignore_ascii_case(b"upgrade");
        let dropped = is_one_of(name, &REGENERATED)
            || (!keep_upgrade && (is_one_of(name, &HOP_BY_HOP) || nominations.lists(name)))
            || claimed_by_ops(ops, name);
        if !dropped {
            write_field(out, name, field.value.get(buf));
        }
    }
    match head.body {
        RequestBody::Length(n) => {
            let _ = write!(out, "Content-Length: {n}\r\n");
        }
        RequestBody::Chunked => out.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
        RequestBody::None => {}
    }
    if head.websocket_upgrade {
        out.extend_from_slice(b"Connection: Upgrade\r\n");
    }
    if !claimed_by_ops(ops, b"x-forwarded-for") {
        let _ = write!(out, "X-Forwarded-For: {}\r\n", ctx.client_ip.to_canonical());
    }
    if !claimed_by_ops(ops, b"x-forwarded-proto") {
        write_field(out, b"X-Forwarded-Proto", ctx.scheme.as_bytes());
    }
    if !head.host_port.is_empty() && !claimed_by_ops(ops, b"x-forwarded-host") {
        write_field(out, b"X-Forwarded-Host", head.host_port.as_bytes());
    }
    apply_ops(ops, head, buf, ctx, out);
    out.extend_from_slice(b"\r\n");
}

/// Write the head to send to the client into `out`: hop-by-hop fields removed (except the
/// `Connection: upgrade`/`Upgrade` pair of a 101), `Connection: close` added when
/// `close_client` is set, then `ops` applied. Framing fields are kept: bodies pass verbatim.
///
/// Also: a chunked response drops any Content-Length (RFC 9112 §6.3 rule 3); an HTTP/1.0 client
/// that asked for keep-alive and keeps it gets `Connection: keep-alive` (without it a 1.0 client
/// assumes close); interim (1xx) heads get no Connection field. The status line is always
/// HTTP/1.1 (RFC 9110 §2.5: a server sends its own version); an empty reason is filled in.
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
    let _ = write!(out, "HTTP/1.1 {} ", head.status);
    if head.reason.is_empty() {
        out.extend_from_slice(reason_phrase(head.status).as_bytes());
    } else {
        out.extend_from_slice(head.reason.get(buf));
    }
    out.extend_from_slice(b"\r\n");

    let switching = head.status == 101;
    let nominations = Nominations::new(&head.headers, buf);
    for field in &head.headers {
        let name = field.name.get(buf);
        let keep_upgrade = switching && name.eq_ignore_ascii_case(b"upgrade");
        // Framing fields stay even if Connection names them: the body passes verbatim.
        let framing = name.eq_ignore_ascii_case(b"content-length")
            || name.eq_ignore_ascii_case(b"transfer-encoding");
        let hop = is_one_of(name, &HOP_BY_HOP) || (!framing && nominations.lists(name));
        let dropped = (!keep_upgrade && hop)
            || (head.body == super::head::ResponseBody::Chunked
                && name.eq_ignore_ascii_case(b"content-length"))
            || claimed_by_ops(ops, name);
        if !dropped {
            write_field(out, name, field.value.get(buf));
        }
    }
    if switching {
        out.extend_from_slice(b"Connection: Upgrade\r\n");
    } else if head.status >= 200 {
        if close_client {
            out.extend_from_slice(b"Connection: close\r\n");
        } else if request.version == Version::Http10 && request.keep_alive {
            out.extend_from_slice(b"Connection: keep-alive\r\n");
        }
    }
    apply_ops(ops, request, request_buf, ctx, out);
    out.extend_from_slice(b"\r\n");
}

/// Render a template for a request into `out`.
///
/// `{uri}`, `{path}` and `{query}` are the target as received (origin-form), less any
/// `handle_path` prefixes, as in Caddy where `handle_path` rewrites the request before anything
/// inside it runs; `{remote_host}` is the client address with IPv4-mapped IPv6 shown as IPv4.
pub fn render_template(
    template: &Template,
    request: &RequestHead,
    request_buf: &[u8],
    ctx: &ForwardContext<'_>,
    out: &mut Vec<u8>,
) {
    for part in &template.parts {
        match part {
            TemplatePart::Literal(text) => out.extend_from_slice(text.as_bytes()),
            TemplatePart::Placeholder(p) => match p {
                Placeholder::Host => out.extend_from_slice(request.host.as_bytes()),
                Placeholder::HostPort => out.extend_from_slice(request.host_port.as_bytes()),
                Placeholder::Uri => write_target(request_buf, request, ctx.strip_prefixes, out),
                Placeholder::Path => {
                    write_stripped_path(request.path.get(request_buf), ctx.strip_prefixes, out)
                }
                Placeholder::Query => out.extend_from_slice(request.query(request_buf)),
                Placeholder::Scheme => out.extend_from_slice(ctx.scheme.as_bytes()),
                Placeholder::Method => out.extend_from_slice(request.method_span.get(request_buf)),
                Placeholder::RemoteHost => {
                    let _ = write!(out, "{}", ctx.client_ip.to_canonical());
                }
                Placeholder::RemotePort => {
                    let _ = write!(out, "{}", ctx.client_port);
                }
                Placeholder::UpstreamHostPort => {
                    out.extend_from_slice(ctx.upstream_hostport.as_bytes())
                }
            },
        }
    }
}

fn write_field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

fn is_one_of(name: &[u8], list: &[&str]) -> bool {
    list.iter().any(|n| name.eq_ignore_ascii_case(n.as_bytes()))
}

/// Field names listed in the Connection fields of a head (RFC 9110 §7.6.1). Most heads list
/// nothing beyond `close`/`keep-alive`/`upgrade`, so the per-field check is usually skipped.
struct Nominations<'h, 'b> {
    headers: &'h [HeaderField],
    buf: &'b [u8],
    any: bool,
}

impl<'h, 'b> Nominations<'h, 'b> {
    fn new(headers: &'h [HeaderField], buf: &'b [u8]) -> Self {
        let any = super::field_values(headers, buf, "connection")
            .any(|v| list_elements(v).next().is_some());
        Nominations { headers, buf, any }
    }

    fn lists(&self, name: &[u8]) -> bool {
        self.any
            && super::field_values(self.headers, self.buf, "connection")
                .any(|v| list_elements(v).any(|token| token.eq_ignore_ascii_case(name)))
    }
}

fn op_parts(op: &HeaderOp) -> (&str, Option<&Template>, OpKind) {
    match op {
        HeaderOp::Set { name, value } => (name, Some(value), OpKind::Set),
        HeaderOp::Add { name, value } if name.eq_ignore_ascii_case("host") => {
            (name, Some(value), OpKind::Set)
        }
        HeaderOp::Add { name, value } => (name, Some(value), OpKind::Add),
        HeaderOp::Remove { name } => (name, None, OpKind::Remove),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum OpKind {
    Set,
    Add,
    Remove,
}

/// Ops that may act at all: a valid field name that is neither framing nor hop-by-hop.
fn op_applies(name: &str) -> bool {
    !name.is_empty()
        && name.bytes().all(is_tchar)
        && !is_one_of(name.as_bytes(), &HOP_BY_HOP)
        && !name.eq_ignore_ascii_case("content-length")
        && !name.eq_ignore_ascii_case("transfer-encoding")
}

/// Whether a Set or Remove op owns `name`, so received and generated fields of that name go.
fn claimed_by_ops(ops: &[HeaderOp], name: &[u8]) -> bool {
    ops.iter().any(|op| {
        let (op_name, _, kind) = op_parts(op);
        kind != OpKind::Add && op_applies(op_name) && name.eq_ignore_ascii_case(op_name.as_bytes())
    })
}

fn apply_ops(
    ops: &[HeaderOp],
    request: &RequestHead,
    request_buf: &[u8],
    ctx: &ForwardContext<'_>,
    out: &mut Vec<u8>,
) {
    for (i, op) in ops.iter().enumerate() {
        let (name, value, kind) = op_parts(op);
        let Some(value) = value else { continue };
        if kind == OpKind::Remove || !op_applies(name) {
            continue;
        }
        // A later Set or Remove of the same name replaces what this op would write.
        let superseded = ops[i + 1..].iter().any(|later| {
            let (later_name, _, later_kind) = op_parts(later);
            later_kind != OpKind::Add
                && op_applies(later_name)
                && later_name.eq_ignore_ascii_case(name)
        });
        if superseded {
            continue;
        }
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        let start = out.len();
        render_template(value, request, request_buf, ctx, out);
        strip_controls(out, start);
        out.extend_from_slice(b"\r\n");
    }
}

/// Remove control characters (except HTAB) from `out[start..]` in place.
fn strip_controls(out: &mut Vec<u8>, start: usize) {
    let mut w = start;
    for r in start..out.len() {
        let b = out[r];
        if b == b'\t' || !b.is_ascii_control() {
            out[w] = b;
            w += 1;
        }
    }
    out.truncate(w);
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// The request target for the upstream, with `handle_path` prefixes removed.
fn write_target(buf: &[u8], head: &RequestHead, prefixes: &[&str], out: &mut Vec<u8>) {
    let target = head.target.get(buf);
    if prefixes.is_empty() || target == b"*" {
        out.extend_from_slice(target);
        return;
    }
    let path = head.path.get(buf);
    write_stripped_path(path, prefixes, out);
    out.extend_from_slice(&target[path.len()..]);
}

/// `path` with `handle_path` prefixes removed (see the module doc for the two forms); as
/// received when there are none.
fn write_stripped_path(path: &[u8], prefixes: &[&str], out: &mut Vec<u8>) {
    if prefixes.is_empty() {
        out.extend_from_slice(path);
        return;
    }
    let start = out.len();
    out.extend_from_slice(path);
    let stripped = is_clean(path) && prefixes.iter().all(|p| strip_prefix_at(out, start, p));
    if !stripped {
        out.truncate(start);
        percent_decode_into(path, out);
        let len = remove_dot_segments(&mut out[start..]);
        out.truncate(start + len);
        // The router matched these prefixes against this same decoded form (lower-cased), so
        // each one is found unless a prefix itself was written with escapes in the config.
        for p in prefixes {
            strip_prefix_at(out, start, p);
        }
        escape_path_in_place(out, start);
    }
    if out.get(start) != Some(&b'/') {
        out.insert(start, b'/');
    }
}

/// Remove `prefix` (without its trailing `/`) from the start of `out[start..]`, ignoring ASCII
/// case. `false` when `out[start..]` does not start with it.
fn strip_prefix_at(out: &mut Vec<u8>, start: usize, prefix: &str) -> bool {
    let prefix = prefix.trim_end_matches('/').as_bytes();
    match out.get(start..start + prefix.len()) {
        Some(head) if head.eq_ignore_ascii_case(prefix) => {
            out.drain(start..start + prefix.len());
            true
        }
        _ => false,
    }
}

/// Percent-encode, in place, the bytes of a decoded path that may not appear raw in a path
/// (RFC 3986 §3.3: pchar and `/` stay), working from the end so nothing is overwritten early.
fn escape_path_in_place(out: &mut Vec<u8>, start: usize) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let needs = |b: u8| !(is_pchar(b) || b == b'/');
    let extra = 2 * out[start..].iter().filter(|&&b| needs(b)).count();
    if extra == 0 {
        return;
    }
    let old_len = out.len();
    out.resize(old_len + extra, 0);
    let mut w = out.len();
    for r in (start..old_len).rev() {
        let b = out[r];
        if needs(b) {
            out[w - 3] = b'%';
            out[w - 2] = HEX[usize::from(b >> 4)];
            out[w - 1] = HEX[usize::from(b & 0xf)];
            w -= 3;
        } else {
            out[w - 1] = b;
            w -= 1;
        }
    }
}

/// unreserved / sub-delims / `:` / `@` (pct-encoded is handled by escaping `%` itself).
fn is_pchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::head::{parse_request, parse_response, Method};

    const IP: &str = "192.0.2.7";

    fn ctx<'a>(prefixes: &'a [&'a str]) -> ForwardContext<'a> {
        ForwardContext {
            client_ip: IP.parse().unwrap(),
            client_port: 54321,
            scheme: "https",
            upstream_hostport: "localhost:8080",
            strip_prefixes: prefixes,
        }
    }

    fn lit(s: &str) -> Template {
        Template { parts: vec![TemplatePart::Literal(s.to_string())] }
    }

    fn set(name: &str, value: Template) -> HeaderOp {
        HeaderOp::Set { name: name.to_string(), value }
    }

    fn add(name: &str, value: Template) -> HeaderOp {
        HeaderOp::Add { name: name.to_string(), value }
    }

    fn remove(name: &str) -> HeaderOp {
        HeaderOp::Remove { name: name.to_string() }
    }

    fn upstream_head(raw: &[u8], ops: &[HeaderOp], ctx: &ForwardContext<'_>) -> String {
        let head = parse_request(raw, 65536).unwrap().unwrap();
        let mut out = Vec::new();
        write_request_head(raw, &head, ops, ctx, &mut out);
        // Whatever we send must itself be a valid, complete request head.
        let again = parse_request(&out, 65536).unwrap().unwrap();
        assert_eq!(again.head_len, out.len());
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn hop_by_hop_fields_go_and_forwarded_fields_are_replaced() {
        let raw = b"POST /x?y HTTP/1.1\r\nHost: Api.Example:8443\r\nConnection: keep-alive, X-Secret\r\n\
            X-Secret: 1\r\nKeep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\nTE: trailers\r\n\
            Trailer: X-T\r\nUpgrade: h2c\r\nX-Forwarded-For: 6.6.6.6\r\nx-forwarded-proto: http\r\n\
            X-Forwarded-Host: evil\r\nContent-Length: 5, 5\r\nAccept: */*\r\n\r\n";
        assert_eq!(
            upstream_head(raw, &[], &ctx(&[])),
            "POST /x?y HTTP/1.1\r\nHost: Api.Example:8443\r\nAccept: */*\r\nContent-Length: 5\r\n\
             X-Forwarded-For: 192.0.2.7\r\nX-Forwarded-Proto: https\r\n\
             X-Forwarded-Host: Api.Example:8443\r\n\r\n"
        );
    }

    #[test]
    fn websocket_upgrades_keep_the_upgrade_pair() {
        let raw = b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\
            Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
        assert_eq!(
            upstream_head(raw, &[], &ctx(&[])),
            "GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
             Connection: Upgrade\r\nX-Forwarded-For: 192.0.2.7\r\nX-Forwarded-Proto: https\r\n\
             X-Forwarded-Host: a\r\n\r\n"
        );
    }

    #[test]
    fn absolute_form_is_forwarded_in_origin_form_with_its_authority_as_host() {
        let raw = b"GET http://B.example:81/p?q HTTP/1.1\r\nHost: a\r\n\r\n";
        let out = upstream_head(raw, &[], &ctx(&[]));
        assert!(out.starts_with("GET /p?q HTTP/1.1\r\nHost: B.example:81\r\n"), "{out}");
        assert!(!out.contains("Host: a\r\n"), "{out}");

        let raw = b"GET http://b HTTP/1.1\r\nHost: a\r\n\r\n";
        assert!(upstream_head(raw, &[], &ctx(&[])).starts_with("GET / HTTP/1.1\r\nHost: b\r\n"));
    }

    #[test]
    fn http10_is_forwarded_as_http10_and_framing_is_canonical() {
        let raw = b"GET / HTTP/1.0\r\n\r\n";
        assert_eq!(
            upstream_head(raw, &[], &ctx(&[])),
            "GET / HTTP/1.0\r\nX-Forwarded-For: 192.0.2.7\r\nX-Forwarded-Proto: https\r\n\r\n"
        );
        let raw = b"POST / HTTP/1.1\r\nHost: a\r\ntransfer-encoding: CHUNKED\r\n\r\n";
        let out = upstream_head(raw, &[], &ctx(&[]));
        assert!(out.contains("\r\nTransfer-Encoding: chunked\r\n"), "{out}");
        assert!(!out.contains("CHUNKED"), "{out}");
    }

    #[test]
    fn ipv4_mapped_client_addresses_are_shown_as_ipv4() {
        let raw = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
        let mut c = ctx(&[]);
        c.client_ip = "::ffff:10.1.2.3".parse().unwrap();
        assert!(upstream_head(raw, &[], &c).contains("X-Forwarded-For: 10.1.2.3\r\n"));
        c.client_ip = "::1".parse().unwrap();
        assert!(upstream_head(raw, &[], &c).contains("X-Forwarded-For: ::1\r\n"));
    }

    #[test]
    fn handle_path_prefixes_are_stripped() {
        let cases: &[(&str, &[&str], &str)] = &[
            ("/api/x?y=1", &["/api"], "/x?y=1"),
            ("/API/x", &["/api"], "/x"),
            ("/api/x", &["/api/"], "/x"),
            ("/api", &["/api"], "/"),
            ("/api?q", &["/api"], "/?q"),
            ("/api/auth/x", &["/api", "/auth"], "/x"),
            ("//api///x", &["/api"], "/x"),
            ("/api/../api/x", &["/api"], "/x"),
            ("/%61pi/x%20y", &["/api"], "/x%20y"),
            ("/%61pi/a%3Fb%25c", &["/api"], "/a%3Fb%25c"),
            ("/api/x", &["/other"], "/api/x"),
            ("/api/x", &[], "/api/x"),
            ("/api/%2e%2e/x", &[], "/api/%2e%2e/x"),
        ];
        let mut out = Vec::new();
        for (target, prefixes, want) in cases {
            let raw = format!("GET {target} HTTP/1.1\r\nHost: a\r\n\r\n");
            let head = parse_request(raw.as_bytes(), 4096).unwrap().unwrap();
            out.clear();
            write_target(raw.as_bytes(), &head, prefixes, &mut out);
            assert_eq!(String::from_utf8_lossy(&out), *want, "{target} - {prefixes:?}");
        }
    }

    #[test]
    fn header_up_ops_apply_last_in_order() {
        let raw = b"GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\nX-A: 2\r\nX-B: 3\r\nX-C: 4\r\n\r\n";
        let ops = [
            set("X-A", lit("set")),
            add("X-B", lit("added")),
            remove("x-c"),
            add("X-D", lit("early")),
            remove("X-D"),
            remove("X-E"),
            add("X-E", lit("late")),
            set("X-Forwarded-Proto", lit("h3")),
            set("Host", lit("upstream.internal")),
        ];
        assert_eq!(
            upstream_head(raw, &ops, &ctx(&[])),
            "GET / HTTP/1.1\r\nX-B: 3\r\nX-Forwarded-For: 192.0.2.7\r\nX-Forwarded-Host: a\r\n\
             X-A: set\r\nX-B: added\r\nX-E: late\r\nX-Forwarded-Proto: h3\r\n\
             Host: upstream.internal\r\n\r\n"
        );
    }

    #[test]
    fn ops_on_framing_or_hop_by_hop_fields_are_ignored() {
        let raw = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\n";
        let ops = [
            set("Content-Length", lit("99")),
            remove("content-length"),
            set("Transfer-Encoding", lit("chunked")),
            set("Connection", lit("close")),
            add("Upgrade", lit("websocket")),
            set("Bad Name", lit("x")),
        ];
        let out = upstream_head(raw, &ops, &ctx(&[]));
        assert!(out.contains("Content-Length: 3\r\n"), "{out}");
        assert!(!out.contains("99") && !out.contains("chunked") && !out.contains("Connection"));
        assert!(!out.contains("Upgrade") && !out.contains("Bad Name"), "{out}");
    }

    #[test]
    fn templates_render_placeholders_and_cannot_split_the_head() {
        let raw = b"PUT /p/a?q=1 HTTP/1.1\r\nHost: H.example:8443\r\n\r\n";
        let head = parse_request(raw, 4096).unwrap().unwrap();
        let all = Template {
            parts: [
                Placeholder::Host,
                Placeholder::HostPort,
                Placeholder::Uri,
                Placeholder::Path,
                Placeholder::Query,
                Placeholder::Scheme,
                Placeholder::Method,
                Placeholder::RemoteHost,
                Placeholder::RemotePort,
                Placeholder::UpstreamHostPort,
            ]
            .into_iter()
            .flat_map(|p| [TemplatePart::Placeholder(p), TemplatePart::Literal("|".into())])
            .collect(),
        };
        let mut out = Vec::new();
        render_template(&all, &head, raw, &ctx(&[]), &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "h.example|H.example:8443|/p/a?q=1|/p/a|q=1|https|PUT|192.0.2.7|54321|localhost:8080|"
        );

        // Inside handle_path, the placeholders see the request as rewritten.
        let mut out = Vec::new();
        render_template(&all, &head, raw, &ctx(&["/p/"]), &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "h.example|H.example:8443|/a?q=1|/a|q=1|https|PUT|192.0.2.7|54321|localhost:8080|"
        );

        let ops = [set("X-Evil", lit("a\r\nInjected: yes\r\n\r\nGET /smuggled HTTP/1.1"))];
        let out = upstream_head(raw, &ops, &ctx(&[]));
        assert!(out.contains("X-Evil: aInjected: yes"), "{out}");
        assert!(!out.contains("\r\nInjected"), "{out}");
    }

    fn client_head(
        raw_resp: &[u8],
        raw_req: &[u8],
        ops: &[HeaderOp],
        close_client: bool,
    ) -> String {
        let request = parse_request(raw_req, 4096).unwrap().unwrap();
        let head = parse_response(raw_resp, request.method, 4096).unwrap().unwrap();
        let mut out = Vec::new();
        write_response_head(
            raw_resp,
            &head,
            ops,
            &request,
            raw_req,
            &ctx(&[]),
            close_client,
            &mut out,
        );
        let again = parse_response(&out, request.method, 4096).unwrap().unwrap();
        assert_eq!(again.head_len, out.len());
        assert_eq!(again.status, head.status);
        String::from_utf8(out).unwrap()
    }

    const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";

    #[test]
    fn response_hop_by_hop_fields_go_and_framing_stays() {
        let resp = b"HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Internal, Content-Length\r\n\
            X-Internal: 1\r\nKeep-Alive: timeout=5\r\nTrailer: X-T\r\nContent-Length: 2\r\n\
            Server: up\r\n\r\n";
        assert_eq!(
            client_head(resp, GET, &[], false),
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nServer: up\r\n\r\n"
        );
        assert_eq!(
            client_head(resp, GET, &[], true),
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nServer: up\r\nConnection: close\r\n\r\n"
        );
    }

    #[test]
    fn chunked_responses_lose_a_conflicting_content_length() {
        let resp = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(
            client_head(resp, GET, &[], false),
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        );
    }

    #[test]
    fn switching_protocols_keeps_the_upgrade_pair() {
        let req =
            b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n";
        let resp =
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
            Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
        assert_eq!(
            client_head(resp, req, &[], true),
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
             Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nConnection: Upgrade\r\n\r\n"
        );
    }

    #[test]
    fn interim_responses_get_no_connection_field() {
        let resp = b"HTTP/1.1 100 Continue\r\n\r\n";
        assert_eq!(client_head(resp, GET, &[], true), "HTTP/1.1 100 Continue\r\n\r\n");
    }

    #[test]
    fn http10_keep_alive_clients_are_told_so() {
        let req = b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n";
        let resp = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(
            client_head(resp, req, &[], false),
            "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n"
        );
        let req = b"GET / HTTP/1.0\r\n\r\n";
        assert_eq!(
            client_head(resp, req, &[], false),
            "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
        );
    }

    #[test]
    fn empty_reasons_are_filled_and_header_down_applies() {
        let resp = b"HTTP/1.0 404 \r\nServer: up\r\nX-Powered-By: php\r\nContent-Length: 0\r\n\r\n";
        let ops =
            [remove("X-Powered-By"), set("Server", lit("ringproxy")), add("X-Host", lit("h"))];
        assert_eq!(
            client_head(resp, GET, &ops, false),
            "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nServer: ringproxy\r\nX-Host: h\r\n\r\n"
        );
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        const NAMES: &[&str] = &[
            "Connection",
            "connection",
            "Keep-Alive",
            "Proxy-Connection",
            "TE",
            "Trailer",
            "Upgrade",
            "X-Forwarded-For",
            "x-forwarded-host",
            "X-Forwarded-Proto",
            "X-A",
            "X-B",
            "Accept",
            "Cookie",
            "Sec-WebSocket-Key",
        ];
        const VALUES: &[&str] = &[
            "close",
            "keep-alive",
            "upgrade",
            "Upgrade, X-A",
            "x-b",
            "websocket",
            "1",
            "",
            "a, b",
            "TE, Trailer",
            "h2c",
        ];

        fn field() -> impl Strategy<Value = (&'static str, &'static str)> {
            (prop::sample::select(NAMES), prop::sample::select(VALUES))
        }

        fn op() -> impl Strategy<Value = HeaderOp> {
            let name = prop::sample::select(
                &["X-A", "X-Z", "Host", "Connection", "TE", "Content-Length"][..],
            );
            (name, 0u8..3, "[ -~]{0,8}").prop_map(|(name, kind, value)| match kind {
                0 => set(name, lit(&value)),
                1 => add(name, lit(&value)),
                _ => remove(name),
            })
        }

        proptest! {
            #[test]
            fn rewritten_requests_parse_back_without_hop_by_hop_fields(
                fields in prop::collection::vec(field(), 0..12),
                ops in prop::collection::vec(op(), 0..4),
                http10 in any::<bool>(),
                body in prop::sample::select(&["", "Content-Length: 3\r\n", "Transfer-Encoding: chunked\r\n"][..]),
            ) {
                let mut raw = format!("GET /p HTTP/1.{}\r\nHost: a\r\n{body}", if http10 { 0 } else { 1 });
                for (name, value) in &fields {
                    raw.push_str(&format!("{name}: {value}\r\n"));
                }
                raw.push_str("\r\n");
                let Ok(Some(head)) = parse_request(raw.as_bytes(), 65536) else {
                    // Only the framing combinations are rejected here (TE on 1.0).
                    prop_assert!(http10 && body.starts_with("Transfer"));
                    return Ok(());
                };
                let mut out = Vec::new();
                write_request_head(raw.as_bytes(), &head, &ops, &ctx(&[]), &mut out);

                let mut slots = [httparse::EMPTY_HEADER; 64];
                let mut parsed = httparse::Request::new(&mut slots);
                let status = parsed.parse(&out);
                prop_assert_eq!(status, Ok(httparse::Status::Complete(out.len())));
                let mut connection_fields = 0;
                let mut xff = 0;
                for h in parsed.headers.iter() {
                    let name = h.name.to_ascii_lowercase();
                    prop_assert!(
                        !["keep-alive", "proxy-connection", "te", "trailer"].contains(&name.as_str()),
                        "{} in {}", name, String::from_utf8_lossy(&out)
                    );
                    if name == "upgrade" {
                        prop_assert!(head.websocket_upgrade);
                    }
                    if name == "connection" {
                        connection_fields += 1;
                        prop_assert_eq!(h.value, b"Upgrade");
                    }
                    if name == "x-forwarded-for" {
                        xff += 1;
                        prop_assert_eq!(h.value, IP.as_bytes());
                    }
                    // Nothing the client's Connection fields nominated survives (fields the
                    // operator's own ops write are not the client's).
                    let from_ops = ops.iter().any(|op| matches!(op,
                        HeaderOp::Set { name: n, .. } | HeaderOp::Add { name: n, .. }
                            if n.eq_ignore_ascii_case(&name)));
                    let exempt = from_ops || (name == "upgrade" && head.websocket_upgrade);
                    if !exempt {
                        let nominated = head
                            .values(raw.as_bytes(), "connection")
                            .flat_map(list_elements)
                            .any(|t| t.eq_ignore_ascii_case(name.as_bytes()));
                        prop_assert!(!nominated, "{} survived in {}", name, String::from_utf8_lossy(&out));
                    }
                }
                prop_assert_eq!(connection_fields, usize::from(head.websocket_upgrade));
                prop_assert_eq!(xff, 1);
            }

            #[test]
            fn rewritten_responses_parse_back_without_hop_by_hop_fields(
                fields in prop::collection::vec(field(), 0..12),
                ops in prop::collection::vec(op(), 0..4),
                status in prop::sample::select(&[100u16, 101, 200, 204, 304, 404][..]),
                close in any::<bool>(),
            ) {
                let mut raw = format!("HTTP/1.1 {status} X\r\nContent-Length: 0\r\n");
                for (name, value) in &fields {
                    raw.push_str(&format!("{name}: {value}\r\n"));
                }
                raw.push_str("\r\n");
                let request = parse_request(GET, 4096).unwrap().unwrap();
                let head = parse_response(raw.as_bytes(), Method::Get, 65536).unwrap().unwrap();
                let mut out = Vec::new();
                write_response_head(raw.as_bytes(), &head, &ops, &request, GET, &ctx(&[]), close, &mut out);
                let again = parse_response(&out, Method::Get, 65536).unwrap().unwrap();
                prop_assert_eq!(again.head_len, out.len());
                prop_assert_eq!(again.values(&out, "content-length").count(), 1);
                for f in &again.headers {
                    let name = f.name.get(&out).to_ascii_lowercase();
                    let value = f.value.get(&out);
                    match name.as_slice() {
                        b"keep-alive" | b"proxy-connection" | b"te" | b"trailer" => {
                            prop_assert!(false, "hop-by-hop field in {}", String::from_utf8_lossy(&out))
                        }
                        b"upgrade" => prop_assert_eq!(status, 101),
                        b"connection" if status == 101 => prop_assert_eq!(value, b"Upgrade"),
                        b"connection" => prop_assert!(close && status >= 200 && value == b"close"),
                        _ => {}
                    }
                }
            }
        }
    }
}
