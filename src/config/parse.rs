//! Tokens → typed [`Config`](super::Config). OWNER: config helper.

use std::path::Path;

use super::{Config, ConfigError};

/// Parse Caddyfile text. `file_name` is what errors show (`Caddyfile:12 - ...`); relative paths
/// in the file (tls cert/key, log files) resolve against `base_dir`.
pub fn parse_caddyfile(
    text: &str,
    file_name: &str,
    base_dir: &Path,
) -> Result<Config, ConfigError> {
    let _ = (text, file_name, base_dir);
    todo!("config helper")
}

/// Read and parse a Caddyfile from disk.
pub fn parse_file(path: &Path) -> Result<Config, ConfigError> {
    let _ = path;
    todo!("config helper")
}
