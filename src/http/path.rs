//! Request path normalisation for routing: the path matchers compare against this form, so
//! `/API/Auth/../auth/x`, `/api//auth/x` and `/api/%61uth/x` all route like `/api/auth/x`.
//! OWNER: http helper. (Stub.)

/// Normalise a raw request path (without query) for matching, into `out` (cleared first):
/// percent-decoded, dot segments resolved (RFC 3986 §5.2.4), repeated slashes merged,
/// lower-cased. Never fails: undecodable escapes are kept literally.
pub fn normalize_path(raw: &[u8], out: &mut String) {
    let _ = (raw, out);
    todo!("http helper")
}
