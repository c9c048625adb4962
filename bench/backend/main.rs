//! The benchmark backend: the upstream every target proxies to, and the "direct" target itself.
//!
//! One single-threaded tokio runtime (bench/run pins it to the load generator's core) serving
//! HTTP/1.1 keep-alive on plaintext and TLS listeners:
//! - `GET /ws` with a WebSocket upgrade: echoes every binary frame back unchanged;
//! - `GET /small`: a 13-byte body, the keep-alive request/response benchmark;
//! - `GET /bytes/<n>`: `n` bytes with a Content-Length, written from one static buffer, the bulk
//!   download benchmark (n ≤ 16 GiB).
//!
//! It parses with httparse, answers anything else 404 and refuses request bodies, so a proxy
//! that mangles requests shows up as errors in the load generator, not as fast figures.

// Cargo builds harness=false benches with cfg(test) but no test harness: the shared modules'
// #[test] functions vanish and leave their test-only imports and helpers unused.
#![cfg_attr(test, allow(unused_imports, dead_code))]

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

#[path = "../e2e/common/mod.rs"]
mod common;
mod server;

use common::ToolError;

#[derive(Parser, Debug)]
#[command(about = "ringproxy benchmark backend: WebSocket echo, small GET, bulk download")]
struct Args {
    /// Plaintext listen address (repeatable); loopback only.
    #[arg(long)]
    plain: Vec<SocketAddr>,
    /// TLS listen address (repeatable); loopback only; needs --cert and --key.
    #[arg(long)]
    tls: Vec<SocketAddr>,
    #[arg(long)]
    cert: Option<PathBuf>,
    #[arg(long)]
    key: Option<PathBuf>,
}

fn main() {
    // `cargo bench` appends `--bench`; a harness=false target must tolerate it.
    let argv: Vec<String> = std::env::args().filter(|a| a != "--bench").collect();
    if argv.len() == 1 {
        eprintln!("backend: no listener given (bench/run starts it with --plain/--tls)");
        return;
    }
    let args = Args::parse_from(argv);
    if let Err(e) = run(args) {
        eprintln!("backend: {e}");
        std::process::exit(1);
    }
}

fn run(args: Args) -> Result<(), ToolError> {
    for a in args.plain.iter().chain(&args.tls) {
        if !a.ip().is_loopback() {
            return Err(ToolError::Usage(format!("{a}: the backend listens on loopback only")));
        }
    }
    let acceptor = match (&args.cert, &args.key, args.tls.is_empty()) {
        (_, _, true) => None,
        (Some(c), Some(k), false) => Some(TlsAcceptor::from(common::tls::server_config(c, k)?)),
        _ => return Err(ToolError::Usage("--tls needs --cert and --key".into())),
    };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async move {
        let local = tokio::task::LocalSet::new();
        local
            .run_until(async move {
                let mut tasks = Vec::new();
                for addr in args.plain {
                    let l = TcpListener::bind(addr).await?;
                    tasks.push(tokio::task::spawn_local(server::accept_loop(l, None)));
                }
                for addr in args.tls {
                    let l = TcpListener::bind(addr).await?;
                    tasks.push(tokio::task::spawn_local(server::accept_loop(l, acceptor.clone())));
                }
                eprintln!("backend: ready");
                for t in tasks {
                    // An accept loop only ends on a listener error; report the first.
                    if let Ok(Err(e)) = t.await {
                        return Err(e);
                    }
                }
                Ok(())
            })
            .await
    })
}
