//! What over TLS is not a leg of another test: the seed deployment's Caddyfile as a named HTTPS
//! site with `tls <cert> <key>` (files from a CA generated here) and, separately, as a
//! `localhost` site on the local CA, serving the seed's routes through verifying rustls
//! clients; and stalled TLS handshakes. Every other data-path test runs over TLS as its
//! `tls_*` leg (`support::proxy::per_driver!`).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::support::client::{ClientStream, HttpConn};
use crate::support::net::IO_TIMEOUT;
use crate::support::origin::Origin;
use crate::support::proxy::{target, Target, TLS_NAME};
use crate::support::tls_client::{client_config, root_from_pem_file, TestCa};
use crate::support::{per_driver, Proxy};

/// The seed's handlers ("With Auth Server"), verbatim apart from the two upstream ports.
fn seed_handlers(auth_port: u16, moshi_port: u16) -> String {
    format!(
        "\t# Auth server routes\n\
         \thandle /api/auth/* {{\n\t\treverse_proxy localhost:{auth_port}\n\t}}\n\
         \thandle /health {{\n\t\treverse_proxy localhost:{auth_port}\n\t}}\n\n\
         \t# Everything else goes to moshi-server\n\
         \thandle {{\n\t\treverse_proxy localhost:{moshi_port}\n\t}}\n"
    )
}

/// Three rounds of the seed's routes on one keep-alive connection: each request reaches the
/// right backend, which sees `X-Forwarded-Proto: https`.
fn check_seed_routes(conn: &mut HttpConn, host: &str, auth: &Origin, moshi: &Origin) {
    let plan: &[(&str, &str, &str)] = &[
        ("POST", "/api/auth/login", "auth"),
        ("GET", "/api/build_info", "moshi"),
        ("GET", "/health", "auth"),
        ("GET", "/", "moshi"),
        ("GET", "/api/auth/session?x=1", "auth"),
        ("POST", "/api/tts", "moshi"),
    ];
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
                conn.send(format!("GET {target} HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes());
            }
            let resp = conn.response(method);
            assert_eq!(resp.status, 200, "{method} {target}: {}", resp.text());
            assert_eq!(
                resp.header("x-origin"),
                Some(*backend),
                "{method} {target} went to the wrong backend"
            );
            let expected = if *method == "POST" { body } else { format!("{backend} GET {target}") };
            assert_eq!(resp.text(), expected, "{method} {target}");
        }
    }
    for (origin, name) in [(auth, "auth"), (moshi, "moshi")] {
        let expected: Vec<String> = (0..3)
            .flat_map(|_| {
                plan.iter().filter(|(_, _, b)| *b == name).map(|(m, t, _)| format!("{m} {t}"))
            })
            .collect();
        let seen = origin.wait_for_requests(expected.len(), IO_TIMEOUT);
        assert_eq!(
            seen.iter().map(|r| format!("{} {}", r.method, r.target)).collect::<Vec<_>>(),
            expected,
            "requests seen by {name}"
        );
        for rec in &seen {
            assert_eq!(rec.header("x-forwarded-proto"), Some("https"), "{name} {}", rec.target);
            assert_eq!(rec.headers_named("x-forwarded-proto").len(), 1);
        }
    }
}

per_driver! {
    tls_only("the seed's site has a host name and a `tls` line")
    fn seed_routes_over_https_alternate_backends_on_one_keepalive_connection_with_forwarded_proto_https(setup) {
        let auth = Origin::start_localhost("auth");
        let moshi = Origin::start_localhost("moshi");
        let caddyfile = format!("{TLS_NAME}:$PORT {{\n\t$TLS\n{}}}\n", seed_handlers(auth.port(), moshi.port()));
        let proxy = Proxy::start(&caddyfile, setup);
        let mut conn = proxy.connect();
        assert_eq!(conn.stream.tls().unwrap().alpn_protocol(), Some(&b"http/1.1"[..]));
        check_seed_routes(&mut conn, &proxy.host(), &auth, &moshi);
        // Still the same connection; a client's own X-Forwarded-Proto is replaced, not passed on.
        conn.send(format!("GET /health HTTP/1.1\r\nHost: {}\r\nX-Forwarded-Proto: http\r\n\r\n", proxy.host()).as_bytes());
        let resp = conn.response("GET");
        assert_eq!(resp.header("x-origin"), Some("auth"));
        let last = auth.wait_for_requests(10, IO_TIMEOUT).pop().unwrap();
        assert_eq!(last.target, "/health");
        assert_eq!(last.headers_named("x-forwarded-proto"), vec!["https"]);
    }
}

const STALLED: usize = 200;

/// The first bytes of a ClientHello: a handshake record header announcing 512 bytes, the
/// handshake header and the client version. The proxy cannot finish parsing it.
const PARTIAL_HELLO: &[u8] = &[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03];

per_driver! {
    tls_only("it stalls TLS handshakes")
    fn two_hundred_stalled_tls_handshakes_neither_delay_a_normal_client_nor_outlive_the_handshake_timeout(setup) {
        if target() == Target::Caddy {
            eprintln!("SKIPPED against Caddy: it has no TLS handshake timeout option");
            return;
        }
        let origin = Origin::start("o");
        let proxy = Proxy::start(
            &format!(
                "{{\n\tservers {{\n\t\ttimeouts {{\n\t\t\ttls_handshake 1s\n\t\t}}\n\t}}\n}}\n\n$SITE {{\n\treverse_proxy {}\n}}\n",
                origin.addr
            ),
            setup,
        );
        let started = Instant::now();
        let mut stalled: Vec<TcpStream> = (0..STALLED)
            .map(|_| {
                let mut s = TcpStream::connect_timeout(&proxy.addr(), Duration::from_secs(5)).unwrap();
                s.write_all(PARTIAL_HELLO).unwrap();
                s
            })
            .collect();

        // One more ClientHello byte on each every 100 ms (well inside the announced record),
        // so that only a deadline on the whole handshake, not an idle timer, can close them.
        let stop = Arc::new(AtomicBool::new(false));
        let trickler = {
            let stop = stop.clone();
            let mut writers: Vec<Option<TcpStream>> = stalled.iter().map(|s| Some(s.try_clone().unwrap())).collect();
            thread::spawn(move || {
                for _ in 0..100 {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    for w in writers.iter_mut() {
                        if w.as_mut().is_some_and(|s| s.write_all(&[0x42]).is_err()) {
                            *w = None;
                        }
                    }
                    thread::sleep(Duration::from_millis(100));
                }
            })
        };

        // Normal clients, all within half the handshake timeout, so that the check for early
        // closes below starts before the timeout would run out.
        let mut worst = Duration::ZERO;
        for i in 0..10 {
            let t = Instant::now();
            let resp = proxy.connect().get(&proxy.host(), &format!("/normal/{i}"));
            assert_eq!(resp.status, 200);
            worst = worst.max(t.elapsed());
            thread::sleep(Duration::from_millis(40));
        }
        assert!(worst < Duration::from_secs(1), "a normal TLS client took {worst:?} among {STALLED} stalled handshakes");

        let deadline = started + Duration::from_secs(5);
        let mut open = 0;
        let mut first_closed_after = None;
        for s in &mut stalled {
            let mut buf = [0u8; 1024];
            let closed = loop {
                let now = Instant::now();
                if now >= deadline {
                    break false;
                }
                s.set_read_timeout(Some(deadline - now)).unwrap();
                match s.read(&mut buf) {
                    // An alert may come before the close.
                    Ok(n) if n > 0 => continue,
                    Ok(_) => break true,
                    Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => break false,
                    Err(_) => break true,
                }
            };
            if closed && first_closed_after.is_none() {
                first_closed_after = Some(started.elapsed());
            }
            if !closed {
                open += 1;
            }
        }
        stop.store(true, Ordering::SeqCst);
        trickler.join().unwrap();
        assert_eq!(open, 0, "{open} of {STALLED} stalled handshakes still open {:?} after they started", started.elapsed());
        // The first connection (opened at `started`) cannot have been closed before the
        // timeout; this is a lower bound that a loaded machine cannot break.
        let first = first_closed_after.unwrap();
        assert!(first >= Duration::from_millis(900), "a stalled handshake was closed after only {first:?}");
        assert!(origin.requests_to("/normal/0").len() == 1);
    }
}

per_driver! {
    tls_only("the site is `localhost`, on the local CA")
    fn localhost_site_certificate_chains_to_the_local_root_in_storage_and_serves_the_seed_routes(setup) {
        if target() == Target::Caddy {
            // Caddy would try to install its local root into this machine's trust store.
            eprintln!("SKIPPED against Caddy: its local CA installs the root system-wide");
            return;
        }
        let auth = Origin::start_localhost("auth");
        let moshi = Origin::start_localhost("moshi");
        let caddyfile = format!("localhost:$PORT {{\n{}}}\n", seed_handlers(auth.port(), moshi.port()));
        let proxy = Proxy::start(&caddyfile, setup);
        let root_path = proxy.storage_dir().join("pki/authorities/local/root.crt");
        assert!(root_path.is_file(), "no local root at {}", root_path.display());
        let trusting = client_config(&[root_from_pem_file(&root_path)]);

        // A client that trusts some other root refuses the certificate: the chain is real.
        let stranger = client_config(&[TestCa::new("stranger").root()]);
        let err = ClientStream::try_connect_tls(proxy.addr(), "localhost", &stranger)
            .err()
            .expect("a client trusting another root accepted the local CA's certificate");
        assert!(err.to_string().contains("UnknownIssuer"), "{err}");

        let mut conn = HttpConn::new(ClientStream::connect_tls(proxy.addr(), "localhost", &trusting));
        assert!(!conn.stream.peer_chain().is_empty());
        check_seed_routes(&mut conn, &format!("localhost:{}", proxy.port()), &auth, &moshi);
    }
}
