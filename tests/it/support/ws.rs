//! WebSocket backends and clients (tungstenite over real sockets).
//!
//! [`WsOrigin`] answers the upgrade and then, by path:
//! - `/push?n=N`: sends N binary messages (`push <i>` followed by pattern bytes) before reading
//!   anything, then echoes;
//! - `/close?code=C`: starts the close handshake itself with code C;
//! - `/halfclose`: drops to raw TCP after the handshake: reads until EOF, then writes
//!   `"<len> <sha256>\n"` and closes, proving that a client's half-close reached it and that
//!   bytes can still flow back afterwards;
//! - anything else: echoes every text and binary message as received.
//!
//! It records each handshake request so that tests can check what the proxy forwarded. It
//! listens on TCP loopback, or on a unix socket ([`WsOrigin::start_unix`]).

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use tungstenite::handshake::server::{Request, Response};
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::CloseFrame;
use tungstenite::{Message, WebSocket};

use super::client::ClientStream;
use super::net::IO_TIMEOUT;
use super::payload::Hasher;
use super::sock::{Conn, Listener};

/// A handshake request as the WebSocket origin received it.
#[derive(Debug, Clone)]
pub struct Handshake {
    pub path: String,
    pub headers: Vec<(String, String)>,
}

impl Handshake {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

struct Shared {
    handshakes: Mutex<Vec<Handshake>>,
    /// Messages echoed, over all connections.
    echoed: AtomicUsize,
    /// Connections whose handler has finished (clean close or error).
    finished: AtomicUsize,
    /// Status codes of the close frames received.
    close_codes: Mutex<Vec<u16>>,
    stop: AtomicBool,
}

pub struct WsOrigin {
    /// The TCP address (`0.0.0.0:0` on a unix socket: see [`WsOrigin::upstream`]).
    pub addr: SocketAddr,
    upstream: String,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl WsOrigin {
    pub fn start() -> WsOrigin {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        WsOrigin::serve(Listener::tcp(listener))
    }

    /// A WebSocket origin on a unix socket at `path`, which must not exist yet.
    pub fn start_unix(path: &Path) -> WsOrigin {
        WsOrigin::serve(Listener::unix(path))
    }

    fn serve(listener: Listener) -> WsOrigin {
        let (addr, upstream) = (listener.local_addr(), listener.upstream());
        let shared = Arc::new(Shared {
            handshakes: Mutex::new(Vec::new()),
            echoed: AtomicUsize::new(0),
            finished: AtomicUsize::new(0),
            close_codes: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
        });
        let acceptor = {
            let shared = shared.clone();
            thread::Builder::new()
                .name("ws-origin".into())
                .spawn(move || accept_loop(listener, shared))
                .unwrap()
        };
        WsOrigin { addr, upstream, shared, acceptor: Some(acceptor) }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// This origin as a Caddyfile upstream: `127.0.0.1:P`, or `unix/PATH`.
    pub fn upstream(&self) -> &str {
        &self.upstream
    }

    pub fn handshakes(&self) -> Vec<Handshake> {
        self.shared.handshakes.lock().unwrap().clone()
    }

    pub fn echoed(&self) -> usize {
        self.shared.echoed.load(Ordering::SeqCst)
    }

    pub fn finished(&self) -> usize {
        self.shared.finished.load(Ordering::SeqCst)
    }

    /// The status codes of the close frames this origin received, in arrival order.
    pub fn close_codes(&self) -> Vec<u16> {
        self.shared.close_codes.lock().unwrap().clone()
    }
}

impl Drop for WsOrigin {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

fn accept_loop(listener: Listener, shared: Arc<Shared>) {
    listener.set_nonblocking(true).unwrap();
    while !shared.stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, _)) => {
                let shared = shared.clone();
                // Small stacks: the 500-connection test runs one thread per connection.
                let spawned = thread::Builder::new()
                    .name("ws-conn".into())
                    .stack_size(256 * 1024)
                    .spawn(move || {
                        let _ = serve(stream, &shared);
                        shared.finished.fetch_add(1, Ordering::SeqCst);
                    });
                if spawned.is_err() {
                    thread::sleep(Duration::from_millis(5));
                }
            }
            Err(_) => thread::sleep(Duration::from_millis(2)),
        }
    }
}

fn query_num(path: &str, key: &str, default: u64) -> u64 {
    path.split_once('?')
        .map(|(_, q)| q)
        .unwrap_or("")
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(default)
}

// tungstenite fixes the callback's error type (an HTTP response), which clippy finds large.
#[allow(clippy::result_large_err)]
fn serve(stream: Conn, shared: &Shared) -> Result<(), Box<dyn std::error::Error>> {
    stream.prepare(IO_TIMEOUT)?;
    let mut path = String::new();
    let mut ws = tungstenite::accept_hdr(stream, |req: &Request, resp: Response| {
        path = req.uri().to_string();
        let headers = req
            .headers()
            .iter()
            .map(|(n, v)| {
                (n.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned())
            })
            .collect();
        shared.handshakes.lock().unwrap().push(Handshake { path: path.clone(), headers });
        Ok(resp)
    })
    // The handshake error holds the callback (and its borrows): keep only its text.
    .map_err(|e| e.to_string())?;
    let route = path
        .split('?')
        .next()
        .unwrap_or("")
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or("")
        .to_string();

    match route.as_str() {
        "halfclose" => return half_close(ws.get_mut()),
        "push" => {
            let n = query_num(&path, "n", 100);
            for i in 0..n {
                let mut msg = format!("push {i} ").into_bytes();
                msg.resize(msg.len() + (i as usize % 1000), b'p');
                ws.send(Message::Binary(msg))?;
            }
        }
        "close" => {
            let code = query_num(&path, "code", 4000) as u16;
            ws.close(Some(CloseFrame {
                code: CloseCode::from(code),
                reason: "server closing".into(),
            }))?;
            ws.flush()?;
        }
        _ => {}
    }
    echo(&mut ws, shared)
}

fn echo(ws: &mut WebSocket<Conn>, shared: &Shared) -> Result<(), Box<dyn std::error::Error>> {
    loop {
        match ws.read() {
            Ok(msg @ (Message::Text(_) | Message::Binary(_))) => {
                // Counted before the echo is sent, so a client that has its echo sees the count.
                shared.echoed.fetch_add(1, Ordering::SeqCst);
                ws.send(msg)?;
            }
            Ok(Message::Close(frame)) => {
                let code = frame.map_or(1005, |f| u16::from(f.code));
                shared.close_codes.lock().unwrap().push(code);
            }
            Ok(_) => {}
            // The close handshake completed (either side started it).
            Err(tungstenite::Error::ConnectionClosed) => return Ok(()),
            Err(e) => return Err(e.into()),
        }
    }
}

fn half_close(stream: &mut Conn) -> Result<(), Box<dyn std::error::Error>> {
    let mut hasher = Hasher::default();
    let mut buf = [0u8; 16 * 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => hasher.update(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    let len = hasher.len;
    stream.write_all(format!("{len} {}\n", hasher.finish()).as_bytes())?;
    stream.shutdown(Shutdown::Write)?;
    Ok(())
}

/// Open a WebSocket through `stream` (already connected to the proxy, over either leg) for
/// `host` + `path`.
pub fn ws_connect(stream: ClientStream, host: &str, path: &str) -> WebSocket<ClientStream> {
    let scheme = if stream.tls().is_some() { "wss" } else { "ws" };
    let url = format!("{scheme}://{host}{path}");
    let (ws, resp) = tungstenite::client(url.as_str(), stream)
        .unwrap_or_else(|e| panic!("WebSocket handshake to {url}: {e}"));
    assert_eq!(resp.status(), 101);
    ws
}
