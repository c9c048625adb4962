//! The field values whose meaning both directions share: Content-Length (RFC 9110 §8.6),
//! Transfer-Encoding (RFC 9112 §6.1) and the Connection options (RFC 9110 §7.6.1), each
//! accumulated over every field of that name in order. Owns only their reading; what a
//! combination means for framing is the request and response parsers' call.

use crate::http::{list_elements, trim_ows};

/// Content-Length values seen so far (RFC 9110 §8.6).
#[derive(Debug, Default)]
pub(super) struct LengthState {
    pub(super) value: Option<u64>,
}

impl LengthState {
    /// Merge one field value; `Err` on a non-numeric, overflowing or conflicting value.
    pub(super) fn add(&mut self, value: &[u8]) -> Result<(), ()> {
        let mut any = false;
        for element in value.split(|&b| b == b',').map(trim_ows) {
            let n = parse_decimal(element)?;
            if self.value.is_some_and(|seen| seen != n) {
                return Err(());
            }
            self.value = Some(n);
            any = true;
        }
        if any {
            Ok(())
        } else {
            Err(())
        }
    }
}

/// `1*DIGIT` into a u64: no sign, no spaces, no overflow.
fn parse_decimal(s: &[u8]) -> Result<u64, ()> {
    if s.is_empty() {
        return Err(());
    }
    s.iter().try_fold(0u64, |n, &b| {
        if !b.is_ascii_digit() {
            return Err(());
        }
        n.checked_mul(10).and_then(|n| n.checked_add(u64::from(b - b'0'))).ok_or(())
    })
}

/// Transfer codings seen so far, across every Transfer-Encoding field in order.
#[derive(Debug, Default)]
pub(super) struct CodingState {
    pub(super) present: bool,
    last_is_chunked: bool,
    chunked_count: u32,
    others: u32,
}

impl CodingState {
    pub(super) fn add(&mut self, value: &[u8]) {
        self.present = true;
        for element in list_elements(value) {
            // Parameters (`;q=...`) are never valid on chunked, so such an element counts as
            // some other coding.
            if element.eq_ignore_ascii_case(b"chunked") {
                self.chunked_count += 1;
                self.last_is_chunked = true;
            } else {
                self.others += 1;
                self.last_is_chunked = false;
            }
        }
    }

    /// Shared by requests and responses: `Ok(true)` for a body framed by chunked.
    pub(super) fn check(&self) -> Result<bool, CodingError> {
        if !self.present {
            return Ok(false);
        }
        if !self.last_is_chunked {
            return Err(CodingError::NotChunked);
        }
        // RFC 9112 §7: a sender MUST NOT apply chunked more than once.
        if self.chunked_count > 1 {
            return Err(CodingError::ChunkedTwice);
        }
        if self.others > 0 {
            return Err(CodingError::Unsupported);
        }
        Ok(true)
    }
}

pub(super) enum CodingError {
    NotChunked,
    ChunkedTwice,
    Unsupported,
}

/// The connection options (RFC 9110 §7.6.1) we act on.
#[derive(Debug, Default)]
pub(super) struct ConnectionTokens {
    pub(super) close: bool,
    pub(super) keep_alive: bool,
    pub(super) upgrade: bool,
}

impl ConnectionTokens {
    pub(super) fn add(&mut self, value: &[u8]) {
        for token in list_elements(value) {
            if token.eq_ignore_ascii_case(b"close") {
                self.close = true;
            } else if token.eq_ignore_ascii_case(b"keep-alive") {
                self.keep_alive = true;
            } else if token.eq_ignore_ascii_case(b"upgrade") {
                self.upgrade = true;
            }
        }
    }
}
