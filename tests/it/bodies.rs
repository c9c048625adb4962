//! Bodies in both directions by every framing HTTP/1.1 has, byte-exact (SHA-256), plus the
//! exchanges that have no body or an interim response, and pipelining.

use std::time::Duration;

use crate::support::client::Framing;
use crate::support::net::IO_TIMEOUT;
use crate::support::origin::Origin;
use crate::support::payload::{self, Rng};
use crate::support::per_driver;

per_driver! {
    fn content_length_request_body_is_forwarded_byte_exact(setup) {
        let origin = Origin::start("o");
        let proxy = setup.proxy_to(origin.addr);
        let body = Rng::new(1).bytes(100_000);
        let mut conn = proxy.connect();
        let mut req = format!("POST /echo HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\n\r\n", proxy.host(), body.len()).into_bytes();
        req.extend_from_slice(&body);
        conn.send(&req);
        let resp = conn.response("POST");
        assert_eq!(resp.status, 200);
        assert_eq!(resp.body_sha256, payload::sha256_hex(&body));
        let rec = &origin.requests()[0];
        assert_eq!(rec.body, body);
        assert!(!rec.chunked);
    }
}

per_driver! {
    fn chunked_request_with_extensions_and_trailers_reaches_the_backend_intact(setup) {
        let origin = Origin::start("o");
        let proxy = setup.proxy_to(origin.addr);
        let mut conn = proxy.connect();
        let req = format!(
            "POST /echo HTTP/1.1\r\nHost: {}\r\nTransfer-Encoding: chunked\r\nTrailer: X-Checksum\r\n\r\n\
             5;name=value\r\nhello\r\n\
             7;ext;quoted=\"a;b\"\r\n, world\r\n\
             1A\r\nabcdefghijklmnopqrstuvwxyz\r\n\
             0\r\nX-Checksum: abc123\r\n\r\n",
            proxy.host()
        );
        conn.send(req.as_bytes());
        let resp = conn.response("POST");
        assert_eq!(resp.status, 200);
        assert_eq!(resp.text(), "hello, worldabcdefghijklmnopqrstuvwxyz");
        let rec = &origin.requests()[0];
        assert_eq!(rec.body, b"hello, worldabcdefghijklmnopqrstuvwxyz");
        assert!(rec.chunked, "a chunked request stays chunked: its length is unknown up front");
        if !proxy.skip_on_caddy("Caddy drops request trailers; the trailer check is ringproxy's") {
            assert_eq!(
                rec.trailers,
                vec![("X-Checksum".to_string(), "abc123".to_string())],
                "request trailers are forwarded"
            );
        }
        // The connection is still usable: the proxy found the end of the chunked body.
        assert_eq!(conn.get(&proxy.host(), "/after").status, 200);
    }
}

per_driver! {
    fn chunked_response_with_extensions_and_trailers_arrives_byte_exact(setup) {
        let origin = Origin::start("o");
        let proxy = setup.proxy_to(origin.addr);
        let mut conn = proxy.connect();
        let len = 300_000u64;
        conn.send(format!("GET /chunked/{len}?piece=7001 HTTP/1.1\r\nHost: {}\r\nTE: trailers\r\n\r\n", proxy.host()).as_bytes());
        let resp = conn.response("GET");
        assert_eq!(resp.status, 200);
        assert_eq!(resp.framing, Framing::Chunked);
        assert_eq!(resp.body_len, len);
        assert_eq!(resp.body_sha256, payload::pattern_sha256(len));
        assert_eq!(resp.trailer("x-body-sha256"), Some(payload::pattern_sha256(len).as_str()), "trailers: {:?}", resp.trailers);
        assert_eq!(conn.get(&proxy.host(), "/after").status, 200);
    }
}

per_driver! {
    fn empty_posts_reach_the_backend_with_empty_bodies(setup) {
        let origin = Origin::start("o");
        let proxy = setup.proxy_to(origin.addr);
        let mut conn = proxy.connect();
        let host = proxy.host();
        conn.send(format!("POST /empty-cl HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\n\r\n").as_bytes());
        assert_eq!(conn.response("POST").status, 200);
        conn.send(format!("POST /no-framing HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes());
        assert_eq!(conn.response("POST").status, 200);
        conn.send(format!("POST /empty-chunked HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n").as_bytes());
        assert_eq!(conn.response("POST").status, 200);
        let log = origin.wait_for_requests(3, IO_TIMEOUT);
        let paths: Vec<&str> = log.iter().map(|r| r.path()).collect();
        assert_eq!(paths, ["/empty-cl", "/no-framing", "/empty-chunked"]);
        for rec in &log {
            assert_eq!(rec.body_len, 0, "{}", rec.target);
        }
    }
}

per_driver! {
    fn twenty_megabyte_upload_arrives_byte_exact(setup) {
        let origin = Origin::start("o");
        let proxy = setup.proxy_to(origin.addr);
        let len = 20u64 << 20;
        let mut conn = proxy.connect();
        conn.send(format!("POST /sha256 HTTP/1.1\r\nHost: {}\r\nContent-Length: {len}\r\n\r\n", proxy.host()).as_bytes());
        let body = payload::pattern(len as usize);
        for piece in body.chunks(256 * 1024) {
            conn.send(piece);
        }
        let resp = conn.response("POST");
        assert_eq!(resp.status, 200);
        assert_eq!(resp.text(), format!("{len} {}", payload::pattern_sha256(len)));
    }
}

per_driver! {
    fn chunked_upload_of_several_megabytes_arrives_byte_exact(setup) {
        let origin = Origin::start("o");
        let proxy = setup.proxy_to(origin.addr);
        let body = payload::pattern(5 << 20);
        let mut conn = proxy.connect();
        conn.send(format!("POST /sha256 HTTP/1.1\r\nHost: {}\r\nTransfer-Encoding: chunked\r\n\r\n", proxy.host()).as_bytes());
        let mut rng = Rng::new(7);
        let mut offset = 0;
        while offset < body.len() {
            let n = (rng.log_range(1, 200_000) as usize).min(body.len() - offset);
            let mut chunk = format!("{n:x}\r\n").into_bytes();
            chunk.extend_from_slice(&body[offset..offset + n]);
            chunk.extend_from_slice(b"\r\n");
            conn.send(&chunk);
            offset += n;
        }
        conn.send(b"0\r\n\r\n");
        let resp = conn.response("POST");
        assert_eq!(resp.text(), format!("{} {}", body.len(), payload::sha256_hex(&body)));
    }
}

per_driver! {
    fn fifty_megabyte_download_arrives_byte_exact(setup) {
        let origin = Origin::start("o");
        let proxy = setup.proxy_to(origin.addr);
        let len = 50u64 << 20;
        let mut conn = proxy.connect();
        let resp = conn.get(&proxy.host(), &format!("/bytes/{len}"));
        assert_eq!(resp.status, 200);
        assert_eq!(resp.framing, Framing::Length(len));
        assert_eq!(resp.body_len, len);
        assert_eq!(resp.body_sha256, payload::pattern_sha256(len));
        // The keep-alive connection is reusable after a large body.
        assert_eq!(conn.get(&proxy.host(), "/bytes/10").body, payload::pattern(10));
    }
}

per_driver! {
    fn bodies_around_the_splice_threshold_end_exactly_where_the_next_response_begins(setup) {
        // On the plaintext leg, bodies from 64 KiB up go through a pipe with splice(2); over TLS
        // they are copied and encrypted. Either way they must stop at the body's last byte, so
        // the upstream connection stays usable for the next request.
        let origin = Origin::start("o");
        let proxy = setup.proxy_to(origin.addr);
        let mut conn = proxy.connect();
        let sizes = [65_535u64, 65_536, 65_537, 1_048_583, 3 << 20];
        for len in sizes {
            let resp = conn.get(&proxy.host(), &format!("/bytes/{len}"));
            assert_eq!((resp.status, resp.body_len), (200, len));
            assert_eq!(resp.body_sha256, payload::pattern_sha256(len), "{len} bytes");
        }
        let host = proxy.host();
        let pipelined: String =
            sizes.iter().map(|len| format!("GET /bytes/{len} HTTP/1.1\r\nHost: {host}\r\n\r\n")).collect();
        conn.send(pipelined.as_bytes());
        for len in sizes {
            let resp = conn.response("GET");
            assert_eq!(resp.body_sha256, payload::pattern_sha256(len), "pipelined {len} bytes");
        }
        assert_eq!(origin.requests().len(), 2 * sizes.len());
        if !proxy.is_caddy() {
            assert_eq!(origin.connections(), 1, "one upstream connection, reused after every body");
        }
    }
}

per_driver! {
    fn ten_pipelined_requests_are_answered_in_order(setup) {
        let origin = Origin::start("o");
        let proxy = setup.proxy_to(origin.addr);
        let host = proxy.host();
        let mut all = Vec::new();
        let mut expected = Vec::new();
        for i in 0..10u64 {
            match i % 3 {
                0 => {
                    all.extend_from_slice(format!("GET /bytes/{} HTTP/1.1\r\nHost: {host}\r\n\r\n", 1000 + i * 4099).as_bytes());
                    expected.push(payload::pattern((1000 + i * 4099) as usize));
                }
                1 => {
                    let body = format!("pipelined body {i}");
                    all.extend_from_slice(format!("POST /echo/{i} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {}\r\n\r\n{body}", body.len()).as_bytes());
                    expected.push(body.into_bytes());
                }
                _ => {
                    all.extend_from_slice(format!("GET /p/{i} HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes());
                    expected.push(format!("o GET /p/{i}").into_bytes());
                }
            }
        }
        let mut conn = proxy.connect();
        // One write: all ten requests arrive together, typically in one read on the proxy side.
        conn.send(&all);
        for (i, want) in expected.iter().enumerate() {
            let method = if i % 3 == 1 { "POST" } else { "GET" };
            let resp = conn.response(method);
            assert_eq!(resp.status, 200, "response {i}");
            assert_eq!(&resp.body, want, "response {i} out of order or corrupted");
        }
        let log = origin.wait_for_requests(10, IO_TIMEOUT);
        assert_eq!(log.len(), 10);
    }
}

per_driver! {
    fn expect_100_continue_gets_an_interim_response_before_the_body_is_sent(setup) {
        let origin = Origin::start("o");
        let proxy = setup.proxy_to(origin.addr);
        let mut conn = proxy.connect();
        let body = b"body sent after 100 Continue";
        conn.send(
            format!("PUT /upload HTTP/1.1\r\nHost: {}\r\nExpect: 100-continue\r\nContent-Length: {}\r\n\r\n", proxy.host(), body.len())
                .as_bytes(),
        );
        // Nothing of the body is sent until the interim response arrives.
        let interim = conn.response("PUT");
        assert_eq!(interim.status, 100, "expected 100 Continue first, got {}", interim.status);
        conn.send(body);
        let (more_interim, resp) = conn.final_response("PUT");
        assert!(more_interim.iter().all(|s| *s == 100));
        assert_eq!(resp.status, 200);
        assert_eq!(resp.body, body);
        assert_eq!(origin.requests()[0].body, body);
    }
}

per_driver! {
    fn an_http10_client_never_gets_an_interim_response(setup) {
        let origin = Origin::start("o");
        let proxy = setup.proxy_to(origin.addr);
        let mut conn = proxy.connect();
        let body = b"a 1.0 client sends its body at once";
        // The origin answers `Expect: 100-continue` with `100 Continue` whatever the version;
        // an HTTP/1.0 client would read that as the final response (RFC 9110 §15.2).
        conn.send(
            format!("PUT /upload HTTP/1.0\r\nHost: {}\r\nExpect: 100-continue\r\nContent-Length: {}\r\n\r\n", proxy.host(), body.len())
                .as_bytes(),
        );
        conn.send(body);
        let resp = conn.response("PUT");
        assert_eq!(resp.status, 200, "the first response an HTTP/1.0 client sees is the final one");
        assert_eq!(resp.body, body);
        assert_eq!(origin.requests()[0].body, body);
    }
}

per_driver! {
    fn head_responses_carry_headers_but_no_body(setup) {
        let origin = Origin::start("o");
        let proxy = setup.proxy_to(origin.addr);
        let mut conn = proxy.connect();
        conn.send(format!("HEAD /bytes/5000 HTTP/1.1\r\nHost: {}\r\n\r\n", proxy.host()).as_bytes());
        let resp = conn.response("HEAD");
        assert_eq!(resp.status, 200);
        assert_eq!(resp.header("content-length"), Some("5000"));
        assert!(resp.body.is_empty());
        // Had any body byte followed the HEAD response, this next response would be garbled.
        let next = conn.get(&proxy.host(), "/bytes/3");
        assert_eq!(next.body, payload::pattern(3));
        assert_eq!(origin.requests()[0].method, "HEAD");
    }
}

per_driver! {
    fn no_content_and_not_modified_responses_have_no_body(setup) {
        let origin = Origin::start("o");
        let proxy = setup.proxy_to(origin.addr);
        let mut conn = proxy.connect();
        let resp = conn.get(&proxy.host(), "/status/204");
        assert_eq!(resp.status, 204);
        assert!(resp.header("content-length").is_none_or(|v| v == "0"));
        assert!(resp.header("transfer-encoding").is_none());
        let resp = conn.get(&proxy.host(), "/status/304");
        assert_eq!(resp.status, 304);
        assert_eq!(resp.header("etag"), Some("\"v1\""));
        assert!(resp.header("transfer-encoding").is_none());
        let next = conn.get(&proxy.host(), "/bytes/7");
        assert_eq!(next.body, payload::pattern(7));
        // And nothing else arrives on the connection.
        conn.deadline_after = Duration::from_millis(200);
        assert!(matches!(conn.try_response("GET"), Err(crate::support::client::ReadError::TimedOut { .. })));
    }
}

per_driver! {
    fn close_delimited_response_arrives_whole(setup) {
        let origin = Origin::start("o");
        let proxy = setup.proxy_to(origin.addr);
        let len = 3_000_000u64;
        let mut conn = proxy.connect();
        let resp = conn.get(&proxy.host(), &format!("/close-delimited/{len}"));
        assert_eq!(resp.status, 200);
        // The proxy may re-frame it (chunked) or close-delimit it too; the bytes must match.
        assert_eq!(resp.body_len, len);
        assert_eq!(resp.body_sha256, payload::pattern_sha256(len));
        if resp.framing == Framing::Chunked {
            // Re-framed: the client connection may stay open for another request.
            assert_eq!(conn.get(&proxy.host(), "/bytes/9").body, payload::pattern(9));
        }
    }
}
