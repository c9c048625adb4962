//! Tokens → the Caddyfile's block structure: the global options block, snippets, site blocks
//! and, inside them, directives with arguments and nested blocks.
//!
//! Owns the structural rules Caddy enforces (a `{` ends its line, a `}` stands on a line of its
//! own, braces balance) and `import` of snippets defined earlier in the same file, with
//! `{args[N]}` substitution and cycle detection. It knows nothing about what a directive means;
//! `parse` does.

use super::limits;
use std::collections::HashMap;

use super::lexer::Token;
use super::ConfigError;

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

/// Builds the [`Document`] for `tokens` lexed from `file`.
pub(crate) fn parse_document(
    tokens: Vec<Token>,
    file: &str,
    last_line: usize,
) -> Result<Document, ConfigError> {
    let mut p = Structure {
        tokens,
        pos: 0,
        file,
        last_line,
        snippets: HashMap::new(),
        depth: 0,
        frames: vec![Frame { snippet: String::new(), parent: None }],
    };
    p.document()
}

struct Frame {
    snippet: String,
    parent: Option<u32>,
}

struct Structure<'f> {
    tokens: Vec<Token>,
    pos: usize,
    file: &'f str,
    /// The file's last line, for errors at the end of the input.
    last_line: usize,
    snippets: HashMap<String, Vec<Token>>,
    /// Import expansions, indexed by `Token::frame`; frame 0 is the file itself.
    frames: Vec<Frame>,
    /// Blocks currently open.
    depth: usize,
}

impl Structure<'_> {
    fn err(&self, line: usize, message: impl Into<String>) -> ConfigError {
        ConfigError { file: self.file.to_string(), line, message: message.into() }
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
        let Some(body) = self.snippets.get(name) else {
            let message = if name.contains(['/', '.', '*']) {
                format!(
                    "importing files is not supported by ringproxy: '{name}' (supported: \
                     snippets defined earlier in this file)"
                )
            } else {
                format!(
                    "snippet '{name}' is not defined (define (name) {{ ... }} before importing it)"
                )
            };
            return Err(self.err(name_token.line, message));
        };

        let mut chain = vec![name.to_string()];
        let mut frame = Some(import.frame);
        while let Some(f) = frame {
            let f = &self.frames[f as usize];
            if f.parent.is_some() {
                chain.push(f.snippet.clone());
                if f.snippet == name {
                    chain.reverse();
                    return Err(
                        self.err(import.line, format!("import cycle: {}", chain.join(" -> ")))
                    );
                }
            }
            frame = f.parent;
        }

        if self.tokens.len() + body.len() > limits::MAX_EXPANDED_TOKENS {
            return Err(self.err(
                import.line,
                format!(
                    "the configuration is too large after expanding imports (more than \
                     {} tokens)",
                    limits::MAX_EXPANDED_TOKENS
                ),
            ));
        }
        let frame_id = u32::try_from(self.frames.len())
            .map_err(|_| self.err(import.line, "too many imports"))?;
        self.frames.push(Frame { snippet: name.to_string(), parent: Some(import.frame) });
        let args: Vec<&str> = line[2..].iter().map(|t| t.text.as_str()).collect();
        let mut expanded = Vec::with_capacity(body.len());
        for token in body {
            let text = substitute_args(&token.text, &args)
                .map_err(|message| self.err(token.line, message))?;
            expanded.push(Token { text, frame: frame_id, ..token.clone() });
        }
        let at = self.pos;
        self.tokens.splice(at..at, expanded);
        Ok(())
    }
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
        let tokens = tokenize(input.as_bytes(), "Caddyfile").map_err(|e| e.to_string())?;
        parse_document(tokens, "Caddyfile", line_count(input.as_bytes())).map_err(|e| e.to_string())
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
            ("a.com {\n import sites/*.caddy\n}\n", "Caddyfile:2 - importing files is not supported by ringproxy: 'sites/*.caddy' (supported: snippets defined earlier in this file)"),
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
