//! Reading a PROXY protocol header off a newly accepted connection, under the listener's
//! `proxy_protocol` settings: who may send one (the policy for the peer), how long it may take,
//! and what the connection's peer address is afterwards.
//!
//! The bytes are parsed by `net::proxy_protocol`; this module owns the reading and the policy
//! (Caddy's, from go-proxyproto): `use`/`require` take the header's source address, `ignore`
//! reads and drops the header, `reject` closes a connection that sends one, `require` closes
//! one that does not, `skip` reads nothing. Whatever was read past the header is returned, to
//! be served as the connection's first bytes (the TLS ClientHello or the HTTP request).
//!
//! Unlike go-proxyproto, running out of time closes the connection under every policy: a peer
//! that has sent nothing (or half a header) in `timeout` is not a client worth a slot, and
//! deciding "no header" on a timeout would let a slow peer choose how it is read.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use crate::config::{ProxyPolicy, ProxyProtocol};
use crate::net::deadline::Deadlines;
use crate::net::proxy_protocol::{self, ProxyHeader, ProxyHeaderError, V2_MAX};
use crate::net::stream::PlainStream;
use crate::proxy::io::read_append;

/// A connection that may be served.
#[derive(Debug)]
pub struct Arrival {
    /// The client's address: the header's source when the policy uses it, else the real peer.
    pub peer: SocketAddr,
    /// Bytes read past the header (or every byte read, when there was none).
    pub already_read: Vec<u8>,
}

/// Why a connection is closed before it is served. All of them are the peer's doing.
#[derive(Debug, thiserror::Error)]
pub enum HeaderRefusal {
    #[error("no complete PROXY protocol header within {0:?}")]
    Timeout(Duration),
    #[error("PROXY protocol header required, but the connection does not start with one")]
    Missing,
    #[error("PROXY protocol header from a peer that may not send one")]
    NotAllowed,
    #[error(transparent)]
    Invalid(#[from] ProxyHeaderError),
    #[error("peer closed the connection before its PROXY protocol header was complete")]
    ClosedEarly,
    #[error("reading the PROXY protocol header: {0}")]
    Io(#[from] io::Error),
}

impl HeaderRefusal {
    /// The `reason` label it is counted under (one of `metrics::PROXY_HEADER_REFUSALS`).
    pub fn reason(&self) -> &'static str {
        match self {
            HeaderRefusal::Timeout(_) => "timeout",
            HeaderRefusal::Missing => "missing",
            HeaderRefusal::NotAllowed => "not_allowed",
            HeaderRefusal::Invalid(_) => "malformed",
            HeaderRefusal::ClosedEarly | HeaderRefusal::Io(_) => "closed",
        }
    }
}

/// What the connection starts with.
enum Start {
    /// A header `len` bytes long.
    Header(ProxyHeader, usize),
    /// Something else: the bytes are the connection's own.
    NoHeader,
}

/// Read the header `settings` call for from the connection accepted from `peer`.
///
/// The wait is kept by the worker's `deadlines`, not a timer of its own: a timer inside this
/// future would sit in the connection's task for as long as the connection lives.
pub async fn read_proxy_header(
    stream: &PlainStream,
    peer: SocketAddr,
    settings: &ProxyProtocol,
    deadlines: &Deadlines,
) -> Result<Arrival, HeaderRefusal> {
    let policy = settings.policy_for(peer.ip());
    if policy == ProxyPolicy::Skip {
        return Ok(Arrival { peer, already_read: Vec::new() });
    }
    let mut buf = Vec::with_capacity(V2_MAX);
    let start = deadlines
        .within(settings.timeout, read_start(stream, &mut buf))
        .await
        .map_err(|_| HeaderRefusal::Timeout(settings.timeout))??;
    decide(policy, peer, start, buf)
}

/// Apply `policy` to what the connection from `peer` started with (`buf`: all bytes read).
fn decide(
    policy: ProxyPolicy,
    peer: SocketAddr,
    start: Start,
    mut buf: Vec<u8>,
) -> Result<Arrival, HeaderRefusal> {
    match start {
        Start::NoHeader if policy == ProxyPolicy::Require => Err(HeaderRefusal::Missing),
        Start::NoHeader => Ok(Arrival { peer, already_read: buf }),
        Start::Header(..) if policy == ProxyPolicy::Reject => Err(HeaderRefusal::NotAllowed),
        Start::Header(header, len) => {
            buf.drain(..len);
            let carried = match (policy, header) {
                (ProxyPolicy::Use | ProxyPolicy::Require, ProxyHeader::Proxied { source, .. }) => {
                    source
                }
                // `ignore`, or a balancer speaking for itself (v2 LOCAL, health checks).
                _ => peer,
            };
            Ok(Arrival { peer: carried, already_read: buf })
        }
    }
}

/// Read until the bytes are a whole header or are certainly not one. Never reads more than
/// [`V2_MAX`] bytes, the largest header accepted.
async fn read_start(stream: &PlainStream, buf: &mut Vec<u8>) -> Result<Start, HeaderRefusal> {
    loop {
        if !buf.is_empty() {
            match proxy_protocol::parse(buf) {
                Ok(Some((header, len))) => return Ok(Start::Header(header, len)),
                Ok(None) if buf.len() >= V2_MAX => return Err(ProxyHeaderError::TooLong.into()),
                Ok(None) => {}
                Err(ProxyHeaderError::NotProxy) => return Ok(Start::NoHeader),
                Err(e) => return Err(e.into()),
            }
        }
        let room = V2_MAX - buf.len();
        if read_append(stream, buf, room).await? == 0 {
            return Err(HeaderRefusal::ClosedEarly);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    fn header_start(raw: &[u8]) -> (Start, Vec<u8>) {
        let (header, len) = proxy_protocol::parse(raw).unwrap().unwrap();
        (Start::Header(header, len), raw.to_vec())
    }

    const PEER: &str = "127.0.0.1:40000";

    #[test]
    fn use_and_require_take_the_source_and_keep_what_follows_the_header() {
        let mut raw = proxy_protocol::encode_v2(addr("192.0.2.9:5555"), addr("10.0.0.1:443"));
        raw.extend_from_slice(b"\x16\x03\x01rest");
        for policy in [ProxyPolicy::Use, ProxyPolicy::Require] {
            let (start, buf) = header_start(&raw);
            let arrival = decide(policy, addr(PEER), start, buf).unwrap();
            assert_eq!(arrival.peer, addr("192.0.2.9:5555"));
            assert_eq!(arrival.already_read, b"\x16\x03\x01rest");
        }
    }

    #[test]
    fn ignore_and_local_headers_keep_the_real_peer() {
        let raw = b"PROXY TCP4 192.0.2.9 10.0.0.1 5555 80\r\nGET /";
        let (start, buf) = header_start(raw);
        let arrival = decide(ProxyPolicy::Ignore, addr(PEER), start, buf).unwrap();
        assert_eq!((arrival.peer, &arrival.already_read[..]), (addr(PEER), &b"GET /"[..]));
        let (start, buf) = header_start(b"PROXY UNKNOWN\r\n");
        let arrival = decide(ProxyPolicy::Require, addr(PEER), start, buf).unwrap();
        assert_eq!(arrival.peer, addr(PEER));
    }

    #[test]
    fn every_refusal_is_counted_under_a_known_reason() {
        let refusals = [
            HeaderRefusal::Timeout(Duration::from_secs(1)),
            HeaderRefusal::Missing,
            HeaderRefusal::NotAllowed,
            HeaderRefusal::Invalid(ProxyHeaderError::TooLong),
            HeaderRefusal::ClosedEarly,
            HeaderRefusal::Io(io::ErrorKind::ConnectionReset.into()),
        ];
        for refusal in refusals {
            assert!(crate::metrics::PROXY_HEADER_REFUSALS.contains(&refusal.reason()), "{refusal}");
        }
    }

    #[test]
    fn reject_refuses_a_header_and_require_refuses_its_absence() {
        let (start, buf) = header_start(b"PROXY UNKNOWN\r\n");
        assert!(matches!(
            decide(ProxyPolicy::Reject, addr(PEER), start, buf),
            Err(HeaderRefusal::NotAllowed)
        ));
        assert!(matches!(
            decide(ProxyPolicy::Require, addr(PEER), Start::NoHeader, b"GET".to_vec()),
            Err(HeaderRefusal::Missing)
        ));
        for policy in [ProxyPolicy::Use, ProxyPolicy::Ignore, ProxyPolicy::Reject] {
            let arrival = decide(policy, addr(PEER), Start::NoHeader, b"GET".to_vec()).unwrap();
            assert_eq!((arrival.peer, &arrival.already_read[..]), (addr(PEER), &b"GET"[..]));
        }
    }
}
