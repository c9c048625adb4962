//! The one pool of threads that runs what must not run on a worker: CPU-heavy work such as a
//! bcrypt check (tens to hundreds of milliseconds), and on the epoll driver file opens, stats
//! and reads (which could wait on a disk), during either of which a worker would hold every
//! stream it serves.
//!
//! Every worker's runtime hands `monoio::spawn_blocking` work to this pool; the worker's task
//! waits for the result like for any I/O, and the other connections go on meanwhile. The
//! threads start with the first worker and block on the queue while there is nothing to do, so
//! a proxy without such work spends nothing on them.
//!
//! Owns: the threads and their queue. Does not own: what runs on them (`proxy::basic_auth`,
//! `files::io`).

use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, OnceLock};

use monoio::blocking::{BlockingTask, ThreadPool};

/// Threads in the pool: enough that a file read waiting on the disk, or a bcrypt check, does
/// not hold up the others; few enough that a flood of checks (bounded by
/// `limits::MAX_PENDING_PASSWORD_CHECKS`) cannot take more than that from the workers.
const BLOCKING_THREADS: usize = 4;

/// A handle on the pool, one per worker runtime; all of them feed the same queue.
#[derive(Clone)]
pub struct BlockingPool {
    queue: Sender<BlockingTask>,
}

impl BlockingPool {
    /// The process's pool, started on first use.
    pub fn shared() -> BlockingPool {
        static POOL: OnceLock<BlockingPool> = OnceLock::new();
        POOL.get_or_init(|| BlockingPool::start(BLOCKING_THREADS)).clone()
    }

    fn start(threads: usize) -> BlockingPool {
        let (queue, tasks) = mpsc::channel::<BlockingTask>();
        let tasks = Arc::new(Mutex::new(tasks));
        for i in 0..threads {
            let tasks = tasks.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("ringproxy-blocking-{i}"))
                .spawn(move || run_tasks(&tasks));
            if let Err(e) = spawned {
                // The other threads (or none) serve the queue; with none, every task waits
                // forever, which the callers bound with their own timeouts.
                tracing::error!("cannot start a blocking-work thread: {e}");
            }
        }
        BlockingPool { queue }
    }
}

/// Take tasks off the queue until every handle is gone.
fn run_tasks(tasks: &Mutex<Receiver<BlockingTask>>) {
    loop {
        // The lock is held only while waiting for the next task, never while one runs.
        let next = match tasks.lock() {
            Ok(queue) => queue.recv(),
            Err(_) => return,
        };
        match next {
            Ok(task) => task.run(),
            Err(_) => return,
        }
    }
}

impl ThreadPool for BlockingPool {
    fn schedule_task(&self, task: BlockingTask) {
        // Sending fails only when every thread has gone; dropping the task then cancels it,
        // and its waiter sees `JoinError::Canceled`.
        let _ = self.queue.send(task);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn work_runs_off_the_worker_and_the_worker_keeps_running_meanwhile() {
        for legacy in [false, true] {
            let pool = Box::new(BlockingPool::shared());
            let run = |future| {
                if legacy {
                    monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
                        .enable_timer()
                        .attach_thread_pool(pool.clone())
                        .build()
                        .unwrap()
                        .block_on(future)
                } else {
                    monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
                        .enable_timer()
                        .attach_thread_pool(pool.clone())
                        .build()
                        .unwrap()
                        .block_on(future)
                }
            };
            let (blocking_thread, ticks) = run(async {
                let ticks = std::rc::Rc::new(std::cell::Cell::new(0));
                let counting = ticks.clone();
                monoio::spawn(async move {
                    loop {
                        monoio::time::sleep(Duration::from_millis(10)).await;
                        counting.set(counting.get() + 1);
                    }
                });
                let started = Instant::now();
                let blocking_thread = monoio::spawn_blocking(move || {
                    std::thread::sleep(Duration::from_millis(200));
                    std::thread::current().name().map(str::to_owned)
                })
                .await
                .unwrap();
                assert!(started.elapsed() >= Duration::from_millis(200));
                (blocking_thread, ticks.get())
            });
            assert!(blocking_thread.is_some_and(|n| n.starts_with("ringproxy-blocking-")));
            assert!(ticks >= 5, "the worker ran its other task meanwhile ({ticks} ticks)");
        }
    }
}
