//! The backend's HTTP/1.1 and WebSocket serving, shared by the `backend` binary and the
//! harness self-test (bench/e2e/selftest.rs), which runs it in-process against the load tools.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::common::ws::{self, FrameReader};
use crate::common::ToolError;

/// Largest request head the backend reads.
const MAX_HEAD: usize = 16 * 1024;
/// Largest `/bytes/<n>` body (the bulk scenario uses 2 GB).
const MAX_BULK: u64 = 16 << 30;
/// Size of each write of a bulk body: large enough that syscalls do not dominate.
const BULK_CHUNK: usize = 256 * 1024;
const SMALL_BODY: &[u8] = b"hello, world\n";

/// Accepts connections forever (on a LocalSet), serving each on its own task; TLS when
/// `tls` is given.
pub async fn accept_loop(l: TcpListener, tls: Option<TlsAcceptor>) -> Result<(), ToolError> {
    loop {
        let (sock, _) = match l.accept().await {
            Ok(x) => x,
            // EMFILE and friends: keep serving the connections we have.
            Err(e) => {
                eprintln!("backend: accept: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        sock.set_nodelay(true)?;
        let tls = tls.clone();
        tokio::task::spawn_local(async move {
            let r = match tls {
                None => serve(sock).await,
                Some(acc) => match acc.accept(sock).await {
                    Ok(s) => serve(s).await,
                    Err(e) => Err(e.into()),
                },
            };
            if let Err(e) = r {
                // Peers resetting or closing mid-way are normal at the end of a scenario.
                if !matches!(&e, ToolError::Io(io) if is_disconnect(io)) {
                    eprintln!("backend: connection: {e}");
                }
            }
        });
    }
}

fn is_disconnect(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(e.kind(), ConnectionReset | BrokenPipe | UnexpectedEof | ConnectionAborted)
}

enum Route {
    Ws { key: String },
    Small,
    Bytes(u64),
    NotFound,
}

/// Serves requests on one connection until the client closes or asks to close.
async fn serve<S: AsyncRead + AsyncWrite + Unpin>(mut s: S) -> Result<(), ToolError> {
    let mut buf = vec![0u8; MAX_HEAD];
    let mut len = 0usize;
    // One pass per request; ends when the peer closes, errs, or sends Connection: close.
    loop {
        let (route, close, head_len) = loop {
            if let Some(parsed) = parse_request(&buf[..len])? {
                break parsed;
            }
            if len == buf.len() {
                s.write_all(b"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").await?;
                s.flush().await?;
                return Ok(());
            }
            let n = s.read(&mut buf[len..]).await?;
            if n == 0 {
                return Ok(());
            }
            len += n;
        };
        buf.copy_within(head_len..len, 0);
        len -= head_len;
        match route {
            Route::Ws { key } => {
                let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
                let resp = format!(
                    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
                );
                s.write_all(resp.as_bytes()).await?;
                s.flush().await?;
                return echo(s, &buf[..len]).await;
            }
            Route::Small => {
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n{}\r\n",
                    SMALL_BODY.len(),
                    if close { "Connection: close\r\n" } else { "" }
                );
                let mut out = Vec::with_capacity(head.len() + SMALL_BODY.len());
                out.extend_from_slice(head.as_bytes());
                out.extend_from_slice(SMALL_BODY);
                s.write_all(&out).await?;
            }
            Route::Bytes(n) => {
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {n}\r\n{}\r\n",
                    if close { "Connection: close\r\n" } else { "" }
                );
                s.write_all(head.as_bytes()).await?;
                let chunk = bulk_chunk();
                let mut left = n;
                while left > 0 {
                    let take = left.min(chunk.len() as u64) as usize;
                    s.write_all(&chunk[..take]).await?;
                    left -= take as u64;
                }
            }
            Route::NotFound => {
                s.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n").await?;
            }
        }
        s.flush().await?;
        if close {
            s.shutdown().await?;
            return Ok(());
        }
    }
}

fn bulk_chunk() -> &'static [u8] {
    static CHUNK: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    CHUNK.get_or_init(|| (0..BULK_CHUNK).map(|i| (i % 251) as u8).collect())
}

/// Parses one request head; `Ok(None)` when incomplete. Returns (route, close, head length).
fn parse_request(buf: &[u8]) -> Result<Option<(Route, bool, usize)>, ToolError> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(ToolError::Http(format!("bad request head: {e}"))),
    };
    let header = |name: &str| {
        req.headers.iter().find(|h| h.name.eq_ignore_ascii_case(name)).map(|h| h.value)
    };
    let has_token = |name: &str, token: &str| {
        req.headers.iter().filter(|h| h.name.eq_ignore_ascii_case(name)).any(|h| {
            h.value
                .split(|b| *b == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
        })
    };
    if header("transfer-encoding").is_some()
        || header("content-length").is_some_and(|v| v.trim_ascii() != b"0")
    {
        return Err(ToolError::Http("request bodies are not part of the benchmark".into()));
    }
    let close = req.version == Some(0) && !has_token("connection", "keep-alive")
        || has_token("connection", "close");
    let path = req.path.unwrap_or("");
    let route = match (req.method, path) {
        (Some("GET"), "/ws") if has_token("upgrade", "websocket") => {
            let key = header("sec-websocket-key")
                .and_then(|k| std::str::from_utf8(k).ok())
                .ok_or_else(|| ToolError::Http("upgrade without Sec-WebSocket-Key".into()))?;
            Route::Ws { key: key.trim().to_owned() }
        }
        (Some("GET"), "/small") => Route::Small,
        (Some("GET"), p) if p.starts_with("/bytes/") => match p["/bytes/".len()..].parse::<u64>() {
            Ok(n) if n <= MAX_BULK => Route::Bytes(n),
            _ => Route::NotFound,
        },
        _ => Route::NotFound,
    };
    Ok(Some((route, close, head_len)))
}

/// Echoes binary frames (unmasked, as a server must send them) until the client closes.
async fn echo<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    leftover: &[u8],
) -> Result<(), ToolError> {
    let mut reader = FrameReader::with_leftover(leftover);
    let mut out = Vec::with_capacity(4096);
    // Bounded by the client: each pass consumes one frame or returns.
    loop {
        let (opcode, reply) = {
            let Some(frame) = reader.next(&mut s).await? else {
                return Ok(());
            };
            out.clear();
            match frame.opcode {
                ws::OP_BINARY | 0x1 => (frame.opcode, frame.payload),
                ws::OP_PING => (ws::OP_PONG, frame.payload),
                ws::OP_CLOSE => (ws::OP_CLOSE, &[][..]),
                _ => continue,
            }
        };
        ws::encode_frame(&mut out, opcode, reply, None);
        s.write_all(&out).await?;
        s.flush().await?;
        if opcode == ws::OP_CLOSE {
            return Ok(());
        }
    }
}
