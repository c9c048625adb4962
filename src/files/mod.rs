//! The file server: `root`, `try_files` and `file_server` on the data path.
//!
//! A request's path becomes a file under the root (`path`: decoded, dot segments resolved,
//! hidden files refused), `try_files` may replace it with the first candidate that exists,
//! and the file is opened and read without blocking the worker (`io`). Directories are served
//! by their index file, behind Caddy's canonical redirects; `conditional` decides `304`,
//! `412`, `206` and `416`; `mime` gives the `Content-Type`; a precompressed sidecar is served
//! when the client accepts its encoding.
//!
//! The body goes out in [`CHUNK`]-byte reads, each written before the next is read, so a
//! download holds one chunk buffer whatever the file's size. The body is written by
//! [`send_file`], the seam a response encoder would wrap. Not here: listing directories
//! (`browse`), which ringproxy does not offer.

pub mod conditional;
pub mod io;
pub mod mime;
pub mod path;

use std::path::{Path, PathBuf};

use crate::config::files::{FileServer, Precompressed, TryCandidate, TryFiles};
use crate::config::{Coding, Encode};
use crate::http::chunked::{frame_chunk, LAST_CHUNK};
use crate::http::encode::{Reencoding, StreamEncoder};
use crate::http::head::{Method, Version};
use crate::http::request::Request;
use crate::net::stream::Stream;
use crate::proxy::io::write_all;
use conditional::{Conditions, Precondition, Ranged};
use io::OpenFile;
use path::ServedPath;

/// The most a download reads ahead of the client: one buffer of this size per response.
pub const CHUNK: usize = 64 * 1024;

/// How a request was answered.
#[derive(Debug, Clone, Copy)]
pub struct Served {
    pub status: u16,
    /// Body bytes sent.
    pub bytes: u64,
    /// The whole response went out (otherwise the connection must close).
    pub complete: bool,
}

/// The file (or lack of one) a path leads to.
enum Found {
    /// `index`: the file is a directory's index file.
    File {
        file: OpenFile,
        path: ServedPath,
        index: bool,
    },
    Missing,
    Forbidden,
}

/// Applies the route's `header` ops to a head the file server wrote (`out` holds it from its
/// start); `error` is set for the answers Caddy writes as errors (`403`, `404`, `405`, `500`),
/// which only the immediate ops reach.
pub type Shape<'a> = &'a dyn Fn(&mut Vec<u8>, bool);

/// The route's middleware that the file server reads.
#[derive(Debug, Default)]
pub struct FileMiddleware<'c> {
    /// The last `root` that matched.
    pub root: Option<&'c Path>,
    /// Every `try_files` that matched, in route order: each rewrites what the next one sees.
    pub try_files: Vec<&'c TryFiles>,
    /// The route's `encode`, for whole files.
    pub encode: Option<&'c Encode>,
}

/// Answers `request` from the files under the root. `close` adds `Connection: close`; `shape`
/// applies `header` ops.
pub async fn serve<S: Stream>(
    client: &S,
    request: &Request,
    strip: &[&str],
    middleware: &FileMiddleware<'_>,
    server: &FileServer,
    close: bool,
    shape: Shape<'_>,
) -> Served {
    let mut out = Vec::with_capacity(512);
    let encode = middleware.encode;
    let reply = Reply { close, head_only: request.head().method == Method::Head, shape, encode };
    // Where the root leads now (it may be a symlink, `/srv/client -> releases/42`), read once
    // per request: every file served must be inside it once its own symlinks are resolved.
    let Some(given) = root_of(server, middleware) else {
        return reply.status(client, 404, &[], &mut out).await;
    };
    let Ok(real) = io::open(given.clone()).await.map(|dir| dir.meta.real) else {
        return reply.status(client, 404, &[], &mut out).await;
    };
    let root = Root { given, real };
    let Some(requested) = ServedPath::of_request(request.path(), strip) else {
        return reply.status(client, 404, &[], &mut out).await;
    };
    let mut path = requested.clone();
    for try_files in &middleware.try_files {
        match try_candidates(try_files, &path, &root).await {
            Tried::Rewrite(to) => path = to,
            Tried::Status(status) => return reply.status(client, status, &[], &mut out).await,
            Tried::NoMatch => {}
        }
    }
    // Caddy's canonical URIs: a directory's index is served at the directory's path with a
    // trailing slash, a file at its path without one. As the request had it, and only when
    // the last segment was not rewritten (a rewrite chose its path).
    let canonical = path.with_slash(false).file_name() == requested.with_slash(false).file_name();
    let (file, served) = match find(&root, &path, server).await {
        Found::File { index, .. } if canonical && index != requested.ends_with_slash() => {
            return reply.redirect(client, request, index, &mut out).await;
        }
        Found::File { file, path: served, .. } => (file, served),
        Found::Missing => return reply.status(client, 404, &[], &mut out).await,
        Found::Forbidden => return reply.status(client, 403, &[], &mut out).await,
    };
    if !matches!(request.head().method, Method::Get | Method::Head) {
        return reply.status(client, 405, &[("Allow", "GET, HEAD")], &mut out).await;
    }
    let name = served.file_name().to_vec();
    let (file, encoding) = match sidecar(request, &root, &served, server).await {
        Some((sidecar, encoding)) => (sidecar, Some(encoding)),
        None => (file, None),
    };
    reply.file(client, request, &file, &name, encoding, &mut out).await
}

/// The root: `file_server`'s own, else the last `root` that matched, else the working
/// directory (Caddy's default; none if it cannot be read, so nothing is served).
fn root_of(server: &FileServer, middleware: &FileMiddleware<'_>) -> Option<PathBuf> {
    if let Some(root) = &server.root {
        return Some(root.clone());
    }
    let set = middleware.root.map(Path::to_path_buf);
    set.or_else(|| std::env::current_dir().ok())
}

/// The directory files are served from.
struct Root {
    /// As configured: what `hide` paths are written against.
    given: PathBuf,
    /// Where it leads now, symlinks resolved: every file served must be under it.
    real: PathBuf,
}

/// What `try_files` decided.
enum Tried {
    Rewrite(ServedPath),
    Status(u16),
    NoMatch,
}

/// The first candidate that exists: a file for a candidate without a trailing `/`, a
/// directory for one with it (Caddy's `first_exist`, which cleans `{path}` first, so `/sub/`
/// through `{path}` needs a file).
async fn try_candidates(try_files: &TryFiles, path: &ServedPath, root: &Root) -> Tried {
    let request_path = path.with_slash(false);
    for candidate in &try_files.candidates {
        let template = match candidate {
            TryCandidate::Status(status) => return Tried::Status(*status),
            TryCandidate::Path(template) => template,
        };
        let mut raw = Vec::with_capacity(template.len() + path.as_bytes().len());
        let mut parts = template.split("{path}").peekable();
        while let Some(part) = parts.next() {
            raw.extend_from_slice(part.as_bytes());
            if parts.peek().is_some() {
                raw.extend_from_slice(request_path.as_bytes());
            }
        }
        let Some(candidate) = ServedPath::decode(&raw) else { continue };
        let want_dir = candidate.ends_with_slash();
        let exists = match opened_under(root, &candidate, None).await {
            Ok(file) => (file.meta.is_dir && want_dir) || (file.meta.is_file && !want_dir),
            Err(_) => false,
        };
        if exists {
            return Tried::Rewrite(candidate);
        }
    }
    Tried::NoMatch
}

/// Opens what `path` names under `root`, if it is inside the root once symlinks are
/// resolved and, with `hide` given, not hidden. `try_files` passes none: as in Caddy, its
/// candidates see every file, and the file server then refuses a hidden one.
async fn opened_under(
    root: &Root,
    path: &ServedPath,
    hide: Option<&[String]>,
) -> Result<OpenFile, Found> {
    let target = path.under(&root.real);
    let hidden = hide.is_some_and(|hide| {
        path.is_hidden(hide)
            || path::is_hidden_file(&target, hide)
            || path::is_hidden_file(&path.under(&root.given), hide)
    });
    let hide = hide.unwrap_or(&[]);
    if hidden {
        return Err(Found::Missing);
    }
    let file = io::open(target).await.map_err(|e| match e.kind() {
        std::io::ErrorKind::PermissionDenied => Found::Forbidden,
        _ => Found::Missing,
    })?;
    if !file.meta.real.starts_with(&root.real) || path::is_hidden_file(&file.meta.real, hide) {
        tracing::debug!(path = %file.meta.real.display(), "refused: outside the root or hidden");
        return Err(Found::Missing);
    }
    Ok(file)
}

/// The file `path` leads to: itself, or a directory's index file.
async fn find(root: &Root, path: &ServedPath, server: &FileServer) -> Found {
    let file = match opened_under(root, path, Some(&server.hide)).await {
        Ok(file) => file,
        Err(found) => return found,
    };
    if file.meta.is_file {
        return Found::File { file, path: path.with_slash(false), index: false };
    }
    if !file.meta.is_dir {
        return Found::Missing;
    }
    for index in &server.index {
        let mut raw = path.with_slash(true).as_bytes().to_vec();
        raw.extend_from_slice(index.as_bytes());
        let Some(candidate) = ServedPath::decode(&raw) else { continue };
        if let Ok(file) = opened_under(root, &candidate, Some(&server.hide)).await {
            if file.meta.is_file {
                return Found::File { file, path: candidate, index: true };
            }
        }
    }
    Found::Missing
}

/// The precompressed sidecar to serve instead of `served`, if the client accepts one: the
/// highest `q` among the configured encodings, ties going to the configured order.
async fn sidecar(
    request: &Request,
    root: &Root,
    served: &ServedPath,
    server: &FileServer,
) -> Option<(OpenFile, Precompressed)> {
    if server.precompressed.is_empty() {
        return None;
    }
    let ranked =
        preferred(&accept_encoding(request.values("accept-encoding")), &server.precompressed);
    for encoding in ranked {
        let mut raw = served.as_bytes().to_vec();
        raw.extend_from_slice(encoding.suffix().as_bytes());
        let Some(path) = ServedPath::decode(&raw) else { continue };
        if let Ok(file) = opened_under(root, &path, Some(&server.hide)).await {
            if file.meta.is_file {
                return Some((file, encoding));
            }
        }
    }
    None
}

/// The configured encodings the client accepts (`q` above 0), highest `q` first, ties in the
/// configured order.
fn preferred(accepted: &[(String, u16)], configured: &[Precompressed]) -> Vec<Precompressed> {
    let weight = |e: Precompressed| {
        accepted.iter().find(|(name, _)| name.eq_ignore_ascii_case(e.coding())).map(|&(_, q)| q)
    };
    let mut ranked: Vec<(Precompressed, u16)> = configured
        .iter()
        .filter_map(|&e| weight(e).map(|q| (e, q)))
        .filter(|&(_, q)| q > 0)
        .collect();
    // A stable sort: equal weights keep the configured order.
    ranked.sort_by_key(|&(_, q)| std::cmp::Reverse(q));
    ranked.into_iter().map(|(e, _)| e).collect()
}

/// Every coding the `Accept-Encoding` values name, with its weight in thousandths.
fn accept_encoding<'a>(values: impl Iterator<Item = &'a [u8]>) -> Vec<(String, u16)> {
    let mut accepted = Vec::new();
    for value in values {
        let Ok(value) = std::str::from_utf8(value) else { continue };
        for item in value.split(',') {
            let mut params = item.split(';');
            let name = params.next().unwrap_or("").trim();
            if name.is_empty() {
                continue;
            }
            let q = params
                .filter_map(|p| p.trim().strip_prefix("q=").or_else(|| p.trim().strip_prefix("Q=")))
                .find_map(|q| q.trim().parse::<f32>().ok())
                .map_or(1000, |q| (q.clamp(0.0, 1.0) * 1000.0) as u16);
            accepted.push((name.to_string(), q));
        }
    }
    accepted
}

/// The header of one request's response, and how to send it.
struct Reply<'s> {
    close: bool,
    head_only: bool,
    shape: Shape<'s>,
    /// The route's `encode`, for whole files the client accepts compressed.
    encode: Option<&'s Encode>,
}

impl Reply<'_> {
    /// A bodiless answer: `status` with `fields` and `Content-Length: 0` (Caddy's error
    /// answers carry no body).
    async fn status<S: Stream>(
        &self,
        client: &S,
        status: u16,
        fields: &[(&str, &str)],
        out: &mut Vec<u8>,
    ) -> Served {
        self.start(status, out);
        for (name, value) in fields {
            push_field(out, name, value);
        }
        if status != 304 {
            push_field(out, "Content-Length", "0");
        }
        self.end_head(status, out);
        let complete = write_all(client, out).await.is_ok();
        Served { status: if complete { status } else { 0 }, bytes: 0, complete }
    }

    /// `308` to the request's path with a trailing slash added (`slash`) or removed, the
    /// query kept.
    async fn redirect<S: Stream>(
        &self,
        client: &S,
        request: &Request,
        slash: bool,
        out: &mut Vec<u8>,
    ) -> Served {
        let raw = request.path();
        let mut location = match slash {
            true => [raw, b"/"].concat(),
            false => raw.strip_suffix(b"/").unwrap_or(raw).to_vec(),
        };
        if !request.query().is_empty() {
            location.push(b'?');
            location.extend_from_slice(request.query());
        }
        location.retain(|&b| !b.is_ascii_control());
        let location = String::from_utf8_lossy(&location).into_owned();
        self.status(client, 308, &[("Location", &location)], out).await
    }

    /// The file itself: validators, preconditions, a range, then the body.
    async fn file<S: Stream>(
        &self,
        client: &S,
        request: &Request,
        file: &OpenFile,
        name: &[u8],
        encoding: Option<Precompressed>,
        out: &mut Vec<u8>,
    ) -> Served {
        let meta = &file.meta;
        let etag = conditional::etag(meta.modified, meta.len);
        let last_modified = conditional::http_date(meta.modified);
        let text =
            |field: &str| request.values(field).next().and_then(|v| std::str::from_utf8(v).ok());
        // A revalidation of the encoded file carries the encoded tag (`"…-gzip"`); it names
        // this file as much as the plain tag does (as in Caddy, whose `encode` strips it).
        let unsuffixed =
            self.encode.and_then(|encode| crate::http::encode::revalidated_tag(encode, request));
        let conditions = Conditions {
            if_match: text("if-match"),
            if_unmodified_since: text("if-unmodified-since"),
            if_none_match: unsuffixed.as_deref().or(text("if-none-match")),
            if_modified_since: text("if-modified-since"),
        };
        let vary = ("Vary", "Accept-Encoding");
        match conditional::evaluate(&conditions, &etag, meta.modified) {
            Precondition::NotModified => {
                return self.status(client, 304, &[("Etag", &etag), vary], out).await
            }
            Precondition::Failed => {
                let fields = [("Etag", etag.as_str()), ("Last-Modified", &last_modified), vary];
                return self.status(client, 412, &fields, out).await;
            }
            Precondition::Serve => {}
        }
        let range = match conditional::if_range_holds(text("if-range"), &etag, meta.modified) {
            true => conditional::range(text("range"), meta.len),
            false => Ranged::Whole,
        };
        let (status, start, len) = match range {
            Ranged::Whole => (200, 0, meta.len),
            Ranged::Part { start, len } => (206, start, len),
            Ranged::Unsatisfiable { overlap_failed } => {
                let all = format!("bytes */{}", meta.len);
                let fields: &[(&str, &str)] = match overlap_failed {
                    true => &[("Content-Range", &all), vary],
                    false => &[vary],
                };
                return self.status(client, 416, fields, out).await;
            }
        };
        // Decided before the head is written, so that an encoded head is written as such.
        let encoded = self.encoding(request, status, name, len, encoding);
        let reencoding = encoded.map(|(coding, _)| Reencoding { coding, chunked: true });
        self.start(status, out);
        match &reencoding {
            // A file head always has its `Vary: Accept-Encoding` (below), so the coding adds
            // only its name, where a sidecar's goes.
            Some(reencoding) => {
                for (field, value) in reencoding.added_fields(true) {
                    out.extend_from_slice(field);
                    out.extend_from_slice(b": ");
                    out.extend_from_slice(value);
                    out.extend_from_slice(b"\r\n");
                }
            }
            None => {
                push_field(out, "Accept-Ranges", "bytes");
                if let Some(encoding) = encoding {
                    push_field(out, "Content-Encoding", encoding.coding());
                }
                push_field(out, "Content-Length", &len.to_string());
            }
        }
        if status == 206 {
            let range = format!("bytes {start}-{}/{}", start + len - 1, meta.len);
            push_field(out, "Content-Range", &range);
        }
        if let Some(kind) = mime::content_type(name) {
            push_field(out, "Content-Type", kind);
        }
        out.extend_from_slice(b"Etag: ");
        let etag_start = out.len();
        out.extend_from_slice(etag.as_bytes());
        if let Some(reencoding) = &reencoding {
            reencoding.settle(b"Etag", out, etag_start);
        }
        out.extend_from_slice(b"\r\n");
        push_field(out, "Last-Modified", &last_modified);
        push_field(out, vary.0, vary.1);
        if let Some(reencoding) = &reencoding {
            reencoding.write_framing(out);
        }
        self.end_head(status, out);
        if let Some((coding, encode)) = encoded {
            let head = std::mem::take(out);
            return match send_file_encoded(client, head, file, len, coding, encode).await {
                Ok(bytes) => Served { status, bytes, complete: true },
                Err(e) => {
                    tracing::debug!(error = %e, "encoded file download ended early");
                    Served { status, bytes: 0, complete: false }
                }
            };
        }
        let len = if self.head_only { 0 } else { len };
        let head = std::mem::take(out);
        match send_file(client, head, file, start, len).await {
            Ok(()) => Served { status, bytes: len, complete: true },
            Err(e @ SendError::BeforeHead(_)) => {
                tracing::warn!(path = %file.meta.real.display(), error = %e, "file unreadable");
                let closing = Reply { close: true, ..*self };
                let answered = closing.status(client, 500, &[], out).await;
                Served { complete: false, ..answered }
            }
            Err(e) => {
                tracing::debug!(error = %e, "file download ended early");
                Served { status, bytes: 0, complete: false }
            }
        }
    }

    /// The coding `encode` gives a whole file (`200` to a `GET`, no sidecar), if the client
    /// accepts one and the file qualifies. HTTP/1.0 clients, which cannot read chunks, get the
    /// file as it is.
    fn encoding(
        &self,
        request: &Request,
        status: u16,
        name: &[u8],
        len: u64,
        sidecar: Option<Precompressed>,
    ) -> Option<(Coding, &Encode)> {
        let encode = self.encode?;
        let whole_get = status == 200 && !self.head_only && sidecar.is_none();
        if !whole_get || request.head().version == Version::Http10 {
            return None;
        }
        let coding = crate::http::encode::choose(request.values("accept-encoding"), false, encode)?;
        let facts = crate::http::encode::ResponseFacts {
            status,
            content_type: mime::content_type(name).map(str::as_bytes),
            already_encoded: false,
            no_transform: false,
            content_length: Some(len),
        };
        crate::http::encode::qualifies(encode, &facts).then_some((coding, encode))
    }

    fn start(&self, status: u16, out: &mut Vec<u8>) {
        out.clear();
        let reason = crate::http::response::reason_phrase(status);
        out.extend_from_slice(format!("HTTP/1.1 {status} {reason}\r\n").as_bytes());
    }

    fn end_head(&self, status: u16, out: &mut Vec<u8>) {
        if self.close {
            out.extend_from_slice(b"Connection: close\r\n");
        }
        out.extend_from_slice(b"\r\n");
        (self.shape)(out, matches!(status, 403 | 404 | 405 | 500));
    }
}

fn push_field(out: &mut Vec<u8>, name: &str, value: &str) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// How a download failed.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The first read failed: nothing was sent, the request can still be answered.
    #[error("reading the file: {0}")]
    BeforeHead(std::io::Error),
    /// The head (and maybe part of the body) went out: the connection must close.
    #[error("sending the file: {0}")]
    Midway(std::io::Error),
}

/// Writes `head`, then `len` bytes of `file` from `start`, one [`CHUNK`] at a time; the first
/// chunk goes out with the head, so a small file is one write.
pub async fn send_file<S: Stream>(
    client: &S,
    mut head: Vec<u8>,
    file: &OpenFile,
    start: u64,
    len: u64,
) -> Result<(), SendError> {
    let end = start + len;
    let mut pos = start;
    let mut buf = Vec::with_capacity(CHUNK);
    if len > 0 {
        let (read, filled) = file.read_at(buf, pos).await;
        buf = filled;
        let take = read.and_then(|n| took(n, end - pos)).map_err(SendError::BeforeHead)?;
        head.extend_from_slice(&buf[..take]);
        pos += take as u64;
    }
    write_all(client, &head).await.map_err(SendError::Midway)?;
    drop(head);
    while pos < end {
        let (read, filled) = file.read_at(buf, pos).await;
        buf = filled;
        let take = read.and_then(|n| took(n, end - pos)).map_err(SendError::Midway)?;
        write_all(client, &buf[..take]).await.map_err(SendError::Midway)?;
        pos += take as u64;
    }
    Ok(())
}

/// Writes `head`, then the whole of `file` (`len` bytes) compressed with `coding`, as chunks,
/// one [`CHUNK`] of the file at a time: each is compressed and flushed before the next read,
/// so memory per download is the read buffer and the encoder's window. Returns the encoded
/// bytes sent.
async fn send_file_encoded<S: Stream>(
    client: &S,
    head: Vec<u8>,
    file: &OpenFile,
    len: u64,
    coding: Coding,
    encode: &Encode,
) -> Result<u64, SendError> {
    let mut encoder = StreamEncoder::new(coding, encode).map_err(SendError::BeforeHead)?;
    write_all(client, &head).await.map_err(SendError::Midway)?;
    drop(head);
    let (mut pos, mut sent) = (0u64, 0u64);
    let mut buf = Vec::with_capacity(CHUNK);
    // Both reused for every piece: a download allocates nothing per chunk.
    let (mut encoded, mut frame) = (Vec::new(), Vec::new());
    while pos < len {
        let (read, filled) = file.read_at(buf, pos).await;
        buf = filled;
        let take = read.and_then(|n| took(n, len - pos)).map_err(SendError::Midway)?;
        pos += take as u64;
        encoded.clear();
        encoder.encode(&buf[..take], &mut encoded).map_err(SendError::Midway)?;
        if encoded.is_empty() {
            continue;
        }
        sent += encoded.len() as u64;
        frame.clear();
        frame_chunk(&encoded, &mut frame);
        write_all(client, &frame).await.map_err(SendError::Midway)?;
    }
    encoded.clear();
    encoder.finish(&mut encoded).map_err(SendError::Midway)?;
    sent += encoded.len() as u64;
    frame.clear();
    frame_chunk(&encoded, &mut frame);
    frame.extend_from_slice(LAST_CHUNK);
    write_all(client, &frame).await.map_err(SendError::Midway)?;
    Ok(sent)
}

/// Of `read` bytes, those still wanted; a file that ends early (it shrank while served) is an
/// error, since the length was already promised.
fn took(read: usize, left: u64) -> std::io::Result<usize> {
    if read == 0 {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    Ok(read.min(usize::try_from(left).unwrap_or(usize::MAX)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn preferred_for(header: &str, configured: &[Precompressed]) -> Vec<Precompressed> {
        preferred(&accept_encoding(std::iter::once(header.as_bytes())), configured)
    }

    #[test]
    fn sidecars_follow_q_then_the_configured_order() {
        use Precompressed::{Br, Gzip, Zstd};
        assert_eq!(preferred_for("gzip, br", &[Br, Gzip]), [Br, Gzip]);
        assert_eq!(preferred_for("gzip, br", &[Gzip, Br]), [Gzip, Br]);
        assert_eq!(preferred_for("br;q=0.5, gzip", &[Br, Gzip]), [Gzip, Br]);
        assert_eq!(preferred_for("br;q=0, gzip;Q=0.1", &[Br, Gzip]), [Gzip]);
        assert_eq!(preferred_for("identity", &[Br, Zstd, Gzip]), []);
        assert_eq!(preferred_for("GZIP , zstd;q=1.0", &[Br, Zstd, Gzip]), [Zstd, Gzip]);
        assert_eq!(preferred_for("", &[Br]), []);
    }
}
