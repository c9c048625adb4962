//! Request path normalisation for routing: the path matchers compare against this form, so
//! `/API/Auth/../auth/x`, `/api//auth/x` and `/api/%61uth/x` all route like `/api/auth/x`.
//!
//! Owns the routing form of a path, and the removal of `handle_path` prefixes from the path
//! that is forwarded. What is forwarded upstream is the path as received minus those prefixes,
//! exactly as Caddy does: they are removed ASCII-case-insensitively from the path as received
//! when it is already in normal form; otherwise (`//api/x`, `/api/../api/x`, `/%61pi/x`) from
//! its decoded, dot-resolved form, re-escaped, so the stripped path is the one that was routed.
//!
//! Decisions, matching Caddy's path matcher (which compares against Go's decoded `URL.Path`):
//! - Every valid `%XX` escape is decoded once, `%2F` included, *before* dot segments are
//!   resolved: `/api%2Fauth/x` routes like `/api/auth/x`, and `/api/%2e%2e/admin` like
//!   `/admin`. Routing on the decoded form means an escape can never smuggle a request past a
//!   path matcher into a route it would not match when written plainly.
//! - Invalid escapes (`%zz`, a trailing `%`) stay as literal text.
//! - Decoded bytes that are not valid UTF-8 are re-escaped as lower-case `%xx`, so the result is
//!   always a `String` and distinct byte sequences stay distinct.
//! - Lower-casing is Unicode-aware (Caddy uses `strings.ToLower`); the common ASCII-only path
//!   lower-cases in place without allocating.

/// Normalise a raw request path (without query) for matching, into `out` (cleared first):
/// percent-decoded, dot segments resolved (RFC 3986 §5.2.4), repeated slashes merged,
/// lower-cased. Never fails: undecodable escapes are kept literally.
///
/// A path not starting with `/` gets one (the absolute form always does); `*` (`OPTIONS *`)
/// stays `*`.
pub fn normalize_path(raw: &[u8], out: &mut String) {
    out.clear();
    if raw == b"*" {
        out.push('*');
        return;
    }
    // Reuse the caller's allocation for the byte-level passes.
    let mut bytes = std::mem::take(out).into_bytes();
    if raw.first() != Some(&b'/') {
        bytes.push(b'/');
    }
    percent_decode_into(raw, &mut bytes);
    let len = remove_dot_segments(&mut bytes);
    bytes.truncate(len);
    bytes.make_ascii_lowercase();
    let mut text = match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(err) => escape_invalid_utf8(&err.into_bytes()),
    };
    if !text.is_ascii() {
        text = text.to_lowercase();
    }
    *out = text;
}

/// Append `raw` to `out`, decoding every `%XX` with two hex digits.
pub(crate) fn percent_decode_into(raw: &[u8], out: &mut Vec<u8>) {
    let mut i = 0;
    while i < raw.len() {
        let b = raw[i];
        if b == b'%' {
            if let (Some(hi), Some(lo)) = (
                raw.get(i + 1).and_then(|&h| hex_value(h)),
                raw.get(i + 2).and_then(|&l| hex_value(l)),
            ) {
                out.push(hi << 4 | lo);
                i += 3;
                continue;
            }
        }
        out.push(b);
        i += 1;
    }
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// RFC 3986 §5.2.4 on a path starting with `/`, in place, also merging empty segments (`//`).
/// Returns the new length. A path that ends in `/`, `/.` or `/..` keeps a trailing slash, as the
/// RFC's algorithm does; `..` above the root stays at the root.
pub(crate) fn remove_dot_segments(b: &mut [u8]) -> usize {
    debug_assert_eq!(b.first(), Some(&b'/'));
    let n = b.len();
    // Invariant: w <= r, so writes never overtake unread input.
    let mut w = 0;
    let mut r = 0;
    let mut trailing_slash = false;
    while r < n {
        let start = r + 1;
        let end = b[start..].iter().position(|&c| c == b'/').map_or(n, |i| start + i);
        match &b[start..end] {
            b"" | b"." => trailing_slash = true,
            b".." => {
                w = b[..w].iter().rposition(|&c| c == b'/').unwrap_or(0);
                trailing_slash = true;
            }
            _ => {
                b[w] = b'/';
                b.copy_within(start..end, w + 1);
                w += 1 + (end - start);
                trailing_slash = false;
            }
        }
        r = end;
    }
    if trailing_slash || w == 0 {
        // There is a `/` at or after `w` that produced the empty/dot segment, so `w < n`.
        b[w] = b'/';
        w += 1;
    }
    w
}

/// Whether `remove_dot_segments` would leave `path` unchanged: no empty, `.` or `..` segment
/// except a single trailing slash.
pub(crate) fn is_clean(path: &[u8]) -> bool {
    let Some(rest) = path.strip_prefix(b"/") else {
        return false;
    };
    let mut segments = rest.split(|&b| b == b'/').peekable();
    while let Some(segment) = segments.next() {
        let last = segments.peek().is_none();
        if segment == b"." || segment == b".." || (segment.is_empty() && !last) {
            return false;
        }
    }
    true
}

fn escape_invalid_utf8(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() + 8);
    for chunk in bytes.utf8_chunks() {
        text.push_str(chunk.valid());
        for &b in chunk.invalid() {
            text.push('%');
            text.push(char::from(HEX[usize::from(b >> 4)]));
            text.push(char::from(HEX[usize::from(b & 0xf)]));
        }
    }
    text
}

/// `path` with `handle_path` prefixes removed (see the module doc for the two forms), into
/// `out`; as received when there are none.
pub(crate) fn write_stripped_path(path: &[u8], prefixes: &[&str], out: &mut Vec<u8>) {
    if prefixes.is_empty() {
        out.extend_from_slice(path);
        return;
    }
    let start = out.len();
    out.extend_from_slice(path);
    let stripped = is_clean(path) && prefixes.iter().all(|p| strip_prefix_at(out, start, p));
    if !stripped {
        out.truncate(start);
        percent_decode_into(path, out);
        let len = remove_dot_segments(&mut out[start..]);
        out.truncate(start + len);
        // The router matched these prefixes against this same decoded form (lower-cased), so
        // each one is found unless a prefix itself was written with escapes in the config.
        for p in prefixes {
            strip_prefix_at(out, start, p);
        }
        escape_path_in_place(out, start);
    }
    if out.get(start) != Some(&b'/') {
        out.insert(start, b'/');
    }
}

/// Remove `prefix` (without its trailing `/`) from the start of `out[start..]`, ignoring ASCII
/// case. `false` when `out[start..]` does not start with it.
fn strip_prefix_at(out: &mut Vec<u8>, start: usize, prefix: &str) -> bool {
    let prefix = prefix.trim_end_matches('/').as_bytes();
    match out.get(start..start + prefix.len()) {
        Some(head) if head.eq_ignore_ascii_case(prefix) => {
            out.drain(start..start + prefix.len());
            true
        }
        _ => false,
    }
}

/// Percent-encode, in place, the bytes of a decoded path that may not appear raw in a path
/// (RFC 3986 §3.3: pchar and `/` stay), working from the end so nothing is overwritten early.
fn escape_path_in_place(out: &mut Vec<u8>, start: usize) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let needs = |b: u8| !(is_pchar(b) || b == b'/');
    let extra = 2 * out[start..].iter().filter(|&&b| needs(b)).count();
    if extra == 0 {
        return;
    }
    let old_len = out.len();
    out.resize(old_len + extra, 0);
    let mut w = out.len();
    for r in (start..old_len).rev() {
        let b = out[r];
        if needs(b) {
            out[w - 3] = b'%';
            out[w - 2] = HEX[usize::from(b >> 4)];
            out[w - 1] = HEX[usize::from(b & 0xf)];
            w -= 3;
        } else {
            out[w - 1] = b;
            w -= 1;
        }
    }
}

/// unreserved / sub-delims / `:` / `@` (pct-encoded is handled by escaping `%` itself).
fn is_pchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(raw: &str) -> String {
        let mut out = String::from("leftover");
        normalize_path(raw.as_bytes(), &mut out);
        out
    }

    #[test]
    fn table() {
        let cases: &[(&str, &str)] = &[
            ("/", "/"),
            ("", "/"),
            ("*", "*"),
            ("/health", "/health"),
            ("/API/Auth/x", "/api/auth/x"),
            ("//api///auth/x", "/api/auth/x"),
            ("/api/auth/../../health", "/health"),
            ("/api/auth/../../../../health", "/health"),
            ("/api/auth/%2e%2e/%2E%2E/health", "/health"),
            ("/api/./auth/./x", "/api/auth/x"),
            ("/api/auth/", "/api/auth/"),
            ("/api/auth/.", "/api/auth/"),
            ("/api/auth/..", "/api/"),
            ("/..", "/"),
            ("/.", "/"),
            ("/api/%61uth/x", "/api/auth/x"),
            ("/api%2Fauth/x", "/api/auth/x"),
            ("/api%2fauth%2f..%2fx", "/api/x"),
            ("/a%zzb", "/a%zzb"),
            ("/a%4", "/a%4"),
            ("/a%", "/a%"),
            ("/%25", "/%"),
            ("/%2561", "/%61"),
            ("/a/..b/c..", "/a/..b/c.."),
            ("/a/.../b", "/a/.../b"),
            ("relative/x", "/relative/x"),
            ("/%C3%89T%C3%89", "/été"),
            ("/%ff%FE", "/%ff%fe"),
            ("/caf\u{e9}", "/caf\u{e9}"),
        ];
        for (raw, want) in cases {
            assert_eq!(norm(raw), *want, "normalize_path({raw:?})");
        }
    }

    #[test]
    fn is_idempotent_on_its_output() {
        for raw in ["/A//b/../C/./d/", "/%2e%2e/x", "/x/%41%2F..%2fy", "/%ff/Z"] {
            let once = norm(raw);
            // Escapes produced for invalid UTF-8 decode again, so only ASCII outputs are fixed
            // points; the others must at least stay normalised paths.
            if !raw.contains("%ff") {
                assert_eq!(norm(&once), once, "{raw:?}");
            }
            assert!(once.starts_with('/'));
            assert!(!once.contains("//") && !once.contains("/./") && !once.contains("/../"));
        }
    }

    proptest::proptest! {
        #[test]
        fn output_has_no_dot_or_empty_segments(raw in proptest::collection::vec(
            proptest::sample::select(b"/.%2eEfA".to_vec()), 0..40))
        {
            let mut out = String::new();
            normalize_path(&raw, &mut out);
            let segments: Vec<&str> = out.split('/').collect();
            proptest::prop_assert_eq!(segments[0], "");
            for (i, seg) in segments.iter().enumerate().skip(1) {
                let last = i == segments.len() - 1;
                proptest::prop_assert!(*seg != "." && *seg != "..", "{:?} -> {:?}", raw, out);
                proptest::prop_assert!(last || !seg.is_empty(), "{:?} -> {:?}", raw, out);
            }
            proptest::prop_assert_eq!(out.to_lowercase(), out.clone());
        }
    }
}
