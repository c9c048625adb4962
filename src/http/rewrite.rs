//! Head rewriting between client and upstream: hop-by-hop removal, X-Forwarded-*, header_up,
//! prefix stripping; the response ops (`header_down`, `header`) through `header_ops`, and what
//! `encode` changes in a head it compresses (`encode::Reencoding`), as the head is written.
//! What a placeholder renders to is `template`'s.
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
//! - `handle_path` prefixes are removed from the forwarded target and from `{uri}`/`{path}` as
//!   `path::write_stripped_path` describes.

use std::io::Write as _;

use super::encode::Reencoding;
use super::head::{RequestBody, ResponseBody, ResponseHead, Version};
use super::header_ops::{strip_controls, ResponseOps, Writer};
use super::response::reason_phrase;
use super::template::{render_template, write_target, ForwardContext};
use super::{list_elements, HeaderField};
use crate::config::{HeaderOp, Template};

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
/// one), omitted only for an HTTP/1.0 request without Host. An HTTP/1.1 request with an empty
/// Host (RFC 9112 §3.2 allows it when the target has no authority) gets the upstream's address,
/// as from Caddy: an HTTP/1.1 request must carry a Host line, and upstreams such as nginx
/// answer an empty one with 400.
pub fn write_request_head(ctx: &ForwardContext<'_>, ops: &[HeaderOp], out: &mut Vec<u8>) {
    let (head, buf) = (ctx.request.head(), ctx.request.head_bytes());
    out.extend_from_slice(ctx.request.method_token());
    out.push(b' ');
    write_target(ctx.request, ctx.strip_prefixes, out);
    out.extend_from_slice(match head.version {
        Version::Http10 => b" HTTP/1.0\r\n",
        Version::Http11 => b" HTTP/1.1\r\n",
    });

    if !claimed_by_ops(ops, b"host") {
        if !head.host_port.is_empty() {
            write_field(out, b"Host", head.host_port.as_bytes());
        } else if head.version == Version::Http11 {
            write_field(out, b"Host", ctx.upstream_hostport.as_bytes());
        }
    }
    let nominations = Nominations::new(&head.headers, buf);
    // Of a WebSocket upgrade's Upgrade fields, one `Upgrade: websocket` goes on, in the first
    // one's place: never another protocol it also offered (`h2c` would let the client speak
    // HTTP/2 to the upstream past every rule of this proxy).
    let mut upgrade_pending = head.websocket_upgrade;
    for field in &head.headers {
        let name = field.name.get(buf);
        if upgrade_pending && name.eq_ignore_ascii_case(b"upgrade") {
            upgrade_pending = false;
            out.extend_from_slice(b"Upgrade: websocket\r\n");
            continue;
        }
        let dropped = is_one_of(name, &REGENERATED)
            || is_one_of(name, &HOP_BY_HOP)
            || nominations.lists(name)
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
        out.extend_from_slice(b"X-Forwarded-For: ");
        if ctx.trusted_proxy {
            write_prior_forwarded_for(head.values(buf, "x-forwarded-for"), out);
        }
        let _ = write!(out, "{}\r\n", ctx.client_ip.to_canonical());
    }
    // A trusted proxy's own X-Forwarded-Proto/-Host (the last one, when not empty) stand.
    let trusted_last = |name: &'static str| {
        let last = head.values(buf, name).last().filter(|v| !v.is_empty());
        last.filter(|_| ctx.trusted_proxy)
    };
    if !claimed_by_ops(ops, b"x-forwarded-proto") {
        let proto = trusted_last("x-forwarded-proto").unwrap_or(ctx.scheme.as_bytes());
        write_field(out, b"X-Forwarded-Proto", proto);
    }
    if !claimed_by_ops(ops, b"x-forwarded-host") {
        let host = trusted_last("x-forwarded-host").unwrap_or(head.host_port.as_bytes());
        if !host.is_empty() {
            write_field(out, b"X-Forwarded-Host", host);
        }
    }
    apply_ops(ops, ctx, out);
    out.extend_from_slice(b"\r\n");
}

/// A trusted proxy's X-Forwarded-For values, joined as Caddy joins them (`, `), with the
/// separator before our own entry; nothing when there are none or they are empty.
fn write_prior_forwarded_for<'b>(values: impl Iterator<Item = &'b [u8]>, out: &mut Vec<u8>) {
    let start = out.len();
    for (i, value) in values.enumerate() {
        if i > 0 {
            out.extend_from_slice(b", ");
        }
        out.extend_from_slice(value);
    }
    if out.len() > start {
        out.extend_from_slice(b", ");
    }
}

/// Write the head to send to the client into `out`: hop-by-hop fields removed (except the
/// `Connection: upgrade`/`Upgrade` pair of a 101), `Connection: close` added when
/// `close_client` is set, `header_down` ops applied. Framing fields are kept: bodies pass
/// verbatim. See [`write_response_head_with`] for the `header` directive's ops as well.
pub fn write_response_head(
    buf: &[u8],
    head: &ResponseHead,
    header_down: &[HeaderOp],
    ctx: &ForwardContext<'_>,
    close_client: bool,
    out: &mut Vec<u8>,
) {
    let ops = ResponseOps { down: header_down, ..ResponseOps::NONE };
    write_response_head_with(buf, head, ops, ctx, close_client, out);
}

/// [`write_response_head`] with every response op (`header`'s and `header_down`'s, as
/// `header_ops` applies them). Without ops, fields are copied as they are checked.
///
/// Also: a chunked response drops any Content-Length (RFC 9112 §6.3 rule 3); an HTTP/1.0 client
/// that asked for keep-alive and keeps it gets `Connection: keep-alive` (without it a 1.0 client
/// assumes close); interim (1xx) heads get no Connection field. The status line is always
/// HTTP/1.1 (RFC 9110 §2.5: a server sends its own version); an empty reason is filled in.
pub fn write_response_head_with(
    buf: &[u8],
    head: &ResponseHead,
    ops: ResponseOps<'_, '_>,
    ctx: &ForwardContext<'_>,
    close_client: bool,
    out: &mut Vec<u8>,
) {
    write_client_head(buf, head, ops, ctx, close_client, None, out);
}

/// [`write_response_head_with`] for a final response whose body `encode` compresses as
/// `encoding` says: the fields the coding drops go with the hop-by-hop ones, the others are
/// settled as they are written (`Reencoding`), the coding's fields come after the head's own
/// (and `header_down`'s) and before what the deferred `header` ops add, as in Caddy, and the
/// encoded body's framing field last.
pub fn write_encoded_response_head(
    buf: &[u8],
    head: &ResponseHead,
    ops: ResponseOps<'_, '_>,
    ctx: &ForwardContext<'_>,
    close_client: bool,
    encoding: Reencoding,
    out: &mut Vec<u8>,
) {
    write_client_head(buf, head, ops, ctx, close_client, Some(encoding), out);
}

fn write_client_head(
    buf: &[u8],
    head: &ResponseHead,
    ops: ResponseOps<'_, '_>,
    ctx: &ForwardContext<'_>,
    close_client: bool,
    encoding: Option<Reencoding>,
    out: &mut Vec<u8>,
) {
    let request = ctx.request.head();
    let _ = write!(out, "HTTP/1.1 {} ", head.status);
    if head.reason.is_empty() {
        out.extend_from_slice(reason_phrase(head.status).as_bytes());
    } else {
        out.extend_from_slice(head.reason.get(buf));
    }
    out.extend_from_slice(b"\r\n");

    let switching = head.status == 101;
    let nominations = Nominations::new(&head.headers, buf);
    let kept = head.headers.iter().filter_map(|field| {
        let name = field.name.get(buf);
        let keep_upgrade = switching && name.eq_ignore_ascii_case(b"upgrade");
        // Framing fields stay even if Connection names them: the body passes verbatim.
        let framing = name.eq_ignore_ascii_case(b"content-length")
            || name.eq_ignore_ascii_case(b"transfer-encoding");
        let hop = is_one_of(name, &HOP_BY_HOP) || (!framing && nominations.lists(name));
        let dropped = (!keep_upgrade && hop)
            || (head.body == ResponseBody::Chunked && name.eq_ignore_ascii_case(b"content-length"))
            || (encoding.is_some() && !Reencoding::keeps(name));
        (!dropped).then(|| (name, field.value.get(buf)))
    });
    let writer = (!ops.is_empty()).then(|| Writer::new(ops, ctx, kept.clone()).encoded(encoding));
    let mut varies = false;
    match (&writer, &encoding) {
        (None, None) => kept.for_each(|(name, value)| write_field(out, name, value)),
        (None, Some(encoding)) => kept.for_each(|(name, value)| {
            out.extend_from_slice(name);
            out.extend_from_slice(b": ");
            let start = out.len();
            out.extend_from_slice(value);
            varies |= encoding.settle(name, out, start);
            out.extend_from_slice(b"\r\n");
        }),
        (Some(writer), _) => {
            writer.leading(out);
            kept.for_each(|(name, value)| writer.own(name, value, out));
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
    match &writer {
        // The coding's fields are the writer's, for the deferred ops to act on.
        Some(writer) => writer.trailing(out),
        None => {
            let added = encoding.iter().flat_map(|e| e.added_fields(varies));
            added.for_each(|(name, value)| write_field(out, name, value));
        }
    }
    if let Some(encoding) = &encoding {
        encoding.write_framing(out);
    }
    out.extend_from_slice(b"\r\n");
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
        // Only `header_down` and `header` have the other forms (see `header_ops`); the
        // parser never gives them to `header_up`.
        HeaderOp::RemoveMatching { .. } | HeaderOp::Default { .. } | HeaderOp::Replace { .. } => {
            ("", None, OpKind::Remove)
        }
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

fn apply_ops(ops: &[HeaderOp], ctx: &ForwardContext<'_>, out: &mut Vec<u8>) {
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
        render_template(value, ctx, out);
        strip_controls(out, start);
        out.extend_from_slice(b"\r\n");
    }
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Coding, ResponseHeaders, TemplatePart};
    use crate::http::head::{parse_request, parse_response, Method};
    use crate::http::header_ops::HeaderMiddleware;
    use crate::http::request::Request;

    const IP: &str = "192.0.2.7";

    fn request(raw: &[u8]) -> Request {
        Request::new(parse_request(raw, 65536).unwrap().unwrap(), raw.to_vec())
    }

    fn ctx<'a>(request: &'a Request, prefixes: &'a [&'a str]) -> ForwardContext<'a> {
        ForwardContext {
            request,
            client_ip: IP.parse().unwrap(),
            client_port: 54321,
            trusted_proxy: false,
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

    fn upstream_head(raw: &[u8], ops: &[HeaderOp]) -> String {
        upstream_head_from(raw, ops, IP)
    }

    fn upstream_head_via_trusted_proxy(raw: &[u8]) -> String {
        let request = request(raw);
        let ctx = ForwardContext { trusted_proxy: true, ..ctx(&request, &[]) };
        let mut out = Vec::new();
        write_request_head(&ctx, &[], &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn a_trusted_proxys_forwarded_fields_are_kept_and_x_forwarded_for_appended_to() {
        let out = upstream_head_via_trusted_proxy(
            b"GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 203.0.113.5, 10.0.0.9\r\n\
              X-Forwarded-Proto: http\r\nX-Forwarded-For: 10.0.0.8\r\n\
              X-Forwarded-Host: outside.example\r\nX-Forwarded-Proto: https\r\n\r\n",
        );
        assert_eq!(
            out,
            format!(
                "GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 203.0.113.5, 10.0.0.9, 10.0.0.8, \
                 {IP}\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: outside.example\r\n\r\n"
            )
        );
        // Nothing (or nothing but empty values) sent: ours, as for anyone.
        let out = upstream_head_via_trusted_proxy(
            b"GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-Proto:\r\n\r\n",
        );
        assert_eq!(
            out,
            format!(
                "GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: {IP}\r\n\
                 X-Forwarded-Proto: https\r\nX-Forwarded-Host: a\r\n\r\n"
            )
        );
    }

    fn upstream_head_from(raw: &[u8], ops: &[HeaderOp], client_ip: &str) -> String {
        let request = request(raw);
        let ctx = ForwardContext { client_ip: client_ip.parse().unwrap(), ..ctx(&request, &[]) };
        let mut out = Vec::new();
        write_request_head(&ctx, ops, &mut out);
        // Whatever we send must itself be a valid, complete request head.
        let again = parse_request(&out, 65536).unwrap().unwrap();
        assert_eq!(again.head_len, out.len());
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn an_empty_host_is_replaced_by_the_upstreams_address_on_http11_only() {
        assert_eq!(
            upstream_head(b"GET / HTTP/1.1\r\nHost:\r\n\r\n", &[]),
            "GET / HTTP/1.1\r\nHost: localhost:8080\r\nX-Forwarded-For: 192.0.2.7\r\n\
             X-Forwarded-Proto: https\r\n\r\n"
        );
        assert_eq!(
            upstream_head(b"GET / HTTP/1.0\r\n\r\n", &[]),
            "GET / HTTP/1.0\r\nX-Forwarded-For: 192.0.2.7\r\nX-Forwarded-Proto: https\r\n\r\n"
        );
    }

    #[test]
    fn hop_by_hop_fields_go_and_forwarded_fields_are_replaced() {
        let raw = b"POST /x?y HTTP/1.1\r\nHost: Api.Example:8443\r\nConnection: keep-alive, X-Secret\r\n\
            X-Secret: 1\r\nKeep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\nTE: trailers\r\n\
            Trailer: X-T\r\nUpgrade: h2c\r\nX-Forwarded-For: 6.6.6.6\r\nx-forwarded-proto: http\r\n\
            X-Forwarded-Host: evil\r\nContent-Length: 5, 5\r\nAccept: */*\r\n\r\n";
        assert_eq!(
            upstream_head(raw, &[]),
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
            upstream_head(raw, &[]),
            "GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
             Connection: Upgrade\r\nX-Forwarded-For: 192.0.2.7\r\nX-Forwarded-Proto: https\r\n\
             X-Forwarded-Host: a\r\n\r\n"
        );
    }

    #[test]
    fn absolute_form_is_forwarded_in_origin_form_with_its_authority_as_host() {
        let raw = b"GET http://B.example:81/p?q HTTP/1.1\r\nHost: a\r\n\r\n";
        let out = upstream_head(raw, &[]);
        assert!(out.starts_with("GET /p?q HTTP/1.1\r\nHost: B.example:81\r\n"), "{out}");
        assert!(!out.contains("Host: a\r\n"), "{out}");

        let raw = b"GET http://b HTTP/1.1\r\nHost: a\r\n\r\n";
        assert!(upstream_head(raw, &[]).starts_with("GET / HTTP/1.1\r\nHost: b\r\n"));
    }

    #[test]
    fn http10_is_forwarded_as_http10_and_framing_is_canonical() {
        let raw = b"GET / HTTP/1.0\r\n\r\n";
        assert_eq!(
            upstream_head(raw, &[]),
            "GET / HTTP/1.0\r\nX-Forwarded-For: 192.0.2.7\r\nX-Forwarded-Proto: https\r\n\r\n"
        );
        let raw = b"POST / HTTP/1.1\r\nHost: a\r\ntransfer-encoding: CHUNKED\r\n\r\n";
        let out = upstream_head(raw, &[]);
        assert!(out.contains("\r\nTransfer-Encoding: chunked\r\n"), "{out}");
        assert!(!out.contains("CHUNKED"), "{out}");
    }

    #[test]
    fn ipv4_mapped_client_addresses_are_shown_as_ipv4() {
        let raw = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
        let out = upstream_head_from(raw, &[], "::ffff:10.1.2.3");
        assert!(out.contains("X-Forwarded-For: 10.1.2.3\r\n"), "{out}");
        let out = upstream_head_from(raw, &[], "::1");
        assert!(out.contains("X-Forwarded-For: ::1\r\n"), "{out}");
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
            upstream_head(raw, &ops),
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
        let out = upstream_head(raw, &ops);
        assert!(out.contains("Content-Length: 3\r\n"), "{out}");
        assert!(!out.contains("99") && !out.contains("chunked") && !out.contains("Connection"));
        assert!(!out.contains("Upgrade") && !out.contains("Bad Name"), "{out}");
    }

    #[test]
    fn rendered_values_cannot_split_the_head() {
        let raw = b"PUT /p/a?q=1 HTTP/1.1\r\nHost: H.example:8443\r\n\r\n";
        let ops = [set("X-Evil", lit("a\r\nInjected: yes\r\n\r\nGET /smuggled HTTP/1.1"))];
        let out = upstream_head(raw, &ops);
        assert!(out.contains("X-Evil: aInjected: yes"), "{out}");
        assert!(!out.contains("\r\nInjected"), "{out}");
    }

    fn client_head(
        raw_resp: &[u8],
        raw_req: &[u8],
        ops: &[HeaderOp],
        close_client: bool,
    ) -> String {
        let request = request(raw_req);
        let method = request.head().method;
        let head = parse_response(raw_resp, method, 4096).unwrap().unwrap();
        let mut out = Vec::new();
        write_response_head(raw_resp, &head, ops, &ctx(&request, &[]), close_client, &mut out);
        let again = parse_response(&out, method, 4096).unwrap().unwrap();
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

    fn encoded_client_head(
        raw_resp: &[u8],
        ops: ResponseOps<'_, '_>,
        close_client: bool,
        encoding: Reencoding,
    ) -> String {
        let request = request(GET);
        let head = parse_response(raw_resp, Method::Get, 4096).unwrap().unwrap();
        let mut out = Vec::new();
        let ctx = ctx(&request, &[]);
        write_encoded_response_head(raw_resp, &head, ops, &ctx, close_client, encoding, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn an_encoded_head_loses_its_length_and_gains_its_coding() {
        let gzip = Reencoding { coding: Coding::Gzip, chunked: true };
        let resp = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 900\r\n\
                     ETag: \"abc\"\r\nAccept-Ranges: bytes\r\nX-Other: 1\r\n\r\n";
        assert_eq!(
            encoded_client_head(resp, ResponseOps::NONE, false, gzip),
            "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nETag: \"abc-gzip\"\r\nX-Other: 1\r\n\
             Content-Encoding: gzip\r\nVary: Accept-Encoding\r\nTransfer-Encoding: chunked\r\n\r\n"
        );
        let zstd_until_close = Reencoding { coding: Coding::Zstd, chunked: false };
        let weak = b"HTTP/1.1 200 OK\r\nETag: W/\"abc\"\r\nVary: Origin, accept-encoding\r\n\
                     Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
        assert_eq!(
            encoded_client_head(weak, ResponseOps::NONE, true, zstd_until_close),
            "HTTP/1.1 200 OK\r\nETag: W/\"abc\"\r\nVary: Origin, accept-encoding\r\n\
             Connection: close\r\nContent-Encoding: zstd\r\n\r\n"
        );
    }

    #[test]
    fn an_encoded_head_is_encoded_after_the_handlers_ops_and_before_the_deferred_ones() {
        let gzip = Reencoding { coding: Coding::Gzip, chunked: true };
        let resp = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 900\r\n\
                     ETag: \"up\"\r\nVary: Origin\r\n\r\n";
        // As Caddy's `encode` sits between the handler and the deferred `header` ops: the
        // immediate and `header_down` fields are encoded with the upstream's, the deferred ops
        // then act on the encoded head (the Vary the coding added included).
        let headers = ResponseHeaders {
            immediate: vec![set("X-Tag", lit("\"x\"")), set("Accept-Ranges", lit("bytes"))],
            deferred: vec![remove("Vary"), add("Content-Encoding", lit("later"))],
        };
        let headers = HeaderMiddleware::gather(std::iter::once(&headers));
        let down = [add("ETag", lit("\"down\"")), add("Vary", lit("Cookie"))];
        let ops =
            ResponseOps { immediate: &headers.immediate, down: &down, deferred: &headers.deferred };
        assert_eq!(
            encoded_client_head(resp, ops, false, gzip),
            "HTTP/1.1 200 OK\r\nX-Tag: \"x\"\r\nContent-Type: text/html\r\nETag: \"up-gzip\"\r\n\
             ETag: \"down-gzip\"\r\nContent-Encoding: gzip\r\nContent-Encoding: later\r\n\
             Transfer-Encoding: chunked\r\n\r\n"
        );
        let later = ResponseHeaders {
            immediate: Vec::new(),
            deferred: vec![set("ETag", lit("\"later\"")), add("Vary", lit("Cookie"))],
        };
        let later = HeaderMiddleware::gather(std::iter::once(&later));
        let ops = ResponseOps { immediate: &later.immediate, down: &[], deferred: &later.deferred };
        assert_eq!(
            encoded_client_head(resp, ops, false, gzip),
            "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nVary: Origin\r\n\
             Content-Encoding: gzip\r\nVary: Accept-Encoding\r\nETag: \"later\"\r\n\
             Vary: Cookie\r\nTransfer-Encoding: chunked\r\n\r\n"
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
                let request = Request::new(head, raw.clone().into_bytes());
                let head = request.head();
                let mut out = Vec::new();
                write_request_head(&ctx(&request, &[]), &ops, &mut out);

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
                let request = request(GET);
                let head = parse_response(raw.as_bytes(), Method::Get, 65536).unwrap().unwrap();
                let mut out = Vec::new();
                write_response_head(raw.as_bytes(), &head, &ops, &ctx(&request, &[]), close, &mut out);
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
