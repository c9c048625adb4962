//! [`IdleList`]: a worker's kept-alive client connections that are waiting for their next
//! request, oldest first, so that when descriptors run out (EMFILE/ENFILE at accept) the
//! worker can close the connections that cost least to lose — idle ones, which nobody is
//! waiting on — and make room for a client that is waiting.
//!
//! A connection enters the list when it starts waiting between requests and leaves it when
//! the wait ends, by a byte arriving (the wait is dropped) or by being shed (the wait
//! resolves, and the connection closes as at the idle timeout). Single-threaded: each worker
//! has its own, like everything on the hot path.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

#[derive(Default)]
pub struct IdleList {
    inner: RefCell<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Keys grow with every wait, so the first entry is the connection idle the longest.
    next_key: u64,
    waiting: BTreeMap<u64, Option<Waker>>,
}

impl IdleList {
    /// Join the list; the returned wait resolves if this connection is shed.
    pub fn wait(&self) -> IdleWait<'_> {
        let mut inner = self.inner.borrow_mut();
        let key = inner.next_key;
        inner.next_key += 1;
        inner.waiting.insert(key, None);
        IdleWait { list: self, key }
    }

    /// Shed the `n` connections idle the longest; returns how many there were.
    pub fn shed_oldest(&self, n: usize) -> usize {
        let mut shed = Vec::with_capacity(n);
        {
            let mut inner = self.inner.borrow_mut();
            while shed.len() < n {
                let Some((_, waker)) = inner.waiting.pop_first() else { break };
                shed.push(waker);
            }
        }
        // Woken outside the borrow: a waker may run its task's poll right here.
        let count = shed.len();
        for waker in shed.into_iter().flatten() {
            waker.wake();
        }
        count
    }

    pub fn len(&self) -> usize {
        self.inner.borrow().waiting.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One connection's place in the [`IdleList`]; dropping it leaves the list.
pub struct IdleWait<'a> {
    list: &'a IdleList,
    key: u64,
}

impl Future for IdleWait<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut inner = self.list.inner.borrow_mut();
        match inner.waiting.get_mut(&self.key) {
            // Taken out of the list: shed.
            None => Poll::Ready(()),
            Some(slot) => {
                if !slot.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                    *slot = Some(cx.waker().clone());
                }
                Poll::Pending
            }
        }
    }
}

impl Drop for IdleWait<'_> {
    fn drop(&mut self) {
        self.list.inner.borrow_mut().waiting.remove(&self.key);
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::rc::Rc;
    use std::time::Duration;

    use super::*;

    fn runtime() -> monoio::Runtime<monoio::time::TimeDriver<monoio::LegacyDriver>> {
        monoio::RuntimeBuilder::<monoio::LegacyDriver>::new().enable_timer().build().unwrap()
    }

    #[test]
    fn the_oldest_waits_are_shed_first_and_a_dropped_wait_leaves_the_list() {
        runtime().block_on(async {
            let list = Rc::new(IdleList::default());
            let ended: Rc<RefCell<Vec<usize>>> = Rc::default();
            for i in 0..4 {
                let (list, ended) = (list.clone(), ended.clone());
                monoio::spawn(async move {
                    list.wait().await;
                    ended.borrow_mut().push(i);
                });
                // Each task joins the list before the next one.
                monoio::time::sleep(Duration::from_millis(1)).await;
            }
            assert_eq!(list.len(), 4);
            assert_eq!(list.shed_oldest(2), 2);
            monoio::time::sleep(Duration::from_millis(1)).await;
            assert_eq!(*ended.borrow(), vec![0, 1]);
            assert_eq!(list.len(), 2);

            // A wait that ends by itself (a request arrived) is no longer in the list.
            let early = list.wait();
            assert_eq!(list.len(), 3);
            drop(early);
            assert_eq!(list.len(), 2);

            assert_eq!(list.shed_oldest(10), 2);
            monoio::time::sleep(Duration::from_millis(1)).await;
            assert_eq!(*ended.borrow(), vec![0, 1, 2, 3]);
            assert!(list.is_empty());
            assert_eq!(list.shed_oldest(1), 0);
        });
    }

    #[test]
    fn a_wait_polled_again_keeps_one_entry() {
        runtime().block_on(async {
            let list = IdleList::default();
            let polls = Cell::new(0);
            let mut wait = std::pin::pin!(list.wait());
            for _ in 0..3 {
                std::future::poll_fn(|cx| {
                    polls.set(polls.get() + 1);
                    assert!(wait.as_mut().poll(cx).is_pending());
                    Poll::Ready(())
                })
                .await;
            }
            assert_eq!((polls.get(), list.len()), (3, 1));
        });
    }
}
