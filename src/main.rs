//! The `ringproxy` command: argument parsing, logging set-up and process signals. All logic
//! lives in the library.
//!
//! This is the only place that reads the process environment: flags and their `RINGPROXY_*`
//! aliases (through clap), `{$VAR}` placeholders in the Caddyfile, and the default storage
//! directory (`$XDG_DATA_HOME`, `$HOME`) are all resolved here and handed to the library as
//! values, so the library behaves the same whatever shell it runs in.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::mpsc;
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
    /// Load a Caddyfile into a running ringproxy through its admin endpoint, without dropping
    /// a connection. Exits 0 when it applied, 1 with the error (`file:line - message`).
    Reload {
        #[arg(long, short)]
        config: PathBuf,
        /// The admin endpoint (default: the `admin` option of --config, else localhost:2019).
        #[arg(long)]
        address: Option<String>,
    },
    /// Stop a running ringproxy gracefully through its admin endpoint.
    Stop {
        /// The admin endpoint (default: the `admin` option of --config, else localhost:2019).
        #[arg(long)]
        address: Option<String>,
        /// A Caddyfile whose `admin` option names the endpoint.
        #[arg(long, short)]
        config: Option<PathBuf>,
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
            let options = RunOptions {
                workers,
                driver,
                pin_workers: !no_pin,
                uring_setup,
                default_storage,
                notify_socket: std::env::var_os("NOTIFY_SOCKET"),
                config_file: config.clone().or_else(|| {
                    Path::new("Caddyfile").exists().then(|| PathBuf::from("Caddyfile"))
                }),
                config_env: Some(Arc::new(|name: &str| std::env::var(name).ok())),
            };
            run(parsed, options)
        }
        Command::Reload { config, address } => match load(Some(&config)) {
            Err(e) => {
                eprintln!("{e}");
                ExitCode::FAILURE
            }
            Ok(parsed) => {
                let address = address.unwrap_or_else(|| admin_of(Some(&parsed)));
                let body = match std::fs::read(&config) {
                    Ok(body) => body,
                    Err(e) => {
                        eprintln!("{}: {e}", config.display());
                        return ExitCode::FAILURE;
                    }
                };
                admin_request(&address, "/load", Some(&body))
            }
        },
        Command::Stop { address, config } => {
            let address = match (address, config) {
                (Some(address), _) => address,
                (None, Some(file)) => match load(Some(&file)) {
                    Ok(parsed) => admin_of(Some(&parsed)),
                    Err(e) => {
                        eprintln!("{e}");
                        return ExitCode::FAILURE;
                    }
                },
                (None, None) => admin_of(None),
            };
            admin_request(&address, "/stop", None)
        }
    }
}

/// The admin endpoint a Caddyfile names (Caddy's default without one).
fn admin_of(config: Option<&Config>) -> String {
    match config.map(|c| &c.globals.admin) {
        Some(config::Admin::Address(address)) => address.clone(),
        _ => config::limits::DEFAULT_ADMIN_ADDRESS.to_string(),
    }
}

/// POST to the admin endpoint at `address`; exit 0 on a 2xx, else print what it said.
fn admin_request(address: &str, path: &str, caddyfile: Option<&[u8]>) -> ExitCode {
    match ringproxy::admin::client::post(address, path, caddyfile) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
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

/// `RINGPROXY_ACME_CHALLENGES` predates the `acme_challenges` option; it still applies, at
/// start-up, when the Caddyfile does not set the option, with a warning.
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
    match ringproxy::net::sys::raise_open_files_limit() {
        Ok(limit) if limit.before == limit.now => {
            tracing::info!(limit = limit.now, "open files limit (already the hard limit)")
        }
        Ok(limit) => {
            tracing::info!(before = limit.before, now = limit.now, "raised the open files limit")
        }
        Err(e) => tracing::warn!("cannot raise the open files limit: {e}"),
    }
    let config_file = options.config_file.clone();
    let server = match ringproxy::start(Arc::new(config), options) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("ringproxy: {e}");
            return ExitCode::FAILURE;
        }
    };
    let config = server.config();
    for (listener, addr) in config.listeners.iter().zip(server.local_addrs()) {
        tracing::info!(kind = ?listener.kind, %addr, "listening");
    }
    let events = match process_events(&server) {
        Ok(events) => events,
        Err(e) => {
            eprintln!("ringproxy: cannot install signal handlers: {e}");
            return ExitCode::FAILURE;
        }
    };
    loop {
        match events.recv() {
            Ok(Event::Reload) => reload_from_file(&server, config_file.as_deref()),
            Ok(Event::ReopenLogs) => server.reopen_logs(),
            Ok(Event::Stop) | Err(_) => break,
        }
    }
    stop(server, &events)
}

/// What the process is asked to do, from signals and the admin endpoint.
enum Event {
    Reload,
    ReopenLogs,
    Stop,
}

fn process_events(server: &Server) -> std::io::Result<mpsc::Receiver<Event>> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1};
    let (tx, rx) = mpsc::channel();
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP, SIGUSR1])?;
    let from_signals = tx.clone();
    std::thread::Builder::new().name("ringproxy-signals".into()).spawn(move || {
        for signal in signals.forever() {
            let event = match signal {
                SIGHUP => Event::Reload,
                SIGUSR1 => Event::ReopenLogs,
                _ => Event::Stop,
            };
            if from_signals.send(event).is_err() {
                return;
            }
        }
    })?;
    let stop_requests = server.stop_requests();
    std::thread::Builder::new().name("ringproxy-stop-requests".into()).spawn(move || {
        for () in stop_requests {
            if tx.send(Event::Stop).is_err() {
                return;
            }
        }
    })?;
    Ok(rx)
}

/// SIGHUP: the same as `/load` with the file the process started with.
fn reload_from_file(server: &Server, file: Option<&Path>) {
    let Some(file) = file else {
        tracing::warn!("SIGHUP ignored: ringproxy was started without a config file to re-read");
        return;
    };
    // The server logs the outcome (and counts it).
    let _ = server.reload_file(file);
}

/// Graceful stop, as Caddy does it: keep serving for `shutdown_delay` (load balancers
/// deregister us), then drain for up to `grace_period`. A second SIGTERM/SIGINT stops at once.
fn stop(server: Server, events: &mpsc::Receiver<Event>) -> ExitCode {
    let delay = server.config().globals.shutdown_delay;
    if !delay.is_zero() {
        tracing::info!(?delay, "stopping after shutdown_delay; still serving");
        let until = std::time::Instant::now() + delay;
        loop {
            let left = until.saturating_duration_since(std::time::Instant::now());
            match events.recv_timeout(left) {
                Ok(Event::Stop) => {
                    tracing::info!("second stop signal: stopping now");
                    server.stop_now_handle()();
                    server.wait();
                    return ExitCode::SUCCESS;
                }
                Ok(Event::Reload) | Ok(Event::ReopenLogs) => {}
                Err(_) => break,
            }
        }
    }
    tracing::info!("shutting down gracefully");
    let stop_now = server.stop_now_handle();
    let draining = std::thread::spawn(move || server.shutdown());
    loop {
        match events.recv_timeout(std::time::Duration::from_millis(50)) {
            Ok(Event::Stop) => {
                tracing::info!("second stop signal: stopping now");
                stop_now();
            }
            Ok(_) | Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {}
        }
        if draining.is_finished() {
            break;
        }
    }
    let _ = draining.join();
    ExitCode::SUCCESS
}
