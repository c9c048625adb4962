//! The `ringproxy` command: argument parsing, logging set-up and process signals. All logic
//! lives in the library.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use ringproxy::config::{self, Config, ConfigError};
use ringproxy::server::{DriverChoice, RunOptions, Server};

#[derive(Parser)]
#[command(
    name = "ringproxy",
    about = "A thread-per-core io_uring reverse proxy for real-time WebSocket audio, configured by your Caddyfile.",
    long_about = None,
    disable_version_flag = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the proxy. Without --config: ./Caddyfile if present, else the embedded default
    /// (a demo site on :8080).
    Run {
        /// Caddyfile to serve.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Worker threads (default: one per core).
        #[arg(long, env = "RINGPROXY_WORKERS")]
        workers: Option<usize>,
        /// I/O driver: auto (io_uring, or epoll where io_uring is refused), io_uring, epoll.
        #[arg(long, env = "RINGPROXY_DRIVER", default_value = "auto")]
        driver: DriverChoice,
        /// Do not pin worker N to core N.
        #[arg(long)]
        no_pin: bool,
    },
    /// Check a Caddyfile: prints `valid` and a summary, or the first error as `file:line - message`.
    Validate {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Print the version.
    Version,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("RINGPROXY_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match cli.command {
        Command::Version => {
            println!("ringproxy {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Command::Validate { config } => match config::parse_file(&config) {
            Ok(parsed) => {
                println!("valid");
                print!("{}", config::summary::summary(&parsed));
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::FAILURE
            }
        },
        Command::Run { config, workers, driver, no_pin } => {
            let parsed = match load(config.as_deref()) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::FAILURE;
                }
            };
            run(
                parsed,
                RunOptions { workers, driver, pin_workers: !no_pin, ..RunOptions::default() },
            )
        }
    }
}

fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
    match path {
        Some(p) => config::parse_file(p),
        None if Path::new("Caddyfile").exists() => config::parse_file(Path::new("Caddyfile")),
        None => {
            tracing::info!("no --config and no ./Caddyfile: serving the embedded default config");
            config::parse_caddyfile(config::EMBEDDED_DEFAULT, "<embedded default>", Path::new("."))
        }
    }
}

fn run(config: Config, options: RunOptions) -> ExitCode {
    let config = Arc::new(config);
    let server = match ringproxy::start(config.clone(), options) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("ringproxy: {e}");
            return ExitCode::FAILURE;
        }
    };
    for (listener, addr) in config.listeners.iter().zip(server.local_addrs()) {
        tracing::info!(kind = ?listener.kind, %addr, "listening");
    }
    wait_for_stop_signal();
    tracing::info!("shutting down");
    drop::<Server>(server);
    ExitCode::SUCCESS
}

fn wait_for_stop_signal() {
    use signal_hook::consts::{SIGINT, SIGTERM};
    match signal_hook::iterator::Signals::new([SIGINT, SIGTERM]) {
        Ok(mut signals) => {
            signals.forever().next();
        }
        Err(e) => {
            tracing::error!("cannot install signal handlers: {e}; running until killed");
            loop {
                std::thread::park();
            }
        }
    }
}
