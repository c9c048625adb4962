//! Upstreams, per worker: keep-alive pools, load balancing, passive and active health.
//!
//! Everything here is owned by one worker thread (`Rc`/`Cell`/`RefCell`, no locks, no atomics):
//! each worker keeps its own pool and counters for every upstream set in the config snapshot
//! it was built for. Active health checks run as a task on each worker, so the "is it up" bit
//! a request reads is a plain `Cell<bool>` on the same thread.

use std::cell::{Cell, RefCell};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use monoio::net::{TcpStream, UnixStream};

use crate::config::{limits, DialAddr, LbPolicy, Upstream, UpstreamSet};
use crate::metrics::{UpstreamEntry, UpstreamStats};
use crate::net::stream::{PlainStream, Stream};
use crate::net::sys;

/// A live connection to one upstream, from the pool or freshly dialled.
pub struct UpstreamConn {
    pub stream: PlainStream,
    /// Index of the upstream within its set.
    pub upstream: usize,
    /// Came from the pool: a failure before any response byte may be a race with the
    /// upstream's idle close, so the request is retried once on a fresh connection.
    pub reused: bool,
}

struct PooledConn {
    stream: PlainStream,
    idle_since: Instant,
}

/// Per-worker state of one upstream.
struct UpstreamState {
    idle: RefCell<Vec<PooledConn>>,
    /// Requests in flight (for least_conn).
    active: Cell<u32>,
    /// Failure times within `fail_duration` (passive health).
    failures: RefCell<Vec<Instant>>,
    /// Result of the last active health check (true until a check says otherwise).
    healthy: Cell<bool>,
    /// The same facts, published for metrics and the admin API (this worker writes them).
    stats: Arc<UpstreamStats>,
}

/// Per-worker state of one upstream set.
pub struct UpstreamPool {
    pub set: UpstreamSet,
    states: Vec<UpstreamState>,
    cursor: Cell<usize>,
    rng: Cell<u64>,
    /// The config that named this set was replaced and the set is not in the new one: no new
    /// idle connections are kept, and its health checks stop. Requests still in flight on it
    /// finish normally.
    retired: Cell<bool>,
}

impl UpstreamPool {
    pub fn new(set: UpstreamSet, seed: u64) -> Self {
        let states = set
            .upstreams
            .iter()
            .map(|_| UpstreamState {
                idle: RefCell::new(Vec::new()),
                active: Cell::new(0),
                failures: RefCell::new(Vec::new()),
                healthy: Cell::new(true),
                stats: Arc::new(UpstreamStats { healthy: 1.into(), ..UpstreamStats::default() }),
            })
            .collect();
        UpstreamPool {
            set,
            states,
            cursor: Cell::new(0),
            rng: Cell::new(seed | 1),
            retired: Cell::new(false),
        }
    }

    /// Carry the active health results of `old`'s upstreams over to the same upstreams here,
    /// so a reload does not send traffic to an upstream that a check found down.
    pub fn inherit_health(&self, old: &UpstreamPool) {
        for (state, upstream) in self.states.iter().zip(&self.set.upstreams) {
            let same = old.set.upstreams.iter().position(|u| u == upstream);
            if let Some(i) = same {
                let healthy = old.states[i].healthy.get();
                state.healthy.set(healthy);
                state.stats.healthy.store(u64::from(healthy), Relaxed);
            }
        }
    }

    /// This pool's set left the config: close its idle connections, keep no more, stop its
    /// health checks.
    pub fn retire(&self) {
        self.retired.set(true);
        for state in &self.states {
            state.idle.borrow_mut().clear();
        }
    }

    pub fn is_retired(&self) -> bool {
        self.retired.get()
    }

    /// The upstreams with their published state, for the metrics registry.
    pub fn entries(&self) -> Vec<UpstreamEntry> {
        self.set
            .upstreams
            .iter()
            .zip(&self.states)
            .map(|(u, s)| UpstreamEntry { address: u.display.clone(), stats: s.stats.clone() })
            .collect()
    }

    pub fn upstream(&self, index: usize) -> &Upstream {
        &self.set.upstreams[index]
    }

    fn random(&self) -> u64 {
        // xorshift64: a per-worker generator is plenty for spreading load.
        let mut x = self.rng.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng.set(x);
        x
    }

    fn available(&self, index: usize, now: Instant) -> bool {
        let state = &self.states[index];
        let window = self.set.fail_duration;
        let fails = if window.is_zero() {
            0
        } else {
            let mut failures = state.failures.borrow_mut();
            failures.retain(|t| now.duration_since(*t) < window);
            failures.len()
        };
        let available = state.healthy.get() && fails < self.set.max_fails.max(1) as usize;
        state.stats.fails.store(fails as u64, Relaxed);
        state.stats.healthy.store(u64::from(available), Relaxed);
        available
    }

    /// The order in which to try upstreams for one request: the policy's pick first, then the
    /// other available upstreams (a dial failure moves on instead of answering 502 at once,
    /// unlike Caddy's default). Upstreams marked down (health check or passive failures) are
    /// left out; empty when all are down, which the caller answers with 502.
    pub fn attempt_order(&self, client_ip: IpAddr) -> Vec<usize> {
        let n = self.states.len();
        let now = Instant::now();
        let mut available: Vec<usize> = (0..n).filter(|i| self.available(*i, now)).collect();
        if available.is_empty() {
            return Vec::new();
        }
        let first = match self.set.lb_policy {
            LbPolicy::First => 0,
            LbPolicy::RoundRobin => {
                let c = self.cursor.get();
                self.cursor.set(c.wrapping_add(1));
                c % available.len()
            }
            LbPolicy::Random => (self.random() % available.len() as u64) as usize,
            LbPolicy::LeastConn => {
                let min = available.iter().map(|i| self.states[*i].active.get()).min().unwrap_or(0);
                let ties: Vec<usize> = (0..available.len())
                    .filter(|k| self.states[available[*k]].active.get() == min)
                    .collect();
                ties[(self.random() % ties.len() as u64) as usize]
            }
            LbPolicy::IpHash => (hash_ip(client_ip) % available.len() as u64) as usize,
        };
        available.rotate_left(first);
        available
    }

    /// Record a failed attempt (passive health).
    pub fn record_failure(&self, index: usize) {
        if !self.set.fail_duration.is_zero() {
            self.states[index].failures.borrow_mut().push(Instant::now());
            self.available(index, Instant::now());
        }
    }

    pub fn set_healthy(&self, index: usize, healthy: bool) {
        self.states[index].healthy.set(healthy);
        self.available(index, Instant::now());
    }

    pub fn begin_request(&self, index: usize) {
        let state = &self.states[index];
        state.active.set(state.active.get() + 1);
        state.stats.in_flight.inc();
    }

    pub fn end_request(&self, index: usize) {
        let state = &self.states[index];
        if state.active.get() > 0 {
            state.active.set(state.active.get() - 1);
            state.stats.in_flight.dec();
        }
    }

    /// A pooled idle connection that still looks alive, or `None`.
    ///
    /// Every connection is probed (`MSG_PEEK`) before it is handed out, however briefly it sat
    /// idle: an upstream that wrote anything while the connection was idle (a body after a
    /// `204`, `304` or an answer to `HEAD`, more bytes than its `Content-Length`) would have
    /// those bytes read as the next request's response, and one that closed it would cost a
    /// retry (or, for a request that must not be replayed, a `502`). Watching idle connections
    /// instead would keep a readiness wait armed per pooled connection; the probe is one
    /// syscall per reuse (its cost is experiment 12 in docs/benchmarks.md).
    pub fn take_idle(&self, index: usize) -> Option<UpstreamConn> {
        let keepalive = self.set.transport.keepalive?;
        let mut idle = self.states[index].idle.borrow_mut();
        while let Some(conn) = idle.pop() {
            if conn.idle_since.elapsed() >= keepalive {
                continue;
            }
            if sys::idle_connection_usable(conn.stream.fd()) {
                return Some(UpstreamConn { stream: conn.stream, upstream: index, reused: true });
            }
            tracing::debug!(
                upstream = %self.set.upstreams[index].display,
                "pooled connection closed or sent bytes while idle; not reused"
            );
        }
        None
    }

    /// Return a connection whose last exchange completed cleanly.
    pub fn put_idle(&self, conn: UpstreamConn) {
        if self.set.transport.keepalive.is_none() || self.retired.get() {
            return;
        }
        let mut idle = self.states[conn.upstream].idle.borrow_mut();
        if idle.len() < self.set.transport.keepalive_idle_conns {
            idle.push(PooledConn { stream: conn.stream, idle_since: Instant::now() });
        }
    }

    /// Close pooled connections idle for longer than the keepalive time.
    pub fn sweep_idle(&self) {
        let Some(keepalive) = self.set.transport.keepalive else {
            return;
        };
        for state in &self.states {
            state.idle.borrow_mut().retain(|c| c.idle_since.elapsed() < keepalive);
        }
    }
}

fn hash_ip(ip: IpAddr) -> u64 {
    // FNV-1a over the address bytes: stable across workers and restarts, which is what
    // ip_hash promises (the same client lands on the same upstream).
    let bytes: Vec<u8> = match ip {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.octets().to_vec(),
            None => v6.octets().to_vec(),
        },
    };
    bytes
        .iter()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ *b as u64).wrapping_mul(0x100_0000_01b3))
}

/// A dial that failed for want of a local resource (descriptors, memory, ephemeral ports):
/// this process's fault, which says nothing about the upstream, so passive health does not
/// count it.
pub fn is_local_fault(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM | libc::EADDRNOTAVAIL)
    )
}

/// Dial one upstream, trying each of its resolved addresses within `timeout` overall.
pub async fn dial(upstream: &Upstream, timeout: Duration) -> io::Result<PlainStream> {
    let deadline = Instant::now() + timeout;
    let mut last = io::Error::new(io::ErrorKind::NotFound, "upstream has no addresses");
    for addr in &upstream.addrs {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        let connected = match addr {
            DialAddr::Tcp(addr) => monoio::time::timeout(left, TcpStream::connect_addr(*addr))
                .await
                .map(|socket| socket.and_then(PlainStream::new)),
            // Refused (no listener), missing or not a socket: all answered at once by connect(2),
            // so a restarting upstream costs no dial timeout. A full listen backlog (where TCP
            // would queue the SYN) is refused at once (EAGAIN) on a nonblocking connect, or
            // waited out on a blocking one, depending on the driver; either way within `left`.
            DialAddr::Unix(path) => monoio::time::timeout(left, UnixStream::connect(path))
                .await
                .map(|socket| socket.and_then(PlainStream::unix)),
        };
        match connected {
            Ok(Ok(stream)) => return Ok(stream),
            Ok(Err(e)) => last = e,
            Err(_) => last = io::Error::new(io::ErrorKind::TimedOut, "dial timeout"),
        }
    }
    Err(last)
}

/// Periodic active health checks for one set, on the current worker. Sends
/// `GET <health_uri>` with `Connection: close`; a 2xx or 3xx status within `timeout` is
/// healthy.
pub async fn run_health_checks(pool: Rc<UpstreamPool>, stop: Rc<Cell<bool>>) {
    let Some(check) = pool.set.health.clone() else {
        return;
    };
    while !stop.get() && !pool.is_retired() {
        for index in 0..pool.set.upstreams.len() {
            let upstream = pool.upstream(index).clone();
            let healthy = matches!(
                monoio::time::timeout(check.timeout, probe_health(&upstream, &check.uri)).await,
                Ok(Ok(true))
            );
            if healthy != pool.states[index].healthy.get() {
                if healthy {
                    tracing::info!(upstream = %upstream.display, "upstream healthy again");
                } else {
                    tracing::warn!(upstream = %upstream.display, uri = %check.uri, "upstream failed its health check");
                }
            }
            pool.set_healthy(index, healthy);
        }
        monoio::time::sleep(check.interval).await;
    }
}

async fn probe_health(upstream: &Upstream, uri: &str) -> io::Result<bool> {
    let stream = dial(upstream, limits::HEALTH_CHECK_DIAL_TIMEOUT).await?;
    // A unix socket has no host to name; Caddy's checks send `localhost`.
    let host = if upstream.is_unix() { "localhost" } else { &upstream.display };
    let request = format!(
        "GET {uri} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: ringproxy-health\r\n\
         Connection: close\r\n\r\n"
    );
    crate::proxy::io::write_all(&stream, request.as_bytes()).await?;
    let mut head = [0u8; 32];
    let mut got = 0;
    while got < 12 {
        match stream.try_read(&mut head[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => stream.readable().await?,
            Err(e) => return Err(e),
        }
    }
    // "HTTP/1.1 200"
    let status = head
        .get(9..12)
        .and_then(|s| std::str::from_utf8(s).ok())
        .and_then(|s| s.parse::<u16>().ok());
    Ok(matches!(status, Some(200..=399)))
}

/// For logs: the TCP address actually connected to (`None` for a unix socket, whose path is
/// the upstream's name).
pub fn peer(stream: &PlainStream) -> Option<SocketAddr> {
    stream.tcp()?.peer_addr().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(n: usize, policy: LbPolicy, fail_duration: Duration) -> UpstreamSet {
        UpstreamSet {
            upstreams: (0..n)
                .map(|i| Upstream {
                    display: format!("127.0.0.1:{}", 9000 + i),
                    addrs: vec![DialAddr::Tcp(SocketAddr::from(([127, 0, 0, 1], 9000 + i as u16)))],
                })
                .collect(),
            lb_policy: policy,
            fail_duration,
            ..UpstreamSet::default()
        }
    }

    const CLIENT: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 7));

    #[test]
    fn round_robin_rotates_and_lists_every_upstream_as_fallback() {
        let pool = UpstreamPool::new(set(3, LbPolicy::RoundRobin, Duration::ZERO), 1);
        assert_eq!(pool.attempt_order(CLIENT), vec![0, 1, 2]);
        assert_eq!(pool.attempt_order(CLIENT), vec![1, 2, 0]);
        assert_eq!(pool.attempt_order(CLIENT), vec![2, 0, 1]);
        assert_eq!(pool.attempt_order(CLIENT), vec![0, 1, 2]);
    }

    #[test]
    fn first_always_starts_with_the_first_available() {
        let pool = UpstreamPool::new(set(3, LbPolicy::First, Duration::ZERO), 1);
        assert_eq!(pool.attempt_order(CLIENT), vec![0, 1, 2]);
        pool.set_healthy(0, false);
        assert_eq!(pool.attempt_order(CLIENT), vec![1, 2]);
    }

    #[test]
    fn ip_hash_is_stable_per_client() {
        let pool = UpstreamPool::new(set(5, LbPolicy::IpHash, Duration::ZERO), 1);
        let first = pool.attempt_order(CLIENT)[0];
        for _ in 0..10 {
            assert_eq!(pool.attempt_order(CLIENT)[0], first);
        }
        let mapped: IpAddr = "::ffff:10.0.0.7".parse().unwrap();
        assert_eq!(pool.attempt_order(mapped)[0], first);
    }

    #[test]
    fn least_conn_prefers_the_idle_upstream() {
        let pool = UpstreamPool::new(set(3, LbPolicy::LeastConn, Duration::ZERO), 7);
        pool.begin_request(0);
        pool.begin_request(2);
        assert_eq!(pool.attempt_order(CLIENT)[0], 1);
        pool.end_request(0);
        pool.begin_request(1);
        assert_eq!(pool.attempt_order(CLIENT)[0], 0);
    }

    #[test]
    fn random_covers_every_upstream() {
        let pool = UpstreamPool::new(set(3, LbPolicy::Random, Duration::ZERO), 99);
        let mut seen = [false; 3];
        for _ in 0..200 {
            seen[pool.attempt_order(CLIENT)[0]] = true;
        }
        assert_eq!(seen, [true; 3]);
    }

    #[test]
    fn a_failed_upstream_is_skipped_for_fail_duration_then_returns() {
        let pool = UpstreamPool::new(set(2, LbPolicy::First, Duration::from_millis(80)), 1);
        pool.record_failure(0);
        assert_eq!(pool.attempt_order(CLIENT), vec![1]);
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(pool.attempt_order(CLIENT), vec![0, 1]);
    }

    #[test]
    fn published_stats_follow_health_failures_and_in_flight_requests() {
        let pool = UpstreamPool::new(set(2, LbPolicy::First, Duration::from_secs(60)), 1);
        let entries = pool.entries();
        assert_eq!(entries[0].address, "127.0.0.1:9000");
        let stats = &entries[0].stats;
        assert_eq!(stats.healthy.load(Relaxed), 1);
        pool.begin_request(0);
        pool.begin_request(0);
        pool.end_request(0);
        assert_eq!(stats.in_flight.raw(), 1);
        pool.record_failure(0);
        assert_eq!(stats.fails.load(Relaxed), 1);
        assert_eq!(stats.healthy.load(Relaxed), 0, "max_fails 1 reached");
        pool.set_healthy(1, false);
        assert_eq!(entries[1].stats.healthy.load(Relaxed), 0);
    }

    #[test]
    fn a_new_pool_inherits_health_of_the_same_upstreams_and_a_retired_one_keeps_nothing() {
        let old = UpstreamPool::new(set(2, LbPolicy::First, Duration::ZERO), 1);
        old.set_healthy(1, false);
        let new = UpstreamPool::new(set(3, LbPolicy::RoundRobin, Duration::ZERO), 2);
        new.inherit_health(&old);
        assert_eq!(new.attempt_order(CLIENT), vec![0, 2]);
        old.retire();
        assert!(old.is_retired());
        assert!(old.take_idle(0).is_none());
    }

    #[test]
    fn running_out_of_local_resources_is_not_the_upstreams_fault() {
        for errno in [libc::EMFILE, libc::ENFILE, libc::ENOBUFS, libc::ENOMEM, libc::EADDRNOTAVAIL]
        {
            assert!(is_local_fault(&io::Error::from_raw_os_error(errno)), "{errno}");
        }
        for errno in [libc::ECONNREFUSED, libc::ECONNRESET, libc::ETIMEDOUT, libc::EHOSTUNREACH] {
            assert!(!is_local_fault(&io::Error::from_raw_os_error(errno)), "{errno}");
        }
        assert!(!is_local_fault(&io::Error::new(io::ErrorKind::TimedOut, "dial timeout")));
    }

    #[test]
    fn without_fail_duration_failures_are_not_remembered() {
        let pool = UpstreamPool::new(set(2, LbPolicy::First, Duration::ZERO), 1);
        pool.record_failure(0);
        assert_eq!(pool.attempt_order(CLIENT), vec![0, 1]);
    }
}
