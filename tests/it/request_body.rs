//! `request_body { max_size }`: a body over the limit gets 413 and ends the connection. A
//! Content-Length over it is refused before the upstream sees a byte; a chunked body is cut
//! where it crosses the limit, so the upstream never receives more than `max_size` bytes of
//! it. Bodies within the limit, and routes the limit does not cover, are untouched.

use std::io::Read;
use std::net::TcpListener;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use crate::support::origin::Origin;
use crate::support::per_driver;
use crate::support::Proxy;

/// A site whose `/upload/*` takes bodies up to 10 bytes and everything else any size.
fn limited_site(upstream: impl std::fmt::Display) -> String {
    format!(
        "$SITE {{\n\trequest_body /upload/* {{\n\t\tmax_size 10\n\t}}\n\treverse_proxy {upstream}\n}}\n"
    )
}

per_driver! {
    fn a_declared_length_over_max_size_gets_413_before_the_upstream_sees_anything(setup) {
        let origin = Origin::start("o");
        let proxy = Proxy::start(&limited_site(origin.addr), setup);
        let mut conn = proxy.connect();
        let body = "x".repeat(11);
        conn.send(format!("POST /upload/a HTTP/1.1\r\nHost: {}\r\nContent-Length: 11\r\n\r\n{body}", proxy.host()).as_bytes());
        let resp = conn.response("POST");
        if proxy.skip_on_caddy("Caddy sends the head and max_size bytes on, then 2.6 answers 502") {
            return;
        }
        assert_eq!(resp.status, 413);
        assert_eq!(resp.header("connection"), Some("close"));
        conn.expect_closed(Duration::from_secs(5));
        assert_eq!(origin.connections(), 0, "the upstream was never dialled");
    }
}

per_driver! {
    fn bodies_within_max_size_and_routes_it_does_not_cover_are_forwarded(setup) {
        let origin = Origin::start("o");
        let proxy = Proxy::start(&limited_site(origin.addr), setup);
        let mut conn = proxy.connect();
        let host = proxy.host();
        conn.send(format!("POST /upload/a HTTP/1.1\r\nHost: {host}\r\nContent-Length: 10\r\n\r\n0123456789").as_bytes());
        assert_eq!(conn.response("POST").text(), "0123456789");
        let chunked = "POST /upload/b HTTP/1.1\r\nHost: HOST\r\nTransfer-Encoding: chunked\r\n\r\n\
                       5\r\nabcde\r\n5\r\nfghij\r\n0\r\n\r\n".replace("HOST", &host);
        conn.send(chunked.as_bytes());
        assert_eq!(conn.response("POST").text(), "abcdefghij", "exactly max_size is allowed");
        let big = "y".repeat(1000);
        conn.send(format!("POST /other HTTP/1.1\r\nHost: {host}\r\nContent-Length: 1000\r\n\r\n{big}").as_bytes());
        assert_eq!(conn.response("POST").text(), big);
        let bodies: Vec<usize> = origin.requests().iter().map(|r| r.body.len()).collect();
        assert_eq!(bodies, [10, 10, 1000]);
    }
}

per_driver! {
    fn a_chunked_body_crossing_max_size_is_cut_before_the_upstream_gets_more(setup) {
        // A raw upstream: it records every byte it is sent, however the body ends.
        let upstream = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = upstream.local_addr().unwrap();
        let (seen_tx, seen) = mpsc::channel();
        thread::spawn(move || {
            let (mut conn, _) = upstream.accept().unwrap();
            conn.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let mut got = Vec::new();
            let _ = conn.read_to_end(&mut got);
            seen_tx.send(got).unwrap();
        });
        let proxy = Proxy::start(&limited_site(addr), setup);
        let mut conn = proxy.connect();
        conn.send(format!("POST /upload/c HTTP/1.1\r\nHost: {}\r\nTransfer-Encoding: chunked\r\n\r\n8\r\naaaaaaaa\r\n", proxy.host()).as_bytes());
        // The second chunk, sent after the first has gone on, takes the body to 16 bytes.
        thread::sleep(Duration::from_millis(200));
        conn.send(b"8\r\nbbbbbbbb\r\n0\r\n\r\n");
        let resp = conn.response("POST");
        assert_eq!(resp.status, 413);
        conn.expect_closed(Duration::from_secs(5));
        let got = seen.recv_timeout(Duration::from_secs(15)).unwrap();
        let body_start = got.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        let data = got[body_start..].iter().filter(|b| matches!(b, b'a' | b'b')).count();
        let got = String::from_utf8_lossy(&got);
        assert!((8..=10).contains(&data), "the first chunk went on, no more than max_size: {got:?}");
    }
}

per_driver! {
    fn a_handler_that_reads_no_body_is_not_limited(setup) {
        // As in Caddy: the limit applies where a body is read, and `respond` reads none.
        let caddyfile = "$SITE {\n\trequest_body {\n\t\tmax_size 4\n\t}\n\trespond \"fine\" 200\n}\n";
        let proxy = Proxy::start(caddyfile, setup);
        let mut conn = proxy.connect();
        conn.send(format!("POST / HTTP/1.1\r\nHost: {}\r\nContent-Length: 8\r\n\r\n12345678", proxy.host()).as_bytes());
        let resp = conn.response("POST");
        assert_eq!((resp.status, resp.text().as_str()), (200, "fine"));
    }
}
