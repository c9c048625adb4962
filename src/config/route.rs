//! Routing: (listener, host, path, method, headers) → the handler that serves a request.
//!
//! Pure functions over a [`Config`](super::Config); no I/O, no allocation on the common path.
//! OWNER: config helper (stub signatures fixed by the data path).

use super::{Handler, ListenerConfig, Site};

/// What the router needs to know about a request. Implemented by the data path's parsed head.
pub trait RequestView {
    /// Request host, lower-case, without port (from Host or the absolute-form target).
    fn host(&self) -> &str;
    /// Path, normalised for matching: percent-decoded, dot segments resolved, repeated slashes
    /// merged, lower-case (see [`crate::http::path::normalize_path`]).
    fn match_path(&self) -> &str;
    /// Method as received (upper-case for standard methods).
    fn method(&self) -> &str;
    /// Every value of the header `name` (given lower-case), in order.
    fn header_values(&self, name: &str) -> impl Iterator<Item = &[u8]>;
}

/// The outcome of routing one request.
#[derive(Debug, Clone)]
pub struct Resolution<'c> {
    /// A leaf handler (never `Subroute`); `None` means no route answered (Caddy: empty 200).
    pub handler: Option<&'c Handler>,
    /// Prefixes removed by enclosing `handle_path` blocks, outermost first, in the lower-case
    /// form they were matched in; the data path strips them from the upstream path.
    pub strip_prefixes: Vec<&'c str>,
}

/// The site on `listener` that serves `host` (lower-case, no port): exact hosts first, then
/// wildcards, then a catch-all site.
pub fn select_site<'c>(listener: &'c ListenerConfig, host: &str) -> Option<&'c Site> {
    let _ = (listener, host);
    todo!("config helper")
}

/// Evaluate a site's routes for a request.
pub fn resolve<'c, R: RequestView>(site: &'c Site, request: &R) -> Resolution<'c> {
    let _ = (site, request);
    todo!("config helper")
}
