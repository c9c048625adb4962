//! The `servers { … }` global option: timeouts and request-head limits that apply to every
//! listener (`limits::Limits`). One row of [`SERVER_OPTIONS`] or [`TIMEOUTS`] and one
//! function per option.
//!
//! Owns the checks that a value stays within its bounds (`max_header_size`); the bounds and
//! defaults themselves live in `limits`. Per-listener `servers <address> { … }` is not
//! supported yet and is an error here.

use super::syntax::Directive;
use super::{Parser, Table};
use crate::config::lexer::Token;
use crate::config::limits::{self, Limits};
use crate::config::units::{parse_size, size_text};
use crate::config::ConfigError;

/// Sets one `servers` option.
type ServerOption = fn(&Parser<'_>, &Directive, &mut Limits) -> Result<(), ConfigError>;

/// Every `servers { … }` option.
const SERVER_OPTIONS: &Table<ServerOption> =
    &[("max_header_size", max_header_size), ("timeouts", timeouts)];

/// Sets one timeout from its single argument.
type Timeout = fn(&Parser<'_>, &Token, &mut Limits) -> Result<(), ConfigError>;

/// Every `servers { timeouts { … } }` option; each takes exactly one value.
const TIMEOUTS: &Table<Timeout> = &[
    ("idle", idle),
    ("read_body", read_body),
    ("read_header", read_header),
    ("relay_idle", relay_idle),
    ("tls_handshake", tls_handshake),
    ("write", write),
];

/// `servers { … }`, without a listener address.
pub(super) fn servers(
    p: &Parser<'_>,
    d: &Directive,
    g: &mut super::globals::ParsedGlobals,
) -> Result<(), ConfigError> {
    if let Some(arg) = d.args.first() {
        return Err(p.err(
            arg.line,
            "servers options for a specific listener address are not supported by ringproxy; \
             use 'servers { ... }' without an address (it applies to every listener)",
        ));
    }
    let Some(block) = &d.block else { return Ok(()) };
    for sub in &block.items {
        let option = p.pick_sub(SERVER_OPTIONS, "servers", sub)?;
        option(p, sub, &mut g.globals.limits)?;
    }
    Ok(())
}

/// `max_header_size <size>`, within `SMALLEST_MAX_HEADER_BYTES..=LARGEST_MAX_HEADER_BYTES`.
fn max_header_size(p: &Parser<'_>, d: &Directive, limits: &mut Limits) -> Result<(), ConfigError> {
    let value = p.one_arg(d)?;
    let size = parse_size(&value.text).map_err(|m| p.err(value.line, m))?;
    if size < limits::SMALLEST_MAX_HEADER_BYTES {
        return Err(p.err(
            value.line,
            format!(
                "max_header_size {size} is too small (at least {})",
                size_text(limits::SMALLEST_MAX_HEADER_BYTES)
            ),
        ));
    }
    if size > limits::LARGEST_MAX_HEADER_BYTES {
        return Err(p.err(
            value.line,
            format!(
                "max_header_size {size} is too large (at most {})",
                size_text(limits::LARGEST_MAX_HEADER_BYTES)
            ),
        ));
    }
    limits.max_header_bytes = size;
    Ok(())
}

/// `timeouts { <name> <duration> … }`.
fn timeouts(p: &Parser<'_>, d: &Directive, limits: &mut Limits) -> Result<(), ConfigError> {
    p.args_with_block(d, 0)?;
    let Some(block) = &d.block else {
        return Err(p.arg_err(&d.name));
    };
    for t in &block.items {
        // The value is checked first, as Caddy's dispenser reads it before the name matters.
        let value = p.one_arg(t)?;
        let timeout = p.pick_sub(TIMEOUTS, "servers timeouts", t)?;
        timeout(p, value, limits)?;
    }
    Ok(())
}

fn idle(p: &Parser<'_>, value: &Token, limits: &mut Limits) -> Result<(), ConfigError> {
    limits.idle_timeout = p.duration(value)?;
    Ok(())
}

fn read_header(p: &Parser<'_>, value: &Token, limits: &mut Limits) -> Result<(), ConfigError> {
    limits.read_header_timeout = p.duration(value)?;
    Ok(())
}

/// `read_body <duration>`: a stall timeout (see `limits::DEFAULT_READ_BODY_TIMEOUT`); `0`
/// turns it off, as a zero timeout does in Caddy.
fn read_body(p: &Parser<'_>, value: &Token, limits: &mut Limits) -> Result<(), ConfigError> {
    limits.read_body_timeout = Some(p.duration(value)?).filter(|d| !d.is_zero());
    Ok(())
}

/// `write <duration>`: a stall timeout (see `limits::DEFAULT_WRITE_TIMEOUT`); `0` turns it off.
fn write(p: &Parser<'_>, value: &Token, limits: &mut Limits) -> Result<(), ConfigError> {
    limits.write_timeout = Some(p.duration(value)?).filter(|d| !d.is_zero());
    Ok(())
}

/// `relay_idle <duration>|off|0` (a ringproxy extension).
fn relay_idle(p: &Parser<'_>, value: &Token, limits: &mut Limits) -> Result<(), ConfigError> {
    limits.relay_idle_timeout = match value.text.as_str() {
        "off" | "0" => None,
        _ => Some(p.duration(value)?),
    };
    Ok(())
}

/// `tls_handshake <duration>` (a ringproxy extension).
fn tls_handshake(p: &Parser<'_>, value: &Token, limits: &mut Limits) -> Result<(), ConfigError> {
    limits.tls_handshake_timeout = p.duration(value)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::test_support::{parse, parse_err};
    use super::*;

    fn limits_of(servers_block: &str) -> Limits {
        parse(&format!("{{\n\tservers {{\n{servers_block}\t}}\n}}\n")).globals.limits
    }

    #[test]
    fn tables_are_listed_alphabetically() {
        for names in [
            SERVER_OPTIONS.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
            TIMEOUTS.iter().map(|(n, _)| *n).collect(),
        ] {
            let mut sorted = names.clone();
            sorted.sort_unstable();
            assert_eq!(names, sorted);
        }
    }

    #[test]
    fn every_timeout_sets_its_limit() {
        let l = limits_of(
            "\t\ttimeouts {\n\t\t\tread_header 5s\n\t\t\tidle 2m\n\t\t\ttls_handshake 3s\n\t\t\t\
             relay_idle 1h\n\t\t\tread_body 20s\n\t\t\twrite 45s\n\t\t}\n",
        );
        assert_eq!(l.read_header_timeout, Duration::from_secs(5));
        assert_eq!(l.read_body_timeout, Some(Duration::from_secs(20)));
        assert_eq!(l.write_timeout, Some(Duration::from_secs(45)));
        assert_eq!(l.idle_timeout, Duration::from_secs(120));
        assert_eq!(l.tls_handshake_timeout, Duration::from_secs(3));
        assert_eq!(l.relay_idle_timeout, Some(Duration::from_secs(3600)));
        assert_eq!(l.max_header_bytes, limits::DEFAULT_MAX_HEADER_BYTES);
    }

    #[test]
    fn relay_idle_off_and_zero_mean_never() {
        for value in ["off", "0"] {
            let l = limits_of(&format!("\t\ttimeouts {{\n\t\t\trelay_idle {value}\n\t\t}}\n"));
            assert_eq!(l.relay_idle_timeout, None, "{value}");
        }
    }

    #[test]
    fn a_zero_body_or_write_timeout_turns_it_off() {
        let l = limits_of("\t\ttimeouts {\n\t\t\tread_body 0\n\t\t\twrite 0s\n\t\t}\n");
        assert_eq!((l.read_body_timeout, l.write_timeout), (None, None));
        let defaults = Limits::default();
        assert_eq!(defaults.read_body_timeout, Some(limits::DEFAULT_READ_BODY_TIMEOUT));
        assert_eq!(defaults.write_timeout, Some(limits::DEFAULT_WRITE_TIMEOUT));
    }

    #[test]
    fn an_empty_servers_block_changes_nothing() {
        assert_eq!(limits_of(""), Limits::default());
        assert_eq!(parse("{\n\tservers\n}\n").globals.limits, Limits::default());
    }

    #[test]
    fn unknown_options_list_the_supported_ones() {
        assert_eq!(
            parse_err("{\n\tservers {\n\t\tprotocols h1\n\t}\n}\n"),
            "Caddyfile:3 - subdirective 'protocols' of servers is not supported by ringproxy \
             (supported: max_header_size, timeouts)"
        );
        assert_eq!(
            parse_err(
                "{\n\tservers {\n\t\ttimeouts {\n\t\t\tkeepalive_interval 30s\n\t\t}\n\t}\n}\n"
            ),
            "Caddyfile:4 - subdirective 'keepalive_interval' of servers timeouts is not \
             supported by ringproxy (supported: idle, read_body, read_header, relay_idle, \
             tls_handshake, write)"
        );
    }

    #[test]
    fn a_timeout_without_its_value_is_an_argument_error_even_if_unknown() {
        assert_eq!(
            parse_err("{\n\tservers {\n\t\ttimeouts {\n\t\t\twrite\n\t\t}\n\t}\n}\n"),
            "Caddyfile:4 - wrong argument count or unexpected line ending after 'write'"
        );
        assert_eq!(
            parse_err("{\n\tservers {\n\t\ttimeouts {\n\t\t\tidle 1s 2s\n\t\t}\n\t}\n}\n"),
            "Caddyfile:4 - wrong argument count or unexpected line ending after '1s'"
        );
    }

    #[test]
    fn timeouts_needs_a_block_and_no_arguments() {
        assert_eq!(
            parse_err("{\n\tservers {\n\t\ttimeouts\n\t}\n}\n"),
            "Caddyfile:3 - wrong argument count or unexpected line ending after 'timeouts'"
        );
        assert_eq!(
            parse_err("{\n\tservers {\n\t\ttimeouts 5s\n\t}\n}\n"),
            "Caddyfile:3 - wrong argument count or unexpected line ending after 'timeouts'"
        );
    }

    #[test]
    fn servers_for_one_listener_address_is_an_error() {
        assert_eq!(
            parse_err("{\n\tservers :443 {\n\t}\n}\n"),
            "Caddyfile:2 - servers options for a specific listener address are not supported \
             by ringproxy; use 'servers { ... }' without an address (it applies to every \
             listener)"
        );
    }

    #[test]
    fn max_header_size_accepts_sizes_between_the_bounds() {
        let sizes =
            [("32KiB", 32 * 1024), ("1KiB", 1024), ("1MiB", 1024 * 1024), ("100kb", 100_000)];
        for (text, bytes) in sizes {
            let l = limits_of(&format!("\t\tmax_header_size {text}\n"));
            assert_eq!(l.max_header_bytes, bytes, "{text}");
        }
    }

    #[test]
    fn max_header_size_below_one_kib_is_too_small() {
        assert_eq!(
            parse_err("{\n\tservers {\n\t\tmax_header_size 1023\n\t}\n}\n"),
            "Caddyfile:3 - max_header_size 1023 is too small (at least 1KiB)"
        );
    }

    #[test]
    fn max_header_size_above_one_mib_is_too_large() {
        assert_eq!(
            parse_err("{\n\tservers {\n\t\tmax_header_size 2MiB\n\t}\n}\n"),
            "Caddyfile:3 - max_header_size 2097152 is too large (at most 1MiB)"
        );
        assert_eq!(
            parse_err("{\n\tservers {\n\t\tmax_header_size 1048577\n\t}\n}\n"),
            "Caddyfile:3 - max_header_size 1048577 is too large (at most 1MiB)"
        );
    }

    #[test]
    fn max_header_size_must_be_a_size() {
        assert_eq!(
            parse_err("{\n\tservers {\n\t\tmax_header_size big\n\t}\n}\n"),
            "Caddyfile:3 - invalid size 'big'"
        );
    }
}
