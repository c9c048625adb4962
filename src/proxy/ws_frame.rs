//! WebSocket frame boundaries, as the relay sees them go by (RFC 6455 §5.2).
//!
//! The relay forwards bytes verbatim and never buffers a frame; [`FrameTracker`] follows each
//! direction's byte stream just far enough to know where every frame ends, so that a graceful
//! stop can put a close frame *between* two frames instead of into the middle of one. It reads
//! only frame headers (2–14 bytes per frame) and counts payload bytes; it never unmasks,
//! inflates or checks payloads, which stay the endpoints' business.
//!
//! Control frames may sit between the fragments of a fragmented message (§5.4), so a frame
//! boundary is always a legal place for a close frame, whatever message is in progress.
//!
//! Also owns the bytes of the close frames ringproxy itself writes ([`close_frame`]).

/// Longest frame header: 2 bytes, an 8-byte extended length, a 4-byte masking key.
const MAX_HEADER: usize = 14;

/// Close status 1001, "going away": the endpoint (here, the proxy) is shutting down (§7.4.1).
pub const CLOSE_GOING_AWAY: u16 = 1001;

/// Where one direction of a relay is within its frame stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameTracker {
    state: State,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// Reading a frame header; `have` bytes of it are in `header`.
    Header { header: [u8; MAX_HEADER], have: u8 },
    /// Inside a payload with this many bytes to go.
    Payload { remaining: u64 },
    /// The stream is not valid WebSocket framing (a 64-bit length with its top bit set, which
    /// §5.2 forbids); no boundary can be found any more.
    Lost,
}

impl Default for FrameTracker {
    fn default() -> Self {
        FrameTracker::new()
    }
}

impl FrameTracker {
    /// A tracker at the start of a stream (which is a frame boundary).
    pub fn new() -> FrameTracker {
        FrameTracker { state: State::Header { header: [0; MAX_HEADER], have: 0 } }
    }

    /// Follow `bytes`, the next bytes of the stream.
    pub fn advance(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            match &mut self.state {
                State::Lost => return,
                State::Payload { remaining } => {
                    let take = (*remaining).min(bytes.len() as u64);
                    *remaining -= take;
                    bytes = &bytes[take as usize..];
                    if *remaining == 0 {
                        self.state = State::Header { header: [0; MAX_HEADER], have: 0 };
                    }
                }
                State::Header { header, have } => {
                    let need = header_len(&header[..usize::from(*have)]);
                    let take = (need - usize::from(*have)).min(bytes.len());
                    let start = usize::from(*have);
                    header[start..start + take].copy_from_slice(&bytes[..take]);
                    *have += take as u8;
                    bytes = &bytes[take..];
                    let have = usize::from(*have);
                    // The header's length depends on its second byte: recompute once it is in.
                    if have == header_len(&header[..have]) {
                        self.state = match payload_len(&header[..have]) {
                            None => State::Lost,
                            Some(0) => State::Header { header: [0; MAX_HEADER], have: 0 },
                            Some(remaining) => State::Payload { remaining },
                        };
                    }
                }
            }
        }
    }

    /// Whether the bytes seen so far end exactly at a frame boundary.
    pub fn at_boundary(&self) -> bool {
        matches!(self.state, State::Header { have: 0, .. })
    }

    /// The most bytes that can be forwarded without passing the end of the current frame: a
    /// read of at most this many bytes ends at or before the next boundary. 0 at a boundary;
    /// `None` when framing was lost (no boundary will come).
    pub fn bytes_to_boundary(&self) -> Option<u64> {
        match &self.state {
            State::Lost => None,
            State::Payload { remaining } => Some(*remaining),
            State::Header { have: 0, .. } => Some(0),
            // The header's own remaining bytes: a frame's payload length is only known once
            // its header is complete, and then the next call says how much payload follows.
            State::Header { header, have } => {
                let have = usize::from(*have);
                Some((header_len(&header[..have]) - have) as u64)
            }
        }
    }
}

/// Length of the header that starts with `seen` (as far as `seen` tells: 2 until the second
/// byte is known).
fn header_len(seen: &[u8]) -> usize {
    let Some(&second) = seen.get(1) else { return 2 };
    let extended = match second & 0x7f {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    let mask = if second & 0x80 != 0 { 4 } else { 0 };
    2 + extended + mask
}

/// Payload length of a complete header; `None` for a 64-bit length with the top bit set.
fn payload_len(header: &[u8]) -> Option<u64> {
    match header[1] & 0x7f {
        126 => Some(u64::from(u16::from_be_bytes([header[2], header[3]]))),
        127 => {
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(&header[2..10]);
            let len = u64::from_be_bytes(bytes);
            (len >> 63 == 0).then_some(len)
        }
        short => Some(u64::from(short)),
    }
}

/// A close frame with `status` and no reason. Frames to a server (`masking_key` is `Some`)
/// must be masked (§5.3); frames to a client must not be.
pub fn close_frame(status: u16, masking_key: Option<[u8; 4]>) -> Vec<u8> {
    // FIN + opcode 0x8 (close), then a 2-byte payload.
    let mut frame = vec![0x88];
    let payload = status.to_be_bytes();
    match masking_key {
        None => {
            frame.push(payload.len() as u8);
            frame.extend_from_slice(&payload);
        }
        Some(key) => {
            frame.push(0x80 | payload.len() as u8);
            frame.extend_from_slice(&key);
            frame.extend(payload.iter().zip(key.iter().cycle()).map(|(b, k)| b ^ k));
        }
    }
    frame
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A frame with `payload_len` payload bytes, masked or not, as a client or server sends it.
    fn frame(opcode: u8, payload_len: usize, masked: bool) -> Vec<u8> {
        let mut out = vec![0x80 | opcode];
        let mask_bit = if masked { 0x80 } else { 0 };
        match payload_len {
            0..=125 => out.push(mask_bit | payload_len as u8),
            126..=0xffff => {
                out.push(mask_bit | 126);
                out.extend_from_slice(&(payload_len as u16).to_be_bytes());
            }
            _ => {
                out.push(mask_bit | 127);
                out.extend_from_slice(&(payload_len as u64).to_be_bytes());
            }
        }
        if masked {
            out.extend_from_slice(&[1, 2, 3, 4]);
        }
        out.extend((0..payload_len).map(|i| (i % 251) as u8));
        out
    }

    /// Every frame-length encoding, masked and not, control frames and empty ones.
    fn stream() -> (Vec<u8>, Vec<usize>) {
        let mut bytes = Vec::new();
        let mut boundaries = vec![0];
        for (opcode, len, masked) in [
            (0x2, 1920, true),
            (0x1, 0, false),
            (0x9, 4, true),
            (0x2, 125, false),
            (0x2, 126, true),
            (0x0, 65_535, false),
            (0x2, 65_536, true),
            (0x8, 2, false),
        ] {
            bytes.extend(frame(opcode, len, masked));
            boundaries.push(bytes.len());
        }
        (bytes, boundaries)
    }

    #[test]
    fn boundaries_are_found_whatever_the_split_of_the_stream() {
        let (bytes, boundaries) = stream();
        for chunk in [1, 2, 3, 7, 13, 100, 4096, bytes.len()] {
            let mut tracker = FrameTracker::new();
            let mut at = 0;
            for piece in bytes.chunks(chunk) {
                tracker.advance(piece);
                at += piece.len();
                assert_eq!(
                    tracker.at_boundary(),
                    boundaries.contains(&at),
                    "chunk {chunk} at {at}"
                );
            }
        }
    }

    #[test]
    fn reading_at_most_bytes_to_boundary_lands_on_every_boundary() {
        let (bytes, boundaries) = stream();
        let mut tracker = FrameTracker::new();
        let mut at = 0;
        let mut landed = vec![0];
        while at < bytes.len() {
            let most = tracker.bytes_to_boundary().unwrap();
            // At a boundary the drain would stop; step over it by one byte to go on.
            let take = if most == 0 { 1 } else { most as usize }.min(bytes.len() - at);
            tracker.advance(&bytes[at..at + take]);
            at += take;
            if tracker.at_boundary() {
                landed.push(at);
            }
        }
        assert_eq!(landed, boundaries);
    }

    #[test]
    fn a_64_bit_length_with_its_top_bit_set_loses_the_framing_for_good() {
        let mut tracker = FrameTracker::new();
        tracker.advance(&[0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(tracker.bytes_to_boundary(), None);
        tracker.advance(&frame(0x2, 3, false));
        assert!(!tracker.at_boundary());
        assert_eq!(tracker.bytes_to_boundary(), None);
    }

    #[test]
    fn close_frames_carry_the_status_masked_only_towards_the_server() {
        assert_eq!(close_frame(CLOSE_GOING_AWAY, None), [0x88, 0x02, 0x03, 0xe9]);
        let masked = close_frame(CLOSE_GOING_AWAY, Some([0xa, 0xb, 0xc, 0xd]));
        assert_eq!(masked, [0x88, 0x82, 0xa, 0xb, 0xc, 0xd, 0x03 ^ 0xa, 0xe9 ^ 0xb]);
        // Both parse as one complete frame.
        for frame in [close_frame(1001, None), masked] {
            let mut tracker = FrameTracker::new();
            tracker.advance(&frame);
            assert!(tracker.at_boundary());
        }
    }
}
