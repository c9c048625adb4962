//! TLS termination over real sockets: rustls clients (ring) against `ringproxy::tls` running in
//! a monoio runtime on a thread, on both the io_uring and the epoll driver, with an echo loop
//! over `TlsStream`. Certificates come from a CA generated here with rcgen, or from the local
//! CA in a temporary storage directory.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::rc::Rc;
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use ringproxy::config::{
    Admin, Config, Globals, HostPattern, ListenerConfig, ListenerKind, Origin, Site, TlsPolicy,
};
use ringproxy::net::stream::{PlainStream, Stream};
use ringproxy::server::DriverChoice;
use ringproxy::tls::{self, TlsAcceptError, TlsAcceptor, TlsContext, TlsStream};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, HandshakeKind, ProtocolVersion, StreamOwned};

use crate::support::per_driver;
use crate::support::temp::temp_dir;
use crate::support::tls_client::TestCa;

// ---------------------------------------------------------------------------------------------
// Harness: a TLS echo server on a monoio runtime thread.

/// What the server does with an established session.
#[derive(Debug, Clone, Copy)]
enum Mode {
    /// Echo until the client half-closes, then flush, close_notify and shut down.
    Echo,
    /// Echo reading 7 bytes at a time and waiting for `readable()` before every read, as a
    /// relay does: decrypted bytes left inside rustls must count as readable.
    EchoTiny,
    /// Two tasks sharing one `Rc<TlsStream>`: one sends `n` pattern bytes, the other reads
    /// and checks `n` bytes from the client; both at once, as a relay does.
    Duplex(usize),
}

#[derive(Debug)]
enum Event {
    Handshook {
        sni: Option<String>,
        alpn: Option<Vec<u8>>,
        version: Option<ProtocolVersion>,
        kind: Option<HandshakeKind>,
    },
    Failed(Failure),
    /// Echo or duplex finished; bytes received from the client.
    Done(io::Result<u64>),
}

#[derive(Debug, PartialEq, Eq)]
enum Failure {
    Timeout,
    ClosedEarly,
    PlaintextHttp,
    NotTls,
    Handshake(String),
    Other(String),
}

impl From<TlsAcceptError> for Failure {
    fn from(e: TlsAcceptError) -> Self {
        match e {
            TlsAcceptError::Timeout => Failure::Timeout,
            TlsAcceptError::ClosedEarly => Failure::ClosedEarly,
            TlsAcceptError::PlaintextHttp => Failure::PlaintextHttp,
            TlsAcceptError::NotTls => Failure::NotTls,
            TlsAcceptError::Handshake(e) => Failure::Handshake(e.to_string()),
            other => Failure::Other(other.to_string()),
        }
    }
}

struct TestServer {
    addr: SocketAddr,
    events: mpsc::Receiver<Event>,
}

impl TestServer {
    fn start(
        ctx: &Arc<TlsContext>,
        driver: DriverChoice,
        handshake_timeout: Duration,
        mode: Mode,
    ) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, events) = mpsc::channel();
        let ctx = ctx.clone();
        std::thread::spawn(move || {
            let server = serve(listener, ctx, handshake_timeout, mode, tx);
            match driver {
                DriverChoice::IoUring | DriverChoice::Auto => {
                    monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
                        .enable_timer()
                        .build()
                        .expect("io_uring runtime")
                        .block_on(server)
                }
                DriverChoice::Epoll => monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
                    .enable_timer()
                    .build()
                    .expect("epoll runtime")
                    .block_on(server),
            }
        });
        TestServer { addr, events }
    }

    fn next(&self) -> Event {
        self.events.recv_timeout(Duration::from_secs(20)).expect("server event")
    }

    fn expect_handshake(
        &self,
    ) -> (Option<String>, Option<Vec<u8>>, Option<ProtocolVersion>, Option<HandshakeKind>) {
        match self.next() {
            Event::Handshook { sni, alpn, version, kind } => (sni, alpn, version, kind),
            other => panic!("expected a handshake, got {other:?}"),
        }
    }

    fn expect_failure(&self) -> Failure {
        match self.next() {
            Event::Failed(f) => f,
            other => panic!("expected a failed handshake, got {other:?}"),
        }
    }

    fn expect_done(&self) -> u64 {
        loop {
            match self.next() {
                Event::Done(r) => return r.expect("server side of the session"),
                Event::Handshook { .. } => continue,
                other => panic!("expected the session to finish, got {other:?}"),
            }
        }
    }
}

async fn serve(
    listener: std::net::TcpListener,
    ctx: Arc<TlsContext>,
    handshake_timeout: Duration,
    mode: Mode,
    tx: mpsc::Sender<Event>,
) {
    let listener = monoio::net::TcpListener::from_std(listener).unwrap();
    let acceptor = Rc::new(TlsAcceptor::new(&ctx));
    loop {
        let Ok((socket, _)) = listener.accept().await else { continue };
        let acceptor = acceptor.clone();
        let tx = tx.clone();
        monoio::spawn(async move {
            let sock = PlainStream::new(socket).unwrap();
            let tls = match acceptor.accept(sock, handshake_timeout).await {
                Ok(tls) => tls,
                Err(e) => {
                    let _ = tx.send(Event::Failed(e.into()));
                    return;
                }
            };
            let _ = tx.send(Event::Handshook {
                sni: tls.server_name(),
                alpn: tls.alpn_protocol(),
                version: tls.protocol_version(),
                kind: tls.handshake_kind(),
            });
            let result = match mode {
                Mode::Echo => echo(&tls).await,
                Mode::EchoTiny => echo_tiny(&tls).await,
                Mode::Duplex(n) => duplex(Rc::new(tls), n).await,
            };
            let _ = tx.send(Event::Done(result));
        });
    }
}

async fn read_some(s: &TlsStream, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match s.try_read(buf) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => s.readable().await?,
            other => return other,
        }
    }
}

async fn write_all(s: &TlsStream, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        match s.try_write(buf) {
            Ok(n) => buf = &buf[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => s.writable().await?,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

async fn finish(s: &TlsStream) -> io::Result<()> {
    while !s.try_flush()? {
        s.writable().await?;
    }
    loop {
        match s.shutdown_write() {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => s.writable().await?,
            Err(e) => return Err(e),
        }
    }
}

async fn echo(s: &TlsStream) -> io::Result<u64> {
    let mut buf = vec![0u8; 32 * 1024];
    let mut total = 0;
    loop {
        let n = read_some(s, &mut buf).await?;
        if n == 0 {
            break;
        }
        total += n as u64;
        write_all(s, &buf[..n]).await?;
    }
    finish(s).await?;
    Ok(total)
}

async fn echo_tiny(s: &TlsStream) -> io::Result<u64> {
    let mut buf = [0u8; 7];
    let mut total = 0;
    loop {
        s.readable().await?;
        let n = match s.try_read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        };
        total += n as u64;
        write_all(s, &buf[..n]).await?;
    }
    finish(s).await?;
    Ok(total)
}

/// Deterministic test bytes: position-dependent so reordering or loss is caught.
fn pattern(offset: usize, len: usize) -> Vec<u8> {
    (offset..offset + len).map(|i| (i.wrapping_mul(31) ^ (i >> 11)) as u8).collect()
}

async fn duplex(s: Rc<TlsStream>, n: usize) -> io::Result<u64> {
    let writer = s.clone();
    let send = monoio::spawn(async move {
        let mut sent = 0;
        while sent < n {
            let chunk = pattern(sent, (n - sent).min(7919));
            write_all(&writer, &chunk).await?;
            sent += chunk.len();
        }
        finish(&writer).await
    });
    let mut got = 0usize;
    let mut buf = vec![0u8; 5000];
    loop {
        let k = read_some(&s, &mut buf).await?;
        if k == 0 {
            break;
        }
        if buf[..k] != pattern(got, k)[..] {
            return Err(io::Error::other(format!("client bytes differ near offset {got}")));
        }
        got += k;
    }
    send.await?;
    Ok(got as u64)
}

// ---------------------------------------------------------------------------------------------
// Certificates and configuration.

fn site(host: &str, tls: TlsPolicy) -> Site {
    let hosts = if host.is_empty() {
        vec![]
    } else if let Some(suffix) = host.strip_prefix('*') {
        vec![HostPattern::Wildcard(suffix.to_owned())]
    } else {
        vec![HostPattern::Exact(host.to_owned())]
    };
    Site {
        hosts,
        tls,
        tls_options: Default::default(),
        routes: vec![],
        access_log: None,
        origin: Origin { file: "Caddyfile".into(), line: 1 },
    }
}

fn files(cert: &Path, key: &Path) -> TlsPolicy {
    TlsPolicy::Files { cert: cert.to_owned(), key: key.to_owned() }
}

fn config(sites: Vec<Site>) -> Config {
    Config {
        globals: Globals {
            admin: Admin::Off,
            grace_period: Duration::from_secs(1),
            ..Globals::default()
        },
        listeners: vec![ListenerConfig {
            bind: "127.0.0.1:0".parse().unwrap(),
            kind: ListenerKind::Tls,
            sites,
        }],
        upstream_sets: vec![],
    }
}

/// Two sites on one listener, each with its own certificate from one test CA.
fn two_sites() -> (TestCa, Arc<TlsContext>, Vec<CertificateDer<'static>>) {
    let ca = TestCa::new("two-sites");
    let (ac, ak) = ca.leaf("a", &["a.test"]);
    let (bc, bk) = ca.leaf("b", &["b.test", "*.b.test"]);
    let cfg = config(vec![
        site("a.test", files(&ac, &ak)),
        site("b.test", files(&bc, &bk)),
        site("*.b.test", files(&bc, &bk)),
    ]);
    // No site is on the local CA, so nothing is written to storage.
    let ctx = tls::prepare(&cfg, ca.dir()).unwrap();
    let leaves = [&ac, &bc].iter().map(|p| CertificateDer::from_pem_file(p).unwrap()).collect();
    (ca, ctx, leaves)
}

use rustls::pki_types::pem::PemObject;

// ---------------------------------------------------------------------------------------------
// Client side.

fn client_config(
    roots: &[CertificateDer<'static>],
    versions: &[&'static rustls::SupportedProtocolVersion],
    alpn: &[&[u8]],
) -> ClientConfig {
    let mut store = rustls::RootCertStore::empty();
    for root in roots {
        store.add(root.clone()).unwrap();
    }
    let mut cfg =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(versions)
            .unwrap()
            .with_root_certificates(store)
            .with_no_client_auth();
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    cfg
}

fn both_versions() -> Vec<&'static rustls::SupportedProtocolVersion> {
    vec![&rustls::version::TLS13, &rustls::version::TLS12]
}

type Client = StreamOwned<ClientConnection, TcpStream>;

/// Connect and complete the handshake; the error is the client's view (alerts received).
fn connect(addr: SocketAddr, name: &str, cfg: &Arc<ClientConfig>) -> Result<Client, rustls::Error> {
    let sock = TcpStream::connect(addr).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let server_name = ServerName::try_from(name.to_owned()).unwrap();
    let mut conn = ClientConnection::new(cfg.clone(), server_name).unwrap();
    let mut sock = sock;
    while conn.is_handshaking() {
        if let Err(e) = conn.complete_io(&mut sock) {
            return Err(e
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
                .cloned()
                .unwrap_or_else(|| rustls::Error::General(e.to_string())));
        }
    }
    Ok(StreamOwned::new(conn, sock))
}

/// Send `data`, half-close, read everything back until close_notify.
fn echo_roundtrip(client: &mut Client, data: &[u8]) -> Vec<u8> {
    client.write_all(data).unwrap();
    client.conn.send_close_notify();
    client.flush().unwrap();
    let mut back = Vec::new();
    client.read_to_end(&mut back).unwrap();
    back
}

fn peer_leaf(client: &Client) -> CertificateDer<'static> {
    client.conn.peer_certificates().unwrap()[0].clone().into_owned()
}

fn assert_alert(err: &rustls::Error, expected: rustls::AlertDescription) {
    assert!(
        matches!(err, rustls::Error::AlertReceived(a) if *a == expected),
        "expected alert {expected:?}, got {err:?}"
    );
}

fn assert_serves_next_client(server: &TestServer, roots: &[CertificateDer<'static>]) {
    let cfg = Arc::new(client_config(roots, &both_versions(), &[b"http/1.1"]));
    let mut client = connect(server.addr, "a.test", &cfg).expect("next client is served");
    assert_eq!(echo_roundtrip(&mut client, b"still alive"), b"still alive");
    server.expect_done();
}

// ---------------------------------------------------------------------------------------------
// Tests.

per_driver! {
    tls_only("it drives `ringproxy::tls` directly, with no HTTP in between")
    fn each_sni_name_gets_its_own_certificate_over_tls12_and_tls13(setup) {
        let driver = setup.driver;
        let (ca, ctx, leaves) = two_sites();
        let server = TestServer::start(&ctx, driver, Duration::from_secs(5), Mode::Echo);
        for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
            let cfg = Arc::new(client_config(&[ca.root()], &[version], &[b"http/1.1"]));
            for (name, leaf) in
                [("a.test", &leaves[0]), ("b.test", &leaves[1]), ("x.b.test", &leaves[1])]
            {
                let mut client = connect(server.addr, name, &cfg).unwrap();
                assert_eq!(&peer_leaf(&client), leaf, "{driver:?} {name}");
                assert_eq!(client.conn.protocol_version(), Some(version.version));
                let (sni, _, server_version, _) = server.expect_handshake();
                assert_eq!(sni.as_deref(), Some(name));
                assert_eq!(server_version, Some(version.version));
                assert_eq!(echo_roundtrip(&mut client, name.as_bytes()), name.as_bytes());
                assert_eq!(server.expect_done(), name.len() as u64);
            }
        }
    }
}

/// What a client offers, and what it must get.
type AlpnCase = (&'static [&'static [u8]], Option<&'static [u8]>);

per_driver! {
    tls_only("it drives `ringproxy::tls` directly, with no HTTP in between")
    fn alpn_is_http11_or_nothing_and_unknown_only_is_refused(setup) {
        let driver = setup.driver;
        let (ca, ctx, _) = two_sites();
        let server = TestServer::start(&ctx, driver, Duration::from_secs(5), Mode::Echo);
        let offers: [AlpnCase; 3] = [
            (&[b"http/1.1"], Some(b"http/1.1")),
            (&[], None),
            (&[b"h2", b"http/1.1"], Some(b"http/1.1")),
        ];
        for (offer, expected) in offers {
            let cfg = Arc::new(client_config(&[ca.root()], &both_versions(), offer));
            let mut client = connect(server.addr, "a.test", &cfg).unwrap();
            assert_eq!(client.conn.alpn_protocol(), expected, "{driver:?} offer {offer:?}");
            let (_, alpn, _, _) = server.expect_handshake();
            assert_eq!(alpn.as_deref(), expected);
            assert_eq!(echo_roundtrip(&mut client, b"x"), b"x");
            server.expect_done();
        }
        let cfg = Arc::new(client_config(&[ca.root()], &both_versions(), &[b"h2"]));
        let err = connect(server.addr, "a.test", &cfg).expect_err("h2-only is refused");
        assert_alert(&err, rustls::AlertDescription::NoApplicationProtocol);
        assert!(matches!(server.expect_failure(), Failure::Handshake(_)));
        assert_serves_next_client(&server, &[ca.root()]);
    }
}

per_driver! {
    tls_only("it drives `ringproxy::tls` directly, with no HTTP in between")
    fn unknown_and_missing_sni_abort_with_an_alert(setup) {
        let driver = setup.driver;
        let (ca, ctx, _) = two_sites();
        let server = TestServer::start(&ctx, driver, Duration::from_secs(5), Mode::Echo);
        let cfg = Arc::new(client_config(&[ca.root()], &both_versions(), &[b"http/1.1"]));
        let err = connect(server.addr, "unknown.test", &cfg).expect_err("unknown name refused");
        assert!(matches!(err, rustls::Error::AlertReceived(_)), "{err:?}");
        assert!(matches!(server.expect_failure(), Failure::Handshake(_)));
        // rustls sends no SNI for an IP address; no site holds 127.0.0.1.
        let err = connect(server.addr, "127.0.0.1", &cfg).expect_err("missing SNI refused");
        assert!(matches!(err, rustls::Error::AlertReceived(_)), "{err:?}");
        assert!(matches!(server.expect_failure(), Failure::Handshake(_)));
        assert_serves_next_client(&server, &[ca.root()]);
    }
}

per_driver! {
    tls_only("it drives `ringproxy::tls` directly, with no HTTP in between")
    fn tls11_is_refused_with_protocol_version(setup) {
        let driver = setup.driver;
        let (ca, ctx, _) = two_sites();
        let server = TestServer::start(&ctx, driver, Duration::from_secs(5), Mode::Echo);
        let mut sock = TcpStream::connect(server.addr).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        sock.write_all(&tls11_client_hello("a.test")).unwrap();
        let mut reply = Vec::new();
        let _ = sock.read_to_end(&mut reply);
        // One alert record: type 21, length 2, level fatal (2), protocol_version (70).
        assert!(reply.len() >= 7, "{reply:?}");
        assert_eq!(reply[0], 21, "{reply:?}");
        assert_eq!(&reply[5..7], &[2, 70], "{reply:?}");
        assert_eq!(
            server.expect_failure(),
            Failure::Other(TlsAcceptError::OldProtocol.to_string())
        );
        assert_serves_next_client(&server, &[ca.root()]);
    }
}

/// A ClientHello a TLS 1.1 client sends: legacy_version 0x0302, no supported_versions,
/// ECDHE-RSA-AES128-SHA and AES128-SHA, SNI.
fn tls11_client_hello(name: &str) -> Vec<u8> {
    let mut sni = vec![0x00];
    sni.extend((name.len() as u16).to_be_bytes());
    sni.extend(name.as_bytes());
    let mut sni_list = (sni.len() as u16).to_be_bytes().to_vec();
    sni_list.extend(sni);
    let mut extensions = vec![0x00, 0x00];
    extensions.extend((sni_list.len() as u16).to_be_bytes());
    extensions.extend(sni_list);

    let mut body = vec![0x03, 0x02];
    body.extend([0x5a; 32]); // random
    body.push(0); // session id
    body.extend([0x00, 0x04, 0xc0, 0x13, 0x00, 0x2f]); // cipher suites
    body.extend([0x01, 0x00]); // compression: null
    body.extend((extensions.len() as u16).to_be_bytes());
    body.extend(extensions);

    let mut handshake = vec![0x01, 0x00];
    handshake.extend((body.len() as u16).to_be_bytes());
    handshake.extend(body);
    let mut record = vec![0x16, 0x03, 0x01];
    record.extend((handshake.len() as u16).to_be_bytes());
    record.extend(handshake);
    record
}

per_driver! {
    tls_only("it drives `ringproxy::tls` directly, with no HTTP in between")
    fn plaintext_http_on_the_tls_port_gets_400_and_garbage_is_closed(setup) {
        let driver = setup.driver;
        let (ca, ctx, _) = two_sites();
        let server = TestServer::start(&ctx, driver, Duration::from_secs(5), Mode::Echo);

        let mut sock = TcpStream::connect(server.addr).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        sock.write_all(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n").unwrap();
        let mut reply = Vec::new();
        sock.read_to_end(&mut reply).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&reply),
            "HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n"
        );
        drop(sock); // ends the server's linger at once
        assert_eq!(server.expect_failure(), Failure::PlaintextHttp);

        for garbage in [&b"\x00\x01\x02garbage\r\n"[..], b"\x16\x03\x01\x00\x0cnot a hello!"] {
            let mut sock = TcpStream::connect(server.addr).unwrap();
            sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            sock.write_all(garbage).unwrap();
            let mut reply = Vec::new();
            // Closed (maybe after an alert), never answered with data or left hanging.
            let _ = sock.read_to_end(&mut reply);
            assert!(reply.is_empty() || reply[0] == 21, "{reply:?}");
            let failure = server.expect_failure();
            assert!(matches!(failure, Failure::NotTls | Failure::Handshake(_)), "{failure:?}");
        }
        assert_serves_next_client(&server, &[ca.root()]);
    }
}

#[test]
fn second_handshake_resumes_on_the_same_and_on_another_worker() {
    let (ca, ctx, _) = two_sites();
    for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
        // Two workers: one acceptor each, one context, as the proxy runs them.
        let first =
            TestServer::start(&ctx, DriverChoice::IoUring, Duration::from_secs(5), Mode::Echo);
        let second =
            TestServer::start(&ctx, DriverChoice::Epoll, Duration::from_secs(5), Mode::Echo);
        let cfg = Arc::new(client_config(&[ca.root()], &[version], &[b"http/1.1"]));
        for (server, expected) in [
            (&first, HandshakeKind::Full),
            (&first, HandshakeKind::Resumed),
            (&second, HandshakeKind::Resumed),
        ] {
            let mut client = connect(server.addr, "a.test", &cfg).unwrap();
            // The TLS 1.3 ticket arrives after the handshake: the echo reads it.
            assert_eq!(echo_roundtrip(&mut client, b"resume?"), b"resume?");
            assert_eq!(client.conn.handshake_kind(), Some(expected), "{version:?}");
            let (_, _, _, kind) = server.expect_handshake();
            assert_eq!(kind, Some(expected));
            server.expect_done();
        }
    }
}

per_driver! {
    tls_only("it drives `ringproxy::tls` directly, with no HTTP in between")
    fn two_megabytes_echo_byte_exact_and_flow_both_ways_at_once(setup) {
        let driver = setup.driver;
        let (ca, ctx, _) = two_sites();
        const SIZE: usize = 2 * 1024 * 1024;
        let cfg = Arc::new(client_config(&[ca.root()], &both_versions(), &[b"http/1.1"]));

        let server = TestServer::start(&ctx, driver, Duration::from_secs(5), Mode::Echo);
        let mut client = connect(server.addr, "a.test", &cfg).unwrap();
        let data = pattern(0, SIZE);
        // Chunks small enough to sit in socket buffers: the client is single-threaded.
        for (i, chunk) in data.chunks(48 * 1024).enumerate() {
            client.write_all(chunk).unwrap();
            let mut back = vec![0u8; chunk.len()];
            client.read_exact(&mut back).unwrap();
            assert!(back == chunk, "{driver:?}: chunk {i} differs");
        }
        client.conn.send_close_notify();
        client.flush().unwrap();
        let mut rest = Vec::new();
        client.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty());
        assert_eq!(server.expect_done(), SIZE as u64);

        let server = TestServer::start(&ctx, driver, Duration::from_secs(5), Mode::Duplex(SIZE));
        let client = connect(server.addr, "a.test", &cfg).unwrap();
        let got = duplex_client(client, SIZE);
        assert_eq!(got, SIZE, "{driver:?}: bytes from the server");
        assert_eq!(server.expect_done(), SIZE as u64);
    }
}

/// Send `n` pattern bytes from one thread while another reads and checks `n` bytes: the
/// rustls client behind a mutex, the socket's halves used independently.
fn duplex_client(client: Client, n: usize) -> usize {
    let (conn, sock) = (client.conn, client.sock);
    let conn = Arc::new(Mutex::new(conn));
    let mut write_sock = sock.try_clone().unwrap();
    let writer_conn = conn.clone();
    let writer = std::thread::spawn(move || {
        let mut sent = 0;
        while sent < n {
            let chunk = pattern(sent, (n - sent).min(6007));
            let mut records = Vec::new();
            {
                let mut c = writer_conn.lock().unwrap();
                c.writer().write_all(&chunk).unwrap();
                while c.wants_write() {
                    c.write_tls(&mut records).unwrap();
                }
            }
            write_sock.write_all(&records).unwrap();
            sent += chunk.len();
        }
        let mut records = Vec::new();
        {
            let mut c = writer_conn.lock().unwrap();
            c.send_close_notify();
            while c.wants_write() {
                c.write_tls(&mut records).unwrap();
            }
        }
        write_sock.write_all(&records).unwrap();
    });
    let mut read_sock = sock;
    let mut got = 0;
    let mut wire = vec![0u8; 16 * 1024];
    let mut plain = vec![0u8; 16 * 1024];
    let mut done = false;
    while !done {
        let k = read_sock.read(&mut wire).unwrap();
        let mut c = conn.lock().unwrap();
        if k == 0 {
            break;
        }
        let mut slice = &wire[..k];
        while !slice.is_empty() {
            c.read_tls(&mut slice).unwrap();
            let state = c.process_new_packets().unwrap();
            loop {
                match c.reader().read(&mut plain) {
                    Ok(0) => {
                        done = true;
                        break;
                    }
                    Ok(m) => {
                        assert!(plain[..m] == pattern(got, m)[..], "server bytes differ at {got}");
                        got += m;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => panic!("{e}"),
                }
            }
            if state.peer_has_closed() {
                done = true;
            }
        }
    }
    writer.join().unwrap();
    let _ = read_sock.shutdown(Shutdown::Both);
    got
}

per_driver! {
    tls_only("it drives `ringproxy::tls` directly, with no HTTP in between")
    fn stalled_handshakes_time_out_without_delaying_other_clients(setup) {
        let driver = setup.driver;
        let (ca, ctx, _) = two_sites();
        let timeout = Duration::from_millis(400);
        let server = TestServer::start(&ctx, driver, timeout, Mode::Echo);
        let started = Instant::now();
        // Silent connections, and ones stalled mid-ClientHello.
        let mut stalled = Vec::new();
        for i in 0..40 {
            let mut sock = TcpStream::connect(server.addr).unwrap();
            if i % 2 == 1 {
                let mut hello = tls11_client_hello("a.test");
                hello[10] = 0x03; // a TLS 1.2 hello, cut short
                sock.write_all(&hello[..20]).unwrap();
            }
            stalled.push(sock);
        }
        let cfg = Arc::new(client_config(&[ca.root()], &both_versions(), &[b"http/1.1"]));
        let t = Instant::now();
        let mut client = connect(server.addr, "a.test", &cfg).unwrap();
        assert_eq!(echo_roundtrip(&mut client, b"prompt"), b"prompt");
        assert!(t.elapsed() < Duration::from_secs(1), "{driver:?}: {:?}", t.elapsed());

        let mut timeouts = 0;
        while timeouts < stalled.len() {
            match server.next() {
                Event::Failed(Failure::Timeout) => timeouts += 1,
                Event::Handshook { .. } | Event::Done(Ok(_)) => {}
                other => panic!("{driver:?}: unexpected {other:?}"),
            }
        }
        let elapsed = started.elapsed();
        assert!(elapsed >= timeout && elapsed < timeout * 5, "{driver:?}: {elapsed:?}");
        for mut sock in stalled {
            sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            let mut buf = [0u8; 64];
            // On io_uring this needs monoio's `async-cancel`: without it a dropped readiness
            // wait keeps the descriptor open until the (stalled) peer sends something.
            let closed = matches!(sock.read(&mut buf), Ok(0));
            assert!(closed, "{driver:?}: stalled client is closed at the timeout");
        }
    }
}

per_driver! {
    tls_only("it drives `ringproxy::tls` directly, with no HTTP in between")
    fn local_ca_certificates_chain_to_a_root_kept_across_restarts(setup) {
        let driver = setup.driver;
        let scratch = temp_dir("local-ca");
        let storage = scratch.path();
        let cfg = config(vec![
            site("localhost", TlsPolicy::Internal),
            site("127.0.0.1", TlsPolicy::Internal),
            site("*.internal.test", TlsPolicy::Internal),
        ]);
        let ctx = tls::prepare(&cfg, storage).unwrap();
        let root_path = ctx.local_root_path().unwrap();
        assert!(root_path.starts_with(storage));
        let root_pem = std::fs::read(&root_path).unwrap();
        let key_path = root_path.with_file_name("root.key");
        let mode = std::fs::metadata(&key_path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "root key must be private");
        let dir_mode = std::fs::metadata(root_path.parent().unwrap()).unwrap().permissions().mode();
        assert_eq!(dir_mode & 0o777, 0o700);
        let root = CertificateDer::from_pem_slice(&root_pem).unwrap();

        for (round, ctx) in [(1, ctx), (2, tls::prepare(&cfg, storage).unwrap())] {
            assert_eq!(std::fs::read(&root_path).unwrap(), root_pem, "restart {round} keeps the root");
            let server = TestServer::start(&ctx, driver, Duration::from_secs(5), Mode::Echo);
            let cfg = Arc::new(client_config(
                std::slice::from_ref(&root),
                &both_versions(),
                &[b"http/1.1"],
            ));
            // "127.0.0.1" makes rustls send no SNI: the listener address picks the IP site.
            for name in ["localhost", "127.0.0.1", "a.internal.test"] {
                let mut client = connect(server.addr, name, &cfg)
                    .unwrap_or_else(|e| panic!("round {round} {driver:?} {name}: {e:?}"));
                assert_eq!(echo_roundtrip(&mut client, b"local"), b"local");
                server.expect_done();
            }
        }
        // Renewal runs only when due; forcing "now" past two thirds of the lifetime renews all.
        let ctx = tls::prepare(&cfg, storage).unwrap();
        assert_eq!(ctx.renew_internal_certs(std::time::SystemTime::now()).unwrap(), 0);
        let due = ctx.next_internal_renewal().unwrap();
        let before = ctx.store().cert_for("localhost").unwrap();
        assert_eq!(ctx.renew_internal_certs(due).unwrap(), 3);
        let after = ctx.store().cert_for("localhost").unwrap();
        assert_ne!(before.cert[0], after.cert[0], "renewed leaf swapped into the store");
    }
}

/// Captures warnings logged while `f` runs on this thread.
fn with_captured_logs<T>(f: impl FnOnce() -> T) -> (T, String) {
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);
    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let sink = Sink::default();
    let writer = sink.clone();
    let subscriber =
        tracing_subscriber::fmt().with_writer(move || writer.clone()).with_ansi(false).finish();
    let out = tracing::subscriber::with_default(subscriber, f);
    let logs = String::from_utf8_lossy(&sink.0.lock().unwrap()).into_owned();
    (out, logs)
}

#[test]
fn bad_certificate_files_each_give_a_clear_startup_error() {
    let ca = TestCa::new("bad-files");
    let (good_c, good_k) = ca.leaf("good", &["a.test"]);
    let (_, other_k) = ca.leaf("other", &["a.test"]);
    let scratch = temp_dir("bad-files-storage");
    let storage = scratch.path();
    let prepare_with = |cert: &Path, key: &Path| {
        tls::prepare(&config(vec![site("a.test", files(cert, key))]), storage)
    };

    let missing = ca.dir().join("missing.crt");
    let err = prepare_with(&missing, &good_k).err().unwrap().to_string();
    assert!(err.contains("missing.crt") && err.contains("No such file"), "{err}");

    // A directory where the key should be: unreadable (permissions do not stop root).
    let unreadable = ca.dir().join("dir.key");
    std::fs::create_dir_all(&unreadable).unwrap();
    let err = prepare_with(&good_c, &unreadable).err().unwrap().to_string();
    assert!(err.contains("dir.key"), "{err}");

    let err = prepare_with(&good_c, &other_k).err().unwrap().to_string();
    assert!(
        err.contains("does not match") && err.contains("other.key") && err.contains("good.crt"),
        "{err}"
    );

    let empty = ca.dir().join("empty.crt");
    std::fs::write(&empty, "").unwrap();
    let err = prepare_with(&empty, &good_k).err().unwrap().to_string();
    assert!(err.contains("empty.crt") && err.contains("no CERTIFICATE"), "{err}");

    let (expired_c, expired_k) = ca.expired_leaf("expired", &["a.test"]);
    let (ctx, logs) = with_captured_logs(|| prepare_with(&expired_c, &expired_k));
    ctx.expect("an expired certificate is a warning, not an error");
    assert!(
        logs.contains("WARN") && logs.contains("expired.crt") && logs.contains("2021"),
        "{logs}"
    );
}

#[test]
fn sec1_and_pkcs1_keys_from_openssl_are_served() {
    let scratch = temp_dir("openssl-keys");
    let dir = scratch.path();
    let openssl = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl must be installed for this test (apt-get install openssl)");
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    openssl(&["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "ec.key"]);
    openssl(&["genrsa", "-traditional", "-out", "rsa.key", "2048"]);
    // Certificates for the openssl keys, signed by a test CA (rcgen) through openssl.
    let ca = TestCa::new("openssl-ca");
    let (ca_cert, ca_key) = ca.pem_pair();
    std::fs::write(dir.join("ca.crt"), ca_cert).unwrap();
    std::fs::write(dir.join("ca.key"), ca_key).unwrap();
    for (key, name) in [("ec.key", "ec.test"), ("rsa.key", "rsa.test")] {
        let (csr, crt, ext) = (format!("{name}.csr"), format!("{name}.crt"), format!("{name}.ext"));
        std::fs::write(
            dir.join(&ext),
            format!("subjectAltName=DNS:{name}\nbasicConstraints=CA:FALSE\n"),
        )
        .unwrap();
        let subj = format!("/CN={name}");
        openssl(&["req", "-new", "-key", key, "-out", &csr, "-subj", &subj]);
        openssl(&[
            "x509", "-req", "-in", &csr, "-CA", "ca.crt", "-CAkey", "ca.key", "-days", "2", "-out",
            &crt, "-extfile", &ext,
        ]);
    }
    let ec_pem = std::fs::read_to_string(dir.join("ec.key")).unwrap();
    assert!(ec_pem.contains("BEGIN EC PRIVATE KEY"), "SEC1 key expected");
    let rsa_pem = std::fs::read_to_string(dir.join("rsa.key")).unwrap();
    assert!(rsa_pem.contains("BEGIN RSA PRIVATE KEY"), "PKCS#1 key expected");

    let cfg = config(vec![
        site("ec.test", files(&dir.join("ec.test.crt"), &dir.join("ec.key"))),
        site("rsa.test", files(&dir.join("rsa.test.crt"), &dir.join("rsa.key"))),
    ]);
    let ctx = tls::prepare(&cfg, dir).unwrap();
    let server = TestServer::start(&ctx, DriverChoice::Epoll, Duration::from_secs(5), Mode::Echo);
    for name in ["ec.test", "rsa.test"] {
        for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
            let cfg = Arc::new(client_config(&[ca.root()], &[version], &[]));
            let mut client =
                connect(server.addr, name, &cfg).unwrap_or_else(|e| panic!("{name}: {e:?}"));
            assert_eq!(echo_roundtrip(&mut client, name.as_bytes()), name.as_bytes());
            server.expect_done();
        }
    }
}

per_driver! {
    tls_only("it drives `ringproxy::tls` directly, with no HTTP in between")
    fn buffered_plaintext_is_readable_without_new_socket_data(setup) {
        let driver = setup.driver;
        let (ca, ctx, _) = two_sites();
        let server = TestServer::start(&ctx, driver, Duration::from_secs(5), Mode::EchoTiny);
        let cfg = Arc::new(client_config(&[ca.root()], &both_versions(), &[b"http/1.1"]));
        let mut client = connect(server.addr, "a.test", &cfg).unwrap();
        // One record of 40 KB, then nothing more until the whole echo is back: the server
        // drains it 7 bytes at a time from rustls with the socket silent.
        let message = pattern(0, 40_000);
        client.write_all(&message).unwrap();
        let mut back = vec![0u8; message.len()];
        client.read_exact(&mut back).unwrap();
        assert!(back == message, "{driver:?}");
        assert_eq!(echo_roundtrip(&mut client, b"end"), b"end");
        assert_eq!(server.expect_done(), 40_003);
    }
}

#[test]
fn a_swapped_certificate_serves_new_handshakes_and_leaves_live_sessions_alone() {
    let (ca, ctx, leaves) = two_sites();
    let server = TestServer::start(&ctx, DriverChoice::IoUring, Duration::from_secs(5), Mode::Echo);
    let cfg = Arc::new(client_config(&[ca.root()], &both_versions(), &[b"http/1.1"]));
    let mut live = connect(server.addr, "a.test", &cfg).unwrap();
    assert_eq!(peer_leaf(&live), leaves[0]);
    server.expect_handshake();

    let (c, k) = ca.leaf("a-renewed", &["a.test"]);
    let provider = rustls::crypto::ring::default_provider();
    let renewed = tls::certs::load_pem_pair(&c, &k, &provider).unwrap();
    ctx.store().set_cert("a.test", renewed.key.clone());

    // A fresh client (no session to resume) sees the new certificate...
    let cfg = Arc::new(client_config(&[ca.root()], &both_versions(), &[b"http/1.1"]));
    let mut fresh = connect(server.addr, "a.test", &cfg).unwrap();
    assert_eq!(peer_leaf(&fresh), renewed.key.cert[0]);
    assert_eq!(echo_roundtrip(&mut fresh, b"new"), b"new");
    // ...and the session that started before the swap carries on.
    assert_eq!(echo_roundtrip(&mut live, b"old"), b"old");
    let mut done = [server.expect_done(), server.expect_done()];
    done.sort();
    assert_eq!(done, [3, 3]);
}

#[test]
fn tls_alpn_01_gets_the_challenge_certificate_and_nothing_else() {
    let (ca, ctx, leaves) = two_sites();
    let server = TestServer::start(&ctx, DriverChoice::Epoll, Duration::from_secs(5), Mode::Echo);
    let acme: &[&[u8]] = &[b"acme-tls/1"];

    // No pending challenge: refused.
    let cfg = Arc::new(client_config(&[ca.root()], &both_versions(), acme));
    let err = connect(server.addr, "a.test", &cfg).expect_err("no challenge pending");
    assert!(matches!(err, rustls::Error::AlertReceived(_)), "{err:?}");
    assert!(matches!(server.expect_failure(), Failure::Handshake(_)));

    // A pending challenge: its certificate is served, then the connection is closed.
    let (c, k) = ca.leaf("challenge", &["a.test"]);
    let provider = rustls::crypto::ring::default_provider();
    let challenge = tls::certs::load_pem_pair(&c, &k, &provider).unwrap();
    ctx.store().set_alpn_challenge("a.test", challenge.key.clone());
    let mut client = connect(server.addr, "a.test", &cfg).unwrap();
    assert_eq!(peer_leaf(&client), challenge.key.cert[0]);
    assert_eq!(client.conn.alpn_protocol(), Some(&b"acme-tls/1"[..]));
    let mut rest = Vec::new();
    assert_eq!(client.read_to_end(&mut rest).unwrap(), 0, "closed after the handshake");
    assert_eq!(
        server.expect_failure(),
        Failure::Other(TlsAcceptError::AcmeChallengeServed.to_string())
    );

    // Ordinary clients still get the site's certificate.
    let cfg = Arc::new(client_config(&[ca.root()], &both_versions(), &[b"http/1.1"]));
    let client = connect(server.addr, "a.test", &cfg).unwrap();
    assert_eq!(peer_leaf(&client), leaves[0]);
    ctx.store().remove_alpn_challenge("a.test");
}
