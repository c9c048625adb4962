//! One certificate issuance for one name: order, answer a challenge, finalize with a fresh
//! ECDSA P-256 key, download the chain.
//!
//! Challenge responses go into the shared [`CertStore`]: HTTP-01 key authorizations for the
//! redirect listener, TLS-ALPN-01 certificates for the TLS listener (RFC 8737). They are
//! removed again when the attempt ends, whatever its outcome (`Provisioned`'s `Drop`).
//!
//! A failed challenge makes the whole order invalid (RFC 8555 §7.1.6), so falling back to the
//! other challenge type means a new order; that happens here, inside one issuance, before the
//! caller's retry backoff applies.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use instant_acme::{
    Account, AuthorizationStatus, ChallengeType, Identifier, NewOrder, OrderStatus, Problem,
    RetryPolicy,
};
use rustls::sign::CertifiedKey;

use super::retry::{is_bad_nonce, is_bad_nonce_problem, retry_bad_nonce, BAD_NONCE_RETRIES};
use super::shared::{Published, SharedChallenges, PUBLISH_GRACE};
use super::storage::{parse_cert, StoredCert};
use super::{AcmeError, ChallengeKind};
use crate::config::limits;
use crate::tls::store::CertStore;

fn poll_policy() -> RetryPolicy {
    RetryPolicy::new()
        .initial_delay(Duration::from_millis(250))
        .backoff(1.5)
        .timeout(limits::ACME_POLL_TIMEOUT)
}

/// A certificate freshly issued by the CA.
pub struct Issued {
    pub chain_pem: String,
    pub key_pem: String,
    pub cert: StoredCert,
    /// The challenge type that validated the name.
    pub challenge: ChallengeKind,
}

/// Where challenge answers go: this instance's store, and storage for the other instances.
pub struct Responders<'a> {
    pub store: &'a Arc<CertStore>,
    pub shared: &'a SharedChallenges,
}

/// Obtain a certificate for `name`, trying `challenges` in order.
pub async fn issue(
    account: &Account,
    responders: &Responders<'_>,
    name: &str,
    challenges: &[ChallengeKind],
) -> Result<Issued, AcmeError> {
    let mut failures = Vec::new();
    for &kind in challenges {
        match order_with(account, responders, name, kind).await {
            Ok(issued) => return Ok(issued),
            Err(
                e @ (AcmeError::ChallengeFailed { .. } | AcmeError::ChallengeNotOffered { .. }),
            ) => {
                tracing::warn!(name, challenge = %kind, error = %e, "ACME challenge did not succeed");
                failures.push(e);
            }
            Err(e) => return Err(e),
        }
    }
    Err(AcmeError::AllChallengesFailed(failures))
}

async fn order_with(
    account: &Account,
    responders: &Responders<'_>,
    name: &str,
    kind: ChallengeKind,
) -> Result<Issued, AcmeError> {
    let identifiers = [Identifier::Dns(name.to_owned())];
    let mut order =
        retry_bad_nonce!("new order", account.new_order(&NewOrder::new(&identifiers)).await)?;
    tracing::debug!(name, order = %order.url(), challenge = %kind, "ACME order created");
    if order.state().status == OrderStatus::Pending {
        // Answers stay provisioned until the order is ready or has failed.
        let provisioned = answer_authorizations(&mut order, responders, name, kind).await?;
        wait_until_ready(&mut order, kind).await?;
        drop(provisioned);
    }
    finalize(&mut order, name, kind).await
}

/// Provision an answer of `kind` for every pending authorization of `order` and tell the CA
/// it is ready. An authorization whose fetch hit a bad nonce is fetched again by a new pass
/// over the order's authorizations; the ones already answered are skipped.
async fn answer_authorizations(
    order: &mut instant_acme::Order,
    responders: &Responders<'_>,
    name: &str,
    kind: ChallengeKind,
) -> Result<Vec<Provisioned>, AcmeError> {
    let mut provisioned = Vec::new();
    let mut answered: Vec<String> = Vec::new();
    let mut fetch_retries = 0;
    'pass: loop {
        let mut authorizations = order.authorizations();
        while let Some(authorization) = authorizations.next().await {
            let mut authorization = match authorization {
                Ok(authorization) => authorization,
                Err(e) if fetch_retries < BAD_NONCE_RETRIES && is_bad_nonce(&e) => {
                    fetch_retries += 1;
                    continue 'pass;
                }
                Err(e) => return Err(e.into()),
            };
            if answered.iter().any(|url| url == authorization.url()) {
                continue;
            }
            match authorization.status {
                AuthorizationStatus::Pending => {}
                // Reused from an earlier validation: nothing to answer.
                AuthorizationStatus::Valid => continue,
                status => {
                    return Err(AcmeError::ChallengeFailed {
                        kind,
                        problem: Some(format!("authorization is {status:?}")),
                    })
                }
            }
            answered.push(authorization.url().to_owned());
            let offered: Vec<String> =
                authorization.challenges.iter().map(|c| type_name(&c.r#type)).collect();
            let Some(mut challenge) = authorization.challenge(super::acme_type(kind)) else {
                return Err(AcmeError::ChallengeNotOffered { kind, offered });
            };
            provisioned.push(provision(responders, name, kind, &challenge)?);
            // Give other instances on this storage directory time to mirror the answer: the
            // CA may reach any of them.
            tokio::time::sleep(PUBLISH_GRACE).await;
            retry_bad_nonce!("challenge ready", challenge.set_ready().await)?;
        }
        return Ok(provisioned);
    }
}

/// Put the answer to `challenge` where the CA will look: this instance's store, and storage
/// for the other instances sharing it.
fn provision(
    responders: &Responders<'_>,
    name: &str,
    kind: ChallengeKind,
    challenge: &instant_acme::ChallengeHandle<'_>,
) -> Result<Provisioned, AcmeError> {
    let store = responders.store;
    let key_authorization = challenge.key_authorization();
    let what = match kind {
        ChallengeKind::Http01 => {
            store.set_http_challenge(&challenge.token, key_authorization.as_str());
            Answer::Http(challenge.token.clone())
        }
        ChallengeKind::TlsAlpn01 => {
            let cert = alpn_challenge_cert(name, key_authorization.digest().as_ref())?;
            store.set_alpn_challenge(name, cert);
            Answer::Alpn(name.to_owned())
        }
    };
    let published = match responders.shared.publish(
        kind,
        name,
        &challenge.token,
        key_authorization.as_str(),
    ) {
        Ok(published) => Some(published),
        Err(e) => {
            tracing::warn!(name, error = %e, "cannot share the challenge answer with other instances; only this one will answer");
            None
        }
    };
    Ok(Provisioned { store: store.clone(), what, _published: published })
}

/// Wait for the CA to validate; a refusal is reported with the CA's problem document.
async fn wait_until_ready(
    order: &mut instant_acme::Order,
    kind: ChallengeKind,
) -> Result<(), AcmeError> {
    let status = match retry_bad_nonce!("order ready", order.poll_ready(&poll_policy()).await) {
        Ok(status) => status,
        Err(instant_acme::Error::Api(problem)) if !is_bad_nonce_problem(&problem) => {
            return Err(AcmeError::ChallengeFailed {
                kind,
                problem: Some(describe_problem(&problem)),
            })
        }
        Err(e) => return Err(e.into()),
    };
    if status != OrderStatus::Ready {
        return Err(AcmeError::ChallengeFailed {
            kind,
            problem: challenge_problem(order, kind).await,
        });
    }
    Ok(())
}

/// Send a CSR for a fresh key and download the certificate.
async fn finalize(
    order: &mut instant_acme::Order,
    name: &str,
    kind: ChallengeKind,
) -> Result<Issued, AcmeError> {
    let key =
        rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(AcmeError::Csr)?;
    let mut params =
        rcgen::CertificateParams::new(vec![name.to_owned()]).map_err(AcmeError::Csr)?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    let csr = params.serialize_request(&key).map_err(AcmeError::Csr)?;
    retry_bad_nonce!("finalize", order.finalize_csr(csr.der()).await)?;
    let chain_pem = retry_bad_nonce!("certificate", order.poll_certificate(&poll_policy()).await)?;
    let key_pem = key.serialize_pem();
    let cert = parse_cert(
        name,
        chain_pem.as_bytes(),
        key_pem.as_bytes(),
        Path::new("certificate from the CA"),
    )?;
    Ok(Issued { chain_pem, key_pem, cert, challenge: kind })
}

/// The CA's problem document for the failed challenge of `kind`, fetched fresh (the order's
/// cached authorizations predate the validation).
async fn challenge_problem(order: &mut instant_acme::Order, kind: ChallengeKind) -> Option<String> {
    let mut authorizations = order.authorizations();
    while let Some(Ok(mut authorization)) = authorizations.next().await {
        let Ok(state) = authorization.refresh().await else {
            continue;
        };
        if let Some(problem) = state
            .challenges
            .iter()
            .find(|c| c.r#type == super::acme_type(kind))
            .and_then(|c| c.error.as_ref())
        {
            return Some(describe_problem(problem));
        }
    }
    None
}

/// A problem document as one log-friendly line: type, detail, status and subproblems.
pub fn describe_problem(problem: &Problem) -> String {
    let mut out = String::new();
    if let Some(kind) = &problem.r#type {
        out.push_str(kind);
    }
    if let Some(status) = problem.status {
        out.push_str(&format!(" (HTTP {status})"));
    }
    if let Some(detail) = &problem.detail {
        out.push_str(": ");
        out.push_str(detail);
    }
    for sub in &problem.subproblems {
        out.push_str(&format!(
            "; {}: {}",
            sub.r#type.as_deref().unwrap_or("?"),
            sub.detail.as_deref().unwrap_or("")
        ));
    }
    out
}

fn type_name(kind: &ChallengeType) -> String {
    match kind {
        ChallengeType::Http01 => "http-01".to_owned(),
        ChallengeType::Dns01 => "dns-01".to_owned(),
        ChallengeType::TlsAlpn01 => "tls-alpn-01".to_owned(),
        ChallengeType::DeviceAttest01 => "device-attest-01".to_owned(),
        ChallengeType::Unknown(other) => other.clone(),
        other => format!("{other:?}"),
    }
}

/// The self-signed TLS-ALPN-01 certificate for `name` (RFC 8737 §3): the name as its only SAN
/// and the critical acmeIdentifier extension holding SHA-256 of the key authorization.
pub fn alpn_challenge_cert(
    name: &str,
    key_authorization_digest: &[u8],
) -> Result<Arc<CertifiedKey>, AcmeError> {
    let key =
        rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(AcmeError::Csr)?;
    let mut params =
        rcgen::CertificateParams::new(vec![name.to_owned()]).map_err(AcmeError::Csr)?;
    params.custom_extensions =
        vec![rcgen::CustomExtension::new_acme_identifier(key_authorization_digest)];
    let cert = params.self_signed(&key).map_err(AcmeError::Csr)?;
    let key_der = rustls_pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
    let signing_key = rustls::crypto::ring::sign::any_supported_type(&key_der)
        .map_err(|e| AcmeError::Internal(format!("challenge key: {e}")))?;
    Ok(Arc::new(CertifiedKey::new(vec![cert.der().clone()], signing_key)))
}

enum Answer {
    Http(String),
    Alpn(String),
}

/// A challenge response published in the store (and in storage); withdrawn on drop.
struct Provisioned {
    store: Arc<CertStore>,
    what: Answer,
    _published: Option<Published>,
}

impl Drop for Provisioned {
    fn drop(&mut self) {
        match &self.what {
            Answer::Http(token) => self.store.remove_http_challenge(token),
            Answer::Alpn(name) => self.store.remove_alpn_challenge(name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alpn_challenge_cert_carries_critical_acme_identifier() {
        let digest = [7u8; 32];
        let key = alpn_challenge_cert("a.example", &digest).unwrap();
        let (_, cert) = x509_parser::parse_x509_certificate(key.cert[0].as_ref()).unwrap();
        let ext = cert
            .extensions()
            .iter()
            .find(|e| e.oid.to_id_string() == "1.3.6.1.5.5.7.1.31")
            .expect("acmeIdentifier extension");
        assert!(ext.critical);
        // DER OCTET STRING of 32 bytes wrapping the digest.
        assert_eq!(&ext.value[..2], &[0x04, 32]);
        assert_eq!(&ext.value[2..], &digest);
        let san = cert.subject_alternative_name().unwrap().unwrap();
        assert_eq!(san.value.general_names.len(), 1);
    }

    #[test]
    fn problem_description_includes_type_detail_and_status() {
        let problem: Problem = serde_json::from_str(
            r#"{"type":"urn:ietf:params:acme:error:connection","detail":"refused","status":400}"#,
        )
        .unwrap();
        assert_eq!(
            describe_problem(&problem),
            "urn:ietf:params:acme:error:connection (HTTP 400): refused"
        );
    }
}
