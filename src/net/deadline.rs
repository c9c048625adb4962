//! [`Deadlines`]: a worker's table of waits that must give up at some time, and the one task
//! per worker ([`Deadlines::sweep`]) that makes them give up.
//!
//! Every blocked wait on the data path is bounded: the next request head (idle and header
//! timeouts), a request body (`read_body`), a write to a peer that stopped reading (`write`),
//! an upstream's response (`read_timeout`). With a runtime timer per wait, each of them would
//! allocate a timer entry, insert it into the timer wheel and remove it again, on nearly every
//! request, and almost none of them ever fires. Here a wait takes a slot in the worker's table
//! (a free-list pop once the table has grown: no allocation) with one clock read, and gives it
//! back when the wait ends; only the sweeper sleeps on a runtime timer.
//!
//! The sweeper sleeps until the earliest deadline in the table, looks, and sleeps until the
//! next one; while nothing is registered it sleeps without a timer, so an idle worker spends
//! nothing on it. A wait whose deadline is earlier than the one the sweeper sleeps for wakes
//! it to sleep shorter, unless it may be late by its *slack* (1/16 of its limit, between 1 ms
//! and 1 s): so a wait bounded by `D` gives up between `D` and `D + D/16`, at most a second
//! late, and a stream of new waits with a shorter limit than the rest wakes the sweeper at
//! most once per slack instead of once each. These are safety limits on peers that stall,
//! not protocol timers; none of them needs to fire at the millisecond.
//!
//! Single-threaded, like everything on the hot path: each worker has its own table.

use std::cell::RefCell;
use std::future::{poll_fn, Future};
use std::pin::{pin, Pin};
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// The wait did not end before its deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("deadline passed")]
pub struct Expired;

/// Least and most a wait may be late: below 1 ms the sweeper would be woken more often than
/// the timers it replaces would fire; above 1 s a long limit would be overshot by more than
/// anyone expects.
const MIN_SLACK: Duration = Duration::from_millis(1);
const MAX_SLACK: Duration = Duration::from_secs(1);

/// How late a wait bounded by `limit` may give up.
fn slack_for(limit: Duration) -> Duration {
    (limit / 16).clamp(MIN_SLACK, MAX_SLACK)
}

#[derive(Default)]
pub struct Deadlines {
    table: RefCell<Table>,
}

#[derive(Default)]
struct Table {
    slots: Vec<Slot>,
    free: Vec<usize>,
    waiting: usize,
    /// When the sweeper looks next: the earliest deadline it knows of. `None` while nothing
    /// waits (the sweeper sleeps without a timer).
    next_sweep: Option<Instant>,
    /// The sweeper's waker while it sleeps, so a wait that must be seen earlier (or the first
    /// wait after a quiet spell) can wake it.
    sweeper: Option<Waker>,
    /// Set when the sweeper should sleep until an earlier `next_sweep`.
    poked: bool,
}

struct Slot {
    state: State,
    deadline: Instant,
    waker: Option<Waker>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Free,
    Waiting,
    Expired,
}

impl Deadlines {
    pub fn new() -> Rc<Self> {
        Rc::new(Self::default())
    }

    /// `wait`, given up with [`Expired`] if it has not finished `limit` after it first had to
    /// wait. A wait that is ready on its first poll never touches the table.
    pub fn within<F: Future>(&self, limit: Duration, wait: F) -> Bounded<'_, F> {
        self.bounded(Limit::After(limit), wait)
    }

    /// `wait`, given up with [`Expired`] if it has not finished by `deadline`.
    pub fn until<F: Future>(&self, deadline: Instant, wait: F) -> Bounded<'_, F> {
        self.bounded(Limit::At(deadline), wait)
    }

    /// `wait` bounded by `limit`, or not at all when `limit` is `None`.
    pub fn within_opt<F: Future>(&self, limit: Option<Duration>, wait: F) -> Bounded<'_, F> {
        self.bounded(limit.map_or(Limit::Never, Limit::After), wait)
    }

    fn bounded<F: Future>(&self, limit: Limit, wait: F) -> Bounded<'_, F> {
        Bounded { wait, deadlines: self, limit, slot: NO_SLOT }
    }

    fn register(&self, deadline: Instant, slack: Duration, waker: &Waker) -> usize {
        let mut table = self.table.borrow_mut();
        let slot = Slot { state: State::Waiting, deadline, waker: Some(waker.clone()) };
        let index = match table.free.pop() {
            Some(i) => {
                table.slots[i] = slot;
                i
            }
            None => {
                table.slots.push(slot);
                table.slots.len() - 1
            }
        };
        table.waiting += 1;
        // Seen late by no more than its slack, the sweeper may sleep on. A deadline already
        // past (a header deadline that ran out between two reads) wakes it at once.
        if table.next_sweep.is_none_or(|next| deadline + slack < next) {
            table.next_sweep = Some(deadline);
            table.poked = true;
            if let Some(sweeper) = table.sweeper.take() {
                drop(table);
                sweeper.wake();
            }
        }
        index
    }

    /// Whether the sweeper expired the wait in `index`; if not, `waker` is the one it wakes.
    fn expired(&self, index: usize, waker: &Waker) -> bool {
        let mut table = self.table.borrow_mut();
        let slot = &mut table.slots[index];
        if slot.state == State::Expired {
            return true;
        }
        if !slot.waker.as_ref().is_some_and(|w| w.will_wake(waker)) {
            slot.waker = Some(waker.clone());
        }
        false
    }

    fn release(&self, index: usize) {
        let waker = {
            let mut table = self.table.borrow_mut();
            let slot = &mut table.slots[index];
            slot.state = State::Free;
            let waker = slot.waker.take();
            table.free.push(index);
            table.waiting -= 1;
            waker
        };
        // Dropped outside the borrow: the last reference to a task drops its future, which
        // may hold other waits of this table.
        drop(waker);
    }

    /// How many waits are registered (waiting or expired and not yet seen by their owner).
    pub fn waiting(&self) -> usize {
        self.table.borrow().waiting
    }

    /// Expire every wait whose deadline is at or before `now`, and find the next deadline.
    fn sweep_at(&self, now: Instant) {
        let mut due = Vec::new();
        {
            let mut table = self.table.borrow_mut();
            let mut next: Option<Instant> = None;
            for slot in table.slots.iter_mut().filter(|s| s.state == State::Waiting) {
                if slot.deadline <= now {
                    slot.state = State::Expired;
                    due.extend(slot.waker.take());
                } else {
                    next = Some(next.map_or(slot.deadline, |n| n.min(slot.deadline)));
                }
            }
            table.next_sweep = next;
        }
        // Woken outside the borrow: a woken task may register again before this returns.
        for waker in due {
            waker.wake();
        }
    }

    /// The sweeper: runs for the worker's life. Spawn one per table.
    pub async fn sweep(self: Rc<Self>) {
        loop {
            let next = {
                let mut table = self.table.borrow_mut();
                table.poked = false;
                table.next_sweep
            };
            let poked = pin!(self.poked());
            match next {
                None => poked.await,
                Some(next) => {
                    let tick = pin!(monoio::time::sleep_until(next.into()));
                    monoio::select! {
                        () = tick => {}
                        () = poked => {}
                    }
                }
            }
            self.sweep_at(Instant::now());
        }
    }

    /// Resolves when a registration asks the sweeper to look earlier.
    async fn poked(&self) {
        poll_fn(|cx| {
            let mut table = self.table.borrow_mut();
            if table.poked {
                table.sweeper = None;
                return Poll::Ready(());
            }
            if !table.sweeper.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                table.sweeper = Some(cx.waker().clone());
            }
            Poll::Pending
        })
        .await
    }
}

/// How a [`Bounded`] wait is limited.
#[derive(Clone, Copy)]
enum Limit {
    Never,
    /// This long after the wait first has to wait.
    After(Duration),
    At(Instant),
}

const NO_SLOT: usize = usize::MAX;

pin_project_lite::pin_project! {
    /// A wait with a deadline kept by a [`Deadlines`] table: resolves to the wait's output, or
    /// to [`Expired`]. Written out rather than an `async fn` so that it holds its wait once
    /// (each `async` layer would keep its own copy of the argument, and these waits sit in
    /// every connection's and every relay's task).
    pub struct Bounded<'d, F> {
        #[pin]
        wait: F,
        deadlines: &'d Deadlines,
        limit: Limit,
        // The table slot once the wait has had to wait (`NO_SLOT` before).
        slot: usize,
    }

    impl<'d, F> PinnedDrop for Bounded<'d, F> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if *this.slot != NO_SLOT {
                this.deadlines.release(*this.slot);
            }
        }
    }
}

impl<F: Future> Future for Bounded<'_, F> {
    type Output = Result<F::Output, Expired>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(out) = this.wait.poll(cx) {
            return Poll::Ready(Ok(out));
        }
        if *this.slot != NO_SLOT {
            return match this.deadlines.expired(*this.slot, cx.waker()) {
                true => Poll::Ready(Err(Expired)),
                false => Poll::Pending,
            };
        }
        let (deadline, limit) = match *this.limit {
            Limit::Never => return Poll::Pending,
            Limit::After(limit) => (Instant::now() + limit, limit),
            Limit::At(at) => (at, at.saturating_duration_since(Instant::now())),
        };
        *this.slot = this.deadlines.register(deadline, slack_for(limit), cx.waker());
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    fn runtime() -> monoio::Runtime<monoio::time::TimeDriver<monoio::LegacyDriver>> {
        monoio::RuntimeBuilder::<monoio::LegacyDriver>::new().enable_timer().build().unwrap()
    }

    #[test]
    fn a_wait_that_never_ends_gives_up_between_its_limit_and_a_sixteenth_later() {
        runtime().block_on(async {
            let deadlines = Deadlines::new();
            monoio::spawn(deadlines.clone().sweep());
            for limit in [Duration::from_millis(40), Duration::from_millis(320)] {
                let started = Instant::now();
                let waited = deadlines.within(limit, std::future::pending::<()>()).await;
                let took = started.elapsed();
                assert_eq!(waited, Err(Expired));
                assert!(took >= limit, "{took:?} < {limit:?}");
                // A sixteenth late at most, plus scheduling on a busy machine.
                assert!(took < limit + limit / 16 + Duration::from_millis(50), "{took:?}");
            }
            assert_eq!(deadlines.waiting(), 0);
        });
    }

    #[test]
    fn a_wait_that_ends_in_time_returns_its_output_and_frees_its_slot() {
        runtime().block_on(async {
            let deadlines = Deadlines::new();
            monoio::spawn(deadlines.clone().sweep());
            let ready = deadlines.within(Duration::from_millis(10), async { 7 }).await;
            assert_eq!(ready, Ok(7));
            // Ready at once: never registered.
            assert_eq!(deadlines.waiting(), 0);
            let slept = deadlines
                .within(Duration::from_secs(5), monoio::time::sleep(Duration::from_millis(30)))
                .await;
            assert_eq!(slept, Ok(()));
            assert_eq!(deadlines.waiting(), 0);
            // The freed slot is reused, so the table does not grow with the number of waits.
            for _ in 0..100 {
                let short = monoio::time::sleep(Duration::from_micros(100));
                deadlines.within(Duration::from_secs(5), short).await.unwrap();
            }
            assert_eq!(deadlines.table.borrow().slots.len(), 1);
        });
    }

    #[test]
    fn a_short_limit_registered_while_the_sweeper_sleeps_long_is_still_kept() {
        runtime().block_on(async {
            let deadlines = Deadlines::new();
            monoio::spawn(deadlines.clone().sweep());
            // The sweeper sleeps for the long wait's deadline...
            let long_expired = Rc::new(Cell::new(false));
            let flag = long_expired.clone();
            let d = deadlines.clone();
            monoio::spawn(async move {
                let r = d.within(Duration::from_secs(30), std::future::pending::<()>()).await;
                flag.set(r.is_err());
            });
            monoio::time::sleep(Duration::from_millis(20)).await;
            // ...and a 50 ms wait registered after it must not wait for that.
            let started = Instant::now();
            let waited = deadlines.within(Duration::from_millis(50), std::future::pending::<()>());
            assert_eq!(waited.await, Err(Expired));
            assert!(started.elapsed() < Duration::from_millis(400), "{:?}", started.elapsed());
            assert!(!long_expired.get());
            assert_eq!(deadlines.waiting(), 1);
        });
    }

    #[test]
    fn a_fixed_deadline_already_past_expires_at_the_next_sweep() {
        runtime().block_on(async {
            let deadlines = Deadlines::new();
            monoio::spawn(deadlines.clone().sweep());
            let past = Instant::now() - Duration::from_millis(5);
            let waited = deadlines.until(past, std::future::pending::<()>()).await;
            assert_eq!(waited, Err(Expired));
            let ahead = Instant::now() + Duration::from_millis(30);
            let started = Instant::now();
            assert_eq!(deadlines.until(ahead, std::future::pending::<()>()).await, Err(Expired));
            assert!(started.elapsed() >= Duration::from_millis(29));
        });
    }

    #[test]
    fn with_nothing_waiting_the_sweeper_arms_no_timer() {
        runtime().block_on(async {
            let deadlines = Deadlines::new();
            monoio::spawn(deadlines.clone().sweep());
            deadlines
                .within(Duration::from_millis(16), std::future::pending::<()>())
                .await
                .unwrap_err();
            // The sweep that expired it found the table empty: it parks on the poke alone.
            monoio::time::sleep(Duration::from_millis(5)).await;
            let table = deadlines.table.borrow();
            assert_eq!(table.next_sweep, None);
            assert!(table.sweeper.is_some());
        });
    }
}
