//! The storage directory: where it is, and how private files are written into it.
//!
//! The local CA (and later ACME accounts and certificates) keep their state here. Secrets are
//! written the way a crash cannot corrupt them: to a temporary file created 0600 in the same
//! directory, synced, then renamed over the final name. Directories we create are 0700, so
//! other local users cannot list which names we hold certificates for.

use std::ffi::OsString;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::config::Globals;

/// Mode of every private key file we write.
pub const PRIVATE_FILE_MODE: u32 = 0o600;
/// Mode of every directory we create under the storage directory.
pub const PRIVATE_DIR_MODE: u32 = 0o700;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error(
        "no storage directory: set `storage file_system <path>` in the Caddyfile, or \
         $XDG_DATA_HOME or $HOME"
    )]
    NoLocation,
    #[error("storage {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

impl StorageError {
    pub(crate) fn io(path: &Path, source: io::Error) -> Self {
        StorageError::Io { path: path.to_owned(), source }
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

/// Write `contents` to `path` atomically with mode 0600: a reader sees the old file or the new
/// one, never a prefix, and a crash leaves at worst a stray temporary file.
pub fn write_private_atomic(path: &Path, contents: &[u8]) -> Result<(), StorageError> {
    let tmp = temp_sibling(path);
    let result = (|| {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(PRIVATE_FILE_MODE)
            .open(&tmp)?;
        // The umask cannot widen 0600, but an inherited ACL default could; be explicit.
        file.set_permissions(fs::Permissions::from_mode(PRIVATE_FILE_MODE))?;
        file.write_all(contents)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(StorageError::io(path, e));
    }
    Ok(())
}

/// A temporary name next to `path` (same filesystem, so rename is atomic), unique per process
/// and call.
pub(crate) fn temp_sibling(path: &Path) -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut name = path.file_name().map(OsString::from).unwrap_or_default();
    name.push(format!(".tmp.{}.{n}", std::process::id()));
    path.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_dir_prefers_the_caddyfile_then_the_default() {
        let mut globals = crate::config::Globals::default();
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
    fn private_files_are_0600_and_replace_atomically() {
        let dir = std::env::temp_dir().join(format!("rp-storage-{}", std::process::id()));
        create_private_dir(&dir.join("a/b")).unwrap();
        let mode = fs::metadata(dir.join("a/b")).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, PRIVATE_DIR_MODE);
        let file = dir.join("a/b/key.pem");
        write_private_atomic(&file, b"one").unwrap();
        write_private_atomic(&file, b"two").unwrap();
        assert_eq!(fs::read(&file).unwrap(), b"two");
        let mode = fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, PRIVATE_FILE_MODE);
        let leftovers = fs::read_dir(dir.join("a/b")).unwrap().count();
        assert_eq!(leftovers, 1, "no temporary file left behind");
        fs::remove_dir_all(&dir).unwrap();
    }
}
