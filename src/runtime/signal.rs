//! [`Signal`]: a one-way, worker-local event ("the worker is draining", "grace is over") that
//! any number of tasks can wait for, and a task can drop its wait at any time.
//!
//! Each waiting task holds one slot with its latest waker, so a task that is polled many times
//! while it waits (a connection whose other branch keeps waking it) still occupies one slot,
//! and dropping the wait frees it. Single-threaded (`Cell`/`RefCell`): it never leaves its
//! worker.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

#[derive(Default)]
pub struct Signal {
    set: Cell<bool>,
    slots: RefCell<Slots>,
}

#[derive(Default)]
struct Slots {
    wakers: Vec<Option<Waker>>,
    free: Vec<usize>,
}

impl Signal {
    /// Raise the signal and wake every waiter. Raising it again does nothing.
    pub fn set(&self) {
        if self.set.replace(true) {
            return;
        }
        let wakers: Vec<Waker> =
            self.slots.borrow_mut().wakers.iter_mut().filter_map(Option::take).collect();
        for waker in wakers {
            waker.wake();
        }
    }

    pub fn is_set(&self) -> bool {
        self.set.get()
    }

    /// Drop every waiter's waker without waking it. A task that only waits here is then
    /// owned by nothing and freed, on this thread: what a stopping worker does so that tasks
    /// holding the worker (which holds this signal) do not keep each other alive.
    pub fn forget_waiters(&self) {
        let wakers: Vec<Waker> =
            self.slots.borrow_mut().wakers.iter_mut().filter_map(Option::take).collect();
        drop(wakers);
    }

    /// Resolves once the signal is set (at once if it already is).
    pub fn wait(&self) -> Wait<'_> {
        Wait { signal: self, slot: None }
    }
}

/// A wait on a [`Signal`]; cancel-safe (dropping it only frees its slot).
pub struct Wait<'a> {
    signal: &'a Signal,
    slot: Option<usize>,
}

impl Future for Wait<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.signal.is_set() {
            return Poll::Ready(());
        }
        let mut slots = self.signal.slots.borrow_mut();
        let slot = match self.slot {
            Some(slot) => slot,
            None => match slots.free.pop() {
                Some(slot) => slot,
                None => {
                    slots.wakers.push(None);
                    slots.wakers.len() - 1
                }
            },
        };
        slots.wakers[slot] = Some(cx.waker().clone());
        drop(slots);
        self.slot = Some(slot);
        Poll::Pending
    }
}

impl Drop for Wait<'_> {
    fn drop(&mut self) {
        if let Some(slot) = self.slot {
            let mut slots = self.signal.slots.borrow_mut();
            slots.wakers[slot] = None;
            slots.free.push(slot);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::rc::Rc;

    use super::*;

    fn runtime() -> monoio::Runtime<monoio::time::TimeDriver<monoio::LegacyDriver>> {
        monoio::RuntimeBuilder::<monoio::LegacyDriver>::new().enable_timer().build().unwrap()
    }

    #[test]
    fn every_waiter_wakes_when_the_signal_is_set_and_late_waiters_pass_at_once() {
        runtime().block_on(async {
            let signal = Rc::new(Signal::default());
            let woken = Rc::new(Cell::new(0));
            let tasks: Vec<_> = (0..3)
                .map(|_| {
                    let (signal, woken) = (signal.clone(), woken.clone());
                    monoio::spawn(async move {
                        signal.wait().await;
                        woken.set(woken.get() + 1);
                    })
                })
                .collect();
            monoio::time::sleep(std::time::Duration::from_millis(5)).await;
            assert_eq!(woken.get(), 0);
            signal.set();
            for task in tasks {
                task.await;
            }
            assert_eq!(woken.get(), 3);
            signal.wait().await;
        });
    }

    #[test]
    fn a_dropped_wait_frees_its_slot_for_the_next() {
        runtime().block_on(async {
            let signal = Signal::default();
            for _ in 0..100 {
                let timed_out =
                    monoio::time::timeout(std::time::Duration::from_micros(10), signal.wait())
                        .await;
                assert!(timed_out.is_err());
            }
            assert_eq!(signal.slots.borrow().wakers.len(), 1);
        });
    }
}
