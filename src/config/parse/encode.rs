//! `encode`: which codings, at which levels, for which responses. What the data path does with
//! it is `http::encode` (negotiation, compression) and the response path's.

use super::syntax::Directive;
use super::{Parser, Table};
use crate::config::lexer::Token;
use crate::config::{Coding, ConfigError, Encode, Handler};

/// The codings `encode` offers (Caddy's built-in ones; `br` needs a Caddy plugin).
const CODINGS: &Table<Coding> = &[("gzip", Coding::Gzip), ("zstd", Coding::Zstd)];

/// Caddy's names for zstd levels, as zstd levels.
const ZSTD_LEVELS: &Table<i32> = &[("best", 11), ("better", 7), ("default", 3), ("fastest", 1)];

/// Reads one `encode { … }` line other than a coding.
type EncodeOption = fn(&Parser<'_>, &Directive, &mut Encode) -> Result<(), ConfigError>;

/// Every `encode { … }` option besides the codings.
const ENCODE_OPTIONS: &Table<EncodeOption> =
    &[("match", content_type_match), ("minimum_length", minimum_length)];

/// `encode [<matcher>] [<codings…>] [{ gzip [<level>] | zstd [<level>] | minimum_length <n> |
/// match { header Content-Type <types…> } }]`. Without any coding: zstd, then gzip.
pub(super) fn encode(
    p: &mut Parser<'_>,
    d: &Directive,
    args: &[Token],
) -> Result<Handler, ConfigError> {
    let mut encode = Encode { prefer: Vec::new(), ..Encode::default() };
    for arg in args {
        add_coding(p, arg, &mut encode)?;
    }
    for line in d.block.iter().flat_map(|block| &block.items) {
        if let Some(option) = super::lookup(ENCODE_OPTIONS, &line.name.text) {
            option(p, line, &mut encode)?;
            continue;
        }
        if super::lookup(CODINGS, &line.name.text).is_none() {
            let names: Vec<&str> = CODINGS
                .iter()
                .map(|(name, _)| *name)
                .chain(ENCODE_OPTIONS.iter().map(|(name, _)| *name))
                .collect();
            return Err(p.err(
                line.line(),
                format!(
                    "subdirective '{}' of encode is not supported by ringproxy (supported: {})",
                    line.name.text,
                    names.join(", ")
                ),
            ));
        }
        let coding = add_coding(p, &line.name, &mut encode)?;
        p.no_block(line)?;
        match (coding, &line.args[..]) {
            (_, []) => {}
            (Coding::Gzip, [level]) => encode.gzip_level = gzip_level(p, level)?,
            (Coding::Zstd, [level]) => {
                encode.zstd_level = *super::lookup(ZSTD_LEVELS, &level.text).ok_or_else(|| {
                    p.err(
                        level.line,
                        "unexpected compression level, use one of 'fastest', 'better', 'best', \
                         'default'",
                    )
                })?;
            }
            (_, [_, extra, ..]) => return Err(p.arg_err(extra)),
        }
    }
    if encode.prefer.is_empty() {
        encode.prefer = Encode::default().prefer;
    }
    Ok(Handler::Encode(encode))
}

/// Offer the coding `token` names, once.
fn add_coding(p: &Parser<'_>, token: &Token, encode: &mut Encode) -> Result<Coding, ConfigError> {
    let coding = *p.pick(CODINGS, "encoding", token)?;
    if encode.prefer.contains(&coding) {
        return Err(p.err(token.line, format!("encoding {} is given twice", token.text)));
    }
    encode.prefer.push(coding);
    Ok(coding)
}

/// `gzip <level>`: 1 to 9; 0 means the default (5), as in Caddy.
fn gzip_level(p: &Parser<'_>, level: &Token) -> Result<u32, ConfigError> {
    match level.text.parse::<u32>() {
        Ok(0) => Ok(Encode::default().gzip_level),
        Ok(n @ 1..=9) => Ok(n),
        Ok(_) => Err(p.err(level.line, "quality too high; must be <= 9")),
        Err(_) => Err(p.err(level.line, format!("invalid gzip level '{}'", level.text))),
    }
}

/// `minimum_length <bytes>` (a plain number, as in Caddy).
fn minimum_length(p: &Parser<'_>, d: &Directive, encode: &mut Encode) -> Result<(), ConfigError> {
    let value = p.one_arg(d)?;
    encode.minimum_length = value.text.parse().map_err(|_| {
        p.err(value.line, format!("minimum_length '{}' is not a number of bytes", value.text))
    })?;
    Ok(())
}

/// `match { header Content-Type <types…> }`: the types replace the default list.
fn content_type_match(
    p: &Parser<'_>,
    d: &Directive,
    encode: &mut Encode,
) -> Result<(), ConfigError> {
    p.args_with_block(d, 0)?;
    let Some(block) = &d.block else {
        return Err(p.err(d.line(), "match needs a block: match { header Content-Type <types…> }"));
    };
    let mut types = Vec::new();
    for line in &block.items {
        match (line.name.text.as_str(), &line.args[..]) {
            ("header", [name, values @ ..])
                if name.text.eq_ignore_ascii_case("content-type") && !values.is_empty() =>
            {
                p.no_block(line)?;
                types.extend(values.iter().map(|v| v.text.to_ascii_lowercase()));
            }
            _ => {
                return Err(p.err(
                    line.line(),
                    "encode's match supports only `header Content-Type <types…>` in ringproxy",
                ))
            }
        }
    }
    encode.content_types = types;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{parse_err, routes_of};
    use crate::config::{Coding, Encode, Handler};

    fn encode_of(directive: &str) -> Encode {
        let routes = routes_of(&format!(":80 {{\n{directive}\n\trespond 200\n}}\n"));
        match &routes[0].handler {
            Handler::Encode(encode) => encode.clone(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn codings_come_from_the_line_or_the_block_in_the_order_given() {
        assert_eq!(encode_of("encode").prefer, [Coding::Zstd, Coding::Gzip]);
        assert_eq!(encode_of("encode gzip zstd").prefer, [Coding::Gzip, Coding::Zstd]);
        let e = encode_of("encode /api/* {\n\tgzip 9\n\tzstd better\n\tminimum_length 100\n}");
        assert_eq!(e.prefer, [Coding::Gzip, Coding::Zstd]);
        assert_eq!((e.gzip_level, e.zstd_level, e.minimum_length), (9, 7, 100));
        assert_eq!(encode_of("encode {\n\tgzip 0\n}").gzip_level, 5, "0 is the default");
        let e = encode_of(
            "encode {\n\tmatch {\n\t\theader Content-Type text/* application/json*\n\t}\n}",
        );
        assert_eq!(e.content_types, ["text/*", "application/json*"]);
        assert_eq!(e.prefer, [Coding::Zstd, Coding::Gzip]);
    }

    #[test]
    fn bad_encode_lines_name_their_line() {
        let err = |block: &str| parse_err(&format!(":80 {{\n{block}\n}}\n"));
        assert_eq!(
            err("encode br"),
            "Caddyfile:2 - encoding 'br' is not supported by ringproxy (supported: gzip, zstd)"
        );
        assert_eq!(err("encode gzip gzip"), "Caddyfile:2 - encoding gzip is given twice");
        assert_eq!(err("encode {\n\tgzip 10\n}"), "Caddyfile:3 - quality too high; must be <= 9");
        assert_eq!(
            err("encode {\n\tzstd 3\n}"),
            "Caddyfile:3 - unexpected compression level, use one of 'fastest', 'better', 'best', \
             'default'"
        );
        assert_eq!(
            err("encode {\n\tminimum_length 1KB\n}"),
            "Caddyfile:3 - minimum_length '1KB' is not a number of bytes"
        );
        assert_eq!(
            err("encode {\n\tprefer gzip\n}"),
            "Caddyfile:3 - subdirective 'prefer' of encode is not supported by ringproxy \
             (supported: gzip, zstd, match, minimum_length)"
        );
        assert_eq!(
            err("encode {\n\tmatch {\n\t\tstatus 200\n\t}\n}"),
            "Caddyfile:4 - encode's match supports only `header Content-Type <types…>` in ringproxy"
        );
    }
}
