//! A running proxy, seen from the control plane: starting it (certificates, listeners, one
//! worker thread per core, the admin endpoint), reloading it (`control`), and stopping it,
//! gracefully or at once.
//!
//! The control plane owns everything that is not per connection: the current [`Config`], the
//! TLS context and ACME manager, the bound listeners, the admin endpoint and the metrics
//! registry. Workers get immutable snapshots of it through [`Command`]s; nothing here is
//! touched on the data path.

mod control;

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

use crate::acme::{self, AcmeHandle};
use crate::admin::{AdminAddress, AdminServer};
use crate::config::{Admin, Config, ListenerKind};
use crate::listener::{bind_reuseport, BindError};
use crate::logs::LogWriter;
use crate::metrics::Registry;
use crate::notify::Notifier;
use crate::runtime::{run_worker, Command, Driver, Generation, WorkerSetup};
use crate::tls::{self, TlsContext};

pub use control::ReloadError;

/// Which monoio driver workers use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DriverChoice {
    /// io_uring when the kernel allows it, else epoll.
    #[default]
    Auto,
    IoUring,
    Epoll,
}

impl std::str::FromStr for DriverChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(DriverChoice::Auto),
            "io_uring" | "iouring" | "uring" => Ok(DriverChoice::IoUring),
            "epoll" | "legacy" => Ok(DriverChoice::Epoll),
            other => Err(format!("unknown driver '{other}' (expected auto, io_uring or epoll)")),
        }
    }
}

/// Looks up an environment variable for a Caddyfile's `{$VAR}` when a config is loaded at run
/// time (`/load`, SIGHUP).
pub type ConfigEnv = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// How a proxy runs, as opposed to what it serves (that is the [`Config`]). The library never
/// reads the process environment: `ringproxy run` fills these from its flags (and their
/// `RINGPROXY_*` environment aliases), and `Default` is the same on every machine.
#[derive(Clone, Default)]
pub struct RunOptions {
    /// Worker threads; `None` = available cores.
    pub workers: Option<usize>,
    pub driver: DriverChoice,
    /// Pin worker N to core N (default on for `ringproxy run`; tests leave it off).
    pub pin_workers: bool,
    /// io_uring setup flags; see [`UringSetup`].
    pub uring_setup: UringSetup,
    /// Where certificates and the local CA live when the Caddyfile has no `storage` option
    /// (`ringproxy run` passes `$XDG_DATA_HOME/ringproxy` or `~/.local/share/ringproxy`).
    /// `None` and no `storage` option: a config that needs storage fails to start.
    pub default_storage: Option<PathBuf>,
    /// `$NOTIFY_SOCKET`, for systemd's readiness notifications (see `notify`).
    pub notify_socket: Option<OsString>,
    /// The Caddyfile the proxy was started from: a config posted to `/load` resolves relative
    /// paths against its directory (the working directory without it).
    pub config_file: Option<PathBuf>,
    /// `{$VAR}` lookups for configs loaded at run time; `None` sees no variables.
    pub config_env: Option<ConfigEnv>,
}

impl std::fmt::Debug for RunOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunOptions")
            .field("workers", &self.workers)
            .field("driver", &self.driver)
            .field("pin_workers", &self.pin_workers)
            .field("uring_setup", &self.uring_setup)
            .field("default_storage", &self.default_storage)
            .field("notify_socket", &self.notify_socket)
            .field("config_file", &self.config_file)
            .finish_non_exhaustive()
    }
}

/// io_uring setup flags. The default is COOP_TASKRUN (completions are delivered when the
/// worker next enters the kernel, which it does constantly, instead of by an interrupt that
/// preempts it) and SINGLE_ISSUER (each ring is used only by its own worker thread, so the
/// kernel skips the locking that sharing would need): measured +15–40 % keep-alive requests/s
/// and less CPU per request (docs/benchmarks.md, experiment 9). DEFER_TASKRUN measured worse:
/// monoio submits without asking for completions while tasks are runnable, so completions
/// waited. A kernel that refuses the flags gets a plain ring (not epoll).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UringSetup {
    pub coop_taskrun: bool,
    pub single_issuer: bool,
    pub defer_taskrun: bool,
}

impl UringSetup {
    /// A plain ring.
    pub const NONE: UringSetup =
        UringSetup { coop_taskrun: false, single_issuer: false, defer_taskrun: false };
}

impl Default for UringSetup {
    fn default() -> Self {
        UringSetup { coop_taskrun: true, single_issuer: true, defer_taskrun: false }
    }
}

impl std::str::FromStr for UringSetup {
    type Err = String;

    /// A comma list of `coop`, `single`, `defer`, or `none` for a plain ring.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut setup = UringSetup::NONE;
        for flag in s.split(',').map(str::trim).filter(|f| !f.is_empty()) {
            match flag {
                "none" => {}
                "coop" => setup.coop_taskrun = true,
                "single" => setup.single_issuer = true,
                "defer" => setup.defer_taskrun = true,
                other => {
                    return Err(format!(
                        "unknown io_uring setup flag '{other}' (expected a comma list of coop, \
                         single, defer, or none)"
                    ))
                }
            }
        }
        Ok(setup)
    }
}

/// Why a proxy did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Bind(#[from] BindError),
    #[error("worker setup: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Worker(String),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("admin endpoint: {0}")]
    Admin(String),
}

/// A running proxy. Dropping it stops it gracefully (see [`Server::shutdown`]).
pub struct Server {
    core: Arc<Core>,
}

/// What the control plane shares between the [`Server`] handle, the admin endpoint and
/// reloads.
struct Core {
    options: RunOptions,
    /// One command channel per worker; fixed for the server's life.
    workers: Vec<tokio::sync::mpsc::UnboundedSender<Command>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    drivers: Vec<Driver>,
    registry: Arc<Registry>,
    notifier: Notifier,
    /// Writes access logs off the workers.
    log_writer: LogWriter,
    /// Told when the admin endpoint asks for a stop (`ringproxy run` waits on it).
    stop_requests: Mutex<Option<mpsc::Sender<()>>>,
    /// Everything a reload replaces; the lock serializes reloads and stops.
    state: Mutex<State>,
}

struct State {
    config: Arc<Config>,
    /// The listeners bound now, in no particular order.
    listeners: Vec<BoundListener>,
    /// The storage directory in effect, once a config needed one.
    storage: Option<PathBuf>,
    tls: Option<Arc<TlsContext>>,
    acme: Option<AcmeHandle>,
    renewals: Option<tls::renewal::InternalRenewals>,
    admin: Option<(AdminAddress, AdminServer)>,
    stopped: bool,
}

/// A listener the workers accept on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct BoundListener {
    /// As configured (`[::]:443`, or port 0).
    bind: SocketAddr,
    /// As bound (the ephemeral port for port 0).
    addr: SocketAddr,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // The state is replaced field by field only after every fallible step has succeeded, so a
    // panic elsewhere cannot leave it half-written.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Certificates for `config`, when it has TLS listeners: the TLS context (files, local CA,
/// stored ACME certificates) and the ACME manager, which loads stored certificates into the
/// context's store before it returns and orders the missing ones in the background.
fn prepare_tls(
    config: &Config,
    default_storage: Option<&std::path::Path>,
) -> Result<Option<(Arc<TlsContext>, AcmeHandle, PathBuf)>, String> {
    if !config.listeners.iter().any(|l| l.kind == ListenerKind::Tls) {
        return Ok(None);
    }
    let storage =
        crate::storage::storage_dir(&config.globals, default_storage).map_err(|e| e.to_string())?;
    let ctx = tls::prepare(config, &storage).map_err(|e| e.to_string())?;
    let acme = acme::spawn(config, ctx.store().clone(), storage.clone());
    Ok(Some((ctx, acme, storage)))
}

/// Bind `workers` sockets for each of `listeners`; all or nothing.
fn bind_all(
    listeners: impl IntoIterator<Item = SocketAddr>,
    workers: usize,
) -> Result<Vec<(BoundListener, Vec<std::net::TcpListener>)>, BindError> {
    let mut bound = Vec::new();
    for bind in listeners {
        let sockets = bind_reuseport(bind, workers)?;
        let addr = sockets[0].local_addr().map_err(|source| BindError { addr: bind, source })?;
        bound.push((BoundListener { bind, addr }, sockets));
    }
    Ok(bound)
}

/// Hand out one socket per worker: `sockets[listener][worker]` → per worker, per listener.
fn per_worker(
    bound: Vec<(BoundListener, Vec<std::net::TcpListener>)>,
    workers: usize,
) -> Vec<Vec<(SocketAddr, std::net::TcpListener)>> {
    let mut out: Vec<Vec<(SocketAddr, std::net::TcpListener)>> =
        (0..workers).map(|_| Vec::new()).collect();
    for (listener, sockets) in bound {
        for (worker, socket) in sockets.into_iter().enumerate() {
            out[worker].push((listener.bind, socket));
        }
    }
    out
}

/// Worker threads just started, with what the control plane keeps of them.
struct Spawned {
    senders: Vec<tokio::sync::mpsc::UnboundedSender<Command>>,
    threads: Vec<JoinHandle<()>>,
    ready: mpsc::Receiver<Result<Driver, String>>,
}

/// One worker thread per entry of `sockets` (its share of every listener), each starting on
/// `first` (whose own `sockets` is empty: each worker gets its entry).
fn spawn_workers(
    first: &Generation,
    sockets: Vec<Vec<(SocketAddr, std::net::TcpListener)>>,
    options: &RunOptions,
    registry: &Arc<Registry>,
    log_writer: &LogWriter,
) -> std::io::Result<Spawned> {
    let driver = Driver::resolve(options.driver);
    let cores = if options.pin_workers {
        core_affinity::get_core_ids().unwrap_or_default()
    } else {
        Vec::new()
    };
    let admission = Arc::new(crate::runtime::admission::Admission::default());
    let (ready_tx, ready) = mpsc::channel();
    let mut spawned = Spawned { senders: Vec::new(), threads: Vec::new(), ready };
    for (id, sockets) in sockets.into_iter().enumerate() {
        let (commands_tx, commands) = tokio::sync::mpsc::unbounded_channel();
        spawned.senders.push(commands_tx);
        let metrics = registry.add_worker(id);
        let setup = WorkerSetup {
            id,
            core: if cores.is_empty() { None } else { Some(cores[id % cores.len()]) },
            driver,
            uring_setup: options.uring_setup,
            first: Generation { config: first.config.clone(), tls: first.tls.clone(), sockets },
            commands,
            metrics: metrics.clone(),
            registry: registry.clone(),
            admission: admission.clone(),
            log: log_writer.worker(metrics),
            ready: ready_tx.clone(),
        };
        let thread = std::thread::Builder::new()
            .name(format!("ringproxy-w{id}"))
            .spawn(move || run_worker(setup));
        match thread {
            Ok(thread) => spawned.threads.push(thread),
            Err(e) => {
                spawned.stop();
                return Err(e);
            }
        }
    }
    Ok(spawned)
}

impl Spawned {
    /// Wait for every worker to report its runtime up; the drivers they run. A worker that
    /// fails stops the others.
    fn wait_until_ready(&mut self) -> Result<Vec<Driver>, StartError> {
        let workers = self.threads.len();
        let mut drivers = Vec::with_capacity(workers);
        for _ in 0..workers {
            match self.ready.recv() {
                Ok(Ok(driver)) => drivers.push(driver),
                Ok(Err(message)) => {
                    self.stop();
                    return Err(StartError::Worker(message));
                }
                Err(_) => {
                    self.stop();
                    return Err(StartError::Worker("a worker exited during start-up".into()));
                }
            }
        }
        Ok(drivers)
    }

    /// Stop every worker started so far and wait for them.
    fn stop(&mut self) {
        for worker in &self.senders {
            let _ = worker.send(Command::StopNow);
        }
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

fn start_admin(
    config: &Config,
    core: &Arc<Core>,
) -> Result<Option<(AdminAddress, AdminServer)>, String> {
    let Admin::Address(text) = &config.globals.admin else { return Ok(None) };
    let address = AdminAddress::parse(text)?;
    let api = Arc::new(control::Api(Arc::downgrade(core)));
    let server = AdminServer::start(&address, api)
        .map_err(|e| format!("cannot listen on {}: {e}", address.bind))?;
    Ok(Some((address, server)))
}

impl Server {
    /// Prepare certificates (files, the local CA, stored ACME certificates), bind every
    /// listener, start the workers and the admin endpoint; ACME ordering and renewal continue
    /// in the background. A listener configured on port 0 gets an ephemeral port, shared by all
    /// workers; [`Server::local_addrs`] reports it.
    pub fn start(config: Config, options: RunOptions) -> Result<Server, StartError> {
        Self::start_shared(Arc::new(config), options)
    }

    /// As [`Server::start`], for a config the caller keeps a handle on.
    pub fn start_shared(config: Arc<Config>, options: RunOptions) -> Result<Server, StartError> {
        let workers = options
            .workers
            .unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1))
            .max(1);
        let tls =
            prepare_tls(&config, options.default_storage.as_deref()).map_err(StartError::Tls)?;
        let bound = bind_all(config.listeners.iter().map(|l| l.bind), workers)?;
        let listeners: Vec<BoundListener> = bound.iter().map(|(l, _)| *l).collect();
        let registry = Registry::new();
        let log_writer = LogWriter::start()?;
        let tls_ctx = tls.as_ref().map(|(ctx, _, _)| ctx.clone());
        let first = Generation { config: config.clone(), tls: tls_ctx, sockets: Vec::new() };
        let mut spawned =
            spawn_workers(&first, per_worker(bound, workers), &options, &registry, &log_writer)?;
        let drivers = spawned.wait_until_ready()?;
        let (tls, acme, storage) = match tls {
            Some((ctx, acme, storage)) => (Some(ctx), Some(acme), Some(storage)),
            None => (None, None, None),
        };
        let core = Arc::new(Core {
            notifier: Notifier::new(options.notify_socket.clone()),
            log_writer,
            options,
            workers: spawned.senders,
            threads: Mutex::new(spawned.threads),
            drivers,
            registry,
            stop_requests: Mutex::new(None),
            state: Mutex::new(State {
                config: config.clone(),
                listeners,
                storage,
                renewals: tls
                    .as_ref()
                    .and_then(|ctx| tls::renewal::InternalRenewals::spawn(ctx.clone())),
                tls,
                acme,
                admin: None,
                stopped: false,
            }),
        });
        let admin = match start_admin(&config, &core) {
            Ok(admin) => admin,
            Err(e) => {
                core.stop_now();
                return Err(StartError::Admin(e));
            }
        };
        lock(&core.state).admin = admin;
        core.publish_certificates();
        core.notifier.ready();
        Ok(Server { core })
    }

    /// The TLS context (certificate store, local CA), when the config has TLS listeners.
    pub fn tls(&self) -> Option<Arc<TlsContext>> {
        lock(&self.core.state).tls.clone()
    }

    /// The names the ACME manager handles and where each stands, when there is one.
    pub fn acme_status(&self) -> Option<Vec<acme::NameStatus>> {
        lock(&self.core.state).acme.as_ref().map(AcmeHandle::status)
    }

    /// Close and reopen every access log file (SIGUSR1, after an external logrotate).
    pub fn reopen_logs(&self) {
        self.core.log_writer.reopen();
    }

    /// Bound addresses, in the order of the current config's listeners.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        let state = lock(&self.core.state);
        state
            .config
            .listeners
            .iter()
            .filter_map(|l| state.listeners.iter().find(|b| b.bind == l.bind).map(|b| b.addr))
            .collect()
    }

    /// The admin endpoint's address, when it is on.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        lock(&self.core.state).admin.as_ref().map(|(_, server)| server.local_addr())
    }

    /// The driver each worker runs.
    pub fn drivers(&self) -> &[Driver] {
        &self.core.drivers
    }

    /// The config being served now.
    pub fn config(&self) -> Arc<Config> {
        lock(&self.core.state).config.clone()
    }

    /// The metrics of this proxy (what `/metrics` renders).
    pub fn registry(&self) -> &Arc<Registry> {
        &self.core.registry
    }

    /// Switch to `config` without dropping a connection (see `control`).
    pub fn reload(&self, config: Config) -> Result<(), ReloadError> {
        self.core.reload(Arc::new(config))
    }

    /// Re-read `file` and switch to it (SIGHUP). A broken file is logged with `file:line` and
    /// changes nothing.
    pub fn reload_file(&self, file: &std::path::Path) -> Result<(), ReloadError> {
        self.core.load_file(file)
    }

    /// A channel that receives `()` whenever the admin endpoint's `POST /stop` asks for a
    /// stop. Without a receiver, `/stop` stops the server itself.
    pub fn stop_requests(&self) -> mpsc::Receiver<()> {
        let (tx, rx) = mpsc::channel();
        *lock(&self.core.stop_requests) = Some(tx);
        rx
    }

    /// Graceful stop: listeners close at once, in-flight requests finish, idle connections
    /// close; after `grace_period` live WebSockets get a 1001 close frame on both sides and
    /// everything ends. Returns when every worker has exited.
    pub fn shutdown(self) {
        self.core.stop_gracefully();
    }

    /// Stop at once, whatever is open (a second SIGTERM). Safe to call from another thread
    /// while a graceful stop is under way.
    pub fn stop_now_handle(&self) -> impl Fn() + Send + Sync + 'static {
        let core = Arc::downgrade(&self.core);
        move || {
            if let Some(core) = core.upgrade() {
                core.stop_now();
            }
        }
    }

    /// Block until every worker has exited (after a stop began elsewhere).
    pub fn wait(self) {
        self.core.join_workers();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.core.stop_gracefully();
    }
}

impl Core {
    fn stop_gracefully(&self) {
        let grace = {
            let mut state = lock(&self.state);
            if state.stopped {
                drop(state);
                self.join_workers();
                return;
            }
            state.stopped = true;
            state.config.globals.grace_period
        };
        self.notifier.stopping();
        for worker in &self.workers {
            let _ = worker.send(Command::Drain { grace });
        }
        self.join_workers();
        self.release_control_plane();
    }

    fn stop_now(&self) {
        for worker in &self.workers {
            let _ = worker.send(Command::StopNow);
        }
        if let Ok(mut state) = self.state.try_lock() {
            state.stopped = true;
        }
    }

    fn join_workers(&self) {
        let threads: Vec<JoinHandle<()>> = lock(&self.threads).drain(..).collect();
        for thread in threads {
            let _ = thread.join();
        }
    }

    /// Stop ACME (releasing its locks), the local CA's renewals and the admin endpoint.
    fn release_control_plane(&self) {
        let (acme, renewals, admin) = {
            let mut state = lock(&self.state);
            (state.acme.take(), state.renewals.take(), state.admin.take())
        };
        if let Some(acme) = acme {
            acme.shutdown();
        }
        drop(renewals);
        drop(admin);
    }

    /// Certificate expiry times for `ringproxy_certificate_expiry_timestamp_seconds`.
    fn publish_certificates(&self) {
        let expiries =
            lock(&self.state).tls.as_ref().map(|ctx| ctx.store().expiries()).unwrap_or_default();
        self.registry.set_certificates(expiries);
    }
}
