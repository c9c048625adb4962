//! Challenge answers shared through the storage directory, so that every instance sharing it
//! answers the CA's validation requests, whichever instance placed the order. Behind a load
//! balancer the CA reaches an arbitrary instance; without this, only the orderer could answer
//! and validation would fail whenever the balancer picked another one.
//!
//! The orderer writes one small file per pending challenge into `<acme root>/challenges/`
//! (named by the challenge token, which RFC 8555 §8.1 restricts to base64url characters) and
//! waits [`PUBLISH_GRACE`] before telling the CA it is ready. Every instance's ACME thread
//! scans that directory every [`MIRROR_EVERY`] and mirrors new entries into its own
//! [`CertStore`], and withdraws entries whose file is gone.
//!
//! File format, three lines: challenge type (`http-01` or `tls-alpn-01`), name, key
//! authorization. The key authorization is not secret (the CA fetches it over plain HTTP), so
//! the files are 0644 like certificates.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::ChallengeKind;
use crate::storage::{write_atomic, StorageError, PUBLIC_FILE_MODE};
use crate::tls::store::CertStore;

/// How often every instance scans for challenges published by others.
pub const MIRROR_EVERY: Duration = Duration::from_millis(200);
/// How long an orderer waits after publishing before asking the CA to validate: two scan
/// periods, so every live instance has mirrored the answer.
pub const PUBLISH_GRACE: Duration = Duration::from_millis(500);
/// Files older than this were left by an instance that crashed mid-order; no CA validates a
/// challenge that long after it was issued.
const ABANDONED_AFTER: Duration = Duration::from_secs(3600);

/// The shared challenge directory of one CA's storage.
#[derive(Debug, Clone)]
pub struct SharedChallenges {
    dir: PathBuf,
}

/// A published challenge answer; dropping it removes the file.
#[derive(Debug)]
pub struct Published {
    path: PathBuf,
}

impl Drop for Published {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    kind: ChallengeKind,
    name: String,
    key_authorization: String,
}

/// RFC 8555 §8.1: tokens use the base64url alphabet; anything else is not a file name we
/// create or trust.
fn valid_token(token: &str) -> bool {
    !token.is_empty()
        && token.len() <= 256
        && token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl SharedChallenges {
    pub fn new(acme_root: &Path) -> Self {
        SharedChallenges { dir: acme_root.join("challenges") }
    }

    /// Publish the answer for `token` so every instance serves it.
    pub fn publish(
        &self,
        kind: ChallengeKind,
        name: &str,
        token: &str,
        key_authorization: &str,
    ) -> Result<Published, StorageError> {
        let path = self.dir.join(token);
        if !valid_token(token) || key_authorization.contains('\n') || name.contains('\n') {
            return Err(StorageError::Invalid {
                path,
                reason: "malformed challenge token".to_owned(),
            });
        }
        write_atomic(
            &path,
            format!("{kind}\n{name}\n{key_authorization}\n").as_bytes(),
            PUBLIC_FILE_MODE,
        )?;
        Ok(Published { path })
    }

    /// Mirror published answers into `store` forever (until the task is dropped).
    pub async fn mirror(self, store: Arc<CertStore>) {
        let mut mirrored: HashMap<String, Entry> = HashMap::new();
        loop {
            self.mirror_once(&store, &mut mirrored);
            tokio::time::sleep(MIRROR_EVERY).await;
        }
    }

    fn mirror_once(&self, store: &CertStore, mirrored: &mut HashMap<String, Entry>) {
        let current = match self.scan() {
            Ok(current) => current,
            Err(e) if e.kind() == io::ErrorKind::NotFound => HashMap::new(),
            Err(e) => {
                tracing::debug!(dir = %self.dir.display(), error = %e, "cannot scan shared ACME challenges");
                return;
            }
        };
        mirrored.retain(|token, entry| {
            if current.get(token) == Some(entry) {
                return true;
            }
            match entry.kind {
                ChallengeKind::Http01 => store.remove_http_challenge(token),
                ChallengeKind::TlsAlpn01 => store.remove_alpn_challenge(&entry.name),
            }
            false
        });
        for (token, entry) in current {
            if mirrored.contains_key(&token) {
                continue;
            }
            match entry.kind {
                ChallengeKind::Http01 => store.set_http_challenge(&token, &entry.key_authorization),
                ChallengeKind::TlsAlpn01 => {
                    let digest = sha256(entry.key_authorization.as_bytes());
                    match super::issue::alpn_challenge_cert(&entry.name, &digest) {
                        Ok(cert) => store.set_alpn_challenge(&entry.name, cert),
                        Err(e) => {
                            tracing::warn!(name = %entry.name, error = %e, "cannot build a shared TLS-ALPN-01 answer");
                            continue;
                        }
                    }
                }
            }
            tracing::debug!(name = %entry.name, challenge = %entry.kind, "serving an ACME challenge published in storage");
            mirrored.insert(token, entry);
        }
    }

    fn scan(&self) -> io::Result<HashMap<String, Entry>> {
        let mut found = HashMap::new();
        for dirent in fs::read_dir(&self.dir)? {
            let dirent = dirent?;
            let Ok(token) = dirent.file_name().into_string() else {
                continue;
            };
            // Temporary files of an in-progress write start with a dot.
            if !valid_token(&token) {
                continue;
            }
            let path = dirent.path();
            if is_abandoned(&path) {
                let _ = fs::remove_file(&path);
                continue;
            }
            let Ok(text) = fs::read_to_string(&path) else {
                continue;
            };
            if let Some(entry) = parse_entry(&text) {
                found.insert(token, entry);
            }
        }
        Ok(found)
    }
}

fn is_abandoned(path: &Path) -> bool {
    fs::metadata(path).and_then(|m| m.modified()).is_ok_and(|modified| {
        SystemTime::now().duration_since(modified).is_ok_and(|age| age > ABANDONED_AFTER)
    })
}

fn parse_entry(text: &str) -> Option<Entry> {
    let mut lines = text.lines();
    let kind = match lines.next()? {
        "http-01" => ChallengeKind::Http01,
        "tls-alpn-01" => ChallengeKind::TlsAlpn01,
        _ => return None,
    };
    let name = lines.next()?.to_owned();
    let key_authorization = lines.next()?.to_owned();
    (!name.is_empty() && !key_authorization.is_empty()).then_some(Entry {
        kind,
        name,
        key_authorization,
    })
}

/// SHA-256 of a key authorization (RFC 8737 §3), what instant-acme's
/// `KeyAuthorization::digest` gives the orderer.
fn sha256(data: &[u8]) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_answers_are_mirrored_and_withdrawn() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let shared = SharedChallenges::new(&dir);
        let store = CertStore::new();
        let mut mirrored = HashMap::new();

        let http =
            shared.publish(ChallengeKind::Http01, "a.example", "tok_1-A", "tok_1-A.thumb").unwrap();
        let alpn =
            shared.publish(ChallengeKind::TlsAlpn01, "b.example", "tok2", "tok2.thumb").unwrap();
        shared.mirror_once(&store, &mut mirrored);
        assert_eq!(store.http_challenge("tok_1-A").as_deref(), Some("tok_1-A.thumb"));
        let cert = store.alpn_challenge_for("b.example").expect("alpn answer mirrored");
        // The mirrored certificate carries SHA-256 of the key authorization.
        let (_, parsed) = x509_parser::parse_x509_certificate(cert.cert[0].as_ref()).unwrap();
        let ext = parsed
            .extensions()
            .iter()
            .find(|e| e.oid.to_id_string() == "1.3.6.1.5.5.7.1.31")
            .unwrap();
        assert_eq!(&ext.value[2..], sha256(b"tok2.thumb").as_slice());

        drop(http);
        drop(alpn);
        shared.mirror_once(&store, &mut mirrored);
        assert!(store.http_challenge("tok_1-A").is_none());
        assert!(store.alpn_challenge_for("b.example").is_none());
    }

    #[test]
    fn tokens_outside_base64url_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let shared = SharedChallenges::new(&dir);
        for bad in ["../x", "a/b", "", ".hidden", "a b"] {
            assert!(shared.publish(ChallengeKind::Http01, "a.example", bad, "k").is_err(), "{bad}");
        }
    }

    #[test]
    fn sha256_matches_a_known_vector() {
        // SHA-256("abc"), FIPS 180-2 appendix B.1.
        assert_eq!(
            sha256(b"abc"),
            [
                0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40, 0xde, 0x5d, 0xae,
                0x22, 0x23, 0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17, 0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61,
                0xf2, 0x00, 0x15, 0xad
            ]
        );
    }
}
