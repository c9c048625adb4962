//! What the ACME tests share besides [`super::pebble::Pebble`]: the name they order, clients
//! that verify against a given root store (pebble's, or an expiring certificate's), and
//! [`ChallengeResponder`], a stand-in for the proxy's challenge answers in the tests of the
//! order flow that run without the data path.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ringproxy::tls::store::CertStore;
use rustls::pki_types::CertificateDer;
use tungstenite::WebSocket;

use super::client::ClientStream;
use super::tls_client::client_config_for;
use super::ws::ws_connect;

/// The name every ACME test orders a certificate for.
pub const TEST_NAME: &str = "acme-test.example";

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

/// A verified TLS connection to `addr` for server name `sni`, offering ALPN `http/1.1`.
pub fn tls_connect(
    addr: SocketAddr,
    sni: &str,
    roots: rustls::RootCertStore,
) -> std::io::Result<ClientStream> {
    ClientStream::try_connect_tls(addr, sni, &client_config_for(roots))
}

/// The leaf certificate `addr` presents for `sni`, if the handshake verifies against `roots`.
pub fn served_leaf(
    addr: SocketAddr,
    sni: &str,
    roots: rustls::RootCertStore,
) -> Result<CertificateDer<'static>, std::io::Error> {
    let stream = tls_connect(addr, sni, roots)?;
    stream
        .peer_chain()
        .into_iter()
        .next()
        .ok_or_else(|| std::io::Error::other("no peer certificate"))
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
        // A handshake that fails for want of a certificate is cheap: poll often.
        std::thread::sleep(Duration::from_millis(50));
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

/// A WebSocket over a verified TLS connection to `addr` for `sni`.
pub fn wss_connect(
    addr: SocketAddr,
    sni: &str,
    path: &str,
    roots: rustls::RootCertStore,
) -> WebSocket<ClientStream> {
    let stream = tls_connect(addr, sni, roots).unwrap_or_else(|e| panic!("TLS to {sni}: {e}"));
    ws_connect(stream, sni, path)
}

pub fn ws_echo_roundtrip(ws: &mut WebSocket<ClientStream>, text: &str) {
    ws.send(tungstenite::Message::text(text)).unwrap();
    let reply = ws.read().unwrap();
    assert_eq!(reply.into_text().unwrap().as_str(), text);
}

/// Run the close handshake and wait for the proxy's close, so that the relay is over.
pub fn close_websocket(mut ws: WebSocket<ClientStream>) {
    ws.close(None).unwrap();
    loop {
        match ws.read() {
            Ok(_) => {}
            Err(tungstenite::Error::ConnectionClosed) => return,
            Err(e) => panic!("WebSocket close handshake: {e}"),
        }
    }
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
