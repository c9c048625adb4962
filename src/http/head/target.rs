//! The request target and authority (RFC 9112 §3.2, RFC 3986 §3.2.2): which form a target
//! is in, the origin-form span to forward, and the validation of `host[:port]` for Host and
//! absolute-form authorities. Owns no policy beyond what those RFCs and the module doc of
//! `head` say; the request parser decides which authority wins.

use super::{HeadError, Method};
use crate::http::Span;

/// Classify the request target (RFC 9112 §3.2): returns the origin-form span to forward and, for
/// absolute-form, the authority that replaces Host.
pub(super) fn split_target<'b>(
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
pub(super) fn parse_authority(value: &[u8]) -> Result<&str, HeadError> {
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
