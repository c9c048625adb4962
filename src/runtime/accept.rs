//! Accept loops: one per listener per worker, each handing accepted sockets to a connection
//! task with the worker's *current* snapshot, so a reload changes what new connections get
//! without restarting the loop (and without losing a connection the kernel already accepted).
//!
//! Stopping a loop (its listener left the config, or a graceful stop began) sets its flag and
//! shuts the listening socket down: the pending accept fails at once (EINVAL on both drivers),
//! the loop sees the flag and ends, and connections still in the backlog are refused. Dropping
//! a pending io_uring accept instead could lose a connection that completed just then.

use std::cell::Cell;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;

use monoio::net::TcpListener;

use super::admission::{Admitted, Refusal};
use super::proxy_header::read_proxy_header;
use super::worker::Worker;
use crate::config::{limits, ListenerKind};
use crate::metrics::PROXY_HEADER_REFUSALS;
use crate::net::stream::PlainStream;
use crate::net::sys;
use crate::proxy::guard::contained;
use crate::proxy::{conn, ConnCtx, ConnectionKind, OpenConnection, Snapshot};
use crate::tls::TlsAcceptError;

/// The worker's handle on one of its accept loops.
pub struct AcceptHandle {
    /// The listener's address as configured (what a reload compares).
    pub bind: SocketAddr,
    listener: Rc<TcpListener>,
    stopped: Rc<Cell<bool>>,
}

impl AcceptHandle {
    pub fn new(bind: SocketAddr, listener: Rc<TcpListener>) -> AcceptHandle {
        AcceptHandle { bind, listener, stopped: Rc::new(Cell::new(false)) }
    }

    /// The flag its loop checks after every accept.
    pub fn stopped(&self) -> Rc<Cell<bool>> {
        self.stopped.clone()
    }

    /// End the loop and stop listening (see the module doc).
    pub fn stop(&self) {
        self.stopped.set(true);
        if let Err(e) = sys::shutdown_listener(sys::borrow(&*self.listener)) {
            tracing::debug!(bind = %self.bind, "shutting the listener down: {e}");
        }
    }
}

pub async fn accept_loop(
    worker: Rc<Worker>,
    bind: SocketAddr,
    listener: Rc<TcpListener>,
    stopped: Rc<Cell<bool>>,
) {
    // When descriptors ran out, so the warning is logged once per shortage, not per retry.
    let mut short_since: Option<std::time::Instant> = None;
    loop {
        let accepted = listener.accept().await;
        if stopped.get() {
            return;
        }
        let (socket, peer) = match accepted {
            Ok(accepted) => {
                if let Some(since) = short_since.take() {
                    tracing::info!(
                        worker = worker.id,
                        "accepting again after {:?} out of file descriptors",
                        since.elapsed()
                    );
                }
                accepted
            }
            Err(e) if is_transient_accept_error(&e) => {
                tracing::debug!(worker = worker.id, "accept: {e}");
                continue;
            }
            Err(e) if is_descriptor_exhaustion(&e) => {
                // Make room for the clients waiting in the backlog at the expense of idle
                // kept-alive ones, which lose nothing but a reconnect; they close during the
                // pause. Never retried at once: that would spin while descriptors stay short.
                let shed = worker.idle.shed_oldest(limits::SHED_IDLE_ON_FD_EXHAUSTION);
                worker.metrics.shed_idle_connections.add(shed as u64);
                if short_since.is_none() {
                    short_since = Some(std::time::Instant::now());
                    tracing::warn!(
                        worker = worker.id,
                        shed,
                        "accept failed, out of file descriptors: closing the oldest idle \
                         keep-alive connections and retrying every {:?} (raise the open files \
                         limit, or set limits {{ max_connections }} below it): {e}",
                        limits::ACCEPT_ERROR_BACKOFF
                    );
                }
                monoio::time::sleep(limits::ACCEPT_ERROR_BACKOFF).await;
                continue;
            }
            Err(e) => {
                tracing::warn!(worker = worker.id, "accept failed, backing off: {e}");
                monoio::time::sleep(limits::ACCEPT_ERROR_BACKOFF).await;
                continue;
            }
        };
        // The current config decides how the connection is admitted and served (a reload may
        // have changed the listener's kind or its PROXY protocol settings).
        let snapshot = worker.snapshot();
        let reads_proxy_header = snapshot.config.globals.proxy_protocol.is_some();
        // A connection that still has to say (in its PROXY header) whose it is takes its place
        // in the total now, so that waiting for the header cannot escape the cap; the per-IP
        // cap counts it once the header names its address.
        let admission = if reads_proxy_header {
            worker.admission.admit_unplaced()
        } else {
            worker.admission.admit(peer.ip())
        };
        let admitted = match admission {
            Ok(admitted) => admitted,
            Err(refusal) => {
                // Closing at once costs the client one RST and us nothing; a 503 would cost
                // a read of its request, which is what a cap is there to avoid.
                count_refusal(&worker, refusal, peer);
                continue;
            }
        };
        let stream = match PlainStream::new(socket) {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(worker = worker.id, "cannot set up accepted socket: {e}");
                continue;
            }
        };
        let Some(index) = snapshot.config.listeners.iter().position(|l| l.bind == bind) else {
            // The listener left the config and its stop is on the way: refuse.
            continue;
        };
        let kind = snapshot.config.listeners[index].kind;
        let conn_id = worker.next_connection_id();
        let accepted =
            Accepted { worker: worker.clone(), snapshot, listener: index, bind, conn_id };
        if reads_proxy_header {
            // A task of its own: a slow balancer (or a peer posing as one) never holds up the
            // accept loop.
            monoio::spawn(contained(conn_id, serve_proxied(accepted, stream, peer, admitted)));
            continue;
        }
        let ctx = accepted.context(peer, kind, admitted);
        match kind {
            ListenerKind::Plaintext | ListenerKind::Redirect => {
                ctx.open.count(ConnectionKind::Plain);
                monoio::spawn(contained(conn_id, conn::serve(stream, ctx)));
            }
            ListenerKind::Tls => {
                monoio::spawn(contained(conn_id, serve_tls(stream, Vec::new(), ctx)));
            }
        }
    }
}

/// The process (EMFILE) or the system (ENFILE) has no descriptor left for the new socket.
fn is_descriptor_exhaustion(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE))
}

/// An accepted connection before its context exists: what the context is built from.
struct Accepted {
    worker: Rc<Worker>,
    snapshot: Rc<Snapshot>,
    listener: usize,
    bind: SocketAddr,
    conn_id: u64,
}

impl Accepted {
    /// The connection's context, for the client at `peer`.
    fn context(self, peer: SocketAddr, kind: ListenerKind, admitted: Admitted) -> ConnCtx {
        ConnCtx {
            open: OpenConnection::new(&self.worker.open, &self.worker, admitted),
            snapshot: self.snapshot,
            listener: self.listener,
            bind: self.bind,
            peer,
            scheme: if kind == ListenerKind::Tls { "https" } else { "http" },
            id: self.conn_id,
            client_auth: None,
            worker: self.worker,
        }
    }
}

/// Count and log a connection a cap refused.
fn count_refusal(worker: &Worker, refusal: Refusal, peer: SocketAddr) {
    match refusal {
        Refusal::MaxConnections => worker.metrics.refused_max_connections.inc(),
        Refusal::MaxConnectionsPerIp => worker.metrics.refused_per_ip.inc(),
    }
    tracing::debug!(worker = worker.id, %peer, ?refusal, "connection refused by a cap");
}

/// Read the connection's PROXY header, then serve it as the client the header names (or as
/// the real peer, as the policy says). `admitted` holds its place in the total cap only.
async fn serve_proxied(
    accepted: Accepted,
    stream: PlainStream,
    real_peer: SocketAddr,
    mut admitted: Admitted,
) {
    let Some(settings) = accepted.snapshot.config.globals.proxy_protocol.as_ref() else {
        return;
    };
    let deadlines = &accepted.worker.deadlines;
    let arrival = match read_proxy_header(&stream, real_peer, settings, deadlines).await {
        Ok(arrival) => arrival,
        Err(e) => {
            let reason = PROXY_HEADER_REFUSALS.iter().position(|r| *r == e.reason());
            if let Some(counter) = reason.map(|i| &accepted.worker.metrics.proxy_header_refused[i])
            {
                counter.inc();
            }
            tracing::debug!(conn = accepted.conn_id, peer = %real_peer, "closing: {e}");
            return;
        }
    };
    // The per-IP cap is about clients, so it counts the address the balancer vouched for.
    if let Err(refusal) = admitted.place(arrival.peer.ip()) {
        count_refusal(&accepted.worker, refusal, arrival.peer);
        return;
    }
    let kind = accepted.snapshot.config.listeners[accepted.listener].kind;
    let ctx = accepted.context(arrival.peer, kind, admitted);
    match kind {
        ListenerKind::Plaintext | ListenerKind::Redirect => {
            ctx.open.count(ConnectionKind::Plain);
            conn::serve_after(stream, ctx, arrival.already_read).await
        }
        ListenerKind::Tls => serve_tls(stream, arrival.already_read, ctx).await,
    }
}

/// TLS handshake (`already_read`: its first bytes, if some were read already), then serve.
async fn serve_tls(stream: PlainStream, already_read: Vec<u8>, mut ctx: ConnCtx) {
    let snapshot = ctx.snapshot.clone();
    let Some(acceptor) = snapshot.acceptor.as_ref() else {
        // The server builds a TLS context whenever a TLS listener exists.
        tracing::error!(
            worker = ctx.worker.id,
            "TLS listener without a TLS context; closing connection"
        );
        return;
    };
    let handshake_timeout = snapshot.config.globals.limits.tls_handshake_timeout;
    let metrics = &ctx.worker.metrics;
    // Boxed: the handshake's state is freed once it is done instead of sizing this task for
    // the connection's whole life.
    let handshake = Box::pin(acceptor.accept_after(stream, &already_read, handshake_timeout));
    match handshake.await {
        Ok(handshaken) => {
            metrics.tls_handshakes_ok.inc();
            drop(already_read);
            ctx.open.count(ConnectionKind::Tls);
            drop(snapshot);
            ctx.client_auth = handshaken.client_auth;
            conn::serve(handshaken.stream, ctx).await
        }
        // A validation handshake of the CA's, not a client's.
        Err(TlsAcceptError::AcmeChallengeServed) => {}
        Err(e) => {
            metrics.tls_handshakes_error.inc();
            tracing::debug!(conn = ctx.id, "TLS: {e}")
        }
    }
}

fn is_transient_accept_error(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ECONNABORTED) | Some(libc::EINTR) | Some(libc::EPROTO) | Some(libc::EPERM)
    )
}
