//! The `servers { … }` global option: timeouts and request-head limits that apply to every
//! listener (`limits::Limits`), the PROXY protocol on the listeners (`listener_wrappers`), and
//! which peers are trusted proxies (`trusted_proxies`, `client_ip_headers`). One row of
//! [`SERVER_OPTIONS`], [`TIMEOUTS`] or [`PROXY_PROTOCOL_OPTIONS`] and one function per option.
//!
//! Owns the checks that a value stays within its bounds (`max_header_size`); the bounds and
//! defaults themselves live in `limits`. Per-listener `servers <address> { … }` is not
//! supported yet and is an error here. Whether a `proxy_protocol` without `tls` after it fits
//! the listeners is checked once they are known (`listeners`).

use super::globals::ParsedGlobals;
use super::syntax::Directive;
use super::{Parser, Table};
use crate::config::lexer::Token;
use crate::config::limits::{self, Limits};
use crate::config::units::{parse_size, size_text};
use crate::config::{ConfigError, ProxyPolicy, ProxyProtocol};
use crate::net::ip_range::{BareAddress, IpRange, PRIVATE_RANGES};

/// Sets one `servers` option.
type ServerOption = fn(&Parser<'_>, &Directive, &mut ParsedGlobals) -> Result<(), ConfigError>;

/// Every `servers { … }` option.
const SERVER_OPTIONS: &Table<ServerOption> = &[
    ("client_ip_headers", client_ip_headers),
    ("listener_wrappers", listener_wrappers),
    ("max_header_size", max_header_size),
    ("timeouts", timeouts),
    ("trusted_proxies", trusted_proxies),
    ("trusted_proxies_strict", trusted_proxies_strict),
];

/// The listener wrappers ringproxy has (Caddy's `caddy.listeners.*` modules).
const LISTENER_WRAPPERS: &Table<()> = &[("proxy_protocol", ()), ("tls", ())];

/// Sets one `proxy_protocol { … }` option.
type ProxyProtocolOption =
    fn(&Parser<'_>, &Directive, &mut ProxyProtocol) -> Result<(), ConfigError>;

/// Every `proxy_protocol { … }` option.
const PROXY_PROTOCOL_OPTIONS: &Table<ProxyProtocolOption> = &[
    ("allow", proxy_protocol_allow),
    ("deny", proxy_protocol_deny),
    ("fallback_policy", proxy_protocol_fallback_policy),
    ("timeout", proxy_protocol_timeout),
];

/// `trusted_proxies` sources (Caddy's `http.ip_sources.*` modules).
const TRUSTED_PROXY_SOURCES: &Table<()> = &[("static", ())];

/// Sets one timeout from its single argument.
type Timeout = fn(&Parser<'_>, &Token, &mut Limits) -> Result<(), ConfigError>;

/// Every `servers { timeouts { … } }` option; each takes exactly one value.
const TIMEOUTS: &Table<Timeout> = &[
    ("idle", idle),
    ("read_body", read_body),
    ("read_header", read_header),
    ("relay_idle", relay_idle),
    ("tls_handshake", tls_handshake),
    ("write", write),
];

/// `servers { … }`, without a listener address.
pub(super) fn servers(
    p: &Parser<'_>,
    d: &Directive,
    g: &mut ParsedGlobals,
) -> Result<(), ConfigError> {
    if let Some(arg) = d.args.first() {
        return Err(p.err(
            arg.line,
            "servers options for a specific listener address are not supported by ringproxy; \
             use 'servers { ... }' without an address (it applies to every listener)",
        ));
    }
    let Some(block) = &d.block else { return Ok(()) };
    for sub in &block.items {
        let option = p.pick_sub(SERVER_OPTIONS, "servers", sub)?;
        option(p, sub, g)?;
    }
    Ok(())
}

/// `max_header_size <size>`, within `SMALLEST_MAX_HEADER_BYTES..=LARGEST_MAX_HEADER_BYTES`.
fn max_header_size(
    p: &Parser<'_>,
    d: &Directive,
    g: &mut ParsedGlobals,
) -> Result<(), ConfigError> {
    let limits = &mut g.globals.limits;
    let value = p.one_arg(d)?;
    let size = parse_size(&value.text).map_err(|m| p.err(value.line, m))?;
    if size < limits::SMALLEST_MAX_HEADER_BYTES {
        return Err(p.err(
            value.line,
            format!(
                "max_header_size {size} is too small (at least {})",
                size_text(limits::SMALLEST_MAX_HEADER_BYTES)
            ),
        ));
    }
    if size > limits::LARGEST_MAX_HEADER_BYTES {
        return Err(p.err(
            value.line,
            format!(
                "max_header_size {size} is too large (at most {})",
                size_text(limits::LARGEST_MAX_HEADER_BYTES)
            ),
        ));
    }
    limits.max_header_bytes = size;
    Ok(())
}

/// `timeouts { <name> <duration> … }`.
fn timeouts(p: &Parser<'_>, d: &Directive, g: &mut ParsedGlobals) -> Result<(), ConfigError> {
    let limits = &mut g.globals.limits;
    p.args_with_block(d, 0)?;
    let Some(block) = &d.block else {
        return Err(p.arg_err(&d.name));
    };
    for t in &block.items {
        // The value is checked first, as Caddy's dispenser reads it before the name matters.
        let value = p.one_arg(t)?;
        let timeout = p.pick_sub(TIMEOUTS, "servers timeouts", t)?;
        timeout(p, value, limits)?;
    }
    Ok(())
}

fn idle(p: &Parser<'_>, value: &Token, limits: &mut Limits) -> Result<(), ConfigError> {
    limits.idle_timeout = p.duration(value)?;
    Ok(())
}

fn read_header(p: &Parser<'_>, value: &Token, limits: &mut Limits) -> Result<(), ConfigError> {
    limits.read_header_timeout = p.duration(value)?;
    Ok(())
}

/// `read_body <duration>`: a stall timeout (see `limits::DEFAULT_READ_BODY_TIMEOUT`); `0`
/// turns it off, as a zero timeout does in Caddy.
fn read_body(p: &Parser<'_>, value: &Token, limits: &mut Limits) -> Result<(), ConfigError> {
    limits.read_body_timeout = Some(p.duration(value)?).filter(|d| !d.is_zero());
    Ok(())
}

/// `write <duration>`: a stall timeout (see `limits::DEFAULT_WRITE_TIMEOUT`); `0` turns it off.
fn write(p: &Parser<'_>, value: &Token, limits: &mut Limits) -> Result<(), ConfigError> {
    limits.write_timeout = Some(p.duration(value)?).filter(|d| !d.is_zero());
    Ok(())
}

/// `relay_idle <duration>|off|0` (a ringproxy extension).
fn relay_idle(p: &Parser<'_>, value: &Token, limits: &mut Limits) -> Result<(), ConfigError> {
    limits.relay_idle_timeout = match value.text.as_str() {
        "off" | "0" => None,
        _ => Some(p.duration(value)?),
    };
    Ok(())
}

/// `tls_handshake <duration>` (a ringproxy extension).
fn tls_handshake(p: &Parser<'_>, value: &Token, limits: &mut Limits) -> Result<(), ConfigError> {
    limits.tls_handshake_timeout = p.duration(value)?;
    Ok(())
}

/// `listener_wrappers { proxy_protocol { … } tls }`. Caddy's rules for `tls` (never first,
/// at most once) are kept; the PROXY header is read before TLS, so `proxy_protocol` must come
/// before `tls` when a listener is TLS (checked by `listeners`).
fn listener_wrappers(
    p: &Parser<'_>,
    d: &Directive,
    g: &mut ParsedGlobals,
) -> Result<(), ConfigError> {
    p.args_with_block(d, 0)?;
    if let Some(first) = g.lines.listener_wrappers.replace(d.line()) {
        return Err(p.err(
            d.line(),
            format!("listener_wrappers is set more than once (first at line {first})"),
        ));
    }
    let Some(block) = &d.block else { return Ok(()) };
    let mut tls_seen = false;
    for (position, wrapper) in block.items.iter().enumerate() {
        p.pick_sub(LISTENER_WRAPPERS, "listener_wrappers", wrapper)?;
        if wrapper.name.text == "tls" {
            p.args(wrapper, 0)?;
            if position == 0 {
                // Caddy's own words: TLS is first unless said otherwise.
                return Err(p.err(
                    wrapper.line(),
                    "it is unnecessary to specify the TLS listener wrapper in the first \
                     position because that is the default",
                ));
            }
            if tls_seen {
                return Err(
                    p.err(wrapper.line(), "TLS listener wrapper can only be specified once")
                );
            }
            tls_seen = true;
            continue;
        }
        if g.globals.proxy_protocol.is_some() {
            return Err(p.err(
                wrapper.line(),
                "proxy_protocol can be listed only once in ringproxy (a second PROXY header \
                 inside the first is not supported)",
            ));
        }
        g.globals.proxy_protocol = Some(proxy_protocol(p, wrapper)?);
        g.lines.proxy_protocol = Some(wrapper.line());
    }
    g.lines.proxy_protocol_inside_tls = g.lines.proxy_protocol.filter(|_| !tls_seen);
    Ok(())
}

/// `proxy_protocol { timeout <d>  allow <cidr…>  deny <cidr…>  fallback_policy <policy> }`.
fn proxy_protocol(p: &Parser<'_>, d: &Directive) -> Result<ProxyProtocol, ConfigError> {
    p.args_with_block(d, 0)?;
    let mut settings = ProxyProtocol {
        timeout: limits::DEFAULT_PROXY_HEADER_TIMEOUT,
        allow: Vec::new(),
        deny: Vec::new(),
        fallback_policy: ProxyPolicy::Ignore,
    };
    if let Some(block) = &d.block {
        for option in &block.items {
            let set = p.pick_sub(PROXY_PROTOCOL_OPTIONS, "proxy_protocol", option)?;
            set(p, option, &mut settings)?;
        }
    }
    Ok(settings)
}

/// `timeout <duration>`; `0` is the default, as it is in Caddy (go-proxyproto's 10 s).
fn proxy_protocol_timeout(
    p: &Parser<'_>,
    d: &Directive,
    settings: &mut ProxyProtocol,
) -> Result<(), ConfigError> {
    let timeout = p.duration(p.one_arg(d)?)?;
    settings.timeout =
        if timeout.is_zero() { limits::DEFAULT_PROXY_HEADER_TIMEOUT } else { timeout };
    Ok(())
}

fn proxy_protocol_allow(
    p: &Parser<'_>,
    d: &Directive,
    settings: &mut ProxyProtocol,
) -> Result<(), ConfigError> {
    p.no_block(d)?;
    settings.allow.extend(cidrs(p, &d.args)?);
    Ok(())
}

fn proxy_protocol_deny(
    p: &Parser<'_>,
    d: &Directive,
    settings: &mut ProxyProtocol,
) -> Result<(), ConfigError> {
    p.no_block(d)?;
    settings.deny.extend(cidrs(p, &d.args)?);
    Ok(())
}

/// `allow`/`deny` ranges: CIDR only, as Caddy parses them (no bare addresses, no
/// `private_ranges`).
fn cidrs(p: &Parser<'_>, args: &[Token]) -> Result<Vec<IpRange>, ConfigError> {
    args.iter()
        .map(|a| IpRange::parse(&a.text, BareAddress::Refused).map_err(|m| p.err(a.line, m)))
        .collect()
}

/// `fallback_policy ignore|use|reject|require|skip`, any case (as in Caddy).
fn proxy_protocol_fallback_policy(
    p: &Parser<'_>,
    d: &Directive,
    settings: &mut ProxyProtocol,
) -> Result<(), ConfigError> {
    let value = p.one_arg(d)?;
    let named = ProxyPolicy::NAMES.iter().find(|(name, _)| value.text.eq_ignore_ascii_case(name));
    let Some((_, policy)) = named else {
        let names: Vec<&str> = ProxyPolicy::NAMES.iter().map(|(name, _)| *name).collect();
        return Err(p.err(
            value.line,
            format!("'{}' is not a fallback_policy (one of: {})", value.text, names.join(", ")),
        ));
    };
    settings.fallback_policy = *policy;
    Ok(())
}

/// `trusted_proxies static <range|private_ranges>…`: ranges may be bare addresses.
fn trusted_proxies(
    p: &Parser<'_>,
    d: &Directive,
    g: &mut ParsedGlobals,
) -> Result<(), ConfigError> {
    p.no_block(d)?;
    let Some((source, ranges)) = d.args.split_first() else {
        return Err(p.arg_err(&d.name));
    };
    p.pick(TRUSTED_PROXY_SOURCES, "trusted_proxies source", source)?;
    if let Some(first) = g.lines.trusted_proxies.replace(d.line()) {
        return Err(p.err(
            d.line(),
            format!("trusted_proxies is set more than once (first at line {first})"),
        ));
    }
    let trusted = &mut g.globals.client_ip.trusted_proxies;
    for range in ranges {
        if range.text == "private_ranges" {
            for private in PRIVATE_RANGES {
                trusted.extend(IpRange::parse(private, BareAddress::Accepted));
            }
            continue;
        }
        trusted.push(
            IpRange::parse(&range.text, BareAddress::Accepted).map_err(|m| p.err(range.line, m))?,
        );
    }
    Ok(())
}

/// `trusted_proxies_strict`: read the client IP right to left (see `ClientIp::strict`).
fn trusted_proxies_strict(
    p: &Parser<'_>,
    d: &Directive,
    g: &mut ParsedGlobals,
) -> Result<(), ConfigError> {
    p.args(d, 0)?;
    g.globals.client_ip.strict = true;
    Ok(())
}

/// `client_ip_headers <name>…`, appended in order; a name listed twice is an error.
fn client_ip_headers(
    p: &Parser<'_>,
    d: &Directive,
    g: &mut ParsedGlobals,
) -> Result<(), ConfigError> {
    p.no_block(d)?;
    let headers = &mut g.globals.client_ip.headers;
    for name in &d.args {
        if headers.iter().any(|h| h.eq_ignore_ascii_case(&name.text)) {
            return Err(p.err(
                name.line,
                format!("client IP header {} specified more than once", name.text),
            ));
        }
        headers.push(name.text.clone());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::test_support::{parse, parse_err};
    use super::*;

    fn limits_of(servers_block: &str) -> Limits {
        parse(&format!("{{\n\tservers {{\n{servers_block}\t}}\n}}\n")).globals.limits
    }

    fn globals_of(servers_block: &str) -> crate::config::Globals {
        parse(&format!("{{\n\tservers {{\n{servers_block}\t}}\n}}\n")).globals
    }

    fn wrappers(inner: &str) -> String {
        format!("\t\tlistener_wrappers {{\n{inner}\t\t}}\n")
    }

    fn servers_err(servers_block: &str) -> String {
        parse_err(&format!("{{\n\tservers {{\n{servers_block}\t}}\n}}\n"))
    }

    fn ip(text: &str) -> std::net::IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn tables_are_listed_alphabetically() {
        for names in [
            SERVER_OPTIONS.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
            TIMEOUTS.iter().map(|(n, _)| *n).collect(),
            PROXY_PROTOCOL_OPTIONS.iter().map(|(n, _)| *n).collect(),
            LISTENER_WRAPPERS.iter().map(|(n, _)| *n).collect(),
        ] {
            let mut sorted = names.clone();
            sorted.sort_unstable();
            assert_eq!(names, sorted);
        }
    }

    #[test]
    fn every_timeout_sets_its_limit() {
        let l = limits_of(
            "\t\ttimeouts {\n\t\t\tread_header 5s\n\t\t\tidle 2m\n\t\t\ttls_handshake 3s\n\t\t\t\
             relay_idle 1h\n\t\t\tread_body 20s\n\t\t\twrite 45s\n\t\t}\n",
        );
        assert_eq!(l.read_header_timeout, Duration::from_secs(5));
        assert_eq!(l.read_body_timeout, Some(Duration::from_secs(20)));
        assert_eq!(l.write_timeout, Some(Duration::from_secs(45)));
        assert_eq!(l.idle_timeout, Duration::from_secs(120));
        assert_eq!(l.tls_handshake_timeout, Duration::from_secs(3));
        assert_eq!(l.relay_idle_timeout, Some(Duration::from_secs(3600)));
        assert_eq!(l.max_header_bytes, limits::DEFAULT_MAX_HEADER_BYTES);
    }

    #[test]
    fn relay_idle_off_and_zero_mean_never() {
        for value in ["off", "0"] {
            let l = limits_of(&format!("\t\ttimeouts {{\n\t\t\trelay_idle {value}\n\t\t}}\n"));
            assert_eq!(l.relay_idle_timeout, None, "{value}");
        }
    }

    #[test]
    fn a_zero_body_or_write_timeout_turns_it_off() {
        let l = limits_of("\t\ttimeouts {\n\t\t\tread_body 0\n\t\t\twrite 0s\n\t\t}\n");
        assert_eq!((l.read_body_timeout, l.write_timeout), (None, None));
        let defaults = Limits::default();
        assert_eq!(defaults.read_body_timeout, Some(limits::DEFAULT_READ_BODY_TIMEOUT));
        assert_eq!(defaults.write_timeout, Some(limits::DEFAULT_WRITE_TIMEOUT));
    }

    #[test]
    fn an_empty_servers_block_changes_nothing() {
        assert_eq!(limits_of(""), Limits::default());
        assert_eq!(parse("{\n\tservers\n}\n").globals.limits, Limits::default());
    }

    #[test]
    fn unknown_options_list_the_supported_ones() {
        assert_eq!(
            parse_err("{\n\tservers {\n\t\tprotocols h1\n\t}\n}\n"),
            "Caddyfile:3 - subdirective 'protocols' of servers is not supported by ringproxy \
             (supported: client_ip_headers, listener_wrappers, max_header_size, timeouts, \
             trusted_proxies, trusted_proxies_strict)"
        );
        assert_eq!(
            parse_err(
                "{\n\tservers {\n\t\ttimeouts {\n\t\t\tkeepalive_interval 30s\n\t\t}\n\t}\n}\n"
            ),
            "Caddyfile:4 - subdirective 'keepalive_interval' of servers timeouts is not \
             supported by ringproxy (supported: idle, read_body, read_header, relay_idle, \
             tls_handshake, write)"
        );
    }

    #[test]
    fn a_timeout_without_its_value_is_an_argument_error_even_if_unknown() {
        assert_eq!(
            parse_err("{\n\tservers {\n\t\ttimeouts {\n\t\t\twrite\n\t\t}\n\t}\n}\n"),
            "Caddyfile:4 - wrong argument count or unexpected line ending after 'write'"
        );
        assert_eq!(
            parse_err("{\n\tservers {\n\t\ttimeouts {\n\t\t\tidle 1s 2s\n\t\t}\n\t}\n}\n"),
            "Caddyfile:4 - wrong argument count or unexpected line ending after '1s'"
        );
    }

    #[test]
    fn timeouts_needs_a_block_and_no_arguments() {
        assert_eq!(
            parse_err("{\n\tservers {\n\t\ttimeouts\n\t}\n}\n"),
            "Caddyfile:3 - wrong argument count or unexpected line ending after 'timeouts'"
        );
        assert_eq!(
            parse_err("{\n\tservers {\n\t\ttimeouts 5s\n\t}\n}\n"),
            "Caddyfile:3 - wrong argument count or unexpected line ending after 'timeouts'"
        );
    }

    #[test]
    fn servers_for_one_listener_address_is_an_error() {
        assert_eq!(
            parse_err("{\n\tservers :443 {\n\t}\n}\n"),
            "Caddyfile:2 - servers options for a specific listener address are not supported \
             by ringproxy; use 'servers { ... }' without an address (it applies to every \
             listener)"
        );
    }

    #[test]
    fn max_header_size_accepts_sizes_between_the_bounds() {
        let sizes =
            [("32KiB", 32 * 1024), ("1KiB", 1024), ("1MiB", 1024 * 1024), ("100kb", 100_000)];
        for (text, bytes) in sizes {
            let l = limits_of(&format!("\t\tmax_header_size {text}\n"));
            assert_eq!(l.max_header_bytes, bytes, "{text}");
        }
    }

    #[test]
    fn max_header_size_below_one_kib_is_too_small() {
        assert_eq!(
            parse_err("{\n\tservers {\n\t\tmax_header_size 1023\n\t}\n}\n"),
            "Caddyfile:3 - max_header_size 1023 is too small (at least 1KiB)"
        );
    }

    #[test]
    fn max_header_size_above_one_mib_is_too_large() {
        assert_eq!(
            parse_err("{\n\tservers {\n\t\tmax_header_size 2MiB\n\t}\n}\n"),
            "Caddyfile:3 - max_header_size 2097152 is too large (at most 1MiB)"
        );
        assert_eq!(
            parse_err("{\n\tservers {\n\t\tmax_header_size 1048577\n\t}\n}\n"),
            "Caddyfile:3 - max_header_size 1048577 is too large (at most 1MiB)"
        );
    }

    #[test]
    fn max_header_size_must_be_a_size() {
        assert_eq!(
            parse_err("{\n\tservers {\n\t\tmax_header_size big\n\t}\n}\n"),
            "Caddyfile:3 - invalid size 'big'"
        );
    }

    #[test]
    fn proxy_protocol_sets_every_option_and_the_policy_follows_deny_then_allow() {
        let g = globals_of(&wrappers(
            "\t\t\tproxy_protocol {\n\t\t\t\ttimeout 2s\n\t\t\t\tallow 10.0.0.0/8 192.0.2.0/24\n\
             \t\t\t\tdeny 10.1.0.0/16\n\t\t\t\tfallback_policy REQUIRE\n\t\t\t}\n\t\t\ttls\n",
        ));
        let pp = g.proxy_protocol.unwrap();
        assert_eq!(pp.timeout, Duration::from_secs(2));
        assert_eq!((pp.allow.len(), pp.deny.len()), (2, 1));
        assert_eq!(pp.fallback_policy, ProxyPolicy::Require);
        assert_eq!(pp.policy_for(ip("10.1.2.3")), ProxyPolicy::Reject);
        assert_eq!(pp.policy_for(ip("10.2.0.1")), ProxyPolicy::Use);
        assert_eq!(pp.policy_for(ip("::ffff:192.0.2.1")), ProxyPolicy::Use);
        assert_eq!(pp.policy_for(ip("203.0.113.1")), ProxyPolicy::Require);
    }

    #[test]
    fn a_bare_proxy_protocol_has_caddys_defaults_and_timeout_zero_is_the_default() {
        let g = globals_of(&wrappers("\t\t\tproxy_protocol\n\t\t\ttls\n"));
        let pp = g.proxy_protocol.unwrap();
        assert_eq!(pp.timeout, limits::DEFAULT_PROXY_HEADER_TIMEOUT);
        assert_eq!(pp.fallback_policy, ProxyPolicy::Ignore);
        assert_eq!(pp.policy_for(ip("10.0.0.1")), ProxyPolicy::Ignore);
        let g = globals_of(&wrappers(
            "\t\t\tproxy_protocol {\n\t\t\t\ttimeout 0\n\t\t\t}\n\t\t\ttls\n",
        ));
        assert_eq!(g.proxy_protocol.unwrap().timeout, limits::DEFAULT_PROXY_HEADER_TIMEOUT);
        assert_eq!(globals_of(&wrappers("")).proxy_protocol, None);
        assert_eq!(globals_of("").proxy_protocol, None);
    }

    #[test]
    fn every_fallback_policy_is_read_in_any_case() {
        for (name, policy) in ProxyPolicy::NAMES {
            let block = format!(
                "\t\t\tproxy_protocol {{\n\t\t\t\tfallback_policy {}\n\t\t\t}}\n\t\t\ttls\n",
                name.to_uppercase()
            );
            let g = globals_of(&wrappers(&block));
            assert_eq!(g.proxy_protocol.unwrap().fallback_policy, policy, "{name}");
        }
        assert_eq!(
            servers_err(&wrappers(
                "\t\t\tproxy_protocol {\n\t\t\t\tfallback_policy nope\n\t\t\t}\n\t\t\ttls\n"
            )),
            "Caddyfile:5 - 'nope' is not a fallback_policy (one of: ignore, use, reject, \
             require, skip)"
        );
    }

    #[test]
    fn tls_first_or_twice_is_an_error_as_in_caddy() {
        assert_eq!(
            servers_err(&wrappers("\t\t\ttls\n\t\t\tproxy_protocol\n")),
            "Caddyfile:4 - it is unnecessary to specify the TLS listener wrapper in the first \
             position because that is the default"
        );
        assert_eq!(
            servers_err(&wrappers("\t\t\tproxy_protocol\n\t\t\ttls\n\t\t\ttls\n")),
            "Caddyfile:6 - TLS listener wrapper can only be specified once"
        );
    }

    #[test]
    fn unsupported_wrappers_options_and_repeats_are_errors() {
        assert_eq!(
            servers_err(&wrappers("\t\t\thttp_redirect\n\t\t\ttls\n")),
            "Caddyfile:4 - subdirective 'http_redirect' of listener_wrappers is not supported \
             by ringproxy (supported: proxy_protocol, tls)"
        );
        assert_eq!(
            servers_err(&wrappers("\t\t\tproxy_protocol\n\t\t\tproxy_protocol\n\t\t\ttls\n")),
            "Caddyfile:5 - proxy_protocol can be listed only once in ringproxy (a second PROXY \
             header inside the first is not supported)"
        );
        assert_eq!(
            servers_err(&format!("{}{}", wrappers(""), wrappers(""))),
            "Caddyfile:5 - listener_wrappers is set more than once (first at line 3)"
        );
        assert_eq!(
            servers_err(&wrappers("\t\t\tproxy_protocol {\n\t\t\t\tbogus 1\n\t\t\t}\n\t\t\ttls\n")),
            "Caddyfile:5 - subdirective 'bogus' of proxy_protocol is not supported by \
             ringproxy (supported: allow, deny, fallback_policy, timeout)"
        );
        assert_eq!(
            servers_err(&wrappers("\t\t\tproxy_protocol x\n\t\t\ttls\n")),
            "Caddyfile:4 - wrong argument count or unexpected line ending after 'proxy_protocol'"
        );
    }

    #[test]
    fn allow_and_deny_take_cidr_ranges_only_as_caddy_does() {
        assert_eq!(
            servers_err(&wrappers(
                "\t\t\tproxy_protocol {\n\t\t\t\tallow 10.0.0.1\n\t\t\t}\n\t\t\ttls\n"
            )),
            "Caddyfile:5 - '10.0.0.1' is not a CIDR range (write it as 10.0.0.1/32 for one \
             address)"
        );
        assert_eq!(
            servers_err(&wrappers(
                "\t\t\tproxy_protocol {\n\t\t\t\tdeny private_ranges\n\t\t\t}\n\t\t\ttls\n"
            )),
            "Caddyfile:5 - invalid IP address or CIDR range 'private_ranges'"
        );
    }

    #[test]
    fn proxy_protocol_without_tls_after_it_is_refused_only_with_tls_listeners() {
        let plaintext =
            "{\n\tservers {\n\t\tlistener_wrappers {\n\t\t\tproxy_protocol\n\t\t}\n\t}\n}\n\
                         :8080 {\n\trespond hi\n}\n";
        assert!(parse(plaintext).globals.proxy_protocol.is_some());
        let tls = plaintext.replace(":8080", "example.com");
        assert_eq!(
            parse_err(&tls),
            "Caddyfile:4 - proxy_protocol without 'tls' after it in listener_wrappers means the \
             PROXY header comes inside TLS on HTTPS listeners, which ringproxy does not \
             support; list 'tls' after proxy_protocol (the header comes before the TLS \
             handshake)"
        );
    }

    #[test]
    fn trusted_proxies_static_takes_ranges_addresses_and_private_ranges() {
        let g = globals_of(
            "\t\ttrusted_proxies static private_ranges 203.0.113.0/24 198.51.100.7\n\
             \t\ttrusted_proxies_strict\n\t\tclient_ip_headers X-Real-IP\n\
             \t\tclient_ip_headers X-Forwarded-For\n",
        );
        let c = g.client_ip;
        assert_eq!(c.trusted_proxies.len(), PRIVATE_RANGES.len() + 2);
        for trusted in ["127.0.0.1", "10.2.3.4", "203.0.113.200", "198.51.100.7", "::1"] {
            assert!(c.trusts(ip(trusted)), "{trusted}");
        }
        assert!(!c.trusts(ip("198.51.100.8")));
        assert!(c.strict);
        assert_eq!(c.headers, ["X-Real-IP", "X-Forwarded-For"]);
        let none = globals_of("").client_ip;
        assert!(!none.trusts(ip("127.0.0.1")) && !none.strict && none.headers.is_empty());
        assert!(globals_of("\t\ttrusted_proxies static\n").client_ip.trusted_proxies.is_empty());
    }

    #[test]
    fn trusted_proxies_errors_name_the_line() {
        assert_eq!(
            servers_err("\t\ttrusted_proxies cloudflare\n"),
            "Caddyfile:3 - trusted_proxies source 'cloudflare' is not supported by ringproxy \
             (supported: static)"
        );
        assert_eq!(
            servers_err("\t\ttrusted_proxies\n"),
            "Caddyfile:3 - wrong argument count or unexpected line ending after \
             'trusted_proxies'"
        );
        assert_eq!(
            servers_err("\t\ttrusted_proxies static 10.0.0.0/8 bogus\n"),
            "Caddyfile:3 - invalid IP address or CIDR range 'bogus'"
        );
        assert_eq!(
            servers_err("\t\ttrusted_proxies static 10.0.0.0/8\n\t\ttrusted_proxies static\n"),
            "Caddyfile:4 - trusted_proxies is set more than once (first at line 3)"
        );
        assert_eq!(
            servers_err("\t\tclient_ip_headers X-Real-IP x-real-ip\n"),
            "Caddyfile:3 - client IP header x-real-ip specified more than once"
        );
        assert_eq!(
            servers_err("\t\ttrusted_proxies_unix\n"),
            "Caddyfile:3 - subdirective 'trusted_proxies_unix' of servers is not supported by \
             ringproxy (supported: client_ip_headers, listener_wrappers, max_header_size, \
             timeouts, trusted_proxies, trusted_proxies_strict)"
        );
    }
}
