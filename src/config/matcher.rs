//! Request matchers: compiling Caddy's path and header patterns, and evaluating a compiled
//! [`Matcher`] against a request without allocating.
//!
//! Path patterns are matched like Caddy's `path` matcher on the normalised, lower-cased path:
//! `/exact`, `/prefix/*`, `*.suffix`, `*/contains/*` and `*`. A `*` anywhere else would need
//! glob matching, which ringproxy does not offer, so it is a config error rather than a pattern
//! that silently never matches.

use super::route::RequestView;
use super::{HeaderCondition, HeaderTest, HostPattern, Matcher, PathPattern, ValuePattern};

const PATH_FORMS: &str = "/exact, /prefix/*, *.suffix, */contains/*, *";

/// Compiles a path pattern as written in a Caddyfile.
pub(crate) fn compile_path(raw: &str) -> Result<PathPattern, String> {
    let pattern = raw.to_lowercase();
    if pattern == "*" || pattern == "**" {
        return Ok(PathPattern::Any);
    }
    if pattern.contains('%') {
        return Err(format!(
            "path pattern '{raw}' contains a percent-escape; ringproxy matches decoded paths, so \
             write the character itself"
        ));
    }
    let inner_star = |s: &str| s.contains('*');
    let compiled = if let Some(mid) = pattern.strip_prefix('*').and_then(|p| p.strip_suffix('*')) {
        (!inner_star(mid)).then(|| PathPattern::Contains(mid.to_string()))
    } else if let Some(suffix) = pattern.strip_prefix('*') {
        (!inner_star(suffix)).then(|| PathPattern::Suffix(suffix.to_string()))
    } else if let Some(prefix) = pattern.strip_suffix('*') {
        (!inner_star(prefix) && prefix.starts_with('/'))
            .then(|| PathPattern::Prefix(prefix.to_string()))
    } else {
        (pattern.starts_with('/') && !inner_star(&pattern))
            .then(|| PathPattern::Exact(pattern.clone()))
    };
    compiled.ok_or_else(|| {
        if pattern.starts_with(['/', '*']) {
            format!(
                "path pattern '{raw}' has a '*' in the middle, which ringproxy does not support \
                 (supported: {PATH_FORMS})"
            )
        } else {
            format!("path pattern '{raw}' must start with '/' or '*' (supported: {PATH_FORMS})")
        }
    })
}

/// Compiles a header matcher value: a leading and/or trailing `*` makes it a suffix, prefix or
/// substring match, as in Caddy's header matcher.
pub(crate) fn compile_header_value(raw: &str) -> Result<ValuePattern, String> {
    if raw.contains('{') && raw.contains('}') {
        return Err(format!(
            "placeholders in header matcher values ('{raw}') are not supported by ringproxy"
        ));
    }
    if raw == "*" {
        return Ok(ValuePattern::Any);
    }
    Ok(match (raw.strip_prefix('*'), raw.strip_suffix('*')) {
        (Some(_), Some(_)) => ValuePattern::Contains(raw[1..raw.len() - 1].to_string()),
        (Some(suffix), None) => ValuePattern::Suffix(suffix.to_string()),
        (None, Some(prefix)) => ValuePattern::Prefix(prefix.to_string()),
        (None, None) => ValuePattern::Exact(raw.to_string()),
    })
}

/// A request path as routing sees it, possibly after `handle_path` removed a prefix. The path
/// is `"/"` (when `slash`) followed by `rest`: stripping `/api` from `/api` leaves `/`, which
/// exists in no buffer, and this spares an allocation to build it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PathView<'a> {
    slash: bool,
    rest: &'a str,
}

impl<'a> PathView<'a> {
    pub fn new(path: &'a str) -> Self {
        if path.starts_with('/') {
            PathView { slash: false, rest: path }
        } else {
            // Caddy's rewrite puts a leading slash back on a stripped path; treat every path
            // the same way.
            PathView { slash: true, rest: path }
        }
    }

    /// The path with `prefix` removed, if it starts with it; unchanged otherwise (Caddy's
    /// `strip_path_prefix` leaves non-matching paths alone).
    pub fn strip_prefix(self, prefix: &str) -> Self {
        let remainder = if self.slash {
            match prefix.strip_prefix('/') {
                Some(p) => self.rest.strip_prefix(p),
                None if prefix.is_empty() => return self,
                None => None,
            }
        } else {
            self.rest.strip_prefix(prefix)
        };
        match remainder {
            Some(rem) => PathView::new(rem),
            None => self,
        }
    }

    fn eq(self, s: &str) -> bool {
        if self.slash {
            s.strip_prefix('/') == Some(self.rest)
        } else {
            s == self.rest
        }
    }

    fn starts_with(self, s: &str) -> bool {
        if !self.slash {
            return self.rest.starts_with(s);
        }
        match s.strip_prefix('/') {
            Some(tail) => self.rest.starts_with(tail),
            None => s.is_empty(),
        }
    }

    fn ends_with(self, s: &str) -> bool {
        if s.len() <= self.rest.len() {
            return self.rest.ends_with(s);
        }
        self.slash && s.len() == self.rest.len() + 1 && self.eq(s)
    }

    fn contains(self, s: &str) -> bool {
        self.rest.contains(s) || (self.slash && self.starts_with(s))
    }
}

pub(crate) fn path_matches(pattern: &PathPattern, path: PathView<'_>) -> bool {
    match pattern {
        PathPattern::Any => true,
        PathPattern::Exact(p) => path.eq(p),
        PathPattern::Prefix(p) => path.starts_with(p),
        PathPattern::Suffix(s) => path.ends_with(s),
        PathPattern::Contains(c) => path.contains(c),
    }
}

pub(crate) fn host_matches(pattern: &HostPattern, host: &str) -> bool {
    match pattern {
        HostPattern::Exact(h) => h == host,
        HostPattern::Wildcard(suffix) => host
            .strip_suffix(suffix.as_str())
            .is_some_and(|label| !label.is_empty() && !label.contains('.')),
    }
}

fn value_matches(pattern: &ValuePattern, value: &[u8]) -> bool {
    match pattern {
        ValuePattern::Any => true,
        ValuePattern::Exact(v) => value == v.as_bytes(),
        ValuePattern::Prefix(p) => value.starts_with(p.as_bytes()),
        ValuePattern::Suffix(s) => value.ends_with(s.as_bytes()),
        ValuePattern::Contains(c) => {
            let c = c.as_bytes();
            c.is_empty() || value.windows(c.len()).any(|w| w == c)
        }
    }
}

fn header_holds<R: RequestView>(condition: &HeaderCondition, request: &R) -> bool {
    let mut values = request.header_values(&condition.name);
    match &condition.test {
        HeaderTest::Present => values.next().is_some(),
        HeaderTest::Absent => values.next().is_none(),
        HeaderTest::Values(patterns) => {
            values.any(|v| patterns.iter().any(|p| value_matches(p, v)))
        }
    }
}

/// Whether every condition of `matcher` holds (Caddy's matcher-set semantics: AND across
/// matcher types, OR within one type's values).
pub(crate) fn matches<R: RequestView>(matcher: &Matcher, request: &R, path: PathView<'_>) -> bool {
    (matcher.paths.is_empty() || matcher.paths.iter().any(|p| path_matches(p, path)))
        && (matcher.hosts.is_empty()
            || matcher.hosts.iter().any(|h| host_matches(h, request.host())))
        && (matcher.methods.is_empty() || matcher.methods.iter().any(|m| m == request.method()))
        && matcher.headers.iter().all(|h| header_holds(h, request))
        && matcher.not.iter().all(|n| !matches(n, request, path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_patterns_compile_like_caddy() {
        let cases = [
            ("/health", PathPattern::Exact("/health".into())),
            ("/API/Auth/*", PathPattern::Prefix("/api/auth/".into())),
            ("*.js", PathPattern::Suffix(".js".into())),
            ("*/admin/*", PathPattern::Contains("/admin/".into())),
            ("*", PathPattern::Any),
            ("/api*", PathPattern::Prefix("/api".into())),
        ];
        for (raw, want) in cases {
            assert_eq!(compile_path(raw), Ok(want), "{raw}");
        }
        assert!(compile_path("/a/*/b").unwrap_err().contains("'*' in the middle"));
        assert!(compile_path("api/*").unwrap_err().contains("must start with '/' or '*'"));
        assert!(compile_path("/a%20b").unwrap_err().contains("percent-escape"));
    }

    fn m(pattern: &str, path: &str) -> bool {
        path_matches(&compile_path(pattern).unwrap(), PathView::new(path))
    }

    #[test]
    fn path_matching() {
        assert!(m("/health", "/health"));
        assert!(!m("/health", "/health/"));
        assert!(!m("/health", "/healthz"));
        assert!(m("/api/auth/*", "/api/auth/x"));
        assert!(m("/api/auth/*", "/api/auth/"));
        assert!(!m("/api/auth/*", "/api/auth"));
        assert!(m("*.js", "/app.js"));
        assert!(!m("*.js", "/app.json"));
        assert!(m("*/x/*", "/a/x/b"));
        assert!(m("*", "/anything"));
    }

    #[test]
    fn stripped_paths_get_their_leading_slash_back() {
        let p = PathView::new("/api").strip_prefix("/api");
        assert!(p.eq("/"));
        assert!(path_matches(&PathPattern::Exact("/".into()), p));
        assert!(path_matches(&PathPattern::Prefix("/".into()), p));
        assert!(path_matches(&PathPattern::Suffix("/".into()), p));
        assert!(!path_matches(&PathPattern::Exact("".into()), p));
        let q = PathView::new("/apix/y").strip_prefix("/api");
        assert!(path_matches(&PathPattern::Exact("/x/y".into()), q));
        assert!(path_matches(&PathPattern::Contains("/x/".into()), q));
        assert!(path_matches(&PathPattern::Prefix("/x".into()), q));
        let r = PathView::new("/api/v1/x").strip_prefix("/api").strip_prefix("/v1");
        assert!(r.eq("/x"));
        let untouched = PathView::new("/other").strip_prefix("/api");
        assert!(untouched.eq("/other"));
    }

    #[test]
    fn wildcard_hosts_match_exactly_one_label() {
        let w = HostPattern::Wildcard(".example.com".into());
        assert!(host_matches(&w, "a.example.com"));
        assert!(!host_matches(&w, "a.b.example.com"));
        assert!(!host_matches(&w, "example.com"));
        assert!(!host_matches(&w, ".example.com"));
    }

    #[test]
    fn header_values() {
        assert_eq!(compile_header_value("*"), Ok(ValuePattern::Any));
        assert_eq!(compile_header_value("ws*"), Ok(ValuePattern::Prefix("ws".into())));
        assert_eq!(compile_header_value("*bot"), Ok(ValuePattern::Suffix("bot".into())));
        assert_eq!(compile_header_value("*x*"), Ok(ValuePattern::Contains("x".into())));
        assert!(!value_matches(&ValuePattern::Contains("up".into()), b"keep-alive, Upgrade"));
        assert!(value_matches(&ValuePattern::Contains("Up".into()), b"keep-alive, Upgrade"));
    }
}
