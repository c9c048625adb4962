//! io_uring setup flags: the defaults start on this kernel, and flags the kernel refuses fall
//! back to a plain ring instead of to epoll or a failed start. Runs the real binary, with the
//! flags in `RINGPROXY_URING_SETUP` (the `--uring-setup` flag's environment alias).

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::net::unassigned_port;
use crate::support::temp::{temp_dir, TempDir};

struct Running {
    child: Child,
    dir: TempDir,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Running {
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("proxy.log")).unwrap_or_default()
    }
}

fn start(setup_flags: Option<&str>, port: u16) -> Running {
    let dir = temp_dir("uring-setup");
    let config = dir.path().join("Caddyfile");
    std::fs::write(
        &config,
        format!("{{\n\tadmin off\n}}\n:{port} {{\n\trespond \"ring ok\" 200\n}}\n"),
    )
    .unwrap();
    let log = std::fs::File::create(dir.path().join("proxy.log")).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_ringproxy"));
    command
        .args(["run", "--workers", "1", "--no-pin", "--driver", "io_uring", "--config"])
        .arg(&config)
        .env("RINGPROXY_LOG", "info")
        .env_remove("RINGPROXY_URING_SETUP")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log);
    if let Some(flags) = setup_flags {
        command.env("RINGPROXY_URING_SETUP", flags);
    }
    Running { child: command.spawn().unwrap(), dir }
}

/// `GET /` until the proxy answers (it is starting), then the whole response.
fn get(port: u16, running: &mut Running) -> String {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(status) = running.child.try_wait().unwrap() {
            panic!("ringproxy exited with {status}:\n{}", running.log());
        }
        if let Ok(mut conn) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            conn.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
            let mut response = String::new();
            conn.read_to_string(&mut response).unwrap();
            return response;
        }
        assert!(Instant::now() < deadline, "ringproxy did not listen:\n{}", running.log());
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn default_io_uring_setup_flags_start_and_refused_flags_fall_back_to_a_plain_ring() {
    if !monoio::utils::detect_uring() {
        eprintln!("SKIPPED: io_uring is not available here");
        return;
    }
    // The defaults (COOP_TASKRUN, SINGLE_ISSUER) are accepted by this kernel.
    let port = unassigned_port();
    let mut defaults = start(None, port);
    let response = get(port, &mut defaults);
    assert!(response.starts_with("HTTP/1.1 200") && response.ends_with("ring ok"), "{response}");
    assert!(!defaults.log().contains("refused"), "{}", defaults.log());
    assert!(defaults.log().contains("IoUring"), "{}", defaults.log());
    drop(defaults);

    // DEFER_TASKRUN without SINGLE_ISSUER is always refused (EINVAL): the worker still runs
    // on io_uring, without flags.
    let port = unassigned_port();
    let mut refused = start(Some("defer"), port);
    let response = get(port, &mut refused);
    assert!(response.starts_with("HTTP/1.1 200") && response.ends_with("ring ok"), "{response}");
    let log = refused.log();
    assert!(log.contains("io_uring setup flags refused"), "{log}");
    assert!(log.contains("IoUring") && !log.contains("Epoll"), "{log}");
}
