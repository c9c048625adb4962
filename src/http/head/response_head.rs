//! Response heads from upstreams: httparse, then the framing decision of RFC 9112 §6.3 given
//! the request's method, into a [`ResponseHead`] with spans into the upstream's buffer. Owns
//! what a response head means; whether it is passed on, and how, is the forwarder's call.

use std::mem::MaybeUninit;

use super::fields::{CodingState, ConnectionTokens, LengthState};
use super::{Method, ResponseBody, Version};
use crate::config::limits::MAX_HEADERS;
use crate::http::{HeaderField, Span};

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
        crate::http::field_values(&self.headers, buf, name)
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
    /// RFC 9110 §15: status codes are 100 to 599; httparse takes any three digits.
    #[error("status code outside 100-599")]
    BadStatus,
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
    if !(100..=599).contains(&status) {
        return Err(UpstreamHeadError::BadStatus);
    }
    let version = if minor == 0 { Version::Http10 } else { Version::Http11 };
    // httparse hands out a static "" instead of a reason phrase with obs-text bytes: not a
    // sub-slice of `buf`, so no span can point at it. Such a reason is forwarded as empty
    // (`write_response_head` fills in the standard phrase).
    let reason = resp
        .reason
        .filter(|r| !r.is_empty())
        .map(|r| Span::within(buf, r.as_bytes()))
        .unwrap_or_default();

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
    fn a_reason_phrase_with_obs_text_parses_as_an_empty_reason_inside_the_buffer() {
        let raw = b"HTTP/1.1 304 Not M\xd1\xd1dified\r\nConnection: keep-alive\r\n\r\n";
        let head = resp(raw, Method::Get).unwrap().unwrap();
        assert_eq!(head.status, 304);
        assert!(head.reason.is_empty());
        assert!(head.reason.end as usize <= raw.len(), "{:?}", head.reason);
        assert_eq!(head.reason.get(raw), b"");
    }

    #[test]
    fn response_rejections_table() {
        use UpstreamHeadError::*;
        let cases: &[(&[u8], UpstreamHeadError)] = &[
            (b"HTTP/1.1 OK\r\n\r\n", Malformed),
            (b"HTTP/2.0 200 OK\r\n\r\n", Malformed),
            (b"ICY 200 OK\r\n\r\n", Malformed),
            (b"HTTP/1.1 000 Continue\r\n\r\n", BadStatus),
            (b"HTTP/1.1 099 OK\r\nContent-Length: 0\r\n\r\n", BadStatus),
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
            (b"HTTP/1.1 000 Zero\r\nContent-Length: 0\r\n\r\n", BadStatus),
            (b"HTTP/1.1 099 Low\r\nContent-Length: 0\r\n\r\n", BadStatus),
            (b"HTTP/1.1 600 High\r\nContent-Length: 0\r\n\r\n", BadStatus),
            (b"HTTP/1.1 999 High\r\n\r\n", BadStatus),
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
        fn parse_response_never_panics(raw in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            let _ = parse_response(&raw, Method::Get, 200);
        }
    }
}
