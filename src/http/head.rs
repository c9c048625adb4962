//! Request and response heads: httparse plus the RFC 9110/9112 validation a proxy owes its
//! upstreams (framing, Host, version), so that ambiguous requests never reach a backend.
//! OWNER: http helper. (Stub: signatures fixed by the data path.)

use super::{HeaderField, Span};

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

/// How a request body is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestBody {
    None,
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
    /// Empty only for HTTP/1.0 requests without Host.
    pub host: String,
    /// Host as received, with port if any (for X-Forwarded-Host and `{hostport}`).
    pub host_port: String,
    /// Path normalised for routing (see `config::route::normalize_path`).
    pub match_path: String,
    pub headers: Vec<HeaderField>,
    pub body: RequestBody,
    /// Whether the client allows the connection to stay open after this exchange
    /// (HTTP/1.1 without `Connection: close`, or HTTP/1.0 with `Connection: keep-alive`).
    pub keep_alive: bool,
    /// `Connection: upgrade` with `Upgrade: websocket` (case-insensitive).
    pub websocket_upgrade: bool,
    /// `Expect: 100-continue`.
    pub expect_continue: bool,
}

/// Why a request head was rejected. Each maps to one synthesized response, then close.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HeadError {
    #[error("malformed request head")]
    Malformed,
    #[error("request head larger than the limit")]
    TooLarge,
    #[error("HTTP/1.1 request without Host")]
    MissingHost,
    #[error("more than one Host header, or an invalid Host")]
    BadHost,
    #[error("invalid or conflicting Content-Length")]
    BadContentLength,
    #[error("both Content-Length and Transfer-Encoding")]
    LengthAndTransferEncoding,
    #[error("Transfer-Encoding whose final coding is not chunked")]
    TransferEncodingNotChunked,
    #[error("unsupported transfer coding")]
    UnsupportedTransferEncoding,
    #[error("unsupported HTTP version")]
    UnsupportedVersion,
    #[error("CONNECT is not supported")]
    Connect,
}

/// Parse and validate a request head at the start of `buf`.
/// `Ok(None)`: incomplete, read more (unless `buf.len() >= max_head_bytes`, which is `TooLarge`).
pub fn parse_request(buf: &[u8], max_head_bytes: usize) -> Result<Option<RequestHead>, HeadError> {
    let _ = (buf, max_head_bytes);
    todo!("http helper")
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
pub fn parse_response(
    buf: &[u8],
    request_method: Method,
    max_head_bytes: usize,
) -> Result<Option<ResponseHead>, UpstreamHeadError> {
    let _ = (buf, request_method, max_head_bytes);
    todo!("http helper")
}
