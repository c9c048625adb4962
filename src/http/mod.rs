//! HTTP/1.1 wire format, as pure functions over byte buffers: request/response heads, body
//! framing, header rewriting, synthesized responses. No I/O lives here, so every rule is
//! testable from byte tables.
//!
//! What this module does not own: reading and writing sockets, timeouts, routing decisions and
//! the mapping of errors to answers (the connection driver does those).

pub mod chunked;
pub mod client_ip;
pub mod encode;
pub mod head;
pub mod header_ops;
pub mod path;
pub mod request;
pub mod response;
pub mod rewrite;
pub mod template;
pub mod upgrade;

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
    pub fn len(&self) -> usize {
        (self.end - self.start) as usize
    }

    /// The span of `part`, which must be a sub-slice of `buf` (as httparse hands them out).
    fn within(buf: &[u8], part: &[u8]) -> Span {
        let start = (part.as_ptr() as usize).wrapping_sub(buf.as_ptr() as usize);
        debug_assert!(start + part.len() <= buf.len(), "span outside its buffer");
        Span { start: start as u32, end: (start + part.len()) as u32 }
    }
}

/// One header field of a parsed head, as spans into the head's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderField {
    pub name: Span,
    pub value: Span,
}

/// Values of every field named `name` (ASCII case-insensitive), in order.
pub fn field_values<'a, 'b: 'a>(
    headers: &'a [HeaderField],
    buf: &'b [u8],
    name: &'a str,
) -> impl Iterator<Item = &'b [u8]> + 'a {
    headers
        .iter()
        .filter(move |f| f.name.get(buf).eq_ignore_ascii_case(name.as_bytes()))
        .map(move |f| f.value.get(buf))
}

/// The elements of a comma-separated field value (RFC 9110 §5.6.1), trimmed of optional
/// whitespace; empty elements are skipped as the RFC requires of recipients.
pub(crate) fn list_elements(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value.split(|&b| b == b',').map(trim_ows).filter(|e| !e.is_empty())
}

/// Strip leading and trailing SP / HTAB.
pub(crate) fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}
