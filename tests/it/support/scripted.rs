//! [`Scripted`]: an upstream that misbehaves on purpose, one request at a time, as the test's
//! script says: it reads each request (head and `Content-Length` body), records it, and then
//! does what the script returns for it: write bytes, pause, reset the connection.
//!
//! [`Origin`](super::origin::Origin) is the well-behaved backend; this one writes exactly the
//! bytes a test needs (invalid status lines, a body after a 204, a `101` with the wrong
//! accept key), which no HTTP library would produce.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::client::find;
use super::net::IO_TIMEOUT;

/// One request as the upstream read it.
#[derive(Debug, Clone)]
pub struct Seen {
    /// Which accepted connection (0, 1, ...) carried it.
    pub conn: usize,
    pub method: String,
    pub target: String,
    /// The head as received, request line and fields.
    pub head: String,
    pub body: Vec<u8>,
}

impl Seen {
    /// The value of the first field `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.split("\r\n").skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// What the upstream does after reading a request.
#[derive(Debug, Clone)]
pub enum Act {
    Write(Vec<u8>),
    Sleep(Duration),
    /// Close with a reset (SO_LINGER 0): what a crashing upstream looks like.
    Reset,
}

/// Text to write.
pub fn write(text: impl Into<String>) -> Act {
    Act::Write(text.into().into_bytes())
}

type Script = dyn Fn(&Seen) -> Vec<Act> + Send + Sync;

struct Shared {
    seen: Mutex<Vec<Seen>>,
    stop: AtomicBool,
    conns: AtomicUsize,
    script: Box<Script>,
}

/// A running scripted upstream; stops on drop.
pub struct Scripted {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl Scripted {
    /// An upstream on `127.0.0.1:<ephemeral>` answering each request with `script(request)`;
    /// after the script's acts the connection reads the next request, unless an act closed it.
    pub fn start(script: impl Fn(&Seen) -> Vec<Act> + Send + Sync + 'static) -> Scripted {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            seen: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
            conns: AtomicUsize::new(0),
            script: Box::new(script),
        });
        let acceptor = {
            let shared = shared.clone();
            thread::spawn(move || accept_loop(listener, shared))
        };
        Scripted { addr, shared, acceptor: Some(acceptor) }
    }

    /// Every request read so far, in arrival order.
    pub fn seen(&self) -> Vec<Seen> {
        self.shared.seen.lock().unwrap().clone()
    }

    /// Requests whose target is `target`.
    pub fn seen_to(&self, target: &str) -> Vec<Seen> {
        self.seen().into_iter().filter(|s| s.target == target).collect()
    }
}

impl Drop for Scripted {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    listener.set_nonblocking(true).unwrap();
    while !shared.stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, _)) => {
                stream.set_nonblocking(false).unwrap();
                let conn = shared.conns.fetch_add(1, Ordering::SeqCst);
                let shared = shared.clone();
                thread::spawn(move || {
                    let _ = serve(stream, conn, &shared);
                });
            }
            Err(_) => thread::sleep(Duration::from_millis(5)),
        }
    }
}

fn serve(mut stream: TcpStream, conn: usize, shared: &Shared) -> io::Result<()> {
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    stream.set_nodelay(true)?;
    let mut buf = Vec::new();
    loop {
        let head_len = loop {
            if let Some(end) = find(&buf, b"\r\n\r\n") {
                break end + 4;
            }
            if !fill(&mut stream, &mut buf)? {
                return Ok(());
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_len - 4]).into_owned();
        buf.drain(..head_len);
        let mut words = head.split(' ');
        let method = words.next().unwrap_or("").to_string();
        let target = words.next().unwrap_or("").to_string();
        let mut seen = Seen { conn, method, target, head, body: Vec::new() };
        let length: usize = seen.header("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
        while buf.len() < length {
            if !fill(&mut stream, &mut buf)? {
                return Ok(());
            }
        }
        seen.body = buf.drain(..length).collect();
        shared.seen.lock().unwrap().push(seen.clone());
        for act in (shared.script)(&seen) {
            match act {
                Act::Write(bytes) => stream.write_all(&bytes)?,
                Act::Sleep(pause) => sleep_unless_stopped(pause, shared),
                Act::Reset => {
                    socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO))?;
                    return Ok(());
                }
            }
        }
    }
}

fn fill(stream: &mut TcpStream, buf: &mut Vec<u8>) -> io::Result<bool> {
    let mut chunk = [0u8; 16 * 1024];
    let n = stream.read(&mut chunk)?;
    buf.extend_from_slice(&chunk[..n]);
    Ok(n > 0)
}

/// Sleep, ending early when the upstream is dropped, so that no thread outlives its test for
/// long.
fn sleep_unless_stopped(pause: Duration, shared: &Shared) {
    let until = Instant::now() + pause;
    while !shared.stop.load(Ordering::SeqCst) && Instant::now() < until {
        thread::sleep(
            Duration::from_millis(10).min(until.saturating_duration_since(Instant::now())),
        );
    }
}
