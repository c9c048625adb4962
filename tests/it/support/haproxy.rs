//! [`Haproxy`]: a real HAProxy (Debian's `haproxy`, which `tests/run` installs) in TCP mode in
//! front of the proxy under test, sending a PROXY protocol v2 header on every connection it
//! opens to the proxy, as an L4 load balancer does. Stopped on drop.

use std::fs;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::net::unassigned_port;
use super::temp::{temp_dir, TempDir};

pub struct Haproxy {
    /// Where clients connect.
    pub addr: SocketAddr,
    child: Child,
    dir: TempDir,
}

impl Haproxy {
    /// Balance TCP connections on a port of 127.0.0.1 to `backend` with `send-proxy-v2`.
    pub fn start_in_front_of(backend: SocketAddr) -> Haproxy {
        let dir = temp_dir("haproxy");
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, unassigned_port()));
        let config = format!(
            "global\n\tmaxconn 256\n\ndefaults\n\tmode tcp\n\ttimeout connect 5s\n\
             \ttimeout client 30s\n\ttimeout server 30s\n\nfrontend balancer\n\tbind {addr}\n\
             \tdefault_backend ringproxy\n\nbackend ringproxy\n\
             \tserver proxy {backend} send-proxy-v2\n"
        );
        let file = dir.path().join("haproxy.cfg");
        fs::write(&file, config).unwrap();
        let log = fs::File::create(dir.path().join("haproxy.log")).unwrap();
        // -db: stay in the foreground, so the child is HAProxy itself and killing it stops it.
        let child = Command::new("haproxy")
            .arg("-db")
            .arg("-f")
            .arg(&file)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run haproxy (tests/run installs it): {e}"));
        let mut haproxy = Haproxy { addr, child, dir };
        haproxy.wait_listening();
        haproxy
    }

    fn wait_listening(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_ok() {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("haproxy exited with {status}:\n{}", self.log());
            }
            assert!(Instant::now() < deadline, "haproxy did not listen in time:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("haproxy.log")).unwrap_or_default()
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
