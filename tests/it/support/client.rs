//! Clients that talk to the proxy byte for byte: [`ClientStream`] (the client leg: plaintext
//! TCP, or a verifying rustls client over TCP) and [`HttpConn`], which writes exactly the bytes
//! a test gives it and parses exactly what comes back, so framing bugs cannot hide behind a
//! forgiving HTTP library.
//!
//! Every read runs against a deadline; a test that waits too long fails with a message instead
//! of hanging.

use std::io::{self, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, StreamOwned};
use socket2::{Domain, Socket, Type};

use super::net::IO_TIMEOUT;
use super::payload::Hasher;

/// The client side of a connection to the proxy.
///
/// Tests never hold a bare `TcpStream` to the proxy: whatever they do with this (HTTP through
/// [`HttpConn`], WebSocket through tungstenite, raw bytes) runs unchanged over either leg.
pub enum ClientStream {
    Plain(TcpStream),
    /// Boxed: a rustls client connection is over a kilobyte, and tests hold hundreds of these.
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl ClientStream {
    pub fn connect_plain(addr: SocketAddr) -> ClientStream {
        let stream = tcp_connect(addr).unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
        ClientStream::Plain(stream)
    }

    /// A TLS connection to `addr` for `server_name`, verified against `config`'s roots. The
    /// handshake completes here, so a certificate or SNI problem fails with rustls's message.
    pub fn connect_tls(
        addr: SocketAddr,
        server_name: &str,
        config: &Arc<ClientConfig>,
    ) -> ClientStream {
        Self::try_connect_tls(addr, server_name, config)
            .unwrap_or_else(|e| panic!("TLS to {addr} as {server_name}: {e}"))
    }

    pub fn try_connect_tls(
        addr: SocketAddr,
        server_name: &str,
        config: &Arc<ClientConfig>,
    ) -> io::Result<ClientStream> {
        Self::try_connect_tls_after(addr, &[], server_name, config)
    }

    /// A plaintext connection whose first bytes are `prefix` (a PROXY protocol header).
    pub fn connect_plain_after(addr: SocketAddr, prefix: &[u8]) -> ClientStream {
        let mut stream = tcp_connect(addr).unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
        stream.write_all(prefix).unwrap_or_else(|e| panic!("send to {addr}: {e}"));
        ClientStream::Plain(stream)
    }

    /// [`ClientStream::try_connect_tls`] after sending `prefix` in the clear (a PROXY protocol
    /// header, which comes before the ClientHello).
    pub fn try_connect_tls_after(
        addr: SocketAddr,
        prefix: &[u8],
        server_name: &str,
        config: &Arc<ClientConfig>,
    ) -> io::Result<ClientStream> {
        let mut tcp = tcp_connect(addr)?;
        tcp.write_all(prefix)?;
        ClientStream::tls_over(tcp, server_name, config)
    }

    /// A TLS client over an established TCP connection (one bound to a chosen source address,
    /// say); the handshake completes here.
    pub fn tls_over(
        tcp: TcpStream,
        server_name: &str,
        config: &Arc<ClientConfig>,
    ) -> io::Result<ClientStream> {
        let name = ServerName::try_from(server_name.to_string())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let conn = ClientConnection::new(config.clone(), name).map_err(io::Error::other)?;
        let mut stream = StreamOwned::new(conn, tcp);
        while stream.conn.is_handshaking() {
            stream.conn.complete_io(&mut stream.sock)?;
        }
        Ok(ClientStream::Tls(Box::new(stream)))
    }

    /// The TCP connection underneath (for socket options, or to watch for the proxy's close).
    pub fn tcp(&self) -> &TcpStream {
        match self {
            ClientStream::Plain(s) => s,
            ClientStream::Tls(s) => &s.sock,
        }
    }

    /// The TLS session, on the TLS leg.
    pub fn tls(&self) -> Option<&ClientConnection> {
        match self {
            ClientStream::Plain(_) => None,
            ClientStream::Tls(s) => Some(&s.conn),
        }
    }

    /// The certificate chain the proxy presented, leaf first (empty on the plaintext leg).
    pub fn peer_chain(&self) -> Vec<CertificateDer<'static>> {
        self.tls().and_then(|c| c.peer_certificates()).unwrap_or_default().to_vec()
    }

    pub fn set_read_timeout(&self, timeout: Duration) {
        // A zero duration is an error for set_read_timeout; round up to the smallest wait.
        let timeout = timeout.max(Duration::from_millis(1));
        self.tcp().set_read_timeout(Some(timeout)).unwrap();
    }

    /// Half-close: the peer reads EOF, we can still read. Over TLS that is a close_notify
    /// (which ends only our direction in TLS 1.3) followed by the TCP half-close.
    pub fn shutdown_write(&mut self) -> io::Result<()> {
        match self {
            ClientStream::Plain(s) => s.shutdown(Shutdown::Write),
            ClientStream::Tls(s) => {
                s.conn.send_close_notify();
                s.flush()?;
                s.sock.shutdown(Shutdown::Write)
            }
        }
    }
}

/// A TCP connection to `addr` from `source` (a second loopback address such as 127.0.0.2, so
/// a client's address differs from a balancer's 127.0.0.1), with the usual test timeouts.
pub fn tcp_connect_from(source: IpAddr, addr: SocketAddr) -> io::Result<TcpStream> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.bind(&SocketAddr::new(source, 0).into())?;
    socket.connect_timeout(&addr.into(), Duration::from_secs(5))?;
    let stream: TcpStream = socket.into();
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    Ok(stream)
}

fn tcp_connect(addr: SocketAddr) -> io::Result<TcpStream> {
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    Ok(stream)
}

// EINTR is retried here rather than passed up: tungstenite and other callers treat it as a
// failure, and a signal landing on a test thread (seen once in CI, in a WebSocket handshake)
// must not fail a test.
impl Read for ClientStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let result = match self {
                ClientStream::Plain(s) => s.read(buf),
                ClientStream::Tls(s) => read_tls_plaintext(&mut s.conn, &mut s.sock, buf),
            };
            match result {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                done => return done,
            }
        }
    }
}

/// Read decrypted bytes. Unlike `StreamOwned::read`, this never writes first: after a write the
/// proxy refused (it answered a huge head with 431 and closed), rustls still holds the unsent
/// records, and flushing them before reading would fail and hide the answer, which a plaintext
/// client reads fine. `Ok(0)` is a close_notify; a close without one is `UnexpectedEof`.
fn read_tls_plaintext(
    conn: &mut ClientConnection,
    sock: &mut TcpStream,
    buf: &mut [u8],
) -> io::Result<usize> {
    loop {
        match conn.reader().read(buf) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            done => return done,
        }
        conn.read_tls(sock)?;
        conn.process_new_packets().map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    }
}

impl Write for ClientStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        loop {
            let result = match self {
                ClientStream::Plain(s) => s.write(buf),
                ClientStream::Tls(s) => s.write(buf),
            };
            match result {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                done => return done,
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        loop {
            let result = match self {
                ClientStream::Plain(s) => s.flush(),
                ClientStream::Tls(s) => s.flush(),
            };
            match result {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                done => return done,
            }
        }
    }
}

/// How a response body was delimited on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body by rule (HEAD, 1xx, 204, 304).
    None,
    Length(u64),
    Chunked,
    Close,
}

/// One parsed response.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    /// `1` for HTTP/1.1, `0` for HTTP/1.0.
    pub version: u8,
    pub headers: Vec<(String, String)>,
    /// The body, kept when shorter than [`KEEP_BODY`]; `body_len` and `body_sha256` always.
    pub body: Vec<u8>,
    pub body_len: u64,
    pub body_sha256: String,
    pub trailers: Vec<(String, String)>,
    pub framing: Framing,
    /// Chunk extensions seen, in order (for chunked bodies).
    pub chunk_extensions: Vec<String>,
}

/// Bodies larger than this are checked by length and checksum only.
pub const KEEP_BODY: u64 = 64 << 20;

impl Response {
    /// First value of header `name` (case-insensitive).
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

    pub fn trailer(&self, name: &str) -> Option<&str> {
        self.trailers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// What a read that did not yield a complete response ran into.
#[derive(Debug)]
pub enum ReadError {
    /// The peer closed (EOF or reset) before a complete response; `partial` is what came.
    Closed {
        partial: Vec<u8>,
    },
    TimedOut {
        partial: Vec<u8>,
    },
    Malformed(String),
}

/// A client connection speaking HTTP/1.1 as raw bytes.
pub struct HttpConn {
    pub stream: ClientStream,
    /// Bytes read but not yet consumed (the start of the next response).
    buf: Vec<u8>,
    pub deadline_after: Duration,
}

impl HttpConn {
    pub fn new(stream: ClientStream) -> HttpConn {
        HttpConn { stream, buf: Vec::new(), deadline_after: IO_TIMEOUT }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap_or_else(|e| panic!("write to proxy: {e}"));
    }

    /// Write, tolerating a proxy that already closed the connection (bad-input tests send
    /// bytes the proxy may refuse before reading them all).
    pub fn send_lenient(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes);
    }

    /// `GET path` with `Host: host` on this connection, returning the final response.
    pub fn get(&mut self, host: &str, path: &str) -> Response {
        self.send(format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes());
        self.response("GET")
    }

    /// Read the next response (interim 1xx included: the caller sees them one by one).
    pub fn response(&mut self, method: &str) -> Response {
        self.try_response(method).unwrap_or_else(|e| panic!("reading a response: {}", describe(&e)))
    }

    /// Read the next non-1xx response, returning the 1xx statuses seen before it.
    pub fn final_response(&mut self, method: &str) -> (Vec<u16>, Response) {
        let mut interim = Vec::new();
        loop {
            let resp = self.response(method);
            if (100..200).contains(&resp.status) && resp.status != 101 {
                interim.push(resp.status);
                continue;
            }
            return (interim, resp);
        }
    }

    pub fn try_response(&mut self, method: &str) -> Result<Response, ReadError> {
        let deadline = Instant::now() + self.deadline_after;
        let head_len = loop {
            if let Some(end) = find(&self.buf, b"\r\n\r\n") {
                break end + 4;
            }
            self.fill(deadline)?;
        };
        let mut headers = [httparse::EMPTY_HEADER; 128];
        let mut parsed = httparse::Response::new(&mut headers);
        match parsed.parse(&self.buf[..head_len]) {
            Ok(httparse::Status::Complete(_)) => {}
            Ok(httparse::Status::Partial) => {
                return Err(ReadError::Malformed("partial head".into()))
            }
            Err(e) => {
                return Err(ReadError::Malformed(format!(
                    "{e}: {:?}",
                    String::from_utf8_lossy(&self.buf[..head_len])
                )))
            }
        }
        let status = parsed.code.unwrap_or(0);
        let version = parsed.version.unwrap_or(1);
        let headers: Vec<(String, String)> = parsed
            .headers
            .iter()
            .map(|h| (h.name.to_string(), String::from_utf8_lossy(h.value).into_owned()))
            .collect();
        self.buf.drain(..head_len);

        let header = |name: &str| {
            headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone())
        };
        let no_body = method.eq_ignore_ascii_case("HEAD")
            || (100..200).contains(&status)
            || status == 204
            || status == 304;
        let framing = if no_body {
            Framing::None
        } else if header("transfer-encoding")
            .is_some_and(|te| te.to_ascii_lowercase().contains("chunked"))
        {
            Framing::Chunked
        } else if let Some(len) = header("content-length") {
            Framing::Length(
                len.trim()
                    .parse()
                    .map_err(|_| ReadError::Malformed(format!("content-length {len:?}")))?,
            )
        } else {
            Framing::Close
        };

        let mut resp = Response {
            status,
            version,
            headers,
            body: Vec::new(),
            body_len: 0,
            body_sha256: String::new(),
            trailers: Vec::new(),
            framing,
            chunk_extensions: Vec::new(),
        };
        let mut hasher = Hasher::default();
        match framing {
            Framing::None => {}
            Framing::Length(len) => {
                self.read_exact_into(len, deadline, &mut hasher, &mut resp.body)?
            }
            Framing::Chunked => self.read_chunked(deadline, &mut hasher, &mut resp)?,
            Framing::Close => loop {
                if !self.buf.is_empty() {
                    let chunk = std::mem::take(&mut self.buf);
                    keep(&mut resp.body, &chunk, &mut hasher);
                }
                match self.fill(deadline) {
                    Ok(()) => {}
                    Err(ReadError::Closed { .. }) => break,
                    Err(e) => return Err(e),
                }
            },
        }
        resp.body_len = hasher.len;
        resp.body_sha256 = hasher.finish();
        Ok(resp)
    }

    fn read_exact_into(
        &mut self,
        mut len: u64,
        deadline: Instant,
        hasher: &mut Hasher,
        body: &mut Vec<u8>,
    ) -> Result<(), ReadError> {
        while len > 0 {
            if self.buf.is_empty() {
                self.fill(deadline)?;
            }
            let n = (self.buf.len() as u64).min(len) as usize;
            keep(body, &self.buf[..n], hasher);
            self.buf.drain(..n);
            len -= n as u64;
        }
        Ok(())
    }

    fn line(&mut self, deadline: Instant) -> Result<String, ReadError> {
        loop {
            if let Some(end) = find(&self.buf, b"\r\n") {
                let line = String::from_utf8_lossy(&self.buf[..end]).into_owned();
                self.buf.drain(..end + 2);
                return Ok(line);
            }
            self.fill(deadline)?;
        }
    }

    fn read_chunked(
        &mut self,
        deadline: Instant,
        hasher: &mut Hasher,
        resp: &mut Response,
    ) -> Result<(), ReadError> {
        loop {
            let line = self.line(deadline)?;
            let (size, ext) = match line.split_once(';') {
                Some((s, e)) => (s, Some(e)),
                None => (line.as_str(), None),
            };
            let size = u64::from_str_radix(size.trim(), 16)
                .map_err(|_| ReadError::Malformed(format!("chunk size line {line:?}")))?;
            if let Some(ext) = ext {
                resp.chunk_extensions.push(ext.to_string());
            }
            if size == 0 {
                break;
            }
            self.read_exact_into(size, deadline, hasher, &mut resp.body)?;
            let crlf = self.line(deadline)?;
            if !crlf.is_empty() {
                return Err(ReadError::Malformed(format!(
                    "chunk data not followed by CRLF: {crlf:?}"
                )));
            }
        }
        loop {
            let line = self.line(deadline)?;
            if line.is_empty() {
                return Ok(());
            }
            let (name, value) = line
                .split_once(':')
                .ok_or_else(|| ReadError::Malformed(format!("trailer {line:?}")))?;
            resp.trailers.push((name.trim().to_string(), value.trim().to_string()));
        }
    }

    /// Read more bytes into the buffer, or report why not.
    fn fill(&mut self, deadline: Instant) -> Result<(), ReadError> {
        let now = Instant::now();
        if now >= deadline {
            return Err(ReadError::TimedOut { partial: std::mem::take(&mut self.buf) });
        }
        self.stream.set_read_timeout(deadline - now);
        let mut chunk = [0u8; 64 * 1024];
        match self.stream.read(&mut chunk) {
            Ok(0) => Err(ReadError::Closed { partial: std::mem::take(&mut self.buf) }),
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(())
            }
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                Err(ReadError::TimedOut { partial: std::mem::take(&mut self.buf) })
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(()),
            Err(_) => Err(ReadError::Closed { partial: std::mem::take(&mut self.buf) }),
        }
    }

    /// Wait until the proxy closes this connection; returns any bytes that came first.
    /// Panics if the connection is still open after `within`.
    pub fn expect_closed(&mut self, within: Duration) -> Vec<u8> {
        let deadline = Instant::now() + within;
        let mut extra = std::mem::take(&mut self.buf);
        loop {
            match self.fill(deadline) {
                Ok(()) => extra.append(&mut self.buf),
                Err(ReadError::Closed { .. }) => return extra,
                Err(ReadError::TimedOut { .. }) => panic!(
                    "connection still open {within:?} later; received meanwhile: {:?}",
                    String::from_utf8_lossy(&extra)
                ),
                Err(ReadError::Malformed(m)) => panic!("{m}"),
            }
        }
    }

    /// Whether the proxy closed the connection within `within` (no panic).
    pub fn closed_within(&mut self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        loop {
            match self.fill(deadline) {
                Ok(()) => self.buf.clear(),
                Err(ReadError::Closed { .. }) => return true,
                Err(_) => return false,
            }
        }
    }

    /// Read raw bytes until `total` have arrived or the connection closes.
    pub fn read_raw(&mut self, total: usize, within: Duration) -> Vec<u8> {
        let deadline = Instant::now() + within;
        while self.buf.len() < total {
            match self.fill(deadline) {
                Ok(()) => {}
                Err(ReadError::Closed { partial }) | Err(ReadError::TimedOut { partial }) => {
                    self.buf = partial;
                    break;
                }
                Err(ReadError::Malformed(m)) => panic!("{m}"),
            }
        }
        std::mem::take(&mut self.buf)
    }
}

fn keep(body: &mut Vec<u8>, bytes: &[u8], hasher: &mut Hasher) {
    if hasher.len + (bytes.len() as u64) <= KEEP_BODY {
        body.extend_from_slice(bytes);
    }
    hasher.update(bytes);
}

pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

pub fn describe(e: &ReadError) -> String {
    match e {
        ReadError::Closed { partial } => {
            format!(
                "connection closed after {:?}",
                String::from_utf8_lossy(&partial[..partial.len().min(400)])
            )
        }
        ReadError::TimedOut { partial } => {
            format!(
                "timed out after {:?}",
                String::from_utf8_lossy(&partial[..partial.len().min(400)])
            )
        }
        ReadError::Malformed(m) => format!("malformed response: {m}"),
    }
}
