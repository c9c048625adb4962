//! Durations and byte sizes as Caddyfiles write them.
//!
//! Durations follow Caddy's `caddy.ParseDuration`: Go's `time.ParseDuration` (`500ms`, `1m30s`,
//! `1.5h`, units ns/us/µs/ms/s/m/h; a bare number is an error except `0`) plus Caddy's `d` for
//! days. Sizes follow the `humanize.ParseBytes` Caddy uses for `max_header_size`: `64KB` is
//! 64 000 bytes, `64KiB` 65 536, a bare number is bytes, case does not matter.

use std::time::Duration;

/// Parses a Caddy duration. The error is a message for a [`ConfigError`](super::ConfigError).
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let invalid = || format!("invalid duration '{text}'");
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    if text.starts_with('-') {
        return Err(format!("invalid duration '{text}': must not be negative"));
    }
    let s = text.strip_prefix('+').unwrap_or(text);
    if s.is_empty() {
        return Err(invalid());
    }
    let mut total_nanos: u128 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let number_len =
            rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let number = &rest[..number_len];
        if number.is_empty() || number == "." || number.matches('.').count() > 1 {
            return Err(invalid());
        }
        rest = &rest[number_len..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let unit_nanos: u128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "d" => 86_400_000_000_000,
            "" => return Err(format!("invalid duration '{text}': missing unit (e.g. 10s)")),
            _ => return Err(format!("invalid duration '{text}': unknown unit '{unit}'")),
        };
        let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
        let whole: u128 =
            if whole.is_empty() { 0 } else { whole.parse().map_err(|_| invalid())? };
        let mut nanos = whole.checked_mul(unit_nanos).ok_or_else(invalid)?;
        // Fractions are exact to the nanosecond: digits beyond the unit's precision are dropped.
        let mut scale = unit_nanos;
        for digit in frac.bytes().take(30) {
            scale /= 10;
            nanos += u128::from(digit - b'0') * scale;
        }
        total_nanos = total_nanos.checked_add(nanos).ok_or_else(invalid)?;
    }
    let secs = u64::try_from(total_nanos / 1_000_000_000).map_err(|_| invalid())?;
    // The remainder is below 1e9, so it fits a u32.
    let subsec = (total_nanos % 1_000_000_000) as u32;
    Ok(Duration::new(secs, subsec))
}

/// Parses a byte size such as `64KB`, `1MiB`, `4096`.
pub(crate) fn parse_size(text: &str) -> Result<usize, String> {
    let invalid = || format!("invalid size '{text}'");
    let s = text.trim();
    let number_len = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    let (number, unit) = s.split_at(number_len);
    if number.is_empty() {
        return Err(invalid());
    }
    let multiplier: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "ki" | "kib" => 1024.0,
        "m" | "mb" => 1e6,
        "mi" | "mib" => 1024.0 * 1024.0,
        "g" | "gb" => 1e9,
        "gi" | "gib" => 1024.0 * 1024.0 * 1024.0,
        _ => return Err(format!("invalid size '{text}': unknown unit '{}'", unit.trim())),
    };
    let value: f64 = number.parse().map_err(|_| invalid())?;
    let bytes = value * multiplier;
    if !bytes.is_finite() || bytes >= usize::MAX as f64 {
        return Err(invalid());
    }
    Ok(bytes as usize)
}

/// `bytes` the way messages print a bound: `1MiB`, `64KiB`, or plain bytes when it is not a
/// whole number of KiB.
pub(crate) fn size_text(bytes: usize) -> String {
    const KIB: usize = 1024;
    const MIB: usize = 1024 * KIB;
    if bytes >= MIB && bytes % MIB == 0 {
        format!("{}MiB", bytes / MIB)
    } else if bytes >= KIB && bytes % KIB == 0 {
        format!("{}KiB", bytes / KIB)
    } else {
        bytes.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_caddy_syntax() {
        let ok = [
            ("10s", Duration::from_secs(10)),
            ("1m30s", Duration::from_secs(90)),
            ("500ms", Duration::from_millis(500)),
            ("1.5h", Duration::from_secs(5400)),
            ("2d", Duration::from_secs(2 * 86_400)),
            ("0", Duration::ZERO),
            ("250us", Duration::from_micros(250)),
            ("1h2m3s4ms", Duration::from_millis(3_723_004)),
            (".5s", Duration::from_millis(500)),
        ];
        for (text, want) in ok {
            assert_eq!(parse_duration(text), Ok(want), "{text}");
        }
        for bad in ["10", "", "s", "1x", "-1s", "1..2s", "99999999999999999999999h", "."] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse_duration("10").unwrap_err(),
            "invalid duration '10': missing unit (e.g. 10s)"
        );
    }

    #[test]
    fn sizes_like_humanize() {
        let ok = [
            ("64KB", 64_000),
            ("64KiB", 65_536),
            ("1MiB", 1_048_576),
            ("1mb", 1_000_000),
            ("4096", 4096),
            ("1.5KiB", 1536),
            ("10 kb", 10_000),
        ];
        for (text, want) in ok {
            assert_eq!(parse_size(text), Ok(want), "{text}");
        }
        for bad in ["", "KB", "1XB", "1e999"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bounds_print_in_the_largest_whole_binary_unit() {
        assert_eq!(size_text(1024), "1KiB");
        assert_eq!(size_text(64 * 1024), "64KiB");
        assert_eq!(size_text(1024 * 1024), "1MiB");
        assert_eq!(size_text(1536 * 1024), "1536KiB");
        assert_eq!(size_text(1000), "1000");
        assert_eq!(size_text(0), "0");
        for bound in [
            crate::config::limits::SMALLEST_MAX_HEADER_BYTES,
            crate::config::limits::LARGEST_MAX_HEADER_BYTES,
        ] {
            assert_eq!(parse_size(&size_text(bound)), Ok(bound));
        }
    }
}
