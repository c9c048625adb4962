//! Malformed and ambiguous requests: each gets its exact status, the connection is closed, the
//! bytes after the bad head never reach a backend (no request smuggling), no Rust error text
//! reaches the client, and the proxy serves a normal request right after.
//!
//! Statuses follow RFC 9112 and, where it leaves a choice, what Caddy does (design notes).

use std::time::Duration;

use crate::support::client::describe;
use crate::support::origin::Origin;
use crate::support::{per_driver, Proxy};

/// A request that a proxy must refuse.
struct Case {
    name: &'static str,
    /// The request; `{victim}` is replaced by a unique path.
    request: String,
    /// Acceptable statuses: one, except where the RFC allows two.
    statuses: &'static [u16],
    /// Set where Caddy is known to fall short, with the reason.
    caddy_differs: Option<&'static str>,
}

fn case(name: &'static str, request: impl Into<String>, statuses: &'static [u16]) -> Case {
    Case { name, request: request.into(), statuses, caddy_differs: None }
}

fn cases() -> Vec<Case> {
    let big_header =
        format!("GET /{{victim}} HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n", "a".repeat(70 * 1024));
    let huge_header = format!(
        "GET /{{victim}} HTTP/1.1\r\nHost: x\r\nX-Huge: {}\r\n\r\n",
        "a".repeat(1100 * 1024)
    );
    vec![
        case("garbage request line", "GARBAGE\r\n\r\n", &[400]),
        case("request line with an extra token", "GET /{victim} HTTP/1.1 extra\r\nHost: x\r\n\r\n", &[400]),
        case("target without a leading slash", "GET {victim} HTTP/1.1\r\nHost: x\r\n\r\n", &[400]),
        case("HTTP/1.1 without Host", "GET /{victim} HTTP/1.1\r\nUser-Agent: t\r\n\r\n", &[400]),
        case("two Host headers", "GET /{victim} HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n\r\n", &[400]),
        case("space before the colon", "GET /{victim} HTTP/1.1\r\nHost : x\r\n\r\n", &[400]),
        case("space inside a header name", "GET /{victim} HTTP/1.1\r\nHost: x\r\nBad Name: v\r\n\r\n", &[400]),
        case("header line without a colon", "GET /{victim} HTTP/1.1\r\nHost: x\r\nNoColonHere\r\n\r\n", &[400]),
        case("NUL in a header value", "GET /{victim} HTTP/1.1\r\nHost: x\r\nX-A: a\0b\r\n\r\n", &[400]),
        case("CR in a header value", "GET /{victim} HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n", &[400]),
        case("bare LF in a header value", "GET /{victim} HTTP/1.1\r\nHost: x\r\nX-A: a\nb\r\n\r\n", &[400]),
        case("non-numeric Content-Length", "POST /{victim} HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n", &[400]),
        case("negative Content-Length", "POST /{victim} HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", &[400]),
        case("Content-Length with a plus sign", "POST /{victim} HTTP/1.1\r\nHost: x\r\nContent-Length: +4\r\n\r\nbody", &[400]),
        case(
            "two differing Content-Lengths",
            "POST /{victim} HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nbody!",
            &[400],
        ),
        case("differing Content-Lengths in one field", "POST /{victim} HTTP/1.1\r\nHost: x\r\nContent-Length: 4, 5\r\n\r\nbody!", &[400]),
        Case {
            caddy_differs: Some("Caddy answers a request with both Content-Length and Transfer-Encoding and keeps the connection open"),
            ..case(
                "Content-Length and Transfer-Encoding together",
                "POST /{victim} HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
                &[400],
            )
        },
        case(
            "Transfer-Encoding whose final coding is not chunked",
            "POST /{victim} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n",
            &[400, 501],
        ),
        // RFC 9112 §6.3 says 400 (length unknown), §6.1 says 501 (coding unknown): both apply.
        case("unknown transfer coding", "POST /{victim} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n", &[400, 501]),
        case(
            "unsupported transfer coding before chunked",
            "POST /{victim} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
            &[501],
        ),
        Case {
            caddy_differs: Some("Caddy answers an invalid chunk size with 502 instead of 400"),
            ..case("invalid chunk size", "POST /{victim} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n", &[400])
        },
        Case {
            caddy_differs: Some("Caddy answers an invalid chunk size with 502 instead of 400"),
            ..case(
                "chunk size that overflows 64 bits",
                "POST /{victim} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000000001\r\nhello\r\n0\r\n\r\n",
                &[400],
            )
        },
        Case {
            caddy_differs: Some("Caddy forwards CONNECT to the upstream and tunnels what follows"),
            ..case("CONNECT", "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", &[405, 501])
        },
        case("HTTP/2.0 over HTTP/1 framing", "GET /{victim} HTTP/2.0\r\nHost: x\r\n\r\n", &[505]),
        case("unknown version HTTP/9.9", "GET /{victim} HTTP/9.9\r\nHost: x\r\n\r\n", &[505]),
        Case {
            caddy_differs: Some("Caddy's head limit is 1 MiB, not 64 KiB"),
            ..case("head just over the 64 KiB limit", big_header, &[431])
        },
        case("head over a megabyte", huge_header, &[431]),
    ]
}

/// Error text a Rust program might leak; a synthesized body must contain none of it.
const LEAKS: &[&str] =
    &["HeadError", "Error(", "Err(", "os error", "panicked", "io::", "Malformed"];

per_driver! {
    fn each_malformed_or_ambiguous_request_gets_its_status_and_a_closed_connection(setup) {
        let origin = Origin::start("o");
        let proxy = setup.proxy_to(origin.addr);
        let mut failures = Vec::new();
        for (i, case) in cases().into_iter().enumerate() {
            if let Some(reason) = case.caddy_differs {
                if proxy.skip_on_caddy(&format!("{}: {reason}", case.name)) {
                    continue;
                }
            }
            let victim = format!("victim-{i}");
            let request = case.request.replace("{victim}", &victim);
            let smuggled = format!("GET /smuggled-{i} HTTP/1.1\r\nHost: x\r\n\r\n");
            let mut conn = proxy.connect();
            conn.deadline_after = Duration::from_secs(5);
            conn.send_lenient(format!("{request}{smuggled}").as_bytes());
            match conn.try_response("GET") {
                Ok(resp) => {
                    if !case.statuses.contains(&resp.status) {
                        failures.push(format!("{}: status {} (expected {:?})", case.name, resp.status, case.statuses));
                    }
                    let body = resp.text();
                    if let Some(leak) = LEAKS.iter().find(|l| body.contains(*l)) {
                        failures.push(format!("{}: body leaks {leak:?}: {body:?}", case.name));
                    }
                    if !conn.closed_within(Duration::from_secs(3)) {
                        failures.push(format!("{}: connection left open after {}", case.name, resp.status));
                    }
                }
                Err(e) => failures.push(format!("{}: no response ({})", case.name, describe(&e))),
            }
            // The proxy still serves a well-formed request right after.
            let mut next = proxy.connect();
            let resp = next.get(&proxy.host(), &format!("/after-{i}"));
            if resp.status != 200 {
                failures.push(format!("{}: the next request got {}", case.name, resp.status));
            }
        }
        let seen = origin.requests();
        for rec in &seen {
            if rec.target.contains("smuggled") {
                failures.push(format!("a smuggled request reached the backend: {} {}", rec.method, rec.target));
            }
        }
        assert!(failures.is_empty(), "{} failure(s):\n  {}", failures.len(), failures.join("\n  "));
    }
}

per_driver! {
    fn absolute_form_target_is_routed_by_its_authority_and_forwarded_in_origin_form(setup) {
        let origin = Origin::start("routed");
        let elsewhere = Origin::start("elsewhere");
        let proxy = Proxy::start(
            &format!(
                "$SITE {{\n\t@other host other.example\n\thandle @other {{\n\t\treverse_proxy {}\n\t}}\n\thandle {{\n\t\trespond \"wrong site\" 404\n\t}}\n}}\n",
                origin.addr
            ),
            setup,
        );
        let mut conn = proxy.connect();
        // The URI names the `elsewhere` origin's address; a forward proxy would contact it.
        conn.send(
            format!("GET http://other.example/abs/path?q=1 HTTP/1.1\r\nHost: {}\r\n\r\n", elsewhere.addr).as_bytes(),
        );
        let resp = conn.response("GET");
        assert_eq!(resp.status, 200, "{}", resp.text());
        assert_eq!(resp.header("x-origin"), Some("routed"));
        let rec = &origin.requests()[0];
        assert_eq!(rec.target, "/abs/path?q=1", "upstream gets origin-form");
        assert_eq!(rec.header("host"), Some("other.example"), "the URI's authority replaces Host");
        conn.send(format!("GET http://{}/x HTTP/1.1\r\nHost: other.example\r\n\r\n", elsewhere.addr).as_bytes());
        let resp = conn.response("GET");
        assert_eq!(resp.status, 404, "routed by the URI's authority, not the Host header");
        assert!(elsewhere.requests().is_empty(), "the host named in the URI was contacted");
    }
}
