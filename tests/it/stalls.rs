//! Stall timeouts on the client side: a request body that stops gets 408, a client that stops
//! reading a response or a WebSocket is closed, while slow but steady transfers are never cut;
//! `stream_timeout` closes a WebSocket at a frame boundary; a connection closed with a request
//! body still coming lingers, so the client reads the answer instead of a reset.
//!
//! Limits here are a few hundred milliseconds so the tests are quick; the defaults are in
//! `config::limits` (read_body and write 60 s).

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use tungstenite::Message;

use crate::support::client::{find, ClientStream};
use crate::support::origin::Origin;
use crate::support::payload::{pattern_sha256, sha256_hex, Hasher};
use crate::support::ws::{ws_connect, WsOrigin};
use crate::support::{per_driver, Proxy};

fn caddyfile(timeouts: &str, site: &str) -> String {
    format!("{{\n\tservers {{\n\t\ttimeouts {{\n\t\t\t{timeouts}\n\t\t}}\n\t}}\n}}\n\n$SITE {{\n{site}}}\n")
}

fn wait_until(within: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while !done() {
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(10));
    }
    true
}

/// Read until the peer closes (EOF or reset); panics if it is still open after `within`.
/// Returns the bytes that came.
fn read_until_closed(stream: &mut impl Read, tcp: &TcpStream, within: Duration) -> u64 {
    let deadline = Instant::now() + within;
    let mut total = 0u64;
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "still open after {within:?} ({total} bytes read)");
        tcp.set_read_timeout(Some(left)).unwrap();
        match stream.read(&mut buf) {
            Ok(0) => return total,
            Ok(n) => total += n as u64,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                panic!("still open after {within:?} ({total} bytes read)")
            }
            Err(_) => return total,
        }
    }
}

per_driver! {
    fn a_request_body_that_stalls_gets_408_and_its_upstream_connection_is_closed(setup) {
        let origin = Origin::start("o");
        let proxy = Proxy::start(&caddyfile("read_body 500ms", &format!("\treverse_proxy {}\n", origin.addr)), setup);
        if proxy.skip_on_caddy("Caddy's read_body is a deadline on the whole request, not a stall timeout") {
            return;
        }
        let mut conn = proxy.connect();
        let started = Instant::now();
        conn.send(
            format!("POST /sha256 HTTP/1.1\r\nHost: {}\r\nContent-Length: 1000\r\n\r\n{}", proxy.host(), "x".repeat(100))
                .as_bytes(),
        );
        let resp = conn.response("POST");
        let took = started.elapsed();
        assert_eq!(resp.status, 408);
        assert_eq!(resp.header("connection"), Some("close"));
        assert!(took >= Duration::from_millis(450) && took < Duration::from_secs(3), "answered after {took:?}");
        assert!(conn.closed_within(Duration::from_secs(7)), "the connection stayed open");
        assert!(
            wait_until(Duration::from_secs(3), || origin.open_connections() == 0),
            "the upstream connection that carried part of the body was kept"
        );
    }
}

per_driver! {
    fn a_slow_but_steady_upload_is_never_cut_by_read_body(setup) {
        let origin = Origin::start("o");
        let proxy = Proxy::start(&caddyfile("read_body 400ms", &format!("\treverse_proxy {}\n", origin.addr)), setup);
        if proxy.skip_on_caddy("Caddy's read_body cuts a 2 s upload at 400 ms") {
            return;
        }
        let body: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8).collect();
        let mut conn = proxy.connect();
        let started = Instant::now();
        conn.send(format!("POST /sha256 HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\n\r\n", proxy.host(), body.len()).as_bytes());
        // 20 pieces, 100 ms apart: 2 s in all, never 400 ms without a byte.
        for piece in body.chunks(1000) {
            thread::sleep(Duration::from_millis(100));
            conn.send(piece);
        }
        let resp = conn.response("POST");
        assert!(started.elapsed() >= Duration::from_secs(2));
        assert_eq!(resp.status, 200);
        assert_eq!(resp.text(), format!("{} {}", body.len(), sha256_hex(&body)));
        // Kept alive: the stall timeout is per body, not per connection.
        assert_eq!(conn.get(&proxy.host(), "/after").status, 200);
    }
}

per_driver! {
    fn a_client_that_stops_reading_a_large_response_is_closed_after_the_write_timeout(setup) {
        let origin = Origin::start("o");
        let proxy = Proxy::start(&caddyfile("write 500ms", &format!("\treverse_proxy {}\n", origin.addr)), setup);
        if proxy.skip_on_caddy("Caddy's write timeout is a deadline on the whole response") {
            return;
        }
        let mut stream = proxy.stream();
        stream
            .write_all(format!("GET /bytes/2000000000 HTTP/1.1\r\nHost: {}\r\n\r\n", proxy.host()).as_bytes())
            .unwrap();
        stream.flush().unwrap();
        assert!(
            wait_until(Duration::from_secs(3), || origin.open_connections() == 1),
            "the request never reached the upstream"
        );
        let started = Instant::now();
        // Read nothing: once the socket buffers are full the proxy waits for a writability
        // that never comes, gives up after 500 ms, and lets go of both connections.
        assert!(
            wait_until(Duration::from_secs(5), || origin.open_connections() == 0),
            "the upstream connection is still open {:?} later",
            started.elapsed()
        );
        let tcp = stream.tcp().try_clone().unwrap();
        let got = read_until_closed(&mut stream, &tcp, Duration::from_secs(5));
        assert!(got < 2_000_000_000, "the whole body arrived: {got}");
    }
}

/// Read a Content-Length response slowly: `piece` bytes every `pause`. Returns the status line
/// and the body's length and SHA-256.
fn read_slowly(stream: &mut ClientStream, piece: usize, pause: Duration) -> (String, u64, String) {
    stream.set_read_timeout(Duration::from_secs(10));
    let mut head = Vec::new();
    let mut buf = vec![0u8; piece];
    let head_end = loop {
        let n = stream.read(&mut buf).unwrap();
        assert!(n > 0, "closed before the response head");
        head.extend_from_slice(&buf[..n]);
        if let Some(end) = find(&head, b"\r\n\r\n") {
            break end + 4;
        }
    };
    let text = String::from_utf8_lossy(&head[..head_end]).into_owned();
    let length: u64 = text
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse().unwrap())
        })
        .expect("a Content-Length");
    let mut hasher = Hasher::default();
    hasher.update(&head[head_end..]);
    while hasher.len < length {
        thread::sleep(pause);
        let want = piece.min((length - hasher.len) as usize);
        match stream.read(&mut buf[..want]) {
            Ok(0) | Err(_) => break,
            Ok(n) => hasher.update(&buf[..n]),
        }
    }
    let len = hasher.len;
    (text.lines().next().unwrap_or("").to_owned(), len, hasher.finish())
}

per_driver! {
    fn a_slow_but_steady_reader_gets_the_whole_response(setup) {
        let origin = Origin::start("o");
        let proxy = Proxy::start(&caddyfile("write 300ms", &format!("\treverse_proxy {}\n", origin.addr)), setup);
        if proxy.skip_on_caddy("Caddy's write timeout cuts a 2 s download at 300 ms") {
            return;
        }
        let mut stream = proxy.stream();
        // A small receive buffer, so that the proxy's writes really wait on this reader.
        socket2::SockRef::from(stream.tcp()).set_recv_buffer_size(16 * 1024).unwrap();
        let len = 2_000_000u64;
        stream.write_all(format!("GET /bytes/{len} HTTP/1.1\r\nHost: {}\r\n\r\n", proxy.host()).as_bytes()).unwrap();
        stream.flush().unwrap();
        let started = Instant::now();
        // 32 KiB every 15 ms: about 2 MB/s, so 1 s or more, with no 300 ms pause anywhere.
        let (status, got, sha) = read_slowly(&mut stream, 32 * 1024, Duration::from_millis(15));
        assert!(status.contains(" 200 "), "{status}");
        assert_eq!((got, sha), (len, pattern_sha256(len)));
        assert!(started.elapsed() >= Duration::from_millis(800), "too fast to test anything: {:?}", started.elapsed());
    }
}

per_driver! {
    fn a_websocket_client_that_stops_reading_is_closed_after_the_write_timeout(setup) {
        let ws_origin = WsOrigin::start();
        let proxy = Proxy::start(&caddyfile("write 500ms", &format!("\treverse_proxy {}\n", ws_origin.addr)), setup);
        if proxy.skip_on_caddy("Caddy has no write-stall timeout for WebSockets") {
            return;
        }
        // The origin pushes ~50 MB before reading anything; the client reads nothing.
        let mut ws = ws_connect(proxy.stream(), &proxy.host(), "/push?n=100000");
        assert!(
            wait_until(Duration::from_secs(6), || ws_origin.finished() == 1),
            "the upstream side of the relay is still open"
        );
        let tcp = ws.get_ref().tcp().try_clone().unwrap();
        read_until_closed(ws.get_mut(), &tcp, Duration::from_secs(5));
    }
}

per_driver! {
    fn a_busy_websocket_that_keeps_reading_outlives_the_write_timeout(setup) {
        let ws_origin = WsOrigin::start();
        let proxy = Proxy::start(&caddyfile("write 300ms", &format!("\treverse_proxy {}\n", ws_origin.addr)), setup);
        if proxy.skip_on_caddy("the test checks ringproxy's write timeout") {
            return;
        }
        let mut ws = ws_connect(proxy.stream(), &proxy.host(), "/echo");
        // Silent for longer than the write timeout: nothing is being written, nothing stalls.
        thread::sleep(Duration::from_millis(700));
        for i in 0..5 {
            ws.send(Message::Text(format!("still here {i}"))).unwrap();
            assert_eq!(ws.read().unwrap(), Message::Text(format!("still here {i}")));
        }
    }
}

per_driver! {
    fn stream_timeout_closes_a_websocket_with_1001_at_a_frame_boundary_on_both_sides(setup) {
        let ws_origin = WsOrigin::start();
        let site = format!("\treverse_proxy {} {{\n\t\tstream_timeout 1s\n\t}}\n", ws_origin.addr);
        let proxy = Proxy::start(&caddyfile("write 10s", &site), setup);
        if proxy.skip_on_caddy("Caddy 2.6.2 has no stream_timeout") {
            return;
        }
        let mut ws = ws_connect(proxy.stream(), &proxy.host(), "/echo");
        let started = Instant::now();
        ws.send(Message::Text("before".into())).unwrap();
        assert_eq!(ws.read().unwrap(), Message::Text("before".into()));
        // A 256 KiB frame trickled across the deadline still arrives whole.
        thread::sleep(Duration::from_millis(800));
        let payload: Vec<u8> = (0..256 * 1024).map(|i| (i % 251) as u8).collect();
        let mut frame = vec![0x82, 0xff];
        frame.extend_from_slice(&(payload.len() as u64).to_be_bytes());
        let mask = [9u8, 8, 7, 6];
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        for piece in frame.chunks(32 * 1024) {
            ws.get_mut().write_all(piece).unwrap();
            ws.get_mut().flush().unwrap();
            thread::sleep(Duration::from_millis(50));
        }
        let mut echoed_big = false;
        let code = loop {
            match ws.read() {
                Ok(Message::Binary(data)) => {
                    assert_eq!(data, payload, "the frame in flight arrived cut or changed");
                    echoed_big = true;
                }
                Ok(Message::Close(frame)) => break frame.map(|f| u16::from(f.code)),
                Ok(other) => panic!("unexpected {other:?}"),
                Err(e) => panic!("no close frame: {e}"),
            }
        };
        assert_eq!(code, Some(1001));
        assert!(started.elapsed() >= Duration::from_millis(950), "closed early: {:?}", started.elapsed());
        assert!(wait_until(Duration::from_secs(3), || !ws_origin.close_codes().is_empty()));
        assert_eq!(ws_origin.close_codes(), vec![1001], "the upstream's close frame");
        assert_eq!(ws_origin.echoed(), 2, "the upstream did not get the whole frame in flight");
        let _ = echoed_big;
    }
}

per_driver! {
    fn an_answer_to_a_request_whose_body_is_still_coming_reaches_the_client_before_the_close(setup) {
        // The route answers without reading the 10 MB body; the client keeps uploading while
        // it reads the 200 KB answer. Closing at once would
        // reset the connection and drop the part of the answer still queued.
        let answer = "r".repeat(200_000);
        let proxy = Proxy::start(&caddyfile("write 10s", &format!("\trespond \"{answer}\" 200\n")), setup);
        let mut stream = proxy.stream();
        let head = format!("POST /upload HTTP/1.1\r\nHost: {}\r\nContent-Length: 10000000\r\n\r\n", proxy.host());
        stream.write_all(head.as_bytes()).unwrap();
        stream.flush().unwrap();
        // One thread, so the TLS leg sends real records: a piece of body, then whatever has
        // come back, until the answer is complete or the connection ends.
        let piece = vec![b'u'; 16 * 1024];
        let mut received = Vec::new();
        let mut buf = vec![0u8; 16 * 1024];
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut sending = true;
        // Read nothing at first: the proxy has answered and closed before the client reads,
        // with more of the answer queued than the client's receive buffer holds.
        let reading_from = Instant::now() + Duration::from_millis(300);
        stream.tcp().set_write_timeout(Some(Duration::from_millis(20))).unwrap();
        let mut ended = None;
        while Instant::now() < deadline {
            if sending {
                // A send buffer that stays full (the proxy is busy answering) only skips a
                // round: the client must get back to reading, or the two would wait on each
                // other. rustls keeps what it could not send, so the record stream stays whole.
                match stream.write_all(&piece).and_then(|()| stream.flush()) {
                    Ok(()) => {}
                    Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::WriteZero) => {}
                    Err(_) => sending = false,
                }
            }
            if Instant::now() < reading_from {
                thread::sleep(Duration::from_millis(20));
                continue;
            }
            stream.set_read_timeout(Duration::from_millis(20));
            match stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => received.extend_from_slice(&buf[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) => {
                    ended = Some(e);
                    break;
                }
            }
            if let Some(end) = find(&received, b"\r\n\r\n") {
                if received.len() >= end + 4 + answer.len() {
                    break;
                }
            }
        }
        let end = find(&received, b"\r\n\r\n").unwrap_or_else(|| panic!("no answer head ({ended:?})"));
        let status = String::from_utf8_lossy(&received[..end]).lines().next().unwrap_or("").to_owned();
        let got = (received.len() - end - 4) as u64;
        assert!(status.contains(" 200 "), "{status}");
        assert_eq!(got, answer.len() as u64, "the answer was cut ({ended:?})");
    }
}
