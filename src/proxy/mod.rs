//! The per-connection proxy: read a head, route it, answer or forward it, loop; relay after an
//! upgrade. Generic over [`Stream`](crate::net::stream::Stream) so plaintext and TLS clients
//! share one driver.

pub mod access_log;
mod auth;
pub mod basic_auth;
pub mod conn;
mod encoded;
pub mod forward;
pub mod guard;
pub mod io;
mod middleware;
pub mod relay;
mod response;
mod upload;
pub mod ws_frame;

use std::cell::Cell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;

use crate::config::Config;
use crate::http::request::Request;
use crate::http::template::ForwardContext;
use crate::runtime::admission::Admitted;
use crate::runtime::worker::Worker;
use crate::tls::acceptor::TlsAcceptor;
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
    /// This worker's TLS acceptor for this generation's certificates.
    pub acceptor: Option<Rc<TlsAcceptor>>,
    /// Counts the worker's snapshots: a connection compares it with the worker's current one
    /// at each request boundary.
    pub generation: u64,
}

/// Everything a connection needs to know about where it came from.
#[derive(Clone)]
pub struct ConnCtx {
    pub snapshot: Rc<Snapshot>,
    /// Index into `Config::listeners` of `snapshot`.
    pub listener: usize,
    /// The listener's address as configured: what finds it again in a newer snapshot.
    pub bind: SocketAddr,
    pub peer: SocketAddr,
    /// The scheme the client used: `http` or `https`.
    pub scheme: &'static str,
    /// For logs.
    pub id: u64,
    /// The client-certificate policy this connection's TLS handshake verified under (none for
    /// plaintext and for sites without `client_auth`).
    pub client_auth: Option<std::sync::Arc<crate::config::ClientAuth>>,
    /// Counts this connection as open on its worker (for the shutdown drain and the
    /// `connections_open` gauge) for as long as any task serving it holds the context.
    pub open: Rc<OpenConnection>,
    /// The worker serving it: its current snapshot, drain signals and counters.
    pub worker: Rc<Worker>,
}

/// One open connection on a worker's counters; the counts drop when the last holder does.
pub struct OpenConnection {
    open: Rc<Cell<usize>>,
    /// The `connections_open` gauge it was counted in, once it is (a TLS connection after its
    /// handshake).
    counted: Cell<Option<ConnectionKind>>,
    worker: Rc<Worker>,
    /// Its place under the connection caps, released with it.
    _admitted: Admitted,
}

/// The `kind` label of `ringproxy_connections_open`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionKind {
    Plain,
    Tls,
}

impl ConnCtx {
    /// What placeholders and X-Forwarded-* see for `request` on this connection: the route's
    /// `handle_path` prefixes, and `upstream` (empty when nothing is forwarded).
    pub fn forward_context<'r>(
        &self,
        request: &'r Request,
        strip_prefixes: &'r [&'r str],
        upstream: &'r str,
    ) -> ForwardContext<'r> {
        ForwardContext {
            request,
            client_ip: self.peer.ip(),
            client_port: self.peer.port(),
            trusted_proxy: self.snapshot.config.globals.client_ip.trusts(self.peer.ip()),
            scheme: self.scheme,
            upstream_hostport: upstream,
            strip_prefixes,
        }
    }
}

impl OpenConnection {
    pub fn new(
        counter: &Rc<Cell<usize>>,
        worker: &Rc<Worker>,
        admitted: Admitted,
    ) -> Rc<OpenConnection> {
        counter.set(counter.get() + 1);
        Rc::new(OpenConnection {
            open: counter.clone(),
            counted: Cell::new(None),
            worker: worker.clone(),
            _admitted: admitted,
        })
    }

    /// Count the connection in the `connections_open{kind}` gauge (once).
    pub fn count(&self, kind: ConnectionKind) {
        if self.counted.get().is_none() {
            self.gauge(kind).inc();
            self.counted.set(Some(kind));
        }
    }

    fn gauge(&self, kind: ConnectionKind) -> &crate::metrics::Gauge {
        match kind {
            ConnectionKind::Plain => &self.worker.metrics.connections_open_plain,
            ConnectionKind::Tls => &self.worker.metrics.connections_open_tls,
        }
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.open.set(self.open.get() - 1);
        if let Some(kind) = self.counted.get() {
            self.gauge(kind).dec();
        }
    }
}
