//! Live reload: a config change applies to new connections and to the next request of a
//! kept-alive one, while live WebSockets and in-flight requests finish on the config they
//! started with, whatever changed. Caddy closes every WebSocket on a reload (caddy#7222), so
//! these tests skip it.

use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use tungstenite::Message;

use crate::support::client::ClientStream;
use crate::support::net::unassigned_port;
use crate::support::origin::Origin;
use crate::support::streams::PacedStreams;
use crate::support::tls_client::{client_config, TestCa};
use crate::support::ws::{ws_connect, WsOrigin};
use crate::support::{per_driver, Proxy};

const CADDY_DROPS_STREAMS: &str = "Caddy closes every WebSocket on a reload (caddy#7222)";

/// A site that sends everything to `upstream`, and with `extra` a second, plaintext listener.
fn config(upstream: impl std::fmt::Display, extra: Option<u16>) -> String {
    let mut text = format!("$SITE {{\n\treverse_proxy {upstream}\n}}\n");
    if let Some(port) = extra {
        text.push_str(&format!(":{port} {{\n\trespond \"extra listener\" 200\n}}\n"));
    }
    text
}

fn listening(port: u16) -> bool {
    TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(2)).is_ok()
}

per_driver! {
    fn two_hundred_live_websockets_survive_twenty_reloads_that_move_their_route_and_add_and_remove_a_listener(setup) {
        let (a, b) = (WsOrigin::start(), WsOrigin::start());
        let extra = unassigned_port();
        let proxy = Proxy::start(&config(a.addr, None), setup);
        if proxy.skip_on_caddy(CADDY_DROPS_STREAMS) {
            return;
        }
        let streams = PacedStreams::start(&proxy, 200, 10, Duration::from_millis(50));
        thread::sleep(Duration::from_millis(200));
        let mut worst_reload = Duration::ZERO;
        for i in 0..20 {
            let to_b = i % 2 == 0;
            let (text, origin) =
                if to_b { (config(b.addr, Some(extra)), &b) } else { (config(a.addr, None), &a) };
            let t = Instant::now();
            proxy.reload(&text).unwrap_or_else(|e| panic!("reload {i}: {e}"));
            worst_reload = worst_reload.max(t.elapsed());
            // A socket opened now follows the new config.
            let before = origin.handshakes().len();
            let mut ws = ws_connect(proxy.stream(), &proxy.host(), &format!("/after-reload/{i}"));
            ws.send(Message::Binary(vec![i as u8; 32])).unwrap();
            assert_eq!(ws.read().unwrap(), Message::Binary(vec![i as u8; 32]));
            ws.close(None).unwrap();
            assert_eq!(origin.handshakes().len(), before + 1, "reload {i}: the new socket went to the old upstream");
            assert_eq!(listening(extra), to_b, "reload {i}: the extra listener is {}", if to_b { "missing" } else { "still there" });
            thread::sleep(Duration::from_millis(100));
        }
        let tally = streams.stop();
        assert!(tally.errors.is_empty(), "streams broke across the reloads: {:?}", tally.errors);
        assert_eq!(tally.echoed, tally.sent, "frames lost");
        assert!(tally.sent >= 200 * 20, "only {} frames went through", tally.sent);
        // The 200 streams stayed on the upstream they started with.
        let on_a = a.handshakes().iter().filter(|h| h.path.starts_with("/stream/")).count();
        assert_eq!(on_a, 200);
        assert!(b.handshakes().iter().all(|h| !h.path.starts_with("/stream/")));
        eprintln!(
            "200 streams, 20 reloads: {} frames, 0 lost; longest round trip {:?}; slowest reload {:?}",
            tally.sent, tally.longest_round_trip, worst_reload
        );
        assert!(worst_reload < Duration::from_secs(1), "a reload took {worst_reload:?}");
    }
}

per_driver! {
    fn a_kept_alive_connection_uses_the_new_config_at_its_next_request_and_an_in_flight_one_finishes_on_the_old(setup) {
        let (old, new) = (Origin::start("old"), Origin::start("new"));
        let proxy = Proxy::start(&config(old.addr, None), setup);
        if proxy.skip_on_caddy("Caddy closes idle kept-alive connections on a reload") {
            return;
        }
        let mut kept = proxy.connect();
        assert_eq!(kept.get(&proxy.host(), "/first").header("x-origin"), Some("old"));

        // A slow response is under way on another connection when the config changes.
        let mut slow = proxy.connect();
        slow.send(format!("GET /drip?n=20&ms=50 HTTP/1.1\r\nHost: {}\r\n\r\n", proxy.host()).as_bytes());
        thread::sleep(Duration::from_millis(300));
        proxy.reload(&config(new.addr, None)).unwrap();

        let resp = kept.get(&proxy.host(), "/second");
        assert_eq!(resp.header("x-origin"), Some("new"), "the next request on the kept-alive connection");
        let dripped = slow.response("GET");
        assert_eq!(dripped.status, 200);
        assert_eq!(dripped.header("x-origin"), Some("old"));
        assert_eq!(dripped.text(), "abcdefghijklmnopqrst", "the in-flight response was cut");
        assert_eq!(old.requests_to("/second").len(), 0);
    }
}

per_driver! {
    fn a_config_that_does_not_parse_or_cannot_bind_changes_nothing(setup) {
        let origin = Origin::start("o");
        let proxy = Proxy::start(&config(origin.addr, None), setup);
        if proxy.skip_on_caddy("the test drives ringproxy's reload directly") {
            return;
        }
        let err = proxy.reload("$SITE {\n\trespond \"x\" 99\n}\n").unwrap_err();
        assert!(err.starts_with("Caddyfile:") && err.contains("invalid status code '99'"), "{err}");
        // A port someone else holds fails the whole reload, new site and all.
        let taken = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
        let port = taken.local_addr().unwrap().port();
        let err = proxy
            .reload(&format!("$SITE {{\n\trespond \"replaced\" 200\n}}\n:{port} {{\n\trespond \"other\"\n}}\n"))
            .unwrap_err();
        assert!(err.contains(&format!("{port}")), "{err}");
        assert_eq!(proxy.connect().get(&proxy.host(), "/still").header("x-origin"), Some("o"));
        // Counted: the bind failure reached the server (the parse error never did).
        let exposition = ringproxy::metrics::export::render(
            proxy.server().registry(),
            &ringproxy::metrics::process::ProcessStats::default(),
        );
        assert!(exposition.contains("ringproxy_config_reloads_total{result=\"failure\"} 1\n"), "{exposition}");
    }
}

per_driver! {
    tls_only("it rotates the certificate files a TLS site names")
    fn a_reload_reads_tls_certificate_files_again(setup) {
        let origin = Origin::start("o");
        let ca = TestCa::new("rotating");
        let (cert, key) = ca.leaf("rotating", &["rotate.test"]);
        let site = format!(
            "rotate.test:$PORT {{\n\ttls {} {}\n\treverse_proxy {}\n}}\n",
            cert.display(),
            key.display(),
            origin.addr
        );
        let proxy = Proxy::start(&site, setup);
        if proxy.skip_on_caddy("the test drives ringproxy's reload directly") {
            return;
        }
        let client = client_config(&[ca.root()]);
        let served = || ClientStream::connect_tls(proxy.addr(), "rotate.test", &client).peer_chain()[0].clone();
        let before = served();
        // The operator replaces the files in place (a renewal by another tool), then reloads.
        let (new_cert, new_key) = ca.leaf("renewed", &["rotate.test"]);
        std::fs::copy(&new_cert, &cert).unwrap();
        std::fs::copy(&new_key, &key).unwrap();
        assert_eq!(served(), before, "the files are read at a reload, not before");
        proxy.reload(&site).unwrap();
        let after = served();
        assert_ne!(after, before, "the reload kept serving the old certificate");
        let renewed = rustls::pki_types::CertificateDer::from_pem_file(&new_cert).unwrap();
        assert_eq!(after, renewed, "the reload serves the new file's certificate");
    }
}

per_driver! {
    fn the_metrics_directive_serves_the_exposition_on_its_route(setup) {
        let origin = Origin::start("o");
        let site = format!(
            "$SITE {{\n\thandle /proxy-metrics {{\n\t\tmetrics\n\t}}\n\thandle {{\n\t\treverse_proxy {}\n\t}}\n}}\n",
            origin.addr
        );
        let proxy = Proxy::start(&site, setup);
        if proxy.skip_on_caddy("Caddy's metrics are opt-in and named differently") {
            return;
        }
        let mut conn = proxy.connect();
        assert_eq!(conn.get(&proxy.host(), "/metrics").header("x-origin"), Some("o"), "the upstream's own /metrics route");
        let resp = conn.get(&proxy.host(), "/proxy-metrics");
        assert_eq!(resp.status, 200);
        assert_eq!(resp.header("content-type"), Some("text/plain; version=0.0.4; charset=utf-8"));
        let text = resp.text();
        assert!(text.contains("ringproxy_http_requests_total{code=\"200\"} 1\n"), "{text}");
        assert!(text.contains("# TYPE ringproxy_websockets_open gauge\n"));
    }
}

fn wait_until(within: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while !done() {
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(20));
    }
    true
}

per_driver! {
    fn a_removed_upstreams_idle_connections_close_and_an_unchanged_upstream_keeps_its_pool(setup) {
        let kept = Origin::start("kept");
        let removed = Origin::start("removed");
        let replacement = Origin::start("replacement");
        let config = |second: &Origin| {
            format!(
                "$SITE {{\n\thandle /kept/* {{\n\t\treverse_proxy {}\n\t}}\n\thandle {{\n\t\treverse_proxy {}\n\t}}\n}}\n",
                kept.addr, second.addr
            )
        };
        let proxy = Proxy::start(&config(&removed), setup);
        if proxy.skip_on_caddy("the test drives ringproxy's reload directly") {
            return;
        }
        // One client connection, so both pooled upstream connections sit on one worker.
        let mut conn = proxy.connect();
        assert_eq!(conn.get(&proxy.host(), "/kept/a").header("x-origin"), Some("kept"));
        assert_eq!(conn.get(&proxy.host(), "/b").header("x-origin"), Some("removed"));
        assert!(wait_until(Duration::from_secs(2), || removed.open_connections() == 1));

        proxy.reload(&config(&replacement)).unwrap();
        assert!(
            wait_until(Duration::from_secs(3), || removed.open_connections() == 0),
            "the removed upstream's idle pooled connection was not closed"
        );
        assert_eq!(conn.get(&proxy.host(), "/c").header("x-origin"), Some("replacement"));
        assert_eq!(conn.get(&proxy.host(), "/kept/d").header("x-origin"), Some("kept"));
        assert_eq!(kept.connections(), 1, "the unchanged upstream's pooled connection was not reused");
        assert_eq!(kept.open_connections(), 1);
    }
}

per_driver! {
    fn an_upstream_that_failed_its_health_check_stays_out_after_a_reload_that_changes_its_set(setup) {
        // `sick` serves requests but never answers its health check, so each probe of it takes
        // the whole health_timeout: after the reload there is a 2 s window in which only the
        // carried-over state keeps `lb_policy first` off it.
        let sick = Origin::start("sick");
        let well = Origin::start("well");
        let extra = Origin::start("extra");
        let config = |upstreams: &[&Origin]| {
            let addrs: Vec<String> = upstreams.iter().map(|o| o.addr.to_string()).collect();
            format!(
                "$SITE {{\n\treverse_proxy {} {{\n\t\tlb_policy first\n\t\thealth_uri /hang-if/sick\n\t\thealth_interval 1m\n\t\thealth_timeout 2s\n\t}}\n}}\n",
                addrs.join(" ")
            )
        };
        let proxy = Proxy::start(&config(&[&sick, &well]), setup);
        if proxy.skip_on_caddy("the test drives ringproxy's reload directly") {
            return;
        }
        let served_by = || proxy.connect().get(&proxy.host(), "/who").header("x-origin").map(str::to_owned);
        // Both workers' first probes of `sick` time out.
        assert!(wait_until(Duration::from_secs(5), || {
            (0..4).all(|_| served_by().as_deref() == Some("well"))
        }));

        proxy.reload(&config(&[&sick, &well, &extra])).unwrap();
        let started = Instant::now();
        let after: Vec<Option<String>> = (0..8).map(|_| served_by()).collect();
        assert!(started.elapsed() < Duration::from_millis(1500), "too slow to land in the window");
        assert!(after.iter().all(|o| o.as_deref() == Some("well")), "{after:?}");
    }
}
