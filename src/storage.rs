//! The storage directory: where it is, the one error type for reading and writing it, and the
//! one way files are written into it. The local CA (`tls::local_ca`) and ACME
//! (`acme::storage`, locks, shared challenges) both keep their state here.
//!
//! Files are written so that a crash cannot corrupt them: to a temporary file created with its
//! final mode in the same directory, synced, renamed over the final name, and the directory
//! synced so the rename itself survives a power cut. A reader sees the old file or the new
//! one, never a prefix. Directories we create are 0700, so other local users cannot list which
//! names we hold certificates for.
//!
//! All I/O here is blocking std I/O: it runs at start-up and on control-plane threads, never
//! on a worker.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::config::Globals;

/// Mode of every directory we create under the storage directory.
pub const PRIVATE_DIR_MODE: u32 = 0o700;
/// Mode of private keys and account credentials.
pub const SECRET_FILE_MODE: u32 = 0o600;
/// Mode of certificates: public data (users install the local root), but nobody else may
/// write them.
pub const PUBLIC_FILE_MODE: u32 = 0o644;

/// Why the storage directory could not be found, read or written.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error(
        "no storage directory: set `storage file_system <path>` in the Caddyfile, or \
         $XDG_DATA_HOME or $HOME"
    )]
    NoLocation,
    #[error("storage {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("storage {path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
}

impl StorageError {
    pub(crate) fn io(path: &Path, source: io::Error) -> Self {
        StorageError::Io { path: path.to_owned(), source }
    }

    pub(crate) fn invalid(path: &Path, reason: impl Into<String>) -> Self {
        StorageError::Invalid { path: path.to_owned(), reason: reason.into() }
    }
}

/// The storage directory in effect: the Caddyfile's `storage file_system <path>`, else
/// `default` (what [`default_storage_dir`] gave `ringproxy run`).
pub fn storage_dir(globals: &Globals, default: Option<&Path>) -> Result<PathBuf, StorageError> {
    globals.storage.as_deref().or(default).map(Path::to_owned).ok_or(StorageError::NoLocation)
}

/// Where Caddy users expect storage when the Caddyfile names none: `$XDG_DATA_HOME/ringproxy`,
/// else `~/.local/share/ringproxy`. The caller passes the two variables in (only `main` reads
/// the process environment).
pub fn default_storage_dir(
    xdg_data_home: Option<OsString>,
    home: Option<OsString>,
) -> Option<PathBuf> {
    // The XDG base directory spec says relative values are invalid and must be ignored.
    if let Some(xdg) = xdg_data_home.map(PathBuf::from).filter(|p| p.is_absolute()) {
        return Some(xdg.join("ringproxy"));
    }
    home.map(PathBuf::from).filter(|p| p.is_absolute()).map(|h| h.join(".local/share/ringproxy"))
}

/// Create `dir` and any missing parents with mode 0700 (existing directories are left as the
/// user made them).
pub fn create_private_dir(dir: &Path) -> Result<(), StorageError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(PRIVATE_DIR_MODE)
        .create(dir)
        .map_err(|e| StorageError::io(dir, e))
}

/// Replace `path` with `contents`, file mode `mode`, so that a crash at any point leaves either
/// the old file or the new one. Missing parent directories are created 0700.
pub fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> Result<(), StorageError> {
    let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) else {
        return Err(StorageError::invalid(path, "no parent directory"));
    };
    create_private_dir(dir)?;
    let tmp = temp_sibling(path);
    let result = (|| {
        // create_new: never follow or reuse a file someone else put at our temporary name.
        let mut file = OpenOptions::new().write(true).create_new(true).mode(mode).open(&tmp)?;
        // The umask can narrow `mode` (and an inherited default ACL could widen it): be exact.
        file.set_permissions(fs::Permissions::from_mode(mode))?;
        file.write_all(contents)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(StorageError::io(path, e));
    }
    Ok(())
}

/// A hidden temporary name next to `path` (same file system, so a rename onto `path` is
/// atomic), unique per process and call, threads included.
pub(crate) fn temp_sibling(path: &Path) -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut name = OsString::from(".");
    name.push(path.file_name().unwrap_or_default());
    name.push(format!(".tmp.{}.{n}", std::process::id()));
    path.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn storage_dir_prefers_the_caddyfile_then_the_default() {
        let mut globals = Globals::default();
        let default = Path::new("/d");
        assert_eq!(storage_dir(&globals, Some(default)).unwrap(), PathBuf::from("/d"));
        assert!(matches!(storage_dir(&globals, None), Err(StorageError::NoLocation)));
        globals.storage = Some(PathBuf::from("/srv/certs"));
        assert_eq!(storage_dir(&globals, Some(default)).unwrap(), PathBuf::from("/srv/certs"));
    }

    #[test]
    fn the_default_is_xdg_then_home_and_relative_values_are_ignored() {
        let got = default_storage_dir(Some("/x".into()), Some("/h".into()));
        assert_eq!(got, Some(PathBuf::from("/x/ringproxy")));
        let got = default_storage_dir(None, Some("/h".into()));
        assert_eq!(got, Some(PathBuf::from("/h/.local/share/ringproxy")));
        let got = default_storage_dir(Some("rel".into()), Some("/h".into()));
        assert_eq!(got, Some(PathBuf::from("/h/.local/share/ringproxy")));
        assert_eq!(default_storage_dir(None, Some("rel".into())), None);
        assert_eq!(default_storage_dir(None, None), None);
    }

    #[test]
    fn written_files_get_exactly_their_mode_in_private_directories_and_replace_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("a/b/secret");
        write_atomic(&secret, b"one", SECRET_FILE_MODE).unwrap();
        write_atomic(&secret, b"two", SECRET_FILE_MODE).unwrap();
        assert_eq!(fs::read(&secret).unwrap(), b"two");
        assert_eq!(mode(&secret), SECRET_FILE_MODE);
        assert_eq!(mode(&dir.path().join("a/b")), PRIVATE_DIR_MODE);
        assert_eq!(mode(&dir.path().join("a")), PRIVATE_DIR_MODE);
        let public = dir.path().join("a/root.crt");
        write_atomic(&public, b"cert", PUBLIC_FILE_MODE).unwrap();
        assert_eq!(mode(&public), PUBLIC_FILE_MODE);
        // No temporary files are left behind.
        let names: Vec<_> =
            fs::read_dir(dir.path().join("a")).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }

    #[test]
    fn a_failed_write_leaves_the_old_file_and_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key.pem");
        write_atomic(&path, b"old", SECRET_FILE_MODE).unwrap();
        // A directory where the file should go makes the rename fail.
        let blocked = dir.path().join("blocked");
        fs::create_dir(&blocked).unwrap();
        fs::write(blocked.join("inside"), b"x").unwrap();
        let err = write_atomic(&blocked, b"new", SECRET_FILE_MODE).unwrap_err();
        assert!(err.to_string().contains("blocked"), "{err}");
        assert_eq!(fs::read(&path).unwrap(), b"old");
        let names: Vec<_> =
            fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names.len(), 2, "only key.pem and blocked remain: {names:?}");
    }

    #[test]
    fn concurrent_writers_never_expose_a_partial_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key.pem");
        let a = vec![b'a'; 64 * 1024];
        let b = vec![b'b'; 64 * 1024];
        write_atomic(&path, &a, SECRET_FILE_MODE).unwrap();
        std::thread::scope(|s| {
            for payload in [&a, &b] {
                let path = &path;
                s.spawn(move || {
                    for _ in 0..50 {
                        write_atomic(path, payload, SECRET_FILE_MODE).unwrap();
                    }
                });
            }
            s.spawn(|| {
                for _ in 0..200 {
                    let seen = fs::read(&path).unwrap();
                    assert!(seen == a || seen == b, "torn read of {} bytes", seen.len());
                }
            });
        });
    }
}
