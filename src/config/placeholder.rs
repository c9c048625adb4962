//! Placeholders (`{host}`, `{http.request.uri}`, …) compiled into [`Template`]s at parse time, so
//! workers fill them in without looking at names.
//!
//! Only the placeholders in [`Placeholder`] exist; any other `{…}` is a configuration error, so a
//! Caddyfile never silently sends a literal `{foo}` upstream. As in Caddy's replacer, `\{` and
//! `\}` stand for literal braces, and a `{` without a closing `}` is literal text.

use super::{Placeholder, Template, TemplatePart};

/// Every supported placeholder: its short Caddyfile name, Caddy's long name, and the variant.
const NAMES: &[(&str, &str, Placeholder)] = &[
    ("host", "http.request.host", Placeholder::Host),
    ("hostport", "http.request.hostport", Placeholder::HostPort),
    ("uri", "http.request.uri", Placeholder::Uri),
    ("path", "http.request.uri.path", Placeholder::Path),
    ("query", "http.request.uri.query", Placeholder::Query),
    ("scheme", "http.request.scheme", Placeholder::Scheme),
    ("method", "http.request.method", Placeholder::Method),
    ("remote_host", "http.request.remote.host", Placeholder::RemoteHost),
    ("remote_port", "http.request.remote.port", Placeholder::RemotePort),
    ("upstream_hostport", "http.reverse_proxy.upstream.hostport", Placeholder::UpstreamHostPort),
];

/// Where a template is used: `{upstream_hostport}` only has a value while proxying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Context {
    Response,
    HeaderUp,
}

impl Placeholder {
    /// The short name as written in a Caddyfile, e.g. `host` for `{host}`.
    pub fn short_name(self) -> &'static str {
        NAMES.iter().find(|(_, _, p)| *p == self).map_or("?", |(short, _, _)| short)
    }
}

/// Compiles `text` into a template; the error is a message for a `ConfigError`.
pub(crate) fn compile(text: &str, context: Context) -> Result<Template, String> {
    let mut parts = Vec::new();
    let mut literal = String::new();
    let mut rest = text;
    while let Some(i) = rest.find(['{', '\\']) {
        literal.push_str(&rest[..i]);
        let tail = &rest[i..];
        if let Some(escaped) = tail
            .strip_prefix("\\{")
            .map(|t| ('{', t))
            .or_else(|| tail.strip_prefix("\\}").map(|t| ('}', t)))
        {
            literal.push(escaped.0);
            rest = escaped.1;
            continue;
        }
        if let Some(after) = tail.strip_prefix('\\') {
            literal.push('\\');
            rest = after;
            continue;
        }
        let Some(end) = tail.find('}') else {
            literal.push_str(tail);
            rest = "";
            break;
        };
        let name = &tail[1..end];
        let placeholder = lookup(name).ok_or_else(|| unsupported(name))?;
        if placeholder == Placeholder::UpstreamHostPort && context != Context::HeaderUp {
            return Err(format!("placeholder {{{name}}} is only available in header_up"));
        }
        if !literal.is_empty() {
            parts.push(TemplatePart::Literal(std::mem::take(&mut literal)));
        }
        parts.push(TemplatePart::Placeholder(placeholder));
        rest = &tail[end + 1..];
    }
    literal.push_str(rest);
    if !literal.is_empty() {
        parts.push(TemplatePart::Literal(literal));
    }
    Ok(Template { parts })
}

fn lookup(name: &str) -> Option<Placeholder> {
    NAMES.iter().find(|(short, long, _)| *short == name || *long == name).map(|(_, _, p)| *p)
}

fn unsupported(name: &str) -> String {
    let supported: Vec<String> = NAMES.iter().map(|(short, _, _)| format!("{{{short}}}")).collect();
    format!(
        "placeholder {{{name}}} is not supported by ringproxy (supported: {}, and their \
         http.request.* long forms)",
        supported.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lit(s: &str) -> TemplatePart {
        TemplatePart::Literal(s.to_string())
    }

    fn ph(p: Placeholder) -> TemplatePart {
        TemplatePart::Placeholder(p)
    }

    #[test]
    fn short_and_long_names_compile_to_the_same_placeholder() {
        let t = compile("https://{host}{http.request.uri}", Context::Response).unwrap();
        assert_eq!(t.parts, vec![lit("https://"), ph(Placeholder::Host), ph(Placeholder::Uri)]);
    }

    #[test]
    fn escaped_and_unclosed_braces_are_literal() {
        let t = compile(r"\{x\} {path} {", Context::Response).unwrap();
        assert_eq!(t.parts, vec![lit("{x} "), ph(Placeholder::Path), lit(" {")]);
        assert_eq!(compile("", Context::Response).unwrap().parts, vec![]);
    }

    #[test]
    fn unknown_placeholders_are_errors() {
        let err = compile("{http.request.header.X}", Context::Response).unwrap_err();
        assert!(err.starts_with("placeholder {http.request.header.X} is not supported by ringproxy (supported: {host}"), "{err}");
        assert!(compile("{}", Context::Response).is_err());
    }

    #[test]
    fn upstream_hostport_only_in_header_up() {
        assert!(compile("{upstream_hostport}", Context::HeaderUp).is_ok());
        assert_eq!(
            compile("{upstream_hostport}", Context::Response).unwrap_err(),
            "placeholder {upstream_hostport} is only available in header_up"
        );
    }

    #[test]
    fn every_placeholder_round_trips_through_its_short_name() {
        for (short, _, p) in NAMES {
            assert_eq!(p.short_name(), *short);
            assert_eq!(lookup(short), Some(*p));
        }
    }
}
