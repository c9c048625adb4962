//! Tokens → the Caddyfile's block structure: the global options block, snippets, site blocks
//! and, inside them, directives with arguments and nested blocks.
//!
//! Owns the structural rules Caddy enforces (a `{` ends its line, a `}` stands on a line of its
//! own, braces balance) and `import`: of snippets defined earlier, and of files and globs
//! (relative to the importing file, read through [`FileAccess`]), with `{args[N]}`
//! substitution and cycle detection. It knows nothing about what a directive means; `parse`
//! does.

use super::limits;
use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};

use super::lexer::{self, Token};
use super::sources::Sources;
use super::ConfigError;

/// How imports reach files: the parse options' hooks (the real file system, unless a caller
/// such as a fuzz target replaces it).
pub(crate) struct FileAccess<'o> {
    pub env: &'o dyn Fn(&str) -> Option<String>,
    pub read_file: &'o dyn Fn(&Path) -> io::Result<Vec<u8>>,
    pub list_dir: &'o dyn Fn(&Path) -> io::Result<Vec<PathBuf>>,
}

/// A parsed Caddyfile, before any meaning is given to directives.
#[derive(Debug, Default)]
pub(crate) struct Document {
    /// The global options block, if the file starts with one.
    pub globals: Option<Block>,
    pub sites: Vec<SiteBlock>,
}

/// A site block: its addresses and its body.
#[derive(Debug)]
pub(crate) struct SiteBlock {
    pub keys: Vec<Token>,
    pub body: Block,
}

/// The contents of `{ … }` (or of a brace-less single site).
#[derive(Debug, Clone)]
pub(crate) struct Block {
    /// Line of the opening brace (or of the site address for a brace-less site).
    pub line: usize,
    pub items: Vec<Directive>,
}

/// One directive line: `name args… [{ block }]`.
#[derive(Debug, Clone)]
pub(crate) struct Directive {
    pub name: Token,
    pub args: Vec<Token>,
    pub block: Option<Block>,
}

impl Directive {
    pub fn line(&self) -> usize {
        self.name.line
    }
}

/// Builds the [`Document`] for `tokens` lexed from the main file of `sources`, whose last line
/// is `last_line`; imported files are registered in `sources`.
pub(crate) fn parse_document(
    tokens: Vec<Token>,
    sources: &mut Sources,
    last_line: usize,
    files: FileAccess<'_>,
) -> Result<Document, ConfigError> {
    let mut p = Structure {
        tokens,
        pos: 0,
        sources,
        files,
        last_line,
        snippets: HashMap::new(),
        depth: 0,
        frames: vec![Frame { imported: Imported::Snippet(String::new()), parent: None }],
    };
    p.document()
}

struct Frame {
    imported: Imported,
    parent: Option<u32>,
}

/// What an import expansion brought in.
#[derive(PartialEq)]
enum Imported {
    Snippet(String),
    File(PathBuf),
}

impl Imported {
    fn describe(&self) -> String {
        match self {
            Imported::Snippet(name) => name.clone(),
            Imported::File(path) => path.display().to_string(),
        }
    }
}

struct Structure<'s> {
    tokens: Vec<Token>,
    pos: usize,
    sources: &'s mut Sources,
    files: FileAccess<'s>,
    /// The main file's last line, for errors at the end of the input.
    last_line: usize,
    snippets: HashMap<String, Vec<Token>>,
    /// Import expansions, indexed by `Token::frame`; frame 0 is the file itself.
    frames: Vec<Frame>,
    /// Blocks currently open.
    depth: usize,
}

impl Structure<'_> {
    fn err(&self, line: usize, message: impl Into<String>) -> ConfigError {
        self.sources.error(line, message)
    }

    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    /// Whether the token at `pos` starts a new logical line.
    fn starts_line(&self, pos: usize) -> bool {
        pos == 0 || !self.tokens[pos - 1].same_line_as_next(&self.tokens[pos])
    }

    /// Consumes the rest of the logical line starting at the current token.
    fn take_line(&mut self) -> Vec<Token> {
        let start = self.pos;
        self.pos += 1;
        while self.pos < self.tokens.len() && !self.starts_line(self.pos) {
            self.pos += 1;
        }
        self.tokens[start..self.pos].to_vec()
    }

    fn document(&mut self) -> Result<Document, ConfigError> {
        let mut doc = Document::default();
        let mut first = true;
        while let Some(token) = self.peek() {
            if token.is_import_at(self, self.pos) {
                self.expand_import()?;
                continue;
            }
            if token.is_open_brace() {
                if !first {
                    return Err(self.err(
                        token.line,
                        "a block without site addresses is the global options block and must \
                         be the first block in the file",
                    ));
                }
                let line = token.line;
                self.pos += 1;
                self.expect_brace_ends_line(line)?;
                doc.globals = Some(self.block_items(line)?);
                first = false;
                continue;
            }
            first = false;
            self.server_block(&mut doc)?;
        }
        Ok(doc)
    }

    /// Reads site addresses (or a snippet name) and the block after them.
    fn server_block(&mut self, doc: &mut Document) -> Result<(), ConfigError> {
        let key_line = self.tokens[self.pos].line;
        let keys = self.block_keys()?;
        let is_snippet = keys.len() == 1 && {
            let k = &keys[0].text;
            k.len() > 2 && k.starts_with('(') && k.ends_with(')')
        };
        if keys.len() == 1 && keys[0].text.starts_with("&(") && keys[0].text.ends_with(')') {
            return Err(self.err(
                keys[0].line,
                format!("named routes ('{}') are not supported by ringproxy", keys[0].text),
            ));
        }

        match self.peek() {
            Some(token) if token.is_open_brace() => {
                let line = token.line;
                self.pos += 1;
                self.expect_brace_ends_line(line)?;
                if is_snippet {
                    let name = keys[0].text[1..keys[0].text.len() - 1].to_string();
                    if self.snippets.contains_key(&name) {
                        return Err(self.err(
                            keys[0].line,
                            format!("redeclaration of previously declared snippet {name}"),
                        ));
                    }
                    let body = self.raw_block(line)?;
                    self.snippets.insert(name, body);
                } else {
                    let body = self.block_items(line)?;
                    doc.sites.push(SiteBlock { keys, body });
                }
            }
            _ if is_snippet => {
                let line = keys[0].line;
                return Err(self.err(
                    line,
                    format!("snippet {} must be followed by a block {{ ... }}", keys[0].text),
                ));
            }
            _ => self.braceless_site(doc, keys, key_line)?,
        }
        Ok(())
    }

    /// The site addresses (or the snippet name) before a block, commas removed.
    fn block_keys(&mut self) -> Result<Vec<Token>, ConfigError> {
        let mut keys: Vec<Token> = Vec::new();
        let mut expecting_another = false;
        loop {
            let Some(token) = self.peek().cloned() else {
                if expecting_another {
                    return Err(self.err(self.last_line, "unexpected EOF"));
                }
                break;
            };
            if token.is_open_brace() {
                if expecting_another {
                    return Err(self.err(
                        token.line,
                        "Expected another address but had '{' - check for extra comma",
                    ));
                }
                if self.starts_line(self.pos) {
                    return Err(self.err(
                        token.line,
                        "Unexpected '{' on a new line; did you mean to place the '{' on the \
                         previous line?",
                    ));
                }
                break;
            }
            if !keys.is_empty() && !expecting_another && self.starts_line(self.pos) {
                break;
            }
            if token.is_close_brace() {
                return Err(
                    self.err(token.line, "Unexpected '}' because no matching opening brace")
                );
            }
            if !token.quoted && token.text.starts_with('@') {
                return Err(self.err(
                    token.line,
                    format!(
                        "request matchers may not be defined globally, they must be in a site \
                         block; found {}",
                        token.text
                    ),
                ));
            }
            if !token.quoted && token.text.ends_with('{') {
                return Err(self.err(
                    token.line,
                    format!(
                        "Site addresses cannot end with a curly brace: '{}' - put a space \
                         between the token and the brace",
                        token.text
                    ),
                ));
            }
            self.pos += 1;
            let mut text = token.text.as_str();
            expecting_another = text.ends_with(',');
            if expecting_another {
                text = &text[..text.len() - 1];
            }
            if text.contains(',') {
                return Err(self.err(
                    token.line,
                    format!(
                        "Site addresses cannot contain a comma ',': '{text}' - put a space \
                         after the comma to separate site addresses"
                    ),
                ));
            }
            if !text.is_empty() {
                keys.push(Token { text: text.to_string(), ..token });
            }
        }
        Ok(keys)
    }

    /// A single site may omit its braces: everything up to the end of the file is its body
    /// (Caddy allows this only when it is the only site block).
    fn braceless_site(
        &mut self,
        doc: &mut Document,
        keys: Vec<Token>,
        key_line: usize,
    ) -> Result<(), ConfigError> {
        if !doc.sites.is_empty() {
            return Err(self.err(
                key_line,
                "site blocks must be enclosed in braces { } when the file has more \
                 than one",
            ));
        }
        let items = self.items_until_eof()?;
        // A brace-less body that swallowed what looks like another site is the
        // classic mistake of forgetting braces; Caddy rejects it too.
        if let Some(d) =
            items.iter().find(|d| d.block.is_some() && looks_like_site_address(&d.name.text))
        {
            return Err(self.err(
                d.line(),
                "site blocks must be enclosed in braces { } when the file has more \
                 than one",
            ));
        }
        let body = Block { line: key_line, items };
        doc.sites.push(SiteBlock { keys, body });
        Ok(())
    }

    /// After a `{` at `line` has been consumed: nothing may follow it on the same line.
    fn expect_brace_ends_line(&self, line: usize) -> Result<(), ConfigError> {
        if self.pos < self.tokens.len() && !self.starts_line(self.pos) {
            return Err(self.err(line, "Unexpected next token after '{' on same line"));
        }
        Ok(())
    }

    /// After a `}` has been consumed: nothing may follow it on the same line.
    fn expect_close_stands_alone(&self, line: usize) -> Result<(), ConfigError> {
        if self.pos < self.tokens.len() && !self.starts_line(self.pos) {
            return Err(self.err(line, "'}' must be on a line of its own"));
        }
        Ok(())
    }

    /// Directive lines up to the `}` that closes the block opened at `open_line`.
    fn block_items(&mut self, open_line: usize) -> Result<Block, ConfigError> {
        if self.depth >= limits::MAX_NESTING {
            return Err(self.err(
                open_line,
                format!("blocks are nested too deeply (more than {} levels)", limits::MAX_NESTING),
            ));
        }
        self.depth += 1;
        let result = self.block_items_inner(open_line);
        self.depth -= 1;
        result
    }

    fn block_items_inner(&mut self, open_line: usize) -> Result<Block, ConfigError> {
        let mut items = Vec::new();
        loop {
            let Some(token) = self.peek() else {
                return Err(
                    self.err(open_line, "unexpected EOF: the '{' on this line is never closed")
                );
            };
            if token.is_close_brace() {
                let line = token.line;
                self.pos += 1;
                self.expect_close_stands_alone(line)?;
                return Ok(Block { line: open_line, items });
            }
            if token.is_import_at(self, self.pos) {
                self.expand_import()?;
                continue;
            }
            items.push(self.directive()?);
        }
    }

    fn items_until_eof(&mut self) -> Result<Vec<Directive>, ConfigError> {
        let mut items = Vec::new();
        while let Some(token) = self.peek() {
            if token.is_close_brace() {
                return Err(
                    self.err(token.line, "Unexpected '}' because no matching opening brace")
                );
            }
            if token.is_import_at(self, self.pos) {
                self.expand_import()?;
                continue;
            }
            items.push(self.directive()?);
        }
        Ok(items)
    }

    fn directive(&mut self) -> Result<Directive, ConfigError> {
        let mut line = self.take_line();
        let name = line.remove(0);
        let mut args = line;
        let mut block = None;
        if let Some(last) = args.last() {
            if last.is_open_brace() {
                let open_line = last.line;
                args.pop();
                block = Some(self.block_items(open_line)?);
            } else if !last.quoted && last.text == "{}" {
                return Err(self.err(last.line, "Unexpected '{}' at end of line"));
            }
        }
        if name.is_open_brace() {
            return Err(self.err(
                name.line,
                "Unexpected '{' on a new line; did you mean to place the '{' on the previous line?",
            ));
        }
        for arg in &args {
            if arg.is_open_brace() {
                return Err(self.err(arg.line, "Unexpected next token after '{' on same line"));
            }
            if arg.is_close_brace() {
                return Err(self.err(arg.line, "'}' must be on a line of its own"));
            }
        }
        Ok(Directive { name, args, block })
    }

    /// The tokens of a snippet body, kept unparsed so each import re-parses them in place.
    fn raw_block(&mut self, open_line: usize) -> Result<Vec<Token>, ConfigError> {
        let start = self.pos;
        let mut depth = 1usize;
        while let Some(token) = self.peek() {
            if token.is_open_brace() {
                depth += 1;
            } else if token.is_close_brace() {
                depth -= 1;
                if depth == 0 {
                    let body = self.tokens[start..self.pos].to_vec();
                    let line = token.line;
                    self.pos += 1;
                    self.expect_close_stands_alone(line)?;
                    return Ok(body);
                }
            }
            self.pos += 1;
        }
        Err(self.err(open_line, "unexpected EOF: the '{' on this line is never closed"))
    }

    /// Replaces the `import name args…` line at the cursor with the snippet's tokens.
    fn expand_import(&mut self) -> Result<(), ConfigError> {
        let line = self.take_line();
        let import = &line[0];
        let Some(name_token) = line.get(1) else {
            return Err(self.err(
                import.line,
                "wrong argument count or unexpected line ending after 'import'",
            ));
        };
        if line.last().is_some_and(Token::is_open_brace) {
            return Err(self.err(
                import.line,
                "import with a block of arguments is not supported by ringproxy",
            ));
        }
        let name = name_token.text.as_str();
        let args: Vec<&str> = line[2..].iter().map(|t| t.text.as_str()).collect();
        let Some(body) = self.snippets.get(name).cloned() else {
            // Not a snippet: a file or a glob, as in Caddy.
            return self.import_files(import, name_token, &args);
        };
        let imported = Imported::Snippet(name.to_string());
        self.check_cycle(import, &imported)?;
        self.check_size(import.line, body.len())?;
        let frame_id = self.push_frame(import, imported)?;
        let mut expanded = Vec::with_capacity(body.len());
        for token in body {
            let text = substitute_args(&token.text, &args)
                .map_err(|message| self.err(token.line, message))?;
            expanded.push(Token { text, frame: frame_id, ..token });
        }
        let at = self.pos;
        self.tokens.splice(at..at, expanded);
        Ok(())
    }

    /// `import PATH|GLOB args…`: the tokens of each file, in name order, in place of the line.
    fn import_files(
        &mut self,
        import: &Token,
        name_token: &Token,
        args: &[&str],
    ) -> Result<(), ConfigError> {
        let name = name_token.text.as_str();
        let written = Path::new(name);
        let pattern = if written.is_absolute() {
            clean(written)
        } else {
            clean(&self.sources.dir_of(import.line).join(written))
        };
        let paths = match glob_parts(&pattern) {
            Ok(None) => {
                if (self.files.read_file)(&pattern)
                    .is_err_and(|e| e.kind() == io::ErrorKind::NotFound)
                    && !name.contains(['/', '.', '*'])
                {
                    return Err(self.err(
                        name_token.line,
                        format!(
                            "snippet '{name}' is not defined (define (name) {{ ... }} before \
                             importing it)"
                        ),
                    ));
                }
                vec![pattern]
            }
            Ok(Some((dir, file_pattern))) => {
                let listed = (self.files.list_dir)(&dir).map_err(|e| {
                    self.err(
                        name_token.line,
                        format!("import {name}: cannot list {}: {e}", dir.display()),
                    )
                })?;
                let importing = self.sources.path_of(import.line).map(Path::to_path_buf);
                let mut matched: Vec<PathBuf> = listed
                    .into_iter()
                    .filter(|p| {
                        p.file_name()
                            .and_then(|n| n.to_str())
                            .is_some_and(|n| wildcard_match(file_pattern.as_bytes(), n.as_bytes()))
                    })
                    // A glob that matches the file it is written in does not import it again.
                    .filter(|p| importing.as_deref() != Some(p.as_path()))
                    .collect();
                matched.sort();
                if matched.is_empty() {
                    // As Caddy: a glob may match nothing (an empty sites directory).
                    let (file, line) = self.sources.locate(name_token.line);
                    tracing::warn!("{file}:{line} - no files match import glob pattern {name}");
                }
                matched
            }
            Err(message) => return Err(self.err(name_token.line, message)),
        };
        let mut expanded = Vec::new();
        for path in paths {
            let imported = Imported::File(path.clone());
            self.check_cycle(import, &imported)?;
            let input = (self.files.read_file)(&path).map_err(|e| {
                let message = if e.kind() == io::ErrorKind::NotFound {
                    format!("file to import not found: {}", path.display())
                } else {
                    format!("cannot read the file to import {}: {e}", path.display())
                };
                self.err(name_token.line, message)
            })?;
            let shown = path.display().to_string();
            let tokens = lexer::tokenize_with_env(&input, &shown, self.files.env)?;
            self.check_size(import.line, expanded.len() + tokens.len())?;
            let offset = self
                .sources
                .add_import(&path, lexer::line_count(&input))
                .ok_or_else(|| self.err(import.line, "too many imports"))?;
            let frame_id = self.push_frame(import, imported)?;
            for token in tokens {
                let line = token.line + offset;
                let text = substitute_args(&token.text, args)
                    .map_err(|message| self.err(line, message))?;
                expanded.push(Token {
                    text,
                    line,
                    end_line: token.end_line + offset,
                    frame: frame_id,
                    ..token
                });
            }
        }
        let at = self.pos;
        self.tokens.splice(at..at, expanded);
        Ok(())
    }

    /// An import of `imported` inside its own expansion is a cycle.
    fn check_cycle(&self, import: &Token, imported: &Imported) -> Result<(), ConfigError> {
        let mut chain = vec![imported.describe()];
        let mut frame = Some(import.frame);
        while let Some(f) = frame {
            let f = &self.frames[f as usize];
            if f.parent.is_some() {
                chain.push(f.imported.describe());
                if f.imported == *imported {
                    chain.reverse();
                    return Err(
                        self.err(import.line, format!("import cycle: {}", chain.join(" -> ")))
                    );
                }
            }
            frame = f.parent;
        }
        Ok(())
    }

    fn check_size(&self, line: usize, adding: usize) -> Result<(), ConfigError> {
        if self.tokens.len() + adding > limits::MAX_EXPANDED_TOKENS {
            return Err(self.err(
                line,
                format!(
                    "the configuration is too large after expanding imports (more than \
                     {} tokens)",
                    limits::MAX_EXPANDED_TOKENS
                ),
            ));
        }
        Ok(())
    }

    fn push_frame(&mut self, import: &Token, imported: Imported) -> Result<u32, ConfigError> {
        let frame_id = u32::try_from(self.frames.len())
            .map_err(|_| self.err(import.line, "too many imports"))?;
        self.frames.push(Frame { imported, parent: Some(import.frame) });
        Ok(frame_id)
    }
}

/// `path` with `.` and `dir/..` removed, lexically, as Go's `filepath.Clean` (which Caddy's
/// import uses): errors show `conf/proxy.caddy`, not `conf/sites/../proxy.caddy`, and one file
/// reached by two spellings is still one file to the cycle check.
fn clean(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out: Vec<Component<'_>> = Vec::new();
    for part in path.components() {
        match part {
            Component::CurDir => {}
            Component::ParentDir => match out.last() {
                Some(Component::Normal(_)) => {
                    out.pop();
                }
                // `/..` is `/`.
                Some(Component::RootDir) | Some(Component::Prefix(_)) => {}
                _ => out.push(part),
            },
            _ => out.push(part),
        }
    }
    if out.is_empty() {
        return PathBuf::from(".");
    }
    out.iter().collect()
}

/// For a glob (wildcards in the file name), its directory and the file-name pattern; none for
/// a plain path. Wildcards in a directory name are an error.
fn glob_parts(pattern: &Path) -> Result<Option<(PathBuf, String)>, String> {
    let is_wild = |s: &str| s.contains(['*', '?', '[']);
    let file = pattern.file_name().and_then(|f| f.to_str()).unwrap_or("");
    let dir = pattern.parent().unwrap_or(Path::new("."));
    if dir.to_str().is_some_and(is_wild) {
        return Err(format!(
            "import {}: wildcards are supported in the file name only, not in directories",
            pattern.display()
        ));
    }
    if !is_wild(file) {
        return Ok(None);
    }
    if file.contains('[') {
        return Err(format!(
            "import {}: character classes ([...]) are not supported by ringproxy (supported: \
             * and ?)",
            pattern.display()
        ));
    }
    Ok(Some((dir.to_path_buf(), file.to_string())))
}

/// Whether `name` matches `pattern`, where `*` is any run of bytes and `?` any one byte (Go's
/// `filepath.Match` without classes; a leading dot is not special, as in Go).
fn wildcard_match(pattern: &[u8], name: &[u8]) -> bool {
    // Iterative, with one backtrack point: the last `*` seen.
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        if p < pattern.len() && (pattern[p] == b'?' || pattern[p] == name[n]) {
            p += 1;
            n += 1;
        } else if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, n));
            p += 1;
        } else if let Some((sp, sn)) = star {
            p = sp + 1;
            n = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

impl Token {
    /// An unquoted `import` that starts a line.
    fn is_import_at(&self, s: &Structure<'_>, pos: usize) -> bool {
        !self.quoted && self.text == "import" && s.starts_line(pos)
    }
}

/// Whether a brace-opening directive name is more likely a forgotten site address than a
/// directive (used only to improve the brace-less site error).
fn looks_like_site_address(name: &str) -> bool {
    name.contains("://") || name.starts_with(':') || name.contains('.') || name == "localhost"
}

/// Replaces `{args[N]}` and `{args.N}` with the import's N-th argument.
fn substitute_args(text: &str, args: &[&str]) -> Result<String, String> {
    if !text.contains("{args") {
        return Ok(text.to_string());
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{args") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 5..];
        let index = after
            .strip_prefix('[')
            .and_then(|a| a.split_once("]}"))
            .or_else(|| after.strip_prefix('.').and_then(|a| a.split_once('}')))
            .and_then(|(n, tail)| n.parse::<usize>().ok().map(|n| (n, tail)));
        match index {
            Some((n, tail)) => {
                let Some(value) = args.get(n) else {
                    return Err(format!(
                        "argument index {n} is out of range: the import passes {} argument(s)",
                        args.len()
                    ));
                };
                out.push_str(value);
                rest = tail;
            }
            None => {
                out.push_str("{args");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::lexer::{line_count, tokenize};

    fn doc(input: &str) -> Result<Document, String> {
        doc_with_files(input, &[])
    }

    /// Parse `input` (the file `/cfg/Caddyfile`) where `files` are the only files that exist.
    fn doc_with_files(input: &str, files: &[(&str, &str)]) -> Result<Document, String> {
        let tokens = tokenize(input.as_bytes(), "Caddyfile").map_err(|e| e.to_string())?;
        let lines = line_count(input.as_bytes());
        let mut sources = Sources::new("Caddyfile", Path::new("/cfg"), lines);
        let files: Vec<(PathBuf, Vec<u8>)> =
            files.iter().map(|(p, text)| (PathBuf::from(p), text.as_bytes().to_vec())).collect();
        let read_file = |path: &Path| {
            files
                .iter()
                .find(|(p, _)| p == path)
                .map(|(_, text)| text.clone())
                .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))
        };
        let list_dir = |dir: &Path| {
            Ok(files
                .iter()
                .filter(|(p, _)| p.parent() == Some(dir))
                .map(|(p, _)| p.clone())
                .collect())
        };
        let access = FileAccess { env: &|_| None, read_file: &read_file, list_dir: &list_dir };
        parse_document(tokens, &mut sources, lines, access).map_err(|e| e.to_string())
    }

    #[test]
    fn a_file_import_brings_its_sites_and_directives_with_args() {
        let d = doc_with_files(
            "import sites/*.caddy\nc.com {\n\timport common.caddy 9000\n}\n",
            &[
                ("/cfg/sites/b.caddy", "b.com {\n\trespond b\n}\n"),
                ("/cfg/sites/a.caddy", "a.com {\n\trespond a\n}\n"),
                ("/cfg/sites/notes.txt", "not imported"),
                ("/cfg/common.caddy", "reverse_proxy localhost:{args[0]}\n"),
            ],
        )
        .unwrap();
        let keys: Vec<_> = d.sites.iter().map(|s| s.keys[0].text.as_str()).collect();
        // Glob matches in name order.
        assert_eq!(keys, ["a.com", "b.com", "c.com"]);
        let proxy = &d.sites[2].body.items[0];
        assert_eq!(
            (proxy.name.text.as_str(), proxy.args[0].text.as_str()),
            ("reverse_proxy", "localhost:9000")
        );
    }

    #[test]
    fn errors_in_an_imported_file_name_that_file_and_its_line() {
        let e = doc_with_files(
            "import sub/site.caddy\n",
            &[("/cfg/sub/site.caddy", "a.com {\n\trespond a\n\t}\n}\n")],
        )
        .unwrap_err();
        assert_eq!(e, "/cfg/sub/site.caddy:4 - Unexpected '}' because no matching opening brace");
        // Relative imports resolve against the importing file's directory.
        let d = doc_with_files(
            "import sub/outer.caddy\n",
            &[
                ("/cfg/sub/outer.caddy", "import inner.caddy\n"),
                ("/cfg/sub/inner.caddy", "a.com {\n}\n"),
            ],
        )
        .unwrap();
        assert_eq!(d.sites.len(), 1);
    }

    #[test]
    fn import_cycles_and_missing_files_are_errors() {
        let e = doc_with_files(
            "import a.caddy\n",
            &[("/cfg/a.caddy", "import b.caddy\n"), ("/cfg/b.caddy", "import a.caddy\n")],
        )
        .unwrap_err();
        assert_eq!(
            e,
            "/cfg/b.caddy:1 - import cycle: /cfg/a.caddy -> /cfg/b.caddy -> /cfg/a.caddy"
        );
        let e = doc_with_files("import missing.caddy\n", &[]).unwrap_err();
        assert_eq!(e, "Caddyfile:1 - file to import not found: /cfg/missing.caddy");
        // A glob that matches nothing is allowed, as in Caddy.
        assert!(doc_with_files("import empty/*\na.com {\n}\n", &[]).unwrap().sites.len() == 1);
        let e = doc_with_files("import */x.caddy\n", &[]).unwrap_err();
        assert!(e.contains("wildcards are supported in the file name only"), "{e}");
    }

    #[test]
    fn import_paths_are_cleaned_lexically() {
        for (path, want) in [
            ("/cfg/sites/../proxy.caddy", "/cfg/proxy.caddy"),
            ("/cfg/./a/./b", "/cfg/a/b"),
            ("/../a", "/a"),
            ("../a/../../b", "../../b"),
            ("a/..", "."),
        ] {
            assert_eq!(clean(Path::new(path)), PathBuf::from(want), "{path}");
        }
    }

    #[test]
    fn wildcards_match_as_go_filepath_match_does_without_classes() {
        for (pattern, name, want) in [
            ("*.caddy", "a.caddy", true),
            ("*.caddy", ".hidden.caddy", true),
            ("*.caddy", "a.caddyfile", false),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("*", "", true),
            ("a*b*c", "aXbYbZc", true),
            ("a*b*c", "aXbYbZ", false),
        ] {
            assert_eq!(
                wildcard_match(pattern.as_bytes(), name.as_bytes()),
                want,
                "{pattern} {name}"
            );
        }
    }

    fn names(block: &Block) -> Vec<String> {
        block.items.iter().map(|d| d.name.text.clone()).collect()
    }

    #[test]
    fn globals_sites_and_nested_blocks() {
        let d =
            doc("{\n admin off\n}\na.com b.com {\n handle /x {\n  respond hi\n }\n}\n").unwrap();
        assert_eq!(names(d.globals.as_ref().unwrap()), ["admin"]);
        assert_eq!(d.sites.len(), 1);
        let keys: Vec<_> = d.sites[0].keys.iter().map(|k| k.text.as_str()).collect();
        assert_eq!(keys, ["a.com", "b.com"]);
        let handle = &d.sites[0].body.items[0];
        assert_eq!(handle.args[0].text, "/x");
        assert_eq!(names(handle.block.as_ref().unwrap()), ["respond"]);
    }

    #[test]
    fn trailing_commas_continue_the_address_list() {
        let d = doc("a.com,\nb.com, c.com {\n}\n").unwrap();
        let keys: Vec<_> = d.sites[0].keys.iter().map(|k| k.text.as_str()).collect();
        assert_eq!(keys, ["a.com", "b.com", "c.com"]);
    }

    #[test]
    fn braceless_single_site() {
        let d = doc("localhost\nrespond hi\n").unwrap();
        assert_eq!(names(&d.sites[0].body), ["respond"]);
    }

    #[test]
    fn snippets_are_spliced_with_arguments() {
        let d = doc("(p) {\n reverse_proxy {args[0]}:{args.1}\n}\na.com {\n import p h 80\n}\n")
            .unwrap();
        let rp = &d.sites[0].body.items[0];
        assert_eq!(rp.args[0].text, "h:80");
        assert_eq!(rp.line(), 2);
    }

    #[test]
    fn structural_errors() {
        let cases = [
            ("a.com {\n respond hi }\n", "Caddyfile:2 - '}' must be on a line of its own"),
            ("a.com {\n handle { respond hi\n }\n}\n", "Caddyfile:2 - Unexpected next token after '{' on same line"),
            ("a.com\n{\n}\n", "Caddyfile:2 - Unexpected '{' on a new line; did you mean to place the '{' on the previous line?"),
            ("a.com {\n handle {\n", "Caddyfile:2 - unexpected EOF: the '{' on this line is never closed"),
            ("}\n", "Caddyfile:1 - Unexpected '}' because no matching opening brace"),
            ("a.com{\n}\n", "Caddyfile:1 - Site addresses cannot end with a curly brace: 'a.com{' - put a space between the token and the brace"),
            ("a.com,b.com {\n}\n", "Caddyfile:1 - Site addresses cannot contain a comma ',': 'a.com,b.com' - put a space after the comma to separate site addresses"),
            ("(s) {\n}\n(s) {\n}\n", "Caddyfile:3 - redeclaration of previously declared snippet s"),
            ("a.com {\n import nope\n}\n", "Caddyfile:2 - snippet 'nope' is not defined (define (name) { ... } before importing it)"),
            ("a.com {\n import sites/x.caddy\n}\n", "Caddyfile:2 - file to import not found: /cfg/sites/x.caddy"),
            ("(a) {\n import b\n}\n(b) {\n import a\n}\nx.com {\n import a\n}\n", "Caddyfile:5 - import cycle: a -> b -> a"),
            ("(a) {\n import a\n}\nx.com {\n import a\n}\n", "Caddyfile:2 - import cycle: a -> a"),
            ("x.com {\n}\n{\n}\n", "Caddyfile:3 - a block without site addresses is the global options block and must be the first block in the file"),
            ("@m {\n}\n", "Caddyfile:1 - request matchers may not be defined globally, they must be in a site block; found @m"),
            ("a.com {\n respond {}\n}\n", "Caddyfile:2 - Unexpected '{}' at end of line"),
            ("(s) {\n r {args[1]}\n}\na {\n import s x\n}\n", "Caddyfile:2 - argument index 1 is out of range: the import passes 1 argument(s)"),
        ];
        for (input, want) in cases {
            assert_eq!(doc(input).unwrap_err(), want, "input: {input:?}");
        }
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let input = "a {\n".repeat(100_000);
        let err = doc(&input).unwrap_err();
        assert_eq!(err, "Caddyfile:33 - blocks are nested too deeply (more than 32 levels)");
    }

    #[test]
    fn exponential_imports_are_bounded() {
        let mut input = String::from("(s0) {\n respond x\n}\n");
        for i in 1..30 {
            input.push_str(&format!("(s{i}) {{\n import s{0}\n import s{0}\n}}\n", i - 1));
        }
        input.push_str("a {\n import s29\n}\n");
        let err = doc(&input).unwrap_err();
        assert!(err.contains("too large after expanding imports"), "{err}");
    }
}
