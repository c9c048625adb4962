//! Header rewriting on the way up and down: Host kept, X-Forwarded-* replaced (a client is not
//! a trusted proxy, so its own values must not survive), hop-by-hop headers removed in both
//! directions, and `header_up`/`header_down` applied.

use crate::support::origin::Origin;
use crate::support::proxy::Leg;
use crate::support::{per_driver, Proxy};

/// Lower-case tokens of every Connection header value.
fn connection_tokens(values: &[&str]) -> Vec<String> {
    values
        .iter()
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect()
}

per_driver! {
    fn host_is_kept_and_forwarded_headers_are_replaced_not_appended(setup) {
        let origin = Origin::start("o");
        let proxy = setup.proxy_to(origin.addr);
        let mut conn = proxy.connect();
        // The spoofed scheme is the other leg's, so that passing it on shows on either leg.
        let spoofed_proto = match setup.leg { Leg::Plain => "https", Leg::Tls => "http" };
        conn.send(
            format!(
                "GET /fwd HTTP/1.1\r\nHost: app.example.test:8443\r\nX-Forwarded-For: 6.6.6.6\r\n\
                 X-Forwarded-For: 7.7.7.7\r\nX-Forwarded-Proto: {spoofed_proto}\r\nX-Forwarded-Host: evil.example\r\n\r\n"
            )
            .as_bytes(),
        );
        assert_eq!(conn.response("GET").status, 200);
        let rec = &origin.requests()[0];
        assert_eq!(rec.headers_named("host"), ["app.example.test:8443"]);
        assert_eq!(rec.headers_named("x-forwarded-for"), ["127.0.0.1"], "client's spoofed addresses must be dropped");
        assert!(rec.peer.ip().is_loopback());
        assert_eq!(rec.headers_named("x-forwarded-proto"), [setup.leg.scheme()]);
        assert_eq!(rec.headers_named("x-forwarded-host"), ["app.example.test:8443"]);
        assert_eq!(rec.target, "/fwd");
    }
}

per_driver! {
    fn every_hop_by_hop_request_header_is_removed(setup) {
        let origin = Origin::start("o");
        let proxy = setup.proxy_to(origin.addr);
        let mut conn = proxy.connect();
        conn.send(
            format!(
                "POST /hop HTTP/1.1\r\nHost: {}\r\nConnection: keep-alive, X-Client-Hop, x-second-hop\r\n\
                 X-Client-Hop: secret\r\nX-Second-Hop: secret2\r\nKeep-Alive: timeout=5\r\n\
                 Proxy-Connection: keep-alive\r\nTE: gzip\r\nTrailer: X-Late\r\nUpgrade: h2c\r\n\
                 X-End-To-End: kept\r\nContent-Length: 4\r\n\r\nbody",
                proxy.host()
            )
            .as_bytes(),
        );
        let resp = conn.response("POST");
        assert_eq!(resp.status, 200);
        assert_eq!(resp.body, b"body");
        let rec = &origin.requests()[0];
        for name in ["x-client-hop", "x-second-hop", "keep-alive", "proxy-connection", "te", "trailer", "upgrade"] {
            assert!(rec.header(name).is_none(), "{name} reached the backend: {:?}", rec.headers);
        }
        // The proxy may speak for its own upstream connection, but never relays the client's list.
        for token in connection_tokens(&rec.headers_named("connection")) {
            assert!(token == "keep-alive" || token == "close", "Connection token {token:?} reached the backend");
        }
        assert_eq!(rec.header("x-end-to-end"), Some("kept"));
        assert_eq!(rec.body, b"body");
    }
}

per_driver! {
    fn every_hop_by_hop_response_header_is_removed(setup) {
        let origin = Origin::start("o");
        let proxy = setup.proxy_to(origin.addr);
        let mut conn = proxy.connect();
        let resp = conn.get(&proxy.host(), "/hop-headers");
        assert_eq!(resp.status, 200);
        assert_eq!(resp.body, b"hop");
        for name in ["x-resp-hop", "proxy-connection", "upgrade"] {
            assert!(resp.header(name).is_none(), "{name} reached the client: {:?}", resp.headers);
        }
        assert!(resp.headers_named("keep-alive").iter().all(|v| !v.contains("99")), "origin's Keep-Alive reached the client");
        for token in connection_tokens(&resp.headers_named("connection")) {
            assert!(token == "keep-alive" || token == "close", "Connection token {token:?} reached the client");
        }
        assert_eq!(resp.header("x-end-to-end"), Some("kept"));
        // The origin's `Connection: X-Resp-Hop` must not have closed the client connection.
        assert_eq!(conn.get(&proxy.host(), "/again").status, 200);
    }
}

per_driver! {
    fn header_up_and_header_down_set_add_and_remove(setup) {
        let origin = Origin::start("o");
        let caddyfile = format!(
            r#"$SITE {{
	reverse_proxy {} {{
		header_up X-Set up-value
		header_up +X-Add added
		header_up -X-Remove
		header_up X-Client-Ip {{remote_host}}
		header_down X-Down-Set proxy-value
		header_down +X-Down-Add proxy-added
		header_down -X-Origin-Secret
	}}
}}
"#,
            origin.addr
        );
        let proxy = Proxy::start(&caddyfile, setup);
        let mut conn = proxy.connect();
        conn.send(
            format!(
                "GET /header-down HTTP/1.1\r\nHost: {}\r\nX-Set: client-value\r\nX-Add: from-client\r\nX-Remove: gone\r\n\r\n",
                proxy.host()
            )
            .as_bytes(),
        );
        let resp = conn.response("GET");
        assert_eq!(resp.status, 200);
        let rec = &origin.requests()[0];
        assert_eq!(rec.headers_named("x-set"), ["up-value"]);
        let mut added: Vec<&str> = rec.headers_named("x-add").iter().flat_map(|v| v.split(',')).map(str::trim).collect();
        added.sort();
        assert_eq!(added, ["added", "from-client"]);
        assert!(rec.header("x-remove").is_none());
        assert_eq!(rec.header("x-client-ip"), Some("127.0.0.1"));

        assert_eq!(resp.headers_named("x-down-set"), ["proxy-value"]);
        let mut added: Vec<&str> = resp.headers_named("x-down-add").iter().flat_map(|v| v.split(',')).map(str::trim).collect();
        added.sort();
        assert_eq!(added, ["from-origin", "proxy-added"]);
        assert!(resp.header("x-origin-secret").is_none());
        assert_eq!(resp.body, b"down");
    }
}

per_driver! {
    fn header_down_templates_can_name_the_request(setup) {
        let origin = Origin::start("o");
        let caddyfile = format!(
            r#"$SITE {{
	reverse_proxy {} {{
		header_down X-Request "{{method}} {{uri}} {{host}}"
	}}
}}
"#,
            origin.addr
        );
        let proxy = Proxy::start(&caddyfile, setup);
        let mut conn = proxy.connect();
        // Twice on one connection: the second head sits at a different place in the buffer.
        for path in ["/first?a=1", "/second/path?b=2"] {
            conn.send(format!("GET {path} HTTP/1.1\r\nHost: {}\r\n\r\n", proxy.host()).as_bytes());
            let resp = conn.response("GET");
            assert_eq!(resp.status, 200);
            let host = proxy.host();
            let bare_host = host.rsplit_once(':').map(|(h, _)| h).unwrap_or(&host);
            assert_eq!(resp.headers_named("x-request"), [format!("GET {path} {bare_host}")]);
        }
    }
}
