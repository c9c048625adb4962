//! The per-connection proxy: read a head, route it, answer or forward it, loop; relay after an
//! upgrade. Generic over [`Stream`](crate::net::stream::Stream) so plaintext and TLS clients
//! share one driver.

pub mod access_log;
pub mod conn;
pub mod forward;
pub mod guard;
pub mod io;
pub mod relay;
mod response;
mod upload;

use std::cell::Cell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;

use crate::config::Config;
use crate::http::request::Request;
use crate::http::template::ForwardContext;
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
    /// Counts this connection as open on its worker (for the shutdown drain) for as long as
    /// any task serving it holds the context.
    pub open: Rc<OpenConnection>,
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
            scheme: self.scheme,
            upstream_hostport: upstream,
            strip_prefixes,
        }
    }
}

/// One open connection on a worker's counter; the count drops when the last holder does.
pub struct OpenConnection(Rc<Cell<usize>>);

impl OpenConnection {
    pub fn new(counter: &Rc<Cell<usize>>) -> Rc<OpenConnection> {
        counter.set(counter.get() + 1);
        Rc::new(OpenConnection(counter.clone()))
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.set(self.0.get() - 1);
    }
}
