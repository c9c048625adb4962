//! Request heads: httparse, then the validation RFC 9110/9112 asks of a proxy (one Host,
//! unambiguous framing, a supported version and target form), into a [`RequestHead`] whose
//! spans index the bytes it was parsed from. Owns what a request head means; not how its bytes
//! are read or kept (see `http::request::Request`).

use std::mem::MaybeUninit;

use super::fields::{CodingError, CodingState, ConnectionTokens, LengthState};
use super::target::{parse_authority, split_target};
use super::{Method, RequestBody, Version};
use crate::config::limits::MAX_HEADERS;
use crate::http::path::normalize_path;
use crate::http::{list_elements, trim_ows, HeaderField, Span};

/// A validated request head. Spans point into the bytes it was parsed from, which
/// [`Request`](crate::http::request::Request) keeps together with it.
#[derive(Debug, Clone)]
pub struct RequestHead {
    /// Bytes of the head including the final CRLF; the body (or the next request) follows.
    pub head_len: usize,
    pub method: Method,
    pub method_span: Span,
    pub version: Version,
    /// Origin-form target (path and query) to forward. For absolute-form requests this is the
    /// part after the authority (`/` if empty); for `OPTIONS *` it is `*`.
    pub target: Span,
    /// The path part of `target` (before `?`).
    pub path: Span,
    /// Host without port, lower-case; from the absolute-form authority if present, else Host.
    /// Empty only for HTTP/1.0 requests without Host (or an empty Host field, which RFC 9112
    /// §3.2 allows).
    pub host: String,
    /// Host as received, with port if any (for X-Forwarded-Host and `{hostport}`).
    pub host_port: String,
    /// Path normalised for routing (see [`normalize_path`]).
    pub match_path: String,
    pub headers: Vec<HeaderField>,
    pub body: RequestBody,
    /// Whether the client allows the connection to stay open after this exchange
    /// (HTTP/1.1 without `Connection: close`, or HTTP/1.0 with `Connection: keep-alive`).
    pub keep_alive: bool,
    /// `Connection: upgrade` with `Upgrade: websocket` (case-insensitive) on an HTTP/1.1 `GET`
    /// without a body (RFC 9110 §7.8: Upgrade in an HTTP/1.0 request is ignored; RFC 6455
    /// §4.1). Any other Upgrade request is forwarded as a plain request, its Upgrade dropped.
    pub websocket_upgrade: bool,
    /// `Expect: 100-continue` on HTTP/1.1 (RFC 9110 §10.1.1: ignored for HTTP/1.0).
    pub expect_continue: bool,
}

impl RequestHead {
    /// Every value of the field `name` (any case), in order.
    pub fn values<'a, 'b: 'a>(
        &'a self,
        buf: &'b [u8],
        name: &'a str,
    ) -> impl Iterator<Item = &'b [u8]> + 'a {
        crate::http::field_values(&self.headers, buf, name)
    }

    /// The query of `target` without its `?` (empty when there is none).
    pub fn query<'b>(&self, buf: &'b [u8]) -> &'b [u8] {
        let target = self.target.get(buf);
        match target.get(self.path.len()..) {
            Some([b'?', query @ ..]) => query,
            _ => &[],
        }
    }
}

/// Why a request head was rejected. Each maps to one synthesized response, then close.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HeadError {
    /// 400: request line or a field line does not parse, a target in no supported form,
    /// chunked applied twice, Transfer-Encoding on HTTP/1.0.
    #[error("malformed request head")]
    Malformed,
    /// 431: the head does not fit in `max_head_bytes`, or has more than `MAX_HEADERS` fields.
    #[error("request head larger than the limit")]
    TooLarge,
    /// 400 (RFC 9112 §3.2).
    #[error("HTTP/1.1 request without Host")]
    MissingHost,
    /// 400 (RFC 9112 §3.2): several Host fields, or a value that is not `host[:port]`.
    #[error("more than one Host header, or an invalid Host")]
    BadHost,
    /// 400 (RFC 9112 §6.3 rule 5).
    #[error("invalid or conflicting Content-Length")]
    BadContentLength,
    /// 400 and close (RFC 9112 §6.1, §6.3 rule 3).
    #[error("both Content-Length and Transfer-Encoding")]
    LengthAndTransferEncoding,
    /// 400 (RFC 9112 §6.3 rule 4).
    #[error("Transfer-Encoding whose final coding is not chunked")]
    TransferEncodingNotChunked,
    /// 501 (RFC 9112 §6.1): a coding other than chunked before the final chunked.
    #[error("unsupported transfer coding")]
    UnsupportedTransferEncoding,
    /// 505: a well-formed `HTTP/x.y` version other than 1.0 and 1.1.
    #[error("unsupported HTTP version")]
    UnsupportedVersion,
    /// 405: CONNECT (we are not a forward proxy).
    #[error("CONNECT is not supported")]
    Connect,
}

/// Parse and validate a request head at the start of `buf`.
/// `Ok(None)`: incomplete, read more (unless `buf.len() >= max_head_bytes`, which is `TooLarge`).
///
/// Empty lines before the request line are skipped (RFC 9112 §2.2) and counted in `head_len`.
pub fn parse_request(buf: &[u8], max_head_bytes: usize) -> Result<Option<RequestHead>, HeadError> {
    // Parsing only the first `max_head_bytes` makes "the head must fit in the limit" a single
    // rule, whether the bytes arrived in one read or many.
    let window = &buf[..buf.len().min(max_head_bytes)];
    let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    let head_len = match req.parse_with_uninit_headers(window, &mut slots) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() >= max_head_bytes => {
            return Err(HeadError::TooLarge)
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooLarge),
        Err(httparse::Error::Version) => return Err(classify_bad_version(window)),
        Err(_) => return Err(HeadError::Malformed),
    };
    let (Some(method_str), Some(target_str), Some(minor)) = (req.method, req.path, req.version)
    else {
        // httparse fills all three on Complete; treat the impossible as garbage, not a panic.
        return Err(HeadError::Malformed);
    };
    let method = Method::from_token(method_str.as_bytes());
    if method == Method::Connect {
        return Err(HeadError::Connect);
    }
    let version = if minor == 0 { Version::Http10 } else { Version::Http11 };

    let target_bytes = target_str.as_bytes();
    if target_bytes.contains(&b'#') {
        return Err(HeadError::Malformed);
    }
    let (target, authority) = split_target(buf, method, target_bytes)?;

    let mut fields = Vec::with_capacity(req.headers.len());
    let mut seen = FieldsSeen::default();
    for h in req.headers.iter() {
        let (name, value) = (h.name.as_bytes(), h.value);
        fields.push(HeaderField { name: Span::within(buf, name), value: Span::within(buf, value) });
        seen.add(name, value)?;
    }
    let FieldsSeen {
        host_fields,
        host_value,
        length,
        coding,
        conn,
        upgrade_websocket,
        expect_continue,
    } = seen;

    let (host, host_port) = routing_host(version, host_fields, host_value, authority)?;

    let body = request_framing(version, &length, &coding)?;

    let path_len = target.get(buf).iter().position(|&b| b == b'?').unwrap_or(target.len());
    let path = Span { start: target.start, end: target.start + path_len as u32 };
    let mut match_path = String::new();
    normalize_path(path.get(buf), &mut match_path);

    let keep_alive = match version {
        Version::Http11 => !conn.close,
        Version::Http10 => conn.keep_alive && !conn.close,
    };
    let http11 = version == Version::Http11;
    Ok(Some(RequestHead {
        head_len,
        method,
        method_span: Span::within(buf, method_str.as_bytes()),
        version,
        target,
        path,
        host: host.to_ascii_lowercase(),
        // Validated by `parse_authority`: ASCII only, so this never replaces anything.
        host_port: String::from_utf8_lossy(host_port).into_owned(),
        match_path,
        headers: fields,
        body,
        keep_alive,
        // RFC 6455 §4.1: the opening handshake is a GET, and a request with a body could not
        // switch protocols where its body ends anyway.
        websocket_upgrade: http11
            && conn.upgrade
            && upgrade_websocket
            && method == Method::Get
            && matches!(body, RequestBody::None | RequestBody::Length(0)),
        expect_continue: http11 && expect_continue,
    }))
}

/// The host to route by (without port, not yet lower-cased) and the authority as received.
fn routing_host<'b>(
    version: Version,
    host_fields: u32,
    host_value: &'b [u8],
    authority: Option<&'b [u8]>,
) -> Result<(&'b str, &'b [u8]), HeadError> {
    // Host first: RFC 9112 §3.2 requires exactly one on HTTP/1.1, even alongside an
    // absolute-form target (whose authority then wins).
    if host_fields > 1 {
        return Err(HeadError::BadHost);
    }
    if host_fields == 0 && version == Version::Http11 {
        return Err(HeadError::MissingHost);
    }
    let header_host = if host_fields == 1 { Some(parse_authority(host_value)?) } else { None };
    match authority {
        Some([]) => Err(HeadError::BadHost),
        Some(auth) => Ok((parse_authority(auth)?, auth)),
        None => Ok((header_host.unwrap_or_default(), host_value)),
    }
}

/// What the fields of a request head say about its routing and framing, gathered in one pass.
#[derive(Default)]
struct FieldsSeen<'b> {
    host_fields: u32,
    host_value: &'b [u8],
    length: LengthState,
    coding: CodingState,
    conn: ConnectionTokens,
    upgrade_websocket: bool,
    expect_continue: bool,
}

impl<'b> FieldsSeen<'b> {
    fn add(&mut self, name: &[u8], value: &'b [u8]) -> Result<(), HeadError> {
        if name.eq_ignore_ascii_case(b"host") {
            self.host_fields += 1;
            self.host_value = value;
        } else if name.eq_ignore_ascii_case(b"content-length") {
            self.length.add(value).map_err(|()| HeadError::BadContentLength)?;
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            self.coding.add(value);
        } else if name.eq_ignore_ascii_case(b"connection") {
            self.conn.add(value);
        } else if name.eq_ignore_ascii_case(b"upgrade") {
            self.upgrade_websocket |= list_elements(value).any(is_websocket_protocol);
        } else if name.eq_ignore_ascii_case(b"expect") {
            self.expect_continue |= trim_ows(value).eq_ignore_ascii_case(b"100-continue");
        }
        Ok(())
    }
}

/// httparse reports every version other than `HTTP/1.0` and `HTTP/1.1` as `Error::Version`.
/// A version that is well-formed but unsupported (`HTTP/2.0`, `HTTP/9.9`) deserves 505; anything
/// else is a garbage request line (400).
fn classify_bad_version(window: &[u8]) -> HeadError {
    let start = window.iter().position(|&b| b != b'\r' && b != b'\n').unwrap_or(window.len());
    let line = &window[start..];
    let line = &line[..line.iter().position(|&b| b == b'\r' || b == b'\n').unwrap_or(line.len())];
    // httparse has already accepted the method and the target, each followed by one space.
    let mut parts = line.splitn(3, |&b| b == b' ');
    let version = match (parts.next(), parts.next(), parts.next()) {
        (Some(_), Some(_), Some(version)) => version,
        _ => return HeadError::Malformed,
    };
    let Some(number) = version.strip_prefix(b"HTTP/") else {
        return HeadError::Malformed;
    };
    let (major, minor) = match number.iter().position(|&b| b == b'.') {
        Some(dot) => (&number[..dot], Some(&number[dot + 1..])),
        None => (number, None),
    };
    let digits = |s: &[u8]| !s.is_empty() && s.len() <= 3 && s.iter().all(u8::is_ascii_digit);
    if digits(major) && minor.is_none_or(digits) {
        HeadError::UnsupportedVersion
    } else {
        HeadError::Malformed
    }
}

fn is_websocket_protocol(element: &[u8]) -> bool {
    // `protocol-name ["/" protocol-version]` (RFC 9110 §7.8).
    let name = element.split(|&b| b == b'/').next().unwrap_or_default();
    name.eq_ignore_ascii_case(b"websocket")
}

/// RFC 9112 §6.3 for requests, in the order the rules are listed there.
fn request_framing(
    version: Version,
    length: &LengthState,
    coding: &CodingState,
) -> Result<RequestBody, HeadError> {
    if coding.present {
        // Rule 3: both present is a smuggling attempt until proven otherwise; 400 and close.
        if length.value.is_some() {
            return Err(HeadError::LengthAndTransferEncoding);
        }
        // §6.1: Transfer-Encoding on HTTP/1.0 means the framing is faulty.
        if version == Version::Http10 {
            return Err(HeadError::Malformed);
        }
        return match coding.check() {
            Ok(_) => Ok(RequestBody::Chunked),
            Err(CodingError::NotChunked) => Err(HeadError::TransferEncodingNotChunked),
            Err(CodingError::ChunkedTwice) => Err(HeadError::Malformed),
            Err(CodingError::Unsupported) => Err(HeadError::UnsupportedTransferEncoding),
        };
    }
    Ok(match length.value {
        Some(n) => RequestBody::Length(n),
        // Rule 7: a request without either has no body.
        None => RequestBody::None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: usize = 64 * 1024;

    fn req(raw: &[u8]) -> Result<Option<RequestHead>, HeadError> {
        parse_request(raw, MAX)
    }

    fn ok(raw: &[u8]) -> RequestHead {
        match req(raw) {
            Ok(Some(head)) => head,
            other => panic!("{:?}: {other:?}", String::from_utf8_lossy(raw)),
        }
    }

    #[test]
    fn simple_get_is_parsed_with_spans_into_the_buffer() {
        let raw = b"GET /Api/x?q=1 HTTP/1.1\r\nHost: Example.COM:8080\r\nX-A: b\r\n\r\nNEXT";
        let head = ok(raw);
        assert_eq!(head.head_len, raw.len() - 4);
        assert_eq!(head.method, Method::Get);
        assert_eq!(head.method_span.get(raw), b"GET");
        assert_eq!(head.version, Version::Http11);
        assert_eq!(head.target.get(raw), b"/Api/x?q=1");
        assert_eq!(head.path.get(raw), b"/Api/x");
        assert_eq!(head.query(raw), b"q=1");
        assert_eq!(head.host, "example.com");
        assert_eq!(head.host_port, "Example.COM:8080");
        assert_eq!(head.match_path, "/api/x");
        assert_eq!(head.headers.len(), 2);
        assert_eq!(head.headers[1].name.get(raw), b"X-A");
        assert_eq!(head.headers[1].value.get(raw), b"b");
        assert_eq!(head.values(raw, "x-a").collect::<Vec<_>>(), vec![&b"b"[..]]);
        assert_eq!(head.body, RequestBody::None);
        assert!(head.keep_alive);
        assert!(!head.websocket_upgrade);
        assert!(!head.expect_continue);
    }

    #[test]
    fn incomplete_heads_ask_for_more() {
        let raw = b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\n";
        for cut in 0..raw.len() {
            assert_eq!(req(&raw[..cut]).map(|h| h.is_some()), Ok(false), "cut at {cut}");
        }
        assert_eq!(ok(raw).body, RequestBody::Length(3));
    }

    #[test]
    fn a_head_over_the_limit_is_too_large() {
        let mut raw = b"GET / HTTP/1.1\r\nHost: a\r\nX: ".to_vec();
        raw.extend(std::iter::repeat_n(b'a', 200));
        assert_eq!(parse_request(&raw, 100).map(|h| h.is_some()), Err(HeadError::TooLarge));
        // A complete head that only ends past the limit is too large as well.
        raw.extend_from_slice(b"\r\n\r\n");
        assert_eq!(parse_request(&raw, 100).map(|h| h.is_some()), Err(HeadError::TooLarge));
        assert!(parse_request(&raw, raw.len()).unwrap().is_some());
        // Under the limit and incomplete: read more.
        assert_eq!(parse_request(&raw[..50], 100).map(|h| h.is_some()), Ok(false));
    }

    #[test]
    fn too_many_fields_is_too_large() {
        let mut raw = b"GET / HTTP/1.1\r\nHost: a\r\n".to_vec();
        for i in 0..MAX_HEADERS {
            raw.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
        }
        raw.extend_from_slice(b"\r\n");
        assert_eq!(req(&raw).map(|h| h.is_some()), Err(HeadError::TooLarge));
    }

    #[test]
    fn request_line_target_and_host_rejections_table() {
        use HeadError::*;
        let cases: &[(&[u8], HeadError)] = &[
            (b"GARBAGE\r\n\r\n", Malformed),
            (b"GET\r\n\r\n", Malformed),
            (b"GET /\r\n\r\n", Malformed),
            (b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n", Malformed),
            (b"GET / HTTP/1.1 \r\nHost: a\r\n\r\n", Malformed),
            (b"GET / http/1.1\r\nHost: a\r\n\r\n", Malformed),
            (b"GET / HTTP/1.x\r\nHost: a\r\n\r\n", Malformed),
            (b"GET / FOO/1.1\r\nHost: a\r\n\r\n", Malformed),
            (b"GET x HTTP/1.1\r\nHost: a\r\n\r\n", Malformed),
            (b"GET * HTTP/1.1\r\nHost: a\r\n\r\n", Malformed),
            (b"GET ftp://a/x HTTP/1.1\r\nHost: a\r\n\r\n", Malformed),
            (b"GET http://a?x HTTP/1.1\r\nHost: a\r\n\r\n", Malformed),
            (b"GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n", Malformed),
            (b"GET / HTTP/1.1\r\nHost : a\r\n\r\n", Malformed),
            (b"GET / HTTP/1.1\r\nHost: a\r\nX : b\r\n\r\n", Malformed),
            (b"GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n", Malformed),
            (b"GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n", Malformed),
            (b"GET / HTTP/1.1\r\nHost: a\r\nX: a\nb\r\n\r\n", Malformed),
            (b"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n", Malformed),
            (b"GET / HTTP/1.1\r\n Host: a\r\n\r\n", Malformed),
            (b"GET / HTTP/1.1\r\nNoColon\r\n\r\n", Malformed),
            (b"GET / HTTP/1.1\r\nHost: a\r\n\rX\r\n", Malformed),
            (b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", UnsupportedVersion),
            (b"GET / HTTP/9.9\r\nHost: a\r\n\r\n", UnsupportedVersion),
            (b"GET / HTTP/1.2\r\nHost: a\r\n\r\n", UnsupportedVersion),
            (b"GET / HTTP/2\r\nHost: a\r\n\r\n", UnsupportedVersion),
            (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", UnsupportedVersion),
            (b"GET / HTTP/3", UnsupportedVersion),
            (b"GET / HTTP/1.1\r\n\r\n", MissingHost),
            (b"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", BadHost),
            (b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", BadHost),
            (b"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", BadHost),
            (b"GET / HTTP/1.1\r\nHost: a@b\r\n\r\n", BadHost),
            (b"GET / HTTP/1.1\r\nHost: a:b\r\n\r\n", BadHost),
            (b"GET / HTTP/1.1\r\nHost: a:1:2\r\n\r\n", BadHost),
            (b"GET / HTTP/1.1\r\nHost: a:99999\r\n\r\n", BadHost),
            (b"GET / HTTP/1.1\r\nHost: a\tb\r\n\r\n", BadHost),
            (b"GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", BadHost),
            (b"GET / HTTP/1.1\r\nHost: [::1]x\r\n\r\n", BadHost),
            (b"GET / HTTP/1.1\r\nHost: [zz]\r\n\r\n", BadHost),
            (b"GET / HTTP/1.1\r\nHost: \xc3\xa9\r\n\r\n", BadHost),
            (b"GET http://u@a/ HTTP/1.1\r\nHost: a\r\n\r\n", BadHost),
            (b"GET http:///x HTTP/1.1\r\nHost: a\r\n\r\n", BadHost),
            (b"GET http://a b/ HTTP/1.1\r\nHost: a\r\n\r\n", Malformed),
            (b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", Connect),
            (b"CONNECT / HTTP/1.1\r\nHost: a\r\n\r\n", Connect),
        ];
        assert_rejections(cases);
    }

    #[test]
    fn framing_rejections_table() {
        use HeadError::*;
        let cases: &[(&[u8], HeadError)] = &[
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: x\r\n\r\n", BadContentLength),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", BadContentLength),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +1\r\n\r\n", BadContentLength),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1 2\r\n\r\n", BadContentLength),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: \r\n\r\n", BadContentLength),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x10\r\n\r\n", BadContentLength),
            (
                b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n",
                BadContentLength,
            ),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 6\r\n\r\n", BadContentLength),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5,\r\n\r\n", BadContentLength),
            (
                b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
                BadContentLength,
            ),
            (
                b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
                LengthAndTransferEncoding,
            ),
            (
                b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n",
                LengthAndTransferEncoding,
            ),
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", TransferEncodingNotChunked),
            (
                b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
                TransferEncodingNotChunked,
            ),
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \r\n\r\n", TransferEncodingNotChunked),
            (
                b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n",
                TransferEncodingNotChunked,
            ),
            (
                b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked;x=1\r\n\r\n",
                TransferEncodingNotChunked,
            ),
            (
                b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
                UnsupportedTransferEncoding,
            ),
            (
                b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: foo\r\nTransfer-Encoding: chunked\r\n\r\n",
                UnsupportedTransferEncoding,
            ),
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", Malformed),
            (b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", Malformed),
        ];
        assert_rejections(cases);
    }

    fn assert_rejections(cases: &[(&[u8], HeadError)]) {
        for (raw, want) in cases {
            let got = req(raw).map(|h| h.map(|h| h.head_len));
            assert_eq!(got, Err(*want), "{:?}", String::from_utf8_lossy(raw));
        }
    }

    #[test]
    fn accepted_variants_table() {
        let cases: &[(&[u8], &str, &str, &str, RequestBody)] = &[
            // raw, host, host_port, target, body
            (b"GET / HTTP/1.0\r\n\r\n", "", "", "/", RequestBody::None),
            (b"GET / HTTP/1.1\r\nHost:\r\n\r\n", "", "", "/", RequestBody::None),
            (b"GET / HTTP/1.1\nHost: a\n\n", "a", "a", "/", RequestBody::None),
            (b"\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", "a", "a", "/", RequestBody::None),
            (
                b"GET / HTTP/1.1\r\nhOsT: [::1]:8080\r\n\r\n",
                "::1",
                "[::1]:8080",
                "/",
                RequestBody::None,
            ),
            (
                b"GET / HTTP/1.1\r\nHost: [FE80::1]\r\n\r\n",
                "fe80::1",
                "[FE80::1]",
                "/",
                RequestBody::None,
            ),
            (
                b"GET / HTTP/1.1\r\nHost: 127.0.0.1:\r\n\r\n",
                "127.0.0.1",
                "127.0.0.1:",
                "/",
                RequestBody::None,
            ),
            (
                b"GET http://Other.Example:81/p?q HTTP/1.1\r\nHost: a\r\n\r\n",
                "other.example",
                "Other.Example:81",
                "/p?q",
                RequestBody::None,
            ),
            (b"GET HTTPS://b HTTP/1.1\r\nHost: a\r\n\r\n", "b", "b", "/", RequestBody::None),
            (b"GET http://b HTTP/1.0\r\n\r\n", "b", "b", "/", RequestBody::None),
            (b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", "a", "a", "*", RequestBody::None),
            (b"PURGE /x HTTP/1.1\r\nHost: a\r\n\r\n", "a", "a", "/x", RequestBody::None),
            (
                b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
                "a",
                "a",
                "/",
                RequestBody::Length(0),
            ),
            (
                b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 007\r\n\r\n",
                "a",
                "a",
                "/",
                RequestBody::Length(7),
            ),
            (
                b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n",
                "a",
                "a",
                "/",
                RequestBody::Length(5),
            ),
            (
                b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-length: 5\r\n\r\n",
                "a",
                "a",
                "/",
                RequestBody::Length(5),
            ),
            (
                b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 18446744073709551615\r\n\r\n",
                "a",
                "a",
                "/",
                RequestBody::Length(u64::MAX),
            ),
            (
                b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n",
                "a",
                "a",
                "/",
                RequestBody::Chunked,
            ),
            (
                b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: , chunked ,\r\n\r\n",
                "a",
                "a",
                "/",
                RequestBody::Chunked,
            ),
        ];
        for (raw, host, host_port, target, body) in cases {
            let head = ok(raw);
            let what = String::from_utf8_lossy(raw);
            assert_eq!(head.host, *host, "{what:?}");
            assert_eq!(head.host_port, *host_port, "{what:?}");
            assert_eq!(head.target.get(raw), target.as_bytes(), "{what:?}");
            assert_eq!(head.body, *body, "{what:?}");
        }
    }

    #[test]
    fn unknown_methods_are_kept_verbatim() {
        let raw = b"get /x HTTP/1.1\r\nHost: a\r\n\r\n";
        let head = ok(raw);
        assert_eq!(head.method, Method::Other);
        assert_eq!(head.method_span.get(raw), b"get");
    }

    #[test]
    fn absolute_form_routes_by_its_authority_and_normalises_the_path() {
        let raw = b"GET http://api.example/API//Auth/../auth/x HTTP/1.1\r\nHost: evil\r\n\r\n";
        let head = ok(raw);
        assert_eq!(head.host, "api.example");
        assert_eq!(head.match_path, "/api/auth/x");
        assert_eq!(head.path.get(raw), b"/API//Auth/../auth/x");
    }

    #[test]
    fn connection_semantics() {
        let cases: &[(&[u8], bool, bool)] = &[
            // raw, keep_alive, websocket_upgrade
            (b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", true, false),
            (b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", false, false),
            (b"GET / HTTP/1.1\r\nHost: a\r\nConnection: x, CLOSE\r\n\r\n", false, false),
            (b"GET / HTTP/1.0\r\n\r\n", false, false),
            (b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", true, false),
            (b"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n", false, false),
            (
                b"GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\nUpgrade: WebSocket\r\n\r\n",
                true,
                true,
            ),
            (
                b"GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: foo, websocket/13\r\n\r\n",
                true,
                true,
            ),
            (b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n", true, false),
            (b"GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: h2c\r\n\r\n", true, false),
            (b"GET / HTTP/1.1\r\nHost: a\r\nConnection: upgraded\r\nUpgrade: websocket\r\n\r\n", true, false),
            (b"GET / HTTP/1.0\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n", false, false),
            (b"POST / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n", true, false),
            (
                b"GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: websocket\r\nContent-Length: 2\r\n\r\n",
                true,
                false,
            ),
            (
                b"GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: h2c, websocket\r\n\r\n",
                true,
                true,
            ),
        ];
        for (raw, keep_alive, ws) in cases {
            let head = ok(raw);
            let what = String::from_utf8_lossy(raw);
            assert_eq!(head.keep_alive, *keep_alive, "{what:?}");
            assert_eq!(head.websocket_upgrade, *ws, "{what:?}");
        }
    }

    #[test]
    fn expect_continue_only_on_http11() {
        assert!(
            ok(b"PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\n")
                .expect_continue
        );
        assert!(
            !ok(b"PUT / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n")
                .expect_continue
        );
        assert!(!ok(b"PUT / HTTP/1.1\r\nHost: a\r\nExpect: 200-ok\r\n\r\n").expect_continue);
    }

    #[test]
    fn bytes_after_the_head_are_not_consumed() {
        let raw = b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n";
        let first = ok(raw);
        let second = ok(&raw[first.head_len..]);
        assert_eq!(first.head_len + second.head_len, raw.len());
        assert_eq!(second.match_path, "/2");
    }

    proptest::proptest! {
        #[test]
        fn parse_request_never_panics(raw in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            let _ = parse_request(&raw, 200);
        }

        #[test]
        fn parse_request_never_panics_on_near_valid_input(
            prefix in proptest::sample::select(vec![
                &b"GET "[..], b"POST ", b"OPTIONS ", b"CONNECT ", b"GET http://",
            ]),
            rest in proptest::collection::vec(proptest::sample::select(
                b" /:\r\n\t,[]@?#%.0123456789abcHTPosthnkedgzipContent-LengthTransfer-Encoding".to_vec()
            ), 0..200),
        ) {
            let mut raw = prefix.to_vec();
            raw.extend_from_slice(&rest);
            if let Ok(Some(head)) = parse_request(&raw, 1024) {
                proptest::prop_assert!(head.head_len <= raw.len());
                proptest::prop_assert!(head.target.end as usize <= head.head_len);
            }
        }
    }
}
