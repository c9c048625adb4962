//! Request and response heads: httparse plus the RFC 9110/9112 validation a proxy owes its
//! upstreams (framing, Host, version), so that ambiguous requests never reach a backend.
//!
//! Owns: turning the bytes of a head into a validated [`RequestHead`] / [`ResponseHead`] with
//! spans into the caller's buffer, and the framing decision (RFC 9112 §6.3). This file holds
//! what both directions share (versions, methods, body framings); `request_head` and
//! `response_head` parse one direction each, `target` the request target and authority, and
//! `fields` the Content-Length / Transfer-Encoding / Connection values both directions read.
//! Does not own: the reading of bytes, where they are kept (`http::request`), the status a
//! rejection gets (the driver maps [`HeadError`] to an answer), or what is forwarded (see
//! `rewrite`, which re-serializes every head, so nothing the client wrote reaches an upstream
//! unchecked).
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

mod fields;
mod request_head;
mod response_head;
mod target;

pub use request_head::{parse_request, HeadError, RequestHead};
pub use response_head::{parse_response, ResponseHead, UpstreamHeadError};

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
    pub(super) fn from_token(token: &[u8]) -> Method {
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
