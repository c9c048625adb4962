//! Tokens → typed [`Config`]: the meaning of every global option, directive,
//! subdirective and matcher ringproxy supports, and the assembly of sites into listeners.
//!
//! Anything outside the supported subset is a [`ConfigError`] at `file:line` naming what is
//! supported; nothing is silently ignored. Caddy's wording is reused where Caddy has a message
//! for the same mistake, so users can search for it.
//!
//! Stages: `lexer` (text → tokens) → `syntax` (tokens → blocks, imports expanded) → this file:
//! globals, then each site block into routes (Caddy's directive order and `handle` grouping
//! applied), then sites into listeners (ports, schemes, TLS policy, automatic redirects).

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::address::{self, Scheme, SiteAddress};
use super::lexer::{self, Token};
use super::limits;
use super::matcher::{compile_header_value, compile_path};
use super::placeholder::{self, Context};
use super::syntax::{self, Block, Directive};
use super::units::{parse_duration, parse_size};
use super::{
    AccessLog, Admin, AutoHttps, ChallengeKind, Config, ConfigError, Globals, Handler,
    HeaderCondition, HeaderOp, HeaderTest, HealthCheck, HostPattern, LbPolicy, ListenerConfig,
    ListenerKind, LogFormat, LogOutput, Matcher, Origin, Route, Site, TlsPolicy, Transport,
    Upstream, UpstreamSet,
};

const SUPPORTED_DIRECTIVES: &str =
    "handle, handle_path, log, redir, respond, reverse_proxy, route, tls";
const SUPPORTED_GLOBALS: &str = "acme_ca, acme_ca_root, acme_challenges, admin, auto_https, \
                                 email, grace_period, http_port, https_port, local_certs, servers, \
                                 storage";
const SUPPORTED_MATCHERS: &str = "header, host, method, not, path";
const SUPPORTED_PROXY_OPTIONS: &str = "fail_duration, flush_interval, header_down, header_up, \
     health_interval, health_timeout, health_uri, lb_policy, max_fails, to, transport";
const SUPPORTED_LB_POLICIES: &str = "first, ip_hash, least_conn, random, round_robin";
const SUPPORTED_TRANSPORT_OPTIONS: &str =
    "dial_timeout, keepalive, keepalive_idle_conns, response_header_timeout";

/// Hooks for what parsing reads from the outside world: environment variables (`{$VAR}`) and
/// name resolution (upstream hosts). The default resolves with the system resolver and sees
/// no environment variables (`{$VAR}` is empty, as in Caddy for an unset variable): only
/// `main` reads the process environment, and passes it in with [`ParseOptions::with_env`].
/// Tests pass their own hooks so they neither depend on a developer's shell nor on DNS.
pub struct ParseOptions {
    env: Box<EnvLookup>,
    resolver: Box<Resolver>,
}

/// Looks up an environment variable by name.
pub type EnvLookup = dyn Fn(&str) -> Option<String>;

/// Resolves an upstream host name and port to socket addresses.
pub type Resolver = dyn Fn(&str, u16) -> io::Result<Vec<SocketAddr>>;

impl ParseOptions {
    /// Replaces the environment lookup used for `{$VAR}`.
    pub fn with_env(mut self, env: impl Fn(&str) -> Option<String> + 'static) -> Self {
        self.env = Box::new(env);
        self
    }

    /// Replaces the resolver used for upstream host names other than `localhost` and IPs.
    pub fn with_resolver(
        mut self,
        resolver: impl Fn(&str, u16) -> io::Result<Vec<SocketAddr>> + 'static,
    ) -> Self {
        self.resolver = Box::new(resolver);
        self
    }
}

impl Default for ParseOptions {
    fn default() -> Self {
        ParseOptions { env: Box::new(|_| None), resolver: Box::new(address::system_resolve) }
    }
}

/// Parse Caddyfile text. `file_name` is what errors show (`Caddyfile:12 - ...`); relative paths
/// in the file (tls cert/key, log files) resolve against `base_dir`.
pub fn parse_caddyfile(
    text: &str,
    file_name: &str,
    base_dir: &Path,
) -> Result<Config, ConfigError> {
    parse_bytes(text.as_bytes(), file_name, base_dir, &ParseOptions::default())
}

/// Parse Caddyfile bytes with explicit [`ParseOptions`]. Never panics, whatever the input.
pub fn parse_bytes(
    input: &[u8],
    file_name: &str,
    base_dir: &Path,
    options: &ParseOptions,
) -> Result<Config, ConfigError> {
    let tokens = lexer::tokenize_with_env(input, file_name, &*options.env)?;
    let last_line = lexer::line_count(input);
    let document = syntax::parse_document(tokens, file_name, last_line)?;
    let mut parser = Parser { file: file_name, base_dir, options, upstream_sets: Vec::new() };
    let (globals, lines) = parser.globals(document.globals.as_ref())?;
    let mut sites = Vec::with_capacity(document.sites.len());
    for block in &document.sites {
        sites.push(parser.site(block)?);
    }
    let listeners = parser.listeners(&sites, &globals, &lines)?;
    Ok(Config { globals, listeners, upstream_sets: parser.upstream_sets })
}

/// Read and parse a Caddyfile from disk.
pub fn parse_file(path: &Path, options: &ParseOptions) -> Result<Config, ConfigError> {
    let file_name = path.display().to_string();
    let input = std::fs::read(path).map_err(|e| ConfigError {
        file: file_name.clone(),
        line: 0,
        message: format!("cannot read the configuration file: {e}"),
    })?;
    let base_dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    parse_bytes(&input, &file_name, base_dir, options)
}

struct Parser<'a> {
    file: &'a str,
    base_dir: &'a Path,
    options: &'a ParseOptions,
    upstream_sets: Vec<UpstreamSet>,
}

/// Lines of the global options that later checks point at.
#[derive(Default)]
struct GlobalLines {
    http_port: Option<usize>,
    https_port: Option<usize>,
}

/// A named matcher definition (`@name …`).
#[derive(Clone)]
struct MatcherDef {
    matcher: Matcher,
    /// The raw pattern when the matcher has exactly one path, for Caddy's route sorting.
    single_path: Option<String>,
}

/// Named matchers visible in a block: the block's own, then its parents'.
type Scopes = Vec<HashMap<String, MatcherDef>>;

/// A route before Caddy's directive sort.
struct Pending {
    /// Position in Caddy's directive order (handle and handle_path share one).
    order: u8,
    single_path: Option<String>,
    route: Route,
}

const ORDER_REDIR: u8 = 0;
const ORDER_HANDLE: u8 = 1;
const ORDER_ROUTE: u8 = 2;
const ORDER_RESPOND: u8 = 3;
const ORDER_PROXY: u8 = 4;

/// Site-level settings that are not routes.
#[derive(Default)]
struct SiteExtras {
    tls: Option<(TlsPolicy, usize)>,
    access_log: Option<AccessLog>,
}

/// One site block, parsed, before it is placed on listeners.
struct ParsedSite {
    addresses: Vec<(Token, SiteAddress)>,
    extras: SiteExtras,
    routes: Vec<Route>,
    origin: Origin,
}

impl Parser<'_> {
    fn err(&self, line: usize, message: impl Into<String>) -> ConfigError {
        ConfigError { file: self.file.to_string(), line, message: message.into() }
    }

    /// Caddy's `ArgErr`.
    fn arg_err(&self, after: &Token) -> ConfigError {
        self.err(
            after.line,
            format!("wrong argument count or unexpected line ending after '{}'", after.text),
        )
    }

    /// Exactly `n` arguments and no block.
    fn args<'d>(&self, d: &'d Directive, n: usize) -> Result<&'d [Token], ConfigError> {
        self.args_with_block(d, n)?;
        self.no_block(d)?;
        Ok(&d.args)
    }

    /// Exactly `n` arguments; a block is the caller's business.
    fn args_with_block<'d>(&self, d: &'d Directive, n: usize) -> Result<&'d [Token], ConfigError> {
        if d.args.len() < n {
            return Err(self.arg_err(d.args.last().unwrap_or(&d.name)));
        }
        if d.args.len() > n {
            return Err(self.arg_err(if n == 0 { &d.name } else { &d.args[n - 1] }));
        }
        Ok(&d.args)
    }

    /// At least one argument.
    fn some_args<'d>(&self, d: &'d Directive) -> Result<&'d [Token], ConfigError> {
        if d.args.is_empty() {
            return Err(self.arg_err(&d.name));
        }
        Ok(&d.args)
    }

    fn no_block(&self, d: &Directive) -> Result<(), ConfigError> {
        match &d.block {
            Some(block) => {
                Err(self.err(block.line, format!("'{}' does not take a block", d.name.text)))
            }
            None => Ok(()),
        }
    }

    fn duration(&self, token: &Token) -> Result<Duration, ConfigError> {
        parse_duration(&token.text).map_err(|m| self.err(token.line, m))
    }

    fn path(&self, token: &Token) -> PathBuf {
        let p = Path::new(&token.text);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base_dir.join(p)
        }
    }

    fn unsupported_sub(&self, d: &Directive, parent: &str, supported: &str) -> ConfigError {
        self.err(
            d.line(),
            format!(
                "subdirective '{}' of {parent} is not supported by ringproxy (supported: {supported})",
                d.name.text
            ),
        )
    }

    // ---- global options ------------------------------------------------------------------

    fn globals(&self, block: Option<&Block>) -> Result<(Globals, GlobalLines), ConfigError> {
        let mut g = Globals::default();
        let mut lines = GlobalLines::default();
        let Some(block) = block else {
            return Ok((g, lines));
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
            match name {
                "http_port" | "https_port" => {
                    let arg = &self.args(d, 1)?[0];
                    let port = address::parse_port(&arg.text).map_err(|m| self.err(arg.line, m))?;
                    if name == "http_port" {
                        g.http_port = port;
                        lines.http_port = Some(d.line());
                    } else {
                        g.https_port = port;
                        lines.https_port = Some(d.line());
                    }
                }
                "admin" => {
                    let arg = &self.args_with_block(d, 1)?[0];
                    if d.block.is_some() {
                        return Err(self.err(
                            d.line(),
                            "admin options are not supported by ringproxy, which has no admin \
                             API (supported: admin off, admin <address>)",
                        ));
                    }
                    g.admin = match arg.text.as_str() {
                        "off" => Admin::Off,
                        addr => Admin::Address(addr.to_string()),
                    };
                }
                "email" => g.email = Some(self.args(d, 1)?[0].text.clone()),
                "acme_ca" => g.acme_ca = Some(self.args(d, 1)?[0].text.clone()),
                "acme_ca_root" => g.acme_ca_root = Some(self.path(&self.args(d, 1)?[0])),
                "local_certs" => {
                    self.args(d, 0)?;
                    g.local_certs = true;
                }
                "auto_https" => {
                    let arg = &self.args(d, 1)?[0];
                    g.auto_https = match arg.text.as_str() {
                        "off" => AutoHttps::Off,
                        "disable_redirects" => AutoHttps::DisableRedirects,
                        other => {
                            return Err(self.err(
                                arg.line,
                                format!(
                                    "auto_https '{other}' is not supported by ringproxy \
                                     (supported: off, disable_redirects)"
                                ),
                            ))
                        }
                    };
                }
                "storage" => g.storage = Some(self.storage(d)?),
                "grace_period" => g.grace_period = self.duration(&self.args(d, 1)?[0])?,
                "acme_challenges" => {
                    self.no_block(d)?;
                    for arg in self.some_args(d)? {
                        let kind = ChallengeKind::parse(&arg.text).ok_or_else(|| {
                            self.err(
                                arg.line,
                                format!(
                                    "acme_challenges '{}' is not supported by ringproxy \
                                     (supported: http-01, tls-alpn-01)",
                                    arg.text
                                ),
                            )
                        })?;
                        if g.acme_challenges.contains(&kind) {
                            return Err(
                                self.err(arg.line, format!("acme_challenges names '{kind}' twice"))
                            );
                        }
                        g.acme_challenges.push(kind);
                    }
                }
                "servers" => self.servers(d, &mut g.limits)?,
                other => {
                    return Err(self.err(
                        d.line(),
                        format!(
                            "global option '{other}' is not supported by ringproxy (supported: \
                             {SUPPORTED_GLOBALS})"
                        ),
                    ))
                }
            }
        }
        Ok((g, lines))
    }

    fn storage(&self, d: &Directive) -> Result<PathBuf, ConfigError> {
        let module = self.some_args(d)?;
        if module[0].text != "file_system" {
            return Err(self.err(
                module[0].line,
                format!(
                    "storage '{}' is not supported by ringproxy (supported: file_system)",
                    module[0].text
                ),
            ));
        }
        match (&module[1..], &d.block) {
            ([root], None) => Ok(self.path(root)),
            ([], Some(block)) => {
                let mut root = None;
                for sub in &block.items {
                    match sub.name.text.as_str() {
                        "root" => root = Some(self.path(&self.args(sub, 1)?[0])),
                        _ => return Err(self.unsupported_sub(sub, "storage file_system", "root")),
                    }
                }
                root.ok_or_else(|| self.err(block.line, "storage file_system needs a root path"))
            }
            ([], None) => Err(self.arg_err(&module[0])),
            _ => Err(self.arg_err(&module[1])),
        }
    }

    fn servers(&self, d: &Directive, limits: &mut limits::Limits) -> Result<(), ConfigError> {
        if let Some(arg) = d.args.first() {
            return Err(self.err(
                arg.line,
                "servers options for a specific listener address are not supported by \
                 ringproxy; use 'servers { ... }' without an address (it applies to every listener)",
            ));
        }
        let Some(block) = &d.block else { return Ok(()) };
        for sub in &block.items {
            match sub.name.text.as_str() {
                "timeouts" => {
                    self.args_with_block(sub, 0)?;
                    let Some(timeouts) = &sub.block else {
                        return Err(self.arg_err(&sub.name));
                    };
                    for t in &timeouts.items {
                        let value = &self.args(t, 1)?[0];
                        match t.name.text.as_str() {
                            "read_header" => limits.read_header_timeout = self.duration(value)?,
                            "idle" => limits.idle_timeout = self.duration(value)?,
                            "tls_handshake" => {
                                limits.tls_handshake_timeout = self.duration(value)?
                            }
                            "relay_idle" => {
                                limits.relay_idle_timeout = match value.text.as_str() {
                                    "off" | "0" => None,
                                    _ => Some(self.duration(value)?),
                                }
                            }
                            _ => {
                                return Err(self.unsupported_sub(
                                    t,
                                    "servers timeouts",
                                    "idle, read_header, relay_idle, tls_handshake",
                                ))
                            }
                        }
                    }
                }
                "max_header_size" => {
                    let value = &self.args(sub, 1)?[0];
                    let size = parse_size(&value.text).map_err(|m| self.err(value.line, m))?;
                    if size < 1024 {
                        return Err(self.err(
                            value.line,
                            format!("max_header_size {size} is too small (at least 1KiB)"),
                        ));
                    }
                    limits.max_header_bytes = size;
                }
                _ => return Err(self.unsupported_sub(sub, "servers", "max_header_size, timeouts")),
            }
        }
        Ok(())
    }

    // ---- site blocks ---------------------------------------------------------------------

    fn site(&mut self, block: &syntax::SiteBlock) -> Result<ParsedSite, ConfigError> {
        if block.keys.is_empty() {
            return Err(self.err(block.body.line, "site block has no address"));
        }
        let mut addresses = Vec::with_capacity(block.keys.len());
        for key in &block.keys {
            let addr = address::parse_site_address(&key.text).map_err(|m| self.err(key.line, m))?;
            addresses.push((key.clone(), addr));
        }
        let origin_line = block.keys.first().map_or(block.body.line, |k| k.line);
        let mut extras = SiteExtras::default();
        let mut scopes: Scopes = Vec::new();
        let routes = self.routes(&block.body.items, &mut scopes, Some(&mut extras), true)?;
        Ok(ParsedSite {
            addresses,
            extras,
            routes,
            origin: Origin { file: self.file.to_string(), line: origin_line },
        })
    }

    /// Parses the directives of a site block or of a `handle`/`route` block into routes.
    /// `extras` is `Some` only at the top of a site, where `tls` and `log` are allowed.
    fn routes(
        &mut self,
        items: &[Directive],
        scopes: &mut Scopes,
        mut extras: Option<&mut SiteExtras>,
        sort: bool,
    ) -> Result<Vec<Route>, ConfigError> {
        let mut defs = HashMap::new();
        for d in items.iter().filter(|d| !d.name.quoted && d.name.text.starts_with('@')) {
            let def = self.matcher_definition(d)?;
            if defs.insert(d.name.text.clone(), def).is_some() {
                return Err(self
                    .err(d.line(), format!("matcher is defined more than once: {}", d.name.text)));
            }
        }
        scopes.push(defs);
        let result = self.route_items(items, scopes, &mut extras);
        scopes.pop();
        let mut pending = result?;
        if sort {
            sort_like_caddy(&mut pending);
        }
        Ok(finish_routes(pending))
    }

    fn route_items(
        &mut self,
        items: &[Directive],
        scopes: &mut Scopes,
        extras: &mut Option<&mut SiteExtras>,
    ) -> Result<Vec<Pending>, ConfigError> {
        let mut pending = Vec::new();
        for d in items {
            let name = d.name.text.as_str();
            if !d.name.quoted && name.starts_with('@') {
                continue;
            }
            match name {
                "tls" | "log" => {
                    let Some(extras) = extras.as_deref_mut() else {
                        return Err(self.err(
                            d.line(),
                            format!("directive '{name}' is only allowed at the top level of a site block"),
                        ));
                    };
                    if name == "tls" {
                        if extras.tls.is_some() {
                            return Err(self.err(
                                d.line(),
                                "directive 'tls' is set more than once in this site",
                            ));
                        }
                        extras.tls = Some((self.tls(d)?, d.line()));
                    } else {
                        if extras.access_log.is_some() {
                            return Err(self.err(
                                d.line(),
                                "directive 'log' is set more than once in this site",
                            ));
                        }
                        extras.access_log = Some(self.log(d)?);
                    }
                }
                "redir" | "respond" | "reverse_proxy" => {
                    let (def, rest) = self.matcher_token(&d.args, scopes)?;
                    let (order, handler) = match name {
                        "redir" => (ORDER_REDIR, self.redir(d, rest)?),
                        "respond" => (ORDER_RESPOND, self.respond(d, rest)?),
                        _ => (ORDER_PROXY, self.reverse_proxy(d, rest)?),
                    };
                    pending.push(pend(order, def, handler));
                }
                "handle" | "route" => {
                    let (def, rest) = self.matcher_token(&d.args, scopes)?;
                    if let Some(extra) = rest.first() {
                        return Err(self.arg_err(extra));
                    }
                    let is_handle = name == "handle";
                    let routes = match &d.block {
                        Some(block) => self.routes(&block.items, scopes, None, is_handle)?,
                        None => Vec::new(),
                    };
                    let order = if is_handle { ORDER_HANDLE } else { ORDER_ROUTE };
                    pending.push(pend(
                        order,
                        def,
                        Handler::Subroute { routes, strip_prefix: None },
                    ));
                }
                "handle_path" => {
                    let arg = &self.args_with_block(d, 1)?[0];
                    if !arg.text.starts_with('/') {
                        return Err(self.err(
                            arg.line,
                            format!("path matcher must begin with '/', got {}", arg.text),
                        ));
                    }
                    let pattern = compile_path(&arg.text).map_err(|m| self.err(arg.line, m))?;
                    let raw = arg.text.to_lowercase();
                    let strip = raw
                        .strip_suffix("/*")
                        .or_else(|| raw.strip_suffix('*'))
                        .unwrap_or(&raw)
                        .to_string();
                    let routes = match &d.block {
                        Some(block) => self.routes(&block.items, scopes, None, true)?,
                        None => Vec::new(),
                    };
                    let def = MatcherDef {
                        matcher: path_only(vec![pattern]),
                        single_path: Some(arg.text.clone()),
                    };
                    let strip_prefix = (!strip.is_empty()).then_some(strip);
                    pending.push(pend(
                        ORDER_HANDLE,
                        Some(def),
                        Handler::Subroute { routes, strip_prefix },
                    ));
                }
                other => {
                    return Err(self.err(
                        d.line(),
                        format!(
                            "directive '{other}' is not supported by ringproxy (supported: \
                             {SUPPORTED_DIRECTIVES})"
                        ),
                    ))
                }
            }
        }
        Ok(pending)
    }

    /// Reads an optional matcher token (`*`, `/path`, `@name`) at the start of `args`.
    fn matcher_token<'t>(
        &self,
        args: &'t [Token],
        scopes: &Scopes,
    ) -> Result<(Option<MatcherDef>, &'t [Token]), ConfigError> {
        let Some(first) = args.first() else {
            return Ok((None, args));
        };
        let text = first.text.as_str();
        if text == "*" {
            return Ok((None, &args[1..]));
        }
        if text.starts_with('/') {
            let pattern = compile_path(text).map_err(|m| self.err(first.line, m))?;
            let def = MatcherDef {
                matcher: path_only(vec![pattern]),
                single_path: Some(text.to_string()),
            };
            return Ok((Some(def), &args[1..]));
        }
        if text.starts_with('*') && !first.quoted {
            return Err(self.err(
                first.line,
                format!(
                    "'{text}' is not a valid inline matcher: inline matchers are '*', a path \
                     starting with '/', or '@name' (for other patterns define a named matcher, \
                     e.g. @m path {text})"
                ),
            ));
        }
        if text.starts_with('@') {
            let def = scopes.iter().rev().find_map(|scope| scope.get(text)).ok_or_else(|| {
                self.err(first.line, format!("unrecognized matcher name: {text}"))
            })?;
            return Ok((Some(def.clone()), &args[1..]));
        }
        Ok((None, args))
    }

    // ---- matchers ------------------------------------------------------------------------

    fn matcher_definition(&self, d: &Directive) -> Result<MatcherDef, ConfigError> {
        let mut matcher = empty_matcher();
        let mut raw_paths = Vec::new();
        match (&d.args[..], &d.block) {
            ([], Some(block)) => {
                for line in &block.items {
                    self.matcher_condition(
                        &line.name,
                        &line.args,
                        line.block.as_ref(),
                        &mut matcher,
                        &mut raw_paths,
                    )?;
                }
            }
            ([kind, args @ ..], None) => {
                self.matcher_condition(kind, args, None, &mut matcher, &mut raw_paths)?;
            }
            ([], None) => {
                return Err(
                    self.err(d.line(), format!("matcher definition {} is empty", d.name.text))
                )
            }
            ([_, ..], Some(block)) => {
                return Err(self.err(
                    block.line,
                    format!(
                        "matcher definition {} has both arguments and a block; use one form",
                        d.name.text
                    ),
                ))
            }
        }
        if matcher == empty_matcher() {
            return Err(self.err(d.line(), format!("matcher definition {} is empty", d.name.text)));
        }
        let single_path = match raw_paths.as_slice() {
            [one] => Some(one.clone()),
            _ => None,
        };
        Ok(MatcherDef { matcher, single_path })
    }

    /// One `type args…` condition of a named matcher, merged into `m`.
    fn matcher_condition(
        &self,
        kind: &Token,
        args: &[Token],
        block: Option<&Block>,
        m: &mut Matcher,
        raw_paths: &mut Vec<String>,
    ) -> Result<(), ConfigError> {
        let need_args = || {
            if args.is_empty() {
                Err(self.arg_err(kind))
            } else {
                Ok(())
            }
        };
        if kind.text != "not" {
            if let Some(block) = block {
                return Err(
                    self.err(block.line, format!("matcher '{}' does not take a block", kind.text))
                );
            }
        }
        match kind.text.as_str() {
            "path" => {
                need_args()?;
                for a in args {
                    m.paths.push(compile_path(&a.text).map_err(|e| self.err(a.line, e))?);
                    raw_paths.push(a.text.clone());
                }
            }
            "host" => {
                need_args()?;
                for a in args {
                    let h = address::host_pattern(&a.text)
                        .map_err(|e| self.err(a.line, format!("host matcher: {e}")))?;
                    m.hosts.push(h);
                }
            }
            "method" => {
                need_args()?;
                for a in args {
                    m.methods.push(a.text.to_ascii_uppercase());
                }
            }
            "header" => {
                need_args()?;
                let field = &args[0].text;
                let (name, negated) = match field.strip_prefix('!') {
                    Some(n) => (n.to_ascii_lowercase(), true),
                    None => (field.to_ascii_lowercase(), false),
                };
                if name.is_empty() || !name.bytes().all(is_token_byte) {
                    return Err(self.err(args[0].line, format!("invalid header name '{field}'")));
                }
                let test = if negated {
                    if let Some(v) = args.get(1) {
                        return Err(self.err(v.line, format!("header matcher '!{name}' takes no values")));
                    }
                    HeaderTest::Absent
                } else if args.len() == 1 {
                    HeaderTest::Present
                } else {
                    let values = args[1..]
                        .iter()
                        .map(|v| compile_header_value(&v.text).map_err(|e| self.err(v.line, e)))
                        .collect::<Result<Vec<_>, _>>()?;
                    HeaderTest::Values(values)
                };
                match m.headers.iter_mut().find(|c| c.name == name) {
                    None => m.headers.push(HeaderCondition { name, test }),
                    Some(existing) => {
                        existing.test = match (std::mem::replace(&mut existing.test, HeaderTest::Present), test) {
                            (HeaderTest::Values(mut a), HeaderTest::Values(b)) => {
                                a.extend(b);
                                HeaderTest::Values(a)
                            }
                            (HeaderTest::Present, HeaderTest::Values(v))
                            | (HeaderTest::Values(v), HeaderTest::Present) => HeaderTest::Values(v),
                            (HeaderTest::Present, HeaderTest::Present) => HeaderTest::Present,
                            (HeaderTest::Absent, HeaderTest::Absent) => HeaderTest::Absent,
                            _ => {
                                return Err(self.err(
                                    kind.line,
                                    format!("header matcher requires '{name}' to be both present and absent"),
                                ))
                            }
                        };
                    }
                }
            }
            "not" => {
                let mut inner = empty_matcher();
                let mut ignored = Vec::new();
                match (args, block) {
                    ([], Some(block)) => {
                        for line in &block.items {
                            self.matcher_condition(&line.name, &line.args, line.block.as_ref(), &mut inner, &mut ignored)?;
                        }
                    }
                    ([k, rest @ ..], None) => {
                        self.matcher_condition(k, rest, None, &mut inner, &mut ignored)?;
                    }
                    _ => return Err(self.arg_err(kind)),
                }
                if inner == empty_matcher() {
                    return Err(self.err(kind.line, "'not' matcher is empty"));
                }
                m.not.push(inner);
            }
            other => {
                return Err(self.err(
                    kind.line,
                    format!(
                        "matcher '{other}' is not supported by ringproxy (supported: {SUPPORTED_MATCHERS})"
                    ),
                ))
            }
        }
        Ok(())
    }

    // ---- handler directives --------------------------------------------------------------

    fn respond(&self, d: &Directive, args: &[Token]) -> Result<Handler, ConfigError> {
        let (mut body, status) = match args {
            [] => (None, None),
            [one] if is_status_like(&one.text) => (None, Some(one)),
            [body] => (Some(body), None),
            [body, status] => (Some(body), Some(status)),
            [_, status, ..] => return Err(self.arg_err(status)),
        };
        let mut body_from_block = None;
        if let Some(block) = &d.block {
            for sub in &block.items {
                match sub.name.text.as_str() {
                    "body" => {
                        if body.is_some() || body_from_block.is_some() {
                            return Err(self.err(sub.line(), "body already specified"));
                        }
                        body_from_block = Some(&self.args(sub, 1)?[0]);
                    }
                    _ => return Err(self.unsupported_sub(sub, "respond", "body")),
                }
            }
        }
        if body.is_none() {
            body = body_from_block;
        }
        if body.is_none() && status.is_none() {
            return Err(self.arg_err(args.last().unwrap_or(&d.name)));
        }
        let status = match status {
            None => 200,
            Some(t) => parse_status(&t.text, 100..=599)
                .ok_or_else(|| self.err(t.line, format!("invalid status code '{}'", t.text)))?,
        };
        let body = match body {
            None => Default::default(),
            Some(t) => {
                placeholder::compile(&t.text, Context::Response).map_err(|m| self.err(t.line, m))?
            }
        };
        Ok(Handler::Respond { status, body })
    }

    fn redir(&self, d: &Directive, args: &[Token]) -> Result<Handler, ConfigError> {
        self.no_block(d)?;
        let (to, code) = match args {
            [to] => (to, None),
            [to, code] => (to, Some(code)),
            [] => return Err(self.arg_err(&d.name)),
            [_, code, ..] => return Err(self.arg_err(code)),
        };
        let status =
            match code.map(|c| c.text.as_str()) {
                None | Some("temporary") => 302,
                Some("permanent") => 301,
                Some("html") => return Err(self.err(
                    d.line(),
                    "redir 'html' is not supported by ringproxy (supported: temporary, permanent, \
                     or a 3xx status code)",
                )),
                Some(text) => {
                    match parse_status(text, 300..=399).or_else(|| parse_status(text, 401..=401)) {
                        Some(code) => code,
                        None => {
                            let line = code.map_or(d.line(), |c| c.line);
                            return Err(self.err(
                                line,
                                format!("Redir code not in the 3xx range or 401: '{text}'"),
                            ));
                        }
                    }
                }
            };
        let to_template =
            placeholder::compile(&to.text, Context::Response).map_err(|m| self.err(to.line, m))?;
        Ok(Handler::Redirect { to: to_template, status })
    }

    fn tls(&self, d: &Directive) -> Result<TlsPolicy, ConfigError> {
        if let Some(block) = &d.block {
            return Err(self.err(
                block.line,
                "tls options blocks are not supported by ringproxy (supported: tls internal, tls \
                 <email>, tls <cert_file> <key_file>)",
            ));
        }
        match &d.args[..] {
            [one] if one.text == "internal" => Ok(TlsPolicy::Internal),
            [one] if one.text.contains('@') => Ok(TlsPolicy::Acme { email: Some(one.text.clone()) }),
            [one] => Err(self.err(
                one.line,
                format!(
                    "tls '{}': expected 'internal', an email address, or a certificate and key file",
                    one.text
                ),
            )),
            [cert, key] => Ok(TlsPolicy::Files { cert: self.path(cert), key: self.path(key) }),
            [] => Err(self.arg_err(&d.name)),
            [_, key, ..] => Err(self.arg_err(key)),
        }
    }

    fn log(&self, d: &Directive) -> Result<AccessLog, ConfigError> {
        if let Some(arg) = d.args.first() {
            return Err(self.err(
                arg.line,
                format!("named loggers ('log {}') are not supported by ringproxy", arg.text),
            ));
        }
        let mut log = AccessLog { output: LogOutput::Stderr, format: LogFormat::Json };
        let Some(block) = &d.block else {
            return Ok(log);
        };
        for sub in &block.items {
            match sub.name.text.as_str() {
                "output" => {
                    let kind = &self.some_args(sub)?[0];
                    log.output = match kind.text.as_str() {
                        "stdout" => LogOutput::Stdout,
                        "stderr" => LogOutput::Stderr,
                        "discard" => LogOutput::Discard,
                        "file" => {
                            if let Some(block) = &sub.block {
                                return Err(self.err(
                                    block.line,
                                    "log file rolling options are not supported by ringproxy; \
                                     rotate the file with logrotate",
                                ));
                            }
                            LogOutput::File(self.path(&self.args_with_block(sub, 2)?[1]))
                        }
                        other => {
                            return Err(self.err(
                                kind.line,
                                format!(
                                    "log output '{other}' is not supported by ringproxy \
                                     (supported: discard, file, stderr, stdout)"
                                ),
                            ))
                        }
                    };
                    if !matches!(log.output, LogOutput::File(_)) {
                        self.args(sub, 1)?;
                    }
                }
                "format" => {
                    let kind = &self.args(sub, 1)?[0];
                    log.format = match kind.text.as_str() {
                        "json" => LogFormat::Json,
                        "console" => LogFormat::Console,
                        other => {
                            return Err(self.err(
                                kind.line,
                                format!(
                                    "log format '{other}' is not supported by ringproxy \
                                     (supported: console, json)"
                                ),
                            ))
                        }
                    };
                }
                _ => return Err(self.unsupported_sub(sub, "log", "format, output")),
            }
        }
        Ok(log)
    }

    fn reverse_proxy(&mut self, d: &Directive, args: &[Token]) -> Result<Handler, ConfigError> {
        let mut upstreams = Vec::new();
        for arg in args {
            upstreams.push(self.upstream(arg)?);
        }
        let mut set = UpstreamSet {
            origin: Origin { file: self.file.to_string(), line: d.line() },
            ..UpstreamSet::default()
        };
        let mut health_uri: Option<String> = None;
        let mut health_interval: Option<(Duration, usize)> = None;
        let mut health_timeout: Option<(Duration, usize)> = None;
        if let Some(block) = &d.block {
            for sub in &block.items {
                let name = sub.name.text.as_str();
                match name {
                    "to" => {
                        self.no_block(sub)?;
                        for arg in self.some_args(sub)? {
                            upstreams.push(self.upstream(arg)?);
                        }
                    }
                    "lb_policy" => {
                        let policy = &self.some_args(sub)?[0];
                        set.lb_policy = match policy.text.as_str() {
                            "round_robin" => LbPolicy::RoundRobin,
                            "first" => LbPolicy::First,
                            "least_conn" => LbPolicy::LeastConn,
                            "random" => LbPolicy::Random,
                            "ip_hash" => LbPolicy::IpHash,
                            other => {
                                return Err(self.err(
                                    policy.line,
                                    format!(
                                        "lb_policy '{other}' is not supported by ringproxy \
                                         (supported: {SUPPORTED_LB_POLICIES})"
                                    ),
                                ))
                            }
                        };
                        self.args(sub, 1)?;
                    }
                    "health_uri" => {
                        let uri = &self.args(sub, 1)?[0];
                        if !uri.text.starts_with('/') {
                            return Err(self.err(
                                uri.line,
                                format!("health_uri must start with '/', got '{}'", uri.text),
                            ));
                        }
                        health_uri = Some(uri.text.clone());
                    }
                    "health_interval" => {
                        health_interval = Some((self.duration(&self.args(sub, 1)?[0])?, sub.line()))
                    }
                    "health_timeout" => {
                        health_timeout = Some((self.duration(&self.args(sub, 1)?[0])?, sub.line()))
                    }
                    "fail_duration" => set.fail_duration = self.duration(&self.args(sub, 1)?[0])?,
                    "max_fails" => {
                        let n = &self.args(sub, 1)?[0];
                        set.max_fails =
                            n.text.parse::<u32>().ok().filter(|n| *n > 0).ok_or_else(|| {
                                self.err(
                                    n.line,
                                    format!(
                                        "invalid max_fails '{}': must be a positive integer",
                                        n.text
                                    ),
                                )
                            })?;
                    }
                    "flush_interval" => {
                        // Accepted for compatibility: ringproxy always streams, which is what
                        // any flush_interval asks for at the latency we care about.
                        let v = &self.args(sub, 1)?[0];
                        if v.text != "-1" {
                            self.duration(v)?;
                        }
                    }
                    "header_up" | "header_down" => {
                        let op = self.header_op(sub, name == "header_up")?;
                        if name == "header_up" {
                            set.header_up.push(op);
                        } else {
                            set.header_down.push(op);
                        }
                    }
                    "transport" => self.transport(sub, &mut set.transport)?,
                    _ => {
                        return Err(self.unsupported_sub(
                            sub,
                            "reverse_proxy",
                            SUPPORTED_PROXY_OPTIONS,
                        ))
                    }
                }
            }
        }
        if upstreams.is_empty() {
            return Err(self.err(d.line(), "reverse_proxy needs at least one upstream"));
        }
        set.upstreams = upstreams;
        match health_uri {
            Some(uri) => {
                set.health = Some(HealthCheck {
                    uri,
                    interval: health_interval.map_or(limits::DEFAULT_HEALTH_INTERVAL, |(v, _)| v),
                    timeout: health_timeout.map_or(limits::DEFAULT_HEALTH_TIMEOUT, |(v, _)| v),
                });
            }
            None => {
                if let Some((_, line)) = health_interval.or(health_timeout) {
                    return Err(self.err(
                        line,
                        "active health checks need health_uri (health_interval and \
                         health_timeout have no effect without it)",
                    ));
                }
            }
        }
        let index = self.upstream_sets.len();
        self.upstream_sets.push(set);
        Ok(Handler::Proxy(index))
    }

    fn upstream(&self, token: &Token) -> Result<Upstream, ConfigError> {
        let parsed = address::parse_upstream(&token.text).map_err(|m| self.err(token.line, m))?;
        let addrs = address::resolve_upstream(&parsed, &*self.options.resolver).map_err(|e| {
            self.err(token.line, format!("cannot resolve upstream '{}': {e}", token.text))
        })?;
        Ok(Upstream { display: token.text.clone(), addrs })
    }

    fn header_op(&self, d: &Directive, up: bool) -> Result<HeaderOp, ConfigError> {
        self.no_block(d)?;
        let context = if up { Context::HeaderUp } else { Context::Response };
        let field_name = |t: &Token, name: &str| -> Result<String, ConfigError> {
            if name.is_empty() || !name.bytes().all(is_token_byte) {
                return Err(self.err(t.line, format!("invalid header name '{}'", t.text)));
            }
            Ok(name.to_string())
        };
        let value =
            |t: &Token| placeholder::compile(&t.text, context).map_err(|m| self.err(t.line, m));
        match &d.args[..] {
            [field] => match field.text.strip_prefix('-') {
                Some(name) => Ok(HeaderOp::Remove { name: field_name(field, name)? }),
                None => Err(self.arg_err(field)),
            },
            [field, v] => {
                if let Some(name) = field.text.strip_prefix('+') {
                    Ok(HeaderOp::Add { name: field_name(field, name)?, value: value(v)? })
                } else if field.text.starts_with('-') {
                    Err(self.arg_err(field))
                } else {
                    Ok(HeaderOp::Set { name: field_name(field, &field.text)?, value: value(v)? })
                }
            }
            [] => Err(self.arg_err(&d.name)),
            [_, _, third, ..] => Err(self.err(
                third.line,
                format!(
                    "{} with a search and replace is not supported by ringproxy (supported: Name \
                     value, +Name value, -Name)",
                    d.name.text
                ),
            )),
        }
    }

    fn transport(&self, d: &Directive, t: &mut Transport) -> Result<(), ConfigError> {
        let kind = &self.args_with_block(d, 1)?[0];
        if kind.text != "http" {
            return Err(self.err(
                kind.line,
                format!(
                    "transport '{}' is not supported by ringproxy (supported: http)",
                    kind.text
                ),
            ));
        }
        let Some(block) = &d.block else { return Ok(()) };
        for sub in &block.items {
            let value = &self.args(sub, 1)?[0];
            match sub.name.text.as_str() {
                "dial_timeout" => t.dial_timeout = self.duration(value)?,
                "response_header_timeout" => {
                    t.response_header_timeout = Some(self.duration(value)?)
                }
                "keepalive" => {
                    t.keepalive = match value.text.as_str() {
                        "off" => None,
                        _ => Some(self.duration(value)?),
                    }
                }
                "keepalive_idle_conns" => {
                    t.keepalive_idle_conns = value.text.parse().map_err(|_| {
                        self.err(
                            value.line,
                            format!("invalid keepalive_idle_conns '{}'", value.text),
                        )
                    })?;
                }
                _ => {
                    return Err(self.unsupported_sub(
                        sub,
                        "transport http",
                        SUPPORTED_TRANSPORT_OPTIONS,
                    ))
                }
            }
        }
        Ok(())
    }

    // ---- listeners -----------------------------------------------------------------------

    fn listeners(
        &self,
        sites: &[ParsedSite],
        g: &Globals,
        lines: &GlobalLines,
    ) -> Result<Vec<ListenerConfig>, ConfigError> {
        if g.http_port == g.https_port {
            let line = lines.https_port.or(lines.http_port).unwrap_or(1);
            return Err(self.err(
                line,
                format!("http_port and https_port must differ (both are {})", g.http_port),
            ));
        }
        struct Building {
            tls: bool,
            /// The address that decided `tls`, for the conflict message.
            first: String,
            sites: Vec<Site>,
            /// Host keys already served on this port ("" = catch-all).
            hosts: HashMap<String, ()>,
        }
        let mut ports: Vec<(u16, Building)> = Vec::new();

        for site in sites {
            // Index into `ports[..].sites` of this block's site per (port, tls policy).
            let mut placed: Vec<(u16, TlsPolicy, usize, bool)> = Vec::new();
            for (key, addr) in &site.addresses {
                let (port, tls) = self.placement(key, addr, site, g)?;
                let building = match ports.iter_mut().find(|(p, _)| *p == port) {
                    Some((_, b)) => b,
                    None => {
                        ports.push((
                            port,
                            Building {
                                tls: tls != TlsPolicy::None,
                                first: key.text.clone(),
                                sites: Vec::new(),
                                hosts: HashMap::new(),
                            },
                        ));
                        &mut ports.last_mut().expect("just pushed").1
                    }
                };
                if building.tls != (tls != TlsPolicy::None) {
                    let (https, http) = if building.tls {
                        (building.first.as_str(), key.text.as_str())
                    } else {
                        (key.text.as_str(), building.first.as_str())
                    };
                    return Err(self.err(
                        key.line,
                        format!(
                            "port {port} is configured for both HTTPS ('{https}') and HTTP \
                             ('{http}'); ringproxy cannot serve both on one port"
                        ),
                    ));
                }
                let host_key = match &addr.host {
                    None => String::new(),
                    Some(HostPattern::Exact(h)) => h.clone(),
                    Some(HostPattern::Wildcard(s)) => format!("*{s}"),
                };
                if building.hosts.insert(host_key, ()).is_some() {
                    return Err(
                        self.err(key.line, format!("ambiguous site definition: {}", key.text))
                    );
                }
                match placed.iter_mut().find(|(p, policy, _, _)| *p == port && *policy == tls) {
                    Some((_, _, index, catch_all)) => match &addr.host {
                        Some(h) => building.sites[*index].hosts.push(h.clone()),
                        None => *catch_all = true,
                    },
                    None => {
                        building.sites.push(Site {
                            hosts: addr.host.iter().cloned().collect(),
                            tls: tls.clone(),
                            routes: site.routes.clone(),
                            access_log: site.extras.access_log.clone(),
                            origin: site.origin.clone(),
                        });
                        placed.push((port, tls, building.sites.len() - 1, addr.host.is_none()));
                    }
                }
            }
            for (port, _, index, catch_all) in placed {
                if catch_all {
                    if let Some((_, b)) = ports.iter_mut().find(|(p, _)| *p == port) {
                        b.sites[index].hosts.clear();
                    }
                }
            }
        }

        let mut listeners: Vec<ListenerConfig> = ports
            .into_iter()
            .map(|(port, b)| ListenerConfig {
                bind: any_addr(port),
                kind: if b.tls { ListenerKind::Tls } else { ListenerKind::Plaintext },
                sites: b.sites,
            })
            .collect();

        if g.auto_https == AutoHttps::On {
            add_redirects(&mut listeners, g);
        }
        for l in &mut listeners {
            // Stable: file order within each class.
            l.sites.sort_by_key(site_class);
        }
        listeners.sort_by_key(|l| l.bind.port());
        Ok(listeners)
    }

    /// Decides the port and TLS policy of one site address, as Caddy would.
    fn placement(
        &self,
        key: &Token,
        addr: &SiteAddress,
        site: &ParsedSite,
        g: &Globals,
    ) -> Result<(u16, TlsPolicy), ConfigError> {
        let port = match (addr.port, addr.scheme) {
            (Some(p), _) => p,
            (None, Some(Scheme::Http)) => g.http_port,
            (None, _) => g.https_port,
        };
        if (addr.scheme == Some(Scheme::Http) && port == g.https_port)
            || (addr.scheme == Some(Scheme::Https) && port == g.http_port)
        {
            return Err(
                self.err(key.line, format!("[{}] scheme and port violate convention", key.text))
            );
        }
        let explicit = site.extras.tls.as_ref();
        let wants_tls = match addr.scheme {
            Some(Scheme::Https) => true,
            Some(Scheme::Http) => false,
            None => {
                // Caddy serves TLS on a hostless `:https_port` too (and then fails every
                // handshake for lack of a certificate); the error below says so up front.
                port != g.http_port
                    && (addr.host.is_some() || explicit.is_some() || port == g.https_port)
                    && (g.auto_https != AutoHttps::Off || explicit.is_some())
            }
        };
        if !wants_tls {
            if let Some((_, line)) = explicit {
                return Err(self.err(
                    *line,
                    format!("site address '{}' is plaintext HTTP (port {port}) but the site has a tls directive", key.text),
                ));
            }
            return Ok((port, TlsPolicy::None));
        }
        let policy = match (explicit, &addr.host) {
            (Some((policy, _)), _) => policy.clone(),
            (None, _) if g.auto_https == AutoHttps::Off => {
                return Err(self.err(
                    key.line,
                    format!(
                        "site address '{}' needs a certificate but auto_https is off; add 'tls \
                         <cert_file> <key_file>' or 'tls internal'",
                        key.text
                    ),
                ))
            }
            (None, Some(host)) if address::is_internal_host(host) || g.local_certs => {
                TlsPolicy::Internal
            }
            (None, _) => TlsPolicy::Acme { email: None },
        };
        match (&addr.host, &policy) {
            (None, TlsPolicy::Files { .. }) => {}
            (None, _) => {
                return Err(self.err(
                    key.line,
                    format!(
                        "site address '{}' is HTTPS but has no hostname, so ringproxy cannot \
                         obtain a certificate for it; add a hostname, use 'tls <cert_file> \
                         <key_file>', or serve plaintext with http://",
                        key.text
                    ),
                ))
            }
            (Some(HostPattern::Wildcard(_)), TlsPolicy::Acme { .. }) => {
                return Err(self.err(
                    key.line,
                    format!(
                        "site address '{}': wildcard certificates need the ACME DNS challenge, \
                         which ringproxy does not support; use 'tls internal' or 'tls <cert_file> <key_file>'",
                        key.text
                    ),
                ))
            }
            _ => {}
        }
        Ok((port, policy))
    }
}

/// Adds Caddy's automatic HTTP→HTTPS redirects on `http_port`: one redirect site per HTTPS
/// site (for the hosts the user does not already serve there) and a catch-all that redirects
/// any other host, unless the user has their own catch-all on that port.
fn add_redirects(listeners: &mut Vec<ListenerConfig>, g: &Globals) {
    let http_index = listeners.iter().position(|l| l.bind.port() == g.http_port);
    let served: Vec<HostPattern> = http_index
        .map(|i| listeners[i].sites.iter().flat_map(|s| s.hosts.iter().cloned()).collect())
        .unwrap_or_default();
    let user_catch_all =
        http_index.is_some_and(|i| listeners[i].sites.iter().any(|s| s.hosts.is_empty()));

    let mut redirected: Vec<HostPattern> = Vec::new();
    let mut sites = Vec::new();
    for listener in listeners.iter().filter(|l| l.kind == ListenerKind::Tls) {
        let port = listener.bind.port();
        for site in &listener.sites {
            let hosts: Vec<HostPattern> = site
                .hosts
                .iter()
                .filter(|h| !served.contains(h) && !redirected.contains(h))
                .cloned()
                .collect();
            if hosts.is_empty() {
                continue;
            }
            redirected.extend(hosts.iter().cloned());
            let keep_port = port != g.https_port && port != limits::DEFAULT_HTTPS_PORT;
            sites.push(redirect_site(hosts, keep_port.then_some(port), site.origin.clone()));
        }
    }
    let Some(origin) = sites.first().map(|s| s.origin.clone()) else {
        return;
    };
    if !user_catch_all {
        sites.push(redirect_site(Vec::new(), None, origin));
    }
    match http_index {
        Some(i) => listeners[i].sites.extend(sites),
        None => listeners.push(ListenerConfig {
            bind: any_addr(g.http_port),
            kind: ListenerKind::Redirect,
            sites,
        }),
    }
}

fn redirect_site(hosts: Vec<HostPattern>, port: Option<u16>, origin: Origin) -> Site {
    Site {
        hosts,
        tls: TlsPolicy::None,
        routes: vec![Route {
            matcher: None,
            handler: Handler::HttpsRedirect { port },
            group: None,
        }],
        access_log: None,
        origin,
    }
}

/// 0: has an exact host, 1: only wildcards, 2: catch-all.
fn site_class(site: &Site) -> u8 {
    if site.hosts.is_empty() {
        2
    } else if site.hosts.iter().any(|h| matches!(h, HostPattern::Exact(_))) {
        0
    } else {
        1
    }
}

fn any_addr(port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port)
}

fn empty_matcher() -> Matcher {
    Matcher {
        paths: Vec::new(),
        hosts: Vec::new(),
        methods: Vec::new(),
        headers: Vec::new(),
        not: Vec::new(),
    }
}

fn path_only(paths: Vec<super::PathPattern>) -> Matcher {
    Matcher { paths, ..empty_matcher() }
}

fn pend(order: u8, def: Option<MatcherDef>, handler: Handler) -> Pending {
    let (matcher, single_path) = match def {
        Some(d) => (Some(d.matcher), d.single_path),
        None => (None, None),
    };
    Pending { order, single_path, route: Route { matcher, handler, group: None } }
}

/// Caddy's `sortRoutes`: directive order first; for the same directive, the longer single path
/// first (ignoring a trailing `*`; on a tie of trimmed paths the one without `*` first, then
/// lexical), and routes with a matcher before routes without. Implemented as a stable
/// insertion sort on Caddy's `less`, which is not a total order: std's sort may panic on such
/// comparators, and insertion sort is what Go's stable sort runs on small inputs anyway.
fn sort_like_caddy(routes: &mut [Pending]) {
    for i in 1..routes.len() {
        let mut j = i;
        while j > 0 && caddy_less(&routes[j], &routes[j - 1]) {
            routes.swap(j, j - 1);
            j -= 1;
        }
    }
}

fn caddy_less(a: &Pending, b: &Pending) -> bool {
    if a.order != b.order {
        return a.order < b.order;
    }
    if let (Some(pa), Some(pb)) = (&a.single_path, &b.single_path) {
        let ta = pa.strip_suffix('*').unwrap_or(pa);
        let tb = pb.strip_suffix('*').unwrap_or(pb);
        if ta == tb {
            return pa.len() < pb.len();
        }
        if ta.len() == tb.len() {
            return ta < tb;
        }
        return ta.len() > tb.len();
    }
    a.route.matcher.is_some() && b.route.matcher.is_none()
}

/// Assigns `handle` groups (only when a list has more than one handle, as Caddy does) and
/// merges adjacent grouped routes with equal matchers, which Caddy consolidates into one route
/// so that both run when the group member is chosen.
fn finish_routes(pending: Vec<Pending>) -> Vec<Route> {
    let handles = pending.iter().filter(|p| p.order == ORDER_HANDLE).count();
    let mut routes: Vec<Route> = Vec::with_capacity(pending.len());
    for p in pending {
        let mut route = p.route;
        if handles > 1 && p.order == ORDER_HANDLE {
            route.group = Some(0);
        }
        if let Some(last) = routes.last_mut() {
            if route.group.is_some() && last.group == route.group && last.matcher == route.matcher {
                let first = std::mem::replace(
                    &mut last.handler,
                    Handler::Subroute { routes: Vec::new(), strip_prefix: None },
                );
                let unguarded = |handler| Route { matcher: None, handler, group: None };
                last.handler = Handler::Subroute {
                    routes: vec![unguarded(first), unguarded(route.handler)],
                    strip_prefix: None,
                };
                continue;
            }
        }
        routes.push(route);
    }
    routes
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

/// RFC 9110 `tchar`.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}
