//! Metrics: what every worker counts on the data path, what the control plane counts, and the
//! Prometheus text exposition that sums them when scraped (`export`).
//!
//! Workers never share a counter. Each worker owns one [`WorkerMetrics`] and is the only
//! thread that writes it; a scrape (the admin endpoint, or the `metrics` handler on a worker)
//! reads every worker's values and adds them up. The values are atomics only so that the
//! scraping thread may read them: the owner updates them with a relaxed load and a relaxed
//! store ([`Counter::add`]), which on x86-64 and AArch64 compile to a plain load and store, no
//! locked read-modify-write, and each worker's block sits on cache lines of its own. A scrape
//! may therefore see a counter one increment behind, never a torn or decreasing value.
//!
//! Names, labels and help texts live in `names`; docs/operations.md explains each metric.

pub mod export;
pub mod names;
pub mod process;

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A monotonic count written by one thread (see the module doc), read by any.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    #[inline]
    pub fn add(&self, n: u64) {
        // Single writer: a load and a store cannot lose an update, and need no lock prefix.
        if cfg!(not(feature = "bench-no-metrics")) {
            self.0.store(self.0.load(Relaxed).wrapping_add(n), Relaxed);
        }
    }

    #[inline]
    pub fn inc(&self) {
        self.add(1);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Relaxed)
    }
}

/// A value that goes up and down, written by one thread, read by any. Stored as a `u64` that
/// wraps on `dec`; the sum over workers is exact even when one worker's share is "negative"
/// (a connection accepted on one snapshot and closed on another still belongs to one worker).
#[derive(Debug, Default)]
pub struct Gauge(AtomicU64);

impl Gauge {
    #[inline]
    pub fn inc(&self) {
        if cfg!(not(feature = "bench-no-metrics")) {
            self.0.store(self.0.load(Relaxed).wrapping_add(1), Relaxed);
        }
    }

    #[inline]
    pub fn dec(&self) {
        if cfg!(not(feature = "bench-no-metrics")) {
            self.0.store(self.0.load(Relaxed).wrapping_sub(1), Relaxed);
        }
    }

    /// This writer's share, as a two's-complement delta.
    pub fn raw(&self) -> u64 {
        self.0.load(Relaxed)
    }
}

/// Upper bounds (seconds) of the request duration histogram's buckets, `+Inf` implied. Finer
/// than Prometheus's defaults at the low end: a proxied request here takes tens of µs to a few
/// ms, and that is the range an operator compares.
pub const DURATION_BUCKETS: [f64; 14] =
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// [`DURATION_BUCKETS`] in nanoseconds, so that observing compares integers.
const DURATION_BUCKETS_NS: [u64; 14] = [
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
];

/// A histogram of durations with [`DURATION_BUCKETS`], one writer.
#[derive(Debug, Default)]
pub struct Histogram {
    /// Non-cumulative counts per bucket; the last entry is `+Inf`.
    buckets: [Counter; DURATION_BUCKETS.len() + 1],
    sum_nanos: Counter,
}

impl Histogram {
    pub fn observe(&self, took: Duration) {
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        let bucket = DURATION_BUCKETS_NS.partition_point(|le| *le < nanos);
        self.buckets[bucket].inc();
        self.sum_nanos.add(nanos);
    }
}

/// The lowest and highest status codes counted by code.
const FIRST_STATUS: u16 = 100;
const LAST_STATUS: u16 = 599;

/// Everything one worker counts. Written only by that worker's thread.
#[derive(Debug)]
#[repr(align(128))]
pub struct WorkerMetrics {
    /// Responses by status code, `FIRST_STATUS..=LAST_STATUS`.
    requests: Box<[Counter]>,
    pub request_duration: Histogram,
    pub websockets_open: Gauge,
    /// Bytes relayed client → upstream after an upgrade.
    pub relayed_upstream: Counter,
    /// Bytes relayed upstream → client after an upgrade.
    pub relayed_downstream: Counter,
    pub connections_open_plain: Gauge,
    pub connections_open_tls: Gauge,
    pub tls_handshakes_ok: Counter,
    pub tls_handshakes_error: Counter,
    /// Access-log lines dropped because the log writer fell behind.
    pub log_lines_dropped: Counter,
    /// Connections closed at accept by `max_connections`.
    pub refused_max_connections: Counter,
    /// Connections closed at accept by `max_connections_per_ip`.
    pub refused_per_ip: Counter,
    /// Idle keep-alive connections closed because accept ran out of descriptors.
    pub shed_idle_connections: Counter,
    /// Connections closed while their PROXY header was read, by [`PROXY_HEADER_REFUSALS`].
    pub proxy_header_refused: [Counter; PROXY_HEADER_REFUSALS.len()],
}

/// Why a connection was closed while its PROXY protocol header was read: the `reason` label
/// of `ringproxy_proxy_protocol_refused_total`, indexing `proxy_header_refused`.
pub const PROXY_HEADER_REFUSALS: [&str; 5] =
    ["timeout", "missing", "not_allowed", "malformed", "closed"];

impl Default for WorkerMetrics {
    fn default() -> Self {
        WorkerMetrics {
            requests: (FIRST_STATUS..=LAST_STATUS).map(|_| Counter::default()).collect(),
            request_duration: Histogram::default(),
            websockets_open: Gauge::default(),
            relayed_upstream: Counter::default(),
            relayed_downstream: Counter::default(),
            connections_open_plain: Gauge::default(),
            connections_open_tls: Gauge::default(),
            tls_handshakes_ok: Counter::default(),
            tls_handshakes_error: Counter::default(),
            log_lines_dropped: Counter::default(),
            refused_max_connections: Counter::default(),
            refused_per_ip: Counter::default(),
            shed_idle_connections: Counter::default(),
            proxy_header_refused: std::array::from_fn(|_| Counter::default()),
        }
    }
}

impl WorkerMetrics {
    /// Count a response with `status` that took `took` from the first byte of the request head
    /// to the end of the response (to the `101` for an upgrade). Statuses outside 100–599 (0:
    /// nothing could be sent) are not counted.
    pub fn request(&self, status: u16, took: Duration) {
        if let Some(counter) =
            status.checked_sub(FIRST_STATUS).and_then(|i| self.requests.get(usize::from(i)))
        {
            counter.inc();
            self.request_duration.observe(took);
        }
    }
}

/// What the control plane counts (reloads); written under no contention from one thread at a
/// time (the reload path is serialized), so plain atomics.
#[derive(Debug, Default)]
pub struct ControlMetrics {
    pub reloads_ok: AtomicU64,
    pub reloads_failed: AtomicU64,
    /// Unix time of the last successful reload (or of the start), in milliseconds.
    pub last_reload_success_ms: AtomicU64,
}

impl ControlMetrics {
    pub fn record_reload(&self, ok: bool) {
        if ok {
            self.reloads_ok.fetch_add(1, Relaxed);
            self.last_reload_success_ms.store(unix_millis(SystemTime::now()), Relaxed);
        } else {
            self.reloads_failed.fetch_add(1, Relaxed);
        }
    }
}

fn unix_millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// One upstream's state on one worker, published for scrapes and the admin API. Written only
/// by the worker that owns the pool.
#[derive(Debug, Default)]
pub struct UpstreamStats {
    /// 1 while the upstream is available to new requests on this worker.
    pub healthy: AtomicU64,
    /// Requests in flight.
    pub in_flight: Gauge,
    /// Failures still counted against it (passive health, within `fail_duration`).
    pub fails: AtomicU64,
}

/// An upstream as the admin API and metrics name it.
#[derive(Debug, Clone)]
pub struct UpstreamEntry {
    /// As written in the Caddyfile (`127.0.0.1:8080`).
    pub address: String,
    pub stats: Arc<UpstreamStats>,
}

/// Every metric source of one running proxy: one block per worker, the control plane's
/// counters, and the upstreams of each worker's current snapshot. Shared by the workers, the
/// admin endpoint and the `metrics` handler; the mutex guards only the upstream list, which a
/// worker replaces when it switches snapshots, never on the hot path.
#[derive(Debug, Default)]
pub struct Registry {
    workers: Mutex<Vec<Arc<WorkerMetrics>>>,
    pub control: ControlMetrics,
    upstreams: Mutex<Vec<Vec<UpstreamEntry>>>,
    /// Certificate expiry times by name, published by the control plane.
    certificates: Mutex<Vec<(String, SystemTime)>>,
    start: Option<SystemTime>,
}

impl Registry {
    pub fn new() -> Arc<Registry> {
        let registry = Registry { start: Some(SystemTime::now()), ..Registry::default() };
        registry.control.last_reload_success_ms.store(unix_millis(SystemTime::now()), Relaxed);
        Arc::new(registry)
    }

    /// A new worker's block; `index` is the worker's number.
    pub fn add_worker(&self, index: usize) -> Arc<WorkerMetrics> {
        let metrics = Arc::new(WorkerMetrics::default());
        let mut workers = lock(&self.workers);
        if workers.len() <= index {
            workers.resize_with(index + 1, Default::default);
        }
        workers[index] = metrics.clone();
        let mut upstreams = lock(&self.upstreams);
        if upstreams.len() <= index {
            upstreams.resize_with(index + 1, Vec::new);
        }
        metrics
    }

    /// Worker `index` now serves with these upstreams.
    pub fn set_upstreams(&self, index: usize, entries: Vec<UpstreamEntry>) {
        let mut upstreams = lock(&self.upstreams);
        if upstreams.len() <= index {
            upstreams.resize_with(index + 1, Vec::new);
        }
        upstreams[index] = entries;
    }

    pub fn set_certificates(&self, expiries: Vec<(String, SystemTime)>) {
        *lock(&self.certificates) = expiries;
    }

    pub fn workers(&self) -> Vec<Arc<WorkerMetrics>> {
        lock(&self.workers).clone()
    }

    /// Every worker's upstream entries.
    pub fn upstreams(&self) -> Vec<Vec<UpstreamEntry>> {
        lock(&self.upstreams).clone()
    }

    pub fn certificates(&self) -> Vec<(String, SystemTime)> {
        lock(&self.certificates).clone()
    }

    pub fn start_time(&self) -> SystemTime {
        self.start.unwrap_or(UNIX_EPOCH)
    }
}

/// A poisoned lock only means another thread panicked while holding it; the lists it guards
/// are replaced whole, so they are never half-written.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gauge_shared_by_two_writers_sums_to_the_live_count() {
        let (a, b) = (Gauge::default(), Gauge::default());
        a.inc();
        a.inc();
        b.dec();
        assert_eq!(a.raw().wrapping_add(b.raw()), 1);
    }

    #[test]
    fn requests_outside_100_to_599_are_not_counted() {
        let m = WorkerMetrics::default();
        m.request(0, Duration::from_millis(1));
        m.request(600, Duration::from_millis(1));
        m.request(204, Duration::from_millis(1));
        m.request(599, Duration::from_millis(1));
        assert_eq!(m.requests.iter().map(Counter::get).sum::<u64>(), 2);
        assert_eq!(m.request_duration.buckets.iter().map(Counter::get).sum::<u64>(), 2);
    }

    #[test]
    fn the_nanosecond_bounds_are_the_published_ones() {
        for (ns, le) in DURATION_BUCKETS_NS.iter().zip(DURATION_BUCKETS) {
            assert_eq!(*ns as f64 / 1e9, le);
        }
    }

    #[test]
    fn durations_land_in_the_first_bucket_that_holds_them() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(500));
        h.observe(Duration::from_micros(501));
        h.observe(Duration::from_secs(11));
        assert_eq!(h.buckets[0].get(), 1);
        assert_eq!(h.buckets[1].get(), 1);
        assert_eq!(h.buckets[DURATION_BUCKETS.len()].get(), 1);
        assert_eq!(h.sum_nanos.get(), 500_000 + 501_000 + 11_000_000_000);
    }
}
