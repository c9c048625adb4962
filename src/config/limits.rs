//! Every timeout and size limit ringproxy enforces, with its default and the reason for it.
//!
//! Defaults live here and nowhere else; the parser only overrides them from the Caddyfile and
//! docs/configuration.md's limits table mirrors this file. The first part holds what a
//! Caddyfile can change; the fixed bounds (on input from clients, upstreams and config files,
//! and the data path's buffer sizes) follow. Only the ACME renewal schedule (`acme::schedule`:
//! when to renew, how to back off) lives with the code it shapes.

use std::time::Duration;

/// Time allowed to receive a complete request head, measured from its first byte (or from the
/// moment a keep-alive connection starts a new request). Slow-loris clients are closed when it
/// runs out. Caddyfile: `servers { timeouts { read_header <d> } }`.
pub const DEFAULT_READ_HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a keep-alive client connection may sit between requests. Caddy's default is 5 min.
/// Caddyfile: `servers { timeouts { idle <d> } }`.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// A request body that makes no progress for this long is abandoned: `408` when no response
/// has started, otherwise the connection closes; the upstream connection is not reused. A
/// stall timeout, reset by every byte that arrives, so a long upload at a fair rate is never
/// cut (Caddy's `read_body` is an absolute deadline on the whole body, and has no default).
/// Caddyfile: `servers { timeouts { read_body <d> } }`; `0` turns it off.
pub const DEFAULT_READ_BODY_TIMEOUT: Duration = Duration::from_secs(60);

/// A client that accepts no bytes for this long is closed: while a response (head, body,
/// interim heads) is written to it, and on either side of a WebSocket relay, so a peer that
/// stops reading cannot pin the connection and its queued bytes forever. A stall timeout like
/// `read_body` (Caddy's `write` is an absolute deadline on the whole response, and has no
/// default). Caddyfile: `servers { timeouts { write <d> } }`; `0` turns it off.
pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(60);

/// Largest request head (request line + headers) accepted; larger gets 431.
/// Caddyfile: `servers { max_header_size <size> }`.
pub const DEFAULT_MAX_HEADER_BYTES: usize = 64 * 1024;

/// Smallest `max_header_size` accepted: below it, ordinary browser requests (a few cookies and
/// an `Authorization` header) would already get 431.
pub const SMALLEST_MAX_HEADER_BYTES: usize = 1024;

/// Largest `max_header_size` accepted, 16× the default. A request head is held in memory until
/// it is complete, per in-flight request, so an unbounded value would let every slow client
/// pin that much memory. (Caddy takes any value; its default is Go's 1 MiB.)
pub const LARGEST_MAX_HEADER_BYTES: usize = 1024 * 1024;

/// Most header fields accepted in one request or response head.
pub const MAX_HEADERS: usize = 128;

/// Time a peer has to send its whole PROXY protocol header when a listener reads one; a peer
/// that is slower is closed. Caddy documents 5 s but passes 0 to go-proxyproto, which then
/// applies its own 10 s default (also what Caddy's `timeout 0` gives).
/// Caddyfile: `servers { listener_wrappers { proxy_protocol { timeout <d> } tls } }`.
pub const DEFAULT_PROXY_HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Time allowed for a TLS handshake before the connection is closed.
/// Caddyfile: `servers { timeouts { tls_handshake <d> } }` (ringproxy extension).
pub const DEFAULT_TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Time allowed to establish a TCP connection to an upstream before trying the next one or
/// answering 502. Caddy's default is 3 s. Caddyfile: `transport http { dial_timeout <d> }`.
pub const DEFAULT_DIAL_TIMEOUT: Duration = Duration::from_secs(3);

/// An upstream response body that makes no progress for this long is cut off: the client
/// connection closes (the response has started), the upstream connection is not reused, and it
/// counts as the upstream's failure for passive health. A stall timeout, reset by every byte,
/// so a long steady stream is never cut; the wait for the response head is
/// `response_header_timeout`'s. Caddy has none by default; five minutes outlasts any pause of
/// a TTS or event stream that is still alive (they pause for seconds, and event streams send
/// keep-alive comments every 15–60 s) while an upstream that vanished without a reset (a host
/// gone, a dropped route) no longer holds the client and two sockets forever.
/// Caddyfile: `transport http { read_timeout <d> }`; `0` turns it off.
pub const DEFAULT_UPSTREAM_READ_TIMEOUT: Duration = Duration::from_secs(300);

/// An upstream that accepts no bytes of the request (head or body) for this long is given up:
/// `504` when no response has started. A stall timeout like `read_timeout`; the same 60 s as
/// the client side's `write` (Caddy has none by default). An upstream that reads its request
/// at all reads it in far less. Caddyfile: `transport http { write_timeout <d> }`; `0` turns
/// it off.
pub const DEFAULT_UPSTREAM_WRITE_TIMEOUT: Duration = Duration::from_secs(60);

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

/// How long a graceful stop waits for in-flight requests and live WebSockets before closing
/// the WebSockets (1001) and everything else. Caddy waits forever by default, which hangs
/// shutdowns behind one long stream; 10 s lets a request finish and an audio client reconnect
/// elsewhere. Caddyfile: `grace_period <d>`.
pub const DEFAULT_GRACE_PERIOD: Duration = Duration::from_secs(10);

/// Passive health: an upstream that failed is skipped this long. Caddy's default is 0
/// (disabled); ringproxy matches it, and a dial failure still moves on to the next upstream.
pub const DEFAULT_FAIL_DURATION: Duration = Duration::ZERO;

/// Passive health: failures within `fail_duration` before an upstream is marked down.
pub const DEFAULT_MAX_FAILS: u32 = 1;

/// The wait between two tries of a request (`lb_try_interval`) when `lb_try_duration` is set
/// and the interval is not: Caddy's 250 ms, so that a retry loop against a local upstream that
/// refuses at once does not spin for the whole duration. With only `lb_retries`, Caddy waits
/// nothing between tries, and neither does ringproxy.
pub const DEFAULT_LB_TRY_INTERVAL: Duration = Duration::from_millis(250);

/// The longest unix socket path `connect(2)` takes: `sun_path` holds 108 bytes with the NUL.
pub const MAX_UNIX_SOCKET_PATH: usize = 107;

/// Active health checks: interval and per-check timeout (Caddy: 30 s and 5 s).
pub const DEFAULT_HEALTH_INTERVAL: Duration = Duration::from_secs(30);
pub const DEFAULT_HEALTH_TIMEOUT: Duration = Duration::from_secs(5);

/// The admin endpoint's address when the Caddyfile names none, as in Caddy.
pub const DEFAULT_ADMIN_ADDRESS: &str = "localhost:2019";

/// Default ports, as in Caddy.
pub const DEFAULT_HTTP_PORT: u16 = 80;
pub const DEFAULT_HTTPS_PORT: u16 = 443;

/// Caps on client connections (the global `limits { … }` block, a ringproxy extension); `None`
/// is no cap. Beyond a cap, a new connection is closed at once, before any byte is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ConnectionCaps {
    /// Open client connections, all listeners and workers together.
    pub max_connections: Option<usize>,
    /// Open client connections from one IP address.
    pub max_connections_per_ip: Option<usize>,
}

/// Server-wide limits and timeouts that apply to every listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    pub read_header_timeout: Duration,
    /// `None`: off.
    pub read_body_timeout: Option<Duration>,
    /// `None`: off.
    pub write_timeout: Option<Duration>,
    pub idle_timeout: Duration,
    pub max_header_bytes: usize,
    pub tls_handshake_timeout: Duration,
    pub relay_idle_timeout: Option<Duration>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            read_header_timeout: DEFAULT_READ_HEADER_TIMEOUT,
            read_body_timeout: Some(DEFAULT_READ_BODY_TIMEOUT),
            write_timeout: Some(DEFAULT_WRITE_TIMEOUT),
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
            tls_handshake_timeout: DEFAULT_TLS_HANDSHAKE_TIMEOUT,
            relay_idle_timeout: DEFAULT_RELAY_IDLE_TIMEOUT,
        }
    }
}

// ---- fixed bounds on client and upstream input ------------------------------------------

/// Largest upstream response head (status line + fields) accepted; larger is a 502.
pub const MAX_RESPONSE_HEAD: usize = 64 * 1024;

/// Longest chunk-size line (size, extensions, CRLF) accepted. Extensions are unused in practice;
/// the bound stops a peer from streaming an endless line that never reaches data.
pub const MAX_CHUNK_LINE_BYTES: usize = 4096;

/// Largest trailer section accepted (all trailer field lines together).
pub const MAX_TRAILER_BYTES: usize = 16 * 1024;

/// After answering a plaintext client on a TLS port, how long we keep reading (and discarding)
/// its request, so that closing does not reset the connection before it read our answer.
pub const PLAINTEXT_LINGER: Duration = Duration::from_secs(1);

/// Most bytes discarded while lingering after the plaintext-on-TLS-port answer.
pub const PLAINTEXT_LINGER_BYTES: usize = 64 * 1024;

/// Lingering close: when a connection is closed while the client may still be sending (a
/// request body we did not read, pipelined requests behind an error), we half-close, then read
/// and discard for up to this long before closing. Closing a socket with unread bytes makes
/// the kernel send RST, and an RST that arrives before the client read our answer destroys the
/// answer in the client's receive buffer (RFC 9112 §9.6). Bounded by time only: a byte cap
/// would reset a fast uploader within milliseconds, before it looked at our answer. nginx's
/// `lingering_time` is 30 s; an answer the client has not read in 5 s is not worth a
/// connection slot longer.
pub const LINGERING_CLOSE_TIME: Duration = Duration::from_secs(5);

/// `basic_auth`: password checks (bcrypt, on the blocking pool) that may be queued or running
/// at once across the process. A check takes tens of milliseconds to a second, depending on
/// the hash's cost, so a flood of made-up credentials would otherwise queue without bound
/// and hold every real login behind it; past the bound a request gets `503` at once.
pub const MAX_PENDING_PASSWORD_CHECKS: usize = 64;

/// `basic_auth`: remembered outcomes of password checks, per worker, so a client sending the
/// same credentials on every request pays bcrypt once (Caddy's `hash_cache`, also 1,000
/// entries). An arbitrary entry is forgotten when it is full.
pub const PASSWORD_CHECK_CACHE: usize = 1000;

/// `encode`: responses shorter than this (by their `Content-Length`) are not worth
/// compressing (Caddy's default).
pub const DEFAULT_ENCODE_MINIMUM_LENGTH: u64 = 512;

/// `encode`: the `Content-Type`s compressed when the Caddyfile gives no `match` (Caddy's
/// list: text-like types; audio, images and video are compressed already).
pub const DEFAULT_ENCODE_TYPES: &[&str] = &[
    "application/atom+xml*",
    "application/eot*",
    "application/font*",
    "application/geo+json*",
    "application/graphql+json*",
    "application/javascript*",
    "application/json*",
    "application/ld+json*",
    "application/manifest+json*",
    "application/opentype*",
    "application/otf*",
    "application/rss+xml*",
    "application/truetype*",
    "application/ttf*",
    "application/vnd.api+json*",
    "application/vnd.ms-fontobject*",
    "application/wasm*",
    "application/x-httpd-cgi*",
    "application/x-javascript*",
    "application/x-opentype*",
    "application/x-otf*",
    "application/x-perl*",
    "application/x-protobuf*",
    "application/x-ttf*",
    "application/xhtml+xml*",
    "application/xml*",
    "font/ttf*",
    "font/otf*",
    "image/svg+xml*",
    "image/vnd.microsoft.icon*",
    "image/x-icon*",
    "multipart/bag*",
    "multipart/mixed*",
    "text/*",
];

// ---- listeners, workers and pools -------------------------------------------------------

/// When a relay must close (graceful stop, `stream_timeout`) while a WebSocket frame is half
/// relayed, how long the rest of that frame may take to arrive before the relay is cut without
/// a close frame: a peer that stops mid-frame cannot keep the relay open.
pub const FRAME_FINISH_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a clean close may wait to hand the peer its close_notify (TLS) and FIN.
pub const CLOSE_WRITE_TIMEOUT: Duration = Duration::from_secs(1);

/// Pending connections per listening socket (each worker has its own). The kernel caps it at
/// `net.core.somaxconn`.
pub const LISTEN_BACKLOG: i32 = 4096;

/// io_uring submission queue entries per worker.
pub const URING_ENTRIES: u32 = 1024;

/// Pause after an accept error such as EMFILE before accepting again, so a full fd table
/// does not turn the accept loop into a busy spin; connections wait in the backlog meanwhile.
pub const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(50);

/// Idle kept-alive client connections a worker closes each time accept finds no descriptor
/// left (then it pauses for [`ACCEPT_ERROR_BACKOFF`]): enough for a burst of new clients,
/// few enough that a brief shortage does not empty every keep-alive pool of our clients.
pub const SHED_IDLE_ON_FD_EXHAUSTION: usize = 16;

/// How often idle pooled upstream connections past their keepalive are closed.
pub const POOL_SWEEP_INTERVAL: Duration = Duration::from_secs(10);

/// Dial timeout of an active health check (the check's own `health_timeout` bounds the whole
/// check; this keeps a black-holed upstream from holding a check's socket longer than that).
pub const HEALTH_CHECK_DIAL_TIMEOUT: Duration = Duration::from_secs(3);

/// How often a stopping worker looks whether its last connections have finished.
pub const DRAIN_POLL_INTERVAL: Duration = Duration::from_millis(20);

// ---- data-path buffers ------------------------------------------------------------------

/// Size of the per-worker scratch buffer: the most one read moves. 64 KiB matches the
/// kernel's default socket buffer scale, so bulk transfers need few syscalls.
pub const SCRATCH_BYTES: usize = 64 * 1024;

/// Bodies at least this long, between two plaintext sockets, are moved with splice(2). Below
/// it, setting up and closing the pipe (pipe2, fcntl, two closes) costs more than copying the
/// bytes twice.
pub const SPLICE_BODY_MIN: u64 = 64 * 1024;

/// The pipe size asked for a spliced body. Each wake-up then moves up to this much instead of
/// the default 64 KiB, which matters because on loopback a wake-up costs more than moving
/// 64 KiB (see docs/benchmarks.md). The pages are the socket buffers' own, lent to the pipe.
pub const BODY_PIPE_BYTES: usize = 1 << 20;

/// Plaintext accepted per TLS `try_write`: one TLS record's maximum payload.
pub const MAX_PLAINTEXT_PER_WRITE: usize = 16 * 1024;

/// TLS session-ID cache entries per worker. An entry is a few hundred bytes; the cache evicts
/// the oldest when full.
pub const SESSION_CACHE_ENTRIES_PER_WORKER: usize = 256;

// ---- configuration files ----------------------------------------------------------------

/// Upper bound on tokens after expanding imports: a snippet imported twice by a snippet that is
/// imported twice, and so on, grows exponentially; this turns that into an error, not an OOM.
pub const MAX_EXPANDED_TOKENS: usize = 200_000;

/// Deepest block nesting accepted. Real files nest three or four levels; the bound keeps the
/// recursive parsers (syntax, parse, routing) far from the stack limit on any input.
pub const MAX_NESTING: usize = 32;

// ---- ACME (control plane) ---------------------------------------------------------------

/// An issuance that has not finished after this long is abandoned and retried, so that a CA
/// that accepts connections but never answers cannot wedge a name forever.
pub const ACME_ISSUE_TIMEOUT: Duration = Duration::from_secs(300);

/// How long to wait for the CA to validate a challenge or to issue after finalization.
pub const ACME_POLL_TIMEOUT: Duration = Duration::from_secs(90);

/// A renewal-information (ARI) query that takes longer is skipped in favour of the 2/3 rule.
pub const ACME_ARI_TIMEOUT: Duration = Duration::from_secs(10);

// ---- admin endpoint (control plane) -----------------------------------------------------

/// How long one admin connection may take to send its request, and we to send the reply.
pub const ADMIN_IO_TIMEOUT: Duration = Duration::from_secs(10);

/// How long `ringproxy reload`/`stop` wait for the admin endpoint's answer (a reload that
/// orders certificates still answers at once: ordering happens in the background).
pub const ADMIN_RELOAD_TIMEOUT: Duration = Duration::from_secs(60);

/// Largest request body the admin endpoint reads (a whole Caddyfile for `/load`).
pub const ADMIN_MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

// ---- access logs ------------------------------------------------------------------------

/// A worker hands its buffered access-log lines to the log writer once they reach this size
/// (and on its periodic flush, [`LOG_FLUSH_INTERVAL`]).
pub const LOG_BATCH_BYTES: usize = 32 * 1024;

/// How often a worker hands its partly filled log buffers over: the most a line waits.
pub const LOG_FLUSH_INTERVAL: Duration = Duration::from_millis(100);

/// Batches queued for the log writer before workers start dropping lines (counted) rather
/// than waiting for a slow disk: 256 × 32 KiB = 8 MiB of lines in flight at most.
pub const LOG_QUEUE_BATCHES: usize = 256;

/// Caddy's log rolling defaults: roll at 100 MiB, keep 10 rolled files, for 90 days.
pub const DEFAULT_LOG_ROLL_SIZE: u64 = 100 * 1024 * 1024;
pub const DEFAULT_LOG_ROLL_KEEP: usize = 10;
pub const DEFAULT_LOG_ROLL_KEEP_FOR: Duration = Duration::from_secs(90 * 24 * 3600);

// ---- graceful stop ----------------------------------------------------------------------

/// After the grace period, how long closing WebSockets may take (the 1001 close frames, which
/// wait for a frame boundary) before the worker exits regardless.
pub const CLOSE_LINGER: Duration = Duration::from_secs(1);
