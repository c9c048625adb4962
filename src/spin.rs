//! Brief busy-polling after I/O, per worker: trading a little CPU for not putting the core to
//! sleep between the packets of an exchange.
//!
//! On virtual machines (and, less so, on bare metal) the expensive part of relaying a small
//! audio frame across cores is not the copy or the syscalls but sleeping and being woken: the
//! idle vCPU halts, and the next packet costs a wake-up IPI plus a context switch on both sides
//! (measured: ~55 % of the proxy's CPU per WebSocket round trip was `finish_task_switch` and the
//! wake-up in `sock_def_readable`). For `window` after the last byte moved, the worker keeps its
//! event loop running (non-blocking io_uring/epoll polls) instead of blocking, so the reply that
//! typically follows within tens of microseconds is picked up without a sleep/wake cycle. Once
//! the window passes without traffic, the worker blocks as usual: an idle proxy burns nothing.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// Default busy-poll window after the last I/O (`RINGPROXY_SPIN_US` sets one). Off by default:
/// on the benchmark VM a 50 µs window cut the WebSocket ping-pong p50 from ~170 µs to ~105 µs
/// but raised CPU per round trip by ~40 % and CPU per paced message by ~20–70 %, and 200 µs made
/// everything worse (docs/benchmarks.md, experiments). Worth enabling only where latency matters
/// more than CPU and traffic is dense.
pub const DEFAULT_SPIN_WINDOW: Duration = Duration::ZERO;

thread_local! {
    static LAST_ACTIVITY: Cell<Option<Instant>> = const { Cell::new(None) };
    static PARKED_SPINNER: RefCell<Option<Waker>> = const { RefCell::new(None) };
    static ENABLED: Cell<bool> = const { Cell::new(false) };
}

/// Record that bytes moved on this worker; wakes the spinner if it is parked.
#[inline]
pub fn note_activity() {
    if !ENABLED.with(Cell::get) {
        return;
    }
    LAST_ACTIVITY.with(|t| t.set(Some(Instant::now())));
    if let Some(waker) = PARKED_SPINNER.with(|w| w.borrow_mut().take()) {
        waker.wake();
    }
}

/// The spinner task of one worker; runs until `stop` is set.
pub async fn spinner(window: Duration, stop: Rc<Cell<bool>>) {
    if window.is_zero() {
        return;
    }
    ENABLED.with(|e| e.set(true));
    while !stop.get() {
        let recent = LAST_ACTIVITY.with(|t| t.get().is_some_and(|at| at.elapsed() < window));
        if recent {
            YieldNow(false).await;
        } else {
            ParkUntilActivity(false).await;
        }
    }
    ENABLED.with(|e| e.set(false));
}

/// Ready on the second poll: keeps the task queue non-empty, so the runtime polls the driver
/// without blocking.
struct YieldNow(bool);

impl Future for YieldNow {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            return Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// Pending until `note_activity` wakes it.
struct ParkUntilActivity(bool);

impl Future for ParkUntilActivity {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            return Poll::Ready(());
        }
        self.0 = true;
        PARKED_SPINNER.with(|w| *w.borrow_mut() = Some(cx.waker().clone()));
        Poll::Pending
    }
}
