//! `forward_auth`: the auth server decides before the upstream sees a byte. An allowed request
//! goes on with `copy_headers` copied in (a client's own value for those names never does); a
//! denied one gets the auth server's answer as it was given and the upstream sees nothing, a
//! WebSocket upgrade included; a request body waits for the real upstream; an auth server that
//! cannot be reached is a 502; the auth connection is kept alive across requests.
//!
//! The auth server is [`AuthServer`], written here: a thread-per-connection HTTP/1.1 server
//! that allows a request whose `Authorization` is `Bearer good` (with `X-User-Id: 42` and
//! `X-Plan: pro`) or `Bearer anon` (with neither), answers `Bearer garbage` with an invalid
//! status line, never answers `Bearer hang`, and answers anything else 401 with a
//! `WWW-Authenticate` challenge and a chunked body.

use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use tungstenite::Message;

use crate::support::net::IO_TIMEOUT;
use crate::support::origin::Origin;
use crate::support::per_driver;
use crate::support::ws::{ws_connect, WsOrigin};
use crate::support::Proxy;

/// The body of every denial.
const DENIED: &str = "no entry without a token\n";

/// One request as the auth server received it.
#[derive(Debug, Clone)]
struct Asked {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    /// Which accepted connection (0, 1, …) carried it.
    conn: usize,
}

impl Asked {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

struct Shared {
    asked: Mutex<Vec<Asked>>,
    conns: AtomicUsize,
    stop: AtomicBool,
}

/// The test's auth server on `127.0.0.1:<ephemeral>`; stops accepting on drop.
struct AuthServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl AuthServer {
    fn start() -> AuthServer {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            asked: Mutex::new(Vec::new()),
            conns: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
        });
        let accepting = shared.clone();
        let acceptor = thread::spawn(move || {
            // Polled against the stop flag so that drop can join this thread.
            listener.set_nonblocking(true).unwrap();
            while !accepting.stop.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        stream.set_nonblocking(false).unwrap();
                        let conn = accepting.conns.fetch_add(1, Ordering::SeqCst);
                        let shared = accepting.clone();
                        thread::spawn(move || serve(stream, conn, &shared));
                    }
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        AuthServer { addr, shared, acceptor: Some(acceptor) }
    }

    fn asked(&self) -> Vec<Asked> {
        self.shared.asked.lock().unwrap().clone()
    }
}

impl Drop for AuthServer {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

/// Answer bodiless requests on one connection until it closes.
fn serve(stream: TcpStream, conn: usize, shared: &Shared) {
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let (method, target) =
            (parts.next().unwrap_or("").to_string(), parts.next().unwrap_or("").to_string());
        let mut headers = Vec::new();
        loop {
            let mut field = String::new();
            if reader.read_line(&mut field).unwrap_or(0) == 0 {
                return;
            }
            let field = field.trim_end();
            if field.is_empty() {
                break;
            }
            if let Some((name, value)) = field.split_once(':') {
                headers.push((name.to_string(), value.trim().to_string()));
            }
        }
        let asked = Asked { method, target, headers, conn };
        let answer = match asked.header("authorization") {
            // A body the proxy must read away before it can reuse the connection.
            Some("Bearer good") => {
                "HTTP/1.1 200 OK\r\nX-User-Id: 42\r\nX-Plan: pro\r\nContent-Length: 2\r\n\r\nok"
                    .to_string()
            }
            Some("Bearer anon") => "HTTP/1.1 204 No Content\r\n\r\n".to_string(),
            Some("Bearer garbage") => "HTTP/1.1 2OO OK\r\n\r\n".to_string(),
            Some("Bearer hang") => {
                shared.asked.lock().unwrap().push(asked);
                // Longer than the tests' response_header_timeout; then the connection ends.
                thread::sleep(Duration::from_secs(3));
                return;
            }
            _ => format!(
                "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer realm=\"voice\"\r\n\
                 X-User-Id: 42\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{DENIED}\r\n0\r\n\r\n",
                DENIED.len()
            ),
        };
        let head_only = asked.method == "HEAD";
        shared.asked.lock().unwrap().push(asked);
        let answer = match head_only {
            true => answer.split("\r\n\r\n").next().unwrap().to_string() + "\r\n\r\n",
            false => answer,
        };
        if writer.write_all(answer.as_bytes()).is_err() {
            return;
        }
    }
}

/// The user's Caddyfile: the stream paths guarded, everything proxied to `upstream`.
fn guarded_site(auth: SocketAddr, upstream: impl std::fmt::Display) -> String {
    format!(
        "$SITE {{\n\t@streams path /api/chat /api/asr /api/tts_streaming /api/upload\n\t\
         forward_auth @streams {auth} {{\n\t\turi /api/auth/verify\n\t\t\
         copy_headers X-User-Id X-Plan>X-User-Plan\n\t}}\n\treverse_proxy {upstream}\n}}\n"
    )
}

fn get(proxy: &Proxy, path: &str, extra: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: {}\r\n{extra}\r\n", proxy.host()).into_bytes()
}

per_driver! {
    fn an_allowed_request_reaches_the_upstream_with_the_copied_headers(setup) {
        let (auth, origin) = (AuthServer::start(), Origin::start("speech"));
        let proxy = Proxy::start(&guarded_site(auth.addr, origin.addr), setup);
        let mut conn = proxy.connect();
        let fields = "Authorization: Bearer good\r\nX-Plan: free\r\n";
        conn.send(&get(&proxy, "/api/chat?lang=fr", fields));
        let resp = conn.response("GET");
        assert_eq!((resp.status, resp.text().as_str()), (200, "speech GET /api/chat?lang=fr"));
        let seen = &origin.requests()[0];
        assert_eq!(seen.headers_named("x-user-id"), ["42"]);
        assert_eq!(seen.headers_named("x-user-plan"), ["pro"]);
        assert_eq!(seen.header("x-plan"), Some("free"), "only the copied names are replaced");
        let asked = &auth.asked()[0];
        // As Caddy's rewrite: a `uri` without a query keeps the client's.
        let (method, target) = (asked.method.as_str(), asked.target.as_str());
        assert_eq!((method, target), ("GET", "/api/auth/verify?lang=fr"));
        assert_eq!(asked.header("x-forwarded-method"), Some("GET"));
        assert_eq!(asked.header("x-forwarded-uri"), Some("/api/chat?lang=fr"));
        assert_eq!(asked.header("authorization"), Some("Bearer good"));
        assert_eq!(asked.header("x-forwarded-for"), Some("127.0.0.1"));
        assert_eq!(asked.header("x-forwarded-proto"), Some(setup.leg.scheme()));
        assert_eq!(asked.header("host"), Some(proxy.host().as_str()));
        // Unguarded paths never ask.
        conn.send(&get(&proxy, "/health", ""));
        assert_eq!(conn.response("GET").status, 200);
        assert_eq!(auth.asked().len(), 1);
    }
}

per_driver! {
    fn a_denied_request_gets_the_auth_servers_answer_and_the_upstream_sees_nothing(setup) {
        let (auth, origin) = (AuthServer::start(), Origin::start("speech"));
        let proxy = Proxy::start(&guarded_site(auth.addr, origin.addr), setup);
        let mut conn = proxy.connect();
        conn.send(&get(&proxy, "/api/asr", "Authorization: Bearer stolen\r\n"));
        let resp = conn.response("GET");
        assert_eq!(resp.status, 401);
        assert_eq!(resp.header("www-authenticate"), Some("Bearer realm=\"voice\""));
        assert_eq!(resp.text(), DENIED);
        // The client connection goes on: the next request on it is served.
        conn.send(&get(&proxy, "/api/asr", "Authorization: Bearer good\r\n"));
        assert_eq!(conn.response("GET").status, 200);
        let paths: Vec<String> = origin.requests().iter().map(|r| r.target.clone()).collect();
        assert_eq!(paths, ["/api/asr"], "only the allowed request reached the upstream");
        assert_eq!(origin.connections(), 1);
        // A HEAD is denied with the head alone.
        conn.send(format!("HEAD /api/asr HTTP/1.1\r\nHost: {}\r\n\r\n", proxy.host()).as_bytes());
        let resp = conn.response("HEAD");
        assert_eq!(resp.status, 401);
        assert!(resp.body.is_empty());
        conn.send(&get(&proxy, "/api/asr", "Authorization: Bearer good\r\n"));
        assert_eq!(conn.response("GET").status, 200, "nothing was left on the connection");
    }
}

per_driver! {
    fn a_client_can_never_forge_a_copied_header(setup) {
        let (auth, origin) = (AuthServer::start(), Origin::start("speech"));
        let proxy = Proxy::start(&guarded_site(auth.addr, origin.addr), setup);
        let mut conn = proxy.connect();
        let forged = "X-User-Id: 1\r\nx-user-id: admin\r\nX-User-Plan: enterprise\r\n";
        let path = "/api/tts_streaming";
        conn.send(&get(&proxy, path, &format!("Authorization: Bearer good\r\n{forged}")));
        assert_eq!(conn.response("GET").status, 200);
        conn.send(&get(&proxy, path, &format!("Authorization: Bearer anon\r\n{forged}")));
        assert_eq!(conn.response("GET").status, 200);
        let seen = origin.requests();
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0].headers_named("x-user-id"), ["42"]);
        assert_eq!(seen[0].headers_named("x-user-plan"), ["pro"]);
        if proxy.skip_on_caddy(
            "Caddy 2.6 sends the literal {http.reverse_proxy.header.X-User-Id} upstream when the \
             auth server sends none; 2.11 removes the field, as ringproxy does",
        ) {
            return;
        }
        assert!(seen[1].headers_named("x-user-id").is_empty(), "{:?}", seen[1].headers);
        assert!(seen[1].headers_named("x-user-plan").is_empty(), "{:?}", seen[1].headers);
    }
}

per_driver! {
    fn a_denied_websocket_upgrade_never_reaches_the_speech_backend(setup) {
        let (auth, speech) = (AuthServer::start(), WsOrigin::start());
        let proxy = Proxy::start(&guarded_site(auth.addr, speech.addr), setup);
        let mut conn = proxy.connect();
        conn.send(&get(
            &proxy,
            "/api/chat",
            "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n",
        ));
        let resp = conn.response("GET");
        assert_eq!(resp.status, 401);
        assert_eq!(resp.text(), DENIED);
        assert!(speech.handshakes().is_empty());
        let asked = &auth.asked()[0];
        assert_eq!(asked.header("sec-websocket-key"), Some("dGhlIHNhbXBsZSBub25jZQ=="));
        if !proxy.is_caddy() {
            // Caddy forwards the upgrade request's Upgrade to the auth server as it is.
            assert_eq!(asked.header("upgrade"), None, "the auth request never asks to switch");
        }
    }
}

per_driver! {
    fn an_allowed_websocket_upgrade_relays_frames_with_the_copied_headers(setup) {
        let (auth, speech) = (AuthServer::start(), WsOrigin::start());
        let caddyfile = guarded_site(auth.addr, speech.addr);
        let caddyfile = caddyfile.replace(
            "\t}\n\treverse_proxy",
            "\t\theader_up Authorization \"Bearer good\"\n\t}\n\treverse_proxy",
        );
        let proxy = Proxy::start(&caddyfile, setup);
        let mut ws = ws_connect(proxy.stream(), &proxy.host(), "/api/chat");
        ws.send(Message::Text("bonjour".into())).unwrap();
        let echoed = loop {
            match ws.read().unwrap() {
                Message::Text(text) => break text.to_string(),
                _ => continue,
            }
        };
        assert_eq!(echoed, "bonjour");
        let handshake = &speech.handshakes()[0];
        assert_eq!(handshake.header("x-user-id"), Some("42"));
        assert_eq!(auth.asked().len(), 1);
    }
}

per_driver! {
    fn an_authorized_body_reaches_the_upstream_intact(setup) {
        let (auth, origin) = (AuthServer::start(), Origin::start("speech"));
        let proxy = Proxy::start(&guarded_site(auth.addr, origin.addr), setup);
        let mut conn = proxy.connect();
        let body = "audio".repeat(2000);
        conn.send(
            format!(
                "POST /api/upload HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer good\r\n\
                 Content-Length: {}\r\n\r\n{body}",
                proxy.host(),
                body.len()
            )
            .as_bytes(),
        );
        let resp = conn.response("POST");
        assert_eq!((resp.status, resp.text()), (200, body.clone()));
        let chunked = format!(
            "POST /api/upload HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer good\r\n\
             Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            proxy.host()
        );
        conn.send(chunked.as_bytes());
        assert_eq!(conn.response("POST").text(), "hello");
        let asked = auth.asked();
        assert_eq!(asked[0].method, "GET");
        assert_eq!(asked[0].header("x-forwarded-method"), Some("POST"));
        for a in &asked {
            assert_eq!(a.header("content-length"), None, "{a:?}");
            assert_eq!(a.header("transfer-encoding"), None, "{a:?}");
        }
        let bodies: Vec<usize> = origin.requests().iter().map(|r| r.body.len()).collect();
        assert_eq!(bodies, [body.len(), 5]);
    }
}

per_driver! {
    fn a_denied_request_with_an_unread_body_ends_the_connection(setup) {
        let (auth, origin) = (AuthServer::start(), Origin::start("speech"));
        let proxy = Proxy::start(&guarded_site(auth.addr, origin.addr), setup);
        let mut conn = proxy.connect();
        conn.send(
            format!(
                "POST /api/upload HTTP/1.1\r\nHost: {}\r\nContent-Length: 5\r\n\r\nhello",
                proxy.host()
            )
            .as_bytes(),
        );
        let resp = conn.response("POST");
        assert_eq!(resp.status, 401);
        if proxy.skip_on_caddy("Caddy reads the unread body away and keeps the connection open") {
            return;
        }
        assert_eq!(resp.header("connection"), Some("close"));
        conn.expect_closed(Duration::from_secs(5));
        assert!(origin.requests().is_empty());
    }
}

per_driver! {
    fn an_auth_server_that_cannot_be_reached_is_a_502(setup) {
        let origin = Origin::start("speech");
        let gone = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap().local_addr().unwrap();
        let proxy = Proxy::start(&guarded_site(gone, origin.addr), setup);
        let mut conn = proxy.connect();
        conn.send(&get(&proxy, "/api/chat", "Authorization: Bearer good\r\n"));
        assert_eq!(conn.response("GET").status, 502);
        assert!(origin.requests().is_empty());
    }
}

per_driver! {
    fn an_auth_server_that_breaks_or_times_out_is_a_502_or_504_and_never_lets_through(setup) {
        let (auth, origin) = (AuthServer::start(), Origin::start("speech"));
        let caddyfile = guarded_site(auth.addr, origin.addr);
        let timeout = "\t\ttransport http {\n\t\t\tresponse_header_timeout 500ms\n\t\t}\n";
        let caddyfile =
            caddyfile.replace("\t}\n\treverse_proxy", &format!("{timeout}\t}}\n\treverse_proxy"));
        let proxy = Proxy::start(&caddyfile, setup);
        let mut conn = proxy.connect();
        conn.send(&get(&proxy, "/api/chat", "Authorization: Bearer garbage\r\n"));
        assert_eq!(conn.response("GET").status, 502);
        conn.send(&get(&proxy, "/api/chat", "Authorization: Bearer hang\r\n"));
        assert_eq!(conn.response("GET").status, 504);
        assert!(origin.requests().is_empty());
    }
}

per_driver! {
    fn forward_auth_guards_a_respond_too(setup) {
        let auth = AuthServer::start();
        let caddyfile = format!(
            "$SITE {{\n\tforward_auth {} {{\n\t\turi /verify\n\t}}\n\trespond \"secret\" 200\n}}\n",
            auth.addr
        );
        let proxy = Proxy::start(&caddyfile, setup);
        let mut conn = proxy.connect();
        conn.send(&get(&proxy, "/", "Authorization: Bearer stolen\r\n"));
        let resp = conn.response("GET");
        assert_eq!((resp.status, resp.text().as_str()), (401, DENIED));
        conn.send(&get(&proxy, "/", "Authorization: Bearer good\r\n"));
        let resp = conn.response("GET");
        assert_eq!((resp.status, resp.text().as_str()), (200, "secret"));
    }
}

per_driver! {
    fn the_auth_connection_is_kept_alive_across_requests(setup) {
        let (auth, origin) = (AuthServer::start(), Origin::start("speech"));
        let proxy = Proxy::start(&guarded_site(auth.addr, origin.addr), setup);
        // One client connection, so one worker and its one pool: after an absorbed 2xx (with
        // a body to read away) and a delivered denial, the same auth connection serves on.
        let mut conn = proxy.connect();
        for token in ["good", "stolen", "anon", "good"] {
            conn.send(&get(&proxy, "/api/chat", &format!("Authorization: Bearer {token}\r\n")));
            let _ = conn.response("GET");
        }
        let asked = auth.asked();
        assert_eq!(asked.len(), 4);
        if proxy.skip_on_caddy("Caddy leaves an allowing 2xx's body unread and closes") {
            return;
        }
        let conns: Vec<usize> = asked.iter().map(|a| a.conn).collect();
        assert_eq!(conns, [0, 0, 0, 0]);
        assert_eq!(auth.shared.conns.load(Ordering::SeqCst), 1);
        assert_eq!(origin.requests().len(), 3);
    }
}

per_driver! {
    fn the_routes_header_ops_shape_the_auth_servers_denial_too(setup) {
        let (auth, origin) = (AuthServer::start(), Origin::start("speech"));
        let caddyfile = guarded_site(auth.addr, origin.addr).replacen(
            "$SITE {\n",
            "$SITE {\n\theader Strict-Transport-Security \"max-age=31536000\"\n",
            1,
        );
        let proxy = Proxy::start(&caddyfile, setup);
        let mut conn = proxy.connect();
        conn.send(&get(&proxy, "/api/asr", "Authorization: Bearer stolen\r\n"));
        let resp = conn.response("GET");
        assert_eq!(resp.status, 401);
        assert_eq!(resp.header("strict-transport-security"), Some("max-age=31536000"));
        assert_eq!(resp.header("www-authenticate"), Some("Bearer realm=\"voice\""));
        assert_eq!(resp.text(), DENIED);
    }
}
