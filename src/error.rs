//! Errors on the data path, grouped by which side caused them, and the one place that maps an
//! error to what the client sees and how loudly it is logged.
//!
//! The side decides both: client garbage is a 4xx at `debug` (it is the client's problem and
//! cheap to provoke), upstream failures are 502/504 at `warn` (an operator should look), and
//! internal faults are `error`. No error's text ever reaches a client: [`response_for`] maps to
//! the closed set of [`Answer`]s.

use std::io;

use crate::http::chunked::ChunkError;
use crate::http::head::{HeadError, UpstreamHeadError};
use crate::http::response::Answer;
use crate::http::upgrade::UpgradeError;
use crate::net::stall::{stalled, Stalled};

/// Something went wrong while serving one request or relay.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("client: {0}")]
    Client(#[from] ClientError),
    #[error("upstream: {0}")]
    Upstream(#[from] UpstreamError),
}

/// Failures caused by the downstream client.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("invalid request head: {0}")]
    Head(#[from] HeadError),
    #[error("invalid chunked request body: {0}")]
    Chunked(#[from] ChunkError),
    #[error("request head not received within the read_header timeout")]
    HeaderTimeout,
    #[error("connection closed in the middle of a request")]
    ClosedMidRequest,
    #[error("request body made no progress within the read_body timeout")]
    BodyStalled,
    #[error("request body is larger than request_body max_size {max}")]
    BodyTooLarge { max: u64 },
    #[error("client accepted no bytes within the write timeout")]
    WriteStalled,
    #[error("i/o: {0}")]
    Io(io::Error),
}

impl ClientError {
    /// An i/o error on the client connection, told apart from a stall timeout running out.
    pub fn from_io(e: io::Error) -> ClientError {
        match stalled(&e) {
            Some(Stalled::Read) => ClientError::BodyStalled,
            Some(Stalled::Write) => ClientError::WriteStalled,
            None => ClientError::Io(e),
        }
    }
}

/// Failures caused by (or on the way to) an upstream.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("no upstream could be reached (last: {upstream}: {source})")]
    Connect { upstream: String, source: io::Error },
    #[error("every upstream is marked unhealthy")]
    NoneAvailable,
    #[error("{upstream} sent no response head within response_header_timeout")]
    HeaderTimeout { upstream: String },
    #[error("{upstream} sent an invalid response head: {source}")]
    Head { upstream: String, source: UpstreamHeadError },
    #[error("{upstream} sent an invalid chunked body: {source}")]
    Chunked { upstream: String, source: ChunkError },
    #[error("{upstream} closed the connection before the response was complete")]
    ClosedEarly { upstream: String },
    #[error("{upstream} answered 101 to a request that did not ask to upgrade")]
    UnexpectedUpgrade { upstream: String },
    #[error("{upstream} answered a WebSocket upgrade with a 101 that is not one: {reason}")]
    BadUpgrade { upstream: String, reason: UpgradeError },
    #[error("{upstream} sent no bytes of its response body within read_timeout")]
    ReadStalled { upstream: String },
    #[error("{upstream} accepted no bytes of the request within write_timeout")]
    WriteStalled { upstream: String },
    #[error("{upstream}: {source}")]
    Io { upstream: String, source: io::Error },
}

/// What the client gets for an error, or `None` when no response can be sent (the client is
/// gone, or part of a response was already written and the connection must simply end).
/// Exhaustive on purpose: a new error variant must decide its answer here.
pub fn response_for(error: &ProxyError) -> Option<Answer> {
    match error {
        ProxyError::Client(client) => match client {
            ClientError::Head(head) => Some(match head {
                HeadError::Malformed
                | HeadError::MissingHost
                | HeadError::BadHost
                | HeadError::BadContentLength
                | HeadError::LengthAndTransferEncoding
                | HeadError::TransferEncodingNotChunked => Answer::BadRequest,
                HeadError::TooLarge => Answer::HeaderFieldsTooLarge,
                HeadError::UnsupportedTransferEncoding => Answer::NotImplemented,
                HeadError::UnsupportedVersion => Answer::VersionNotSupported,
                HeadError::Connect => Answer::MethodNotAllowed,
            }),
            ClientError::Chunked(_) => Some(Answer::BadRequest),
            // RFC 9110 §15.5.9; the connection closes after it (the rest of the body is
            // unread).
            ClientError::BodyStalled => Some(Answer::RequestTimeout),
            ClientError::BodyTooLarge { .. } => Some(Answer::ContentTooLarge),
            ClientError::HeaderTimeout
            | ClientError::ClosedMidRequest
            | ClientError::WriteStalled
            | ClientError::Io(_) => None,
        },
        ProxyError::Upstream(upstream) => match upstream {
            UpstreamError::Connect { .. }
            | UpstreamError::NoneAvailable
            | UpstreamError::Head { .. }
            | UpstreamError::Chunked { .. }
            | UpstreamError::ClosedEarly { .. }
            | UpstreamError::UnexpectedUpgrade { .. }
            | UpstreamError::BadUpgrade { .. }
            | UpstreamError::Io { .. } => Some(Answer::BadGateway),
            UpstreamError::HeaderTimeout { .. }
            | UpstreamError::ReadStalled { .. }
            | UpstreamError::WriteStalled { .. } => Some(Answer::GatewayTimeout),
        },
    }
}

/// Log an error at the level its side deserves.
pub fn log(error: &ProxyError, conn_id: u64) {
    match error {
        ProxyError::Client(e) => tracing::debug!(conn = conn_id, "{e}"),
        ProxyError::Upstream(e) => tracing::warn!(conn = conn_id, "{e}"),
    }
}
