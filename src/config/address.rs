//! Site addresses (`example.com`, `:8080`, `http://host:port`, `[::1]:8443`, `*.example.com`)
//! and upstream addresses (`localhost:8080`, `:3001`, `http://10.0.0.2`, `[::1]:9000`,
//! `unix//run/moshi.sock`), parsed the way Caddy's `httpcaddyfile.ParseAddress` splits them, into
//! typed values.
//!
//! Upstreams are resolved to socket addresses here, once, at load time: workers dial a fixed
//! list and never resolve names. `localhost` and an empty host are answered without DNS
//! (IPv4 loopback first, then IPv6, matching what most local servers bind).

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;

use super::{limits, HostPattern};

/// A site address split into its parts, before ports and TLS are decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SiteAddress {
    pub scheme: Option<Scheme>,
    /// Lower-case host pattern; `None` for `:8080` and `http://` (every host).
    pub host: Option<HostPattern>,
    pub port: Option<u16>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scheme {
    Http,
    Https,
}

/// Splits `text` into scheme, host and port. Errors are messages for a `ConfigError`.
pub(crate) fn parse_site_address(text: &str) -> Result<SiteAddress, String> {
    let (scheme, rest) = match text.split_once("://") {
        Some(("http", rest)) => (Some(Scheme::Http), rest),
        Some(("https", rest)) => (Some(Scheme::Https), rest),
        Some(("wss", _)) => {
            return Err(
                "the scheme wss:// is only supported in browsers; use https:// instead".into()
            )
        }
        Some(("ws", _)) => {
            return Err("the scheme ws:// is only supported in browsers; use http:// instead".into())
        }
        Some((other, _)) => return Err(format!("unsupported URL scheme {other}://")),
        None => (None, text),
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    if !path.is_empty() && path != "/" {
        return Err(format!(
            "site address '{text}' has a path, which ringproxy does not support in site \
             addresses; match the path with a handle block instead"
        ));
    }
    let (host, port) =
        split_host_port(authority).map_err(|e| format!("site address '{text}': {e}"))?;
    let host = match host {
        "" => None,
        h => Some(host_pattern(h).map_err(|e| format!("site address '{text}': {e}"))?),
    };
    if scheme.is_none() && host.is_none() && port.is_none() {
        return Err(format!("site address '{text}' has neither a host nor a port"));
    }
    Ok(SiteAddress { scheme, host, port })
}

/// Splits `host[:port]`, `[v6][:port]` or `:port`.
fn split_host_port(authority: &str) -> Result<(&str, Option<u16>), String> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let Some((host, after)) = rest.split_once(']') else {
            return Err("missing ']' in address".into());
        };
        if host.parse::<Ipv6Addr>().is_err() {
            return Err(format!("'{host}' is not an IPv6 address"));
        }
        match after {
            "" => (host, None),
            _ => match after.strip_prefix(':') {
                Some(port) => (host, Some(port)),
                None => return Err(format!("unexpected '{after}' after ']'")),
            },
        }
    } else {
        match authority.rsplit_once(':') {
            Some((host, _)) if host.contains(':') => {
                return Err("IPv6 addresses must be enclosed in brackets, e.g. [::1]:8080".into())
            }
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    let port = port.map(parse_port).transpose()?;
    Ok((host, port))
}

/// Parses a port number as Caddy does, with its wording.
pub(crate) fn parse_port(text: &str) -> Result<u16, String> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("invalid port '{text}'"));
    }
    match text.parse::<u32>() {
        Ok(p) if p <= u32::from(u16::MAX) => Ok(p as u16),
        _ => Err(format!("port {text} is out of range")),
    }
}

/// A host as a site address or `host` matcher writes it: exact, or `*.` plus a suffix.
pub(crate) fn host_pattern(host: &str) -> Result<HostPattern, String> {
    let host = host.to_ascii_lowercase();
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(HostPattern::Exact(ip.to_string()));
    }
    if let Some(suffix) = host.strip_prefix('*') {
        if !suffix.starts_with('.') || suffix.len() < 2 || suffix.contains('*') {
            return Err(format!(
                "host '{host}': only a leftmost wildcard label is supported (e.g. *.example.com)"
            ));
        }
        valid_hostname(&suffix[1..]).map_err(|e| format!("host '{host}': {e}"))?;
        return Ok(HostPattern::Wildcard(suffix.to_string()));
    }
    valid_hostname(&host).map_err(|e| format!("host '{host}': {e}"))?;
    Ok(HostPattern::Exact(host))
}

fn valid_hostname(host: &str) -> Result<(), String> {
    if host.is_empty() || host.len() > 253 {
        return Err("not a valid hostname".into());
    }
    for label in host.split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !ok {
            return Err(if host.contains('*') {
                "only a leftmost wildcard label is supported (e.g. *.example.com)".into()
            } else {
                "not a valid hostname".into()
            });
        }
    }
    Ok(())
}

/// Whether Caddy would give this host a certificate from its local CA rather than ACME:
/// `localhost`, IP addresses and names under TLDs no public CA issues for.
pub(crate) fn is_internal_host(host: &HostPattern) -> bool {
    let name = match host {
        HostPattern::Exact(name) => name.as_str(),
        HostPattern::Wildcard(suffix) => suffix.as_str(),
    };
    name == "localhost"
        || name.parse::<IpAddr>().is_ok()
        || [".localhost", ".local", ".internal", ".home.arpa"].iter().any(|s| name.ends_with(s))
}

/// An upstream as written: host (possibly empty) and port, not yet resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UpstreamAddress {
    pub host: String,
    pub port: u16,
}

/// Parses an upstream address. Errors are messages for a `ConfigError`.
pub(crate) fn parse_upstream(text: &str) -> Result<UpstreamAddress, String> {
    if text.contains('{') {
        return Err(format!(
            "placeholders in upstream addresses ('{text}') are not supported by ringproxy: \
             upstreams are resolved when the configuration is loaded"
        ));
    }
    let rest = match text.split_once("://") {
        Some(("http", rest)) => rest,
        Some(("https", _)) => {
            return Err(format!(
                "HTTPS upstreams ('{text}') are not supported by ringproxy: upstreams are \
                 reached over plaintext HTTP (supported: host:port, http://host:port)"
            ))
        }
        Some((scheme, _)) => {
            return Err(format!(
                "upstream scheme '{scheme}://' is not supported by ringproxy (supported: http://)"
            ))
        }
        None => text,
    };
    if let Some(i) = rest.find(['/', '?', '#']) {
        if rest[i..].len() > 1 || i == 0 {
            return Err(format!(
                "upstream '{text}': for now, URLs for proxy upstreams only support scheme, \
                 host, and port components"
            ));
        }
    }
    let authority = rest.trim_end_matches('/');
    if authority.is_empty() {
        return Err(format!("upstream '{text}' has no host or port"));
    }
    if let Some((_, port)) = authority.rsplit_once(':') {
        if port.contains('-') && !authority.ends_with(']') {
            return Err(format!(
                "port ranges in upstreams ('{text}') are not supported by ringproxy"
            ));
        }
    }
    let (host, port) = split_host_port(authority).map_err(|e| format!("upstream '{text}': {e}"))?;
    let host = host.to_ascii_lowercase();
    if !host.is_empty() && host.parse::<IpAddr>().is_err() {
        valid_hostname(&host).map_err(|e| format!("upstream '{text}': {e}"))?;
    }
    Ok(UpstreamAddress { host, port: port.unwrap_or(80) })
}

/// The socket path of a unix socket upstream (`unix//run/moshi.sock`: `/run/moshi.sock`;
/// `unix/moshi.sock`: relative to the working directory, as Go dials it for Caddy), or `None`
/// when `text` is not one. Errors are messages for a `ConfigError`; Caddy accepts each of these
/// and fails on every request instead.
pub(crate) fn parse_unix_upstream(text: &str) -> Option<Result<PathBuf, String>> {
    let path = text.strip_prefix("unix/")?;
    Some(unix_socket_path(text, path))
}

fn unix_socket_path(text: &str, path: &str) -> Result<PathBuf, String> {
    if text.contains('{') {
        return Err(format!(
            "placeholders in upstream addresses ('{text}') are not supported by ringproxy: \
             upstreams are resolved when the configuration is loaded"
        ));
    }
    if path.is_empty() || path.ends_with('/') {
        return Err(format!("unix socket upstream '{text}' has no socket path"));
    }
    if path.starts_with('@') {
        return Err(format!(
            "abstract unix sockets ('{text}') are not supported by ringproxy (supported: \
             unix//absolute/path, unix/relative/path)"
        ));
    }
    // Caddy 2.6 drops a `:port` here and 2.11 dials it as part of the path; either way it is
    // a mistake, so it is pointed at instead of guessed at.
    if let Some((_, port)) = path.rsplit_once(':') {
        if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit() || b == b'-') {
            return Err(format!(
                "unix socket upstream '{text}' has a port; a unix socket has none (remove \
                 ':{port}')"
            ));
        }
    }
    if path.len() > limits::MAX_UNIX_SOCKET_PATH {
        return Err(format!(
            "unix socket upstream '{text}': the path is {} bytes long, longer than the {} a \
             unix socket address holds",
            path.len(),
            limits::MAX_UNIX_SOCKET_PATH
        ));
    }
    Ok(PathBuf::from(path))
}

/// Resolves an upstream to the addresses workers dial, in order. `localhost` and the empty host
/// (`:8080`, which Go dials on the local system) never go to DNS.
pub(crate) fn resolve_upstream(
    addr: &UpstreamAddress,
    resolver: &dyn Fn(&str, u16) -> io::Result<Vec<SocketAddr>>,
) -> io::Result<Vec<SocketAddr>> {
    if addr.host.is_empty() || addr.host == "localhost" {
        return Ok(vec![
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), addr.port),
            SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), addr.port),
        ]);
    }
    if let Ok(ip) = addr.host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, addr.port)]);
    }
    let mut addrs = resolver(&addr.host, addr.port)?;
    // IPv4 first, like localhost above; stable within each family, no duplicates.
    addrs.sort_by_key(|a| a.is_ipv6());
    addrs.dedup();
    if addrs.is_empty() {
        return Err(io::Error::new(io::ErrorKind::NotFound, "no addresses found"));
    }
    Ok(addrs)
}

/// The system resolver (getaddrinfo).
pub(crate) fn system_resolve(host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
    use std::net::ToSocketAddrs;
    Ok((host, port).to_socket_addrs()?.collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exact(h: &str) -> Option<HostPattern> {
        Some(HostPattern::Exact(h.to_string()))
    }

    #[test]
    fn site_addresses_split_like_caddy() {
        let cases = [
            ("example.com", None, exact("example.com"), None),
            ("Example.COM:8443", None, exact("example.com"), Some(8443)),
            (":8080", None, None, Some(8080)),
            ("http://a.com", Some(Scheme::Http), exact("a.com"), None),
            ("https://a.com:9443", Some(Scheme::Https), exact("a.com"), Some(9443)),
            ("http://", Some(Scheme::Http), None, None),
            ("[::1]:8443", None, exact("::1"), Some(8443)),
            ("127.0.0.1", None, exact("127.0.0.1"), None),
            ("*.example.com", None, Some(HostPattern::Wildcard(".example.com".into())), None),
            ("localhost/", None, exact("localhost"), None),
        ];
        for (text, scheme, host, port) in cases {
            assert_eq!(parse_site_address(text), Ok(SiteAddress { scheme, host, port }), "{text}");
        }
    }

    #[test]
    fn bad_site_addresses() {
        let cases = [
            ("ftp://a.com", "unsupported URL scheme ftp://"),
            ("wss://a.com", "the scheme wss:// is only supported in browsers; use https:// instead"),
            ("a.com:http", "site address 'a.com:http': invalid port 'http'"),
            ("a.com:70000", "site address 'a.com:70000': port 70000 is out of range"),
            ("a.*.com", "site address 'a.*.com': host 'a.*.com': only a leftmost wildcard label is supported (e.g. *.example.com)"),
            ("a.com/api", "site address 'a.com/api' has a path, which ringproxy does not support in site addresses; match the path with a handle block instead"),
            ("::1", "site address '::1': IPv6 addresses must be enclosed in brackets, e.g. [::1]:8080"),
        ];
        for (text, want) in cases {
            assert_eq!(parse_site_address(text).unwrap_err(), want, "{text}");
        }
    }

    #[test]
    fn upstreams_parse_and_resolve() {
        let none = |_: &str, _: u16| -> io::Result<Vec<SocketAddr>> { panic!("no DNS expected") };
        let sa = |s: &str| s.parse::<SocketAddr>().unwrap();
        let cases = [
            ("localhost:8080", vec![sa("127.0.0.1:8080"), sa("[::1]:8080")]),
            ("127.0.0.1:3001", vec![sa("127.0.0.1:3001")]),
            (":8080", vec![sa("127.0.0.1:8080"), sa("[::1]:8080")]),
            ("http://127.0.0.1:9000", vec![sa("127.0.0.1:9000")]),
            ("http://10.0.0.1", vec![sa("10.0.0.1:80")]),
            ("[::1]:8080", vec![sa("[::1]:8080")]),
            ("10.1.2.3", vec![sa("10.1.2.3:80")]),
        ];
        for (text, want) in cases {
            let addr = parse_upstream(text).unwrap();
            assert_eq!(resolve_upstream(&addr, &none).unwrap(), want, "{text}");
        }
        let fake = |h: &str, p: u16| -> io::Result<Vec<SocketAddr>> {
            assert_eq!(h, "backend");
            Ok(vec![
                SocketAddr::new("::2".parse().unwrap(), p),
                SocketAddr::new("10.0.0.2".parse().unwrap(), p),
            ])
        };
        let addr = parse_upstream("backend").unwrap();
        assert_eq!(
            resolve_upstream(&addr, &fake).unwrap(),
            vec![sa("10.0.0.2:80"), sa("[::2]:80")]
        );
    }

    #[test]
    fn unsupported_upstreams_say_why() {
        for (text, start) in [
            ("https://a:443", "HTTPS upstreams"),
            ("{env.UP}:80", "placeholders in upstream addresses"),
            ("h2c://a:80", "upstream scheme 'h2c://'"),
            ("localhost:8080-8085", "port ranges"),
            ("http://a:80/path", "upstream 'http://a:80/path': for now"),
        ] {
            let err = parse_upstream(text).unwrap_err();
            assert!(err.starts_with(start), "{text}: {err}");
        }
    }

    #[test]
    fn unix_socket_upstreams_keep_their_path_absolute_or_relative() {
        let path = |text: &str| parse_unix_upstream(text).map(Result::unwrap);
        assert_eq!(path("unix//run/moshi.sock"), Some(PathBuf::from("/run/moshi.sock")));
        assert_eq!(path("unix/moshi.sock"), Some(PathBuf::from("moshi.sock")));
        assert_eq!(path("unix/./run/a:b.sock"), Some(PathBuf::from("./run/a:b.sock")));
        assert_eq!(path("localhost:8080"), None);
        assert_eq!(path("unixhost:80"), None);
    }

    #[test]
    fn bad_unix_socket_upstreams_say_why() {
        let cases = [
            ("unix//", "unix socket upstream 'unix//' has no socket path"),
            ("unix/", "unix socket upstream 'unix/' has no socket path"),
            ("unix//run/", "unix socket upstream 'unix//run/' has no socket path"),
            (
                "unix//x:80",
                "unix socket upstream 'unix//x:80' has a port; a unix socket has none (remove \
                 ':80')",
            ),
            (
                "unix/@moshi",
                "abstract unix sockets ('unix/@moshi') are not supported by ringproxy \
                 (supported: unix//absolute/path, unix/relative/path)",
            ),
            (
                "unix/{env.SOCK}",
                "placeholders in upstream addresses ('unix/{env.SOCK}') are not supported by \
                 ringproxy: upstreams are resolved when the configuration is loaded",
            ),
        ];
        for (text, want) in cases {
            assert_eq!(parse_unix_upstream(text), Some(Err(want.to_string())), "{text}");
        }
        let longest = format!("unix//{}", "a".repeat(106));
        assert!(matches!(parse_unix_upstream(&longest), Some(Ok(_))));
        let long = format!("unix//{}", "a".repeat(107));
        assert_eq!(
            parse_unix_upstream(&long),
            Some(Err(format!(
                "unix socket upstream '{long}': the path is 108 bytes long, longer than the 107 \
                 a unix socket address holds"
            )))
        );
    }

    #[test]
    fn internal_hosts() {
        for h in ["localhost", "127.0.0.1", "::1", "a.localhost", "printer.local", "x.internal"] {
            assert!(is_internal_host(&host_pattern(h).unwrap()), "{h}");
        }
        assert!(!is_internal_host(&host_pattern("example.com").unwrap()));
    }
}
