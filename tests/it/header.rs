//! `header`: security headers and `-Server` on every kind of response Caddy puts them on
//! (proxied, `respond`, a 502, a WebSocket's 101), `?` leaving an upstream's value alone,
//! immediate ops adding to an upstream's field where deferred ones replace it, a matcher
//! limiting the ops to a path, and `header_down`'s new forms.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::thread;

use crate::support::net::unassigned_port;
use crate::support::per_driver;
use crate::support::ws::WsOrigin;
use crate::support::Proxy;

/// The HSTS front of docs/configuration.md.
const SECURITY: &str = "\theader {\n\t\tStrict-Transport-Security \"max-age=31536000; \
                        includeSubDomains\"\n\t\tX-Content-Type-Options nosniff\n\t\t-Server\n\t}\n";

const HSTS: &str = "max-age=31536000; includeSubDomains";

/// An upstream that answers every request `200 ok` with `Server: origin`, `X-Frame: upstream`
/// and `X-Note: from origin`, keeping connections alive.
fn origin_with_fields() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            thread::spawn(move || {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        buf.drain(..end + 4);
                        let answer = "HTTP/1.1 200 OK\r\nServer: origin\r\nX-Frame: upstream\r\n\
                                      X-Note: from origin\r\nContent-Length: 2\r\n\r\nok";
                        if conn.write_all(answer.as_bytes()).is_err() {
                            return;
                        }
                    }
                    match conn.read(&mut chunk) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
            });
        }
    });
    addr
}

fn get(proxy: &Proxy, path: &str) -> crate::support::client::Response {
    let mut conn = proxy.connect();
    conn.send(format!("GET {path} HTTP/1.1\r\nHost: {}\r\n\r\n", proxy.host()).as_bytes());
    conn.response("GET")
}

fn assert_secured(resp: &crate::support::client::Response, what: &str) {
    assert_eq!(resp.header("strict-transport-security"), Some(HSTS), "{what}");
    assert_eq!(resp.header("x-content-type-options"), Some("nosniff"), "{what}");
    assert_eq!(resp.header("server"), None, "{what}");
}

per_driver! {
    fn security_headers_reach_proxied_and_respond_answers_and_server_goes(setup) {
        let origin = origin_with_fields();
        let caddyfile = format!(
            "$SITE {{\n{SECURITY}\thandle /local {{\n\t\trespond \"here\" 200\n\t}}\n\
             \treverse_proxy {origin}\n}}\n"
        );
        let proxy = Proxy::start(&caddyfile, setup);
        let proxied = get(&proxy, "/a");
        assert_eq!(proxied.text(), "ok");
        assert_secured(&proxied, "proxied");
        assert_eq!(proxied.header("x-frame"), Some("upstream"));
        let local = get(&proxy, "/local");
        assert_eq!(local.text(), "here");
        assert_secured(&local, "respond");
    }
}

per_driver! {
    fn a_502_gets_only_the_immediate_ops_as_in_caddy(setup) {
        let dead = format!("127.0.0.1:{}", unassigned_port());
        let caddyfile = format!(
            "$SITE {{\n\theader X-Now now\n\theader >X-Late late\n{SECURITY}\
             \treverse_proxy {dead}\n}}\n"
        );
        let proxy = Proxy::start(&caddyfile, setup);
        let resp = get(&proxy, "/");
        assert_eq!(resp.status, 502);
        assert_eq!(resp.header("x-now"), Some("now"));
        // Deferred ops apply when the handler writes its head; an error is written past them.
        assert_eq!(resp.header("x-late"), None);
        assert_eq!(resp.header("strict-transport-security"), None);
    }
}

per_driver! {
    fn a_websocket_101_gets_the_headers(setup) {
        let origin = WsOrigin::start();
        let caddyfile = format!("$SITE {{\n{SECURITY}\treverse_proxy {}\n}}\n", origin.addr);
        let proxy = Proxy::start(&caddyfile, setup);
        let mut conn = proxy.connect();
        conn.send(
            format!(
                "GET /chat HTTP/1.1\r\nHost: {}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
                 Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
                proxy.host()
            )
            .as_bytes(),
        );
        let resp = conn.response("GET");
        assert_eq!(resp.status, 101);
        if proxy.skip_on_caddy("Caddy 2.6 applies no deferred op to a 101 (2.11 does, as here)") {
            return;
        }
        assert_secured(&resp, "101");
        assert_eq!(resp.header("upgrade"), Some("websocket"));
    }
}

per_driver! {
    fn immediate_ops_add_to_the_upstreams_field_deferred_ones_replace_it_and_defaults_yield(setup) {
        let origin = origin_with_fields();
        let caddyfile = format!(
            "$SITE {{\n\theader X-Frame ours\n\theader >X-Note ours\n\theader ?Server fallback\n\
             \theader ?X-Missing filled\n\treverse_proxy {origin}\n}}\n"
        );
        let proxy = Proxy::start(&caddyfile, setup);
        let resp = get(&proxy, "/");
        assert_eq!(resp.headers_named("x-frame"), ["ours", "upstream"]);
        if proxy.skip_on_caddy("Caddy 2.6 has no '>' (2.11 does, as here)") {
            return;
        }
        assert_eq!(resp.headers_named("x-note"), ["ours"]);
        assert_eq!(resp.headers_named("x-missing"), ["filled"]);
        assert_eq!(resp.headers_named("server"), ["origin"], "? never overrides a value");
    }
}

per_driver! {
    fn a_matcher_limits_the_ops_to_its_paths(setup) {
        let origin = origin_with_fields();
        let caddyfile = format!(
            "$SITE {{\n\theader /api/* X-Api yes\n\t@hidden path /secret\n\
             \theader @hidden -X-Frame\n\treverse_proxy {origin}\n}}\n"
        );
        let proxy = Proxy::start(&caddyfile, setup);
        let api = get(&proxy, "/api/x");
        assert_eq!(api.header("x-api"), Some("yes"));
        assert_eq!(api.header("x-frame"), Some("upstream"));
        let other = get(&proxy, "/other");
        assert_eq!(other.header("x-api"), None);
        let hidden = get(&proxy, "/secret");
        assert_eq!(hidden.header("x-frame"), None);
        assert_eq!(hidden.header("x-api"), None);
    }
}

per_driver! {
    fn header_down_takes_wildcard_deletes_and_regular_expression_replacements(setup) {
        let origin = origin_with_fields();
        let caddyfile = format!(
            "$SITE {{\n\treverse_proxy {origin} {{\n\t\theader_down -X-F*\n\
             \t\theader_down X-Note \"from (\\w+)\" \"via $1\"\n\t\theader_down >X-Added yes\n\t}}\n}}\n"
        );
        let proxy = Proxy::start(&caddyfile, setup);
        let resp = get(&proxy, "/");
        assert_eq!(resp.text(), "ok");
        assert_eq!(resp.header("x-frame"), None);
        assert_eq!(resp.header("x-note"), Some("via origin"));
        if proxy.skip_on_caddy("Caddy 2.6 takes '>X-Added' as a field name (2.11 drops the '>')") {
            return;
        }
        assert_eq!(resp.header("x-added"), Some("yes"));
        assert_eq!(resp.header("server"), Some("origin"));
    }
}
