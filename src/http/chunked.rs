//! Chunked transfer coding (RFC 9112 §7.1): tracks framing of bytes that are forwarded
//! verbatim, so the proxy knows where a chunked body ends without decoding it.
//! OWNER: http helper. (Stub: signatures fixed by the data path.)

/// Result of feeding bytes to the tracker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkProgress {
    /// Bytes of the input that belong to the body (forward exactly these).
    pub consumed: usize,
    /// The last chunk and trailer section ended within `consumed`.
    pub done: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    #[error("invalid chunk size line")]
    BadSize,
    #[error("chunk data not followed by CRLF")]
    MissingCrlf,
    #[error("chunk extension or trailer section too long")]
    TooLong,
}

/// State machine over a chunked body. Feeding the same bytes in any split gives the same result.
#[derive(Debug, Clone, Default)]
pub struct ChunkedTracker {
    _state: (),
}

impl ChunkedTracker {
    pub fn new() -> Self {
        Self::default()
    }

    /// Advance over `input`. Stops at the end of the body (`done`), leaving later bytes
    /// (a pipelined request) unconsumed.
    pub fn advance(&mut self, input: &[u8]) -> Result<ChunkProgress, ChunkError> {
        let _ = input;
        todo!("http helper")
    }
}
