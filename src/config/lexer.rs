//! Caddyfile text → tokens carrying file:line.
//!
//! Owns the character-level rules of the Caddyfile format, as Caddy's own lexer applies them:
//! tokens are separated by whitespace; `"…"` quotes (only `\"` is an escape inside them, any
//! other backslash stays literal) and `` `…` `` quotes (no escapes at all) may span lines; `#`
//! at the start of a token comments out the rest of the line; a backslash before a newline
//! joins two lines into one logical line (the tokens after it keep the first line's number, as
//! Caddy reports them); `{$VAR}` and `{$VAR:default}` are replaced by environment values.
//!
//! It does not know about blocks, directives or imports (that is `syntax`), and it never
//! panics: any byte sequence yields tokens or a [`ConfigError`] whose line lies inside the
//! input.
//!
//! Where ringproxy differs from Caddy here, on purpose:
//! - Environment variables are substituted inside each token, after the token is cut, so a
//!   value can never inject braces, new tokens or directives. Caddy substitutes in the raw text
//!   before lexing. An unquoted token that becomes empty disappears, as it would in Caddy.
//! - An unterminated quote is an error at the line where it opened (Caddy silently ends the
//!   token at the end of the file).
//! - Heredocs (`<<END`) are rejected with a message instead of being misread.

use super::ConfigError;

/// One Caddyfile token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    /// The token's text with quotes removed and environment variables substituted.
    pub text: String,
    /// 1-based line where the token starts.
    pub line: usize,
    /// Line where the token ends: larger than `line` only for quoted tokens spanning lines.
    /// The next token is on the same logical line when its `line` is not greater than this.
    pub end_line: usize,
    /// The token was written in `"…"` or `` `…` ``: it is never a brace, a matcher or a
    /// comment, whatever its text.
    pub quoted: bool,
    /// Part of the text came from an environment value (`{$VAR}`): it is never a brace either,
    /// so that a value cannot open or close a block.
    pub substituted: bool,
    /// Which import expansion the token came from (0 = the file itself). Two tokens from
    /// different expansions are never on the same line, as in Caddy.
    pub frame: u32,
}

impl Token {
    /// An unquoted `{` written as such: opens a block.
    pub fn is_open_brace(&self) -> bool {
        !self.quoted && !self.substituted && self.text == "{"
    }

    /// An unquoted `}` written as such: closes a block.
    pub fn is_close_brace(&self) -> bool {
        !self.quoted && !self.substituted && self.text == "}"
    }

    /// Whether `next` continues the logical line this token is on.
    pub fn same_line_as_next(&self, next: &Token) -> bool {
        self.frame == next.frame && next.line <= self.end_line
    }
}

/// Number of lines in `input` as an editor counts them: a final line without a newline still
/// counts, and an empty input has one line. Every error line is within `1..=line_count`.
pub fn line_count(input: &[u8]) -> usize {
    1 + input.iter().filter(|&&b| b == b'\n').count()
}

/// Tokenize `input` (the contents of `file`) with no environment: every `{$VAR}` is empty.
pub fn tokenize(input: &[u8], file: &str) -> Result<Vec<Token>, ConfigError> {
    tokenize_with_env(input, file, &|_| None)
}

/// Tokenize with an explicit environment lookup for `{$VAR}` (`main` passes the process
/// environment; the library itself never reads it).
pub fn tokenize_with_env(
    input: &[u8],
    file: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<Token>, ConfigError> {
    let text = match std::str::from_utf8(input) {
        Ok(text) => text,
        Err(e) => {
            let line = line_count(&input[..e.valid_up_to()]);
            return Err(error(file, line, "the file is not valid UTF-8".to_string()));
        }
    };
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    Lexer { chars: text.chars().peekable(), line: 1, skipped: 0, file, env }.run()
}

fn error(file: &str, line: usize, message: String) -> ConfigError {
    ConfigError { file: file.to_string(), line, message }
}

struct Lexer<'a, 'e> {
    chars: std::iter::Peekable<std::str::Chars<'a>>,
    /// Current logical line.
    line: usize,
    /// Physical lines joined into the current logical one by `\`-newline; they are added to
    /// `line` at the next real line break, so later lines keep their true numbers.
    skipped: usize,
    file: &'a str,
    env: &'e dyn Fn(&str) -> Option<String>,
}

impl Lexer<'_, '_> {
    fn run(mut self) -> Result<Vec<Token>, ConfigError> {
        let mut tokens = Vec::new();
        while let Some(token) = self.next_token()? {
            tokens.push(token);
        }
        Ok(tokens)
    }

    fn newline(&mut self) {
        self.line += 1 + self.skipped;
        self.skipped = 0;
    }

    /// Skips whitespace and comments, then reads one token.
    fn next_token(&mut self) -> Result<Option<Token>, ConfigError> {
        loop {
            match self.chars.peek().copied() {
                None => return Ok(None),
                Some('\n') => {
                    self.chars.next();
                    self.newline();
                }
                Some(c) if c.is_whitespace() => {
                    self.chars.next();
                }
                Some('#') => {
                    while let Some(&c) = self.chars.peek() {
                        if c == '\n' {
                            break;
                        }
                        self.chars.next();
                    }
                }
                Some('\\') => {
                    // A backslash-newline between tokens joins the lines; otherwise the
                    // backslash starts an ordinary token.
                    let mut lookahead = self.chars.clone();
                    lookahead.next();
                    let after = lookahead.next();
                    let after_that = lookahead.next();
                    match after {
                        Some('\n') => {
                            self.chars.next();
                            self.chars.next();
                            self.skipped += 1;
                        }
                        Some('\r') if after_that == Some('\n') => {
                            self.chars.next();
                            self.chars.next();
                            self.chars.next();
                            self.skipped += 1;
                        }
                        _ => return self.bare().map(Some),
                    }
                }
                Some('"') => {
                    self.chars.next();
                    return self.quoted('"').map(Some);
                }
                Some('`') => {
                    self.chars.next();
                    return self.quoted('`').map(Some);
                }
                Some(_) => {
                    if let Some(token) = self.bare_nonempty()? {
                        return Ok(Some(token));
                    }
                }
            }
        }
    }

    /// Reads an unquoted token; `None` when environment substitution left it empty.
    fn bare_nonempty(&mut self) -> Result<Option<Token>, ConfigError> {
        let token = self.bare()?;
        Ok(if token.text.is_empty() { None } else { Some(token) })
    }

    fn bare(&mut self) -> Result<Token, ConfigError> {
        let line = self.line;
        let mut raw = String::new();
        while let Some(&c) = self.chars.peek() {
            if c.is_whitespace() {
                break;
            }
            self.chars.next();
            if c == '\\' {
                match self.chars.peek().copied() {
                    Some('\n') => {
                        // Line continuation inside a token ends the token, like whitespace.
                        self.chars.next();
                        self.skipped += 1;
                        break;
                    }
                    // Caddy keeps a backslash in unquoted text literally, together with the
                    // character it precedes (which therefore never ends the token).
                    Some(next) if !next.is_whitespace() => {
                        self.chars.next();
                        raw.push('\\');
                        raw.push(next);
                        continue;
                    }
                    _ => {}
                }
            }
            raw.push(c);
        }
        if raw.len() > 2 && raw.starts_with("<<") && self.at_line_end() {
            let marker = &raw[2..];
            if marker.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
                return Err(error(
                    self.file,
                    line,
                    format!(
                        "heredoc '{raw}' is not supported by ringproxy; use a \"quoted\" string"
                    ),
                ));
            }
        }
        let text = self.substitute_env(&raw);
        let substituted = text != raw;
        Ok(Token { text, line, end_line: line, quoted: false, substituted, frame: 0 })
    }

    /// Whether only horizontal whitespace separates the cursor from the end of the line.
    fn at_line_end(&self) -> bool {
        let mut rest = self.chars.clone();
        loop {
            match rest.next() {
                None | Some('\n') => return true,
                Some(c) if c.is_whitespace() => {}
                Some(_) => return false,
            }
        }
    }

    fn quoted(&mut self, quote: char) -> Result<Token, ConfigError> {
        let line = self.line;
        let mut raw = String::new();
        loop {
            let Some(c) = self.chars.next() else {
                return Err(error(
                    self.file,
                    line,
                    format!("unterminated quoted string: missing closing {quote}"),
                ));
            };
            if c == quote {
                break;
            }
            if c == '\\' && quote == '"' {
                match self.chars.peek().copied() {
                    Some('"') => {
                        self.chars.next();
                        raw.push('"');
                        continue;
                    }
                    // Every other escape stays literal, backslash included (Caddy).
                    Some(next) => {
                        self.chars.next();
                        raw.push('\\');
                        if next == '\n' {
                            self.newline();
                        }
                        raw.push(next);
                        continue;
                    }
                    None => {}
                }
            }
            if c == '\n' {
                self.newline();
            }
            raw.push(c);
        }
        let text = self.substitute_env(&raw);
        let substituted = text != raw;
        Ok(Token { text, line, end_line: self.line, quoted: true, substituted, frame: 0 })
    }

    /// Replaces `{$NAME}` and `{$NAME:default}`. An unset variable without a default becomes
    /// the empty string, as in Caddy. Unterminated or empty references stay literal.
    fn substitute_env(&self, raw: &str) -> String {
        if !raw.contains("{$") {
            return raw.to_string();
        }
        let mut out = String::with_capacity(raw.len());
        let mut rest = raw;
        while let Some(start) = rest.find("{$") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            match after.find('}') {
                Some(end) if end > 0 => {
                    let inner = &after[..end];
                    let (name, default) = match inner.split_once(':') {
                        Some((name, default)) => (name, Some(default)),
                        None => (inner, None),
                    };
                    let value = (self.env)(name).or_else(|| default.map(str::to_string));
                    out.push_str(&value.unwrap_or_default());
                    rest = &after[end + 1..];
                }
                _ => {
                    out.push_str("{$");
                    rest = after;
                }
            }
        }
        out.push_str(rest);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lex(input: &str) -> Vec<(String, usize, bool)> {
        tokenize_with_env(input.as_bytes(), "Caddyfile", &|name| match name {
            "PORT" => Some("8080".to_string()),
            "EMPTY" => Some(String::new()),
            _ => None,
        })
        .unwrap()
        .into_iter()
        .map(|t| (t.text, t.line, t.quoted))
        .collect()
    }

    fn lex_err(input: &str) -> String {
        tokenize_with_env(input.as_bytes(), "Caddyfile", &|_| None).unwrap_err().to_string()
    }

    fn t(text: &str, line: usize) -> (String, usize, bool) {
        (text.to_string(), line, false)
    }

    fn q(text: &str, line: usize) -> (String, usize, bool) {
        (text.to_string(), line, true)
    }

    #[test]
    fn splits_on_whitespace_and_counts_lines() {
        assert_eq!(
            lex("example.com {\n\treverse_proxy localhost:8080\n}\n"),
            vec![
                t("example.com", 1),
                t("{", 1),
                t("reverse_proxy", 2),
                t("localhost:8080", 2),
                t("}", 3)
            ]
        );
    }

    #[test]
    fn comments_only_start_a_token() {
        assert_eq!(lex("a # b c\nd#e"), vec![t("a", 1), t("d#e", 2)]);
    }

    #[test]
    fn double_quotes_keep_spaces_and_unescape_only_quotes() {
        assert_eq!(
            lex(r#"respond "a \"b\" \n {x}" 200"#),
            vec![t("respond", 1), q(r#"a "b" \n {x}"#, 1), t("200", 1)]
        );
    }

    #[test]
    fn backquotes_have_no_escapes_and_may_span_lines() {
        let tokens = tokenize(b"respond `a\\\"\nb` x\ny", "C").unwrap();
        assert_eq!(tokens[1].text, "a\\\"\nb");
        assert_eq!((tokens[1].line, tokens[1].end_line), (1, 2));
        assert!(tokens[1].same_line_as_next(&tokens[2]));
        assert_eq!(tokens[3].line, 3);
    }

    #[test]
    fn backslash_newline_joins_lines_and_later_lines_keep_their_numbers() {
        assert_eq!(lex("a \\\n b\nc\n"), vec![t("a", 1), t("b", 1), t("c", 3)]);
        assert_eq!(lex("a\\\nb\nc"), vec![t("a", 1), t("b", 1), t("c", 3)]);
    }

    #[test]
    fn backslash_in_bare_text_is_kept() {
        assert_eq!(lex(r"a\b \{"), vec![t(r"a\b", 1), t(r"\{", 1)]);
    }

    #[test]
    fn environment_variables_are_substituted_per_token() {
        assert_eq!(
            lex("{$PORT} :{$PORT} {$NOPE:9000} \"{$PORT} x\" {$NOPE} {$EMPTY} z"),
            vec![t("8080", 1), t(":8080", 1), t("9000", 1), q("8080 x", 1), t("z", 1)]
        );
    }

    #[test]
    fn a_brace_from_an_environment_value_or_default_is_text_not_a_block() {
        let env = |name: &str| (name == "OPEN").then(|| "{".to_string());
        let tokens = tokenize_with_env(b"a {$OPEN}\n{$NOPE:}}\n{\n}", "Caddyfile", &env).unwrap();
        let texts: Vec<&str> = tokens.iter().map(|t| t.text.as_str()).collect();
        assert_eq!(texts, ["a", "{", "}", "{", "}"]);
        let braces: Vec<(bool, bool)> =
            tokens.iter().map(|t| (t.is_open_brace(), t.is_close_brace())).collect();
        assert_eq!(
            braces,
            [(false, false), (false, false), (false, false), (true, false), (false, true)]
        );
        let err = crate::config::parse_bytes(
            b"a.com {$OPEN}\n}\n",
            "Caddyfile",
            std::path::Path::new("/"),
            &crate::config::ParseOptions::default().with_env(env),
        )
        .unwrap_err();
        // The value is an address ending in a brace, not the opening of the site's block.
        assert!(err.to_string().starts_with("Caddyfile:1 - Site addresses cannot end"), "{err}");
    }

    #[test]
    fn unterminated_env_reference_stays_literal() {
        assert_eq!(lex("{$PORT {$}"), vec![t("{$PORT", 1), t("{$}", 1)]);
    }

    #[test]
    fn crlf_line_endings_count_like_lf() {
        assert_eq!(lex("a\r\nb\r\n"), vec![t("a", 1), t("b", 2)]);
    }

    #[test]
    fn byte_order_mark_is_skipped() {
        assert_eq!(lex("\u{feff}a"), vec![t("a", 1)]);
    }

    #[test]
    fn unterminated_quote_reports_its_opening_line() {
        assert_eq!(
            lex_err("a\nrespond \"abc\n\n"),
            "Caddyfile:2 - unterminated quoted string: missing closing \""
        );
    }

    #[test]
    fn invalid_utf8_reports_its_line() {
        let err = tokenize(b"a\nb\n\xff", "Caddyfile").unwrap_err();
        assert_eq!(err.to_string(), "Caddyfile:3 - the file is not valid UTF-8");
    }

    #[test]
    fn heredocs_are_rejected() {
        assert_eq!(
            lex_err("respond <<EOF\nhi\nEOF\n"),
            "Caddyfile:1 - heredoc '<<EOF' is not supported by ringproxy; use a \"quoted\" string"
        );
        assert_eq!(lex("a <<b c"), vec![t("a", 1), t("<<b", 1), t("c", 1)]);
    }

    #[test]
    fn line_count_counts_a_final_line_without_newline() {
        assert_eq!(line_count(b""), 1);
        assert_eq!(line_count(b"a"), 1);
        assert_eq!(line_count(b"a\n"), 2);
    }
}
