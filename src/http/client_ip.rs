//! The client's IP address as Caddy resolves it (its `client_ip`): the connection's peer,
//! unless the peer is a trusted proxy, in which case the client IP headers say who the client
//! is. What the access log's `client_ip` shows.
//!
//! Caddy 2.11's rules: the `client_ip_headers` (default `X-Forwarded-For`) are read in order,
//! their values split at commas; an entry may carry a port (`192.0.2.1:4711`, `[::1]:80`) or an
//! IPv6 zone, and entries that are not addresses are skipped. By default the leftmost address
//! wins; with `trusted_proxies_strict`, the first address from the right that is not itself a
//! trusted proxy, which a client cannot forge by sending its own X-Forwarded-For. Nothing
//! usable: the peer.

use std::net::{IpAddr, SocketAddr};

use super::{field_values, HeaderField};
use crate::config::ClientIp;

/// Caddy's default `client_ip_headers`.
const DEFAULT_HEADERS: [&str; 1] = ["X-Forwarded-For"];

/// The client IP of a request from `peer` with the head `headers` (spans into `buf`).
pub fn client_ip(config: &ClientIp, peer: IpAddr, headers: &[HeaderField], buf: &[u8]) -> IpAddr {
    if !config.trusts(peer) {
        return peer;
    }
    let mut names: Vec<&str> = config.headers.iter().map(String::as_str).collect();
    if names.is_empty() {
        names.extend(DEFAULT_HEADERS);
    }
    let entries = |name| field_values(headers, buf, name).flat_map(|v| v.split(|&b| b == b','));
    let found = if config.strict {
        names.iter().find_map(|name| {
            let from_the_right: Vec<&[u8]> = entries(name).collect();
            from_the_right.into_iter().rev().filter_map(entry_ip).find(|ip| !config.trusts(*ip))
        })
    } else {
        names.iter().find_map(|name| entries(name).find_map(entry_ip))
    };
    found.unwrap_or(peer)
}

/// One list entry as an address: `ip`, `ip:port`, `[ipv6]:port`, `ipv6%zone`, spaces around.
fn entry_ip(entry: &[u8]) -> Option<IpAddr> {
    let text = std::str::from_utf8(entry).ok()?.trim();
    if let Ok(with_port) = text.parse::<SocketAddr>() {
        return Some(with_port.ip());
    }
    let without_zone = text.split_once('%').map_or(text, |(ip, _zone)| ip);
    without_zone.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::head::parse_request;
    use crate::net::ip_range::{BareAddress, IpRange};

    const PEER: &str = "10.0.0.1";

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn trusting(ranges: &[&str], strict: bool, headers: &[&str]) -> ClientIp {
        ClientIp {
            trusted_proxies: ranges
                .iter()
                .map(|r| IpRange::parse(r, BareAddress::Accepted).unwrap())
                .collect(),
            strict,
            headers: headers.iter().map(|h| h.to_string()).collect(),
        }
    }

    fn resolve(config: &ClientIp, fields: &str) -> IpAddr {
        let raw = format!("GET / HTTP/1.1\r\nHost: a\r\n{fields}\r\n");
        let head = parse_request(raw.as_bytes(), 65536).unwrap().unwrap();
        client_ip(config, ip(PEER), &head.headers, raw.as_bytes())
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_sends() {
        let config = trusting(&["192.168.0.0/16"], false, &[]);
        assert_eq!(resolve(&config, "X-Forwarded-For: 203.0.113.5\r\n"), ip(PEER));
        assert_eq!(resolve(&ClientIp::default(), "X-Forwarded-For: 203.0.113.5\r\n"), ip(PEER));
    }

    #[test]
    fn a_trusted_peer_names_the_leftmost_address_of_x_forwarded_for() {
        let config = trusting(&["10.0.0.0/8"], false, &[]);
        let fields = "X-Forwarded-For: junk, 203.0.113.5:4711 , 10.0.0.9\r\n\
                      X-Forwarded-For: 198.51.100.1\r\n";
        assert_eq!(resolve(&config, fields), ip("203.0.113.5"));
        assert_eq!(resolve(&config, "X-Forwarded-For: [2001:db8::5]:80\r\n"), ip("2001:db8::5"));
        assert_eq!(resolve(&config, "X-Forwarded-For: fe80::1%eth0\r\n"), ip("fe80::1"));
        assert_eq!(resolve(&config, "X-Forwarded-For: nothing, useful\r\n"), ip(PEER));
        assert_eq!(resolve(&config, ""), ip(PEER));
    }

    #[test]
    fn strict_mode_takes_the_first_untrusted_address_from_the_right() {
        let config = trusting(&["10.0.0.0/8"], true, &[]);
        let fields = "X-Forwarded-For: 6.6.6.6, 203.0.113.5, 10.0.0.9\r\n";
        assert_eq!(resolve(&config, fields), ip("203.0.113.5"));
        assert_eq!(resolve(&config, "X-Forwarded-For: 10.1.1.1, 10.2.2.2\r\n"), ip(PEER));
    }

    #[test]
    fn client_ip_headers_are_read_in_the_order_configured() {
        let config = trusting(&["10.0.0.0/8"], false, &["X-Real-IP", "X-Forwarded-For"]);
        let fields = "X-Forwarded-For: 198.51.100.1\r\nX-Real-IP: 203.0.113.5\r\n";
        assert_eq!(resolve(&config, fields), ip("203.0.113.5"));
        assert_eq!(resolve(&config, "X-Forwarded-For: 198.51.100.1\r\n"), ip("198.51.100.1"));
        let only_real_ip = trusting(&["10.0.0.0/8"], false, &["X-Real-IP"]);
        assert_eq!(resolve(&only_real_ip, "X-Forwarded-For: 198.51.100.1\r\n"), ip(PEER));
    }
}
