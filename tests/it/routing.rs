//! Routing: the seed deployment's Caddyfile (auth server + moshi-server), with its domain
//! replaced by the harness's catch-all `$SITE`, sends each request on one keep-alive connection
//! to the right backend, which learns the client's scheme from `X-Forwarded-Proto`.

use crate::support::origin::Origin;
use crate::support::ws::{ws_connect, WsOrigin};
use crate::support::{per_driver, Proxy};

/// The seed's Caddyfile ("With Auth Server"), verbatim apart from the site address and the two
/// upstream ports.
fn seed_caddyfile(auth_port: u16, moshi_port: u16) -> String {
    r#"
$SITE {
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
    fn seed_routes_alternate_between_backends_on_one_keepalive_connection(setup) {
        let auth = Origin::start_localhost("auth");
        let moshi = Origin::start_localhost("moshi");
        let proxy = Proxy::start(&seed_caddyfile(auth.port(), moshi.port()), setup);
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
            for rec in origin.requests() {
                assert_eq!(rec.headers_named("x-forwarded-proto"), [setup.leg.scheme()], "{name} {}", rec.target);
            }
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
    fn seed_path_matching_is_case_insensitive_like_caddy(setup) {
        let auth = Origin::start_localhost("auth");
        let moshi = Origin::start_localhost("moshi");
        let proxy = Proxy::start(&seed_caddyfile(auth.port(), moshi.port()), setup);
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
    fn seed_websocket_route_reaches_moshi_server(setup) {
        let auth = Origin::start_localhost("auth");
        let moshi = WsOrigin::start();
        let proxy = Proxy::start(
            &seed_caddyfile(auth.port(), moshi.port()).replace(&format!("localhost:{}", moshi.port()), &moshi.addr.to_string()),
            setup,
        );
        let mut ws = ws_connect(proxy.stream(), &proxy.host(), "/api/chat");
        ws.send(tungstenite::Message::Binary(b"audio frame".to_vec())).unwrap();
        assert_eq!(ws.read().unwrap(), tungstenite::Message::Binary(b"audio frame".to_vec()));
        ws.close(None).unwrap();
        let hs = &moshi.handshakes()[0];
        assert_eq!(hs.path, "/api/chat");
        assert_eq!(hs.header("x-forwarded-proto"), Some(setup.leg.scheme()));
        assert!(auth.requests().is_empty());
    }
}

per_driver! {
    fn respond_and_redir_answer_without_contacting_an_upstream(setup) {
        let origin = Origin::start("o");
        let proxy = Proxy::start(
            &format!(
                "$SITE {{\n\trespond /hello \"hi there\" 201\n\tredir /old /new 301\n\treverse_proxy {}\n}}\n",
                origin.addr
            ),
            setup,
        );
        let mut conn = proxy.connect();
        let resp = conn.get(&proxy.host(), "/hello");
        assert_eq!((resp.status, resp.text().as_str()), (201, "hi there"));
        let resp = conn.get(&proxy.host(), "/old");
        assert_eq!(resp.status, 301);
        assert_eq!(resp.header("location"), Some("/new"));
        conn.send(format!("HEAD /hello HTTP/1.1\r\nHost: {}\r\n\r\n", proxy.host()).as_bytes());
        let resp = conn.response("HEAD");
        assert_eq!(resp.status, 201);
        let resp = conn.get(&proxy.host(), "/proxied");
        assert_eq!(resp.header("x-origin"), Some("o"));
        let paths: Vec<String> = origin.requests().iter().map(|r| r.target.clone()).collect();
        assert_eq!(paths, ["/proxied"]);
    }
}

per_driver! {
    plain_only("its sites are written out as `http://` virtual hosts")
    fn sites_on_one_port_are_chosen_by_host_on_one_keepalive_connection(setup) {
        let a = Origin::start("a");
        let b = Origin::start("b");
        let proxy = Proxy::start(
            &format!(
                "http://a.example:$PORT {{\n\treverse_proxy {}\n}}\n\nhttp://b.example:$PORT {{\n\treverse_proxy {}\n}}\n",
                a.addr, b.addr
            ),
            setup,
        );
        let port = proxy.port();
        let mut conn = proxy.connect();
        for i in 0..4 {
            for (host, name) in [(format!("a.example:{port}"), "a"), (format!("B.EXAMPLE:{port}"), "b"), ("a.example".to_string(), "a")] {
                let resp = conn.get(&host, &format!("/{i}"));
                assert_eq!(resp.status, 200);
                assert_eq!(resp.header("x-origin"), Some(name), "Host {host}");
            }
        }
        // A host no site serves reaches no backend (Caddy answers an empty 200; 404/421 would do).
        let resp = conn.get("unknown.example", "/x");
        assert!([200, 404, 421].contains(&resp.status), "status {}", resp.status);
        assert!(resp.body.is_empty() || resp.status != 200);
        assert_eq!(a.requests().len() + b.requests().len(), 12);
    }
}
