//! Templates and what they are rendered from: the [`ForwardContext`] (the request being
//! served, the client's address, the chosen upstream, the route's `handle_path` prefixes) and
//! the placeholders of `respond`, `redir` and `header_up`/`header_down` values. OWNER: http
//! helper.
//!
//! Inside `handle_path`, placeholders see the request as rewritten (as in Caddy, where
//! `handle_path` rewrites the request before anything inside it runs). Rendering adds nothing
//! but bytes to the caller's `out`; keeping a rendered value from splitting a head is the
//! head writer's job (`rewrite`).

use std::io::Write as _;
use std::net::IpAddr;

use super::path::write_stripped_path;
use super::request::Request;
use crate::config::{Placeholder, Template, TemplatePart};

/// What a rewritten head or a rendered template draws on: the request being served, where it
/// came from, and where it goes.
#[derive(Debug, Clone, Copy)]
pub struct ForwardContext<'a> {
    pub request: &'a Request,
    /// The connection's peer (the PROXY protocol's source address when a header carried one):
    /// what `{remote_host}` shows and X-Forwarded-For ends with.
    pub client_ip: IpAddr,
    pub client_port: u16,
    /// The peer is one of `trusted_proxies`: the X-Forwarded-* it sent are kept.
    pub trusted_proxy: bool,
    /// `http` or `https`: the scheme the client used to reach us.
    pub scheme: &'static str,
    /// The upstream chosen for this request, as configured (`localhost:8080`).
    pub upstream_hostport: &'a str,
    /// Prefixes removed by `handle_path`, outermost first (lower-case).
    pub strip_prefixes: &'a [&'a str],
}

/// Render a template for a request into `out`.
///
/// `{uri}`, `{path}` and `{query}` are the target as received (origin-form), less any
/// `handle_path` prefixes, as in Caddy where `handle_path` rewrites the request before anything
/// inside it runs; `{remote_host}` is the client address with IPv4-mapped IPv6 shown as IPv4.
pub fn render_template(template: &Template, ctx: &ForwardContext<'_>, out: &mut Vec<u8>) {
    let request = ctx.request;
    for part in &template.parts {
        match part {
            TemplatePart::Literal(text) => out.extend_from_slice(text.as_bytes()),
            TemplatePart::Placeholder(p) => match p {
                Placeholder::Host => out.extend_from_slice(request.head().host.as_bytes()),
                Placeholder::HostPort => out.extend_from_slice(request.head().host_port.as_bytes()),
                Placeholder::Uri => write_target(request, ctx.strip_prefixes, out),
                Placeholder::Path => write_stripped_path(request.path(), ctx.strip_prefixes, out),
                Placeholder::Query => out.extend_from_slice(request.query()),
                Placeholder::Scheme => out.extend_from_slice(ctx.scheme.as_bytes()),
                Placeholder::Method => out.extend_from_slice(request.method_token()),
                Placeholder::RemoteHost => {
                    let _ = write!(out, "{}", ctx.client_ip.to_canonical());
                }
                Placeholder::RemotePort => {
                    let _ = write!(out, "{}", ctx.client_port);
                }
                Placeholder::UpstreamHostPort => {
                    out.extend_from_slice(ctx.upstream_hostport.as_bytes())
                }
            },
        }
    }
}

/// The request target for the upstream, with `handle_path` prefixes removed.
pub fn write_target(request: &Request, prefixes: &[&str], out: &mut Vec<u8>) {
    let target = request.target();
    if prefixes.is_empty() || target == b"*" {
        out.extend_from_slice(target);
        return;
    }
    let path = request.path();
    write_stripped_path(path, prefixes, out);
    out.extend_from_slice(&target[path.len()..]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::head::parse_request;

    fn request(raw: &[u8]) -> Request {
        Request::new(parse_request(raw, 65536).unwrap().unwrap(), raw.to_vec())
    }

    fn ctx<'a>(request: &'a Request, prefixes: &'a [&'a str]) -> ForwardContext<'a> {
        ForwardContext {
            request,
            client_ip: "192.0.2.7".parse().unwrap(),
            client_port: 54321,
            trusted_proxy: false,
            scheme: "https",
            upstream_hostport: "localhost:8080",
            strip_prefixes: prefixes,
        }
    }

    #[test]
    fn handle_path_prefixes_are_stripped() {
        let cases: &[(&str, &[&str], &str)] = &[
            ("/api/x?y=1", &["/api"], "/x?y=1"),
            ("/API/x", &["/api"], "/x"),
            ("/api/x", &["/api/"], "/x"),
            ("/api", &["/api"], "/"),
            ("/api?q", &["/api"], "/?q"),
            ("/api/auth/x", &["/api", "/auth"], "/x"),
            ("//api///x", &["/api"], "/x"),
            ("/api/../api/x", &["/api"], "/x"),
            ("/%61pi/x%20y", &["/api"], "/x%20y"),
            ("/%61pi/a%3Fb%25c", &["/api"], "/a%3Fb%25c"),
            ("/api/x", &["/other"], "/api/x"),
            ("/api/x", &[], "/api/x"),
            ("/api/%2e%2e/x", &[], "/api/%2e%2e/x"),
        ];
        let mut out = Vec::new();
        for (target, prefixes, want) in cases {
            let raw = format!("GET {target} HTTP/1.1\r\nHost: a\r\n\r\n");
            out.clear();
            write_target(&request(raw.as_bytes()), prefixes, &mut out);
            assert_eq!(String::from_utf8_lossy(&out), *want, "{target} - {prefixes:?}");
        }
    }

    #[test]
    fn templates_render_every_placeholder_inside_and_outside_handle_path() {
        let raw = b"PUT /p/a?q=1 HTTP/1.1\r\nHost: H.example:8443\r\n\r\n";
        let request = request(raw);
        let all = Template {
            parts: [
                Placeholder::Host,
                Placeholder::HostPort,
                Placeholder::Uri,
                Placeholder::Path,
                Placeholder::Query,
                Placeholder::Scheme,
                Placeholder::Method,
                Placeholder::RemoteHost,
                Placeholder::RemotePort,
                Placeholder::UpstreamHostPort,
            ]
            .into_iter()
            .flat_map(|p| [TemplatePart::Placeholder(p), TemplatePart::Literal("|".into())])
            .collect(),
        };
        let mut out = Vec::new();
        render_template(&all, &ctx(&request, &[]), &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "h.example|H.example:8443|/p/a?q=1|/p/a|q=1|https|PUT|192.0.2.7|54321|localhost:8080|"
        );

        // Inside handle_path, the placeholders see the request as rewritten.
        let mut out = Vec::new();
        render_template(&all, &ctx(&request, &["/p/"]), &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "h.example|H.example:8443|/a?q=1|/a|q=1|https|PUT|192.0.2.7|54321|localhost:8080|"
        );
    }
}
