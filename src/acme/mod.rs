//! Automatic HTTPS: certificates from an ACME CA (Let's Encrypt by default) for every site
//! whose address is a public hostname, obtained, stored and renewed off the data path.
//!
//! Owns: deciding which names need ACME, loading stored certificates at startup, the control
//! plane thread (its own current-thread tokio runtime, because instant-acme is tokio/hyper
//! based and workers run monoio), ordering and renewal with backoff, and the status that a
//! metrics exporter can read. Does not own: serving challenges (the redirect listener answers
//! HTTP-01 from [`CertStore::http_challenge`], the TLS acceptor answers TLS-ALPN-01 from
//! [`CertStore::alpn_challenge_for`]) or selecting certificates during handshakes.
//!
//! Lifecycle of one name (`manage_name`):
//! 1. At [`spawn`], a valid stored certificate is put into the store before `spawn` returns,
//!    so the first handshake already has it.
//! 2. The name's task sleeps until the renewal time: 2/3 of the lifetime (with jitter), or a
//!    point in the CA's ARI window when the CA offers one. It wakes at least hourly to pick up
//!    a certificate another instance stored.
//! 3. When due (or missing), it takes the name's lock in storage, re-reads storage (another
//!    instance may have just renewed), and otherwise orders: HTTP-01 and/or TLS-ALPN-01,
//!    falling back from one to the other.
//! 4. Success: chain and key are written atomically, then swapped into the store; live
//!    connections keep the certificate they handshook with. Failure: logged with the CA's
//!    problem document, retried with capped exponential backoff; the current certificate, if
//!    any, keeps being served.

pub mod account;
pub mod issue;
pub mod lock;
pub mod retry;
pub mod schedule;
pub mod shared;
pub mod storage;

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use instant_acme::ChallengeType;

use self::account::Accounts;
use self::lock::LockTimings;
use self::schedule::{random_u64, renewal_time, retry_delay, time_in_window};
use self::shared::SharedChallenges;
use self::storage::{AcmeStorage, StorageError, StoredCert};
use crate::config::{limits, Config, HostPattern, ListenerKind, TlsPolicy};
use crate::tls::store::CertStore;

/// Let's Encrypt's production directory: the default `acme_ca`, as in Caddy.
pub const LETS_ENCRYPT_PRODUCTION: &str = "https://acme-v02.api.letsencrypt.org/directory";

/// A name's task re-reads storage at least this often while waiting to renew, to pick up a
/// certificate another instance sharing the storage directory obtained.
const MAX_SLEEP: Duration = Duration::from_secs(3600);

/// What went wrong while obtaining a certificate.
#[derive(Debug, thiserror::Error)]
pub enum AcmeError {
    /// The CA answered with an error or could not be reached; includes its problem document.
    #[error("ACME request failed: {}", describe_acme_error(.0))]
    Acme(#[from] instant_acme::Error),
    #[error("{kind} challenge failed: {}", .problem.as_deref().unwrap_or("no detail from the CA"))]
    ChallengeFailed { kind: ChallengeKind, problem: Option<String> },
    #[error("the CA does not offer {kind} (offered: {})", .offered.join(", "))]
    ChallengeNotOffered { kind: ChallengeKind, offered: Vec<String> },
    #[error("every challenge type failed: {}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))]
    AllChallengesFailed(Vec<AcmeError>),
    #[error("no challenge type enabled")]
    NoChallengeTypes,
    #[error("cannot build a CSR or challenge certificate: {0}")]
    Csr(rcgen::Error),
    #[error("ACME client setup: {0}")]
    ClientSetup(String),
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    #[error("gave up after {0:?} without an answer from the CA")]
    Timeout(Duration),
    #[error("{0}")]
    Internal(String),
}

impl AcmeError {
    /// Whether the CA was never reached, so that retrying soon costs nothing against its rate
    /// limits.
    fn is_unreachable(&self) -> bool {
        match self {
            AcmeError::Acme(instant_acme::Error::Api(_)) => false,
            AcmeError::Acme(instant_acme::Error::Hyper(_) | instant_acme::Error::Other(_)) => true,
            AcmeError::Timeout(_) => true,
            _ => false,
        }
    }

    /// The CA says our stored account does not exist (the CA was reset, or the account was
    /// deactivated elsewhere).
    fn is_unknown_account(&self) -> bool {
        matches!(self, AcmeError::Acme(instant_acme::Error::Api(p))
            if p.r#type.as_deref() == Some("urn:ietf:params:acme:error:accountDoesNotExist"))
    }
}

fn describe_acme_error(e: &instant_acme::Error) -> String {
    match e {
        instant_acme::Error::Api(problem) => issue::describe_problem(problem),
        // hyper's errors hide the interesting part (connection refused, certificate unknown)
        // in their source chain.
        other => {
            let mut text = other.to_string();
            let mut source = std::error::Error::source(other);
            while let Some(inner) = source {
                text.push_str(": ");
                text.push_str(&inner.to_string());
                source = inner.source();
            }
            text
        }
    }
}

pub use crate::config::ChallengeKind;

pub(crate) fn acme_type(kind: ChallengeKind) -> ChallengeType {
    match kind {
        ChallengeKind::Http01 => ChallengeType::Http01,
        ChallengeKind::TlsAlpn01 => ChallengeType::TlsAlpn01,
    }
}

/// Everything the ACME manager needs, extracted from a [`Config`] (or built directly).
#[derive(Debug, Clone)]
pub struct AcmeSettings {
    pub directory_url: String,
    /// Extra root trusted for the directory connection (`acme_ca_root`).
    pub ca_root: Option<PathBuf>,
    /// Names to manage with the contact email for each.
    pub names: Vec<ManagedName>,
    /// Challenge types to try, in order.
    pub challenges: Vec<ChallengeKind>,
    pub lock_timings: LockTimings,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagedName {
    pub name: String,
    pub email: Option<String>,
}

impl AcmeSettings {
    /// The ACME settings of `config`: every public hostname of a TLS site under
    /// [`TlsPolicy::Acme`]. Challenge types default to those the config has a listener for
    /// (HTTP-01 needs the redirect listener on `http_port`, TLS-ALPN-01 a TLS listener on
    /// `https_port`); the global `acme_challenges` option overrides that.
    pub fn from_config(config: &Config) -> AcmeSettings {
        let globals = &config.globals;
        let mut names: Vec<ManagedName> = Vec::new();
        for listener in config.listeners.iter().filter(|l| l.kind == ListenerKind::Tls) {
            for site in &listener.sites {
                let TlsPolicy::Acme { email } = &site.tls else {
                    continue;
                };
                for host in &site.hosts {
                    let name = match host {
                        HostPattern::Exact(name) => name,
                        HostPattern::Wildcard(suffix) => {
                            tracing::warn!(site = %site.origin, name = %format!("*{suffix}"),
                                "wildcard certificates need the DNS-01 challenge, which ringproxy does not support; no certificate will be obtained");
                            continue;
                        }
                    };
                    if !is_public_hostname(name) || names.iter().any(|n| &n.name == name) {
                        continue;
                    }
                    names.push(ManagedName {
                        name: name.clone(),
                        email: email.clone().or_else(|| globals.email.clone()),
                    });
                }
            }
        }

        let http01 = config
            .listeners
            .iter()
            .any(|l| l.kind == ListenerKind::Redirect && l.bind.port() == globals.http_port);
        let tls_alpn01 = config
            .listeners
            .iter()
            .any(|l| l.kind == ListenerKind::Tls && l.bind.port() == globals.https_port);
        let mut challenges = Vec::new();
        if http01 {
            challenges.push(ChallengeKind::Http01);
        }
        if tls_alpn01 {
            challenges.push(ChallengeKind::TlsAlpn01);
        }
        if challenges.is_empty() {
            // Ports may be forwarded from 80/443 by something in front of us: try anyway.
            challenges = vec![ChallengeKind::Http01, ChallengeKind::TlsAlpn01];
        }
        if !globals.acme_challenges.is_empty() {
            challenges = globals.acme_challenges.clone();
        }

        AcmeSettings {
            directory_url: globals
                .acme_ca
                .clone()
                .unwrap_or_else(|| LETS_ENCRYPT_PRODUCTION.to_owned()),
            ca_root: globals.acme_ca_root.clone(),
            names,
            challenges,
            lock_timings: LockTimings::default(),
        }
    }
}

/// Whether a public CA could issue for `name`: not an IP address, not `localhost`, not a name
/// under a suffix reserved for private use (RFC 6761, RFC 6762, RFC 8375, ICANN's `.internal`).
pub fn is_public_hostname(name: &str) -> bool {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    if name.is_empty() || name.parse::<IpAddr>().is_ok() || name.contains('*') {
        return false;
    }
    if name == "localhost" {
        return false;
    }
    const PRIVATE_SUFFIXES: [&str; 5] =
        [".localhost", ".local", ".internal", ".home.arpa", ".invalid"];
    !PRIVATE_SUFFIXES.iter().any(|s| name.ends_with(s))
}

/// Where a name stands, for logs, status pages and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertState {
    /// No certificate yet; an order is pending or being retried.
    Missing,
    /// Serving a certificate, renewal not due.
    Valid,
    /// Renewal (or first issuance) in progress.
    Ordering,
    /// The last attempt failed; see `last_error`. A certificate may still be served.
    Failing,
}

/// Per-name status: what a metrics exporter reads through [`AcmeHandle::status`].
#[derive(Debug, Clone)]
pub struct NameStatus {
    pub name: String,
    pub state: CertState,
    /// Expiry of the certificate being served, if any.
    pub not_after: Option<SystemTime>,
    /// When renewal (or the next retry) is planned.
    pub next_attempt: Option<SystemTime>,
    /// Orders this process placed for the name.
    pub orders: u64,
    /// Certificates this process obtained for the name.
    pub issued: u64,
    /// Certificates for the name that another instance obtained and this one loaded.
    pub loaded_from_storage: u64,
    pub consecutive_failures: u32,
    pub last_error: Option<String>,
    /// The challenge type that validated the latest certificate this process obtained.
    pub last_challenge: Option<ChallengeKind>,
}

impl NameStatus {
    fn new(name: &str) -> Self {
        NameStatus {
            name: name.to_owned(),
            state: CertState::Missing,
            not_after: None,
            next_attempt: None,
            orders: 0,
            issued: 0,
            loaded_from_storage: 0,
            consecutive_failures: 0,
            last_error: None,
            last_challenge: None,
        }
    }
}

type StatusMap = Arc<Mutex<BTreeMap<String, NameStatus>>>;

/// The running ACME manager. Dropping it stops the control-plane thread (without waiting);
/// [`AcmeHandle::shutdown`] stops it and waits. Keep it alive as long as the server runs.
pub struct AcmeHandle {
    status: StatusMap,
    stop: Option<tokio::sync::watch::Sender<bool>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl AcmeHandle {
    /// A snapshot of every managed name's status, sorted by name.
    pub fn status(&self) -> Vec<NameStatus> {
        self.status.lock().map(|m| m.values().cloned().collect()).unwrap_or_default()
    }

    /// Stop ordering and renewing, release locks and withdraw pending challenge responses.
    pub fn shutdown(mut self) {
        self.stop_thread(true);
    }

    fn stop_thread(&mut self, wait: bool) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(true);
        }
        if let Some(thread) = self.thread.take() {
            if wait {
                let _ = thread.join();
            }
        }
    }
}

impl Drop for AcmeHandle {
    fn drop(&mut self) {
        self.stop_thread(false);
    }
}

/// Start managing the ACME certificates of `config`: see [`spawn_with`].
pub fn spawn(config: &Config, store: Arc<CertStore>, storage_dir: PathBuf) -> AcmeHandle {
    spawn_with(AcmeSettings::from_config(config), store, storage_dir)
}

/// Load every valid stored certificate for `settings.names` into `store` (before returning),
/// then obtain missing ones and renew the rest on a background thread.
pub fn spawn_with(
    settings: AcmeSettings,
    store: Arc<CertStore>,
    storage_dir: PathBuf,
) -> AcmeHandle {
    let storage = AcmeStorage::new(&storage_dir, &settings.directory_url);
    let status: StatusMap = Arc::default();
    let mut installed = HashMap::new();
    for managed in &settings.names {
        let name = &managed.name;
        let mut entry = NameStatus::new(name);
        match storage.load_cert(name) {
            Ok(Some(cert)) if cert.not_after > SystemTime::now() => {
                store.set_cert(name, cert.key.clone());
                tracing::info!(name, expires = %fmt_time(cert.not_after), "using stored certificate");
                entry.state = CertState::Valid;
                entry.not_after = Some(cert.not_after);
                installed.insert(name.clone(), cert.not_after);
            }
            Ok(Some(cert)) => {
                tracing::warn!(name, expired = %fmt_time(cert.not_after), "stored certificate has expired; ordering a new one");
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(name, error = %e, "ignoring unusable stored certificate; ordering a new one")
            }
        }
        if let Ok(mut map) = status.lock() {
            map.insert(name.clone(), entry);
        }
    }

    if settings.names.is_empty() {
        return AcmeHandle { status, stop: None, thread: None };
    }
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let manager = Arc::new(Manager {
        accounts: Accounts::new(
            settings.directory_url.clone(),
            settings.ca_root.clone(),
            storage.clone(),
            settings.lock_timings,
        ),
        shared: SharedChallenges::new(storage.root()),
        settings,
        storage,
        store,
        status: status.clone(),
    });
    let thread = std::thread::Builder::new().name("ringproxy-acme".to_owned()).spawn(move || {
        let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(runtime) => runtime,
            Err(e) => {
                tracing::error!(error = %e, "cannot start the ACME runtime; certificates will not be obtained or renewed");
                return;
            }
        };
        runtime.block_on(run(manager, installed, stop_rx));
    });
    match thread {
        Ok(thread) => AcmeHandle { status, stop: Some(stop_tx), thread: Some(thread) },
        Err(e) => {
            tracing::error!(error = %e, "cannot start the ACME thread; certificates will not be obtained or renewed");
            AcmeHandle { status, stop: None, thread: None }
        }
    }
}

struct Manager {
    settings: AcmeSettings,
    storage: AcmeStorage,
    shared: SharedChallenges,
    store: Arc<CertStore>,
    accounts: Accounts,
    status: StatusMap,
}

async fn run(
    manager: Arc<Manager>,
    installed: HashMap<String, SystemTime>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut tasks = tokio::task::JoinSet::new();
    // Answer challenges that other instances on this storage directory publish.
    tasks.spawn(manager.shared.clone().mirror(manager.store.clone()));
    for managed in manager.settings.names.clone() {
        let installed = installed.get(&managed.name).copied();
        tasks.spawn(manage_name(manager.clone(), managed, installed));
    }
    tokio::select! {
        _ = stop.wait_for(|stopped| *stopped) => {}
        _ = async { while tasks.join_next().await.is_some() {} } => {}
    }
    // Dropping the set cancels every task: their locks and challenge responses are released
    // by their guards.
    tasks.shutdown().await;
}

/// The life of one name: serve, wait, renew, retry; forever.
async fn manage_name(
    manager: Arc<Manager>,
    managed: ManagedName,
    mut installed: Option<SystemTime>,
) {
    let name = managed.name.as_str();
    let mut failures = 0u32;
    loop {
        let stored = manager.load_stored(name, &mut installed);
        let due = match &stored {
            Some(cert) => manager.renewal_due_at(cert, managed.email.as_deref()).await,
            None => SystemTime::now(),
        };
        let now = SystemTime::now();
        if due > now {
            manager.update(name, |s| {
                s.state = if s.consecutive_failures == 0 { CertState::Valid } else { s.state };
                s.next_attempt = Some(due);
            });
            let wait = due.duration_since(now).unwrap_or_default().min(MAX_SLEEP);
            tokio::time::sleep(wait).await;
            continue;
        }

        let lock_path = lock::lock_path(&manager.storage.locks_dir(), name);
        let lock = match lock::acquire(&lock_path, manager.settings.lock_timings).await {
            Ok(lock) => lock,
            Err(e) => {
                failures += 1;
                manager.fail(name, failures, &AcmeError::Storage(e)).await;
                continue;
            }
        };
        // Another instance may have obtained the certificate while we waited for the lock.
        if let Some(cert) = manager.load_stored(name, &mut installed) {
            if manager.renewal_due_at(&cert, managed.email.as_deref()).await > SystemTime::now() {
                drop(lock);
                continue;
            }
        }

        let reason = if stored.is_some() { "renewal" } else { "missing certificate" };
        tracing::info!(name, reason, ca = %manager.settings.directory_url, "ACME: ordering certificate");
        manager.update(name, |s| {
            s.state = CertState::Ordering;
            s.orders += 1;
        });
        let result = match tokio::time::timeout(
            limits::ACME_ISSUE_TIMEOUT,
            manager.obtain(&managed),
        )
        .await
        {
            Ok(result) => result,
            Err(_) => Err(AcmeError::Timeout(limits::ACME_ISSUE_TIMEOUT)),
        };
        let result = result.and_then(|issued| {
            manager.storage.save_cert(
                name,
                issued.chain_pem.as_bytes(),
                issued.key_pem.as_bytes(),
            )?;
            Ok(issued)
        });
        drop(lock);
        match result {
            Ok(issued) => {
                failures = 0;
                manager.store.set_cert(name, issued.cert.key.clone());
                installed = Some(issued.cert.not_after);
                tracing::info!(name, expires = %fmt_time(issued.cert.not_after), challenge = %issued.challenge, "ACME: certificate obtained");
                manager.update(name, |s| {
                    s.state = CertState::Valid;
                    s.issued += 1;
                    s.not_after = Some(issued.cert.not_after);
                    s.consecutive_failures = 0;
                    s.last_error = None;
                    s.last_challenge = Some(issued.challenge);
                });
            }
            Err(e) => {
                failures += 1;
                manager.fail(name, failures, &e).await;
            }
        }
    }
}

impl Manager {
    /// The stored certificate for `name` if it is still valid; installs it into the store when
    /// it is newer than what is being served (another instance renewed it).
    fn load_stored(&self, name: &str, installed: &mut Option<SystemTime>) -> Option<StoredCert> {
        let cert = match self.storage.load_cert(name) {
            Ok(Some(cert)) if cert.not_after > SystemTime::now() => cert,
            Ok(_) => return None,
            Err(e) => {
                tracing::warn!(name, error = %e, "ignoring unusable stored certificate");
                return None;
            }
        };
        if installed.is_none_or(|served| cert.not_after > served) {
            self.store.set_cert(name, cert.key.clone());
            if installed.is_some() {
                tracing::info!(name, expires = %fmt_time(cert.not_after), "ACME: loaded certificate renewed by another instance");
            } else {
                tracing::info!(name, expires = %fmt_time(cert.not_after), "ACME: loaded certificate obtained by another instance");
            }
            *installed = Some(cert.not_after);
            self.update(name, |s| {
                s.loaded_from_storage += 1;
                s.not_after = Some(cert.not_after);
                s.state = CertState::Valid;
            });
        }
        Some(cert)
    }

    /// When `cert` should be renewed: inside the CA's ARI window if it offers one, else at 2/3
    /// of its lifetime.
    async fn renewal_due_at(&self, cert: &StoredCert, email: Option<&str>) -> SystemTime {
        let fallback = renewal_time(cert.not_before, cert.not_after, random_u64());
        match tokio::time::timeout(limits::ACME_ARI_TIMEOUT, self.ari_window(cert, email)).await {
            Ok(Some((start, end))) => time_in_window(start, end, random_u64()),
            Ok(None) | Err(_) => fallback,
        }
    }

    /// The CA's suggested renewal window (RFC 9773), when the CA offers ARI and an account
    /// already exists (ARI is not worth registering an account for).
    async fn ari_window(
        &self,
        cert: &StoredCert,
        email: Option<&str>,
    ) -> Option<(SystemTime, SystemTime)> {
        let account = self.accounts.stored(email).await?;
        let leaf = cert.key.cert.first()?;
        let id = instant_acme::CertificateIdentifier::try_from(leaf).ok()?;
        match account.renewal_info(&id).await {
            Ok((info, _retry_after)) => {
                Some((info.suggested_window.start.into(), info.suggested_window.end.into()))
            }
            Err(instant_acme::Error::Unsupported(_)) => None,
            Err(e) => {
                tracing::debug!(error = %describe_acme_error(&e), "ACME renewal info unavailable");
                None
            }
        }
    }

    async fn obtain(&self, managed: &ManagedName) -> Result<issue::Issued, AcmeError> {
        if self.settings.challenges.is_empty() {
            return Err(AcmeError::NoChallengeTypes);
        }
        let email = managed.email.as_deref();
        let responders = issue::Responders { store: &self.store, shared: &self.shared };
        let account = self.accounts.get(email).await?;
        match issue::issue(&account, &responders, &managed.name, &self.settings.challenges).await {
            Err(e) if e.is_unknown_account() => {
                tracing::warn!(name = %managed.name, "the CA does not know our stored ACME account; registering a new one");
                self.accounts.forget(email).await?;
                let account = self.accounts.get(email).await?;
                issue::issue(&account, &responders, &managed.name, &self.settings.challenges).await
            }
            other => other,
        }
    }

    async fn fail(&self, name: &str, failures: u32, error: &AcmeError) {
        let (initial, cap) = if error.is_unreachable() {
            (schedule::UNREACHABLE_RETRY_INITIAL, schedule::UNREACHABLE_RETRY_CAP)
        } else {
            (schedule::ORDER_RETRY_INITIAL, schedule::ORDER_RETRY_CAP)
        };
        let delay = retry_delay(failures, initial, cap, random_u64());
        tracing::error!(name, attempt = failures, retry_in = ?delay, error = %error, "ACME: could not obtain certificate");
        self.update(name, |s| {
            s.state = CertState::Failing;
            s.consecutive_failures = failures;
            s.last_error = Some(error.to_string());
            s.next_attempt = Some(SystemTime::now() + delay);
        });
        tokio::time::sleep(delay).await;
    }

    fn update(&self, name: &str, change: impl FnOnce(&mut NameStatus)) {
        if let Ok(mut map) = self.status.lock() {
            change(map.entry(name.to_owned()).or_insert_with(|| NameStatus::new(name)));
        }
    }
}

/// A `SystemTime` as seconds since the Unix epoch and days from now, for logs.
fn fmt_time(t: SystemTime) -> String {
    let epoch = t.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let days = match t.duration_since(SystemTime::now()) {
        Ok(left) => left.as_secs_f64() / 86_400.0,
        Err(past) => -past.duration().as_secs_f64() / 86_400.0,
    };
    format!("unix {epoch} ({days:.1} days from now)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_hostnames_exclude_local_names_and_ips() {
        for public in ["example.com", "acme-test.example", "stt.fullen.dev", "a.b.c.d"] {
            assert!(is_public_hostname(public), "{public}");
        }
        for private in [
            "localhost",
            "x.localhost",
            "printer.local",
            "db.internal",
            "nas.home.arpa",
            "127.0.0.1",
            "::1",
            "*.example.com",
            "",
        ] {
            assert!(!is_public_hostname(private), "{private}");
        }
    }

    #[test]
    fn unreachable_ca_errors_are_told_apart_from_ca_refusals() {
        let refused: instant_acme::Problem = serde_json::from_str(
            r#"{"type":"urn:ietf:params:acme:error:rateLimited","detail":"slow down"}"#,
        )
        .unwrap();
        assert!(!AcmeError::Acme(instant_acme::Error::Api(refused)).is_unreachable());
        assert!(AcmeError::Timeout(limits::ACME_ISSUE_TIMEOUT).is_unreachable());
        let unknown: instant_acme::Problem =
            serde_json::from_str(r#"{"type":"urn:ietf:params:acme:error:accountDoesNotExist"}"#)
                .unwrap();
        assert!(AcmeError::Acme(instant_acme::Error::Api(unknown)).is_unknown_account());
    }
}
