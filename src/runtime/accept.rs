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

use super::admission::Refusal;
use super::worker::Worker;
use crate::config::{limits, ListenerKind};
use crate::net::stream::PlainStream;
use crate::net::sys;
use crate::proxy::guard::contained;
use crate::proxy::{conn, ConnCtx, ConnectionKind, OpenConnection};
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
        let admitted = match worker.admission.admit(peer.ip()) {
            Ok(admitted) => admitted,
            Err(refusal) => {
                // Closing at once costs the client one RST and us nothing; a 503 would cost
                // a read of its request, which is what a cap is there to avoid.
                match refusal {
                    Refusal::MaxConnections => worker.metrics.refused_max_connections.inc(),
                    Refusal::MaxConnectionsPerIp => worker.metrics.refused_per_ip.inc(),
                }
                tracing::debug!(worker = worker.id, %peer, ?refusal, "connection refused by a cap");
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
        // The current config's listener at this address (a reload may have changed its kind).
        let snapshot = worker.snapshot();
        let Some(index) = snapshot.config.listeners.iter().position(|l| l.bind == bind) else {
            // The listener left the config and its stop is on the way: refuse.
            continue;
        };
        let kind = snapshot.config.listeners[index].kind;
        let conn_id = worker.next_connection_id();
        let ctx = ConnCtx {
            snapshot: snapshot.clone(),
            listener: index,
            bind,
            peer,
            scheme: if kind == ListenerKind::Tls { "https" } else { "http" },
            id: conn_id,
            open: OpenConnection::new(&worker.open, &worker, admitted),
            worker: worker.clone(),
        };
        match kind {
            ListenerKind::Plaintext | ListenerKind::Redirect => {
                ctx.open.count(ConnectionKind::Plain);
                monoio::spawn(contained(conn_id, conn::serve(stream, ctx)));
            }
            ListenerKind::Tls => {
                let Some(acceptor) = snapshot.acceptor.clone() else {
                    // The server builds a TLS context whenever a TLS listener exists.
                    tracing::error!(
                        worker = worker.id,
                        "TLS listener without a TLS context; closing connection"
                    );
                    continue;
                };
                let handshake_timeout = snapshot.config.globals.limits.tls_handshake_timeout;
                let metrics = worker.metrics.clone();
                monoio::spawn(contained(conn_id, async move {
                    // Boxed: the handshake's state is freed once it is done instead of sizing
                    // this task for the connection's whole life.
                    match Box::pin(acceptor.accept(stream, handshake_timeout)).await {
                        Ok(tls_stream) => {
                            metrics.tls_handshakes_ok.inc();
                            ctx.open.count(ConnectionKind::Tls);
                            conn::serve(tls_stream, ctx).await
                        }
                        // A validation handshake of the CA's, not a client's.
                        Err(TlsAcceptError::AcmeChallengeServed) => {}
                        Err(e) => {
                            metrics.tls_handshakes_error.inc();
                            tracing::debug!(conn = conn_id, "TLS: {e}")
                        }
                    }
                }));
            }
        }
    }
}

/// The process (EMFILE) or the system (ENFILE) has no descriptor left for the new socket.
fn is_descriptor_exhaustion(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE))
}

fn is_transient_accept_error(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ECONNABORTED) | Some(libc::EINTR) | Some(libc::EPROTO) | Some(libc::EPERM)
    )
}
