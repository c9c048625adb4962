//! Harness for the PROXY protocol parser (`net::proxy_protocol`).
//!
//! Invariants, for any bytes:
//! - A header's length lies within the input and within the version's limit (107 bytes for v1,
//!   `V2_MAX` for v2), and the header alone (without what follows it) parses the same.
//! - A growing buffer gets the verdict of the whole: shorter than a header is "read more",
//!   never an error, and bytes that are rejected are never accepted from a prefix.
//! - A header that names addresses re-encodes (`encode_v2`) to a v2 header that parses to the
//!   same addresses and exactly its own length.

use super::cut_points;
use crate::net::proxy_protocol::{encode_v2, parse, ProxyHeader, V2_MAX};

/// The longest v1 line, CRLF included (HAProxy's `proxy-protocol.txt`, section 2.1).
const V1_MAX: usize = 107;

/// Parse `data` as the start of a connection behind a PROXY-protocol balancer and check every
/// invariant of the module doc.
pub fn proxy_header(data: &[u8]) {
    let whole = parse(data);
    for cut in cut_points(data, 8) {
        let prefix = parse(&data[..cut]);
        match (&whole, &prefix) {
            (Ok(Some((_, len))), Ok(None)) if cut < *len => {}
            (Ok(Some(_)), Ok(Some(_))) | (Ok(None), Ok(None)) => {
                assert_eq!(prefix, whole, "a prefix of {cut} bytes");
            }
            (Err(_), Ok(None) | Err(_)) => {}
            _ => panic!("a prefix of {cut} bytes gives {prefix:?}, the whole {whole:?}"),
        }
    }
    let Ok(Some((header, len))) = whole else { return };
    assert!(len <= data.len(), "a header longer than the input");
    let limit = if data.starts_with(b"PROXY ") { V1_MAX } else { V2_MAX };
    assert!(len <= limit, "a header of {len} bytes");
    assert_eq!(parse(&data[..len]), Ok(Some((header, len))), "the header alone");
    if len > 0 {
        assert_eq!(parse(&data[..len - 1]), Ok(None), "one byte short of the header");
    }
    if let ProxyHeader::Proxied { source, destination } = header {
        let encoded = encode_v2(source, destination);
        assert_eq!(
            parse(&encoded),
            Ok(Some((header, encoded.len()))),
            "{header:?} re-encoded as {encoded:02x?}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_of_both_versions_and_ordinary_traffic_pass_the_checks() {
        let v2 = encode_v2("[2001:db8::1]:1".parse().unwrap(), "[2001:db8::2]:2".parse().unwrap());
        for input in [
            &b"PROXY TCP4 192.0.2.1 192.0.2.2 1 2\r\nGET / HTTP/1.1\r\n"[..],
            b"PROXY UNKNOWN\r\n",
            b"PROXY TCP6 ::ffff:192.0.2.1 ::1 1 2\r\n",
            &v2,
            b"GET / HTTP/1.1\r\n",
            b"",
        ] {
            proxy_header(input);
        }
    }
}
