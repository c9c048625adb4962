//! [`Running`]: the real `ringproxy` binary as an operator runs it (`ringproxy run --config`),
//! for what only a process shows: signals, exit codes, the admin endpoint's CLI, systemd
//! notifications, descriptors and memory over time.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use super::temp::{temp_dir, TempDir};

/// How to start a [`Running`].
pub struct Launch<'a> {
    pub workers: usize,
    pub envs: &'a [(&'a str, &'a str)],
    /// Soft and hard `RLIMIT_NOFILE` of the process (it raises soft to hard at start).
    pub max_open_files: Option<u64>,
}

impl Default for Launch<'_> {
    fn default() -> Self {
        Launch { workers: 2, envs: &[], max_open_files: None }
    }
}

/// A `ringproxy run` process; killed on drop if still running.
pub struct Running {
    pub child: Child,
    pub dir: TempDir,
    pub config: PathBuf,
}

impl Running {
    /// Write `caddyfile` and start `ringproxy run` on it with two workers and `envs`.
    pub fn start(caddyfile: &str, envs: &[(&str, &str)]) -> Running {
        Running::launch(caddyfile, Launch { envs, ..Launch::default() })
    }

    /// Write `caddyfile` and start `ringproxy run` on it as `launch` says.
    pub fn launch(caddyfile: &str, launch: Launch<'_>) -> Running {
        let dir = temp_dir("binary");
        let config = dir.path().join("Caddyfile");
        std::fs::write(&config, caddyfile).unwrap();
        let log = std::fs::File::create(dir.path().join("proxy.log")).unwrap();
        let binary = env!("CARGO_BIN_EXE_ringproxy");
        // prlimit(1) sets the limits and then execs the binary: same process, same pid.
        let mut command = match launch.max_open_files {
            Some(n) => {
                let mut c = Command::new("prlimit");
                c.arg(format!("--nofile={n}:{n}")).arg("--").arg(binary);
                c
            }
            None => Command::new(binary),
        };
        let workers = launch.workers.to_string();
        command
            .args(["run", "--workers", &workers, "--no-pin", "--config"])
            .arg(&config)
            .env("RINGPROXY_LOG", "info")
            .env_remove("NOTIFY_SOCKET")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        let envs = launch.envs;
        for (name, value) in envs {
            command.env(name, value);
        }
        Running { child: command.spawn().unwrap(), dir, config }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the process logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("proxy.log")).unwrap_or_default()
    }

    /// Wait until `port` on 127.0.0.1 accepts, failing with the log if the process exits or
    /// 15 s pass.
    pub fn wait_listening(&mut self, port: u16) {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let deadline = Instant::now() + Duration::from_secs(15);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("ringproxy exited with {status}:\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "ringproxy did not listen on {port}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Wait until the log contains `text`.
    pub fn wait_for_log(&self, text: &str, within: Duration) {
        let deadline = Instant::now() + within;
        while !self.log().contains(text) {
            assert!(
                Instant::now() < deadline,
                "no {text:?} in the log within {within:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Send `signal` (`HUP`, `TERM`, …) with kill(1).
    pub fn signal(&self, signal: &str) {
        let status =
            Command::new("kill").arg(format!("-{signal}")).arg(self.pid().to_string()).status();
        assert!(status.unwrap().success(), "kill -{signal} failed");
    }

    /// Wait for the process to exit, at most `within`.
    pub fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "ringproxy still running after {within:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Open descriptors of the process.
    pub fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid())).unwrap().count()
    }

    /// Resident memory of the process, in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Run `ringproxy <args>` to completion (the `reload` and `stop` commands).
pub fn ringproxy(args: &[&str], config: Option<&Path>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ringproxy"));
    command.args(args).env_remove("RINGPROXY_LOG").stdin(Stdio::null());
    if let Some(config) = config {
        command.arg("--config").arg(config);
    }
    command.output().unwrap()
}

/// One HTTP/1.1 request on a fresh connection to 127.0.0.1:`port`; the whole response as text.
pub fn request(port: u16, raw: &str) -> String {
    let mut conn = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    conn.write_all(raw.as_bytes()).unwrap();
    let mut response = Vec::new();
    let _ = conn.read_to_end(&mut response);
    String::from_utf8_lossy(&response).into_owned()
}

/// `GET path` with `Connection: close`; the status and the body.
pub fn get(port: u16, host: &str, path: &str) -> (u16, String) {
    let text =
        request(port, &format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"));
    let status = text.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}
