//! Routing: (listener, host, path, method, headers) → the handler that serves a request.
//!
//! Pure functions over a [`Config`](super::Config); no I/O, and no allocation unless a
//! `handle_path` prefix has to be reported. The evaluation mirrors Caddy's route list
//! semantics for the handlers ringproxy has:
//! - routes run in order; a route whose matcher fails is skipped;
//! - `respond`, `redir` and `reverse_proxy` end the chain (they are terminal handlers);
//! - the other handlers (`request_body`, …) are middleware: a matching one is collected, in
//!   route order, and evaluation goes on; the data path applies them around the terminal
//!   handler (Caddy's middleware chain, where each one wraps the handlers after it);
//! - a `Subroute` (`handle`, `handle_path`, `route`) runs its own list; if nothing inside
//!   answers, evaluation continues after it, as Caddy's subroute calls its `next`;
//! - among routes sharing a `group`, only the first whose matcher passes runs (handle blocks
//!   are mutually exclusive), even if its subroute then answers nothing.

use super::matcher::{self, PathView};
use super::{Handler, HostPattern, ListenerConfig, Route, Site};

/// What the router needs to know about a request. Implemented by the data path's parsed head.
pub trait RequestView {
    /// Request host, lower-case, without port (from Host or the absolute-form target).
    fn host(&self) -> &str;
    /// Path, normalised for matching: percent-decoded, dot segments resolved, repeated slashes
    /// merged, lower-case (see [`crate::http::path::normalize_path`]).
    fn match_path(&self) -> &str;
    /// Method as received (upper-case for standard methods).
    fn method(&self) -> &str;
    /// Every value of the header `name` (given lower-case), in order.
    fn header_values(&self, name: &str) -> impl Iterator<Item = &[u8]>;
}

/// The outcome of routing one request.
#[derive(Debug, Clone)]
pub struct Resolution<'c> {
    /// A terminal handler (never `Subroute`); `None` means no route answered (Caddy: empty
    /// 200).
    pub handler: Option<&'c Handler>,
    /// The middleware of every route that matched before the terminal handler, in route
    /// order, including those inside subroutes that then answered nothing (their effect, as
    /// in Caddy, outlives the subroute).
    pub middleware: Vec<&'c Handler>,
    /// Prefixes removed by enclosing `handle_path` blocks, outermost first, in the lower-case
    /// form they were matched in; the data path strips them from the upstream path.
    pub strip_prefixes: Vec<&'c str>,
}

/// The site on `listener` that serves `host` (lower-case, no port): exact hosts first, then
/// wildcards, then a catch-all site.
pub fn select_site<'c>(listener: &'c ListenerConfig, host: &str) -> Option<&'c Site> {
    let sites = &listener.sites;
    sites
        .iter()
        .find(|s| s.hosts.iter().any(|h| matches!(h, HostPattern::Exact(e) if e == host)))
        .or_else(|| {
            sites.iter().find(|s| {
                s.hosts.iter().any(|h| {
                    matches!(h, HostPattern::Wildcard(_)) && matcher::host_matches(h, host)
                })
            })
        })
        .or_else(|| sites.iter().find(|s| s.hosts.is_empty()))
}

/// Evaluate a site's routes for a request.
pub fn resolve<'c, R: RequestView>(site: &'c Site, request: &R) -> Resolution<'c> {
    let mut resolution =
        Resolution { handler: None, strip_prefixes: Vec::new(), middleware: Vec::new() };
    let path = PathView::new(request.match_path());
    resolution.handler = evaluate(&site.routes, request, path, &mut resolution);
    resolution
}

/// The terminal handler of `routes`; fills in `found`'s prefixes and middleware on the way.
fn evaluate<'c, R: RequestView>(
    routes: &'c [Route],
    request: &R,
    path: PathView<'_>,
    found: &mut Resolution<'c>,
) -> Option<&'c Handler> {
    // Group ids are small and local to one route list (the parser guarantees < 64).
    let mut groups_taken: u64 = 0;
    for route in routes {
        let group_bit = route.group.map(|g| 1u64 << (g % 64));
        if let Some(bit) = group_bit {
            if groups_taken & bit != 0 {
                continue;
            }
        }
        if let Some(m) = &route.matcher {
            if !matcher::matches(m, request, path) {
                continue;
            }
        }
        if let Some(bit) = group_bit {
            groups_taken |= bit;
        }
        match &route.handler {
            Handler::Subroute { routes, strip_prefix } => {
                let depth = found.strip_prefixes.len();
                let inner_path = match strip_prefix {
                    Some(prefix) => {
                        found.strip_prefixes.push(prefix);
                        path.strip_prefix(prefix)
                    }
                    None => path,
                };
                if let Some(handler) = evaluate(routes, request, inner_path, found) {
                    return Some(handler);
                }
                found.strip_prefixes.truncate(depth);
            }
            middleware if !middleware.is_terminal() => found.middleware.push(middleware),
            terminal => return Some(terminal),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Matcher, Origin, PathPattern, Template, TlsPolicy};

    struct Req<'a> {
        host: &'a str,
        path: &'a str,
        method: &'a str,
        headers: &'a [(&'a str, &'a str)],
    }

    impl RequestView for Req<'_> {
        fn host(&self) -> &str {
            self.host
        }
        fn match_path(&self) -> &str {
            self.path
        }
        fn method(&self) -> &str {
            self.method
        }
        fn header_values(&self, name: &str) -> impl Iterator<Item = &[u8]> {
            self.headers.iter().filter(move |(n, _)| *n == name).map(|(_, v)| v.as_bytes())
        }
    }

    fn get(path: &str) -> Req<'_> {
        Req { host: "a.com", path, method: "GET", headers: &[] }
    }

    fn respond(status: u16) -> Handler {
        Handler::Respond { status, body: Template::default() }
    }

    fn path_matcher(p: PathPattern) -> Option<Matcher> {
        Some(Matcher {
            paths: vec![p],
            hosts: vec![],
            methods: vec![],
            headers: vec![],
            not: vec![],
        })
    }

    fn route(matcher: Option<Matcher>, handler: Handler, group: Option<u32>) -> Route {
        Route { matcher, handler, group }
    }

    fn site(hosts: Vec<HostPattern>, routes: Vec<Route>) -> Site {
        Site {
            hosts,
            tls: TlsPolicy::None,
            tls_options: Default::default(),
            routes,
            access_log: None,
            origin: Origin { file: "Caddyfile".into(), line: 1 },
        }
    }

    fn status(r: &Resolution<'_>) -> Option<u16> {
        match r.handler {
            Some(Handler::Respond { status, .. }) => Some(*status),
            Some(_) => Some(0),
            None => None,
        }
    }

    #[test]
    fn a_group_member_that_matched_but_answered_nothing_still_excludes_the_rest() {
        let s = site(
            vec![],
            vec![
                route(
                    path_matcher(PathPattern::Prefix("/a".into())),
                    Handler::Subroute { routes: vec![], strip_prefix: None },
                    Some(0),
                ),
                route(None, respond(201), Some(0)),
                route(None, respond(202), None),
            ],
        );
        assert_eq!(status(&resolve(&s, &get("/a/x"))), Some(202));
        assert_eq!(status(&resolve(&s, &get("/b"))), Some(201));
    }

    #[test]
    fn middleware_is_collected_in_route_order_even_from_subroutes_that_answer_nothing() {
        let limit = |max| Handler::RequestBody { max_size: Some(max) };
        let s = site(
            vec![],
            vec![
                route(None, limit(1), None),
                route(
                    path_matcher(PathPattern::Prefix("/a".into())),
                    Handler::Subroute {
                        routes: vec![route(None, limit(2), None)],
                        strip_prefix: None,
                    },
                    None,
                ),
                route(path_matcher(PathPattern::Prefix("/b".into())), limit(3), None),
                route(None, respond(200), None),
                route(None, limit(4), None),
            ],
        );
        let limits = |path| -> Vec<Option<u64>> {
            let r = resolve(&s, &get(path));
            assert_eq!(status(&r), Some(200));
            r.middleware
                .iter()
                .map(|m| match m {
                    Handler::RequestBody { max_size } => *max_size,
                    other => panic!("{other:?}"),
                })
                .collect()
        };
        assert_eq!(limits("/a/x"), [Some(1), Some(2)]);
        assert_eq!(limits("/b"), [Some(1), Some(3)], "none after the terminal handler");
        assert_eq!(limits("/c"), [Some(1)]);
    }

    #[test]
    fn handle_path_strips_for_nested_matching_and_reports_the_prefix() {
        let inner = vec![
            route(path_matcher(PathPattern::Exact("/".into())), respond(200), None),
            route(path_matcher(PathPattern::Exact("/x".into())), respond(201), None),
        ];
        let s = site(
            vec![],
            vec![route(
                path_matcher(PathPattern::Prefix("/api/".into())),
                Handler::Subroute { routes: inner, strip_prefix: Some("/api".into()) },
                None,
            )],
        );
        let r = resolve(&s, &get("/api/x"));
        assert_eq!((status(&r), r.strip_prefixes), (Some(201), vec!["/api"]));
        assert_eq!(status(&resolve(&s, &get("/api/"))), Some(200));
        let miss = resolve(&s, &get("/api/y"));
        assert_eq!((status(&miss), miss.strip_prefixes.len()), (None, 0));
    }

    #[test]
    fn site_selection_prefers_exact_then_wildcard_then_catch_all() {
        let listener = ListenerConfig {
            bind: "[::]:443".parse().unwrap(),
            kind: crate::config::ListenerKind::Tls,
            sites: vec![
                site(vec![], vec![route(None, respond(1), None)]),
                site(
                    vec![HostPattern::Wildcard(".a.com".into())],
                    vec![route(None, respond(2), None)],
                ),
                site(
                    vec![HostPattern::Exact("x.a.com".into())],
                    vec![route(None, respond(3), None)],
                ),
            ],
        };
        let pick = |h: &str| status(&resolve(select_site(&listener, h).unwrap(), &get("/")));
        assert_eq!(pick("x.a.com"), Some(3));
        assert_eq!(pick("y.a.com"), Some(2));
        assert_eq!(pick("b.com"), Some(1));
        let no_catch_all =
            ListenerConfig { sites: listener.sites[1..].to_vec(), ..listener.clone() };
        assert!(select_site(&no_catch_all, "b.com").is_none());
    }

    #[test]
    fn header_and_method_conditions() {
        let m = Matcher {
            paths: vec![],
            hosts: vec![],
            methods: vec!["GET".into()],
            headers: vec![crate::config::HeaderCondition {
                name: "upgrade".into(),
                test: crate::config::HeaderTest::Values(vec![crate::config::ValuePattern::Exact(
                    "websocket".into(),
                )]),
            }],
            not: vec![],
        };
        let s = site(vec![], vec![route(Some(m), respond(101), None)]);
        let ws =
            Req { host: "a.com", path: "/", method: "GET", headers: &[("upgrade", "websocket")] };
        let post = Req { method: "POST", ..ws };
        assert_eq!(status(&resolve(&s, &ws)), Some(101));
        assert_eq!(status(&resolve(&s, &post)), None);
        assert_eq!(status(&resolve(&s, &get("/"))), None);
    }
}
