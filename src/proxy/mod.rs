//! The per-connection proxy: read a head, route it, answer or forward it, loop; relay after an
//! upgrade. Generic over [`Stream`](crate::net::stream::Stream) so plaintext and TLS clients
//! share one driver.

pub mod access_log;
pub mod conn;
pub mod forward;
pub mod io;
pub mod relay;

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;

use crate::config::Config;
use crate::tls::store::CertStore;
use crate::upstream::UpstreamPool;

/// What one worker built from one config: the config itself and the worker's own upstream
/// pools for it. A connection keeps the snapshot it was accepted with for its whole life, so a
/// reload never changes the rules under a live connection (or drops its WebSocket).
pub struct Snapshot {
    pub config: Arc<Config>,
    /// Indexed like `Config::upstream_sets`.
    pub pools: Vec<Rc<UpstreamPool>>,
    /// ACME HTTP-01 challenge answers, when certificates are managed.
    pub certs: Option<Arc<CertStore>>,
    /// Relay plaintext↔plaintext WebSockets with splice(2) instead of copying.
    pub splice_relay: bool,
}

/// Everything a connection needs to know about where it came from.
#[derive(Clone)]
pub struct ConnCtx {
    pub snapshot: Rc<Snapshot>,
    /// Index into `Config::listeners`.
    pub listener: usize,
    pub peer: SocketAddr,
    /// The scheme the client used: `http` or `https`.
    pub scheme: &'static str,
    /// For logs.
    pub id: u64,
}
