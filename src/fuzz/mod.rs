//! Fuzzing harnesses: one function per parser that takes arbitrary bytes, runs them through the
//! parser and asserts the invariants the rest of the proxy relies on. A violation panics, which
//! is what a fuzzer reports. Each cargo-fuzz target in `fuzz/fuzz_targets/` is a one-line call
//! of one of these, and `tests/fuzz_corpus.rs` replays the committed corpus through the same
//! functions on stable Rust, so a regression fails `tests/run` without nightly or cargo-fuzz.
//!
//! Why here and in this shape: the harnesses need crate-private pieces (the `pub(crate)` path
//! helpers, the lexer's line count) and must stay in step with the code they check, so they
//! live in the crate, as rustls keeps its own. They are compiled always, not behind a cargo
//! feature, so that the plain `cargo test` CI runs can replay the corpus, and clippy and
//! rustdoc see them on every build; `#[doc(hidden)]` keeps them out of the documented API.
//! Nothing in the proxy calls them, so the binary does not link them.
//!
//! Owns: the invariants, the reference models they compare against (written from the RFCs, not
//! from the code under test) and how an input is cut into the pieces reads would deliver
//! (`pieces`). Does not own the parsers, nor the fuzz targets, corpora and scripts (`fuzz/`,
//! described in docs/testing.md).
//!
//! Inputs stay exactly the bytes the parser sees: where an invariant needs a split of the
//! input, the split is derived from a hash of the bytes, so a corpus file is a plain HTTP head
//! (or Caddyfile, or chunked body) that replays the same way everywhere.

mod chunked;
mod config;
mod http;
mod proxy_protocol;
mod ws_frame;

pub use chunked::chunked_body;
pub use config::caddyfile;
pub use http::{request_head, response_head};
pub use proxy_protocol::proxy_header;
pub use ws_frame::ws_frames;

use std::ops::Range;

/// Cut `len` bytes into consecutive non-empty pieces the way socket reads might: mostly short
/// pieces with the occasional long one, chosen by a generator seeded from `data`. The pieces
/// cover `0..len` in order.
pub(crate) fn pieces(data: &[u8]) -> Vec<Range<usize>> {
    let mut random = SplitMix64(seed(data));
    let mut out = Vec::new();
    let mut at = 0;
    while at < data.len() {
        let draw = random.next();
        let size = match draw % 8 {
            // One long read in eight: up to half of what is left.
            0 => 1 + (draw >> 8) as usize % data.len().div_ceil(2),
            _ => 1 + (draw >> 8) as usize % 16,
        };
        let end = (at + size).min(data.len());
        out.push(at..end);
        at = end;
    }
    out
}

/// The cut points of [`pieces`] (the offsets where a piece ends, the last excluded), at most
/// `most` of them: where a parser that re-reads a growing buffer would be asked for a verdict.
pub(crate) fn cut_points(data: &[u8], most: usize) -> Vec<usize> {
    let cuts: Vec<usize> = pieces(data).iter().map(|piece| piece.end).collect();
    let inner = &cuts[..cuts.len().saturating_sub(1)];
    let step = inner.len().div_ceil(most.max(1)).max(1);
    inner.iter().step_by(step).copied().collect()
}

/// A number that changes with every byte of the input (FNV-1a), for choices a harness makes
/// about an input without taking bytes from it.
pub(crate) fn seed(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// SplitMix64: a few lines, good enough to spread piece sizes, and the same on every platform.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_cover_the_input_in_order_without_empty_ones() {
        for len in [0, 1, 2, 15, 16, 17, 100, 4096] {
            let data: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
            let pieces = pieces(&data);
            let mut at = 0;
            for piece in &pieces {
                assert_eq!(piece.start, at, "len {len}");
                assert!(piece.end > piece.start, "len {len}");
                at = piece.end;
            }
            assert_eq!(at, len);
        }
    }

    #[test]
    fn pieces_depend_on_the_bytes_and_only_on_them() {
        let a = pieces(&[b'a'; 300]);
        assert_eq!(a, pieces(&[b'a'; 300]));
        assert_ne!(a, pieces(&[b'b'; 300]));
        assert!(a.len() > 10, "mostly short pieces: {a:?}");
    }

    #[test]
    fn cut_points_lie_strictly_inside_the_input_and_are_bounded_in_number() {
        let data = [b'x'; 1000];
        let cuts = cut_points(&data, 8);
        assert!(!cuts.is_empty() && cuts.len() <= 8, "{cuts:?}");
        assert!(cuts.iter().all(|&cut| cut > 0 && cut < data.len()), "{cuts:?}");
        assert!(cuts.windows(2).all(|w| w[0] < w[1]), "{cuts:?}");
        assert!(cut_points(b"x", 8).is_empty());
    }
}
