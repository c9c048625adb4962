//! The simple handler directives (`respond`, `redir`) and the site settings (`tls`, `log`):
//! their arguments, subdirectives and values. `site`'s directive table calls them.
//!
//! `reverse_proxy` is big enough to have its own file. Where a directive sorts among the
//! others, and where `tls`/`log` are allowed, is `site`'s business; what a `tls` policy means
//! for the site's listener is `listeners`'.

use super::site::SiteExtras;
use super::syntax::Directive;
use super::{Parser, Table};
use crate::config::lexer::Token;
use crate::config::placeholder::{self, Context};
use crate::config::{
    AccessLog, ClientAuth, ClientAuthMode, ConfigError, Handler, LogFormat, LogOutput, LogRoll,
    TlsOptions, TlsPolicy, TlsVersion,
};

/// Reads one `respond { … }` option; the body may come from the arguments already.
type RespondOption =
    for<'d> fn(&Parser<'_>, &'d Directive, &mut Option<&'d Token>) -> Result<(), ConfigError>;

/// Every `respond { … }` option.
const RESPOND_OPTIONS: &Table<RespondOption> = &[("body", respond_body)];

/// `redir` status keywords (`html` is recognised only to say it is not supported).
const REDIR_CODES: &Table<u16> = &[("temporary", 302), ("permanent", 301)];

/// Reads one `log { … }` option.
type LogOption = fn(&Parser<'_>, &Directive, &mut AccessLog) -> Result<(), ConfigError>;

/// Every `log { … }` option.
const LOG_OPTIONS: &Table<LogOption> = &[("format", log_format), ("output", log_output)];

/// Reads a whole `output <kind> …` line.
type LogOutputKind = fn(&Parser<'_>, &Directive) -> Result<LogOutput, ConfigError>;

/// `log { output <kind> … }`.
const LOG_OUTPUTS: &Table<LogOutputKind> = &[
    ("discard", |p, d| p.args(d, 1).map(|_| LogOutput::Discard)),
    ("file", log_file),
    ("stderr", |p, d| p.args(d, 1).map(|_| LogOutput::Stderr)),
    ("stdout", |p, d| p.args(d, 1).map(|_| LogOutput::Stdout)),
];

/// `log { format <kind> }`.
const LOG_FORMATS: &Table<LogFormat> =
    &[("console", LogFormat::Console), ("json", LogFormat::Json)];

/// `respond [<body>] [<status>] [{ body <text> }]`: one of body and status is needed; a lone
/// three-digit argument is the status.
pub(super) fn respond(
    p: &mut Parser<'_>,
    d: &Directive,
    args: &[Token],
) -> Result<Handler, ConfigError> {
    let (mut body, status) = match args {
        [] => (None, None),
        [one] if is_status_like(&one.text) => (None, Some(one)),
        [body] => (Some(body), None),
        [body, status] => (Some(body), Some(status)),
        [_, status, ..] => return Err(p.arg_err(status)),
    };
    if let Some(block) = &d.block {
        for sub in &block.items {
            let option = p.pick_sub(RESPOND_OPTIONS, "respond", sub)?;
            option(p, sub, &mut body)?;
        }
    }
    if body.is_none() && status.is_none() {
        return Err(p.arg_err(args.last().unwrap_or(&d.name)));
    }
    let status = match status {
        None => 200,
        Some(t) => parse_status(&t.text, 100..=599)
            .ok_or_else(|| p.err(t.line, format!("invalid status code '{}'", t.text)))?,
    };
    let body = match body {
        None => Default::default(),
        Some(t) => {
            placeholder::compile(&t.text, Context::Response).map_err(|m| p.err(t.line, m))?
        }
    };
    Ok(Handler::Respond { status, body })
}

/// `respond { body <text> }`, unless the arguments gave a body already.
fn respond_body<'d>(
    p: &Parser<'_>,
    sub: &'d Directive,
    body: &mut Option<&'d Token>,
) -> Result<(), ConfigError> {
    if body.is_some() {
        return Err(p.err(sub.line(), "body already specified"));
    }
    *body = Some(p.one_arg(sub)?);
    Ok(())
}

/// `redir <to> [temporary|permanent|<3xx>|401]`.
pub(super) fn redir(
    p: &mut Parser<'_>,
    d: &Directive,
    args: &[Token],
) -> Result<Handler, ConfigError> {
    p.no_block(d)?;
    let (to, code) = match args {
        [to] => (to, None),
        [to, code] => (to, Some(code)),
        [] => return Err(p.arg_err(&d.name)),
        [_, code, ..] => return Err(p.arg_err(code)),
    };
    let status = match code {
        None => 302,
        Some(code) => redir_status(p, d, code)?,
    };
    let to_template =
        placeholder::compile(&to.text, Context::Response).map_err(|m| p.err(to.line, m))?;
    Ok(Handler::Redirect { to: to_template, status })
}

fn redir_status(p: &Parser<'_>, d: &Directive, code: &Token) -> Result<u16, ConfigError> {
    let text = code.text.as_str();
    if text == "html" {
        return Err(p.err(
            d.line(),
            format!(
                "redir 'html' is not supported by ringproxy (supported: {}, or a 3xx status code)",
                super::supported(REDIR_CODES)
            ),
        ));
    }
    if let Some(status) = super::lookup(REDIR_CODES, text) {
        return Ok(*status);
    }
    parse_status(text, 300..=399).or_else(|| parse_status(text, 401..=401)).ok_or_else(|| {
        p.err(code.line, format!("Redir code not in the 3xx range or 401: '{text}'"))
    })
}

/// `tls internal`, `tls <email>` or `tls <cert_file> <key_file>`.
pub(super) fn tls(
    p: &Parser<'_>,
    d: &Directive,
    extras: &mut SiteExtras,
) -> Result<(), ConfigError> {
    let policy = match &d.args[..] {
        [one] if one.text == "internal" => Some(TlsPolicy::Internal),
        [one] if one.text.contains('@') => Some(TlsPolicy::Acme { email: Some(one.text.clone()) }),
        [one] => {
            return Err(p.err(
                one.line,
                format!(
                    "tls '{}': expected 'internal', an email address, or a certificate and key \
                     file",
                    one.text
                ),
            ))
        }
        [cert, key] => Some(TlsPolicy::Files { cert: p.path(cert), key: p.path(key) }),
        // `tls { … }`: options only, the certificate stays automatic.
        [] if d.block.is_some() => None,
        [] => return Err(p.arg_err(&d.name)),
        [_, key, ..] => return Err(p.arg_err(key)),
    };
    if let Some(policy) = policy {
        extras.tls = Some((policy, d.line()));
    }
    if let Some(block) = &d.block {
        let mut options = TlsOptions::default();
        for sub in &block.items {
            let option = p.pick_sub(TLS_OPTIONS, "tls", sub)?;
            option(p, sub, &mut options)?;
        }
        extras.tls_options = Some((options, d.line()));
    }
    Ok(())
}

/// Reads one `tls { … }` option.
type TlsOption = fn(&Parser<'_>, &Directive, &mut TlsOptions) -> Result<(), ConfigError>;

/// Every `tls { … }` option ringproxy supports.
const TLS_OPTIONS: &Table<TlsOption> =
    &[("client_auth", tls_client_auth), ("protocols", tls_protocols)];

/// Caddy's protocol names; rustls speaks only these two.
const TLS_VERSIONS: &Table<TlsVersion> =
    &[("tls1.2", TlsVersion::Tls12), ("tls1.3", TlsVersion::Tls13)];

/// `protocols MIN [MAX]`.
fn tls_protocols(
    p: &Parser<'_>,
    d: &Directive,
    options: &mut TlsOptions,
) -> Result<(), ConfigError> {
    p.no_block(d)?;
    let version = |t: &Token| {
        super::lookup(TLS_VERSIONS, &t.text).copied().ok_or_else(|| {
            let hint = if matches!(t.text.as_str(), "tls1.0" | "tls1.1") {
                " (rustls offers no version before TLS 1.2)"
            } else {
                ""
            };
            p.err(
                t.line,
                format!(
                    "tls protocol '{}' is not supported by ringproxy{hint} (supported: {})",
                    t.text,
                    super::supported(TLS_VERSIONS)
                ),
            )
        })
    };
    let (min, max) = match &d.args[..] {
        [min] => (version(min)?, TlsVersion::Tls13),
        [min, max] => (version(min)?, version(max)?),
        [] => return Err(p.arg_err(&d.name)),
        [_, max, ..] => return Err(p.arg_err(max)),
    };
    if min > max {
        return Err(p.err(d.line(), "tls protocols: the minimum is above the maximum"));
    }
    options.protocols = Some((min, max));
    Ok(())
}

/// Reads one `client_auth { … }` option.
type ClientAuthOption =
    fn(&Parser<'_>, &Directive, &mut ClientAuthDraft) -> Result<(), ConfigError>;

#[derive(Default)]
struct ClientAuthDraft {
    mode: Option<ClientAuthMode>,
    trusted_ca_files: Vec<std::path::PathBuf>,
}

/// `client_auth { … }` options: Caddy 2.8+'s `trust_pool file`, and 2.6's
/// `trusted_ca_cert_file`.
const CLIENT_AUTH_OPTIONS: &Table<ClientAuthOption> = &[
    ("mode", client_auth_mode),
    ("trust_pool", client_auth_trust_pool),
    ("trusted_ca_cert_file", client_auth_ca_file),
];

const CLIENT_AUTH_MODES: &Table<ClientAuthMode> = &[
    ("require_and_verify", ClientAuthMode::RequireAndVerify),
    ("verify_if_given", ClientAuthMode::VerifyIfGiven),
];

fn tls_client_auth(
    p: &Parser<'_>,
    d: &Directive,
    options: &mut TlsOptions,
) -> Result<(), ConfigError> {
    if let Some(arg) = d.args.first() {
        return Err(p.err(arg.line, format!("client_auth takes a block, not '{}'", arg.text)));
    }
    let mut draft = ClientAuthDraft::default();
    for sub in d.block.iter().flat_map(|b| &b.items) {
        let option = p.pick_sub(CLIENT_AUTH_OPTIONS, "client_auth", sub)?;
        option(p, sub, &mut draft)?;
    }
    if draft.trusted_ca_files.is_empty() {
        // Without a trust pool Caddy's modes `request`/`require` accept any certificate, which
        // authenticates nobody; ringproxy supports only the verifying modes.
        return Err(p.err(
            d.line(),
            "client_auth needs trusted CAs: trust_pool file <ca.pem> (or trusted_ca_cert_file)",
        ));
    }
    options.client_auth = Some(ClientAuth {
        mode: draft.mode.unwrap_or(ClientAuthMode::RequireAndVerify),
        trusted_ca_files: draft.trusted_ca_files,
    });
    Ok(())
}

fn client_auth_mode(
    p: &Parser<'_>,
    d: &Directive,
    draft: &mut ClientAuthDraft,
) -> Result<(), ConfigError> {
    let arg = p.args(d, 1)?;
    let mode = super::lookup(CLIENT_AUTH_MODES, &arg[0].text).ok_or_else(|| {
        p.err(
            arg[0].line,
            format!(
                "client_auth mode '{}' is not supported by ringproxy (supported: {})",
                arg[0].text,
                super::supported(CLIENT_AUTH_MODES)
            ),
        )
    })?;
    draft.mode = Some(*mode);
    Ok(())
}

/// `trust_pool file <pem>…` (the `file` source only; its block form `{ pem_file … }` too).
fn client_auth_trust_pool(
    p: &Parser<'_>,
    d: &Directive,
    draft: &mut ClientAuthDraft,
) -> Result<(), ConfigError> {
    match d.args.first() {
        Some(source) if source.text == "file" => {}
        Some(source) => {
            return Err(p.err(
                source.line,
                format!(
                    "trust_pool source '{}' is not supported by ringproxy (supported: file)",
                    source.text
                ),
            ))
        }
        None => return Err(p.arg_err(&d.name)),
    }
    draft.trusted_ca_files.extend(d.args[1..].iter().map(|t| p.path(t)));
    for sub in d.block.iter().flat_map(|b| &b.items) {
        if sub.name.text != "pem_file" {
            return Err(p.err(
                sub.line(),
                format!(
                    "subdirective '{}' of trust_pool file is not supported by ringproxy \
                     (supported: pem_file)",
                    sub.name.text
                ),
            ));
        }
        if sub.args.is_empty() {
            return Err(p.arg_err(&sub.name));
        }
        draft.trusted_ca_files.extend(sub.args.iter().map(|t| p.path(t)));
    }
    Ok(())
}

fn client_auth_ca_file(
    p: &Parser<'_>,
    d: &Directive,
    draft: &mut ClientAuthDraft,
) -> Result<(), ConfigError> {
    let arg = p.args(d, 1)?;
    draft.trusted_ca_files.push(p.path(&arg[0]));
    Ok(())
}

/// `log [{ output … format … }]`: the site's access log; JSON on stderr by default.
pub(super) fn log(
    p: &Parser<'_>,
    d: &Directive,
    extras: &mut SiteExtras,
) -> Result<(), ConfigError> {
    if let Some(arg) = d.args.first() {
        return Err(p.err(
            arg.line,
            format!("named loggers ('log {}') are not supported by ringproxy", arg.text),
        ));
    }
    let mut log = AccessLog { output: LogOutput::Stderr, format: LogFormat::Json };
    if let Some(block) = &d.block {
        for sub in &block.items {
            let option = p.pick_sub(LOG_OPTIONS, "log", sub)?;
            option(p, sub, &mut log)?;
        }
    }
    extras.access_log = Some(log);
    Ok(())
}

fn log_output(p: &Parser<'_>, d: &Directive, log: &mut AccessLog) -> Result<(), ConfigError> {
    let kind = &p.some_args(d)?[0];
    let output = p.pick(LOG_OUTPUTS, "log output", kind)?;
    log.output = output(p, d)?;
    Ok(())
}

/// `metrics [<matcher>] { disable_openmetrics }`: serve the Prometheus exposition here
/// (Caddy's handler). ringproxy serves the text format only, which is what
/// `disable_openmetrics` asks of Caddy, so the option is accepted.
pub(super) fn metrics(
    p: &mut Parser<'_>,
    d: &Directive,
    args: &[Token],
) -> Result<Handler, ConfigError> {
    if let Some(extra) = args.first() {
        return Err(p.arg_err(extra));
    }
    if let Some(block) = &d.block {
        for sub in &block.items {
            p.pick_sub(METRICS_OPTIONS, "metrics", sub)?;
            p.args(sub, 0)?;
        }
    }
    Ok(Handler::Metrics)
}

/// `metrics { … }` options.
const METRICS_OPTIONS: &Table<()> = &[("disable_openmetrics", ())];

/// Sets one rolling option of `output file <path> { … }`.
type RollOption = fn(&Parser<'_>, &Directive, &mut LogRoll) -> Result<(), ConfigError>;

/// `output file <path> { … }` options (Caddy's names).
const ROLL_OPTIONS: &Table<RollOption> = &[
    ("roll_disabled", |p, d, roll| p.args(d, 0).map(|_| roll.size = None)),
    ("roll_keep", roll_keep),
    ("roll_keep_for", |p, d, roll| {
        roll.keep_for = Some(p.duration(p.one_arg(d)?)?);
        Ok(())
    }),
    ("roll_size", roll_size),
    // ringproxy never compresses rolled files: this asks for what it does anyway.
    ("roll_uncompressed", |p, d, _| p.args(d, 0).map(drop)),
];

/// `output file <path>`, with Caddy's rolling options in a block.
fn log_file(p: &Parser<'_>, d: &Directive) -> Result<LogOutput, ConfigError> {
    let path = p.path(&p.args_with_block(d, 2)?[1]);
    let mut roll = LogRoll::default();
    if let Some(block) = &d.block {
        for sub in &block.items {
            let option = p.pick_sub(ROLL_OPTIONS, "log output file", sub)?;
            option(p, sub, &mut roll)?;
        }
    }
    Ok(LogOutput::File { path, roll })
}

fn roll_size(p: &Parser<'_>, d: &Directive, roll: &mut LogRoll) -> Result<(), ConfigError> {
    let value = p.one_arg(d)?;
    let size = crate::config::units::parse_size(&value.text).map_err(|m| p.err(value.line, m))?;
    if size == 0 {
        return Err(p.err(value.line, "roll_size must be more than 0 (use roll_disabled)"));
    }
    roll.size = Some(size as u64);
    Ok(())
}

fn roll_keep(p: &Parser<'_>, d: &Directive, roll: &mut LogRoll) -> Result<(), ConfigError> {
    let value = p.one_arg(d)?;
    roll.keep = value.text.parse().map_err(|_| {
        p.err(value.line, format!("invalid roll_keep '{}': must be a whole number", value.text))
    })?;
    Ok(())
}

fn log_format(p: &Parser<'_>, d: &Directive, log: &mut AccessLog) -> Result<(), ConfigError> {
    log.format = *p.pick(LOG_FORMATS, "log format", p.one_arg(d)?)?;
    Ok(())
}

fn is_status_like(text: &str) -> bool {
    text.len() == 3 && text.bytes().all(|b| b.is_ascii_digit()) && text != "000"
}

fn parse_status(text: &str, range: std::ops::RangeInclusive<u16>) -> Option<u16> {
    if text.len() != 3 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok().filter(|s| range.contains(s))
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::super::test_support::{describe, only_site, parse, parse_err, routes_of};
    use super::*;
    use crate::config::{ListenerKind, Placeholder, Template, TemplatePart};

    fn literal(text: &str) -> Template {
        Template { parts: vec![TemplatePart::Literal(text.into())] }
    }

    /// The handler of `:80 { <directive> }`.
    fn handler(directive: &str) -> Handler {
        let routes = routes_of(&format!(":80 {{\n\t{directive}\n}}\n"));
        routes[0].handler.clone()
    }

    fn respond_of(directive: &str) -> (u16, Template) {
        match handler(directive) {
            Handler::Respond { status, body } => (status, body),
            other => panic!("not a respond: {other:?}"),
        }
    }

    fn redir_of(directive: &str) -> (Template, u16) {
        match handler(directive) {
            Handler::Redirect { to, status } => (to, status),
            other => panic!("not a redir: {other:?}"),
        }
    }

    fn access_log(site_body: &str) -> Option<AccessLog> {
        only_site(&parse(&format!(":80 {{\n{site_body}}}\n"))).access_log.clone()
    }

    #[test]
    fn value_tables_are_listed_alphabetically() {
        for names in [
            LOG_OPTIONS.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
            LOG_OUTPUTS.iter().map(|(n, _)| *n).collect(),
            LOG_FORMATS.iter().map(|(n, _)| *n).collect(),
        ] {
            let mut sorted = names.clone();
            sorted.sort_unstable();
            assert_eq!(names, sorted);
        }
    }

    #[test]
    fn respond_with_body_status_or_both() {
        assert_eq!(respond_of("respond hi"), (200, literal("hi")));
        assert_eq!(respond_of("respond 404"), (404, Template::default()));
        assert_eq!(respond_of("respond \"gone\" 410"), (410, literal("gone")));
        assert_eq!(respond_of("respond /x 204"), (204, Template::default()));
        assert_eq!(respond_of("respond 000"), (200, literal("000")));
        let (_, body) = respond_of("respond \"at {path}\"");
        assert_eq!(
            body.parts,
            vec![TemplatePart::Literal("at ".into()), TemplatePart::Placeholder(Placeholder::Path)]
        );
    }

    #[test]
    fn respond_body_from_its_block_once() {
        assert_eq!(respond_of("respond 201 {\n\t\tbody created\n\t}"), (201, literal("created")));
        assert_eq!(
            parse_err(":80 {\n\trespond hi {\n\t\tbody there\n\t}\n}\n"),
            "Caddyfile:3 - body already specified"
        );
        assert_eq!(
            parse_err(":80 {\n\trespond {\n\t\tbody a\n\t\tbody b\n\t}\n}\n"),
            "Caddyfile:4 - body already specified"
        );
        assert_eq!(
            parse_err(":80 {\n\trespond {\n\t\tclose\n\t}\n}\n"),
            "Caddyfile:3 - subdirective 'close' of respond is not supported by ringproxy \
             (supported: body)"
        );
    }

    #[test]
    fn respond_argument_errors() {
        assert_eq!(
            parse_err(":80 {\n\trespond\n}\n"),
            "Caddyfile:2 - wrong argument count or unexpected line ending after 'respond'"
        );
        assert_eq!(
            parse_err(":80 {\n\trespond a b c\n}\n"),
            "Caddyfile:2 - wrong argument count or unexpected line ending after 'b'"
        );
        assert_eq!(
            parse_err(":80 {\n\trespond hi 600\n}\n"),
            "Caddyfile:2 - invalid status code '600'"
        );
        assert_eq!(
            parse_err(":80 {\n\trespond hi abc\n}\n"),
            "Caddyfile:2 - invalid status code 'abc'"
        );
    }

    #[test]
    fn redir_codes_by_keyword_or_number() {
        assert_eq!(redir_of("redir https://b.com"), (literal("https://b.com"), 302));
        assert_eq!(redir_of("redir /old /new temporary"), (literal("/new"), 302));
        assert_eq!(redir_of("redir * /new permanent"), (literal("/new"), 301));
        assert_eq!(redir_of("redir new 308"), (literal("new"), 308));
        assert_eq!(redir_of("redir /old new 401"), (literal("new"), 401));
    }

    #[test]
    fn redir_errors() {
        assert_eq!(
            parse_err(":80 {\n\tredir /x /y 200\n}\n"),
            "Caddyfile:2 - Redir code not in the 3xx range or 401: '200'"
        );
        assert_eq!(
            parse_err(":80 {\n\tredir /x /y html\n}\n"),
            "Caddyfile:2 - redir 'html' is not supported by ringproxy (supported: temporary, \
             permanent, or a 3xx status code)"
        );
        assert_eq!(
            parse_err(":80 {\n\tredir /foo\n}\n"),
            "Caddyfile:2 - wrong argument count or unexpected line ending after 'redir'"
        );
        assert_eq!(
            parse_err(":80 {\n\tredir /a /b 301 x\n}\n"),
            "Caddyfile:2 - wrong argument count or unexpected line ending after '301'"
        );
        assert_eq!(
            parse_err(":80 {\n\tredir /a {\n\t}\n}\n"),
            "Caddyfile:2 - 'redir' does not take a block"
        );
    }

    #[test]
    fn tls_policies() {
        let tls = |line: &str| {
            let config = parse(&format!("a.com {{\n\t{line}\n}}\n"));
            let https = config.listeners.iter().find(|l| l.bind.port() == 443).unwrap();
            https.sites[0].tls.clone()
        };
        assert_eq!(tls("tls internal"), TlsPolicy::Internal);
        assert_eq!(tls("tls me@a.com"), TlsPolicy::Acme { email: Some("me@a.com".into()) });
        assert_eq!(
            tls("tls cert.pem /keys/key.pem"),
            TlsPolicy::Files {
                cert: PathBuf::from("/etc/caddy/cert.pem"),
                key: PathBuf::from("/keys/key.pem")
            }
        );
    }

    #[test]
    fn tls_options_set_protocols_and_client_auth_and_keep_the_certificate_source() {
        let site = |tls: &str| {
            let config = parse(&format!("a.com {{\n{tls}}}\n"));
            let site =
                &config.listeners.iter().find(|l| l.kind == ListenerKind::Tls).unwrap().sites[0];
            (site.tls.clone(), site.tls_options.clone())
        };
        let (policy, options) = site("\ttls {\n\t\tprotocols tls1.3\n\t}\n");
        assert_eq!(policy, TlsPolicy::Acme { email: None });
        assert_eq!(options.protocols, Some((TlsVersion::Tls13, TlsVersion::Tls13)));
        let (policy, options) = site(
            "\ttls internal {\n\t\tprotocols tls1.2 tls1.3\n\t\tclient_auth {\n\t\t\ttrust_pool file ca.pem more.pem\n\t\t\ttrusted_ca_cert_file old.pem\n\t\t}\n\t}\n",
        );
        assert_eq!(policy, TlsPolicy::Internal);
        assert_eq!(options.protocols, Some((TlsVersion::Tls12, TlsVersion::Tls13)));
        assert_eq!(
            options.client_auth,
            Some(ClientAuth {
                mode: ClientAuthMode::RequireAndVerify,
                trusted_ca_files: ["ca.pem", "more.pem", "old.pem"]
                    .iter()
                    .map(|f| PathBuf::from("/etc/caddy").join(f))
                    .collect(),
            })
        );
        let (_, options) = site(
            "\ttls {\n\t\tclient_auth {\n\t\t\tmode verify_if_given\n\t\t\ttrust_pool file {\n\t\t\t\tpem_file /ca.pem\n\t\t\t}\n\t\t}\n\t}\n",
        );
        assert_eq!(options.client_auth.unwrap().mode, ClientAuthMode::VerifyIfGiven);
    }

    #[test]
    fn tls_errors() {
        assert_eq!(
            parse_err("a.com {\n\ttls {\n\t\tciphers TLS_AES_128_GCM_SHA256\n\t}\n}\n"),
            "Caddyfile:3 - subdirective 'ciphers' of tls is not supported by ringproxy \
             (supported: client_auth, protocols)"
        );
        assert_eq!(
            parse_err("a.com {\n\ttls {\n\t\tprotocols tls1.1\n\t}\n}\n"),
            "Caddyfile:3 - tls protocol 'tls1.1' is not supported by ringproxy (rustls offers \
             no version before TLS 1.2) (supported: tls1.2, tls1.3)"
        );
        assert_eq!(
            parse_err("a.com {\n\ttls {\n\t\tprotocols tls1.3 tls1.2\n\t}\n}\n"),
            "Caddyfile:3 - tls protocols: the minimum is above the maximum"
        );
        assert_eq!(
            parse_err("a.com {\n\ttls {\n\t\tclient_auth {\n\t\t\tmode require\n\t\t}\n\t}\n}\n"),
            "Caddyfile:4 - client_auth mode 'require' is not supported by ringproxy (supported: \
             require_and_verify, verify_if_given)"
        );
        assert_eq!(
            parse_err(
                "a.com {\n\ttls {\n\t\tclient_auth {\n\t\t\tmode verify_if_given\n\t\t}\n\t}\n}\n"
            ),
            "Caddyfile:3 - client_auth needs trusted CAs: trust_pool file <ca.pem> (or \
             trusted_ca_cert_file)"
        );
        assert_eq!(
            parse_err("a.com {\n\ttls self\n}\n"),
            "Caddyfile:2 - tls 'self': expected 'internal', an email address, or a certificate \
             and key file"
        );
        assert_eq!(
            parse_err("a.com {\n\ttls\n}\n"),
            "Caddyfile:2 - wrong argument count or unexpected line ending after 'tls'"
        );
        assert_eq!(
            parse_err("a.com {\n\ttls a b c\n}\n"),
            "Caddyfile:2 - wrong argument count or unexpected line ending after 'b'"
        );
    }

    #[test]
    fn metrics_takes_a_matcher_and_only_disable_openmetrics() {
        assert!(matches!(handler("metrics"), Handler::Metrics));
        let routes = routes_of(":80 {\n\tmetrics /metrics\n\trespond ok\n}\n");
        assert_eq!(describe(&routes), ["respond 200", "metrics"], "respond sorts first");
        assert!(routes[1].matcher.is_some());
        assert!(matches!(handler("metrics {\n\t\tdisable_openmetrics\n\t}"), Handler::Metrics));
        assert_eq!(
            parse_err(":80 {\n\tmetrics {\n\t\tport 9\n\t}\n}\n"),
            "Caddyfile:3 - subdirective 'port' of metrics is not supported by ringproxy \
             (supported: disable_openmetrics)"
        );
    }

    #[test]
    fn log_defaults_to_json_on_stderr() {
        assert_eq!(
            access_log("\tlog\n"),
            Some(AccessLog { output: LogOutput::Stderr, format: LogFormat::Json })
        );
        assert_eq!(access_log("\trespond 200\n"), None);
    }

    #[test]
    fn log_outputs_and_formats() {
        let log = |block: &str| access_log(&format!("\tlog {{\n\t\t{block}\n\t}}\n")).unwrap();
        assert_eq!(log("output stdout").output, LogOutput::Stdout);
        assert_eq!(log("output discard").output, LogOutput::Discard);
        assert_eq!(log("output stderr").output, LogOutput::Stderr);
        assert_eq!(
            log("output file access.log").output,
            LogOutput::File { path: "/etc/caddy/access.log".into(), roll: LogRoll::default() }
        );
        let rolled = log(
            "output file a.log {\n\t\t\troll_size 10MiB\n\t\t\troll_keep 3\n\t\t\troll_keep_for 48h\n\t\t\troll_uncompressed\n\t\t}",
        );
        let roll = LogRoll {
            size: Some(10 << 20),
            keep: 3,
            keep_for: Some(std::time::Duration::from_secs(48 * 3600)),
        };
        assert_eq!(rolled.output, LogOutput::File { path: "/etc/caddy/a.log".into(), roll });
        let unrolled = log("output file a.log {\n\t\t\troll_disabled\n\t\t}");
        assert!(matches!(
            unrolled.output,
            LogOutput::File { roll: LogRoll { size: None, .. }, .. }
        ));
        assert_eq!(log("format console").format, LogFormat::Console);
        assert_eq!(log("format json").format, LogFormat::Json);
    }

    #[test]
    fn log_errors() {
        let err = |block: &str| parse_err(&format!(":80 {{\n\tlog {{\n\t\t{block}\n\t}}\n}}\n"));
        assert_eq!(
            err("output syslog"),
            "Caddyfile:3 - log output 'syslog' is not supported by ringproxy (supported: \
             discard, file, stderr, stdout)"
        );
        assert_eq!(
            err("output file a.log {\n\t\t\troll_local_time\n\t\t}"),
            "Caddyfile:4 - subdirective 'roll_local_time' of log output file is not supported by \
             ringproxy (supported: roll_disabled, roll_keep, roll_keep_for, roll_size, \
             roll_uncompressed)"
        );
        assert_eq!(
            err("format logfmt"),
            "Caddyfile:3 - log format 'logfmt' is not supported by ringproxy (supported: \
             console, json)"
        );
        assert_eq!(
            err("level INFO"),
            "Caddyfile:3 - subdirective 'level' of log is not supported by ringproxy \
             (supported: format, output)"
        );
        assert_eq!(
            err("output file a.log {\n\t\t\troll_size lots\n\t\t}"),
            "Caddyfile:4 - invalid size 'lots'"
        );
        assert_eq!(
            err("output file"),
            "Caddyfile:3 - wrong argument count or unexpected line ending after 'file'"
        );
        assert_eq!(
            err("output stdout extra"),
            "Caddyfile:3 - wrong argument count or unexpected line ending after 'stdout'"
        );
        assert_eq!(
            err("output"),
            "Caddyfile:3 - wrong argument count or unexpected line ending after 'output'"
        );
        assert_eq!(
            parse_err(":80 {\n\tlog access {\n\t}\n}\n"),
            "Caddyfile:2 - named loggers ('log access') are not supported by ringproxy"
        );
    }
}
