//! Routing: the seed deployment's Caddyfile (auth server + moshi-server), with its domain
//! replaced by `:PORT`, sends each request on one keep-alive connection to the right backend.

use crate::support::origin::Origin;
use crate::support::ws::{ws_connect, WsOrigin};
use crate::support::{per_driver, Proxy};

/// The seed's Caddyfile ("With Auth Server"), verbatim apart from the site address and the two
/// upstream ports.
fn seed_caddyfile(auth_port: u16, moshi_port: u16) -> String {
    r#"
:$PORT {
    # Auth server routes
    handle /api/auth/* {
        reverse_proxy localhost:3001
    }
    handle /health {
        reverse_proxy localhost:3001
    }

    # Everything else goes to moshi-server
    handle {
        reverse_proxy localhost:8080
    }
}
"#
    .replace("localhost:3001", &format!("localhost:{auth_port}"))
    .replace("localhost:8080", &format!("localhost:{moshi_port}"))
}

per_driver! {
    fn seed_routes_alternate_between_backends_on_one_keepalive_connection(driver) {
        let auth = Origin::start_localhost("auth");
        let moshi = Origin::start_localhost("moshi");
        let proxy = Proxy::start(&seed_caddyfile(auth.port(), moshi.port()), driver);
        let host = proxy.host();

        let plan: &[(&str, &str, &str)] = &[
            ("POST", "/api/auth/login", "auth"),
            ("GET", "/api/build_info", "moshi"),
            ("GET", "/health", "auth"),
            ("GET", "/", "moshi"),
            ("GET", "/api/auth/session?x=1", "auth"),
            ("GET", "/api/modules_info", "moshi"),
            ("GET", "/metrics", "moshi"),
            ("GET", "/health", "auth"),
            ("POST", "/api/tts", "moshi"),
            ("GET", "/index.html", "moshi"),
        ];
        let mut conn = proxy.connect();
        for round in 0..3 {
            for (method, target, backend) in plan {
                let body = format!("{{\"round\":{round}}}");
                if *method == "POST" {
                    conn.send(
                        format!(
                            "POST {target} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                            body.len()
                        )
                        .as_bytes(),
                    );
                } else {
                    conn.send(format!("{method} {target} HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes());
                }
                let resp = conn.response(method);
                assert_eq!(resp.status, 200, "{method} {target}: {}", resp.text());
                assert_eq!(resp.version, 1, "HTTP/1.1 client gets an HTTP/1.1 response");
                assert_eq!(resp.header("x-origin"), Some(*backend), "{method} {target} went to the wrong backend");
                if *method == "POST" {
                    assert_eq!(resp.text(), body, "{target}: body echoed by the backend");
                } else {
                    assert_eq!(resp.text(), format!("{backend} GET {target}"));
                }
            }
        }

        // Each backend saw exactly its own requests, in order, with the target unchanged.
        for (origin, name) in [(&auth, "auth"), (&moshi, "moshi")] {
            let expected: Vec<String> = (0..3)
                .flat_map(|_| plan.iter().filter(|(_, _, b)| *b == name).map(|(m, t, _)| format!("{m} {t}")))
                .collect();
            let seen: Vec<String> =
                origin.wait_for_requests(expected.len(), crate::support::net::IO_TIMEOUT)
                    .iter()
                    .map(|r| format!("{} {}", r.method, r.target))
                    .collect();
            assert_eq!(seen, expected, "requests seen by {name}");
        }
        // Upstream connections are pooled: 15 requests per backend over one client connection
        // need at most one upstream connection per worker (and `localhost` may cost one dial
        // attempt per address family).
        assert!(auth.connections() <= 2, "auth accepted {} connections for 15 requests", auth.connections());
        assert!(moshi.connections() <= 2, "moshi accepted {} connections for 15 requests", moshi.connections());
        let conns: std::collections::BTreeSet<usize> = auth.requests().iter().map(|r| r.conn).collect();
        assert!(conns.len() <= 2);
        // The client connection stayed open across all 30 requests and the backend switches.
        let resp = conn.get(&host, "/health");
        assert_eq!(resp.header("x-origin"), Some("auth"));
    }
}

per_driver! {
    fn seed_path_matching_is_case_insensitive_like_caddy(driver) {
        let auth = Origin::start_localhost("auth");
        let moshi = Origin::start_localhost("moshi");
        let proxy = Proxy::start(&seed_caddyfile(auth.port(), moshi.port()), driver);
        let mut conn = proxy.connect();
        for (path, backend) in [("/API/Auth/login", "auth"), ("/HEALTH", "auth"), ("/Api/Build_Info", "moshi")] {
            let resp = conn.get(&proxy.host(), path);
            assert_eq!(resp.status, 200);
            assert_eq!(resp.header("x-origin"), Some(backend), "{path}");
            // The upstream gets the path as the client sent it.
            assert_eq!(resp.header("x-request-target"), Some(path));
        }
    }
}

per_driver! {
    fn seed_websocket_route_reaches_moshi_server(driver) {
        let auth = Origin::start_localhost("auth");
        let moshi = WsOrigin::start();
        let proxy = Proxy::start(
            &seed_caddyfile(auth.port(), moshi.port()).replace(&format!("localhost:{}", moshi.port()), &moshi.addr.to_string()),
            driver,
        );
        let mut ws = ws_connect(proxy.stream(), &proxy.host(), "/api/chat");
        ws.send(tungstenite::Message::Binary(b"audio frame".to_vec())).unwrap();
        assert_eq!(ws.read().unwrap(), tungstenite::Message::Binary(b"audio frame".to_vec()));
        ws.close(None).unwrap();
        assert_eq!(moshi.handshakes()[0].path, "/api/chat");
        assert!(auth.requests().is_empty());
    }
}
