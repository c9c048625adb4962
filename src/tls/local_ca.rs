//! The local certificate authority behind `tls internal`, `local_certs` and localhost/IP sites,
//! modelled on Caddy's: one long-lived root kept in the storage directory, created on first
//! use, and short-lived leaf certificates issued from it at startup and renewed in the
//! background well before they expire.
//!
//! Layout: `<storage>/pki/authorities/local/{root.crt,root.key}`. The pair is created in a
//! temporary directory and renamed into place in one step, so two instances starting together
//! on one storage directory cannot end up with a key that does not match the certificate: the
//! loser of the rename race loads the winner's root.
//!
//! Leaves are signed directly by the root (no intermediate): the root key is needed online
//! anyway to renew leaves, so an intermediate would add handshake bytes without reducing risk.
//! Leaves are not persisted; issuing one is a single ECDSA signature.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use super::certs::{cert_info, LoadedCert};
use crate::storage::{self, StorageError, PUBLIC_FILE_MODE, SECRET_FILE_MODE};

/// The root's subject. It is also how a stored root is re-bound to its key for signing, so it
/// must never change between versions.
const ROOT_COMMON_NAME: &str = "ringproxy Local Authority - ECC Root";
const ROOT_ORGANIZATION: &str = "ringproxy";

/// Root validity: long, since users install it in trust stores by hand (Caddy: 10 years).
pub const ROOT_LIFETIME: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// Leaf validity. Short so that a leaked leaf key matters briefly; renewal runs at 2/3.
pub const LEAF_LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);
/// Leaves are back-dated by this much to tolerate clients whose clocks run slightly behind.
const CLOCK_SKEW_ALLOWANCE: Duration = Duration::from_secs(3600);

const ROOT_CERT_FILE: &str = "root.crt";
const ROOT_KEY_FILE: &str = "root.key";

#[derive(Debug, thiserror::Error)]
pub enum LocalCaError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("local CA {path}: {reason}")]
    BadRoot { path: PathBuf, reason: String },
    #[error("local CA: cannot issue a certificate for {names:?}: {reason}")]
    Issue { names: Vec<String>, reason: String },
}

/// The local CA, loaded and ready to sign.
pub struct LocalCa {
    dir: PathBuf,
    root_der: CertificateDer<'static>,
    /// The root's parameters rebuilt around the stored key: rcgen signs with the issuer's
    /// subject name and key, which is all a leaf needs to chain to the stored root.
    issuer: rcgen::Certificate,
    issuer_key: KeyPair,
}

impl LocalCa {
    /// Load the root from `<storage>/pki/authorities/local`, creating it on first use.
    pub fn load_or_create(storage_dir: &Path) -> Result<LocalCa, LocalCaError> {
        let authorities = storage_dir.join("pki/authorities");
        let dir = authorities.join("local");
        if !dir.join(ROOT_KEY_FILE).exists() {
            storage::create_private_dir(&authorities)?;
            create_root(&dir)?;
        }
        Self::load(&dir)
    }

    fn load(dir: &Path) -> Result<LocalCa, LocalCaError> {
        let key_path = dir.join(ROOT_KEY_FILE);
        let cert_path = dir.join(ROOT_CERT_FILE);
        let bad = |path: &Path, reason: String| LocalCaError::BadRoot { path: path.into(), reason };
        let key_pem = fs::read_to_string(&key_path).map_err(|e| bad(&key_path, e.to_string()))?;
        let issuer_key = KeyPair::from_pem(&key_pem).map_err(|e| bad(&key_path, e.to_string()))?;
        let cert_pem = fs::read(&cert_path).map_err(|e| bad(&cert_path, e.to_string()))?;
        let root_der = CertificateDer::from_pem_slice(&cert_pem)
            .map_err(|e| bad(&cert_path, e.to_string()))?;

        let issuer = root_params(SystemTime::now())
            .self_signed(&issuer_key)
            .map_err(|e| bad(&key_path, e.to_string()))?;
        // The stored certificate must carry our key and our subject, or leaves signed here
        // would not chain to what users trusted.
        let stored = parse_spki_and_subject(&root_der).map_err(|r| bad(&cert_path, r))?;
        let rebuilt = parse_spki_and_subject(issuer.der()).map_err(|r| bad(&cert_path, r))?;
        if stored != rebuilt {
            return Err(bad(&cert_path, format!("does not match {}", key_path.display())));
        }
        Ok(LocalCa { dir: dir.to_owned(), root_der, issuer, issuer_key })
    }

    /// Where the root certificate is, for users to add to their trust stores.
    pub fn root_cert_path(&self) -> PathBuf {
        self.dir.join(ROOT_CERT_FILE)
    }

    pub fn root_der(&self) -> &CertificateDer<'static> {
        &self.root_der
    }

    /// Issue a leaf for `names` (DNS names, `*.` wildcards, IP addresses), valid from an hour
    /// ago for [`LEAF_LIFETIME`].
    pub fn issue(
        &self,
        names: &[String],
        provider: &CryptoProvider,
    ) -> Result<LoadedCert, LocalCaError> {
        let fail = |reason: String| LocalCaError::Issue { names: names.to_vec(), reason };
        let now = SystemTime::now();
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .map_err(|e| fail(e.to_string()))?;
        let mut params = CertificateParams::new(names.to_vec()).map_err(|e| fail(e.to_string()))?;
        let mut dn = DistinguishedName::new();
        if let Some(first) = names.first() {
            dn.push(DnType::CommonName, first.as_str());
        }
        params.distinguished_name = dn;
        params.not_before = (now - CLOCK_SKEW_ALLOWANCE).into();
        params.not_after = (now + LEAF_LIFETIME).into();
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        let cert = params
            .signed_by(&key, &self.issuer, &self.issuer_key)
            .map_err(|e| fail(e.to_string()))?;

        let info = cert_info(cert.der()).map_err(fail)?;
        let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let signing_key =
            provider.key_provider.load_private_key(key_der).map_err(|e| fail(e.to_string()))?;
        let certified = CertifiedKey::new(vec![cert.der().clone()], signing_key);
        Ok(LoadedCert { key: Arc::new(certified), info })
    }
}

fn root_params(now: SystemTime) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, ROOT_ORGANIZATION);
    dn.push(DnType::CommonName, ROOT_COMMON_NAME);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = (now - CLOCK_SKEW_ALLOWANCE).into();
    params.not_after = (now + ROOT_LIFETIME).into();
    params
}

/// Create a new root in `dir`, atomically as a pair; if another process got there first, keep
/// theirs.
fn create_root(dir: &Path) -> Result<(), LocalCaError> {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(|e| LocalCaError::BadRoot { path: dir.into(), reason: e.to_string() })?;
    let cert = root_params(SystemTime::now())
        .self_signed(&key)
        .map_err(|e| LocalCaError::BadRoot { path: dir.into(), reason: e.to_string() })?;

    let staging = storage::temp_sibling(dir);
    storage::create_private_dir(&staging)?;
    let key_path = staging.join(ROOT_KEY_FILE);
    let written =
        storage::write_atomic(&key_path, key.serialize_pem().as_bytes(), SECRET_FILE_MODE)
            .and_then(|()| {
                let cert_path = staging.join(ROOT_CERT_FILE);
                storage::write_atomic(&cert_path, cert.pem().as_bytes(), PUBLIC_FILE_MODE)
            });
    if let Err(e) = written {
        let _ = fs::remove_dir_all(&staging);
        return Err(e.into());
    }
    match fs::rename(&staging, dir) {
        Ok(()) => {
            tracing::info!(root = %dir.join(ROOT_CERT_FILE).display(), "created the local CA");
            Ok(())
        }
        // rename(2) onto a non-empty directory fails: a concurrent instance created the root.
        Err(e) if dir.join(ROOT_KEY_FILE).exists() => {
            tracing::debug!("local CA created concurrently ({e}); using the existing root");
            let _ = fs::remove_dir_all(&staging);
            Ok(())
        }
        Err(e) => {
            let _ = fs::remove_dir_all(&staging);
            Err(StorageError::io(dir, e).into())
        }
    }
}

fn parse_spki_and_subject(der: &[u8]) -> Result<(Vec<u8>, Vec<u8>), String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| e.to_string())?;
    Ok((cert.public_key().raw.to_vec(), cert.subject().as_raw().to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::client::danger::ServerCertVerifier;
    use std::os::unix::fs::PermissionsExt;

    fn verify(leaf: &CertificateDer<'_>, root: &CertificateDer<'_>, name: &str) {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(root.clone()).unwrap();
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            Arc::new(rustls::crypto::ring::default_provider()),
        )
        .build()
        .unwrap();
        let name = rustls_pki_types::ServerName::try_from(name.to_owned()).unwrap();
        verifier
            .verify_server_cert(leaf, &[], &name, &[], rustls_pki_types::UnixTime::now())
            .unwrap();
    }

    #[test]
    fn root_is_created_once_kept_private_and_signs_verifiable_leaves() {
        let tmp = tempfile::tempdir().unwrap();
        let storage = tmp.path().to_path_buf();
        let provider = rustls::crypto::ring::default_provider();
        let ca = LocalCa::load_or_create(&storage).unwrap();
        let key_mode = fs::metadata(storage.join("pki/authorities/local/root.key")).unwrap();
        assert_eq!(key_mode.permissions().mode() & 0o777, 0o600);
        let dir_mode = fs::metadata(storage.join("pki/authorities/local")).unwrap();
        assert_eq!(dir_mode.permissions().mode() & 0o777, 0o700);

        let leaf = ca.issue(&["localhost".into(), "127.0.0.1".into()], &provider).unwrap();
        verify(&leaf.key.cert[0], ca.root_der(), "localhost");
        verify(&leaf.key.cert[0], ca.root_der(), "127.0.0.1");
        assert_eq!(leaf.info.ip_names, ["127.0.0.1"]);

        // A restart loads the same root, and its leaves chain to the root users trusted.
        let again = LocalCa::load_or_create(&storage).unwrap();
        assert_eq!(again.root_der(), ca.root_der());
        let leaf = again.issue(&["*.internal.test".into()], &provider).unwrap();
        verify(&leaf.key.cert[0], ca.root_der(), "a.internal.test");
    }

    #[test]
    fn a_root_certificate_that_does_not_match_its_key_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let storage = tmp.path().to_path_buf();
        LocalCa::load_or_create(&storage).unwrap();
        let other = KeyPair::generate().unwrap();
        let key_path = storage.join("pki/authorities/local/root.key");
        fs::write(&key_path, other.serialize_pem()).unwrap();
        let err = LocalCa::load_or_create(&storage).err().unwrap();
        assert!(err.to_string().contains("root.crt"), "{err}");
    }
}
