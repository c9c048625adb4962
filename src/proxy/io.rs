//! Moving bytes over [`Stream`]s: the per-worker scratch buffer, reads that append, writes
//! that finish, and the body pump that forwards a framed body without buffering it.
//!
//! The scratch buffer is why an idle connection costs no buffer memory: every read lands in
//! the worker's one scratch buffer and is written onward before the next `.await`. Only when
//! the destination pushes back (its socket buffer is full) are the unwritten bytes copied into
//! an owned `Vec` that lives until they are written.
//!
//! Large Content-Length bodies between two plaintext sockets skip user space: they go through
//! a pipe with splice(2) (see [`limits::SPLICE_BODY_MIN`]).

use std::cell::RefCell;
use std::io;
use std::os::fd::BorrowedFd;

use crate::config::limits;
use crate::http::chunked::{ChunkError, ChunkedTracker};
use crate::http::request::Request;
use crate::net::deadline::Deadlines;
use crate::net::stream::Stream;
use crate::net::sys::{self, Pipe};

thread_local! {
    static SCRATCH: RefCell<Box<[u8]>> = RefCell::new(vec![0u8; limits::SCRATCH_BYTES].into_boxed_slice());
}

/// Run `f` with the worker's scratch buffer. `f` must not await (it cannot: it is a plain
/// closure), which is what makes sharing one buffer between all connections sound.
pub fn with_scratch<T>(f: impl FnOnce(&mut [u8]) -> T) -> T {
    SCRATCH.with(|s| f(&mut s.borrow_mut()))
}

fn would_block(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
}

/// Where [`read_append`] puts what it read: a plain buffer, or a request's unread bytes.
pub trait AppendBuf {
    fn append_read(&mut self, bytes: &[u8]);
}

impl AppendBuf for Vec<u8> {
    fn append_read(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

impl AppendBuf for Request {
    fn append_read(&mut self, bytes: &[u8]) {
        self.append_unread(bytes);
    }
}

/// Read what is available into the end of `dst`, waiting until at least one byte or EOF.
/// Returns the number of bytes appended (0 = EOF). Cancel-safe: dropping it loses nothing.
pub async fn read_append<S: Stream>(
    src: &S,
    dst: &mut impl AppendBuf,
    max: usize,
) -> io::Result<usize> {
    loop {
        let got = with_scratch(|scratch| {
            let limit = max.min(scratch.len()).max(1);
            match src.try_read(&mut scratch[..limit]) {
                Ok(n) => {
                    dst.append_read(&scratch[..n]);
                    Ok(Some(n))
                }
                Err(e) if would_block(&e) => Ok(None),
                Err(e) => Err(e),
            }
        })?;
        match got {
            Some(n) => return Ok(n),
            None => src.readable().await?,
        }
    }
}

/// Write all of `buf`, waiting for writability as needed, then flush (TLS records).
pub async fn write_all<S: Stream>(dst: &S, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        match dst.try_write(buf) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => buf = &buf[n..],
            Err(e) if would_block(&e) => dst.writable().await?,
            Err(e) => return Err(e),
        }
    }
    flush(dst).await
}

/// End the write direction cleanly: TLS sends close_notify (so the peer can tell a complete
/// close-delimited body from a truncated one), then TCP sends FIN. Bounded by
/// [`limits::CLOSE_WRITE_TIMEOUT`]: a peer that does not read cannot hold the connection open.
pub async fn close_write<S: Stream>(dst: &S, deadlines: &Deadlines) {
    let closing = async {
        loop {
            match dst.shutdown_write() {
                Err(e) if would_block(&e) => {
                    if dst.writable().await.is_err() {
                        return;
                    }
                }
                _ => return,
            }
        }
    };
    let _ = deadlines.within(limits::CLOSE_WRITE_TIMEOUT, closing).await;
}

/// Close a connection on which the client may still be sending (a request body we did not
/// read, requests pipelined behind an error): half-close, then read and discard until the
/// client closes its side, for at most [`limits::LINGERING_CLOSE_TIME`]. Closing at once
/// would leave unread bytes in the socket,
/// and the kernel then resets the connection and drops whatever of our answer it had not yet
/// delivered (RFC 9112 §9.6).
pub async fn lingering_close<S: Stream>(client: &S, deadlines: &Deadlines) {
    close_write(client, deadlines).await;
    let discard = async {
        loop {
            match with_scratch(|scratch| client.try_read(scratch)) {
                Ok(0) => return,
                Ok(_) => {}
                Err(e) if would_block(&e) => {
                    if client.readable().await.is_err() {
                        return;
                    }
                }
                Err(_) => return,
            }
        }
    };
    let _ = deadlines.within(limits::LINGERING_CLOSE_TIME, discard).await;
}

/// Push out anything the stream buffered internally.
pub async fn flush<S: Stream>(dst: &S) -> io::Result<()> {
    while !dst.try_flush()? {
        dst.writable().await?;
    }
    Ok(())
}

/// How a body is delimited, as the pump tracks it.
#[derive(Debug)]
pub enum BodyFraming {
    /// Exactly this many bytes remain.
    Length(u64),
    Chunked(ChunkedTracker),
    /// Until the source closes (close-delimited responses).
    UntilEof,
}

impl BodyFraming {
    /// How many bytes of `input` belong to the body, and whether the body ends within them.
    pub(crate) fn take(&mut self, input: &[u8]) -> Result<(usize, bool), ChunkError> {
        match self {
            BodyFraming::Length(remaining) => {
                let n = (*remaining).min(input.len() as u64) as usize;
                *remaining -= n as u64;
                Ok((n, *remaining == 0))
            }
            BodyFraming::Chunked(tracker) => {
                let progress = tracker.advance(input)?;
                Ok((progress.consumed, progress.done))
            }
            BodyFraming::UntilEof => Ok((input.len(), false)),
        }
    }

    pub fn is_done_at_start(&self) -> bool {
        matches!(self, BodyFraming::Length(0))
    }
}

/// Why a body could not be forwarded to its end.
#[derive(Debug, thiserror::Error)]
pub enum PumpError {
    #[error("source closed before the end of the body")]
    SourceClosed,
    #[error("source: {0}")]
    Source(io::Error),
    #[error("invalid chunked framing: {0}")]
    Framing(ChunkError),
    #[error("destination: {0}")]
    Destination(io::Error),
}

enum Step {
    /// Body complete; the rest of the scratch read (if any) was put back in `prefix`.
    Done,
    /// Some bytes moved, keep going.
    Moved,
    /// Nothing to read right now.
    WouldBlock,
    /// These bytes must be written before reading more.
    Pending(Vec<u8>, bool),
}

/// Forward one framed body from `src` to `dst`. Bytes already read past a head are in
/// `prefix`; they are consumed first. Bytes read past the end of the body (a pipelined next
/// request, or trailing garbage) are left in `prefix` for the caller. Returns the body bytes
/// moved.
pub async fn pump_body<R: Stream, W: Stream>(
    src: &R,
    dst: &W,
    prefix: &mut Vec<u8>,
    framing: &mut BodyFraming,
) -> Result<u64, PumpError> {
    let mut moved = 0u64;
    if framing.is_done_at_start() {
        return Ok(0);
    }
    if !prefix.is_empty() {
        let (n, done) = framing.take(prefix).map_err(PumpError::Framing)?;
        write_all(dst, &prefix[..n]).await.map_err(PumpError::Destination)?;
        prefix.drain(..n);
        moved += n as u64;
        if done {
            return Ok(moved);
        }
    }
    if let (BodyFraming::Length(remaining), Some(src_fd), Some(dst_fd)) =
        (&mut *framing, src.plaintext_fd(), dst.plaintext_fd())
    {
        if *remaining >= limits::SPLICE_BODY_MIN {
            if let Some(spliced) = splice_length(src, src_fd, dst, dst_fd, remaining).await? {
                return Ok(moved + spliced);
            }
        }
    }
    loop {
        let step = with_scratch(|scratch| -> Result<Step, PumpError> {
            let n = match src.try_read(scratch) {
                Ok(0) => {
                    return match framing {
                        BodyFraming::UntilEof => Ok(Step::Done),
                        _ => Err(PumpError::SourceClosed),
                    }
                }
                Ok(n) => n,
                Err(e) if would_block(&e) => return Ok(Step::WouldBlock),
                Err(e) => return Err(PumpError::Source(e)),
            };
            let (body, done) = framing.take(&scratch[..n]).map_err(PumpError::Framing)?;
            prefix.extend_from_slice(&scratch[body..n]);
            moved += body as u64;
            let written = match dst.try_write(&scratch[..body]) {
                Ok(w) => w,
                Err(e) if would_block(&e) => 0,
                Err(e) => return Err(PumpError::Destination(e)),
            };
            if written < body {
                return Ok(Step::Pending(scratch[written..body].to_vec(), done));
            }
            Ok(if done { Step::Done } else { Step::Moved })
        })?;
        match step {
            Step::Done => {
                flush(dst).await.map_err(PumpError::Destination)?;
                return Ok(moved);
            }
            Step::Moved => {
                flush(dst).await.map_err(PumpError::Destination)?;
            }
            Step::WouldBlock => src.readable().await.map_err(PumpError::Source)?,
            Step::Pending(rest, done) => {
                write_all(dst, &rest).await.map_err(PumpError::Destination)?;
                if done {
                    return Ok(moved);
                }
            }
        }
    }
}

/// Move exactly `*remaining` bytes from `src` to `dst` through a pipe, never reading past the
/// body (the upstream connection may be reused). Both ends work at once: while the client's
/// socket is full the pipe keeps filling from the upstream, and the other way round, so neither
/// side's window drains while the proxy waits on the other. `Ok(None)` when splice cannot be
/// used here (no pipe available, or the kernel refuses these descriptors before any byte
/// moved): the caller copies instead.
async fn splice_length<R: Stream, W: Stream>(
    src: &R,
    src_fd: BorrowedFd<'_>,
    dst: &W,
    dst_fd: BorrowedFd<'_>,
    remaining: &mut u64,
) -> Result<Option<u64>, PumpError> {
    let Ok(pipe) = Pipe::new() else {
        return Ok(None);
    };
    let capacity = pipe.grow(limits::BODY_PIPE_BYTES).max(4096);
    let mut moved = 0u64;
    let mut in_pipe = 0usize;
    // The pipe holds fewer bytes than `capacity` but has run out of slots: each small segment
    // from the upstream takes a page-sized slot of its own. Until the destination takes some,
    // splicing in says EAGAIN while the source stays readable, so waiting for the source would
    // return at once, again and again (a busy loop of one core for one slow reader).
    let mut pipe_full = false;
    while *remaining > 0 || in_pipe > 0 {
        let mut progressed = false;
        if *remaining > 0 && in_pipe < capacity && !pipe_full {
            let room = (capacity - in_pipe) as u64;
            match sys::splice(src_fd, pipe.write_end(), (*remaining).min(room) as usize) {
                Ok(0) => return Err(PumpError::SourceClosed),
                Ok(n) => {
                    in_pipe += n;
                    *remaining -= n as u64;
                    progressed = true;
                }
                // EAGAIN means the source is empty or the pipe is full: only the source's own
                // queue tells which (one ioctl, on this path only).
                Err(e) if would_block(&e) => {
                    pipe_full = in_pipe > 0 && sys::bytes_readable(src_fd).is_ok_and(|n| n > 0);
                }
                Err(e) if moved == 0 && in_pipe == 0 && e.raw_os_error() == Some(libc::EINVAL) => {
                    return Ok(None)
                }
                Err(e) => return Err(PumpError::Source(e)),
            }
        }
        if in_pipe > 0 {
            match sys::splice(pipe.read_end(), dst_fd, in_pipe) {
                Ok(n) => {
                    in_pipe -= n;
                    moved += n as u64;
                    progressed = true;
                    pipe_full = false;
                }
                Err(e) if would_block(&e) => {}
                Err(e) => return Err(PumpError::Destination(e)),
            }
        }
        if progressed {
            continue;
        }
        let wait_src = *remaining > 0 && in_pipe < capacity && !pipe_full;
        let wait_dst = in_pipe > 0;
        match (wait_src, wait_dst) {
            (true, true) => {
                let readable = std::pin::pin!(src.readable());
                let writable = std::pin::pin!(dst.writable());
                monoio::select! {
                    r = readable => r.map_err(PumpError::Source)?,
                    w = writable => w.map_err(PumpError::Destination)?,
                }
            }
            (true, false) => src.readable().await.map_err(PumpError::Source)?,
            (false, _) => dst.writable().await.map_err(PumpError::Destination)?,
        }
    }
    Ok(Some(moved))
}
