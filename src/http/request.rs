//! A request while the proxy serves it: the validated head together with the client's bytes it
//! was parsed from, so every span of the head reads the bytes it was parsed from for as long as
//! the request lives — when its head is forwarded, when `header_down` renders `{uri}` into the
//! response, when the access log writes its line.
//!
//! The bytes are the connection's read buffer, moved in (not copied) once the head is complete:
//! the head at the front, then whatever the client sent after it (the start of the body, a
//! pipelined request). Body bytes are consumed from just behind the head as they are forwarded,
//! and bytes read later are appended; when the request is done, [`Request::into_unread`] hands
//! what is left back to the connection for the next request.
//!
//! Owns that layout. Does not own reading from sockets or what the bytes mean (`head`).

use super::head::RequestHead;

/// A validated request head and the bytes it was parsed from (see the module doc).
#[derive(Debug)]
pub struct Request {
    head: RequestHead,
    /// The head's bytes, then the unread bytes after it.
    buf: Vec<u8>,
}

impl Request {
    /// `head` was parsed from the start of `buf`.
    pub fn new(head: RequestHead, buf: Vec<u8>) -> Request {
        debug_assert!(head.head_len <= buf.len(), "a head longer than its buffer");
        Request { head, buf }
    }

    pub fn head(&self) -> &RequestHead {
        &self.head
    }

    /// The bytes of the head, which its spans index.
    pub fn head_bytes(&self) -> &[u8] {
        &self.buf[..self.head.head_len]
    }

    /// The method as received.
    pub fn method_token(&self) -> &[u8] {
        self.head.method_span.get(self.head_bytes())
    }

    /// The origin-form target (see [`RequestHead::target`]).
    pub fn target(&self) -> &[u8] {
        self.head.target.get(self.head_bytes())
    }

    /// The path part of the target.
    pub fn path(&self) -> &[u8] {
        self.head.path.get(self.head_bytes())
    }

    /// The query without its `?` (empty when there is none).
    pub fn query(&self) -> &[u8] {
        self.head.query(self.head_bytes())
    }

    /// Every value of the field `name` (any case), in order.
    pub fn values<'a, 's: 'a>(&'s self, name: &'a str) -> impl Iterator<Item = &'s [u8]> + 'a {
        self.head.values(self.head_bytes(), name)
    }

    /// Bytes the client sent after the head that nothing has consumed yet: body bytes first,
    /// then possibly the next request.
    pub fn unread(&self) -> &[u8] {
        &self.buf[self.head.head_len..]
    }

    /// The first `n` unread bytes were forwarded.
    pub fn consume(&mut self, n: usize) {
        let start = self.head.head_len;
        self.buf.drain(start..start + n);
    }

    /// Bytes read from the client after the unread ones.
    pub fn append_unread(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The unread bytes, for whatever the connection does next (the next request's head, or
    /// the client side of a relay). The head is dropped; the allocation is kept.
    pub fn into_unread(self) -> Vec<u8> {
        let mut buf = self.buf;
        buf.drain(..self.head.head_len);
        buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::head::parse_request;

    fn request(raw: &[u8]) -> Request {
        Request::new(parse_request(raw, 4096).unwrap().unwrap(), raw.to_vec())
    }

    #[test]
    fn the_head_reads_its_own_bytes_while_the_body_is_consumed_behind_it() {
        let mut request =
            request(b"POST /a?b=1 HTTP/1.1\r\nHost: h\r\nContent-Length: 6\r\n\r\nabcGET /n");
        assert_eq!(request.unread(), b"abcGET /n");
        request.consume(3);
        request.append_unread(b"def HTTP/1.1\r\n\r\n");
        assert_eq!(request.unread(), b"GET /ndef HTTP/1.1\r\n\r\n");
        assert_eq!(request.method_token(), b"POST");
        assert_eq!(request.target(), b"/a?b=1");
        assert_eq!(request.path(), b"/a");
        assert_eq!(request.query(), b"b=1");
        assert_eq!(request.values("content-length").collect::<Vec<_>>(), [b"6"]);
        assert_eq!(request.into_unread(), b"GET /ndef HTTP/1.1\r\n\r\n");
    }

    #[test]
    fn a_request_with_nothing_after_its_head_leaves_nothing_unread() {
        let request = request(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n");
        assert!(request.unread().is_empty());
        assert!(request.into_unread().is_empty());
    }
}
