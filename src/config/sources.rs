//! [`Sources`]: the files a configuration was read from — the Caddyfile and every file it
//! imports — and the mapping from a token's line to the file and line an error must name.
//!
//! Tokens carry one line number. The main file's tokens keep their own lines; each imported
//! file gets a range of line numbers of its own, past every range handed out before, so that a
//! token's line alone says which file it came from. Every `file:line` error is built here,
//! which is what keeps an error in an imported file pointing into that file.

use std::path::{Path, PathBuf};

use super::ConfigError;

pub(crate) struct Sources {
    files: Vec<SourceFile>,
    /// The next unused line number of the shared numbering.
    next_line: usize,
}

struct SourceFile {
    /// As errors show it: the main file as the user named it, imports as their path.
    name: String,
    /// On disk (none for text given directly, such as a body posted to the admin endpoint).
    path: Option<PathBuf>,
    /// Where relative imports in this file resolve.
    dir: PathBuf,
    /// Tokens of this file have lines `offset + 1 ..= offset + lines`.
    offset: usize,
    lines: usize,
}

impl Sources {
    /// The main file: `name` for errors, `dir` for its relative imports, `lines` long.
    pub fn new(name: &str, dir: &Path, lines: usize) -> Sources {
        let main = SourceFile {
            name: name.to_string(),
            path: None,
            dir: dir.to_path_buf(),
            offset: 0,
            lines,
        };
        Sources { files: vec![main], next_line: lines + 1 }
    }

    /// Register an imported file of `lines` lines; returns the offset to add to its tokens'
    /// lines, or none when the numbering would overflow.
    pub fn add_import(&mut self, path: &Path, lines: usize) -> Option<usize> {
        let offset = self.next_line.checked_sub(1)?;
        self.next_line = self.next_line.checked_add(lines)?.checked_add(1)?;
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
            _ => PathBuf::from("."),
        };
        self.files.push(SourceFile {
            name: path.display().to_string(),
            path: Some(path.to_path_buf()),
            dir,
            offset,
            lines,
        });
        Some(offset)
    }

    /// The file a token on `line` came from.
    fn file_of(&self, line: usize) -> &SourceFile {
        // Files are registered in increasing offsets; the main file (offset 0) catches the
        // rest, including line 0 (errors about the whole file).
        self.files
            .iter()
            .rev()
            .find(|f| f.offset < line && line <= f.offset + f.lines.max(1))
            .unwrap_or(&self.files[0])
    }

    /// The error at `line` of the shared numbering, naming the file and line it is in.
    pub fn error(&self, line: usize, message: impl Into<String>) -> ConfigError {
        let (file, line) = self.locate(line);
        ConfigError { file: file.to_string(), line, message: message.into() }
    }

    /// The file name and the line within it.
    pub fn locate(&self, line: usize) -> (&str, usize) {
        let file = self.file_of(line);
        (&file.name, line.saturating_sub(file.offset))
    }

    /// Where relative imports written on `line` resolve.
    pub fn dir_of(&self, line: usize) -> &Path {
        &self.file_of(line).dir
    }

    /// The file on disk that `line` is in, if it is an imported one.
    pub fn path_of(&self, line: usize) -> Option<&Path> {
        self.file_of(line).path.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_of_imported_files_map_back_to_their_own_file_and_line() {
        let mut sources = Sources::new("Caddyfile", Path::new("/etc/rp"), 10);
        let a = sources.add_import(Path::new("/etc/rp/sites/a.caddy"), 3).unwrap();
        let b = sources.add_import(Path::new("/etc/rp/b.caddy"), 5).unwrap();
        assert_eq!(sources.locate(4), ("Caddyfile", 4));
        assert_eq!(sources.locate(10), ("Caddyfile", 10));
        assert_eq!(sources.locate(a + 1), ("/etc/rp/sites/a.caddy", 1));
        assert_eq!(sources.locate(a + 3), ("/etc/rp/sites/a.caddy", 3));
        assert_eq!(sources.locate(b + 5), ("/etc/rp/b.caddy", 5));
        assert_eq!(sources.locate(0), ("Caddyfile", 0));
        assert_eq!(sources.dir_of(a + 2), Path::new("/etc/rp/sites"));
        assert_eq!(sources.dir_of(2), Path::new("/etc/rp"));
        assert_eq!(sources.path_of(2), None);
        assert_eq!(sources.path_of(b + 1), Some(Path::new("/etc/rp/b.caddy")));
        let e = sources.error(b + 2, "boom");
        assert_eq!(e.to_string(), "/etc/rp/b.caddy:2 - boom");
    }

    #[test]
    fn an_empty_imported_file_still_owns_a_line() {
        let mut sources = Sources::new("Caddyfile", Path::new("."), 2);
        let empty = sources.add_import(Path::new("empty.caddy"), 0).unwrap();
        let next = sources.add_import(Path::new("next.caddy"), 1).unwrap();
        assert!(next > empty);
        assert_eq!(sources.locate(next + 1), ("next.caddy", 1));
    }
}
