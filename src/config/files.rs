//! The typed form of the file-serving directives: `root`, `try_files` and `file_server`, as
//! the parser leaves them and the file server (`crate::files`) reads them. Parsing is
//! `parse::files`; serving, path safety and I/O are `crate::files`.

use std::path::PathBuf;

/// `file_server { … }`: what is served, and how.
#[derive(Debug, Clone)]
pub struct FileServer {
    /// `root` inside the block, which overrides the route's `root` directive. Absolute.
    pub root: Option<PathBuf>,
    /// `hide`: file names (no `/`: any path segment with that name) or absolute paths (that
    /// file or everything under that directory) that are never served. The Caddyfile itself is
    /// always among them, as in Caddy.
    pub hide: Vec<String>,
    /// `index`: the files tried, in order, for a request that names a directory.
    pub index: Vec<String>,
    /// `precompressed`: sidecar encodings in the order they are preferred.
    pub precompressed: Vec<Precompressed>,
}

impl FileServer {
    /// One line for the configuration summary.
    pub fn summary(&self) -> String {
        let mut line = "file_server".to_string();
        if let Some(root) = &self.root {
            line.push_str(&format!(" root {}", root.display()));
        }
        line.push_str(&format!(" index {}", self.index.join(" ")));
        if !self.precompressed.is_empty() {
            let codings: Vec<&str> = self.precompressed.iter().map(|p| p.coding()).collect();
            line.push_str(&format!(" precompressed {}", codings.join(" ")));
        }
        line
    }
}

/// A precompressed sidecar: `app.js.br` beside `app.js`, served with its `Content-Encoding`
/// when the client accepts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precompressed {
    Br,
    Gzip,
    Zstd,
}

impl Precompressed {
    /// The content coding (RFC 9110 §8.4.1), as `Accept-Encoding` and `Content-Encoding` name
    /// it, and as the Caddyfile does.
    pub fn coding(self) -> &'static str {
        match self {
            Precompressed::Br => "br",
            Precompressed::Gzip => "gzip",
            Precompressed::Zstd => "zstd",
        }
    }

    /// The sidecar's file name suffix (Caddy's).
    pub fn suffix(self) -> &'static str {
        match self {
            Precompressed::Br => ".br",
            Precompressed::Gzip => ".gz",
            Precompressed::Zstd => ".zst",
        }
    }
}

/// `try_files <candidates…>`: the first candidate that exists under the root becomes the path
/// the file server serves.
#[derive(Debug, Clone)]
pub struct TryFiles {
    pub candidates: Vec<TryCandidate>,
}

impl TryFiles {
    /// One line for the configuration summary.
    pub fn summary(&self) -> String {
        let mut line = "try_files".to_string();
        for candidate in &self.candidates {
            match candidate {
                TryCandidate::Path(path) => line.push_str(&format!(" {path}")),
                TryCandidate::Status(status) => line.push_str(&format!(" ={status}")),
            }
        }
        line
    }
}

/// One `try_files` candidate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TryCandidate {
    /// A path, with `{path}` replaced by the request's path. One ending in `/` only matches a
    /// directory.
    Path(String),
    /// `=404` and the like: when tried, the request is answered with this status.
    Status(u16),
}
