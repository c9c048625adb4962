//! Sending an ACME request again when the CA rejected its anti-replay nonce.
//!
//! RFC 8555 §6.5 makes `badNonce` a "fetch a fresh nonce and try again" signal, never a verdict
//! on the request. instant-acme resends a request twice on its own; CAs reject valid nonces in
//! runs more often than that covers (pebble rejects 5 % of them on purpose from a per-process
//! pseudo-random sequence, Let's Encrypt after a nonce-service restart), and one unlucky run
//! must not fail a whole order: a failed order costs a new order (rate limits) and the caller's
//! backoff, while a resent request costs a round trip.

/// Further attempts per request after instant-acme's own, each with a fresh nonce.
pub const BAD_NONCE_RETRIES: u32 = 5;

/// Whether the CA answered with a `badNonce` problem.
pub fn is_bad_nonce(error: &instant_acme::Error) -> bool {
    matches!(error, instant_acme::Error::Api(problem) if is_bad_nonce_problem(problem))
}

pub fn is_bad_nonce_problem(problem: &instant_acme::Problem) -> bool {
    problem.r#type.as_deref() == Some("urn:ietf:params:acme:error:badNonce")
}

/// Evaluate `$request` (an expression ending in `.await` that yields
/// `Result<_, instant_acme::Error>`) again while it fails with `badNonce`, up to
/// [`BAD_NONCE_RETRIES`] more times. A macro rather than a function because the requests borrow
/// the order or challenge mutably and are re-created on each attempt.
macro_rules! retry_bad_nonce {
    ($step:literal, $request:expr) => {{
        let mut retries = 0;
        loop {
            match $request {
                Err(e)
                    if retries < $crate::acme::retry::BAD_NONCE_RETRIES
                        && $crate::acme::retry::is_bad_nonce(&e) =>
                {
                    retries += 1;
                    tracing::debug!(
                        step = $step,
                        retries,
                        "ACME: the CA rejected the request's nonce; sending it again"
                    );
                }
                result => break result,
            }
        }
    }};
}

pub(crate) use retry_bad_nonce;
