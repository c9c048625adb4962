//! Chunked transfer coding (RFC 9112 §7.1): tracks framing of bytes that are forwarded
//! verbatim, so the proxy knows where a chunked body ends without decoding it.
//!
//! Owns: finding the exact end of a chunked body (last chunk, trailer section, final CRLF) and
//! rejecting framing two parsers could read differently; framing the chunks of a body this
//! proxy re-encodes ([`frame_chunk`], [`LAST_CHUNK`]). Does not own: buffering or copying (the
//! driver forwards exactly the bytes `advance` reports as consumed).
//!
//! Because bytes pass through unchanged, every leniency here would be a chance for the upstream
//! to frame the body differently than we do (request smuggling). So, unlike heads, a bare LF is
//! never a line terminator, chunk data must be followed by CRLF, sizes are plain hex without
//! sign, prefix or overflow, and trailer lines must look like field lines (no obs-fold).
//! Whitespace is accepted only between the size and `;` or CR (RFC 9112 §7.1.1 BWS, and what
//! Go's reader tolerates); it cannot change the size either side reads.

use std::io::Write;

use crate::config::limits;

/// The last chunk of a body this proxy frames, with an empty trailer section.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// Appends `data` to `out` as one chunk. Nothing for no bytes: an empty chunk is the last one,
/// and would end the body.
pub fn frame_chunk(data: &[u8], out: &mut Vec<u8>) {
    if data.is_empty() {
        return;
    }
    out.reserve(data.len() + 20);
    // Writing into a Vec cannot fail.
    let _ = write!(out, "{:x}\r\n", data.len());
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// Result of feeding bytes to the tracker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkProgress {
    /// Bytes of the input that belong to the body (forward exactly these). Equal to the input
    /// length unless `done`.
    pub consumed: usize,
    /// The last chunk and trailer section ended within `consumed`.
    pub done: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    /// Not hex, empty, overflowing, a bare LF or a control character in the size line.
    #[error("invalid chunk size line")]
    BadSize,
    /// Chunk data, or the trailer section, not followed by CRLF.
    #[error("chunk data not followed by CRLF")]
    MissingCrlf,
    #[error("chunk extension or trailer section too long")]
    TooLong,
    /// A trailer line that is not `name: value` CRLF (obs-fold, bare LF, control characters).
    #[error("malformed trailer field")]
    BadTrailer,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum State {
    /// In the hex digits of a chunk size.
    #[default]
    Size,
    /// Whitespace after the size: only more whitespace, `;` or CR may follow.
    SizeSpace,
    /// In chunk extensions, up to CR.
    Extension,
    /// CR of the size line seen.
    SizeLf,
    /// In chunk data.
    Data,
    DataCr,
    DataLf,
    /// At the start of a trailer line, or of the final CRLF.
    TrailerStart,
    TrailerName,
    TrailerValue,
    TrailerLf,
    /// CR of the final CRLF seen.
    FinalLf,
    Done,
    Failed(ChunkError),
}

/// State machine over a chunked body. Feeding the same bytes in any split gives the same result.
#[derive(Debug, Clone, Default)]
pub struct ChunkedTracker {
    state: State,
    /// Size of the current chunk while its line is read; bytes left while in `Data`.
    size: u64,
    /// Hex digits seen in the current size line (at least one is required).
    digits: u32,
    /// Bytes of the current size line so far.
    line_len: usize,
    /// Bytes of the trailer section so far.
    trailer_len: usize,
    /// Chunk data bytes seen so far: the body's decoded length (what `request_body` limits).
    data_len: u64,
}

impl ChunkedTracker {
    pub fn new() -> Self {
        Self::default()
    }

    /// The chunk data seen so far, framing excluded.
    pub fn data_len(&self) -> u64 {
        self.data_len
    }

    /// Whether the whole body, trailers included, has been seen.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Advance over `input`. Stops at the end of the body (`done`), leaving later bytes
    /// (a pipelined request) unconsumed. After an error every later call returns it again.
    pub fn advance(&mut self, input: &[u8]) -> Result<ChunkProgress, ChunkError> {
        self.advance_with(input, |_| {})
    }

    /// [`advance`](Self::advance), handing each run of chunk data in `input` to `data` (the
    /// decoded body, for a consumer that must see it without the framing, such as `encode`).
    pub fn advance_with(
        &mut self,
        input: &[u8],
        mut data: impl FnMut(&[u8]),
    ) -> Result<ChunkProgress, ChunkError> {
        let mut i = 0;
        while i < input.len() {
            match self.state {
                State::Data => {
                    // The only bulk state: skip data without looking at it.
                    let available = (input.len() - i) as u64;
                    let take = self.size.min(available);
                    data(&input[i..i + take as usize]);
                    i += take as usize;
                    self.size -= take;
                    self.data_len += take;
                    if self.size == 0 {
                        self.state = State::DataCr;
                    }
                }
                State::Done => break,
                State::Failed(err) => return Err(err),
                _ => {
                    let byte = input[i];
                    i += 1;
                    if let Err(err) = self.step(byte) {
                        self.state = State::Failed(err);
                        return Err(err);
                    }
                }
            }
        }
        match self.state {
            State::Failed(err) => Err(err),
            state => Ok(ChunkProgress { consumed: i, done: state == State::Done }),
        }
    }

    /// One byte of framing (everything but chunk data).
    fn step(&mut self, b: u8) -> Result<(), ChunkError> {
        match self.state {
            State::Size | State::SizeSpace | State::Extension => {
                self.line_len += 1;
                if self.line_len > limits::MAX_CHUNK_LINE_BYTES {
                    return Err(ChunkError::TooLong);
                }
            }
            State::TrailerStart | State::TrailerName | State::TrailerValue | State::TrailerLf => {
                self.trailer_len += 1;
                if self.trailer_len > limits::MAX_TRAILER_BYTES {
                    return Err(ChunkError::TooLong);
                }
            }
            _ => {}
        }
        self.state = match (self.state, b) {
            (State::Size, _) if b.is_ascii_hexdigit() => {
                let digit = u64::from(hex_digit(b));
                self.size = self
                    .size
                    .checked_mul(16)
                    .and_then(|s| s.checked_add(digit))
                    .ok_or(ChunkError::BadSize)?;
                self.digits += 1;
                State::Size
            }
            (State::Size, _) if self.digits == 0 => return Err(ChunkError::BadSize),
            (State::Size | State::SizeSpace, b' ' | b'\t') => State::SizeSpace,
            (State::Size | State::SizeSpace, b';') => State::Extension,
            (State::Size | State::SizeSpace | State::Extension, b'\r') => State::SizeLf,
            (State::Size | State::SizeSpace, _) => return Err(ChunkError::BadSize),
            (State::Extension, _) if is_field_text(b) => State::Extension,
            (State::Extension, _) => return Err(ChunkError::BadSize),
            (State::SizeLf, b'\n') => {
                self.line_len = 0;
                self.digits = 0;
                if self.size == 0 {
                    State::TrailerStart
                } else {
                    State::Data
                }
            }
            (State::SizeLf, _) => return Err(ChunkError::BadSize),
            (State::DataCr, b'\r') => State::DataLf,
            (State::DataLf, b'\n') => State::Size,
            (State::DataCr | State::DataLf, _) => return Err(ChunkError::MissingCrlf),
            (State::TrailerStart, b'\r') => State::FinalLf,
            (State::TrailerStart | State::TrailerName, _) if is_tchar(b) => State::TrailerName,
            (State::TrailerName, b':') => State::TrailerValue,
            (State::TrailerStart | State::TrailerName, _) => return Err(ChunkError::BadTrailer),
            (State::TrailerValue, b'\r') => State::TrailerLf,
            (State::TrailerValue, _) if is_field_text(b) => State::TrailerValue,
            (State::TrailerValue, _) => return Err(ChunkError::BadTrailer),
            (State::TrailerLf, b'\n') => State::TrailerStart,
            (State::TrailerLf, _) => return Err(ChunkError::BadTrailer),
            (State::FinalLf, b'\n') => State::Done,
            (State::FinalLf, _) => return Err(ChunkError::MissingCrlf),
            // `advance` never steps in these states.
            (State::Data | State::Done | State::Failed(_), _) => self.state,
        };
        Ok(())
    }
}

fn hex_digit(b: u8) -> u8 {
    match b {
        b'0'..=b'9' => b - b'0',
        b'a'..=b'f' => b - b'a' + 10,
        _ => b - b'A' + 10,
    }
}

/// HTAB, SP, VCHAR, obs-text: what may appear in a field value or a chunk extension.
fn is_field_text(b: u8) -> bool {
    b == b'\t' || (b' '..=b'~').contains(&b) || b >= 0x80
}

/// RFC 9110 §5.6.2 token characters.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Feed `input` in pieces of the given sizes (cycled), the way reads would deliver it.
    fn feed_split(input: &[u8], sizes: &[usize]) -> Result<(usize, bool), ChunkError> {
        let mut tracker = ChunkedTracker::new();
        let mut offset = 0;
        let mut k = 0;
        loop {
            let size = sizes.get(k % sizes.len().max(1)).copied().unwrap_or(input.len()).max(1);
            k += 1;
            let piece = &input[offset..(offset + size).min(input.len())];
            let progress = tracker.advance(piece)?;
            if progress.done {
                return Ok((offset + progress.consumed, true));
            }
            assert_eq!(progress.consumed, piece.len(), "not done, so everything is body");
            offset += piece.len();
            if offset >= input.len() {
                return Ok((offset, false));
            }
        }
    }

    fn whole(input: &[u8]) -> Result<(usize, bool), ChunkError> {
        feed_split(input, &[input.len()])
    }

    #[test]
    fn valid_bodies_end_exactly() {
        let cases: &[&[u8]] = &[
            b"0\r\n\r\n",
            b"5\r\nhello\r\n0\r\n\r\n",
            b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
            b"A\r\n0123456789\r\n0\r\n\r\n",
            b"a\r\n0123456789\r\n0\r\n\r\n",
            b"0005\r\nhello\r\n000\r\n\r\n",
            b"5;name=value;flag;q=\"a b;c\"\r\nhello\r\n0;last\r\n\r\n",
            b"5 \r\nhello\r\n0\t \r\n\r\n",
            b"5 ;x=y\r\nhello\r\n0\r\n\r\n",
            b"5\r\n\r\n\r\n\r\r\n0\r\n\r\n",
            b"0\r\nX-Checksum: abc\r\nOther:\r\nThird: a\tb \xff\r\n\r\n",
        ];
        for body in cases {
            let mut input = body.to_vec();
            input.extend_from_slice(b"GET /next HTTP/1.1\r\n");
            assert_eq!(
                whole(&input),
                Ok((body.len(), true)),
                "{:?}",
                String::from_utf8_lossy(body)
            );
            assert_eq!(feed_split(&input, &[1]), Ok((body.len(), true)));
        }
    }

    #[test]
    fn incomplete_bodies_consume_everything_and_are_not_done() {
        let body = b"5;x\r\nhello\r\n0\r\nT: v\r\n\r\n";
        for cut in 0..body.len() {
            assert_eq!(whole(&body[..cut]), Ok((cut, false)), "cut at {cut}");
        }
    }

    #[test]
    fn largest_chunk_size_is_accepted() {
        let mut tracker = ChunkedTracker::new();
        let progress = tracker.advance(b"ffffffffffffffff\r\nabc").unwrap();
        assert_eq!(progress, ChunkProgress { consumed: 21, done: false });
        assert_eq!(tracker.size, u64::MAX - 3);
    }

    #[test]
    fn rejections_table() {
        use ChunkError::*;
        let long_ext = [b"1;".as_slice(), &[b'x'; limits::MAX_CHUNK_LINE_BYTES], b"\r\n"].concat();
        let long_trailer =
            [b"0\r\nX: ".as_slice(), &[b'v'; limits::MAX_TRAILER_BYTES], b"\r\n\r\n"].concat();
        let cases: &[(&[u8], ChunkError)] = &[
            (b"\r\n", BadSize),
            (b";x\r\n", BadSize),
            (b" 5\r\n", BadSize),
            (b"g\r\n", BadSize),
            (b"-5\r\n", BadSize),
            (b"+5\r\n", BadSize),
            (b"0x5\r\n", BadSize),
            (b"5 5\r\n", BadSize),
            (b"5\n", BadSize),
            (b"5\r\r\n", BadSize),
            (b"5\rx", BadSize),
            (b"5;a\nb\r\n", BadSize),
            (b"5;a\0\r\n", BadSize),
            (b"10000000000000000\r\n", BadSize),
            (b"5\r\nhelloX\r\n", MissingCrlf),
            (b"5\r\nhello\n0\r\n\r\n", MissingCrlf),
            (b"5\r\nhello\rX", MissingCrlf),
            (b"3\r\nhello\r\n", MissingCrlf),
            (b"0\r\n\rX", MissingCrlf),
            (b"0\r\nX: y\n\r\n", BadTrailer),
            (b"0\r\nX: y\r\n folded\r\n\r\n", BadTrailer),
            (b"0\r\n\n", BadTrailer),
            (b"0\r\nNo colon\r\n\r\n", BadTrailer),
            (b"0\r\n: v\r\n\r\n", BadTrailer),
            (b"0\r\nX : v\r\n\r\n", BadTrailer),
            (b"0\r\nX: a\0b\r\n\r\n", BadTrailer),
            (b"0\r\nX: a\rb\r\n\r\n", BadTrailer),
            (&long_ext, TooLong),
            (&long_trailer, TooLong),
        ];
        for (input, want) in cases {
            assert_eq!(whole(input), Err(*want), "{:?}", String::from_utf8_lossy(input));
            assert_eq!(feed_split(input, &[1]), Err(*want));
        }
    }

    #[test]
    fn errors_and_completion_are_sticky() {
        let mut tracker = ChunkedTracker::new();
        assert_eq!(tracker.advance(b"z"), Err(ChunkError::BadSize));
        assert_eq!(tracker.advance(b"0\r\n\r\n"), Err(ChunkError::BadSize));
        assert_eq!(tracker.advance(b""), Err(ChunkError::BadSize));

        let mut tracker = ChunkedTracker::new();
        assert_eq!(
            tracker.advance(b"0\r\n\r\nrest"),
            Ok(ChunkProgress { consumed: 5, done: true })
        );
        assert!(tracker.is_done());
        assert_eq!(tracker.advance(b"more"), Ok(ChunkProgress { consumed: 0, done: true }));
    }

    /// A valid chunked body built from arbitrary chunks, extensions and trailers.
    fn valid_body() -> impl Strategy<Value = Vec<u8>> {
        let chunk = (
            prop::collection::vec(any::<u8>(), 1..40),
            prop::option::of("[a-z]{1,5}(=[a-z0-9]{1,5})?"),
            any::<bool>(),
        );
        let trailer = ("[A-Za-z-]{1,8}", "[ -~]{0,12}");
        (prop::collection::vec(chunk, 0..6), prop::collection::vec(trailer, 0..3)).prop_map(
            |(chunks, trailers)| {
                let mut out = Vec::new();
                for (data, ext, upper) in chunks {
                    let size = if upper {
                        format!("{:X}", data.len())
                    } else {
                        format!("{:x}", data.len())
                    };
                    out.extend_from_slice(size.as_bytes());
                    if let Some(ext) = ext {
                        out.push(b';');
                        out.extend_from_slice(ext.as_bytes());
                    }
                    out.extend_from_slice(b"\r\n");
                    out.extend_from_slice(&data);
                    out.extend_from_slice(b"\r\n");
                }
                out.extend_from_slice(b"0\r\n");
                for (name, value) in trailers {
                    out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
                }
                out.extend_from_slice(b"\r\n");
                out
            },
        )
    }

    /// A valid body with a few bytes overwritten, inserted or removed: mostly invalid input.
    fn mutated_body() -> impl Strategy<Value = Vec<u8>> {
        (
            valid_body(),
            prop::collection::vec(
                (
                    any::<prop::sample::Index>(),
                    0u8..3,
                    prop::sample::select(b"\r\n0aF; :\t\0x".to_vec()),
                ),
                1..4,
            ),
        )
            .prop_map(|(mut body, edits)| {
                for (at, kind, byte) in edits {
                    let i = at.index(body.len() + 1);
                    match kind {
                        0 if i < body.len() => body[i] = byte,
                        1 => body.insert(i, byte),
                        _ if i < body.len() => {
                            body.remove(i);
                        }
                        _ => body.push(byte),
                    }
                }
                body
            })
    }

    #[test]
    fn the_data_runs_are_the_decoded_body_in_any_split() {
        let body = b"5;ext=1\r\nhello\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nT: v\r\n\r\nNEXT";
        for size in [1, 2, 3, 7, body.len()] {
            let mut tracker = ChunkedTracker::new();
            let mut decoded = Vec::new();
            let mut consumed = 0;
            for piece in body.chunks(size) {
                let progress =
                    tracker.advance_with(piece, |d| decoded.extend_from_slice(d)).unwrap();
                consumed += progress.consumed;
                if progress.done {
                    break;
                }
            }
            assert_eq!(decoded, b"helloabcdefghijklmnopqrstuvwxyz", "pieces of {size}");
            assert_eq!(consumed, body.len() - b"NEXT".len());
            assert_eq!(tracker.data_len(), 31);
        }
    }

    proptest! {
        #[test]
        fn valid_bodies_end_at_their_last_byte_in_every_split(
            body in valid_body(),
            tail in prop::collection::vec(any::<u8>(), 0..20),
            sizes in prop::collection::vec(1usize..16, 1..8),
        ) {
            let mut input = body.clone();
            input.extend_from_slice(&tail);
            prop_assert_eq!(whole(&input), Ok((body.len(), true)));
            prop_assert_eq!(feed_split(&input, &sizes), Ok((body.len(), true)));
        }

        #[test]
        fn every_split_gives_the_same_result(
            input in prop_oneof![mutated_body(), prop::collection::vec(any::<u8>(), 0..64)],
            sizes in prop::collection::vec(1usize..16, 1..8),
        ) {
            let expected = whole(&input);
            prop_assert_eq!(feed_split(&input, &sizes), expected);
            prop_assert_eq!(feed_split(&input, &[1]), expected);
        }
    }

    #[test]
    fn framed_chunks_read_back_as_the_same_bytes_and_an_empty_piece_adds_nothing() {
        let mut body = Vec::new();
        frame_chunk(b"hello", &mut body);
        frame_chunk(b"", &mut body);
        frame_chunk(&[b'x'; 300], &mut body);
        body.extend_from_slice(LAST_CHUNK);
        assert!(body.starts_with(b"5\r\nhello\r\n12c\r\nxxx"));
        let mut tracker = ChunkedTracker::new();
        let mut data = Vec::new();
        let progress = tracker.advance_with(&body, |d| data.extend_from_slice(d)).unwrap();
        assert_eq!(progress, ChunkProgress { consumed: body.len(), done: true });
        assert_eq!(data.len(), 305);
        assert!(data.starts_with(b"hello") && data[5..].iter().all(|&b| b == b'x'));
    }
}
