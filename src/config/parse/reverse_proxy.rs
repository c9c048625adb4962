//! `reverse_proxy [<matcher>] [<upstreams…>] [{ … }]` → an [`UpstreamSet`]: upstreams
//! (TCP ones resolved now, through `ParseOptions`' resolver; unix socket paths), load balancing
//! and retries, passive and active health, header operations and `transport http`. One row of
//! [`PROXY_OPTIONS`] (or of [`HTTP_TRANSPORT_OPTIONS`]) and one function per subdirective.
//!
//! Owns the rules between subdirectives (health checks need `health_uri`) and the set's index
//! in `Config::upstream_sets`; defaults are `UpstreamSet::default()`'s. How upstreams are
//! picked and dialled at run time is `upstream`'s business.

use std::time::Duration;

use super::syntax::Directive;
use super::{is_token_byte, Parser, Table};
use crate::config::lexer::Token;
use crate::config::placeholder::{self, Context};
use crate::config::{
    address, limits, ConfigError, DialAddr, Handler, HeaderOp, HealthCheck, LbPolicy, Transport,
    Upstream, UpstreamSet,
};

/// Reads one `reverse_proxy { … }` subdirective.
type ProxyOption = fn(&Parser<'_>, &Directive, &mut ProxyDraft) -> Result<(), ConfigError>;

/// Every `reverse_proxy { … }` subdirective.
const PROXY_OPTIONS: &Table<ProxyOption> = &[
    ("fail_duration", fail_duration),
    ("flush_interval", flush_interval),
    ("header_down", header_down),
    ("header_up", header_up),
    ("health_interval", health_interval),
    ("health_timeout", health_timeout),
    ("health_uri", health_uri),
    ("lb_policy", lb_policy),
    ("lb_retries", lb_retries),
    ("lb_try_duration", lb_try_duration),
    ("lb_try_interval", lb_try_interval),
    ("max_fails", max_fails),
    ("stream_close_delay", stream_close_delay),
    ("stream_timeout", stream_timeout),
    ("to", to),
    ("transport", transport),
];

/// `lb_policy` values.
const LB_POLICIES: &Table<LbPolicy> = &[
    ("first", LbPolicy::First),
    ("ip_hash", LbPolicy::IpHash),
    ("least_conn", LbPolicy::LeastConn),
    ("random", LbPolicy::Random),
    ("round_robin", LbPolicy::RoundRobin),
];

/// Reads a `transport <module> [{ … }]` subdirective.
type TransportModule = fn(&Parser<'_>, &Directive, &mut Transport) -> Result<(), ConfigError>;

/// `transport <module>`.
const TRANSPORTS: &Table<TransportModule> = &[("http", transport_http)];

/// Sets one `transport http` option from its single value.
type TransportOption = fn(&Parser<'_>, &Token, &mut Transport) -> Result<(), ConfigError>;

/// Every `transport http { … }` option; each takes exactly one value.
const HTTP_TRANSPORT_OPTIONS: &Table<TransportOption> = &[
    ("dial_timeout", dial_timeout),
    ("keepalive", keepalive),
    ("keepalive_idle_conns", keepalive_idle_conns),
    ("read_timeout", read_timeout),
    ("response_header_timeout", response_header_timeout),
    ("write_timeout", write_timeout),
];

/// A `reverse_proxy` (or `forward_auth`, whose block takes the same subdirectives) being
/// read: the set, and the health-check options that only make sense together.
pub(super) struct ProxyDraft {
    set: UpstreamSet,
    health_uri: Option<String>,
    /// Value and line, so that an interval without a URI can be pointed at.
    health_interval: Option<(Duration, usize)>,
    health_timeout: Option<(Duration, usize)>,
    /// `lb_try_interval` as written; its default depends on `lb_try_duration`.
    try_interval: Option<Duration>,
}

impl ProxyDraft {
    /// A set written at `d`, with the upstreams given as `args`.
    pub(super) fn new(p: &Parser<'_>, d: &Directive, args: &[Token]) -> Result<Self, ConfigError> {
        let mut draft = ProxyDraft {
            set: UpstreamSet { origin: p.origin(d.line()), ..UpstreamSet::default() },
            health_uri: None,
            health_interval: None,
            health_timeout: None,
            try_interval: None,
        };
        for arg in args {
            draft.set.upstreams.push(p.upstream(arg)?);
        }
        Ok(draft)
    }

    /// Read `sub` if it is a `reverse_proxy` subdirective; `None` when it is not one.
    pub(super) fn option(
        &mut self,
        p: &Parser<'_>,
        sub: &Directive,
    ) -> Option<Result<(), ConfigError>> {
        let option = super::lookup(PROXY_OPTIONS, &sub.name.text)?;
        Some(option(p, sub, self))
    }

    /// Check the rules between subdirectives and add the set to the config; its index.
    pub(super) fn finish(self, p: &mut Parser<'_>, d: &Directive) -> Result<usize, ConfigError> {
        if self.set.upstreams.is_empty() {
            let message = format!("{} needs at least one upstream", d.name.text);
            return Err(p.err(d.line(), message));
        }
        let mut set = self.set;
        // Caddy gathers every header_down line into one set of ops, applied by kind.
        super::headers::caddy_order(&mut set.header_down);
        set.retries.interval = match (self.try_interval, set.retries.duration) {
            (Some(interval), _) => interval,
            (None, Some(_)) => limits::DEFAULT_LB_TRY_INTERVAL,
            (None, None) => Duration::ZERO,
        };
        match self.health_uri {
            Some(uri) => {
                set.health = Some(HealthCheck {
                    uri,
                    interval: self
                        .health_interval
                        .map_or(limits::DEFAULT_HEALTH_INTERVAL, |(v, _)| v),
                    timeout: self.health_timeout.map_or(limits::DEFAULT_HEALTH_TIMEOUT, |(v, _)| v),
                });
            }
            None => {
                if let Some((_, line)) = self.health_interval.or(self.health_timeout) {
                    return Err(p.err(
                        line,
                        "active health checks need health_uri (health_interval and \
                         health_timeout have no effect without it)",
                    ));
                }
            }
        }
        let index = p.upstream_sets.len();
        p.upstream_sets.push(set);
        Ok(index)
    }
}

/// The names of every `reverse_proxy` subdirective, for the lists of directives that share
/// them.
pub(super) fn option_names() -> impl Iterator<Item = &'static str> {
    PROXY_OPTIONS.iter().map(|(name, _)| *name)
}

/// `reverse_proxy`: adds an upstream set to the config; the handler refers to it by index.
pub(super) fn reverse_proxy(
    p: &mut Parser<'_>,
    d: &Directive,
    args: &[Token],
) -> Result<Handler, ConfigError> {
    let mut draft = ProxyDraft::new(p, d, args)?;
    if let Some(block) = &d.block {
        for sub in &block.items {
            let option = p.pick_sub(PROXY_OPTIONS, "reverse_proxy", sub)?;
            option(p, sub, &mut draft)?;
        }
    }
    Ok(Handler::Proxy(draft.finish(p, d)?))
}

impl Parser<'_> {
    fn upstream(&self, token: &Token) -> Result<Upstream, ConfigError> {
        if let Some(path) = address::parse_unix_upstream(&token.text) {
            let path = path.map_err(|m| self.err(token.line, m))?;
            return Ok(Upstream { display: token.text.clone(), addrs: vec![DialAddr::Unix(path)] });
        }
        let parsed = address::parse_upstream(&token.text).map_err(|m| self.err(token.line, m))?;
        let addrs = address::resolve_upstream(&parsed, &*self.options.resolver).map_err(|e| {
            self.err(token.line, format!("cannot resolve upstream '{}': {e}", token.text))
        })?;
        let addrs = addrs.into_iter().map(DialAddr::Tcp).collect();
        Ok(Upstream { display: token.text.clone(), addrs })
    }

    /// `header_up`/`header_down`: `Name value`, `+Name value` or `-Name`.
    fn header_op(&self, d: &Directive, context: Context) -> Result<HeaderOp, ConfigError> {
        self.no_block(d)?;
        let field_name = |t: &Token, name: &str| -> Result<String, ConfigError> {
            if name.is_empty() || !name.bytes().all(is_token_byte) {
                return Err(self.err(t.line, format!("invalid header name '{}'", t.text)));
            }
            Ok(name.to_string())
        };
        let value =
            |t: &Token| placeholder::compile(&t.text, context).map_err(|m| self.err(t.line, m));
        match &d.args[..] {
            [field] => match field.text.strip_prefix('-') {
                Some(name) => Ok(HeaderOp::Remove { name: field_name(field, name)? }),
                None => Err(self.arg_err(field)),
            },
            [field, v] => {
                if let Some(name) = field.text.strip_prefix('+') {
                    Ok(HeaderOp::Add { name: field_name(field, name)?, value: value(v)? })
                } else if field.text.starts_with('-') {
                    Err(self.arg_err(field))
                } else {
                    Ok(HeaderOp::Set { name: field_name(field, &field.text)?, value: value(v)? })
                }
            }
            [] => Err(self.arg_err(&d.name)),
            [_, _, third, ..] => Err(self.err(
                third.line,
                format!(
                    "{} with a search and replace is not supported by ringproxy (supported: Name \
                     value, +Name value, -Name)",
                    d.name.text
                ),
            )),
        }
    }
}

/// `to <upstream>…`, after any given as arguments.
fn to(p: &Parser<'_>, d: &Directive, draft: &mut ProxyDraft) -> Result<(), ConfigError> {
    p.no_block(d)?;
    for arg in p.some_args(d)? {
        draft.set.upstreams.push(p.upstream(arg)?);
    }
    Ok(())
}

/// `lb_policy <policy>`; the policy is named before the argument count is checked, so that
/// Caddy policies with options (`cookie <name>`) are reported as unsupported.
fn lb_policy(p: &Parser<'_>, d: &Directive, draft: &mut ProxyDraft) -> Result<(), ConfigError> {
    let policy = &p.some_args(d)?[0];
    draft.set.lb_policy = *p.pick(LB_POLICIES, "lb_policy", policy)?;
    p.args(d, 1)?;
    Ok(())
}

/// `lb_retries <n>`: tries after the first. Caddy takes a negative count as "no limit"
/// (retrying forever without `lb_try_duration`); ringproxy refuses it.
fn lb_retries(p: &Parser<'_>, d: &Directive, draft: &mut ProxyDraft) -> Result<(), ConfigError> {
    let n = p.one_arg(d)?;
    draft.set.retries.count = n.text.parse::<u32>().map_err(|_| {
        p.err(n.line, format!("invalid lb_retries '{}': must be 0 or a positive integer", n.text))
    })?;
    Ok(())
}

/// `lb_try_duration <duration>`: `0` is off, as in Caddy.
fn lb_try_duration(
    p: &Parser<'_>,
    d: &Directive,
    draft: &mut ProxyDraft,
) -> Result<(), ConfigError> {
    draft.set.retries.duration = Some(p.duration(p.one_arg(d)?)?).filter(|t| !t.is_zero());
    Ok(())
}

/// `lb_try_interval <duration>`: `0` is the default, as in Caddy (which cannot be told not to
/// wait when `lb_try_duration` is set).
fn lb_try_interval(
    p: &Parser<'_>,
    d: &Directive,
    draft: &mut ProxyDraft,
) -> Result<(), ConfigError> {
    draft.try_interval = Some(p.duration(p.one_arg(d)?)?).filter(|t| !t.is_zero());
    Ok(())
}

fn health_uri(p: &Parser<'_>, d: &Directive, draft: &mut ProxyDraft) -> Result<(), ConfigError> {
    let uri = p.one_arg(d)?;
    if !uri.text.starts_with('/') {
        return Err(p.err(uri.line, format!("health_uri must start with '/', got '{}'", uri.text)));
    }
    draft.health_uri = Some(uri.text.clone());
    Ok(())
}

fn health_interval(
    p: &Parser<'_>,
    d: &Directive,
    draft: &mut ProxyDraft,
) -> Result<(), ConfigError> {
    draft.health_interval = Some((p.duration(p.one_arg(d)?)?, d.line()));
    Ok(())
}

fn health_timeout(
    p: &Parser<'_>,
    d: &Directive,
    draft: &mut ProxyDraft,
) -> Result<(), ConfigError> {
    draft.health_timeout = Some((p.duration(p.one_arg(d)?)?, d.line()));
    Ok(())
}

fn fail_duration(p: &Parser<'_>, d: &Directive, draft: &mut ProxyDraft) -> Result<(), ConfigError> {
    draft.set.fail_duration = p.duration(p.one_arg(d)?)?;
    Ok(())
}

/// `stream_timeout <duration>` (Caddy 2.7+): `0` is none, as in Caddy.
fn stream_timeout(
    p: &Parser<'_>,
    d: &Directive,
    draft: &mut ProxyDraft,
) -> Result<(), ConfigError> {
    draft.set.stream_timeout = Some(p.duration(p.one_arg(d)?)?).filter(|t| !t.is_zero());
    Ok(())
}

/// Accepted for Caddy configs and checked, with no effect: Caddy closes every WebSocket when a
/// config is unloaded and this delays that; ringproxy's reload closes none, and a stop gives
/// streams `grace_period`.
fn stream_close_delay(
    p: &Parser<'_>,
    d: &Directive,
    _: &mut ProxyDraft,
) -> Result<(), ConfigError> {
    p.duration(p.one_arg(d)?)?;
    Ok(())
}

fn max_fails(p: &Parser<'_>, d: &Directive, draft: &mut ProxyDraft) -> Result<(), ConfigError> {
    let n = p.one_arg(d)?;
    draft.set.max_fails = n.text.parse::<u32>().ok().filter(|n| *n > 0).ok_or_else(|| {
        p.err(n.line, format!("invalid max_fails '{}': must be a positive integer", n.text))
    })?;
    Ok(())
}

/// Accepted for compatibility: ringproxy always streams, which is what any flush_interval
/// asks for at the latency we care about.
fn flush_interval(p: &Parser<'_>, d: &Directive, _: &mut ProxyDraft) -> Result<(), ConfigError> {
    let v = p.one_arg(d)?;
    if v.text != "-1" {
        p.duration(v)?;
    }
    Ok(())
}

fn header_up(p: &Parser<'_>, d: &Directive, draft: &mut ProxyDraft) -> Result<(), ConfigError> {
    draft.set.header_up.push(p.header_op(d, Context::HeaderUp)?);
    Ok(())
}

fn header_down(p: &Parser<'_>, d: &Directive, draft: &mut ProxyDraft) -> Result<(), ConfigError> {
    draft.set.header_down.push(p.header_down_op(d)?);
    Ok(())
}

/// `transport <module> [{ … }]`: only `http` exists in ringproxy.
fn transport(p: &Parser<'_>, d: &Directive, draft: &mut ProxyDraft) -> Result<(), ConfigError> {
    let kind = &p.args_with_block(d, 1)?[0];
    let transport = p.pick(TRANSPORTS, "transport", kind)?;
    transport(p, d, &mut draft.set.transport)
}

fn transport_http(p: &Parser<'_>, d: &Directive, t: &mut Transport) -> Result<(), ConfigError> {
    let Some(block) = &d.block else { return Ok(()) };
    for sub in &block.items {
        // The value is checked first, as Caddy's dispenser reads it before the name matters.
        let value = p.one_arg(sub)?;
        let option = p.pick_sub(HTTP_TRANSPORT_OPTIONS, "transport http", sub)?;
        option(p, value, t)?;
    }
    Ok(())
}

fn dial_timeout(p: &Parser<'_>, value: &Token, t: &mut Transport) -> Result<(), ConfigError> {
    t.dial_timeout = p.duration(value)?;
    Ok(())
}

fn response_header_timeout(
    p: &Parser<'_>,
    value: &Token,
    t: &mut Transport,
) -> Result<(), ConfigError> {
    t.response_header_timeout = Some(p.duration(value)?);
    Ok(())
}

/// `read_timeout <duration>`: a stall timeout on the response body (see
/// `limits::DEFAULT_UPSTREAM_READ_TIMEOUT`); `0` turns it off.
fn read_timeout(p: &Parser<'_>, value: &Token, t: &mut Transport) -> Result<(), ConfigError> {
    t.read_timeout = Some(p.duration(value)?).filter(|d| !d.is_zero());
    Ok(())
}

/// `write_timeout <duration>`: a stall timeout on sending the request (see
/// `limits::DEFAULT_UPSTREAM_WRITE_TIMEOUT`); `0` turns it off.
fn write_timeout(p: &Parser<'_>, value: &Token, t: &mut Transport) -> Result<(), ConfigError> {
    t.write_timeout = Some(p.duration(value)?).filter(|d| !d.is_zero());
    Ok(())
}

/// `keepalive <duration>|off`: how long idle pooled connections live; `off` disables pooling.
fn keepalive(p: &Parser<'_>, value: &Token, t: &mut Transport) -> Result<(), ConfigError> {
    t.keepalive = match value.text.as_str() {
        "off" => None,
        _ => Some(p.duration(value)?),
    };
    Ok(())
}

fn keepalive_idle_conns(
    p: &Parser<'_>,
    value: &Token,
    t: &mut Transport,
) -> Result<(), ConfigError> {
    t.keepalive_idle_conns = value
        .text
        .parse()
        .map_err(|_| p.err(value.line, format!("invalid keepalive_idle_conns '{}'", value.text)))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use super::super::test_support::{parse, parse_err};
    use super::*;
    use crate::config::{Origin, Retries};
    use crate::config::{Template, TemplatePart};

    /// The only upstream set of `:80 { reverse_proxy <rest> }`.
    fn set(rest: &str) -> UpstreamSet {
        let config = parse(&format!(":80 {{\n\treverse_proxy {rest}\n}}\n"));
        assert_eq!(config.upstream_sets.len(), 1);
        config.upstream_sets[0].clone()
    }

    fn block(options: &str) -> UpstreamSet {
        set(&format!(":9000 {{\n{options}\t}}"))
    }

    fn err(options: &str) -> String {
        parse_err(&format!(":80 {{\n\treverse_proxy :9000 {{\n{options}\t}}\n}}\n"))
    }

    fn addrs(upstream: &Upstream) -> Vec<SocketAddr> {
        let tcp = |a: &DialAddr| match a {
            DialAddr::Tcp(addr) => *addr,
            DialAddr::Unix(path) => panic!("unix socket {path:?}"),
        };
        upstream.addrs.iter().map(tcp).collect()
    }

    #[test]
    fn tables_are_listed_alphabetically() {
        for names in [
            PROXY_OPTIONS.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
            LB_POLICIES.iter().map(|(n, _)| *n).collect(),
            HTTP_TRANSPORT_OPTIONS.iter().map(|(n, _)| *n).collect(),
        ] {
            let mut sorted = names.clone();
            sorted.sort_unstable();
            assert_eq!(names, sorted);
        }
    }

    #[test]
    fn upstreams_from_arguments_then_to_resolved_in_order() {
        let s = set("localhost:8080 {\n\t\tto backend.internal:{$UPSTREAM_PORT}\n\t}");
        assert_eq!(s.upstreams.len(), 2);
        assert_eq!(s.upstreams[0].display, "localhost:8080");
        assert_eq!(
            addrs(&s.upstreams[0]),
            ["127.0.0.1:8080".parse().unwrap(), "[::1]:8080".parse().unwrap()]
        );
        assert_eq!(s.upstreams[1].display, "backend.internal:9001");
        assert_eq!(
            addrs(&s.upstreams[1]),
            ["10.0.0.7:9001".parse().unwrap(), "[fd00::7]:9001".parse().unwrap()]
        );
        assert_eq!(s.origin, Origin { file: "Caddyfile".into(), line: 2 });
    }

    #[test]
    fn the_defaults_are_caddys() {
        let s = set(":9000");
        assert_eq!(
            s,
            UpstreamSet {
                upstreams: s.upstreams.clone(),
                origin: s.origin.clone(),
                ..UpstreamSet::default()
            }
        );
        assert_eq!(s.lb_policy, LbPolicy::Random);
        assert_eq!(s.transport, Transport::default());
    }

    #[test]
    fn each_reverse_proxy_gets_its_own_set_in_order() {
        let config = parse(":80 {\n\treverse_proxy /a :9001\n\treverse_proxy :9002\n}\n");
        let displays: Vec<&str> =
            config.upstream_sets.iter().map(|s| s.upstreams[0].display.as_str()).collect();
        assert_eq!(displays, [":9001", ":9002"]);
    }

    #[test]
    fn upstream_errors() {
        assert_eq!(
            parse_err(":80 {\n\treverse_proxy\n}\n"),
            "Caddyfile:2 - reverse_proxy needs at least one upstream"
        );
        assert_eq!(
            parse_err(":80 {\n\treverse_proxy nosuchhost.invalid:80\n}\n"),
            "Caddyfile:2 - cannot resolve upstream 'nosuchhost.invalid:80': no such host"
        );
        assert_eq!(
            err("\t\tto\n"),
            "Caddyfile:3 - wrong argument count or unexpected line ending after 'to'"
        );
    }

    #[test]
    fn unknown_subdirectives_list_the_supported_ones() {
        assert_eq!(
            err("\t\tlb_retry_match {\n\t\t\tmethod POST\n\t\t}\n"),
            "Caddyfile:3 - subdirective 'lb_retry_match' of reverse_proxy is not supported by \
             ringproxy (supported: fail_duration, flush_interval, header_down, header_up, \
             health_interval, health_timeout, health_uri, lb_policy, lb_retries, \
             lb_try_duration, lb_try_interval, max_fails, stream_close_delay, stream_timeout, \
             to, transport)"
        );
    }

    #[test]
    fn unix_socket_upstreams_mix_with_tcp_ones_in_arguments_and_to_lines() {
        let s =
            set("unix//run/moshi.sock localhost:8080 {\n\t\tto unix/{$UPSTREAM_PORT}.sock\n\t}");
        let dialled: Vec<String> =
            s.upstreams.iter().flat_map(|u| u.addrs.iter().map(ToString::to_string)).collect();
        assert_eq!(
            dialled,
            ["unix//run/moshi.sock", "127.0.0.1:8080", "[::1]:8080", "unix/9001.sock"]
        );
        assert_eq!(s.upstreams[0].addrs, [DialAddr::Unix("/run/moshi.sock".into())]);
        assert_eq!(s.upstreams[2].addrs, [DialAddr::Unix("9001.sock".into())]);
        let hostports: Vec<&str> = s.upstreams.iter().map(Upstream::hostport).collect();
        assert_eq!(hostports, ["/run/moshi.sock", "localhost:8080", "9001.sock"]);
    }

    #[test]
    fn bad_unix_socket_upstreams_point_at_their_line() {
        assert_eq!(
            parse_err(":80 {\n\treverse_proxy :9000 {\n\t\tto unix//\n\t}\n}\n"),
            "Caddyfile:3 - unix socket upstream 'unix//' has no socket path"
        );
        assert_eq!(
            parse_err(":80 {\n\treverse_proxy unix//x:80\n}\n"),
            "Caddyfile:2 - unix socket upstream 'unix//x:80' has a port; a unix socket has none \
             (remove ':80')"
        );
    }

    #[test]
    fn retries_are_off_by_default_and_wait_only_with_a_try_duration() {
        let retries = |options: &str| block(options).retries;
        assert_eq!(retries(""), Retries::default());
        assert!(!retries("").enabled());
        assert_eq!(
            retries("\t\tlb_retries 3\n"),
            Retries { count: 3, duration: None, interval: Duration::ZERO }
        );
        assert_eq!(
            retries("\t\tlb_try_duration 2s\n"),
            Retries {
                count: 0,
                duration: Some(Duration::from_secs(2)),
                interval: limits::DEFAULT_LB_TRY_INTERVAL
            }
        );
        assert_eq!(
            retries("\t\tlb_retries 2\n\t\tlb_try_duration 5s\n\t\tlb_try_interval 100ms\n"),
            Retries {
                count: 2,
                duration: Some(Duration::from_secs(5)),
                interval: Duration::from_millis(100)
            }
        );
        assert_eq!(
            retries("\t\tlb_retries 1\n\t\tlb_try_interval 50ms\n").interval,
            Duration::from_millis(50)
        );
        let zeros = retries("\t\tlb_try_duration 0\n\t\tlb_try_interval 0\n\t\tlb_retries 0\n");
        assert_eq!(zeros, Retries::default(), "0 turns each off, as in Caddy");
        assert_eq!(
            retries("\t\tlb_try_duration 1s\n\t\tlb_try_interval 0\n").interval,
            limits::DEFAULT_LB_TRY_INTERVAL,
            "Caddy never retries without a wait while a try duration runs"
        );
    }

    #[test]
    fn retry_option_errors() {
        assert_eq!(
            err("\t\tlb_retries -1\n"),
            "Caddyfile:3 - invalid lb_retries '-1': must be 0 or a positive integer"
        );
        assert_eq!(
            err("\t\tlb_retries many\n"),
            "Caddyfile:3 - invalid lb_retries 'many': must be 0 or a positive integer"
        );
        assert_eq!(
            err("\t\tlb_retries\n"),
            "Caddyfile:3 - wrong argument count or unexpected line ending after 'lb_retries'"
        );
        assert_eq!(err("\t\tlb_try_duration abc\n"), "Caddyfile:3 - invalid duration 'abc'");
        assert_eq!(
            err("\t\tlb_try_duration -1s\n"),
            "Caddyfile:3 - invalid duration '-1s': must not be negative"
        );
        assert_eq!(err("\t\tlb_try_interval soon\n"), "Caddyfile:3 - invalid duration 'soon'");
        assert_eq!(
            err("\t\tlb_try_interval 1s 2s\n"),
            "Caddyfile:3 - wrong argument count or unexpected line ending after '1s'"
        );
    }

    #[test]
    fn stream_close_delay_is_accepted_and_checked() {
        parse(":80 {\n\treverse_proxy :9001 {\n\t\tstream_close_delay 5m\n\t}\n}\n");
        let e = parse_err(":80 {\n\treverse_proxy :9001 {\n\t\tstream_close_delay soon\n\t}\n}\n");
        assert!(e.starts_with("Caddyfile:3 - "), "{e}");
    }

    #[test]
    fn stream_timeout_caps_upgraded_streams_and_zero_means_never() {
        let set = |body: &str| {
            let config = parse(&format!(":80 {{\n\treverse_proxy :9001 {{\n{body}\t}}\n}}\n"));
            config.upstream_sets[0].stream_timeout
        };
        assert_eq!(set("\t\tstream_timeout 2h\n"), Some(Duration::from_secs(7200)));
        assert_eq!(set("\t\tstream_timeout 0\n"), None);
        assert_eq!(set(""), None);
    }

    #[test]
    fn every_lb_policy() {
        for (name, policy) in LB_POLICIES {
            assert_eq!(block(&format!("\t\tlb_policy {name}\n")).lb_policy, *policy, "{name}");
        }
        assert_eq!(
            err("\t\tlb_policy cookie session\n"),
            "Caddyfile:3 - lb_policy 'cookie' is not supported by ringproxy (supported: first, \
             ip_hash, least_conn, random, round_robin)"
        );
        assert_eq!(
            err("\t\tlb_policy first extra\n"),
            "Caddyfile:3 - wrong argument count or unexpected line ending after 'first'"
        );
    }

    #[test]
    fn active_health_checks_need_a_uri() {
        let s = block("\t\thealth_uri /healthz\n\t\thealth_interval 10s\n");
        assert_eq!(
            s.health,
            Some(HealthCheck {
                uri: "/healthz".into(),
                interval: Duration::from_secs(10),
                timeout: limits::DEFAULT_HEALTH_TIMEOUT,
            })
        );
        assert_eq!(
            err("\t\thealth_uri /a\n\t\thealth_timeout 5s\n\t\thealth_uri x\n"),
            "Caddyfile:5 - health_uri must start with '/', got 'x'"
        );
        assert_eq!(
            err("\t\thealth_timeout 2s\n"),
            "Caddyfile:3 - active health checks need health_uri (health_interval and \
             health_timeout have no effect without it)"
        );
    }

    #[test]
    fn passive_health_options() {
        let s = block("\t\tfail_duration 30s\n\t\tmax_fails 3\n");
        assert_eq!((s.fail_duration, s.max_fails), (Duration::from_secs(30), 3));
        assert_eq!(
            err("\t\tmax_fails 0\n"),
            "Caddyfile:3 - invalid max_fails '0': must be a positive integer"
        );
    }

    #[test]
    fn flush_interval_is_accepted_and_checked() {
        block("\t\tflush_interval -1\n\t\tflush_interval 100ms\n");
        assert_eq!(err("\t\tflush_interval soon\n"), "Caddyfile:3 - invalid duration 'soon'");
    }

    #[test]
    fn header_operations_set_add_and_remove() {
        let s = block(
            "\t\theader_up Host {upstream_hostport}\n\t\theader_up +X-A a\n\t\theader_down \
             -Server\n",
        );
        assert_eq!(s.header_up.len(), 2);
        assert!(matches!(&s.header_up[0], HeaderOp::Set { name, .. } if name == "Host"));
        assert_eq!(
            s.header_up[1],
            HeaderOp::Add {
                name: "X-A".into(),
                value: Template { parts: vec![TemplatePart::Literal("a".into())] }
            }
        );
        assert_eq!(s.header_down, vec![HeaderOp::Remove { name: "Server".into() }]);
    }

    #[test]
    fn header_operation_errors() {
        assert_eq!(
            err("\t\theader_up Host (.*) x\n"),
            "Caddyfile:3 - header_up with a search and replace is not supported by ringproxy \
             (supported: Name value, +Name value, -Name)"
        );
        assert_eq!(
            err("\t\theader_down X-A\n"),
            "Caddyfile:3 - wrong argument count or unexpected line ending after 'X-A'"
        );
        assert_eq!(
            err("\t\theader_down -X-A v\n"),
            "Caddyfile:3 - wrong argument count or unexpected line ending after '-X-A'"
        );
        assert_eq!(err("\t\theader_up +X(A) v\n"), "Caddyfile:3 - invalid header name '+X(A)'");
    }

    #[test]
    fn transport_http_options() {
        let s = block(
            "\t\ttransport http {\n\t\t\tdial_timeout 1s\n\t\t\tresponse_header_timeout 30s\n\t\t\t\
             keepalive off\n\t\t\tkeepalive_idle_conns 8\n\t\t\tread_timeout 2m\n\t\t\t\
             write_timeout 10s\n\t\t}\n",
        );
        assert_eq!(
            s.transport,
            Transport {
                dial_timeout: Duration::from_secs(1),
                response_header_timeout: Some(Duration::from_secs(30)),
                keepalive: None,
                keepalive_idle_conns: 8,
                read_timeout: Some(Duration::from_secs(120)),
                write_timeout: Some(Duration::from_secs(10)),
            }
        );
        let off =
            block("\t\ttransport http {\n\t\t\tread_timeout 0\n\t\t\twrite_timeout 0s\n\t\t}\n");
        assert_eq!((off.transport.read_timeout, off.transport.write_timeout), (None, None));
        let pooled = block("\t\ttransport http {\n\t\t\tkeepalive 1m\n\t\t}\n");
        assert_eq!(pooled.transport.keepalive, Some(Duration::from_secs(60)));
        assert_eq!(block("\t\ttransport http\n").transport, Transport::default());
    }

    #[test]
    fn transport_errors() {
        assert_eq!(
            err("\t\ttransport fastcgi\n"),
            "Caddyfile:3 - transport 'fastcgi' is not supported by ringproxy (supported: http)"
        );
        assert_eq!(
            err("\t\ttransport http {\n\t\t\ttls\n\t\t}\n"),
            "Caddyfile:4 - wrong argument count or unexpected line ending after 'tls'"
        );
        assert_eq!(
            err("\t\ttransport http {\n\t\t\tmax_conns_per_host 4\n\t\t}\n"),
            "Caddyfile:4 - subdirective 'max_conns_per_host' of transport http is not supported \
             by ringproxy (supported: dial_timeout, keepalive, keepalive_idle_conns, \
             read_timeout, response_header_timeout, write_timeout)"
        );
        assert_eq!(
            err("\t\ttransport http {\n\t\t\tkeepalive_idle_conns many\n\t\t}\n"),
            "Caddyfile:4 - invalid keepalive_idle_conns 'many'"
        );
    }
}
