//! [`IpRange`]: a CIDR block (`10.0.0.0/8`, `2001:db8::/32`) and whether an address is in it,
//! for the PROXY protocol's `allow`/`deny` lists and `trusted_proxies`.
//!
//! IPv4-mapped IPv6 addresses (`::ffff:10.1.2.3`, what a dual-stack listener reports for an
//! IPv4 client) are compared as the IPv4 address they carry, so `10.0.0.0/8` matches them.
//! Parsing is the config's business only; `contains` is what the data path calls.

use std::net::IpAddr;

/// Caddy's `private_ranges` shorthand, in Caddy's order: RFC 1918, loopback, ULA, IPv6
/// loopback.
pub const PRIVATE_RANGES: [&str; 6] =
    ["192.168.0.0/16", "172.16.0.0/12", "10.0.0.0/8", "127.0.0.1/8", "fd00::/8", "::1"];

/// One CIDR block: the addresses whose first `prefix` bits equal `network`'s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpRange {
    network: IpAddr,
    prefix: u8,
}

/// Whether a bare address (no `/n`) is accepted as a one-address range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BareAddress {
    /// `10.0.0.1` means `10.0.0.1/32` (Caddy's `trusted_proxies static`).
    Accepted,
    /// Only `a.b.c.d/n` (Caddy's `proxy_protocol allow`/`deny`, which use Go's
    /// `netip.ParsePrefix`).
    Refused,
}

impl IpRange {
    /// `a.b.c.d/n`, `x::y/n`, or (when `bare` allows) a single address. The message names the
    /// text as written.
    pub fn parse(text: &str, bare: BareAddress) -> Result<IpRange, String> {
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let network: IpAddr =
            address.parse().map_err(|_| format!("invalid IP address or CIDR range '{text}'"))?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(digits) => digits
                .parse::<u8>()
                .ok()
                .filter(|n| *n <= max && !digits.starts_with('+'))
                .ok_or_else(|| format!("invalid prefix length in CIDR range '{text}'"))?,
            None if bare == BareAddress::Accepted => max,
            None => {
                return Err(format!(
                    "'{text}' is not a CIDR range (write it as {text}/{max} for one address)"
                ))
            }
        };
        // A mapped-IPv4 range is stored as the IPv4 range it covers, so `contains` compares
        // like with like.
        match network.to_canonical() {
            IpAddr::V4(v4) if network.is_ipv6() && prefix >= 96 => {
                Ok(IpRange { network: IpAddr::V4(v4), prefix: prefix - 96 })
            }
            _ => Ok(IpRange { network, prefix }),
        }
    }

    /// Whether `ip` is in this range (mapped IPv4 compared as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                same_prefix(u128::from(u32::from(net)), u128::from(u32::from(ip)), 32, self.prefix)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                same_prefix(u128::from(net), u128::from(ip), 128, self.prefix)
            }
            _ => false,
        }
    }
}

impl std::fmt::Display for IpRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// Whether the top `prefix` of `width` bits of `a` and `b` agree.
fn same_prefix(a: u128, b: u128, width: u8, prefix: u8) -> bool {
    let ignored = u32::from(width - prefix.min(width));
    a.checked_shr(ignored).unwrap_or(0) == b.checked_shr(ignored).unwrap_or(0)
}

/// Whether any of `ranges` contains `ip`.
pub fn any_contains(ranges: &[IpRange], ip: IpAddr) -> bool {
    ranges.iter().any(|r| r.contains(ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn range(text: &str) -> IpRange {
        IpRange::parse(text, BareAddress::Accepted).unwrap()
    }

    #[test]
    fn ranges_contain_exactly_the_addresses_under_their_prefix() {
        let r = range("10.0.0.0/8");
        assert!(r.contains(ip("10.255.1.2")));
        assert!(!r.contains(ip("11.0.0.0")));
        let r = range("192.168.1.77/24");
        assert!(r.contains(ip("192.168.1.1")) && !r.contains(ip("192.168.2.1")));
        let r = range("2001:db8::/32");
        assert!(r.contains(ip("2001:db8:ffff::1")) && !r.contains(ip("2001:db9::1")));
        assert!(range("0.0.0.0/0").contains(ip("203.0.113.9")));
        assert!(range("::/0").contains(ip("2001:db8::1")));
        assert!(!range("::/0").contains(ip("203.0.113.9")));
    }

    #[test]
    fn a_bare_address_is_one_address_where_accepted() {
        let r = range("198.51.100.7");
        assert!(r.contains(ip("198.51.100.7")) && !r.contains(ip("198.51.100.8")));
        assert!(range("::1").contains(ip("::1")));
        assert_eq!(
            IpRange::parse("10.0.0.1", BareAddress::Refused),
            Err("'10.0.0.1' is not a CIDR range (write it as 10.0.0.1/32 for one address)".into())
        );
    }

    #[test]
    fn ranges_display_as_cidr() {
        assert_eq!(range("10.0.0.0/8").to_string(), "10.0.0.0/8");
        assert_eq!(range("198.51.100.7").to_string(), "198.51.100.7/32");
        assert_eq!(range("::ffff:10.0.0.0/104").to_string(), "10.0.0.0/8");
    }

    #[test]
    fn mapped_ipv4_matches_ipv4_ranges_both_ways() {
        assert!(range("10.0.0.0/8").contains(ip("::ffff:10.1.2.3")));
        assert!(range("::ffff:10.0.0.0/104").contains(ip("10.1.2.3")));
    }

    #[test]
    fn bad_addresses_and_prefixes_are_refused() {
        for bad in ["bogus", "10.0.0.0/33", "::/129", "10.0.0.0/", "10.0.0.0/+8", "10.0.0/8"] {
            assert!(IpRange::parse(bad, BareAddress::Accepted).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_private_ranges_parse_and_cover_loopback() {
        let ranges: Vec<IpRange> = PRIVATE_RANGES.iter().map(|r| range(r)).collect();
        for inside in ["127.0.0.2", "10.9.9.9", "172.31.0.1", "192.168.0.1", "fd12::1", "::1"] {
            assert!(any_contains(&ranges, ip(inside)), "{inside}");
        }
        assert!(!any_contains(&ranges, ip("203.0.113.1")));
    }
}
