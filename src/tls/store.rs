//! The certificate store: what the SNI resolver reads on every full handshake and what the
//! control plane (startup loading, the local CA, ACME) writes.
//!
//! Readers never lock: each map is an immutable snapshot behind an `ArcSwap`; writers (rare,
//! off the data path) clone the map, change it and swap it in. Live connections keep the
//! certificate they handshook with; the next handshake sees the new one.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::sign::CertifiedKey;

type Snapshot<V> = ArcSwap<HashMap<String, V>>;

/// Certificates by lower-case server name (exact names and `*.example.com` wildcards), the
/// TLS-ALPN-01 challenge certificates, and the HTTP-01 challenge responses.
#[derive(Default)]
pub struct CertStore {
    certs: Snapshot<Arc<CertifiedKey>>,
    alpn_challenges: Snapshot<Arc<CertifiedKey>>,
    http_challenges: Snapshot<Arc<str>>,
}

fn update<V: Clone>(snapshot: &Snapshot<V>, change: impl Fn(&mut HashMap<String, V>)) {
    snapshot.rcu(|current| {
        let mut next = HashMap::clone(current);
        change(&mut next);
        next
    });
}

impl std::fmt::Debug for CertStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertStore").field("names", &self.names()).finish_non_exhaustive()
    }
}

impl CertStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Install or replace the certificate for `name` (lower-case; may be `*.example.com`).
    pub fn set_cert(&self, name: &str, key: Arc<CertifiedKey>) {
        update(&self.certs, |m| {
            m.insert(name.to_ascii_lowercase(), key.clone());
        });
    }

    /// The certificate for an SNI name: the exact name, else the wildcard one label up.
    pub fn cert_for(&self, server_name: &str) -> Option<Arc<CertifiedKey>> {
        let certs = self.certs.load();
        let name = server_name.to_ascii_lowercase();
        if let Some(key) = certs.get(&name) {
            return Some(key.clone());
        }
        let (_, parent) = name.split_once('.')?;
        certs.get(&format!("*.{parent}")).cloned()
    }

    /// When each name's certificate expires (its leaf's `notAfter`), sorted by name.
    pub fn expiries(&self) -> Vec<(String, std::time::SystemTime)> {
        let mut out: Vec<(String, std::time::SystemTime)> = self
            .certs
            .load()
            .iter()
            .filter_map(|(name, key)| {
                let leaf = key.cert.first()?;
                let (_, cert) = x509_parser::parse_x509_certificate(leaf).ok()?;
                let secs = cert.validity().not_after.timestamp();
                let at = std::time::UNIX_EPOCH
                    + std::time::Duration::from_secs(u64::try_from(secs).ok()?);
                Some((name.clone(), at))
            })
            .collect();
        out.sort();
        out
    }

    /// Every name that currently has a certificate.
    pub fn names(&self) -> Vec<String> {
        self.certs.load().keys().cloned().collect()
    }

    pub fn set_alpn_challenge(&self, name: &str, key: Arc<CertifiedKey>) {
        update(&self.alpn_challenges, |m| {
            m.insert(name.to_ascii_lowercase(), key.clone());
        });
    }

    pub fn remove_alpn_challenge(&self, name: &str) {
        update(&self.alpn_challenges, |m| {
            m.remove(&name.to_ascii_lowercase());
        });
    }

    pub fn alpn_challenge_for(&self, server_name: &str) -> Option<Arc<CertifiedKey>> {
        self.alpn_challenges.load().get(&server_name.to_ascii_lowercase()).cloned()
    }

    /// Serve `key_authorization` at `/.well-known/acme-challenge/<token>`.
    pub fn set_http_challenge(&self, token: &str, key_authorization: &str) {
        let value: Arc<str> = Arc::from(key_authorization);
        update(&self.http_challenges, |m| {
            m.insert(token.to_owned(), value.clone());
        });
    }

    pub fn remove_http_challenge(&self, token: &str) {
        update(&self.http_challenges, |m| {
            m.remove(token);
        });
    }

    pub fn http_challenge(&self, token: &str) -> Option<Arc<str>> {
        self.http_challenges.load().get(token).cloned()
    }
}
