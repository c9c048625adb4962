//! `encode`: proxied responses the client accepts compressed arrive compressed with the coding
//! it prefers, decompress to exactly the upstream's bytes, and leave the connection usable;
//! responses that must not be touched (already encoded, audio, short, `no-transform`, `HEAD`,
//! a client that asks for none) arrive exactly as the upstream sent them; the `header`
//! directive's deferred ops act on the encoded head, as in Caddy; a client revalidating an
//! encoded response or file with its encoded tag gets `304`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread;
use std::time::Duration;

use crate::support::client::Framing;
use crate::support::per_driver;
use crate::support::Proxy;

/// A transcript-like text of `len` bytes.
fn text(len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 64);
    let mut i = 0;
    while out.len() < len {
        out.extend_from_slice(
            format!("{{\"word\":{i},\"text\":\"streamed transcript\"}}\n").as_bytes(),
        );
        i += 1;
    }
    out.truncate(len);
    out
}

/// A backend whose answer depends on the path: `/text/N` (Content-Length, `text/plain`),
/// `/chunked/N` (chunked in 1000-byte chunks, `application/json`), `/gzipped` (already
/// `Content-Encoding: gzip`), `/audio/N` (`audio/wav`), `/no-transform/N`. Keeps connections
/// alive; answers `HEAD` with the head alone.
fn text_backend() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { return };
            thread::spawn(move || serve(conn));
        }
    });
    addr
}

fn serve(conn: TcpStream) {
    conn.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut conn = conn;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or("").to_string();
        let path = parts.next().unwrap_or("").to_string();
        let mut if_none_match = None;
        loop {
            let mut field = String::new();
            if reader.read_line(&mut field).unwrap_or(0) == 0 || field == "\r\n" {
                break;
            }
            if let Some((name, value)) = field.split_once(':') {
                if name.eq_ignore_ascii_case("if-none-match") {
                    if_none_match = Some(value.trim().to_string());
                }
            }
        }
        let number = |prefix: &str| path.strip_prefix(prefix).and_then(|n| n.parse::<usize>().ok());
        let (head, body): (String, Vec<u8>) = if let Some(n) = number("/revalidate/") {
            // Answers 304 only to its own tag, which is all it knows.
            if if_none_match.as_deref() == Some("\"v1\"") {
                let out = b"HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\n\r\n".to_vec();
                if conn.write_all(&out).is_err() {
                    return;
                }
                continue;
            }
            (
                format!("Content-Type: text/plain\r\nContent-Length: {n}\r\nETag: \"v1\"\r\n"),
                text(n),
            )
        } else if let Some(n) = number("/text/") {
            (format!("Content-Type: text/plain; charset=utf-8\r\nContent-Length: {n}\r\nETag: \"v1\"\r\n"), text(n))
        } else if let Some(n) = number("/chunked/") {
            let mut body = Vec::new();
            for piece in text(n).chunks(1000) {
                body.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
                body.extend_from_slice(piece);
                body.extend_from_slice(b"\r\n");
            }
            body.extend_from_slice(b"0\r\n\r\n");
            ("Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n".to_string(), body)
        } else if let Some(n) = number("/audio/") {
            (format!("Content-Type: audio/wav\r\nContent-Length: {n}\r\n"), text(n))
        } else if let Some(n) = number("/no-transform/") {
            (format!("Content-Type: text/plain\r\nCache-Control: no-transform\r\nContent-Length: {n}\r\n"), text(n))
        } else if path == "/gzipped" {
            let body = b"not really gzip, but says so".to_vec();
            (
                format!(
                    "Content-Type: text/plain\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\n",
                    body.len()
                ),
                body,
            )
        } else {
            ("Content-Length: 0\r\n".to_string(), Vec::new())
        };
        let mut out = format!("HTTP/1.1 200 OK\r\n{head}\r\n").into_bytes();
        if method != "HEAD" {
            out.extend_from_slice(&body);
        }
        if conn.write_all(&out).is_err() {
            return;
        }
    }
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes).read_to_end(&mut out).unwrap();
    out
}

fn request(host: &str, path: &str, extra: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n").into_bytes()
}

per_driver! {
    fn compressed_responses_decompress_to_the_upstreams_exact_bytes_and_keep_the_connection(setup) {
        let backend = text_backend();
        let proxy = Proxy::start(&format!("$SITE {{\n\tencode zstd gzip\n\treverse_proxy {backend}\n}}\n"), setup);
        let host = proxy.host();
        let mut conn = proxy.connect();
        conn.send(&request(&host, "/text/200000", "Accept-Encoding: gzip\r\n"));
        let resp = conn.response("GET");
        assert_eq!(resp.status, 200);
        assert_eq!(resp.header("content-encoding"), Some("gzip"));
        assert_eq!(resp.header("vary"), Some("Accept-Encoding"));
        assert_eq!(resp.header("etag"), Some("\"v1-gzip\""));
        assert_eq!(resp.header("content-length"), None);
        assert_eq!(resp.framing, Framing::Chunked);
        assert!(resp.body.len() < 200_000 / 5, "compressed to {} bytes", resp.body.len());
        assert_eq!(gunzip(&resp.body), text(200_000));
        // Chunked from the upstream, zstd preferred when the client's q-values tie.
        conn.send(&request(&host, "/chunked/150000", "Accept-Encoding: gzip, zstd\r\n"));
        let resp = conn.response("GET");
        assert_eq!(resp.header("content-encoding"), Some("zstd"));
        assert_eq!(zstd::stream::decode_all(&resp.body[..]).unwrap(), text(150_000));
        // The client's q-values come first.
        conn.send(&request(&host, "/text/5000", "Accept-Encoding: zstd;q=0.5, gzip\r\n"));
        let resp = conn.response("GET");
        assert_eq!(resp.header("content-encoding"), Some("gzip"));
        assert_eq!(gunzip(&resp.body), text(5000));
    }
}

per_driver! {
    fn responses_that_must_not_be_touched_arrive_as_the_upstream_sent_them(setup) {
        let backend = text_backend();
        let proxy = Proxy::start(&format!("$SITE {{\n\tencode\n\treverse_proxy {backend}\n}}\n"), setup);
        let host = proxy.host();
        let mut conn = proxy.connect();
        let gzip = "Accept-Encoding: gzip, zstd\r\n";
        for (path, extra) in [
            ("/text/5000", ""),
            ("/text/5000", "Accept-Encoding: br\r\n"),
            ("/text/5000", "Accept-Encoding: gzip;q=0, zstd;q=0\r\n"),
            ("/text/100", gzip),
            ("/audio/5000", gzip),
            ("/no-transform/5000", gzip),
        ] {
            conn.send(&request(&host, path, extra));
            let resp = conn.response("GET");
            assert_eq!(resp.header("content-encoding"), None, "{path} {extra:?}");
            let len: usize = path.rsplit('/').next().unwrap().parse().unwrap();
            assert_eq!(resp.body, text(len), "{path} {extra:?}");
        }
        conn.send(&request(&host, "/gzipped", gzip));
        let resp = conn.response("GET");
        assert_eq!(resp.header("content-encoding"), Some("gzip"));
        assert_eq!(resp.body, b"not really gzip, but says so", "never encoded twice");
        conn.send(format!("HEAD /text/5000 HTTP/1.1\r\nHost: {host}\r\n{gzip}\r\n").as_bytes());
        let resp = conn.response("HEAD");
        if !proxy.skip_on_caddy("Caddy answers HEAD with the head the GET would have had") {
            assert_eq!(resp.header("content-length"), Some("5000"));
        }
        conn.send(&request(&host, "/text/700", gzip));
        assert_eq!(conn.response("GET").status, 200, "the connection is still in step");
    }
}

per_driver! {
    fn deferred_header_ops_act_on_the_encoded_head_and_immediate_ones_are_encoded(setup) {
        // Caddy's `encode` sits between the handler and the deferred `header` ops: an
        // immediate ETag is another strong tag of the encoded response, and a deferred
        // `-Vary` removes the Vary the coding added.
        let backend = text_backend();
        let caddyfile = format!(
            "$SITE {{\n\tencode gzip\n\theader ETag \"\\\"x\\\"\"\n\theader -Vary\n\
             \treverse_proxy {backend}\n}}\n"
        );
        let proxy = Proxy::start(&caddyfile, setup);
        let host = proxy.host();
        let mut conn = proxy.connect();
        conn.send(&request(&host, "/chunked/20000", "Accept-Encoding: gzip\r\n"));
        let resp = conn.response("GET");
        assert_eq!(resp.status, 200);
        assert_eq!(resp.header("content-encoding"), Some("gzip"));
        assert_eq!(resp.header("etag"), Some("\"x-gzip\""));
        assert_eq!(resp.header("vary"), None);
        assert_eq!(gunzip(&resp.body), text(20_000));

        // The same for a whole file file_server sends compressed.
        let dir = crate::support::temp::temp_dir("encode-header");
        std::fs::write(dir.path().join("words.txt"), text(20_000)).unwrap();
        let caddyfile = format!(
            "$SITE {{\n\tencode gzip\n\theader -Vary\n\troot * {}\n\tfile_server\n}}\n",
            dir.path().display()
        );
        let proxy = Proxy::start(&caddyfile, setup);
        let mut conn = proxy.connect();
        conn.send(&request(&proxy.host(), "/words.txt", "Accept-Encoding: gzip\r\n"));
        let resp = conn.response("GET");
        assert_eq!(resp.status, 200);
        assert_eq!(resp.header("content-encoding"), Some("gzip"));
        let etag = resp.header("etag");
        assert!(etag.is_some_and(|e| e.ends_with("-gzip\"")), "{etag:?}");
        assert_eq!(resp.header("vary"), None);
        assert_eq!(gunzip(&resp.body), text(20_000));
    }
}

per_driver! {
    fn revalidating_an_encoded_response_or_file_with_its_encoded_tag_gets_304(setup) {
        let backend = text_backend();
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("app")).unwrap();
        std::fs::write(dir.path().join("app/main.js"), text(6000)).unwrap();
        let root = dir.path().display();
        let proxy = Proxy::start(
            &format!(
                "$SITE {{\n\tencode gzip\n\thandle /app/* {{\n\t\troot * {root}\n\t\tfile_server\n\t}}\n\
                 \treverse_proxy {backend}\n}}\n"
            ),
            setup,
        );
        let host = proxy.host();
        let mut conn = proxy.connect();
        let gzip = "Accept-Encoding: gzip\r\n";
        conn.send(&request(&host, "/revalidate/5000", gzip));
        let first = conn.response("GET");
        assert_eq!(first.header("etag"), Some("\"v1-gzip\""));
        let revalidate = format!("{gzip}If-None-Match: \"v1-gzip\"\r\n");
        conn.send(&request(&host, "/revalidate/5000", &revalidate));
        let again = conn.response("GET");
        assert_eq!(again.status, 304, "the upstream saw its own tag");
        assert!(again.body.is_empty());
        // Without a coding chosen, the tag is not ours to strip: the upstream sees it as sent.
        conn.send(&request(&host, "/revalidate/5000", "If-None-Match: \"v1-gzip\"\r\n"));
        let plain = conn.response("GET");
        assert_eq!(plain.status, 200);
        assert_eq!(plain.body, text(5000));

        conn.send(&request(&host, "/app/main.js", gzip));
        let file = conn.response("GET");
        assert_eq!(file.header("content-encoding"), Some("gzip"));
        let tag = file.header("etag").unwrap().to_string();
        assert!(tag.ends_with("-gzip\""), "{tag}");
        conn.send(&request(&host, "/app/main.js", &format!("{gzip}If-None-Match: {tag}\r\n")));
        let cached = conn.response("GET");
        assert_eq!(cached.status, 304);
        assert_eq!(cached.header("vary"), Some("Accept-Encoding"));
        conn.send(&request(&host, "/revalidate/700", gzip));
        assert_eq!(conn.response("GET").status, 200, "the connection is still in step");
    }
}
