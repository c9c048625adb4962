//! Parsed sites → listeners: the port and TLS policy of each site address (`placement`, as
//! Caddy's automatic HTTPS decides them), one listener per port, Caddy's automatic
//! HTTP→HTTPS redirects (`add_redirects`), and the order sites are tried in.
//!
//! Owns the rules between sites: a port is plaintext or TLS, never both; a host is served once
//! per port; HTTPS needs a way to get a certificate. What the routes of a site are is `site`'s
//! business; obtaining certificates is `acme`'s and `tls`'.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use super::globals::ParsedGlobals;
use super::site::ParsedSite;
use super::Parser;
use crate::config::address::{self, Scheme, SiteAddress};
use crate::config::lexer::Token;
use crate::config::TlsOptions;
use crate::config::{
    limits, AutoHttps, ConfigError, Globals, Handler, HostPattern, ListenerConfig, ListenerKind,
    Origin, Route, Site, TlsPolicy,
};

/// A port being assembled.
struct Port {
    port: u16,
    tls: bool,
    /// The address that decided `tls`, for the conflict message.
    first: String,
    sites: Vec<Site>,
    /// Host keys already served on this port ("" = catch-all).
    hosts: HashSet<String>,
}

/// Where one site block went: its [`Site`] on one (port, TLS policy).
struct Placed {
    port: usize,
    tls: TlsPolicy,
    site: usize,
    /// One of the block's addresses on this port has no host, so the site serves every host.
    catch_all: bool,
}

impl Parser<'_> {
    pub(super) fn listeners(
        &self,
        sites: &[ParsedSite],
        parsed: &ParsedGlobals,
    ) -> Result<Vec<ListenerConfig>, ConfigError> {
        let g = &parsed.globals;
        if g.http_port == g.https_port {
            let line = parsed.lines.https_port.or(parsed.lines.http_port).unwrap_or(1);
            return Err(self.err(
                line,
                format!("http_port and https_port must differ (both are {})", g.http_port),
            ));
        }
        let mut ports: Vec<Port> = Vec::new();
        for site in sites {
            self.place_site(site, g, &mut ports)?;
        }
        let mut listeners: Vec<ListenerConfig> = ports
            .into_iter()
            .map(|p| ListenerConfig {
                bind: any_addr(p.port),
                kind: if p.tls { ListenerKind::Tls } else { ListenerKind::Plaintext },
                sites: p.sites,
            })
            .collect();
        if g.auto_https == AutoHttps::On {
            add_redirects(&mut listeners, g);
        }
        for l in &mut listeners {
            // Stable: file order within each class.
            l.sites.sort_by_key(site_class);
        }
        listeners.sort_by_key(|l| l.bind.port());
        if let Some(line) = parsed.lines.proxy_protocol_inside_tls {
            if listeners.iter().any(|l| l.kind == ListenerKind::Tls) {
                return Err(self.err(
                    line,
                    "proxy_protocol without 'tls' after it in listener_wrappers means the \
                     PROXY header comes inside TLS on HTTPS listeners, which ringproxy does not \
                     support; list 'tls' after proxy_protocol (the header comes before the TLS \
                     handshake)",
                ));
            }
        }
        Ok(listeners)
    }

    /// Places every address of one site block. Addresses of the block that share a port and
    /// TLS policy share one [`Site`].
    fn place_site(
        &self,
        site: &ParsedSite,
        g: &Globals,
        ports: &mut Vec<Port>,
    ) -> Result<(), ConfigError> {
        let mut placed: Vec<Placed> = Vec::new();
        for (key, addr) in &site.addresses {
            let (port, tls) = self.placement(key, addr, site, g)?;
            let index = self.port_for(ports, port, &tls, key)?;
            let building = &mut ports[index];
            let host_key = match &addr.host {
                None => String::new(),
                Some(HostPattern::Exact(h)) => h.clone(),
                Some(HostPattern::Wildcard(s)) => format!("*{s}"),
            };
            if !building.hosts.insert(host_key) {
                return Err(self.err(key.line, format!("ambiguous site definition: {}", key.text)));
            }
            match placed.iter_mut().find(|p| p.port == index && p.tls == tls) {
                Some(p) => match &addr.host {
                    Some(h) => building.sites[p.site].hosts.push(h.clone()),
                    None => p.catch_all = true,
                },
                None => {
                    building.sites.push(Site {
                        hosts: addr.host.iter().cloned().collect(),
                        tls: tls.clone(),
                        tls_options: site.extras.tls_options.clone().unwrap_or_default().0,
                        routes: site.routes.clone(),
                        access_log: site.extras.access_log.clone(),
                        origin: site.origin.clone(),
                    });
                    let site = building.sites.len() - 1;
                    placed.push(Placed { port: index, tls, site, catch_all: addr.host.is_none() });
                }
            }
        }
        for p in placed.into_iter().filter(|p| p.catch_all) {
            ports[p.port].sites[p.site].hosts.clear();
        }
        Ok(())
    }

    /// The index of `port` in `ports`, added if new; an error if it is already the other
    /// scheme.
    fn port_for(
        &self,
        ports: &mut Vec<Port>,
        port: u16,
        tls: &TlsPolicy,
        key: &Token,
    ) -> Result<usize, ConfigError> {
        let wants_tls = *tls != TlsPolicy::None;
        let Some(index) = ports.iter().position(|p| p.port == port) else {
            ports.push(Port {
                port,
                tls: wants_tls,
                first: key.text.clone(),
                sites: Vec::new(),
                hosts: HashSet::new(),
            });
            return Ok(ports.len() - 1);
        };
        let existing = &ports[index];
        if existing.tls != wants_tls {
            let (https, http) = if existing.tls {
                (existing.first.as_str(), key.text.as_str())
            } else {
                (key.text.as_str(), existing.first.as_str())
            };
            return Err(self.err(
                key.line,
                format!(
                    "port {port} is configured for both HTTPS ('{https}') and HTTP ('{http}'); \
                     ringproxy cannot serve both on one port"
                ),
            ));
        }
        Ok(index)
    }

    /// Decides the port and TLS policy of one site address, as Caddy would.
    fn placement(
        &self,
        key: &Token,
        addr: &SiteAddress,
        site: &ParsedSite,
        g: &Globals,
    ) -> Result<(u16, TlsPolicy), ConfigError> {
        let port = match (addr.port, addr.scheme) {
            (Some(p), _) => p,
            (None, Some(Scheme::Http)) => g.http_port,
            (None, _) => g.https_port,
        };
        if (addr.scheme == Some(Scheme::Http) && port == g.https_port)
            || (addr.scheme == Some(Scheme::Https) && port == g.http_port)
        {
            return Err(
                self.err(key.line, format!("[{}] scheme and port violate convention", key.text))
            );
        }
        let explicit = site.extras.tls.as_ref();
        // The line of the site's `tls` directive, with or without arguments.
        let tls_line =
            explicit.map(|(_, line)| *line).or(site.extras.tls_options.as_ref().map(|o| o.1));
        let wants_tls = match addr.scheme {
            Some(Scheme::Https) => true,
            Some(Scheme::Http) => false,
            None => {
                // Caddy serves TLS on a hostless `:https_port` too (and then fails every
                // handshake for lack of a certificate); `tls_policy` says so up front.
                port != g.http_port
                    && (addr.host.is_some() || tls_line.is_some() || port == g.https_port)
                    && (g.auto_https != AutoHttps::Off || explicit.is_some())
            }
        };
        if !wants_tls {
            if let Some(line) = tls_line {
                return Err(self.err(
                    line,
                    format!(
                        "site address '{}' is plaintext HTTP (port {port}) but the site has a \
                         tls directive",
                        key.text
                    ),
                ));
            }
            return Ok((port, TlsPolicy::None));
        }
        Ok((port, self.tls_policy(key, addr, explicit.map(|(policy, _)| policy), g)?))
    }

    /// The certificate source of an HTTPS site address: its `tls` directive, else the local CA
    /// for internal names (or with `local_certs`), else ACME, which needs a non-wildcard host.
    fn tls_policy(
        &self,
        key: &Token,
        addr: &SiteAddress,
        explicit: Option<&TlsPolicy>,
        g: &Globals,
    ) -> Result<TlsPolicy, ConfigError> {
        let policy = match (explicit, &addr.host) {
            (Some(policy), _) => policy.clone(),
            (None, _) if g.auto_https == AutoHttps::Off => {
                return Err(self.err(
                    key.line,
                    format!(
                        "site address '{}' needs a certificate but auto_https is off; add 'tls \
                         <cert_file> <key_file>' or 'tls internal'",
                        key.text
                    ),
                ))
            }
            (None, Some(host)) if address::is_internal_host(host) || g.local_certs => {
                TlsPolicy::Internal
            }
            (None, _) => TlsPolicy::Acme { email: None },
        };
        match (&addr.host, &policy) {
            (None, TlsPolicy::Files { .. }) => Ok(policy),
            (None, _) => Err(self.err(
                key.line,
                format!(
                    "site address '{}' is HTTPS but has no hostname, so ringproxy cannot obtain \
                     a certificate for it; add a hostname, use 'tls <cert_file> <key_file>', or \
                     serve plaintext with http://",
                    key.text
                ),
            )),
            (Some(HostPattern::Wildcard(_)), TlsPolicy::Acme { .. }) => Err(self.err(
                key.line,
                format!(
                    "site address '{}': wildcard certificates need the ACME DNS challenge, which \
                     ringproxy does not support; use 'tls internal' or 'tls <cert_file> \
                     <key_file>'",
                    key.text
                ),
            )),
            _ => Ok(policy),
        }
    }
}

/// Adds Caddy's automatic HTTP→HTTPS redirects on `http_port`: one redirect site per HTTPS
/// site (for the hosts the user does not already serve there) and a catch-all that redirects
/// any other host, unless the user has their own catch-all on that port.
fn add_redirects(listeners: &mut Vec<ListenerConfig>, g: &Globals) {
    let http_index = listeners.iter().position(|l| l.bind.port() == g.http_port);
    let served: Vec<HostPattern> = http_index
        .map(|i| listeners[i].sites.iter().flat_map(|s| s.hosts.iter().cloned()).collect())
        .unwrap_or_default();
    let user_catch_all =
        http_index.is_some_and(|i| listeners[i].sites.iter().any(|s| s.hosts.is_empty()));

    let mut redirected: Vec<HostPattern> = Vec::new();
    let mut sites = Vec::new();
    for listener in listeners.iter().filter(|l| l.kind == ListenerKind::Tls) {
        let port = listener.bind.port();
        for site in &listener.sites {
            let hosts: Vec<HostPattern> = site
                .hosts
                .iter()
                .filter(|h| !served.contains(h) && !redirected.contains(h))
                .cloned()
                .collect();
            if hosts.is_empty() {
                continue;
            }
            redirected.extend(hosts.iter().cloned());
            let keep_port = port != g.https_port && port != limits::DEFAULT_HTTPS_PORT;
            sites.push(redirect_site(hosts, keep_port.then_some(port), site.origin.clone()));
        }
    }
    let Some(origin) = sites.first().map(|s| s.origin.clone()) else {
        return;
    };
    if !user_catch_all {
        sites.push(redirect_site(Vec::new(), None, origin));
    }
    match http_index {
        Some(i) => listeners[i].sites.extend(sites),
        None => listeners.push(ListenerConfig {
            bind: any_addr(g.http_port),
            kind: ListenerKind::Redirect,
            sites,
        }),
    }
}

fn redirect_site(hosts: Vec<HostPattern>, port: Option<u16>, origin: Origin) -> Site {
    Site {
        hosts,
        tls: TlsPolicy::None,
        tls_options: TlsOptions::default(),
        routes: vec![Route {
            matcher: None,
            handler: Handler::HttpsRedirect { port },
            group: None,
        }],
        access_log: None,
        origin,
    }
}

/// 0: has an exact host, 1: only wildcards, 2: catch-all.
fn site_class(site: &Site) -> u8 {
    if site.hosts.is_empty() {
        2
    } else if site.hosts.iter().any(|h| matches!(h, HostPattern::Exact(_))) {
        0
    } else {
        1
    }
}

fn any_addr(port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::super::test_support::{describe, parse, parse_err};
    use super::*;
    use crate::config::Config;

    fn exact(host: &str) -> HostPattern {
        HostPattern::Exact(host.into())
    }

    /// `port kind [hosts…] tls` for each site of each listener, in order.
    fn layout(config: &Config) -> Vec<String> {
        let mut out = Vec::new();
        for l in &config.listeners {
            for s in &l.sites {
                let hosts: Vec<String> = s
                    .hosts
                    .iter()
                    .map(|h| match h {
                        HostPattern::Exact(h) => h.clone(),
                        HostPattern::Wildcard(suffix) => format!("*{suffix}"),
                    })
                    .collect();
                let tls = match &s.tls {
                    TlsPolicy::None => "plain".to_string(),
                    TlsPolicy::Acme { email: None } => "acme".to_string(),
                    TlsPolicy::Acme { email: Some(e) } => format!("acme:{e}"),
                    TlsPolicy::Internal => "internal".to_string(),
                    TlsPolicy::Files { .. } => "files".to_string(),
                };
                let kind = format!("{:?}", l.kind);
                let routes = describe(&s.routes).join(", ");
                out.push(format!("{} {kind} [{}] {tls} {routes}", l.bind.port(), hosts.join(" ")));
            }
        }
        out
    }

    fn layout_of(text: &str) -> Vec<String> {
        layout(&parse(text))
    }

    #[test]
    fn a_named_site_gets_acme_on_443_and_a_redirect_on_80() {
        assert_eq!(
            layout_of("a.com {\n\trespond 200\n}\n"),
            [
                "80 Redirect [a.com] plain https-redirect",
                "80 Redirect [] plain https-redirect",
                "443 Tls [a.com] acme respond 200"
            ]
        );
        let config = parse("a.com {\n}\n");
        assert_eq!(config.listeners[0].bind, "[::]:80".parse().unwrap());
    }

    #[test]
    fn internal_names_and_local_certs_use_the_local_ca() {
        assert_eq!(
            layout_of("localhost, 127.0.0.1 {\n}\n")[2..],
            ["443 Tls [localhost 127.0.0.1] internal "]
        );
        assert_eq!(layout_of("{\n\tlocal_certs\n}\na.com {\n}\n")[2], "443 Tls [a.com] internal ");
        assert_eq!(
            layout_of("a.com {\n\ttls ops@a.com\n}\n")[2],
            "443 Tls [a.com] acme:ops@a.com "
        );
    }

    #[test]
    fn explicit_ports_and_schemes() {
        assert_eq!(layout_of(":8080 {\n}\n"), ["8080 Plaintext [] plain "]);
        assert_eq!(layout_of("http://a.com {\n}\n"), ["80 Plaintext [a.com] plain "]);
        assert_eq!(layout_of("http://a.com:8080 {\n}\n"), ["8080 Plaintext [a.com] plain "]);
        assert_eq!(
            layout_of("https://a.com:8443 {\n}\n"),
            [
                "80 Redirect [a.com] plain https-redirect",
                "80 Redirect [] plain https-redirect",
                "8443 Tls [a.com] acme "
            ]
        );
        assert_eq!(
            parse_err("http://a.com:443 {\n}\n"),
            "Caddyfile:1 - [http://a.com:443] scheme and port violate convention"
        );
        assert_eq!(
            parse_err("https://a.com:80 {\n}\n"),
            "Caddyfile:1 - [https://a.com:80] scheme and port violate convention"
        );
    }

    #[test]
    fn redirects_keep_a_non_default_https_port() {
        let config = parse("a.com:8443 {\n}\n");
        let redirect = &config.listeners[0].sites[0].routes[0].handler;
        assert!(matches!(redirect, Handler::HttpsRedirect { port: Some(8443) }), "{redirect:?}");
        let config = parse("{\n\thttps_port 8443\n}\na.com {\n}\n");
        let redirect = &config.listeners[0].sites[0].routes[0].handler;
        assert!(matches!(redirect, Handler::HttpsRedirect { port: None }), "{redirect:?}");
    }

    #[test]
    fn redirects_skip_hosts_the_user_serves_on_http_and_a_user_catch_all() {
        assert_eq!(
            layout_of("a.com b.com {\n}\nhttp://a.com {\n\trespond 200\n}\n"),
            [
                "80 Plaintext [a.com] plain respond 200",
                "80 Plaintext [b.com] plain https-redirect",
                "80 Plaintext [] plain https-redirect",
                "443 Tls [a.com b.com] acme "
            ]
        );
        assert_eq!(
            layout_of("a.com {\n}\nhttp:// {\n\trespond 404\n}\n"),
            [
                "80 Plaintext [a.com] plain https-redirect",
                "80 Plaintext [] plain respond 404",
                "443 Tls [a.com] acme "
            ]
        );
    }

    #[test]
    fn no_redirects_unless_auto_https_is_on() {
        assert_eq!(
            layout_of("{\n\tauto_https disable_redirects\n}\na.com {\n}\n"),
            ["443 Tls [a.com] acme "]
        );
        assert_eq!(
            layout_of("{\n\tauto_https off\n}\na.com {\n}\n"),
            ["443 Plaintext [a.com] plain "]
        );
        assert_eq!(
            layout_of("{\n\tauto_https off\n}\na.com {\n\ttls internal\n}\n"),
            ["443 Tls [a.com] internal "]
        );
        assert_eq!(
            parse_err("{\n\tauto_https off\n}\nhttps://a.com {\n}\n"),
            "Caddyfile:4 - site address 'https://a.com' needs a certificate but auto_https is \
             off; add 'tls <cert_file> <key_file>' or 'tls internal'"
        );
    }

    #[test]
    fn hostless_https_needs_certificate_files() {
        assert_eq!(
            parse_err(":443 {\n}\n"),
            "Caddyfile:1 - site address ':443' is HTTPS but has no hostname, so ringproxy cannot \
             obtain a certificate for it; add a hostname, use 'tls <cert_file> <key_file>', or \
             serve plaintext with http://"
        );
        let config = parse(":8443 {\n\ttls c.pem k.pem\n}\n");
        assert_eq!(layout(&config), ["8443 Tls [] files "]);
        assert_eq!(
            config.listeners[0].sites[0].tls,
            TlsPolicy::Files {
                cert: PathBuf::from("/etc/caddy/c.pem"),
                key: PathBuf::from("/etc/caddy/k.pem")
            }
        );
    }

    #[test]
    fn wildcards_cannot_use_acme() {
        assert_eq!(
            parse_err("*.a.com {\n}\n"),
            "Caddyfile:1 - site address '*.a.com': wildcard certificates need the ACME DNS \
             challenge, which ringproxy does not support; use 'tls internal' or 'tls \
             <cert_file> <key_file>'"
        );
        assert_eq!(layout_of("*.a.com {\n\ttls internal\n}\n")[2], "443 Tls [*.a.com] internal ");
    }

    #[test]
    fn a_tls_directive_on_a_plaintext_address_is_an_error() {
        assert_eq!(
            parse_err("http://a.com {\n\n\ttls internal\n}\n"),
            "Caddyfile:3 - site address 'http://a.com' is plaintext HTTP (port 80) but the site \
             has a tls directive"
        );
    }

    #[test]
    fn a_port_is_either_plaintext_or_tls() {
        assert_eq!(
            parse_err(":8443 {\n}\nlocalhost:8443 {\n}\n"),
            "Caddyfile:3 - port 8443 is configured for both HTTPS ('localhost:8443') and HTTP \
             (':8443'); ringproxy cannot serve both on one port"
        );
        assert_eq!(
            parse_err("localhost:8443 {\n}\n:8443 {\n}\n"),
            "Caddyfile:3 - port 8443 is configured for both HTTPS ('localhost:8443') and HTTP \
             (':8443'); ringproxy cannot serve both on one port"
        );
    }

    #[test]
    fn a_host_is_served_once_per_port() {
        assert_eq!(
            parse_err("a.com {\n}\nb.com a.com {\n}\n"),
            "Caddyfile:3 - ambiguous site definition: a.com"
        );
        assert_eq!(
            parse_err(":80 {\n}\nhttp:// {\n}\n"),
            "Caddyfile:3 - ambiguous site definition: http://"
        );
        // The same host on two ports is two sites.
        assert_eq!(
            layout_of("http://a.com:8080 http://a.com:8081 {\n}\n"),
            ["8080 Plaintext [a.com] plain ", "8081 Plaintext [a.com] plain "]
        );
    }

    #[test]
    fn addresses_of_one_block_share_a_site_per_port_and_a_hostless_one_makes_it_catch_all() {
        let config = parse(":8080 http://a.com:8080 {\n\trespond 200\n}\n");
        assert_eq!(layout(&config), ["8080 Plaintext [] plain respond 200"]);
        let config = parse("http://a.com:8080 http://b.com:8080 {\n}\n");
        assert_eq!(config.listeners[0].sites[0].hosts, vec![exact("a.com"), exact("b.com")]);
    }

    #[test]
    fn sites_are_tried_exact_then_wildcard_then_catch_all_in_file_order() {
        assert_eq!(
            layout_of(
                "http://:8080 {\n}\nhttp://*.a.com:8080 {\n}\nhttp://b.com:8080 {\n}\n\
                 http://*.c.com:8080 {\n}\nhttp://a.com:8080 {\n}\n"
            ),
            [
                "8080 Plaintext [b.com] plain ",
                "8080 Plaintext [a.com] plain ",
                "8080 Plaintext [*.a.com] plain ",
                "8080 Plaintext [*.c.com] plain ",
                "8080 Plaintext [] plain "
            ]
        );
    }

    #[test]
    fn listeners_are_ordered_by_port() {
        let config = parse(":9000 {\n}\n:8000 {\n}\nlocalhost:8443 {\n}\n");
        let ports: Vec<u16> = config.listeners.iter().map(|l| l.bind.port()).collect();
        assert_eq!(ports, [80, 8000, 8443, 9000]);
    }

    #[test]
    fn the_two_ports_must_differ() {
        assert_eq!(
            parse_err("{\n\thttps_port 80\n}\n"),
            "Caddyfile:2 - http_port and https_port must differ (both are 80)"
        );
        assert_eq!(
            parse_err("{\n\thttp_port 443\n}\n"),
            "Caddyfile:2 - http_port and https_port must differ (both are 443)"
        );
    }

    #[test]
    fn custom_http_port_moves_plaintext_and_redirects() {
        assert_eq!(
            layout_of("{\n\thttp_port 8080\n}\na.com {\n}\nhttp://b.com {\n}\n"),
            [
                "443 Tls [a.com] acme ",
                "8080 Plaintext [b.com] plain ",
                "8080 Plaintext [a.com] plain https-redirect",
                "8080 Plaintext [] plain https-redirect"
            ]
        );
    }
}
