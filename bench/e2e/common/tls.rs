//! TLS settings every benchmark party shares: TLS 1.3 only, one cipher suite
//! (TLS13_AES_128_GCM_SHA256, what Go and OpenSSL pick first on AES-NI hardware), ALPN
//! `http/1.1`, and no session resumption on the client so every connection is a full handshake.
//!
//! The certificate is the run's ECDSA P-256 leaf (made by bench/run with openssl); clients trust
//! the run's CA and send the SNI they are given, while connecting to 127.0.0.1.

use std::path::Path;
use std::sync::Arc;

use rustls::client::Resumption;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore, ServerConfig};

use super::ToolError;

fn provider() -> Arc<CryptoProvider> {
    let mut p = rustls::crypto::ring::default_provider();
    p.cipher_suites = vec![rustls::crypto::ring::cipher_suite::TLS13_AES_128_GCM_SHA256];
    Arc::new(p)
}

fn pem_error(path: &Path, e: impl std::fmt::Display) -> ToolError {
    ToolError::Pem { path: path.display().to_string(), message: e.to_string() }
}

fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, ToolError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| pem_error(path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(path, e))?;
    if certs.is_empty() {
        return Err(pem_error(path, "no certificate"));
    }
    Ok(certs)
}

/// The backend's TLS configuration for the "direct" target.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, ToolError> {
    let certs = load_certs(cert)?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| pem_error(key, e))?;
    let mut cfg = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// The load generator's TLS configuration: trusts only `ca`, never resumes.
pub fn client_config(ca: &Path) -> Result<Arc<ClientConfig>, ToolError> {
    let mut roots = RootCertStore::empty();
    for c in load_certs(ca)? {
        roots.add(c)?;
    }
    let mut cfg = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    cfg.resumption = Resumption::disabled();
    Ok(Arc::new(cfg))
}
