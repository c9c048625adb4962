//! The middleware that guards what reaches a handler: `request_body` (how large a body may
//! be) and `basic_auth` (who may ask). Where each sorts among the directives is `site`'s
//! business; what the data path does with them is `proxy::conn`'s and `proxy::basic_auth`'s.

use base64::Engine;

use super::syntax::Directive;
use super::{Parser, Table};
use crate::config::lexer::Token;
use crate::config::units::parse_size;
use crate::config::{BasicAccount, BasicAuth, ConfigError, Handler};

/// Caddy's realm when the Caddyfile names none.
const DEFAULT_REALM: &str = "restricted";

/// The hash algorithms `basic_auth` takes. Caddy 2.6 also had `scrypt`, which 2.11 dropped.
const HASH_ALGORITHMS: &Table<()> = &[("bcrypt", ())];

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

/// `basic_auth [<matcher>] [bcrypt [<realm>]] { <user> <hash> … }` (and Caddy 2.6's name,
/// `basicauth`). Without accounts every request is refused, as in Caddy.
pub(super) fn basic_auth(
    p: &mut Parser<'_>,
    d: &Directive,
    args: &[Token],
) -> Result<Handler, ConfigError> {
    let realm = match args {
        [] => DEFAULT_REALM.to_string(),
        [algorithm, rest @ ..] => {
            if super::lookup(HASH_ALGORITHMS, &algorithm.text).is_none() {
                return Err(p.err(
                    algorithm.line,
                    format!(
                        "unrecognized hash algorithm: {} (ringproxy supports: {})",
                        algorithm.text,
                        super::supported(HASH_ALGORITHMS)
                    ),
                ));
            }
            match rest {
                [] => DEFAULT_REALM.to_string(),
                [realm] => realm.text.clone(),
                [_, extra, ..] => return Err(p.arg_err(extra)),
            }
        }
    };
    let mut accounts: Vec<BasicAccount> = Vec::new();
    for line in d.block.iter().flat_map(|block| &block.items) {
        let user = &line.name;
        let hash = match &line.args[..] {
            [hash] if !user.text.is_empty() && !hash.text.is_empty() => hash,
            [_, extra, ..] => return Err(p.arg_err(extra)),
            _ => return Err(p.err(line.line(), "username and password cannot be empty or missing")),
        };
        p.no_block(line)?;
        if accounts.iter().any(|a| a.user == user.text) {
            return Err(p.err(line.line(), format!("username is not unique: {}", user.text)));
        }
        let hash = bcrypt_hash(&hash.text).map_err(|m| p.err(hash.line, m))?;
        accounts.push(BasicAccount { user: user.text.clone(), hash });
    }
    Ok(Handler::BasicAuth(BasicAuth { realm, accounts }))
}

/// A bcrypt hash as `caddy hash-password` prints it (`$2a$14$…`), or base64-encoded as Caddy
/// also accepts; checked for its shape so that a typo fails at load, not as a refused login.
fn bcrypt_hash(text: &str) -> Result<String, String> {
    let decoded;
    let hash = if text.starts_with('$') {
        text
    } else {
        let bytes = base64::engine::general_purpose::STANDARD.decode(text);
        decoded = bytes.ok().and_then(|b| String::from_utf8(b).ok()).unwrap_or_default();
        &decoded
    };
    let well_formed = hash.len() == 60
        && matches!(&hash.as_bytes()[..4], b"$2a$" | b"$2b$" | b"$2y$")
        && hash.as_bytes()[6] == b'$'
        && hash[4..6].parse::<u32>().is_ok_and(|cost| (4..=31).contains(&cost))
        && hash[7..].bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'/');
    if !well_formed {
        return Err(format!(
            "'{text}' is not a bcrypt hash (make one with `caddy hash-password`; it looks \
             like $2a$14$ and 53 more characters)"
        ));
    }
    Ok(hash.to_string())
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{parse_err, routes_of};
    use crate::config::Handler;

    /// `caddy hash-password --plaintext secret` (cost 4, so tests that check it stay fast).
    const HASH: &str = "$2a$04$9bUzLHlDI3MeqlPxtVOIeu3WlcjvBjqXq1KGYR3kiGc7EcBx4/A5W";

    fn auth_of(block: &str) -> crate::config::BasicAuth {
        let routes = routes_of(&format!(":80 {{\n{block}\n\trespond 200\n}}\n"));
        match &routes[0].handler {
            Handler::BasicAuth(auth) => auth.clone(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn basic_auth_takes_accounts_a_realm_and_both_of_caddys_names() {
        let auth = auth_of(&format!("basic_auth {{\n\tbob {HASH}\n\talice {HASH}\n}}"));
        assert_eq!(auth.realm, "restricted");
        let users: Vec<&str> = auth.accounts.iter().map(|a| a.user.as_str()).collect();
        assert_eq!(users, ["bob", "alice"]);
        assert_eq!(auth.accounts[0].hash, HASH);
        let auth = auth_of(&format!("basicauth /p/* bcrypt \"Speech API\" {{\n\tbob {HASH}\n}}"));
        assert_eq!(auth.realm, "Speech API");
        assert!(auth_of("basic_auth").accounts.is_empty(), "no account: every request refused");
    }

    #[test]
    fn a_base64_encoded_hash_is_decoded_as_caddy_does() {
        use base64::Engine;
        let encoded = base64::engine::general_purpose::STANDARD.encode(HASH);
        let auth = auth_of(&format!("basic_auth {{\n\tbob {encoded}\n}}"));
        assert_eq!(auth.accounts[0].hash, HASH);
    }

    #[test]
    fn bad_basic_auth_lines_name_their_line() {
        let err = |block: &str| parse_err(&format!(":80 {{\n{block}\n\trespond 200\n}}\n"));
        assert_eq!(
            err("basic_auth {\n\tbob\n}"),
            "Caddyfile:3 - username and password cannot be empty or missing"
        );
        assert_eq!(
            err(&format!("basic_auth {{\n\tbob {HASH} extra\n}}")),
            "Caddyfile:3 - wrong argument count or unexpected line ending after 'extra'"
        );
        assert_eq!(
            err(&format!("basic_auth {{\n\tbob {HASH}\n\tbob {HASH}\n}}")),
            "Caddyfile:4 - username is not unique: bob"
        );
        assert_eq!(
            err(&format!("basic_auth md5 {{\n\tbob {HASH}\n}}")),
            "Caddyfile:2 - unrecognized hash algorithm: md5 (ringproxy supports: bcrypt)"
        );
        assert_eq!(
            err(&format!("basic_auth bcrypt realm extra {{\n\tbob {HASH}\n}}")),
            "Caddyfile:2 - wrong argument count or unexpected line ending after 'extra'"
        );
        assert_eq!(
            err("basic_auth {\n\tbob notahash\n}"),
            "Caddyfile:3 - 'notahash' is not a bcrypt hash (make one with `caddy hash-password`; \
             it looks like $2a$14$ and 53 more characters)"
        );
    }

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
