//! Everything the integration tests share: the proxy harness and its test matrix, real
//! backends, raw clients over plaintext and TLS, test certificates, deterministic payloads,
//! scratch directories, and pebble for the ACME tests. Nothing here mocks the network: every
//! piece is a real socket on loopback, bound to port 0 (or to a port below the ephemeral range
//! when a config must name it), with a timeout on every read.

pub mod acme;
pub mod binary;
pub mod client;
pub mod haproxy;
pub mod net;
pub mod origin;
pub mod payload;
pub mod pebble;
pub mod proxy;
pub mod scripted;
pub mod sock;
pub mod streams;
pub mod temp;
pub mod tls_client;
pub mod ws;

#[allow(unused_imports)]
pub(crate) use proxy::per_driver;
pub use proxy::Proxy;
