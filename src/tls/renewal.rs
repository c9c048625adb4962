//! Renewal of local-CA leaf certificates on a control-plane thread: leaves are short-lived
//! (days), so a long-running proxy reissues them well before expiry and swaps them into the
//! certificate store; live connections keep the leaf they handshook with.

use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use super::TlsContext;

/// Never sleep less than this between renewal checks (a failing renewal retries at this pace).
const MIN_CHECK_INTERVAL: Duration = Duration::from_secs(60);
/// Never sleep more than this, so clock jumps are noticed.
const MAX_CHECK_INTERVAL: Duration = Duration::from_secs(6 * 3600);

/// The running renewal thread; dropping it stops the thread and waits for it.
pub struct InternalRenewals {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl InternalRenewals {
    /// Start renewing, or `None` when no site uses the local CA.
    pub fn spawn(ctx: Arc<TlsContext>) -> Option<InternalRenewals> {
        ctx.next_internal_renewal()?;
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("ringproxy-local-ca".into())
            .spawn(move || loop {
                let wait = ctx
                    .next_internal_renewal()
                    .map(|at| at.duration_since(SystemTime::now()).unwrap_or(Duration::ZERO))
                    .unwrap_or(MAX_CHECK_INTERVAL)
                    .clamp(MIN_CHECK_INTERVAL, MAX_CHECK_INTERVAL);
                match stopped.recv_timeout(wait) {
                    Err(RecvTimeoutError::Timeout) => {}
                    _ => return,
                }
                match ctx.renew_internal_certs(SystemTime::now()) {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(renewed = n, "renewed local CA certificates"),
                    Err(e) => tracing::error!("renewing local CA certificates failed: {e}"),
                }
            })
            .ok()?;
        Some(InternalRenewals { stop: Some(stop), thread: Some(thread) })
    }
}

impl Drop for InternalRenewals {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
