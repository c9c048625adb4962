//! ringproxy: a thread-per-core reverse proxy for real-time WebSocket audio.
//!
//! The data path in ten lines:
//! 1. `server` binds one SO_REUSEPORT listener per worker and configured port (`listener`) and
//!    starts the workers; `runtime` runs one monoio runtime per core in each (io_uring, or
//!    epoll where io_uring is refused).
//! 2. A TLS port wraps the socket in a rustls session driven by hand (`tls`).
//! 3. `proxy::conn` reads a request head (`http::head`), routes it (`config::route`), and either
//!    answers directly (`http::response`), serves a file (`files`) or forwards it
//!    (`proxy::forward`).
//! 4. `upstream` picks an upstream by policy, reusing a per-worker keep-alive connection.
//! 5. Bodies stream by their framing (`http::chunked`), never buffered whole.
//! 6. A `101 Switching Protocols` turns the pair into a two-way relay (`proxy::relay`).
//! 7. After a response, the same client connection loops to its next request.
//!
//! Nothing on the hot path is shared between workers: pools, counters and scratch buffers are
//! per worker. Configuration arrives as an immutable `Arc<Config>` snapshot per connection.
//! The control plane (TLS certificates and the local CA, ACME on its own thread, the storage
//! directory in `storage`) runs off the workers and hands them snapshots. Only `main.rs` reads
//! the process environment; the library takes everything as values ([`server::RunOptions`],
//! [`config::ParseOptions`]).

pub mod acme;
pub mod admin;
pub mod config;
pub mod error;
pub mod files;
#[doc(hidden)]
pub mod fuzz;
pub mod http;
pub mod listener;
pub mod logs;
pub mod metrics;
pub mod net;
pub mod notify;
pub mod proxy;
pub mod runtime;
pub mod server;
pub mod storage;
pub mod tls;
pub mod upstream;

use std::sync::Arc;

/// Start a proxy for `config` the way `ringproxy run` does (see [`server::Server::start`]).
pub fn start(
    config: Arc<config::Config>,
    options: server::RunOptions,
) -> Result<server::Server, server::StartError> {
    server::Server::start_shared(config, options)
}
