//! An `encode`d response body on its way to the client: read the upstream's body by its own
//! framing, decode the framing (chunk sizes, extensions and trailers go), compress, and send
//! it as chunks of the new coding (or, to an HTTP/1.0 client, delimited by the close).
//!
//! Whatever one read of the upstream brings is compressed and sent before the next read: the
//! encoder flushes every time (`http::encode`), so an encoded stream is as live as a plain one.
//! Memory per encoded response is the encoder's window (gzip 32 KiB, zstd a few hundred KiB
//! at its default level) plus one read's worth of output.
//!
//! Owns the encoded body loop. Does not own: whether to encode, or the head (the response
//! path), or the compression itself (`http::encode`).

use super::io::{read_append, write_all, BodyFraming, PumpError};
use crate::http::chunked::{frame_chunk, ChunkError, LAST_CHUNK};
use crate::http::encode::StreamEncoder;
use crate::net::stream::Stream;

/// Most upstream bytes read (and compressed) at once.
const READ_BYTES: usize = 64 * 1024;

/// How the encoded body is delimited to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncodedFraming {
    /// `Transfer-Encoding: chunked` (HTTP/1.1 clients).
    Chunked,
    /// Until the connection closes (HTTP/1.0 clients, which cannot read chunks).
    UntilClose,
}

/// Forward the body `framing` delimits from `src` (its first bytes already in `prefix`),
/// encoded, to `dst`. Bytes past the body's end stay in `prefix`. Returns the encoded bytes
/// sent.
pub async fn pump_encoded<R: Stream, W: Stream>(
    src: &R,
    dst: &W,
    prefix: &mut Vec<u8>,
    framing: &mut BodyFraming,
    mut encoder: StreamEncoder,
    delimit: EncodedFraming,
) -> Result<u64, PumpError> {
    let mut plain = Vec::new();
    let mut encoded = Vec::new();
    // Reused for every chunk's framing, so a long stream allocates nothing per piece.
    let mut framed = Vec::new();
    let mut sent = 0u64;
    let mut done = framing.is_done_at_start();
    loop {
        if !prefix.is_empty() && !done {
            let (consumed, ended) =
                decode(framing, prefix, &mut plain).map_err(PumpError::Framing)?;
            prefix.drain(..consumed);
            done = ended;
        }
        let encoding = match plain.is_empty() {
            true => Ok(()),
            false => encoder.encode(&plain, &mut encoded),
        };
        encoding.map_err(PumpError::Destination)?;
        plain.clear();
        if done {
            encoder.finish(&mut encoded).map_err(PumpError::Destination)?;
            sent += send(dst, &mut encoded, &mut framed, delimit, true).await?;
            return Ok(sent);
        }
        if !encoded.is_empty() {
            sent += send(dst, &mut encoded, &mut framed, delimit, false).await?;
        }
        match read_append(src, prefix, READ_BYTES).await {
            Ok(0) if matches!(framing, BodyFraming::UntilEof) => done = true,
            Ok(0) => return Err(PumpError::SourceClosed),
            Ok(_) => {}
            Err(e) => return Err(PumpError::Source(e)),
        }
    }
}

/// The body bytes of `input` by `framing`, decoded into `plain`: how much of `input` the body
/// took, and whether it ended there.
fn decode(
    framing: &mut BodyFraming,
    input: &[u8],
    plain: &mut Vec<u8>,
) -> Result<(usize, bool), ChunkError> {
    match framing {
        BodyFraming::Chunked(tracker) => {
            let progress = tracker.advance_with(input, |data| plain.extend_from_slice(data))?;
            Ok((progress.consumed, progress.done))
        }
        other => {
            let (n, done) = other.take(input)?;
            plain.extend_from_slice(&input[..n]);
            Ok((n, done))
        }
    }
}

/// Send `encoded` as one chunk (or as it is, close-delimited), followed by the last chunk when
/// `last`, and empty it; `framed` is the scratch buffer for the framing. Returns the encoded
/// bytes sent.
async fn send<W: Stream>(
    dst: &W,
    encoded: &mut Vec<u8>,
    framed: &mut Vec<u8>,
    delimit: EncodedFraming,
    last: bool,
) -> Result<u64, PumpError> {
    let len = encoded.len() as u64;
    let out = match delimit {
        EncodedFraming::Chunked => {
            framed.clear();
            frame_chunk(encoded, framed);
            if last {
                framed.extend_from_slice(LAST_CHUNK);
            }
            &*framed
        }
        EncodedFraming::UntilClose => &*encoded,
    };
    if !out.is_empty() {
        write_all(dst, out).await.map_err(PumpError::Destination)?;
    }
    encoded.clear();
    Ok(len)
}
