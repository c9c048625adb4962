//! Tokens → typed [`Config`]: the entry points, [`ParseOptions`], and the `Parser` that every
//! decision below shares (argument counting, errors, durations, paths, dispatch tables).
//!
//! Stages: `lexer` (text → tokens) → `syntax` (tokens → blocks, imports expanded) → this
//! module: globals, then each site block into routes, then sites into listeners. Each decision
//! lives in one file:
//!
//! | File | Decides |
//! |---|---|
//! | `globals` | the global options block, except `servers` |
//! | `servers` | `servers { … }`: timeouts and request-head limits for every listener |
//! | `site` | a site block's directives, Caddy's directive order, `handle` groups |
//! | `matchers` | named (`@name …`) and inline (`*`, `/path`, `@name`) matchers |
//! | `handlers` | `respond`, `redir`, `tls`, `log` |
//! | `guards` | `request_body`, `basic_auth` |
//! | `headers` | `header` and the response ops it shares with `header_down` |
//! | `forward_auth` | `forward_auth`'s own subdirectives (the rest are `reverse_proxy`'s) |
//! | `encode` | `encode`: codings, levels, which responses |
//! | `files` | `root`, `try_files`, `file_server` |
//! | `reverse_proxy` | upstreams, load balancing, health checks, header ops, transport |
//! | `listeners` | each site address's port and TLS policy, automatic redirects, site order |
//!
//! Every level of the vocabulary (global options, directives, subdirectives, matchers, enum
//! values such as `lb_policy`) is one `Table`: the rows dispatch, and the same rows list what
//! is supported when a name is unknown, so the two cannot drift. Adding an option is one row
//! and one function. Anything outside the tables is a [`ConfigError`] at `file:line`; nothing
//! is silently ignored. Caddy's wording is reused where Caddy has a message for the same
//! mistake, so users can search for it.

mod encode;
mod files;
mod forward_auth;
mod globals;
mod guards;
mod handlers;
mod headers;
mod listeners;
mod matchers;
mod reverse_proxy;
mod servers;
mod site;
#[cfg(test)]
mod test_support;

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::address;
use super::lexer::{self, Token};
use super::sources::Sources;
use super::syntax::{self, Directive};
use super::units::parse_duration;
use super::{Config, ConfigError, UpstreamSet};

/// Hooks for what parsing reads from the outside world: environment variables (`{$VAR}`) and
/// name resolution (upstream hosts). The default resolves with the system resolver and sees
/// no environment variables (`{$VAR}` is empty, as in Caddy for an unset variable): only
/// `main` reads the process environment, and passes it in with [`ParseOptions::with_env`].
/// Tests pass their own hooks so they neither depend on a developer's shell nor on DNS.
pub struct ParseOptions {
    env: Box<EnvLookup>,
    resolver: Box<Resolver>,
    read_file: Box<ReadFile>,
    list_dir: Box<ListDir>,
}

/// Reads a whole file (`import`).
pub type ReadFile = dyn Fn(&Path) -> io::Result<Vec<u8>>;

/// Lists the entries of a directory, as paths (`import` of a glob).
pub type ListDir = dyn Fn(&Path) -> io::Result<Vec<std::path::PathBuf>>;

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

impl ParseOptions {
    /// Replaces how `import` reads files and lists directories (the real file system by
    /// default); a fuzz target, for one, refuses both.
    pub fn with_files(
        mut self,
        read_file: impl Fn(&Path) -> io::Result<Vec<u8>> + 'static,
        list_dir: impl Fn(&Path) -> io::Result<Vec<std::path::PathBuf>> + 'static,
    ) -> Self {
        self.read_file = Box::new(read_file);
        self.list_dir = Box::new(list_dir);
        self
    }
}

impl Default for ParseOptions {
    fn default() -> Self {
        ParseOptions {
            env: Box::new(|_| None),
            resolver: Box::new(address::system_resolve),
            read_file: Box::new(|path| std::fs::read(path)),
            list_dir: Box::new(|dir| {
                std::fs::read_dir(dir)?.map(|entry| entry.map(|e| e.path())).collect()
            }),
        }
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
    let mut sources = Sources::new(file_name, base_dir, last_line);
    let files = syntax::FileAccess {
        env: &*options.env,
        read_file: &*options.read_file,
        list_dir: &*options.list_dir,
    };
    let document = syntax::parse_document(tokens, &mut sources, last_line, files)?;
    let mut parser = Parser { sources: &sources, base_dir, options, upstream_sets: Vec::new() };
    let globals = parser.globals(document.globals.as_ref())?;
    let mut sites = Vec::with_capacity(document.sites.len());
    for block in &document.sites {
        sites.push(parser.site(block)?);
    }
    let listeners = parser.listeners(&sites, &globals)?;
    Ok(Config { globals: globals.globals, listeners, upstream_sets: parser.upstream_sets })
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

/// One level of the Caddyfile's vocabulary: each name with what it means (a handler function
/// or a value). Rows are in the order the "supported: …" list of the error names them:
/// alphabetical, except where a value list reads better in another order (`auto_https`).
type Table<T> = [(&'static str, T)];

/// The row named `name`.
fn lookup<'t, T>(table: &'t Table<T>, name: &str) -> Option<&'t T> {
    table.iter().find(|(row, _)| *row == name).map(|(_, value)| value)
}

/// The names of `table`, for "supported: …".
fn supported<T>(table: &Table<T>) -> String {
    table.iter().map(|(name, _)| *name).collect::<Vec<_>>().join(", ")
}

/// State shared by every decision of one parse: where errors point, where relative paths
/// resolve, the outside-world hooks, and the upstream sets collected so far.
struct Parser<'a> {
    /// The files tokens came from: every error names the file and line it is in.
    sources: &'a Sources,
    base_dir: &'a Path,
    options: &'a ParseOptions,
    upstream_sets: Vec<UpstreamSet>,
}

impl Parser<'_> {
    fn err(&self, line: usize, message: impl Into<String>) -> ConfigError {
        self.sources.error(line, message)
    }

    /// Where a directive on `line` was written, for summaries and logs.
    fn origin(&self, line: usize) -> crate::config::Origin {
        let (file, line) = self.sources.locate(line);
        crate::config::Origin { file: file.to_string(), line }
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

    /// Exactly one argument and no block.
    fn one_arg<'d>(&self, d: &'d Directive) -> Result<&'d Token, ConfigError> {
        Ok(&self.args(d, 1)?[0])
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

    /// A file path from the Caddyfile, relative ones against the Caddyfile's directory.
    fn path(&self, token: &Token) -> PathBuf {
        let p = Path::new(&token.text);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base_dir.join(p)
        }
    }

    /// The row of `table` that `token` names, or "`what` 'x' is not supported by ringproxy
    /// (supported: …)".
    fn pick<'t, T>(
        &self,
        table: &'t Table<T>,
        what: &str,
        token: &Token,
    ) -> Result<&'t T, ConfigError> {
        lookup(table, &token.text).ok_or_else(|| {
            self.err(
                token.line,
                format!(
                    "{what} '{}' is not supported by ringproxy (supported: {})",
                    token.text,
                    supported(table)
                ),
            )
        })
    }

    /// The row of `table` that subdirective `d` of `parent` names, or "subdirective 'x' of
    /// `parent` is not supported by ringproxy (supported: …)".
    fn pick_sub<'t, T>(
        &self,
        table: &'t Table<T>,
        parent: &str,
        d: &Directive,
    ) -> Result<&'t T, ConfigError> {
        lookup(table, &d.name.text).ok_or_else(|| {
            self.err(
                d.line(),
                format!(
                    "subdirective '{}' of {parent} is not supported by ringproxy (supported: {})",
                    d.name.text,
                    supported(table)
                ),
            )
        })
    }
}

/// RFC 9110 `tchar`.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::test_support::{parse, parse_err, parse_with};
    use super::*;

    #[test]
    fn supported_lists_follow_row_order() {
        let table: &Table<u8> = &[("b", 1), ("a", 2)];
        assert_eq!(supported(table), "b, a");
        assert_eq!(lookup(table, "a"), Some(&2));
        assert_eq!(lookup(table, "c"), None);
        assert_eq!(supported::<u8>(&[]), "");
    }

    #[test]
    fn missing_arguments_point_at_the_last_token_of_the_line() {
        assert_eq!(
            parse_err("{\n\temail\n}\n"),
            "Caddyfile:2 - wrong argument count or unexpected line ending after 'email'"
        );
    }

    #[test]
    fn extra_arguments_point_at_the_last_expected_one() {
        assert_eq!(
            parse_err("{\n\temail a@b.c d@e.f\n}\n"),
            "Caddyfile:2 - wrong argument count or unexpected line ending after 'a@b.c'"
        );
        assert_eq!(
            parse_err("{\n\tlocal_certs yes\n}\n"),
            "Caddyfile:2 - wrong argument count or unexpected line ending after 'local_certs'"
        );
    }

    #[test]
    fn a_block_where_none_is_taken_points_at_its_brace() {
        assert_eq!(
            parse_err("{\n\temail a@b.c {\n\t}\n}\n"),
            "Caddyfile:2 - 'email' does not take a block"
        );
    }

    #[test]
    fn relative_paths_resolve_against_the_caddyfile_directory() {
        let config = parse("{\n\tacme_ca_root roots/ca.pem\n\tstorage file_system /var/rp\n}\n");
        assert_eq!(config.globals.acme_ca_root, Some(PathBuf::from("/etc/caddy/roots/ca.pem")));
        assert_eq!(config.globals.storage, Some(PathBuf::from("/var/rp")));
    }

    #[test]
    fn errors_name_the_file_as_given() {
        let err = parse_with("{\n\tbogus\n}\n", "sites/Caddyfile").unwrap_err();
        assert_eq!((err.file.as_str(), err.line), ("sites/Caddyfile", 2));
    }

    #[test]
    fn an_empty_file_has_no_listeners() {
        let config = parse("");
        assert!(config.listeners.is_empty());
        assert!(config.upstream_sets.is_empty());
        assert_eq!(config.globals, crate::config::Globals::default());
    }

    #[test]
    fn an_unreadable_file_is_an_error_about_the_whole_file() {
        let err = parse_file(Path::new("/nonexistent/Caddyfile"), &ParseOptions::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("/nonexistent/Caddyfile - cannot read the configuration file: "),
            "{err}"
        );
    }

    #[test]
    fn the_default_options_see_no_environment() {
        let config = parse_bytes(
            b"{$RINGPROXY_TEST_SITE}:8080 {\n\trespond ok\n}\n",
            "Caddyfile",
            Path::new("."),
            &ParseOptions::default(),
        )
        .unwrap();
        assert_eq!(config.listeners[0].bind.port(), 8080);
        assert!(config.listeners[0].sites[0].hosts.is_empty());
    }
}
