//! The data path over TLS: the seed deployment's Caddyfile with `tls <cert> <key>` (files from a
//! CA generated here) and, separately, as a `localhost` site on the local CA, serving every route
//! over HTTPS and WSS through verifying rustls clients. Each test repeats a plaintext data-path
//! test (routing, bodies, WebSocket, upstream failures, bad input, slow clients) on both drivers,
//! so a difference between the two paths shows up as one failing test.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use rustls::ClientConfig;
use tungstenite::{Message, WebSocket};

use crate::support::client::{describe, HttpConn, ReadError};
use crate::support::net::{dead_port, IO_TIMEOUT};
use crate::support::origin::Origin;
use crate::support::payload::{self, Rng};
use crate::support::proxy::{target, Setup, Target, TempDir};
use crate::support::tls_client::{
    client_config, https_conn, root_from_pem_file, wss_connect, TestCa, TlsClientStream,
};
use crate::support::ws::WsOrigin;
use crate::support::{per_driver, Proxy};

/// The site's name: SNI, certificate and Host.
const NAME: &str = "stt.test";

/// A proxy serving one `NAME:$PORT` site with `tls <cert> <key>`, and a client that trusts
/// only the test CA. Redirects are off so that no test binds the real port 80.
struct Https {
    proxy: Proxy,
    client: Arc<ClientConfig>,
    _ca: TestCa,
    _storage: TempDir,
}

impl Https {
    /// `globals` goes inside the global options block, `site` inside the site block; both
    /// tab-indented Caddyfile lines.
    fn start(globals: &str, site: &str, setup: Setup) -> Https {
        let ca = TestCa::new("tls-datapath");
        let (cert, key) = ca.leaf("stt", &[NAME]);
        let storage = TempDir::new("tls-datapath-storage");
        let caddyfile = format!(
            "{{\n\tauto_https disable_redirects\n\tstorage file_system {}\n{globals}}}\n\n\
             {NAME}:$PORT {{\n\ttls {} {}\n{site}}}\n",
            storage.path().display(),
            cert.display(),
            key.display(),
        );
        let proxy = Proxy::start(&caddyfile, setup);
        Https { proxy, client: client_config(&[ca.root()]), _ca: ca, _storage: storage }
    }

    fn stream(&self) -> TlsClientStream {
        TlsClientStream::connect(self.proxy.addr(), NAME, &self.client)
    }

    fn conn(&self) -> HttpConn<TlsClientStream> {
        https_conn(self.proxy.addr(), NAME, &self.client)
    }

    fn host(&self) -> String {
        format!("{NAME}:{}", self.proxy.port())
    }
}

/// The seed's handlers ("With Auth Server"), verbatim apart from the two upstream ports.
fn seed_handlers(auth_port: u16, moshi_port: u16) -> String {
    format!(
        "\t# Auth server routes\n\
         \thandle /api/auth/* {{\n\t\treverse_proxy localhost:{auth_port}\n\t}}\n\
         \thandle /health {{\n\t\treverse_proxy localhost:{auth_port}\n\t}}\n\n\
         \t# Everything else goes to moshi-server\n\
         \thandle {{\n\t\treverse_proxy localhost:{moshi_port}\n\t}}\n"
    )
}

/// Three rounds of the seed's routes on one keep-alive connection: each request reaches the
/// right backend, which sees `X-Forwarded-Proto: https`.
fn check_seed_routes(
    conn: &mut HttpConn<TlsClientStream>,
    host: &str,
    auth: &Origin,
    moshi: &Origin,
) {
    let plan: &[(&str, &str, &str)] = &[
        ("POST", "/api/auth/login", "auth"),
        ("GET", "/api/build_info", "moshi"),
        ("GET", "/health", "auth"),
        ("GET", "/", "moshi"),
        ("GET", "/api/auth/session?x=1", "auth"),
        ("POST", "/api/tts", "moshi"),
    ];
    for round in 0..3 {
        for (method, target, backend) in plan {
            let body = format!("{{\"round\":{round}}}");
            if *method == "POST" {
                conn.send(
                    format!(
                        "POST {target} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    )
                    .as_bytes(),
                );
            } else {
                conn.send(format!("GET {target} HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes());
            }
            let resp = conn.response(method);
            assert_eq!(resp.status, 200, "{method} {target}: {}", resp.text());
            assert_eq!(
                resp.header("x-origin"),
                Some(*backend),
                "{method} {target} went to the wrong backend"
            );
            let expected = if *method == "POST" { body } else { format!("{backend} GET {target}") };
            assert_eq!(resp.text(), expected, "{method} {target}");
        }
    }
    for (origin, name) in [(auth, "auth"), (moshi, "moshi")] {
        let expected: Vec<String> = (0..3)
            .flat_map(|_| {
                plan.iter().filter(|(_, _, b)| *b == name).map(|(m, t, _)| format!("{m} {t}"))
            })
            .collect();
        let seen = origin.wait_for_requests(expected.len(), IO_TIMEOUT);
        assert_eq!(
            seen.iter().map(|r| format!("{} {}", r.method, r.target)).collect::<Vec<_>>(),
            expected,
            "requests seen by {name}"
        );
        for rec in &seen {
            assert_eq!(rec.header("x-forwarded-proto"), Some("https"), "{name} {}", rec.target);
            assert_eq!(rec.headers_named("x-forwarded-proto").len(), 1);
        }
    }
}

per_driver! {
    fn seed_routes_over_https_alternate_backends_on_one_keepalive_connection_with_forwarded_proto_https(setup) {
        let auth = Origin::start_localhost("auth");
        let moshi = Origin::start_localhost("moshi");
        let https = Https::start("", &seed_handlers(auth.port(), moshi.port()), setup);
        let mut conn = https.conn();
        assert_eq!(conn.stream.conn().alpn_protocol(), Some(&b"http/1.1"[..]));
        check_seed_routes(&mut conn, &https.host(), &auth, &moshi);
        // Still the same connection; a client's own X-Forwarded-Proto is replaced, not passed on.
        conn.send(format!("GET /health HTTP/1.1\r\nHost: {}\r\nX-Forwarded-Proto: http\r\n\r\n", https.host()).as_bytes());
        let resp = conn.response("GET");
        assert_eq!(resp.header("x-origin"), Some("auth"));
        let last = auth.wait_for_requests(10, IO_TIMEOUT).pop().unwrap();
        assert_eq!(last.target, "/health");
        assert_eq!(last.headers_named("x-forwarded-proto"), vec!["https"]);
    }
}

per_driver! {
    fn seed_websocket_route_over_wss_reaches_moshi_server_with_forwarded_proto_https(setup) {
        let auth = Origin::start_localhost("auth");
        let moshi = WsOrigin::start();
        let handlers = seed_handlers(auth.port(), moshi.port())
            .replace(&format!("localhost:{}", moshi.port()), &moshi.addr.to_string());
        let https = Https::start("", &handlers, setup);
        let mut ws = wss_connect(https.stream(), &https.host(), "/api/chat");
        for i in 0..20u8 {
            let frame = vec![i; 960];
            ws.send(Message::Binary(frame.clone())).unwrap();
            assert_eq!(next_data(&mut ws), Message::Binary(frame));
        }
        ws.close(None).unwrap();
        let hs = &moshi.handshakes()[0];
        assert_eq!(hs.path, "/api/chat");
        assert_eq!(hs.header("x-forwarded-proto"), Some("https"));
        assert!(auth.requests().is_empty());
    }
}

per_driver! {
    fn small_wss_frames_are_relayed_at_once_in_both_directions(setup) {
        let origin = WsOrigin::start();
        let https = Https::start("", &format!("\treverse_proxy {}\n", origin.addr), setup);
        let mut ws = wss_connect(https.stream(), &https.host(), "/audio");
        // 20 ms of 24 kHz 16-bit mono per frame, lock-step: a relay that waits to fill a TLS
        // record, or a write split so that Nagle holds its tail until a delayed ACK (40 ms on
        // Linux), shows up as a median in tens of milliseconds instead of well under one.
        let mut took = Vec::with_capacity(300);
        for i in 0..300u32 {
            let mut frame = vec![(i % 251) as u8; 960];
            frame[..4].copy_from_slice(&i.to_be_bytes());
            let t = Instant::now();
            ws.send(Message::Binary(frame.clone())).unwrap();
            assert_eq!(next_data(&mut ws), Message::Binary(frame), "frame {i}");
            took.push(t.elapsed());
        }
        took.sort();
        let median = took[took.len() / 2];
        eprintln!("wss echo of a 960-byte frame: median {median:?}, p99 {:?}", took[took.len() * 99 / 100]);
        assert!(median < Duration::from_millis(15), "median echo {median:?}: frames are being held back");
        ws.close(None).unwrap();
    }
}

per_driver! {
    fn twenty_megabyte_upload_and_fifty_megabyte_download_over_https_are_byte_exact(setup) {
        let origin = Origin::start("o");
        let https = Https::start("", &format!("\treverse_proxy {}\n", origin.addr), setup);
        let mut conn = https.conn();

        let up = 20u64 << 20;
        conn.send(format!("POST /sha256 HTTP/1.1\r\nHost: {}\r\nContent-Length: {up}\r\n\r\n", https.host()).as_bytes());
        let body = payload::pattern(up as usize);
        for piece in body.chunks(256 * 1024) {
            conn.send(piece);
        }
        let resp = conn.response("POST");
        assert_eq!(resp.status, 200);
        assert_eq!(resp.text(), format!("{up} {}", payload::pattern_sha256(up)));

        // Same keep-alive connection, the other direction.
        let down = 50u64 << 20;
        let resp = conn.get(&https.host(), &format!("/bytes/{down}"));
        assert_eq!(resp.status, 200);
        assert_eq!(resp.body_len, down);
        assert_eq!(resp.body_sha256, payload::pattern_sha256(down));
        assert_eq!(conn.get(&https.host(), "/bytes/10").body, payload::pattern(10));
    }
}

/// Read the next data message, skipping control frames.
fn next_data<S: Read + Write>(ws: &mut WebSocket<S>) -> Message {
    loop {
        let msg = ws.read().unwrap_or_else(|e| panic!("WebSocket read: {e}"));
        if matches!(msg, Message::Text(_) | Message::Binary(_) | Message::Close(_)) {
            return msg;
        }
    }
}

per_driver! {
    fn two_thousand_wss_messages_from_1_byte_to_256_kib_echo_byte_exact_in_order(setup) {
        let origin = WsOrigin::start();
        let https = Https::start("", &format!("\treverse_proxy {}\n", origin.addr), setup);
        let mut ws = wss_connect(https.stream(), &https.host(), "/echo");
        let mut rng = Rng::new(2001);
        // Sizes around the frame-length encodings and the 16 KiB TLS record size.
        let edges = [1usize, 2, 125, 126, 127, 16_383, 16_384, 16_385, 65_535, 65_536, 65_537, 262_144];
        let sizes: Vec<usize> = (0..2000)
            .map(|i| if i < edges.len() { edges[i] } else { rng.log_range(1, 256 * 1024) as usize })
            .collect();
        let mut i = 0;
        while i < sizes.len() {
            // Bursts of up to 20 small messages in flight check ordering across frames and
            // records; large ones go lock-step.
            let burst = if sizes[i] < 4096 { 20.min(sizes.len() - i) } else { 1 };
            let mut expected = Vec::with_capacity(burst);
            for (j, &size) in sizes.iter().enumerate().skip(i).take(burst) {
                let msg = if j % 7 == 3 {
                    Message::Text(format!("{j}:").repeat(size.div_ceil(2)).chars().take(size).collect())
                } else {
                    let mut bytes = rng.bytes(size);
                    let tag = (j as u32).to_be_bytes();
                    let n = size.min(4);
                    bytes[..n].copy_from_slice(&tag[..n]);
                    Message::Binary(bytes)
                };
                ws.send(msg.clone()).unwrap();
                expected.push(msg);
            }
            for (k, want) in expected.iter().enumerate() {
                let got = next_data(&mut ws);
                assert!(got == *want, "message {} ({} bytes) came back different ({} bytes)", i + k, want.len(), got.len());
            }
            i += burst;
        }
        ws.close(None).unwrap();
        assert_eq!(origin.echoed(), 2000);
    }
}

per_driver! {
    fn five_hundred_concurrent_wss_connections_echo_fifty_messages_each_with_nothing_lost(setup) {
        const CONNS: usize = 500;
        const MESSAGES: usize = 50;
        const THREADS: usize = 10;
        let origin = WsOrigin::start();
        let https = Arc::new(Https::start("", &format!("\treverse_proxy {}\n", origin.addr), setup));
        let started = Instant::now();
        // Every thread opens its share, then all wait, so that 500 relays are live at once.
        let all_open = Arc::new(Barrier::new(THREADS));
        let workers: Vec<_> = (0..THREADS)
            .map(|t| {
                let https = https.clone();
                let all_open = all_open.clone();
                thread::spawn(move || {
                    let mut group: Vec<(usize, WebSocket<TlsClientStream>)> = (t..CONNS)
                        .step_by(THREADS)
                        .map(|c| (c, wss_connect(https.stream(), &https.host(), &format!("/echo/{c}"))))
                        .collect();
                    all_open.wait();
                    for round in 0..MESSAGES {
                        for (c, ws) in group.iter_mut() {
                            let mut msg = format!("{c}/{round}/").into_bytes();
                            msg.resize(16 + (*c * 31 + round * 17) % 1000, b'0' + (round % 10) as u8);
                            ws.send(Message::Binary(msg)).unwrap();
                        }
                        for (c, ws) in group.iter_mut() {
                            let Message::Binary(got) = next_data(ws) else { panic!("conn {c}: expected binary") };
                            assert!(got.starts_with(format!("{c}/{round}/").as_bytes()), "conn {c} round {round}: wrong or reordered message");
                            assert_eq!(got.len(), 16 + (*c * 31 + round * 17) % 1000);
                        }
                    }
                    for (_, ws) in group.iter_mut() {
                        ws.close(None).unwrap();
                    }
                    group.len()
                })
            })
            .collect();
        let done: usize = workers.into_iter().map(|w| w.join().expect("a client thread failed")).sum();
        assert_eq!(done, CONNS);
        assert_eq!(origin.echoed(), CONNS * MESSAGES, "echoes counted by the backend");
        assert_eq!(origin.handshakes().len(), CONNS);
        eprintln!("500 WSS connections, 25,000 echoes in {:?}", started.elapsed());
    }
}

per_driver! {
    fn upstream_failures_over_https_give_502_504_and_a_cut_connection_and_the_next_client_is_served(setup) {
        let origin = Origin::start("o");
        let dead = dead_port();
        let site = format!(
            "\thandle /down/* {{\n\t\treverse_proxy {dead}\n\t}}\n\
             \thandle {{\n\t\treverse_proxy {} {{\n\t\t\ttransport http {{\n\t\t\t\tresponse_header_timeout 1s\n\t\t\t}}\n\t\t}}\n\t}}\n",
            origin.addr
        );
        let https = Https::start("", &site, setup);

        // Nothing listening: 502 at once.
        let mut conn = https.conn();
        let t = Instant::now();
        let resp = conn.get(&https.host(), "/down/x");
        assert_eq!(resp.status, 502);
        assert!(t.elapsed() < Duration::from_secs(1), "502 took {:?}", t.elapsed());

        // No response head: 504 at response_header_timeout.
        let mut conn = https.conn();
        let t = Instant::now();
        let resp = conn.get(&https.host(), "/hang");
        let took = t.elapsed();
        assert_eq!(resp.status, 504);
        assert!(took >= Duration::from_millis(900) && took < Duration::from_secs(3), "504 after {took:?}");
        assert_eq!(origin.requests_to("/hang").len(), 1);

        // The upstream dies half-way through a 4 MB body: the client's TLS connection ends
        // without the body looking complete.
        let mut conn = https.conn();
        let len = 4_000_000u64;
        conn.send(format!("GET /close-mid-body/{len} HTTP/1.1\r\nHost: {}\r\n\r\n", https.host()).as_bytes());
        match conn.try_response("GET") {
            Err(ReadError::Closed { .. }) => {}
            Ok(resp) => panic!("a truncated body was presented as complete: {} of {len} bytes", resp.body_len),
            Err(e) => panic!("expected the connection to end: {}", describe(&e)),
        }

        let mut next = https.conn();
        let resp = next.get(&https.host(), "/bytes/100000");
        assert_eq!(resp.status, 200);
        assert_eq!(resp.body_sha256, payload::pattern_sha256(100_000));
    }
}

per_driver! {
    fn smuggling_attempts_over_https_get_400_and_a_close_and_the_next_request_is_served(setup) {
        let origin = Origin::start("o");
        let https = Https::start("", &format!("\treverse_proxy {}\n", origin.addr), setup);
        let host = https.host();
        let cases = [
            // Caddy answers this one and keeps the connection open (design notes).
            ("Content-Length and Transfer-Encoding", format!("POST /victim HTTP/1.1\r\nHost: {host}\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")),
            ("two differing Content-Lengths", format!("POST /victim HTTP/1.1\r\nHost: {host}\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nbody!")),
            ("bare LF in a header value", format!("GET /victim HTTP/1.1\r\nHost: {host}\r\nX-A: a\nb\r\n\r\n")),
        ];
        for (i, (name, request)) in cases.iter().enumerate() {
            if i == 0 && https.proxy.skip_on_caddy("Caddy answers a request with both Content-Length and Transfer-Encoding") {
                assert_eq!(https.conn().get(&host, "/after-0").status, 200);
                continue;
            }
            let mut conn = https.conn();
            conn.deadline_after = Duration::from_secs(5);
            conn.send_lenient(format!("{request}GET /smuggled-{i} HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes());
            match conn.try_response("POST") {
                Ok(resp) => {
                    assert_eq!(resp.status, 400, "{name}");
                    assert!(conn.closed_within(Duration::from_secs(3)), "{name}: connection left open after 400");
                }
                Err(e) => panic!("{name}: no response ({})", describe(&e)),
            }
            let resp = https.conn().get(&host, &format!("/after-{i}"));
            assert_eq!(resp.status, 200, "{name}: the next request");
        }
        let seen: Vec<String> = origin.requests().iter().map(|r| r.target.clone()).collect();
        assert!(seen.iter().all(|t| !t.contains("smuggled") && !t.contains("victim")), "reached the backend: {seen:?}");
        assert_eq!(seen, vec!["/after-0", "/after-1", "/after-2"]);
    }
}

const STALLED: usize = 200;

/// The first bytes of a ClientHello: a handshake record header announcing 512 bytes, the
/// handshake header and the client version. The proxy cannot finish parsing it.
const PARTIAL_HELLO: &[u8] = &[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03];

per_driver! {
    fn two_hundred_stalled_tls_handshakes_neither_delay_a_normal_client_nor_outlive_the_handshake_timeout(setup) {
        if target() == Target::Caddy {
            eprintln!("SKIPPED against Caddy: it has no TLS handshake timeout option");
            return;
        }
        let origin = Origin::start("o");
        let https = Https::start(
            "\tservers {\n\t\ttimeouts {\n\t\t\ttls_handshake 2s\n\t\t}\n\t}\n",
            &format!("\treverse_proxy {}\n", origin.addr),
            setup,
        );
        let started = Instant::now();
        let mut stalled: Vec<TcpStream> = (0..STALLED)
            .map(|_| {
                let mut s = TcpStream::connect_timeout(&https.proxy.addr(), Duration::from_secs(5)).unwrap();
                s.write_all(PARTIAL_HELLO).unwrap();
                s
            })
            .collect();

        // One more ClientHello byte on each every 100 ms (well inside the announced record),
        // so that only a deadline on the whole handshake, not an idle timer, can close them.
        let stop = Arc::new(AtomicBool::new(false));
        let trickler = {
            let stop = stop.clone();
            let mut writers: Vec<Option<TcpStream>> = stalled.iter().map(|s| Some(s.try_clone().unwrap())).collect();
            thread::spawn(move || {
                for _ in 0..100 {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    for w in writers.iter_mut() {
                        if w.as_mut().is_some_and(|s| s.write_all(&[0x42]).is_err()) {
                            *w = None;
                        }
                    }
                    thread::sleep(Duration::from_millis(100));
                }
            })
        };

        let mut worst = Duration::ZERO;
        for i in 0..10 {
            let t = Instant::now();
            let resp = https.conn().get(&https.host(), &format!("/normal/{i}"));
            assert_eq!(resp.status, 200);
            worst = worst.max(t.elapsed());
            thread::sleep(Duration::from_millis(100));
        }
        assert!(worst < Duration::from_secs(1), "a normal TLS client took {worst:?} among {STALLED} stalled handshakes");

        let deadline = started + Duration::from_secs(6);
        let mut open = 0;
        let mut first_closed_after = None;
        for s in &mut stalled {
            let mut buf = [0u8; 1024];
            let closed = loop {
                let now = Instant::now();
                if now >= deadline {
                    break false;
                }
                s.set_read_timeout(Some(deadline - now)).unwrap();
                match s.read(&mut buf) {
                    // An alert may come before the close.
                    Ok(n) if n > 0 => continue,
                    Ok(_) => break true,
                    Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => break false,
                    Err(_) => break true,
                }
            };
            if closed && first_closed_after.is_none() {
                first_closed_after = Some(started.elapsed());
            }
            if !closed {
                open += 1;
            }
        }
        stop.store(true, Ordering::SeqCst);
        trickler.join().unwrap();
        assert_eq!(open, 0, "{open} of {STALLED} stalled handshakes still open {:?} after they started", started.elapsed());
        // The first connection (opened at `started`) cannot have been closed before the
        // timeout; this is a lower bound that a loaded machine cannot break.
        let first = first_closed_after.unwrap();
        assert!(first >= Duration::from_millis(1800), "a stalled handshake was closed after only {first:?}");
        assert!(origin.requests_to("/normal/0").len() == 1);
    }
}

per_driver! {
    fn localhost_site_certificate_chains_to_the_local_root_in_storage_and_serves_the_seed_routes(setup) {
        if target() == Target::Caddy {
            // Caddy would try to install its local root into this machine's trust store.
            eprintln!("SKIPPED against Caddy: its local CA installs the root system-wide");
            return;
        }
        let auth = Origin::start_localhost("auth");
        let moshi = Origin::start_localhost("moshi");
        let storage = TempDir::new("localhost-storage");
        let caddyfile = format!(
            "{{\n\tauto_https disable_redirects\n\tstorage file_system {}\n}}\n\nlocalhost:$PORT {{\n{}}}\n",
            storage.path().display(),
            seed_handlers(auth.port(), moshi.port()),
        );
        let proxy = Proxy::start(&caddyfile, setup);
        let root_path = storage.path().join("pki/authorities/local/root.crt");
        assert!(root_path.is_file(), "no local root at {}", root_path.display());
        let trusting = client_config(&[root_from_pem_file(&root_path)]);

        // A client that trusts some other root refuses the certificate: the chain is real.
        let stranger = client_config(&[TestCa::new("stranger").root()]);
        let err = TlsClientStream::try_connect(proxy.addr(), "localhost", &stranger)
            .err()
            .expect("a client trusting another root accepted the local CA's certificate");
        assert!(err.to_string().contains("UnknownIssuer"), "{err}");

        let mut conn = https_conn(proxy.addr(), "localhost", &trusting);
        let chain = conn.stream.peer_chain();
        assert!(!chain.is_empty());
        check_seed_routes(&mut conn, &format!("localhost:{}", proxy.port()), &auth, &moshi);
    }
}
