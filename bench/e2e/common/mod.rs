//! Code shared by the benchmark backend (`bench/backend`) and the load generator
//! (`bench/e2e/loadgen.rs`): TLS configuration from the run's PEM files, WebSocket framing,
//! percentile maths and reading a process's CPU time and RSS from `/proc`.
//!
//! These are benchmark tools, not the proxy: they use tokio and may allocate freely, but they
//! must stay correct (a tool that miscounts makes every figure in docs/benchmarks.md wrong).

#![allow(dead_code)] // Each binary uses a different subset.

pub mod procfs;
pub mod stats;
pub mod tls;
pub mod ws;

/// Everything that can stop a benchmark tool.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("TLS: {0}")]
    Tls(#[from] rustls::Error),
    #[error("{path}: {message}")]
    Pem { path: String, message: String },
    #[error("WebSocket: {0}")]
    Ws(String),
    #[error("HTTP: {0}")]
    Http(String),
    #[error("/proc: {0}")]
    Proc(String),
    #[error("timed out: {0}")]
    Timeout(&'static str),
    #[error("{0}")]
    Usage(String),
}
