//! Just enough RFC 6455 for the benchmarks: the HTTP/1.1 upgrade on both sides, whole binary
//! frames (client frames masked, server frames not), and a reader that reuses one buffer so
//! that measuring latency does not measure the allocator.
//!
//! Fragmented messages are refused: neither party sends them, and a proxy that re-fragments
//! would be changing the traffic we measure, which the benchmark should report as an error.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::ToolError;

pub const OP_BINARY: u8 = 0x2;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;
pub const OP_PONG: u8 = 0xA;

/// Largest payload either tool accepts (the benchmark sends 1,920 bytes).
pub const MAX_PAYLOAD: usize = 1 << 20;
/// Largest upgrade response head the client accepts.
const MAX_HEAD: usize = 8 * 1024;

/// Appends one whole frame (FIN set) to `out`; masks the payload when `mask` is given (client).
pub fn encode_frame(out: &mut Vec<u8>, opcode: u8, payload: &[u8], mask: Option<[u8; 4]>) {
    out.push(0x80 | (opcode & 0x0F));
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    let len = payload.len();
    if len < 126 {
        out.push(mask_bit | len as u8);
    } else if len <= usize::from(u16::MAX) {
        out.push(mask_bit | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(mask_bit | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    match mask {
        Some(key) => {
            out.extend_from_slice(&key);
            out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        }
        None => out.extend_from_slice(payload),
    }
}

/// A parsed frame header: where the payload starts, how long it is, and its masking key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub fin: bool,
    pub opcode: u8,
    pub header_len: usize,
    pub payload_len: usize,
    pub mask: Option<[u8; 4]>,
}

/// Parses a frame header from the start of `buf`; `Ok(None)` when more bytes are needed.
pub fn parse_header(buf: &[u8]) -> Result<Option<Header>, ToolError> {
    if buf.len() < 2 {
        return Ok(None);
    }
    if buf[0] & 0x70 != 0 {
        return Err(ToolError::Ws("reserved bits set".into()));
    }
    let fin = buf[0] & 0x80 != 0;
    let opcode = buf[0] & 0x0F;
    let masked = buf[1] & 0x80 != 0;
    let (payload_len, mut pos) = match buf[1] & 0x7F {
        126 => {
            let Some(b) = buf.get(2..4) else {
                return Ok(None);
            };
            (usize::from(u16::from_be_bytes([b[0], b[1]])), 4)
        }
        127 => {
            let Some(b) = buf.get(2..10) else {
                return Ok(None);
            };
            let mut a = [0u8; 8];
            a.copy_from_slice(b);
            let n = u64::from_be_bytes(a);
            (usize::try_from(n).unwrap_or(usize::MAX), 10)
        }
        n => (usize::from(n), 2),
    };
    if payload_len > MAX_PAYLOAD {
        return Err(ToolError::Ws(format!("frame of {payload_len} bytes exceeds the limit")));
    }
    let mask = if masked {
        let Some(b) = buf.get(pos..pos + 4) else {
            return Ok(None);
        };
        pos += 4;
        Some([b[0], b[1], b[2], b[3]])
    } else {
        None
    };
    Ok(Some(Header { fin, opcode, header_len: pos, payload_len, mask }))
}

/// One received frame; the payload is unmasked and borrowed from the reader's buffer.
#[derive(Debug)]
pub struct Frame<'a> {
    pub opcode: u8,
    pub payload: &'a [u8],
}

/// Reads frames from a stream into one reusable buffer.
pub struct FrameReader {
    buf: Vec<u8>,
    len: usize,
    /// Bytes of the frame handed out by the previous call, dropped at the next call.
    consumed: usize,
}

impl Default for FrameReader {
    fn default() -> Self {
        Self::with_leftover(&[])
    }
}

impl FrameReader {
    /// A reader that starts with bytes already read past an HTTP head.
    pub fn with_leftover(leftover: &[u8]) -> Self {
        let mut buf = vec![0u8; (16 * 1024).max(leftover.len())];
        buf[..leftover.len()].copy_from_slice(leftover);
        Self { buf, len: leftover.len(), consumed: 0 }
    }

    /// The next frame, or `None` on a clean end of stream between frames.
    pub async fn next<S: AsyncRead + Unpin>(
        &mut self,
        s: &mut S,
    ) -> Result<Option<Frame<'_>>, ToolError> {
        if self.consumed > 0 {
            self.buf.copy_within(self.consumed..self.len, 0);
            self.len -= self.consumed;
            self.consumed = 0;
        }
        // Bounded: every pass either returns or reads at least one byte, and a frame is at most
        // MAX_PAYLOAD + 14 bytes, so a peer cannot keep us here without sending data.
        loop {
            if let Some(h) = parse_header(&self.buf[..self.len])? {
                let total = h.header_len + h.payload_len;
                if self.len >= total {
                    if !h.fin || h.opcode == 0 {
                        return Err(ToolError::Ws("fragmented message".into()));
                    }
                    let payload = &mut self.buf[h.header_len..total];
                    if let Some(key) = h.mask {
                        payload.iter_mut().enumerate().for_each(|(i, b)| *b ^= key[i % 4]);
                    }
                    self.consumed = total;
                    return Ok(Some(Frame {
                        opcode: h.opcode,
                        payload: &self.buf[h.header_len..total],
                    }));
                }
                if self.buf.len() < total {
                    self.buf.resize(total, 0);
                }
            }
            if self.len == self.buf.len() {
                let grown = self.buf.len() * 2;
                self.buf.resize(grown, 0);
            }
            let n = s.read(&mut self.buf[self.len..]).await?;
            if n == 0 {
                return if self.len == 0 {
                    Ok(None)
                } else {
                    Err(ToolError::Ws("end of stream inside a frame".into()))
                };
            }
            self.len += n;
        }
    }
}

/// Sends the upgrade request and checks the `101` answer; returns bytes read past the head.
pub async fn client_upgrade<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    host: &str,
    path: &str,
) -> Result<Vec<u8>, ToolError> {
    let key = tungstenite::handshake::client::generate_key();
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await?;
    s.flush().await?;
    let (head, rest) = read_head(s).await?;
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut resp = httparse::Response::new(&mut headers);
    match resp.parse(&head) {
        Ok(httparse::Status::Complete(_)) => {}
        _ => return Err(ToolError::Ws("unparsable upgrade response".into())),
    }
    if resp.code != Some(101) {
        return Err(ToolError::Ws(format!("upgrade answered {:?}, not 101", resp.code)));
    }
    let expected = tungstenite::handshake::derive_accept_key(key.as_bytes());
    let accept = resp
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("sec-websocket-accept"))
        .map(|h| h.value);
    if accept != Some(expected.as_bytes()) {
        return Err(ToolError::Ws("wrong Sec-WebSocket-Accept".into()));
    }
    Ok(rest)
}

/// Reads until the end of an HTTP head; returns (head including CRLFCRLF, bytes after it).
pub async fn read_head<S: AsyncRead + Unpin>(s: &mut S) -> Result<(Vec<u8>, Vec<u8>), ToolError> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    // Bounded by MAX_HEAD: each pass adds at least one byte or returns.
    loop {
        if let Some(end) = find_head_end(&buf) {
            let rest = buf.split_off(end);
            return Ok((buf, rest));
        }
        if buf.len() > MAX_HEAD {
            return Err(ToolError::Http("response head too large".into()));
        }
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            return Err(ToolError::Http("connection closed before the end of the head".into()));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Index just past the first `\r\n\r\n`, if any.
pub fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masked_frame_round_trips_through_the_reader() {
        let payload: Vec<u8> = (0..1920u32).map(|i| (i % 251) as u8).collect();
        let mut wire = Vec::new();
        encode_frame(&mut wire, OP_BINARY, &payload, Some([1, 2, 3, 4]));
        encode_frame(&mut wire, OP_BINARY, b"tail", None);
        assert_eq!(&wire[..4], &[0x82, 0x80 | 126, 0x07, 0x80]);
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(async {
            let mut r = FrameReader::default();
            let mut src = &wire[..];
            let f = r.next(&mut src).await.unwrap().unwrap();
            assert_eq!(f.opcode, OP_BINARY);
            assert_eq!(f.payload, &payload[..]);
            let f = r.next(&mut src).await.unwrap().unwrap();
            assert_eq!(f.payload, b"tail");
            assert!(r.next(&mut src).await.unwrap().is_none());
        });
    }

    #[test]
    fn header_lengths_use_the_shortest_form() {
        for (len, header_len) in [(0usize, 2usize), (125, 2), (126, 4), (65535, 4), (65536, 10)] {
            let mut wire = Vec::new();
            encode_frame(&mut wire, OP_BINARY, &vec![0u8; len], None);
            let h = parse_header(&wire).unwrap().unwrap();
            assert_eq!((h.payload_len, h.header_len), (len, header_len));
        }
    }

    #[test]
    fn partial_and_oversized_headers() {
        assert_eq!(parse_header(&[0x82]).unwrap(), None);
        assert_eq!(parse_header(&[0x82, 126, 0]).unwrap(), None);
        assert_eq!(parse_header(&[0x82, 0x85, 1, 2]).unwrap(), None);
        let huge = [0x82, 127, 0, 0, 0, 1, 0, 0, 0, 0];
        assert!(parse_header(&huge).is_err());
        assert!(parse_header(&[0xC2, 0]).is_err());
    }

    #[test]
    fn truncated_frame_is_an_error_and_fragments_are_refused() {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(async {
            let mut wire = Vec::new();
            encode_frame(&mut wire, OP_BINARY, b"hello", None);
            wire.pop();
            let mut src = &wire[..];
            assert!(FrameReader::default().next(&mut src).await.is_err());
            let frag = [0x02u8, 1, b'x'];
            let mut src = &frag[..];
            assert!(FrameReader::default().next(&mut src).await.is_err());
        });
    }

    #[test]
    fn head_end_is_found_after_crlfcrlf() {
        assert_eq!(find_head_end(b"HTTP/1.1 101 OK\r\n\r\nxy"), Some(19));
        assert_eq!(find_head_end(b"HTTP/1.1 101 OK\r\n"), None);
    }
}
