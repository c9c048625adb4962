//! WebSocket through the proxy: the upgrade itself, byte-exact ordered echo of mixed sizes,
//! small frames relayed without delay, server-initiated messages, the close handshake from
//! either side, half-close, and many concurrent connections. Every test runs over ws and wss on
//! both drivers.

use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::CloseFrame;
use tungstenite::{Message, WebSocket};

use crate::support::client::{ClientStream, HttpConn};
use crate::support::net::IO_TIMEOUT;
use crate::support::payload::{self, Rng};
use crate::support::per_driver;
use crate::support::ws::{ws_connect, WsOrigin};

/// Read the next data message, skipping control frames.
fn next_data(ws: &mut WebSocket<ClientStream>) -> Message {
    loop {
        let msg = ws.read().unwrap_or_else(|e| panic!("WebSocket read: {e}"));
        if matches!(msg, Message::Text(_) | Message::Binary(_) | Message::Close(_)) {
            return msg;
        }
    }
}

per_driver! {
    fn upgrade_is_answered_101_through_the_proxy(setup) {
        let origin = WsOrigin::start();
        let proxy = setup.proxy_to(origin.addr);
        let mut conn = proxy.connect();
        conn.send(
            format!(
                "GET /chat HTTP/1.1\r\nHost: {}\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\
                 Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
                proxy.host()
            )
            .as_bytes(),
        );
        let resp = conn.response("GET");
        assert_eq!(resp.status, 101);
        // RFC 6455 §1.3's worked example: this key must yield this accept value.
        assert_eq!(resp.header("sec-websocket-accept"), Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="));
        assert!(resp.header("upgrade").is_some_and(|v| v.eq_ignore_ascii_case("websocket")));
        assert!(resp.header("connection").is_some_and(|v| v.to_ascii_lowercase().contains("upgrade")));
        let hs = &origin.handshakes()[0];
        assert_eq!(hs.path, "/chat");
        assert_eq!(hs.header("x-forwarded-for"), Some("127.0.0.1"));
        assert!(hs.header("upgrade").is_some_and(|v| v.eq_ignore_ascii_case("websocket")));
        // A masked "hi" text frame, then its unmasked echo comes back over the relay.
        conn.send(&[0x81, 0x82, 1, 2, 3, 4, b'h' ^ 1, b'i' ^ 2]);
        assert_eq!(conn.read_raw(4, IO_TIMEOUT), [0x81, 0x02, b'h', b'i']);
    }
}

per_driver! {
    fn two_thousand_messages_from_1_byte_to_256_kib_echo_byte_exact_in_order(setup) {
        let origin = WsOrigin::start();
        let proxy = setup.proxy_to(origin.addr);
        let mut ws = ws_connect(proxy.stream(), &proxy.host(), "/echo");
        let mut rng = Rng::new(2000);
        // Sizes around the frame-length encodings and the 16 KiB TLS record size.
        let edges = [1usize, 2, 125, 126, 127, 16_383, 16_384, 16_385, 65_535, 65_536, 65_537, 131_072, 262_144];
        let sizes: Vec<usize> = (0..2000)
            .map(|i| if i < edges.len() { edges[i] } else { rng.log_range(1, 256 * 1024) as usize })
            .collect();
        let mut sent_total = 0;
        let mut i = 0;
        while i < sizes.len() {
            // Alternate lock-step exchanges with bursts of up to 20 small messages in flight,
            // so that ordering across frames is checked too.
            let burst = if sizes[i] < 4096 { 20.min(sizes.len() - i) } else { 1 };
            let mut expected = Vec::new();
            for j in i..i + burst {
                let msg = if j % 7 == 3 {
                    Message::Text(format!("{j}:").repeat(sizes[j].div_ceil(6)).chars().take(sizes[j].max(1)).collect())
                } else {
                    let mut bytes = rng.bytes(sizes[j]);
                    bytes[..sizes[j].min(4)].copy_from_slice(&(j as u32).to_be_bytes()[..sizes[j].min(4)]);
                    Message::Binary(bytes)
                };
                sent_total += msg.len();
                ws.send(msg.clone()).unwrap();
                expected.push(msg);
            }
            for (k, want) in expected.iter().enumerate() {
                let got = next_data(&mut ws);
                assert!(
                    got == *want,
                    "message {} ({} bytes) came back different ({} bytes)", i + k, want.len(), got.len()
                );
            }
            i += burst;
        }
        assert!(sent_total > 10 << 20, "sizes should span up to 256 KiB (sent {sent_total} bytes)");
        ws.close(None).unwrap();
        assert_eq!(origin.echoed(), 2000);
    }
}

per_driver! {
    fn small_frames_are_relayed_at_once_in_both_directions(setup) {
        let origin = WsOrigin::start();
        let proxy = setup.proxy_to(origin.addr);
        let mut ws = ws_connect(proxy.stream(), &proxy.host(), "/audio");
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
        eprintln!("echo of a 960-byte frame: median {median:?}, p99 {:?}", took[took.len() * 99 / 100]);
        assert!(median < Duration::from_millis(15), "median echo {median:?}: frames are being held back");
        ws.close(None).unwrap();
    }
}

per_driver! {
    fn server_initiated_messages_reach_the_client(setup) {
        let origin = WsOrigin::start();
        let proxy = setup.proxy_to(origin.addr);
        let mut ws = ws_connect(proxy.stream(), &proxy.host(), "/push?n=300");
        // The client says nothing: these come from the server on its own.
        for i in 0..300 {
            let Message::Binary(bytes) = next_data(&mut ws) else { panic!("expected binary push {i}") };
            let prefix = format!("push {i} ");
            assert!(bytes.starts_with(prefix.as_bytes()), "push {i} out of order");
            assert_eq!(bytes.len(), prefix.len() + i % 1000);
        }
        ws.send(Message::Text("still two-way".into())).unwrap();
        assert_eq!(next_data(&mut ws), Message::Text("still two-way".into()));
    }
}

/// After the close handshake the proxy must close the client's TCP connection too.
fn expect_tcp_eof(ws: &mut WebSocket<ClientStream>) {
    let stream = ws.get_mut();
    stream.set_read_timeout(Duration::from_secs(5));
    let mut buf = [0u8; 64];
    match std::io::Read::read(stream, &mut buf) {
        Ok(0) => {}
        Ok(n) => panic!("{n} unexpected bytes after the close handshake"),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("connection not closed after the close handshake: {e}"),
    }
}

per_driver! {
    fn client_initiated_close_handshake_completes(setup) {
        let origin = WsOrigin::start();
        let proxy = setup.proxy_to(origin.addr);
        let mut ws = ws_connect(proxy.stream(), &proxy.host(), "/echo");
        ws.send(Message::Text("before close".into())).unwrap();
        assert_eq!(next_data(&mut ws), Message::Text("before close".into()));
        ws.close(Some(CloseFrame { code: CloseCode::Normal, reason: "bye".into() })).unwrap();
        let reply = next_data(&mut ws);
        let Message::Close(Some(frame)) = reply else { panic!("expected the server's close frame, got {reply:?}") };
        assert_eq!(frame.code, CloseCode::Normal);
        assert!(matches!(ws.read(), Err(tungstenite::Error::ConnectionClosed)));
        expect_tcp_eof(&mut ws);
        let deadline = Instant::now() + Duration::from_secs(5);
        while origin.finished() < 1 && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(origin.finished(), 1, "the backend saw the close handshake complete");
    }
}

per_driver! {
    fn server_initiated_close_handshake_completes(setup) {
        let origin = WsOrigin::start();
        let proxy = setup.proxy_to(origin.addr);
        let mut ws = ws_connect(proxy.stream(), &proxy.host(), "/close?code=4001");
        let msg = next_data(&mut ws);
        let Message::Close(Some(frame)) = msg else { panic!("expected a close frame, got {msg:?}") };
        assert_eq!(frame.code, CloseCode::from(4001));
        assert_eq!(frame.reason, "server closing");
        // tungstenite has queued the reply; reading flushes it and sees the end.
        assert!(matches!(ws.read(), Err(tungstenite::Error::ConnectionClosed)));
        expect_tcp_eof(&mut ws);
    }
}

/// Upgrade on `/halfclose`, send 1 MB, shut down our write side: the backend answers only once
/// it has read EOF, so its answer proves the half-close went through and that the other
/// direction stayed open.
pub(crate) fn half_close_reaches_the_backend_and_its_answer_still_arrives(
    proxy: &crate::support::proxy::Proxy,
) {
    let mut conn: HttpConn = proxy.connect();
    conn.send(
        format!(
            "GET /halfclose HTTP/1.1\r\nHost: {}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
                 Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
            proxy.host()
        )
        .as_bytes(),
    );
    assert_eq!(conn.response("GET").status, 101);
    let data = payload::pattern(1_000_000);
    for piece in data.chunks(64 * 1024) {
        conn.send(piece);
    }
    conn.stream.shutdown_write().unwrap();
    let answer = conn.expect_closed(IO_TIMEOUT);
    assert_eq!(
        String::from_utf8_lossy(&answer),
        format!("{} {}\n", data.len(), payload::sha256_hex(&data))
    );
}

per_driver! {
    fn half_close_from_the_client_reaches_the_backend_and_its_answer_still_arrives(setup) {
        let origin = WsOrigin::start();
        let proxy = setup.proxy_to(origin.addr);
        if proxy.skip_on_caddy("Caddy closes both directions of a relay as soon as one side ends") {
            return;
        }
        half_close_reaches_the_backend_and_its_answer_still_arrives(&proxy);
    }
}

per_driver! {
    fn five_hundred_concurrent_websockets_echo_fifty_messages_each_with_nothing_lost(setup) {
        const CONNS: usize = 500;
        const MESSAGES: usize = 50;
        const THREADS: usize = 10;
        let origin = WsOrigin::start();
        let proxy = setup.proxy_to(origin.addr);
        let proxy = Arc::new(proxy);
        let started = Instant::now();
        // Every thread opens its share (TLS handshakes in parallel), then all wait, so that all
        // 500 relays are live at the same time.
        let all_open = Arc::new(Barrier::new(THREADS + 1));
        let workers: Vec<_> = (0..THREADS)
            .map(|t| {
                let proxy = proxy.clone();
                let all_open = all_open.clone();
                thread::spawn(move || {
                    // A thread that fails to open still reaches the barrier, so that none waits
                    // forever, then fails.
                    let opened = panic::catch_unwind(AssertUnwindSafe(|| {
                        (t..CONNS)
                            .step_by(THREADS)
                            .map(|c| (c, ws_connect(proxy.stream(), &proxy.host(), &format!("/echo/{c}"))))
                            .collect::<Vec<(usize, WebSocket<ClientStream>)>>()
                    }));
                    all_open.wait();
                    let mut group = opened.unwrap_or_else(|e| panic::resume_unwind(e));
                    for round in 0..MESSAGES {
                        for (c, ws) in group.iter_mut() {
                            let len = 16 + (*c * 31 + round * 17) % 1000;
                            let mut msg = format!("{c}/{round}/").into_bytes();
                            msg.resize(len, b'0' + (round % 10) as u8);
                            ws.send(Message::Binary(msg)).unwrap();
                        }
                        for (c, ws) in group.iter_mut() {
                            let Message::Binary(got) = next_data(ws) else { panic!("conn {c}: expected binary") };
                            let prefix = format!("{c}/{round}/");
                            assert!(got.starts_with(prefix.as_bytes()), "conn {c} round {round}: wrong or reordered message");
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
        all_open.wait();
        let opened = started.elapsed();
        let done: usize = workers.into_iter().map(|w| w.join().expect("a client thread failed")).sum();
        assert_eq!(done, CONNS);
        assert_eq!(origin.echoed(), CONNS * MESSAGES, "echoes counted by the backend");
        assert_eq!(origin.handshakes().len(), CONNS);
        eprintln!("500 WebSockets opened in {opened:?}, 25,000 echoes done in {:?}", started.elapsed());
    }
}

per_driver! {
    fn upgrade_refused_by_the_backend_is_a_normal_response(setup) {
        // A plain HTTP origin ignores the Upgrade request and answers 200.
        let origin = crate::support::origin::Origin::start("plain");
        let proxy = setup.proxy_to(origin.addr);
        let mut conn = proxy.connect();
        conn.send(
            format!(
                "GET /not-ws HTTP/1.1\r\nHost: {}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
                 Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
                proxy.host()
            )
            .as_bytes(),
        );
        let resp = conn.response("GET");
        assert_eq!(resp.status, 200);
        assert_eq!(resp.text(), "plain GET /not-ws");
        // The connection is still HTTP: the next request is answered as one.
        let next = conn.get(&proxy.host(), "/after");
        assert_eq!(next.text(), "plain GET /after");
    }
}
