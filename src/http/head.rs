//! Request and response heads: httparse plus the RFC 9110/9112 validation a proxy owes its
//! upstreams (framing, Host, version), so that ambiguous requests never reach a backend.
//!
//! Owns: turning the bytes of a head into a validated [`RequestHead`] / [`ResponseHead`] with
//! spans into the caller's buffer, and the framing decision (RFC 9112 §6.3). Does not own: the
//! reading of bytes, the status a rejection gets (the driver maps [`HeadError`] to an answer),
//! or what is forwarded (see `rewrite`, which re-serializes every head, so nothing the client
//! wrote reaches an upstream unchecked).
//!
//! Decisions where the RFCs leave a choice:
//! - Bare LF as a line terminator is accepted in heads (RFC 9112 §2.2 allows it): heads are
//!   re-serialized with CRLF before forwarding, so no upstream sees the difference. Chunked
//!   bodies pass verbatim and get no such leniency (see `chunked`).
//! - Several `Content-Length` values are merged when they are all equal, whether in one field
//!   (`5, 5`) or in several, as RFC 9110 §8.6 permits; any difference is an error. The upstream
//!   receives a single canonical `Content-Length`.
//! - The only transfer coding accepted in a request is a lone `chunked`: a final coding other
//!   than chunked is 400 (RFC 9112 §6.3 rule 4); codings before chunked are 501 (§6.1: we do not
//!   implement them, and forwarding codings we cannot check invites disagreement).
//! - Absolute-form targets (`http://host/path`) route by their authority (RFC 9112 §3.2.2);
//!   HTTP/1.1 still requires a valid Host field (as Go/Caddy do). `http://host?q` (empty path
//!   with a query) is rejected: its origin form `/?q` is not a slice of the buffer, and no real
//!   client sends it.
//! - A `#` in the target is rejected: request targets have no fragment, and an upstream that
//!   strips one would see a different path than the one we routed.

use std::mem::MaybeUninit;

use super::path::normalize_path;
use super::{list_elements, trim_ows, HeaderField, Span};
use crate::config::limits::MAX_HEADERS;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    Http10,
    Http11,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Post,
    Put,
    Delete,
    Options,
    Patch,
    Trace,
    Connect,
    /// Any other token; the text is in `RequestHead::method_span`.
    Other,
}

impl Method {
    /// Methods are case-sensitive (RFC 9110 §9.1): `get` is an unknown method, not GET.
    fn from_token(token: &[u8]) -> Method {
        match token {
            b"GET" => Method::Get,
            b"HEAD" => Method::Head,
            b"POST" => Method::Post,
            b"PUT" => Method::Put,
            b"DELETE" => Method::Delete,
            b"OPTIONS" => Method::Options,
            b"PATCH" => Method::Patch,
            b"TRACE" => Method::Trace,
            b"CONNECT" => Method::Connect,
            _ => Method::Other,
        }
    }
}

/// How a request body is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestBody {
    None,
    /// `Content-Length: n`; `Length(0)` is kept distinct from `None` so that the upstream still
    /// receives `Content-Length: 0` (some servers answer 411 to a bodiless POST without it).
    Length(u64),
    Chunked,
}

/// How a response body is delimited (RFC 9112 §6.3), given the request it answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseBody {
    /// HEAD responses, 1xx, 204, 304, and `Content-Length: 0`.
    None,
    Length(u64),
    Chunked,
    /// No length: the body runs until the upstream closes.
    CloseDelimited,
}

/// A validated request head. Spans point into the buffer it was parsed from, which the
/// connection keeps until the head has been forwarded.
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
    /// `Connection: upgrade` with `Upgrade: websocket` (case-insensitive) on HTTP/1.1
    /// (RFC 9110 §7.8: Upgrade in an HTTP/1.0 request is ignored).
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
        super::field_values(&self.headers, buf, name)
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
    let mut host_fields = 0u32;
    let mut host_value: &[u8] = &[];
    let mut length = LengthState::default();
    let mut coding = CodingState::default();
    let mut conn = ConnectionTokens::default();
    let mut upgrade_websocket = false;
    let mut expect_continue = false;
    for h in req.headers.iter() {
        let name = h.name.as_bytes();
        let value = h.value;
        fields.push(HeaderField { name: Span::within(buf, name), value: Span::within(buf, value) });
        if name.eq_ignore_ascii_case(b"host") {
            host_fields += 1;
            host_value = value;
        } else if name.eq_ignore_ascii_case(b"content-length") {
            length.add(value).map_err(|()| HeadError::BadContentLength)?;
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            coding.add(value);
        } else if name.eq_ignore_ascii_case(b"connection") {
            conn.add(value);
        } else if name.eq_ignore_ascii_case(b"upgrade") {
            upgrade_websocket |= list_elements(value).any(is_websocket_protocol);
        } else if name.eq_ignore_ascii_case(b"expect") {
            expect_continue |= trim_ows(value).eq_ignore_ascii_case(b"100-continue");
        }
    }

    // Host first: RFC 9112 §3.2 requires exactly one on HTTP/1.1, even alongside an
    // absolute-form target (whose authority then wins).
    if host_fields > 1 {
        return Err(HeadError::BadHost);
    }
    if host_fields == 0 && version == Version::Http11 {
        return Err(HeadError::MissingHost);
    }
    let header_host = if host_fields == 1 { Some(parse_authority(host_value)?) } else { None };
    let (host, host_port) = match authority {
        Some(auth) => {
            if auth.is_empty() {
                return Err(HeadError::BadHost);
            }
            (parse_authority(auth)?, auth)
        }
        None => (header_host.unwrap_or_default(), host_value),
    };

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
        websocket_upgrade: http11 && conn.upgrade && upgrade_websocket,
        expect_continue: http11 && expect_continue,
    }))
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

/// Classify the request target (RFC 9112 §3.2): returns the origin-form span to forward and, for
/// absolute-form, the authority that replaces Host.
fn split_target<'b>(
    buf: &'b [u8],
    method: Method,
    target: &'b [u8],
) -> Result<(Span, Option<&'b [u8]>), HeadError> {
    match target {
        [b'/', ..] => Ok((Span::within(buf, target), None)),
        b"*" if method == Method::Options => Ok((Span::within(buf, target), None)),
        _ => {
            let rest = strip_prefix_ci(target, b"http://")
                .or_else(|| strip_prefix_ci(target, b"https://"))
                .ok_or(HeadError::Malformed)?;
            let auth_len = rest.iter().position(|&b| b == b'/' || b == b'?').unwrap_or(rest.len());
            let (authority, origin) = rest.split_at(auth_len);
            if authority.contains(&b'@') {
                // userinfo is deprecated (RFC 9110 §4.2.4) and only good for confusing logs.
                return Err(HeadError::BadHost);
            }
            match origin {
                [b'/', ..] => Ok((Span::within(buf, origin), Some(authority))),
                // `http://host`: the origin form is `/`. The slash is borrowed from `://`, the
                // byte just before the authority, so the target stays a span of the buffer.
                [] => {
                    let scheme = &target[..target.len() - rest.len()];
                    Ok((Span::within(buf, scheme).last_byte(), Some(authority)))
                }
                _ => Err(HeadError::Malformed),
            }
        }
    }
}

impl Span {
    fn last_byte(self) -> Span {
        Span { start: self.end - 1, end: self.end }
    }
}

fn strip_prefix_ci<'a>(s: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    match s.get(..prefix.len()) {
        Some(head) if head.eq_ignore_ascii_case(prefix) => Some(&s[prefix.len()..]),
        _ => None,
    }
}

/// Validate `host[:port]` loosely (RFC 3986 reg-name / IPv4 / bracketed IPv6, a numeric port)
/// and return the host without port or brackets, not yet lower-cased. Control characters,
/// spaces, non-ASCII and URI delimiters are rejected, as Go's `ValidHostHeader` does.
fn parse_authority(value: &[u8]) -> Result<&str, HeadError> {
    let (host, port) = if let Some(rest) = value.strip_prefix(b"[") {
        let close = rest.iter().position(|&b| b == b']').ok_or(HeadError::BadHost)?;
        let (inside, after) = (&rest[..close], &rest[close + 1..]);
        let ipv6_byte = |b: &u8| b.is_ascii_hexdigit() || *b == b':' || *b == b'.';
        if inside.is_empty() || !inside.iter().all(ipv6_byte) {
            return Err(HeadError::BadHost);
        }
        match after {
            [] => (inside, None),
            [b':', port @ ..] => (inside, Some(port)),
            _ => return Err(HeadError::BadHost),
        }
    } else {
        let (host, port) = match value.iter().position(|&b| b == b':') {
            Some(colon) => (&value[..colon], Some(&value[colon + 1..])),
            None => (value, None),
        };
        if !host.iter().all(|&b| is_reg_name_byte(b)) {
            return Err(HeadError::BadHost);
        }
        (host, port)
    };
    // An empty port is allowed by RFC 3986 §3.2.3 (`host:`).
    if let Some(port) = port {
        if port.len() > 5 || !port.iter().all(u8::is_ascii_digit) {
            return Err(HeadError::BadHost);
        }
        let number = port.iter().fold(0u32, |n, &d| n * 10 + u32::from(d - b'0'));
        if number > u32::from(u16::MAX) {
            return Err(HeadError::BadHost);
        }
    }
    // Every accepted byte is ASCII.
    std::str::from_utf8(host).map_err(|_| HeadError::BadHost)
}

/// unreserved / pct-encoded / sub-delims (RFC 3986 §3.2.2 reg-name).
fn is_reg_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.'
                | b'_'
                | b'~'
                | b'%'
                | b'!'
                | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
        )
}

fn is_websocket_protocol(element: &[u8]) -> bool {
    // `protocol-name ["/" protocol-version]` (RFC 9110 §7.8).
    let name = element.split(|&b| b == b'/').next().unwrap_or_default();
    name.eq_ignore_ascii_case(b"websocket")
}

/// Content-Length values seen so far (RFC 9110 §8.6).
#[derive(Debug, Default)]
struct LengthState {
    value: Option<u64>,
}

impl LengthState {
    /// Merge one field value; `Err` on a non-numeric, overflowing or conflicting value.
    fn add(&mut self, value: &[u8]) -> Result<(), ()> {
        let mut any = false;
        for element in value.split(|&b| b == b',').map(trim_ows) {
            let n = parse_decimal(element)?;
            if self.value.is_some_and(|seen| seen != n) {
                return Err(());
            }
            self.value = Some(n);
            any = true;
        }
        if any {
            Ok(())
        } else {
            Err(())
        }
    }
}

/// `1*DIGIT` into a u64: no sign, no spaces, no overflow.
fn parse_decimal(s: &[u8]) -> Result<u64, ()> {
    if s.is_empty() {
        return Err(());
    }
    s.iter().try_fold(0u64, |n, &b| {
        if !b.is_ascii_digit() {
            return Err(());
        }
        n.checked_mul(10).and_then(|n| n.checked_add(u64::from(b - b'0'))).ok_or(())
    })
}

/// Transfer codings seen so far, across every Transfer-Encoding field in order.
#[derive(Debug, Default)]
struct CodingState {
    present: bool,
    last_is_chunked: bool,
    chunked_count: u32,
    others: u32,
}

impl CodingState {
    fn add(&mut self, value: &[u8]) {
        self.present = true;
        for element in list_elements(value) {
            // Parameters (`;q=...`) are never valid on chunked, so such an element counts as
            // some other coding.
            if element.eq_ignore_ascii_case(b"chunked") {
                self.chunked_count += 1;
                self.last_is_chunked = true;
            } else {
                self.others += 1;
                self.last_is_chunked = false;
            }
        }
    }

    /// Shared by requests and responses: `Ok(true)` for a body framed by chunked.
    fn check(&self) -> Result<bool, CodingError> {
        if !self.present {
            return Ok(false);
        }
        if !self.last_is_chunked {
            return Err(CodingError::NotChunked);
        }
        // RFC 9112 §7: a sender MUST NOT apply chunked more than once.
        if self.chunked_count > 1 {
            return Err(CodingError::ChunkedTwice);
        }
        if self.others > 0 {
            return Err(CodingError::Unsupported);
        }
        Ok(true)
    }
}

enum CodingError {
    NotChunked,
    ChunkedTwice,
    Unsupported,
}

/// The connection options (RFC 9110 §7.6.1) we act on.
#[derive(Debug, Default)]
struct ConnectionTokens {
    close: bool,
    keep_alive: bool,
    upgrade: bool,
}

impl ConnectionTokens {
    fn add(&mut self, value: &[u8]) {
        for token in list_elements(value) {
            if token.eq_ignore_ascii_case(b"close") {
                self.close = true;
            } else if token.eq_ignore_ascii_case(b"keep-alive") {
                self.keep_alive = true;
            } else if token.eq_ignore_ascii_case(b"upgrade") {
                self.upgrade = true;
            }
        }
    }
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

/// A validated response head from an upstream.
#[derive(Debug, Clone)]
pub struct ResponseHead {
    pub head_len: usize,
    pub status: u16,
    pub version: Version,
    /// Reason phrase as received (may be empty).
    pub reason: Span,
    pub headers: Vec<HeaderField>,
    pub body: ResponseBody,
    /// Whether the upstream connection may be reused after this response.
    pub keep_alive: bool,
}

impl ResponseHead {
    /// Every value of the field `name` (any case), in order.
    pub fn values<'a, 'b: 'a>(
        &'a self,
        buf: &'b [u8],
        name: &'a str,
    ) -> impl Iterator<Item = &'b [u8]> + 'a {
        super::field_values(&self.headers, buf, name)
    }

    /// 1xx other than 101: the driver forwards it and reads the next head (RFC 9110 §15.2).
    pub fn is_interim(&self) -> bool {
        (100..200).contains(&self.status) && self.status != 101
    }
}

/// Why an upstream response head was rejected (the client gets 502).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UpstreamHeadError {
    #[error("malformed response head")]
    Malformed,
    #[error("response head larger than the limit")]
    TooLarge,
    #[error("invalid or conflicting Content-Length in response")]
    BadContentLength,
    #[error("unsupported Transfer-Encoding in response")]
    BadTransferEncoding,
}

/// Parse a response head; `request_method` decides HEAD's bodiless responses.
///
/// A response with both Transfer-Encoding: chunked and Content-Length is framed by chunked
/// (RFC 9112 §6.3 rule 3); `rewrite` then drops the Content-Length before forwarding, as that
/// rule requires of an intermediary. A Transfer-Encoding that does not end in chunked is
/// rejected instead of read to close: nothing legitimate sends it and the client could not
/// frame it either.
pub fn parse_response(
    buf: &[u8],
    request_method: Method,
    max_head_bytes: usize,
) -> Result<Option<ResponseHead>, UpstreamHeadError> {
    let window = &buf[..buf.len().min(max_head_bytes)];
    let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut []);
    let head_len = match httparse::ParserConfig::default()
        .parse_response_with_uninit_headers(&mut resp, window, &mut slots)
    {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() >= max_head_bytes => {
            return Err(UpstreamHeadError::TooLarge)
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(UpstreamHeadError::TooLarge),
        Err(_) => return Err(UpstreamHeadError::Malformed),
    };
    let (Some(minor), Some(status)) = (resp.version, resp.code) else {
        return Err(UpstreamHeadError::Malformed);
    };
    let version = if minor == 0 { Version::Http10 } else { Version::Http11 };
    let reason = resp.reason.map(|r| Span::within(buf, r.as_bytes())).unwrap_or_default();

    let mut fields = Vec::with_capacity(resp.headers.len());
    let mut length = LengthState::default();
    let mut coding = CodingState::default();
    let mut conn = ConnectionTokens::default();
    for h in resp.headers.iter() {
        let name = h.name.as_bytes();
        fields
            .push(HeaderField { name: Span::within(buf, name), value: Span::within(buf, h.value) });
        if name.eq_ignore_ascii_case(b"content-length") {
            length.add(h.value).map_err(|()| UpstreamHeadError::BadContentLength)?;
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            coding.add(h.value);
        } else if name.eq_ignore_ascii_case(b"connection") {
            conn.add(h.value);
        }
    }

    // Rule 1: these never have a body, whatever their fields say.
    let bodiless = request_method == Method::Head
        || (100..200).contains(&status)
        || status == 204
        || status == 304;
    let chunked = match coding.check() {
        Ok(chunked) => chunked && version == Version::Http11,
        Err(_) => false,
    };
    let coding_ok = !coding.present || chunked;
    let body = if bodiless {
        ResponseBody::None
    } else if !coding_ok {
        return Err(UpstreamHeadError::BadTransferEncoding);
    } else if chunked {
        ResponseBody::Chunked
    } else {
        match length.value {
            Some(0) => ResponseBody::None,
            Some(n) => ResponseBody::Length(n),
            None => ResponseBody::CloseDelimited,
        }
    };
    let persistent = match version {
        Version::Http11 => !conn.close,
        Version::Http10 => conn.keep_alive && !conn.close,
    };
    Ok(Some(ResponseHead {
        head_len,
        status,
        version,
        reason,
        headers: fields,
        body,
        keep_alive: persistent && body != ResponseBody::CloseDelimited && status != 101,
    }))
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
    fn rejections_table() {
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
            (b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", Connect),
            (b"CONNECT / HTTP/1.1\r\nHost: a\r\n\r\n", Connect),
        ];
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

    fn resp(raw: &[u8], method: Method) -> Result<Option<ResponseHead>, UpstreamHeadError> {
        parse_response(raw, method, MAX)
    }

    #[test]
    fn response_framing_table() {
        use ResponseBody::*;
        let cases: &[(&[u8], Method, ResponseBody, bool)] = &[
            // raw, request method, body, keep_alive
            (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", Method::Get, Length(5), true),
            (b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", Method::Get, None, true),
            (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", Method::Head, None, true),
            (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", Method::Head, None, true),
            (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", Method::Get, Chunked, true),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 9\r\n\r\n",
                Method::Get,
                Chunked,
                true,
            ),
            (b"HTTP/1.1 200 OK\r\n\r\n", Method::Get, CloseDelimited, false),
            (b"HTTP/1.1 204 No Content\r\n\r\n", Method::Get, None, true),
            (b"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n", Method::Get, None, true),
            (b"HTTP/1.1 100 Continue\r\n\r\n", Method::Post, None, true),
            (b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n", Method::Get, None, true),
            (
                b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n",
                Method::Get,
                None,
                false,
            ),
            (b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\n", Method::Get, Length(1), false),
            (b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", Method::Get, Length(1), false),
            (
                b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\n",
                Method::Get,
                Length(1),
                true,
            ),
            (b"HTTP/1.1 200 \r\nContent-Length: 1\r\n\r\n", Method::Get, Length(1), true),
        ];
        for (raw, method, body, keep_alive) in cases {
            let what = String::from_utf8_lossy(raw);
            let head = resp(raw, *method).unwrap().unwrap_or_else(|| panic!("{what:?}"));
            assert_eq!(head.head_len, raw.len(), "{what:?}");
            assert_eq!(head.body, *body, "{what:?}");
            assert_eq!(head.keep_alive, *keep_alive, "{what:?}");
        }
    }

    #[test]
    fn interim_responses_parse_as_heads_followed_by_the_final_one() {
        let raw =
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok";
        let interim = resp(raw, Method::Post).unwrap().unwrap();
        assert!(interim.is_interim());
        assert_eq!(interim.status, 100);
        assert_eq!(interim.reason.get(raw), b"Continue");
        let final_head = resp(&raw[interim.head_len..], Method::Post).unwrap().unwrap();
        assert!(!final_head.is_interim());
        assert_eq!(final_head.status, 201);
        assert_eq!(final_head.body, ResponseBody::Length(2));
    }

    #[test]
    fn response_rejections_table() {
        use UpstreamHeadError::*;
        let cases: &[(&[u8], UpstreamHeadError)] = &[
            (b"HTTP/1.1 OK\r\n\r\n", Malformed),
            (b"HTTP/2.0 200 OK\r\n\r\n", Malformed),
            (b"ICY 200 OK\r\n\r\n", Malformed),
            (b"HTTP/1.1 200 OK\r\nX : y\r\n\r\n", Malformed),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                BadContentLength,
            ),
            (b"HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\n", BadContentLength),
            (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", BadTransferEncoding),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
                BadTransferEncoding,
            ),
            (b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", BadTransferEncoding),
        ];
        for (raw, want) in cases {
            let got = resp(raw, Method::Get).map(|h| h.map(|h| h.status));
            assert_eq!(got, Err(*want), "{:?}", String::from_utf8_lossy(raw));
        }
        let big = b"HTTP/1.1 200 OK\r\nX: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
        assert_eq!(parse_response(big, Method::Get, 20).map(|h| h.is_some()), Err(TooLarge));
        assert_eq!(parse_response(&big[..10], Method::Get, 20).map(|h| h.is_some()), Ok(false));
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

        #[test]
        fn parse_response_never_panics(raw in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            let _ = parse_response(&raw, Method::Get, 200);
        }
    }
}
