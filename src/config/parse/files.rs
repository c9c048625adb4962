//! The file-serving directives: `root` and `try_files` (middleware) and `file_server`
//! (terminal). Where each sorts among the directives is `site`'s business; what they mean
//! when a request is served is `crate::files`'.
//!
//! Relative paths (`root`, `hide`) resolve against the working directory, as in Caddy (which
//! hands them to the operating system as written), not against the Caddyfile's directory as
//! `tls` and `log` files do; they are made absolute here so a later `chdir` changes nothing.

use std::path::{Path, PathBuf};

use super::matchers::{MatcherDef, Scopes};
use super::syntax::Directive;
use super::{Parser, Table};
use crate::config::files::{FileServer, Precompressed, TryCandidate, TryFiles};
use crate::config::lexer::Token;
use crate::config::{ConfigError, Handler};

/// Reads one `file_server { … }` option.
type FileServerOption = fn(&Parser<'_>, &Directive, &mut FileServer) -> Result<(), ConfigError>;

/// Every `file_server { … }` option ringproxy supports.
const FILE_SERVER_OPTIONS: &Table<FileServerOption> =
    &[("hide", hide), ("index", index), ("precompressed", precompressed), ("root", server_root)];

/// Caddy's index files when `index` is not given.
const DEFAULT_INDEX: &[&str] = &["index.html", "index.txt"];

/// Caddy's preference when `precompressed` names no encoding.
const DEFAULT_PRECOMPRESSED: &[Precompressed] =
    &[Precompressed::Br, Precompressed::Zstd, Precompressed::Gzip];

/// The encodings `precompressed` knows.
const ENCODINGS: &Table<Precompressed> =
    &[("br", Precompressed::Br), ("gzip", Precompressed::Gzip), ("zstd", Precompressed::Zstd)];

/// The placeholders a `try_files` candidate may hold.
const TRY_PLACEHOLDERS: &[&str] = &["{path}", "{http.request.uri.path}"];

/// `root [<matcher>] <path>`. With a single argument that argument is the path, even when it
/// starts with `/` (as in Caddy, where `root /srv` sets the root for every request).
pub(super) fn root(
    p: &mut Parser<'_>,
    d: &Directive,
    scopes: &mut Scopes,
) -> Result<(Option<MatcherDef>, Handler), ConfigError> {
    p.no_block(d)?;
    let (def, path) = match &d.args[..] {
        [path] => (None, path),
        [_, _] => match p.matcher_token(&d.args, scopes)? {
            (def, [path]) => (def, path),
            (_, _) => return Err(p.arg_err(&d.args[0])),
        },
        [] => return Err(p.arg_err(&d.name)),
        [_, second, ..] => return Err(p.arg_err(second)),
    };
    Ok((def, Handler::Root(absolute(p, path)?)))
}

/// `try_files <files…> [{ policy first_exist }]`.
pub(super) fn try_files(
    p: &mut Parser<'_>,
    d: &Directive,
    args: &[Token],
) -> Result<Handler, ConfigError> {
    if args.is_empty() {
        return Err(p.arg_err(&d.name));
    }
    let mut candidates = Vec::with_capacity(args.len());
    for token in args {
        candidates.push(try_candidate(p, token)?);
    }
    if let Some(block) = &d.block {
        for sub in &block.items {
            const POLICIES: &Table<()> = &[("policy", ())];
            p.pick_sub(POLICIES, "try_files", sub)?;
            let policy = p.one_arg(sub)?;
            if policy.text != "first_exist" {
                return Err(p.err(
                    policy.line,
                    format!(
                        "try_files policy '{}' is not supported by ringproxy (supported: \
                         first_exist)",
                        policy.text
                    ),
                ));
            }
        }
    }
    Ok(Handler::TryFiles(TryFiles { candidates }))
}

/// One candidate: `=<status>`, or a path whose only placeholder is the request path.
fn try_candidate(p: &Parser<'_>, token: &Token) -> Result<TryCandidate, ConfigError> {
    if let Some(code) = token.text.strip_prefix('=') {
        return match code.parse::<u16>() {
            Ok(status) if (100..=999).contains(&status) => Ok(TryCandidate::Status(status)),
            _ => Err(p.err(token.line, format!("invalid try_files status '{}'", token.text))),
        };
    }
    let mut rest = token.text.replace(TRY_PLACEHOLDERS[1], TRY_PLACEHOLDERS[0]);
    let path = rest.clone();
    rest = rest.replace(TRY_PLACEHOLDERS[0], "");
    if rest.contains('{') || path.contains('?') {
        return Err(p.err(
            token.line,
            format!(
                "try_files candidate '{}' is not supported by ringproxy (supported: paths, \
                 {{path}}, =<status>)",
                token.text
            ),
        ));
    }
    if !path.starts_with('/') && !path.starts_with("{path}") {
        return Err(p.err(
            token.line,
            format!("try_files candidate '{}' must start with '/' or {{path}}", token.text),
        ));
    }
    Ok(TryCandidate::Path(path))
}

/// `file_server [<matcher>] [{ root, hide, index, precompressed }]`.
pub(super) fn file_server(
    p: &mut Parser<'_>,
    d: &Directive,
    args: &[Token],
) -> Result<Handler, ConfigError> {
    if let Some(extra) = args.first() {
        if extra.text == "browse" {
            return Err(p.err(
                extra.line,
                "file_server browse is not supported by ringproxy: directories without an \
                 index file answer 404",
            ));
        }
        return Err(p.arg_err(extra));
    }
    let (caddyfile, _) = p.sources.locate(1);
    let mut server = FileServer {
        root: None,
        hide: vec![absolute_text(Path::new(caddyfile))],
        index: DEFAULT_INDEX.iter().map(|name| name.to_string()).collect(),
        precompressed: Vec::new(),
    };
    if let Some(block) = &d.block {
        for sub in &block.items {
            let option = p.pick_sub(FILE_SERVER_OPTIONS, "file_server", sub)?;
            option(p, sub, &mut server)?;
        }
    }
    Ok(Handler::FileServer(Box::new(server)))
}

/// `root <path>` inside `file_server`.
fn server_root(p: &Parser<'_>, d: &Directive, server: &mut FileServer) -> Result<(), ConfigError> {
    let path = p.one_arg(d)?;
    server.root = Some(absolute(p, path)?);
    Ok(())
}

/// `hide <names or paths…>`: names match any path segment; anything with a `/` is a path.
fn hide(p: &Parser<'_>, d: &Directive, server: &mut FileServer) -> Result<(), ConfigError> {
    p.no_block(d)?;
    for token in p.some_args(d)? {
        if token.text.contains(['*', '?', '[']) {
            return Err(p.err(
                token.line,
                format!(
                    "file_server hide pattern '{}' is not supported by ringproxy: give file \
                     names or paths, without wildcards",
                    token.text
                ),
            ));
        }
        let entry = match token.text.contains('/') {
            true => absolute_text(Path::new(token.text.trim_end_matches('/'))),
            false => token.text.clone(),
        };
        server.hide.push(entry);
    }
    Ok(())
}

/// `index <names…>`: replaces the default list.
fn index(p: &Parser<'_>, d: &Directive, server: &mut FileServer) -> Result<(), ConfigError> {
    p.no_block(d)?;
    let names = p.some_args(d)?;
    if let Some(bad) = names.iter().find(|t| t.text.contains('/') || t.text.starts_with('.')) {
        return Err(p.err(bad.line, format!("invalid index file name '{}'", bad.text)));
    }
    server.index = names.iter().map(|t| t.text.clone()).collect();
    Ok(())
}

/// `precompressed [<br|gzip|zstd>…]`, in order of preference; none given means Caddy's
/// `br zstd gzip`.
fn precompressed(
    p: &Parser<'_>,
    d: &Directive,
    server: &mut FileServer,
) -> Result<(), ConfigError> {
    p.no_block(d)?;
    if d.args.is_empty() {
        server.precompressed = DEFAULT_PRECOMPRESSED.to_vec();
        return Ok(());
    }
    for token in &d.args {
        let encoding = *p.pick(ENCODINGS, "precompressed encoding", token)?;
        if !server.precompressed.contains(&encoding) {
            server.precompressed.push(encoding);
        }
    }
    Ok(())
}

/// `token` as an absolute path (against the working directory); placeholders are refused.
fn absolute(p: &Parser<'_>, token: &Token) -> Result<PathBuf, ConfigError> {
    if token.text.contains('{') || token.text.is_empty() {
        return Err(p.err(
            token.line,
            format!(
                "root '{}' is not supported by ringproxy: give a directory, without placeholders",
                token.text
            ),
        ));
    }
    std::path::absolute(&token.text)
        .map_err(|e| p.err(token.line, format!("cannot resolve root '{}': {e}", token.text)))
}

/// `path` made absolute against the working directory, as text; as given when that fails.
fn absolute_text(path: &Path) -> String {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()).to_string_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{describe, parse_err, routes_of};
    use crate::config::files::{FileServer, Precompressed, TryCandidate};
    use crate::config::Handler;
    use std::path::PathBuf;

    fn handlers(block: &str) -> Vec<Handler> {
        routes_of(&format!(":80 {{\n{block}\n}}\n")).into_iter().map(|r| r.handler).collect()
    }

    fn file_server(block: &str) -> FileServer {
        match handlers(block).pop() {
            Some(Handler::FileServer(server)) => *server,
            other => panic!("{other:?}"),
        }
    }

    fn err(block: &str) -> String {
        parse_err(&format!(":80 {{\n{block}\n}}\n"))
    }

    #[test]
    fn root_takes_a_path_with_or_without_a_matcher() {
        for block in ["root /srv/client", "root * /srv/client"] {
            match &handlers(block)[..] {
                [Handler::Root(path)] => assert_eq!(path, &PathBuf::from("/srv/client")),
                other => panic!("{block}: {other:?}"),
            }
        }
        let routes = routes_of(":80 {\n\troot /app/* /srv/app\n}\n");
        assert!(routes[0].matcher.is_some());
    }

    #[test]
    fn the_three_directives_sort_in_caddys_order() {
        let routes = routes_of(
            ":80 {\n\tfile_server\n\ttry_files {path} /index.html\n\trespond /health 200\n\t\
             redir /old /new\n\troot * /srv\n}\n",
        );
        let order = ["root /srv", "redir 302", "try_files", "respond 200", "file_server"];
        assert_eq!(describe(&routes), order);
    }

    #[test]
    fn a_relative_root_resolves_against_the_working_directory() {
        let cwd = std::env::current_dir().unwrap();
        match &handlers("root * srv/client")[..] {
            [Handler::Root(path)] => assert_eq!(path, &cwd.join("srv/client")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bad_roots_name_their_line() {
        assert_eq!(
            err("root"),
            "Caddyfile:2 - wrong argument count or unexpected line ending after 'root'"
        );
        assert_eq!(
            err("root * /a /b"),
            "Caddyfile:2 - wrong argument count or unexpected line ending after '/a'"
        );
        assert_eq!(
            err("root * {http.vars.site}"),
            "Caddyfile:2 - root '{http.vars.site}' is not supported by ringproxy: give a \
             directory, without placeholders"
        );
    }

    #[test]
    fn try_files_reads_paths_placeholders_and_statuses() {
        match &handlers("try_files {path} {path}/ /index.html =404")[..] {
            [Handler::TryFiles(t)] => assert_eq!(
                t.candidates,
                vec![
                    TryCandidate::Path("{path}".into()),
                    TryCandidate::Path("{path}/".into()),
                    TryCandidate::Path("/index.html".into()),
                    TryCandidate::Status(404),
                ]
            ),
            other => panic!("{other:?}"),
        }
        match &handlers("try_files {http.request.uri.path} {\n\tpolicy first_exist\n}")[..] {
            [Handler::TryFiles(t)] => {
                assert_eq!(t.candidates, vec![TryCandidate::Path("{path}".into())])
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bad_try_files_name_their_line() {
        assert_eq!(
            err("try_files"),
            "Caddyfile:2 - wrong argument count or unexpected line ending after 'try_files'"
        );
        assert_eq!(
            err("try_files {path}.html {query}"),
            "Caddyfile:2 - try_files candidate '{query}' is not supported by ringproxy \
             (supported: paths, {path}, =<status>)"
        );
        assert_eq!(
            err("try_files {path} /index.php?{query}"),
            "Caddyfile:2 - try_files candidate '/index.php?{query}' is not supported by \
             ringproxy (supported: paths, {path}, =<status>)"
        );
        assert_eq!(err("try_files =40x"), "Caddyfile:2 - invalid try_files status '=40x'");
        assert_eq!(
            err("try_files index.html"),
            "Caddyfile:2 - try_files candidate 'index.html' must start with '/' or {path}"
        );
        assert_eq!(
            err("try_files {path} {\n\tpolicy smallest_size\n}"),
            "Caddyfile:3 - try_files policy 'smallest_size' is not supported by ringproxy \
             (supported: first_exist)"
        );
        assert_eq!(
            err("try_files {path} {\n\tsplit_path .php\n}"),
            "Caddyfile:3 - subdirective 'split_path' of try_files is not supported by \
             ringproxy (supported: policy)"
        );
    }

    #[test]
    fn file_server_defaults_are_caddys() {
        let server = file_server("file_server");
        assert_eq!(server.root, None);
        assert_eq!(server.index, vec!["index.html", "index.txt"]);
        assert!(server.precompressed.is_empty());
        let caddyfile = std::env::current_dir().unwrap().join("Caddyfile");
        assert_eq!(server.hide, vec![caddyfile.to_string_lossy().into_owned()]);
    }

    #[test]
    fn file_server_options_are_read_in_order() {
        let server = file_server(
            "file_server /static/* {\n\troot /srv/static\n\thide .git secret.txt /srv/static/private/\n\
             \tindex main.html index.htm\n\tprecompressed br gzip br\n}",
        );
        assert_eq!(server.root, Some(PathBuf::from("/srv/static")));
        assert_eq!(server.hide[1..], [".git", "secret.txt", "/srv/static/private"]);
        assert_eq!(server.index, vec!["main.html", "index.htm"]);
        assert_eq!(server.precompressed, vec![Precompressed::Br, Precompressed::Gzip]);
        let all = file_server("file_server {\n\tprecompressed\n}");
        let order = [Precompressed::Br, Precompressed::Zstd, Precompressed::Gzip];
        assert_eq!(all.precompressed, order);
    }

    #[test]
    fn unsupported_file_server_options_list_the_supported_ones() {
        assert_eq!(
            err("file_server browse"),
            "Caddyfile:2 - file_server browse is not supported by ringproxy: directories \
             without an index file answer 404"
        );
        assert_eq!(
            err("file_server /a /b"),
            "Caddyfile:2 - wrong argument count or unexpected line ending after '/b'"
        );
        for option in ["browse", "pass_thru", "status 404", "disable_canonical_uris", "fs x"] {
            let name = option.split(' ').next().unwrap();
            assert_eq!(
                err(&format!("file_server {{\n\t{option}\n}}")),
                format!(
                    "Caddyfile:3 - subdirective '{name}' of file_server is not supported by \
                     ringproxy (supported: hide, index, precompressed, root)"
                )
            );
        }
        assert_eq!(
            err("file_server {\n\tprecompressed deflate\n}"),
            "Caddyfile:3 - precompressed encoding 'deflate' is not supported by ringproxy \
             (supported: br, gzip, zstd)"
        );
        assert_eq!(
            err("file_server {\n\thide *.bak\n}"),
            "Caddyfile:3 - file_server hide pattern '*.bak' is not supported by ringproxy: \
             give file names or paths, without wildcards"
        );
        assert_eq!(
            err("file_server {\n\tindex ../x.html\n}"),
            "Caddyfile:3 - invalid index file name '../x.html'"
        );
    }
}
