//! [`Worker`]: what one worker thread owns and its connections share — the current config
//! snapshot, the listeners it accepts on, its counters — and how it changes: applying a new
//! configuration generation (reload) and draining (graceful stop).
//!
//! A reload never touches a live connection. Applying a generation builds a new
//! [`Snapshot`] (reusing the pools of upstream sets that did not change, so their idle
//! connections and health carry over; retiring the others), starts accepting on listeners
//! that appeared and stops those that disappeared, then swaps the worker's current snapshot.
//! Connections hold the snapshot they started with and pick up the current one only at a
//! request boundary (`proxy::conn`); a relay keeps its snapshot until it ends. The swap is a
//! pointer replacement on the worker's own thread: no lock, no pause of traffic.

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use monoio::net::TcpListener;

use super::accept::{accept_loop, AcceptHandle};
use super::admission::Admission;
use super::idle::IdleList;
use super::signal::Signal;
use super::Generation;
use crate::config::{limits, Config, ListenerKind, LogOutput};
use crate::logs::WorkerLog;
use crate::metrics::{Registry, WorkerMetrics};
use crate::net::deadline::Deadlines;
use crate::proxy::basic_auth::CheckCache;
use crate::proxy::Snapshot;
use crate::tls::acceptor::TlsAcceptor;
use crate::upstream::{run_health_checks, UpstreamPool};

/// One worker's state, shared (`Rc`) by its tasks.
pub struct Worker {
    pub id: usize,
    current: RefCell<Rc<Snapshot>>,
    /// A graceful stop began: accept nothing, end idle keep-alive connections, add
    /// `Connection: close` to responses.
    pub draining: Signal,
    /// The grace period is over: relays close their WebSockets (1001) and everything ends.
    pub closing: Signal,
    /// The worker should exit now.
    pub exit: Signal,
    /// Kept-alive client connections waiting for their next request, oldest first: shed when
    /// descriptors run out.
    pub idle: IdleList,
    /// Every bounded wait of this worker's connections (stall, header and idle timeouts);
    /// `deadlines.sweep()` runs for the worker's life.
    pub deadlines: Rc<Deadlines>,
    /// Open client connections (each holds an `OpenConnection`).
    pub open: Rc<Cell<usize>>,
    /// Outcomes of recent `basic_auth` password checks.
    pub password_checks: CheckCache,
    next_conn: Cell<u64>,
    pub metrics: Arc<WorkerMetrics>,
    registry: Arc<Registry>,
    /// The connection caps (shared by every worker).
    pub admission: Arc<Admission>,
    listeners: RefCell<Vec<AcceptHandle>>,
    /// Access-log lines on their way to the log writer.
    log: Option<WorkerLog>,
    /// Stops health checks and the pool sweep.
    background_stop: Rc<Cell<bool>>,
    seed: u64,
}

impl Worker {
    pub fn new(
        id: usize,
        metrics: Arc<WorkerMetrics>,
        registry: Arc<Registry>,
        admission: Arc<Admission>,
        log: Option<WorkerLog>,
        first: &Generation,
    ) -> Rc<Worker> {
        let clock = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let seed = clock ^ (id as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let snapshot = Rc::new(Snapshot {
            config: first.config.clone(),
            pools: Vec::new(),
            certs: None,
            acceptor: None,
            generation: 0,
        });
        Rc::new(Worker {
            id,
            current: RefCell::new(snapshot),
            draining: Signal::default(),
            idle: IdleList::default(),
            deadlines: Deadlines::new(),
            closing: Signal::default(),
            exit: Signal::default(),
            open: Rc::new(Cell::new(0)),
            password_checks: CheckCache::default(),
            next_conn: Cell::new(0),
            metrics,
            registry,
            admission,
            listeners: RefCell::new(Vec::new()),
            log,
            background_stop: Rc::new(Cell::new(false)),
            seed,
        })
    }

    /// The generation of the current snapshot (cheaper than cloning it to compare).
    pub fn generation(&self) -> u64 {
        self.current.borrow().generation
    }

    /// The snapshot new connections get.
    pub fn snapshot(&self) -> Rc<Snapshot> {
        self.current.borrow().clone()
    }

    /// The current snapshot and the index of the listener configured at `bind` in it, when the
    /// current config still has that listener with `kind`: what a connection accepted there
    /// switches to at its next request. `None` keeps the connection on its own snapshot.
    pub fn snapshot_for(
        &self,
        bind: SocketAddr,
        kind: ListenerKind,
    ) -> Option<(Rc<Snapshot>, usize)> {
        let snapshot = self.snapshot();
        let index =
            snapshot.config.listeners.iter().position(|l| l.bind == bind && l.kind == kind)?;
        Some((snapshot, index))
    }

    /// A new connection id: the worker in the top 16 bits, a counter below.
    pub fn next_connection_id(&self) -> u64 {
        let n = self.next_conn.get();
        self.next_conn.set(n + 1);
        ((self.id as u64) << 48) | n
    }

    /// Switch to `generation`: see the module doc. Fails only if a new listener's socket
    /// cannot be registered with this worker's driver; the snapshot is then not switched.
    pub fn apply(self: &Rc<Self>, generation: Generation) -> Result<(), String> {
        let started_at = std::time::Instant::now();
        let Generation { config, tls, sockets } = generation;
        let mut started = Vec::with_capacity(sockets.len());
        for (bind, socket) in sockets {
            let listener = TcpListener::from_std(socket)
                .map_err(|e| format!("worker {}: listener {bind}: {e}", self.id))?;
            started.push((bind, Rc::new(listener)));
        }

        let old = self.snapshot();
        self.admission.set(config.globals.caps);
        let pools = self.pools_for(&config, &old);
        let acceptor = match (&tls, &old.acceptor) {
            (Some(ctx), Some(acceptor)) if acceptor.serves(ctx) => Some(acceptor.clone()),
            // One acceptor per worker and generation: its own rustls config and session cache,
            // so handshakes on different workers never contend on a lock.
            (Some(ctx), _) => Some(Rc::new(TlsAcceptor::new(ctx))),
            (None, _) => None,
        };
        let snapshot = Rc::new(Snapshot {
            certs: tls.as_ref().map(|ctx| ctx.store().clone()),
            config: config.clone(),
            pools,
            acceptor,
            generation: old.generation + 1,
        });
        self.registry
            .set_upstreams(self.id, snapshot.pools.iter().flat_map(|p| p.entries()).collect());
        *self.current.borrow_mut() = snapshot;

        // Listeners: stop those the new config dropped, start the new ones.
        self.listeners.borrow_mut().retain(|handle| {
            let kept = config.listeners.iter().any(|l| l.bind == handle.bind);
            if !kept {
                handle.stop();
            }
            kept
        });
        for (bind, listener) in started {
            let handle = AcceptHandle::new(bind, listener.clone());
            monoio::spawn(accept_loop(self.clone(), bind, listener, handle.stopped()));
            self.listeners.borrow_mut().push(handle);
        }
        tracing::debug!(worker = self.id, took = ?started_at.elapsed(), "switched to the new configuration");
        Ok(())
    }

    /// The pools for `config`: an unchanged upstream set keeps its pool (idle connections,
    /// health, counters); a new one inherits the health of the same upstreams; pools of sets
    /// that are gone are retired (their idle connections close, busy ones finish).
    fn pools_for(&self, config: &Config, old: &Snapshot) -> Vec<Rc<UpstreamPool>> {
        let mut previous: Vec<Option<Rc<UpstreamPool>>> =
            old.pools.iter().cloned().map(Some).collect();
        let generation_seed =
            self.seed.wrapping_add((old.generation + 1).wrapping_mul(0x1000_0000));
        let pools: Vec<Rc<UpstreamPool>> = config
            .upstream_sets
            .iter()
            .enumerate()
            .map(|(i, set)| {
                let same = previous.iter_mut().find(|p| p.as_ref().is_some_and(|p| p.set == *set));
                if let Some(pool) = same.and_then(Option::take) {
                    return pool;
                }
                let pool =
                    Rc::new(UpstreamPool::new(set.clone(), generation_seed.wrapping_add(i as u64)));
                for old in &old.pools {
                    pool.inherit_health(old);
                }
                if pool.set.health.is_some() {
                    monoio::spawn(run_health_checks(pool.clone(), self.background_stop.clone()));
                }
                pool
            })
            .collect();
        for retired in previous.into_iter().flatten() {
            retired.retire();
        }
        pools
    }

    /// Begin a graceful stop: stop accepting at once, let in-flight requests finish and idle
    /// connections close; when `grace` is over, close the relays (1001) and exit once nothing
    /// is open (or [`limits::CLOSE_LINGER`] later).
    pub async fn drain(self: Rc<Self>, grace: Duration) {
        let deadline = Instant::now() + grace;
        for handle in self.listeners.borrow_mut().drain(..) {
            handle.stop();
        }
        self.draining.set();
        self.background_stop.set(true);
        self.wait_until_closed(deadline).await;
        if self.open.get() > 0 {
            tracing::info!(
                worker = self.id,
                open = self.open.get(),
                "grace period over; closing what is left"
            );
            self.closing.set();
            self.wait_until_closed(Instant::now() + limits::CLOSE_LINGER).await;
        }
        tracing::info!(worker = self.id, open = self.open.get(), "worker stopped");
        self.exit.set();
    }

    async fn wait_until_closed(&self, deadline: Instant) {
        while self.open.get() > 0 && Instant::now() < deadline {
            monoio::time::sleep(limits::DRAIN_POLL_INTERVAL).await;
        }
    }

    /// At exit, on the worker's thread: stop listening and let go of every task still waiting
    /// on this worker's signals, so that they (and the connections they hold) are freed here
    /// rather than kept alive by the worker they hold.
    pub fn release(&self) {
        for handle in self.listeners.borrow_mut().drain(..) {
            handle.stop();
        }
        self.draining.forget_waiters();
        self.closing.forget_waiters();
        self.exit.forget_waiters();
    }

    /// Stop at once: every task ends with the runtime.
    pub fn stop_now(&self) {
        self.background_stop.set(true);
        self.exit.set();
    }

    /// The Prometheus exposition, for the `metrics` handler: what the admin endpoint serves.
    pub fn render_metrics(&self) -> String {
        crate::metrics::export::render(&self.registry, &crate::metrics::process::read())
    }

    /// Hand one access-log line to the log writer (see `logs`).
    pub fn log_line(&self, output: &LogOutput, line: &str) {
        if let Some(log) = &self.log {
            log.line(output, line);
        }
    }

    /// Hand partly filled log buffers over now and then, so a quiet site's lines do not wait
    /// for a buffer to fill; and everything when the worker stops.
    pub async fn flush_logs(self: Rc<Self>) {
        let Some(log) = &self.log else { return };
        while !self.exit.is_set() {
            let tick = monoio::time::sleep(limits::LOG_FLUSH_INTERVAL);
            let (tick, exit) = (std::pin::pin!(tick), std::pin::pin!(self.exit.wait()));
            monoio::select! {
                () = tick => log.flush(),
                () = exit => {}
            }
        }
        log.flush_blocking();
    }

    /// Close idle pooled connections past their keepalive, now and then, on the current pools.
    pub async fn sweep_pools(self: Rc<Self>) {
        while !self.background_stop.get() {
            monoio::time::sleep(limits::POOL_SWEEP_INTERVAL).await;
            for pool in &self.snapshot().pools {
                pool.sweep_idle();
            }
        }
    }
}
