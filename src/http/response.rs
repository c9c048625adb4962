//! Responses ringproxy writes itself: a closed set, so no Rust error text ever reaches a client.
//!
//! Owns the bytes of every synthesized response (status line, `Content-Length`, `Connection`,
//! a short plain-text body) and the reason-phrase table. Does not own the choice of answer:
//! the driver maps its errors to an [`Answer`] in one place.

use std::io::Write as _;

/// A synthesized response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// 400: malformed or ambiguous request (RFC 9112 §2.2, §6.3).
    BadRequest,
    /// 405: CONNECT: ringproxy is not a forward proxy.
    MethodNotAllowed,
    /// 408: the request body stalled for the read_body timeout (RFC 9110 §15.5.9).
    RequestTimeout,
    /// 503: too many `basic_auth` password checks are pending; the client may retry.
    ServiceUnavailable,
    /// 413: the request body is over the route's `request_body max_size` (RFC 9110
    /// §15.5.14).
    ContentTooLarge,
    /// 421: the request is for a site that verifies client certificates, on a connection
    /// whose handshake did not verify them under that site's policy (RFC 9110 §15.5.20: the
    /// client may retry on a new connection).
    MisdirectedRequest,
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
    /// `HTTP/1.0 400` "Client sent an HTTP request to an HTTPS server." (plaintext on a TLS port).
    PlaintextOnTlsPort,
}

impl Answer {
    pub fn status(self) -> u16 {
        match self {
            Answer::BadRequest | Answer::PlaintextOnTlsPort => 400,
            Answer::MethodNotAllowed => 405,
            Answer::RequestTimeout => 408,
            Answer::ContentTooLarge => 413,
            Answer::MisdirectedRequest => 421,
            Answer::HeaderFieldsTooLarge => 431,
            Answer::NotImplemented => 501,
            Answer::BadGateway => 502,
            Answer::ServiceUnavailable => 503,
            Answer::GatewayTimeout => 504,
            Answer::VersionNotSupported => 505,
            Answer::EmptyOk => 200,
        }
    }
}

/// Exactly what Go's net/http writes (and so Caddy) when a TLS listener's first bytes look like
/// an HTTP request: no header fields, HTTP/1.0 so the body is delimited by the close.
const PLAINTEXT_ON_TLS_PORT: &[u8] =
    b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n";

/// Serialize `answer`; `close` adds `Connection: close`.
///
/// Error bodies are the status line's text and a newline, as `text/plain`.
/// `PlaintextOnTlsPort` is fixed bytes and always ends the connection.
pub fn write_answer(answer: Answer, close: bool, out: &mut Vec<u8>) {
    match answer {
        Answer::PlaintextOnTlsPort => out.extend_from_slice(PLAINTEXT_ON_TLS_PORT),
        Answer::EmptyOk => write_simple(200, None, b"", false, close, out),
        Answer::MethodNotAllowed => {
            // RFC 9110 §15.5.6: a 405 MUST list what is allowed. Everything but CONNECT is
            // forwarded, so list the registered methods a backend may implement.
            write_status_line(405, out);
            out.extend_from_slice(
                b"Allow: GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH, TRACE\r\n",
            );
            write_text_body(405, close, out);
        }
        Answer::BadRequest
        | Answer::RequestTimeout
        | Answer::ContentTooLarge
        | Answer::MisdirectedRequest
        | Answer::HeaderFieldsTooLarge
        | Answer::NotImplemented
        | Answer::BadGateway
        | Answer::ServiceUnavailable
        | Answer::GatewayTimeout
        | Answer::VersionNotSupported => {
            let status = answer.status();
            write_status_line(status, out);
            write_text_body(status, close, out);
        }
    }
}

/// `401` with `WWW-Authenticate: Basic realm="<realm>"` (RFC 7617 §2), for `basic_auth`. The
/// realm is a quoted-string: `"` and `\` are escaped, control characters dropped.
pub fn write_unauthorized(realm: &str, head_only: bool, close: bool, out: &mut Vec<u8>) {
    let start = out.len();
    write_status_line(401, out);
    out.extend_from_slice(b"WWW-Authenticate: Basic realm=\"");
    for c in realm.chars().filter(|c| !c.is_control()) {
        if c == '"' || c == '\\' {
            out.push(b'\\');
        }
        let mut utf8 = [0u8; 4];
        out.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
    }
    out.extend_from_slice(b"\"\r\n");
    write_text_body(401, close, out);
    if head_only {
        if let Some(end) = out[start..].windows(4).position(|w| w == b"\r\n\r\n") {
            out.truncate(start + end + 4);
        }
    }
}

/// [`write_answer`] for a request with `method_head` set when it was a HEAD: the same head,
/// without the body (RFC 9110 §9.3.2), so a kept-alive connection stays in step.
pub fn write_answer_to(answer: Answer, method_head: bool, close: bool, out: &mut Vec<u8>) {
    let start = out.len();
    write_answer(answer, close, out);
    if method_head && answer != Answer::PlaintextOnTlsPort {
        if let Some(end) = out[start..].windows(4).position(|w| w == b"\r\n\r\n") {
            out.truncate(start + end + 4);
        }
    }
}

/// `Content-Type`, framing, `Connection` and a body reading `<status> <reason>\n`.
fn write_text_body(status: u16, close: bool, out: &mut Vec<u8>) {
    let reason = reason_phrase(status);
    // "NNN " + reason + "\n"
    let len = 4 + reason.len() + 1;
    let _ = write!(out, "Content-Type: text/plain; charset=utf-8\r\nContent-Length: {len}\r\n");
    if close {
        out.extend_from_slice(b"Connection: close\r\n");
    }
    let _ = write!(out, "\r\n{status} {reason}\n");
}

fn write_status_line(status: u16, out: &mut Vec<u8>) {
    let _ = write!(out, "HTTP/1.1 {status} {}\r\n", reason_phrase(status));
}

/// Serialize a `respond`/`redir` result: `status`, optional `Location`, `body`.
///
/// `head_only` (a HEAD request) sends the `Content-Length` the body would have had, but no body
/// (RFC 9110 §9.3.2). 1xx and 204 responses carry neither length nor body (§8.6), 304 no body.
/// Control characters in `location` are dropped so a template can never split the head.
pub fn write_simple(
    status: u16,
    location: Option<&[u8]>,
    body: &[u8],
    head_only: bool,
    close: bool,
    out: &mut Vec<u8>,
) {
    write_typed(status, location, "text/plain; charset=utf-8", body, head_only, close, out);
}

/// [`write_simple`] with the body's `Content-Type` given (the `metrics` handler's exposition).
pub fn write_typed(
    status: u16,
    location: Option<&[u8]>,
    content_type: &str,
    body: &[u8],
    head_only: bool,
    close: bool,
    out: &mut Vec<u8>,
) {
    write_status_line(status, out);
    if let Some(location) = location {
        out.extend_from_slice(b"Location: ");
        out.extend(location.iter().copied().filter(|&b| b == b'\t' || !b.is_ascii_control()));
        out.extend_from_slice(b"\r\n");
    }
    let no_length = (100..200).contains(&status) || status == 204;
    let no_body = no_length || status == 304 || head_only;
    if !no_length && !body.is_empty() {
        let _ = write!(out, "Content-Type: {content_type}\r\n");
    }
    if !no_length {
        let _ = write!(out, "Content-Length: {}\r\n", if status == 304 { 0 } else { body.len() });
    }
    if close {
        out.extend_from_slice(b"Connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    if !no_body {
        out.extend_from_slice(body);
    }
}

/// The registered reason phrase for `status` (RFC 9110 §15), empty when there is none: a reason
/// phrase is optional and clients ignore it.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        103 => "Early Hints",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        203 => "Non-Authoritative Information",
        204 => "No Content",
        205 => "Reset Content",
        206 => "Partial Content",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Range Not Satisfiable",
        417 => "Expectation Failed",
        418 => "I'm a teapot",
        421 => "Misdirected Request",
        422 => "Unprocessable Content",
        425 => "Too Early",
        426 => "Upgrade Required",
        428 => "Precondition Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        451 => "Unavailable For Legal Reasons",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::head::{parse_response, Method, ResponseBody};

    fn answer(a: Answer, close: bool) -> Vec<u8> {
        let mut out = Vec::new();
        write_answer(a, close, &mut out);
        out
    }

    #[test]
    fn plaintext_on_tls_port_is_byte_exact_go() {
        assert_eq!(
            answer(Answer::PlaintextOnTlsPort, true),
            b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n"
        );
    }

    #[test]
    fn error_answers_are_exact() {
        assert_eq!(
            answer(Answer::BadRequest, true),
            b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n\
              Content-Length: 16\r\nConnection: close\r\n\r\n400 Bad Request\n"
        );
        assert_eq!(
            answer(Answer::GatewayTimeout, false),
            b"HTTP/1.1 504 Gateway Timeout\r\nContent-Type: text/plain; charset=utf-8\r\n\
              Content-Length: 20\r\n\r\n504 Gateway Timeout\n"
        );
        assert_eq!(answer(Answer::EmptyOk, false), b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    }

    #[test]
    fn every_answer_parses_back_with_its_status_and_declared_length() {
        let all = [
            Answer::BadRequest,
            Answer::MethodNotAllowed,
            Answer::RequestTimeout,
            Answer::MisdirectedRequest,
            Answer::HeaderFieldsTooLarge,
            Answer::NotImplemented,
            Answer::BadGateway,
            Answer::GatewayTimeout,
            Answer::VersionNotSupported,
            Answer::EmptyOk,
            Answer::PlaintextOnTlsPort,
        ];
        for a in all {
            for close in [false, true] {
                let bytes = answer(a, close);
                let head = parse_response(&bytes, Method::Get, 4096).unwrap().unwrap();
                assert_eq!(head.status, a.status(), "{a:?}");
                let body = &bytes[head.head_len..];
                match head.body {
                    ResponseBody::Length(n) => assert_eq!(n as usize, body.len(), "{a:?}"),
                    ResponseBody::None => assert!(body.is_empty(), "{a:?}"),
                    ResponseBody::CloseDelimited => assert_eq!(a, Answer::PlaintextOnTlsPort),
                    ResponseBody::Chunked => panic!("{a:?} is chunked"),
                }
                let has_close = head.values(&bytes, "connection").any(|v| v == b"close");
                let fixed = a == Answer::PlaintextOnTlsPort;
                assert_eq!(has_close, close && !fixed, "{a:?}");
                assert!(!close || fixed || !head.keep_alive, "{a:?}");
            }
        }
    }

    #[test]
    fn an_answer_to_a_head_request_keeps_its_length_and_drops_its_body() {
        let (mut full, mut head_only) = (Vec::new(), Vec::new());
        write_answer(Answer::BadGateway, false, &mut full);
        write_answer_to(Answer::BadGateway, true, false, &mut head_only);
        let head_end = full.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        assert_eq!(head_only, &full[..head_end]);
        assert!(String::from_utf8_lossy(&head_only).contains("Content-Length: 16\r\n"));
        let mut get = Vec::new();
        write_answer_to(Answer::BadGateway, false, false, &mut get);
        assert_eq!(get, full);
    }

    #[test]
    fn method_not_allowed_lists_allowed_methods() {
        let bytes = answer(Answer::MethodNotAllowed, true);
        let head = parse_response(&bytes, Method::Get, 4096).unwrap().unwrap();
        let allow: Vec<_> = head.values(&bytes, "allow").collect();
        assert_eq!(allow.len(), 1);
        assert!(!allow[0].windows(7).any(|w| w == b"CONNECT"));
    }

    #[test]
    fn simple_responses() {
        let mut out = Vec::new();
        write_simple(308, Some(b"https://a.example/x?y"), b"", false, true, &mut out);
        assert_eq!(
            out,
            b"HTTP/1.1 308 Permanent Redirect\r\nLocation: https://a.example/x?y\r\n\
              Content-Length: 0\r\nConnection: close\r\n\r\n"
        );

        out.clear();
        write_simple(200, None, b"hello", false, false, &mut out);
        assert_eq!(
            out,
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 5\r\n\r\nhello"
        );

        out.clear();
        write_simple(200, None, b"hello", true, false, &mut out);
        assert_eq!(
            out,
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 5\r\n\r\n"
        );

        out.clear();
        write_simple(204, None, b"ignored", false, false, &mut out);
        assert_eq!(out, b"HTTP/1.1 204 No Content\r\n\r\n");

        out.clear();
        write_simple(299, None, b"", false, false, &mut out);
        assert_eq!(out, b"HTTP/1.1 299 \r\nContent-Length: 0\r\n\r\n");
    }

    #[test]
    fn location_cannot_split_the_head() {
        let mut out = Vec::new();
        write_simple(302, Some(b"/a\r\nSet-Cookie: x=1\r\n\r\n"), b"", false, false, &mut out);
        let head = parse_response(&out, Method::Get, 4096).unwrap().unwrap();
        assert_eq!(head.headers.len(), 2);
        assert_eq!(head.head_len, out.len());
        assert_eq!(head.values(&out, "location").next(), Some(&b"/aSet-Cookie: x=1"[..]));
    }
}
