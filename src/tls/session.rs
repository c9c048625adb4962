//! Session resumption: one rotating ticket key shared by every worker, and a small session-ID
//! cache per worker.
//!
//! Tickets (TLS 1.3 PSKs and TLS 1.2 session tickets) carry the session state encrypted under
//! the shared key, so a client resumes on whichever worker SO_REUSEPORT hands it to. rustls's
//! rotator touches its lock once per ticket issued or decrypted, i.e. once per handshake, never
//! per record. The session-ID cache (TLS 1.2 clients without ticket support) is per worker:
//! rustls's memory cache is one mutex-guarded map, and sharing it would put a lock contended by
//! every worker on the handshake path. The price is that such a client resumes only when it
//! lands on the same worker again.

use std::sync::Arc;

use rustls::server::{ProducesTickets, ServerSessionMemoryCache, StoresServerSessions};

use crate::config::limits;

/// The shared ticket key rotator (ring AEAD keys, rotated every 6 hours with the previous key
/// still accepted, so a ticket stays usable for up to 12 hours).
pub fn shared_ticketer() -> Result<Arc<dyn ProducesTickets>, rustls::Error> {
    rustls::crypto::ring::Ticketer::new()
}

/// A fresh session-ID cache for one worker.
pub fn worker_session_cache() -> Arc<dyn StoresServerSessions> {
    ServerSessionMemoryCache::new(limits::SESSION_CACHE_ENTRIES_PER_WORKER)
}
