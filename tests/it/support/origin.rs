//! [`Origin`]: a real HTTP/1.1 backend on loopback that records every request it receives and
//! answers according to the request path.
//!
//! It parses requests itself (httparse plus its own chunked decoder) so that what it records is
//! what arrived on the wire: tests use the log to prove routing, header rewriting, body bytes,
//! and that no smuggled request ever reached a backend.
//!
//! Paths it serves (the query string is ignored except where noted):
//!
//! | path | answer |
//! |---|---|
//! | `/bytes/N` | 200, `Content-Length: N`, N pattern bytes ([`payload::fill`]) |
//! | `/chunked/N?piece=K` | 200, chunked, N pattern bytes in K-byte chunks with extensions and an `X-Body-Sha256` trailer |
//! | `/close-delimited/N` | 200, no length, N pattern bytes, then close |
//! | `/status/S` | status S; no body for 204/304, a short text body otherwise |
//! | `/sha256` | 200, text `"<len> <sha256>"` of the request body |
//! | `/hang` | reads the request, never answers (until the origin is dropped) |
//! | `/hang-if/NAME` | as `/hang` on the origin named NAME, 200 on every other: one health URI that only one upstream fails, slowly |
//! | `/close-mid-body/N` | 200, `Content-Length: N`, N/2 bytes, then close |
//! | `/chunked-truncated` | 200, chunked, two chunks, then close without the last chunk |
//! | `/drip?n=N&ms=M` | 200, chunked, N one-byte chunks M ms apart |
//! | `/hop-headers` | 200 with every kind of hop-by-hop response header |
//! | `/header-down` | 200 with `X-Origin-Secret` and `X-Down-Set` headers for header_down tests |
//! | `/then-close` | 200 with a length (and no `Connection: close`), then closes 50 ms later, as an upstream's idle timeout would |
//! | anything else | 200, the request body echoed, or `"<origin> <method> <target>"` if empty |
//!
//! Every response carries `X-Origin: <name>`. `Expect: 100-continue` is answered with
//! `100 Continue` before the body is read.
//!
//! It listens on TCP loopback ([`Origin::start`], [`Origin::start_on`]) or on a unix socket
//! ([`Origin::start_unix`]); [`Origin::upstream`] names it in a Caddyfile either way.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::client::find;
use super::net::IO_TIMEOUT;
use super::payload::{self, Hasher};
use super::sock::{Conn, Listener};

/// Request bodies up to this size are recorded whole; larger ones by length and checksum.
const RECORD_BODY: u64 = 1 << 20;

/// One request as the origin received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub target: String,
    /// `1` for HTTP/1.1, `0` for HTTP/1.0.
    pub version: u8,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub body_len: u64,
    pub body_sha256: String,
    pub chunked: bool,
    pub chunk_extensions: Vec<String>,
    pub trailers: Vec<(String, String)>,
    /// Which accepted connection (0, 1, ...) carried it: shows upstream keep-alive reuse.
    pub conn: usize,
    /// `0.0.0.0:0` when the origin listens on a unix socket.
    pub peer: SocketAddr,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn headers_named(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }
}

struct Shared {
    name: String,
    log: Mutex<Vec<Recorded>>,
    stop: AtomicBool,
    conns: AtomicUsize,
    /// Connections accepted and not yet closed by either side.
    open: AtomicUsize,
}

/// A running origin. Dropping it stops accepting and releases hanging handlers (and removes
/// its unix socket).
pub struct Origin {
    /// The TCP address (`0.0.0.0:0` for an origin on a unix socket: see [`Origin::upstream`]).
    pub addr: SocketAddr,
    upstream: String,
    shared: Arc<Shared>,
    acceptors: Vec<JoinHandle<()>>,
}

impl Origin {
    /// An origin on `127.0.0.1:<ephemeral>`.
    pub fn start(name: &str) -> Origin {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        Origin::serve(name, vec![Listener::tcp(listener)])
    }

    /// An origin on `127.0.0.1:port` (a port reserved earlier, for an upstream that comes up
    /// late).
    pub fn start_on(name: &str, port: u16) -> Origin {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, port)).unwrap();
        Origin::serve(name, vec![Listener::tcp(listener)])
    }

    /// An origin on a unix socket at `path`, which must not exist yet.
    pub fn start_unix(name: &str, path: &Path) -> Origin {
        Origin::serve(name, vec![Listener::unix(path)])
    }

    /// An origin on `127.0.0.1:P` and, when that port is free there too, `[::1]:P`, so that
    /// an upstream written as `localhost:P` (as in the seed Caddyfile) reaches it whichever
    /// address family the proxy dials first.
    pub fn start_localhost(name: &str) -> Origin {
        let v4 = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = v4.local_addr().unwrap().port();
        let mut listeners = vec![Listener::tcp(v4)];
        if let Ok(v6) = TcpListener::bind((Ipv6Addr::LOCALHOST, port)) {
            listeners.push(Listener::tcp(v6));
        }
        Origin::serve(name, listeners)
    }

    fn serve(name: &str, listeners: Vec<Listener>) -> Origin {
        let addr = listeners[0].local_addr();
        let upstream = listeners[0].upstream();
        let shared = Arc::new(Shared {
            name: name.to_string(),
            log: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
            conns: AtomicUsize::new(0),
            open: AtomicUsize::new(0),
        });
        let acceptors = listeners
            .into_iter()
            .map(|listener| {
                let shared = shared.clone();
                thread::Builder::new()
                    .name(format!("origin-{name}"))
                    .spawn(move || accept_loop(listener, shared))
                    .unwrap()
            })
            .collect();
        Origin { addr, upstream, shared, acceptors }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// This origin as a Caddyfile upstream: `127.0.0.1:P`, or `unix/PATH`.
    pub fn upstream(&self) -> &str {
        &self.upstream
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.log.lock().unwrap().clone()
    }

    /// Requests whose path is `path`.
    pub fn requests_to(&self, path: &str) -> Vec<Recorded> {
        self.requests().into_iter().filter(|r| r.path() == path).collect()
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.shared.conns.load(Ordering::SeqCst)
    }

    /// Connections open now (accepted, and neither side has closed them).
    pub fn open_connections(&self) -> usize {
        self.shared.open.load(Ordering::SeqCst)
    }

    /// Wait until at least `n` requests were recorded (requests are logged once their body is
    /// read, which may be just after the client saw the response).
    pub fn wait_for_requests(&self, n: usize, within: Duration) -> Vec<Recorded> {
        let deadline = Instant::now() + within;
        loop {
            let log = self.requests();
            if log.len() >= n || Instant::now() >= deadline {
                return log;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        for acceptor in self.acceptors.drain(..) {
            let _ = acceptor.join();
        }
    }
}

fn accept_loop(listener: Listener, shared: Arc<Shared>) {
    // Nonblocking accept polled against the stop flag, so that Drop can join this thread.
    listener.set_nonblocking(true).unwrap();
    while !shared.stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, peer)) => {
                let conn = shared.conns.fetch_add(1, Ordering::SeqCst);
                shared.open.fetch_add(1, Ordering::SeqCst);
                let shared = shared.clone();
                let _ = thread::Builder::new()
                    .name("origin-conn".into())
                    .stack_size(256 * 1024)
                    .spawn(move || {
                        let _ = serve_connection(stream, peer, conn, &shared);
                        shared.open.fetch_sub(1, Ordering::SeqCst);
                    });
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                thread::sleep(Duration::from_millis(5))
            }
            Err(_) => thread::sleep(Duration::from_millis(5)),
        }
    }
}

/// A buffered reader over the connection with a per-read timeout.
struct Wire {
    stream: Conn,
    buf: Vec<u8>,
}

impl Wire {
    fn fill(&mut self) -> io::Result<bool> {
        let mut chunk = [0u8; 64 * 1024];
        let n = self.stream.read(&mut chunk)?;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n > 0)
    }

    fn line(&mut self) -> io::Result<String> {
        loop {
            if let Some(end) = find(&self.buf, b"\r\n") {
                let line = String::from_utf8_lossy(&self.buf[..end]).into_owned();
                self.buf.drain(..end + 2);
                return Ok(line);
            }
            if !self.fill()? {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
    }

    fn body_bytes(
        &mut self,
        mut len: u64,
        hasher: &mut Hasher,
        body: &mut Vec<u8>,
    ) -> io::Result<()> {
        while len > 0 {
            if self.buf.is_empty() && !self.fill()? {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            let n = (self.buf.len() as u64).min(len) as usize;
            if hasher.len + n as u64 <= RECORD_BODY {
                body.extend_from_slice(&self.buf[..n]);
            }
            hasher.update(&self.buf[..n]);
            self.buf.drain(..n);
            len -= n as u64;
        }
        Ok(())
    }
}

fn serve_connection(
    stream: Conn,
    peer: SocketAddr,
    conn: usize,
    shared: &Shared,
) -> io::Result<()> {
    stream.prepare(IO_TIMEOUT)?;
    let mut wire = Wire { stream, buf: Vec::new() };
    loop {
        // Head.
        let head_len = loop {
            if let Some(end) = find(&wire.buf, b"\r\n\r\n") {
                break end + 4;
            }
            if !wire.fill()? {
                return Ok(());
            }
        };
        let mut header_buf = [httparse::EMPTY_HEADER; 128];
        let mut req = httparse::Request::new(&mut header_buf);
        if req.parse(&wire.buf[..head_len]).is_err() {
            wire.stream.write_all(
                b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            )?;
            return Ok(());
        }
        let mut rec = Recorded {
            method: req.method.unwrap_or("").to_string(),
            target: req.path.unwrap_or("").to_string(),
            version: req.version.unwrap_or(1),
            headers: req
                .headers
                .iter()
                .map(|h| (h.name.to_string(), String::from_utf8_lossy(h.value).into_owned()))
                .collect(),
            body: Vec::new(),
            body_len: 0,
            body_sha256: String::new(),
            chunked: false,
            chunk_extensions: Vec::new(),
            trailers: Vec::new(),
            conn,
            peer,
        };
        wire.buf.drain(..head_len);

        if rec.header("expect").is_some_and(|v| v.eq_ignore_ascii_case("100-continue")) {
            wire.stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
        }

        // Body.
        let mut hasher = Hasher::default();
        let mut body = Vec::new();
        let te = rec.header("transfer-encoding").map(|v| v.to_ascii_lowercase());
        if te.as_deref().is_some_and(|te| te.contains("chunked")) {
            rec.chunked = true;
            loop {
                let line = wire.line()?;
                let (size, ext) = match line.split_once(';') {
                    Some((s, e)) => (s, Some(e.to_string())),
                    None => (line.as_str(), None),
                };
                let size = u64::from_str_radix(size.trim(), 16)
                    .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "chunk size"))?;
                rec.chunk_extensions.extend(ext);
                if size == 0 {
                    break;
                }
                wire.body_bytes(size, &mut hasher, &mut body)?;
                if !wire.line()?.is_empty() {
                    return Err(io::Error::new(io::ErrorKind::InvalidData, "chunk CRLF"));
                }
            }
            loop {
                let line = wire.line()?;
                if line.is_empty() {
                    break;
                }
                if let Some((n, v)) = line.split_once(':') {
                    rec.trailers.push((n.trim().to_string(), v.trim().to_string()));
                }
            }
        } else if let Some(len) = rec.header("content-length") {
            let len: u64 = len
                .trim()
                .parse()
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "length"))?;
            wire.body_bytes(len, &mut hasher, &mut body)?;
        }
        rec.body = body;
        rec.body_len = hasher.len;
        rec.body_sha256 = hasher.finish();

        let close_requested =
            rec.header("connection").is_some_and(|v| v.to_ascii_lowercase().contains("close"))
                || rec.version == 0;
        shared.log.lock().unwrap().push(rec.clone());

        let keep_going = respond(&mut wire.stream, &rec, shared)?;
        if !keep_going || close_requested {
            let _ = wire.stream.shutdown(Shutdown::Both);
            return Ok(());
        }
    }
}

/// Query parameter `key` as a number.
fn query_num(target: &str, key: &str, default: u64) -> u64 {
    target
        .split_once('?')
        .map(|(_, q)| q)
        .unwrap_or("")
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(default)
}

fn path_num(path: &str, prefix: &str) -> Option<u64> {
    path.strip_prefix(prefix).and_then(|n| n.parse().ok())
}

/// Write `len` pattern bytes in bounded pieces.
fn write_pattern(stream: &mut Conn, len: u64) -> io::Result<()> {
    let mut buf = vec![0u8; 256 * 1024];
    let mut offset = 0;
    while offset < len {
        let n = (buf.len() as u64).min(len - offset) as usize;
        payload::fill(offset, &mut buf[..n]);
        stream.write_all(&buf[..n])?;
        offset += n as u64;
    }
    Ok(())
}

/// Answer one request. Returns whether the connection may carry another request.
fn respond(stream: &mut Conn, rec: &Recorded, shared: &Shared) -> io::Result<bool> {
    let name = &shared.name;
    let head_only = rec.method == "HEAD";
    let path = rec.path().to_string();
    let simple = |status: u16, reason: &str, extra: &str, body: &[u8]| -> Vec<u8> {
        let mut out = format!(
            "HTTP/1.1 {status} {reason}\r\nX-Origin: {name}\r\nContent-Length: {}\r\n{extra}\r\n",
            body.len()
        )
        .into_bytes();
        if !head_only {
            out.extend_from_slice(body);
        }
        out
    };

    if let Some(len) = path_num(&path, "/bytes/") {
        stream.write_all(
            format!("HTTP/1.1 200 OK\r\nX-Origin: {name}\r\nContent-Type: application/octet-stream\r\nContent-Length: {len}\r\n\r\n")
                .as_bytes(),
        )?;
        if !head_only {
            write_pattern(stream, len)?;
        }
        return Ok(true);
    }
    if let Some(len) = path_num(&path, "/chunked/") {
        let piece = query_num(&rec.target, "piece", 8192).max(1);
        stream.write_all(
            format!("HTTP/1.1 200 OK\r\nX-Origin: {name}\r\nTransfer-Encoding: chunked\r\nTrailer: X-Body-Sha256\r\n\r\n")
                .as_bytes(),
        )?;
        if head_only {
            return Ok(true);
        }
        let mut offset = 0u64;
        let mut index = 0;
        let mut chunk = vec![0u8; piece as usize];
        while offset < len {
            let n = piece.min(len - offset) as usize;
            payload::fill(offset, &mut chunk[..n]);
            let ext = if index % 2 == 0 { format!(";piece={index}") } else { String::new() };
            let mut out = format!("{n:x}{ext}\r\n").into_bytes();
            out.extend_from_slice(&chunk[..n]);
            out.extend_from_slice(b"\r\n");
            stream.write_all(&out)?;
            offset += n as u64;
            index += 1;
        }
        let sum = payload::pattern_sha256(len);
        stream.write_all(format!("0\r\nX-Body-Sha256: {sum}\r\n\r\n").as_bytes())?;
        return Ok(true);
    }
    if let Some(len) = path_num(&path, "/close-delimited/") {
        stream.write_all(
            format!("HTTP/1.1 200 OK\r\nX-Origin: {name}\r\nConnection: close\r\n\r\n").as_bytes(),
        )?;
        if !head_only {
            write_pattern(stream, len)?;
        }
        return Ok(false);
    }
    if let Some(status) = path_num(&path, "/status/") {
        let out = match status {
            204 => format!("HTTP/1.1 204 No Content\r\nX-Origin: {name}\r\n\r\n").into_bytes(),
            304 => format!("HTTP/1.1 304 Not Modified\r\nX-Origin: {name}\r\nETag: \"v1\"\r\n\r\n")
                .into_bytes(),
            s => simple(s as u16, "Status", "", format!("status {s}").as_bytes()),
        };
        stream.write_all(&out)?;
        return Ok(true);
    }
    match path.as_str() {
        "/sha256" => {
            let body = format!("{} {}", rec.body_len, rec.body_sha256);
            stream.write_all(&simple(200, "OK", "", body.as_bytes()))?;
            Ok(true)
        }
        p if p.strip_prefix("/hang-if/").is_some_and(|who| who != shared.name) => {
            stream.write_all(&simple(200, "OK", "", b"healthy"))?;
            Ok(true)
        }
        p if p == "/hang" || p.starts_with("/hang-if/") => {
            // Hold the connection open without answering, bounded so that the thread ends.
            let deadline = Instant::now() + Duration::from_secs(60);
            while !shared.stop.load(Ordering::SeqCst) && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(20));
            }
            Ok(false)
        }
        "/chunked-truncated" => {
            stream.write_all(
                format!("HTTP/1.1 200 OK\r\nX-Origin: {name}\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n")
                    .as_bytes(),
            )?;
            thread::sleep(Duration::from_millis(100));
            Ok(false)
        }
        "/drip" => {
            let n = query_num(&rec.target, "n", 10);
            let ms = query_num(&rec.target, "ms", 50);
            stream.write_all(
                format!(
                    "HTTP/1.1 200 OK\r\nX-Origin: {name}\r\nTransfer-Encoding: chunked\r\n\r\n"
                )
                .as_bytes(),
            )?;
            for i in 0..n {
                thread::sleep(Duration::from_millis(ms));
                stream.write_all(
                    format!("1\r\n{}\r\n", (b'a' + (i % 26) as u8) as char).as_bytes(),
                )?;
            }
            stream.write_all(b"0\r\n\r\n")?;
            Ok(true)
        }
        "/hop-headers" => {
            let extra =
                "Connection: X-Resp-Hop\r\nX-Resp-Hop: secret\r\nKeep-Alive: timeout=99\r\n\
                         Proxy-Connection: keep-alive\r\nUpgrade: h2c\r\nX-End-To-End: kept\r\n";
            stream.write_all(&simple(200, "OK", extra, b"hop"))?;
            Ok(true)
        }
        "/header-down" => {
            let extra =
                "X-Origin-Secret: s3cr3t\r\nX-Down-Set: from-origin\r\nX-Down-Add: from-origin\r\n";
            stream.write_all(&simple(200, "OK", extra, b"down"))?;
            Ok(true)
        }
        "/then-close" => {
            let body = format!("{name} {} {}", rec.method, rec.target);
            stream.write_all(&simple(200, "OK", "", body.as_bytes()))?;
            thread::sleep(Duration::from_millis(50));
            Ok(false)
        }
        p if p.starts_with("/close-mid-body/") => {
            let len = path_num(p, "/close-mid-body/").unwrap_or(1 << 20);
            stream.write_all(
                format!("HTTP/1.1 200 OK\r\nX-Origin: {name}\r\nContent-Length: {len}\r\n\r\n")
                    .as_bytes(),
            )?;
            write_pattern(stream, len / 2)?;
            thread::sleep(Duration::from_millis(50));
            Ok(false)
        }
        _ => {
            let body = if rec.body_len > 0 {
                rec.body.clone()
            } else {
                format!("{name} {} {}", rec.method, rec.target).into_bytes()
            };
            let extra = format!("X-Request-Target: {}\r\n", rec.target);
            stream.write_all(&simple(200, "OK", &extra, &body))?;
            Ok(true)
        }
    }
}
