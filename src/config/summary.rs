//! The one-screen summary `ringproxy validate` prints. OWNER: config helper.

use super::Config;

/// Render sites, routes and upstreams, one screen.
pub fn summary(config: &Config) -> String {
    let _ = config;
    todo!("config helper")
}
