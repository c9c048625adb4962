//! Upstream failures: nothing listening (502, fast), an unreachable host (502 at the dial
//! timeout), no response head (504 at response_header_timeout), a connection dropped mid-body
//! (the client's connection ends, the proxy keeps serving), and one dead upstream out of two.

use std::time::{Duration, Instant};

use crate::support::client::{describe, ReadError};
use crate::support::net::{dead_port, Blackhole, IO_TIMEOUT};
use crate::support::origin::Origin;
use crate::support::payload;
use crate::support::{per_driver, Proxy};

per_driver! {
    fn upstream_with_nothing_listening_gets_502_well_within_the_dial_timeout(setup) {
        let dead = dead_port();
        let proxy = Proxy::start(
            &format!("$SITE {{\n\treverse_proxy {dead} {{\n\t\ttransport http {{\n\t\t\tdial_timeout 2s\n\t\t}}\n\t}}\n}}\n"),
            setup,
        );
        let mut conn = proxy.connect();
        let started = Instant::now();
        let resp = conn.get(&proxy.host(), "/");
        assert_eq!(resp.status, 502);
        // A refused connection is known at once; there is nothing to wait for.
        assert!(started.elapsed() < Duration::from_secs(1), "502 took {:?}", started.elapsed());
        // No Rust error text reaches the client.
        let text = resp.text().to_ascii_lowercase();
        assert!(!text.contains("error:") && !text.contains("os error"), "leaked error text: {text:?}");
        // The proxy keeps answering: a second client gets the same verdict.
        assert_eq!(proxy.connect().get(&proxy.host(), "/again").status, 502);
    }
}

per_driver! {
    fn unreachable_upstream_gets_502_at_the_dial_timeout(setup) {
        let hole = Blackhole::start();
        let proxy = Proxy::start(
            &format!("$SITE {{\n\treverse_proxy {} {{\n\t\ttransport http {{\n\t\t\tdial_timeout 500ms\n\t\t}}\n\t}}\n}}\n", hole.addr),
            setup,
        );
        let mut conn = proxy.connect();
        let started = Instant::now();
        let resp = conn.get(&proxy.host(), "/");
        let took = started.elapsed();
        assert_eq!(resp.status, 502);
        assert!(took >= Duration::from_millis(450), "502 before the dial timeout: {took:?}");
        assert!(took < Duration::from_millis(2000), "502 long after the 500ms dial timeout: {took:?}");
    }
}

per_driver! {
    fn upstream_that_never_answers_gets_504_at_the_response_header_timeout(setup) {
        let origin = Origin::start("o");
        let proxy = Proxy::start(
            &format!(
                "$SITE {{\n\treverse_proxy {} {{\n\t\ttransport http {{\n\t\t\tresponse_header_timeout 500ms\n\t\t}}\n\t}}\n}}\n",
                origin.addr
            ),
            setup,
        );
        let mut conn = proxy.connect();
        let started = Instant::now();
        let resp = conn.get(&proxy.host(), "/hang");
        let took = started.elapsed();
        assert_eq!(resp.status, 504);
        assert!(took >= Duration::from_millis(450) && took < Duration::from_millis(2500), "504 after {took:?}");
        assert_eq!(origin.requests_to("/hang").len(), 1, "the request reached the backend once (no retry after sending)");
        // The proxy serves the next request normally.
        let mut next = proxy.connect();
        assert_eq!(next.get(&proxy.host(), "/ok").status, 200);
    }
}

per_driver! {
    fn upstream_closing_mid_body_ends_the_client_connection_and_the_next_client_is_served(setup) {
        let origin = Origin::start("o");
        let proxy = setup.proxy_to(origin.addr);
        let mut conn = proxy.connect();
        let len = 4_000_000u64;
        conn.send(format!("GET /close-mid-body/{len} HTTP/1.1\r\nHost: {}\r\n\r\n", proxy.host()).as_bytes());
        match conn.try_response("GET") {
            Err(ReadError::Closed { .. }) => {}
            Ok(resp) => panic!("a truncated body was presented as complete: status {}, {} of {len} bytes", resp.status, resp.body_len),
            Err(e) => panic!("expected the connection to end: {}", describe(&e)),
        }
        let mut next = proxy.connect();
        let resp = next.get(&proxy.host(), "/bytes/100000");
        assert_eq!(resp.status, 200);
        assert_eq!(resp.body_sha256, payload::pattern_sha256(100_000));
    }
}

per_driver! {
    fn upstream_dying_mid_chunked_body_is_not_reported_as_complete(setup) {
        let origin = Origin::start("o");
        let proxy = setup.proxy_to(origin.addr);
        if proxy.skip_on_caddy("Caddy 2.6 writes the final 0 chunk after an upstream dies mid-body") {
            return;
        }
        let mut conn = proxy.connect();
        conn.send(format!("GET /chunked-truncated HTTP/1.1\r\nHost: {}\r\n\r\n", proxy.host()).as_bytes());
        match conn.try_response("GET") {
            Err(ReadError::Closed { partial }) => {
                assert!(!String::from_utf8_lossy(&partial).contains("\r\n0\r\n\r\n"), "terminating chunk was sent");
            }
            Ok(resp) => panic!("truncated chunked body presented as complete: {:?}", resp.text()),
            Err(e) => panic!("expected the connection to end: {}", describe(&e)),
        }
        assert_eq!(proxy.connect().get(&proxy.host(), "/ok").status, 200);
    }
}

per_driver! {
    fn one_dead_upstream_out_of_two_never_fails_a_request(setup) {
        let live = Origin::start("live");
        let dead = dead_port();
        for policy in ["round_robin", "random", "first", "least_conn"] {
            let proxy = Proxy::start(
                &format!("$SITE {{\n\treverse_proxy {dead} {} {{\n\t\tlb_policy {policy}\n\t}}\n}}\n", live.addr),
                setup,
            );
            if proxy.skip_on_caddy("Caddy does not retry a failed dial by default: half the requests get 502") {
                return;
            }
            let mut keepalive = proxy.connect();
            for i in 0..20 {
                // Alternate a long-lived connection and fresh ones: both must always succeed.
                let resp = if i % 2 == 0 {
                    keepalive.get(&proxy.host(), &format!("/{policy}/{i}"))
                } else {
                    proxy.connect().get(&proxy.host(), &format!("/{policy}/{i}"))
                };
                assert_eq!(resp.status, 200, "{policy}: request {i} failed: {}", resp.text());
                assert_eq!(resp.header("x-origin"), Some("live"));
            }
        }
        assert_eq!(live.wait_for_requests(80, IO_TIMEOUT).len(), 80);
    }
}

per_driver! {
    fn pooled_upstream_connection_closed_by_the_upstream_is_not_reused(setup) {
        let origin = Origin::start("o");
        let proxy = setup.proxy_to(origin.addr);
        let mut conn = proxy.connect();
        // Each answer is followed by the upstream closing that connection while the proxy
        // holds it idle in its pool; the next request must get a fresh connection, including a
        // POST, which a proxy must not blindly retry.
        for (i, method) in ["GET", "POST", "GET", "POST"].iter().enumerate() {
            conn.send(
                format!("{method} /then-close HTTP/1.1\r\nHost: {}\r\nContent-Length: 0\r\n\r\n", proxy.host())
                    .as_bytes(),
            );
            let resp = conn.response(method);
            assert_eq!(resp.status, 200, "request {i} ({method}) after the upstream closed its idle connection");
            std::thread::sleep(Duration::from_millis(200));
        }
        assert_eq!(origin.requests().len(), 4);
        assert_eq!(origin.connections(), 4, "one upstream connection per request, each closed by the upstream");
    }
}

per_driver! {
    fn requests_sent_just_before_the_upstreams_idle_close_all_succeed(setup) {
        let origin = Origin::start("o");
        let proxy = setup.proxy_to(origin.addr);
        let mut conn = proxy.connect();
        // The origin closes each connection 50 ms after answering: a request sent 25 ms later
        // finds the pooled connection still open, and the upstream closes it under the request.
        // The proxy must still answer 200 (fresh dial when the write fails, or one retry when
        // the connection ends before any response byte), never 502.
        for i in 0..8 {
            conn.send(format!("GET /then-close HTTP/1.1\r\nHost: {}\r\n\r\n", proxy.host()).as_bytes());
            let resp = conn.response("GET");
            assert_eq!(resp.status, 200, "request {i}: {}", resp.text());
            std::thread::sleep(Duration::from_millis(25));
        }
    }
}
