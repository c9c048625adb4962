//! ringproxy's integration tests: one binary, real sockets on loopback, real backends written
//! in `support`, the proxy started in-process on both monoio drivers.

mod acme;
mod support_acme;
