//! [`Proxy`]: the system under test, started from Caddyfile text.
//!
//! By default that is ringproxy itself, in-process: `config::parse_caddyfile` then
//! `server::Server::start` with two workers on the chosen monoio driver. With
//! `RINGPROXY_TEST_TARGET=caddy` the same Caddyfile runs under a real `caddy run` instead; that
//! mode checks the tests' own expectations against the proxy our users come from, and documents
//! where ringproxy matches Caddy. Tests of behaviour where Caddy is known to fall short (see
//! docs and design notes) call [`Proxy::skip_on_caddy`] and print why.
//!
//! Caddyfiles name the site address `$SITE` and the proxy's port `$PORT`. `$SITE` depends on
//! the client [`Leg`] a test runs over (`:$PORT` for plaintext), so one test body serves every
//! leg: adding TLS means a `Leg::Tls` whose site address carries a `tls` line, a
//! `ClientStream::Tls`, and two more tests per `per_driver!` (see its doc). `$PORT` becomes `0`
//! for ringproxy, which reports the port it bound, and a free port chosen here for Caddy. Both
//! get `admin off` so that parallel Caddy processes do not fight over the admin port.

use std::fs;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Once};
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

/// How clients reach the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leg {
    Plain,
}

/// What one generated test runs on: the proxy's driver and the client leg.
#[derive(Debug, Clone, Copy)]
pub struct Setup {
    pub driver: DriverChoice,
    pub leg: Leg,
}

impl Setup {
    /// The site address that replaces `$SITE`, with whatever the leg needs inside the block.
    fn site_opening(&self) -> &'static str {
        match self.leg {
            Leg::Plain => ":$PORT {",
        }
    }

    /// A proxy with one catch-all site that sends everything to `upstream`.
    pub fn proxy_to(&self, upstream: impl std::fmt::Display) -> Proxy {
        Proxy::start(&format!("$SITE {{\n\treverse_proxy {upstream}\n}}\n"), *self)
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
    leg: Leg,
    dir: TempDir,
}

fn init_logging() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The proxy's warnings (why a request got 502, say) are captured with each test's
        // output and shown when it fails; RUST_LOG=ringproxy=debug shows everything.
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("ringproxy=warn"));
        let _ = tracing_subscriber::fmt().with_env_filter(filter).with_test_writer().try_init();
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
    /// Start the proxy under test with `caddyfile` (`$SITE {` opens the site block for the
    /// setup's leg; `$PORT` is the proxy's listening port).
    pub fn start(caddyfile: &str, setup: Setup) -> Proxy {
        init_logging();
        let dir = TempDir::new("proxy");
        let caddyfile = with_admin_off(&caddyfile.replace("$SITE {", setup.site_opening()));
        let (driver, leg) = (setup.driver, setup.leg);
        match target() {
            Target::Ringproxy => {
                let text = caddyfile.replace("$PORT", "0");
                fs::write(dir.path().join("Caddyfile"), &text).unwrap();
                let config = ringproxy::config::parse_caddyfile(&text, "Caddyfile", dir.path())
                    .unwrap_or_else(|e| panic!("test Caddyfile rejected: {e}\n{text}"));
                // The rest of RunOptions (io_uring flags) keeps its defaults, as for
                // `ringproxy run`; pinning stays off so parallel tests share the cores.
                let options = RunOptions { workers: Some(2), driver, ..RunOptions::default() };
                let server = bounded("start", move || Server::start(config, options))
                    .unwrap_or_else(|e| panic!("proxy failed to start: {e}"));
                let addrs = server.local_addrs().iter().map(|a| loopback(*a)).collect();
                Proxy { addrs, running: Running::Ringproxy(Some(server)), leg, dir }
            }
            Target::Caddy => {
                let port = super::net::unassigned_port();
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
                    leg,
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
        match self.leg {
            Leg::Plain => ClientStream::connect_plain(self.addr()),
        }
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
                    if std::thread::panicking() {
                        // The test already failed; do not risk hiding that behind a hang.
                        std::thread::spawn(move || server.shutdown());
                    } else {
                        bounded("shut down", move || server.shutdown());
                    }
                }
            }
            Running::Caddy(child) => {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// How long starting or stopping the in-process proxy may take before the test fails.
const LIFECYCLE_TIMEOUT: Duration = Duration::from_secs(15);

/// Run `f` on its own thread and wait at most [`LIFECYCLE_TIMEOUT`] for it: a worker that dies
/// during startup, or a shutdown that never finishes, fails the test instead of hanging it.
fn bounded<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(LIFECYCLE_TIMEOUT) {
        Ok(value) => value,
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!("the proxy did not {what} within {LIFECYCLE_TIMEOUT:?}")
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("the proxy panicked trying to {what}"),
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
/// a [`Setup`] as `$setup`. Against Caddy both run the same thing.
///
/// TLS variants slot in here as `name::tls_io_uring` / `name::tls_epoll` with `Leg::Tls`, so
/// that every data-path test also runs over TLS.
macro_rules! per_driver {
    ($(#[$attr:meta])* fn $name:ident($setup:ident) $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            $(#[$attr])*
            fn run($setup: $crate::support::proxy::Setup) $body

            #[test]
            fn io_uring() {
                run($crate::support::proxy::Setup {
                    driver: ringproxy::server::DriverChoice::IoUring,
                    leg: $crate::support::proxy::Leg::Plain,
                })
            }

            #[test]
            fn epoll() {
                run($crate::support::proxy::Setup {
                    driver: ringproxy::server::DriverChoice::Epoll,
                    leg: $crate::support::proxy::Leg::Plain,
                })
            }
        }
    };
}
pub(crate) use per_driver;
