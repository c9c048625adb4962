//! Self-test of the benchmark harness (`cargo test --test bench_selftest`): the unit tests of
//! the load tools' modules, plus every scenario run for real against the benchmark backend on
//! 127.0.0.1 (plaintext and TLS, with a CA and leaf made here), so a broken tool is caught by
//! CI instead of producing wrong figures in docs/benchmarks.md.

#![allow(clippy::unwrap_used, reason = "a test or benchmark tool fails by panicking")]
// The modules are shared with the loadgen and backend binaries; each user needs a subset.
#![allow(dead_code)]

#[path = "client.rs"]
mod client;
#[path = "common/mod.rs"]
mod common;
#[path = "plots.rs"]
mod plots;
#[path = "report.rs"]
mod report;
#[path = "scenarios.rs"]
mod scenarios;
#[path = "../backend/server.rs"]
mod server;
#[path = "wrk.rs"]
mod wrk;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use client::{Metrics, Target, TargetArgs};

/// A CA and a `localhost` leaf (ECDSA P-256, as bench/run makes them) in a fresh directory.
fn make_certs() -> PathBuf {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair, PKCS_ECDSA_P256_SHA256};
    let dir = std::env::temp_dir().join(format!("ringproxy-bench-selftest-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &ca, &ca_key)
        .unwrap();
    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    std::fs::write(dir.join("cert.pem"), leaf.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), leaf_key.serialize_pem()).unwrap();
    dir
}

/// Starts the backend on its own thread; returns (plaintext, TLS) addresses.
fn start_backend(certs: &Path) -> (SocketAddr, SocketAddr) {
    let acceptor = tokio_rustls::TlsAcceptor::from(
        common::tls::server_config(&certs.join("cert.pem"), &certs.join("key.pem")).unwrap(),
    );
    let plain = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let tls = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addrs = (plain.local_addr().unwrap(), tls.local_addr().unwrap());
    plain.set_nonblocking(true).unwrap();
    tls.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let local = tokio::task::LocalSet::new();
        local.block_on(&rt, async move {
            let p = tokio::net::TcpListener::from_std(plain).unwrap();
            let t = tokio::net::TcpListener::from_std(tls).unwrap();
            let a = tokio::task::spawn_local(server::accept_loop(p, None));
            let b = tokio::task::spawn_local(server::accept_loop(t, Some(acceptor)));
            let _ = tokio::join!(a, b);
        });
    });
    addrs
}

struct Env {
    certs: PathBuf,
    plain: SocketAddr,
    tls: SocketAddr,
}

fn env() -> &'static Env {
    static ENV: std::sync::OnceLock<Env> = std::sync::OnceLock::new();
    ENV.get_or_init(|| {
        let certs = make_certs();
        let (plain, tls) = start_backend(&certs);
        Env { certs, plain, tls }
    })
}

/// A target for the in-process backend; "the proxy" watched is this test process itself.
fn target(tls: bool) -> Target {
    let e = env();
    Target::new(&TargetArgs {
        addr: if tls { e.tls } else { e.plain },
        host: "localhost".to_owned(),
        tls,
        ca: Some(e.certs.join("ca.pem")),
        pid: Some(std::process::id()),
        clk_tck: 100,
    })
    .unwrap()
}

fn block_on<F: std::future::Future<Output = Result<Metrics, common::ToolError>>>(f: F) -> Metrics {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async {
        tokio::time::timeout(Duration::from_secs(60), f).await.unwrap().unwrap()
    })
}

/// Every CDF quantile is recorded, in order, and agrees with the headline percentiles.
fn assert_cdf_quantiles(m: &Metrics) {
    let values: Vec<f64> = common::stats::CDF_QUANTILES
        .iter()
        .map(|&q| m.get(&common::stats::cdf_metric(q)).unwrap_or_else(|| panic!("p{q}: {m:?}")))
        .collect();
    assert!(values.windows(2).all(|w| w[0] <= w[1]), "{values:?}");
    assert_eq!(m.get("cdf_p50_us"), m.get("p50_us"));
    assert_eq!(m.get("cdf_p99.9_us"), m.get("p999_us"));
}

/// Renders the plots from real metrics collected as bench/run collects them (one round, as
/// the direct target; the subject has no figures here, so it must be skipped) and returns the
/// CDF's SVG after checking it.
fn plot_from(scenario: &str, runs: &[(&str, Metrics)]) -> Vec<String> {
    let mut raw = String::new();
    for (proto, m) in runs {
        for (metric, value) in &m.0 {
            raw.push_str(&format!("1\tdirect\t{scenario}\t{proto}\t{metric}\t{value}\n"));
        }
    }
    let results = report::parse_results(&raw).unwrap();
    let layout = report::Layout {
        targets: vec!["direct".into(), "nginx".into(), "ringproxy".into()],
        baseline: "direct".into(),
        subject: "ringproxy".into(),
        anchors: vec!["nginx".into()],
        pending: vec![],
    };
    let dir = env().certs.join(format!("plots-{scenario}"));
    let plots = plots::write_plots(&results, &layout, &dir, "self-test").unwrap();
    let expected: Vec<String> =
        runs.iter().map(|(proto, _)| format!("{scenario}-{proto}-cdf.svg")).collect();
    assert_eq!(plots.iter().map(|p| p.file.clone()).collect::<Vec<_>>(), expected);
    expected
        .iter()
        .map(|file| {
            let svg = std::fs::read_to_string(dir.join(file)).unwrap();
            plots::check_well_formed(&svg).unwrap_or_else(|e| panic!("{file}: {e}"));
            assert_eq!(svg.matches("<polyline class=\"series\" data-target=\"direct\"").count(), 1);
            assert!(!svg.contains("data-target=\"ringproxy\""));
            svg
        })
        .collect()
}

#[test]
fn pingpong_measures_every_round_trip_over_both_protocols() {
    let mut runs = Vec::new();
    for (tls, proto) in [(false, "plain"), (true, "tls")] {
        let m = block_on(async { scenarios::pingpong(&target(tls), 300, 20, 1920).await });
        assert_eq!(m.get("samples"), Some(300.0));
        let (p50, p99, p999) =
            (m.get("p50_us").unwrap(), m.get("p99_us").unwrap(), m.get("p999_us").unwrap());
        assert!(0.0 < p50 && p50 <= p99 && p99 <= p999, "{m:?}");
        assert!(m.get("cpu_us_per_rt").is_some());
        assert_cdf_quantiles(&m);
        runs.push((proto, m));
    }
    plot_from("pingpong", &runs);
}

#[test]
fn paced_streams_deliver_every_scheduled_message() {
    for tls in [false, true] {
        let m = block_on(async { scenarios::paced(&target(tls), 8, 25.0, 1920, 0.8, 0.2).await });
        assert_eq!(m.get("messages"), Some(160.0));
        // 0.2 s of 0.8 s is warm-up: 3/4 of the messages are counted.
        assert_eq!(m.get("samples"), Some(120.0), "{m:?}");
        assert!(m.get("elapsed_s").unwrap() >= 0.75, "{m:?}");
        assert!(m.get("p50_us").unwrap() > 0.0);
        assert_cdf_quantiles(&m);
        let proto = if tls { "tls" } else { "plain" };
        let svg = plot_from("paced", &[(proto, m)]);
        assert!(svg[0].contains("fraction of messages"));
    }
}

#[test]
fn connrate_counts_complete_responses_only() {
    for tls in [false, true] {
        let m = block_on(async { scenarios::connrate(&target(tls), 0.3, 4).await });
        assert_eq!(m.get("errors"), Some(0.0), "{m:?}");
        assert!(m.get("conns").unwrap() >= 4.0, "{m:?}");
        assert!(m.get("conn_per_s").unwrap() > 0.0);
    }
}

#[test]
fn sequential_times_every_request_and_every_upgrade() {
    for tls in [false, true] {
        let m = block_on(async { scenarios::sequential(&target(tls), 50, 20, 5).await });
        assert_eq!((m.get("get_samples"), m.get("upgrade_samples")), (Some(50.0), Some(20.0)));
        for name in ["get", "upgrade"] {
            let p50 = m.get(&format!("{name}_p50_us")).unwrap();
            let p99 = m.get(&format!("{name}_p99_us")).unwrap();
            assert!(0.0 < p50 && p50 <= p99, "{m:?}");
        }
    }
}

#[test]
fn bulk_reads_exactly_the_requested_bytes() {
    for tls in [false, true] {
        let m = block_on(async { scenarios::bulk(&target(tls), 20_000_000).await });
        assert!(m.get("mb_per_s").unwrap() > 0.0, "{m:?}");
        assert!(m.get("cpu_s_per_gb").is_some());
    }
}

#[test]
fn idle_connections_are_opened_checked_and_measured() {
    let m = block_on(async { scenarios::idle(&target(true), 64, Duration::from_millis(50)).await });
    assert_eq!(m.get("conns"), Some(64.0));
    assert!(m.get("rss_after_kib").unwrap() > 0.0);
    assert!(m.get("kib_per_conn").is_some());
}

#[test]
fn non_loopback_targets_are_refused() {
    let args = TargetArgs {
        addr: "192.0.2.1:80".parse().unwrap(),
        host: "localhost".to_owned(),
        tls: false,
        ca: None,
        pid: None,
        clk_tck: 100,
    };
    assert!(Target::new(&args).is_err());
}

#[test]
fn wrk_figures_are_collected_when_wrk_is_installed() {
    let Some(wrk) =
        ["/usr/bin/wrk", "/usr/local/bin/wrk"].into_iter().find(|p| Path::new(p).exists())
    else {
        eprintln!("wrk is not installed: bench/run installs it; parsing is covered by wrk::tests");
        return;
    };
    // wrk needs a name it can resolve for the URL; `localhost` is what the benchmark uses.
    let m = wrk::run(&target(false), wrk, 4, 1).unwrap();
    assert_eq!(m.get("errors"), Some(0.0), "{m:?}");
    assert!(m.get("req_per_s").unwrap() > 0.0);
}

#[test]
fn reload_counts_applied_reloads_and_loses_nothing_on_a_proxy_that_keeps_streams() {
    let backend = env().plain;
    let caddyfile = |marker: &str| {
        format!(
            "{{\n\tadmin 127.0.0.1:0\n}}\n:0 {{\n\treverse_proxy {backend} {{\n\t\theader_down X-Config {marker}\n\t}}\n}}\n"
        )
    };
    let config =
        ringproxy::config::parse_caddyfile(&caddyfile("a"), "Caddyfile", Path::new(".")).unwrap();
    let options = ringproxy::server::RunOptions { workers: Some(1), ..Default::default() };
    let proxy = ringproxy::server::Server::start(config, options).unwrap();
    let addr = SocketAddr::from(([127, 0, 0, 1], proxy.local_addrs()[0].port()));
    let admin = proxy.admin_addr().unwrap();
    let target = Target::new(&TargetArgs {
        addr,
        host: "localhost".to_owned(),
        tls: false,
        ca: None,
        pid: None,
        clk_tck: 100,
    })
    .unwrap();
    let load = scenarios::Streams { conns: 10, rate: 25.0, size: 1920, secs: 1.5 };
    let configs = vec![caddyfile("a").into_bytes(), caddyfile("b").into_bytes()];
    let reloads = scenarios::Reloads { admin, configs, every: Duration::from_millis(300) };
    let m = block_on(async { scenarios::reload(&target, load, reloads).await });
    assert_eq!(m.get("messages"), Some(380.0), "{m:?}");
    assert_eq!(m.get("lost"), Some(0.0), "{m:?}");
    assert_eq!(m.get("streams_closed"), Some(0.0), "{m:?}");
    assert!(m.get("reloads_ok").unwrap() >= 3.0, "{m:?}");
    assert_eq!(m.get("reloads_failed"), Some(0.0), "{m:?}");
    assert!(m.get("longest_stall_ms").unwrap() > 0.0);
    proxy.shutdown();
}
