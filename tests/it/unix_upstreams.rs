//! `unix//path` upstreams: requests, bodies in both framings and keep-alive reuse over a unix
//! stream socket, `{upstream_hostport}` as Caddy fills it (the socket's path), a set that mixes
//! unix and TCP upstreams under one load-balancing policy, active health checks and the admin
//! API's and metrics' view of a unix upstream, and WebSocket relays (echo and half-close).

use std::thread;
use std::time::{Duration, Instant};

use tungstenite::Message;

use crate::support::binary::{get, Running};
use crate::support::net::unassigned_port;
use crate::support::origin::Origin;
use crate::support::payload;
use crate::support::per_driver;
use crate::support::temp::temp_dir;
use crate::support::ws::{ws_connect, WsOrigin};
use crate::websocket::half_close_reaches_the_backend_and_its_answer_still_arrives;

per_driver! {
    fn a_unix_socket_upstream_carries_requests_and_bodies_over_one_pooled_connection(setup) {
        let dir = temp_dir("unix-upstream");
        let socket = dir.path().join("origin.sock");
        let origin = Origin::start_unix("u", &socket);
        let proxy = crate::support::Proxy::start(
            &format!(
                "$SITE {{\n\treverse_proxy {} {{\n\t\theader_up X-Upstream {{upstream_hostport}}\n\t}}\n}}\n",
                origin.upstream()
            ),
            setup,
        );
        let host = proxy.host();
        let mut conn = proxy.connect();
        let first = conn.get(&host, "/hello");
        assert_eq!((first.status, first.text().as_str()), (200, "u GET /hello"));
        assert_eq!(first.header("x-origin"), Some("u"));

        let body = payload::pattern(300_000);
        let mut post = format!(
            "POST /sha256 HTTP/1.1\r\nHost: {host}\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        post.extend_from_slice(&body);
        conn.send(&post);
        let summed = conn.response("POST");
        assert_eq!(summed.text(), format!("{} {}", body.len(), payload::sha256_hex(&body)));

        // Large enough for the spliced path between two plaintext sockets, on the plain leg.
        let long = conn.get(&host, "/bytes/2000000");
        assert_eq!(long.body_len, 2_000_000);
        assert_eq!(long.body_sha256, payload::pattern_sha256(2_000_000));
        let chunked = conn.get(&host, "/chunked/100000?piece=777");
        assert_eq!(chunked.body_sha256, payload::pattern_sha256(100_000));
        assert_eq!(chunked.trailer("x-body-sha256"), Some(payload::pattern_sha256(100_000).as_str()));

        let seen = origin.requests();
        assert_eq!(seen.len(), 4);
        let path = socket.display().to_string();
        for request in &seen {
            assert_eq!(request.header("x-upstream"), Some(path.as_str()), "Caddy's hostport is the path");
            assert_eq!(request.header("x-forwarded-for"), Some("127.0.0.1"));
            assert_eq!(request.header("host"), Some(host.as_str()));
        }
        assert!(
            seen.iter().all(|r| r.conn == 0),
            "keep-alive to the unix upstream was not reused: connections {:?}",
            seen.iter().map(|r| r.conn).collect::<Vec<_>>()
        );
    }
}

per_driver! {
    fn unix_and_tcp_upstreams_share_one_set_and_its_round_robin(setup) {
        let dir = temp_dir("unix-mixed");
        let unix = Origin::start_unix("unix", &dir.path().join("u.sock"));
        let tcp = Origin::start("tcp");
        let proxy = crate::support::Proxy::start(
            &format!(
                "$SITE {{\n\treverse_proxy {} {{\n\t\tto {}\n\t\tlb_policy round_robin\n\t}}\n}}\n",
                unix.upstream(),
                tcp.upstream()
            ),
            setup,
        );
        let host = proxy.host();
        let mut conn = proxy.connect();
        let answered: Vec<String> = (0..6)
            .map(|i| {
                let resp = conn.get(&host, &format!("/n/{i}"));
                assert_eq!(resp.status, 200);
                resp.header("x-origin").unwrap().to_string()
            })
            .collect();
        let count = |name: &str| answered.iter().filter(|o| *o == name).count();
        assert_eq!((count("unix"), count("tcp")), (3, 3), "{answered:?}");
        for pair in answered.chunks(2) {
            assert_ne!(pair[0], pair[1], "round robin did not alternate: {answered:?}");
        }
    }
}

per_driver! {
    fn a_websocket_relays_both_ways_and_half_closes_over_a_unix_upstream(setup) {
        let dir = temp_dir("unix-ws");
        let origin = WsOrigin::start_unix(&dir.path().join("ws.sock"));
        let proxy = setup.proxy_to(origin.upstream());
        let mut ws = ws_connect(proxy.stream(), &proxy.host(), "/echo");
        for size in [1usize, 125, 126, 65_536, 300_000] {
            let msg = Message::Binary(payload::pattern(size));
            ws.send(msg.clone()).unwrap();
            assert_eq!(ws.read().unwrap(), msg, "{size} bytes");
        }
        ws.send(Message::Text("over a unix socket".into())).unwrap();
        assert_eq!(ws.read().unwrap(), Message::Text("over a unix socket".into()));
        ws.close(None).unwrap();
        let _ = ws.read();
        assert_eq!(origin.echoed(), 6);
        assert_eq!(origin.handshakes()[0].header("x-forwarded-for"), Some("127.0.0.1"));

        if proxy.skip_on_caddy("Caddy closes both directions of a relay as soon as one side ends") {
            return;
        }
        half_close_reaches_the_backend_and_its_answer_still_arrives(&proxy);
    }
}

/// The admin API and the metrics name a unix upstream as written, and follow its active
/// health: up while its socket answers the check (sent with `Host: localhost`, as Caddy's),
/// down once the socket is gone, when requests go to the TCP upstream alone.
#[test]
fn health_checks_the_admin_api_and_metrics_follow_a_unix_upstream() {
    let dir = temp_dir("unix-health");
    let socket = dir.path().join("health.sock");
    let unix = Origin::start_unix("unix", &socket);
    let tcp = Origin::start("tcp");
    let (admin, port) = (unassigned_port(), unassigned_port());
    let caddyfile = format!(
        "{{\n\tadmin 127.0.0.1:{admin}\n\tgrace_period 1s\n}}\n\n:{port} {{\n\treverse_proxy {} {} {{\n\t\tlb_policy first\n\t\thealth_uri /status/200\n\
         \t\thealth_interval 100ms\n\t\thealth_timeout 500ms\n\t}}\n}}\n",
        unix.upstream(),
        tcp.upstream()
    );
    let mut proxy = Running::start(&caddyfile, &[]);
    proxy.wait_listening(port);
    let name = format!("unix/{}", socket.display());
    let admin_get = |path: &str| get(admin, &format!("127.0.0.1:{admin}"), path);
    let entry = |address: &str| -> serde_json::Value {
        let (status, body) = admin_get("/reverse_proxy/upstreams");
        assert_eq!(status, 200, "{body}");
        let list: serde_json::Value = serde_json::from_str(&body).unwrap();
        list.as_array()
            .unwrap()
            .iter()
            .find(|u| u["address"] == address)
            .cloned()
            .unwrap_or_else(|| panic!("{address} is not in the admin API's upstreams: {body}"))
    };
    let healthy_metric = || -> Option<f64> {
        let series = format!("ringproxy_upstream_healthy{{upstream=\"{name}\"}} ");
        let (_, metrics) = admin_get("/metrics");
        metrics.lines().find_map(|l| l.strip_prefix(series.as_str())?.parse().ok())
    };

    let (status, body) = get(port, "x", "/first");
    assert_eq!((status, body.as_str()), (200, "unix GET /first"), "lb_policy first");
    assert_eq!(entry(&name)["healthy"], true);
    assert_eq!(healthy_metric(), Some(1.0));
    let checks = unix.wait_for_requests(2, Duration::from_secs(5));
    let check = checks.iter().find(|r| r.path() == "/status/200").expect("no health check came");
    assert_eq!(check.header("host"), Some("localhost"));

    drop(unix);
    let deadline = Instant::now() + Duration::from_secs(5);
    while entry(&name)["healthy"] != false {
        assert!(Instant::now() < deadline, "the unix upstream stayed healthy without its socket");
        thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(healthy_metric(), Some(0.0));
    for i in 0..3 {
        let (status, body) = get(port, "x", &format!("/after/{i}"));
        assert_eq!((status, body), (200, format!("tcp GET /after/{i}")));
    }
    assert_eq!(entry(tcp.upstream())["healthy"], true);

    // The upstream comes back on the same path: the next checks find it.
    let _unix = Origin::start_unix("unix", &socket);
    let deadline = Instant::now() + Duration::from_secs(5);
    while entry(&name)["healthy"] != true {
        assert!(Instant::now() < deadline, "the unix upstream did not come back");
        thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(get(port, "x", "/back"), (200, "unix GET /back".to_string()));
}
