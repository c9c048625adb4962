//! Where a request path leads under a root, safely: the path is percent-decoded (once, `%2F`
//! included, as Caddy's `URL.Path`) and its dot segments resolved *before* it is joined to the
//! root, so no `..` can climb out; a NUL byte refuses it; a hidden file (a segment starting
//! with `.`, or one the `hide` list names) is never served. Symlinks are the other way out of
//! a root; they are checked after opening, against the real path (see `crate::files`).

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::http::path::{percent_decode_into, remove_dot_segments, write_stripped_path};

/// A request path in served form: decoded, dot segments resolved, starting with `/`, with the
/// trailing `/` as the request had it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServedPath(Vec<u8>);

impl ServedPath {
    /// The path of `raw` (a request target's path) after `handle_path` removed `strip`;
    /// `None` when it holds a NUL byte, which no file name can.
    pub fn of_request(raw: &[u8], strip: &[&str]) -> Option<ServedPath> {
        let mut stripped = Vec::with_capacity(raw.len());
        write_stripped_path(raw, strip, &mut stripped);
        ServedPath::decode(&stripped)
    }

    /// A path written as-is (a `try_files` candidate), escapes decoded.
    pub fn decode(raw: &[u8]) -> Option<ServedPath> {
        let mut decoded = Vec::with_capacity(raw.len() + 1);
        if !raw.starts_with(b"/") {
            decoded.push(b'/');
        }
        percent_decode_into(raw, &mut decoded);
        if decoded.contains(&0) {
            return None;
        }
        let len = remove_dot_segments(&mut decoded);
        decoded.truncate(len);
        Some(ServedPath(decoded))
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn ends_with_slash(&self) -> bool {
        self.0.ends_with(b"/")
    }

    /// The same path with a trailing `/` added or removed.
    pub fn with_slash(&self, slash: bool) -> ServedPath {
        let mut path = self.0.clone();
        match (slash, self.ends_with_slash()) {
            (true, false) => path.push(b'/'),
            (false, true) if path.len() > 1 => {
                path.pop();
            }
            _ => {}
        }
        ServedPath(path)
    }

    /// The last segment (empty for a path ending in `/`).
    pub fn file_name(&self) -> &[u8] {
        let start = self.0.iter().rposition(|&b| b == b'/').map_or(0, |i| i + 1);
        &self.0[start..]
    }

    /// The file this path names under `root` (a trailing `/` dropped: the file system would
    /// refuse it for a file, and the caller knows whether it asked for a directory).
    pub fn under(&self, root: &Path) -> PathBuf {
        let relative = self.0.trim_ascii_start_slashes();
        let end = relative.iter().rposition(|&b| b != b'/').map_or(0, |i| i + 1);
        root.join(OsStr::from_bytes(&relative[..end]))
    }

    /// Whether the path is hidden: a segment starts with `.` (dotfiles and dot-directories,
    /// `.git`, `.env`), or a segment is a name in `hide`. Hidden paths under `root` (the
    /// entries of `hide` with a `/`) are [`is_hidden_file`]'s.
    pub fn is_hidden(&self, hide: &[String]) -> bool {
        self.0.split(|&b| b == b'/').filter(|s| !s.is_empty()).any(|segment| {
            segment.starts_with(b".")
                || hide.iter().any(|h| !h.contains('/') && h.as_bytes() == segment)
        })
    }
}

/// Whether `file` (a path under a root, as joined or as resolved) is, or is inside, an entry of
/// `hide` that is a path.
pub fn is_hidden_file(file: &Path, hide: &[String]) -> bool {
    hide.iter().filter(|h| h.contains('/')).any(|h| file.starts_with(h))
}

trait TrimSlashes {
    fn trim_ascii_start_slashes(&self) -> &[u8];
}

impl TrimSlashes for [u8] {
    fn trim_ascii_start_slashes(&self) -> &[u8] {
        let start = self.iter().position(|&b| b != b'/').unwrap_or(self.len());
        &self[start..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn served(raw: &str) -> Option<String> {
        ServedPath::of_request(raw.as_bytes(), &[])
            .map(|p| String::from_utf8_lossy(p.as_bytes()).into_owned())
    }

    #[test]
    fn dot_segments_and_escapes_never_climb_above_the_root() {
        assert_eq!(served("/../etc/passwd").as_deref(), Some("/etc/passwd"));
        assert_eq!(served("/%2e%2e/%2e%2e/etc/passwd").as_deref(), Some("/etc/passwd"));
        assert_eq!(served("/a/..%2f..%2fetc/passwd").as_deref(), Some("/etc/passwd"));
        assert_eq!(served("/a/b/../c/").as_deref(), Some("/a/c/"));
        assert_eq!(served("/App.JS").as_deref(), Some("/App.JS"));
        assert_eq!(served("/a%00b"), None);
        let root = Path::new("/srv/client");
        let path = ServedPath::of_request(b"/../../etc/passwd", &[]).unwrap();
        assert_eq!(path.under(root), Path::new("/srv/client/etc/passwd"));
    }

    #[test]
    fn handle_path_prefixes_are_removed_first() {
        let path = ServedPath::of_request(b"/static/app.js", &["/static"]).unwrap();
        assert_eq!(path.as_bytes(), b"/app.js");
    }

    #[test]
    fn dot_segments_and_hide_names_are_hidden() {
        let hide = vec!["secret.txt".to_string(), "/srv/private".to_string()];
        let hidden = |raw: &str| ServedPath::decode(raw.as_bytes()).unwrap().is_hidden(&hide);
        assert!(hidden("/.env"));
        assert!(hidden("/.git/config"));
        assert!(hidden("/a/secret.txt"));
        assert!(!hidden("/a/b.txt"));
        assert!(!hidden("/private/x"));
        assert!(is_hidden_file(Path::new("/srv/private/x"), &hide));
        assert!(!is_hidden_file(Path::new("/srv/privateer"), &hide));
    }

    #[test]
    fn slashes_are_added_and_removed_for_canonical_redirects() {
        let dir = ServedPath::decode(b"/sub").unwrap();
        assert_eq!(dir.with_slash(true).as_bytes(), b"/sub/");
        assert_eq!(dir.with_slash(true).with_slash(false), dir);
        assert_eq!(ServedPath::decode(b"/").unwrap().with_slash(false).as_bytes(), b"/");
        assert_eq!(dir.file_name(), b"sub");
    }
}
