//! The benchmark load generator (`cargo bench --bench loadgen -- <scenario> …`), driven by
//! bench/run: one scenario per invocation against one target, results printed as
//! `metric<TAB>value` lines; plus `report`, which turns a run's collected lines into the tables
//! of docs/benchmarks.md and, with `--plots`, SVG plots next to it (plots.rs).
//!
//! Everything runs on one thread (bench/run pins it, with the backend, to the core the proxy
//! does not use); only the paced scenario adds a ticker thread for precise send times.

// Cargo builds harness=false benches with cfg(test) but no test harness: the shared modules'
// #[test] functions vanish and leave their test-only imports and helpers unused.
#![cfg_attr(test, allow(unused_imports, dead_code))]

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

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
#[path = "wrk.rs"]
mod wrk;

use client::{Target, TargetArgs};
use common::ToolError;

#[derive(Parser, Debug)]
#[command(about = "ringproxy benchmark load generator")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// WebSocket round trips on one connection, one frame in flight.
    Pingpong {
        #[command(flatten)]
        target: TargetArgs,
        #[arg(long, default_value_t = 20_000)]
        rounds: usize,
        #[arg(long, default_value_t = 1_000)]
        warmup: usize,
        #[arg(long, default_value_t = 1_920)]
        size: usize,
    },
    /// Many WebSockets sending on a fixed schedule (open loop).
    Paced {
        #[command(flatten)]
        target: TargetArgs,
        #[arg(long, default_value_t = 200)]
        conns: usize,
        /// Messages per second per connection.
        #[arg(long, default_value_t = 12.5)]
        rate: f64,
        #[arg(long, default_value_t = 1_920)]
        size: usize,
        #[arg(long, default_value_t = 20.0)]
        secs: f64,
        /// Leading seconds whose messages are sent but not counted in the percentiles.
        #[arg(long, default_value_t = 1.0)]
        warmup_secs: f64,
    },
    /// HTTP keep-alive small GETs with wrk.
    Wrk {
        #[command(flatten)]
        target: TargetArgs,
        #[arg(long, default_value = "wrk")]
        wrk: String,
        #[arg(long, default_value_t = 64)]
        conns: usize,
        #[arg(long, default_value_t = 5)]
        secs: u64,
    },
    /// A new connection (and with --tls a full handshake) per request.
    Connrate {
        #[command(flatten)]
        target: TargetArgs,
        #[arg(long, default_value_t = 5.0)]
        secs: f64,
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
    },
    /// One large download.
    Bulk {
        #[command(flatten)]
        target: TargetArgs,
        #[arg(long, default_value_t = 2_000_000_000)]
        bytes: u64,
    },
    /// Many idle WebSockets; reports the proxy's RSS growth per connection (needs --pid).
    Idle {
        #[command(flatten)]
        target: TargetArgs,
        #[arg(long, default_value_t = 5_000)]
        conns: usize,
        #[arg(long, default_value_t = 1_000)]
        settle_ms: u64,
    },
    /// Paced streams while the target reloads its config every `--every-ms` (admin `/load`).
    Reload {
        #[command(flatten)]
        target: TargetArgs,
        #[arg(long, default_value_t = 200)]
        conns: usize,
        #[arg(long, default_value_t = 12.5)]
        rate: f64,
        #[arg(long, default_value_t = 1_920)]
        size: usize,
        #[arg(long, default_value_t = 10.0)]
        secs: f64,
        /// The target's admin endpoint.
        #[arg(long)]
        admin: std::net::SocketAddr,
        /// Caddyfiles posted in turn (the first is what the target started with).
        #[arg(long, value_delimiter = ',', required = true)]
        configs: Vec<PathBuf>,
        #[arg(long, default_value_t = 1_000)]
        every_ms: u64,
    },
    /// One request, then one upgrade, at a time, each timed (what a per-request step adds).
    Sequential {
        #[command(flatten)]
        target: TargetArgs,
        #[arg(long, default_value_t = 5_000)]
        rounds: usize,
        #[arg(long, default_value_t = 2_000)]
        upgrades: usize,
        #[arg(long, default_value_t = 200)]
        warmup: usize,
    },
    /// Renders collected results into the marked region of a markdown document.
    Report {
        /// Tab-separated `round target scenario proto metric value` lines.
        #[arg(long)]
        results: PathBuf,
        /// Column order, comma-separated; the first is the baseline, the last the subject.
        #[arg(long, value_delimiter = ',')]
        targets: Vec<String>,
        /// Targets without figures yet, shown as "pending".
        #[arg(long, value_delimiter = ',')]
        pending: Vec<String>,
        /// The targets the subject is measured against (its ratio is to the best of them on each
        /// row); default: every target but the baseline and the subject.
        #[arg(long, value_delimiter = ',')]
        anchors: Vec<String>,
        /// Markdown put before the tables (date, versions, machine, command).
        #[arg(long)]
        meta: Option<PathBuf>,
        /// Document whose marked region is replaced; without it the tables go to stdout.
        #[arg(long)]
        doc: Option<PathBuf>,
        /// Also write SVG plots (latency CDFs, ratio bars) into this directory and embed them
        /// after the tables, linked relative to --doc's directory when they are under it.
        #[arg(long)]
        plots: Option<PathBuf>,
        /// The run's name in the plots' titles (date and mode).
        #[arg(long, default_value = "unnamed run")]
        run_name: String,
    },
}

/// Upper bound on any one scenario, so a wedged proxy cannot hang the run.
const SCENARIO_LIMIT: Duration = Duration::from_secs(300);

fn main() {
    // `cargo bench` appends `--bench`; a harness=false target must tolerate it, and does
    // nothing when given nothing else (that is how `cargo bench` with no filter runs it).
    let argv: Vec<String> = std::env::args().filter(|a| a != "--bench").collect();
    if argv.len() == 1 {
        eprintln!("loadgen: no scenario given; the benchmark is run by bench/run");
        return;
    }
    let cli = Cli::parse_from(argv);
    if let Err(e) = run(cli.cmd) {
        eprintln!("loadgen: {e}");
        std::process::exit(1);
    }
}

fn run(cmd: Cmd) -> Result<(), ToolError> {
    if let Cmd::Report { results, targets, pending, anchors, meta, doc, plots, run_name } = cmd {
        let layout = report_layout(targets, pending, anchors)?;
        let output = ReportOutput { meta, doc, plots, run_name };
        return write_report(&results, &layout, output);
    }
    if let Cmd::Wrk { target, wrk, conns, secs } = &cmd {
        wrk::run(&Target::new(target)?, wrk, *conns, *secs)?.print();
        return Ok(());
    }
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let local = tokio::task::LocalSet::new();
    let work = async move {
        match cmd {
            Cmd::Pingpong { target, rounds, warmup, size } => {
                scenarios::pingpong(&Target::new(&target)?, rounds, warmup, size).await
            }
            Cmd::Paced { target, conns, rate, size, secs, warmup_secs } => {
                scenarios::paced(&Target::new(&target)?, conns, rate, size, secs, warmup_secs).await
            }
            Cmd::Connrate { target, secs, concurrency } => {
                scenarios::connrate(&Target::new(&target)?, secs, concurrency).await
            }
            Cmd::Bulk { target, bytes } => scenarios::bulk(&Target::new(&target)?, bytes).await,
            Cmd::Idle { target, conns, settle_ms } => {
                scenarios::idle(&Target::new(&target)?, conns, Duration::from_millis(settle_ms))
                    .await
            }
            Cmd::Reload { target, conns, rate, size, secs, admin, configs, every_ms } => {
                let configs = configs
                    .iter()
                    .map(|p| {
                        std::fs::read(p)
                            .map_err(|e| ToolError::Usage(format!("{}: {e}", p.display())))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                let load = scenarios::Streams { conns, rate, size, secs };
                let reloads =
                    scenarios::Reloads { admin, configs, every: Duration::from_millis(every_ms) };
                scenarios::reload(&Target::new(&target)?, load, reloads).await
            }
            Cmd::Sequential { target, rounds, upgrades, warmup } => {
                scenarios::sequential(&Target::new(&target)?, rounds, upgrades, warmup).await
            }
            Cmd::Wrk { .. } | Cmd::Report { .. } => Ok(client::Metrics::default()),
        }
    };
    let metrics = rt.block_on(local.run_until(async move {
        tokio::time::timeout(SCENARIO_LIMIT, work)
            .await
            .map_err(|_| ToolError::Timeout("scenario"))?
    }))?;
    metrics.print();
    Ok(())
}

/// Where a report goes, besides the tables.
struct ReportOutput {
    meta: Option<PathBuf>,
    doc: Option<PathBuf>,
    plots: Option<PathBuf>,
    run_name: String,
}

fn report_layout(
    targets: Vec<String>,
    pending: Vec<String>,
    anchors: Vec<String>,
) -> Result<report::Layout, ToolError> {
    let (Some(baseline), Some(subject)) = (targets.first().cloned(), targets.last().cloned())
    else {
        return Err(ToolError::Usage("--targets needs at least a baseline and a subject".into()));
    };
    if let Some(a) = anchors.iter().find(|a| !targets.contains(a)) {
        return Err(ToolError::Usage(format!("anchor {a} is not one of --targets")));
    }
    // The subject is never its own reference, nor is the baseline (its own column).
    let anchors = if anchors.is_empty() { targets.clone() } else { anchors }
        .into_iter()
        .filter(|t| *t != baseline && *t != subject)
        .collect();
    Ok(report::Layout { targets, baseline, subject, anchors, pending })
}

fn write_report(
    results: &std::path::Path,
    layout: &report::Layout,
    output: ReportOutput,
) -> Result<(), ToolError> {
    let parsed = report::parse_results(&std::fs::read_to_string(results)?)?;
    let mut section = match output.meta {
        Some(m) => std::fs::read_to_string(m)?,
        None => String::new(),
    };
    section.push_str(&report::render(&parsed, layout));
    if let Some(dir) = &output.plots {
        let written = plots::write_plots(&parsed, layout, dir, &output.run_name)?;
        let prefix = link_prefix(dir, output.doc.as_deref());
        section.push_str(&plots::markdown(&written, &prefix));
    }
    match output.doc {
        Some(path) => {
            let old = std::fs::read_to_string(&path).unwrap_or_default();
            std::fs::write(&path, report::splice_into(&old, &section))?;
        }
        None => print!("{section}"),
    }
    Ok(())
}

/// How the document links to the plots: relative to its own directory when they are under it
/// (so the links work on GitHub and in a checkout alike), else the directory as given.
fn link_prefix(plots: &std::path::Path, doc: Option<&std::path::Path>) -> String {
    let relative = doc.and_then(|doc| {
        let doc_dir = std::path::absolute(doc).ok()?.parent()?.to_path_buf();
        let plots = std::path::absolute(plots).ok()?;
        Some(plots.strip_prefix(doc_dir).ok()?.to_path_buf())
    });
    relative.unwrap_or_else(|| plots.to_path_buf()).display().to_string()
}
