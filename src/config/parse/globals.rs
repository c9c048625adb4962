//! The global options block: one row of [`OPTIONS`] and one function per option, each setting
//! its field of [`Globals`] (defaults come from `Globals::default`).
//!
//! Owns the rules that concern the block as a whole (an option set twice is an error) and each
//! option's arguments. `servers { … }` is large enough to have its own file (`servers`); how
//! the ports chosen here place sites is `listeners`' business.

use std::collections::HashMap;
use std::path::PathBuf;

use super::syntax::{Block, Directive};
use super::{servers, Parser, Table};
use crate::config::{address, Admin, AutoHttps, ChallengeKind, ConfigError, Globals};

/// Sets one global option.
type GlobalOption = fn(&Parser<'_>, &Directive, &mut ParsedGlobals) -> Result<(), ConfigError>;

/// Every global option ringproxy supports.
const OPTIONS: &Table<GlobalOption> = &[
    ("acme_ca", acme_ca),
    ("acme_ca_root", acme_ca_root),
    ("acme_challenges", acme_challenges),
    ("admin", admin),
    ("auto_https", auto_https),
    ("email", email),
    ("grace_period", grace_period),
    ("http_port", http_port),
    ("https_port", https_port),
    ("limits", connection_limits),
    ("local_certs", local_certs),
    ("servers", servers::servers),
    ("shutdown_delay", shutdown_delay),
    ("storage", storage),
];

/// Sets one `limits { … }` cap from its count.
type CapOption = fn(&mut crate::config::limits::ConnectionCaps, usize);

/// `limits { … }` options.
const CAPS: &Table<CapOption> = &[
    ("max_connections", |caps, n| caps.max_connections = Some(n)),
    ("max_connections_per_ip", |caps, n| caps.max_connections_per_ip = Some(n)),
];

/// `auto_https` values (`on` is the default and has no keyword in Caddy).
const AUTO_HTTPS: &Table<AutoHttps> =
    &[("off", AutoHttps::Off), ("disable_redirects", AutoHttps::DisableRedirects)];

/// Reads a `storage <module> …` line; returns the storage root.
type StorageModule = fn(&Parser<'_>, &Directive) -> Result<PathBuf, ConfigError>;

/// `storage` modules.
const STORAGE: &Table<StorageModule> = &[("file_system", storage_file_system)];

/// `storage file_system { … }` options.
const FILE_SYSTEM_OPTIONS: &Table<()> = &[("root", ())];

/// The global options with what later stages need to point their errors at.
#[derive(Default)]
pub(super) struct ParsedGlobals {
    pub globals: Globals,
    pub lines: GlobalLines,
}

/// Lines of the global options that later checks point at.
#[derive(Default)]
pub(super) struct GlobalLines {
    pub http_port: Option<usize>,
    pub https_port: Option<usize>,
    pub listener_wrappers: Option<usize>,
    pub proxy_protocol: Option<usize>,
    /// A `proxy_protocol` with no `tls` after it: in Caddy, TLS listeners then expect the
    /// header inside TLS, which ringproxy does not do.
    pub proxy_protocol_inside_tls: Option<usize>,
    pub trusted_proxies: Option<usize>,
}

impl Parser<'_> {
    pub(super) fn globals(&self, block: Option<&Block>) -> Result<ParsedGlobals, ConfigError> {
        let mut parsed = ParsedGlobals::default();
        let Some(block) = block else {
            return Ok(parsed);
        };
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for d in &block.items {
            let name = d.name.text.as_str();
            if let Some(first) = seen.insert(name, d.line()) {
                return Err(self.err(
                    d.line(),
                    format!("global option '{name}' is set more than once (first at line {first})"),
                ));
            }
            let option = self.pick(OPTIONS, "global option", &d.name)?;
            option(self, d, &mut parsed)?;
        }
        Ok(parsed)
    }

    fn port(&self, d: &Directive) -> Result<u16, ConfigError> {
        let arg = self.one_arg(d)?;
        address::parse_port(&arg.text).map_err(|m| self.err(arg.line, m))
    }
}

fn http_port(p: &Parser<'_>, d: &Directive, g: &mut ParsedGlobals) -> Result<(), ConfigError> {
    g.globals.http_port = p.port(d)?;
    g.lines.http_port = Some(d.line());
    Ok(())
}

fn https_port(p: &Parser<'_>, d: &Directive, g: &mut ParsedGlobals) -> Result<(), ConfigError> {
    g.globals.https_port = p.port(d)?;
    g.lines.https_port = Some(d.line());
    Ok(())
}

fn admin(p: &Parser<'_>, d: &Directive, g: &mut ParsedGlobals) -> Result<(), ConfigError> {
    let arg = &p.args_with_block(d, 1)?[0];
    if d.block.is_some() {
        return Err(p.err(
            d.line(),
            "admin options are not supported by ringproxy (supported: admin off, admin \
             <address>)",
        ));
    }
    g.globals.admin = match arg.text.as_str() {
        "off" => Admin::Off,
        addr => {
            crate::admin::AdminAddress::parse(addr).map_err(|m| p.err(arg.line, m))?;
            Admin::Address(addr.to_string())
        }
    };
    Ok(())
}

fn email(p: &Parser<'_>, d: &Directive, g: &mut ParsedGlobals) -> Result<(), ConfigError> {
    g.globals.email = Some(p.one_arg(d)?.text.clone());
    Ok(())
}

fn acme_ca(p: &Parser<'_>, d: &Directive, g: &mut ParsedGlobals) -> Result<(), ConfigError> {
    g.globals.acme_ca = Some(p.one_arg(d)?.text.clone());
    Ok(())
}

fn acme_ca_root(p: &Parser<'_>, d: &Directive, g: &mut ParsedGlobals) -> Result<(), ConfigError> {
    g.globals.acme_ca_root = Some(p.path(p.one_arg(d)?));
    Ok(())
}

/// `acme_challenges <type>...` (a ringproxy extension): the challenge types to try, in order.
fn acme_challenges(
    p: &Parser<'_>,
    d: &Directive,
    g: &mut ParsedGlobals,
) -> Result<(), ConfigError> {
    p.no_block(d)?;
    for arg in p.some_args(d)? {
        // Not a `Table`: the names are ACME's, matched in any case (`ChallengeKind::parse`).
        let kind = ChallengeKind::parse(&arg.text).ok_or_else(|| {
            p.err(
                arg.line,
                format!(
                    "acme_challenges '{}' is not supported by ringproxy (supported: {})",
                    arg.text,
                    ChallengeKind::ALL.map(ChallengeKind::name).join(", ")
                ),
            )
        })?;
        if g.globals.acme_challenges.contains(&kind) {
            return Err(p.err(arg.line, format!("acme_challenges names '{kind}' twice")));
        }
        g.globals.acme_challenges.push(kind);
    }
    Ok(())
}

fn local_certs(p: &Parser<'_>, d: &Directive, g: &mut ParsedGlobals) -> Result<(), ConfigError> {
    p.args(d, 0)?;
    g.globals.local_certs = true;
    Ok(())
}

fn auto_https(p: &Parser<'_>, d: &Directive, g: &mut ParsedGlobals) -> Result<(), ConfigError> {
    g.globals.auto_https = *p.pick(AUTO_HTTPS, "auto_https", p.one_arg(d)?)?;
    Ok(())
}

fn grace_period(p: &Parser<'_>, d: &Directive, g: &mut ParsedGlobals) -> Result<(), ConfigError> {
    g.globals.grace_period = p.duration(p.one_arg(d)?)?;
    Ok(())
}

/// `limits { max_connections N  max_connections_per_ip N }`: a ringproxy extension.
fn connection_limits(
    p: &Parser<'_>,
    d: &Directive,
    g: &mut ParsedGlobals,
) -> Result<(), ConfigError> {
    p.args_with_block(d, 0)?;
    let Some(block) = &d.block else { return Err(p.arg_err(&d.name)) };
    for sub in &block.items {
        let set = p.pick_sub(CAPS, "limits", sub)?;
        let value = p.one_arg(sub)?;
        let n = value.text.parse::<usize>().ok().filter(|n| *n > 0).ok_or_else(|| {
            p.err(
                value.line,
                format!("invalid {} '{}': must be a positive integer", sub.name.text, value.text),
            )
        })?;
        set(&mut g.globals.caps, n);
    }
    Ok(())
}

fn shutdown_delay(p: &Parser<'_>, d: &Directive, g: &mut ParsedGlobals) -> Result<(), ConfigError> {
    g.globals.shutdown_delay = p.duration(p.one_arg(d)?)?;
    Ok(())
}

/// `storage <module> …`: only `file_system` exists in ringproxy.
fn storage(p: &Parser<'_>, d: &Directive, g: &mut ParsedGlobals) -> Result<(), ConfigError> {
    let module = &p.some_args(d)?[0];
    let storage = p.pick(STORAGE, "storage", module)?;
    g.globals.storage = Some(storage(p, d)?);
    Ok(())
}

/// `storage file_system <root>` or `storage file_system { root <root> }` (`d.args[0]` is
/// `file_system`).
fn storage_file_system(p: &Parser<'_>, d: &Directive) -> Result<PathBuf, ConfigError> {
    let module = &d.args[0];
    match (&d.args[1..], &d.block) {
        ([root], None) => Ok(p.path(root)),
        ([], Some(block)) => {
            let mut root = None;
            for sub in &block.items {
                p.pick_sub(FILE_SYSTEM_OPTIONS, "storage file_system", sub)?;
                root = Some(p.path(p.one_arg(sub)?));
            }
            root.ok_or_else(|| p.err(block.line, "storage file_system needs a root path"))
        }
        ([], None) => Err(p.arg_err(module)),
        _ => Err(p.arg_err(&d.args[1])),
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::time::Duration;

    use super::super::test_support::{parse, parse_err};
    use super::*;

    fn globals(text: &str) -> Globals {
        parse(text).globals
    }

    #[test]
    fn options_are_listed_alphabetically() {
        let names: Vec<&str> = OPTIONS.iter().map(|(name, _)| *name).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        assert_eq!(names, sorted);
    }

    #[test]
    fn an_unknown_option_lists_every_supported_one() {
        assert_eq!(
            parse_err("{\n\tdebug\n}\n"),
            "Caddyfile:2 - global option 'debug' is not supported by ringproxy (supported: \
             acme_ca, acme_ca_root, acme_challenges, admin, auto_https, email, grace_period, \
             http_port, https_port, limits, local_certs, servers, shutdown_delay, storage)"
        );
    }

    #[test]
    fn an_option_set_twice_points_at_both_lines() {
        assert_eq!(
            parse_err("{\n\temail a@b.c\n\n\temail d@e.f\n}\n"),
            "Caddyfile:4 - global option 'email' is set more than once (first at line 2)"
        );
    }

    #[test]
    fn without_a_block_every_option_has_its_default() {
        assert_eq!(globals("localhost:8443 {\n}\n"), Globals::default());
    }

    #[test]
    fn ports_and_the_lines_that_set_them() {
        let g = globals("{\n\thttp_port 8080\n\thttps_port 8443\n}\n");
        assert_eq!((g.http_port, g.https_port), (8080, 8443));
        assert_eq!(parse_err("{\n\thttp_port eighty\n}\n"), "Caddyfile:2 - invalid port 'eighty'");
        assert_eq!(
            parse_err("{\n\thttps_port 1 2\n}\n"),
            "Caddyfile:2 - wrong argument count or unexpected line ending after '1'"
        );
    }

    #[test]
    fn admin_takes_off_or_an_address_but_no_block() {
        assert_eq!(globals("{\n\tadmin off\n}\n").admin, Admin::Off);
        assert_eq!(
            globals("{\n\tadmin 127.0.0.1:2020\n}\n").admin,
            Admin::Address("127.0.0.1:2020".into())
        );
        assert_eq!(
            parse_err("{\n\tadmin :2019 {\n\t\torigins x\n\t}\n}\n"),
            "Caddyfile:2 - admin options are not supported by ringproxy (supported: admin off, \
             admin <address>)"
        );
        assert_eq!(
            parse_err("{\n\tadmin localhost\n}\n"),
            "Caddyfile:2 - admin address 'localhost' has no port (e.g. localhost:2019)"
        );
        assert_eq!(globals("{\n\tshutdown_delay 3s\n}\n").shutdown_delay, Duration::from_secs(3));
    }

    #[test]
    fn limits_caps_connections_in_total_and_per_ip() {
        let g = globals(
            "{\n\tlimits {\n\t\tmax_connections 1000\n\t\tmax_connections_per_ip 50\n\t}\n}\n",
        );
        assert_eq!(g.caps.max_connections, Some(1000));
        assert_eq!(g.caps.max_connections_per_ip, Some(50));
        assert_eq!(
            globals("{\n\tlimits {\n\t\tmax_connections 7\n\t}\n}\n").caps.max_connections_per_ip,
            None
        );
        assert_eq!(
            parse_err("{\n\tlimits {\n\t\tmax_connections 0\n\t}\n}\n"),
            "Caddyfile:3 - invalid max_connections '0': must be a positive integer"
        );
        assert_eq!(
            parse_err("{\n\tlimits {\n\t\tmax_streams 3\n\t}\n}\n"),
            "Caddyfile:3 - subdirective 'max_streams' of limits is not supported by ringproxy \
             (supported: max_connections, max_connections_per_ip)"
        );
        assert_eq!(
            parse_err("{\n\tadmin\n}\n"),
            "Caddyfile:2 - wrong argument count or unexpected line ending after 'admin'"
        );
    }

    #[test]
    fn acme_account_and_directory() {
        let g = globals(
            "{\n\temail ops@example.com\n\tacme_ca https://ca.test/dir\n\tacme_ca_root ca.pem\n}\n",
        );
        assert_eq!(g.email.as_deref(), Some("ops@example.com"));
        assert_eq!(g.acme_ca.as_deref(), Some("https://ca.test/dir"));
        assert_eq!(g.acme_ca_root, Some(PathBuf::from("/etc/caddy/ca.pem")));
    }

    #[test]
    fn acme_challenges_keeps_the_given_order_in_any_case() {
        let g = globals("{\n\tacme_challenges TLS-ALPN-01 http-01\n}\n");
        assert_eq!(g.acme_challenges, vec![ChallengeKind::TlsAlpn01, ChallengeKind::Http01]);
    }

    #[test]
    fn acme_challenges_rejects_unknown_repeated_and_missing_types() {
        assert_eq!(
            parse_err("{\n\tacme_challenges dns-01\n}\n"),
            "Caddyfile:2 - acme_challenges 'dns-01' is not supported by ringproxy (supported: \
             http-01, tls-alpn-01)"
        );
        assert_eq!(
            parse_err("{\n\tacme_challenges http-01 HTTP-01\n}\n"),
            "Caddyfile:2 - acme_challenges names 'http-01' twice"
        );
        assert_eq!(
            parse_err("{\n\tacme_challenges\n}\n"),
            "Caddyfile:2 - wrong argument count or unexpected line ending after 'acme_challenges'"
        );
        assert_eq!(
            parse_err("{\n\tacme_challenges http-01 {\n\t}\n}\n"),
            "Caddyfile:2 - 'acme_challenges' does not take a block"
        );
    }

    #[test]
    fn local_certs_is_a_flag() {
        assert!(globals("{\n\tlocal_certs\n}\n").local_certs);
        assert!(!Globals::default().local_certs);
    }

    #[test]
    fn auto_https_values_in_caddys_order() {
        assert_eq!(globals("{\n\tauto_https off\n}\n").auto_https, AutoHttps::Off);
        assert_eq!(
            globals("{\n\tauto_https disable_redirects\n}\n").auto_https,
            AutoHttps::DisableRedirects
        );
        assert_eq!(
            parse_err("{\n\tauto_https disable_certs\n}\n"),
            "Caddyfile:2 - auto_https 'disable_certs' is not supported by ringproxy (supported: \
             off, disable_redirects)"
        );
    }

    #[test]
    fn grace_period_is_a_duration() {
        assert_eq!(globals("{\n\tgrace_period 1m30s\n}\n").grace_period, Duration::from_secs(90));
        assert_eq!(
            parse_err("{\n\tgrace_period 10\n}\n"),
            "Caddyfile:2 - invalid duration '10': missing unit (e.g. 10s)"
        );
    }

    #[test]
    fn storage_file_system_in_both_forms() {
        let inline = globals("{\n\tstorage file_system data\n}\n");
        assert_eq!(inline.storage, Some(PathBuf::from("/etc/caddy/data")));
        let block = globals("{\n\tstorage file_system {\n\t\troot /srv/rp\n\t}\n}\n");
        assert_eq!(block.storage, Some(PathBuf::from("/srv/rp")));
    }

    #[test]
    fn storage_errors() {
        assert_eq!(
            parse_err("{\n\tstorage redis\n}\n"),
            "Caddyfile:2 - storage 'redis' is not supported by ringproxy (supported: file_system)"
        );
        assert_eq!(
            parse_err("{\n\tstorage file_system {\n\t\tpath /x\n\t}\n}\n"),
            "Caddyfile:3 - subdirective 'path' of storage file_system is not supported by \
             ringproxy (supported: root)"
        );
        assert_eq!(
            parse_err("{\n\tstorage file_system {\n\t}\n}\n"),
            "Caddyfile:2 - storage file_system needs a root path"
        );
        assert_eq!(
            parse_err("{\n\tstorage file_system\n}\n"),
            "Caddyfile:2 - wrong argument count or unexpected line ending after 'file_system'"
        );
        assert_eq!(
            parse_err("{\n\tstorage file_system /a /b\n}\n"),
            "Caddyfile:2 - wrong argument count or unexpected line ending after '/a'"
        );
        assert_eq!(
            parse_err("{\n\tstorage\n}\n"),
            "Caddyfile:2 - wrong argument count or unexpected line ending after 'storage'"
        );
    }
}
