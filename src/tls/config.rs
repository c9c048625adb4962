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

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::server::ProducesTickets;
use rustls::ServerConfig;

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

/// The template with a session-ID cache of this worker's own.
pub fn for_worker(template: &ServerConfig) -> Arc<ServerConfig> {
    let mut config = template.clone();
    config.session_storage = session::worker_session_cache();
    Arc::new(config)
}
