//! Scratch directories: [`temp_dir`] is the one way a test gets a directory of its own (for a
//! Caddyfile, certificate files, `storage`, logs). It is a `tempfile::TempDir`, so it is removed
//! when dropped, also when the test fails and unwinds.

pub use tempfile::TempDir;

/// A new, empty directory under the system temp dir, named after `tag` so that a leftover (a
/// test killed mid-run) says which test made it.
pub fn temp_dir(tag: &str) -> TempDir {
    tempfile::Builder::new()
        .prefix(&format!("ringproxy-it-{tag}-"))
        .tempdir()
        .unwrap_or_else(|e| panic!("cannot create a temp dir for {tag}: {e}"))
}
