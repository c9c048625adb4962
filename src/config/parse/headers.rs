//! `header [<matcher>] [[+|-|?|>]<field> [<value>|<find> <replace>]] [{ …; defer }]` and the
//! response-side ops it shares with `reverse_proxy { header_down … }`: every form Caddy 2.11
//! accepts, in Caddy's meaning (Caddy 2.6 lacks `>`). `header_up` keeps its own, smaller
//! parser in `reverse_proxy`.
//!
//! Owns how the ops of one directive are ordered and split into immediate and deferred ones
//! (what `http::header_ops` applies to a head). Does not own where `header` sorts among the
//! directives (`site`).

use super::syntax::Directive;
use super::{is_token_byte, Parser};
use crate::config::lexer::Token;
use crate::config::placeholder::{self, Context};
use crate::config::{
    ConfigError, FieldPattern, FindPattern, Handler, HeaderOp, ResponseHeaders, Template,
};

/// Where a response op is written; the forms differ a little.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum OpSite {
    /// The `header` directive: a bare `Name` sets an empty value, as in Caddy.
    Header,
    /// `reverse_proxy { header_down … }`: a bare `Name` is an error (as it always was here).
    HeaderDown,
}

/// One parsed op and whether its `>` prefix asked for it to be deferred.
struct ParsedOp {
    op: HeaderOp,
    deferred: bool,
}

/// `header [<matcher>] [op] [{ op…; defer }]`.
pub(super) fn header(
    p: &mut Parser<'_>,
    d: &Directive,
    args: &[Token],
) -> Result<Handler, ConfigError> {
    let mut ops = Vec::new();
    let mut defer = false;
    if !args.is_empty() {
        ops.push(p.response_op(&d.name, args, OpSite::Header)?);
    }
    if let Some(block) = &d.block {
        for sub in &block.items {
            if sub.name.text == "defer" {
                if let Some(extra) = sub.args.first() {
                    return Err(p.arg_err(extra));
                }
                defer = true;
                continue;
            }
            p.no_block(sub)?;
            let mut line = Vec::with_capacity(sub.args.len() + 1);
            line.push(sub.name.clone());
            line.extend(sub.args.iter().cloned());
            ops.push(p.response_op(&sub.name, &line, OpSite::Header)?);
        }
    }
    Ok(Handler::Header(split(ops, defer)))
}

/// Caddy's meaning of one directive's ops: each `?` op is a handler of its own, applied just
/// before the head is written (its condition needs the complete head); the others form one
/// handler whose ops apply by kind (see [`caddy_order`]), deferred if `defer` is given, any op
/// has `>`, or any op deletes (a delete of a field the handler has not yet produced would
/// otherwise do nothing). Caddy nests its handlers, so the deferred ops of later ones apply
/// first.
fn split(ops: Vec<ParsedOp>, defer: bool) -> ResponseHeaders {
    let deferred_group = defer
        || ops.iter().any(|o| {
            o.deferred || matches!(o.op, HeaderOp::Remove { .. } | HeaderOp::RemoveMatching { .. })
        });
    let (defaults, mut group): (Vec<_>, Vec<_>) =
        ops.into_iter().map(|o| o.op).partition(|op| matches!(op, HeaderOp::Default { .. }));
    caddy_order(&mut group);
    let mut deferred: Vec<HeaderOp> = defaults.into_iter().rev().collect();
    if deferred_group {
        deferred.append(&mut group);
    }
    ResponseHeaders { immediate: group, deferred }
}

/// Orders the ops of one Caddy handler as Caddy applies them, whatever their line order: a
/// delete of every field first, then appends, sets, the other deletes, replacements, and (in
/// `header_down`, where they are ours) set-if-absent.
pub(super) fn caddy_order(ops: &mut [HeaderOp]) {
    ops.sort_by_key(|op| match op {
        HeaderOp::RemoveMatching { pattern } if pattern.core.is_empty() => 0,
        HeaderOp::Add { .. } => 1,
        HeaderOp::Set { .. } => 2,
        HeaderOp::Remove { .. } | HeaderOp::RemoveMatching { .. } => 3,
        HeaderOp::Replace { .. } => 4,
        HeaderOp::Default { .. } => 5,
    });
}

impl Parser<'_> {
    /// One response op from `tokens` (`[+|-|?|>]<field> [<value>|<find> <replace>]`); `at`
    /// names the line for an empty op.
    fn response_op(
        &self,
        at: &Token,
        tokens: &[Token],
        site: OpSite,
    ) -> Result<ParsedOp, ConfigError> {
        let Some(field) = tokens.first() else { return Err(self.arg_err(at)) };
        if let Some(extra) = tokens.get(3) {
            // Caddy drops what follows `<find> <replace>` without a word.
            return Err(self.arg_err(extra));
        }
        let text = field.text.as_str();
        let (prefix, name) = match text.as_bytes().first() {
            Some(b @ (b'+' | b'-' | b'?' | b'>')) => (Some(*b), &text[1..]),
            _ => (None, text),
        };
        let deferred = prefix == Some(b'>');
        let value = |t: Option<&Token>| -> Result<Template, ConfigError> {
            match t {
                Some(t) => placeholder::compile(&t.text, Context::Response)
                    .map_err(|m| self.err(t.line, m)),
                None => Ok(Template { parts: Vec::new() }),
            }
        };
        let op = match (prefix, tokens.len()) {
            (Some(b'-'), 1) => self.removal(field, name)?,
            (Some(b'-'), _) => return Err(self.arg_err(field)),
            (None | Some(b'>'), 3) => {
                let name =
                    if name == "*" { name.to_string() } else { self.field_name(field, name)? };
                let find = &tokens[1];
                let regex = regex::bytes::Regex::new(&find.text).map_err(|e| {
                    self.err(find.line, format!("invalid regular expression '{}': {e}", find.text))
                })?;
                HeaderOp::Replace { name, find: FindPattern(regex), replace: value(tokens.get(2))? }
            }
            (Some(b'+' | b'?'), 3) => {
                // Caddy drops the third token here; a replace takes a plain (or `>`) name.
                return Err(self.arg_err(&tokens[1]));
            }
            (None | Some(b'>'), 1) if site == OpSite::HeaderDown => return Err(self.arg_err(field)),
            (None | Some(b'>'), _) => {
                HeaderOp::Set { name: self.field_name(field, name)?, value: value(tokens.get(1))? }
            }
            (Some(b'+'), _) => {
                HeaderOp::Add { name: self.field_name(field, name)?, value: value(tokens.get(1))? }
            }
            (_, _) => HeaderOp::Default {
                name: self.field_name(field, name)?,
                value: value(tokens.get(1))?,
            },
        };
        Ok(ParsedOp { op, deferred })
    }

    fn field_name(&self, t: &Token, name: &str) -> Result<String, ConfigError> {
        if name.is_empty() || !name.bytes().all(is_token_byte) {
            return Err(self.err(t.line, format!("invalid header name '{}'", t.text)));
        }
        Ok(name.to_string())
    }

    /// `-Name`, or with Caddy's wildcards: `-*`, `-Prefix*`, `-*Suffix`, `-*Part*`.
    fn removal(&self, t: &Token, name: &str) -> Result<HeaderOp, ConfigError> {
        if name == "*" {
            let pattern = FieldPattern { core: String::new(), any_prefix: true, any_suffix: true };
            return Ok(HeaderOp::RemoveMatching { pattern });
        }
        let (any_prefix, rest) = match name.strip_prefix('*') {
            Some(rest) => (true, rest),
            None => (false, name),
        };
        let (any_suffix, core) = match rest.strip_suffix('*') {
            Some(core) => (true, core),
            None => (false, rest),
        };
        let core = self.field_name(t, core)?;
        if !any_prefix && !any_suffix {
            return Ok(HeaderOp::Remove { name: core });
        }
        Ok(HeaderOp::RemoveMatching { pattern: FieldPattern { core, any_prefix, any_suffix } })
    }

    /// One `header_down` line: the `header` forms, `>` accepted (a proxied head is written
    /// once, so there is nothing to defer) and `?` applied to the upstream's fields.
    pub(super) fn header_down_op(&self, d: &Directive) -> Result<HeaderOp, ConfigError> {
        self.no_block(d)?;
        Ok(self.response_op(&d.name, &d.args, OpSite::HeaderDown)?.op)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{parse_err, routes_of};
    use crate::config::{Handler, HeaderOp, ResponseHeaders};

    fn headers_of(directives: &str) -> Vec<ResponseHeaders> {
        let routes = routes_of(&format!(":80 {{\n{directives}\n\trespond 200\n}}\n"));
        routes
            .iter()
            .filter_map(|r| match &r.handler {
                Handler::Header(h) => Some(h.clone()),
                _ => None,
            })
            .collect()
    }

    /// Each op as `kind name`, immediate ones then `|` then deferred ones.
    fn shape(h: &ResponseHeaders) -> String {
        let one = |op: &HeaderOp| match op {
            HeaderOp::Set { name, .. } => format!("set {name}"),
            HeaderOp::Add { name, .. } => format!("add {name}"),
            HeaderOp::Remove { name } => format!("del {name}"),
            HeaderOp::RemoveMatching { pattern } => format!(
                "del {}{}{}",
                if pattern.any_prefix { "*" } else { "" },
                pattern.core,
                if pattern.any_suffix && !pattern.core.is_empty() { "*" } else { "" }
            ),
            HeaderOp::Default { name, .. } => format!("default {name}"),
            HeaderOp::Replace { name, find, .. } => format!("replace {name} {}", find.0.as_str()),
        };
        let list = |ops: &[HeaderOp]| ops.iter().map(one).collect::<Vec<_>>().join(", ");
        format!("{} | {}", list(&h.immediate), list(&h.deferred))
    }

    fn shape_of(directive: &str) -> String {
        let all = headers_of(directive);
        assert_eq!(all.len(), 1, "{directive}");
        shape(&all[0])
    }

    #[test]
    fn single_line_forms_are_immediate_unless_they_delete_default_or_defer() {
        assert_eq!(shape_of("header X-A a"), "set X-A | ");
        assert_eq!(shape_of("header +X-A a"), "add X-A | ");
        assert_eq!(shape_of("header X-A"), "set X-A | ");
        assert_eq!(shape_of("header X-A find repl"), "replace X-A find | ");
        assert_eq!(shape_of("header -Server"), " | del Server");
        assert_eq!(shape_of("header -X-*"), " | del X-*");
        assert_eq!(shape_of("header -*-Id"), " | del *-Id");
        assert_eq!(shape_of("header -*"), " | del *");
        assert_eq!(shape_of("header ?X-A a"), " | default X-A");
        assert_eq!(shape_of("header >X-A a"), " | set X-A");
        assert_eq!(shape_of("header >X-A a(.*) b$1"), " | replace X-A a(.*)");
    }

    #[test]
    fn a_block_applies_by_kind_and_defers_as_a_whole() {
        let hsts = "header {\n\tStrict-Transport-Security \"max-age=31536000\"\n\t\
                    X-Content-Type-Options nosniff\n\t-Server\n}";
        assert_eq!(
            shape_of(hsts),
            " | set Strict-Transport-Security, set X-Content-Type-Options, del Server"
        );
        assert_eq!(shape_of("header {\n\tX-B b\n\t+X-A a\n}"), "add X-A, set X-B | ");
        assert_eq!(shape_of("header {\n\tX-A a\n\tdefer\n}"), " | set X-A");
        assert_eq!(shape_of("header {\n\t-*\n\tX-A a\n}"), " | del *, set X-A");
        assert_eq!(
            shape_of("header {\n\t?X-A a\n\tX-B b\n\t?X-C c\n}"),
            "set X-B | default X-C, default X-A"
        );
        assert_eq!(shape_of("header X-A a {\n\tX-B b\n}"), "set X-A, set X-B | ");
        assert_eq!(shape_of("header {\n\t* x y\n}"), "replace * x | ");
    }

    #[test]
    fn header_takes_a_matcher_and_sorts_before_request_body() {
        let routes = routes_of(
            ":80 {\n\trequest_body {\n\t\tmax_size 1\n\t}\n\theader /api/* X-A a\n\t\
             @m path /m\n\theader @m X-B b\n\trespond 200\n}\n",
        );
        let described = super::super::test_support::describe(&routes);
        assert_eq!(described, ["header", "header", "request_body 1", "respond 200"]);
        assert!(routes[0].matcher.is_some() && routes[1].matcher.is_some());
    }

    #[test]
    fn bad_header_ops_name_their_line() {
        let err = |d: &str| parse_err(&format!(":80 {{\n\t{d}\n}}\n"));
        assert_eq!(
            err("header -X-A v"),
            "Caddyfile:2 - wrong argument count or unexpected line ending after '-X-A'"
        );
        assert_eq!(
            err("header X-A a b c"),
            "Caddyfile:2 - wrong argument count or unexpected line ending after 'c'"
        );
        assert_eq!(
            err("header +X-A a b"),
            "Caddyfile:2 - wrong argument count or unexpected line ending after 'a'"
        );
        assert_eq!(err("header X(A) a"), "Caddyfile:2 - invalid header name 'X(A)'");
        assert_eq!(err("header -**"), "Caddyfile:2 - invalid header name '-**'");
        assert_eq!(err("header X-{host} a"), "Caddyfile:2 - invalid header name 'X-{host}'");
        assert_eq!(
            err("header X-A a(( b"),
            "Caddyfile:2 - invalid regular expression 'a((': regex parse error:\n    a((\n      \
             ^\nerror: unclosed group"
        );
        assert_eq!(
            err("header X-A {upstream_hostport}"),
            "Caddyfile:2 - placeholder {upstream_hostport} is only available in header_up"
        );
        assert_eq!(
            err("header X-A {http.response.header.Server}"),
            "Caddyfile:2 - placeholder {http.response.header.Server} is not supported by \
             ringproxy (supported: {host}, {hostport}, {uri}, {path}, {query}, {scheme}, \
             {method}, {remote_host}, {remote_port}, {upstream_hostport}, and their \
             http.request.* long forms)"
        );
        assert_eq!(
            err("header {\n\tdefer 1\n\t}"),
            "Caddyfile:3 - wrong argument count or unexpected line ending after '1'"
        );
        assert_eq!(
            err("header {\n\tX-A a {\n\t\tb\n\t}\n\t}"),
            "Caddyfile:3 - 'X-A' does not take a block"
        );
    }
}
