//! Access-log writing, off the workers: each worker appends finished lines to a buffer of its
//! own ([`WorkerLog`]) and hands full buffers to one log-writer thread ([`LogWriter`]), which
//! owns every file handle, rolls files by size and reopens them on request (SIGUSR1, for an
//! external logrotate).
//!
//! A worker never blocks on a disk: a buffer goes to the writer with a non-blocking send into
//! a bounded queue, and when the queue is full (the disk cannot keep up) the buffer's lines are
//! dropped and counted (`ringproxy_access_log_lines_dropped_total`) instead of stalling every
//! connection on that worker. Lines never interleave: a buffer holds whole lines and the writer
//! writes each buffer with one `write_all`. Nothing is lost on a graceful stop: a stopping
//! worker flushes its buffers with a blocking send, and the writer drains its queue before it
//! exits.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::config::{limits, LogOutput, LogRoll as Roll};
use crate::metrics::WorkerMetrics;

/// Where lines go: a `log` directive's output, rolling options included.
pub type LogTarget = LogOutput;

/// A worker's full buffer for one target.
struct Batch {
    target: LogTarget,
    bytes: Vec<u8>,
}

enum Message {
    Batch(Batch),
    Reopen,
    /// Everything queued before this is written; then the writer ends.
    Stop,
}

/// The log-writer thread; stopping it (drop) drains what was queued.
pub struct LogWriter {
    sender: Option<SyncSender<Message>>,
    thread: Option<JoinHandle<()>>,
}

impl LogWriter {
    pub fn start() -> io::Result<LogWriter> {
        let (sender, receiver) = mpsc::sync_channel(limits::LOG_QUEUE_BATCHES);
        let thread = std::thread::Builder::new()
            .name("ringproxy-log".into())
            .spawn(move || write_batches(receiver))?;
        Ok(LogWriter { sender: Some(sender), thread: Some(thread) })
    }

    /// A buffer for one worker, counting its dropped lines in `metrics`.
    pub fn worker(&self, metrics: Arc<WorkerMetrics>) -> Option<WorkerLog> {
        let sender = self.sender.clone()?;
        Some(WorkerLog { sender, buffers: RefCell::new(HashMap::new()), metrics })
    }

    /// Close every file and open it again by name before the next write (after an external
    /// tool moved it away).
    pub fn reopen(&self) {
        if let Some(sender) = &self.sender {
            let _ = sender.send(Message::Reopen);
        }
    }
}

impl Drop for LogWriter {
    /// Called once the workers have stopped (and flushed): what they queued is written, then
    /// the writer ends. An explicit stop rather than waiting for every sender to go, so that a
    /// worker's buffer that outlives its thread cannot keep the writer (and this drop) waiting.
    fn drop(&mut self) {
        if let Some(sender) = self.sender.take() {
            let _ = sender.send(Message::Stop);
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One worker's side: buffers per target, handed over when full or on [`WorkerLog::flush`].
/// Lives on its worker thread only.
pub struct WorkerLog {
    sender: SyncSender<Message>,
    buffers: RefCell<HashMap<LogTarget, (Vec<u8>, u64)>>,
    metrics: Arc<WorkerMetrics>,
}

impl WorkerLog {
    /// Append one line (without its newline).
    pub fn line(&self, target: &LogTarget, line: &str) {
        if *target == LogOutput::Discard {
            return;
        }
        let full = {
            let mut buffers = self.buffers.borrow_mut();
            let (bytes, lines) = match buffers.get_mut(target) {
                Some(entry) => entry,
                None => buffers.entry(target.clone()).or_insert_with(|| (Vec::new(), 0)),
            };
            bytes.extend_from_slice(line.as_bytes());
            bytes.push(b'\n');
            *lines += 1;
            bytes.len() >= limits::LOG_BATCH_BYTES
        };
        if full {
            self.hand_over(target);
        }
    }

    /// Hand every non-empty buffer to the writer without blocking (a worker's periodic flush).
    pub fn flush(&self) {
        let targets: Vec<LogTarget> = self
            .buffers
            .borrow()
            .iter()
            .filter(|(_, (bytes, _))| !bytes.is_empty())
            .map(|(t, _)| t.clone())
            .collect();
        for target in targets {
            self.hand_over(&target);
        }
    }

    /// Hand every buffer over, waiting for room: a stopping worker loses no line.
    pub fn flush_blocking(&self) {
        let drained: Vec<(LogTarget, Vec<u8>)> = self
            .buffers
            .borrow_mut()
            .drain()
            .filter(|(_, (bytes, _))| !bytes.is_empty())
            .map(|(target, (bytes, _))| (target, bytes))
            .collect();
        for (target, bytes) in drained {
            let _ = self.sender.send(Message::Batch(Batch { target, bytes }));
        }
    }

    fn hand_over(&self, target: &LogTarget) {
        let Some((bytes, lines)) = self.buffers.borrow_mut().get_mut(target).map(|(b, n)| {
            let taken = (std::mem::take(b), *n);
            *n = 0;
            taken
        }) else {
            return;
        };
        let batch = Batch { target: target.clone(), bytes };
        match self.sender.try_send(Message::Batch(batch)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.metrics.log_lines_dropped.add(lines);
            }
        }
    }
}

impl Drop for WorkerLog {
    fn drop(&mut self) {
        self.flush_blocking();
    }
}

/// An open log file and how big it is.
struct OpenFile {
    file: File,
    size: u64,
}

fn write_batches(receiver: Receiver<Message>) {
    let mut files: HashMap<PathBuf, OpenFile> = HashMap::new();
    let mut warned = false;
    for message in receiver {
        match message {
            Message::Stop => return,
            Message::Reopen => files.clear(),
            Message::Batch(batch) => {
                let result = match &batch.target {
                    LogOutput::Stdout => io::stdout().lock().write_all(&batch.bytes),
                    LogOutput::Stderr => io::stderr().lock().write_all(&batch.bytes),
                    LogOutput::Discard => Ok(()),
                    LogOutput::File { path, roll } => {
                        write_file(&mut files, path, roll, &batch.bytes)
                    }
                };
                // One warning per failure streak, not one per batch.
                match result {
                    Ok(()) => warned = false,
                    Err(e) if !warned => {
                        warned = true;
                        tracing::warn!("access log write failed: {e}");
                    }
                    Err(_) => {}
                }
            }
        }
    }
}

fn write_file(
    files: &mut HashMap<PathBuf, OpenFile>,
    path: &Path,
    roll: &Roll,
    bytes: &[u8],
) -> io::Result<()> {
    if let Some(limit) = roll.size {
        let size = match files.get(path) {
            Some(open) => open.size,
            None => std::fs::metadata(path).map_or(0, |m| m.len()),
        };
        if size > 0 && size + bytes.len() as u64 > limit {
            files.remove(path);
            roll_file(path, roll, SystemTime::now())?;
        }
    }
    let open = match files.entry(path.to_owned()) {
        std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
        std::collections::hash_map::Entry::Vacant(e) => {
            let file = OpenOptions::new().create(true).append(true).open(path)?;
            let size = file.metadata()?.len();
            e.insert(OpenFile { file, size })
        }
    };
    open.file.write_all(bytes)?;
    open.size += bytes.len() as u64;
    Ok(())
}

/// Rename `path` to `<stem>-<UTC time>.<ext>` (Caddy's and lumberjack's naming) and delete
/// rolled files beyond `roll.keep` or older than `roll.keep_for`.
fn roll_file(path: &Path, roll: &Roll, now: SystemTime) -> io::Result<()> {
    let (stem, ext) = stem_and_extension(path);
    let rolled = path.with_file_name(format!("{stem}-{}{ext}", rolled_timestamp(now)));
    std::fs::rename(path, &rolled)?;
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let prefix = format!("{stem}-");
    let mut rolled_files: Vec<(String, PathBuf)> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let middle = name.strip_prefix(&prefix)?.strip_suffix(&ext)?;
            is_rolled_timestamp(middle).then(|| (middle.to_owned(), e.path()))
        })
        .collect();
    // The timestamps sort as text; newest first.
    rolled_files.sort_by(|a, b| b.0.cmp(&a.0));
    let oldest_kept = roll.keep_for.and_then(|age| now.checked_sub(age)).map(rolled_timestamp);
    for (i, (stamp, file)) in rolled_files.iter().enumerate() {
        let too_many = i >= roll.keep;
        let too_old = oldest_kept.as_ref().is_some_and(|oldest| stamp < oldest);
        if too_many || too_old {
            let _ = std::fs::remove_file(file);
        }
    }
    Ok(())
}

fn stem_and_extension(path: &Path) -> (String, String) {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    match name.rfind('.') {
        Some(dot) if dot > 0 => (name[..dot].to_owned(), name[dot..].to_owned()),
        _ => (name, String::new()),
    }
}

/// `2006-01-02T15-04-05.000` in UTC.
fn rolled_timestamp(t: SystemTime) -> String {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (year, month, day) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}-{:02}-{:02}.{:03}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        since.subsec_millis()
    )
}

fn is_rolled_timestamp(text: &str) -> bool {
    let shape = b"0000-00-00T00-00-00.000";
    text.len() == shape.len()
        && text
            .bytes()
            .zip(shape.iter())
            .all(|(b, s)| if *s == b'0' { b.is_ascii_digit() } else { b == *s })
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (Howard Hinnant's
/// `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn file_target(path: &Path, roll: Roll) -> LogTarget {
        LogOutput::File { path: path.to_owned(), roll }
    }

    #[test]
    fn timestamps_are_utc_in_lumberjacks_shape() {
        assert_eq!(rolled_timestamp(UNIX_EPOCH), "1970-01-01T00-00-00.000");
        let t = UNIX_EPOCH + Duration::from_millis(1_764_585_296_789);
        assert_eq!(rolled_timestamp(t), "2025-12-01T10-34-56.789");
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert!(is_rolled_timestamp("2025-12-01T10-34-56.789"));
        assert!(!is_rolled_timestamp("2025-12-01"));
    }

    #[test]
    fn lines_from_workers_reach_the_file_whole_and_in_order_on_stop() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        let target = file_target(&path, Roll { size: None, ..Roll::default() });
        let writer = LogWriter::start().unwrap();
        let workers: Vec<_> = (0..2)
            .map(|w| {
                let log = writer.worker(Arc::new(WorkerMetrics::default())).unwrap();
                let target = target.clone();
                std::thread::spawn(move || {
                    for i in 0..5000 {
                        log.line(&target, &format!("worker {w} line {i} {}", "x".repeat(i % 90)));
                        if i % 1000 == 0 {
                            log.flush();
                        }
                    }
                    // Dropping the worker's log flushes it.
                })
            })
            .collect();
        for w in workers {
            w.join().unwrap();
        }
        drop(writer);
        let text = std::fs::read_to_string(&path).unwrap();
        for w in 0..2 {
            let mine: Vec<usize> = text
                .lines()
                .filter_map(|l| l.strip_prefix(&format!("worker {w} line ")))
                .map(|rest| rest.split(' ').next().unwrap().parse().unwrap())
                .collect();
            assert_eq!(mine, (0..5000).collect::<Vec<_>>(), "worker {w}");
        }
        assert_eq!(text.lines().count(), 10_000, "a line was torn or lost");
    }

    #[test]
    fn a_full_queue_drops_and_counts_instead_of_blocking() {
        // A writer whose thread never runs: its queue fills and stays full.
        let (sender, _receiver) = mpsc::sync_channel(1);
        let metrics = Arc::new(WorkerMetrics::default());
        let log =
            WorkerLog { sender, buffers: RefCell::new(HashMap::new()), metrics: metrics.clone() };
        let target = LogOutput::Stderr;
        let long = "y".repeat(limits::LOG_BATCH_BYTES);
        log.line(&target, &long); // fills the one slot
        log.line(&target, &long); // dropped
        log.line(&target, "short");
        log.line(&target, &long); // dropped, with "short"
        assert_eq!(metrics.log_lines_dropped.get(), 3);
        std::mem::forget(log); // its drop would block on the full queue
    }

    #[test]
    fn files_roll_at_their_size_keep_the_newest_and_reopen_on_request() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        let roll = Roll { size: Some(1000), keep: 2, keep_for: None };
        let mut files = HashMap::new();
        let line = vec![b'z'; 399];
        for round in 0..12 {
            write_file(&mut files, &path, &roll, &line).unwrap();
            if round % 3 == 2 {
                // Rolled names carry milliseconds; keep them distinct.
                std::thread::sleep(Duration::from_millis(3));
            }
        }
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names.len(), 3, "the live file and two rolled ones: {names:?}");
        assert!(names.contains(&"access.log".to_string()));
        assert!(std::fs::metadata(&path).unwrap().len() <= 1000);
        for rolled in names.iter().filter(|n| *n != "access.log") {
            let stamp = rolled.strip_prefix("access-").unwrap().strip_suffix(".log").unwrap();
            assert!(is_rolled_timestamp(stamp), "{rolled}");
        }

        // An external rotation moves the file away; after a reopen, writes go to a new one.
        let moved = dir.path().join("moved.log");
        std::fs::rename(&path, &moved).unwrap();
        write_file(&mut files, &path, &roll, b"still the old handle\n").unwrap();
        assert!(!path.exists());
        files.clear(); // what Message::Reopen does
        write_file(&mut files, &path, &roll, b"new file\n").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new file\n");
    }

    #[test]
    fn rolled_files_older_than_keep_for_are_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        let old = dir.path().join(format!("a-{}.log", rolled_timestamp(UNIX_EPOCH)));
        std::fs::write(&old, b"ancient").unwrap();
        std::fs::write(&path, b"current").unwrap();
        let roll = Roll { size: Some(1), keep: 10, keep_for: Some(Duration::from_secs(86_400)) };
        roll_file(&path, &roll, SystemTime::now()).unwrap();
        assert!(!old.exists());
        assert!(!path.exists());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
