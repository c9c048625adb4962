//! ACME state on disk: the account, each name's certificate chain and private key, and the
//! per-name lock files that keep several ringproxy instances sharing one storage directory
//! from ordering the same certificate twice.
//!
//! Layout (everything under `<storage>/acme/<ca-id>/`, where `<ca-id>` is derived from the
//! directory URL so that staging and production certificates never mix):
//!
//! ```text
//! accounts/<email>.json     instant-acme credentials (account URL + PKCS#8 key), 0600;
//!                           `default.json` for an account without contact email
//! certs/<name>/chain.pem    leaf first, then intermediates
//! certs/<name>/key.pem      PKCS#8 private key, 0600
//! locks/<name>.lock         present while an instance is ordering <name> (see `lock`)
//! ```
//!
//! Files are written with `crate::storage::write_atomic` (a crash leaves either the old file
//! or the new one, never half a key; directories 0700). The chain and key of one name are two
//! files: the key is written first and the chain last, and a reader that finds a chain whose
//! leaf does not match the key treats the pair as missing (and orders again) rather than
//! serving a broken pair.
//!
//! All I/O here is blocking std I/O: it runs only on the ACME control-plane thread, never on a
//! worker, and each call touches a few small files.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::FromDer;

pub use crate::storage::StorageError;
use crate::storage::{write_atomic, PUBLIC_FILE_MODE, SECRET_FILE_MODE};

/// The ACME part of the storage directory for one CA.
#[derive(Debug, Clone)]
pub struct AcmeStorage {
    root: PathBuf,
}

/// A certificate chain and key as loaded from disk or received from the CA, ready for the
/// resolver, with the validity period of its leaf.
#[derive(Clone)]
pub struct StoredCert {
    pub key: Arc<CertifiedKey>,
    pub not_before: SystemTime,
    pub not_after: SystemTime,
}

impl std::fmt::Debug for StoredCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredCert")
            .field("not_before", &self.not_before)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

impl AcmeStorage {
    /// The storage for the CA at `directory_url` under the proxy's storage directory.
    pub fn new(storage_dir: &Path, directory_url: &str) -> Self {
        AcmeStorage { root: storage_dir.join("acme").join(ca_id(directory_url)) }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the account for contact `email` (`""` for none) is kept.
    pub fn account_path(&self, email: &str) -> PathBuf {
        self.root.join("accounts").join(format!("{}.json", super::account::file_label(email)))
    }

    pub fn cert_dir(&self, name: &str) -> PathBuf {
        self.root.join("certs").join(name)
    }

    pub fn chain_path(&self, name: &str) -> PathBuf {
        self.cert_dir(name).join("chain.pem")
    }

    pub fn key_path(&self, name: &str) -> PathBuf {
        self.cert_dir(name).join("key.pem")
    }

    pub fn locks_dir(&self) -> PathBuf {
        self.root.join("locks")
    }

    /// The stored account credentials (JSON), if any.
    pub fn load_account(&self, email: &str) -> Result<Option<Vec<u8>>, StorageError> {
        let path = self.account_path(email);
        match fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StorageError::io(&path, e)),
        }
    }

    pub fn save_account(&self, email: &str, json: &[u8]) -> Result<(), StorageError> {
        write_atomic(&self.account_path(email), json, SECRET_FILE_MODE)
    }

    pub fn remove_account(&self, email: &str) -> Result<(), StorageError> {
        let path = self.account_path(email);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StorageError::io(&path, e)),
        }
    }

    /// The stored certificate for `name`: `Ok(None)` when there is none yet, an error when
    /// files exist but cannot be used (the caller logs it and orders a new certificate).
    pub fn load_cert(&self, name: &str) -> Result<Option<StoredCert>, StorageError> {
        let chain_path = self.chain_path(name);
        let chain_pem = match fs::read(&chain_path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(StorageError::io(&chain_path, e)),
        };
        let key_path = self.key_path(name);
        let key_pem = match fs::read(&key_path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(StorageError::io(&key_path, e)),
        };
        parse_cert(name, &chain_pem, &key_pem, &chain_path).map(Some)
    }

    /// Write `name`'s key and chain (PEM). The key goes first: a crash between the two writes
    /// leaves a new key next to the old chain, which `load_cert` rejects as a mismatch.
    pub fn save_cert(
        &self,
        name: &str,
        chain_pem: &[u8],
        key_pem: &[u8],
    ) -> Result<(), StorageError> {
        write_atomic(&self.key_path(name), key_pem, SECRET_FILE_MODE)?;
        write_atomic(&self.chain_path(name), chain_pem, PUBLIC_FILE_MODE)
    }
}

/// A file-system-safe identifier for an ACME directory URL: its host, port and path with
/// anything but `[A-Za-z0-9.-]` replaced, e.g. `acme-v02.api.letsencrypt.org-directory`.
pub fn ca_id(directory_url: &str) -> String {
    let rest = directory_url.split_once("://").map_or(directory_url, |(_, rest)| rest);
    let mut id: String = rest
        .trim_end_matches('/')
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' { c } else { '-' })
        .collect();
    if id.is_empty() {
        id.push_str("default");
    }
    id
}

/// Parse a PEM chain and key for `name`: the key must match the leaf and the leaf must name
/// `name` in its subject alternative names.
pub fn parse_cert(
    name: &str,
    chain_pem: &[u8],
    key_pem: &[u8],
    origin: &Path,
) -> Result<StoredCert, StorageError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(chain_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| StorageError::invalid(origin, format!("bad certificate PEM: {e}")))?;
    let Some(leaf) = chain.first() else {
        return Err(StorageError::invalid(origin, "no certificate in chain"));
    };
    let (not_before, not_after) =
        leaf_validity(name, leaf).map_err(|r| StorageError::invalid(origin, r))?;
    let key_der = PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|e| StorageError::invalid(origin, format!("bad private key PEM: {e}")))?;
    let signing_key = rustls::crypto::ring::sign::any_supported_type(&key_der)
        .map_err(|e| StorageError::invalid(origin, format!("unusable private key: {e}")))?;
    let certified = CertifiedKey::new(chain, signing_key);
    certified.keys_match().map_err(|e| {
        StorageError::invalid(origin, format!("key does not match certificate: {e}"))
    })?;
    Ok(StoredCert { key: Arc::new(certified), not_before, not_after })
}

/// The leaf's validity period, after checking that it covers `name`.
fn leaf_validity(
    name: &str,
    leaf: &CertificateDer<'_>,
) -> Result<(SystemTime, SystemTime), String> {
    let (_, cert) = x509_parser::certificate::X509Certificate::from_der(leaf.as_ref())
        .map_err(|e| format!("bad certificate: {e}"))?;
    let covers = match cert.subject_alternative_name() {
        Ok(Some(san)) => san
            .value
            .general_names
            .iter()
            .any(|n| matches!(n, GeneralName::DNSName(dns) if dns.eq_ignore_ascii_case(name))),
        Ok(None) => false,
        Err(e) => return Err(format!("bad subjectAltName: {e}")),
    };
    if !covers {
        return Err(format!("certificate does not cover {name}"));
    }
    let validity = cert.validity();
    Ok((
        unix_to_system(validity.not_before.timestamp()),
        unix_to_system(validity.not_after.timestamp()),
    ))
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
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn self_signed(name: &str, days_before: i64, days_after: i64) -> (String, String) {
        let mut params = rcgen::CertificateParams::new(vec![name.to_owned()]).unwrap();
        let now = time_now();
        params.not_before = now - rcgen_days(days_before);
        params.not_after = now + rcgen_days(days_after);
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let cert = params.self_signed(&key).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    fn time_now() -> time::OffsetDateTime {
        time::OffsetDateTime::now_utc()
    }

    fn rcgen_days(days: i64) -> time::Duration {
        time::Duration::days(days)
    }

    #[test]
    fn ca_id_is_a_safe_single_path_component() {
        assert_eq!(
            ca_id("https://acme-v02.api.letsencrypt.org/directory"),
            "acme-v02.api.letsencrypt.org-directory"
        );
        assert_eq!(ca_id("https://127.0.0.1:14000/dir"), "127.0.0.1-14000-dir");
        assert_eq!(ca_id("https://x/../../etc"), "x-..-..-etc");
        assert!(!ca_id("https://x/../../etc").contains('/'));
    }

    #[test]
    fn saved_cert_loads_back_with_its_validity_and_private_permissions() {
        let dir = tempfile::tempdir().unwrap();
        let storage = AcmeStorage::new(dir.path(), "https://ca.test/dir");
        let (chain, key) = self_signed("a.example", 1, 30);
        storage.save_cert("a.example", chain.as_bytes(), key.as_bytes()).unwrap();

        let loaded = storage.load_cert("a.example").unwrap().unwrap();
        let lifetime = loaded.not_after.duration_since(loaded.not_before).unwrap();
        assert_eq!(lifetime, Duration::from_secs(31 * 86_400));

        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&storage.key_path("a.example")), 0o600);
        assert_eq!(mode(&storage.chain_path("a.example")), 0o644);
        assert_eq!(mode(&storage.cert_dir("a.example")), 0o700);
        assert_eq!(mode(storage.root()), 0o700);
        // No temporary files are left behind.
        let leftovers: Vec<_> = fs::read_dir(storage.cert_dir("a.example"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .filter(|n| n.to_string_lossy().starts_with('.'))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[test]
    fn missing_cert_is_none_and_mismatched_pair_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let storage = AcmeStorage::new(dir.path(), "https://ca.test/dir");
        assert!(storage.load_cert("a.example").unwrap().is_none());

        let (chain, _) = self_signed("a.example", 1, 30);
        let (_, other_key) = self_signed("a.example", 1, 30);
        // Simulates a crash between the key write and the chain write.
        storage.save_cert("a.example", chain.as_bytes(), other_key.as_bytes()).unwrap();
        let err = storage.load_cert("a.example").unwrap_err();
        assert!(err.to_string().contains("does not match"), "{err}");
    }

    #[test]
    fn cert_for_another_name_is_rejected() {
        let (chain, key) = self_signed("b.example", 1, 30);
        let err =
            parse_cert("a.example", chain.as_bytes(), key.as_bytes(), Path::new("x")).unwrap_err();
        assert!(err.to_string().contains("does not cover a.example"), "{err}");
    }
}
