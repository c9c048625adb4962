//! The upstream side of hardening: the client connection survives a synthesized 502/504, a
//! request that may have reached the upstream is never sent twice unless it is idempotent,
//! strict upgrades, invalid upstream status lines, stray bytes on pooled connections, passive
//! health counting only the upstream's own faults, and the upstream read and write timeouts.

use std::sync::atomic::Ordering;
use std::time::Duration;

use std::net::SocketAddr;

use crate::support::binary::{get, Running};
use crate::support::client::{describe, ClientStream, HttpConn, ReadError};
use crate::support::net::{dead_port, unassigned_port};
use crate::support::origin::Origin;
use crate::support::scripted::{write, Act, Scripted};
use crate::support::{per_driver, Proxy};

per_driver! {
    fn a_synthesized_502_or_504_keeps_the_client_connection_when_the_request_was_read_whole(setup) {
        let origin = Origin::start("o");
        let dead = dead_port();
        let proxy = Proxy::start(
            &format!(
                "$SITE {{\n\thandle /dead/* {{\n\t\treverse_proxy {dead}\n\t}}\n\
                 \thandle_path /slow/* {{\n\t\treverse_proxy {0} {{\n\t\t\ttransport http {{\n\
                 \t\t\t\tresponse_header_timeout 300ms\n\t\t\t}}\n\t\t}}\n\t}}\n\
                 \treverse_proxy {0}\n}}\n",
                origin.addr
            ),
            setup,
        );
        let host = proxy.host();
        let mut conn = proxy.connect();
        let refused = conn.get(&host, "/dead/a");
        assert_eq!(refused.status, 502);
        assert_eq!(refused.header("connection"), None, "a 502 to a bodiless request closed the connection");
        assert_eq!(conn.get(&host, "/after-502").status, 200, "the connection did not go on after the 502");

        conn.send(format!("HEAD /dead/b HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes());
        let head = conn.response("HEAD");
        assert_eq!(head.status, 502);
        assert_eq!(head.body_len, 0);

        let timed_out = conn.get(&host, "/slow/hang");
        assert_eq!(timed_out.status, 504);
        assert_eq!(timed_out.header("connection"), None);
        let after = conn.get(&host, "/after-504");
        assert_eq!(after.status, 200, "the connection did not go on after the 504 (nor after the HEAD)");
        assert_eq!(after.text(), "o GET /after-504");

        // A body the proxy never read (the dial failed first) is still on its way: that
        // connection cannot carry another request.
        if !proxy.is_caddy() {
            conn.send(format!("POST /dead/c HTTP/1.1\r\nHost: {host}\r\nContent-Length: 5\r\n\r\nhello").as_bytes());
            let unread = conn.response("POST");
            assert_eq!(unread.status, 502);
            assert_eq!(unread.header("connection"), Some("close"));
            assert!(conn.closed_within(Duration::from_secs(3)), "the connection stayed open with a body unread");
        }
    }
}

/// An upstream that answers `/warm` (so its connection goes back to the proxy's pool) and
/// resets the connection after reading any other request: the upstream may have acted on it.
fn resetting_upstream() -> Scripted {
    Scripted::start(|seen| {
        if seen.target == "/warm" {
            vec![write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")]
        } else {
            vec![Act::Reset]
        }
    })
}

per_driver! {
    fn a_request_that_may_have_reached_the_upstream_is_sent_again_only_when_it_is_idempotent(setup) {
        let upstream = resetting_upstream();
        let proxy = setup.proxy_to(upstream.addr);
        let host = proxy.host();
        let mut conn = proxy.connect();
        // (request, how many times the upstream may see it): each goes out on a pooled
        // connection, which the upstream resets after reading the request.
        let cases = [
            (format!("POST /post-empty HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\n\r\n"), 1),
            (format!("POST /post-body HTTP/1.1\r\nHost: {host}\r\nContent-Length: 5\r\n\r\nhello"), 1),
            (format!("PATCH /patch HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\n\r\n"), 1),
            (format!("DELETE /delete HTTP/1.1\r\nHost: {host}\r\n\r\n"), 1),
            (format!("DELETE /delete-keyed HTTP/1.1\r\nHost: {host}\r\nIdempotency-Key: \"k1\"\r\n\r\n"), 2),
            (format!("GET /get HTTP/1.1\r\nHost: {host}\r\n\r\n"), 2),
        ];
        for (request, times) in cases {
            assert_eq!(conn.get(&host, "/warm").status, 200);
            conn.send(request.as_bytes());
            let method = request.split(' ').next().unwrap();
            let resp = conn.response(method);
            assert_eq!(resp.status, 502, "{request:?}");
            let target = request.split(' ').nth(1).unwrap();
            let seen = upstream.seen_to(target);
            assert_eq!(seen.len(), times, "{request:?} reached the upstream {} times", seen.len());
            assert!(seen.iter().all(|s| s.method == method));
            // A replay goes out on a connection of its own, never the reset one.
            if times == 2 {
                assert_ne!(seen[0].conn, seen[1].conn);
            }
        }
    }
}

per_driver! {
    fn an_upstream_status_outside_100_to_599_is_a_502_and_an_empty_host_still_reaches_the_upstream(setup) {
        let upstream = Scripted::start(|seen| {
            let status = seen.target.strip_prefix("/status/").unwrap_or("200");
            vec![write(format!("HTTP/1.1 {status} Whatever\r\nContent-Length: 2\r\n\r\nok"))]
        });
        let proxy = setup.proxy_to(upstream.addr);
        let host = proxy.host();
        let mut conn = proxy.connect();
        for (status, want) in [("000", 502), ("099", 502), ("600", 502), ("999", 502), ("599", 599)] {
            conn.send(format!("GET /status/{status} HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes());
            let resp = conn.try_response("GET");
            if proxy.is_caddy() && resp.as_ref().map_or(true, |r| r.status != want) {
                let got = resp.map_or_else(|e| describe(&e), |r| r.status.to_string());
                eprintln!("NOTE against Caddy: upstream status {status} answered {got}");
                conn = proxy.connect();
                continue;
            }
            let resp = resp.unwrap_or_else(|e| panic!("upstream status {status}: {}", describe(&e)));
            assert_eq!(resp.status, want, "upstream status {status}");
        }

        // RFC 9112 §3.2 allows an empty Host; an HTTP/1.1 request must still carry one upstream.
        let mut conn = proxy.connect();
        conn.send(b"GET /empty-host HTTP/1.1\r\nHost:\r\n\r\n");
        let status = conn.response("GET").status;
        if proxy.is_caddy() && status == 400 {
            eprintln!("NOTE against Caddy: an empty Host was answered 400");
            return;
        }
        assert_eq!(status, 200);
        let seen = upstream.seen_to("/empty-host");
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].header("host"), Some(upstream.addr.to_string().as_str()), "{}", seen[0].head);
    }
}

/// What a misbehaving upstream sends a moment after its answer, on the idle connection: a
/// whole response, which a proxy that reused the connection would take for the next request's.
const STRAY: &str = "HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nsmuggled";

per_driver! {
    fn an_upstream_connection_that_received_bytes_while_idle_is_never_reused(setup) {
        let upstream = Scripted::start(|seen| {
            let answer = match seen.target.as_str() {
                "/no-content" => "HTTP/1.1 204 No Content\r\n\r\n".to_string(),
                "/not-modified" => "HTTP/1.1 304 Not Modified\r\nETag: \"v\"\r\n\r\n".to_string(),
                "/head" | "/overlong" => "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_string(),
                target => {
                    let body = format!("real {target}");
                    return vec![write(format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}", body.len()))];
                }
            };
            // A HEAD answer carries no body whatever its length says: "ok" is stray too.
            let answer = if seen.method == "HEAD" { answer.replace("\r\n\r\nok", "\r\n\r\n") } else { answer };
            vec![write(answer), Act::Sleep(Duration::from_millis(20)), write(STRAY)]
        });
        let proxy = setup.proxy_to(upstream.addr);
        let host = proxy.host();
        let mut conn = proxy.connect();
        for (method, target) in [("GET", "/no-content"), ("GET", "/not-modified"), ("HEAD", "/head"), ("GET", "/overlong")] {
            conn.send(format!("{method} {target} HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes());
            let first = conn.response(method);
            assert!(matches!(first.status, 200 | 204 | 304), "{target}: {}", first.status);
            // The stray bytes arrive 20 ms after the answer; the next request comes well after
            // them (but soon enough that a recent pooled connection would be trusted unprobed).
            std::thread::sleep(Duration::from_millis(100));
            let next_target = format!("/after{target}");
            let next = conn.get(&host, &next_target);
            assert_eq!(next.text(), format!("real {next_target}"), "after {method} {target}");
            let (before, after) = (&upstream.seen_to(target)[0], &upstream.seen_to(&next_target)[0]);
            assert_ne!(before.conn, after.conn, "after {target}: the connection with stray bytes was reused");
        }
    }
}

/// Failures counted against upstreams by passive health, every worker and set together. Each
/// worker keeps its own counts (and only a set with `fail_duration` keeps any).
fn passive_failures(proxy: &Proxy) -> u64 {
    let workers = proxy.server().registry().upstreams();
    workers.iter().flatten().map(|entry| entry.stats.fails.load(Ordering::Relaxed)).sum()
}

per_driver! {
    fn an_upstream_response_that_stalls_mid_body_is_cut_off_and_a_steady_one_never_is(setup) {
        let upstream = Scripted::start(|seen| {
            let head = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n";
            match seen.target.as_str() {
                // Ten bytes, one every 100 ms: a second in all, three times read_timeout.
                "/steady" => std::iter::once(write(head))
                    .chain((0..10).flat_map(|_| [Act::Sleep(Duration::from_millis(100)), write("s")]))
                    .collect(),
                t if t.ends_with("/stall") => {
                    vec![write(format!("{head}hello")), Act::Sleep(Duration::from_secs(5)), write("world")]
                }
                _ => vec![write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")],
            }
        });
        let timeouts = "transport http {\n\t\t\tread_timeout 400ms\n\t\t}";
        let proxy = Proxy::start(
            &format!(
                "$SITE {{\n\thandle /counted/* {{\n\t\treverse_proxy {0} {{\n\t\t\tfail_duration 30s\n\
                 \t\t\tmax_fails 1\n\t\t{timeouts}\n\t\t}}\n\t}}\n\
                 \treverse_proxy {0} {{\n\t\t{timeouts}\n\t}}\n}}\n",
                upstream.addr
            ),
            setup,
        );
        let host = proxy.host();
        let mut conn = proxy.connect();
        let steady = conn.get(&host, "/steady");
        assert_eq!(steady.text(), "ssssssssss", "a steady body was cut");

        let started = std::time::Instant::now();
        conn.send(format!("GET /stall HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes());
        match conn.try_response("GET") {
            Err(ReadError::Closed { .. }) => {}
            other => panic!("a stalled body did not end the client connection: {other:?}"),
        }
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(350) && took < Duration::from_secs(3), "cut after {took:?}");
        // The stalled connection went nowhere near the pool: the next request has a new one.
        assert_eq!(proxy.connect().get(&host, "/after").status, 200);
        let (stalled, after) = (&upstream.seen_to("/stall")[0], &upstream.seen_to("/after")[0]);
        assert_ne!(stalled.conn, after.conn);

        // A stall is the upstream's fault: with max_fails 1 it is marked down.
        let mut conn = proxy.connect();
        conn.send(format!("GET /counted/stall HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes());
        assert!(conn.try_response("GET").is_err());
        if !proxy.is_caddy() {
            assert_eq!(passive_failures(&proxy), 1, "the stall was not counted against the upstream");
        }
    }
}

per_driver! {
    plain_only("the stall is on the upstream leg; the test writes the body from a second thread, which a TLS client cannot do")
    fn an_upstream_that_stops_reading_the_request_body_gets_504_at_the_write_timeout(setup) {
        // Accepts and then never reads: the request body fills the socket buffers and stops.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let holder = std::thread::spawn(move || {
            let (socket, _) = listener.accept().unwrap();
            std::thread::sleep(Duration::from_secs(6));
            drop(socket);
        });
        let proxy = Proxy::start(
            &format!("$SITE {{\n\treverse_proxy {addr} {{\n\t\ttransport http {{\n\t\t\twrite_timeout 400ms\n\t\t}}\n\t}}\n}}\n"),
            setup,
        );
        if proxy.skip_on_caddy("Caddy's write_timeout is not a stall timeout on the request body") {
            return;
        }
        let len = 64 << 20;
        let mut conn = proxy.connect();
        conn.send(format!("POST /upload HTTP/1.1\r\nHost: {}\r\nContent-Length: {len}\r\n\r\n", proxy.host()).as_bytes());
        let mut writer = conn.stream.tcp().try_clone().unwrap();
        let started = std::time::Instant::now();
        let pusher = std::thread::spawn(move || {
            let chunk = vec![b'x'; 256 * 1024];
            let mut sent = 0;
            while sent < len {
                if std::io::Write::write_all(&mut writer, &chunk).is_err() {
                    break;
                }
                sent += chunk.len();
            }
        });
        let resp = conn.response("POST");
        let took = started.elapsed();
        assert_eq!(resp.status, 504);
        assert_eq!(resp.header("connection"), Some("close"), "the rest of the body is unread");
        assert!(took < Duration::from_secs(4), "504 after {took:?}");
        drop(conn);
        let _ = pusher.join();
        let _ = holder.join();
    }
}

const WS_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

per_driver! {
    fn only_a_bodiless_get_upgrades_only_to_websocket_and_only_on_a_genuine_101(setup) {
        let upstream = Scripted::start(|seen| {
            let accept = seen.header("sec-websocket-key").map(|k| tungstenite::handshake::derive_accept_key(k.as_bytes()));
            let switch = |upgrade: &str, accept: &str| {
                vec![write(format!(
                    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: {upgrade}\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
                ))]
            };
            match seen.target.as_str() {
                "/ws" => switch("websocket", &accept.unwrap_or_default()),
                "/ws-wrong-accept" => switch("websocket", "AAAAPLMBiTxaQ9kYGzzhZRbK+xOo="),
                "/ws-h2c" => switch("h2c", &accept.unwrap_or_default()),
                "/ws-refused" => vec![write("HTTP/1.1 403 Forbidden\r\nContent-Length: 2\r\n\r\nno")],
                _ => vec![write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")],
            }
        });
        let proxy = setup.proxy_to(upstream.addr);
        let host = proxy.host();
        let upgrade = |method: &str, target: &str, offer: &str, extra: &str| {
            format!(
                "{method} {target} HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade\r\nUpgrade: {offer}\r\n\
                 Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {WS_KEY}\r\n{extra}\r\n"
            )
        };

        // A 101 that is not the WebSocket switch the client asked for is a 502.
        for target in ["/ws-wrong-accept", "/ws-h2c"] {
            let mut conn = proxy.connect();
            conn.send(upgrade("GET", target, "websocket", "").as_bytes());
            let status = conn.response("GET").status;
            if proxy.is_caddy() && status != 502 {
                eprintln!("NOTE against Caddy: {target} was answered {status}");
                continue;
            }
            assert_eq!(status, 502, "{target}");
        }

        // A refused upgrade is an ordinary answer for the client; the upstream connection that
        // refused it is not used again.
        let mut conn = proxy.connect();
        conn.send(upgrade("GET", "/ws-refused", "websocket", "").as_bytes());
        assert_eq!(conn.response("GET").status, 403);
        assert_eq!(conn.get(&host, "/after-refusal").text(), "ok");
        let (refused, after) = (&upstream.seen_to("/ws-refused")[0], &upstream.seen_to("/after-refusal")[0]);
        assert_ne!(refused.conn, after.conn, "the connection that refused an upgrade was pooled");

        // Only a GET without a body asks to upgrade; anything else goes as a plain request.
        let mut conn = proxy.connect();
        conn.send(upgrade("POST", "/post-upgrade", "websocket", "Content-Length: 2\r\n\r\nhi").trim_end_matches("\r\n").as_bytes());
        assert_eq!(conn.response("POST").text(), "ok");
        let seen = &upstream.seen_to("/post-upgrade")[0];
        if proxy.is_caddy() && seen.header("upgrade").is_some() {
            eprintln!("NOTE against Caddy: a POST upgrade reached the upstream as {:?}", seen.head);
        } else {
            assert_eq!(seen.header("upgrade"), None, "{}", seen.head);
            assert!(!seen.head.to_ascii_lowercase().contains("connection: upgrade"), "{}", seen.head);
        }

        // h2c is never offered to the upstream, alone or beside websocket.
        conn.send(
            format!("GET /h2c HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n")
                .as_bytes(),
        );
        assert_eq!(conn.response("GET").text(), "ok");
        let seen = &upstream.seen_to("/h2c")[0];
        if proxy.is_caddy() && seen.header("upgrade").is_some() {
            eprintln!("NOTE against Caddy: an h2c upgrade reached the upstream as {:?}", seen.head);
        } else {
            assert_eq!(seen.header("upgrade"), None, "{}", seen.head);
            assert_eq!(seen.header("http2-settings"), None, "{}", seen.head);
        }
        let mut conn = proxy.connect();
        conn.send(upgrade("GET", "/ws", "h2c, websocket", "").as_bytes());
        let status = conn.response("GET").status;
        if proxy.is_caddy() && status != 101 {
            eprintln!("NOTE against Caddy: `Upgrade: h2c, websocket` was answered {status}");
        } else {
            assert_eq!(status, 101);
        }
        let seen = &upstream.seen_to("/ws")[0];
        let offered: Vec<&str> = seen.head.split("\r\n").filter(|l| l.to_ascii_lowercase().starts_with("upgrade:")).collect();
        if proxy.is_caddy() && offered != ["Upgrade: websocket"] {
            eprintln!("NOTE against Caddy: `Upgrade: h2c, websocket` reached the upstream as {offered:?}");
        } else {
            assert_eq!(offered, ["Upgrade: websocket"], "{}", seen.head);
        }
    }
}

per_driver! {
    fn a_client_that_leaves_or_stalls_mid_upload_is_not_held_against_the_upstream(setup) {
        let origin = Origin::start("o");
        let proxy = Proxy::start(
            &format!(
                "{{\n\tservers {{\n\t\ttimeouts {{\n\t\t\tread_body 300ms\n\t\t}}\n\t}}\n}}\n\n\
                 $SITE {{\n\treverse_proxy {} {{\n\t\tfail_duration 30s\n\t\tmax_fails 1\n\t}}\n}}\n",
                origin.addr
            ),
            setup,
        );
        if proxy.skip_on_caddy("Caddy's read_body is a deadline; its passive health is not observable here") {
            return;
        }
        let host = proxy.host();
        let head = format!("POST /sha256 HTTP/1.1\r\nHost: {host}\r\nContent-Length: 100000\r\n\r\n");
        // Leaves after a tenth of its body.
        let mut leaving = proxy.connect();
        leaving.send(head.as_bytes());
        leaving.send(&[b'a'; 10_000]);
        drop(leaving);
        // Stops sending after a tenth of its body: 408 after read_body.
        let mut stalling = proxy.connect();
        stalling.send(head.as_bytes());
        stalling.send(&[b'a'; 10_000]);
        assert_eq!(stalling.response("POST").status, 408);
        // Leaves in the middle of a large response.
        let mut reader = proxy.connect();
        reader.send(format!("GET /bytes/50000000 HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes());
        std::thread::sleep(Duration::from_millis(100));
        drop(reader);
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(passive_failures(&proxy), 0, "a client's fault was counted against the upstream");
        for i in 0..4 {
            assert_eq!(proxy.connect().get(&host, &format!("/after/{i}")).status, 200);
        }
    }
}

/// Set the soft RLIMIT_NOFILE of process `pid`.
fn set_open_files_limit(pid: u32, soft: u64) {
    let status = std::process::Command::new("prlimit")
        .args(["--pid", &pid.to_string(), &format!("--nofile={soft}:")])
        .status()
        .unwrap();
    assert!(status.success(), "prlimit failed");
}

/// The soft RLIMIT_NOFILE of process `pid`.
fn open_files_limit(pid: u32) -> u64 {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits.lines().find(|l| l.starts_with("Max open files")).unwrap();
    line.split_whitespace().nth(3).unwrap().parse().unwrap()
}

/// A soft RLIMIT_NOFILE that leaves process `pid` room for exactly `room` more descriptors:
/// new ones take the lowest free numbers, and the limit bounds the number, not the count.
fn limit_leaving_room(pid: u32, room: usize) -> u64 {
    let entries = std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap();
    let open: std::collections::HashSet<u64> =
        entries.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect();
    let mut free = 0;
    (0u64..)
        .find(|n| {
            free += usize::from(!open.contains(n));
            free == room
        })
        .unwrap()
        + 1
}

/// A dial that fails because the proxy ran out of descriptors (EMFILE) is the proxy's problem,
/// not the upstream's: with `max_fails 1` the upstream must stay in service.
#[test]
fn running_out_of_descriptors_does_not_mark_the_upstream_down() {
    let origin = Origin::start("o");
    let (admin, port) = (unassigned_port(), unassigned_port());
    let caddyfile = format!(
        "{{\n\tadmin 127.0.0.1:{admin}\n\tgrace_period 1s\n}}\n\n:{port} {{\n\treverse_proxy {} {{\n\
         \t\tfail_duration 30s\n\t\tmax_fails 1\n\t\ttransport http {{\n\t\t\tkeepalive off\n\t\t}}\n\t}}\n}}\n",
        origin.addr
    );
    let mut proxy = Running::start(&caddyfile, &[]);
    proxy.wait_listening(port);
    assert_eq!(get(port, "a", "/warm").0, 200);
    std::thread::sleep(Duration::from_millis(200));
    // Room for a few more descriptors: each client connection below holds one, and the next
    // dial after the last one fits fails.
    let original = open_files_limit(proxy.pid());
    set_open_files_limit(proxy.pid(), limit_leaving_room(proxy.pid(), 3));
    let mut held = Vec::new();
    let mut refused = false;
    for i in 0..8 {
        let mut conn =
            HttpConn::new(ClientStream::connect_plain(SocketAddr::from(([127, 0, 0, 1], port))));
        conn.deadline_after = Duration::from_secs(3);
        conn.send(format!("GET /fill/{i} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes());
        match conn.try_response("GET") {
            Ok(resp) if resp.status == 200 => held.push(conn),
            Ok(resp) => {
                assert_eq!(resp.status, 502, "{}", resp.text());
                refused = true;
                break;
            }
            // The accept itself found no descriptor: the connection waits in the backlog.
            Err(e) => {
                eprintln!("request {i}: {}", describe(&e));
                break;
            }
        }
    }
    set_open_files_limit(proxy.pid(), original);
    assert!(refused, "no dial ran out of descriptors:\n{}", proxy.log());
    assert!(proxy.log().contains("cannot dial"), "{}", proxy.log());
    drop(held);
    for i in 0..6 {
        assert_eq!(get(port, "a", &format!("/after/{i}")).0, 200, "the upstream was marked down");
    }
    let (status, upstreams) = get(admin, &format!("127.0.0.1:{admin}"), "/reverse_proxy/upstreams");
    assert_eq!(status, 200);
    assert!(
        upstreams.contains("\"fails\":0") && upstreams.contains("\"healthy\":true"),
        "{upstreams}"
    );
}
