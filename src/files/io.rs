//! File I/O that never blocks a worker: open, stat and read.
//!
//! On the io_uring driver every operation is a ring submission (monoio's `openat`, `statx`
//! and `read` ops), so the worker only waits on completions. monoio's epoll driver has no
//! readiness for regular files and runs those same operations as plain syscalls on the
//! worker, which would stall every connection of the worker behind a cold disk; there each
//! operation instead runs on the process's blocking pool (`runtime::blocking`, attached with
//! [`with_blocking_pool`]) and the worker awaits its result.
//!
//! Files are opened with `O_NONBLOCK`: opening a FIFO someone left under a root would
//! otherwise wait for a writer (on a ring worker or a pool thread) forever. It changes nothing
//! for regular files, and only regular files and directories are served.
//!
//! The real path of an opened file (what symlinks led to) is read back from
//! `/proc/self/fd/<n>`: procfs answers from the kernel's dentry cache, without disk I/O.

use std::cell::Cell;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

/// Flags every open adds to `O_RDONLY | O_CLOEXEC` (see the module doc).
const OPEN_FLAGS: i32 = libc::O_NONBLOCK | libc::O_NOCTTY;

thread_local! {
    /// This worker runs on epoll: its file I/O goes to the pool.
    static POOLED: Cell<bool> = const { Cell::new(false) };
}

/// An epoll worker's runtime builder with the file I/O pool attached; to be called on the
/// worker's own thread, which it marks as one whose file I/O goes to the pool.
pub fn with_blocking_pool(
    builder: monoio::RuntimeBuilder<monoio::LegacyDriver>,
) -> monoio::RuntimeBuilder<monoio::LegacyDriver> {
    POOLED.with(|pooled| pooled.set(true));
    builder.attach_thread_pool(Box::new(crate::runtime::blocking::BlockingPool::shared()))
}

/// What the file server needs to know of an open file.
#[derive(Debug, Clone)]
pub struct Meta {
    pub len: u64,
    pub is_dir: bool,
    /// A regular file (not a directory, FIFO, socket or device).
    pub is_file: bool,
    pub modified: SystemTime,
    /// The path the kernel opened, symlinks resolved.
    pub real: PathBuf,
}

/// An open file (or directory), read by offset.
pub struct OpenFile {
    file: Handle,
    pub meta: Meta,
}

enum Handle {
    Ring(monoio::fs::File),
    Pool(Arc<std::fs::File>),
}

/// Opens `path` read-only and reads its metadata.
pub async fn open(path: PathBuf) -> io::Result<OpenFile> {
    if POOLED.with(Cell::get) {
        let opened = monoio::spawn_blocking(move || {
            let mut options = std::fs::OpenOptions::new();
            let file = options.read(true).custom_flags(OPEN_FLAGS).open(&path)?;
            let stat = file.metadata()?;
            let (len, is_dir, is_file) = (stat.len(), stat.is_dir(), stat.is_file());
            let meta =
                Meta { len, is_dir, is_file, modified: stat.modified()?, real: real_path(&file)? };
            Ok::<_, io::Error>((file, meta))
        })
        .await
        .map_err(|_| io::Error::other("the file I/O pool dropped the open"))?;
        let (file, meta) = opened?;
        return Ok(OpenFile { file: Handle::Pool(Arc::new(file)), meta });
    }
    let mut options = monoio::fs::OpenOptions::new();
    let file = options.read(true).custom_flags(OPEN_FLAGS).open(&path).await?;
    let stat = file.metadata().await?;
    let (len, is_dir, is_file) = (stat.len(), stat.is_dir(), stat.is_file());
    let meta = Meta { len, is_dir, is_file, modified: stat.modified()?, real: real_path(&file)? };
    Ok(OpenFile { file: Handle::Ring(file), meta })
}

impl OpenFile {
    /// Reads up to `buf`'s capacity from `pos`; `buf` comes back holding what was read.
    pub async fn read_at(&self, mut buf: Vec<u8>, pos: u64) -> (io::Result<usize>, Vec<u8>) {
        match &self.file {
            Handle::Ring(file) => {
                buf.clear();
                file.read_at(buf, pos).await
            }
            Handle::Pool(file) => {
                let file = file.clone();
                let read = monoio::spawn_blocking(move || {
                    buf.resize(buf.capacity(), 0);
                    let n = file.read_at(&mut buf, pos);
                    buf.truncate(*n.as_ref().unwrap_or(&0));
                    (n, buf)
                })
                .await;
                match read {
                    Ok(read) => read,
                    Err(_) => {
                        (Err(io::Error::other("the file I/O pool dropped a read")), Vec::new())
                    }
                }
            }
        }
    }
}

fn real_path(file: &impl AsRawFd) -> io::Result<PathBuf> {
    std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn on_both_drivers(
        test: impl Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = ()>>> + Sync,
    ) {
        let mut ring = monoio::RuntimeBuilder::<monoio::IoUringDriver>::new().build();
        if let Ok(rt) = ring.as_mut() {
            rt.block_on(test());
        }
        std::thread::scope(|scope| {
            scope.spawn(|| {
                let builder =
                    with_blocking_pool(monoio::RuntimeBuilder::<monoio::LegacyDriver>::new());
                builder.build().unwrap().block_on(test());
            });
        });
    }

    #[test]
    fn files_open_stat_and_read_by_offset_on_both_drivers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data.bin");
        std::fs::write(&path, b"0123456789").unwrap();
        let real = std::fs::canonicalize(&path).unwrap();
        on_both_drivers(|| {
            let (path, real) = (path.clone(), real.clone());
            Box::pin(async move {
                let file = open(path).await.unwrap();
                assert_eq!(file.meta.len, 10);
                assert!(!file.meta.is_dir && file.meta.is_file);
                assert_eq!(file.meta.real, real);
                let (n, buf) = file.read_at(Vec::with_capacity(4), 3).await;
                assert_eq!((n.unwrap(), &buf[..]), (4, &b"3456"[..]));
                let (n, buf) = file.read_at(buf, 8).await;
                assert_eq!((n.unwrap(), &buf[..]), (2, &b"89"[..]));
            })
        });
    }

    #[test]
    fn a_missing_file_is_not_found_and_directories_and_fifos_say_what_they_are() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let fifo = root.join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
        assert!(made.success());
        on_both_drivers(|| {
            let (root, fifo) = (root.clone(), fifo.clone());
            Box::pin(async move {
                let missing = open(root.join("nope")).await.err().unwrap();
                assert_eq!(missing.kind(), io::ErrorKind::NotFound);
                assert!(open(root.clone()).await.unwrap().meta.is_dir);
                // A FIFO without a writer opens at once (and is not a regular file).
                assert!(!open(fifo).await.unwrap().meta.is_file);
            })
        });
    }
}
