//! Response header ops (`header`, `header_down`) applied to a head while it is written, in
//! Caddy's three stages: the `header` directive's immediate ops act on an empty head before
//! the handler runs; the handler's own fields (an upstream's, after `header_down`) are added
//! to what they produced; the deferred ops then act on the whole head. Owns that arithmetic;
//! which fields a head has before the ops, and its framing, are `rewrite`'s and `response`'s.
//!
//! Nothing is built as a map: every op acts on one field name only (a wildcard delete or a
//! `*` replace on each name it matches), so the fate of each field, and what each name gains,
//! is worked out from the ops as the head is written. Field order: the immediate ops' fields
//! first, then the head's own, then what `header_down` and the deferred ops add, so the
//! values of one name stay in Caddy's order. An encoded head is encoded between the handler's
//! fields and the deferred ops, where Caddy's `encode` sits (see [`Writer`]).
//!
//! Ops never touch framing or hop-by-hop fields, not even through a wildcard: no configuration
//! can make the two sides disagree about where a body ends. Rendered values lose control
//! characters, so a placeholder can never split a head.

use std::borrow::Cow;
use std::cell::Cell;

use super::encode::Reencoding;
use super::template::{render_template, ForwardContext};
use crate::config::{HeaderOp, ResponseHeaders, Template};

/// Fields no op may touch: framing and hop-by-hop (RFC 9110 §7.6.1).
const PROTECTED: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
    "content-length",
    "transfer-encoding",
];

/// Several handlers' ops, one after the other, borrowed from the config.
#[derive(Debug, Clone, Default)]
pub struct OpSeq<'c> {
    groups: Vec<&'c [HeaderOp]>,
}

impl<'c> OpSeq<'c> {
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    fn push(&mut self, ops: &'c [HeaderOp]) {
        if !ops.is_empty() {
            self.groups.push(ops);
        }
    }

    fn iter(&self) -> impl Iterator<Item = &'c HeaderOp> + Clone + '_ {
        self.groups.iter().flat_map(|g| g.iter())
    }
}

/// The `header` middleware of one request, gathered from its routes.
#[derive(Debug, Clone, Default)]
pub struct HeaderMiddleware<'c> {
    pub immediate: OpSeq<'c>,
    pub deferred: OpSeq<'c>,
}

impl<'c> HeaderMiddleware<'c> {
    /// `headers` in route order. Caddy nests its handlers, so a later one's deferred ops run
    /// first; immediate ones run in route order. Allocates nothing when there are none.
    pub fn gather(headers: impl DoubleEndedIterator<Item = &'c ResponseHeaders> + Clone) -> Self {
        let mut gathered = HeaderMiddleware::default();
        for h in headers.clone() {
            gathered.immediate.push(&h.immediate);
        }
        for h in headers.rev() {
            gathered.deferred.push(&h.deferred);
        }
        gathered
    }

    pub fn is_empty(&self) -> bool {
        self.immediate.is_empty() && self.deferred.is_empty()
    }

    /// For an error answer: Caddy writes it past the deferring handlers, so only the
    /// immediate ops reach it.
    pub fn immediate_only(&self) -> HeaderMiddleware<'c> {
        HeaderMiddleware { immediate: self.immediate.clone(), deferred: OpSeq::default() }
    }
}

/// Every op that shapes one head.
#[derive(Debug, Clone, Copy)]
pub struct ResponseOps<'a, 'c> {
    pub immediate: &'a OpSeq<'c>,
    /// `header_down`: acts on the head's own fields only.
    pub down: &'c [HeaderOp],
    pub deferred: &'a OpSeq<'c>,
}

/// No ops at all.
static NO_OPS: OpSeq<'static> = OpSeq { groups: Vec::new() };

impl ResponseOps<'static, 'static> {
    pub const NONE: Self = ResponseOps { immediate: &NO_OPS, down: &[], deferred: &NO_OPS };
}

impl ResponseOps<'_, '_> {
    pub fn is_empty(&self) -> bool {
        self.immediate.is_empty() && self.down.is_empty() && self.deferred.is_empty()
    }
}

/// What one op does to the values of one field name.
enum Effect<'c> {
    None,
    /// Every value goes; `Some` puts this one in their place.
    Reset(Option<&'c Template>),
    Append(&'c Template),
    IfEmpty(&'c Template),
    Replace(&'c regex::bytes::Regex, &'c Template),
}

fn effect<'c>(op: &'c HeaderOp, name: &[u8]) -> Effect<'c> {
    if is_protected(name) {
        return Effect::None;
    }
    let named = |n: &str| name.eq_ignore_ascii_case(n.as_bytes());
    match op {
        HeaderOp::Set { name: n, value } if named(n) => Effect::Reset(Some(value)),
        // One Host only, as `+Host` has always meant here.
        HeaderOp::Add { name: n, value } if named(n) && n.eq_ignore_ascii_case("host") => {
            Effect::Reset(Some(value))
        }
        HeaderOp::Add { name: n, value } if named(n) => Effect::Append(value),
        HeaderOp::Remove { name: n } if named(n) => Effect::Reset(None),
        HeaderOp::RemoveMatching { pattern } if pattern.matches(name) => Effect::Reset(None),
        HeaderOp::Default { name: n, value } if named(n) => Effect::IfEmpty(value),
        HeaderOp::Replace { name: n, find, replace } if n == "*" || named(n) => {
            Effect::Replace(&find.0, replace)
        }
        _ => Effect::None,
    }
}

fn is_protected(name: &[u8]) -> bool {
    PROTECTED.iter().any(|p| name.eq_ignore_ascii_case(p.as_bytes()))
}

/// The name an op may add values under (Set, Add, Default), if any.
fn producing_name(op: &HeaderOp) -> Option<&str> {
    match op {
        HeaderOp::Set { name, .. }
        | HeaderOp::Add { name, .. }
        | HeaderOp::Default { name, .. } => Some(name),
        _ => None,
    }
}

/// What `ops` do to the values a name had before them: they stay (each through every
/// replacement in `ops`) unless an op drops them all; see [`added`] for what the ops add.
struct Fate {
    keeps_existing: bool,
    /// Index (in `ops`) of the last op that dropped every value, if any.
    last_reset: Option<usize>,
}

fn fate<'c>(ops: impl Iterator<Item = &'c HeaderOp>, name: &[u8]) -> Fate {
    let mut fate = Fate { keeps_existing: true, last_reset: None };
    for (i, op) in ops.enumerate() {
        if let Effect::Reset(_) = effect(op, name) {
            fate = Fate { keeps_existing: false, last_reset: Some(i) };
        }
    }
    fate
}

/// The values `ops` add to `name` and keep, each with the index of the op that added it;
/// `had_values` says whether the name had any before them (for `?`).
fn added<'o, 'c: 'o>(
    ops: impl Iterator<Item = &'c HeaderOp> + Clone + 'o,
    name: &'o [u8],
    had_values: bool,
) -> impl Iterator<Item = (usize, &'c Template)> + 'o {
    let fate = fate(ops.clone(), name);
    let start = fate.last_reset.unwrap_or(0);
    let mut count = usize::from(fate.keeps_existing && had_values);
    ops.enumerate().skip(start).filter_map(move |(i, op)| match effect(op, name) {
        Effect::Reset(Some(value)) => {
            count = 1;
            Some((i, value))
        }
        Effect::Append(value) => {
            count += 1;
            Some((i, value))
        }
        Effect::IfEmpty(value) if count == 0 => {
            count = 1;
            Some((i, value))
        }
        _ => None,
    })
}

/// The replacements in `ops` after index `after` (all of them for `None`) that act on `name`.
fn replacements<'o, 'c: 'o>(
    ops: impl Iterator<Item = &'c HeaderOp> + 'o,
    name: &'o [u8],
    after: Option<usize>,
) -> impl Iterator<Item = (&'c regex::bytes::Regex, &'c Template)> + 'o {
    ops.enumerate().filter_map(move |(i, op)| match effect(op, name) {
        Effect::Replace(find, replace) if after.is_none_or(|a| i > a) => Some((find, replace)),
        _ => None,
    })
}

/// Whether the first op producing values under `name` in `ops` is at `index` (so each name's
/// added values are written once).
fn first_producer<'c>(ops: impl Iterator<Item = &'c HeaderOp>, name: &str, index: usize) -> bool {
    ops.enumerate()
        .find(|(_, op)| producing_name(op).is_some_and(|n| n.eq_ignore_ascii_case(name)))
        .is_some_and(|(i, _)| i == index)
}

/// Whether `ops` leave `name` any value, given whether it had one.
fn leaves_values<'c>(
    ops: impl Iterator<Item = &'c HeaderOp> + Clone,
    name: &[u8],
    had_values: bool,
) -> bool {
    (fate(ops.clone(), name).keeps_existing && had_values)
        || added(ops, name, had_values).next().is_some()
}

/// The encoding a field written before the deferred ops goes through, if the head is encoded.
#[derive(Clone, Copy)]
struct Settle<'w>(Option<(&'w Reencoding, &'w Cell<bool>)>);

impl Settle<'_> {
    const NONE: Settle<'static> = Settle(None);

    fn drops(&self, name: &[u8]) -> bool {
        self.0.is_some() && !Reencoding::keeps(name)
    }

    /// The value is `out[value_start..]`, its line end not yet written.
    fn value_written(&self, name: &[u8], out: &mut Vec<u8>, value_start: usize) {
        if let Some((encoding, varies)) = self.0 {
            if encoding.settle(name, out, value_start) {
                varies.set(true);
            }
        }
    }
}

/// Writes one field: `value` (rendered from a template or taken from the head), through each
/// of `replaces`, with control characters removed, then through `settle`.
fn write_value<'c>(
    out: &mut Vec<u8>,
    ctx: &ForwardContext<'_>,
    name: &[u8],
    value: Cow<'_, [u8]>,
    replaces: impl Iterator<Item = (&'c regex::bytes::Regex, &'c Template)>,
    settle: Settle<'_>,
) {
    if settle.drops(name) {
        return;
    }
    let mut value = value;
    for (find, replace) in replaces {
        let mut with = Vec::new();
        render_template(replace, ctx, &mut with);
        let replaced = find.replace_all(&value, with.as_slice()).into_owned();
        value = Cow::Owned(replaced);
    }
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    let start = out.len();
    out.extend_from_slice(&value);
    strip_controls(out, start);
    settle.value_written(name, out, start);
    out.extend_from_slice(b"\r\n");
}

/// Renders `template`, straight into `out` when no replacement follows.
fn write_rendered<'c>(
    out: &mut Vec<u8>,
    ctx: &ForwardContext<'_>,
    name: &[u8],
    template: &Template,
    mut replaces: std::iter::Peekable<
        impl Iterator<Item = (&'c regex::bytes::Regex, &'c Template)>,
    >,
    settle: Settle<'_>,
) {
    if settle.drops(name) {
        return;
    }
    if replaces.peek().is_none() {
        out.extend_from_slice(name);
        out.extend_from_slice(b": ");
        let start = out.len();
        render_template(template, ctx, out);
        strip_controls(out, start);
        settle.value_written(name, out, start);
        out.extend_from_slice(b"\r\n");
        return;
    }
    let mut rendered = Vec::new();
    render_template(template, ctx, &mut rendered);
    write_value(out, ctx, name, Cow::Owned(rendered), replaces, settle);
}

/// Writes the fields of a head under `ops`: call [`Writer::leading`] before the head's own
/// fields, [`Writer::own`] for each of them, [`Writer::trailing`] after them.
///
/// An encoded head ([`Writer::encoded`]) is encoded as Caddy's `encode` does it, between the
/// handler and the deferred ops: every field written before the deferred ops (the immediate
/// ops', the head's own, `header_down`'s) is settled by the [`Reencoding`] as it is written,
/// and the fields the coding adds are then subject to the deferred ops like the head's own
/// (a deferred `-Vary` removes the `Vary` the coding added). The caller filters the head's own
/// fields and writes the framing field.
pub struct Writer<'a, 'c, 'x, F> {
    ops: ResponseOps<'a, 'c>,
    ctx: &'a ForwardContext<'x>,
    /// The head's own fields (after the writer's filtering, before any op).
    fields: F,
    encoding: Option<Reencoding>,
    /// A field written so far lists `Accept-Encoding` in a `Vary`.
    varies: Cell<bool>,
}

impl<'a, 'c, 'x, 'b, F> Writer<'a, 'c, 'x, F>
where
    F: Iterator<Item = (&'b [u8], &'b [u8])> + Clone,
{
    pub fn new(ops: ResponseOps<'a, 'c>, ctx: &'a ForwardContext<'x>, fields: F) -> Self {
        Writer { ops, ctx, fields, encoding: None, varies: Cell::new(false) }
    }

    /// The head is sent encoded as `encoding` says.
    pub fn encoded(self, encoding: Option<Reencoding>) -> Self {
        Writer { encoding, ..self }
    }

    /// The settling for the fields written before the deferred ops.
    fn settle(&self) -> Settle<'_> {
        Settle(self.encoding.as_ref().map(|e| (e, &self.varies)))
    }

    fn has_own(&self, name: &[u8]) -> bool {
        self.fields.clone().any(|(n, _)| n.eq_ignore_ascii_case(name))
    }

    /// The immediate ops' fields, as the deferred ones leave them.
    pub fn leading(&self, out: &mut Vec<u8>) {
        let (immediate, deferred) = (self.ops.immediate, self.ops.deferred);
        for (i, op) in immediate.iter().enumerate() {
            let Some(name) = producing_name(op) else { continue };
            if !first_producer(immediate.iter(), name, i) {
                continue;
            }
            let name = name.as_bytes();
            if !fate(deferred.iter(), name).keeps_existing {
                continue;
            }
            for (at, value) in added(immediate.iter(), name, false) {
                let replaces = replacements(immediate.iter(), name, Some(at)).chain(replacements(
                    deferred.iter(),
                    name,
                    None,
                ));
                write_rendered(out, self.ctx, name, value, replaces.peekable(), self.settle());
            }
        }
    }

    /// One of the head's own fields, unless an op drops it.
    pub fn own(&self, name: &[u8], value: &[u8], out: &mut Vec<u8>) {
        let (down, deferred) = (self.ops.down, self.ops.deferred);
        if !fate(down.iter(), name).keeps_existing || !fate(deferred.iter(), name).keeps_existing {
            return;
        }
        let replaces =
            replacements(down.iter(), name, None).chain(replacements(deferred.iter(), name, None));
        write_value(out, self.ctx, name, Cow::Borrowed(value), replaces, self.settle());
    }

    /// What `header_down` adds, the fields an encoding adds, and what the deferred ops add.
    pub fn trailing(&self, out: &mut Vec<u8>) {
        let (immediate, down, deferred) = (self.ops.immediate, self.ops.down, self.ops.deferred);
        for (i, op) in down.iter().enumerate() {
            let Some(name) = producing_name(op) else { continue };
            if !first_producer(down.iter(), name, i) {
                continue;
            }
            let name = name.as_bytes();
            if !fate(deferred.iter(), name).keeps_existing {
                continue;
            }
            for (at, value) in added(down.iter(), name, self.has_own(name)) {
                let replaces = replacements(down.iter(), name, Some(at)).chain(replacements(
                    deferred.iter(),
                    name,
                    None,
                ));
                write_rendered(out, self.ctx, name, value, replaces.peekable(), self.settle());
            }
        }
        let added_by_coding = self.encoding.iter().flat_map(|e| e.added_fields(self.varies.get()));
        for (name, value) in added_by_coding {
            if fate(deferred.iter(), name).keeps_existing {
                let replaces = replacements(deferred.iter(), name, None);
                write_value(out, self.ctx, name, Cow::Borrowed(value), replaces, Settle::NONE);
            }
        }
        for (i, op) in deferred.iter().enumerate() {
            let Some(name) = producing_name(op) else { continue };
            if !first_producer(deferred.iter(), name, i) {
                continue;
            }
            let name = name.as_bytes();
            let had_values = leaves_values(immediate.iter(), name, false)
                || leaves_values(down.iter(), name, self.has_own(name))
                || self.encoding.is_some_and(|e| e.adds(name));
            for (at, value) in added(deferred.iter(), name, had_values) {
                let replaces = replacements(deferred.iter(), name, Some(at)).peekable();
                write_rendered(out, self.ctx, name, value, replaces, Settle::NONE);
            }
        }
    }
}

/// Applies `ops` to a head this proxy wrote itself (`respond`, `redir`, an error answer):
/// `out[start..]` holds the whole response, which is rewritten in place. Such heads are
/// small and off the hot path; a proxied head is rewritten as it is first written instead.
pub fn rewrite_own_response(
    out: &mut Vec<u8>,
    start: usize,
    ops: ResponseOps<'_, '_>,
    ctx: &ForwardContext<'_>,
) {
    if ops.is_empty() {
        return;
    }
    let response = out.split_off(start);
    let Some(head_end) = response.windows(4).position(|w| w == b"\r\n\r\n") else {
        out.extend_from_slice(&response);
        return;
    };
    let head = &response[..head_end + 2];
    let mut lines = head.split(|&b| b == b'\n').map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let status_line = lines.next().unwrap_or_default();
    let fields = lines.filter(|l| !l.is_empty()).filter_map(|line| {
        let colon = line.iter().position(|&b| b == b':')?;
        let value = &line[colon + 1..];
        Some((&line[..colon], value.strip_prefix(b" ").unwrap_or(value)))
    });
    out.extend_from_slice(status_line);
    out.extend_from_slice(b"\r\n");
    let writer = Writer::new(ops, ctx, fields.clone());
    writer.leading(out);
    for (name, value) in fields {
        writer.own(name, value, out);
    }
    writer.trailing(out);
    out.extend_from_slice(&response[head_end + 2..]);
}

/// Remove control characters (except HTAB) from `out[start..]` in place.
pub(super) fn strip_controls(out: &mut Vec<u8>, start: usize) {
    let mut w = start;
    for r in start..out.len() {
        let b = out[r];
        if b == b'\t' || !b.is_ascii_control() {
            out[w] = b;
            w += 1;
        }
    }
    out.truncate(w);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse::parse_caddyfile;
    use crate::config::Handler;
    use crate::http::head::{parse_request, parse_response};
    use crate::http::request::Request;
    use crate::http::rewrite::write_response_head_with;

    const UPSTREAM: &[u8] = b"HTTP/1.1 200 OK\r\nServer: origin\r\nX-Same: upstream\r\n\
        X-Rep: hello world\r\nContent-Length: 2\r\n\r\n";

    /// The site's `header` middleware (its top-level `header` lines) of a one-site config.
    fn site_headers(config: &crate::config::Config) -> HeaderMiddleware<'_> {
        let routes = &config.listeners[0].sites[0].routes;
        HeaderMiddleware::gather(routes.iter().filter_map(|r| match &r.handler {
            Handler::Header(h) => Some(h),
            _ => None,
        }))
    }

    /// Runs `f` with the context of a `GET /p` from 192.0.2.7 over https.
    fn for_get_p<T>(f: impl FnOnce(&ForwardContext<'_>) -> T) -> T {
        let raw = b"GET /p HTTP/1.1\r\nHost: a\r\n\r\n";
        let request = Request::new(parse_request(raw, 65536).unwrap().unwrap(), raw.to_vec());
        f(&ForwardContext {
            request: &request,
            client_ip: "192.0.2.7".parse().unwrap(),
            client_port: 1,
            trusted_proxy: false,
            scheme: "https",
            upstream_hostport: "",
            strip_prefixes: &[],
        })
    }

    /// The head the client gets for `UPSTREAM` under `directives` (site-level `header` lines)
    /// and `header_down` lines.
    fn proxied(directives: &str, header_down: &str) -> String {
        let caddyfile = format!(
            ":80 {{\n{directives}\n\treverse_proxy 127.0.0.1:9 {{\n{header_down}\n\t}}\n}}\n"
        );
        let config = parse_caddyfile(&caddyfile, "Caddyfile", std::path::Path::new("/")).unwrap();
        let headers = site_headers(&config);
        let down = &config.upstream_sets[0].header_down;
        let ops = ResponseOps { immediate: &headers.immediate, down, deferred: &headers.deferred };
        let head =
            parse_response(UPSTREAM, crate::http::head::Method::Get, 65536).unwrap().unwrap();
        let mut out = Vec::new();
        for_get_p(|ctx| write_response_head_with(UPSTREAM, &head, ops, ctx, false, &mut out));
        let text = String::from_utf8(out).unwrap();
        text.strip_prefix("HTTP/1.1 200 OK\r\n").unwrap().trim_end().replace("\r\n", "; ")
    }

    #[test]
    fn an_immediate_set_adds_to_the_upstreams_field_and_a_deferred_one_replaces_it() {
        assert_eq!(
            proxied("\theader X-Same ours", ""),
            "X-Same: ours; Server: origin; X-Same: upstream; X-Rep: hello world; Content-Length: 2"
        );
        assert_eq!(
            proxied("\theader >X-Same ours", ""),
            "Server: origin; X-Rep: hello world; Content-Length: 2; X-Same: ours"
        );
    }

    #[test]
    fn deletes_are_deferred_and_take_wildcards_but_never_framing() {
        assert_eq!(
            proxied("\theader -Serv*\n\theader -*", ""),
            "Content-Length: 2",
            "Content-Length survives -*"
        );
        assert_eq!(
            proxied("\theader {\n\t\tStrict-Transport-Security max-age=1\n\t\t-Server\n\t}", ""),
            "X-Same: upstream; X-Rep: hello world; Content-Length: 2; \
             Strict-Transport-Security: max-age=1"
        );
    }

    #[test]
    fn a_default_only_fills_a_missing_field() {
        assert_eq!(
            proxied("\theader ?X-Same ours\n\theader ?X-New new", ""),
            "Server: origin; X-Same: upstream; X-Rep: hello world; Content-Length: 2; X-New: new"
        );
        // A deferred delete runs after a later handler's default (Caddy nests them).
        assert!(!proxied("\theader -X-New\n\theader ?X-New new", "").contains("X-New"));
    }

    #[test]
    fn replacements_use_regular_expressions_and_only_see_what_exists_when_they_run() {
        // Immediate: the upstream's field is not there yet, as in Caddy.
        assert!(proxied("\theader X-Rep hello bye", "").contains("X-Rep: hello world"));
        assert!(proxied("\theader >X-Rep h(ello) j$1", "").contains("X-Rep: jello world"));
        assert!(proxied("", "\t\theader_down X-Rep o 0").contains("X-Rep: hell0 w0rld"));
    }

    #[test]
    fn header_down_takes_the_new_forms_on_the_upstreams_fields() {
        assert_eq!(
            proxied("", "\t\theader_down ?X-Same d\n\t\theader_down ?X-New n\n\t\theader_down -S*"),
            "X-Same: upstream; X-Rep: hello world; Content-Length: 2; X-New: n"
        );
        // Caddy applies one header_down set by kind: the delete runs after the set.
        assert_eq!(
            proxied("", "\t\theader_down -X-Same\n\t\theader_down X-Same ours"),
            "Server: origin; X-Rep: hello world; Content-Length: 2"
        );
        assert_eq!(
            proxied("\theader >X-Same late", "\t\theader_down X-Same down"),
            "Server: origin; X-Rep: hello world; Content-Length: 2; X-Same: late"
        );
    }

    #[test]
    fn an_own_answer_is_rewritten_in_place_with_its_body() {
        let mut out = b"x".to_vec();
        out.extend_from_slice(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nhi",
        );
        let caddyfile = ":80 {\n\theader -Content-*\n\theader X-A {path}\n}\n";
        let config = parse_caddyfile(caddyfile, "Caddyfile", std::path::Path::new("/")).unwrap();
        let headers = site_headers(&config);
        let ops =
            ResponseOps { immediate: &headers.immediate, down: &[], deferred: &headers.deferred };
        for_get_p(|ctx| rewrite_own_response(&mut out, 1, ops, ctx));
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "xHTTP/1.1 200 OK\r\nX-A: /p\r\nContent-Length: 2\r\n\r\nhi"
        );
    }
}
