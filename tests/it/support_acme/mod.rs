//! Test harness for ACME: a real pebble (Let's Encrypt's test CA) with pebble-challtestsrv as
//! its DNS server answering 127.0.0.1 for every name, HTTPS/TLS clients that verify against
//! pebble's issuing root, small origins (HTTP and WebSocket echo), and a stand-in challenge
//! responder for tests of the order flow that run without the proxy's data path.
//!
//! Pebble needs a TLS certificate for its own API; none ships in the Debian package, so each
//! `Pebble` generates one (and the root that signs it, which the proxy trusts through
//! `acme_ca_root`). Ports are picked free on 127.0.0.1; pebble validates challenges on the
//! `http_port`/`tls_port` given to [`Pebble::prepare`], which tests point at the proxy.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ringproxy::tls::store::CertStore;
use rustls::pki_types::{CertificateDer, ServerName};

/// The name every ACME test orders a certificate for.
pub const TEST_NAME: &str = "acme-test.example";

/// Ports that pebble, its challenge server and the proxies under test bind by number: below
/// the ephemeral range, so no `bind(0)` or outgoing connection elsewhere takes them first.
pub use crate::support::net::unassigned_port;

/// A fresh directory under the system temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let path = std::env::temp_dir()
            .join(format!("ringproxy-it-{tag}-{}-{n}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The CA for pebble's own API certificate, as PEM.
struct ApiTls {
    root_pem: String,
    cert_pem: String,
    key_pem: String,
}

fn api_tls() -> ApiTls {
    let ca_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(rcgen::DnType::CommonName, "ringproxy test: pebble API root");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let params =
        rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .unwrap();
    let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
    ApiTls { root_pem: ca.pem(), cert_pem: cert.pem(), key_pem: key.serialize_pem() }
}

/// A pebble + challtestsrv pair. Created stopped by [`Pebble::prepare`] (so a test can
/// configure a proxy against a CA that is not up yet), started by [`Pebble::start`], killed on
/// drop.
pub struct Pebble {
    dir: TempDir,
    pub listen_port: u16,
    pub management_port: u16,
    dns_port: u16,
    challtestsrv_management_port: u16,
    api_root_pem: String,
    children: Vec<Child>,
    log: Arc<Mutex<String>>,
    /// Share of valid nonces pebble rejects with `badNonce`; `None` keeps pebble's 5 %.
    nonce_reject_percent: Option<u8>,
}

impl Pebble {
    /// Generate pebble's TLS certificate and config; pebble will validate HTTP-01 on
    /// `127.0.0.1:http_port` and TLS-ALPN-01 on `127.0.0.1:tls_port`.
    pub fn prepare(http_port: u16, tls_port: u16) -> Pebble {
        let dir = TempDir::new("pebble");
        let tls = api_tls();
        std::fs::write(dir.path().join("api-root.pem"), &tls.root_pem).unwrap();
        std::fs::write(dir.path().join("cert.pem"), &tls.cert_pem).unwrap();
        std::fs::write(dir.path().join("key.pem"), &tls.key_pem).unwrap();
        let (listen_port, management_port) = (unassigned_port(), unassigned_port());
        let config = format!(
            r#"{{"pebble": {{
                "listenAddress": "127.0.0.1:{listen_port}",
                "managementListenAddress": "127.0.0.1:{management_port}",
                "certificate": "{cert}",
                "privateKey": "{key}",
                "httpPort": {http_port},
                "tlsPort": {tls_port},
                "ocspResponderURL": "",
                "externalAccountBindingRequired": false
            }}}}"#,
            cert = dir.path().join("cert.pem").display(),
            key = dir.path().join("key.pem").display(),
        );
        std::fs::write(dir.path().join("pebble.json"), config).unwrap();
        Pebble {
            dir,
            listen_port,
            management_port,
            dns_port: unassigned_port(),
            challtestsrv_management_port: unassigned_port(),
            api_root_pem: tls.root_pem,
            children: Vec::new(),
            log: Arc::default(),
            nonce_reject_percent: None,
        }
    }

    /// `prepare` and `start`.
    pub fn start_new(http_port: u16, tls_port: u16) -> Pebble {
        let mut pebble = Pebble::prepare(http_port, tls_port);
        pebble.start();
        pebble
    }

    /// Have pebble reject `percent` % of valid nonces (call before [`Pebble::start`]).
    pub fn reject_nonces(&mut self, percent: u8) {
        self.nonce_reject_percent = Some(percent);
    }

    /// Start challtestsrv and pebble and wait until both accept connections.
    pub fn start(&mut self) {
        assert!(self.children.is_empty(), "already started");
        let dns = format!("127.0.0.1:{}", self.dns_port);
        let challtestsrv = Command::new("pebble-challtestsrv")
            .args(["-dns01", &dns, "-http01", "", "-https01", "", "-tlsalpn01", ""])
            .args(["-management", &format!("127.0.0.1:{}", self.challtestsrv_management_port)])
            .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("pebble-challtestsrv not installed: apt-get install pebble");
        self.adopt(challtestsrv, "challtestsrv");
        wait_for_port(self.challtestsrv_management_port);

        let mut pebble = Command::new("pebble");
        if let Some(percent) = self.nonce_reject_percent {
            pebble.env("PEBBLE_WFE_NONCEREJECT", percent.to_string());
        }
        let pebble = pebble
            .args([
                "-config",
                &self.dir.path().join("pebble.json").display().to_string(),
                "-dnsserver",
                &dns,
            ])
            // Validate at once instead of sleeping up to 15 s per challenge.
            .env("PEBBLE_VA_NOSLEEP", "1")
            // Every order must be validated: reused authorizations would hide which
            // challenge type works.
            .env("PEBBLE_AUTHZREUSE", "0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("pebble not installed: apt-get install pebble");
        self.adopt(pebble, "pebble");
        wait_for_port(self.listen_port);
        wait_for_port(self.management_port);
    }

    fn adopt(&mut self, mut child: Child, tag: &'static str) {
        for pipe in [
            child.stdout.take().map(|p| Box::new(p) as Box<dyn Read + Send>),
            child.stderr.take().map(|p| Box::new(p) as Box<dyn Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let log = self.log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines() {
                    let Ok(line) = line else { break };
                    let mut log = log.lock().unwrap();
                    log.push_str(tag);
                    log.push_str(": ");
                    log.push_str(&line);
                    log.push('\n');
                }
            });
        }
        self.children.push(child);
    }

    /// The ACME directory URL (`acme_ca`).
    pub fn directory_url(&self) -> String {
        format!("https://127.0.0.1:{}/dir", self.listen_port)
    }

    /// The root that signed pebble's API certificate (`acme_ca_root`).
    pub fn api_root_path(&self) -> PathBuf {
        self.dir.path().join("api-root.pem")
    }

    /// Everything pebble and challtestsrv printed so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Orders pebble accepted so far (from its log: one line per order).
    pub fn orders_placed(&self) -> usize {
        self.log().matches("Added order").count()
    }

    /// Certificates pebble issued so far.
    pub fn certificates_issued(&self) -> usize {
        self.log().matches("Issued certificate serial").count()
    }

    /// Pebble's issuing root (from its management API), which every certificate it issues
    /// chains to. Pebble makes a new one each run.
    pub fn issuing_root(&self) -> CertificateDer<'static> {
        let roots = roots_from_pem(self.api_root_pem.as_bytes());
        let addr: SocketAddr = format!("127.0.0.1:{}", self.management_port).parse().unwrap();
        let (status, _, body) = https_get(addr, "localhost", "/roots/0", roots).unwrap();
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        rustls::pki_types::pem::PemObject::from_pem_slice(&body).unwrap()
    }

    /// Stop pebble and challtestsrv now.
    pub fn stop(&mut self) {
        for mut child in self.children.drain(..) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        self.stop();
    }
}

fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listening on 127.0.0.1:{port} after 20 s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A root store holding every certificate in `pem`.
pub fn roots_from_pem(pem: &[u8]) -> rustls::RootCertStore {
    let mut roots = rustls::RootCertStore::empty();
    for cert in <CertificateDer as rustls::pki_types::pem::PemObject>::pem_slice_iter(pem) {
        roots.add(cert.unwrap()).unwrap();
    }
    roots
}

pub fn roots_of(cert: CertificateDer<'static>) -> rustls::RootCertStore {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).unwrap();
    roots
}

fn client_config(roots: rustls::RootCertStore, alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

pub type TlsStream = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// A verified TLS connection to `addr` for server name `sni`.
pub fn tls_connect(
    addr: SocketAddr,
    sni: &str,
    roots: rustls::RootCertStore,
) -> Result<TlsStream, std::io::Error> {
    let tcp = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    tcp.set_nodelay(true)?;
    let name = ServerName::try_from(sni.to_owned()).map_err(std::io::Error::other)?;
    let conn = rustls::ClientConnection::new(client_config(roots, &[b"http/1.1"]), name)
        .map_err(std::io::Error::other)?;
    let mut stream = rustls::StreamOwned::new(conn, tcp);
    while stream.conn.is_handshaking() {
        stream.conn.complete_io(&mut stream.sock)?;
    }
    Ok(stream)
}

/// The leaf certificate `addr` presents for `sni`, if the handshake verifies against `roots`.
pub fn served_leaf(
    addr: SocketAddr,
    sni: &str,
    roots: rustls::RootCertStore,
) -> Result<CertificateDer<'static>, std::io::Error> {
    let stream = tls_connect(addr, sni, roots)?;
    let leaf = stream.conn.peer_certificates().and_then(|c| c.first()).cloned();
    leaf.map(CertificateDer::into_owned).ok_or_else(|| std::io::Error::other("no peer certificate"))
}

/// Poll until `addr` serves, for `sni`, a certificate that verifies against `roots`.
pub fn wait_for_served_leaf(
    addr: SocketAddr,
    sni: &str,
    roots: &rustls::RootCertStore,
    timeout: Duration,
) -> CertificateDer<'static> {
    let deadline = Instant::now() + timeout;
    loop {
        match served_leaf(addr, sni, roots.clone()) {
            Ok(leaf) => return leaf,
            Err(e) => assert!(
                Instant::now() < deadline,
                "no verified certificate for {sni} on {addr} after {timeout:?}: {e}"
            ),
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// One HTTP/1.1 GET with `Connection: close`: (status, head, body).
pub fn http_exchange(
    stream: &mut (impl Read + Write),
    host: &str,
    path: &str,
) -> std::io::Result<(u16, String, Vec<u8>)> {
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")?;
    stream.flush()?;
    let mut raw = Vec::new();
    match stream.read_to_end(&mut raw) {
        Ok(_) => {}
        // Peers that close without close_notify: what arrived is the response.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !raw.is_empty() => {}
        Err(e) => return Err(e),
    }
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no response head"))?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other("bad status line"))?;
    Ok((status, head, raw[split + 4..].to_vec()))
}

pub fn https_get(
    addr: SocketAddr,
    sni: &str,
    path: &str,
    roots: rustls::RootCertStore,
) -> std::io::Result<(u16, String, Vec<u8>)> {
    let mut stream = tls_connect(addr, sni, roots)?;
    http_exchange(&mut stream, sni, path)
}

pub fn http_get(
    addr: SocketAddr,
    host: &str,
    path: &str,
) -> std::io::Result<(u16, String, Vec<u8>)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    http_exchange(&mut stream, host, path)
}

/// Background accept loop on a std listener, stopped on drop.
struct AcceptLoop {
    stop: Arc<AtomicBool>,
    addr: SocketAddr,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl AcceptLoop {
    fn start(
        listener: TcpListener,
        handle: impl Fn(TcpStream) + Send + Sync + 'static,
    ) -> AcceptLoop {
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = Arc::new(handle);
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if flag.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let handle = handle.clone();
                std::thread::spawn(move || handle(conn));
            }
        });
        AcceptLoop { stop, addr, thread: Some(thread) }
    }
}

impl Drop for AcceptLoop {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept.
        let _ = TcpStream::connect(self.addr);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Read one request head; returns the request target.
fn read_request_target(reader: &mut BufReader<&TcpStream>) -> Option<String> {
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let target = line.split(' ').nth(1)?.to_owned();
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).ok()? == 0 {
            return None;
        }
        if header == "\r\n" || header == "\n" {
            return Some(target);
        }
    }
}

/// An HTTP origin answering every request with `200` and body `<label> <path>`, keep-alive.
pub struct HttpOrigin {
    pub addr: SocketAddr,
    _accept: AcceptLoop,
}

impl HttpOrigin {
    pub fn start(label: &'static str) -> HttpOrigin {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let accept = AcceptLoop::start(listener, move |conn| {
            let mut reader = BufReader::new(&conn);
            while let Some(target) = read_request_target(&mut reader) {
                let body = format!("{label} {target}");
                let response = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nContent-Type: text/plain\r\n\r\n{body}", body.len());
                if (&conn).write_all(response.as_bytes()).is_err() {
                    break;
                }
            }
        });
        HttpOrigin { addr, _accept: accept }
    }
}

/// A WebSocket origin echoing every message back.
pub struct WsEcho {
    pub addr: SocketAddr,
    _accept: AcceptLoop,
}

impl WsEcho {
    pub fn start() -> WsEcho {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let accept = AcceptLoop::start(listener, |conn| {
            let Ok(mut ws) = tungstenite::accept(conn) else {
                return;
            };
            while let Ok(message) = ws.read() {
                if message.is_close() {
                    break;
                }
                if (message.is_text() || message.is_binary()) && ws.send(message).is_err() {
                    break;
                }
            }
        });
        WsEcho { addr, _accept: accept }
    }
}

/// A WebSocket client over verified TLS.
pub fn wss_connect(
    addr: SocketAddr,
    sni: &str,
    path: &str,
    roots: rustls::RootCertStore,
) -> tungstenite::WebSocket<TlsStream> {
    let stream = tls_connect(addr, sni, roots).unwrap();
    let (ws, response) = tungstenite::client::client(format!("wss://{sni}{path}"), stream).unwrap();
    assert_eq!(response.status(), 101);
    ws
}

pub fn ws_echo_roundtrip(ws: &mut tungstenite::WebSocket<TlsStream>, text: &str) {
    ws.send(tungstenite::Message::text(text)).unwrap();
    let reply = ws.read().unwrap();
    assert_eq!(reply.into_text().unwrap().as_str(), text);
}

/// **Test stand-in for the proxy's data path**, used only by tests of the order flow that run
/// without the proxy: it answers pebble's validation requests from the same [`CertStore`] the
/// ACME manager writes, exactly as the redirect listener (HTTP-01,
/// `CertStore::http_challenge`) and the TLS acceptor (TLS-ALPN-01,
/// `CertStore::alpn_challenge_for`) do. Its TLS side also serves issued certificates
/// (`CertStore::cert_for`) so those tests can check what was stored with a real handshake.
pub struct ChallengeResponder {
    _http: AcceptLoop,
    _tls: AcceptLoop,
}

impl ChallengeResponder {
    pub fn start(store: Arc<CertStore>, http_port: u16, tls_port: u16) -> ChallengeResponder {
        let http_store = store.clone();
        let http =
            AcceptLoop::start(TcpListener::bind(("127.0.0.1", http_port)).unwrap(), move |conn| {
                let mut reader = BufReader::new(&conn);
                let Some(target) = read_request_target(&mut reader) else {
                    return;
                };
                let answer = target
                    .strip_prefix("/.well-known/acme-challenge/")
                    .and_then(|token| http_store.http_challenge(token));
                let response = match answer {
                    Some(body) => format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    ),
                    None => {
                        "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                            .to_owned()
                    }
                };
                let _ = (&conn).write_all(response.as_bytes());
                let _ = conn.shutdown(Shutdown::Write);
            });

        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(StoreResolver(store)));
        config.alpn_protocols = vec![b"acme-tls/1".to_vec(), b"http/1.1".to_vec()];
        let config = Arc::new(config);
        let tls = AcceptLoop::start(
            TcpListener::bind(("127.0.0.1", tls_port)).unwrap(),
            move |mut conn| {
                let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
                let Ok(mut session) = rustls::ServerConnection::new(config.clone()) else {
                    return;
                };
                while session.is_handshaking() {
                    if session.complete_io(&mut conn).is_err() {
                        return;
                    }
                }
                // RFC 8737 §3: after the handshake the validator closes; nothing else to serve.
                session.send_close_notify();
                let _ = session.complete_io(&mut conn);
            },
        );
        ChallengeResponder { _http: http, _tls: tls }
    }
}

struct StoreResolver(Arc<CertStore>);

impl std::fmt::Debug for StoreResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoreResolver")
    }
}

impl rustls::server::ResolvesServerCert for StoreResolver {
    fn resolve(
        &self,
        hello: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        let name = hello.server_name()?.to_owned();
        let acme_alpn =
            hello.alpn().is_some_and(|mut protocols| protocols.any(|p| p == b"acme-tls/1"));
        if acme_alpn {
            self.0.alpn_challenge_for(&name)
        } else {
            self.0.cert_for(&name)
        }
    }
}
