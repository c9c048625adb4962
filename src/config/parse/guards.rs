//! The middleware that guards what reaches a handler: `request_body` (how large a body may
//! be). Where each sorts among the directives is `site`'s business; what the data path does
//! with them is `proxy::conn`'s.

use super::syntax::Directive;
use super::{Parser, Table};
use crate::config::lexer::Token;
use crate::config::units::parse_size;
use crate::config::{ConfigError, Handler};

/// Reads one `request_body { … }` option.
type RequestBodyOption = fn(&Parser<'_>, &Directive, &mut Option<u64>) -> Result<(), ConfigError>;

/// Every `request_body { … }` option.
const REQUEST_BODY_OPTIONS: &Table<RequestBodyOption> = &[("max_size", max_size)];

/// `request_body [<matcher>] [{ max_size <size> }]`. Without `max_size` (or with `0`) it
/// limits nothing, as in Caddy.
pub(super) fn request_body(
    p: &mut Parser<'_>,
    d: &Directive,
    args: &[Token],
) -> Result<Handler, ConfigError> {
    if let Some(extra) = args.first() {
        // Caddy 2.6 ignores an argument here and 2.11 drops the whole block's options
        // without a word; neither is worth imitating.
        return Err(p.arg_err(extra));
    }
    let mut max_size = None;
    if let Some(block) = &d.block {
        for sub in &block.items {
            let option = p.pick_sub(REQUEST_BODY_OPTIONS, "request_body", sub)?;
            option(p, sub, &mut max_size)?;
        }
    }
    Ok(Handler::RequestBody { max_size })
}

/// `max_size <size>` (`10MB`, `1MiB`, `4096`); the last one given counts, as in Caddy.
fn max_size(p: &Parser<'_>, d: &Directive, max: &mut Option<u64>) -> Result<(), ConfigError> {
    let value = p.one_arg(d)?;
    let size = parse_size(&value.text).map_err(|m| p.err(value.line, m))?;
    *max = (size > 0).then_some(size as u64);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{parse_err, routes_of};
    use crate::config::Handler;

    fn max_size_of(block: &str) -> Option<u64> {
        let routes = routes_of(&format!(":80 {{\n{block}\n\trespond 200\n}}\n"));
        match routes[0].handler {
            Handler::RequestBody { max_size } => max_size,
            ref other => panic!("{other:?}"),
        }
    }

    #[test]
    fn max_size_takes_caddys_units_and_the_last_value() {
        assert_eq!(max_size_of("request_body {\n\tmax_size 10MB\n}"), Some(10_000_000));
        assert_eq!(max_size_of("request_body /up/* {\n\tmax_size 1KiB\n}"), Some(1024));
        assert_eq!(max_size_of("request_body {\n\tmax_size 1.5kb\n}"), Some(1500));
        assert_eq!(max_size_of("request_body {\n\tmax_size 1\n\tmax_size 2\n}"), Some(2));
    }

    #[test]
    fn without_a_size_or_with_zero_nothing_is_limited() {
        assert_eq!(max_size_of("request_body"), None);
        assert_eq!(max_size_of("request_body {\n\tmax_size 0\n}"), None);
    }

    #[test]
    fn bad_request_body_options_name_their_line() {
        let err = |block: &str| parse_err(&format!(":80 {{\n{block}\n}}\n"));
        assert_eq!(err("request_body {\n\tmax_size abc\n}"), "Caddyfile:3 - invalid size 'abc'");
        assert_eq!(
            err("request_body {\n\tmax_size 10 MB\n}"),
            "Caddyfile:3 - wrong argument count or unexpected line ending after '10'"
        );
        assert_eq!(
            err("request_body {\n\tmax_size\n}"),
            "Caddyfile:3 - wrong argument count or unexpected line ending after 'max_size'"
        );
        assert_eq!(
            err("request_body {\n\tread_timeout 5s\n}"),
            "Caddyfile:3 - subdirective 'read_timeout' of request_body is not supported by \
             ringproxy (supported: max_size)"
        );
        assert_eq!(
            err("request_body foo {\n\tmax_size 1\n}"),
            "Caddyfile:2 - wrong argument count or unexpected line ending after 'foo'"
        );
    }
}
