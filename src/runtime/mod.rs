//! Worker threads: one monoio runtime per core, pinned, each accepting on its own
//! SO_REUSEPORT sockets and owning everything its connections touch.
//!
//! The driver is io_uring unless the kernel refuses it (seccomp, `kernel.io_uring_disabled`)
//! or the operator forces epoll; each worker logs the one it runs. Workers share nothing on the
//! hot path: the config snapshot is an `Arc` read once per connection, pools and counters are
//! per worker.

pub mod accept;
pub mod admission;
pub mod blocking;
pub mod idle;
pub mod proxy_header;
pub mod signal;
pub mod worker;

use std::net::{SocketAddr, TcpListener as StdTcpListener};
use std::rc::Rc;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use crate::config::{limits, Config};
use crate::metrics::{Registry, WorkerMetrics};
use crate::server::{DriverChoice, UringSetup};
use crate::tls::TlsContext;

use self::worker::Worker;

/// The driver a worker actually runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driver {
    IoUring,
    Epoll,
}

impl Driver {
    /// The driver for `choice`. `auto` probes io_uring once and, when the kernel refuses it,
    /// falls back to epoll with one warning that says why (the errno and what usually causes
    /// it), since a silent fallback costs CPU per message nobody would notice.
    pub fn resolve(choice: DriverChoice) -> Driver {
        match choice {
            DriverChoice::IoUring => Driver::IoUring,
            DriverChoice::Epoll => Driver::Epoll,
            DriverChoice::Auto => match io_uring::IoUring::new(2) {
                Ok(_) => Driver::IoUring,
                Err(e) => {
                    tracing::warn!(
                        error = %e,
                        hint = uring_refusal_hint(&e),
                        "io_uring refused; the workers run on epoll"
                    );
                    Driver::Epoll
                }
            },
        }
    }
}

/// What usually makes the kernel refuse `io_uring_setup` with `e`.
fn uring_refusal_hint(e: &std::io::Error) -> String {
    let disabled = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled")
        .ok()
        .map(|v| v.trim().to_owned());
    match (e.raw_os_error(), disabled.as_deref()) {
        (_, Some(level)) if level != "0" => {
            format!("the sysctl kernel.io_uring_disabled is {level} (0 allows io_uring)")
        }
        (Some(libc::EPERM), _) => "a seccomp filter forbids io_uring_setup (container runtimes' \
             default profiles, e.g. Docker's, do; allow io_uring_setup, io_uring_enter and \
             io_uring_register)"
            .into(),
        (Some(libc::ENOSYS), _) => "the kernel has no io_uring (CONFIG_IO_URING) or a seccomp \
             filter answers ENOSYS"
            .into(),
        (Some(libc::ENOMEM), _) => "the locked-memory limit (RLIMIT_MEMLOCK) is too small for a \
             ring on this kernel"
            .into(),
        _ => "see the errno".into(),
    }
}

/// What one worker thread is handed.
pub struct WorkerSetup {
    pub id: usize,
    pub core: Option<core_affinity::CoreId>,
    pub driver: Driver,
    /// io_uring setup flags (ignored on epoll).
    pub uring_setup: UringSetup,
    /// The configuration to start with, with one socket per listener.
    pub first: Generation,
    /// What the control plane asks of the worker after start-up.
    pub commands: tokio::sync::mpsc::UnboundedReceiver<Command>,
    pub metrics: Arc<WorkerMetrics>,
    pub registry: Arc<Registry>,
    /// The connection caps, shared by all workers.
    pub admission: Arc<admission::Admission>,
    /// This worker's access-log buffer.
    pub log: Option<crate::logs::WorkerLog>,
    /// Reports whether the runtime started.
    pub ready: mpsc::Sender<Result<Driver, String>>,
}

/// A configuration for the workers to switch to, with the sockets of the listeners they do not
/// have yet (bound by the control plane, one per worker).
pub struct Generation {
    pub config: Arc<Config>,
    pub tls: Option<Arc<TlsContext>>,
    /// Keyed by the listener's address as configured.
    pub sockets: Vec<(SocketAddr, StdTcpListener)>,
}

/// A request from the control plane to one worker.
pub enum Command {
    /// Switch to a new configuration (a reload); `done` gets the outcome.
    Apply { generation: Generation, done: mpsc::Sender<Result<(), String>> },
    /// Graceful stop: see [`Worker::drain`].
    Drain { grace: Duration },
    /// Stop now, whatever is open.
    StopNow,
}

/// Builds the ring with the setup flags asked for; `any` says whether it asked for any, so a
/// refusal can be retried with a plain ring.
fn uring_builder(setup: UringSetup) -> (io_uring::Builder, bool) {
    let mut builder = io_uring::IoUring::builder();
    if setup.coop_taskrun {
        builder.setup_coop_taskrun();
    }
    if setup.single_issuer {
        builder.setup_single_issuer();
    }
    if setup.defer_taskrun {
        builder.setup_defer_taskrun();
    }
    (builder, setup != UringSetup::NONE)
}

fn build_uring_runtime(
    urb: io_uring::Builder,
) -> std::io::Result<monoio::Runtime<monoio::time::TimeDriver<monoio::IoUringDriver>>> {
    monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
        .with_entries(limits::URING_ENTRIES)
        .uring_builder(urb)
        .enable_timer()
        .attach_thread_pool(Box::new(blocking::BlockingPool::shared()))
        .build()
}

/// Body of a worker thread: build the runtime and run until shutdown.
pub fn run_worker(setup: WorkerSetup) {
    if let Some(core) = setup.core {
        if !core_affinity::set_for_current(core) {
            tracing::warn!(worker = setup.id, core = core.id, "could not pin worker to its core");
        }
    }
    let driver = setup.driver;
    let failed = match driver {
        Driver::IoUring => {
            let (urb, flags) = uring_builder(setup.uring_setup);
            let built = match build_uring_runtime(urb) {
                // Kernels before 6.0 refuse SINGLE_ISSUER (5.19: COOP_TASKRUN) with EINVAL.
                Err(e) if flags => {
                    tracing::warn!(
                        worker = setup.id,
                        flags = ?setup.uring_setup,
                        "io_uring setup flags refused ({e}; COOP_TASKRUN needs Linux 5.19, \
                         SINGLE_ISSUER 6.0); running on a plain ring"
                    );
                    build_uring_runtime(io_uring::IoUring::builder())
                }
                other => other,
            };
            match built {
                Ok(mut rt) => return rt.block_on(worker_main(setup)),
                Err(e) => e,
            }
        }
        Driver::Epoll => {
            // monoio's epoll driver would run file reads on the worker: they go to a pool.
            let builder = crate::files::io::with_blocking_pool(monoio::RuntimeBuilder::new());
            match builder.enable_timer().build() {
                Ok(mut rt) => return rt.block_on(worker_main(setup)),
                Err(e) => e,
            }
        }
    };
    let _ = setup.ready.send(Err(format!("cannot start the {driver:?} runtime: {failed}")));
}

async fn worker_main(setup: WorkerSetup) {
    let WorkerSetup {
        id, driver, first, commands, metrics, registry, admission, log, ready, ..
    } = setup;
    let worker = Worker::new(id, metrics, registry, admission, log, &first);
    if let Err(e) = worker.apply(first) {
        let _ = ready.send(Err(e));
        return;
    }
    tracing::info!(worker = id, driver = ?driver, "worker started");
    let _ = ready.send(Ok(driver));
    // Hold no sender past start-up: if another worker dies before reporting, the server's
    // wait must see the channel close instead of hanging.
    drop(ready);

    monoio::spawn(worker.clone().sweep_pools());
    monoio::spawn(worker.deadlines.clone().sweep());
    monoio::spawn(obey(worker.clone(), commands));
    let logs = monoio::spawn(worker.clone().flush_logs());
    worker.exit.wait().await;
    // The last lines reach the writer before the worker goes.
    logs.await;
    worker.release();
}

/// Carry out the control plane's commands until told to stop (or until the control plane is
/// gone, which also means stop).
async fn obey(worker: Rc<Worker>, mut commands: tokio::sync::mpsc::UnboundedReceiver<Command>) {
    loop {
        // The receiver must go with the worker's thread, not linger in the channel's wakers.
        let command = {
            let (next, exit) =
                (std::pin::pin!(commands.recv()), std::pin::pin!(worker.exit.wait()));
            monoio::select! {
                command = next => command,
                () = exit => None,
            }
        };
        let Some(command) = command else { break };
        match command {
            Command::Apply { generation, done } => {
                let _ = done.send(worker.apply(generation));
            }
            Command::Drain { grace } => {
                monoio::spawn(worker.clone().drain(grace));
            }
            Command::StopNow => break,
        }
    }
    worker.stop_now();
}
