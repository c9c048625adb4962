//! Reloading a running proxy, and the admin endpoint's view of it ([`Api`]).
//!
//! A reload is all or nothing: the new config is parsed and validated, its certificates loaded
//! and its new listeners bound *before* any worker hears of it; any failure (a `file:line`
//! error, a certificate that does not load, a port in use) leaves the running config serving,
//! untouched. Then every worker switches snapshots (`runtime::worker`), and only then are the
//! old ACME manager, listeners and admin endpoint let go. Live connections are never closed:
//! a WebSocket keeps relaying on the config it started with, whatever the reload changed.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc;
use std::sync::{Arc, Weak};

use super::{bind_all, lock, per_worker, prepare_tls, start_admin, Core};
use crate::admin::{AdminAddress, AdminApi};
use crate::config::{self, Admin, Config, ConfigError, ParseOptions};
use crate::listener::BindError;
use crate::metrics::{export, process};
use crate::runtime::{Command, Generation};

/// Why a reload changed nothing (or, for `Worker`, not everywhere).
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("TLS: {0}")]
    Tls(String),
    #[error(transparent)]
    Bind(#[from] BindError),
    #[error("admin endpoint: {0}")]
    Admin(String),
    /// A worker could not switch (its driver refused a new listener); the others did.
    #[error("{0}")]
    Worker(String),
    #[error("the server is stopping")]
    Stopping,
}

/// How long the control plane waits for a worker to confirm a switch. A worker switches
/// between two polls of its event loop, so anything near this means it is wedged.
const APPLY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

impl Core {
    pub(super) fn reload(self: &Arc<Self>, config: Arc<Config>) -> Result<(), ReloadError> {
        self.notifier.reloading();
        let result = self.switch_to(config);
        self.registry.control.record_reload(result.is_ok());
        match &result {
            Ok(()) => tracing::info!("configuration reloaded"),
            Err(e) => tracing::error!("reload failed, the running configuration stays: {e}"),
        }
        self.notifier.ready();
        result
    }

    fn switch_to(self: &Arc<Self>, config: Arc<Config>) -> Result<(), ReloadError> {
        let started = std::time::Instant::now();
        let mut state = lock(&self.state);
        if state.stopped {
            return Err(ReloadError::Stopping);
        }
        let workers = self.workers.len();
        // Everything that can fail, before any worker hears of it.
        let tls = prepare_tls(&config, self.options.default_storage.as_deref())
            .map_err(ReloadError::Tls)?;
        let new_binds: Vec<SocketAddr> = config
            .listeners
            .iter()
            .map(|l| l.bind)
            .filter(|bind| !state.listeners.iter().any(|b| b.bind == *bind))
            .collect();
        let bound = bind_all(new_binds, workers)?;
        tracing::debug!(took = ?started.elapsed(), "reload: certificates loaded and listeners bound");
        let new_listeners: Vec<_> = bound.iter().map(|(l, _)| *l).collect();
        let admin_changed = admin_address(&config) != state.admin.as_ref().map(|(a, _)| a.clone());
        let admin = if admin_changed {
            // The old endpoint may hold the port the new one wants: let it go first, and bring
            // it back if the new one cannot bind.
            let old = state.admin.take();
            let old_address = old.as_ref().map(|(a, _)| a.clone());
            drop(old);
            match start_admin(&config, self) {
                Ok(admin) => Some(admin),
                Err(e) => {
                    if let Some(address) = old_address {
                        state.admin = restart_admin(&address, self);
                    }
                    return Err(ReloadError::Admin(e));
                }
            }
        } else {
            None
        };

        // Every worker switches; each gets the sockets of the new listeners.
        let (tls, acme, storage) = match tls {
            Some((ctx, acme, storage)) => (Some(ctx), Some(acme), Some(storage)),
            None => (None, None, None),
        };
        let mut waits = Vec::with_capacity(workers);
        for (worker, sockets) in self.workers.iter().zip(per_worker(bound, workers)) {
            let (done, outcome) = mpsc::channel();
            let generation = Generation { config: config.clone(), tls: tls.clone(), sockets };
            if worker.send(Command::Apply { generation, done }).is_ok() {
                waits.push(outcome);
            }
        }
        let mut failures = Vec::new();
        for outcome in waits {
            match outcome.recv_timeout(APPLY_TIMEOUT) {
                Ok(Ok(())) => {}
                Ok(Err(e)) => failures.push(e),
                Err(_) => failures.push("a worker did not confirm the new configuration".into()),
            }
        }

        // The workers serve the new config: let go of what it replaced.
        let old_acme = std::mem::replace(&mut state.acme, acme);
        state.renewals =
            tls.as_ref().and_then(|ctx| crate::tls::renewal::InternalRenewals::spawn(ctx.clone()));
        state.tls = tls;
        if storage.is_some() {
            state.storage = storage;
        }
        state.listeners.retain(|l| config.listeners.iter().any(|c| c.bind == l.bind));
        state.listeners.extend(new_listeners);
        if admin_changed {
            state.admin = admin.flatten();
        }
        state.config = config;
        drop(state);
        if let Some(acme) = old_acme {
            acme.shutdown();
        }
        self.publish_certificates();
        if failures.is_empty() {
            Ok(())
        } else {
            Err(ReloadError::Worker(failures.join("; ")))
        }
    }

    /// Parse a whole Caddyfile posted to `/load` and switch to it.
    fn load_text(self: &Arc<Self>, text: &[u8]) -> Result<(), ReloadError> {
        let base = self.base_dir();
        let config = config::parse_bytes(text, "Caddyfile", &base, &self.parse_options());
        self.reload_parsed(config)
    }

    /// Re-read `file` (SIGHUP) and switch to it.
    pub(super) fn load_file(self: &Arc<Self>, file: &Path) -> Result<(), ReloadError> {
        self.reload_parsed(config::parse_file(file, &self.parse_options()))
    }

    fn reload_parsed(
        self: &Arc<Self>,
        parsed: Result<Config, ConfigError>,
    ) -> Result<(), ReloadError> {
        match parsed {
            Ok(config) => self.reload(Arc::new(config)),
            Err(e) => {
                self.registry.control.record_reload(false);
                tracing::error!("reload failed, the running configuration stays: {e}");
                Err(e.into())
            }
        }
    }

    fn base_dir(&self) -> std::path::PathBuf {
        self.options
            .config_file
            .as_deref()
            .and_then(Path::parent)
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_owned()
    }

    fn parse_options(&self) -> ParseOptions {
        match &self.options.config_env {
            Some(env) => {
                let env = env.clone();
                ParseOptions::default().with_env(move |name| env(name))
            }
            None => ParseOptions::default(),
        }
    }
}

fn admin_address(config: &Config) -> Option<AdminAddress> {
    match &config.globals.admin {
        Admin::Off => None,
        Admin::Address(text) => AdminAddress::parse(text).ok(),
    }
}

fn restart_admin(
    address: &AdminAddress,
    core: &Arc<Core>,
) -> Option<(AdminAddress, crate::admin::AdminServer)> {
    let api = Arc::new(Api(Arc::downgrade(core)));
    match crate::admin::AdminServer::start(address, api) {
        Ok(server) => Some((address.clone(), server)),
        Err(e) => {
            tracing::error!(bind = %address.bind, "cannot restore the admin endpoint: {e}");
            None
        }
    }
}

/// The running proxy as the admin endpoint sees it. Weak: the endpoint is part of the server
/// and must not keep it alive.
pub(super) struct Api(pub(super) Weak<Core>);

impl AdminApi for Api {
    fn metrics(&self) -> String {
        match self.0.upgrade() {
            Some(core) => export::render(&core.registry, &process::read()),
            None => String::new(),
        }
    }

    fn load(&self, caddyfile: &[u8]) -> Result<(), String> {
        let core = self.0.upgrade().ok_or("the server is stopping")?;
        core.load_text(caddyfile).map_err(|e| e.to_string())
    }

    fn stop(&self) {
        let Some(core) = self.0.upgrade() else { return };
        let listener = lock(&core.stop_requests).clone();
        match listener {
            // `ringproxy run` stops as it does for SIGTERM (shutdown_delay, second signal…).
            Some(tx) if tx.send(()).is_ok() => {}
            _ => {
                std::thread::spawn(move || core.stop_gracefully());
            }
        }
    }

    fn upstreams(&self) -> String {
        let Some(core) = self.0.upgrade() else { return "[]".into() };
        // Caddy's shape, one entry per address over every worker; `healthy` only if every
        // worker would send it new requests.
        let mut by_address: Vec<(String, bool, i64, u64)> = Vec::new();
        for entries in core.registry.upstreams() {
            for entry in entries {
                let healthy = entry.stats.healthy.load(Relaxed) == 1;
                let in_flight = entry.stats.in_flight.raw() as i64;
                let fails = entry.stats.fails.load(Relaxed);
                match by_address.iter_mut().find(|(a, ..)| *a == entry.address) {
                    Some(slot) => {
                        slot.1 &= healthy;
                        slot.2 = slot.2.wrapping_add(in_flight);
                        slot.3 += fails;
                    }
                    None => by_address.push((entry.address, healthy, in_flight, fails)),
                }
            }
        }
        let list: Vec<serde_json::Value> = by_address
            .into_iter()
            .map(|(address, healthy, in_flight, fails)| {
                serde_json::json!({
                    "address": address,
                    "healthy": healthy,
                    "num_requests": in_flight,
                    "fails": fails,
                })
            })
            .collect();
        serde_json::Value::Array(list).to_string()
    }
}
