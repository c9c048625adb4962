//! Starting and stopping a running proxy: bind every listener once per worker, start the
//! worker threads, and on shutdown signal them and join.

use std::net::SocketAddr;
use std::os::unix::net::UnixStream as StdUnixStream;
use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::acme::{self, AcmeHandle};
use crate::config::{Config, ListenerKind};
use crate::listener::{bind_reuseport, BindError};
use crate::runtime::{run_worker, Driver, WorkerSetup};
use crate::tls::{self, TlsContext};

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

/// How a proxy runs, as opposed to what it serves (that is the [`Config`]). The library never
/// reads the process environment: `ringproxy run` fills these from its flags (and their
/// `RINGPROXY_*` environment aliases), and `Default` is the same on every machine.
#[derive(Debug, Clone, Default)]
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

/// A running proxy. Dropping it stops it (see [`Server::shutdown`]).
pub struct Server {
    addrs: Vec<SocketAddr>,
    drivers: Vec<Driver>,
    threads: Vec<JoinHandle<()>>,
    /// Our ends of each worker's shutdown socket pair: closing them wakes the workers.
    shutdown: Vec<StdUnixStream>,
    /// Certificates for TLS listeners; `None` when the config has none.
    tls: Option<Arc<TlsContext>>,
    acme: Option<AcmeHandle>,
    renewals: Option<tls::renewal::InternalRenewals>,
}

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
}

impl Server {
    /// Prepare certificates (files, the local CA, stored ACME certificates), bind every
    /// listener and start the workers; ACME ordering and renewal continue in the background. A
    /// listener configured on port 0 gets an ephemeral port, shared by all workers;
    /// [`Server::local_addrs`] reports it.
    pub fn start(config: Config, options: RunOptions) -> Result<Server, StartError> {
        Self::start_shared(Arc::new(config), options)
    }

    /// As [`Server::start`], for a config the caller keeps a handle on.
    pub fn start_shared(config: Arc<Config>, options: RunOptions) -> Result<Server, StartError> {
        let needs_tls = config.listeners.iter().any(|l| l.kind == ListenerKind::Tls);
        // The store also carries HTTP-01 answers, so it exists whenever certificates are managed.
        let tls = if needs_tls {
            let storage =
                crate::storage::storage_dir(&config.globals, options.default_storage.as_deref())
                    .map_err(|e| StartError::Tls(e.to_string()))?;
            let ctx =
                tls::prepare(&config, &storage).map_err(|e| StartError::Tls(e.to_string()))?;
            let acme = acme::spawn(&config, ctx.store().clone(), storage);
            Some((ctx, acme))
        } else {
            None
        };
        let (tls, acme) = match tls {
            Some((ctx, acme)) => (Some(ctx), Some(acme)),
            None => (None, None),
        };
        let mut server = Self::start_workers(config, options, tls.clone())?;
        server.renewals =
            tls.as_ref().and_then(|ctx| tls::renewal::InternalRenewals::spawn(ctx.clone()));
        server.acme = acme;
        Ok(server)
    }

    fn start_workers(
        config: Arc<Config>,
        options: RunOptions,
        tls: Option<Arc<TlsContext>>,
    ) -> Result<Server, StartError> {
        let workers = options
            .workers
            .unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1))
            .max(1);
        let driver = Driver::resolve(options.driver);
        let cores = if options.pin_workers {
            core_affinity::get_core_ids().unwrap_or_default()
        } else {
            Vec::new()
        };

        // sockets[listener][worker]
        let mut sockets = Vec::with_capacity(config.listeners.len());
        let mut addrs = Vec::with_capacity(config.listeners.len());
        for listener in &config.listeners {
            let bound = bind_reuseport(listener.bind, workers)?;
            addrs.push(bound[0].local_addr()?);
            sockets.push(bound.into_iter());
        }

        let (ready_tx, ready_rx) = mpsc::channel();
        let mut threads = Vec::with_capacity(workers);
        let mut shutdown = Vec::with_capacity(workers);
        for id in 0..workers {
            let (ours, theirs) = StdUnixStream::pair()?;
            shutdown.push(ours);
            let setup = WorkerSetup {
                id,
                core: if cores.is_empty() { None } else { Some(cores[id % cores.len()]) },
                driver,
                sockets: sockets.iter_mut().filter_map(|s| s.next()).collect(),
                config: config.clone(),
                tls: tls.clone(),
                shutdown: theirs,
                ready: ready_tx.clone(),
                uring_setup: options.uring_setup,
            };
            threads.push(
                std::thread::Builder::new()
                    .name(format!("ringproxy-w{id}"))
                    .spawn(move || run_worker(setup))?,
            );
        }
        drop(ready_tx);
        let mut server = Server {
            addrs,
            drivers: Vec::new(),
            threads,
            shutdown,
            tls,
            acme: None,
            renewals: None,
        };
        for _ in 0..workers {
            match ready_rx.recv() {
                Ok(Ok(driver)) => server.drivers.push(driver),
                Ok(Err(message)) => {
                    server.stop();
                    return Err(StartError::Worker(message));
                }
                Err(_) => {
                    server.stop();
                    return Err(StartError::Worker("a worker exited during start-up".into()));
                }
            }
        }
        Ok(server)
    }

    /// The TLS context (certificate store, local CA), when the config has TLS listeners.
    pub fn tls(&self) -> Option<&Arc<TlsContext>> {
        self.tls.as_ref()
    }

    /// The ACME manager, when the config has TLS listeners.
    pub fn acme(&self) -> Option<&AcmeHandle> {
        self.acme.as_ref()
    }

    /// Bound addresses, in the order of `Config::listeners`.
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// The driver each worker runs.
    pub fn drivers(&self) -> &[Driver] {
        &self.drivers
    }

    /// Block until every worker has exited (they exit after a shutdown).
    pub fn wait(mut self) {
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }

    /// Stop accepting, give in-flight connections `grace_period`, join the workers.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if let Some(acme) = self.acme.take() {
            acme.shutdown();
        }
        self.renewals = None;
        self.shutdown.clear();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}
