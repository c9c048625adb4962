//! Graceful stop: listeners close at once, in-flight requests finish, idle connections close,
//! and when `grace_period` is over every live WebSocket gets a 1001 close frame on both sides,
//! at a frame boundary, before the proxy lets go.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::Message;

use crate::support::origin::Origin;
use crate::support::ws::{ws_connect, WsOrigin};
use crate::support::{per_driver, Proxy};

per_driver! {
    fn a_graceful_stop_finishes_requests_refuses_connections_and_closes_websockets_with_1001_on_both_sides(setup) {
        let origin = Origin::start("o");
        let ws_origin = WsOrigin::start();
        let caddyfile = format!(
            "{{\n\tgrace_period 1s\n}}\n\n$SITE {{\n\thandle /ws/* {{\n\t\treverse_proxy {}\n\t}}\n\thandle {{\n\t\treverse_proxy {}\n\t}}\n}}\n",
            ws_origin.addr, origin.addr
        );
        let mut proxy = Proxy::start(&caddyfile, setup);
        if proxy.skip_on_caddy("Caddy 2.6 waits forever by default and closes only the client side") {
            return;
        }
        let mut sockets: Vec<_> = (0..10)
            .map(|i| {
                let mut ws = ws_connect(proxy.stream(), &proxy.host(), &format!("/ws/{i}"));
                ws.send(Message::Binary(vec![i; 100])).unwrap();
                assert_eq!(ws.read().unwrap(), Message::Binary(vec![i; 100]));
                ws
            })
            .collect();
        let mut idle = proxy.connect();
        assert_eq!(idle.get(&proxy.host(), "/warm").status, 200);
        let mut slow = proxy.connect();
        slow.send(format!("GET /drip?n=10&ms=50 HTTP/1.1\r\nHost: {}\r\n\r\n", proxy.host()).as_bytes());
        thread::sleep(Duration::from_millis(100));

        let addr = proxy.addr();
        let server = proxy.take_server();
        let started = Instant::now();
        let stopping = thread::spawn(move || server.shutdown());
        thread::sleep(Duration::from_millis(150));

        assert!(TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err(), "a stopping proxy accepted a connection");
        let mut byte = [0u8; 1];
        idle.stream.set_read_timeout(Duration::from_secs(2));
        assert!(matches!(idle.stream.read(&mut byte), Ok(0)), "the idle keep-alive connection was not closed");
        let dripped = slow.response("GET");
        assert_eq!(dripped.text(), "abcdefghij", "the in-flight response was cut");
        // Its head went out before the stop; the connection ends after it.
        assert!(slow.closed_within(Duration::from_secs(2)), "the connection stayed open after its response");

        for (i, ws) in sockets.iter_mut().enumerate() {
            match ws.read() {
                Ok(Message::Close(Some(frame))) => assert_eq!(frame.code, CloseCode::Away, "socket {i}"),
                other => panic!("socket {i}: expected a 1001 close frame, got {other:?}"),
            }
        }
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(900), "WebSockets closed after only {took:?} of a 1 s grace period");
        stopping.join().unwrap();
        let stopped = started.elapsed();
        assert!(stopped < Duration::from_millis(2500), "the stop took {stopped:?} (grace 1 s + 1 s at most)");
        let deadline = Instant::now() + Duration::from_secs(5);
        while ws_origin.close_codes().len() < 10 && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(ws_origin.close_codes(), vec![1001; 10], "the upstream side's close frames");
    }
}

per_driver! {
    fn a_frame_in_flight_when_the_grace_period_ends_is_finished_before_the_1001_close(setup) {
        let ws_origin = WsOrigin::start();
        let caddyfile = format!("{{\n\tgrace_period 500ms\n}}\n\n$SITE {{\n\treverse_proxy {}\n}}\n", ws_origin.addr);
        let mut proxy = Proxy::start(&caddyfile, setup);
        if proxy.skip_on_caddy("Caddy does not close WebSockets at a frame boundary") {
            return;
        }
        let mut ws = ws_connect(proxy.stream(), &proxy.host(), "/big");
        let server = proxy.take_server();
        let stopping = thread::spawn(move || server.shutdown());
        // A 256 KiB frame trickled from just before the grace period ends to well after it:
        // the relay must pass all of it, then close.
        thread::sleep(Duration::from_millis(400));
        let payload: Vec<u8> = (0..256 * 1024).map(|i| (i % 251) as u8).collect();
        let mut frame = vec![0x82, 0xff];
        frame.extend_from_slice(&(payload.len() as u64).to_be_bytes());
        let mask = [7u8, 1, 2, 3];
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        let raw = ws.get_mut();
        for piece in frame.chunks(16 * 1024) {
            raw.write_all(piece).unwrap();
            raw.flush().unwrap();
            thread::sleep(Duration::from_millis(30));
        }
        // The client's own direction answers the close; the upstream got the whole frame first.
        let deadline = Instant::now() + Duration::from_secs(5);
        while ws_origin.close_codes().is_empty() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(ws_origin.echoed(), 1, "the frame in flight did not reach the upstream whole");
        assert_eq!(ws_origin.close_codes(), vec![1001]);
        stopping.join().unwrap();
    }
}
