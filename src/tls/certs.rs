//! Certificate files: loading a `tls <cert.pem> <key.pem>` pair into a rustls `CertifiedKey`,
//! and reading what we need from an X.509 certificate (validity, names).
//!
//! Every failure names the file it came from, because the user's next step is to look at that
//! file. An expired certificate is not an error (Caddy serves it too, and refusing to start
//! would take every other site down with it): the caller logs a warning with the date.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use x509_parser::extensions::GeneralName;

#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("{path}: not valid PEM: {reason}")]
    Pem { path: PathBuf, reason: String },
    #[error("{path}: no CERTIFICATE block found")]
    NoCertificate { path: PathBuf },
    #[error("{path}: certificate is not valid X.509: {reason}")]
    BadCertificate { path: PathBuf, reason: String },
    #[error("{path}: no private key found (expected a PKCS#8, PKCS#1 RSA or SEC1 EC key)")]
    NoKey { path: PathBuf },
    #[error("{path}: unusable private key: {reason}")]
    BadKey { path: PathBuf, reason: String },
    #[error("private key {key} does not match certificate {cert}")]
    KeyMismatch { cert: PathBuf, key: PathBuf },
}

/// A certificate chain with its key, ready for the store, and what startup reports about it.
#[derive(Clone)]
pub struct LoadedCert {
    pub key: Arc<CertifiedKey>,
    pub info: CertInfo,
}

/// What we read from an end-entity certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    pub not_before: SystemTime,
    pub not_after: SystemTime,
    /// `not_after` as a human date, e.g. `Mar  1 12:00:00 2025 +00:00`.
    pub not_after_display: String,
    /// DNS subject alternative names, lower-case (wildcards as `*.example.com`).
    pub dns_names: Vec<String>,
    /// IP subject alternative names, as text (`127.0.0.1`, `::1`).
    pub ip_names: Vec<String>,
}

impl CertInfo {
    pub fn is_expired(&self, now: SystemTime) -> bool {
        now > self.not_after
    }

    pub fn lifetime(&self) -> Duration {
        self.not_after.duration_since(self.not_before).unwrap_or_default()
    }
}

/// Load a certificate chain (leaf first) and its private key from PEM files and check that
/// they belong together.
pub fn load_pem_pair(
    cert_path: &Path,
    key_path: &Path,
    provider: &CryptoProvider,
) -> Result<LoadedCert, CertError> {
    let cert_pem = read(cert_path)?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(cert_path, e))?;
    let Some(leaf) = chain.first() else {
        return Err(CertError::NoCertificate { path: cert_path.to_owned() });
    };
    let info = cert_info(leaf)
        .map_err(|reason| CertError::BadCertificate { path: cert_path.to_owned(), reason })?;

    let key_pem = read(key_path)?;
    let key_der = match PrivateKeyDer::from_pem_slice(&key_pem) {
        Ok(key) => key,
        Err(pem::Error::NoItemsFound) => {
            return Err(CertError::NoKey { path: key_path.to_owned() })
        }
        Err(e) => return Err(pem_error(key_path, e)),
    };
    let signing_key = provider
        .key_provider
        .load_private_key(key_der)
        .map_err(|e| CertError::BadKey { path: key_path.to_owned(), reason: e.to_string() })?;
    let certified = CertifiedKey::new(chain, signing_key);
    match certified.keys_match() {
        Ok(()) => {}
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {
            // The provider cannot derive the public key; rustls itself accepts this case.
        }
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            return Err(CertError::KeyMismatch {
                cert: cert_path.to_owned(),
                key: key_path.to_owned(),
            });
        }
        Err(e) => {
            return Err(CertError::BadCertificate {
                path: cert_path.to_owned(),
                reason: e.to_string(),
            })
        }
    }
    Ok(LoadedCert { key: Arc::new(certified), info })
}

fn read(path: &Path) -> Result<Vec<u8>, CertError> {
    fs::read(path).map_err(|source| CertError::Read { path: path.to_owned(), source })
}

fn pem_error(path: &Path, e: pem::Error) -> CertError {
    CertError::Pem { path: path.to_owned(), reason: e.to_string() }
}

/// Validity and names of a DER certificate. The error is a reason for the user.
pub fn cert_info(der: &CertificateDer<'_>) -> Result<CertInfo, String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).map_err(|e| e.to_string())?;
    let validity = cert.validity();
    let mut dns_names = Vec::new();
    let mut ip_names = Vec::new();
    if let Some(san) = cert.subject_alternative_name().map_err(|e| e.to_string())? {
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(dns) => dns_names.push(dns.to_ascii_lowercase()),
                GeneralName::IPAddress(bytes) => {
                    if let Some(ip) = ip_from_bytes(bytes) {
                        ip_names.push(ip.to_string());
                    }
                }
                _ => {}
            }
        }
    }
    Ok(CertInfo {
        not_before: unix_to_system(validity.not_before.timestamp()),
        not_after: unix_to_system(validity.not_after.timestamp()),
        not_after_display: validity.not_after.to_string(),
        dns_names,
        ip_names,
    })
}

fn ip_from_bytes(bytes: &[u8]) -> Option<std::net::IpAddr> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes).ok().map(std::net::IpAddr::from),
        16 => <[u8; 16]>::try_from(bytes).ok().map(std::net::IpAddr::from),
        _ => None,
    }
}

fn unix_to_system(secs: i64) -> SystemTime {
    if secs >= 0 {
        UNIX_EPOCH + Duration::from_secs(secs.unsigned_abs())
    } else {
        UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, KeyPair};

    fn provider() -> CryptoProvider {
        rustls::crypto::ring::default_provider()
    }

    #[test]
    fn reads_names_and_validity_from_a_certificate() {
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(vec!["Example.COM".into(), "*.example.com".into()]).unwrap();
        params.subject_alt_names.push(rcgen::SanType::IpAddress("::1".parse().unwrap()));
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        let cert = params.self_signed(&key).unwrap();
        let info = cert_info(cert.der()).unwrap();
        assert_eq!(info.dns_names, ["example.com", "*.example.com"]);
        assert_eq!(info.ip_names, ["::1"]);
        assert!(info.is_expired(SystemTime::now()));
        assert_eq!(info.lifetime(), Duration::from_secs(366 * 86400));
        assert!(info.not_after_display.contains("2021"), "{}", info.not_after_display);
    }

    #[test]
    fn loads_pkcs8_keys_of_every_supported_algorithm() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        // PKCS#8 here; SEC1 and PKCS#1 files (which rcgen cannot write) are covered by the
        // integration tests with keys made by openssl.
        for (i, alg) in
            [&rcgen::PKCS_ECDSA_P256_SHA256, &rcgen::PKCS_ECDSA_P384_SHA384, &rcgen::PKCS_ED25519]
                .into_iter()
                .enumerate()
        {
            let key = KeyPair::generate_for(alg).unwrap();
            let cert =
                CertificateParams::new(vec!["a.test".into()]).unwrap().self_signed(&key).unwrap();
            let (c, k) = (dir.join(format!("{i}.crt")), dir.join(format!("{i}.key")));
            fs::write(&c, cert.pem()).unwrap();
            fs::write(&k, key.serialize_pem()).unwrap();
            let loaded = load_pem_pair(&c, &k, &provider()).unwrap();
            assert_eq!(loaded.info.dns_names, ["a.test"]);
        }
    }

    #[test]
    fn every_bad_file_names_itself() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let key = KeyPair::generate().unwrap();
        let other = KeyPair::generate().unwrap();
        let cert =
            CertificateParams::new(vec!["a.test".into()]).unwrap().self_signed(&key).unwrap();
        let (c, k, k2) = (dir.join("c.pem"), dir.join("k.pem"), dir.join("other.pem"));
        fs::write(&c, cert.pem()).unwrap();
        fs::write(&k, key.serialize_pem()).unwrap();
        fs::write(&k2, other.serialize_pem()).unwrap();
        let p = provider();

        let missing = dir.join("missing.pem");
        let err = load_pem_pair(&missing, &k, &p).err().unwrap();
        assert!(matches!(err, CertError::Read { ref path, .. } if path == &missing), "{err}");
        assert!(err.to_string().contains("missing.pem"));

        let err = load_pem_pair(&c, &k2, &p).err().unwrap();
        assert!(matches!(err, CertError::KeyMismatch { .. }), "{err}");
        assert!(err.to_string().contains("other.pem") && err.to_string().contains("c.pem"));

        // A key file given as the certificate: no CERTIFICATE block in it.
        let err = load_pem_pair(&k, &k, &p).err().unwrap();
        assert!(matches!(err, CertError::NoCertificate { .. }), "{err}");
        // A certificate given as the key: no private key in it.
        let err = load_pem_pair(&c, &c, &p).err().unwrap();
        assert!(matches!(err, CertError::NoKey { .. }), "{err}");

        let junk = dir.join("junk.pem");
        fs::write(&junk, "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n").unwrap();
        let err = load_pem_pair(&junk, &k, &p).err().unwrap();
        assert!(matches!(err, CertError::Pem { .. }), "{err}");
    }
}
