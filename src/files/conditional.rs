//! The validators of a served file and what a request does with them: Caddy's `ETag`, the
//! `Last-Modified` date, the preconditions (RFC 9110 §13: `If-Match`, `If-Unmodified-Since`,
//! `If-None-Match`, `If-Modified-Since`, `If-Range`, evaluated in Go's `ServeContent` order)
//! and one `Range` (RFC 9110 §14). Pure functions; the file server applies them.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Caddy's entity tag: `"<mtime in ns, base 36>-<size, base 36>"`. Strong: it changes with
/// any write that moves the modification time or the size.
pub fn etag(modified: SystemTime, len: u64) -> String {
    let nanos = modified.duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos();
    format!("\"{}-{}\"", base36(nanos), base36(u128::from(len)))
}

fn base36(mut n: u128) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

/// `Last-Modified`'s IMF-fixdate, whole seconds.
pub fn http_date(time: SystemTime) -> String {
    httpdate::fmt_http_date(time)
}

/// What the preconditions decide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precondition {
    /// Serve the representation (a `Range` may still apply).
    Serve,
    /// `304 Not Modified`.
    NotModified,
    /// `412 Precondition Failed`.
    Failed,
}

/// The request's precondition fields, as text (`None` when absent).
#[derive(Debug, Default, Clone, Copy)]
pub struct Conditions<'a> {
    pub if_match: Option<&'a str>,
    pub if_unmodified_since: Option<&'a str>,
    pub if_none_match: Option<&'a str>,
    pub if_modified_since: Option<&'a str>,
}

/// RFC 9110 §13.2.2's order for a GET or HEAD, as Go evaluates it: `If-Match` (or else
/// `If-Unmodified-Since`) may fail the request; then `If-None-Match` (or else
/// `If-Modified-Since`) may make it a `304`.
pub fn evaluate(c: &Conditions<'_>, etag: &str, modified: SystemTime) -> Precondition {
    let modified = whole_seconds(modified);
    match (c.if_match, c.if_unmodified_since.and_then(parse_date)) {
        (Some(list), _) if !list_matches(list, etag, false) => return Precondition::Failed,
        (None, Some(since)) if modified > since => return Precondition::Failed,
        _ => {}
    }
    match (c.if_none_match, c.if_modified_since.and_then(parse_date)) {
        (Some(list), _) if list_matches(list, etag, true) => Precondition::NotModified,
        (None, Some(since)) if modified <= since => Precondition::NotModified,
        _ => Precondition::Serve,
    }
}

/// `If-Range`: the range applies only if the validator still names this representation (a
/// strong entity tag, or exactly the `Last-Modified` date).
pub fn if_range_holds(value: Option<&str>, etag: &str, modified: SystemTime) -> bool {
    let Some(value) = value.map(str::trim) else {
        return true;
    };
    if value.starts_with('"') {
        return value == etag;
    }
    parse_date(value) == Some(whole_seconds(modified))
}

/// Whether an `If-Match` / `If-None-Match` list names `etag` (`*` names anything). `weak`
/// compares ignoring `W/` (§8.8.3.2), as `If-None-Match` does.
fn list_matches(list: &str, etag: &str, weak: bool) -> bool {
    list.split(',').map(str::trim).any(|tag| {
        if tag == "*" {
            return true;
        }
        match tag.strip_prefix("W/") {
            Some(weak_tag) => weak && weak_tag == etag,
            None => tag == etag,
        }
    })
}

fn parse_date(text: &str) -> Option<SystemTime> {
    httpdate::parse_http_date(text.trim()).ok()
}

fn whole_seconds(time: SystemTime) -> SystemTime {
    let secs = time.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    UNIX_EPOCH + Duration::from_secs(secs)
}

/// What a `Range` field asks of a representation of `len` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ranged {
    /// No range, or one that is ignored (several ranges: the whole representation is sent).
    Whole,
    /// One satisfiable range: `206` with these bytes, `start..start + len`.
    Part { start: u64, len: u64 },
    /// `416`; `overlap_failed` adds `Content-Range: bytes */len` (a well-formed range outside
    /// the representation, as opposed to a malformed field).
    Unsatisfiable { overlap_failed: bool },
}

/// RFC 9110 §14.1.2 for one `bytes=` range; several ranges are answered with the whole
/// representation (a server may ignore `Range`, §14.2), not with Go's multipart.
pub fn range(value: Option<&str>, len: u64) -> Ranged {
    let Some(value) = value else {
        return Ranged::Whole;
    };
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return Ranged::Unsatisfiable { overlap_failed: false };
    };
    let specs: Vec<&str> = spec.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
    let [one] = specs[..] else {
        return match specs.is_empty() {
            true => Ranged::Unsatisfiable { overlap_failed: false },
            false => Ranged::Whole,
        };
    };
    let Some((first, last)) = one.split_once('-') else {
        return Ranged::Unsatisfiable { overlap_failed: false };
    };
    let number = |s: &str| match s.bytes().all(|b| b.is_ascii_digit()) && !s.is_empty() {
        true => s.parse::<u64>().ok(),
        false => None,
    };
    match (first.trim(), last.trim()) {
        ("", suffix) => match number(suffix) {
            Some(0) => Ranged::Unsatisfiable { overlap_failed: true },
            Some(_) if len == 0 => Ranged::Unsatisfiable { overlap_failed: true },
            Some(n) => Ranged::Part { start: len - n.min(len), len: n.min(len) },
            None => Ranged::Unsatisfiable { overlap_failed: false },
        },
        (first, last) => {
            let Some(start) = number(first) else {
                return Ranged::Unsatisfiable { overlap_failed: false };
            };
            let end = match last {
                "" => u64::MAX,
                last => match number(last) {
                    Some(end) if end >= start => end,
                    _ => return Ranged::Unsatisfiable { overlap_failed: false },
                },
            };
            if start >= len {
                return Ranged::Unsatisfiable { overlap_failed: true };
            }
            Ranged::Part { start, len: end.min(len - 1) - start + 1 }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64, nanos: u32) -> SystemTime {
        UNIX_EPOCH + Duration::new(secs, nanos)
    }

    #[test]
    fn etags_are_caddys_base36_mtime_and_size() {
        // Caddy 2.11.7 answered `"dn9o9qxzpa97-c"` for a 12-byte file with this mtime.
        let modified = UNIX_EPOCH + Duration::from_nanos(1_796_156_304_247_883_563);
        assert_eq!(etag(modified, 12), "\"dn9o9qxzpa97-c\"");
        assert_eq!(etag(UNIX_EPOCH, 0), "\"0-0\"");
    }

    #[test]
    fn last_modified_is_an_imf_fixdate() {
        assert_eq!(http_date(at(784_111_777, 500)), "Sun, 06 Nov 1994 08:49:37 GMT");
    }

    #[test]
    fn if_none_match_and_if_modified_since_give_304() {
        let (tag, modified) = ("\"a-1\"", at(784_111_777, 900_000_000));
        let c = |inm, ims| Conditions {
            if_none_match: inm,
            if_modified_since: ims,
            ..Default::default()
        };
        assert_eq!(evaluate(&c(Some("\"a-1\""), None), tag, modified), Precondition::NotModified);
        assert_eq!(
            evaluate(&c(Some("\"x\", W/\"a-1\""), None), tag, modified),
            Precondition::NotModified
        );
        assert_eq!(evaluate(&c(Some("*"), None), tag, modified), Precondition::NotModified);
        assert_eq!(evaluate(&c(Some("\"b-1\""), None), tag, modified), Precondition::Serve);
        let date = Some("Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(evaluate(&c(None, date), tag, modified), Precondition::NotModified);
        let earlier = Some("Sun, 06 Nov 1994 08:49:36 GMT");
        assert_eq!(evaluate(&c(None, earlier), tag, modified), Precondition::Serve);
        // If-None-Match wins over If-Modified-Since when both are sent.
        assert_eq!(evaluate(&c(Some("\"b-1\""), date), tag, modified), Precondition::Serve);
        assert_eq!(evaluate(&c(None, Some("yesterday")), tag, modified), Precondition::Serve);
    }

    #[test]
    fn if_match_and_if_unmodified_since_give_412() {
        let (tag, modified) = ("\"a-1\"", at(784_111_777, 0));
        let c =
            |im, ius| Conditions { if_match: im, if_unmodified_since: ius, ..Default::default() };
        assert_eq!(evaluate(&c(Some("\"x\""), None), tag, modified), Precondition::Failed);
        assert_eq!(evaluate(&c(Some("W/\"a-1\""), None), tag, modified), Precondition::Failed);
        assert_eq!(evaluate(&c(Some("\"a-1\""), None), tag, modified), Precondition::Serve);
        let before = Some("Sun, 06 Nov 1994 08:49:36 GMT");
        assert_eq!(evaluate(&c(None, before), tag, modified), Precondition::Failed);
        let same = Some("Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(evaluate(&c(None, same), tag, modified), Precondition::Serve);
    }

    #[test]
    fn if_range_needs_the_same_strong_tag_or_date() {
        let modified = at(784_111_777, 0);
        assert!(if_range_holds(None, "\"a\"", modified));
        assert!(if_range_holds(Some("\"a\""), "\"a\"", modified));
        assert!(!if_range_holds(Some("\"b\""), "\"a\"", modified));
        assert!(if_range_holds(Some("Sun, 06 Nov 1994 08:49:37 GMT"), "\"a\"", modified));
        assert!(!if_range_holds(Some("Sun, 06 Nov 1994 08:49:38 GMT"), "\"a\"", modified));
    }

    #[test]
    fn single_ranges_follow_rfc_9110() {
        assert_eq!(range(None, 10), Ranged::Whole);
        assert_eq!(range(Some("bytes=1-3"), 7), Ranged::Part { start: 1, len: 3 });
        assert_eq!(range(Some("bytes=2-"), 7), Ranged::Part { start: 2, len: 5 });
        assert_eq!(range(Some("bytes=-2"), 7), Ranged::Part { start: 5, len: 2 });
        assert_eq!(range(Some("bytes=-20"), 7), Ranged::Part { start: 0, len: 7 });
        assert_eq!(range(Some("bytes=5-100"), 7), Ranged::Part { start: 5, len: 2 });
        assert_eq!(range(Some("bytes=0-1,3-4"), 7), Ranged::Whole);
    }

    #[test]
    fn unsatisfiable_and_malformed_ranges_are_416() {
        let outside = Ranged::Unsatisfiable { overlap_failed: true };
        let malformed = Ranged::Unsatisfiable { overlap_failed: false };
        assert_eq!(range(Some("bytes=50-"), 7), outside);
        assert_eq!(range(Some("bytes=7-7"), 7), outside);
        assert_eq!(range(Some("bytes=-0"), 7), outside);
        assert_eq!(range(Some("bytes=0-"), 0), outside);
        assert_eq!(range(Some("bytes=3-1"), 7), malformed);
        assert_eq!(range(Some("bytes=a-"), 7), malformed);
        assert_eq!(range(Some("items=1-2"), 7), malformed);
        assert_eq!(range(Some("bytes="), 7), malformed);
    }
}
