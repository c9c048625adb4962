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
//! Directories are created 0700. Every file is written to a temporary file in the same
//! directory, fsynced, renamed over the target and the directory fsynced, so a crash leaves
//! either the old file or the new one, never half a key. The chain and key of one name are two
//! files: the key is written first and the chain last, and a reader that finds a chain whose
//! leaf does not match the key treats the pair as missing (and orders again) rather than
//! serving a broken pair.
//!
//! All I/O here is blocking std I/O: it runs only on the ACME control-plane thread, never on a
//! worker, and each call touches a few small files.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::FromDer;

/// Permissions for every directory we create: only the proxy's user may list it.
const DIR_MODE: u32 = 0o700;
/// Permissions for private keys and account credentials.
const SECRET_MODE: u32 = 0o600;
/// Permissions for certificate chains: public data, but nobody else needs to write them.
const PUBLIC_MODE: u32 = 0o644;

/// Why reading or writing ACME storage failed.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
}

impl StorageError {
    fn io(path: &Path, source: io::Error) -> Self {
        StorageError::Io { path: path.to_owned(), source }
    }

    fn invalid(path: &Path, reason: impl Into<String>) -> Self {
        StorageError::Invalid { path: path.to_owned(), reason: reason.into() }
    }
}

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
        write_atomic(&self.account_path(email), json, SECRET_MODE)
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
        write_atomic(&self.key_path(name), key_pem, SECRET_MODE)?;
        write_atomic(&self.chain_path(name), chain_pem, PUBLIC_MODE)
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

/// Create `dir` and its missing parents with mode 0700.
pub fn create_private_dir(dir: &Path) -> Result<(), StorageError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)
        .map_err(|e| StorageError::io(dir, e))
}

/// Replace `path` with `contents` so that a crash at any point leaves either the old file or
/// the new one: write a temporary file in the same directory with `mode`, fsync it, rename it
/// over `path`, fsync the directory so the rename itself is durable.
pub fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> Result<(), StorageError> {
    let Some(dir) = path.parent() else {
        return Err(StorageError::invalid(path, "no parent directory"));
    };
    create_private_dir(dir)?;
    let file_name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{file_name}.tmp.{}.{}", std::process::id(), unique_suffix()));
    let result = (|| {
        // create_new: never follow or reuse a file someone else put at our temp name.
        let mut file = OpenOptions::new().write(true).create_new(true).mode(mode).open(&tmp)?;
        file.write_all(contents)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(StorageError::io(path, e));
    }
    Ok(())
}

/// A suffix that differs between calls in one process (threads included).
fn unique_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    (COUNTER.fetch_add(1, Ordering::Relaxed) << 32) | u64::from(nanos)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "ringproxy-acme-{tag}-{}-{}",
            std::process::id(),
            unique_suffix()
        ));
        fs::create_dir_all(&dir).unwrap();
        dir
    }

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
        let dir = temp_dir("save");
        let storage = AcmeStorage::new(&dir, "https://ca.test/dir");
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
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn missing_cert_is_none_and_mismatched_pair_is_an_error() {
        let dir = temp_dir("mismatch");
        let storage = AcmeStorage::new(&dir, "https://ca.test/dir");
        assert!(storage.load_cert("a.example").unwrap().is_none());

        let (chain, _) = self_signed("a.example", 1, 30);
        let (_, other_key) = self_signed("a.example", 1, 30);
        // Simulates a crash between the key write and the chain write.
        storage.save_cert("a.example", chain.as_bytes(), other_key.as_bytes()).unwrap();
        let err = storage.load_cert("a.example").unwrap_err();
        assert!(err.to_string().contains("does not match"), "{err}");
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn cert_for_another_name_is_rejected() {
        let (chain, key) = self_signed("b.example", 1, 30);
        let err =
            parse_cert("a.example", chain.as_bytes(), key.as_bytes(), Path::new("x")).unwrap_err();
        assert!(err.to_string().contains("does not cover a.example"), "{err}");
    }

    #[test]
    fn atomic_write_replaces_content_and_keeps_mode() {
        let dir = temp_dir("atomic");
        let path = dir.join("sub").join("secret");
        write_atomic(&path, b"one", SECRET_MODE).unwrap();
        write_atomic(&path, b"two", SECRET_MODE).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(fs::metadata(dir.join("sub")).unwrap().permissions().mode() & 0o777, 0o700);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn concurrent_atomic_writers_never_expose_a_partial_file() {
        let dir = temp_dir("race");
        let path = dir.join("key.pem");
        let a = vec![b'a'; 64 * 1024];
        let b = vec![b'b'; 64 * 1024];
        write_atomic(&path, &a, SECRET_MODE).unwrap();
        std::thread::scope(|s| {
            for payload in [&a, &b] {
                let path = &path;
                s.spawn(move || {
                    for _ in 0..50 {
                        write_atomic(path, payload, SECRET_MODE).unwrap();
                    }
                });
            }
            s.spawn(|| {
                for _ in 0..200 {
                    let seen = fs::read(&path).unwrap();
                    assert!(seen == a || seen == b, "torn read of {} bytes", seen.len());
                }
            });
        });
        fs::remove_dir_all(dir).unwrap();
    }
}
