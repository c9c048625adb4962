//! The TLS side of the test clients: a CA generated here with rcgen that writes certificate
//! and key files for `tls <cert> <key>`, and [`TlsClientStream`], a verifying rustls client over
//! a blocking `TcpStream` that [`HttpConn`] and tungstenite run over unchanged, so the
//! data-path tests can be repeated over HTTPS and WSS byte for byte.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use tungstenite::WebSocket;

use super::client::{HttpConn, Wire};
use super::net::IO_TIMEOUT;
use super::proxy::TempDir;

/// A certificate authority for one test, and the directory its leaf files are written to.
pub struct TestCa {
    cert: rcgen::Certificate,
    key: KeyPair,
    dir: TempDir,
}

impl TestCa {
    pub fn new(tag: &str) -> TestCa {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, "ringproxy data-path test CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
        let cert = params.self_signed(&key).unwrap();
        TestCa { cert, key, dir: TempDir::new(tag) }
    }

    pub fn root(&self) -> CertificateDer<'static> {
        self.cert.der().clone()
    }

    /// A leaf for `names` (ECDSA P-256), written as `<file>.crt` (leaf then CA: a full chain,
    /// as users deploy it) and `<file>.key` (PKCS#8).
    pub fn leaf(&self, file: &str, names: &[&str]) -> (PathBuf, PathBuf) {
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        params.distinguished_name.push(DnType::CommonName, names[0]);
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        let cert_path = self.dir.path().join(format!("{file}.crt"));
        let key_path = self.dir.path().join(format!("{file}.key"));
        std::fs::write(&cert_path, cert.pem() + &self.cert.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        (cert_path, key_path)
    }
}

/// The first certificate of a PEM file (a root written by the proxy's local CA).
pub fn root_from_pem_file(path: &Path) -> CertificateDer<'static> {
    CertificateDer::from_pem_file(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A client that trusts only `roots` and offers ALPN `http/1.1`, as browsers do for wss.
pub fn client_config(roots: &[CertificateDer<'static>]) -> Arc<ClientConfig> {
    let mut store = RootCertStore::empty();
    for root in roots {
        store.add(root.clone()).unwrap();
    }
    let mut config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(store)
            .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

/// A verified TLS connection to the proxy. The handshake completes in [`TlsClientStream::connect`],
/// so a certificate or SNI problem fails there with rustls's own message.
pub struct TlsClientStream(Box<StreamOwned<ClientConnection, TcpStream>>);

impl TlsClientStream {
    pub fn connect(addr: SocketAddr, server_name: &str, config: &Arc<ClientConfig>) -> Self {
        Self::try_connect(addr, server_name, config)
            .unwrap_or_else(|e| panic!("TLS to {addr} as {server_name}: {e}"))
    }

    pub fn try_connect(
        addr: SocketAddr,
        server_name: &str,
        config: &Arc<ClientConfig>,
    ) -> io::Result<Self> {
        let tcp = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        tcp.set_nodelay(true)?;
        tcp.set_read_timeout(Some(IO_TIMEOUT))?;
        tcp.set_write_timeout(Some(IO_TIMEOUT))?;
        let name = ServerName::try_from(server_name.to_string())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let conn = ClientConnection::new(config.clone(), name).map_err(io::Error::other)?;
        let mut stream = StreamOwned::new(conn, tcp);
        while stream.conn.is_handshaking() {
            stream.conn.complete_io(&mut stream.sock)?;
        }
        Ok(TlsClientStream(Box::new(stream)))
    }

    pub fn conn(&self) -> &ClientConnection {
        &self.0.conn
    }

    /// The certificate chain the proxy presented, leaf first.
    pub fn peer_chain(&self) -> Vec<CertificateDer<'static>> {
        self.0.conn.peer_certificates().unwrap_or_default().to_vec()
    }
}

impl Read for TlsClientStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl Write for TlsClientStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl Wire for TlsClientStream {
    fn set_read_timeout(&self, timeout: Duration) {
        let timeout = timeout.max(Duration::from_millis(1));
        self.0.sock.set_read_timeout(Some(timeout)).unwrap();
    }
}

/// An HTTP/1.1 connection over a fresh TLS connection.
pub fn https_conn(
    addr: SocketAddr,
    server_name: &str,
    config: &Arc<ClientConfig>,
) -> HttpConn<TlsClientStream> {
    HttpConn::new(TlsClientStream::connect(addr, server_name, config))
}

/// Open a WebSocket over `stream` (TLS already established) for `host` + `path`.
pub fn wss_connect(stream: TlsClientStream, host: &str, path: &str) -> WebSocket<TlsClientStream> {
    let url = format!("wss://{host}{path}");
    let (ws, resp) = tungstenite::client(url.as_str(), stream)
        .unwrap_or_else(|e| panic!("WebSocket handshake to {url}: {e}"));
    assert_eq!(resp.status(), 101);
    ws
}
