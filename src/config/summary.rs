//! The one-screen summary `ringproxy validate` prints: globals, listeners with their sites and
//! routes (matcher → handler, nested as written), and upstream sets with their policy.
//!
//! It renders the typed [`Config`], not the Caddyfile, so what it shows is exactly what the
//! data path will do (Caddy's directive order and the automatic redirects included).

use std::fmt::Write;

use super::{
    AutoHttps, Config, Handler, HeaderTest, HostPattern, ListenerKind, Matcher, PathPattern,
    ProxyPolicy, Route, Template, TemplatePart, TlsPolicy, ValuePattern,
};

/// One line each for the PROXY protocol and trusted proxies, when configured.
fn proxy_protocol_and_trusted_proxies(out: &mut String, config: &Config) {
    let list = |ranges: &[crate::net::ip_range::IpRange]| {
        let shown: Vec<String> = ranges.iter().map(ToString::to_string).collect();
        if shown.is_empty() {
            "none".to_string()
        } else {
            shown.join(" ")
        }
    };
    if let Some(pp) = &config.globals.proxy_protocol {
        let policy = ProxyPolicy::NAMES
            .iter()
            .find(|(_, p)| *p == pp.fallback_policy)
            .map_or("?", |(name, _)| name);
        let _ = writeln!(
            out,
            "proxy_protocol: timeout {:?}, allow {}, deny {}, fallback_policy {policy}",
            pp.timeout,
            list(&pp.allow),
            list(&pp.deny)
        );
    }
    let client_ip = &config.globals.client_ip;
    if !client_ip.trusted_proxies.is_empty() {
        let headers = if client_ip.headers.is_empty() {
            "X-Forwarded-For".to_string()
        } else {
            client_ip.headers.join(" ")
        };
        let _ = writeln!(
            out,
            "trusted_proxies: {}{}, client_ip_headers {headers}",
            list(&client_ip.trusted_proxies),
            if client_ip.strict { " (strict)" } else { "" }
        );
    }
}

/// Render sites, routes and upstreams, one screen.
pub fn summary(config: &Config) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail; the results are ignored for that reason.
    let g = &config.globals;
    let auto_https = match g.auto_https {
        AutoHttps::On => "on",
        AutoHttps::DisableRedirects => "disable_redirects",
        AutoHttps::Off => "off",
    };
    let _ = writeln!(
        out,
        "globals: http_port {}, https_port {}, auto_https {auto_https}{}, grace_period {:?}",
        g.http_port,
        g.https_port,
        if g.local_certs { ", local_certs" } else { "" },
        g.grace_period,
    );
    proxy_protocol_and_trusted_proxies(&mut out, config);
    if config.listeners.is_empty() {
        let _ = writeln!(out, "listeners: none (no site blocks)");
    }
    for listener in &config.listeners {
        let kind = match listener.kind {
            ListenerKind::Plaintext => "http",
            ListenerKind::Tls => "https",
            ListenerKind::Redirect => "http → https redirect",
        };
        let _ = writeln!(out, "listen {} ({kind})", listener.bind);
        for site in &listener.sites {
            let hosts = if site.hosts.is_empty() {
                "*".to_string()
            } else {
                site.hosts.iter().map(host).collect::<Vec<_>>().join(" ")
            };
            let tls = match &site.tls {
                TlsPolicy::None => String::new(),
                TlsPolicy::Acme { email: None } => ", tls acme".to_string(),
                TlsPolicy::Acme { email: Some(e) } => format!(", tls acme <{e}>"),
                TlsPolicy::Internal => ", tls internal".to_string(),
                TlsPolicy::Files { cert, .. } => format!(", tls {}", cert.display()),
            };
            let log = if site.access_log.is_some() { ", access log" } else { "" };
            let _ = writeln!(out, "  site {hosts} ({}{tls}{log})", site.origin);
            if site.routes.is_empty() {
                let _ = writeln!(out, "    (no routes: empty 200)");
            }
            routes(&mut out, config, &site.routes, 4);
        }
    }
    for (i, set) in config.upstream_sets.iter().enumerate() {
        let ups: Vec<String> = set
            .upstreams
            .iter()
            .map(|u| {
                let addrs: Vec<String> = u.addrs.iter().map(ToString::to_string).collect();
                format!("{} [{}]", u.display, addrs.join(", "))
            })
            .collect();
        let health = match &set.health {
            Some(h) => format!(", health {} every {:?}", h.uri, h.interval),
            None => String::new(),
        };
        let retries = &set.retries;
        let retries = match (retries.count, retries.duration) {
            (0, None) => String::new(),
            (count, duration) => {
                let count = if count > 0 { format!(" {count}") } else { String::new() };
                let within = duration.map_or(String::new(), |d| format!(" within {d:?}"));
                format!(", retries{count}{within} every {:?}", retries.interval)
            }
        };
        let _ = writeln!(
            out,
            "upstreams #{i} ({}): {} policy {:?}{health}{retries}",
            set.origin,
            ups.join(", "),
            set.lb_policy,
        );
    }
    out
}

fn routes(out: &mut String, config: &Config, routes: &[Route], indent: usize) {
    for route in routes {
        let pad = " ".repeat(indent);
        let m = route.matcher.as_ref().map_or_else(|| "*".to_string(), matcher);
        let group = if route.group.is_some() { " [first match]" } else { "" };
        match &route.handler {
            Handler::Subroute { routes: inner, strip_prefix } => {
                let strip = strip_prefix.as_ref().map_or(String::new(), |p| format!(" strip {p}"));
                let _ = writeln!(out, "{pad}{m}{group} →{strip}");
                if inner.is_empty() {
                    let _ = writeln!(out, "{pad}  (nothing)");
                }
                self::routes(out, config, inner, indent + 2);
            }
            leaf => {
                let _ = writeln!(out, "{pad}{m}{group} → {}", handler(config, leaf));
            }
        }
    }
}

/// `forward_auth #1 (localhost:3001) uri /verify copy X-User-Id X-Plan>X-User-Plan`.
fn forward_auth(config: &Config, auth: &crate::config::ForwardAuth) -> String {
    let upstreams = config
        .upstream_sets
        .get(auth.set)
        .map(|s| s.upstreams.iter().map(|u| u.display.as_str()).collect::<Vec<_>>().join(" "))
        .unwrap_or_default();
    let mut text = format!("forward_auth #{} ({upstreams}) uri {}", auth.set, template(&auth.uri));
    if !auth.copy_headers.is_empty() {
        text.push_str(" copy");
        for copy in &auth.copy_headers {
            match copy.from == copy.to {
                true => text.push_str(&format!(" {}", copy.from)),
                false => text.push_str(&format!(" {}>{}", copy.from, copy.to)),
            }
        }
    }
    text
}

fn handler(config: &Config, h: &Handler) -> String {
    match h {
        Handler::Proxy(i) => {
            let first = config
                .upstream_sets
                .get(*i)
                .map(|s| {
                    s.upstreams.iter().map(|u| u.display.as_str()).collect::<Vec<_>>().join(" ")
                })
                .unwrap_or_default();
            format!("reverse_proxy #{i} ({first})")
        }
        Handler::Respond { status, body } => format!("respond {status} {:?}", template(body)),
        Handler::Redirect { to, status } => format!("redir {status} {}", template(to)),
        Handler::HttpsRedirect { port: None } => "redirect 308 https://{host}{uri}".to_string(),
        Handler::HttpsRedirect { port: Some(p) } => {
            format!("redirect 308 https://{{host}}:{p}{{uri}}")
        }
        Handler::Subroute { .. } => "subroute".to_string(),
        Handler::Metrics => "metrics".to_string(),
        Handler::RequestBody { max_size: Some(max) } => format!("request_body max_size {max}"),
        Handler::RequestBody { max_size: None } => "request_body".to_string(),
        Handler::Encode(encode) => {
            let codings: Vec<&str> = encode.prefer.iter().map(|c| c.token()).collect();
            format!("encode {} (at least {} bytes)", codings.join(" "), encode.minimum_length)
        }
        Handler::BasicAuth(auth) => {
            let users: Vec<&str> = auth.accounts.iter().map(|a| a.user.as_str()).collect();
            format!("basic_auth realm {:?} users {}", auth.realm, users.join(" "))
        }
        Handler::Root(path) => format!("root {}", path.display()),
        Handler::TryFiles(try_files) => try_files.summary(),
        Handler::FileServer(server) => server.summary(),
        Handler::ForwardAuth(auth) => forward_auth(config, auth),
        Handler::Header(h) => format!("header ({} ops)", h.immediate.len() + h.deferred.len()),
    }
}

fn template(t: &Template) -> String {
    t.parts
        .iter()
        .map(|p| match p {
            TemplatePart::Literal(s) => s.clone(),
            TemplatePart::Placeholder(p) => format!("{{{}}}", p.short_name()),
        })
        .collect()
}

fn host(h: &HostPattern) -> String {
    match h {
        HostPattern::Exact(e) => e.clone(),
        HostPattern::Wildcard(s) => format!("*{s}"),
    }
}

fn path(p: &PathPattern) -> String {
    match p {
        PathPattern::Exact(e) => e.clone(),
        PathPattern::Prefix(p) => format!("{p}*"),
        PathPattern::Suffix(s) => format!("*{s}"),
        PathPattern::Contains(c) => format!("*{c}*"),
        PathPattern::Any => "*".to_string(),
    }
}

fn matcher(m: &Matcher) -> String {
    let mut parts = Vec::new();
    if !m.paths.is_empty() {
        parts.push(m.paths.iter().map(path).collect::<Vec<_>>().join("|"));
    }
    if !m.hosts.is_empty() {
        parts.push(format!("host {}", m.hosts.iter().map(host).collect::<Vec<_>>().join("|")));
    }
    if !m.methods.is_empty() {
        parts.push(format!("method {}", m.methods.join("|")));
    }
    for h in &m.headers {
        parts.push(match &h.test {
            HeaderTest::Present => format!("header {}", h.name),
            HeaderTest::Absent => format!("header !{}", h.name),
            HeaderTest::Values(vs) => {
                let vs: Vec<String> = vs
                    .iter()
                    .map(|v| match v {
                        ValuePattern::Exact(e) => e.clone(),
                        ValuePattern::Prefix(p) => format!("{p}*"),
                        ValuePattern::Suffix(s) => format!("*{s}"),
                        ValuePattern::Contains(c) => format!("*{c}*"),
                        ValuePattern::Any => "*".to_string(),
                    })
                    .collect();
                format!("header {} {}", h.name, vs.join("|"))
            }
        });
    }
    for n in &m.not {
        parts.push(format!("not({})", matcher(n)));
    }
    parts.join(" & ")
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::summary;
    use crate::config::parse_caddyfile;

    #[test]
    fn forward_auth_shows_its_auth_server_uri_and_copied_headers() {
        let text = ":8080 {\n\tforward_auth 127.0.0.1:3001 {\n\t\turi /verify?u={uri}\n\t\t\
                    copy_headers X-User-Id X-Plan>X-User-Plan\n\t}\n\trespond ok\n}\n";
        let shown = summary(&parse_caddyfile(text, "Caddyfile", Path::new("/")).unwrap());
        assert!(
            shown.contains(
                "forward_auth #0 (127.0.0.1:3001) uri /verify?u={uri} copy X-User-Id \
                 X-Plan>X-User-Plan\n"
            ),
            "{shown}"
        );
    }

    #[test]
    fn the_proxy_protocol_and_trusted_proxies_are_summarized_only_when_set() {
        let text = "{\n\tservers {\n\t\tlistener_wrappers {\n\t\t\tproxy_protocol {\n\
                    \t\t\t\tallow 10.0.0.0/8\n\t\t\t}\n\t\t\ttls\n\t\t}\n\
                    \t\ttrusted_proxies static 192.0.2.1\n\t\ttrusted_proxies_strict\n\t}\n}\n\
                    :8080 {\n\trespond ok\n}\n";
        let shown = summary(&parse_caddyfile(text, "Caddyfile", Path::new("/")).unwrap());
        assert!(
            shown.contains(
                "proxy_protocol: timeout 10s, allow 10.0.0.0/8, deny none, fallback_policy ignore\n"
            ),
            "{shown}"
        );
        assert!(
            shown.contains(
                "trusted_proxies: 192.0.2.1/32 (strict), client_ip_headers X-Forwarded-For\n"
            ),
            "{shown}"
        );
        let plain =
            summary(&parse_caddyfile(":8080 {\n\trespond ok\n}\n", "C", Path::new("/")).unwrap());
        assert!(!plain.contains("proxy_protocol") && !plain.contains("trusted_proxies"), "{plain}");
    }

    #[test]
    fn unix_upstreams_and_retries_are_summarized_with_their_set() {
        let text = ":8080 {\n\treverse_proxy unix//run/a.sock 127.0.0.1:9 {\n\t\tlb_retries 2\n\
                    \t\tlb_try_duration 5s\n\t}\n\treverse_proxy /x 127.0.0.1:10\n}\n";
        let shown = summary(&parse_caddyfile(text, "Caddyfile", Path::new("/")).unwrap());
        assert!(
            shown.contains(
                "upstreams #0 (Caddyfile:2): unix//run/a.sock [unix//run/a.sock], 127.0.0.1:9 \
                 [127.0.0.1:9] policy Random, retries 2 within 5s every 250ms\n"
            ),
            "{shown}"
        );
        assert!(shown.contains("127.0.0.1:10 [127.0.0.1:10] policy Random\n"), "{shown}");
    }
}
