//! No busy loops: a worker that waits must sleep. The case that spun before (issue 11): a
//! spliced response body (plaintext on both sides, Content-Length ≥ `SPLICE_BODY_MIN`) from an
//! upstream that writes small segments, read slowly by the client. Each small segment takes a
//! pipe slot, so the pipe runs out of slots long before it runs out of bytes; splicing into it
//! then says EAGAIN while the upstream is still readable, and a wait on "either side ready"
//! returned at once, again and again.
//!
//! Measured on the real binary (one worker, so its CPU is the proxy's), from
//! `/proc/PID/stat`, over a few seconds of the slow transfer.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::support::binary::{Launch, Running};
use crate::support::net::free_port;

/// How long the slow reader is watched.
const WATCH: Duration = Duration::from_secs(3);
/// Measured in a debug build: the fixed code takes 5–8 % of a core here, which is the work of
/// taking the megabytes the upstream writes in 512-byte segments into the kernel's buffers
/// while they fill; the old loop took 21–45 %.
const MAX_CPU_SHARE: f64 = 0.15;

/// user + system CPU time of process `pid`.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // The command name (field 2) may hold spaces; the fields after its closing parenthesis
    // are plain: state is field 3, utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // /proc counts in USER_HZ, which the kernel fixes at 100 on x86 and arm.
    Duration::from_millis(ticks * 10)
}

/// An upstream that answers one request with `len` bytes in `segment`-byte writes about a
/// millisecond apart, each pushed out on its own (TCP_NODELAY), as a streaming backend does:
/// about 500 KB/s at 512-byte segments, more than the slow reader takes.
/// Also returns how many body bytes it has written so far.
fn small_segment_upstream(
    len: usize,
    segment: usize,
) -> (u16, Arc<AtomicUsize>, thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let written = Arc::new(AtomicUsize::new(0));
    let counter = written.clone();
    let serving = thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        stream.set_nodelay(true).unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut line = String::new();
        while reader.read_line(&mut line).unwrap() > 2 {
            line.clear();
        }
        let mut out = &stream;
        let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {len}\r\n\r\n");
        out.write_all(head.as_bytes()).unwrap();
        let piece = vec![b's'; segment];
        let mut sent = 0;
        while sent < len {
            let n = segment.min(len - sent);
            if out.write_all(&piece[..n]).is_err() {
                return;
            }
            sent += n;
            counter.store(sent, Ordering::Relaxed);
            // Paced, so each segment reaches the proxy as a segment of its own instead of
            // being merged while the proxy's window is closed.
            thread::sleep(Duration::from_micros(200));
        }
        let _ = stream.shutdown(Shutdown::Write);
    });
    (port, written, serving)
}

fn a_slow_reader_of_a_small_segment_spliced_body_costs_almost_no_cpu(driver: &str) {
    let len = 64 * 1024 * 1024;
    let (upstream_port, written, upstream) = small_segment_upstream(len, 512);
    let port = free_port();
    let caddyfile = format!(
        "{{\n\tadmin off\n\tauto_https off\n}}\n\nhttp://127.0.0.1:{port} {{\n\treverse_proxy 127.0.0.1:{upstream_port}\n}}\n"
    );
    let envs = [("RINGPROXY_DRIVER", driver)];
    let mut proxy =
        Running::launch(&caddyfile, Launch { workers: 1, envs: &envs, ..Launch::default() });
    proxy.wait_listening(port);

    let mut client = TcpStream::connect(("127.0.0.1", port)).unwrap();
    socket2::SockRef::from(&client).set_recv_buffer_size(16 * 1024).unwrap();
    client.write_all(b"GET /big HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    client.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 4096];
    let mut read = 0usize;
    // Read at 200 KB/s for a while: the buffers on the way fill, the pipe with small segments.
    let settle_until = Instant::now() + Duration::from_millis(1500);
    while Instant::now() < settle_until {
        read += client.read(&mut buf).unwrap();
        thread::sleep(Duration::from_millis(20));
    }
    let (cpu_before, started) = (cpu_time(proxy.pid()), Instant::now());
    // 4 KiB every 50 ms: about 80 KB/s, far below what the upstream offers, so the pipe stays
    // full of small segments.
    while started.elapsed() < WATCH {
        let n = client.read(&mut buf).unwrap();
        assert!(n > 0, "the response ended early after {read} bytes:\n{}", proxy.log());
        read += n;
        thread::sleep(Duration::from_millis(50));
    }
    let (cpu, wall) = (cpu_time(proxy.pid()) - cpu_before, started.elapsed());
    let share = cpu.as_secs_f64() / wall.as_secs_f64();
    assert!(read > 100_000, "the reader got only {read} bytes");
    assert!(
        share <= MAX_CPU_SHARE,
        "{driver}: the proxy used {:.1} % of a core ({cpu:?} in {wall:?}) for one slow reader \
         ({read} bytes read, {} written by the upstream)",
        share * 100.0,
        written.load(Ordering::Relaxed)
    );
    drop(client);
    drop(proxy);
    upstream.join().unwrap();
}

#[test]
fn a_slow_reader_of_a_small_segment_spliced_body_costs_almost_no_cpu_on_io_uring() {
    a_slow_reader_of_a_small_segment_spliced_body_costs_almost_no_cpu("io_uring");
}

#[test]
fn a_slow_reader_of_a_small_segment_spliced_body_costs_almost_no_cpu_on_epoll() {
    a_slow_reader_of_a_small_segment_spliced_body_costs_almost_no_cpu("epoll");
}
