//! ringproxy's integration tests: one binary, real sockets on loopback, real backends written
//! in `support`, the proxy started in-process on both monoio drivers, every data-path test
//! over plaintext and over TLS (`support::proxy::per_driver!`).
//!
//! `RINGPROXY_TEST_TARGET=caddy cargo test --test it` runs the same tests against a real
//! `caddy run` to check the expectations themselves (see `support::proxy`).

#![allow(clippy::unwrap_used, reason = "a test or benchmark tool fails by panicking")]

mod support;

mod acme;
mod bad_input;
mod basic_auth;
mod bodies;
mod config;
mod descriptors;
mod encode;
mod failures;
mod file_server;
mod forward_auth;
mod graceful_stop;
mod header;
mod headers;
mod idle_memory;
mod no_spin;
mod operations;
mod proxy_protocol;
mod redirect;
mod reload;
mod request_body;
mod routing;
mod slow_clients;
mod slowloris;
mod stalls;
mod tls;
mod tls_datapath;
mod tls_options;
mod unix_upstreams;
mod upstream_hardening;
mod upstream_retries;
mod uring_setup;
mod websocket;
