//! Question: what does bounding a wait cost, and what does probing a pooled connection cost?
//! Every blocked wait on the data path carries a limit (header, idle, stall timeouts); each
//! keep-alive request has one or two such waits that block (its next head, its upstream's
//! answer), and each reuse of a pooled upstream connection first peeks at it with one
//! nonblocking `recv(MSG_PEEK)` (docs/benchmarks.md, experiments 12 and 14).
//!
//! The waits here are pending exactly once (they wake themselves and are ready on the next
//! poll), as a readiness wait that blocks is, so each iteration pays for one registration and
//! one release: the worker's deadline table (`net::deadline`, what the proxy uses), a monoio
//! timer (what it used before), and a boxed monoio timer (what it used for stall timeouts), each
//! against the bare wait. Run: `cargo bench --bench waits`.

#![allow(clippy::unwrap_used, reason = "a test or benchmark tool fails by panicking")]

use std::future::Future;
use std::hint::black_box;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use ringproxy::net::deadline::Deadlines;
use ringproxy::net::sys::idle_connection_usable;

/// Pending on its first poll (after waking its task), ready on the second.
struct PendingOnce(bool);

impl Future for PendingOnce {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            return Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

type Runtime = monoio::Runtime<monoio::time::TimeDriver<monoio::LegacyDriver>>;

fn runtime() -> Runtime {
    monoio::RuntimeBuilder::<monoio::LegacyDriver>::new().enable_timer().build().unwrap()
}

/// Time `iters` runs of `wait()` inside one runtime, so that entering the runtime is not
/// part of the figure.
fn timed<F, W>(rt: &mut Runtime, iters: u64, wait: W) -> Duration
where
    W: Fn() -> F,
    F: Future,
{
    rt.block_on(async {
        let started = Instant::now();
        for _ in 0..iters {
            black_box(wait().await);
        }
        started.elapsed()
    })
}

fn bench(c: &mut Criterion) {
    let limit = Duration::from_secs(60);
    let mut rt = runtime();
    let deadlines = Deadlines::new();
    rt.block_on(async {
        monoio::spawn(deadlines.clone().sweep());
    });

    c.bench_function("wait/bare", |b| {
        b.iter_custom(|iters| timed(&mut rt, iters, || PendingOnce(false)))
    });
    c.bench_function("wait/deadline_table", |b| {
        b.iter_custom(|iters| timed(&mut rt, iters, || deadlines.within(limit, PendingOnce(false))))
    });
    c.bench_function("wait/monoio_timeout", |b| {
        b.iter_custom(|iters| {
            timed(&mut rt, iters, || monoio::time::timeout(limit, PendingOnce(false)))
        })
    });
    c.bench_function("wait/boxed_monoio_timeout", |b| {
        b.iter_custom(|iters| {
            timed(&mut rt, iters, || Box::pin(monoio::time::timeout(limit, PendingOnce(false))))
        })
    });

    // An idle, healthy pooled connection: the probe finds nothing to read.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let pooled = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (_upstream, _) = listener.accept().unwrap();
    c.bench_function("probe/idle_pooled_connection", |b| {
        b.iter(|| {
            let usable = idle_connection_usable(std::os::fd::AsFd::as_fd(&pooled));
            assert!(black_box(usable));
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
