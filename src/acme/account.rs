//! The ACME account and the HTTP client that talks to the CA's directory.
//!
//! One account per (CA, contact email), created on first use and persisted as instant-acme's
//! credentials (account URL and PKCS#8 key) in storage, so restarts and other instances reuse
//! it. Account creation takes the same kind of lock as an order, so two instances starting at
//! once do not register two accounts.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::rt::TokioExecutor;
use instant_acme::{Account, AccountBuilder, AccountCredentials, BodyWrapper, NewAccount};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

use super::lock::{self, LockTimings};
use super::retry::retry_bad_nonce;
use super::storage::AcmeStorage;
use super::AcmeError;

/// Accounts by contact email (`""` when none), created lazily and shared by every name's task.
pub struct Accounts {
    directory_url: String,
    ca_root: Option<std::path::PathBuf>,
    storage: AcmeStorage,
    lock_timings: LockTimings,
    cached: tokio::sync::Mutex<HashMap<String, Account>>,
}

impl Accounts {
    pub fn new(
        directory_url: String,
        ca_root: Option<std::path::PathBuf>,
        storage: AcmeStorage,
        lock_timings: LockTimings,
    ) -> Self {
        Accounts { directory_url, ca_root, storage, lock_timings, cached: Default::default() }
    }

    /// The account for `email`: cached, else restored from storage, else registered.
    pub async fn get(&self, email: Option<&str>) -> Result<Account, AcmeError> {
        let key = email.unwrap_or_default().to_owned();
        let mut cached = self.cached.lock().await;
        if let Some(account) = cached.get(&key) {
            return Ok(account.clone());
        }
        if let Some(account) = self.restore(&key).await? {
            cached.insert(key, account.clone());
            return Ok(account);
        }
        let lock_path =
            lock::lock_path(&self.storage.locks_dir(), &format!(".account-{}", file_label(&key)));
        let _lock = lock::acquire(&lock_path, self.lock_timings).await?;
        // Another instance may have registered while we waited for the lock.
        let account = match self.restore(&key).await? {
            Some(account) => account,
            None => self.register(&key).await?,
        };
        cached.insert(key, account.clone());
        Ok(account)
    }

    /// The account for `email` if one is cached or stored; never registers one.
    pub async fn stored(&self, email: Option<&str>) -> Option<Account> {
        let key = email.unwrap_or_default().to_owned();
        let mut cached = self.cached.lock().await;
        if let Some(account) = cached.get(&key) {
            return Some(account.clone());
        }
        let account = self.restore(&key).await.ok().flatten()?;
        cached.insert(key, account.clone());
        Some(account)
    }

    /// Forget the account for `email` (the CA no longer knows it), so the next `get` registers
    /// a new one.
    pub async fn forget(&self, email: Option<&str>) -> Result<(), AcmeError> {
        let key = email.unwrap_or_default().to_owned();
        self.cached.lock().await.remove(&key);
        self.storage.remove_account(&key)?;
        Ok(())
    }

    async fn restore(&self, key: &str) -> Result<Option<Account>, AcmeError> {
        let Some(json) = self.storage.load_account(key)? else {
            return Ok(None);
        };
        let credentials: AccountCredentials = match serde_json::from_slice(&json) {
            Ok(credentials) => credentials,
            Err(e) => {
                tracing::warn!(path = %self.storage.account_path(key).display(), error = %e, "ignoring unreadable ACME account");
                return Ok(None);
            }
        };
        let account = self.builder()?.from_credentials(credentials).await?;
        Ok(Some(account))
    }

    async fn register(&self, key: &str) -> Result<Account, AcmeError> {
        let contact = (!key.is_empty()).then(|| format!("mailto:{key}"));
        let contacts: Vec<&str> = contact.iter().map(String::as_str).collect();
        let new_account = NewAccount {
            contact: &contacts,
            terms_of_service_agreed: true,
            only_return_existing: false,
        };
        let (account, credentials) = retry_bad_nonce!(
            "new account",
            self.builder()?.create(&new_account, self.directory_url.clone(), None).await
        )?;
        let json =
            serde_json::to_vec(&credentials).map_err(|e| AcmeError::Internal(e.to_string()))?;
        self.storage.save_account(key, &json)?;
        tracing::info!(ca = %self.directory_url, account = %account.id(), email = %key, "registered ACME account");
        Ok(account)
    }

    fn builder(&self) -> Result<AccountBuilder, AcmeError> {
        match &self.ca_root {
            None => Ok(Account::builder()?),
            Some(root) => Ok(Account::builder_with_http(Box::new(client_with_extra_root(root)?))),
        }
    }
}

/// `email` as a file-name component.
pub fn file_label(email: &str) -> String {
    if email.is_empty() {
        return "default".to_owned();
    }
    email
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '@' | '+') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// An HTTPS client trusting the system roots plus every certificate in `root_pem` (the
/// `acme_ca_root` option: a private or test CA's root).
fn client_with_extra_root(
    root_pem: &Path,
) -> Result<
    HyperClient<
        hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
        BodyWrapper<Bytes>,
    >,
    AcmeError,
> {
    let setup =
        |reason: String| AcmeError::ClientSetup(format!("{}: {reason}", root_pem.display()));
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    if !native.errors.is_empty() {
        tracing::debug!(errors = ?native.errors, "some system root certificates could not be loaded");
    }
    roots.add_parsable_certificates(native.certs);
    let pem = std::fs::read(root_pem).map_err(|e| setup(e.to_string()))?;
    let extra: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<_, _>>()
        .map_err(|e| setup(e.to_string()))?;
    if extra.is_empty() {
        return Err(setup("no certificate found".to_owned()));
    }
    for cert in extra {
        roots.add(cert).map_err(|e| setup(e.to_string()))?;
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| setup(e.to_string()))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_only()
        .enable_http1()
        .build();
    Ok(HyperClient::builder(TokioExecutor::new()).build(connector))
}
