//! [`TlsAcceptor`]: one per worker; turns an accepted TCP socket into a [`TlsStream`].
//!
//! The handshake is driven by hand over the nonblocking socket: `recv(2)` into rustls
//! (`read_tls`), `process_new_packets`, records out with `write_tls` → `send(2)`, and monoio
//! readiness waits in between. The whole handshake runs under one deadline
//! ([`TlsAcceptor::accept`]'s `handshake_timeout`); dropping the future on timeout only drops a
//! readiness wait, so it is cancel-safe by construction.
//!
//! Before rustls sees anything, the first bytes are sniffed: a TLS handshake record starts with
//! 0x16; an HTTP method means a plaintext client on the TLS port, which gets Caddy's (and Go's)
//! `HTTP/1.0 400` "Client sent an HTTP request to an HTTPS server." and a close; anything else
//! is closed at once. The ClientHello is read with rustls's `Acceptor` so that a hello without
//! SNI can be answered with the certificate for the listener's own IP address (Caddy does the
//! same for IP sites); with SNI the per-worker config and its resolver handle everything.

use std::io;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::server::{Acceptor, ServerConfig};

use crate::config::ClientAuth;

use super::config;
use super::resolver::{FixedResolver, ACME_TLS_ALPN};
use super::stream::{push_records, SocketIo, TlsStream};
use super::TlsContext;
use crate::config::limits;
use crate::http::response::{write_answer, Answer};
use crate::net::stream::{PlainStream, Stream};
use crate::proxy::io::write_all;

/// Why a connection on a TLS port did not become a [`TlsStream`]. All of these are the
/// client's doing except `Io` (and even that is usually a reset); log at debug.
#[derive(Debug, thiserror::Error)]
pub enum TlsAcceptError {
    #[error("TLS handshake timed out")]
    Timeout,
    #[error("client closed the connection during the TLS handshake")]
    ClosedEarly,
    #[error("plaintext HTTP request on a TLS port (answered 400)")]
    PlaintextHttp,
    #[error("client did not send a TLS handshake")]
    NotTls,
    #[error("client offered only TLS 1.1 or older (answered protocol_version)")]
    OldProtocol,
    #[error("TLS handshake failed: {0}")]
    Handshake(#[from] rustls::Error),
    #[error("TLS-ALPN-01 challenge handshake completed")]
    AcmeChallengeServed,
    #[error("I/O error during the TLS handshake: {0}")]
    Io(#[from] io::Error),
}

/// A worker's TLS acceptor.
pub struct TlsAcceptor {
    ctx: Arc<TlsContext>,
    config: Arc<ServerConfig>,
    /// This worker's copies of the context's per-site variants (same indices).
    variants: Vec<Arc<ServerConfig>>,
}

/// What the first bytes of a connection look like.
#[derive(Debug, PartialEq, Eq)]
enum Sniffed {
    Tls,
    /// A ClientHello whose highest version is below TLS 1.2.
    OldTls,
    Http,
    Garbage,
    NeedMore,
}

/// Methods Go's net/http recognises for its "HTTP request to an HTTPS server" answer, plus
/// the rest of RFC 9110's.
const HTTP_METHODS: [&[u8]; 9] = [
    b"GET ",
    b"HEAD ",
    b"POST ",
    b"PUT ",
    b"DELETE ",
    b"OPTIONS ",
    b"PATCH ",
    b"CONNECT ",
    b"TRACE ",
];
/// Bytes needed to recognise the longest method, or a ClientHello's version: record header
/// (5), handshake type and length (4), `legacy_version` (2).
const SNIFF_LEN: usize = 11;
/// TLS record content type of a handshake record (RFC 8446 §5.1).
const HANDSHAKE_RECORD: u8 = 0x16;
const CLIENT_HELLO: u8 = 0x01;
/// `legacy_version` of a client that can do TLS 1.2 or 1.3 (1.3 clients also send 0x0303).
const TLS12_VERSION: [u8; 2] = [0x03, 0x03];
/// A fatal protocol_version alert record (RFC 8446 §6.2: alert 70), which Caddy sends to
/// TLS 1.0/1.1 clients. rustls answers handshake_failure when such a client offers only CBC
/// suites (it picks a suite before looking at the version), so we answer first.
const PROTOCOL_VERSION_ALERT: [u8; 7] = [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 70];

fn sniff(head: &[u8]) -> Sniffed {
    match head.first() {
        None => Sniffed::NeedMore,
        Some(&HANDSHAKE_RECORD) if head.len() < SNIFF_LEN => Sniffed::NeedMore,
        Some(&HANDSHAKE_RECORD) => {
            let record_len = u16::from_be_bytes([head[3], head[4]]);
            let version = [head[9], head[10]];
            if head[5] == CLIENT_HELLO && record_len >= 6 && version < TLS12_VERSION {
                Sniffed::OldTls
            } else {
                Sniffed::Tls
            }
        }
        Some(b) if b.is_ascii_uppercase() => {
            if HTTP_METHODS.iter().any(|m| head.starts_with(m)) {
                Sniffed::Http
            } else if HTTP_METHODS.iter().any(|m| m.starts_with(head)) {
                Sniffed::NeedMore
            } else {
                Sniffed::Garbage
            }
        }
        Some(_) => Sniffed::Garbage,
    }
}

impl TlsAcceptor {
    pub fn new(ctx: &Arc<TlsContext>) -> TlsAcceptor {
        TlsAcceptor {
            ctx: ctx.clone(),
            config: config::for_worker(&ctx.template),
            variants: ctx.variants.iter().map(config::for_worker).collect(),
        }
    }

    /// Whether this acceptor serves `ctx`'s certificates (a reload that kept the TLS context
    /// keeps the acceptor and its session cache).
    pub fn serves(&self, ctx: &Arc<TlsContext>) -> bool {
        Arc::ptr_eq(&self.ctx, ctx)
    }

    /// This worker's rustls configuration.
    pub fn server_config(&self) -> &Arc<ServerConfig> {
        &self.config
    }

    /// Run the TLS handshake on `sock` within `handshake_timeout`.
    ///
    /// A plaintext HTTP request is answered here (400) before `PlaintextHttp` is returned; on
    /// every error the socket is dropped, closing the connection.
    pub async fn accept(
        &self,
        sock: PlainStream,
        handshake_timeout: Duration,
    ) -> Result<TlsStream, TlsAcceptError> {
        Ok(self.accept_after(sock, &[], handshake_timeout).await?.stream)
    }

    /// [`TlsAcceptor::accept`] for a connection whose first bytes were already read off the
    /// socket (what followed a PROXY protocol header): they are handled as if read now. Also
    /// says under which client-certificate policy the handshake ran.
    pub async fn accept_after(
        &self,
        sock: PlainStream,
        already_read: &[u8],
        handshake_timeout: Duration,
    ) -> Result<Handshaken, TlsAcceptError> {
        match monoio::time::timeout(handshake_timeout, self.handshake(sock, already_read)).await {
            Ok(result) => result,
            Err(_) => Err(TlsAcceptError::Timeout),
        }
    }

    async fn handshake(
        &self,
        sock: PlainStream,
        already_read: &[u8],
    ) -> Result<Handshaken, TlsAcceptError> {
        let fd = sock.fd();
        let mut head = [0u8; SNIFF_LEN];
        let mut have = already_read.len().min(SNIFF_LEN);
        head[..have].copy_from_slice(&already_read[..have]);
        let mut rest = &already_read[have..];
        loop {
            match sniff(&head[..have]) {
                Sniffed::Tls => break,
                Sniffed::OldTls => {
                    let _ = sock.try_write(&PROTOCOL_VERSION_ALERT);
                    return Err(TlsAcceptError::OldProtocol);
                }
                Sniffed::Http => {
                    answer_plaintext_http(&sock).await;
                    return Err(TlsAcceptError::PlaintextHttp);
                }
                Sniffed::Garbage => return Err(TlsAcceptError::NotTls),
                Sniffed::NeedMore => {}
            }
            match sock.try_read(&mut head[have..]) {
                Ok(0) => return Err(TlsAcceptError::ClosedEarly),
                Ok(n) => have += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => sock.readable().await?,
                Err(e) => return Err(e.into()),
            }
        }

        let mut acceptor = Acceptor::default();
        let mut sniffed = &head[..have];
        while !sniffed.is_empty() {
            acceptor.read_tls(&mut sniffed)?;
        }
        while !rest.is_empty() {
            acceptor.read_tls(&mut rest)?;
        }
        let accepted = loop {
            match acceptor.accept() {
                Ok(Some(accepted)) => break accepted,
                Ok(None) => {}
                Err((e, mut alert)) => {
                    let _ = alert.write_all(&mut SocketIo(fd));
                    return Err(e.into());
                }
            }
            match acceptor.read_tls(&mut SocketIo(fd)) {
                Ok(0) => return Err(TlsAcceptError::ClosedEarly),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => sock.readable().await?,
                Err(e) => return Err(e.into()),
            }
        };

        // Only a config with per-site `tls { … }` options looks the name up (and pays for
        // lower-casing it); every other handshake takes the template as before.
        let variant = if self.variants.is_empty() {
            None
        } else {
            let name = match accepted.client_hello().server_name() {
                Some(name) => name.to_ascii_lowercase(),
                None => local_ip_name(&sock).unwrap_or_default(),
            };
            self.ctx.variant_for(&name)
        };
        let config = match (accepted.client_hello().server_name(), variant) {
            (None, _) => self.config_without_sni(&sock),
            (Some(_), Some(index)) => self.variants[index].clone(),
            (Some(_), None) => self.config.clone(),
        };
        let mut conn = match accepted.into_connection(config) {
            Ok(conn) => conn,
            Err((e, mut alert)) => {
                let _ = alert.write_all(&mut SocketIo(fd));
                return Err(e.into());
            }
        };

        loop {
            while !push_records(&mut conn, fd)? {
                sock.writable().await?;
            }
            if !conn.is_handshaking() {
                break;
            }
            match conn.read_tls(&mut SocketIo(fd)) {
                Ok(0) => return Err(TlsAcceptError::ClosedEarly),
                Ok(_) => {
                    if let Err(e) = conn.process_new_packets() {
                        let _ = push_records(&mut conn, fd);
                        return Err(e.into());
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => sock.readable().await?,
                Err(e) => return Err(e.into()),
            }
        }

        if conn.alpn_protocol() == Some(ACME_TLS_ALPN) {
            // RFC 8737 §3: the handshake is the whole validation; no application data follows.
            conn.send_close_notify();
            let _ = push_records(&mut conn, fd);
            return Err(TlsAcceptError::AcmeChallengeServed);
        }
        let client_auth = variant.and_then(|v| self.ctx.variant_client_auth[v].clone());
        Ok(Handshaken { stream: TlsStream::new(sock, conn), client_auth })
    }

    /// The configuration for a ClientHello naming `name`: the variant of the site with
    /// `tls { … }` options that serves it, else the template.
    fn config_for(&self, name: &str) -> Arc<ServerConfig> {
        match self.ctx.variant_for(name) {
            Some(index) => self.variants[index].clone(),
            None => self.config.clone(),
        }
    }

    /// A ClientHello without SNI: serve the certificate for the address the client connected
    /// to, if there is one (IP sites), under that site's options; otherwise the normal
    /// resolver aborts the handshake.
    fn config_without_sni(&self, sock: &PlainStream) -> Arc<ServerConfig> {
        let local_ip = local_ip_name(sock);
        let base = match &local_ip {
            Some(ip) => self.config_for(ip),
            None => self.config.clone(),
        };
        let cert = local_ip.and_then(|ip| self.ctx.store.cert_for(&ip));
        match cert {
            Some(cert) => {
                let mut config = ServerConfig::clone(&base);
                config.cert_resolver = Arc::new(FixedResolver(cert));
                Arc::new(config)
            }
            None => base,
        }
    }
}

/// The address the client connected to, as a site would name it: what stands in for the
/// server name of a ClientHello without SNI.
fn local_ip_name(sock: &PlainStream) -> Option<String> {
    let local = sock.tcp()?.local_addr().ok()?;
    Some(canonical_ip(local.ip()).to_string())
}

/// A finished handshake.
pub struct Handshaken {
    pub stream: TlsStream,
    /// The client-certificate policy the handshake verified under, if its site has one: a
    /// request for a site with `client_auth` is only served on a connection whose handshake
    /// ran under that same policy.
    pub client_auth: Option<Arc<ClientAuth>>,
}

/// A dual-stack listener reports IPv4 clients as `::ffff:a.b.c.d`; sites name them as IPv4.
fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

/// Send the 400, half-close, and read what the client still sends (briefly) so that closing
/// does not turn into a reset that destroys our answer in the client's receive queue.
async fn answer_plaintext_http(sock: &PlainStream) {
    let mut answer = Vec::new();
    write_answer(Answer::PlaintextOnTlsPort, true, &mut answer);
    if write_all(sock, &answer).await.is_err() || sock.shutdown_write().is_err() {
        return;
    }
    let drain = async {
        let mut scratch = vec![0u8; 2048];
        let mut discarded = 0;
        while discarded < limits::PLAINTEXT_LINGER_BYTES {
            match sock.try_read(&mut scratch) {
                Ok(0) => return,
                Ok(n) => discarded += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if sock.readable().await.is_err() {
                        return;
                    }
                }
                Err(_) => return,
            }
        }
    };
    let _ = monoio::time::timeout(limits::PLAINTEXT_LINGER, drain).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffing_tells_tls_from_http_from_garbage() {
        assert_eq!(sniff(b""), Sniffed::NeedMore);
        assert_eq!(sniff(&[0x16, 0x03, 0x01]), Sniffed::NeedMore);
        let hello12 = [0x16, 0x03, 0x01, 0x00, 0xc8, 0x01, 0x00, 0x00, 0xc4, 0x03, 0x03];
        assert_eq!(sniff(&hello12), Sniffed::Tls);
        let hello11 = [0x16, 0x03, 0x01, 0x00, 0xc8, 0x01, 0x00, 0x00, 0xc4, 0x03, 0x02];
        assert_eq!(sniff(&hello11), Sniffed::OldTls);
        let hello10 = [0x16, 0x03, 0x01, 0x00, 0xc8, 0x01, 0x00, 0x00, 0xc4, 0x03, 0x01];
        assert_eq!(sniff(&hello10), Sniffed::OldTls);
        assert_eq!(sniff(b"GET / HT"), Sniffed::Http);
        assert_eq!(sniff(b"OPTIONS "), Sniffed::Http);
        assert_eq!(sniff(b"PO"), Sniffed::NeedMore);
        assert_eq!(sniff(b"POST"), Sniffed::NeedMore);
        assert_eq!(sniff(b"PUX"), Sniffed::Garbage);
        assert_eq!(sniff(b"\x00\x01garbage"), Sniffed::Garbage);
        assert_eq!(sniff(b"get / HT"), Sniffed::Garbage);
    }

    #[test]
    fn ipv4_mapped_addresses_name_their_ipv4_site() {
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        assert_eq!(canonical_ip(mapped), "127.0.0.1".parse::<IpAddr>().unwrap());
        let v6: IpAddr = "::1".parse().unwrap();
        assert_eq!(canonical_ip(v6), v6);
    }
}
