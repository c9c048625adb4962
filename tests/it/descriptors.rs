//! Running out of file descriptors: the real binary under a low `RLIMIT_NOFILE` (prlimit).
//! When accept finds no descriptor left, the oldest idle kept-alive connections are closed to
//! make room for the clients waiting in the backlog; while nothing can be shed, the accept
//! loop pauses instead of spinning, and it recovers as soon as descriptors come back.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use crate::support::binary::{get, Launch, Running};
use crate::support::net::free_port;
use crate::support::origin::Origin;

/// Low enough that a test reaches it quickly, high enough for the process's own descriptors
/// (rings, listeners, log, the control plane).
const MAX_OPEN_FILES: u64 = 128;

fn keep_alive_get(port: u16, path: &str) -> Option<(TcpStream, u16)> {
    let mut conn = TcpStream::connect(("127.0.0.1", port)).ok()?;
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    conn.write_all(format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").as_bytes()).ok()?;
    let status = read_response_status(&mut conn)?;
    Some((conn, status))
}

/// Read one small Content-Length response; its status.
fn read_response_status(conn: &mut TcpStream) -> Option<u16> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = conn.read(&mut buf).ok()?;
        if n == 0 {
            return None;
        }
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap())
                })
                .unwrap_or(0);
            if body.len() >= length {
                return head.get(9..12).and_then(|s| s.parse().ok());
            }
        }
    }
}

/// Whether the proxy has closed `conn` (EOF or reset) within `within`.
fn closed_by_proxy(mut conn: &TcpStream, within: Duration) -> bool {
    conn.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 16];
    match conn.read(&mut buf) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
    }
}

fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

fn out_of_descriptors(driver: &str) {
    let origin = Origin::start("o");
    let port = free_port();
    let caddyfile = format!(
        "{{\n\tadmin off\n\tauto_https off\n\tservers {{\n\t\ttimeouts {{\n\t\t\tread_header 60s\n\t\t}}\n\t}}\n}}\n\n\
         http://127.0.0.1:{port} {{\n\thandle /metrics {{\n\t\tmetrics\n\t}}\n\treverse_proxy {} {{\n\t\tfail_duration 30s\n\t\tmax_fails 1\n\t}}\n}}\n",
        origin.addr
    );
    let envs = [("RINGPROXY_DRIVER", driver)];
    let launch = Launch { workers: 1, envs: &envs, max_open_files: Some(MAX_OPEN_FILES) };
    let mut proxy = Running::launch(&caddyfile, launch);
    proxy.wait_listening(port);

    // 1. Far more kept-alive clients than descriptors, one after the other: every one is
    // served, at the expense of the ones idle the longest.
    let mut clients = Vec::new();
    for i in 0..2 * MAX_OPEN_FILES as usize {
        let started = Instant::now();
        let (conn, status) = keep_alive_get(port, &format!("/k{i}"))
            .unwrap_or_else(|| panic!("client {i} was not served:\n{}", proxy.log()));
        assert_eq!(status, 200, "client {i}");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "client {i} waited {:?}",
            started.elapsed()
        );
        clients.push(conn);
    }
    let shed = clients.iter().filter(|c| closed_by_proxy(c, Duration::from_millis(20))).count();
    assert!(shed >= MAX_OPEN_FILES as usize, "only {shed} idle connections were closed");
    assert!(closed_by_proxy(&clients[0], Duration::from_millis(20)), "the oldest stayed open");
    let newest = clients.last_mut().unwrap();
    newest.write_all(b"GET /again HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    assert_eq!(read_response_status(newest), Some(200), "the newest client lost its connection");
    assert!(proxy.log().contains("out of file descriptors"), "{}", proxy.log());
    drop(clients);

    // 2. Clients that never send a request are not idle kept-alive connections: nothing can be
    // shed for them, so the accept loop waits, and does not spin while it does.
    thread::sleep(Duration::from_millis(200));
    let silent: Vec<TcpStream> = (0..MAX_OPEN_FILES + 32)
        .map(|_| TcpStream::connect(("127.0.0.1", port)).unwrap())
        .collect();
    thread::sleep(Duration::from_millis(300));
    let before = cpu_ticks(proxy.pid());
    thread::sleep(Duration::from_secs(1));
    let ticks = cpu_ticks(proxy.pid()) - before;
    // 10 ms ticks: 5 is 5 % of a core.
    assert!(ticks <= 5, "{driver}: {ticks} ticks of CPU in 1 s while out of descriptors");

    // 3. Descriptors come back: a new client is served, and the upstream was never blamed.
    drop(silent);
    let started = Instant::now();
    let (status, _) = get(port, "127.0.0.1", "/after");
    assert_eq!(status, 200, "{}", proxy.log());
    assert!(started.elapsed() < Duration::from_secs(2), "recovered after {:?}", started.elapsed());
    let (_, metrics) = get(port, "127.0.0.1", "/metrics");
    let shed_total: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("ringproxy_connections_shed_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no shed counter:\n{metrics}"));
    assert!(shed_total >= shed as u64, "shed {shed_total} < {shed} closed");
    assert!(metrics.contains("ringproxy_upstream_healthy{"), "{metrics}");
    assert!(
        !metrics.lines().any(|l| l.starts_with("ringproxy_upstream_healthy{") && l.ends_with(" 0")),
        "{metrics}"
    );
}

#[test]
fn out_of_descriptors_sheds_the_oldest_idle_connections_and_never_spins_on_io_uring() {
    out_of_descriptors("io_uring");
}

#[test]
fn out_of_descriptors_sheds_the_oldest_idle_connections_and_never_spins_on_epoll() {
    out_of_descriptors("epoll");
}
