//! Certificates and trust for the TLS tests: [`TestCa`], a CA generated here with rcgen that
//! writes certificate and key files for `tls <cert> <key>`, and the rustls client
//! configurations that trust it (or a root the proxy wrote). The TLS connections themselves are
//! `ClientStream::Tls` (in `client`), so HTTP and WebSocket tests run over them unchanged.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, RootCertStore};

use super::temp::{temp_dir, TempDir};

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
        params.distinguished_name.push(DnType::CommonName, "ringproxy test CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
        let cert = params.self_signed(&key).unwrap();
        TestCa { cert, key, dir: temp_dir(tag) }
    }

    pub fn root(&self) -> CertificateDer<'static> {
        self.cert.der().clone()
    }

    /// Where the leaf files go; tests may write files of their own next to them.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The CA's certificate and key as PEM (to sign with another tool, such as openssl).
    pub fn pem_pair(&self) -> (String, String) {
        (self.cert.pem(), self.key.serialize_pem())
    }

    /// A leaf for `names` (ECDSA P-256), written as `<file>.crt` (leaf then CA: a full chain,
    /// as users deploy it) and `<file>.key` (PKCS#8).
    pub fn leaf(&self, file: &str, names: &[&str]) -> (PathBuf, PathBuf) {
        self.write_leaf(file, names, |_| {})
    }

    /// A leaf like [`TestCa::leaf`] that expired in 2021.
    pub fn expired_leaf(&self, file: &str, names: &[&str]) -> (PathBuf, PathBuf) {
        self.write_leaf(file, names, |params| {
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = rcgen::date_time_ymd(2021, 6, 30);
        })
    }

    fn write_leaf(
        &self,
        file: &str,
        names: &[&str],
        adjust: impl FnOnce(&mut CertificateParams),
    ) -> (PathBuf, PathBuf) {
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        params.distinguished_name.push(DnType::CommonName, names[0]);
        adjust(&mut params);
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        let cert_path = self.dir().join(format!("{file}.crt"));
        let key_path = self.dir().join(format!("{file}.key"));
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
    client_config_for(store)
}

/// A client that trusts `roots`, offering ALPN `http/1.1`.
pub fn client_config_for(roots: RootCertStore) -> Arc<ClientConfig> {
    let mut config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}
