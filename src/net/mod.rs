//! Byte streams for the data path: the readiness-plus-nonblocking-syscall stream abstraction
//! that plaintext sockets and TLS sessions both implement, and the raw syscalls under it.

pub mod deadline;
pub mod ip_range;
pub mod proxy_protocol;
pub mod stall;
pub mod stream;
pub mod sys;
