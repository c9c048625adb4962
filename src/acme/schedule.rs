//! When to renew and how long to wait after a failure: pure functions of times and a random
//! number, so they are tested without clocks or a CA.

use std::time::{Duration, SystemTime};

/// Renewal starts when this fraction of a certificate's lifetime has passed (Let's Encrypt's
/// own recommendation, and Caddy's default: 30 of 90 days left).
const RENEW_AT_NUMERATOR: u32 = 2;
const RENEW_AT_DENOMINATOR: u32 = 3;

/// Renewals of many names (and of several instances) are spread over up to this share of the
/// lifetime before the 2/3 point, so they do not hit the CA at the same instant.
const JITTER_DIVISOR: u32 = 30;
/// Jitter never exceeds this, however long the certificate lives.
const MAX_JITTER: Duration = Duration::from_secs(6 * 3600);

/// First retry delay after a failed order; doubles per consecutive failure.
pub const ORDER_RETRY_INITIAL: Duration = Duration::from_secs(60);
/// Retry delay cap after failed orders: failed validations count against CA rate limits
/// (Let's Encrypt: 5 per hostname per hour), so never hammer.
pub const ORDER_RETRY_CAP: Duration = Duration::from_secs(6 * 3600);
/// First retry delay when the CA could not be reached at all; nothing counts against rate
/// limits then, so the first certificate appears soon after the network or the CA comes back.
pub const UNREACHABLE_RETRY_INITIAL: Duration = Duration::from_secs(2);
/// Retry delay cap while the CA is unreachable.
pub const UNREACHABLE_RETRY_CAP: Duration = Duration::from_secs(300);

/// When to start renewing a certificate valid from `not_before` to `not_after`: at 2/3 of its
/// lifetime, minus a jitter derived from `random`.
pub fn renewal_time(not_before: SystemTime, not_after: SystemTime, random: u64) -> SystemTime {
    let lifetime = not_after.duration_since(not_before).unwrap_or(Duration::ZERO);
    let at = not_before + lifetime * RENEW_AT_NUMERATOR / RENEW_AT_DENOMINATOR;
    let max_jitter = (lifetime / JITTER_DIVISOR).min(MAX_JITTER);
    at.checked_sub(fraction_of(max_jitter, random)).unwrap_or(at)
}

/// A point inside an ARI suggested window `[start, end)` chosen by `random` (RFC 9773 §4.2:
/// "select a uniform random time within the suggested window").
pub fn time_in_window(start: SystemTime, end: SystemTime, random: u64) -> SystemTime {
    let width = end.duration_since(start).unwrap_or(Duration::ZERO);
    start + fraction_of(width, random)
}

/// Delay before retry number `failures` (1 = after the first failure): `initial` doubled per
/// further failure, capped, then reduced by up to a quarter (from `random`) so instances that
/// failed together do not retry together.
pub fn retry_delay(failures: u32, initial: Duration, cap: Duration, random: u64) -> Duration {
    let doublings = failures.saturating_sub(1).min(30);
    let base = initial.saturating_mul(1u32 << doublings).min(cap);
    base - fraction_of(base / 4, random)
}

/// `random / 2^64` of `span`.
fn fraction_of(span: Duration, random: u64) -> Duration {
    // Clamped to u64 (584 years) so the product fits in u128.
    let nanos = u64::try_from(span.as_nanos()).unwrap_or(u64::MAX);
    let part = (u128::from(nanos) * u128::from(random)) >> 64;
    Duration::from_nanos(u64::try_from(part).unwrap_or(u64::MAX))
}

/// A random `u64` from the standard library's per-process hash keys: jitter needs spread, not
/// cryptographic strength, and this avoids another dependency.
pub fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_nanos()),
    );
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(86_400);

    #[test]
    fn ninety_day_certificate_renews_around_day_sixty() {
        let start = SystemTime::UNIX_EPOCH + 1000 * DAY;
        let end = start + 90 * DAY;
        assert_eq!(renewal_time(start, end, 0), start + 60 * DAY);
        // Full jitter: 90 days / 30 = 3 days, capped at 6 hours.
        let earliest = renewal_time(start, end, u64::MAX);
        assert!(earliest < start + 60 * DAY);
        assert!(
            earliest >= start + 60 * DAY - MAX_JITTER,
            "{:?}",
            (start + 60 * DAY).duration_since(earliest)
        );
    }

    #[test]
    fn short_lived_certificate_jitter_scales_with_lifetime() {
        let start = SystemTime::UNIX_EPOCH + 1000 * DAY;
        let end = start + Duration::from_secs(3000);
        let at = renewal_time(start, end, u64::MAX);
        assert!(at <= start + Duration::from_secs(2000));
        assert!(at >= start + Duration::from_secs(1900));
    }

    #[test]
    fn inverted_validity_renews_immediately() {
        let start = SystemTime::UNIX_EPOCH + 1000 * DAY;
        assert_eq!(renewal_time(start, start - DAY, 12345), start);
    }

    #[test]
    fn retry_delay_doubles_then_caps_and_never_exceeds_base() {
        let initial = Duration::from_secs(60);
        let cap = Duration::from_secs(3600);
        assert_eq!(retry_delay(1, initial, cap, 0), initial);
        assert_eq!(retry_delay(2, initial, cap, 0), 2 * initial);
        assert_eq!(retry_delay(3, initial, cap, 0), 4 * initial);
        assert_eq!(retry_delay(7, initial, cap, 0), cap);
        assert_eq!(retry_delay(u32::MAX, initial, cap, 0), cap);
        let jittered = retry_delay(2, initial, cap, u64::MAX);
        assert!(jittered < 2 * initial && jittered >= 2 * initial * 3 / 4, "{jittered:?}");
    }

    #[test]
    fn window_time_stays_inside_the_window() {
        let start = SystemTime::UNIX_EPOCH + 1000 * DAY;
        let end = start + DAY;
        for random in [0, 1, u64::MAX / 2, u64::MAX] {
            let t = time_in_window(start, end, random);
            assert!(t >= start && t < end);
        }
        assert_eq!(time_in_window(end, start, 7), end);
    }
}
