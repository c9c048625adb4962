//! Harnesses for the request- and response-head parsers (`http::head`) and the head writers that
//! re-serialize what they accept (`http::rewrite`).
//!
//! Invariants, for any bytes:
//! - A growing buffer gets the verdict of the whole: every prefix of a complete head is
//!   "read more", every prefix at least as long gives the same head, and a head that is
//!   rejected is never accepted from a prefix (the connection re-parses its buffer after every
//!   read, so anything else would make the outcome depend on how TCP segments the bytes).
//! - The size limit is one rule: a head that ends within it parses the same, one that does not
//!   is `TooLarge`.
//! - The framing agrees with a model computed from the raw fields (RFC 9112 §6.3 as the module
//!   doc of `head` restricts it): no request with both Content-Length and Transfer-Encoding is
//!   accepted, a chunked request is HTTP/1.1 with exactly `chunked`, a length is the one value
//!   every Content-Length element spells.
//! - What the proxy forwards parses again, with our own parser, to the same method, target,
//!   version, Host, routing path and framing; with a `handle_path` prefix stripped, it routes
//!   like the routed path minus the prefix. A response head forwarded to the client parses
//!   again to the same status and framing. (Unless the forwarded head has more fields than
//!   `MAX_HEADERS`, which our parser then rightly calls too large.)

use std::net::{IpAddr, Ipv4Addr};

use super::{cut_points, seed};
use crate::config::limits::{DEFAULT_MAX_HEADER_BYTES, MAX_HEADERS};
use crate::config::{FieldPattern, FindPattern, HeaderOp, Placeholder, Template, TemplatePart};
use crate::http::head::{
    parse_request, parse_response, HeadError, Method, RequestBody, RequestHead, ResponseBody,
    ResponseHead, Version,
};
use crate::http::request::Request;
use crate::http::rewrite::{write_request_head, write_response_head};
use crate::http::template::ForwardContext;
use crate::http::{list_elements, trim_ows, HeaderField};

/// How many growing-buffer verdicts each input is checked at.
const CUTS: usize = 8;

/// Parse `data` as a request head and check every invariant of the module doc.
pub fn request_head(data: &[u8]) {
    let whole = parse_request(data, DEFAULT_MAX_HEADER_BYTES);
    for cut in cut_points(data, CUTS) {
        let prefix = parse_request(&data[..cut], DEFAULT_MAX_HEADER_BYTES);
        match (&whole, &prefix) {
            (Ok(Some(head)), Ok(None)) if cut < head.head_len => {}
            (Ok(Some(head)), Ok(Some(early))) if cut >= head.head_len => {
                assert_eq!(debug(early), debug(head), "a prefix of {cut} bytes parses differently");
            }
            (Ok(None), Ok(None)) | (Err(_), Ok(None) | Err(_)) => {}
            _ => panic!("a prefix of {cut} bytes gives {prefix:?}, the whole {whole:?}"),
        }
    }
    // A limit anywhere from 1 byte to a little more than the input.
    let limit = 1 + (seed(data) % (data.len() as u64 + 16)) as usize;
    let limited = parse_request(data, limit);
    if let Ok(Some(head)) = &whole {
        match &limited {
            Ok(Some(small)) if head.head_len <= limit => assert_eq!(debug(small), debug(head)),
            Err(HeadError::TooLarge) if head.head_len > limit => {}
            other => panic!("with a limit of {limit} bytes: {other:?}, without: {head:?}"),
        }
    }
    let Ok(Some(head)) = whole else { return };
    assert!(head.head_len <= data.len());
    assert_request_framing(&head, data);
    let request = Request::new(head, data.to_vec());
    assert_forwarded_request_reparses(&request);
    assert_stripped_request_routes_like_the_routed_path(&request);
}

/// Parse `data` as the response to a GET and to a HEAD and check the invariants of the
/// module doc.
pub fn response_head(data: &[u8]) {
    let get = parse_response(data, Method::Get, DEFAULT_MAX_HEADER_BYTES);
    for cut in cut_points(data, CUTS) {
        let prefix = parse_response(&data[..cut], Method::Get, DEFAULT_MAX_HEADER_BYTES);
        match (&get, &prefix) {
            (Ok(Some(head)), Ok(None)) if cut < head.head_len => {}
            (Ok(Some(head)), Ok(Some(early))) if cut >= head.head_len => {
                assert_eq!(debug(early), debug(head), "a prefix of {cut} bytes parses differently");
            }
            (Ok(None), Ok(None)) | (Err(_), Ok(None) | Err(_)) => {}
            _ => panic!("a prefix of {cut} bytes gives {prefix:?}, the whole {get:?}"),
        }
    }
    let head_method = parse_response(data, Method::Head, DEFAULT_MAX_HEADER_BYTES);
    if let Ok(Some(head)) = &get {
        assert!(head.head_len <= data.len());
        assert_response_framing(head, data);
        // The same head answering a HEAD differs only in having no body.
        let Ok(Some(bodiless)) = &head_method else {
            panic!("a response to GET parses, to HEAD it is {head_method:?}");
        };
        assert_eq!(bodiless.body, ResponseBody::None);
        assert_eq!(
            (bodiless.head_len, bodiless.status, &bodiless.headers),
            (head.head_len, head.status, &head.headers)
        );
    }
    let get_request = fixed_request(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    let head_request = fixed_request(b"HEAD / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    for (parsed, request, close_client) in
        [(&get, &get_request, false), (&head_method, &head_request, true)]
    {
        if let Ok(Some(head)) = parsed {
            assert_forwarded_response_reparses(data, head, request, close_client);
        }
    }
}

/// Heads have no `PartialEq` (they hold spans into different buffers); their Debug text says
/// everything they carry.
fn debug(value: &impl std::fmt::Debug) -> String {
    format!("{value:?}")
}

fn values<'b>(headers: &[HeaderField], buf: &'b [u8], name: &str) -> Vec<&'b [u8]> {
    crate::http::field_values(headers, buf, name).collect()
}

/// The value every Content-Length element spells, if they all spell the same plain decimal.
fn model_length(lengths: &[&[u8]]) -> Option<u64> {
    let mut agreed = None;
    for value in lengths {
        for element in value.split(|&b| b == b',').map(trim_ows) {
            if element.is_empty() || !element.iter().all(u8::is_ascii_digit) {
                return None;
            }
            let n = std::str::from_utf8(element).ok()?.parse::<u64>().ok()?;
            if agreed.is_some_and(|seen| seen != n) {
                return None;
            }
            agreed = Some(n);
        }
    }
    agreed
}

/// Whether the Transfer-Encoding fields list exactly one coding, `chunked`.
fn model_only_chunked(codings: &[&[u8]]) -> bool {
    let mut elements = codings.iter().flat_map(|value| list_elements(value));
    matches!(
        (elements.next(), elements.next()),
        (Some(only), None) if only.eq_ignore_ascii_case(b"chunked")
    )
}

fn assert_request_framing(head: &RequestHead, buf: &[u8]) {
    let lengths = values(&head.headers, buf, "content-length");
    let codings = values(&head.headers, buf, "transfer-encoding");
    let hosts = values(&head.headers, buf, "host");
    let what = String::from_utf8_lossy(&buf[..head.head_len]);
    assert!(hosts.len() <= 1, "several Host fields accepted: {what:?}");
    assert!(head.version == Version::Http10 || hosts.len() == 1, "no Host on 1.1: {what:?}");
    let model = if !codings.is_empty() {
        assert!(lengths.is_empty(), "Content-Length and Transfer-Encoding accepted: {what:?}");
        assert_eq!(head.version, Version::Http11, "Transfer-Encoding on 1.0: {what:?}");
        assert!(model_only_chunked(&codings), "codings other than chunked: {what:?}");
        RequestBody::Chunked
    } else if !lengths.is_empty() {
        let length = model_length(&lengths);
        RequestBody::Length(length.unwrap_or_else(|| panic!("bad Content-Length: {what:?}")))
    } else {
        RequestBody::None
    };
    assert_eq!(head.body, model, "{what:?}");
}

fn assert_response_framing(head: &ResponseHead, buf: &[u8]) {
    let lengths = values(&head.headers, buf, "content-length");
    let codings = values(&head.headers, buf, "transfer-encoding");
    let what = String::from_utf8_lossy(&buf[..head.head_len]);
    let status = head.status;
    let model = if (100..200).contains(&status) || status == 204 || status == 304 {
        ResponseBody::None
    } else if !codings.is_empty() {
        assert_eq!(head.version, Version::Http11, "chunked from a 1.0 upstream: {what:?}");
        assert!(model_only_chunked(&codings), "codings other than chunked: {what:?}");
        ResponseBody::Chunked
    } else {
        match model_length(&lengths) {
            Some(0) => ResponseBody::None,
            Some(n) => ResponseBody::Length(n),
            None if lengths.is_empty() => ResponseBody::CloseDelimited,
            None => panic!("bad Content-Length accepted: {what:?}"),
        }
    };
    assert_eq!(head.body, model, "{what:?}");
    if head.keep_alive {
        assert!(head.body != ResponseBody::CloseDelimited && status != 101, "{what:?}");
    }
}

fn fixed_request(raw: &[u8]) -> Request {
    match parse_request(raw, raw.len()) {
        Ok(Some(head)) => Request::new(head, raw.to_vec()),
        other => panic!("the harness's own request does not parse: {other:?}"),
    }
}

fn context<'a>(request: &'a Request, strip_prefixes: &'a [&'a str]) -> ForwardContext<'a> {
    ForwardContext {
        request,
        client_ip: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)),
        client_port: 54321,
        scheme: "https",
        upstream_hostport: "upstream.internal:8080",
        strip_prefixes,
        // Untrusted: the client's X-Forwarded-* are replaced, the path that rewrites most.
        trusted_proxy: false,
    }
}

/// `header_up`/`header_down` ops that render every part of the request into field values, so
/// that whatever the client sent is tried as a field value.
fn rendering_ops() -> Vec<HeaderOp> {
    let template = |parts: &[Placeholder]| Template {
        parts: parts
            .iter()
            .flat_map(|&p| [TemplatePart::Placeholder(p), TemplatePart::Literal(" ".into())])
            .collect(),
    };
    vec![
        HeaderOp::Set {
            name: "X-Fuzz-Request".into(),
            value: template(&[Placeholder::Method, Placeholder::Uri, Placeholder::HostPort]),
        },
        HeaderOp::Add {
            name: "X-Fuzz-Parts".into(),
            value: template(&[Placeholder::Host, Placeholder::Path, Placeholder::Query]),
        },
    ]
}

/// `header_down` ops with every response form: the rendering ops, a default, a wildcard
/// delete and a replacement in every field that writes the client's path into it.
fn response_ops() -> Vec<HeaderOp> {
    let mut ops = rendering_ops();
    let path = Template { parts: vec![TemplatePart::Placeholder(Placeholder::Path)] };
    ops.push(HeaderOp::Default { name: "X-Fuzz-Default".into(), value: path.clone() });
    ops.push(HeaderOp::RemoveMatching {
        pattern: FieldPattern { core: "-id".into(), any_prefix: true, any_suffix: false },
    });
    let find = FindPattern(regex::bytes::Regex::new("[a-f]").unwrap_or_else(|e| panic!("{e}")));
    ops.push(HeaderOp::Replace { name: "*".into(), find, replace: path });
    ops
}

/// Fields in a serialized head: its lines less the start line and the empty line.
fn field_count(head: &[u8]) -> usize {
    head.windows(2).filter(|w| w == b"\r\n").count().saturating_sub(2)
}

fn assert_forwarded_request_reparses(request: &Request) {
    let head = request.head();
    let mut out = Vec::new();
    write_request_head(&context(request, &[]), &rendering_ops(), &mut out);
    let Some(again) = reparse_request(&out) else { return };
    let what = String::from_utf8_lossy(&out);
    assert_eq!(again.head_len, out.len(), "{what:?}");
    assert_eq!(again.method, head.method, "{what:?}");
    assert_eq!(again.method_span.get(&out), request.method_token(), "{what:?}");
    assert_eq!(again.target.get(&out), request.target(), "{what:?}");
    assert_eq!(again.version, head.version, "{what:?}");
    assert_eq!(again.body, head.body, "{what:?}");
    // An HTTP/1.1 request with an empty Host goes out with the upstream's address, as from
    // Caddy (an HTTP/1.1 request must carry a Host an upstream accepts).
    if head.host_port.is_empty() && head.version == Version::Http11 {
        assert_eq!(again.host_port, "upstream.internal:8080", "{what:?}");
    } else {
        assert_eq!((&again.host, &again.host_port), (&head.host, &head.host_port), "{what:?}");
    }
    assert_eq!(again.match_path, head.match_path, "{what:?}");
    assert_eq!(again.websocket_upgrade, head.websocket_upgrade, "{what:?}");
    assert_eq!(again.expect_continue, head.expect_continue, "{what:?}");
}

/// Parse a head the proxy wrote; `None` when it has more fields than our parser takes.
fn reparse_request(out: &[u8]) -> Option<RequestHead> {
    let what = String::from_utf8_lossy(out);
    match parse_request(out, out.len() + 1) {
        Ok(Some(again)) => Some(again),
        Err(HeadError::TooLarge) if field_count(out) > MAX_HEADERS => None,
        other => panic!("the forwarded head {what:?} parses as {other:?}"),
    }
}

/// Take the first segment of the routing path as a `handle_path` prefix (as the config would
/// hold it: lower-case, without escapes) and check that the forwarded target routes, at an
/// upstream that normalises the way we do, like the rest of the routed path.
fn assert_stripped_request_routes_like_the_routed_path(request: &Request) {
    let head = request.head();
    let Some(after_slash) = head.match_path.strip_prefix('/') else { return };
    let segment = after_slash.split('/').next().unwrap_or_default();
    if segment.is_empty() || !segment.is_ascii() || segment.contains(['%', '*']) {
        return;
    }
    let prefix = format!("/{segment}");
    let rest = &head.match_path[prefix.len()..];
    let expected = if rest.is_empty() { "/" } else { rest };
    let mut out = Vec::new();
    write_request_head(&context(request, &[&prefix]), &[], &mut out);
    let Some(again) = reparse_request(&out) else { return };
    let what = String::from_utf8_lossy(&out);
    assert_eq!(
        again.match_path, expected,
        "{prefix} stripped from {:?}: {what:?}",
        head.match_path
    );
    assert_eq!((again.method, again.body), (head.method, head.body), "{what:?}");
}

fn assert_forwarded_response_reparses(
    buf: &[u8],
    head: &ResponseHead,
    request: &Request,
    close_client: bool,
) {
    let mut out = Vec::new();
    let ops = response_ops();
    write_response_head(buf, head, &ops, &context(request, &[]), close_client, &mut out);
    let what = String::from_utf8_lossy(&out);
    let method = request.head().method;
    let again = match parse_response(&out, method, out.len() + 1) {
        Ok(Some(again)) => again,
        Err(crate::http::head::UpstreamHeadError::TooLarge) if field_count(&out) > MAX_HEADERS => {
            return
        }
        other => panic!("the head forwarded to the client, {what:?}, parses as {other:?}"),
    };
    assert_eq!(again.head_len, out.len(), "{what:?}");
    assert_eq!(again.status, head.status, "{what:?}");
    assert_eq!(again.body, head.body, "{what:?}");
    assert_eq!(again.version, Version::Http11, "{what:?}");
    assert!(
        !again.reason.is_empty() || crate::http::response::reason_phrase(head.status).is_empty()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_requests_and_responses_pass_the_checks() {
        for input in [
            &b"GET /a/b?c=d HTTP/1.1\r\nHost: example.com:8443\r\n\r\n"[..],
            b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 3\r\n\r\nabc",
            b"PUT /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
            b"GET / HTTP/1.0\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\n",
        ] {
            request_head(input);
        }
        for input in [
            &b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi"[..],
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"HTTP/1.0 200 OK\r\n\r\nuntil close",
            b"HTTP/1.1 204 No Content\r\n\r\n",
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        ] {
            response_head(input);
        }
    }

    #[test]
    fn the_length_model_wants_one_plain_decimal_everywhere() {
        assert_eq!(model_length(&[b"5", b" 5 , 5"]), Some(5));
        assert_eq!(model_length(&[b"5", b"6"]), None);
        assert_eq!(model_length(&[b"5,"]), None);
        assert_eq!(model_length(&[b"+5"]), None);
        assert_eq!(model_length(&[b"18446744073709551616"]), None);
    }

    #[test]
    fn the_coding_model_wants_chunked_alone() {
        assert!(model_only_chunked(&[b" , Chunked ,"]));
        assert!(!model_only_chunked(&[b"gzip", b"chunked"]));
        assert!(!model_only_chunked(&[b"chunked, chunked"]));
        assert!(!model_only_chunked(&[b""]));
    }

    #[test]
    #[should_panic(expected = "Content-Length and Transfer-Encoding accepted")]
    fn the_request_framing_check_catches_a_smuggling_pair() {
        // Built by hand: the parser itself would (rightly) reject this head.
        let raw = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n";
        let mut head = match parse_request(b"POST / HTTP/1.1\r\nHost: a\r\n\r\n", 1024) {
            Ok(Some(head)) => head,
            other => panic!("{other:?}"),
        };
        let field = |name: &[u8], value: &[u8]| {
            let at = |part: &[u8]| {
                let start = raw.windows(part.len()).position(|w| w == part).unwrap() as u32;
                crate::http::Span { start, end: start + part.len() as u32 }
            };
            HeaderField { name: at(name), value: at(value) }
        };
        head.headers = vec![
            field(b"Host", b"a"),
            field(b"Content-Length", b"1"),
            field(b"Transfer-Encoding", b"chunked"),
        ];
        head.head_len = raw.len();
        head.body = RequestBody::Chunked;
        assert_request_framing(&head, raw);
    }

    #[test]
    fn field_counts_skip_the_start_line_and_the_end() {
        assert_eq!(field_count(b"GET / HTTP/1.1\r\n\r\n"), 0);
        assert_eq!(field_count(b"GET / HTTP/1.1\r\nHost: a\r\nX: y\r\n\r\n"), 2);
    }
}
