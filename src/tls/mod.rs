//! TLS termination: rustls server sessions driven by hand over nonblocking sockets, the
//! certificate store that control-plane threads swap certificates into, the local CA.
//!
//! How the pieces fit:
//! - At startup the control thread calls [`prepare`]: it loads every `tls <cert> <key>` pair,
//!   issues local-CA leaves for `tls internal`/localhost/IP sites, fills the [`CertStore`] and
//!   builds the `ServerConfig` template ([`TlsContext`]).
//! - Each worker builds one [`TlsAcceptor`] from the context (its own `Arc<ServerConfig>` and
//!   session-ID cache) and calls [`TlsAcceptor::accept`] per connection on a TLS listener. That
//!   sniffs for plaintext HTTP, drives the handshake under the handshake timeout, and returns a
//!   [`TlsStream`] implementing [`crate::net::stream::Stream`].
//! - Later, the control plane swaps certificates into the store ([`TlsContext::store`]): local
//!   leaves through [`TlsContext::renew_internal_certs`], ACME through the store directly. Live
//!   connections are never touched.
//!
//! Module map: `config` (protocol policy), `resolver` (SNI → certificate), `session`
//! (resumption), `acceptor` (handshake driver), `stream` (the established session), `certs`
//! (PEM files), `local_ca` (the local root and its leaves; files through `crate::storage`),
//! `renewal` (re-issuing local-CA leaves before they expire), `store` (the swappable
//! certificate store workers read).

pub mod acceptor;
pub mod certs;
pub mod config;
pub mod local_ca;
pub mod renewal;
pub mod resolver;
pub mod session;
pub mod store;
pub mod stream;

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use rustls::crypto::CryptoProvider;
use rustls::ServerConfig;

pub use crate::storage::{storage_dir, StorageError};

pub use acceptor::{Handshaken, TlsAcceptError, TlsAcceptor};
pub use certs::CertError;
pub use local_ca::LocalCaError;
pub use store::CertStore;
pub use stream::TlsStream;

use crate::config::{Config, HostPattern, ListenerKind, TlsOptions, TlsPolicy};
use certs::{CertInfo, LoadedCert};
use local_ca::LocalCa;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error(transparent)]
    Cert(#[from] CertError),
    #[error(transparent)]
    LocalCa(#[from] LocalCaError),
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("site at {site}: tls options: {source}")]
    SiteOptions { site: crate::config::Origin, source: config::VariantError },
    #[error(
        "sites at {first} and {second} both serve TLS without a host name but with different \
         tls options; give them host names"
    )]
    ConflictingFallback { first: crate::config::Origin, second: crate::config::Origin },
}

/// Everything workers need for TLS, built once by [`prepare`] and shared read-only (the store
/// is internally swappable).
pub struct TlsContext {
    store: Arc<CertStore>,
    template: ServerConfig,
    /// Configurations for sites with `tls { … }` options, and which server names use them.
    variants: Vec<ServerConfig>,
    /// Each variant's client-certificate policy (same indices).
    variant_client_auth: Vec<Option<Arc<crate::config::ClientAuth>>>,
    variant_by_name: HashMap<String, usize>,
    /// The variant of a TLS site without host names: for names no site claims, and for
    /// handshakes without SNI.
    fallback_variant: Option<usize>,
    /// Names (and `*.` wildcards) of TLS sites without options: the template serves them.
    default_names: std::collections::HashSet<String>,
    provider: Arc<CryptoProvider>,
    handshake_timeout: Duration,
    local: Option<LocalIssuer>,
}

/// The local CA and the leaves it issued, for renewal. Only the control plane touches this;
/// the mutex is never taken on a worker.
struct LocalIssuer {
    ca: LocalCa,
    leaves: Mutex<Vec<IssuedLeaf>>,
}

struct IssuedLeaf {
    name: String,
    info: CertInfo,
}

/// Load every certificate the configuration names and prepare the local CA if any site needs
/// it. `storage_dir` is only touched when a site uses the local CA (see [`storage_dir`]).
pub fn prepare(config: &Config, storage_dir: &Path) -> Result<Arc<TlsContext>, TlsError> {
    let provider = Arc::new(config::crypto_provider());
    let store = Arc::new(CertStore::new());
    let mut files: HashMap<(PathBuf, PathBuf), LoadedCert> = HashMap::new();
    let mut internal: BTreeSet<String> = BTreeSet::new();
    let now = SystemTime::now();

    let tls_sites = config
        .listeners
        .iter()
        .filter(|l| l.kind == ListenerKind::Tls)
        .flat_map(|l| l.sites.iter());
    for site in tls_sites {
        match &site.tls {
            TlsPolicy::Files { cert, key } => {
                let pair = (cert.clone(), key.clone());
                let loaded = match files.get(&pair) {
                    Some(loaded) => loaded.clone(),
                    None => {
                        let loaded = certs::load_pem_pair(cert, key, &provider)?;
                        if loaded.info.is_expired(now) {
                            tracing::warn!(
                                "certificate {} expired on {}; serving it anyway",
                                cert.display(),
                                loaded.info.not_after_display
                            );
                        }
                        files.insert(pair, loaded.clone());
                        loaded
                    }
                };
                // A site without a host name serves the certificate under the names it holds.
                let names = if site.hosts.is_empty() {
                    loaded.info.dns_names.iter().chain(&loaded.info.ip_names).cloned().collect()
                } else {
                    host_names(&site.hosts)
                };
                for name in names {
                    store.set_cert(&name, loaded.key.clone());
                }
            }
            TlsPolicy::Internal if site.hosts.is_empty() => {
                tracing::warn!(
                    "site at {}: `tls internal` without a host name; no certificate can be \
                     issued for it (give the site an address like localhost or a name)",
                    site.origin
                );
            }
            TlsPolicy::Internal => internal.extend(host_names(&site.hosts)),
            TlsPolicy::Acme { .. } | TlsPolicy::None => {}
        }
    }

    let local = if internal.is_empty() {
        None
    } else {
        let ca = LocalCa::load_or_create(storage_dir)?;
        tracing::info!(
            "local CA root certificate: {} (add it to your trust store to trust `tls internal` \
             and localhost sites)",
            ca.root_cert_path().display()
        );
        let mut leaves = Vec::with_capacity(internal.len());
        for name in internal {
            let leaf = ca.issue(std::slice::from_ref(&name), &provider)?;
            store.set_cert(&name, leaf.key);
            leaves.push(IssuedLeaf { name, info: leaf.info });
        }
        Some(LocalIssuer { ca, leaves: Mutex::new(leaves) })
    };

    let ticketer = session::shared_ticketer()?;
    let template = config::template(provider.clone(), store.clone(), ticketer.clone())?;
    let mut options_seen: Vec<(TlsOptions, crate::config::Origin)> = Vec::new();
    let mut variants = Vec::new();
    let mut variant_client_auth = Vec::new();
    let mut variant_by_name = HashMap::new();
    let mut fallback_variant: Option<(usize, crate::config::Origin)> = None;
    let tls_sites = config
        .listeners
        .iter()
        .filter(|l| l.kind == ListenerKind::Tls)
        .flat_map(|l| l.sites.iter());
    let mut default_names = std::collections::HashSet::new();
    for site in tls_sites {
        if site.tls_options == TlsOptions::default() {
            default_names.extend(host_names(&site.hosts));
            continue;
        }
        let index = match options_seen.iter().position(|(o, _)| *o == site.tls_options) {
            Some(index) => index,
            None => {
                let variant = config::variant(
                    provider.clone(),
                    store.clone(),
                    ticketer.clone(),
                    &site.tls_options,
                )
                .map_err(|source| TlsError::SiteOptions { site: site.origin.clone(), source })?;
                variants.push(variant);
                variant_client_auth.push(site.tls_options.client_auth.clone().map(Arc::new));
                options_seen.push((site.tls_options.clone(), site.origin.clone()));
                variants.len() - 1
            }
        };
        if site.hosts.is_empty() {
            match &fallback_variant {
                Some((other, first)) if *other != index => {
                    return Err(TlsError::ConflictingFallback {
                        first: first.clone(),
                        second: site.origin.clone(),
                    })
                }
                _ => fallback_variant = Some((index, site.origin.clone())),
            }
        }
        for name in host_names(&site.hosts) {
            variant_by_name.insert(name, index);
        }
    }
    Ok(Arc::new(TlsContext {
        store,
        template,
        variants,
        variant_client_auth,
        variant_by_name,
        fallback_variant: fallback_variant.map(|(index, _)| index),
        default_names,
        provider,
        handshake_timeout: config.globals.limits.tls_handshake_timeout,
        local,
    }))
}

/// Certificate store keys for a site's host patterns.
fn host_names(hosts: &[HostPattern]) -> Vec<String> {
    hosts
        .iter()
        .map(|h| match h {
            HostPattern::Exact(name) => name.clone(),
            HostPattern::Wildcard(suffix) => format!("*{suffix}"),
        })
        .collect()
}

/// When a leaf is due for renewal: after two thirds of its lifetime (as ACME clients do).
fn renewal_time(info: &CertInfo) -> SystemTime {
    info.not_before + info.lifetime() * 2 / 3
}

impl TlsContext {
    /// Which of `variants` (by index) serves `name` (a lower-case SNI): the site that names
    /// it exactly, else one label's wildcard, else the host-less site's.
    fn variant_for(&self, name: &str) -> Option<usize> {
        if self.variants.is_empty() {
            return None;
        }
        if let Some(index) = self.variant_by_name.get(name) {
            return Some(*index);
        }
        // A name that a site without options claims is served by the template.
        if self.default_names.contains(name) {
            return None;
        }
        let wildcard = name.split_once('.').map(|(_, rest)| format!("*.{rest}"))?;
        if let Some(index) = self.variant_by_name.get(&wildcard) {
            return Some(*index);
        }
        if self.default_names.contains(&wildcard) {
            return None;
        }
        self.fallback_variant
    }

    /// The certificate store, for the control plane (ACME) to swap certificates into.
    pub fn store(&self) -> &Arc<CertStore> {
        &self.store
    }

    /// The configured TLS handshake timeout.
    pub fn handshake_timeout(&self) -> Duration {
        self.handshake_timeout
    }

    /// Where the local CA's root certificate is, when a site uses the local CA.
    pub fn local_root_path(&self) -> Option<PathBuf> {
        self.local.as_ref().map(|l| l.ca.root_cert_path())
    }

    /// The earliest time a local-CA leaf needs renewing; the control plane sleeps until then
    /// and calls [`TlsContext::renew_internal_certs`].
    pub fn next_internal_renewal(&self) -> Option<SystemTime> {
        let local = self.local.as_ref()?;
        let leaves = local.leaves.lock().unwrap_or_else(|p| p.into_inner());
        leaves.iter().map(|l| renewal_time(&l.info)).min()
    }

    /// Re-issue every local-CA leaf whose renewal time has passed at `now` and swap it into
    /// the store. Returns how many were renewed.
    pub fn renew_internal_certs(&self, now: SystemTime) -> Result<usize, TlsError> {
        let Some(local) = &self.local else {
            return Ok(0);
        };
        let mut leaves = local.leaves.lock().unwrap_or_else(|p| p.into_inner());
        let mut renewed = 0;
        for leaf in leaves.iter_mut().filter(|l| renewal_time(&l.info) <= now) {
            let fresh = local.ca.issue(std::slice::from_ref(&leaf.name), &self.provider)?;
            self.store.set_cert(&leaf.name, fresh.key);
            leaf.info = fresh.info;
            renewed += 1;
            tracing::info!(name = %leaf.name, "renewed local certificate");
        }
        Ok(renewed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_is_due_after_two_thirds_of_the_lifetime() {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let info = CertInfo {
            not_before: start,
            not_after: start + Duration::from_secs(900),
            not_after_display: String::new(),
            dns_names: vec![],
            ip_names: vec![],
        };
        assert_eq!(renewal_time(&info), start + Duration::from_secs(600));
    }

    #[test]
    fn wildcard_hosts_become_wildcard_store_keys() {
        let hosts = [HostPattern::Exact("a.test".into()), HostPattern::Wildcard(".b.test".into())];
        assert_eq!(host_names(&hosts), ["a.test", "*.b.test"]);
    }
}
