//! TLS termination: rustls server sessions driven by hand over nonblocking sockets, the
//! certificate store that control-plane threads swap certificates into, the local CA.
//! OWNER: tls helper (store.rs is shared with the ACME work).

pub mod store;
