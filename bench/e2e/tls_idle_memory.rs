//! How much memory does an idle TLS connection cost the proxy?
//!
//! Runs ringproxy's TLS layer (one worker, io_uring, or epoll with `--epoll`) in this process
//! and a rustls client in a child process, so the client's memory is not counted. Each client
//! connection handshakes (TLS 1.3, X25519, ECDSA P-256), sends a 16 KiB message and reads the
//! echo, then stays open and silent, like an idle wss connection after some traffic. The server
//! side of each connection is what a relay direction holds while idle: the `TlsStream` and a
//! task parked on `readable()`; the read buffer is one scratch buffer per worker.
//!
//! Reported: growth of this process's RSS per idle connection, measured between a warm-up
//! batch and the full set, and `size_of::<rustls::ServerConnection>()`.
//!
//! `cargo run --release --example tls_idle_memory -- [connections] [--epoll]`

#![allow(clippy::unwrap_used, reason = "a test or benchmark tool fails by panicking")]

use std::cell::RefCell;
use std::io::{self, BufRead, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rcgen::{CertificateParams, KeyPair};
use ringproxy::config::{
    Admin, Config, Globals, HostPattern, ListenerConfig, ListenerKind, Origin, Site, TlsPolicy,
};
use ringproxy::net::stream::{PlainStream, Stream};
use ringproxy::tls::{self, TlsAcceptor, TlsContext, TlsStream};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

const MESSAGE: usize = 16 * 1024;
const WARMUP: usize = 200;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("client") {
        client(&args[2..]);
        return;
    }
    let count: usize = args.iter().skip(1).find_map(|a| a.parse().ok()).unwrap_or(2000);
    let epoll = args.iter().any(|a| a == "--epoll");

    let dir = std::env::temp_dir().join(format!("rp-tls-mem-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert =
        CertificateParams::new(vec!["mem.test".to_owned()]).unwrap().self_signed(&key).unwrap();
    let (cert_path, key_path) = (dir.join("mem.crt"), dir.join("mem.key"));
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    let ctx = tls::prepare(&config(cert_path.clone(), key_path), &dir).unwrap();

    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let idle = Arc::new(AtomicUsize::new(0));
    let server_idle = idle.clone();
    std::thread::spawn(move || {
        let serve = serve(listener, ctx, server_idle);
        if epoll {
            monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
                .enable_timer()
                .build()
                .unwrap()
                .block_on(serve)
        } else {
            monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
                .enable_timer()
                .build()
                .unwrap()
                .block_on(serve)
        }
    });

    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["client", &addr.to_string(), cert_path.to_str().unwrap(), &WARMUP.to_string()])
        .arg((count + WARMUP).to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = io::BufReader::new(child.stdout.take().unwrap()).lines();

    wait_line(&mut lines, "warm");
    wait_for(&idle, WARMUP);
    let before = rss_kib();
    let started = Instant::now();
    let mut child_stdin = child.stdin.take().unwrap();
    writeln!(child_stdin, "go").unwrap();
    wait_line(&mut lines, "done");
    wait_for(&idle, WARMUP + count);
    let took = started.elapsed();
    std::thread::sleep(Duration::from_millis(500));
    let after = rss_kib();

    println!("driver: {}", if epoll { "epoll" } else { "io_uring" });
    println!(
        "size_of::<rustls::ServerConnection>() = {} bytes",
        size_of::<rustls::ServerConnection>()
    );
    println!("size_of::<TlsStream>() = {} bytes", size_of::<TlsStream>());
    println!("RSS before: {before} KiB, after {count} more idle connections: {after} KiB");
    println!(
        "RSS growth per idle TLS connection: {:.1} KiB",
        (after.saturating_sub(before)) as f64 / count as f64
    );
    println!(
        "({count} handshakes + 16 KiB echoes in {:.2} s, client and server on one machine)",
        took.as_secs_f64()
    );
    drop(child_stdin);
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

fn config(cert: PathBuf, key: PathBuf) -> Config {
    Config {
        globals: Globals {
            admin: Admin::Off,
            grace_period: Duration::from_secs(1),
            ..Globals::default()
        },
        listeners: vec![ListenerConfig {
            bind: "127.0.0.1:0".parse().unwrap(),
            kind: ListenerKind::Tls,
            sites: vec![Site {
                hosts: vec![HostPattern::Exact("mem.test".into())],
                tls: TlsPolicy::Files { cert, key },
                tls_options: Default::default(),
                routes: vec![],
                access_log: None,
                origin: Origin { file: "example".into(), line: 1 },
            }],
        }],
        upstream_sets: vec![],
    }
}

async fn serve(listener: std::net::TcpListener, ctx: Arc<TlsContext>, idle: Arc<AtomicUsize>) {
    let listener = monoio::net::TcpListener::from_std(listener).unwrap();
    let acceptor = Rc::new(TlsAcceptor::new(&ctx));
    // One scratch buffer per worker, as the relay uses.
    let scratch = Rc::new(RefCell::new(vec![0u8; 64 * 1024]));
    loop {
        let Ok((socket, _)) = listener.accept().await else { continue };
        let (acceptor, scratch, idle) = (acceptor.clone(), scratch.clone(), idle.clone());
        monoio::spawn(async move {
            let sock = PlainStream::new(socket).unwrap();
            let Ok(tls) = acceptor.accept(sock, Duration::from_secs(10)).await else { return };
            let _ = echo(&tls, &scratch, &idle).await;
        });
    }
}

async fn echo(tls: &TlsStream, scratch: &RefCell<Vec<u8>>, idle: &AtomicUsize) -> io::Result<()> {
    let mut echoed = 0;
    loop {
        let n = {
            let mut buf = scratch.borrow_mut();
            match tls.try_read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(n) => {
                    let mut off = 0;
                    while off < n {
                        match tls.try_write(&buf[off..n]) {
                            Ok(k) => off += k,
                            // The client reads every echo; a full socket here is not expected
                            // with 16 KiB messages, so report it rather than wait holding data.
                            Err(e) => return Err(e),
                        }
                    }
                    if !tls.try_flush()? {
                        return Err(io::Error::other("socket full"));
                    }
                    n
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
                Err(e) => return Err(e),
            }
        };
        if n == 0 {
            tls.readable().await?;
            continue;
        }
        echoed += n;
        if echoed == MESSAGE {
            idle.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn wait_line(lines: &mut impl Iterator<Item = io::Result<String>>, want: &str) {
    for line in lines.by_ref() {
        if line.unwrap() == want {
            return;
        }
    }
    panic!("client exited before `{want}`");
}

fn wait_for(counter: &AtomicUsize, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while counter.load(Ordering::Relaxed) < n {
        assert!(
            Instant::now() < deadline,
            "only {} of {n} connections idle",
            counter.load(Ordering::Relaxed)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Child: `client <addr> <ca.pem> <warm-up count> <total count>`.
fn client(args: &[String]) {
    let addr: SocketAddr = args[0].parse().unwrap();
    let root = CertificateDer::from_pem_file(&args[1]).unwrap();
    let (warm, total): (usize, usize) = (args[2].parse().unwrap(), args[3].parse().unwrap());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(root).unwrap();
    let cfg = Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth(),
    );
    let message = vec![0x42u8; MESSAGE];
    let mut open = Vec::with_capacity(total);
    for i in 0..total {
        if i == warm {
            println!("warm");
            let mut go = String::new();
            io::stdin().read_line(&mut go).unwrap();
        }
        let sock = TcpStream::connect(addr).unwrap();
        let conn =
            rustls::ClientConnection::new(cfg.clone(), ServerName::try_from("mem.test").unwrap())
                .unwrap();
        let mut stream = rustls::StreamOwned::new(conn, sock);
        stream.write_all(&message).unwrap();
        let mut back = vec![0u8; MESSAGE];
        stream.read_exact(&mut back).unwrap();
        open.push(stream);
    }
    println!("done");
    let mut rest = String::new();
    let _ = io::stdin().read_to_string(&mut rest);
}
