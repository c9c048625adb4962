//! The PROXY protocol on the listeners (`servers { listener_wrappers { proxy_protocol … tls } }`)
//! and trusted proxies (`trusted_proxies`, `client_ip_headers`): real v1 and v2 headers written
//! by the tests before the HTTP request or the TLS ClientHello, on both legs and drivers; what
//! the origin sees in X-Forwarded-For, what the access log says, the per-IP cap by the carried
//! address, every fallback policy, `allow`/`deny`, the header timeout, and broken headers.
//!
//! Real clients connect from 127.0.0.1, so the carried addresses are documentation addresses
//! (203.0.113.0/24) that could not be the socket's own.
//!
//! One test puts a real HAProxy (TCP mode, `send-proxy-v2`) in front of the proxy, with the
//! client on a second loopback address (127.0.0.2) so that it differs from the balancer's.
//!
//! Caddy 2.6.2 (what `RINGPROXY_TEST_TARGET=caddy` runs) has no `proxy_protocol` and no
//! `trusted_proxies`: these tests skip that target.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use ringproxy::net::proxy_protocol::encode_v2;

use crate::support::client::HttpConn;
use crate::support::haproxy::Haproxy;
use crate::support::net::IO_TIMEOUT;
use crate::support::origin::{Origin, Recorded};
use crate::support::per_driver;
use crate::support::proxy::{target, Proxy, Setup, Target};
use crate::support::temp::{temp_dir, TempDir};

/// The client address the balancer in these tests vouches for.
const CLIENT: &str = "203.0.113.7:4711";

fn addr(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

/// Caddy 2.6.2 has none of this; say so and skip.
fn skipped_on_caddy() -> bool {
    let caddy = target() == Target::Caddy;
    if caddy {
        eprintln!("SKIPPED against Caddy: 2.6.2 has no proxy_protocol or trusted_proxies");
    }
    caddy
}

/// A v2 header for `source` → the proxy.
fn v2(source: &str, proxy: &Proxy) -> Vec<u8> {
    encode_v2(addr(source), proxy.addr())
}

/// A v1 header, written out as a balancer writes it.
fn v1(source: &str, proxy: &Proxy) -> Vec<u8> {
    let (source, destination) = (addr(source), proxy.addr());
    let family = if source.is_ipv4() { "TCP4" } else { "TCP6" };
    format!(
        "PROXY {family} {} {} {} {}\r\n",
        source.ip(),
        destination.ip(),
        source.port(),
        destination.port()
    )
    .into_bytes()
}

/// A proxy in front of `origin` whose listeners read PROXY headers with `options` (lines of
/// the `proxy_protocol` block), with `globals` added to the global options and `servers` to
/// the `servers` block, and an access log in `log_dir`.
fn start(
    setup: Setup,
    origin: &Origin,
    options: &str,
    servers: &str,
    globals: &str,
    log_dir: &TempDir,
) -> Proxy {
    let log = log_dir.path().join("access.log");
    let caddyfile = format!(
        "{{\n\tservers {{\n\t\tlistener_wrappers {{\n\t\t\tproxy_protocol {{\n{options}\t\t\t}}\n\
         \t\t\ttls\n\t\t}}\n{servers}\t}}\n{globals}}}\n\n$SITE {{\n\tlog {{\n\t\toutput file {}\n\
         \t}}\n\treverse_proxy {}\n}}\n",
        log.display(),
        origin.addr
    );
    Proxy::start(&caddyfile, setup)
}

/// Send one GET for `path` over `conn` and expect the origin's 200.
fn get_ok(proxy: &Proxy, conn: &mut HttpConn, path: &str) {
    let response = conn.get(&proxy.host(), path);
    assert_eq!(response.status, 200, "{path}: {}", response.text());
}

/// The request the origin received for `path`.
fn received(origin: &Origin, path: &str) -> Recorded {
    let deadline = Instant::now() + IO_TIMEOUT;
    loop {
        if let Some(request) = origin.requests_to(path).pop() {
            return request;
        }
        assert!(Instant::now() < deadline, "the origin never saw {path}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The access log entry for `uri` (lines are flushed every 100 ms).
fn log_entry(log_dir: &TempDir, uri: &str) -> serde_json::Value {
    let path = log_dir.path().join("access.log");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let line = text.lines().find(|l| l.contains(&format!("\"uri\":\"{uri}\"")));
        if let Some(line) = line {
            return serde_json::from_str(line).unwrap();
        }
        assert!(Instant::now() < deadline, "no log line for {uri} in {}:\n{text}", path.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether the proxy closes a raw connection that sent `bytes`, within `within`. Raw TCP on
/// both legs: every refusal here happens before TLS would start.
fn closes_after(proxy_addr: SocketAddr, bytes: &[u8], within: Duration) -> bool {
    let mut tcp = TcpStream::connect(proxy_addr).unwrap();
    tcp.write_all(bytes).unwrap();
    closes_within(&mut tcp, within)
}

fn closes_within(tcp: &mut TcpStream, within: Duration) -> bool {
    tcp.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 1024];
    loop {
        match tcp.read(&mut buf) {
            Ok(0) => return true,
            // An answer (the 400 a plaintext port gives garbage) before the close is fine.
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

/// `ringproxy_proxy_protocol_refused_total{reason}` now.
fn refused(proxy: &Proxy, reason: &str) -> String {
    let exposition = ringproxy::metrics::export::render(
        proxy.server().registry(),
        &ringproxy::metrics::process::ProcessStats::default(),
    );
    let sample = format!("ringproxy_proxy_protocol_refused_total{{reason=\"{reason}\"}} ");
    let line = exposition.lines().find(|l| l.starts_with(&sample));
    line.map(|l| l[sample.len()..].to_string()).unwrap_or_else(|| panic!("{exposition}"))
}

/// Whether a request after `prefix` reaches the origin as `path` (the connection may also be
/// refused: then it does not).
fn served_after(proxy: &Proxy, origin: &Origin, prefix: &[u8], path: &str) -> bool {
    let Ok(stream) = proxy.try_stream_after(prefix) else { return false };
    let mut conn = HttpConn::new(stream);
    conn.send_lenient(format!("GET {path} HTTP/1.1\r\nHost: {}\r\n\r\n", proxy.host()).as_bytes());
    let answered = conn.try_response("GET").map(|r| r.status == 200).unwrap_or(false);
    answered && !origin.requests_to(path).is_empty()
}

per_driver! {
    fn v1_and_v2_headers_make_the_carried_address_the_client(setup) {
        if skipped_on_caddy() {
            return;
        }
        let (origin, logs) = (Origin::start("o"), temp_dir("pp-logs"));
        let proxy = start(setup, &origin, "\t\t\t\tallow 127.0.0.0/8\n", "", "", &logs);
        for (version, header) in [("v1", v1(CLIENT, &proxy)), ("v2", v2(CLIENT, &proxy))] {
            let mut conn = proxy.connect_after(&header);
            let path = format!("/{version}");
            get_ok(&proxy, &mut conn, &path);
            // Keep-alive: the second request on the connection is the same client's.
            get_ok(&proxy, &mut conn, &format!("{path}/again"));
            for seen in [received(&origin, &path), received(&origin, &format!("{path}/again"))] {
                assert_eq!(seen.header("x-forwarded-for"), Some("203.0.113.7"), "{version}");
                assert_eq!(seen.header("x-forwarded-proto"), Some(setup.leg.scheme()));
            }
            let entry = log_entry(&logs, &path);
            assert_eq!(entry["request"]["remote_ip"], "203.0.113.7", "{entry}");
            assert_eq!(entry["request"]["remote_port"], "4711", "{entry}");
            assert_eq!(entry["request"]["client_ip"], "203.0.113.7", "{entry}");
        }
        // IPv6 clients through an IPv4 balancer connection.
        let mut conn = proxy.connect_after(&encode_v2(addr("[2001:db8::9]:1000"), proxy.addr()));
        get_ok(&proxy, &mut conn, "/v6");
        assert_eq!(received(&origin, "/v6").header("x-forwarded-for"), Some("2001:db8::9"));
    }
}

per_driver! {
    fn a_v2_local_header_keeps_the_real_peer(setup) {
        if skipped_on_caddy() {
            return;
        }
        let (origin, logs) = (Origin::start("o"), temp_dir("pp-logs"));
        let proxy = start(setup, &origin, "\t\t\t\tfallback_policy require\n", "", "", &logs);
        // Signature, version 2 + LOCAL, unspecified family, no addresses: a health check.
        let mut local = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
        local.extend_from_slice(&[0x20, 0x00, 0x00, 0x00]);
        let mut conn = proxy.connect_after(&local);
        get_ok(&proxy, &mut conn, "/local");
        assert_eq!(received(&origin, "/local").header("x-forwarded-for"), Some("127.0.0.1"));
    }
}

per_driver! {
    fn the_per_ip_cap_counts_the_carried_address(setup) {
        if skipped_on_caddy() {
            return;
        }
        let (origin, logs) = (Origin::start("o"), temp_dir("pp-logs"));
        let globals = "\tlimits {\n\t\tmax_connections_per_ip 1\n\t}\n";
        let proxy = start(setup, &origin, "\t\t\t\tallow 127.0.0.0/8\n", "", globals, &logs);
        let mut first = proxy.connect_after(&v2(CLIENT, &proxy));
        get_ok(&proxy, &mut first, "/first");
        // The same client again, through another balancer connection: over its cap.
        assert!(
            closes_after(proxy.addr(), &v2("203.0.113.7:5000", &proxy), IO_TIMEOUT),
            "a second connection for the same carried address was served"
        );
        // Other clients through the same balancer address are not.
        let mut other = proxy.connect_after(&v1("203.0.113.8:4711", &proxy));
        get_ok(&proxy, &mut other, "/other");
        let mut balancer_itself = proxy.connect();
        get_ok(&proxy, &mut balancer_itself, "/no-header");
        assert_eq!(received(&origin, "/no-header").header("x-forwarded-for"), Some("127.0.0.1"));
        // The client's place frees when its connection closes.
        drop(first);
        let deadline = Instant::now() + IO_TIMEOUT;
        while !served_after(&proxy, &origin, &v2(CLIENT, &proxy), "/after-close") {
            assert!(Instant::now() < deadline, "the first connection's place was never freed");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

per_driver! {
    fn deny_wins_over_allow_and_allow_uses_the_header(setup) {
        if skipped_on_caddy() {
            return;
        }
        let (origin, logs) = (Origin::start("o"), temp_dir("pp-logs"));
        let options = "\t\t\t\tallow 127.0.0.0/8\n\t\t\t\tdeny 127.0.0.1/32\n\
                       \t\t\t\tfallback_policy require\n";
        let proxy = start(setup, &origin, options, "", "", &logs);
        // 127.0.0.1 is denied: a header closes the connection, none is served as itself.
        assert!(closes_after(proxy.addr(), &v2(CLIENT, &proxy), IO_TIMEOUT));
        assert!(origin.requests().is_empty());
        assert_eq!(refused(&proxy, "not_allowed"), "1");
        let mut plain = proxy.connect();
        get_ok(&proxy, &mut plain, "/denied-without-header");
        let seen = received(&origin, "/denied-without-header");
        assert_eq!(seen.header("x-forwarded-for"), Some("127.0.0.1"));
    }
}

per_driver! {
    fn a_peer_outside_allow_gets_the_fallback_policy(setup) {
        if skipped_on_caddy() {
            return;
        }
        let (origin, logs) = (Origin::start("o"), temp_dir("pp-logs"));
        // The default fallback, ignore: the header is read and dropped.
        let proxy = start(setup, &origin, "\t\t\t\tallow 10.0.0.0/8\n", "", "", &logs);
        let mut conn = proxy.connect_after(&v1(CLIENT, &proxy));
        get_ok(&proxy, &mut conn, "/not-allowed");
        assert_eq!(received(&origin, "/not-allowed").header("x-forwarded-for"), Some("127.0.0.1"));
        assert_eq!(log_entry(&logs, "/not-allowed")["request"]["remote_ip"], "127.0.0.1");
    }
}

per_driver! {
    fn each_fallback_policy_does_what_caddy_does(setup) {
        if skipped_on_caddy() {
            return;
        }
        // (policy, header used, header refused, no header refused, header left in the stream)
        let cases = [
            ("ignore", false, false, false, false),
            ("use", true, false, false, false),
            ("reject", false, true, false, false),
            ("require", true, false, true, false),
            ("skip", false, false, false, true),
        ];
        for (policy, uses, refuses_header, refuses_none, passes_through) in cases {
            let (origin, logs) = (Origin::start("o"), temp_dir("pp-logs"));
            let options = format!("\t\t\t\tfallback_policy {policy}\n");
            let proxy = start(setup, &origin, &options, "", "", &logs);
            let with_header = served_after(&proxy, &origin, &v2(CLIENT, &proxy), "/with");
            assert_eq!(with_header, !refuses_header && !passes_through, "{policy} with a header");
            if with_header {
                let expected = if uses { "203.0.113.7" } else { "127.0.0.1" };
                let seen = received(&origin, "/with");
                assert_eq!(seen.header("x-forwarded-for"), Some(expected), "{policy}");
            }
            let without = served_after(&proxy, &origin, b"", "/without");
            assert_eq!(without, !refuses_none, "{policy} without a header");
            if without {
                let seen = received(&origin, "/without");
                assert_eq!(seen.header("x-forwarded-for"), Some("127.0.0.1"), "{policy}");
            }
        }
    }
}

per_driver! {
    fn a_peer_that_sends_no_header_in_time_is_closed(setup) {
        if skipped_on_caddy() {
            return;
        }
        let (origin, logs) = (Origin::start("o"), temp_dir("pp-logs"));
        let options = "\t\t\t\ttimeout 400ms\n\t\t\t\tallow 127.0.0.0/8\n";
        let proxy = start(setup, &origin, options, "", "", &logs);
        for (what, sent) in [("nothing", &b""[..]), ("half a header", &b"PROXY TCP4 203.0"[..])] {
            let started = Instant::now();
            let mut tcp = TcpStream::connect(proxy.addr()).unwrap();
            tcp.write_all(sent).unwrap();
            assert!(closes_within(&mut tcp, IO_TIMEOUT), "{what}: still open");
            let took = started.elapsed();
            assert!(took >= Duration::from_millis(350), "{what}: closed after {took:?}");
            assert!(took < Duration::from_secs(3), "{what}: closed only after {took:?}");
        }
        assert_eq!(refused(&proxy, "timeout"), "2");
        // While those waited, others were served.
        let mut conn = proxy.connect_after(&v2(CLIENT, &proxy));
        get_ok(&proxy, &mut conn, "/in-time");
    }
}

per_driver! {
    fn malformed_and_oversized_headers_close_the_connection(setup) {
        if skipped_on_caddy() {
            return;
        }
        let (origin, logs) = (Origin::start("o"), temp_dir("pp-logs"));
        let proxy = start(setup, &origin, "\t\t\t\tallow 127.0.0.0/8\n", "", "", &logs);
        let mut wrong_version = v2(CLIENT, &proxy);
        wrong_version[12] = 0x31;
        let mut oversized = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
        oversized.extend_from_slice(&[0x21, 0x11, 0xff, 0xff]);
        oversized.extend_from_slice(&[0u8; 1024]);
        let endless_v1 = [b"PROXY TCP4 ".as_slice(), &[b'1'; 200]].concat();
        let broken: [(&str, Vec<u8>); 5] = [
            ("v1 with a bad address", b"PROXY TCP4 203.0.113.999 127.0.0.1 1 2\r\n".to_vec()),
            ("v1 with a bad family", b"PROXY UDP4 203.0.113.7 127.0.0.1 1 2\r\n".to_vec()),
            ("v1 longer than 107 bytes", endless_v1),
            ("v2 of another version", wrong_version),
            ("v2 longer than the limit", oversized),
        ];
        for (what, bytes) in &broken {
            let mut request = bytes.clone();
            request.extend_from_slice(b"GET /broken HTTP/1.1\r\nHost: x\r\n\r\n");
            assert!(closes_after(proxy.addr(), &request, IO_TIMEOUT), "{what}: still open");
        }
        assert!(origin.requests().is_empty(), "a broken header's request reached the origin");
        assert_eq!(refused(&proxy, "malformed"), broken.len().to_string());
        let mut conn = proxy.connect_after(&v2(CLIENT, &proxy));
        get_ok(&proxy, &mut conn, "/fine");
    }
}

per_driver! {
    fn a_trusted_proxys_forwarded_fields_are_kept_and_appended_to(setup) {
        if skipped_on_caddy() {
            return;
        }
        let (origin, logs) = (Origin::start("o"), temp_dir("pp-logs"));
        // The balancer vouches for 10.0.0.5, a trusted proxy; it says the client is 192.0.2.44.
        let servers = "\t\ttrusted_proxies static 10.0.0.0/8\n";
        let proxy = start(setup, &origin, "\t\t\t\tallow 127.0.0.0/8\n", servers, "", &logs);
        let forwarded = "X-Forwarded-For: 192.0.2.44, 10.0.0.9\r\nX-Forwarded-Proto: https\r\n\
                         X-Forwarded-Host: outside.example\r\n";
        let send = |conn: &mut HttpConn, path: &str| {
            let host = proxy.host();
            conn.send(format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n{forwarded}\r\n").as_bytes());
            assert_eq!(conn.response("GET").status, 200);
        };
        let mut trusted = proxy.connect_after(&v2("10.0.0.5:1234", &proxy));
        send(&mut trusted, "/trusted");
        let seen = received(&origin, "/trusted");
        assert_eq!(seen.header("x-forwarded-for"), Some("192.0.2.44, 10.0.0.9, 10.0.0.5"));
        assert_eq!(seen.header("x-forwarded-proto"), Some("https"));
        assert_eq!(seen.header("x-forwarded-host"), Some("outside.example"));
        let entry = log_entry(&logs, "/trusted");
        assert_eq!(entry["request"]["remote_ip"], "10.0.0.5", "{entry}");
        assert_eq!(entry["request"]["client_ip"], "192.0.2.44", "{entry}");

        // The same fields from a client that is not a trusted proxy are replaced.
        let mut untrusted = proxy.connect_after(&v2(CLIENT, &proxy));
        send(&mut untrusted, "/untrusted");
        let seen = received(&origin, "/untrusted");
        assert_eq!(seen.header("x-forwarded-for"), Some("203.0.113.7"));
        assert_eq!(seen.header("x-forwarded-proto"), Some(setup.leg.scheme()));
        assert_eq!(seen.header("x-forwarded-host"), Some(proxy.host().as_str()));
        assert_eq!(log_entry(&logs, "/untrusted")["request"]["client_ip"], "203.0.113.7");
    }
}

per_driver! {
    fn client_ip_headers_and_strict_mode_choose_the_logged_client(setup) {
        if skipped_on_caddy() {
            return;
        }
        let (origin, logs) = (Origin::start("o"), temp_dir("pp-logs"));
        let caddyfile = |servers: &str, log: &Path| {
            format!(
                "{{\n\tservers {{\n{servers}\t}}\n}}\n\n$SITE {{\n\tlog {{\n\t\toutput file {}\n\
                 \t}}\n\treverse_proxy {}\n}}\n",
                log.display(),
                origin.addr
            )
        };
        let fields =
            "X-Real-IP: 198.51.100.3\r\nX-Forwarded-For: 6.6.6.6, 192.0.2.44, 127.0.0.9\r\n";
        let cases = [
            ("\t\ttrusted_proxies static 127.0.0.0/8\n", "6.6.6.6"),
            ("\t\ttrusted_proxies static 127.0.0.0/8\n\t\ttrusted_proxies_strict\n", "192.0.2.44"),
            (
                "\t\ttrusted_proxies static 127.0.0.0/8\n\t\tclient_ip_headers X-Real-IP\n",
                "198.51.100.3",
            ),
            ("\t\ttrusted_proxies static 10.0.0.0/8\n", "127.0.0.1"),
        ];
        for (i, (servers, client)) in cases.iter().enumerate() {
            let log = logs.path().join(format!("access-{i}.log"));
            let proxy = Proxy::start(&caddyfile(servers, &log), setup);
            let mut conn = proxy.connect();
            let host = proxy.host();
            conn.send(format!("GET /case-{i} HTTP/1.1\r\nHost: {host}\r\n{fields}\r\n").as_bytes());
            assert_eq!(conn.response("GET").status, 200);
            let deadline = Instant::now() + Duration::from_secs(5);
            let line = loop {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                if let Some(line) = text.lines().next() {
                    break serde_json::from_str::<serde_json::Value>(line).unwrap();
                }
                assert!(Instant::now() < deadline, "no access log line for case {i}");
                std::thread::sleep(Duration::from_millis(20));
            };
            assert_eq!(line["request"]["client_ip"], *client, "case {i}: {servers}");
            assert_eq!(line["request"]["remote_ip"], "127.0.0.1");
        }
    }
}

per_driver! {
    fn behind_a_real_haproxy_the_origin_and_the_log_see_the_clients_address(setup) {
        if skipped_on_caddy() {
            return;
        }
        let (origin, logs) = (Origin::start("o"), temp_dir("pp-logs"));
        // Only the balancer (127.0.0.1) may send a header, and must; the client is 127.0.0.2.
        let options = "\t\t\t\tallow 127.0.0.1/32\n\t\t\t\tdeny 127.0.0.2/32\n";
        let proxy = start(setup, &origin, options, "", "", &logs);
        let balancer = Haproxy::start_in_front_of(proxy.addr());
        let client: IpAddr = "127.0.0.2".parse().unwrap();
        let mut conn = proxy.connect_via(balancer.addr, client);
        get_ok(&proxy, &mut conn, "/via-haproxy");
        get_ok(&proxy, &mut conn, "/via-haproxy/again");
        for path in ["/via-haproxy", "/via-haproxy/again"] {
            let seen = received(&origin, path);
            assert_eq!(seen.header("x-forwarded-for"), Some("127.0.0.2"), "{}", balancer.log());
            assert_eq!(seen.header("x-forwarded-proto"), Some(setup.leg.scheme()));
        }
        let entry = log_entry(&logs, "/via-haproxy");
        assert_eq!(entry["request"]["remote_ip"], "127.0.0.2", "{entry}");
        assert_eq!(entry["request"]["client_ip"], "127.0.0.2", "{entry}");
        // The client going around the balancer is itself (and may not send a header).
        let mut direct = proxy.connect_via(proxy.addr(), client);
        get_ok(&proxy, &mut direct, "/direct");
        assert_eq!(received(&origin, "/direct").header("x-forwarded-for"), Some("127.0.0.2"));
    }
}
