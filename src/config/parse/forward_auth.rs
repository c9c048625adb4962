//! `forward_auth [<matcher>] <upstreams…> { uri <target>; copy_headers <Name[>Rename]>…; … }`
//! → a [`Handler::ForwardAuth`] whose auth server is an upstream set like any
//! `reverse_proxy`'s (per-worker pools, passive health, the admin view).
//!
//! Caddy's `forward_auth` is a `reverse_proxy` shortcut, so its block takes every
//! `reverse_proxy` subdirective ringproxy has; those are read by `reverse_proxy`'s own code.
//! This file owns only `uri` and `copy_headers`. What the data path does with the handler is
//! `proxy::auth`'s.

use super::is_token_byte;
use super::reverse_proxy::{self, ProxyDraft};
use super::syntax::Directive;
use super::{Parser, Table};
use crate::config::lexer::Token;
use crate::config::placeholder::{self, Context};
use crate::config::{ConfigError, CopyHeader, ForwardAuth, Handler, Template};

/// A `forward_auth` being read.
struct AuthDraft {
    proxy: ProxyDraft,
    uri: Option<Template>,
    copy_headers: Vec<CopyHeader>,
}

/// Reads one of `forward_auth`'s own subdirectives.
type AuthOption = fn(&Parser<'_>, &Directive, &mut AuthDraft) -> Result<(), ConfigError>;

/// The subdirectives only `forward_auth` has; the others are `reverse_proxy`'s.
const AUTH_OPTIONS: &Table<AuthOption> = &[("copy_headers", copy_headers), ("uri", uri)];

/// `forward_auth`: adds the auth server's upstream set to the config.
pub(super) fn forward_auth(
    p: &mut Parser<'_>,
    d: &Directive,
    args: &[Token],
) -> Result<Handler, ConfigError> {
    let mut draft =
        AuthDraft { proxy: ProxyDraft::new(p, d, args)?, uri: None, copy_headers: Vec::new() };
    if let Some(block) = &d.block {
        for sub in &block.items {
            if let Some(own) = super::lookup(AUTH_OPTIONS, &sub.name.text) {
                own(p, sub, &mut draft)?;
            } else if let Some(read) = draft.proxy.option(p, sub) {
                read?;
            } else {
                return Err(unsupported(p, sub));
            }
        }
    }
    let Some(uri) = draft.uri else {
        // As Caddy: without it the auth server would get the client's own target.
        return Err(p.err(d.line(), "forward_auth needs a 'uri' subdirective"));
    };
    let set = draft.proxy.finish(p, d)?;
    Ok(Handler::ForwardAuth(ForwardAuth { set, uri, copy_headers: draft.copy_headers }))
}

/// "subdirective 'x' of forward_auth is not supported", listing both tables' names.
fn unsupported(p: &Parser<'_>, sub: &Directive) -> ConfigError {
    let mut names: Vec<&str> = AUTH_OPTIONS.iter().map(|(name, _)| *name).collect();
    names.extend(reverse_proxy::option_names());
    names.sort_unstable();
    p.err(
        sub.line(),
        format!(
            "subdirective '{}' of forward_auth is not supported by ringproxy (supported: {})",
            sub.name.text,
            names.join(", ")
        ),
    )
}

/// `uri <target>`: an origin-form target, placeholders allowed (`/verify?uri={uri}`).
fn uri(p: &Parser<'_>, d: &Directive, draft: &mut AuthDraft) -> Result<(), ConfigError> {
    let target = p.one_arg(d)?;
    // The rendered target goes into a request line: it must start as a path does and hold
    // nothing that would end the target early.
    let fits_a_request_line = target.text.bytes().all(|b| b.is_ascii_graphic());
    if !target.text.starts_with('/') || !fits_a_request_line {
        let message =
            format!("forward_auth uri must be a path starting with '/', got '{}'", target.text);
        return Err(p.err(target.line, message));
    }
    let template =
        placeholder::compile(&target.text, Context::Response).map_err(|m| p.err(target.line, m))?;
    draft.uri = Some(template);
    Ok(())
}

/// `copy_headers <Name[>Rename]>…` or its block form, one name per line; repeatable.
fn copy_headers(p: &Parser<'_>, d: &Directive, draft: &mut AuthDraft) -> Result<(), ConfigError> {
    let mut names: Vec<&Token> = d.args.iter().collect();
    if let Some(block) = &d.block {
        for line in &block.items {
            p.no_block(line)?;
            names.push(&line.name);
            names.extend(&line.args);
        }
    }
    if names.is_empty() {
        return Err(p.arg_err(&d.name));
    }
    for token in names {
        draft.copy_headers.push(copy_header(p, token)?);
    }
    Ok(())
}

/// `Name` or `From>To`.
fn copy_header(p: &Parser<'_>, token: &Token) -> Result<CopyHeader, ConfigError> {
    let (from, to) = token.text.split_once('>').unwrap_or((&token.text, &token.text));
    let valid = |name: &str| !name.is_empty() && name.bytes().all(is_token_byte);
    if !valid(from) || !valid(to) {
        return Err(p.err(token.line, format!("invalid header name '{}'", token.text)));
    }
    Ok(CopyHeader { from: from.to_string(), to: to.to_string() })
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{describe, parse, parse_err, routes_of};
    use super::*;
    use crate::config::TemplatePart;

    fn auth_of(block: &str) -> ForwardAuth {
        let routes = routes_of(&format!(":80 {{\n{block}\n\trespond 200\n}}\n"));
        match &routes[0].handler {
            Handler::ForwardAuth(auth) => auth.clone(),
            other => panic!("{other:?}"),
        }
    }

    fn copy(from: &str, to: &str) -> CopyHeader {
        CopyHeader { from: from.into(), to: to.into() }
    }

    fn err(block: &str) -> String {
        parse_err(&format!(":80 {{\n{block}\n}}\n"))
    }

    #[test]
    fn the_users_forward_auth_reads_as_caddy_reads_it() {
        let auth = auth_of(
            "@streams path /api/chat /api/asr\nforward_auth @streams localhost:3001 {\n\turi \
             /api/auth/verify\n\tcopy_headers X-User-Id X-Plan>X-User-Plan\n}",
        );
        assert_eq!(auth.uri.parts, [TemplatePart::Literal("/api/auth/verify".into())]);
        assert_eq!(
            auth.copy_headers,
            [copy("X-User-Id", "X-User-Id"), copy("X-Plan", "X-User-Plan")]
        );
        assert_eq!(auth.set, 0);
    }

    #[test]
    fn forward_auth_sorts_after_redir_and_before_handle_as_in_caddy() {
        let routes = routes_of(
            ":80 {\n\thandle /h {\n\t\trespond h\n\t}\n\tforward_auth :3001 {\n\t\turi /v\n\t}\n\t\
             redir /r /x\n\trequest_body {\n\t\tmax_size 1\n\t}\n\trespond ok\n}\n",
        );
        assert_eq!(
            describe(&routes),
            [
                "request_body 1",
                "redir 302",
                "forward_auth 0",
                "subroute [respond 200]",
                "respond 200"
            ]
        );
    }

    #[test]
    fn the_auth_server_is_an_upstream_set_with_reverse_proxys_subdirectives() {
        let config = parse(
            ":80 {\n\tforward_auth localhost:3001 {\n\t\turi /verify\n\t\tto localhost:3002\n\t\t\
             lb_policy first\n\t\theader_up X-Auth-Front ringproxy\n\t\ttransport http {\n\t\t\t\
             dial_timeout 2s\n\t\t}\n\t}\n\treverse_proxy localhost:8080\n}\n",
        );
        assert_eq!(config.upstream_sets.len(), 2);
        let auth = &config.upstream_sets[0];
        let names: Vec<&str> = auth.upstreams.iter().map(|u| u.display.as_str()).collect();
        assert_eq!(names, ["localhost:3001", "localhost:3002"]);
        assert_eq!(auth.lb_policy, crate::config::LbPolicy::First);
        assert_eq!(auth.header_up.len(), 1);
        assert_eq!(auth.transport.dial_timeout, std::time::Duration::from_secs(2));
        assert_eq!(auth.origin.line, 2);
    }

    #[test]
    fn copy_headers_takes_a_block_and_repeats() {
        let auth = auth_of(
            "forward_auth :3001 {\n\turi /v\n\tcopy_headers A {\n\t\tB>C\n\t\tD E\n\t}\n\t\
             copy_headers F\n}",
        );
        let want = [copy("A", "A"), copy("B", "C"), copy("D", "D"), copy("E", "E"), copy("F", "F")];
        assert_eq!(auth.copy_headers, want);
    }

    #[test]
    fn the_uri_takes_placeholders() {
        let auth = auth_of("forward_auth :3001 {\n\turi /verify?to={uri}\n}");
        assert_eq!(
            auth.uri.parts,
            [
                TemplatePart::Literal("/verify?to=".into()),
                TemplatePart::Placeholder(crate::config::Placeholder::Uri)
            ]
        );
    }

    #[test]
    fn bad_forward_auth_blocks_name_their_line() {
        assert_eq!(
            err("forward_auth :3001"),
            "Caddyfile:2 - forward_auth needs a 'uri' subdirective"
        );
        assert_eq!(
            err("forward_auth {\n\turi /v\n}"),
            "Caddyfile:2 - forward_auth needs at least one upstream"
        );
        assert_eq!(
            err("forward_auth :3001 {\n\turi\n}"),
            "Caddyfile:3 - wrong argument count or unexpected line ending after 'uri'"
        );
        assert_eq!(
            err("forward_auth :3001 {\n\turi verify\n}"),
            "Caddyfile:3 - forward_auth uri must be a path starting with '/', got 'verify'"
        );
        assert_eq!(
            err("forward_auth :3001 {\n\turi \"/a b\"\n}"),
            "Caddyfile:3 - forward_auth uri must be a path starting with '/', got '/a b'"
        );
        assert!(err("forward_auth :3001 {\n\turi /v?{nope}\n}")
            .starts_with("Caddyfile:3 - placeholder {nope} is not supported by ringproxy"));
        assert_eq!(
            err("forward_auth :3001 {\n\turi /v\n\tcopy_headers\n}"),
            "Caddyfile:4 - wrong argument count or unexpected line ending after 'copy_headers'"
        );
        assert_eq!(
            err("forward_auth :3001 {\n\turi /v\n\tcopy_headers A>\n}"),
            "Caddyfile:4 - invalid header name 'A>'"
        );
        assert_eq!(
            err("forward_auth :3001 {\n\turi /v\n\tcopy_headers X(y)\n}"),
            "Caddyfile:4 - invalid header name 'X(y)'"
        );
        assert_eq!(
            err("forward_auth :3001 {\n\turi /v\n\tlb_policy first extra\n}"),
            "Caddyfile:4 - wrong argument count or unexpected line ending after 'first'"
        );
    }

    #[test]
    fn a_subdirective_neither_has_lists_both_tables() {
        let message = err("forward_auth :3001 {\n\turi /v\n\thandle_response {\n\t}\n}");
        assert!(
            message.starts_with(
                "Caddyfile:4 - subdirective 'handle_response' of forward_auth is not supported by \
                 ringproxy (supported: copy_headers, fail_duration, "
            ),
            "{message}"
        );
        assert!(message.contains(", to, transport, uri)"), "{message}");
    }
}
