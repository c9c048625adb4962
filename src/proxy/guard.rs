//! A panic in one connection's task must not take the worker (and every other connection on
//! it) down with it: tasks run under [`contained`], which turns a panic into a logged error and
//! a closed connection.

use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::task::{Context, Poll};

/// Run `future`, containing any panic it raises. The connection's resources are dropped when
/// the future is, so its sockets close.
pub fn contained<F: Future<Output = ()> + 'static>(conn: u64, future: F) -> Contained {
    Contained { conn, future: Some(Box::pin(future)) }
}

pub struct Contained {
    conn: u64,
    future: Option<Pin<Box<dyn Future<Output = ()>>>>,
}

impl Future for Contained {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let conn = self.conn;
        let Some(future) = self.future.as_mut() else { return Poll::Ready(()) };
        // AssertUnwindSafe: after a panic the future is dropped at once and never polled
        // again, so no broken invariant inside it can be observed.
        match catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(cx))) {
            Ok(poll) => poll,
            Err(panic) => {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                tracing::error!(conn, "connection task panicked, closing it: {what}");
                self.future = None;
                Poll::Ready(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panicking_task_is_contained_and_others_keep_running() {
        let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new().build().unwrap();
        let finished = rt.block_on(async {
            let bad = monoio::spawn(contained(1, async { panic!("boom") }));
            let good = monoio::spawn(contained(2, async {}));
            bad.await;
            good.await;
            true
        });
        assert!(finished);
    }
}
