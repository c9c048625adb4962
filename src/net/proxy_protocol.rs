//! The PROXY protocol (HAProxy's `proxy-protocol.txt`, versions 1 and 2): the header an L4 load
//! balancer puts before a connection's first byte to say who the client really is.
//!
//! A pure parser over the bytes read so far: [`parse`] says "need more", "here is the header and
//! its length", or why the bytes are not a valid header. What to do with it (trust it only from
//! allowed peers, the fallback policy, the wait's deadline) is the listener's business.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The v2 signature: `\r\n\r\n\0\r\nQUIT\n`.
const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// A v1 header line is at most 107 bytes, CRLF included.
const V1_MAX: usize = 107;
/// v2 headers carry TLVs after the addresses; anything larger than this is not a header a
/// balancer sends, and reading it would let a peer make us buffer up to 64 KiB.
pub const V2_MAX: usize = 16 + 536;

/// What a PROXY header says about the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyHeader {
    /// The balancer relays a client: these are its addresses.
    Proxied { source: SocketAddr, destination: SocketAddr },
    /// The balancer speaks for itself (v2 `LOCAL`, e.g. health checks), or the addresses are of
    /// a kind we do not route by (v1 `UNKNOWN`, v2 unspecified or unix): use the real peer.
    Local,
}

/// Why bytes are not a PROXY header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProxyHeaderError {
    #[error("not a PROXY protocol header")]
    NotProxy,
    #[error("malformed PROXY protocol v1 header")]
    MalformedV1,
    #[error("malformed PROXY protocol v2 header")]
    MalformedV2,
    #[error("PROXY protocol header longer than the limit")]
    TooLong,
}

/// Parse the header at the start of `buf`. `Ok(None)`: not enough bytes yet to decide.
/// `Ok(Some((header, len)))`: the connection's own bytes start at `buf[len..]`.
pub fn parse(buf: &[u8]) -> Result<Option<(ProxyHeader, usize)>, ProxyHeaderError> {
    if buf.len() < V2_SIGNATURE.len() {
        // Not enough to tell the versions apart, but a prefix that matches neither is final.
        if V2_SIGNATURE.starts_with(buf) || b"PROXY ".starts_with(&buf[..buf.len().min(6)]) {
            return Ok(None);
        }
        return Err(ProxyHeaderError::NotProxy);
    }
    if buf.starts_with(&V2_SIGNATURE) {
        return parse_v2(buf);
    }
    if buf.starts_with(b"PROXY ") {
        return parse_v1(buf);
    }
    Err(ProxyHeaderError::NotProxy)
}

fn parse_v1(buf: &[u8]) -> Result<Option<(ProxyHeader, usize)>, ProxyHeaderError> {
    let window = &buf[..buf.len().min(V1_MAX)];
    let Some(end) = window.windows(2).position(|w| w == b"\r\n") else {
        return if buf.len() >= V1_MAX { Err(ProxyHeaderError::TooLong) } else { Ok(None) };
    };
    let line = std::str::from_utf8(&buf[..end]).map_err(|_| ProxyHeaderError::MalformedV1)?;
    let mut fields = line.split(' ');
    fields.next(); // "PROXY"
    let header = match fields.next() {
        // Whatever follows UNKNOWN is to be ignored (the spec's words).
        Some("UNKNOWN") => ProxyHeader::Local,
        Some(family @ ("TCP4" | "TCP6")) => {
            let (Some(src), Some(dst), Some(sport), Some(dport), None) =
                (fields.next(), fields.next(), fields.next(), fields.next(), fields.next())
            else {
                return Err(ProxyHeaderError::MalformedV1);
            };
            let ip = |text: &str| -> Result<IpAddr, ProxyHeaderError> {
                let ip: IpAddr = text.parse().map_err(|_| ProxyHeaderError::MalformedV1)?;
                match (family, ip) {
                    ("TCP4", IpAddr::V4(_)) | ("TCP6", IpAddr::V6(_)) => Ok(ip),
                    _ => Err(ProxyHeaderError::MalformedV1),
                }
            };
            ProxyHeader::Proxied {
                source: SocketAddr::new(ip(src)?, v1_port(sport)?),
                destination: SocketAddr::new(ip(dst)?, v1_port(dport)?),
            }
        }
        _ => return Err(ProxyHeaderError::MalformedV1),
    };
    Ok(Some((header, end + 2)))
}

/// A decimal port without a sign or leading zeros (the spec forbids them).
fn v1_port(text: &str) -> Result<u16, ProxyHeaderError> {
    let canonical = !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    canonical.then(|| text.parse().ok()).flatten().ok_or(ProxyHeaderError::MalformedV1)
}

fn parse_v2(buf: &[u8]) -> Result<Option<(ProxyHeader, usize)>, ProxyHeaderError> {
    if buf.len() < 16 {
        return Ok(None);
    }
    let (version_command, family, len) = (buf[12], buf[13], u16::from_be_bytes([buf[14], buf[15]]));
    if version_command >> 4 != 2 {
        return Err(ProxyHeaderError::MalformedV2);
    }
    let total = 16 + usize::from(len);
    if total > V2_MAX {
        return Err(ProxyHeaderError::TooLong);
    }
    if buf.len() < total {
        return Ok(None);
    }
    let body = &buf[16..total];
    let header = match version_command & 0x0f {
        0x0 => ProxyHeader::Local,
        0x1 => match family {
            // TCP over IPv4: 4 + 4 + 2 + 2 bytes, then TLVs.
            0x11 if body.len() >= 12 => ProxyHeader::Proxied {
                source: SocketAddr::new(ipv4(&body[0..4]), port(&body[8..10])),
                destination: SocketAddr::new(ipv4(&body[4..8]), port(&body[10..12])),
            },
            // TCP over IPv6: 16 + 16 + 2 + 2.
            0x21 if body.len() >= 36 => ProxyHeader::Proxied {
                source: SocketAddr::new(ipv6(&body[0..16]), port(&body[32..34])),
                destination: SocketAddr::new(ipv6(&body[16..32]), port(&body[34..36])),
            },
            0x11 | 0x21 => return Err(ProxyHeaderError::MalformedV2),
            // Unspecified, UDP or unix: nothing we can route by; the real peer stands.
            0x00 | 0x12 | 0x22 | 0x31 | 0x32 => ProxyHeader::Local,
            _ => return Err(ProxyHeaderError::MalformedV2),
        },
        _ => return Err(ProxyHeaderError::MalformedV2),
    };
    Ok(Some((header, total)))
}

fn ipv4(bytes: &[u8]) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3]))
}

fn ipv6(bytes: &[u8]) -> IpAddr {
    let mut octets = [0u8; 16];
    octets.copy_from_slice(bytes);
    IpAddr::V6(Ipv6Addr::from(octets))
}

fn port(bytes: &[u8]) -> u16 {
    u16::from_be_bytes([bytes[0], bytes[1]])
}

/// A v2 header for `source` → `destination` (both IPv4 or both IPv6), for tests and tools.
pub fn encode_v2(source: SocketAddr, destination: SocketAddr) -> Vec<u8> {
    let mut out = V2_SIGNATURE.to_vec();
    out.push(0x21);
    match (source.ip(), destination.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            out.push(0x11);
            out.extend_from_slice(&12u16.to_be_bytes());
            out.extend_from_slice(&s.octets());
            out.extend_from_slice(&d.octets());
        }
        (s, d) => {
            let v6 = |ip: IpAddr| match ip {
                IpAddr::V4(v4) => v4.to_ipv6_mapped(),
                IpAddr::V6(v6) => v6,
            };
            out.push(0x21);
            out.extend_from_slice(&36u16.to_be_bytes());
            out.extend_from_slice(&v6(s).octets());
            out.extend_from_slice(&v6(d).octets());
        }
    }
    out.extend_from_slice(&source.port().to_be_bytes());
    out.extend_from_slice(&destination.port().to_be_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    #[test]
    fn v1_tcp4_tcp6_and_unknown_parse_and_say_where_the_stream_starts() {
        let raw = b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\nGET / HTTP/1.1\r\n";
        let (header, len) = parse(raw).unwrap().unwrap();
        assert_eq!(
            header,
            ProxyHeader::Proxied {
                source: addr("192.0.2.1:56324"),
                destination: addr("198.51.100.2:443")
            }
        );
        assert_eq!(&raw[len..], b"GET / HTTP/1.1\r\n");

        let raw = b"PROXY TCP6 2001:db8::1 2001:db8::2 4000 8443\r\n";
        let (header, _) = parse(raw).unwrap().unwrap();
        assert_eq!(
            header,
            ProxyHeader::Proxied {
                source: addr("[2001:db8::1]:4000"),
                destination: addr("[2001:db8::2]:8443")
            }
        );
        assert_eq!(
            parse(b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\nx").unwrap().unwrap(),
            (ProxyHeader::Local, 35)
        );
    }

    #[test]
    fn v1_rejects_mismatched_families_bad_ports_and_endless_lines() {
        for bad in [
            &b"PROXY TCP4 2001:db8::1 192.0.2.1 1 2\r\n"[..],
            b"PROXY TCP4 192.0.2.1 192.0.2.2 65536 2\r\n",
            b"PROXY TCP4 192.0.2.1 192.0.2.2 01 2\r\n",
            b"PROXY TCP4 192.0.2.1 192.0.2.2 1\r\n",
            b"PROXY TCP4 192.0.2.1 192.0.2.2 1 2 3\r\n",
            b"PROXY UDP4 192.0.2.1 192.0.2.2 1 2\r\n",
        ] {
            assert_eq!(
                parse(bad),
                Err(ProxyHeaderError::MalformedV1),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let endless = [b"PROXY TCP4 ".as_slice(), &[b'1'; 200]].concat();
        assert_eq!(parse(&endless), Err(ProxyHeaderError::TooLong));
        assert_eq!(parse(b"PROXY TCP4 192.0.2.1"), Ok(None));
    }

    #[test]
    fn v2_round_trips_and_local_and_tlvs_are_understood() {
        for (s, d) in
            [("192.0.2.1:1234", "198.51.100.9:443"), ("[2001:db8::7]:9", "[2001:db8::8]:80")]
        {
            let mut raw = encode_v2(addr(s), addr(d));
            let len = raw.len();
            raw.extend_from_slice(b"\x16\x03\x01");
            assert_eq!(
                parse(&raw).unwrap().unwrap(),
                (ProxyHeader::Proxied { source: addr(s), destination: addr(d) }, len)
            );
            // Every prefix is "need more", never an error.
            for cut in 0..len {
                assert_eq!(parse(&raw[..cut]), Ok(None), "cut at {cut}");
            }
        }
        let mut local = V2_SIGNATURE.to_vec();
        local.extend_from_slice(&[0x20, 0x00, 0x00, 0x03, 1, 2, 3]);
        assert_eq!(parse(&local).unwrap().unwrap(), (ProxyHeader::Local, 19));
        // TLVs after the addresses are skipped.
        let mut with_tlv = encode_v2(addr("192.0.2.1:1"), addr("192.0.2.2:2"));
        with_tlv[15] += 4;
        with_tlv.extend_from_slice(&[0x01, 0x00, 0x01, b'h']);
        assert_eq!(parse(&with_tlv).unwrap().unwrap().1, with_tlv.len());
    }

    #[test]
    fn v2_rejects_wrong_versions_short_addresses_and_huge_lengths() {
        let mut raw = encode_v2(addr("192.0.2.1:1"), addr("192.0.2.2:2"));
        raw[12] = 0x31;
        assert_eq!(parse(&raw), Err(ProxyHeaderError::MalformedV2));
        let mut short = V2_SIGNATURE.to_vec();
        short.extend_from_slice(&[0x21, 0x11, 0x00, 0x04, 1, 2, 3, 4]);
        assert_eq!(parse(&short), Err(ProxyHeaderError::MalformedV2));
        let mut huge = V2_SIGNATURE.to_vec();
        huge.extend_from_slice(&[0x21, 0x11, 0xff, 0xff]);
        assert_eq!(parse(&huge), Err(ProxyHeaderError::TooLong));
    }

    #[test]
    fn ordinary_traffic_is_told_apart_at_once() {
        assert_eq!(parse(b"GET / HTTP/1.1\r\n"), Err(ProxyHeaderError::NotProxy));
        assert_eq!(parse(&[0x16, 0x03, 0x01]), Err(ProxyHeaderError::NotProxy));
        assert_eq!(parse(b"PRO"), Ok(None));
        assert_eq!(parse(b"\r\n\r\n"), Ok(None));
    }
}
