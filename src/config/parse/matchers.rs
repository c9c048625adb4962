//! Request matchers: named definitions (`@name type args…` or `@name { … }`) compiled to a
//! [`Matcher`], and the inline matcher token a directive may start with (`*`, `/path`,
//! `@name`). One row of [`MATCHERS`] and one function per matcher type.
//!
//! Owns what each matcher type accepts and how conditions of one type merge; how a compiled
//! matcher is evaluated against a request is `route`'s business, and where named matchers are
//! visible (their scopes) is `site`'s.

use std::collections::HashMap;

use super::syntax::{Block, Directive};
use super::{is_token_byte, lookup, Parser, Table};
use crate::config::address;
use crate::config::lexer::Token;
use crate::config::matcher::{compile_header_value, compile_path};
use crate::config::{ConfigError, HeaderCondition, HeaderTest, Matcher, PathPattern};

/// What a matcher type takes.
#[derive(Clone, Copy)]
enum MatcherKind {
    /// `type arg…`: at least one argument, no block.
    Args(fn(&Parser<'_>, &Condition<'_>, &mut Conditions) -> Result<(), ConfigError>),
    /// `type arg…` or `type { … }` (`not`): checks its own arguments.
    Nested(fn(&Parser<'_>, &Condition<'_>, &mut Conditions) -> Result<(), ConfigError>),
}

/// Every matcher type.
const MATCHERS: &Table<MatcherKind> = &[
    ("header", MatcherKind::Args(header)),
    ("host", MatcherKind::Args(host)),
    ("method", MatcherKind::Args(method)),
    ("not", MatcherKind::Nested(not)),
    ("path", MatcherKind::Args(path)),
];

/// A named matcher definition (`@name …`).
#[derive(Clone)]
pub(super) struct MatcherDef {
    pub matcher: Matcher,
    /// The raw pattern when the matcher has exactly one path, for Caddy's route sorting.
    pub single_path: Option<String>,
}

impl MatcherDef {
    /// The matcher of a path written inline (`handle /api/*`, `handle_path /api/*`).
    pub fn inline_path(pattern: PathPattern, raw: &str) -> MatcherDef {
        MatcherDef {
            matcher: Matcher { paths: vec![pattern], ..Matcher::default() },
            single_path: Some(raw.to_string()),
        }
    }
}

/// Named matchers visible in a block: the block's own, then its parents'.
pub(super) type Scopes = Vec<HashMap<String, MatcherDef>>;

/// One `type args… [{ … }]` line of a matcher definition.
struct Condition<'t> {
    kind: &'t Token,
    args: &'t [Token],
    block: Option<&'t Block>,
}

/// The conditions of one matcher definition so far.
#[derive(Default)]
struct Conditions {
    matcher: Matcher,
    /// Path patterns as written, for [`MatcherDef::single_path`].
    raw_paths: Vec<String>,
}

impl Parser<'_> {
    /// Reads an optional matcher token (`*`, `/path`, `@name`) at the start of `args`.
    pub(super) fn matcher_token<'t>(
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
            return Ok((Some(MatcherDef::inline_path(pattern, text)), &args[1..]));
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

    /// `@name type args…` or `@name { type args… … }`.
    pub(super) fn matcher_definition(&self, d: &Directive) -> Result<MatcherDef, ConfigError> {
        let mut conditions = Conditions::default();
        match (&d.args[..], &d.block) {
            ([], Some(block)) => self.condition_block(block, &mut conditions)?,
            ([kind, args @ ..], None) => {
                self.condition(&Condition { kind, args, block: None }, &mut conditions)?
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
        if conditions.matcher == Matcher::default() {
            return Err(self.err(d.line(), format!("matcher definition {} is empty", d.name.text)));
        }
        let single_path = match conditions.raw_paths.as_slice() {
            [one] => Some(one.clone()),
            _ => None,
        };
        Ok(MatcherDef { matcher: conditions.matcher, single_path })
    }

    fn condition_block(&self, block: &Block, into: &mut Conditions) -> Result<(), ConfigError> {
        for line in &block.items {
            let condition =
                Condition { kind: &line.name, args: &line.args, block: line.block.as_ref() };
            self.condition(&condition, into)?;
        }
        Ok(())
    }

    /// One condition, merged into `into`.
    fn condition(&self, c: &Condition<'_>, into: &mut Conditions) -> Result<(), ConfigError> {
        let kind = lookup(MATCHERS, &c.kind.text);
        if let Some(block) = c.block {
            if !matches!(kind, Some(MatcherKind::Nested(_))) {
                return Err(self
                    .err(block.line, format!("matcher '{}' does not take a block", c.kind.text)));
            }
        }
        match *self.pick(MATCHERS, "matcher", c.kind)? {
            MatcherKind::Args(parse) => {
                if c.args.is_empty() {
                    return Err(self.arg_err(c.kind));
                }
                parse(self, c, into)
            }
            MatcherKind::Nested(parse) => parse(self, c, into),
        }
    }
}

/// `path <pattern>…`: any of them.
fn path(p: &Parser<'_>, c: &Condition<'_>, into: &mut Conditions) -> Result<(), ConfigError> {
    for a in c.args {
        into.matcher.paths.push(compile_path(&a.text).map_err(|e| p.err(a.line, e))?);
        into.raw_paths.push(a.text.clone());
    }
    Ok(())
}

/// `host <pattern>…`: any of them.
fn host(p: &Parser<'_>, c: &Condition<'_>, into: &mut Conditions) -> Result<(), ConfigError> {
    for a in c.args {
        let h = address::host_pattern(&a.text)
            .map_err(|e| p.err(a.line, format!("host matcher: {e}")))?;
        into.matcher.hosts.push(h);
    }
    Ok(())
}

/// `method <METHOD>…`: any of them, case-insensitive.
fn method(_: &Parser<'_>, c: &Condition<'_>, into: &mut Conditions) -> Result<(), ConfigError> {
    into.matcher.methods.extend(c.args.iter().map(|a| a.text.to_ascii_uppercase()));
    Ok(())
}

/// `header <Name> [<value>…]` (present, or any of the values) or `header !<Name>` (absent).
/// Several conditions on one field merge as Caddy's map of fields does.
fn header(p: &Parser<'_>, c: &Condition<'_>, into: &mut Conditions) -> Result<(), ConfigError> {
    let args = c.args;
    let field = &args[0].text;
    let (name, negated) = match field.strip_prefix('!') {
        Some(n) => (n.to_ascii_lowercase(), true),
        None => (field.to_ascii_lowercase(), false),
    };
    if name.is_empty() || !name.bytes().all(is_token_byte) {
        return Err(p.err(args[0].line, format!("invalid header name '{field}'")));
    }
    let test = if negated {
        if let Some(v) = args.get(1) {
            return Err(p.err(v.line, format!("header matcher '!{name}' takes no values")));
        }
        HeaderTest::Absent
    } else if args.len() == 1 {
        HeaderTest::Present
    } else {
        let values = args[1..]
            .iter()
            .map(|v| compile_header_value(&v.text).map_err(|e| p.err(v.line, e)))
            .collect::<Result<Vec<_>, _>>()?;
        HeaderTest::Values(values)
    };
    let headers = &mut into.matcher.headers;
    let Some(existing) = headers.iter_mut().find(|c| c.name == name) else {
        headers.push(HeaderCondition { name, test });
        return Ok(());
    };
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
            return Err(p.err(
                c.kind.line,
                format!("header matcher requires '{name}' to be both present and absent"),
            ))
        }
    };
    Ok(())
}

/// `not type args…` or `not { … }`: the request must not match the inner conditions.
fn not(p: &Parser<'_>, c: &Condition<'_>, into: &mut Conditions) -> Result<(), ConfigError> {
    let mut inner = Conditions::default();
    match (c.args, c.block) {
        ([], Some(block)) => p.condition_block(block, &mut inner)?,
        ([kind, args @ ..], None) => {
            p.condition(&Condition { kind, args, block: None }, &mut inner)?
        }
        _ => return Err(p.arg_err(c.kind)),
    }
    if inner.matcher == Matcher::default() {
        return Err(p.err(c.kind.line, "'not' matcher is empty"));
    }
    into.matcher.not.push(inner.matcher);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{parse_err, routes_of};
    use super::*;
    use crate::config::{HostPattern, ValuePattern};

    /// The matcher of the only route of a `:80` site with `@m <definition>` and
    /// `respond @m 200`.
    fn matcher(definition: &str) -> Matcher {
        let routes = routes_of(&format!(":80 {{\n\t@m {definition}\n\trespond @m 200\n}}\n"));
        routes[0].matcher.clone().expect("the route has the matcher")
    }

    fn definition_err(definition: &str) -> String {
        parse_err(&format!(":80 {{\n\t@m {definition}\n\trespond @m 200\n}}\n"))
    }

    #[test]
    fn matcher_types_are_listed_alphabetically() {
        let names: Vec<&str> = MATCHERS.iter().map(|(n, _)| *n).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        assert_eq!(names, sorted);
    }

    #[test]
    fn an_unknown_type_lists_the_supported_ones() {
        assert_eq!(
            definition_err("query a=b"),
            "Caddyfile:2 - matcher 'query' is not supported by ringproxy (supported: header, \
             host, method, not, path)"
        );
    }

    #[test]
    fn a_block_is_only_for_not_and_is_checked_before_the_type() {
        assert_eq!(
            definition_err("{\n\t\tpath /a {\n\t\t}\n\t}"),
            "Caddyfile:3 - matcher 'path' does not take a block"
        );
        assert_eq!(
            definition_err("{\n\t\tquery {\n\t\t}\n\t}"),
            "Caddyfile:3 - matcher 'query' does not take a block"
        );
    }

    #[test]
    fn path_host_and_method_conditions_accumulate() {
        let m = matcher("{\n\t\tpath /a /b*\n\t\thost A.example.com\n\t\tmethod get post\n\t}");
        assert_eq!(
            m.paths,
            vec![PathPattern::Exact("/a".into()), PathPattern::Prefix("/b".into())]
        );
        assert_eq!(m.hosts, vec![HostPattern::Exact("a.example.com".into())]);
        assert_eq!(m.methods, vec!["GET".to_string(), "POST".to_string()]);
    }

    #[test]
    fn a_type_without_arguments_is_an_argument_error() {
        for kind in ["path", "host", "method", "header"] {
            assert_eq!(
                definition_err(&format!("{{\n\t\t{kind}\n\t}}")),
                format!(
                    "Caddyfile:3 - wrong argument count or unexpected line ending after '{kind}'"
                )
            );
        }
    }

    #[test]
    fn header_conditions_present_absent_and_values() {
        let m = matcher("{\n\t\theader X-A\n\t\theader !X-B\n\t\theader X-C v* *w\n\t}");
        assert_eq!(
            m.headers,
            vec![
                HeaderCondition { name: "x-a".into(), test: HeaderTest::Present },
                HeaderCondition { name: "x-b".into(), test: HeaderTest::Absent },
                HeaderCondition {
                    name: "x-c".into(),
                    test: HeaderTest::Values(vec![
                        ValuePattern::Prefix("v".into()),
                        ValuePattern::Suffix("w".into())
                    ])
                },
            ]
        );
    }

    #[test]
    fn header_conditions_on_one_field_merge() {
        let m = matcher("{\n\t\theader X-A a\n\t\theader X-A\n\t\theader x-a b\n\t}");
        assert_eq!(
            m.headers,
            vec![HeaderCondition {
                name: "x-a".into(),
                test: HeaderTest::Values(vec![
                    ValuePattern::Exact("a".into()),
                    ValuePattern::Exact("b".into())
                ])
            }]
        );
        assert_eq!(
            definition_err("{\n\t\theader X-A\n\t\theader !X-A\n\t}"),
            "Caddyfile:4 - header matcher requires 'x-a' to be both present and absent"
        );
    }

    #[test]
    fn header_names_must_be_tokens_and_absence_takes_no_value() {
        assert_eq!(definition_err("header X(A) v"), "Caddyfile:2 - invalid header name 'X(A)'");
        assert_eq!(definition_err("header ! v"), "Caddyfile:2 - invalid header name '!'");
        assert_eq!(
            definition_err("header !X-A v"),
            "Caddyfile:2 - header matcher '!x-a' takes no values"
        );
    }

    #[test]
    fn not_in_both_forms() {
        let inline = matcher("not path /private/*");
        assert_eq!(
            inline.not,
            vec![Matcher {
                paths: vec![PathPattern::Prefix("/private/".into())],
                ..Matcher::default()
            }]
        );
        let block = matcher("{\n\t\tnot {\n\t\t\tmethod GET\n\t\t\thost a.com\n\t\t}\n\t}");
        assert_eq!(block.not[0].methods, vec!["GET".to_string()]);
        assert_eq!(block.not[0].hosts, vec![HostPattern::Exact("a.com".into())]);
    }

    #[test]
    fn not_needs_conditions_in_exactly_one_form() {
        assert_eq!(
            definition_err("{\n\t\tnot\n\t}"),
            "Caddyfile:3 - wrong argument count or unexpected line ending after 'not'"
        );
        assert_eq!(
            definition_err("{\n\t\tnot path /a {\n\t\t}\n\t}"),
            "Caddyfile:3 - wrong argument count or unexpected line ending after 'not'"
        );
        assert_eq!(
            definition_err("{\n\t\tnot {\n\t\t}\n\t}"),
            "Caddyfile:3 - 'not' matcher is empty"
        );
    }

    #[test]
    fn empty_and_two_form_definitions_are_errors() {
        assert_eq!(definition_err(""), "Caddyfile:2 - matcher definition @m is empty");
        assert_eq!(definition_err("{\n\t}"), "Caddyfile:2 - matcher definition @m is empty");
        assert_eq!(
            definition_err("path /a {\n\t}"),
            "Caddyfile:2 - matcher definition @m has both arguments and a block; use one form"
        );
    }

    #[test]
    fn inline_matchers_are_star_a_path_or_a_name() {
        let routes = routes_of(":80 {\n\trespond * 200\n\trespond /x 201\n}\n");
        assert!(routes.iter().any(|r| r.matcher.is_none()));
        let with_path = routes.iter().find_map(|r| r.matcher.as_ref()).unwrap();
        assert_eq!(with_path.paths, vec![PathPattern::Exact("/x".into())]);
        assert_eq!(
            parse_err(":80 {\n\thandle *.js {\n\t}\n}\n"),
            "Caddyfile:2 - '*.js' is not a valid inline matcher: inline matchers are '*', a path \
             starting with '/', or '@name' (for other patterns define a named matcher, e.g. @m \
             path *.js)"
        );
        assert_eq!(
            parse_err(":80 {\n\trespond @missing 404\n}\n"),
            "Caddyfile:2 - unrecognized matcher name: @missing"
        );
    }

    #[test]
    fn a_quoted_star_is_a_response_body_not_a_matcher() {
        let routes = routes_of(":80 {\n\trespond \"*.js\"\n}\n");
        assert!(routes[0].matcher.is_none());
    }

    #[test]
    fn named_matchers_are_visible_in_nested_blocks_and_may_be_shadowed() {
        let text =
            ":80 {\n\t@a path /outer\n\thandle {\n\t\t@a path /inner\n\t\trespond @a 200\n\t}\n\t\
                    handle /x {\n\t\trespond @a 201\n\t}\n}\n";
        let routes = routes_of(text);
        let nested_path = |route: &crate::config::Route| match &route.handler {
            crate::config::Handler::Subroute { routes, .. } => {
                routes[0].matcher.as_ref().unwrap().paths.clone()
            }
            _ => panic!("not a subroute"),
        };
        let paths: Vec<_> = routes.iter().map(nested_path).collect();
        assert!(paths.contains(&vec![PathPattern::Exact("/inner".into())]));
        assert!(paths.contains(&vec![PathPattern::Exact("/outer".into())]));
        assert_eq!(
            parse_err(":80 {\n\t@a path /a\n\t@a path /b\n}\n"),
            "Caddyfile:3 - matcher is defined more than once: @a"
        );
    }
}
