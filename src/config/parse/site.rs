//! A site block's directives → its routes: dispatch through [`DIRECTIVES`], Caddy's directive
//! order (`sort_like_caddy`), and `handle` groups (`finish_routes`). Also the nesting
//! directives themselves (`handle`, `handle_path`, `route`) and the scopes of named matchers.
//!
//! Adding a directive is one row of [`DIRECTIVES`] (with its place in Caddy's order, a new
//! [`Order`] variant if it has none yet) and one function. What each handler directive means
//! is in `handlers` and `reverse_proxy`; matchers are `matchers`; where a site is served
//! (ports, TLS) is `listeners`.

use std::collections::HashMap;

use super::matchers::{MatcherDef, Scopes};
use super::syntax::{self, Directive};
use super::{encode, files, forward_auth, guards, handlers, headers, reverse_proxy, Parser, Table};
use crate::config::address::{self, SiteAddress};
use crate::config::lexer::Token;
use crate::config::matcher::compile_path;
use crate::config::{AccessLog, ConfigError, Handler, Origin, Route, TlsPolicy};

/// Parses a directive that guards a handler with an optional inline matcher; gets the
/// arguments after the matcher.
type HandlerDirective = fn(&mut Parser<'_>, &Directive, &[Token]) -> Result<Handler, ConfigError>;

/// Parses a directive with nested directives, which reads its own matcher.
type NestedDirective = fn(
    &mut Parser<'_>,
    &Directive,
    &mut Scopes,
) -> Result<(Option<MatcherDef>, Handler), ConfigError>;

/// Parses a site-wide setting.
type SettingDirective = fn(&Parser<'_>, &Directive, &mut SiteExtras) -> Result<(), ConfigError>;

/// What a directive is.
#[derive(Clone, Copy)]
enum DirectiveKind {
    /// A site-wide setting (`tls`, `log`): only at the top of a site block, at most once.
    Setting(SettingDirective),
    /// A handler after an optional inline matcher (`respond /x 404`).
    Handler(Order, HandlerDirective),
    /// Nested directives (`handle`, `route`, `handle_path`).
    Nested(Order, NestedDirective),
}

/// Every directive ringproxy supports.
const DIRECTIVES: &Table<DirectiveKind> = &[
    ("basic_auth", DirectiveKind::Handler(Order::BasicAuth, guards::basic_auth)),
    // Caddy 2.6's name, which 2.11 still takes.
    ("basicauth", DirectiveKind::Handler(Order::BasicAuth, guards::basic_auth)),
    ("encode", DirectiveKind::Handler(Order::Encode, encode::encode)),
    ("file_server", DirectiveKind::Handler(Order::FileServer, files::file_server)),
    ("forward_auth", DirectiveKind::Handler(Order::ForwardAuth, forward_auth::forward_auth)),
    ("handle", DirectiveKind::Nested(Order::Handle, handle)),
    ("handle_path", DirectiveKind::Nested(Order::Handle, handle_path)),
    ("header", DirectiveKind::Handler(Order::Header, headers::header)),
    ("log", DirectiveKind::Setting(handlers::log)),
    ("metrics", DirectiveKind::Handler(Order::Metrics, handlers::metrics)),
    ("redir", DirectiveKind::Handler(Order::Redir, handlers::redir)),
    ("request_body", DirectiveKind::Handler(Order::RequestBody, guards::request_body)),
    ("respond", DirectiveKind::Handler(Order::Respond, handlers::respond)),
    ("reverse_proxy", DirectiveKind::Handler(Order::ReverseProxy, reverse_proxy::reverse_proxy)),
    ("root", DirectiveKind::Nested(Order::Root, files::root)),
    ("route", DirectiveKind::Nested(Order::Route, route)),
    ("tls", DirectiveKind::Setting(handlers::tls)),
    ("try_files", DirectiveKind::Handler(Order::TryFiles, files::try_files)),
];

/// A route's place in Caddy's directive order (`httpcaddyfile.directiveOrder`); variants are
/// declared in that order. `handle_path` shares `handle`'s place and group. For directives still
/// to come, Caddy's order around ours is: *root*, *header*, *request_body*, *redir*,
/// *try_files*, *basic_auth*, *forward_auth*, *encode*, *handle*, *route*, *respond*,
/// *metrics*, *reverse_proxy*, *file_server*.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Order {
    Root,
    Header,
    RequestBody,
    Redir,
    TryFiles,
    BasicAuth,
    ForwardAuth,
    Encode,
    Handle,
    Route,
    Respond,
    Metrics,
    ReverseProxy,
    FileServer,
}

/// Site-level settings that are not routes.
#[derive(Default)]
pub(super) struct SiteExtras {
    /// `tls` and the line it is on (none for `tls { … }` without arguments, which keeps the
    /// automatic certificate).
    pub tls: Option<(TlsPolicy, usize)>,
    /// `tls { … }` options and the line of the `tls`.
    pub tls_options: Option<(crate::config::TlsOptions, usize)>,
    pub access_log: Option<AccessLog>,
    /// Settings already given in this site, which may not be given again.
    given: Vec<String>,
}

/// One site block, parsed, before it is placed on listeners.
pub(super) struct ParsedSite {
    pub addresses: Vec<(Token, SiteAddress)>,
    pub extras: SiteExtras,
    pub routes: Vec<Route>,
    pub origin: Origin,
}

/// A route before Caddy's directive sort.
struct Pending {
    order: Order,
    single_path: Option<String>,
    route: Route,
}

impl Pending {
    fn new(order: Order, def: Option<MatcherDef>, handler: Handler) -> Pending {
        let (matcher, single_path) = match def {
            Some(d) => (Some(d.matcher), d.single_path),
            None => (None, None),
        };
        Pending { order, single_path, route: Route { matcher, handler, group: None } }
    }
}

impl Parser<'_> {
    pub(super) fn site(&mut self, block: &syntax::SiteBlock) -> Result<ParsedSite, ConfigError> {
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
        Ok(ParsedSite { addresses, extras, routes, origin: self.origin(origin_line) })
    }

    /// Parses the directives of a site block or of a `handle`/`route` block into routes.
    /// `extras` is `Some` only at the top of a site, where settings are allowed; `sort` is
    /// false inside `route`, which keeps the written order.
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
            match *self.pick(DIRECTIVES, "directive", &d.name)? {
                DirectiveKind::Setting(setting) => {
                    let Some(extras) = extras.as_deref_mut() else {
                        return Err(self.err(
                            d.line(),
                            format!(
                                "directive '{name}' is only allowed at the top level of a site \
                                 block"
                            ),
                        ));
                    };
                    if extras.given.iter().any(|given| given == name) {
                        return Err(self.err(
                            d.line(),
                            format!("directive '{name}' is set more than once in this site"),
                        ));
                    }
                    setting(self, d, extras)?;
                    extras.given.push(name.to_string());
                }
                DirectiveKind::Handler(order, handler) => {
                    let (def, rest) = self.matcher_token(&d.args, scopes)?;
                    pending.push(Pending::new(order, def, handler(self, d, rest)?));
                }
                DirectiveKind::Nested(order, nested) => {
                    let (def, handler) = nested(self, d, scopes)?;
                    pending.push(Pending::new(order, def, handler));
                }
            }
        }
        Ok(pending)
    }

    /// `handle`/`route [<matcher>] { … }`.
    fn subroute(
        &mut self,
        d: &Directive,
        scopes: &mut Scopes,
        sort: bool,
    ) -> Result<(Option<MatcherDef>, Handler), ConfigError> {
        let (def, rest) = self.matcher_token(&d.args, scopes)?;
        if let Some(extra) = rest.first() {
            return Err(self.arg_err(extra));
        }
        let routes = match &d.block {
            Some(block) => self.routes(&block.items, scopes, None, sort)?,
            None => Vec::new(),
        };
        Ok((def, Handler::Subroute { routes, strip_prefix: None }))
    }
}

/// `handle [<matcher>] { … }`: nested routes, sorted; one of a block's handles runs.
fn handle(
    p: &mut Parser<'_>,
    d: &Directive,
    scopes: &mut Scopes,
) -> Result<(Option<MatcherDef>, Handler), ConfigError> {
    p.subroute(d, scopes, true)
}

/// `route [<matcher>] { … }`: nested routes in the order written.
fn route(
    p: &mut Parser<'_>,
    d: &Directive,
    scopes: &mut Scopes,
) -> Result<(Option<MatcherDef>, Handler), ConfigError> {
    p.subroute(d, scopes, false)
}

/// `handle_path <path> { … }`: `handle` with a path matcher whose prefix (up to the `*`) is
/// stripped before the nested routes run.
fn handle_path(
    p: &mut Parser<'_>,
    d: &Directive,
    scopes: &mut Scopes,
) -> Result<(Option<MatcherDef>, Handler), ConfigError> {
    let arg = &p.args_with_block(d, 1)?[0];
    if !arg.text.starts_with('/') {
        return Err(p.err(arg.line, format!("path matcher must begin with '/', got {}", arg.text)));
    }
    let pattern = compile_path(&arg.text).map_err(|m| p.err(arg.line, m))?;
    let raw = arg.text.to_lowercase();
    let strip = raw.strip_suffix("/*").or_else(|| raw.strip_suffix('*')).unwrap_or(&raw);
    let strip_prefix = (!strip.is_empty()).then(|| strip.to_string());
    let routes = match &d.block {
        Some(block) => p.routes(&block.items, scopes, None, true)?,
        None => Vec::new(),
    };
    let def = MatcherDef::inline_path(pattern, &arg.text);
    Ok((Some(def), Handler::Subroute { routes, strip_prefix }))
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
    let handles = pending.iter().filter(|p| p.order == Order::Handle).count();
    let mut routes: Vec<Route> = Vec::with_capacity(pending.len());
    for p in pending {
        let mut route = p.route;
        if handles > 1 && p.order == Order::Handle {
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

#[cfg(test)]
mod tests {
    use super::super::test_support::{describe, parse_err, routes_of};
    use super::*;
    use crate::config::PathPattern;

    /// The path of each route's matcher (`-` without one).
    fn paths(routes: &[Route]) -> Vec<String> {
        routes
            .iter()
            .map(|r| match r.matcher.as_ref().map(|m| m.paths.as_slice()) {
                Some([PathPattern::Exact(p)]) => p.clone(),
                Some([PathPattern::Prefix(p)]) => format!("{p}*"),
                Some(other) => format!("{other:?}"),
                None => "-".to_string(),
            })
            .collect()
    }

    #[test]
    fn directives_are_listed_alphabetically() {
        let names: Vec<&str> = DIRECTIVES.iter().map(|(n, _)| *n).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        assert_eq!(names, sorted);
    }

    #[test]
    fn an_unknown_directive_lists_the_supported_ones() {
        let supported = super::super::supported(DIRECTIVES);
        assert!(supported.contains("handle, handle_path, "), "{supported}");
        assert_eq!(
            parse_err("a.com {\n\treverse_proxy :9000\n\tphp_fastcgi :9001\n}\n"),
            format!(
                "Caddyfile:3 - directive 'php_fastcgi' is not supported by ringproxy (supported: \
                 {supported})"
            )
        );
        assert_eq!(
            parse_err(":80 {\n\t\"@m\" path /a\n}\n"),
            format!(
                "Caddyfile:2 - directive '@m' is not supported by ringproxy (supported: \
                 {supported})"
            )
        );
    }

    #[test]
    fn routes_follow_caddys_directive_order() {
        let routes = routes_of(
            ":80 {\n\treverse_proxy :9000\n\trespond /a 200\n\troute {\n\t\trespond 201\n\t}\n\t\
             handle /b {\n\t\trespond 202\n\t}\n\tredir /c /d\n}\n",
        );
        assert_eq!(
            describe(&routes),
            [
                "redir 302",
                "subroute [respond 202]",
                "subroute [respond 201]",
                "respond 200",
                "proxy 0"
            ]
        );
    }

    #[test]
    fn the_same_directive_sorts_by_path_then_matcher() {
        let routes = routes_of(
            ":80 {\n\t@named method POST\n\trespond 500\n\trespond /z 502\n\trespond /a/* 503\n\t\
             respond /a/b* 504\n\trespond /a/b 505\n\trespond /b/x 506\n\trespond /a/y 507\n\t\
             respond @named 501\n}\n",
        );
        assert_eq!(paths(&routes), ["/a/b", "/a/b*", "/a/y", "/b/x", "/a/*", "/z", "[]", "-"]);
        assert_eq!(describe(&routes[6..]), ["respond 501", "respond 500"]);
    }

    #[test]
    fn route_blocks_keep_the_written_order() {
        let routes = routes_of(
            ":80 {\n\troute {\n\t\trespond 200\n\t\tredir /a /b\n\t\trespond /x 201\n\t}\n}\n",
        );
        assert_eq!(describe(&routes), ["subroute [respond 200, redir 302, respond 201]"]);
    }

    #[test]
    fn handles_form_a_group_only_when_there_are_several() {
        let one = routes_of(":80 {\n\thandle /a {\n\t\trespond 200\n\t}\n\trespond 404\n}\n");
        assert_eq!(one.iter().map(|r| r.group).collect::<Vec<_>>(), [None, None]);
        let two = routes_of(
            ":80 {\n\thandle /a {\n\t\trespond 200\n\t}\n\thandle_path /b/* {\n\t\trespond \
             201\n\t}\n\trespond 404\n}\n",
        );
        assert_eq!(two.iter().map(|r| r.group).collect::<Vec<_>>(), [Some(0), Some(0), None]);
    }

    #[test]
    fn adjacent_handles_with_one_matcher_merge_so_both_run() {
        let routes = routes_of(
            ":80 {\n\thandle /a {\n\t\trespond 200\n\t}\n\thandle /a {\n\t\trespond 201\n\t}\n\t\
             handle {\n\t\trespond 404\n\t}\n}\n",
        );
        assert_eq!(
            describe(&routes),
            ["subroute [subroute [respond 200], subroute [respond 201]]", "subroute [respond 404]"]
        );
        assert!(routes[0].matcher.is_some());
        assert_eq!(routes[0].group, Some(0));
    }

    #[test]
    fn handle_path_strips_its_prefix_and_sorts_as_handle() {
        let routes = routes_of(
            ":80 {\n\thandle_path /API/* {\n\t\trespond 200\n\t}\n\thandle_path /x* {\n\t}\n\t\
             handle_path /* {\n\t}\n\thandle /exact {\n\t}\n}\n",
        );
        assert_eq!(paths(&routes), ["/exact", "/api/*", "/x*", "/*"]);
        assert_eq!(
            describe(&routes),
            ["subroute []", "strip /api [respond 200]", "strip /x []", "subroute []"]
        );
    }

    #[test]
    fn handle_path_needs_one_path_starting_with_a_slash() {
        assert_eq!(
            parse_err(":80 {\n\thandle_path api/* {\n\t}\n}\n"),
            "Caddyfile:2 - path matcher must begin with '/', got api/*"
        );
        assert_eq!(
            parse_err(":80 {\n\thandle_path {\n\t}\n}\n"),
            "Caddyfile:2 - wrong argument count or unexpected line ending after 'handle_path'"
        );
    }

    #[test]
    fn handle_and_route_take_only_a_matcher() {
        assert_eq!(
            parse_err(":80 {\n\thandle /a /b {\n\t}\n}\n"),
            "Caddyfile:2 - wrong argument count or unexpected line ending after '/b'"
        );
        assert_eq!(
            parse_err(":80 {\n\troute x {\n\t}\n}\n"),
            "Caddyfile:2 - wrong argument count or unexpected line ending after 'x'"
        );
        assert_eq!(describe(&routes_of(":80 {\n\thandle\n}\n")), ["subroute []"]);
    }

    #[test]
    fn settings_only_at_the_top_of_a_site_and_only_once() {
        assert_eq!(
            parse_err(":80 {\n\thandle {\n\t\ttls internal\n\t}\n}\n"),
            "Caddyfile:3 - directive 'tls' is only allowed at the top level of a site block"
        );
        assert_eq!(
            parse_err(":80 {\n\troute {\n\t\tlog\n\t}\n}\n"),
            "Caddyfile:3 - directive 'log' is only allowed at the top level of a site block"
        );
        assert_eq!(
            parse_err("a.com {\n\ttls internal\n\ttls internal\n}\n"),
            "Caddyfile:3 - directive 'tls' is set more than once in this site"
        );
        assert_eq!(
            parse_err(":80 {\n\tlog\n\tlog {\n\t\tformat console\n\t}\n}\n"),
            "Caddyfile:3 - directive 'log' is set more than once in this site"
        );
    }

    #[test]
    fn a_site_starts_where_its_first_address_is() {
        let config = super::super::test_support::parse("\n\n:80 :81 {\n\trespond 200\n}\n");
        for listener in &config.listeners {
            assert_eq!(listener.sites[0].origin, Origin { file: "Caddyfile".into(), line: 3 });
        }
    }

    #[test]
    fn a_site_without_an_address_is_an_error() {
        assert_eq!(parse_err("\"\" {\n}\n"), "Caddyfile:1 - site block has no address");
    }
}
