//! Harness for the chunked body tracker (`http::chunked`).
//!
//! Invariants, for any bytes:
//! - `advance` never reports more bytes consumed than it was given, and all of them unless the
//!   body ended within them; once done it consumes nothing more, and an error is sticky.
//! - Feeding the bytes whole, one at a time or in any other split gives the same result: the
//!   same end of the body, or the same error.
//! - The end found (or "not yet", or "invalid") is the one a reference model finds. The model
//!   is a plain recursive descent over the whole input, written from RFC 9112 §7.1 with the
//!   restrictions the tracker's module doc lists (CRLF only, plain hex sizes, BWS only before
//!   `;` or CR, field-shaped trailers, the line and trailer limits), so the two agree only if
//!   the state machine implements what its doc promises.

use super::pieces;
use crate::config::limits::{MAX_CHUNK_LINE_BYTES, MAX_TRAILER_BYTES};
use crate::http::chunked::{ChunkError, ChunkedTracker};

/// Where a chunked body fed in pieces ended: `Ok((end, true))` when it ended at `end`,
/// `Ok((len, false))` when every byte was body and more is needed.
type Fed = Result<(usize, bool), ChunkError>;

/// Track `data` as a chunked body and check every invariant of the module doc.
pub fn chunked_body(data: &[u8]) {
    let whole = feed(data, std::iter::once(0..data.len()));
    let bytewise = feed(data, (0..data.len()).map(|i| i..i + 1));
    let split = feed(data, pieces(data).into_iter());
    assert_eq!(bytewise, whole, "fed one byte at a time");
    assert_eq!(split, whole, "fed in the pieces {:?}", pieces(data));
    let model = match whole {
        Ok((end, true)) => Model::Done(end),
        Ok((_, false)) => Model::Incomplete,
        Err(_) => Model::Invalid,
    };
    assert_eq!(model, reference(data), "the tracker and the reference model disagree");
}

fn feed(data: &[u8], pieces: impl Iterator<Item = std::ops::Range<usize>>) -> Fed {
    let mut tracker = ChunkedTracker::new();
    let mut offset = 0;
    for piece in pieces {
        let input = &data[piece.clone()];
        match tracker.advance(input) {
            Ok(progress) => {
                assert!(progress.consumed <= input.len(), "consumed more than it was given");
                assert_eq!(progress.done, tracker.is_done());
                if progress.done {
                    let end = offset + progress.consumed;
                    let after = tracker.advance(&data[end..]);
                    assert_eq!(after.map(|p| (p.consumed, p.done)), Ok((0, true)), "after done");
                    return Ok((end, true));
                }
                assert_eq!(progress.consumed, input.len(), "not done, yet not all consumed");
                offset += input.len();
            }
            Err(err) => {
                assert_eq!(tracker.advance(&data[piece.end..]), Err(err), "an error not sticky");
                assert_eq!(tracker.advance(b"0\r\n\r\n"), Err(err), "an error not sticky");
                return Err(err);
            }
        }
    }
    Ok((offset, false))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Model {
    Done(usize),
    Incomplete,
    Invalid,
}

/// Why the reference model stopped before the end of a body.
enum Stop {
    Incomplete,
    Invalid,
}

/// The reference model: reads the whole input front to back.
fn reference(input: &[u8]) -> Model {
    let mut reader = Reader { input, at: 0, counted: 0 };
    match reader.body() {
        Ok(()) => Model::Done(reader.at),
        Err(Stop::Incomplete) => Model::Incomplete,
        Err(Stop::Invalid) => Model::Invalid,
    }
}

struct Reader<'a> {
    input: &'a [u8],
    at: usize,
    /// Bytes of the current size line, or of the trailer section, read so far.
    counted: usize,
}

impl Reader<'_> {
    fn byte(&mut self) -> Result<u8, Stop> {
        let b = *self.input.get(self.at).ok_or(Stop::Incomplete)?;
        self.at += 1;
        Ok(b)
    }

    /// A byte that counts against `limit` (the size line's or the trailer section's); the
    /// limit is checked before the byte is looked at.
    fn counted_byte(&mut self, limit: usize) -> Result<u8, Stop> {
        let b = self.byte()?;
        self.counted += 1;
        if self.counted > limit {
            return Err(Stop::Invalid);
        }
        Ok(b)
    }

    fn expect(&mut self, want: u8) -> Result<(), Stop> {
        if self.byte()? == want {
            Ok(())
        } else {
            Err(Stop::Invalid)
        }
    }

    /// `*chunk last-chunk trailer-section CRLF`.
    fn body(&mut self) -> Result<(), Stop> {
        loop {
            let size = self.size_line()?;
            if size == 0 {
                return self.trailer_section();
            }
            // The data: exactly `size` bytes of anything, then CRLF.
            let left = (self.input.len() - self.at) as u64;
            if left < size {
                return Err(Stop::Incomplete);
            }
            self.at += size as usize;
            self.expect(b'\r')?;
            self.expect(b'\n')?;
        }
    }

    /// `1*HEXDIG *BWS [ ";" ext-text ] CR LF`, the CR counting against the line limit.
    fn size_line(&mut self) -> Result<u64, Stop> {
        self.counted = 0;
        let mut b = self.counted_byte(MAX_CHUNK_LINE_BYTES)?;
        let mut size: u64 = 0;
        let mut digits = 0;
        while let Some(digit) = (b as char).to_digit(16) {
            size = size
                .checked_mul(16)
                .and_then(|s| s.checked_add(digit.into()))
                .ok_or(Stop::Invalid)?;
            digits += 1;
            b = self.counted_byte(MAX_CHUNK_LINE_BYTES)?;
        }
        if digits == 0 {
            return Err(Stop::Invalid);
        }
        while b == b' ' || b == b'\t' {
            b = self.counted_byte(MAX_CHUNK_LINE_BYTES)?;
        }
        if b == b';' {
            loop {
                b = self.counted_byte(MAX_CHUNK_LINE_BYTES)?;
                if b == b'\r' {
                    break;
                }
                if !is_field_text(b) {
                    return Err(Stop::Invalid);
                }
            }
        }
        if b != b'\r' {
            return Err(Stop::Invalid);
        }
        self.expect(b'\n')?;
        Ok(size)
    }

    /// `*( field-name ":" *field-text CRLF ) CRLF`; every byte but the final LF counts against
    /// the trailer limit.
    fn trailer_section(&mut self) -> Result<(), Stop> {
        self.counted = 0;
        loop {
            let first = self.counted_byte(MAX_TRAILER_BYTES)?;
            if first == b'\r' {
                return self.expect(b'\n');
            }
            let mut b = first;
            while is_token_byte(b) {
                b = self.counted_byte(MAX_TRAILER_BYTES)?;
            }
            if b != b':' || first == b':' {
                return Err(Stop::Invalid);
            }
            loop {
                b = self.counted_byte(MAX_TRAILER_BYTES)?;
                if b == b'\r' {
                    break;
                }
                if !is_field_text(b) {
                    return Err(Stop::Invalid);
                }
            }
            if self.counted_byte(MAX_TRAILER_BYTES)? != b'\n' {
                return Err(Stop::Invalid);
            }
        }
    }
}

/// HTAB, SP, VCHAR, obs-text (RFC 9110 §5.5).
fn is_field_text(b: u8) -> bool {
    b == b'\t' || b == b' ' || b.is_ascii_graphic() || b >= 0x80
}

/// RFC 9110 §5.6.2 `tchar`.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reference_model_reads_bodies_the_rfc_way() {
        let cases: &[(&[u8], Model)] = &[
            (b"5\r\nhello\r\n0\r\n\r\nGET", Model::Done(15)),
            (b"5 ;a=b\r\nhello\r\n0\r\nX: y\r\n\r\n", Model::Done(26)),
            (b"5\r\nhel", Model::Incomplete),
            (b"0\r\nX: y\r\n", Model::Incomplete),
            (b"5\nhello", Model::Invalid),
            (b" 5\r\n", Model::Invalid),
            (b"5 5\r\n", Model::Invalid),
            (b"0\r\n: y\r\n\r\n", Model::Invalid),
            (b"0\r\nX : y\r\n\r\n", Model::Invalid),
            (b"10000000000000000\r\n", Model::Invalid),
        ];
        for (input, want) in cases {
            assert_eq!(reference(input), *want, "{:?}", String::from_utf8_lossy(input));
            chunked_body(input);
        }
    }

    #[test]
    fn the_reference_model_applies_both_limits() {
        let line = [b"1;".as_slice(), &vec![b'x'; MAX_CHUNK_LINE_BYTES - 3], b"\r\nz\r\n0\r\n\r\n"]
            .concat();
        assert_eq!(reference(&line), Model::Done(line.len()));
        let too_long = [b"1;".as_slice(), &vec![b'x'; MAX_CHUNK_LINE_BYTES - 2], b"\r\n"].concat();
        assert_eq!(reference(&too_long), Model::Invalid);
        chunked_body(&line);
        chunked_body(&too_long);
    }
}
