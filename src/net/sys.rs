//! The one module that calls into libc: nonblocking read/write, shutdown and splice on file
//! descriptors owned by monoio sockets, and two clocks (process CPU time, monotonic time).
//!
//! Why raw syscalls: the data path waits for readiness through monoio (a poll op on io_uring,
//! epoll on the legacy driver) and then moves bytes with plain nonblocking syscalls. That keeps
//! reads cancel-safe (a timed-out wait loses no bytes), lets idle connections hold no buffer,
//! and lets a per-worker scratch buffer serve every connection.
//!
//! Descriptors come in as [`BorrowedFd`] (borrowed from the socket or [`Pipe`] that owns
//! them, so the kernel never sees a closed or reused descriptor) and pipes are [`OwnedFd`]s
//! that only [`Pipe::new`] can create, so nothing can close a descriptor it does not own.
//! Every `unsafe` block is a single syscall on such a descriptor, with its `// SAFETY:`.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

fn check(ret: isize) -> io::Result<usize> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret as usize)
    }
}

/// The descriptor of `socket`, borrowed for as long as `socket` is (monoio's sockets offer
/// only `AsRawFd`).
pub fn borrow<S: AsRawFd>(socket: &S) -> BorrowedFd<'_> {
    // SAFETY: `socket` owns the descriptor and closes it only when dropped, which the borrow of
    // `socket` that the returned value carries rules out while it lives.
    unsafe { BorrowedFd::borrow_raw(socket.as_raw_fd()) }
}

/// Put `fd` in nonblocking mode (monoio's io_uring accept/connect leave sockets blocking).
pub fn set_nonblocking(fd: BorrowedFd<'_>) -> io::Result<()> {
    let fd = fd.as_raw_fd();
    // SAFETY: fcntl on a borrowed, open descriptor; F_GETFL takes no pointer argument.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    if flags & libc::O_NONBLOCK != 0 {
        return Ok(());
    }
    // SAFETY: as above; F_SETFL takes an int flag argument.
    let ret = unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) };
    check(ret as isize).map(drop)
}

/// Nonblocking receive into `buf`. `Ok(0)` is end of stream; `WouldBlock` means wait.
pub fn recv(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    let fd = fd.as_raw_fd();
    loop {
        // SAFETY: `fd` is borrowed and open; `buf` is a valid writable region of `buf.len()`
        // bytes for the whole call.
        let ret = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) };
        match check(ret) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// Nonblocking send of `buf`; may write fewer bytes. `WouldBlock` means wait for writability.
pub fn send(fd: BorrowedFd<'_>, buf: &[u8]) -> io::Result<usize> {
    let fd = fd.as_raw_fd();
    loop {
        // SAFETY: `fd` is borrowed and open; `buf` is a valid readable region of `buf.len()`
        // bytes for the whole call.
        // MSG_NOSIGNAL turns a write to a reset peer into EPIPE instead of killing the process.
        let ret = unsafe {
            libc::send(fd, buf.as_ptr().cast(), buf.len(), libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL)
        };
        match check(ret) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// Half-close: no more writes on `fd` (the peer reads EOF).
pub fn shutdown_write(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: shutdown takes no pointers; `fd` is borrowed and open.
    let ret = unsafe { libc::shutdown(fd.as_raw_fd(), libc::SHUT_WR) };
    check(ret as isize).map(drop)
}

/// Bytes waiting in a socket's receive queue (`FIONREAD`).
pub fn bytes_readable(fd: BorrowedFd<'_>) -> io::Result<usize> {
    let mut n: libc::c_int = 0;
    // SAFETY: `fd` is borrowed and open; FIONREAD writes one int through the valid pointer.
    let ret = unsafe { libc::ioctl(fd.as_raw_fd(), libc::FIONREAD, &mut n) };
    check(ret as isize)?;
    Ok(usize::try_from(n).unwrap_or(0))
}

/// Stop a listening socket: a pending `accept` fails at once (EINVAL) and connections still
/// in its backlog are refused. The descriptor stays open until its owner drops it.
pub fn shutdown_listener(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: shutdown takes no pointers; `fd` is borrowed and open.
    let ret = unsafe { libc::shutdown(fd.as_raw_fd(), libc::SHUT_RDWR) };
    check(ret as isize).map(drop)
}

/// Peek whether a pooled idle connection is still usable: `Ok(true)` when nothing is readable
/// (alive and quiet); `Ok(false)` when the peer closed or sent unexpected bytes.
pub fn idle_connection_usable(fd: BorrowedFd<'_>) -> bool {
    let mut byte = [0u8; 1];
    let flags = libc::MSG_DONTWAIT | libc::MSG_PEEK;
    // SAFETY: `fd` is borrowed and open; `byte` is a valid writable 1-byte region for the
    // whole call.
    let ret = unsafe { libc::recv(fd.as_raw_fd(), byte.as_mut_ptr().cast(), 1, flags) };
    if ret < 0 {
        io::Error::last_os_error().kind() == io::ErrorKind::WouldBlock
    } else {
        false
    }
}

/// A pipe for splice(2): both ends nonblocking and close-on-exec, closed on drop.
pub struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
}

impl Pipe {
    pub fn new() -> io::Result<Pipe> {
        let mut fds = [0 as libc::c_int; 2];
        // SAFETY: `fds` is a valid array of two ints that pipe2 fills on success.
        let ret = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) };
        check(ret as isize)?;
        // SAFETY: pipe2 succeeded, so both descriptors are open and nothing else owns them.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        Ok(Pipe { read, write })
    }

    /// The end bytes are spliced out of.
    pub fn read_end(&self) -> BorrowedFd<'_> {
        self.read.as_fd()
    }

    /// The end bytes are spliced into.
    pub fn write_end(&self) -> BorrowedFd<'_> {
        self.write.as_fd()
    }

    /// Ask the kernel for a pipe of `bytes` (rounded up to a power-of-two number of pages);
    /// returns the capacity in effect, which stays the default 64 KiB if the request is refused
    /// (above `/proc/sys/fs/pipe-max-size` for an unprivileged process, or the user's pipe
    /// memory quota is spent). Pages are only taken as data arrives.
    pub fn grow(&self, bytes: usize) -> usize {
        let wanted = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
        let fd = self.write.as_raw_fd();
        // SAFETY: F_SETPIPE_SZ on a pipe descriptor this value owns; no memory is passed.
        let ret = unsafe { libc::fcntl(fd, libc::F_SETPIPE_SZ, wanted) };
        if ret > 0 {
            return ret as usize;
        }
        // SAFETY: F_GETPIPE_SZ on the same descriptor; no memory is passed.
        let current = unsafe { libc::fcntl(fd, libc::F_GETPIPE_SZ) };
        usize::try_from(current).unwrap_or(0)
    }
}

/// Move up to `len` bytes from `from` to `to` (one of them a pipe) without copying through
/// user space. Never SPLICE_F_MORE: it corks the socket, which stalls small audio frames.
pub fn splice(from: BorrowedFd<'_>, to: BorrowedFd<'_>, len: usize) -> io::Result<usize> {
    let (from, to) = (from.as_raw_fd(), to.as_raw_fd());
    loop {
        // SAFETY: both descriptors are borrowed and open; null offsets mean "use and advance
        // the file position", valid for sockets and pipes; no user memory is passed.
        let ret = unsafe {
            libc::splice(
                from,
                std::ptr::null_mut(),
                to,
                std::ptr::null_mut(),
                len,
                libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK,
            )
        };
        match check(ret) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// The open-files limit before and after raising the soft limit to the hard one, and the hard
/// limit: a proxy holds two descriptors per proxied connection, and distributions start
/// processes with a soft limit of 1024 (Go programs, Caddy among them, raise it the same way).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenFilesLimit {
    pub before: u64,
    pub now: u64,
    pub hard: u64,
}

pub fn raise_open_files_limit() -> io::Result<OpenFilesLimit> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: `limit` is a valid, writable rlimit for the whole call.
    let ret = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    check(ret as isize)?;
    let before = limit.rlim_cur;
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit { rlim_cur: limit.rlim_max, rlim_max: limit.rlim_max };
        // SAFETY: `raised` is a valid rlimit read for the whole call.
        let ret = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) };
        check(ret as isize)?;
    }
    Ok(OpenFilesLimit { before, now: limit.rlim_max, hard: limit.rlim_max })
}

/// CPU time (user and system) this process has used, all threads.
pub fn process_cpu_time() -> io::Result<std::time::Duration> {
    clock(libc::CLOCK_PROCESS_CPUTIME_ID)
}

/// `CLOCK_MONOTONIC` (what systemd compares reload notifications with; `Instant` reads the
/// same clock but hides its value).
pub fn monotonic_time() -> io::Result<std::time::Duration> {
    clock(libc::CLOCK_MONOTONIC)
}

fn clock(id: libc::clockid_t) -> io::Result<std::time::Duration> {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec for the whole call.
    let ret = unsafe { libc::clock_gettime(id, &mut ts) };
    check(ret as isize)?;
    let secs = u64::try_from(ts.tv_sec).unwrap_or(0);
    let nanos = u32::try_from(ts.tv_nsec).unwrap_or(0);
    Ok(std::time::Duration::new(secs, nanos))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::AsFd;

    fn pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let a = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (b, _) = l.accept().unwrap();
        (a, b)
    }

    #[test]
    fn recv_would_block_then_reads_what_arrived() {
        let (mut a, b) = pair();
        set_nonblocking(b.as_fd()).unwrap();
        let mut buf = [0u8; 16];
        assert_eq!(recv(b.as_fd(), &mut buf).unwrap_err().kind(), io::ErrorKind::WouldBlock);
        a.write_all(b"hello").unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert_eq!(recv(b.as_fd(), &mut buf).unwrap(), 5);
        assert_eq!(&buf[..5], b"hello");
    }

    #[test]
    fn send_and_shutdown_reach_the_peer() {
        let (mut a, b) = pair();
        assert_eq!(send(b.as_fd(), b"abc").unwrap(), 3);
        shutdown_write(b.as_fd()).unwrap();
        let mut got = Vec::new();
        a.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"abc");
    }

    #[test]
    fn splice_moves_bytes_socket_to_pipe_to_socket() {
        let (mut a, b) = pair();
        let (c, mut d) = pair();
        set_nonblocking(b.as_fd()).unwrap();
        set_nonblocking(c.as_fd()).unwrap();
        let pipe = Pipe::new().unwrap();
        assert_eq!(
            splice(b.as_fd(), pipe.write_end(), 1 << 16).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
        a.write_all(b"through the pipe").unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let n = splice(b.as_fd(), pipe.write_end(), 1 << 16).unwrap();
        assert_eq!(n, 16);
        assert_eq!(splice(pipe.read_end(), c.as_fd(), n).unwrap(), 16);
        let mut got = [0u8; 16];
        d.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"through the pipe");
        drop(a);
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert_eq!(splice(b.as_fd(), pipe.write_end(), 1 << 16).unwrap(), 0);
    }

    #[test]
    fn a_grown_pipe_holds_more_than_the_default_in_one_splice() {
        let (mut a, b) = pair();
        set_nonblocking(b.as_fd()).unwrap();
        let pipe = Pipe::new().unwrap();
        let capacity = pipe.grow(1 << 20);
        assert_eq!(capacity, 1 << 20);
        // A refused size leaves the pipe as it was.
        assert_eq!(pipe.grow(usize::MAX), capacity);
        let sent = vec![7u8; 512 * 1024];
        let writer = std::thread::spawn(move || a.write_all(&sent).map(|_| a));
        let mut in_pipe = 0;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while in_pipe < 512 * 1024 && std::time::Instant::now() < deadline {
            match splice(b.as_fd(), pipe.write_end(), capacity - in_pipe) {
                Ok(n) => in_pipe += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    std::thread::sleep(std::time::Duration::from_millis(1))
                }
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(in_pipe, 512 * 1024, "the pipe took eight times its default capacity");
        drop(writer.join().unwrap().unwrap());
    }

    #[test]
    fn bytes_readable_counts_the_receive_queue() {
        let (mut a, b) = pair();
        assert_eq!(bytes_readable(b.as_fd()).unwrap(), 0);
        a.write_all(b"twelve bytes").unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert_eq!(bytes_readable(b.as_fd()).unwrap(), 12);
    }

    #[test]
    fn a_shut_down_listener_refuses_connections_and_fails_a_blocked_accept() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let blocked = std::thread::spawn({
            let listener = listener.try_clone().unwrap();
            move || listener.accept().map(|_| ())
        });
        std::thread::sleep(std::time::Duration::from_millis(50));
        shutdown_listener(listener.as_fd()).unwrap();
        let woke = blocked.join().unwrap();
        assert_eq!(woke.unwrap_err().raw_os_error(), Some(libc::EINVAL));
        assert!(TcpStream::connect(addr).is_err(), "a stopped listener still accepts");
    }

    #[test]
    fn idle_probe_tells_quiet_from_closed_and_talking() {
        let (a, b) = pair();
        assert!(idle_connection_usable(b.as_fd()));
        (&a).write_all(b"x").unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert!(!idle_connection_usable(b.as_fd()));
        let (a2, b2) = pair();
        drop(a2);
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert!(!idle_connection_usable(b2.as_fd()));
        drop(a);
    }
}
