//! Harness for the Caddyfile lexer and parser (`config::lexer`, `config::syntax`,
//! `config::parse`).
//!
//! Invariants, for any bytes:
//! - Neither the lexer nor the parser panics (`parse_bytes` promises it).
//! - Every error names the file it was given and a line inside the input
//!   (`1..=line_count`): a whole-file error (line 0) only comes from reading a file, which the
//!   harness never does.
//! - Tokens start on lines inside the input, in order, and a token ends on or after the line it
//!   starts on.
//! - An environment value never changes the token structure: lexing with every variable set to
//!   a harmless word and with every variable set to braces, quotes and newlines gives the same
//!   tokens in the same places, the same braces among them (the lexer's module doc promises
//!   that a value can never inject braces or new tokens).
//! - Parsing is a pure function of its input: twice the same input gives the same verdict.
//! - A configuration that parses can be summarised (what `validate` prints).
//!
//! Nothing here touches the outside world: the environment is a closure, names resolve to a
//! documentation address without DNS, `import` of a file or glob finds no file (the parse
//! options' file hooks refuse), and the base directory is a path that is never read (parsing
//! only joins relative paths to it).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;

use crate::config::lexer::{line_count, tokenize_with_env, Token};
use crate::config::{parse_bytes, summary::summary, ConfigError, ParseOptions};

const FILE: &str = "Caddyfile";

/// Environment values that would change the structure if they were lexed as Caddyfile text.
const HOSTILE_VALUES: [&str; 3] = ["{", "}", "{\n} \"x\" `{`\n# y"];

/// Where relative paths in the input resolve: only ever joined, never opened.
const BASE_DIR: &str = "/nonexistent/ringproxy-fuzz";

/// Lex and parse `data` as a Caddyfile and check every invariant of the module doc.
pub fn caddyfile(data: &[u8]) {
    let lines = line_count(data);
    let plain = tokenize_with_env(data, FILE, &|_| Some("word".to_string()));
    match &plain {
        Ok(tokens) => assert_tokens_inside(tokens, lines),
        Err(err) => assert_error_inside(err, lines),
    }
    for value in HOSTILE_VALUES {
        let hostile = tokenize_with_env(data, FILE, &|_| Some(value.to_string()));
        match (&plain, &hostile) {
            (Ok(plain), Ok(hostile)) => {
                assert_eq!(
                    structure(plain),
                    structure(hostile),
                    "the value {value:?} changed tokens"
                );
            }
            (Err(plain), Err(hostile)) => {
                assert_eq!(plain, hostile, "the value {value:?} changed the lexer's error");
            }
            _ => panic!("the value {value:?} changed the lexer's verdict: {plain:?} / {hostile:?}"),
        }
    }
    let parsed = parse(data);
    match &parsed {
        Ok(config) => {
            let _ = summary(config);
        }
        Err(err) => assert_error_inside(err, lines),
    }
    let again = parse(data);
    assert_eq!(
        parsed.as_ref().map(|config| format!("{config:?}")),
        again.as_ref().map(|config| format!("{config:?}")),
        "the same input parsed twice"
    );
}

fn parse(data: &[u8]) -> Result<crate::config::Config, ConfigError> {
    // `import` of a file or glob must not read this machine's disk: every file is missing.
    let missing = || std::io::Error::from(std::io::ErrorKind::NotFound);
    let options = ParseOptions::default()
        .with_env(|_| None)
        .with_resolver(|_, port| {
            Ok(vec![SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10)), port)])
        })
        .with_files(move |_| Err(missing()), move |_| Err(missing()));
    parse_bytes(data, FILE, Path::new(BASE_DIR), &options)
}

/// What a token contributes to the block structure: where it is, whether it is quoted, and
/// whether it is a brace. Its text is what substitution is allowed to change.
fn structure(tokens: &[Token]) -> Vec<(usize, usize, bool, bool, bool)> {
    tokens
        .iter()
        .map(|t| (t.line, t.end_line, t.quoted, t.is_open_brace(), t.is_close_brace()))
        .collect()
}

fn assert_tokens_inside(tokens: &[Token], lines: usize) {
    let mut previous = 1;
    for token in tokens {
        assert!((1..=lines).contains(&token.line), "{token:?} outside {lines} lines");
        assert!(token.end_line >= token.line && token.end_line <= lines, "{token:?}");
        assert!(token.line >= previous, "{token:?} before line {previous}");
        previous = token.line;
    }
}

fn assert_error_inside(err: &ConfigError, lines: usize) {
    assert_eq!(err.file, FILE, "{err}");
    assert!((1..=lines).contains(&err.line), "{err:?} outside the {lines} lines of the input");
    assert!(!err.message.is_empty(), "{err:?}");
    assert!(err.to_string().starts_with(&format!("{FILE}:{} - ", err.line)), "{err}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configurations_good_and_bad_pass_the_checks() {
        for input in [
            &b"{\n admin off\n}\nexample.com {\n reverse_proxy /ws/* a:1 b:2\n}\n"[..],
            b":8080 {\n respond \"hi\" 200\n}\n",
            b"(s) {\n respond {args[0]}\n}\n:80 {\n import s x\n}\n",
            b"a.com {\n tls cert.pem key.pem\n log {\n output file access.log\n }\n}\n",
            b"a.com {\n",
            b"\"open",
            b"\xff\xfe",
            b"",
        ] {
            caddyfile(input);
        }
    }
}
