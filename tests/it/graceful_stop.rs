//! Graceful stop: listeners close at once, in-flight requests finish, idle connections close,
//! and when `grace_period` is over every live WebSocket gets a 1001 close frame on both sides,
//! at a frame boundary, before the proxy lets go.

use std::io::Read;
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
