//! SNI certificate selection over the [`CertStore`].
//!
//! The resolver runs inside rustls on every full handshake. It reads the store's current
//! snapshot (an atomic load, no lock), so certificates swapped in by the control plane (local
//! CA renewal, ACME) are served from the next handshake on without rebuilding any
//! `ServerConfig`.
//!
//! Returning `None` makes rustls abort the handshake with an alert (`access_denied`): that is
//! the answer to an unknown name, to a missing SNI (the connection driver first tries the
//! listener's IP address, see `stream`), and to a TLS-ALPN-01 probe with no pending challenge.
//! There is deliberately no default certificate: serving some other site's certificate leaks
//! which names this host serves and never validates anyway.

use std::sync::Arc;

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use super::store::CertStore;

/// The ALPN protocol of RFC 8737 TLS-ALPN-01 challenges.
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

#[derive(Debug)]
pub struct SniResolver {
    store: Arc<CertStore>,
}

impl SniResolver {
    pub fn new(store: Arc<CertStore>) -> Self {
        SniResolver { store }
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let name = client_hello.server_name()?;
        if is_acme_challenge(client_hello.alpn()) {
            return self.store.alpn_challenge_for(name);
        }
        self.store.cert_for(name)
    }
}

/// RFC 8737 §3: the validation server offers exactly one protocol, `acme-tls/1`. A client
/// offering it among others is an ordinary client and gets the ordinary certificate.
pub(crate) fn is_acme_challenge<'a>(alpn: Option<impl Iterator<Item = &'a [u8]>>) -> bool {
    let Some(mut protocols) = alpn else {
        return false;
    };
    protocols.next() == Some(ACME_TLS_ALPN) && protocols.next().is_none()
}

/// A resolver that always answers one certificate: used for a ClientHello without SNI when the
/// store holds a certificate for the listener's IP address (as Caddy does for IP sites).
#[derive(Debug)]
pub(crate) struct FixedResolver(pub Arc<CertifiedKey>);

impl ResolvesServerCert for FixedResolver {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_lone_acme_protocol_is_a_challenge() {
        let lone: [&[u8]; 1] = [ACME_TLS_ALPN];
        assert!(is_acme_challenge(Some(lone.into_iter())));
        let mixed: [&[u8]; 2] = [ACME_TLS_ALPN, b"http/1.1"];
        assert!(!is_acme_challenge(Some(mixed.into_iter())));
        let http: [&[u8]; 1] = [b"http/1.1"];
        assert!(!is_acme_challenge(Some(http.into_iter())));
        assert!(!is_acme_challenge(None::<std::array::IntoIter<&[u8], 0>>));
    }
}
