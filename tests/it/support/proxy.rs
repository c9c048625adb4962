//! [`Proxy`]: the system under test, started from Caddyfile text.
//!
//! By default that is ringproxy itself, in-process: `config::parse_caddyfile` then
//! `server::Server::start` with two workers on the chosen monoio driver. With
//! `RINGPROXY_TEST_TARGET=caddy` the same Caddyfile runs under a real `caddy run` instead; that
//! mode checks the tests' own expectations against the proxy our users come from, and documents
//! where ringproxy matches Caddy. Tests of behaviour where Caddy is known to fall short (see
//! docs and design notes) call [`Proxy::skip_on_caddy`] and print why.
//!
//! Caddyfiles name the proxy's port `$PORT`: ringproxy gets `0` and reports the port it bound;
//! Caddy gets a free port chosen here. Both get `admin off` so that parallel Caddy processes do
//! not fight over the admin port.

use std::fs;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Once;
use std::time::{Duration, Instant};

use ringproxy::server::{DriverChoice, RunOptions, Server};

use super::client::{ClientStream, HttpConn};

/// What the tests run against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Ringproxy,
    Caddy,
}

pub fn target() -> Target {
    match std::env::var("RINGPROXY_TEST_TARGET").as_deref() {
        Ok("caddy") => Target::Caddy,
        Ok("ringproxy") | Ok("") | Err(_) => Target::Ringproxy,
        Ok(other) => panic!("RINGPROXY_TEST_TARGET={other}: expected `caddy` or `ringproxy`"),
    }
}

/// A test's private scratch directory, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let path =
            std::env::temp_dir().join(format!("ringproxy-it-{}-{tag}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

enum Running {
    Ringproxy(Option<Server>),
    Caddy(Child),
}

/// A running proxy; stopped on drop.
pub struct Proxy {
    /// Where clients connect, one per listener in Caddyfile order (loopback for wildcard binds).
    pub addrs: Vec<SocketAddr>,
    running: Running,
    dir: TempDir,
}

fn init_logging() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // RUST_LOG=ringproxy=debug shows the proxy's logs next to a failing test's output.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    });
}

/// Add `admin off` to the global options block, creating the block if there is none.
fn with_admin_off(caddyfile: &str) -> String {
    let trimmed = caddyfile.trim_start();
    if let Some(rest) = trimmed.strip_prefix('{') {
        format!("{{\n\tadmin off{rest}")
    } else {
        format!("{{\n\tadmin off\n}}\n\n{trimmed}")
    }
}

impl Proxy {
    /// Start the proxy under test with `caddyfile` (`$PORT` = the proxy's listening port).
    pub fn start(caddyfile: &str, driver: DriverChoice) -> Proxy {
        init_logging();
        let dir = TempDir::new("proxy");
        let caddyfile = with_admin_off(caddyfile);
        match target() {
            Target::Ringproxy => {
                let text = caddyfile.replace("$PORT", "0");
                fs::write(dir.path().join("Caddyfile"), &text).unwrap();
                let config = ringproxy::config::parse_caddyfile(&text, "Caddyfile", dir.path())
                    .unwrap_or_else(|e| panic!("test Caddyfile rejected: {e}\n{text}"));
                let server = Server::start(
                    config,
                    RunOptions { workers: Some(2), driver, ..RunOptions::default() },
                )
                .unwrap_or_else(|e| panic!("proxy failed to start: {e}"));
                let addrs = server.local_addrs().iter().map(|a| loopback(*a)).collect();
                Proxy { addrs, running: Running::Ringproxy(Some(server)), dir }
            }
            Target::Caddy => {
                let port = super::net::free_port();
                let text = caddyfile.replace("$PORT", &port.to_string());
                let file = dir.path().join("Caddyfile");
                fs::write(&file, &text).unwrap();
                let log = fs::File::create(dir.path().join("caddy.log")).unwrap();
                let child = Command::new("caddy")
                    .args(["run", "--adapter", "caddyfile", "--config"])
                    .arg(&file)
                    .env("XDG_DATA_HOME", dir.path().join("data"))
                    .env("XDG_CONFIG_HOME", dir.path().join("config"))
                    .env("HOME", dir.path())
                    .stdin(Stdio::null())
                    .stdout(log.try_clone().unwrap())
                    .stderr(log)
                    .spawn()
                    .unwrap_or_else(|e| panic!("cannot run caddy (apt-get install caddy): {e}"));
                let mut proxy = Proxy {
                    addrs: vec![SocketAddr::from((Ipv4Addr::LOCALHOST, port))],
                    running: Running::Caddy(child),
                    dir,
                };
                proxy.wait_for_caddy();
                proxy
            }
        }
    }

    fn wait_for_caddy(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if TcpStream::connect_timeout(&self.addrs[0], Duration::from_millis(200)).is_ok() {
                return;
            }
            if let Running::Caddy(child) = &mut self.running {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!("caddy exited with {status}:\n{}", self.caddy_log());
                }
            }
            assert!(
                Instant::now() < deadline,
                "caddy did not listen in time:\n{}",
                self.caddy_log()
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    fn caddy_log(&self) -> String {
        fs::read_to_string(self.dir.path().join("caddy.log")).unwrap_or_default()
    }

    pub fn is_caddy(&self) -> bool {
        matches!(self.running, Running::Caddy(_))
    }

    /// In Caddy mode, print why this test does not apply and return true: the caller returns.
    pub fn skip_on_caddy(&self, reason: &str) -> bool {
        if self.is_caddy() {
            eprintln!("SKIPPED against Caddy: {reason}");
        }
        self.is_caddy()
    }

    /// The first listener's address.
    pub fn addr(&self) -> SocketAddr {
        self.addrs[0]
    }

    pub fn port(&self) -> u16 {
        self.addr().port()
    }

    /// A new client connection to the first listener.
    pub fn stream(&self) -> ClientStream {
        ClientStream::connect_plain(self.addr())
    }

    pub fn connect(&self) -> HttpConn {
        HttpConn::new(self.stream())
    }

    /// `Host` value clients send by default.
    pub fn host(&self) -> String {
        format!("localhost:{}", self.port())
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        match &mut self.running {
            Running::Ringproxy(server) => {
                if let Some(server) = server.take() {
                    server.shutdown();
                }
            }
            Running::Caddy(child) => {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

fn loopback(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::from((Ipv4Addr::LOCALHOST, addr.port()))
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::from((Ipv4Addr::LOCALHOST, addr.port()))
        }
        _ => addr,
    }
}

/// Generate one `#[test]` per monoio driver: `name::io_uring` and `name::epoll`. The body gets
/// the driver as `$driver`. Against Caddy both run the same thing.
macro_rules! per_driver {
    ($(#[$attr:meta])* fn $name:ident($driver:ident) $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            $(#[$attr])*
            fn run($driver: ringproxy::server::DriverChoice) $body

            #[test]
            fn io_uring() {
                run(ringproxy::server::DriverChoice::IoUring)
            }

            #[test]
            fn epoll() {
                run(ringproxy::server::DriverChoice::Epoll)
            }
        }
    };
}
pub(crate) use per_driver;
