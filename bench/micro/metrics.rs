//! Question: what do metrics cost a request, and what does a scrape cost? A proxied request
//! updates its worker's status counter and duration histogram (two clock reads around it), an
//! upstream's in-flight gauge twice, and a connection gauge; a scrape sums every worker and
//! renders the text exposition. Compare the per-request figure with the ~25 µs of CPU a proxied
//! request costs end to end (docs/benchmarks.md). Run: `cargo bench --bench metrics`.

#![allow(clippy::unwrap_used, reason = "a test or benchmark tool fails by panicking")]

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use criterion::{criterion_group, criterion_main, Criterion};
use ringproxy::metrics::export::render;
use ringproxy::metrics::process::ProcessStats;
use ringproxy::metrics::{Registry, UpstreamEntry, UpstreamStats};

fn bench(c: &mut Criterion) {
    let registry = Registry::new();
    let worker = registry.add_worker(0);
    let upstream = Arc::new(UpstreamStats::default());

    c.bench_function("metrics/request_updates", |b| {
        let mut status = 200u16;
        b.iter(|| {
            let started = Instant::now();
            upstream.in_flight.inc();
            upstream.in_flight.dec();
            worker.request(black_box(status), started.elapsed());
            // Vary the status so the counter index is not a constant the compiler can hoist.
            status = if status == 200 { 404 } else { 200 };
        })
    });

    // The clock reads alone, to tell their share from the counters'.
    c.bench_function("metrics/two_clock_reads", |b| {
        b.iter(|| {
            let started = Instant::now();
            black_box(started.elapsed())
        })
    });

    c.bench_function("metrics/histogram_observe", |b| {
        let mut took = Duration::from_micros(180);
        b.iter(|| {
            worker.request_duration.observe(black_box(took));
            took = if took.as_micros() == 180 {
                Duration::from_millis(40)
            } else {
                Duration::from_micros(180)
            };
        })
    });

    // A scrape of a two-worker proxy with the seed's two upstreams on each worker, every
    // status code seen once: what an operator's Prometheus asks of the control plane.
    let second = registry.add_worker(1);
    for code in 100..600 {
        worker.request(code, Duration::from_millis(3));
        second.request(code, Duration::from_millis(3));
    }
    for index in 0..2 {
        let entries = ["localhost:3001", "localhost:8080"]
            .iter()
            .map(|address| UpstreamEntry {
                address: (*address).to_owned(),
                stats: Arc::new(UpstreamStats::default()),
            })
            .collect();
        registry.set_upstreams(index, entries);
    }
    registry.set_certificates(vec![("stt.example.dev".to_owned(), SystemTime::now())]);
    let process = ProcessStats {
        resident_bytes: Some(17 << 20),
        cpu: Some(Duration::from_secs(12)),
        open_fds: Some(40),
        max_fds: Some(1 << 20),
    };
    c.bench_function("metrics/scrape_render", |b| {
        b.iter(|| black_box(render(&registry, &process)).len())
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
