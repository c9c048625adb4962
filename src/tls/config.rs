//! The rustls `ServerConfig`: protocol policy in one place.
//!
//! - ring provider, TLS 1.3 and 1.2 only, rustls's default cipher suites (AEAD-only, forward
//!   secret: what Mozilla's "intermediate" profile allows), key exchange X25519 then P-256.
//! - ALPN `http/1.1`, plus `acme-tls/1` so TLS-ALPN-01 validation can complete (the resolver
//!   answers it only with a pending challenge certificate). A client that offers ALPN but
//!   neither protocol gets `no_application_protocol`; a client without ALPN is served.
//! - Certificates come from the [`SniResolver`] over the shared store.
//!
//! [`template`] builds the config once at startup; each worker clones it and installs its own
//! session-ID cache (see `session`), so workers share only immutable data and the ticketer.
//! A site with `tls { protocols … client_auth … }` gets a [`variant`] of it, chosen by SNI
//! after the ClientHello; a variant that verifies client certificates has a ticketer of its
//! own, so a session resumed there always began there.

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::server::{ProducesTickets, WebPkiClientVerifier};
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

use crate::config::{ClientAuthMode, TlsOptions, TlsVersion};

use super::resolver::{SniResolver, ACME_TLS_ALPN};
use super::session;
use super::store::CertStore;

/// The ALPN protocol we serve.
pub const HTTP11_ALPN: &[u8] = b"http/1.1";

/// The ring provider restricted to the key exchange groups we offer.
pub fn crypto_provider() -> CryptoProvider {
    let mut provider = rustls::crypto::ring::default_provider();
    provider.kx_groups =
        vec![rustls::crypto::ring::kx_group::X25519, rustls::crypto::ring::kx_group::SECP256R1];
    provider
}

/// The server configuration every worker starts from.
pub fn template(
    provider: Arc<CryptoProvider>,
    store: Arc<CertStore>,
    ticketer: Arc<dyn ProducesTickets>,
) -> Result<ServerConfig, rustls::Error> {
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(SniResolver::new(store)));
    config.alpn_protocols = vec![HTTP11_ALPN.to_vec(), ACME_TLS_ALPN.to_vec()];
    config.ticketer = ticketer;
    config.session_storage = session::worker_session_cache();
    Ok(config)
}

/// The template for a site's `tls { … }` options: the same certificates and ALPN, its own
/// protocol versions and client-certificate policy.
pub fn variant(
    provider: Arc<CryptoProvider>,
    store: Arc<CertStore>,
    shared_ticketer: Arc<dyn ProducesTickets>,
    options: &TlsOptions,
) -> Result<ServerConfig, VariantError> {
    let versions: Vec<&'static rustls::SupportedProtocolVersion> = match options.protocols {
        None => vec![&rustls::version::TLS13, &rustls::version::TLS12],
        Some((min, max)) => [
            (TlsVersion::Tls13, &rustls::version::TLS13),
            (TlsVersion::Tls12, &rustls::version::TLS12),
        ]
        .into_iter()
        .filter(|(v, _)| min <= *v && *v <= max)
        .map(|(_, version)| version)
        .collect(),
    };
    let builder =
        ServerConfig::builder_with_provider(provider.clone()).with_protocol_versions(&versions)?;
    let (builder, ticketer) = match &options.client_auth {
        None => (builder.with_no_client_auth(), shared_ticketer),
        Some(auth) => {
            let mut roots = RootCertStore::empty();
            for file in &auth.trusted_ca_files {
                let pem = std::fs::read(file).map_err(|e| VariantError::Read(file.clone(), e))?;
                let mut found = false;
                for cert in CertificateDer::pem_slice_iter(&pem) {
                    let cert = cert.map_err(|e| VariantError::Pem(file.clone(), e.to_string()))?;
                    roots.add(cert).map_err(|e| VariantError::Pem(file.clone(), e.to_string()))?;
                    found = true;
                }
                if !found {
                    return Err(VariantError::Pem(file.clone(), "no certificate in it".into()));
                }
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = match auth.mode {
                ClientAuthMode::RequireAndVerify => verifier,
                ClientAuthMode::VerifyIfGiven => verifier.allow_unauthenticated(),
            }
            .build()
            .map_err(|e| VariantError::Verifier(e.to_string()))?;
            (builder.with_client_cert_verifier(verifier), session::shared_ticketer()?)
        }
    };
    let mut config = builder.with_cert_resolver(Arc::new(SniResolver::new(store)));
    config.alpn_protocols = vec![HTTP11_ALPN.to_vec(), ACME_TLS_ALPN.to_vec()];
    config.ticketer = ticketer;
    config.session_storage = session::worker_session_cache();
    Ok(config)
}

/// Why a site's `tls { … }` options could not be turned into a configuration.
#[derive(Debug, thiserror::Error)]
pub enum VariantError {
    #[error("cannot read the client CA file {path}: {source}", path = .0.display(), source = .1)]
    Read(std::path::PathBuf, std::io::Error),
    #[error("client CA file {path}: {message}", path = .0.display(), message = .1)]
    Pem(std::path::PathBuf, String),
    #[error("client certificate verifier: {0}")]
    Verifier(String),
    #[error(transparent)]
    Rustls(#[from] rustls::Error),
}

/// The template with a session-ID cache of this worker's own.
pub fn for_worker(template: &ServerConfig) -> Arc<ServerConfig> {
    let mut config = template.clone();
    config.session_storage = session::worker_session_cache();
    Arc::new(config)
}
