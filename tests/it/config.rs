//! Caddyfile → `Config`, through the public API only: the seed Caddyfiles route as our users
//! expect, a table of valid Caddyfiles with the structure each must produce (asserted on
//! listeners, TLS policies, upstream sets and, mostly, on where requests end up), a table of
//! invalid ones with their exact `file:line - message`, and properties over arbitrary input.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use proptest::prelude::*;
use ringproxy::config::lexer::{line_count, tokenize};
use ringproxy::config::route::{resolve, select_site, RequestView, Resolution};
use ringproxy::config::summary::summary;
use ringproxy::config::{
    parse_bytes, parse_file, Admin, AutoHttps, Config, DialAddr, Handler, HeaderOp, HostPattern,
    LbPolicy, ListenerConfig, ListenerKind, LogFormat, LogOutput, ParseOptions, Placeholder,
    Template, TemplatePart, TlsPolicy,
};

const SEED: &str = include_str!("config_cases/seed.Caddyfile");
const SEED_AUTH: &str = include_str!("config_cases/seed_auth.Caddyfile");

// ---- helpers -------------------------------------------------------------------------------

/// [`options`] with no file system: generated inputs that happen to say `import NAME` must not
/// read whatever this machine has at that path.
fn sealed_options() -> ParseOptions {
    let refuse = || io::Error::new(io::ErrorKind::NotFound, "no files in this test");
    options().with_files(move |_| Err(refuse()), move |_| Err(refuse()))
}

/// A fixed environment and a resolver that knows one name, so tests never touch DNS.
fn options() -> ParseOptions {
    ParseOptions::default()
        .with_env(|name| match name {
            "UPSTREAM_PORT" => Some("9001".to_string()),
            "SITE" => Some("env.example.com".to_string()),
            _ => None,
        })
        .with_resolver(|host, port| match host {
            "backend.internal" => Ok(vec![
                SocketAddr::new("fd00::7".parse().unwrap(), port),
                SocketAddr::new("10.0.0.7".parse().unwrap(), port),
            ]),
            _ => Err(io::Error::new(io::ErrorKind::NotFound, "no such host")),
        })
}

fn parse(text: &str) -> Config {
    parse_bytes(text.as_bytes(), "Caddyfile", Path::new("/etc/caddy"), &options())
        .unwrap_or_else(|e| panic!("{e}\n--- input ---\n{text}"))
}

fn parse_err(text: &str) -> String {
    match parse_bytes(text.as_bytes(), "Caddyfile", Path::new("/etc/caddy"), &options()) {
        Ok(_) => "(parsed without error)".to_string(),
        Err(e) => e.to_string(),
    }
}

struct Req {
    host: String,
    path: String,
    method: String,
    headers: Vec<(String, Vec<u8>)>,
}

impl RequestView for Req {
    fn host(&self) -> &str {
        &self.host
    }
    fn match_path(&self) -> &str {
        &self.path
    }
    fn method(&self) -> &str {
        &self.method
    }
    fn header_values(&self, name: &str) -> impl Iterator<Item = &[u8]> {
        self.headers.iter().filter(move |(n, _)| n == name).map(|(_, v)| v.as_slice())
    }
}

fn req(host: &str, path: &str) -> Req {
    Req { host: host.into(), path: path.into(), method: "GET".into(), headers: Vec::new() }
}

fn listener(c: &Config, port: u16) -> &ListenerConfig {
    c.listeners
        .iter()
        .find(|l| l.bind.port() == port)
        .unwrap_or_else(|| panic!("no listener on port {port}"))
}

fn ports(c: &Config) -> Vec<(u16, ListenerKind)> {
    c.listeners.iter().map(|l| (l.bind.port(), l.kind)).collect()
}

fn route_req<'c>(c: &'c Config, port: u16, r: &Req) -> Resolution<'c> {
    let site = select_site(listener(c, port), &r.host)
        .unwrap_or_else(|| panic!("no site for host {} on port {port}", r.host));
    resolve(site, r)
}

fn route<'c>(c: &'c Config, port: u16, host: &str, path: &str) -> Option<&'c Handler> {
    route_req(c, port, &req(host, path)).handler
}

/// Where a request is proxied: the upstreams of its set, as written.
fn proxied(c: &Config, port: u16, host: &str, path: &str) -> Vec<String> {
    match route(c, port, host, path) {
        Some(Handler::Proxy(i)) => {
            c.upstream_sets[*i].upstreams.iter().map(|u| u.display.clone()).collect()
        }
        other => panic!("{host}{path} on {port}: expected a proxy, got {other:?}"),
    }
}

fn text(t: &Template) -> String {
    t.parts
        .iter()
        .map(|p| match p {
            TemplatePart::Literal(s) => s.clone(),
            TemplatePart::Placeholder(p) => format!("{{{p:?}}}"),
        })
        .collect()
}

/// A `respond` outcome as (status, body with placeholders shown as `{Variant}`).
fn responded(c: &Config, port: u16, host: &str, path: &str) -> (u16, String) {
    match route(c, port, host, path) {
        Some(Handler::Respond { status, body }) => (*status, text(body)),
        other => panic!("{host}{path} on {port}: expected respond, got {other:?}"),
    }
}

fn redirected(c: &Config, port: u16, host: &str, path: &str) -> (u16, String) {
    match route(c, port, host, path) {
        Some(Handler::Redirect { to, status }) => (*status, text(to)),
        other => panic!("{host}{path} on {port}: expected redir, got {other:?}"),
    }
}

fn https_redirect(c: &Config, host: &str) -> Option<u16> {
    match route(c, 80, host, "/x") {
        Some(Handler::HttpsRedirect { port }) => *port,
        other => panic!("{host} on 80: expected an HTTPS redirect, got {other:?}"),
    }
}

fn exact(h: &str) -> HostPattern {
    HostPattern::Exact(h.to_string())
}

fn hosts_of(l: &ListenerConfig) -> Vec<Vec<HostPattern>> {
    l.sites.iter().map(|s| s.hosts.clone()).collect()
}

fn tls_of(c: &Config, port: u16, host: &str) -> TlsPolicy {
    select_site(listener(c, port), host).unwrap().tls.clone()
}

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// A TCP upstream address.
fn tcp(s: &str) -> DialAddr {
    DialAddr::Tcp(sa(s))
}

// ---- the seed ------------------------------------------------------------------------------

#[test]
fn seed_proxies_everything_to_8080_over_acme_https_with_a_redirect() {
    let c = parse(SEED);
    assert_eq!(ports(&c), vec![(80, ListenerKind::Redirect), (443, ListenerKind::Tls)]);
    assert_eq!(tls_of(&c, 443, "stt.fullen.dev"), TlsPolicy::Acme { email: None });
    for path in ["/api/chat", "/", "/app.js", "/api/auth/x", "/health"] {
        assert_eq!(proxied(&c, 443, "stt.fullen.dev", path), ["localhost:8080"]);
    }
    assert_eq!(c.upstream_sets.len(), 1);
    assert_eq!(c.upstream_sets[0].upstreams[0].addrs, [tcp("127.0.0.1:8080"), tcp("[::1]:8080")]);
    assert_eq!(https_redirect(&c, "stt.fullen.dev"), None);
    assert_eq!(https_redirect(&c, "anything.else"), None);
    assert!(select_site(listener(&c, 443), "other.host").is_none());
}

#[test]
fn seed_with_auth_server_routes_auth_and_health_to_3001_and_the_rest_to_8080() {
    let c = parse(SEED_AUTH);
    let to = |p: &str| proxied(&c, 443, "stt.fullen.dev", p);
    assert_eq!(to("/api/auth/x"), ["localhost:3001"]);
    assert_eq!(to("/api/auth/sign-in/email"), ["localhost:3001"]);
    assert_eq!(to("/health"), ["localhost:3001"]);
    assert_eq!(to("/api/chat"), ["localhost:8080"]);
    assert_eq!(to("/"), ["localhost:8080"]);
    assert_eq!(to("/app.js"), ["localhost:8080"]);
    assert_eq!(to("/healthz"), ["localhost:8080"]);
    assert_eq!(to("/api/auth"), ["localhost:8080"]);
    assert_eq!(c.upstream_sets.len(), 3);
    // The three handles are one mutually exclusive group, most specific first.
    let site = select_site(listener(&c, 443), "stt.fullen.dev").unwrap();
    assert!(site.routes.iter().all(|r| r.group == Some(0)));
    assert!(site.routes[2].matcher.is_none());
}

#[test]
fn seed_files_parse_from_disk() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/it/config_cases");
    for name in ["seed.Caddyfile", "seed_auth.Caddyfile"] {
        let c = parse_file(&dir.join(name), &ParseOptions::default()).unwrap();
        assert_eq!(proxied(&c, 443, "stt.fullen.dev", "/api/chat"), ["localhost:8080"]);
    }
    let err = parse_file(&dir.join("missing.Caddyfile"), &ParseOptions::default()).unwrap_err();
    assert_eq!(err.line, 0);
    assert!(
        err.to_string().contains("missing.Caddyfile - cannot read the configuration file"),
        "{err}"
    );
}

#[test]
fn summary_names_listeners_sites_routes_and_upstreams() {
    let s = summary(&parse(SEED_AUTH));
    for needle in [
        "listen [::]:443 (https)",
        "listen [::]:80 (http → https redirect)",
        "site stt.fullen.dev (Caddyfile:1, tls acme)",
        "/api/auth/* [first match] →",
        "reverse_proxy #0 (localhost:3001)",
        "upstreams #2 (Caddyfile:12): localhost:8080 [127.0.0.1:8080, [::1]:8080] policy Random",
    ] {
        assert!(s.contains(needle), "missing {needle:?} in:\n{s}");
    }
    assert!(s.lines().count() < 40, "{s}");
}

// ---- valid Caddyfiles ------------------------------------------------------------------------

type Check = fn(&Config);

const VALID: &[(&str, &str, Check)] = &[
    ("plaintext port catch-all", ":8080 {\n\trespond \"hi\"\n}\n", |c| {
        assert_eq!(ports(c), [(8080, ListenerKind::Plaintext)]);
        assert_eq!(hosts_of(listener(c, 8080)), [Vec::<HostPattern>::new()]);
        assert_eq!(responded(c, 8080, "whatever", "/x"), (200, "hi".into()));
        assert_eq!(c.listeners[0].bind, sa("[::]:8080"));
    }),
    ("http scheme is plaintext on http_port without redirect", "http://a.com {\n\trespond ok\n}\n", |c| {
        assert_eq!(ports(c), [(80, ListenerKind::Plaintext)]);
        assert_eq!(hosts_of(&c.listeners[0]), [vec![exact("a.com")]]);
        assert_eq!(tls_of(c, 80, "a.com"), TlsPolicy::None);
    }),
    ("https scheme with port redirects keeping the port", "https://a.com:8443 {\n\trespond ok\n}\n", |c| {
        assert_eq!(ports(c), [(80, ListenerKind::Redirect), (8443, ListenerKind::Tls)]);
        assert_eq!(https_redirect(c, "a.com"), Some(8443));
        assert_eq!(https_redirect(c, "b.com"), None);
    }),
    ("host with non-standard port is https", "a.com:8443 {\n\trespond ok\n}\n", |c| {
        assert_eq!(listener(c, 8443).kind, ListenerKind::Tls);
        assert_eq!(tls_of(c, 8443, "a.com"), TlsPolicy::Acme { email: None });
    }),
    ("host on http_port is plaintext", "a.com:80 {\n\trespond ok\n}\n", |c| {
        assert_eq!(ports(c), [(80, ListenerKind::Plaintext)]);
    }),
    ("localhost gets an internal certificate", "localhost {\n\trespond ok\n}\n", |c| {
        assert_eq!(tls_of(c, 443, "localhost"), TlsPolicy::Internal);
        assert_eq!(https_redirect(c, "localhost"), None);
    }),
    ("IPv4 site gets an internal certificate", "127.0.0.1 {\n\trespond ok\n}\n", |c| {
        assert_eq!(tls_of(c, 443, "127.0.0.1"), TlsPolicy::Internal);
    }),
    ("bracketed IPv6 site with port", "[::1]:8443 {\n\trespond ok\n}\n", |c| {
        assert_eq!(hosts_of(listener(c, 8443)), [vec![exact("::1")]]);
        assert_eq!(tls_of(c, 8443, "::1"), TlsPolicy::Internal);
    }),
    ("several addresses share one site", "a.com, b.com {\n\trespond ok\n}\n", |c| {
        assert_eq!(hosts_of(listener(c, 443)), [vec![exact("a.com"), exact("b.com")]]);
    }),
    ("addresses with different certificate policies split into sites", "a.com localhost {\n\treverse_proxy :9000\n}\n", |c| {
        assert_eq!(hosts_of(listener(c, 443)), [vec![exact("a.com")], vec![exact("localhost")]]);
        assert_eq!(tls_of(c, 443, "localhost"), TlsPolicy::Internal);
        assert_eq!(proxied(c, 443, "localhost", "/"), [":9000"]);
        assert_eq!(proxied(c, 443, "a.com", "/"), [":9000"]);
        assert_eq!(c.upstream_sets.len(), 1);
    }),
    ("custom ports move sites and the redirect", "{\n\thttp_port 8080\n\thttps_port 8443\n}\na.com {\n\trespond ok\n}\n", |c| {
        assert_eq!(ports(c), [(8080, ListenerKind::Redirect), (8443, ListenerKind::Tls)]);
        assert_eq!((c.globals.http_port, c.globals.https_port), (8080, 8443));
        match route(c, 8080, "a.com", "/") {
            Some(Handler::HttpsRedirect { port }) => assert_eq!(*port, None),
            other => panic!("{other:?}"),
        }
    }),
    ("auto_https off serves hostnames in plaintext", "{\n\tauto_https off\n}\na.com {\n\trespond ok\n}\n", |c| {
        assert_eq!(c.globals.auto_https, AutoHttps::Off);
        assert_eq!(ports(c), [(443, ListenerKind::Plaintext)]);
    }),
    ("auto_https off keeps an explicit tls", "{\n\tauto_https off\n}\na.com {\n\ttls cert.pem key.pem\n}\n", |c| {
        assert_eq!(ports(c), [(443, ListenerKind::Tls)]);
    }),
    ("disable_redirects leaves http_port alone", "{\n\tauto_https disable_redirects\n}\na.com {\n\trespond ok\n}\n", |c| {
        assert_eq!(ports(c), [(443, ListenerKind::Tls)]);
    }),
    ("local_certs makes public names internal", "{\n\tlocal_certs\n}\na.com {\n\trespond ok\n}\n", |c| {
        assert!(c.globals.local_certs);
        assert_eq!(tls_of(c, 443, "a.com"), TlsPolicy::Internal);
    }),
    ("tls internal", "a.com {\n\ttls internal\n}\n", |c| {
        assert_eq!(tls_of(c, 443, "a.com"), TlsPolicy::Internal);
    }),
    ("tls files resolve against the Caddyfile directory", "a.com {\n\ttls certs/a.pem /abs/a.key\n}\n", |c| {
        assert_eq!(
            tls_of(c, 443, "a.com"),
            TlsPolicy::Files { cert: "/etc/caddy/certs/a.pem".into(), key: "/abs/a.key".into() }
        );
    }),
    ("tls email", "a.com {\n\ttls ops@a.com\n}\n", |c| {
        assert_eq!(tls_of(c, 443, "a.com"), TlsPolicy::Acme { email: Some("ops@a.com".into()) });
    }),
    ("global options", "{\n\temail ops@a.com\n\tadmin off\n\tacme_ca https://acme.test/dir\n\tacme_ca_root ca.pem\n\tgrace_period 30s\n\tstorage file_system /var/lib/rp\n}\n", |c| {
        let g = &c.globals;
        assert_eq!(g.email.as_deref(), Some("ops@a.com"));
        assert_eq!(g.admin, Admin::Off);
        assert_eq!(g.acme_ca.as_deref(), Some("https://acme.test/dir"));
        assert_eq!(g.acme_ca_root, Some(PathBuf::from("/etc/caddy/ca.pem")));
        assert_eq!(g.grace_period, Duration::from_secs(30));
        assert_eq!(g.storage, Some(PathBuf::from("/var/lib/rp")));
        assert!(c.listeners.is_empty());
    }),
    ("storage block form and admin address", "{\n\tadmin localhost:2020\n\tstorage file_system {\n\t\troot data\n\t}\n}\n", |c| {
        assert_eq!(c.globals.admin, Admin::Address("localhost:2020".into()));
        assert_eq!(c.globals.storage, Some(PathBuf::from("/etc/caddy/data")));
    }),
    ("servers timeouts and header size", "{\n\tservers {\n\t\ttimeouts {\n\t\t\tread_header 5s\n\t\t\tidle 2m\n\t\t\ttls_handshake 3s\n\t\t\trelay_idle 1h\n\t\t}\n\t\tmax_header_size 32KiB\n\t}\n}\n", |c| {
        let l = &c.globals.limits;
        assert_eq!(l.read_header_timeout, Duration::from_secs(5));
        assert_eq!(l.idle_timeout, Duration::from_secs(120));
        assert_eq!(l.tls_handshake_timeout, Duration::from_secs(3));
        assert_eq!(l.relay_idle_timeout, Some(Duration::from_secs(3600)));
        assert_eq!(l.max_header_bytes, 32 * 1024);
    }),
    ("defaults come from limits", ":8080 {\n\treverse_proxy :9000\n}\n", |c| {
        use ringproxy::config::limits;
        assert_eq!(c.globals.limits, limits::Limits::default());
        assert_eq!(c.globals.grace_period, limits::DEFAULT_GRACE_PERIOD);
        let set = &c.upstream_sets[0];
        assert_eq!(set.lb_policy, LbPolicy::Random);
        assert_eq!(set.transport.dial_timeout, limits::DEFAULT_DIAL_TIMEOUT);
        assert_eq!(set.transport.keepalive, Some(limits::DEFAULT_UPSTREAM_KEEPALIVE));
        assert_eq!(set.fail_duration, limits::DEFAULT_FAIL_DURATION);
        assert_eq!(set.max_fails, limits::DEFAULT_MAX_FAILS);
        assert!(set.health.is_none());
    }),
    ("handle sorts the longest path first and the bare handle last", ":80 {\n\thandle {\n\t\trespond all\n\t}\n\thandle /a/* {\n\t\trespond a\n\t}\n\thandle /a/b {\n\t\trespond ab\n\t}\n}\n", |c| {
        assert_eq!(responded(c, 80, "h", "/a/b").1, "ab");
        assert_eq!(responded(c, 80, "h", "/a/c").1, "a");
        assert_eq!(responded(c, 80, "h", "/b").1, "all");
    }),
    ("handle_path strips its prefix for nested routes", ":80 {\n\thandle_path /api/* {\n\t\trespond /v1 \"v1 {path}\"\n\t\treverse_proxy 127.0.0.1:3000\n\t}\n}\n", |c| {
        assert_eq!(responded(c, 80, "h", "/api/v1"), (200, "v1 {Path}".into()));
        let r = route_req(c, 80, &req("h", "/api/x"));
        assert!(matches!(r.handler, Some(Handler::Proxy(0))));
        assert_eq!(r.strip_prefixes, ["/api"]);
        assert!(route(c, 80, "h", "/other").is_none());
    }),
    ("route keeps the written order", ":80 {\n\troute {\n\t\treverse_proxy :9000\n\t\trespond /x 201\n\t}\n}\n", |c| {
        assert_eq!(proxied(c, 80, "h", "/x"), [":9000"]);
    }),
    ("site directives follow Caddy's order, not the file's", ":80 {\n\treverse_proxy :9000\n\trespond /health 204\n\tredir /old /new\n}\n", |c| {
        assert_eq!(responded(c, 80, "h", "/health").0, 204);
        assert_eq!(redirected(c, 80, "h", "/old"), (302, "/new".into()));
        assert_eq!(proxied(c, 80, "h", "/other"), [":9000"]);
    }),
    ("redir codes and placeholders", ":80 {\n\tredir /a https://{host}{uri} permanent\n\tredir /b /c 308\n\tredir /d /e temporary\n}\n", |c| {
        assert_eq!(redirected(c, 80, "h", "/a"), (301, "https://{Host}{Uri}".into()));
        assert_eq!(redirected(c, 80, "h", "/b"), (308, "/c".into()));
        assert_eq!(redirected(c, 80, "h", "/d"), (302, "/e".into()));
    }),
    ("respond forms", ":80 {\n\trespond /gone 410\n\trespond /made \"created {http.request.host}\" 201\n\trespond /body `a \"quoted\" body`\n\trespond /blk {\n\t\tbody hi\n\t}\n}\n", |c| {
        assert_eq!(responded(c, 80, "h", "/gone"), (410, String::new()));
        assert_eq!(responded(c, 80, "h", "/made"), (201, "created {Host}".into()));
        assert_eq!(responded(c, 80, "h", "/body"), (200, "a \"quoted\" body".into()));
        assert_eq!(responded(c, 80, "h", "/blk"), (200, "hi".into()));
        assert!(route(c, 80, "h", "/none").is_none());
    }),
    ("named matcher block: path, method and header", ":80 {\n\t@ws {\n\t\tpath /api/*\n\t\tmethod get\n\t\theader Upgrade websocket\n\t}\n\treverse_proxy @ws :9001\n}\n", |c| {
        let mut r = req("h", "/api/chat");
        r.headers.push(("upgrade".into(), b"websocket".to_vec()));
        assert!(matches!(route_req(c, 80, &r).handler, Some(Handler::Proxy(_))));
        r.method = "POST".into();
        assert!(route_req(c, 80, &r).handler.is_none());
        assert!(route(c, 80, "h", "/api/chat").is_none());
    }),
    ("named matcher single-line form and suffix paths", ":80 {\n\t@static path *.js *.css\n\trespond @static \"static\"\n\trespond \"dynamic\"\n}\n", |c| {
        assert_eq!(responded(c, 80, "h", "/app.js").1, "static");
        assert_eq!(responded(c, 80, "h", "/a/b.css").1, "static");
        assert_eq!(responded(c, 80, "h", "/app.json").1, "dynamic");
    }),
    ("not matcher", ":80 {\n\t@notapi {\n\t\tnot path /api/*\n\t}\n\trespond @notapi \"site\"\n\trespond \"api\"\n}\n", |c| {
        assert_eq!(responded(c, 80, "h", "/index.html").1, "site");
        assert_eq!(responded(c, 80, "h", "/api/x").1, "api");
    }),
    ("not block with several conditions negates their conjunction", ":80 {\n\t@m {\n\t\tnot {\n\t\t\tpath /a\n\t\t\tmethod POST\n\t\t}\n\t}\n\trespond @m 200\n\trespond 403\n}\n", |c| {
        assert_eq!(responded(c, 80, "h", "/a").0, 200);
        let mut post = req("h", "/a");
        post.method = "POST".into();
        assert!(matches!(route_req(c, 80, &post).handler, Some(Handler::Respond { status: 403, .. })));
    }),
    ("host matcher with wildcard", ":80 {\n\t@api host api.a.com *.b.com\n\trespond @api \"api\"\n\trespond \"other\"\n}\n", |c| {
        assert_eq!(responded(c, 80, "api.a.com", "/").1, "api");
        assert_eq!(responded(c, 80, "x.b.com", "/").1, "api");
        assert_eq!(responded(c, 80, "x.y.b.com", "/").1, "other");
    }),
    ("header matcher absent and present", ":80 {\n\t@noauth header !Authorization\n\t@any header X-Debug\n\trespond @noauth 401\n\trespond @any 299\n\trespond 200\n}\n", |c| {
        assert_eq!(responded(c, 80, "h", "/").0, 401);
        let mut r = req("h", "/");
        r.headers.push(("authorization".into(), b"Bearer x".to_vec()));
        assert!(matches!(route_req(c, 80, &r).handler, Some(Handler::Respond { status: 200, .. })));
        r.headers.push(("x-debug".into(), b"".to_vec()));
        assert!(matches!(route_req(c, 80, &r).handler, Some(Handler::Respond { status: 299, .. })));
    }),
    ("reverse_proxy balancing and health options", ":80 {\n\treverse_proxy :9001 :9002 {\n\t\tlb_policy round_robin\n\t\thealth_uri /healthz\n\t\thealth_interval 10s\n\t\thealth_timeout 2s\n\t\tfail_duration 30s\n\t\tmax_fails 3\n\t\tflush_interval -1\n\t}\n}\n", |c| {
        let s = &c.upstream_sets[0];
        assert_eq!(s.upstreams.len(), 2);
        assert_eq!(s.lb_policy, LbPolicy::RoundRobin);
        let h = s.health.as_ref().unwrap();
        assert_eq!((h.uri.as_str(), h.interval, h.timeout), ("/healthz", Duration::from_secs(10), Duration::from_secs(2)));
        assert_eq!((s.fail_duration, s.max_fails), (Duration::from_secs(30), 3));
    }),
    ("health_uri alone uses default interval and timeout", ":80 {\n\treverse_proxy :9001 {\n\t\thealth_uri /h?full=1\n\t\tlb_policy first\n\t}\n}\n", |c| {
        use ringproxy::config::limits;
        let s = &c.upstream_sets[0];
        let h = s.health.as_ref().unwrap();
        assert_eq!((h.interval, h.timeout), (limits::DEFAULT_HEALTH_INTERVAL, limits::DEFAULT_HEALTH_TIMEOUT));
        assert_eq!(s.lb_policy, LbPolicy::First);
    }),
    ("header_up and header_down operations", ":80 {\n\treverse_proxy :9001 {\n\t\theader_up Host {upstream_hostport}\n\t\theader_up +X-Via ringproxy\n\t\theader_up -Cookie\n\t\theader_down -Server\n\t\theader_down X-Frame-Options DENY\n\t}\n}\n", |c| {
        let s = &c.upstream_sets[0];
        assert_eq!(s.header_up.len(), 3);
        match &s.header_up[0] {
            HeaderOp::Set { name, value } => {
                assert_eq!(name, "Host");
                assert_eq!(value.parts, [TemplatePart::Placeholder(Placeholder::UpstreamHostPort)]);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(&s.header_up[1], HeaderOp::Add { name, value } if name == "X-Via" && text(value) == "ringproxy"));
        assert!(matches!(&s.header_up[2], HeaderOp::Remove { name } if name == "Cookie"));
        // Stored in the order Caddy applies them (sets before deletes), not line order.
        assert!(matches!(&s.header_down[0], HeaderOp::Set { name, .. } if name == "X-Frame-Options"));
        assert!(matches!(&s.header_down[1], HeaderOp::Remove { name } if name == "Server"));
    }),
    ("transport http options", ":80 {\n\treverse_proxy :9001 {\n\t\ttransport http {\n\t\t\tdial_timeout 500ms\n\t\t\tresponse_header_timeout 30s\n\t\t\tkeepalive off\n\t\t\tkeepalive_idle_conns 8\n\t\t}\n\t}\n}\n", |c| {
        let t = &c.upstream_sets[0].transport;
        assert_eq!(t.dial_timeout, Duration::from_millis(500));
        assert_eq!(t.response_header_timeout, Some(Duration::from_secs(30)));
        assert_eq!(t.keepalive, None);
        assert_eq!(t.keepalive_idle_conns, 8);
    }),
    ("upstream forms resolve at load time", ":80 {\n\treverse_proxy 127.0.0.1:3001 http://127.0.0.2:9000 [::1]:8080 10.1.1.1 backend.internal:7000 {\n\t\tto :4000\n\t}\n}\n", |c| {
        let addrs: Vec<Vec<DialAddr>> = c.upstream_sets[0].upstreams.iter().map(|u| u.addrs.clone()).collect();
        assert_eq!(addrs, vec![
            vec![tcp("127.0.0.1:3001")],
            vec![tcp("127.0.0.2:9000")],
            vec![tcp("[::1]:8080")],
            vec![tcp("10.1.1.1:80")],
            vec![tcp("10.0.0.7:7000"), tcp("[fd00::7]:7000")],
            vec![tcp("127.0.0.1:4000"), tcp("[::1]:4000")],
        ]);
    }),
    ("environment variables with defaults", "{$SITE} {\n\treverse_proxy localhost:{$UPSTREAM_PORT} localhost:{$MISSING:9002}\n}\n", |c| {
        assert_eq!(proxied(c, 443, "env.example.com", "/"), ["localhost:9001", "localhost:9002"]);
    }),
    ("snippets with arguments", "(proxy) {\n\treverse_proxy {args[0]} {\n\t\tlb_policy {args[1]}\n\t}\n}\n:80 {\n\timport proxy :9005 first\n}\n", |c| {
        assert_eq!(proxied(c, 80, "h", "/"), [":9005"]);
        assert_eq!(c.upstream_sets[0].lb_policy, LbPolicy::First);
    }),
    ("wildcard sites rank after exact ones", "*.a.com {\n\ttls internal\n\trespond wild\n}\nx.a.com {\n\ttls internal\n\trespond exact\n}\n", |c| {
        let l = listener(c, 443);
        assert_eq!(hosts_of(l), [vec![exact("x.a.com")], vec![HostPattern::Wildcard(".a.com".into())]]);
        assert_eq!(responded(c, 443, "x.a.com", "/").1, "exact");
        assert_eq!(responded(c, 443, "y.a.com", "/").1, "wild");
        assert!(select_site(l, "a.com").is_none());
    }),
    ("an explicit http site on http_port merges with the redirects", "http://a.com {\n\trespond plain\n}\na.com b.com {\n\trespond secure\n}\n", |c| {
        assert_eq!(ports(c), [(80, ListenerKind::Plaintext), (443, ListenerKind::Tls)]);
        assert_eq!(responded(c, 80, "a.com", "/").1, "plain");
        assert_eq!(https_redirect(c, "b.com"), None);
        assert_eq!(https_redirect(c, "unknown.host"), None);
        assert_eq!(responded(c, 443, "a.com", "/").1, "secure");
    }),
    ("a user catch-all on http_port wins over the catch-all redirect", ":80 {\n\trespond plain\n}\na.com {\n\trespond secure\n}\n", |c| {
        assert_eq!(listener(c, 80).kind, ListenerKind::Plaintext);
        assert_eq!(https_redirect(c, "a.com"), None);
        assert_eq!(responded(c, 80, "other", "/").1, "plain");
    }),
    ("a matched handle that answers nothing leaves the request unanswered", ":80 {\n\thandle /a/* {\n\t\trespond /a/x 201\n\t}\n\thandle {\n\t\trespond fallback\n\t}\n}\n", |c| {
        assert_eq!(responded(c, 80, "h", "/a/x").0, 201);
        assert!(route(c, 80, "h", "/a/y").is_none());
        assert_eq!(responded(c, 80, "h", "/b").1, "fallback");
    }),
    ("a site without braces", "localhost:8443\nrespond \"single\"\n", |c| {
        assert_eq!(responded(c, 8443, "localhost", "/").1, "single");
    }),
    ("comments, quotes and line continuations", "# top comment\n:80 { # after brace\n\trespond \\\n\t\t\"a # not a comment\" \\\n\t\t200 # trailing\n}\n", |c| {
        assert_eq!(responded(c, 80, "h", "/"), (200, "a # not a comment".into()));
    }),
    ("access log options", "a.com {\n\tlog {\n\t\toutput file logs/access.log\n\t\tformat console\n\t}\n\trespond ok\n}\nb.com {\n\tlog\n}\n", |c| {
        let l = listener(c, 443);
        let a = select_site(l, "a.com").unwrap().access_log.clone().unwrap();
        assert_eq!(
            a.output,
            LogOutput::File { path: "/etc/caddy/logs/access.log".into(), roll: Default::default() }
        );
        assert_eq!(a.format, LogFormat::Console);
        let b = select_site(l, "b.com").unwrap().access_log.clone().unwrap();
        assert_eq!((b.output, b.format), (LogOutput::Stderr, LogFormat::Json));
        assert!(select_site(listener(c, 80), "a.com").unwrap().access_log.is_none());
    }),
    ("handles inside route are still exclusive", ":80 {\n\troute /r/* {\n\t\thandle /r/a {\n\t\t\trespond a\n\t\t}\n\t\thandle {\n\t\t\trespond other\n\t\t}\n\t}\n}\n", |c| {
        assert_eq!(responded(c, 80, "h", "/r/a").1, "a");
        assert_eq!(responded(c, 80, "h", "/r/b").1, "other");
        assert!(route(c, 80, "h", "/x").is_none());
    }),
    ("star matcher token means every request", ":80 {\n\trespond * \"star\" 202\n}\n", |c| {
        assert_eq!(responded(c, 80, "h", "/anything"), (202, "star".into()));
    }),
    ("matchers defined inside a handle are scoped to it", ":80 {\n\thandle /api/* {\n\t\t@post method POST\n\t\trespond @post 201\n\t\trespond 200\n\t}\n}\n", |c| {
        assert_eq!(responded(c, 80, "h", "/api/x").0, 200);
    }),
    ("path matching is case-insensitive on the normalised path", ":80 {\n\thandle /API/Auth/* {\n\t\trespond auth\n\t}\n}\n", |c| {
        assert_eq!(responded(c, 80, "h", "/api/auth/x").1, "auth");
    }),
    ("the embedded default parses", include_str!("../../src/config/default.Caddyfile"), |c| {
        assert_eq!(ports(c), [(8080, ListenerKind::Plaintext)]);
        assert_eq!(responded(c, 8080, "localhost", "/health"), (200, "ok".into()));
        assert_eq!(responded(c, 8080, "localhost", "/").0, 200);
    }),
    ("two handles with the same matcher are consolidated as in Caddy", ":80 {\n\thandle /a {\n\t\trespond /nope 500\n\t}\n\thandle /a {\n\t\trespond second\n\t}\n\thandle {\n\t\trespond other\n\t}\n}\n", |c| {
        assert_eq!(responded(c, 80, "h", "/a").1, "second");
    }),
    ("handle_path with an exact path strips to the root", ":80 {\n\thandle_path /app {\n\t\trespond / \"root\"\n\t}\n}\n", |c| {
        assert_eq!(responded(c, 80, "h", "/app").1, "root");
    }),
];

#[test]
fn valid_caddyfiles_produce_the_expected_configs() {
    assert!(VALID.len() >= 40, "only {} valid cases", VALID.len());
    for (name, input, check) in VALID {
        let config = parse(input);
        let outcome = std::panic::catch_unwind(|| check(&config));
        if outcome.is_err() {
            panic!("valid case {name:?} failed its checks\n--- input ---\n{input}");
        }
    }
}

// ---- invalid Caddyfiles ----------------------------------------------------------------------

const INVALID: &[(&str, &str)] = &[
    (
        "a.com {\n\treverse_proxy :9000\n\tphp_fastcgi :9001\n}\n",
        "Caddyfile:3 - directive 'php_fastcgi' is not supported by ringproxy (supported: basic_auth, basicauth, encode, file_server, forward_auth, handle, handle_path, header, log, metrics, redir, request_body, respond, reverse_proxy, root, route, tls, try_files)",
    ),
    (
        "{\n\tdebug\n}\n",
        "Caddyfile:2 - global option 'debug' is not supported by ringproxy (supported: acme_ca, acme_ca_root, acme_challenges, admin, auto_https, email, grace_period, http_port, https_port, limits, local_certs, servers, shutdown_delay, storage)",
    ),
    (
        ":80 {\n\treverse_proxy :9000 {\n\t\tlb_retry_match {\n\t\t\tmethod POST\n\t\t}\n\t}\n}\n",
        "Caddyfile:3 - subdirective 'lb_retry_match' of reverse_proxy is not supported by ringproxy (supported: fail_duration, flush_interval, header_down, header_up, health_interval, health_timeout, health_uri, lb_policy, lb_retries, lb_try_duration, lb_try_interval, max_fails, stream_close_delay, stream_timeout, to, transport)",
    ),
    (
        ":80 {\n\treverse_proxy :9000 {\n\t\tlb_policy cookie\n\t}\n}\n",
        "Caddyfile:3 - lb_policy 'cookie' is not supported by ringproxy (supported: first, ip_hash, least_conn, random, round_robin)",
    ),
    (
        ":80 {\n\treverse_proxy https://api.example.com\n}\n",
        "Caddyfile:2 - HTTPS upstreams ('https://api.example.com') are not supported by ringproxy: upstreams are reached over plaintext HTTP (supported: host:port, http://host:port)",
    ),
    (
        ":80 {\n\treverse_proxy unix//run/app.sock:8080\n}\n",
        "Caddyfile:2 - unix socket upstream 'unix//run/app.sock:8080' has a port; a unix socket has none (remove ':8080')",
    ),
    (
        ":80 {\n\treverse_proxy :9000 {\n\t\tlb_retries -1\n\t}\n}\n",
        "Caddyfile:3 - invalid lb_retries '-1': must be 0 or a positive integer",
    ),
    (
        ":80 {\n\treverse_proxy {http.request.header.X-Up}\n}\n",
        "Caddyfile:2 - placeholders in upstream addresses ('{http.request.header.X-Up}') are not supported by ringproxy: upstreams are resolved when the configuration is loaded",
    ),
    (
        ":80 {\n\trespond \"hi {http.request.header.X}\"\n}\n",
        "Caddyfile:2 - placeholder {http.request.header.X} is not supported by ringproxy (supported: {host}, {hostport}, {uri}, {path}, {query}, {scheme}, {method}, {remote_host}, {remote_port}, {upstream_hostport}, and their http.request.* long forms)",
    ),
    (":80 {\n\trespond @missing 404\n}\n", "Caddyfile:2 - unrecognized matcher name: @missing"),
    (
        ":80 {\n\t@a path /a\n\t@a path /b\n}\n",
        "Caddyfile:3 - matcher is defined more than once: @a",
    ),
    ("a.com {\n}\nb.com a.com {\n}\n", "Caddyfile:3 - ambiguous site definition: a.com"),
    (
        ":8443 {\n}\nlocalhost:8443 {\n}\n",
        "Caddyfile:3 - port 8443 is configured for both HTTPS ('localhost:8443') and HTTP (':8443'); ringproxy cannot serve both on one port",
    ),
    ("a.com:99999 {\n}\n", "Caddyfile:1 - site address 'a.com:99999': port 99999 is out of range"),
    ("{\n\thttp_port eighty\n}\n", "Caddyfile:2 - invalid port 'eighty'"),
    ("{\n\thttp_port\n}\n", "Caddyfile:2 - wrong argument count or unexpected line ending after 'http_port'"),
    (
        "a.com {\n\thandle /x {\n\t\trespond hi\n}\n",
        "Caddyfile:1 - unexpected EOF: the '{' on this line is never closed",
    ),
    (
        "a.com {\n\thandle /x { respond hi }\n}\n",
        "Caddyfile:2 - Unexpected next token after '{' on same line",
    ),
    (
        "a.com\n{\n\trespond hi\n}\n",
        "Caddyfile:2 - Unexpected '{' on a new line; did you mean to place the '{' on the previous line?",
    ),
    (
        "a.com {\n\timport common\n}\n",
        "Caddyfile:2 - snippet 'common' is not defined (define (name) { ... } before importing it)",
    ),
    (
        "(loop) {\n\timport loop\n}\na.com {\n\timport loop\n}\n",
        "Caddyfile:2 - import cycle: loop -> loop",
    ),
    ("{\n\tgrace_period 10\n}\n", "Caddyfile:2 - invalid duration '10': missing unit (e.g. 10s)"),
    (
        ":80 {\n\t@q query a=b\n}\n",
        "Caddyfile:2 - matcher 'query' is not supported by ringproxy (supported: header, host, method, not, path)",
    ),
    (
        ":80 {\n\thandle {\n\t\ttls internal\n\t}\n}\n",
        "Caddyfile:3 - directive 'tls' is only allowed at the top level of a site block",
    ),
    (":80 {\n\tredir /x /y 200\n}\n", "Caddyfile:2 - Redir code not in the 3xx range or 401: '200'"),
    (":80 {\n\thandle_path api/* {\n\t}\n}\n", "Caddyfile:2 - path matcher must begin with '/', got api/*"),
    ("ws://a.com {\n}\n", "Caddyfile:1 - the scheme ws:// is only supported in browsers; use http:// instead"),
    (
        "a.com/api {\n}\n",
        "Caddyfile:1 - site address 'a.com/api' has a path, which ringproxy does not support in site addresses; match the path with a handle block instead",
    ),
    (
        "*.a.com {\n}\n",
        "Caddyfile:1 - site address '*.a.com': wildcard certificates need the ACME DNS challenge, which ringproxy does not support; use 'tls internal' or 'tls <cert_file> <key_file>'",
    ),
    (
        "{\n\tauto_https disable_certs\n}\n",
        "Caddyfile:2 - auto_https 'disable_certs' is not supported by ringproxy (supported: off, disable_redirects)",
    ),
    ("http://a.com:443 {\n}\n", "Caddyfile:1 - [http://a.com:443] scheme and port violate convention"),
    (
        ":80 {\n\thandle *.js {\n\t}\n}\n",
        "Caddyfile:2 - '*.js' is not a valid inline matcher: inline matchers are '*', a path starting with '/', or '@name' (for other patterns define a named matcher, e.g. @m path *.js)",
    ),
    (
        ":80 {\n\treverse_proxy :9000 {\n\t\thealth_interval 5s\n\t}\n}\n",
        "Caddyfile:3 - active health checks need health_uri (health_interval and health_timeout have no effect without it)",
    ),
    (
        "{\n\tservers {\n\t\ttimeouts {\n\t\t\tkeepalive_interval 30s\n\t\t}\n\t}\n}\n",
        "Caddyfile:4 - subdirective 'keepalive_interval' of servers timeouts is not supported by ringproxy (supported: idle, read_body, read_header, relay_idle, tls_handshake, write)",
    ),
    (
        ":80 {\n\treverse_proxy :9000 {\n\t\theader_up Host (.*) x\n\t}\n}\n",
        "Caddyfile:3 - header_up with a search and replace is not supported by ringproxy (supported: Name value, +Name value, -Name)",
    ),
    (
        ":443 {\n}\n",
        "Caddyfile:1 - site address ':443' is HTTPS but has no hostname, so ringproxy cannot obtain a certificate for it; add a hostname, use 'tls <cert_file> <key_file>', or serve plaintext with http://",
    ),
    (":80 {\n\tredir /foo\n}\n", "Caddyfile:2 - wrong argument count or unexpected line ending after 'redir'"),
    (":80 {\n\trespond a b c\n}\n", "Caddyfile:2 - wrong argument count or unexpected line ending after 'b'"),
    (":80 {\n\trespond hi\n\t}\n}\n", "Caddyfile:4 - Unexpected '}' because no matching opening brace"),
    (
        ":80 {\n\trespond hi }\n}\n",
        "Caddyfile:2 - '}' must be on a line of its own",
    ),
    ("{\n\thttp_port 80\n\thttp_port 81\n}\n", "Caddyfile:3 - global option 'http_port' is set more than once (first at line 2)"),
    ("{\n\thttps_port 80\n}\n", "Caddyfile:2 - http_port and https_port must differ (both are 80)"),
    (
        ":80 {\n\trespond \"unterminated\n}\n",
        "Caddyfile:2 - unterminated quoted string: missing closing \"",
    ),
    (
        ":80 {\n\treverse_proxy nosuchhost.invalid:80\n}\n",
        "Caddyfile:2 - cannot resolve upstream 'nosuchhost.invalid:80': no such host",
    ),
    (
        "http://a.com {\n\ttls internal\n}\n",
        "Caddyfile:2 - site address 'http://a.com' is plaintext HTTP (port 80) but the site has a tls directive",
    ),
    (
        "{\n\tauto_https off\n}\nhttps://a.com {\n}\n",
        "Caddyfile:4 - site address 'https://a.com' needs a certificate but auto_https is off; add 'tls <cert_file> <key_file>' or 'tls internal'",
    ),
    (
        ":80 {\n\t@m path /a/*/b\n}\n",
        "Caddyfile:2 - path pattern '/a/*/b' has a '*' in the middle, which ringproxy does not support (supported: /exact, /prefix/*, *.suffix, */contains/*, *)",
    ),
    (":80 {\n\treverse_proxy\n}\n", "Caddyfile:2 - reverse_proxy needs at least one upstream"),
    (
        ":80 {\n\tlog access {\n\t}\n}\n",
        "Caddyfile:2 - named loggers ('log access') are not supported by ringproxy",
    ),
];

#[test]
fn invalid_caddyfiles_fail_with_the_exact_message() {
    assert!(INVALID.len() >= 25, "only {} invalid cases", INVALID.len());
    let mut failures = Vec::new();
    for (input, want) in INVALID {
        let got = parse_err(input);
        if got != *want {
            failures.push(format!("input:\n{input}\n  want: {want}\n  got:  {got}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

// ---- properties ------------------------------------------------------------------------------

fn assert_error_line_in_file(input: &[u8], line: usize) -> Result<(), TestCaseError> {
    let lines = line_count(input);
    prop_assert!((1..=lines).contains(&line), "error line {line} outside 1..={lines}");
    Ok(())
}

/// Words the parser reacts to, so that random soups reach deep into it.
const VOCABULARY: &[&str] = &[
    "{",
    "}",
    "\n",
    "\n",
    "\n",
    " ",
    "\"",
    "`",
    "#",
    "\\",
    "{}",
    "import",
    "(s)",
    "s",
    "a.com",
    ":8080",
    "localhost",
    "http://",
    "https://x:443",
    "*.a.com",
    "[::1]:80",
    "handle",
    "handle_path",
    "route",
    "respond",
    "redir",
    "reverse_proxy",
    "tls",
    "log",
    "internal",
    "@m",
    "path",
    "host",
    "method",
    "header",
    "not",
    "/api/*",
    "/x",
    "*",
    "*.js",
    "200",
    "301",
    "permanent",
    "127.0.0.1:1",
    "localhost:8080",
    "lb_policy",
    "round_robin",
    "health_uri",
    "health_interval",
    "5s",
    "transport",
    "http",
    "dial_timeout",
    "header_up",
    "+X",
    "-Y",
    "{host}",
    "{bogus}",
    "{args[0]}",
    "{$X:1}",
    "http_port",
    "https_port",
    "auto_https",
    "off",
    "servers",
    "timeouts",
    "idle",
    "storage",
    "file_system",
    "grace_period",
    "output",
    "file",
    "format",
    "json",
    ",",
    "a.com,",
    "to",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn the_lexer_never_panics_and_errors_point_inside_the_input(input in proptest::collection::vec(any::<u8>(), 0..512)) {
        if let Err(e) = tokenize(&input, "Caddyfile") {
            assert_error_line_in_file(&input, e.line)?;
        }
    }

    #[test]
    fn the_lexer_handles_arbitrary_text(input in "\\PC{0,300}") {
        if let Err(e) = tokenize(input.as_bytes(), "Caddyfile") {
            assert_error_line_in_file(input.as_bytes(), e.line)?;
        }
    }

    #[test]
    fn the_parser_never_panics_on_token_soup(words in proptest::collection::vec(proptest::sample::select(VOCABULARY), 0..80)) {
        let mut input = String::new();
        for w in words {
            input.push_str(w);
            if !w.chars().all(char::is_whitespace) {
                input.push(' ');
            }
        }
        if let Err(e) = parse_bytes(input.as_bytes(), "Caddyfile", Path::new("/etc/caddy"), &sealed_options()) {
            assert_error_line_in_file(input.as_bytes(), e.line)?;
        }
    }

    #[test]
    fn the_parser_never_panics_on_arbitrary_bytes(input in proptest::collection::vec(any::<u8>(), 0..256)) {
        if let Err(e) = parse_bytes(&input, "Caddyfile", Path::new("/etc/caddy"), &sealed_options()) {
            assert_error_line_in_file(&input, e.line)?;
        }
    }
}

#[test]
fn imported_files_and_globs_resolve_against_the_importing_file_and_errors_name_them() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("sites")).unwrap();
    std::fs::write(root.join("Caddyfile"), "{\n\tadmin off\n}\n\nimport sites/*.caddy\n").unwrap();
    std::fs::write(
        root.join("sites/stt.caddy"),
        "stt.example.dev {\n\thandle /api/auth/* {\n\t\timport ../proxy.caddy 3001\n\t}\n\thandle {\n\t\timport ../proxy.caddy 8080\n\t}\n}\n",
    )
    .unwrap();
    std::fs::write(root.join("sites/README"), "not a Caddyfile").unwrap();
    std::fs::write(root.join("proxy.caddy"), "reverse_proxy localhost:{args[0]}\n").unwrap();
    let c = parse_file(&root.join("Caddyfile"), &options()).unwrap();
    assert_eq!(proxied(&c, 443, "stt.example.dev", "/api/auth/login"), ["localhost:3001"]);
    assert_eq!(proxied(&c, 443, "stt.example.dev", "/api/chat"), ["localhost:8080"]);
    let s = summary(&c);
    let site_file = root.join("sites/stt.caddy").display().to_string();
    assert!(s.contains(&format!("site stt.example.dev ({site_file}:1")), "{s}");

    // An error inside an imported file names that file and its own line.
    std::fs::write(
        root.join("proxy.caddy"),
        "reverse_proxy localhost:{args[0]} {\n\tlb_policy nope\n}\n",
    )
    .unwrap();
    let err = parse_file(&root.join("Caddyfile"), &options()).unwrap_err();
    let proxy_file = root.join("proxy.caddy").display().to_string();
    assert!(err.to_string().starts_with(&format!("{proxy_file}:2 - ")), "{err}");
}

/// The middleware a request meets and the handler that answers it, by kind.
fn chain(c: &Config, port: u16, r: &Req) -> Vec<&'static str> {
    let resolution = route_req(c, port, r);
    let kind = |h: &Handler| match h {
        Handler::Proxy(_) => "reverse_proxy",
        Handler::FileServer(_) => "file_server",
        Handler::Header(_) => "header",
        Handler::ForwardAuth(_) => "forward_auth",
        Handler::BasicAuth(_) => "basic_auth",
        Handler::RequestBody { .. } => "request_body",
        Handler::Encode(_) => "encode",
        Handler::Root(_) => "root",
        Handler::TryFiles(_) => "try_files",
        _ => "other",
    };
    let mut kinds: Vec<&str> = resolution.middleware.iter().map(|m| kind(m)).collect();
    kinds.extend(resolution.handler.map(kind));
    kinds
}

#[test]
fn the_speech_front_example_in_the_docs_means_what_it_says() {
    let text = include_str!("../../docs/examples/speech-front.Caddyfile");
    let c = parse(text);
    let at = |path: &str| chain(&c, 443, &req("stt.example.dev", path));
    assert_eq!(at("/api/auth/login"), ["header", "reverse_proxy"]);
    assert_eq!(at("/health"), ["header", "reverse_proxy"]);
    assert_eq!(at("/api/asr"), ["header", "forward_auth", "reverse_proxy"]);
    assert_eq!(at("/api/tts"), ["header", "request_body", "encode", "reverse_proxy"]);
    assert_eq!(at("/metrics"), ["header", "basic_auth", "reverse_proxy"]);
    assert_eq!(
        at("/session/42"),
        ["header", "root", "try_files", "encode", "file_server"],
        "the client app, deep links included"
    );
    let stream = route(&c, 443, "stt.example.dev", "/api/chat");
    let Some(Handler::Proxy(set)) = stream else { panic!("{stream:?}") };
    assert_eq!(c.upstream_sets[*set].upstreams[0].display, "unix//run/moshi/moshi.sock");
    assert!(c.upstream_sets[*set].upstreams[0].is_unix());
}
