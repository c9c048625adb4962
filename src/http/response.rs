//! Responses ringproxy writes itself: a closed set, so no Rust error text ever reaches a client.
//! OWNER: http helper. (Stub: signatures fixed by the data path.)

/// A synthesized response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// 400: malformed or ambiguous request (RFC 9112 §2.2, §6.3).
    BadRequest,
    /// 405: CONNECT: ringproxy is not a forward proxy.
    MethodNotAllowed,
    /// 431: request head over the limit (RFC 6585 §5).
    HeaderFieldsTooLarge,
    /// 501: a transfer coding we do not implement (RFC 9112 §6.1).
    NotImplemented,
    /// 502: no upstream could be reached, or it sent garbage.
    BadGateway,
    /// 504: the upstream did not answer within response_header_timeout.
    GatewayTimeout,
    /// 505: HTTP/2+ or an unknown version over HTTP/1 framing.
    VersionNotSupported,
    /// 200 with an empty body: no route answered (Caddy's behaviour).
    EmptyOk,
    /// 100 Continue, sent when we must ask the client for its body ourselves.
    Continue,
    /// `HTTP/1.0 400` "Client sent an HTTP request to an HTTPS server." (plaintext on a TLS port).
    PlaintextOnTlsPort,
}

/// Serialize `answer`; `close` adds `Connection: close`.
pub fn write_answer(answer: Answer, close: bool, out: &mut Vec<u8>) {
    let _ = (answer, close, out);
    todo!("http helper")
}

/// Serialize a `respond`/`redir` result: `status`, optional `Location`, `body`.
pub fn write_simple(
    status: u16,
    location: Option<&[u8]>,
    body: &[u8],
    head_only: bool,
    close: bool,
    out: &mut Vec<u8>,
) {
    let _ = (status, location, body, head_only, close, out);
    todo!("http helper")
}
