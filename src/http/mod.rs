//! HTTP/1.1 wire format, as pure functions over byte buffers: request/response heads, body
//! framing, header rewriting, synthesized responses. No I/O lives here, so every rule is
//! testable from byte tables. OWNER: http helper.

pub mod chunked;
pub mod head;
pub mod path;
pub mod response;
pub mod rewrite;

/// A byte range into the buffer a head was parsed from. Heads are at most
/// `max_header_bytes`, so `u32` offsets are plenty and keep `HeaderField` small.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    pub start: u32,
    pub end: u32,
}

impl Span {
    pub fn get<'b>(&self, buf: &'b [u8]) -> &'b [u8] {
        &buf[self.start as usize..self.end as usize]
    }
    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }
}

/// One header field of a parsed head, as spans into the head's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderField {
    pub name: Span,
    pub value: Span,
}
