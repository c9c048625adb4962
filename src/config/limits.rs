//! Every timeout and size limit ringproxy enforces, with its default and the reason for it.
//!
//! Defaults live here and nowhere else; the parser only overrides them from the Caddyfile and
//! docs/configuration.md's limits table mirrors this file.

use std::time::Duration;

/// Time allowed to receive a complete request head, measured from its first byte (or from the
/// moment a keep-alive connection starts a new request). Slow-loris clients are closed when it
/// runs out. Caddyfile: `servers { timeouts { read_header <d> } }`.
pub const DEFAULT_READ_HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a keep-alive client connection may sit between requests. Caddy's default is 5 min.
/// Caddyfile: `servers { timeouts { idle <d> } }`.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// Largest request head (request line + headers) accepted; larger gets 431.
/// Caddyfile: `servers { max_header_size <size> }`.
pub const DEFAULT_MAX_HEADER_BYTES: usize = 64 * 1024;

/// Most header fields accepted in one request or response head.
pub const MAX_HEADERS: usize = 128;

/// Time allowed for a TLS handshake before the connection is closed.
/// Caddyfile: `servers { timeouts { tls_handshake <d> } }` (ringproxy extension).
pub const DEFAULT_TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Time allowed to establish a TCP connection to an upstream before trying the next one or
/// answering 502. Caddy's default is 3 s. Caddyfile: `transport http { dial_timeout <d> }`.
pub const DEFAULT_DIAL_TIMEOUT: Duration = Duration::from_secs(3);

/// How long an idle pooled upstream connection is kept. Caddyfile: `transport http { keepalive <d> }`.
pub const DEFAULT_UPSTREAM_KEEPALIVE: Duration = Duration::from_secs(120);

/// Idle pooled connections per upstream, per worker.
/// Caddyfile: `transport http { keepalive_idle_conns <n> }`.
/// Higher than Caddy's 32: with more concurrent requests than pooled slots, every request
/// past the 32nd closed its upstream connection afterwards and the next one dialled again
/// (measured: 8 % of the proxy's CPU in `connect` under 64 keep-alive clients). An idle pooled
/// connection costs a descriptor and a few hundred bytes.
pub const DEFAULT_KEEPALIVE_IDLE_CONNS: usize = 256;

/// Upgraded (WebSocket) relays are never timed out by default: audio streams are long and may
/// be silent. Caddyfile: `servers { timeouts { relay_idle <d> } }` (ringproxy extension).
pub const DEFAULT_RELAY_IDLE_TIMEOUT: Option<Duration> = None;

/// How long shutdown waits for in-flight requests. Caddyfile: `grace_period <d>`.
pub const DEFAULT_GRACE_PERIOD: Duration = Duration::from_secs(5);

/// Passive health: an upstream that failed is skipped this long. Caddy's default is 0
/// (disabled); ringproxy matches it, and a dial failure still moves on to the next upstream.
pub const DEFAULT_FAIL_DURATION: Duration = Duration::ZERO;

/// Passive health: failures within `fail_duration` before an upstream is marked down.
pub const DEFAULT_MAX_FAILS: u32 = 1;

/// Active health checks: interval and per-check timeout (Caddy: 30 s and 5 s).
pub const DEFAULT_HEALTH_INTERVAL: Duration = Duration::from_secs(30);
pub const DEFAULT_HEALTH_TIMEOUT: Duration = Duration::from_secs(5);

/// The admin endpoint's address when the Caddyfile names none, as in Caddy.
pub const DEFAULT_ADMIN_ADDRESS: &str = "localhost:2019";

/// Default ports, as in Caddy.
pub const DEFAULT_HTTP_PORT: u16 = 80;
pub const DEFAULT_HTTPS_PORT: u16 = 443;

/// Server-wide limits and timeouts that apply to every listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    pub read_header_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_header_bytes: usize,
    pub tls_handshake_timeout: Duration,
    pub relay_idle_timeout: Option<Duration>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            read_header_timeout: DEFAULT_READ_HEADER_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
            tls_handshake_timeout: DEFAULT_TLS_HANDSHAKE_TIMEOUT,
            relay_idle_timeout: DEFAULT_RELAY_IDLE_TIMEOUT,
        }
    }
}
