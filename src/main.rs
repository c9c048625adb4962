//! The `ringproxy` command: argument parsing, logging set-up and process signals. All logic
//! lives in the library.
//!
//! This is the only place that reads the process environment: flags and their `RINGPROXY_*`
//! aliases (through clap), `{$VAR}` placeholders in the Caddyfile, and the default storage
//! directory (`$XDG_DATA_HOME`, `$HOME`) are all resolved here and handed to the library as
//! values, so the library behaves the same whatever shell it runs in.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use ringproxy::config::{self, ChallengeKind, Config, ConfigError, ParseOptions};
use ringproxy::server::{DriverChoice, RunOptions, Server, UringSetup};

/// Deprecated: the global `acme_challenges` option replaces it.
const ACME_CHALLENGES_ENV: &str = "RINGPROXY_ACME_CHALLENGES";

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
        /// io_uring setup flags: a comma list of coop, single, defer, or none for a plain ring.
        #[arg(long, env = "RINGPROXY_URING_SETUP", default_value = "coop,single")]
        uring_setup: UringSetup,
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
        Command::Validate { config } => match load(Some(&config)) {
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
        Command::Run { config, workers, driver, uring_setup, no_pin } => {
            let parsed = match load(config.as_deref()) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::FAILURE;
                }
            };
            let default_storage = ringproxy::storage::default_storage_dir(
                std::env::var_os("XDG_DATA_HOME"),
                std::env::var_os("HOME"),
            );
            run(
                parsed,
                RunOptions { workers, driver, pin_workers: !no_pin, uring_setup, default_storage },
            )
        }
    }
}

/// The Caddyfile's `{$VAR}` placeholders see the process environment.
fn parse_options() -> ParseOptions {
    ParseOptions::default().with_env(|name| std::env::var(name).ok())
}

fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
    let mut config = match path {
        Some(p) => config::parse_file(p, &parse_options()),
        None if Path::new("Caddyfile").exists() => {
            config::parse_file(Path::new("Caddyfile"), &parse_options())
        }
        None => {
            tracing::info!("no --config and no ./Caddyfile: serving the embedded default config");
            config::parse_bytes(
                config::EMBEDDED_DEFAULT.as_bytes(),
                "<embedded default>",
                Path::new("."),
                &parse_options(),
            )
        }
    }?;
    apply_deprecated_acme_challenges(&mut config);
    Ok(config)
}

/// `RINGPROXY_ACME_CHALLENGES` predates the `acme_challenges` option; it still applies when
/// the Caddyfile does not set the option, with a warning.
fn apply_deprecated_acme_challenges(config: &mut Config) {
    let Ok(text) = std::env::var(ACME_CHALLENGES_ENV) else { return };
    if !config.globals.acme_challenges.is_empty() {
        tracing::warn!(
            "{ACME_CHALLENGES_ENV} is ignored: the Caddyfile sets acme_challenges (the variable \
             is deprecated)"
        );
        return;
    }
    match ChallengeKind::parse_list(&text) {
        Ok(kinds) if !kinds.is_empty() => {
            tracing::warn!(
                "{ACME_CHALLENGES_ENV} is deprecated; use the global option 'acme_challenges {}'",
                kinds.iter().map(ToString::to_string).collect::<Vec<_>>().join(" ")
            );
            config.globals.acme_challenges = kinds;
        }
        Ok(_) => tracing::warn!("{ACME_CHALLENGES_ENV} is empty; ignoring it"),
        Err(e) => tracing::warn!("{ACME_CHALLENGES_ENV}: {e}; ignoring it"),
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
