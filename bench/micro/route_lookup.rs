//! Question: how much does routing cost per request on the hot path? For the seed Caddyfiles
//! (one `reverse_proxy`, and the auth variant with three `handle` blocks), measure host → site
//! selection plus path → handler resolution, the whole of `config::route` that a worker runs
//! for every request head. It should stay in the tens of nanoseconds and never allocate, so it
//! is negligible next to a syscall.
//!
//! Run: `cargo bench --bench route_lookup`.

use std::hint::black_box;
use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion};
use ringproxy::config::route::{resolve, select_site, RequestView};
use ringproxy::config::{parse_caddyfile, Config, Handler};

const SEED: &str = include_str!("../../tests/it/config_cases/seed.Caddyfile");
const SEED_AUTH: &str = include_str!("../../tests/it/config_cases/seed_auth.Caddyfile");

/// A parsed request head as the data path would present it.
struct Head {
    host: &'static str,
    path: &'static str,
}

impl RequestView for Head {
    fn host(&self) -> &str {
        self.host
    }
    fn match_path(&self) -> &str {
        self.path
    }
    fn method(&self) -> &str {
        "GET"
    }
    fn header_values(&self, _name: &str) -> impl Iterator<Item = &[u8]> {
        std::iter::empty()
    }
}

fn tls_listener(config: &Config) -> &ringproxy::config::ListenerConfig {
    config.listeners.iter().find(|l| l.bind.port() == 443).expect("the seed listens on 443")
}

fn route_one(config: &Config, head: &Head) -> Option<usize> {
    let site = select_site(tls_listener(config), head.host)?;
    match resolve(site, head).handler {
        Some(Handler::Proxy(set)) => Some(*set),
        _ => None,
    }
}

fn bench(c: &mut Criterion) {
    let seed = parse_caddyfile(SEED, "Caddyfile", Path::new(".")).expect("seed parses");
    let auth = parse_caddyfile(SEED_AUTH, "Caddyfile", Path::new(".")).expect("seed parses");
    let paths = ["/api/auth/x", "/health", "/api/chat", "/", "/app.js"];

    let mut group = c.benchmark_group("route_lookup");
    for (name, config) in [("seed", &seed), ("seed_auth", &auth)] {
        for path in paths {
            let head = Head { host: "stt.fullen.dev", path };
            assert!(route_one(config, &head).is_some(), "{name} {path} must route");
            group.bench_function(format!("{name} {path}"), |b| {
                b.iter(|| route_one(black_box(config), black_box(&head)))
            });
        }
    }
    let unknown = Head { host: "unknown.example", path: "/" };
    group.bench_function("seed_auth unknown host", |b| {
        b.iter(|| route_one(black_box(&auth), black_box(&unknown)))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
