//! Everything the integration tests share: the proxy harness, real backends, raw clients and
//! deterministic payloads. Nothing here mocks the network: every piece is a real socket on
//! loopback, bound to port 0, with a timeout on every read.

pub mod client;
pub mod net;
pub mod origin;
pub mod payload;
pub mod proxy;
pub mod ws;

#[allow(unused_imports)]
pub(crate) use proxy::per_driver;
pub use proxy::Proxy;
