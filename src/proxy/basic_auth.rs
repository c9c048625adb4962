//! `basic_auth` on the data path: read a request's `Authorization: Basic` credentials and
//! check them against the route's accounts.
//!
//! The bcrypt check is made to be slow (tens of milliseconds to a second), so it never runs
//! on the worker: it goes to the process's blocking pool (`runtime::blocking`) and the
//! connection waits for it like for any I/O while the worker serves its other streams. Each
//! worker remembers recent outcomes, keyed by a digest of hash, user and password, so a client
//! that sends its credentials on every request pays for bcrypt once. The time a refusal takes
//! does not tell whether the user exists: an unknown user's password is still checked, against
//! another account's hash, and the answer is no whatever that check says.
//!
//! Owns: parsing the credentials, the account lookup, the cache, the bound on pending checks.
//! Does not own: the `401` (the connection driver writes it) or where `basic_auth` applies
//! (routing).

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use base64::Engine;
use subtle::ConstantTimeEq;

use crate::config::{limits, BasicAccount, BasicAuth};
use crate::http::request::Request;

/// What a request's credentials are worth under one `basic_auth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credentials {
    Accepted,
    /// No credentials, malformed ones, an unknown user or a wrong password: `401`.
    Refused,
    /// Too many checks are pending in the process, so this one was not run; the client may
    /// try again (`503`).
    Unchecked,
}

/// One worker's remembered outcomes of password checks.
#[derive(Default)]
pub struct CheckCache {
    outcomes: RefCell<HashMap<[u8; 32], bool>>,
}

impl CheckCache {
    fn get(&self, key: &[u8; 32]) -> Option<bool> {
        self.outcomes.borrow().get(key).copied()
    }

    fn put(&self, key: [u8; 32], allowed: bool) {
        let mut outcomes = self.outcomes.borrow_mut();
        if outcomes.len() >= limits::PASSWORD_CHECK_CACHE {
            if let Some(victim) = outcomes.keys().next().copied() {
                outcomes.remove(&victim);
            }
        }
        outcomes.insert(key, allowed);
    }
}

/// Password checks queued or running in the process (bounded by
/// [`limits::MAX_PENDING_PASSWORD_CHECKS`]). Touched only on a cache miss, never per request.
static PENDING_CHECKS: AtomicUsize = AtomicUsize::new(0);

/// Check `request`'s credentials against `auth`.
pub async fn check(auth: &BasicAuth, request: &Request, cache: &CheckCache) -> Credentials {
    let Some((user, password)) = request.values("authorization").next().and_then(credentials)
    else {
        return Credentials::Refused;
    };
    let found = find_account(&auth.accounts, &user);
    // An unknown user is checked against the first account's hash, so that the refusal takes
    // as long as a wrong password does; with no accounts there is nothing to time.
    let Some(account) = found.or(auth.accounts.first()) else {
        return Credentials::Refused;
    };
    let key = cache_key(account, &user, &password);
    let matches = match cache.get(&key) {
        Some(known) => known,
        None => match verify_off_worker(&account.hash, password).await {
            Some(matches) => {
                cache.put(key, matches);
                matches
            }
            None => return Credentials::Unchecked,
        },
    };
    if matches && found.is_some() {
        Credentials::Accepted
    } else {
        Credentials::Refused
    }
}

/// `Basic <base64(user:password)>` (the scheme in any case, RFC 9110 §11.1) → user and
/// password. The password may contain `:`; the user may not (RFC 7617 §2).
fn credentials(value: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let value = value.trim_ascii();
    let (scheme, token) = value.split_at(value.iter().position(|&b| b == b' ')?);
    if !scheme.eq_ignore_ascii_case(b"basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD.decode(token.trim_ascii()).ok()?;
    let colon = decoded.iter().position(|&b| b == b':')?;
    Some((decoded[..colon].to_vec(), decoded[colon + 1..].to_vec()))
}

/// The account named `user`. Every name is compared in full, without stopping at the first
/// differing byte or the first match, so the time taken says nothing about which names exist.
fn find_account<'a>(accounts: &'a [BasicAccount], user: &[u8]) -> Option<&'a BasicAccount> {
    let mut found = None;
    for account in accounts {
        if bool::from(account.user.as_bytes().ct_eq(user)) {
            found = found.or(Some(account));
        }
    }
    found
}

/// Where a check's outcome is remembered: a digest, so the cache holds no password.
fn cache_key(account: &BasicAccount, user: &[u8], password: &[u8]) -> [u8; 32] {
    let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
    for part in [account.hash.as_bytes(), user, password] {
        digest.update(&(part.len() as u64).to_be_bytes());
        digest.update(part);
    }
    let mut key = [0u8; 32];
    key.copy_from_slice(digest.finish().as_ref());
    key
}

/// bcrypt on the blocking pool; `None` when too many checks are pending already.
async fn verify_off_worker(hash: &str, password: Vec<u8>) -> Option<bool> {
    let pending = PENDING_CHECKS.fetch_add(1, Ordering::Relaxed);
    let counted = PendingCheck;
    if pending >= limits::MAX_PENDING_PASSWORD_CHECKS {
        tracing::warn!("basic_auth: {pending} password checks pending; refusing more for now");
        return None;
    }
    let hash = hash.to_owned();
    let checking = move || {
        // Counted until the check itself is over, even if the request that asked is gone.
        let _counted = counted;
        bcrypt::verify(password, &hash)
    };
    match monoio::spawn_blocking(checking).await {
        Ok(Ok(matches)) => Some(matches),
        Ok(Err(e)) => {
            // The hash's shape was checked at load; this is bcrypt refusing it anyway.
            tracing::error!("basic_auth: cannot check a password: {e}");
            Some(false)
        }
        Err(_) => {
            tracing::error!("basic_auth: the password check was cancelled");
            Some(false)
        }
    }
}

/// Counts one pending check for as long as it lives: until the check has run (or was refused,
/// or dropped unrun), whether or not the request that asked for it still waits.
struct PendingCheck;

impl Drop for PendingCheck {
    fn drop(&mut self) {
        PENDING_CHECKS.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_read_in_any_case_and_keep_colons_in_the_password() {
        let encode = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let header = |v: String| credentials(v.as_bytes());
        let pair = |u: &str, p: &str| Some((u.as_bytes().to_vec(), p.as_bytes().to_vec()));
        assert_eq!(header(format!("Basic {}", encode("bob:secret"))), pair("bob", "secret"));
        assert_eq!(header(format!("basic  {} ", encode("bob:a:b"))), pair("bob", "a:b"));
        assert_eq!(header(format!("BASIC {}", encode(":"))), pair("", ""));
        assert_eq!(header(format!("Bearer {}", encode("bob:secret"))), None);
        assert_eq!(header(format!("Basic {}", encode("no-colon"))), None);
        assert_eq!(header("Basic !!!".to_string()), None);
        assert_eq!(header("Basic".to_string()), None);
    }

    #[test]
    fn accounts_are_found_by_their_whole_name() {
        let account = |user: &str| BasicAccount { user: user.into(), hash: String::new() };
        let accounts = [account("bob"), account("bobby")];
        assert_eq!(find_account(&accounts, b"bobby").map(|a| a.user.as_str()), Some("bobby"));
        assert_eq!(find_account(&accounts, b"bob").map(|a| a.user.as_str()), Some("bob"));
        assert!(find_account(&accounts, b"bo").is_none());
        assert!(find_account(&accounts, b"").is_none());
    }

    #[test]
    fn the_cache_key_tells_apart_every_part_and_the_cache_stays_bounded() {
        let account = BasicAccount { user: "bob".into(), hash: "h".into() };
        assert_ne!(cache_key(&account, b"bob", b"ab"), cache_key(&account, b"boba", b"b"));
        let other = BasicAccount { hash: "h2".into(), ..account.clone() };
        assert_ne!(cache_key(&account, b"bob", b"x"), cache_key(&other, b"bob", b"x"));
        let cache = CheckCache::default();
        for i in 0..limits::PASSWORD_CHECK_CACHE + 10 {
            cache.put(cache_key(&account, b"bob", i.to_string().as_bytes()), true);
        }
        assert_eq!(cache.outcomes.borrow().len(), limits::PASSWORD_CHECK_CACHE);
    }
}
