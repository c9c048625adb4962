//! Whether an upstream's `101` really switched to WebSocket (RFC 6455 §4.2.2): its `Upgrade`
//! is `websocket`, and its `Sec-WebSocket-Accept` is the one the client's key asks for. A proxy
//! that relayed any other `101` would hand the client's connection to a protocol it never
//! asked for (or an upstream that misunderstood the request).
//!
//! Owns that check and the accept value. Does not own which requests may ask to upgrade (the
//! request head's `websocket_upgrade`) or what happens after a refusal (`proxy::response`).

use super::head::ResponseHead;
use super::trim_ows;

/// Appended to the client's key before hashing (RFC 6455 §1.3).
const ACCEPT_GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Why a `101` to a WebSocket upgrade request is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UpgradeError {
    #[error("the request carried no single Sec-WebSocket-Key to check the answer against")]
    NoKey,
    #[error("101 without a single `Upgrade: websocket`")]
    NotWebSocket,
    #[error("101 whose Sec-WebSocket-Accept does not match the client's key")]
    WrongAccept,
}

/// Check the upstream's `101` (`response`, parsed from `response_bytes`) against the client's
/// `Sec-WebSocket-Key` values.
pub fn check_switch<'k>(
    mut keys: impl Iterator<Item = &'k [u8]>,
    response: &ResponseHead,
    response_bytes: &[u8],
) -> Result<(), UpgradeError> {
    let (Some(key), None) = (keys.next(), keys.next()) else {
        return Err(UpgradeError::NoKey);
    };
    let mut upgrades = response.values(response_bytes, "upgrade");
    match (upgrades.next(), upgrades.next()) {
        (Some(token), None) if trim_ows(token).eq_ignore_ascii_case(b"websocket") => {}
        _ => return Err(UpgradeError::NotWebSocket),
    }
    let mut accepts = response.values(response_bytes, "sec-websocket-accept");
    match (accepts.next(), accepts.next()) {
        (Some(accept), None) if trim_ows(accept) == accept_value(trim_ows(key)).as_bytes() => {
            Ok(())
        }
        _ => Err(UpgradeError::WrongAccept),
    }
}

/// `Sec-WebSocket-Accept` for `key`: base64 of SHA-1 over the key and the GUID.
pub fn accept_value(key: &[u8]) -> String {
    let mut hashing = ring::digest::Context::new(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY);
    hashing.update(key);
    hashing.update(ACCEPT_GUID);
    base64(hashing.finish().as_ref())
}

/// Standard base64 with padding (RFC 4648 §4).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for group in bytes.chunks(3) {
        let n = group.iter().enumerate().fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for position in 0..4 {
            if position <= group.len() {
                out.push(ALPHABET[(n >> (18 - 6 * position) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::head::{parse_response, Method};

    const KEY: &[u8] = b"dGhlIHNhbXBsZSBub25jZQ==";

    fn check(keys: &[&[u8]], response: &str) -> Result<(), UpgradeError> {
        let bytes = response.as_bytes();
        let head = parse_response(bytes, Method::Get, 4096).unwrap().unwrap();
        check_switch(keys.iter().copied(), &head, bytes)
    }

    #[test]
    fn the_accept_value_is_rfc_6455s_worked_example() {
        assert_eq!(accept_value(KEY), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[test]
    fn base64_pads_every_group_length() {
        let cases: &[(&[u8], &str)] =
            &[(b"", ""), (b"f", "Zg=="), (b"fo", "Zm8="), (b"foo", "Zm9v"), (b"foob", "Zm9vYg==")];
        for (input, want) in cases {
            assert_eq!(base64(input), *want);
        }
    }

    #[test]
    fn a_switch_is_accepted_only_to_websocket_with_the_keys_accept_value() {
        let ok =
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: WebSocket\r\nConnection: Upgrade\r\n\
                  Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
        assert_eq!(check(&[KEY], ok), Ok(()));
        assert_eq!(check(&[], ok), Err(UpgradeError::NoKey));
        assert_eq!(check(&[KEY, KEY], ok), Err(UpgradeError::NoKey));
        let h2c = ok.replace("WebSocket", "h2c");
        assert_eq!(check(&[KEY], &h2c), Err(UpgradeError::NotWebSocket));
        let none = ok.replace("Upgrade: WebSocket\r\n", "");
        assert_eq!(check(&[KEY], &none), Err(UpgradeError::NotWebSocket));
        let wrong = ok.replace("s3pP", "AAAA");
        assert_eq!(check(&[KEY], &wrong), Err(UpgradeError::WrongAccept));
        let missing = ok.replace("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n", "");
        assert_eq!(check(&[KEY], &missing), Err(UpgradeError::WrongAccept));
        assert_eq!(check(&[b"other-key"], ok), Err(UpgradeError::WrongAccept));
    }
}
