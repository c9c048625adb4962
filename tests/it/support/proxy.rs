//! [`Proxy`]: the system under test, started from Caddyfile text, and [`per_driver!`], which
//! runs one test body on every [`Setup`].
//!
//! By default the proxy is ringproxy itself, in-process: `config::parse_caddyfile` then
//! `server::Server::start` with two workers on the chosen monoio driver. With
//! `RINGPROXY_TEST_TARGET=caddy` the same Caddyfile runs under a real `caddy run` instead; that
//! mode checks the tests' own expectations against the proxy our users come from, and documents
//! where ringproxy matches Caddy. Tests of behaviour where Caddy is known to fall short (see
//! docs and design notes) call [`Proxy::skip_on_caddy`] and print why.
//!
//! Caddyfiles name the site address `$SITE` and the proxy's port `$PORT`. `$SITE {` opens a
//! catch-all site on `$PORT` for the setup's client [`Leg`]: plaintext, or TLS with
//! `tls <cert> <key>` from a CA generated for the test, whose leaf is for [`TLS_NAME`]. The
//! site has no host name on either leg, so that tests sending their own `Host` (bad input,
//! absolute-form targets) are routed the same way over both; the seed's named HTTPS site is
//! `tls_datapath`'s. A TLS site address a test writes out itself takes `$TLS`, which becomes
//! the same `tls` line. [`Proxy::stream`], [`Proxy::connect`] and [`Proxy::host`] give the
//! leg's connection, SNI and `Host`, so one test body serves every leg.
//!
//! `$PORT` becomes `0` for ringproxy, which reports the port it bound, and a free port chosen
//! here for Caddy. Both get `admin off` so that parallel Caddy processes do not fight over the
//! admin port; the TLS leg also gets `auto_https disable_redirects` (no test may bind port 80)
//! and `storage file_system` in the test's own directory.

use std::fs;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Once};
use std::time::{Duration, Instant};

use ringproxy::server::{DriverChoice, RunOptions, Server};
use rustls::ClientConfig;

use super::client::{ClientStream, HttpConn};
use super::temp::{temp_dir, TempDir};
use super::tls_client::{client_config, TestCa};

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
    Tls,
}

impl Leg {
    /// The scheme clients use, as the proxy reports it upstream in `X-Forwarded-Proto`.
    pub fn scheme(self) -> &'static str {
        match self {
            Leg::Plain => "http",
            Leg::Tls => "https",
        }
    }
}

/// The name TLS-leg clients send as SNI and `Host`, and the one name in the site's certificate.
pub const TLS_NAME: &str = "stt.test";

/// What one generated test runs on: the proxy's driver and the client leg.
#[derive(Debug, Clone, Copy)]
pub struct Setup {
    pub driver: DriverChoice,
    pub leg: Leg,
}

impl Setup {
    /// A proxy with one catch-all site that sends everything to `upstream`.
    pub fn proxy_to(&self, upstream: impl std::fmt::Display) -> Proxy {
        Proxy::start(&format!("$SITE {{\n\treverse_proxy {upstream}\n}}\n"), *self)
    }
}

/// What the TLS leg's clients need: a configuration that trusts the test's CA, and the CA,
/// which owns the certificate files the proxy was given.
struct TlsLeg {
    client: Arc<ClientConfig>,
    _ca: TestCa,
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
    tls: Option<TlsLeg>,
    /// How `$SITE {`, `$TLS` and the global options were filled in, for reloads.
    fill: Fill,
    dir: TempDir,
}

/// What [`Proxy::start`] put into the test's Caddyfile, so that a reload gets the same.
struct Fill {
    globals: Vec<String>,
    tls_line: Option<String>,
}

impl Fill {
    fn apply(&self, caddyfile: &str) -> String {
        let text = match &self.tls_line {
            None => {
                assert!(!caddyfile.contains("$TLS"), "`$TLS` in a plaintext-leg Caddyfile");
                caddyfile.replace("$SITE {", ":$PORT {")
            }
            Some(tls_line) => caddyfile
                .replace("$SITE {", &format!(":$PORT {{\n\t{tls_line}"))
                .replace("$TLS", tls_line),
        };
        with_globals(&text, &self.globals)
    }
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

/// Add `options` to the global options block, creating the block if there is none; an option
/// the test's own block already sets (its first word) is left as the test wrote it.
fn with_globals(caddyfile: &str, options: &[String]) -> String {
    let trimmed = caddyfile.trim_start();
    let (existing, sites) = match trimmed.strip_prefix('{') {
        Some(inner) => {
            let end = inner.find("\n}").unwrap_or_else(|| {
                panic!("the global options block must end with `}}` alone on a line:\n{caddyfile}")
            });
            (&inner[..end], inner[end + 2..].to_string())
        }
        None => ("", format!("\n\n{trimmed}")),
    };
    let first_word = |line: &str| line.split_whitespace().next().map(str::to_string);
    let already: Vec<String> = existing.lines().filter_map(first_word).collect();
    let mut block = String::from("{");
    for option in options {
        if !first_word(option).is_some_and(|name| already.contains(&name)) {
            block.push_str("\n\t");
            block.push_str(option);
        }
    }
    format!("{block}{existing}\n}}{sites}")
}

impl Proxy {
    /// Start the proxy under test with `caddyfile` (`$SITE {` opens the site block for the
    /// setup's leg, `$TLS` is its `tls` line; `$PORT` is the proxy's listening port).
    pub fn start(caddyfile: &str, setup: Setup) -> Proxy {
        init_logging();
        let dir = temp_dir("proxy");
        let mut globals = vec!["admin off".to_string()];
        let (fill, tls) = match setup.leg {
            Leg::Plain => (Fill { globals, tls_line: None }, None),
            Leg::Tls => {
                let ca = TestCa::new("proxy-ca");
                let (cert, key) = ca.leaf("site", &[TLS_NAME]);
                let tls_line = format!("tls {} {}", cert.display(), key.display());
                globals.push("auto_https disable_redirects".to_string());
                globals
                    .push(format!("storage file_system {}", dir.path().join("storage").display()));
                let tls = TlsLeg { client: client_config(&[ca.root()]), _ca: ca };
                (Fill { globals, tls_line: Some(tls_line) }, Some(tls))
            }
        };
        let caddyfile = fill.apply(caddyfile);
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
                Proxy { addrs, running: Running::Ringproxy(Some(server)), leg, tls, fill, dir }
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
                    tls,
                    fill,
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

    /// The in-process ringproxy (its reload, metrics, drain). Tests that need it skip Caddy
    /// first.
    pub fn server(&self) -> &Server {
        match &self.running {
            Running::Ringproxy(Some(server)) => server,
            _ => panic!("the proxy under test is not an in-process ringproxy"),
        }
    }

    /// Reload with `caddyfile`, filled in as [`Proxy::start`] fills it (`$SITE`, `$TLS`, the
    /// global options; `$PORT` stays 0, which keeps the first listener). `Err` is the error
    /// text a user would see.
    pub fn reload(&self, caddyfile: &str) -> Result<(), String> {
        let text = self.fill.apply(caddyfile).replace("$PORT", "0");
        let config = ringproxy::config::parse_caddyfile(&text, "Caddyfile", self.dir.path())
            .map_err(|e| e.to_string())?;
        self.server().reload(config).map_err(|e| e.to_string())
    }

    /// Take the server out of the harness (to stop it under test); the proxy is then gone.
    pub fn take_server(&mut self) -> Server {
        match &mut self.running {
            Running::Ringproxy(server) => server.take().expect("the server was taken already"),
            Running::Caddy(_) => panic!("the proxy under test is Caddy"),
        }
    }

    /// The first listener's address.
    pub fn addr(&self) -> SocketAddr {
        self.addrs[0]
    }

    pub fn port(&self) -> u16 {
        self.addr().port()
    }

    /// A new client connection to the first listener, over the setup's leg.
    pub fn stream(&self) -> ClientStream {
        match &self.tls {
            None => ClientStream::connect_plain(self.addr()),
            Some(tls) => ClientStream::connect_tls(self.addr(), TLS_NAME, &tls.client),
        }
    }

    pub fn connect(&self) -> HttpConn {
        HttpConn::new(self.stream())
    }

    /// A new client connection over the setup's leg that sends `prefix` first, in the clear
    /// (a PROXY protocol header). `Err` when the TLS handshake after it fails.
    pub fn try_stream_after(&self, prefix: &[u8]) -> std::io::Result<ClientStream> {
        match &self.tls {
            None => Ok(ClientStream::connect_plain_after(self.addr(), prefix)),
            Some(tls) => {
                ClientStream::try_connect_tls_after(self.addr(), prefix, TLS_NAME, &tls.client)
            }
        }
    }

    /// A client connection over the setup's leg to `addr` (a balancer in front of the proxy)
    /// from the local address `source`.
    pub fn connect_via(&self, addr: SocketAddr, source: IpAddr) -> HttpConn {
        let tcp = super::client::tcp_connect_from(source, addr)
            .unwrap_or_else(|e| panic!("connect to {addr} from {source}: {e}"));
        let stream = match &self.tls {
            None => ClientStream::Plain(tcp),
            Some(tls) => ClientStream::tls_over(tcp, TLS_NAME, &tls.client)
                .unwrap_or_else(|e| panic!("TLS to {addr} from {source}: {e}")),
        };
        HttpConn::new(stream)
    }

    /// [`Proxy::try_stream_after`] as an HTTP connection; panics if TLS fails.
    pub fn connect_after(&self, prefix: &[u8]) -> HttpConn {
        let stream =
            self.try_stream_after(prefix).unwrap_or_else(|e| panic!("TLS after prefix: {e}"));
        HttpConn::new(stream)
    }

    /// `Host` value clients send by default (on the TLS leg, the certificate's name).
    pub fn host(&self) -> String {
        match self.leg {
            Leg::Plain => format!("localhost:{}", self.port()),
            Leg::Tls => format!("{TLS_NAME}:{}", self.port()),
        }
    }

    /// The directory `storage file_system` points at on the TLS leg (the local CA's root
    /// lands under it).
    pub fn storage_dir(&self) -> PathBuf {
        self.dir.path().join("storage")
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

/// Generate one `#[test]` per [`Setup`] from one body: `name::plain_io_uring`,
/// `name::plain_epoll`, `name::tls_io_uring` and `name::tls_epoll`. The body gets the setup as
/// `$setup`. Against Caddy the driver makes no difference, the leg does.
///
/// A test that makes sense on one leg only says which and why, and gets that leg's two tests:
///
/// ```ignore
/// per_driver! {
///     plain_only("it reads the plaintext bytes on the wire")
///     fn name(setup) { ... }
/// }
/// ```
///
/// and likewise `tls_only("...")` (the reason also becomes the module's doc).
macro_rules! per_driver {
    ($(#[$attr:meta])* fn $name:ident($setup:ident) $body:block) => {
        $crate::support::proxy::per_driver!(@tests
            "Runs on every client leg and driver." ""
            [plain_io_uring Plain IoUring, plain_epoll Plain Epoll,
             tls_io_uring Tls IoUring, tls_epoll Tls Epoll]
            $(#[$attr])* fn $name($setup) $body);
    };
    (plain_only($why:literal) $(#[$attr:meta])* fn $name:ident($setup:ident) $body:block) => {
        $crate::support::proxy::per_driver!(@tests
            "Plaintext leg only: " $why
            [plain_io_uring Plain IoUring, plain_epoll Plain Epoll]
            $(#[$attr])* fn $name($setup) $body);
    };
    (tls_only($why:literal) $(#[$attr:meta])* fn $name:ident($setup:ident) $body:block) => {
        $crate::support::proxy::per_driver!(@tests
            "TLS leg only: " $why
            [tls_io_uring Tls IoUring, tls_epoll Tls Epoll]
            $(#[$attr])* fn $name($setup) $body);
    };
    (@tests $doc:literal $why:literal
        [$($test:ident $leg:ident $driver:ident),+]
        $(#[$attr:meta])* fn $name:ident($setup:ident) $body:block) => {
        #[doc = concat!($doc, $why)]
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            $(#[$attr])*
            fn run($setup: $crate::support::proxy::Setup) $body

            $(
                #[test]
                fn $test() {
                    run($crate::support::proxy::Setup {
                        driver: ringproxy::server::DriverChoice::$driver,
                        leg: $crate::support::proxy::Leg::$leg,
                    })
                }
            )+
        }
    };
}
pub(crate) use per_driver;
