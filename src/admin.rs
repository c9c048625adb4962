//! The admin endpoint (Caddy's admin API, a subset): `GET /metrics`, `POST /load`,
//! `POST /stop`, `GET /reverse_proxy/upstreams`, served by a control-plane thread, never by a
//! worker.
//!
//! Traffic here is a scrape every few seconds and the odd reload, so the server is plain
//! blocking std I/O: one accept thread and a short-lived thread per connection, each request
//! answered and the connection closed. Every read has a deadline and bodies have a size limit,
//! so a stuck or hostile local client holds one thread for at most [`limits::ADMIN_IO_TIMEOUT`].
//!
//! The DNS-rebinding guard is Caddy's: a request whose `Host` is not the admin address (or
//! `localhost`, `127.0.0.1`, `[::1]` with the admin port) gets 403, and so does a request whose
//! `Origin` names any other host. A web page the operator visits can therefore neither load a
//! config nor read the metrics through the browser.
//!
//! What the endpoints do is the [`AdminApi`] implementation's business (the running server);
//! this module owns the HTTP side: routing, the guard, status codes and bodies.

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use crate::config::limits;
use crate::http::head::{parse_request, Method, RequestBody};
use crate::metrics::export::CONTENT_TYPE as METRICS_CONTENT_TYPE;

/// What the admin endpoint asks of the running proxy.
pub trait AdminApi: Send + Sync + 'static {
    /// The Prometheus exposition.
    fn metrics(&self) -> String;
    /// Validate and apply a whole Caddyfile; `Err` carries the `file:line - message` text.
    fn load(&self, caddyfile: &[u8]) -> Result<(), String>;
    /// Begin a graceful stop (after the response is sent).
    fn stop(&self);
    /// `GET /reverse_proxy/upstreams`: a JSON array.
    fn upstreams(&self) -> String;
}

/// Where the admin endpoint listens, resolved from the `admin` option.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminAddress {
    /// The address as configured (`localhost:2019`), which `Host` may name.
    pub configured: String,
    /// What to bind: loopback unless the option names another interface.
    pub bind: SocketAddr,
}

impl AdminAddress {
    /// `host:port`, `:port`, `[v6]:port`. A missing or `localhost` host binds 127.0.0.1: the
    /// admin endpoint is reachable from other hosts only when the option says so.
    pub fn parse(text: &str) -> Result<AdminAddress, String> {
        let (host, port) = text
            .rsplit_once(':')
            .ok_or_else(|| format!("admin address '{text}' has no port (e.g. localhost:2019)"))?;
        let port: u16 =
            port.parse().map_err(|_| format!("admin address '{text}': invalid port '{port}'"))?;
        let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
        let ip = match host {
            "" | "localhost" => IpAddr::V4(Ipv4Addr::LOCALHOST),
            literal => match literal.parse::<IpAddr>() {
                Ok(ip) => ip,
                Err(_) => (literal, port)
                    .to_socket_addrs()
                    .ok()
                    .and_then(|mut addrs| addrs.next())
                    .map(|a| a.ip())
                    .ok_or_else(|| format!("admin address '{text}': cannot resolve '{literal}'"))?,
            },
        };
        Ok(AdminAddress { configured: text.to_string(), bind: SocketAddr::new(ip, port) })
    }
}

/// The client side, for `ringproxy reload` and `ringproxy stop`.
pub mod client {
    use std::io::{Read, Write};
    use std::net::TcpStream;

    use super::AdminAddress;
    use crate::config::limits;

    /// `POST path` to the admin endpoint at `address` (the `admin` option's form), with a
    /// Caddyfile body for `/load`. `Err` carries what the endpoint said, or why it could not
    /// be reached.
    pub fn post(address: &str, path: &str, caddyfile: Option<&[u8]>) -> Result<(), String> {
        let admin = AdminAddress::parse(address)?;
        let mut conn = TcpStream::connect_timeout(&admin.bind, limits::ADMIN_IO_TIMEOUT)
            .map_err(|e| format!("cannot reach the admin endpoint at {address}: {e}"))?;
        let _ = conn.set_read_timeout(Some(limits::ADMIN_RELOAD_TIMEOUT));
        let host = match address.strip_prefix(':') {
            Some(port) => format!("localhost:{port}"),
            None => address.to_string(),
        };
        let body = caddyfile.unwrap_or_default();
        let mut request = format!(
            "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {}\r\nConnection: close\r\n",
            body.len()
        )
        .into_bytes();
        if caddyfile.is_some() {
            request.extend_from_slice(b"Content-Type: text/caddyfile\r\n");
        }
        request.extend_from_slice(b"\r\n");
        request.extend_from_slice(body);
        conn.write_all(&request).map_err(|e| format!("admin endpoint at {address}: {e}"))?;
        let mut response = Vec::new();
        conn.read_to_end(&mut response).map_err(|e| format!("admin endpoint at {address}: {e}"))?;
        let text = String::from_utf8_lossy(&response);
        let status: u16 = text.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
        let answer = text.split_once("\r\n\r\n").map_or("", |(_, b)| b).trim_end();
        match status {
            200..=299 => Ok(()),
            0 => Err(format!("admin endpoint at {address} sent no HTTP response")),
            _ if answer.is_empty() => Err(format!("admin endpoint at {address}: HTTP {status}")),
            _ => Err(answer.to_string()),
        }
    }
}

/// A running admin endpoint; stopped (its port closed) on drop.
pub struct AdminServer {
    addr: SocketAddr,
    stopping: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl AdminServer {
    /// Bind `address` and serve `api` on a thread of its own.
    pub fn start(address: &AdminAddress, api: Arc<dyn AdminApi>) -> io::Result<AdminServer> {
        let listener = TcpListener::bind(address.bind)?;
        let addr = listener.local_addr()?;
        let guard = Arc::new(HostGuard::new(&address.configured, addr.port()));
        let stopping = Arc::new(AtomicBool::new(false));
        let flag = stopping.clone();
        let accept =
            std::thread::Builder::new().name("ringproxy-admin".into()).spawn(move || {
                for conn in listener.incoming() {
                    if flag.load(Ordering::SeqCst) {
                        return;
                    }
                    let Ok(conn) = conn else { continue };
                    let (api, guard) = (api.clone(), guard.clone());
                    let spawned = std::thread::Builder::new()
                        .name("ringproxy-admin-conn".into())
                        .spawn(move || serve_connection(conn, &*api, &guard));
                    if let Err(e) = spawned {
                        tracing::warn!("admin: cannot start a connection thread: {e}");
                    }
                }
            })?;
        tracing::info!(%addr, "admin endpoint listening");
        Ok(AdminServer { addr, stopping, accept: Some(accept) })
    }

    /// The bound address (the port, when the option asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for AdminServer {
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        // Wake the blocking accept so the thread sees the flag and drops the listener.
        let _ = TcpStream::connect_timeout(&self.addr, limits::ADMIN_IO_TIMEOUT);
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
    }
}

/// The `Host` values the endpoint answers to (Caddy's `allowed_origins` default).
struct HostGuard {
    allowed: Vec<String>,
}

impl HostGuard {
    fn new(configured: &str, port: u16) -> HostGuard {
        let mut allowed =
            vec![format!("localhost:{port}"), format!("127.0.0.1:{port}"), format!("[::1]:{port}")];
        let configured = configured.to_ascii_lowercase();
        if !configured.starts_with(':') && !allowed.contains(&configured) {
            allowed.push(configured);
        }
        HostGuard { allowed }
    }

    fn allows_host(&self, host: &[u8]) -> bool {
        let host = String::from_utf8_lossy(host).to_ascii_lowercase();
        self.allowed.contains(&host)
    }

    /// An `Origin` is allowed when it is `http(s)://` plus an allowed host.
    fn allows_origin(&self, origin: &[u8]) -> bool {
        let origin = String::from_utf8_lossy(origin).to_ascii_lowercase();
        let host = origin.strip_prefix("http://").or_else(|| origin.strip_prefix("https://"));
        host.is_some_and(|h| self.allowed.iter().any(|a| a == h))
    }
}

/// A response the endpoint sends.
struct Reply {
    status: u16,
    content_type: &'static str,
    body: String,
    allow: Option<&'static str>,
}

impl Reply {
    fn text(status: u16, body: impl Into<String>) -> Reply {
        Reply { status, content_type: "text/plain; charset=utf-8", body: body.into(), allow: None }
    }

    fn status(status: u16) -> Reply {
        let reason = crate::http::response::reason_phrase(status);
        Reply::text(status, format!("{status} {reason}\n"))
    }
}

fn serve_connection(mut conn: TcpStream, api: &dyn AdminApi, guard: &HostGuard) {
    let deadline = Instant::now() + limits::ADMIN_IO_TIMEOUT;
    let _ = conn.set_write_timeout(Some(limits::ADMIN_IO_TIMEOUT));
    let mut stop_after = false;
    let reply = match read_request(&mut conn, deadline) {
        Ok(request) => answer(&request, api, guard, &mut stop_after),
        Err(RequestError::Io) => return,
        Err(RequestError::Reply(reply)) => reply,
    };
    let _ = write_reply(&mut conn, &reply);
    let _ = conn.shutdown(std::net::Shutdown::Write);
    if stop_after {
        api.stop();
    }
}

/// A request as the endpoint needs it.
struct Request {
    method: Method,
    path: String,
    host: Vec<u8>,
    origin: Option<Vec<u8>>,
    content_type: Option<Vec<u8>>,
    body: Vec<u8>,
}

enum RequestError {
    /// The client went away or timed out: nothing to answer.
    Io,
    Reply(Reply),
}

fn read_request(conn: &mut TcpStream, deadline: Instant) -> Result<Request, RequestError> {
    let mut buf = Vec::with_capacity(4096);
    let head = loop {
        match parse_request(&buf, limits::DEFAULT_MAX_HEADER_BYTES) {
            Ok(Some(head)) => break head,
            Ok(None) => read_some(conn, &mut buf, deadline)?,
            Err(_) => return Err(RequestError::Reply(Reply::status(400))),
        }
    };
    let field = |name: &str| head.values(&buf, name).next().map(<[u8]>::to_vec);
    let length = match head.body {
        RequestBody::None => 0,
        RequestBody::Length(n) if n <= limits::ADMIN_MAX_BODY_BYTES as u64 => n as usize,
        RequestBody::Length(_) => return Err(RequestError::Reply(Reply::status(413))),
        RequestBody::Chunked => return Err(RequestError::Reply(Reply::status(411))),
    };
    let mut request = Request {
        method: head.method,
        path: String::from_utf8_lossy(head.path.get(&buf)).into_owned(),
        host: field("host").unwrap_or_default(),
        origin: field("origin"),
        content_type: field("content-type"),
        body: Vec::new(),
    };
    let mut body = buf.split_off(head.head_len);
    while body.len() < length {
        read_some(conn, &mut body, deadline)?;
    }
    body.truncate(length);
    request.body = body;
    Ok(request)
}

fn read_some(
    conn: &mut TcpStream,
    buf: &mut Vec<u8>,
    deadline: Instant,
) -> Result<(), RequestError> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(RequestError::Io);
    }
    conn.set_read_timeout(Some(left)).map_err(|_| RequestError::Io)?;
    let mut chunk = [0u8; 8192];
    match conn.read(&mut chunk) {
        Ok(0) | Err(_) => Err(RequestError::Io),
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            Ok(())
        }
    }
}

fn answer(
    request: &Request,
    api: &dyn AdminApi,
    guard: &HostGuard,
    stop_after: &mut bool,
) -> Reply {
    if !guard.allows_host(&request.host) {
        return Reply::text(
            403,
            format!("host not allowed: {}\n", String::from_utf8_lossy(&request.host)),
        );
    }
    if let Some(origin) = &request.origin {
        if !guard.allows_origin(origin) {
            return Reply::text(
                403,
                format!("origin not allowed: {}\n", String::from_utf8_lossy(origin)),
            );
        }
    }
    let method = request.method;
    let only = |wanted: Method, allow: &'static str, f: &mut dyn FnMut() -> Reply| {
        if method == wanted {
            f()
        } else {
            Reply { allow: Some(allow), ..Reply::status(405) }
        }
    };
    match request.path.as_str() {
        "/metrics" => only(Method::Get, "GET", &mut || Reply {
            status: 200,
            content_type: METRICS_CONTENT_TYPE,
            body: api.metrics(),
            allow: None,
        }),
        "/load" => only(Method::Post, "POST", &mut || {
            if !is_caddyfile(request.content_type.as_deref()) {
                return Reply::text(
                    415,
                    "unsupported Content-Type: ringproxy loads only text/caddyfile\n",
                );
            }
            match api.load(&request.body) {
                Ok(()) => Reply::text(200, ""),
                Err(message) => Reply::text(400, format!("{message}\n")),
            }
        }),
        "/stop" => only(Method::Post, "POST", &mut || {
            *stop_after = true;
            Reply::text(200, "")
        }),
        "/reverse_proxy/upstreams" => only(Method::Get, "GET", &mut || Reply {
            status: 200,
            content_type: "application/json",
            body: api.upstreams(),
            allow: None,
        }),
        _ => Reply::status(404),
    }
}

/// `text/caddyfile`, parameters (`; charset=utf-8`) and case aside.
fn is_caddyfile(content_type: Option<&[u8]>) -> bool {
    let Some(value) = content_type else { return false };
    let media = value.split(|b| *b == b';').next().unwrap_or_default();
    media.trim_ascii().eq_ignore_ascii_case(b"text/caddyfile")
}

fn write_reply(conn: &mut TcpStream, reply: &Reply) -> io::Result<()> {
    let reason = crate::http::response::reason_phrase(reply.status);
    let mut out = format!("HTTP/1.1 {} {reason}\r\n", reply.status);
    if let Some(allow) = reply.allow {
        out.push_str(&format!("Allow: {allow}\r\n"));
    }
    out.push_str(&format!(
        "Content-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        reply.content_type,
        reply.body.len()
    ));
    out.push_str(&reply.body);
    conn.write_all(out.as_bytes())
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    #[derive(Default)]
    struct Recorder {
        loaded: Mutex<Vec<Vec<u8>>>,
        stopped: AtomicBool,
    }

    impl AdminApi for Recorder {
        fn metrics(&self) -> String {
            "ringproxy_up 1\n".into()
        }

        fn load(&self, caddyfile: &[u8]) -> Result<(), String> {
            if caddyfile.starts_with(b"bad") {
                return Err("Caddyfile:1 - bad".into());
            }
            self.loaded.lock().unwrap().push(caddyfile.to_vec());
            Ok(())
        }

        fn stop(&self) {
            self.stopped.store(true, Ordering::SeqCst);
        }

        fn upstreams(&self) -> String {
            "[]".into()
        }
    }

    fn exchange(addr: SocketAddr, request: &str) -> (u16, String) {
        let mut conn = TcpStream::connect(addr).unwrap();
        conn.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
        conn.write_all(request.as_bytes()).unwrap();
        let mut response = String::new();
        conn.read_to_string(&mut response).unwrap();
        let status = response[9..12].parse().unwrap();
        let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap();
        (status, body)
    }

    fn start() -> (AdminServer, Arc<Recorder>) {
        let api = Arc::new(Recorder::default());
        let address = AdminAddress::parse("localhost:0").unwrap();
        (AdminServer::start(&address, api.clone()).unwrap(), api)
    }

    #[test]
    fn addresses_bind_loopback_unless_they_name_an_interface() {
        let local = AdminAddress::parse("localhost:2019").unwrap();
        assert_eq!(local.bind, "127.0.0.1:2019".parse().unwrap());
        assert_eq!(AdminAddress::parse(":2019").unwrap().bind, "127.0.0.1:2019".parse().unwrap());
        assert_eq!(AdminAddress::parse("[::1]:2019").unwrap().bind, "[::1]:2019".parse().unwrap());
        assert_eq!(
            AdminAddress::parse("0.0.0.0:2019").unwrap().bind,
            "0.0.0.0:2019".parse().unwrap()
        );
        assert!(AdminAddress::parse("localhost").unwrap_err().contains("no port"));
        assert!(AdminAddress::parse("localhost:x").unwrap_err().contains("invalid port"));
    }

    #[test]
    fn endpoints_answer_and_load_takes_only_text_caddyfile() {
        let (server, api) = start();
        let addr = server.local_addr();
        let host = format!("localhost:{}", addr.port());
        let (status, body) =
            exchange(addr, &format!("GET /metrics HTTP/1.1\r\nHost: {host}\r\n\r\n"));
        assert_eq!((status, body.as_str()), (200, "ringproxy_up 1\n"));

        let load = |content_type: &str, body: &str| {
            exchange(
                addr,
                &format!(
                    "POST /load HTTP/1.1\r\nHost: {host}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                ),
            )
        };
        assert_eq!(load("text/caddyfile", ":80 {\n}\n").0, 200);
        assert_eq!(load("Text/Caddyfile; charset=utf-8", "x").0, 200);
        assert_eq!(load("application/json", "{}").0, 415);
        assert_eq!(load("text/caddyfile", "bad"), (400, "Caddyfile:1 - bad\n".into()));
        assert_eq!(api.loaded.lock().unwrap().as_slice(), [b":80 {\n}\n".to_vec(), b"x".to_vec()]);

        let (status, _) = exchange(addr, &format!("GET /load HTTP/1.1\r\nHost: {host}\r\n\r\n"));
        assert_eq!(status, 405);
        let (status, _) = exchange(addr, &format!("GET /nope HTTP/1.1\r\nHost: {host}\r\n\r\n"));
        assert_eq!(status, 404);
        let (status, body) = exchange(
            addr,
            &format!("GET /reverse_proxy/upstreams HTTP/1.1\r\nHost: {host}\r\n\r\n"),
        );
        assert_eq!((status, body.as_str()), (200, "[]"));

        assert!(!api.stopped.load(Ordering::SeqCst));
        let (status, _) = exchange(
            addr,
            &format!("POST /stop HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\n\r\n"),
        );
        assert_eq!(status, 200);
        // The answer goes out first and the stop follows it, so the flag may lag a moment.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while !api.stopped.load(Ordering::SeqCst) {
            assert!(std::time::Instant::now() < deadline, "/stop answered but never stopped");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }

    #[test]
    fn foreign_hosts_and_origins_are_refused() {
        let (server, api) = start();
        let addr = server.local_addr();
        let port = addr.port();
        for host in
            [format!("127.0.0.1:{port}"), format!("[::1]:{port}"), format!("LOCALHOST:{port}")]
        {
            let (status, _) =
                exchange(addr, &format!("GET /metrics HTTP/1.1\r\nHost: {host}\r\n\r\n"));
            assert_eq!(status, 200, "{host}");
        }
        for host in [
            "localhost".to_string(),
            format!("evil.example:{port}"),
            format!("localhost:{}", port ^ 1),
        ] {
            let (status, _) =
                exchange(addr, &format!("GET /metrics HTTP/1.1\r\nHost: {host}\r\n\r\n"));
            assert_eq!(status, 403, "{host}");
        }
        let with_origin = |origin: &str| {
            exchange(
                addr,
                &format!(
                    "POST /load HTTP/1.1\r\nHost: localhost:{port}\r\nOrigin: {origin}\r\nContent-Type: text/caddyfile\r\nContent-Length: 1\r\n\r\nx"
                ),
            )
            .0
        };
        assert_eq!(with_origin("http://evil.example"), 403);
        assert_eq!(with_origin("null"), 403);
        assert_eq!(with_origin(&format!("http://localhost:{port}")), 200);
        assert_eq!(api.loaded.lock().unwrap().len(), 1);
    }

    #[test]
    fn oversized_and_chunked_bodies_are_refused_and_the_port_closes_on_drop() {
        let (server, _) = start();
        let addr = server.local_addr();
        let host = format!("localhost:{}", addr.port());
        let huge = limits::ADMIN_MAX_BODY_BYTES + 1;
        let (status, _) = exchange(
            addr,
            &format!("POST /load HTTP/1.1\r\nHost: {host}\r\nContent-Type: text/caddyfile\r\nContent-Length: {huge}\r\n\r\n"),
        );
        assert_eq!(status, 413);
        let (status, _) = exchange(
            addr,
            &format!("POST /load HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
        );
        assert_eq!(status, 411);
        drop(server);
        assert!(TcpStream::connect(addr).is_err(), "the admin port still accepts after drop");
    }
}
