//! Worker threads: one monoio runtime per core, pinned, each accepting on its own
//! SO_REUSEPORT sockets and owning everything its connections touch.
//!
//! The driver is io_uring unless the kernel refuses it (seccomp, `kernel.io_uring_disabled`)
//! or the operator forces epoll; each worker logs the one it runs. Workers share nothing on the
//! hot path: the config snapshot is an `Arc` read once per connection, pools and counters are
//! per worker.

use std::cell::Cell;
use std::future::Future;
use std::io;
use std::net::TcpListener as StdTcpListener;
use std::os::unix::net::UnixStream as StdUnixStream;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::mpsc;
use std::sync::Arc;
use std::task::Poll;
use std::time::Instant;

use monoio::net::{TcpListener, UnixStream};

use crate::config::{limits, Config, ListenerKind};
use crate::net::stream::PlainStream;
use crate::proxy::guard::contained;
use crate::proxy::{conn, ConnCtx, OpenConnection, Snapshot};
use crate::server::{DriverChoice, UringSetup};
use crate::tls::acceptor::TlsAcceptor;
use crate::tls::TlsContext;
use crate::upstream::{run_health_checks, UpstreamPool};

/// The driver a worker actually runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driver {
    IoUring,
    Epoll,
}

impl Driver {
    pub fn resolve(choice: DriverChoice) -> Driver {
        match choice {
            DriverChoice::IoUring => Driver::IoUring,
            DriverChoice::Epoll => Driver::Epoll,
            DriverChoice::Auto if monoio::utils::detect_uring() => Driver::IoUring,
            DriverChoice::Auto => Driver::Epoll,
        }
    }
}

/// What one worker thread is handed.
pub struct WorkerSetup {
    pub id: usize,
    pub core: Option<core_affinity::CoreId>,
    pub driver: Driver,
    /// One socket per entry of `config.listeners`, same order.
    pub sockets: Vec<StdTcpListener>,
    pub config: Arc<Config>,
    pub tls: Option<Arc<TlsContext>>,
    /// Becomes readable (EOF) when the server shuts down.
    pub shutdown: StdUnixStream,
    /// io_uring setup flags (ignored on epoll).
    pub uring_setup: UringSetup,
    /// Reports whether the runtime started.
    pub ready: mpsc::Sender<Result<Driver, String>>,
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
                    tracing::info!(
                        worker = setup.id,
                        "io_uring setup flags refused ({e}); running without them"
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
            match monoio::RuntimeBuilder::<monoio::LegacyDriver>::new().enable_timer().build() {
                Ok(mut rt) => return rt.block_on(worker_main(setup)),
                Err(e) => e,
            }
        }
    };
    let _ = setup.ready.send(Err(format!("cannot start the {driver:?} runtime: {failed}")));
}

async fn worker_main(setup: WorkerSetup) {
    let WorkerSetup { id, driver, sockets, config, tls, shutdown, ready, .. } = setup;
    let clock = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let seed = clock ^ (id as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let pools = config
        .upstream_sets
        .iter()
        .enumerate()
        .map(|(i, set)| Rc::new(UpstreamPool::new(set.clone(), seed.wrapping_add(i as u64))))
        .collect::<Vec<_>>();
    let snapshot = Rc::new(Snapshot {
        config: config.clone(),
        pools,
        certs: tls.as_ref().map(|ctx| ctx.store().clone()),
    });

    let shutdown = match shutdown.set_nonblocking(true).and_then(|_| UnixStream::from_std(shutdown))
    {
        Ok(s) => s,
        Err(e) => {
            let _ = ready.send(Err(format!("worker {id}: shutdown channel: {e}")));
            return;
        }
    };
    let mut listeners = Vec::with_capacity(sockets.len());
    for socket in sockets {
        match TcpListener::from_std(socket) {
            Ok(l) => listeners.push(l),
            Err(e) => {
                let _ = ready.send(Err(format!("worker {id}: listener: {e}")));
                return;
            }
        }
    }
    tracing::info!(worker = id, driver = ?driver, "worker started");
    let _ = ready.send(Ok(driver));
    // Hold no sender past start-up: if another worker dies before reporting, the server's
    // wait must see the channel close instead of hanging.
    drop(ready);

    let stop = Rc::new(Cell::new(false));
    for pool in &snapshot.pools {
        if pool.set.health.is_some() {
            monoio::spawn(run_health_checks(pool.clone(), stop.clone()));
        }
    }
    monoio::spawn(sweep_pools(snapshot.clone(), stop.clone()));

    let active = Rc::new(Cell::new(0usize));
    let next_id = Rc::new(Cell::new(0u64));
    // One acceptor per worker: its own rustls config and session cache, so handshakes on
    // different workers never contend on a lock.
    let acceptor = tls.as_ref().map(|ctx| Rc::new(TlsAcceptor::new(ctx)));
    let accept_loops: Vec<Pin<Box<dyn Future<Output = ()>>>> = listeners
        .into_iter()
        .enumerate()
        .map(|(index, listener)| {
            Box::pin(accept_loop(
                id,
                index,
                listener,
                snapshot.clone(),
                active.clone(),
                next_id.clone(),
                acceptor.clone(),
            )) as Pin<Box<dyn Future<Output = ()>>>
        })
        .collect();
    let accepting = std::pin::pin!(join_all(accept_loops));
    let stopped = std::pin::pin!(shutdown.readable(false));
    monoio::select! {
        _ = accepting => {},
        _ = stopped => {},
    }
    // Listeners are closed now (dropped with the accept loops); let in-flight work finish.
    stop.set(true);
    let grace = config.globals.grace_period;
    let deadline = Instant::now() + grace;
    while active.get() > 0 && Instant::now() < deadline {
        monoio::time::sleep(limits::DRAIN_POLL_INTERVAL).await;
    }
    tracing::info!(worker = id, open = active.get(), "worker stopped");
}

/// Poll every accept loop together; they only end if their listener fails for good.
async fn join_all(mut futures: Vec<Pin<Box<dyn Future<Output = ()>>>>) {
    std::future::poll_fn(move |cx| {
        futures.retain_mut(|f| f.as_mut().poll(cx).is_pending());
        if futures.is_empty() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await
}

async fn accept_loop(
    worker: usize,
    index: usize,
    listener: TcpListener,
    snapshot: Rc<Snapshot>,
    active: Rc<Cell<usize>>,
    next_id: Rc<Cell<u64>>,
    tls: Option<Rc<TlsAcceptor>>,
) {
    let kind = snapshot.config.listeners[index].kind;
    let handshake_timeout = snapshot.config.globals.limits.tls_handshake_timeout;
    loop {
        let (socket, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                if is_transient_accept_error(&e) {
                    tracing::debug!(worker, "accept: {e}");
                    continue;
                }
                tracing::warn!(worker, "accept failed, backing off: {e}");
                monoio::time::sleep(limits::ACCEPT_ERROR_BACKOFF).await;
                continue;
            }
        };
        let stream = match PlainStream::new(socket) {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(worker, "cannot set up accepted socket: {e}");
                continue;
            }
        };
        let id = next_id.get();
        next_id.set(id + 1);
        let conn_id = ((worker as u64) << 48) | id;
        let ctx = ConnCtx {
            snapshot: snapshot.clone(),
            listener: index,
            peer,
            scheme: if kind == ListenerKind::Tls { "https" } else { "http" },
            id: conn_id,
            open: OpenConnection::new(&active),
        };
        match kind {
            ListenerKind::Plaintext | ListenerKind::Redirect => {
                monoio::spawn(contained(conn_id, conn::serve(stream, ctx)));
            }
            ListenerKind::Tls => {
                let Some(acceptor) = tls.clone() else {
                    // Server::start builds a TLS context whenever a TLS listener exists.
                    tracing::error!(
                        worker,
                        "TLS listener without a TLS context; closing connection"
                    );
                    continue;
                };
                monoio::spawn(contained(conn_id, async move {
                    // Boxed: the handshake's state is freed once it is done instead of sizing
                    // this task for the connection's whole life.
                    match Box::pin(acceptor.accept(stream, handshake_timeout)).await {
                        Ok(tls_stream) => conn::serve(tls_stream, ctx).await,
                        Err(e) => tracing::debug!(conn = conn_id, "TLS: {e}"),
                    }
                }));
            }
        }
    }
}

fn is_transient_accept_error(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ECONNABORTED) | Some(libc::EINTR) | Some(libc::EPROTO) | Some(libc::EPERM)
    )
}

async fn sweep_pools(snapshot: Rc<Snapshot>, stop: Rc<Cell<bool>>) {
    while !stop.get() {
        monoio::time::sleep(limits::POOL_SWEEP_INTERVAL).await;
        for pool in &snapshot.pools {
            pool.sweep_idle();
        }
    }
}
