//! `basic_auth`: a request without the credentials of one of the route's accounts gets `401`
//! with `WWW-Authenticate` and never reaches the handler; one with them goes on as if the
//! directive were not there. The hashes are real bcrypt hashes, checked by the proxy.

use base64::Engine;

use crate::support::origin::Origin;
use crate::support::per_driver;
use crate::support::ws::WsOrigin;
use crate::support::Proxy;

/// bcrypt's cheapest cost keeps each test's checks to milliseconds; the proxy does the same
/// work at any cost, only longer.
fn hash(password: &str) -> String {
    bcrypt::hash(password, 4).unwrap()
}

fn basic(user: &str, password: &str) -> String {
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Authorization: Basic {token}\r\n")
}

fn get(host: &str, path: &str, extra: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n").into_bytes()
}

per_driver! {
    fn only_requests_with_an_accounts_password_reach_the_upstream(setup) {
        let origin = Origin::start("o");
        let caddyfile = format!(
            "$SITE {{\n\tbasic_auth {{\n\t\tbob {}\n\t\talice {}\n\t}}\n\treverse_proxy {}\n}}\n",
            hash("secret"), hash("open sesame"), origin.addr
        );
        let proxy = Proxy::start(&caddyfile, setup);
        let host = proxy.host();
        let mut conn = proxy.connect();
        for refused in ["", &basic("bob", "wrong"), &basic("nobody", "secret"), &basic("alice", "secret"), "Authorization: Bearer abc\r\n"] {
            conn.send(&get(&host, "/p", refused));
            let resp = conn.response("GET");
            assert_eq!(resp.status, 401, "{refused:?}");
            assert_eq!(resp.header("www-authenticate"), Some("Basic realm=\"restricted\""));
        }
        assert!(origin.requests().is_empty(), "no refused request reached the upstream");
        // Kept alive after each 401; the right password, twice (the second is remembered).
        for (user, password) in [("bob", "secret"), ("alice", "open sesame"), ("bob", "secret")] {
            conn.send(&get(&host, "/p", &basic(user, password)));
            assert_eq!(conn.response("GET").status, 200, "{user}");
        }
        let seen = origin.requests();
        assert_eq!(seen.len(), 3);
        assert_eq!(
            seen[0].header("authorization"),
            Some(basic("bob", "secret").trim_end()["Authorization: ".len()..].as_ref()),
            "the credentials are passed on, as Caddy does"
        );
    }
}

per_driver! {
    fn caddy_26s_basicauth_with_a_realm_guards_only_what_its_matcher_matches(setup) {
        let caddyfile = format!(
            "$SITE {{\n\tbasicauth /private/* bcrypt \"Speech \\\"API\\\"\" {{\n\t\tbob {}\n\t}}\n\trespond \"hello\"\n}}\n",
            hash("secret")
        );
        let proxy = Proxy::start(&caddyfile, setup);
        let host = proxy.host();
        let mut conn = proxy.connect();
        conn.send(&get(&host, "/private/x", ""));
        let resp = conn.response("GET");
        assert_eq!(resp.status, 401);
        if !proxy.skip_on_caddy("Caddy writes the realm's quotes unescaped, breaking the field") {
            assert_eq!(resp.header("www-authenticate"), Some(r#"Basic realm="Speech \"API\"""#));
        }
        conn.send(&get(&host, "/public", ""));
        assert_eq!(conn.response("GET").text(), "hello");
        conn.send(&get(&host, "/private/x", &basic("bob", "secret")));
        assert_eq!(conn.response("GET").text(), "hello");
    }
}

per_driver! {
    fn a_websocket_upgrade_without_credentials_never_reaches_the_speech_backend(setup) {
        let backend = WsOrigin::start();
        let caddyfile = format!(
            "$SITE {{\n\tbasic_auth /api/* {{\n\t\tbob {}\n\t}}\n\treverse_proxy 127.0.0.1:{}\n}}\n",
            hash("secret"), backend.port()
        );
        let proxy = Proxy::start(&caddyfile, setup);
        let mut conn = proxy.connect();
        let upgrade = "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
                       Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
        conn.send(&get(&proxy.host(), "/api/asr", upgrade));
        assert_eq!(conn.response("GET").status, 401);
        conn.send(&get(&proxy.host(), "/api/asr", &format!("{upgrade}{}", basic("bob", "secret"))));
        assert_eq!(conn.response("GET").status, 101);
        assert_eq!(backend.handshakes().len(), 1, "only the authorized upgrade reached it");
    }
}
