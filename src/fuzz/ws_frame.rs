//! Harness for the WebSocket frame-boundary tracker (`proxy::ws_frame`).
//!
//! Invariants, for any bytes:
//! - Fed in any split, the tracker is at a boundary exactly after the bytes that end a frame
//!   as a reference model reads them (RFC 6455 §5.2: two header bytes, a 16- or 64-bit
//!   extended length, a masking key, the payload), and it loses the framing exactly where the
//!   model finds a 64-bit length with its top bit set, and for good.
//! - `bytes_to_boundary` never points past the next boundary: forwarding at most that many
//!   bytes ends at or before it, inside a payload exactly at it, and it is 0 only at one.
//! - Reading the stream the way a draining relay does (at most `bytes_to_boundary` at a time)
//!   lands on every boundary.

use super::pieces;
use crate::proxy::ws_frame::FrameTracker;

/// Frame ends the model finds in a stream, and where the framing was lost, if it was.
#[derive(Debug, PartialEq, Eq)]
struct Frames {
    /// Offsets just after each complete frame (0, the start, included).
    boundaries: Vec<usize>,
    /// Offset just after a header whose length is invalid.
    lost_at: Option<usize>,
}

/// Follow `data` as one direction of a WebSocket relay and check every invariant of the
/// module doc.
pub fn ws_frames(data: &[u8]) {
    let model = reference(data);
    for split in [
        std::iter::once(0..data.len()).collect(),
        (0..data.len()).map(|i| i..i + 1).collect(),
        pieces(data),
    ] {
        let mut tracker = FrameTracker::new();
        for piece in split {
            tracker.advance(&data[piece.clone()]);
            assert_state(&tracker, &model, piece.end);
        }
    }
    assert_drain_lands_on_every_boundary(data, &model);
}

fn assert_state(tracker: &FrameTracker, model: &Frames, at: usize) {
    let lost = model.lost_at.is_some_and(|lost| at >= lost);
    assert_eq!(tracker.at_boundary(), !lost && model.boundaries.contains(&at), "at {at}");
    let Some(most) = tracker.bytes_to_boundary() else {
        assert!(lost, "framing lost at {at}, the model has {model:?}");
        return;
    };
    assert!(!lost, "framing not lost at {at}, the model has {model:?}");
    assert_eq!(most == 0, tracker.at_boundary(), "{most} to the boundary at {at}");
    // The next boundary the model knows of; past the input, anything up to its end is fine.
    if let Some(&next) = model.boundaries.iter().find(|&&b| b > at) {
        let lost_first = model.lost_at.is_some_and(|lost| lost <= next);
        assert!(lost_first || at + most as usize <= next, "{most} from {at} passes {next}");
    }
}

fn assert_drain_lands_on_every_boundary(data: &[u8], model: &Frames) {
    let mut tracker = FrameTracker::new();
    let mut at = 0;
    let mut landed = vec![0];
    while at < data.len() {
        let Some(most) = tracker.bytes_to_boundary() else { break };
        // At a boundary a drain would stop; step over it by one byte to go on.
        let take = (most.max(1)).min((data.len() - at) as u64) as usize;
        tracker.advance(&data[at..at + take]);
        at += take;
        if tracker.at_boundary() {
            landed.push(at);
        }
    }
    let expected: Vec<usize> = model
        .boundaries
        .iter()
        .copied()
        .filter(|&b| model.lost_at.is_none_or(|lost| b < lost))
        .collect();
    assert_eq!(landed, expected, "draining the stream");
}

/// The model: reads frame after frame from the start of `data`.
fn reference(data: &[u8]) -> Frames {
    let mut boundaries = vec![0];
    let mut at = 0usize;
    while let Some(header) = data.get(at..at + 2) {
        let (extended, masked) = (header[1] & 0x7f, header[1] & 0x80 != 0);
        let extension = match extended {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        let header_end = at + 2 + extension + if masked { 4 } else { 0 };
        if header_end > data.len() {
            break;
        }
        let length = match extension {
            0 => u64::from(extended),
            _ => data[at + 2..at + 2 + extension].iter().fold(0, |n, &b| n << 8 | u64::from(b)),
        };
        if extension == 8 && length >= 1 << 63 {
            return Frames { boundaries, lost_at: Some(header_end) };
        }
        let Some(end) = (header_end as u64).checked_add(length) else { break };
        if end > data.len() as u64 {
            break;
        }
        at = end as usize;
        boundaries.push(at);
    }
    Frames { boundaries, lost_at: None }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_model_reads_every_length_encoding_and_stops_at_an_invalid_one() {
        let short = [0x81, 0x02, b'h', b'i'];
        let masked16 = [[0x82, 0xfe, 0x00, 0x01, 1, 2, 3, 4].as_slice(), &[9]].concat();
        let lost = [0x82, 0x7f, 0x80, 0, 0, 0, 0, 0, 0, 0, 0x81, 0x00];
        let input = [&short[..], &masked16, &lost].concat();
        let frames = reference(&input);
        assert_eq!(frames.boundaries, [0, 4, 13]);
        assert_eq!(frames.lost_at, Some(23));
        ws_frames(&input);
        ws_frames(&short[..3]);
        ws_frames(b"");
    }
}
