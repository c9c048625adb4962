//! systemd's readiness protocol (`sd_notify(3)`), written directly: one datagram per state
//! change to the unix socket named by `$NOTIFY_SOCKET`, no libsystemd.
//!
//! `ringproxy run` reads `$NOTIFY_SOCKET` (only `main` reads the environment) and hands the
//! path here. Under `Type=notify`, systemd considers the service started at `READY=1`, which
//! we send once every listener is bound and stored certificates are loaded; `RELOADING=1` …
//! `READY=1` brackets each reload, and `STOPPING=1` starts a graceful stop. Without the
//! variable (not under systemd) every call does nothing.

use std::ffi::OsString;
use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};

/// Where state changes go.
#[derive(Debug)]
pub struct Notifier {
    target: Option<(UnixDatagram, SocketAddr)>,
}

impl Notifier {
    /// A notifier for `$NOTIFY_SOCKET`'s value: a path, or `@name` for the abstract namespace.
    /// `None` (or an unusable value, which is logged) disables notifications.
    pub fn new(notify_socket: Option<OsString>) -> Notifier {
        let Some(value) = notify_socket.filter(|v| !v.is_empty()) else {
            return Notifier::disabled();
        };
        match open(&value) {
            Ok(target) => Notifier { target: Some(target) },
            Err(e) => {
                tracing::warn!(socket = ?value, "NOTIFY_SOCKET unusable, not notifying systemd: {e}");
                Notifier::disabled()
            }
        }
    }

    pub fn disabled() -> Notifier {
        Notifier { target: None }
    }

    /// Listeners are bound and certificates loaded: the service is up.
    pub fn ready(&self) {
        self.send("READY=1\nSTATUS=serving");
    }

    /// A reload starts; systemd wants the monotonic clock with it (systemd 253+ checks it).
    pub fn reloading(&self) {
        let usec = crate::net::sys::monotonic_time().map_or(0, |t| t.as_micros());
        self.send(&format!("RELOADING=1\nMONOTONIC_USEC={usec}\nSTATUS=reloading"));
    }

    pub fn stopping(&self) {
        self.send("STOPPING=1\nSTATUS=stopping");
    }

    fn send(&self, message: &str) {
        if let Some((socket, addr)) = &self.target {
            if let Err(e) = socket.send_to_addr(message.as_bytes(), addr) {
                tracing::warn!("cannot notify systemd ({message:?}): {e}");
            }
        }
    }
}

fn open(value: &OsString) -> io::Result<(UnixDatagram, SocketAddr)> {
    use std::os::unix::ffi::OsStrExt;
    let bytes = value.as_bytes();
    let addr = match bytes.strip_prefix(b"@") {
        Some(name) => SocketAddr::from_abstract_name(name)?,
        None => SocketAddr::from_pathname(std::path::Path::new(value))?,
    };
    Ok((UnixDatagram::unbound()?, addr))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn receive(socket: &UnixDatagram) -> String {
        let mut buf = [0u8; 512];
        let n = socket.recv(&mut buf).unwrap();
        String::from_utf8(buf[..n].to_vec()).unwrap()
    }

    #[test]
    fn state_changes_arrive_as_datagrams_on_a_path_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let systemd = UnixDatagram::bind(&path).unwrap();
        systemd.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let notifier = Notifier::new(Some(path.clone().into_os_string()));
        notifier.ready();
        assert_eq!(receive(&systemd), "READY=1\nSTATUS=serving");
        notifier.reloading();
        let reloading = receive(&systemd);
        assert!(reloading.starts_with("RELOADING=1\nMONOTONIC_USEC="), "{reloading}");
        let usec: u64 =
            reloading.lines().nth(1).unwrap()["MONOTONIC_USEC=".len()..].parse().unwrap();
        assert!(usec > 0);
        notifier.stopping();
        assert_eq!(receive(&systemd), "STOPPING=1\nSTATUS=stopping");
    }

    #[test]
    fn an_abstract_socket_name_starts_with_an_at_sign() {
        let name = format!("ringproxy-notify-test-{}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let systemd = UnixDatagram::bind_addr(&addr).unwrap();
        systemd.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        Notifier::new(Some(format!("@{name}").into())).ready();
        assert_eq!(receive(&systemd), "READY=1\nSTATUS=serving");
    }

    #[test]
    fn without_a_socket_nothing_is_sent_and_nothing_fails() {
        Notifier::new(None).ready();
        Notifier::new(Some("".into())).stopping();
        Notifier::new(Some("/nonexistent/dir/notify".into())).ready();
    }
}
