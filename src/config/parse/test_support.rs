//! Helpers for the parser's unit tests: parse a small Caddyfile with a fixed environment and a
//! resolver that knows one name, so no test depends on a developer's shell or on DNS.

use std::io;
use std::net::SocketAddr;
use std::path::Path;

use super::{parse_bytes, ParseOptions};
use crate::config::{Config, ConfigError, Handler, Route, Site};

/// `{$UPSTREAM_PORT}` is `9001`; `backend.internal` resolves to `fd00::7` and `10.0.0.7`;
/// every other name fails to resolve.
pub(super) fn options() -> ParseOptions {
    ParseOptions::default()
        .with_env(|name| (name == "UPSTREAM_PORT").then(|| "9001".to_string()))
        .with_resolver(|host, port| match host {
            "backend.internal" => Ok(vec![
                SocketAddr::new("fd00::7".parse().unwrap(), port),
                SocketAddr::new("10.0.0.7".parse().unwrap(), port),
            ]),
            _ => Err(io::Error::new(io::ErrorKind::NotFound, "no such host")),
        })
}

/// Parses `text` as the file `file`, relative paths against `/etc/caddy`.
pub(super) fn parse_with(text: &str, file: &str) -> Result<Config, ConfigError> {
    parse_bytes(text.as_bytes(), file, Path::new("/etc/caddy"), &options())
}

/// Parses `text`, which must be valid.
pub(super) fn parse(text: &str) -> Config {
    parse_with(text, "Caddyfile").unwrap_or_else(|e| panic!("{e}\n--- input ---\n{text}"))
}

/// The error `text` fails with, as users see it (`Caddyfile:3 - …`).
pub(super) fn parse_err(text: &str) -> String {
    match parse_with(text, "Caddyfile") {
        Ok(_) => "(parsed without error)".to_string(),
        Err(e) => e.to_string(),
    }
}

/// The only site of the only listener.
pub(super) fn only_site(config: &Config) -> &Site {
    assert_eq!(config.listeners.len(), 1, "{:#?}", config.listeners);
    assert_eq!(config.listeners[0].sites.len(), 1, "{:#?}", config.listeners[0].sites);
    &config.listeners[0].sites[0]
}

/// The routes of the only site of `text`, a single plaintext site.
pub(super) fn routes_of(text: &str) -> Vec<Route> {
    only_site(&parse(text)).routes.clone()
}

/// A short name for each handler, to assert route order at a glance: `respond 404`,
/// `redir 301`, `proxy 0`, `https-redirect`, `subroute [respond 200, proxy 1]`,
/// `strip /api [proxy 0]`.
pub(super) fn describe(routes: &[Route]) -> Vec<String> {
    routes
        .iter()
        .map(|route| match &route.handler {
            Handler::Proxy(index) => format!("proxy {index}"),
            Handler::Respond { status, .. } => format!("respond {status}"),
            Handler::Redirect { status, .. } => format!("redir {status}"),
            Handler::HttpsRedirect { .. } => "https-redirect".to_string(),
            Handler::Metrics => "metrics".to_string(),
            Handler::BasicAuth(auth) => format!("basic_auth {}", auth.accounts.len()),
            Handler::Encode(encode) => format!("encode {:?}", encode.prefer),
            Handler::Root(path) => format!("root {}", path.display()),
            Handler::TryFiles(_) => "try_files".to_string(),
            Handler::FileServer(_) => "file_server".to_string(),
            Handler::RequestBody { max_size } => match max_size {
                Some(max) => format!("request_body {max}"),
                None => "request_body".to_string(),
            },
            Handler::ForwardAuth(auth) => format!("forward_auth {}", auth.set),
            Handler::Header(_) => "header".to_string(),
            Handler::Subroute { routes, strip_prefix } => {
                let inner = describe(routes).join(", ");
                match strip_prefix {
                    Some(prefix) => format!("strip {prefix} [{inner}]"),
                    None => format!("subroute [{inner}]"),
                }
            }
        })
        .collect()
}
