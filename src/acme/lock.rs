//! Cross-process lock files: one per name, so that of several ringproxy instances sharing a
//! storage directory only one orders a given certificate at a time, and the others pick up its
//! result from storage instead of placing their own order.
//!
//! A lock is a file created with `O_CREAT|O_EXCL` holding the owner's pid and start time (for
//! humans and logs). While held, the owner refreshes the file's mtime every
//! [`LockTimings::refresh_every`]; a lock whose mtime is older than
//! [`LockTimings::stale_after`] belongs to a crashed or frozen instance and may be broken.
//!
//! Breaking is the only racy step. Instances that judge the same file stale first take a
//! short-lived *breaker* file next to it (`<name>.lock.break`, `O_CREAT|O_EXCL`), so only one
//! of them breaks at a time; the others report the lock as held and poll again. The breaker
//! re-checks the lock under the breaker file, renames it aside, checks that what it moved is
//! the stale file it judged, and deletes it; then every contender races on `O_EXCL` again and
//! exactly one wins. Without the breaker file a second breaker could move the winner's fresh
//! lock aside while a third instance took the path, leaving two owners. What remains is an
//! owner that was silent for `stale_after` waking up in the microseconds of a break; it notices
//! on its next refresh and logs it. A breaker file left by a crash is itself broken after
//! `stale_after`. File locks rather than `flock`, because `flock` is not reliable on every
//! network file system a shared storage directory might live on (certmagic makes the same
//! choice).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::storage::{create_private_dir, StorageError};

/// How lock files age.
#[derive(Debug, Clone, Copy)]
pub struct LockTimings {
    /// A lock not refreshed for this long is considered abandoned.
    pub stale_after: Duration,
    /// How often the owner refreshes its lock; well below `stale_after`.
    pub refresh_every: Duration,
    /// How often a waiting instance retries.
    pub poll_every: Duration,
}

impl Default for LockTimings {
    /// An ACME order normally completes in seconds; an owner silent for a minute has crashed
    /// or is wedged, and waiting longer would only delay a certificate that is missing.
    fn default() -> Self {
        LockTimings {
            stale_after: Duration::from_secs(60),
            refresh_every: Duration::from_secs(10),
            poll_every: Duration::from_secs(1),
        }
    }
}

/// A held lock. Dropping it removes the lock file if it is still ours.
#[derive(Debug)]
pub struct LockFile {
    path: PathBuf,
    file: File,
    dev: u64,
    ino: u64,
}

/// The lock path for `name` inside `locks_dir`.
pub fn lock_path(locks_dir: &Path, name: &str) -> PathBuf {
    locks_dir.join(format!("{name}.lock"))
}

/// One attempt to take the lock at `path`: `Ok(None)` when another live owner holds it.
pub fn try_acquire(path: &Path, stale_after: Duration) -> Result<Option<LockFile>, StorageError> {
    let io_err = |e| StorageError::Io { path: path.to_owned(), source: e };
    if let Some(dir) = path.parent() {
        create_private_dir(dir)?;
    }
    // Bounded: each round either takes the lock, finds a live owner, or removed a stale file
    // (or saw one vanish); three rounds cover a breaker racing us once more.
    for _ in 0..3 {
        match OpenOptions::new().write(true).create_new(true).mode(0o600).open(path) {
            Ok(mut file) => {
                let started =
                    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
                writeln!(file, "pid {} since {}", std::process::id(), started).map_err(io_err)?;
                file.sync_all().map_err(io_err)?;
                let meta = file.metadata().map_err(io_err)?;
                return Ok(Some(LockFile {
                    path: path.to_owned(),
                    file,
                    dev: meta.dev(),
                    ino: meta.ino(),
                }));
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io_err(e)),
        }
        let meta = match fs::metadata(path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io_err(e)),
        };
        if !is_stale(&meta, stale_after) {
            return Ok(None);
        }
        let Some(_breaking) = Breaker::take(path, stale_after).map_err(io_err)? else {
            // Another instance is breaking it right now.
            return Ok(None);
        };
        let meta = match fs::metadata(path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io_err(e)),
        };
        if !is_stale(&meta, stale_after) {
            return Ok(None);
        }
        if !break_stale(path, &meta, stale_after).map_err(io_err)? {
            return Ok(None);
        }
    }
    Ok(None)
}

/// The right to break the stale lock next to it; released on drop.
struct Breaker(PathBuf);

impl Breaker {
    fn take(lock: &Path, stale_after: Duration) -> io::Result<Option<Breaker>> {
        let mut name = lock.as_os_str().to_owned();
        name.push(".break");
        let path = PathBuf::from(name);
        for _ in 0..2 {
            match OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path) {
                Ok(_) => return Ok(Some(Breaker(path))),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
            // A breaker holds the file for microseconds; one this old crashed mid-break.
            match fs::metadata(&path) {
                Ok(meta) if is_stale(&meta, stale_after) => {
                    break_stale(&path, &meta, stale_after)?;
                }
                Ok(_) => return Ok(None),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }
}

impl Drop for Breaker {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

fn is_stale(meta: &fs::Metadata, stale_after: Duration) -> bool {
    let modified = meta.modified().unwrap_or(UNIX_EPOCH);
    // A clock step backwards makes the age negative: treat that as fresh, never as stale.
    SystemTime::now().duration_since(modified).is_ok_and(|age| age >= stale_after)
}

/// Move the stale lock at `path` aside and delete it. Returns whether the path is now free.
fn break_stale(path: &Path, judged: &fs::Metadata, stale_after: Duration) -> io::Result<bool> {
    let aside = path.with_extension(format!("lock.stale.{}.{}", std::process::id(), nanos()));
    match fs::rename(path, &aside) {
        Ok(()) => {}
        // Someone else broke or released it first: the path is free (or freshly taken).
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(true),
        Err(e) => return Err(e),
    }
    let moved = fs::metadata(&aside)?;
    if moved.ino() != judged.ino() || !is_stale(&moved, stale_after) {
        // We moved a lock that was taken or refreshed after our check: put it back. If a third
        // instance took the path meanwhile the link fails and that instance owns the lock.
        let _ = fs::hard_link(&aside, path);
        let _ = fs::remove_file(&aside);
        return Ok(false);
    }
    let owner = read_owner(&aside);
    fs::remove_file(&aside)?;
    tracing::warn!(lock = %path.display(), owner = %owner, "removed stale ACME lock");
    Ok(true)
}

fn read_owner(path: &Path) -> String {
    let mut text = String::new();
    let _ = File::open(path).and_then(|f| f.take(200).read_to_string(&mut text));
    text.trim().to_owned()
}

fn nanos() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos())
}

impl LockFile {
    /// Mark the lock as alive. Fails when the lock file is no longer ours (another instance
    /// judged it stale and broke it); the caller should log that, since mutual exclusion for
    /// this name is then no longer guaranteed.
    pub fn refresh(&self) -> io::Result<()> {
        if !self.still_ours() {
            return Err(io::Error::other("lock file was removed or replaced by another instance"));
        }
        self.file.set_modified(SystemTime::now())
    }

    fn still_ours(&self) -> bool {
        fs::metadata(&self.path).is_ok_and(|m| m.dev() == self.dev && m.ino() == self.ino)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for LockFile {
    fn drop(&mut self) {
        if self.still_ours() {
            if let Err(e) = fs::remove_file(&self.path) {
                tracing::warn!(lock = %self.path.display(), error = %e, "cannot remove ACME lock");
            }
        }
    }
}

/// Take the lock at `path`, waiting while a live owner holds it. The returned guard refreshes
/// the lock in the background (a task on the current tokio runtime) until dropped.
pub async fn acquire(path: &Path, timings: LockTimings) -> Result<HeldLock, StorageError> {
    let mut logged_wait = false;
    loop {
        if let Some(lock) = try_acquire(path, timings.stale_after)? {
            return Ok(HeldLock::start(lock, timings.refresh_every));
        }
        if !logged_wait {
            tracing::info!(lock = %path.display(), owner = %read_owner(path), "waiting for another instance holding the ACME lock");
            logged_wait = true;
        }
        tokio::time::sleep(timings.poll_every).await;
    }
}

/// A lock kept alive by a refresh task; dropping it stops the task and releases the lock.
pub struct HeldLock {
    refresher: tokio::task::JoinHandle<()>,
    lock: std::sync::Arc<LockFile>,
}

impl HeldLock {
    fn start(lock: LockFile, every: Duration) -> Self {
        let lock = std::sync::Arc::new(lock);
        let shared = lock.clone();
        let refresher = tokio::spawn(async move {
            let mut ticker = tokio::time::interval(every);
            ticker.tick().await;
            loop {
                ticker.tick().await;
                if let Err(e) = shared.refresh() {
                    tracing::error!(lock = %shared.path().display(), error = %e, "lost the ACME lock");
                    return;
                }
            }
        });
        HeldLock { refresher, lock }
    }

    pub fn path(&self) -> &Path {
        self.lock.path()
    }
}

impl Drop for HeldLock {
    fn drop(&mut self) {
        // The aborted task drops its clone only when the runtime next polls it; release now
        // rather than then. Its later `LockFile::drop` is harmless: the inode it compares
        // against stays allocated while that clone holds the file open, so a lock another
        // instance creates meanwhile can never be mistaken for ours.
        self.refresher.abort();
        if self.lock.still_ours() {
            let _ = fs::remove_file(self.lock.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Barrier;

    use super::*;

    fn age(path: &Path, by: Duration) {
        let file = File::options().write(true).open(path).unwrap();
        file.set_modified(SystemTime::now() - by).unwrap();
    }

    #[test]
    fn second_acquirer_waits_until_release() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let path = lock_path(&dir, "a.example");
        let held = try_acquire(&path, Duration::from_secs(60)).unwrap().unwrap();
        assert!(try_acquire(&path, Duration::from_secs(60)).unwrap().is_none());
        let owner = fs::read_to_string(&path).unwrap();
        assert!(owner.starts_with(&format!("pid {} since ", std::process::id())), "{owner}");
        drop(held);
        assert!(!path.exists());
        assert!(try_acquire(&path, Duration::from_secs(60)).unwrap().is_some());
    }

    #[test]
    fn stale_lock_is_broken_and_fresh_one_is_not() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let path = lock_path(&dir, "a.example");
        let crashed = try_acquire(&path, Duration::from_secs(60)).unwrap().unwrap();
        // A crashed owner never releases: forget the guard, keep the file.
        std::mem::forget(crashed);
        age(&path, Duration::from_secs(30));
        assert!(
            try_acquire(&path, Duration::from_secs(60)).unwrap().is_none(),
            "30 s old is fresh"
        );
        age(&path, Duration::from_secs(61));
        let taken = try_acquire(&path, Duration::from_secs(60)).unwrap();
        assert!(taken.is_some(), "61 s old is stale");
        let leftovers = fs::read_dir(&dir).unwrap().count();
        assert_eq!(leftovers, 1, "only the new lock file remains");
    }

    #[test]
    fn refresh_keeps_a_lock_fresh_and_detects_theft() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let path = lock_path(&dir, "a.example");
        let held = try_acquire(&path, Duration::from_secs(60)).unwrap().unwrap();
        age(&path, Duration::from_secs(61));
        held.refresh().unwrap();
        assert!(try_acquire(&path, Duration::from_secs(60)).unwrap().is_none());

        age(&path, Duration::from_secs(61));
        let thief = try_acquire(&path, Duration::from_secs(60)).unwrap().unwrap();
        assert!(held.refresh().is_err());
        // The old owner's release must not delete the thief's lock.
        drop(held);
        assert!(path.exists());
        drop(thief);
    }

    #[test]
    fn racing_threads_breaking_one_stale_lock_yield_one_owner() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let path = lock_path(&dir, "a.example");
        for round in 0..20 {
            let stale = try_acquire(&path, Duration::from_secs(60)).unwrap().unwrap();
            std::mem::forget(stale);
            age(&path, Duration::from_secs(120));
            let winners = AtomicUsize::new(0);
            let barrier = Barrier::new(4);
            let held: Vec<Option<LockFile>> = std::thread::scope(|s| {
                let handles: Vec<_> = (0..4)
                    .map(|_| {
                        s.spawn(|| {
                            barrier.wait();
                            let got = try_acquire(&path, Duration::from_secs(60)).unwrap();
                            if got.is_some() {
                                winners.fetch_add(1, Ordering::SeqCst);
                            }
                            got
                        })
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap()).collect()
            });
            assert_eq!(winners.load(Ordering::SeqCst), 1, "round {round}");
            drop(held);
            assert!(!path.exists());
        }
    }

    /// Where `processes_holding_one_lock_never_overlap` (process `parent`) tells its children
    /// which lock to contend for and where to log. A file rather than the environment: the
    /// crate reads no environment variables outside `main`.
    fn child_orders(parent: u32) -> PathBuf {
        std::env::temp_dir().join(format!("ringproxy-lock-test-orders-{parent}"))
    }

    /// Not a test on its own: the body run by the child processes of
    /// `processes_holding_one_lock_never_overlap` (it returns at once when its parent left no
    /// orders, i.e. when it runs as an ordinary test).
    #[test]
    fn lock_contender_child_process() {
        let Ok(orders) = fs::read_to_string(child_orders(std::os::unix::process::parent_id()))
        else {
            return;
        };
        let Some((lock, log)) = orders.split_once('\n') else {
            return;
        };
        let path = PathBuf::from(lock);
        for _ in 0..30 {
            let held = loop {
                if let Some(held) = try_acquire(&path, Duration::from_secs(60)).unwrap() {
                    break held;
                }
                std::thread::sleep(Duration::from_millis(1));
            };
            let mut out = OpenOptions::new().append(true).create(true).open(log).unwrap();
            writeln!(out, "enter {}", std::process::id()).unwrap();
            std::thread::sleep(Duration::from_millis(2));
            writeln!(out, "exit {}", std::process::id()).unwrap();
            drop(held);
        }
    }

    #[test]
    fn processes_holding_one_lock_never_overlap() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let path = lock_path(&dir, "a.example");
        let log = dir.join("log");
        let exe = std::env::current_exe().unwrap();
        let orders = child_orders(std::process::id());
        fs::write(&orders, format!("{}\n{}", path.display(), log.display())).unwrap();
        let children: Vec<_> = (0..3)
            .map(|_| {
                std::process::Command::new(&exe)
                    .args([
                        "--exact",
                        "acme::lock::tests::lock_contender_child_process",
                        "--test-threads=1",
                    ])
                    .stdout(std::process::Stdio::null())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for mut child in children {
            assert!(child.wait().unwrap().success());
        }
        fs::remove_file(&orders).unwrap();
        let text = fs::read_to_string(&log).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3 * 30 * 2);
        for pair in lines.chunks(2) {
            let (enter, exit) = (pair[0], pair[1]);
            assert!(enter.starts_with("enter "), "{enter}");
            assert_eq!(enter.replacen("enter", "exit", 1), exit, "critical sections overlapped");
        }
    }
}
