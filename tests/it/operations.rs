//! Operating the real binary: reload by SIGHUP, `/load` and `ringproxy reload` (a broken file
//! changes nothing and says where it is broken), no descriptor or memory growth across many
//! reloads under load, the admin endpoint's guard, `ringproxy stop`, SIGTERM (graceful, exit 0;
//! a second one at once), systemd's readiness notifications and unit file, and the metrics an
//! operator scrapes, checked with a real exposition parser (promtool).

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::net::UnixDatagram;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use tungstenite::Message;

use crate::support::binary::{get, request, ringproxy, Running};
use crate::support::client::ClientStream;
use crate::support::net::{dead_port, unassigned_port};
use crate::support::origin::Origin;
use crate::support::streams::PacedStreams;
use crate::support::temp::temp_dir;
use crate::support::ws::{ws_connect, WsOrigin};

/// A Caddyfile with the admin endpoint on `admin` and one site on `port`.
fn caddyfile(admin: u16, port: u16, site: &str) -> String {
    format!("{{\n\tadmin 127.0.0.1:{admin}\n\tgrace_period 1s\n}}\n\n:{port} {{\n{site}}}\n")
}

fn admin_get(admin: u16, path: &str) -> (u16, String) {
    get(admin, &format!("127.0.0.1:{admin}"), path)
}

#[test]
fn reloads_by_sighup_load_and_the_cli_apply_good_files_and_refuse_broken_ones_with_file_and_line() {
    let (admin, port) = (unassigned_port(), unassigned_port());
    let mut proxy = Running::start(&caddyfile(admin, port, "\trespond \"one\" 200\n"), &[]);
    proxy.wait_listening(port);
    assert_eq!(get(port, "x", "/").1, "one");

    // SIGHUP re-reads the file the process started with.
    std::fs::write(&proxy.config, caddyfile(admin, port, "\trespond \"two\" 200\n")).unwrap();
    proxy.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(5);
    while get(port, "x", "/").1 != "two" {
        assert!(Instant::now() < deadline, "SIGHUP did not reload:\n{}", proxy.log());
        thread::sleep(Duration::from_millis(20));
    }
    // A broken file: logged with file and line, the running config stays.
    std::fs::write(&proxy.config, caddyfile(admin, port, "\trespond \"x\" 99\n")).unwrap();
    proxy.signal("HUP");
    let config_name = proxy.config.display().to_string();
    proxy.wait_for_log(
        &format!("{config_name}:7 - invalid status code '99'"),
        Duration::from_secs(5),
    );
    assert_eq!(get(port, "x", "/").1, "two");

    // `ringproxy reload`: the same, through the admin endpoint.
    let good = proxy.dir.path().join("good.Caddyfile");
    std::fs::write(&good, caddyfile(admin, port, "\trespond \"three\" 200\n")).unwrap();
    let out = ringproxy(&["reload"], Some(&good));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(get(port, "x", "/").1, "three");
    let bad = proxy.dir.path().join("bad.Caddyfile");
    std::fs::write(&bad, caddyfile(admin, port, "\treverse_proxy\n")).unwrap();
    let out = ringproxy(&["reload"], Some(&bad));
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("{}:7 - ", bad.display())), "{stderr}");
    assert_eq!(get(port, "x", "/").1, "three");

    // `/load` with a Caddyfile body: 400 with the error text; other content types 415.
    let body = caddyfile(admin, port, "\trespond \"x\" 99\n");
    let response = request(
        admin,
        &format!(
            "POST /load HTTP/1.1\r\nHost: 127.0.0.1:{admin}\r\nContent-Type: text/caddyfile\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    );
    assert!(response.starts_with("HTTP/1.1 400"), "{response}");
    assert!(response.contains("Caddyfile:7 - invalid status code '99'"), "{response}");
    let response = request(
        admin,
        &format!("POST /load HTTP/1.1\r\nHost: 127.0.0.1:{admin}\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}"),
    );
    assert!(response.starts_with("HTTP/1.1 415"), "{response}");
    assert_eq!(get(port, "x", "/").1, "three");

    let (_, metrics) = admin_get(admin, "/metrics");
    assert!(
        metrics.contains("ringproxy_config_reloads_total{result=\"success\"} 2\n"),
        "{metrics}"
    );
    // The broken SIGHUP and the broken `/load` reached the server; `ringproxy reload` checked
    // its broken file itself and never sent it.
    assert!(
        metrics.contains("ringproxy_config_reloads_total{result=\"failure\"} 2\n"),
        "{metrics}"
    );

    // `ringproxy stop` (the address from the file's `admin` option): graceful, exit 0.
    let out = ringproxy(&["stop"], Some(&good));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(proxy.wait_exit(Duration::from_secs(5)).success());
}

#[test]
fn twenty_reloads_under_load_grow_neither_descriptors_nor_memory_on_io_uring() {
    twenty_reloads_under_load("io_uring");
}

#[test]
fn twenty_reloads_under_load_grow_neither_descriptors_nor_memory_on_epoll() {
    twenty_reloads_under_load("epoll");
}

fn twenty_reloads_under_load(driver: &str) {
    let (admin, port, extra) = (unassigned_port(), unassigned_port(), unassigned_port());
    let (a, b) = (WsOrigin::start(), WsOrigin::start());
    let config_a = caddyfile(admin, port, &format!("\treverse_proxy {}\n", a.addr));
    let config_b = format!(
        "{}\n:{extra} {{\n\trespond \"extra\" 200\n}}\n",
        caddyfile(admin, port, &format!("\treverse_proxy {}\n", b.addr))
    );
    let mut proxy = Running::start(&config_a, &[("RINGPROXY_DRIVER", driver)]);
    proxy.wait_listening(port);
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let connect = |id: usize| {
        ws_connect(
            ClientStream::connect_plain(addr),
            &format!("127.0.0.1:{port}"),
            &format!("/stream/{id}"),
        )
    };
    let streams = PacedStreams::start_with(connect, 200, 10, Duration::from_millis(50));
    thread::sleep(Duration::from_millis(300));
    let (fds_before, rss_before) = (proxy.open_fds(), proxy.rss_kib());
    let files = [proxy.dir.path().join("a.Caddyfile"), proxy.dir.path().join("b.Caddyfile")];
    std::fs::write(&files[0], &config_a).unwrap();
    std::fs::write(&files[1], &config_b).unwrap();
    for i in 0..20 {
        let out = ringproxy(&["reload"], Some(&files[(i + 1) % 2]));
        assert!(out.status.success(), "reload {i}: {}", String::from_utf8_lossy(&out.stderr));
        thread::sleep(Duration::from_millis(50));
    }
    // Twenty reloads end on config A again: the same listeners, the same streams.
    thread::sleep(Duration::from_millis(300));
    let (fds_after, rss_after) = (proxy.open_fds(), proxy.rss_kib());
    let tally = streams.stop();
    assert!(tally.errors.is_empty(), "{:?}", tally.errors);
    assert_eq!(tally.echoed, tally.sent, "frames lost across the reloads");
    eprintln!(
        "binary ({driver}), 200 streams, 20 reloads: {} frames, 0 lost, longest round trip {:?}; fds {fds_before} -> {fds_after}, RSS {rss_before} -> {rss_after} KiB",
        tally.sent, tally.longest_round_trip
    );
    assert!(
        fds_after <= fds_before + 2,
        "descriptors grew across reloads: {fds_before} -> {fds_after}"
    );
    assert!(
        rss_after <= rss_before + 8 * 1024,
        "RSS grew across reloads: {rss_before} -> {rss_after} KiB"
    );
}

#[test]
fn the_admin_endpoint_refuses_foreign_hosts_and_origins_and_admin_off_listens_nowhere() {
    let (admin, port) = (unassigned_port(), unassigned_port());
    let mut proxy = Running::start(&caddyfile(admin, port, "\trespond \"ok\" 200\n"), &[]);
    proxy.wait_listening(port);
    assert_eq!(admin_get(admin, "/metrics").0, 200);
    assert_eq!(get(admin, &format!("localhost:{admin}"), "/metrics").0, 200);
    assert_eq!(get(admin, "evil.example", "/metrics").0, 403);
    assert_eq!(get(admin, "localhost", "/metrics").0, 403);
    let response = request(
        admin,
        &format!("POST /stop HTTP/1.1\r\nHost: 127.0.0.1:{admin}\r\nOrigin: http://evil.example\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
    );
    assert!(response.starts_with("HTTP/1.1 403"), "{response}");
    assert!(proxy.child.try_wait().unwrap().is_none(), "a foreign origin stopped the proxy");
    let (status, body) = admin_get(admin, "/reverse_proxy/upstreams");
    assert_eq!((status, body.as_str()), (200, "[]"));
    drop(proxy);

    let port = unassigned_port();
    let text = format!("{{\n\tadmin off\n}}\n:{port} {{\n\trespond ok\n}}\n");
    let mut proxy = Running::start(&text, &[]);
    proxy.wait_listening(port);
    let listening: Vec<String> = std::fs::read_to_string("/proc/net/tcp")
        .unwrap()
        .lines()
        .chain(std::fs::read_to_string("/proc/net/tcp6").unwrap_or_default().lines())
        .filter(|l| l.split_whitespace().nth(3) == Some("0A"))
        .map(str::to_string)
        .collect();
    let ours = proxy_listening_ports(&proxy, &listening);
    assert_eq!(ours, vec![port], "with admin off only the site listens");
}

/// Ports the process listens on: sockets in LISTEN whose inode is one of its descriptors.
fn proxy_listening_ports(proxy: &Running, listening: &[String]) -> Vec<u16> {
    let inodes: Vec<String> = std::fs::read_dir(format!("/proc/{}/fd", proxy.pid()))
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter_map(|target| {
            let t = target.to_string_lossy().into_owned();
            t.strip_prefix("socket:[")?.strip_suffix(']').map(str::to_string)
        })
        .collect();
    let mut ports: Vec<u16> = listening
        .iter()
        .filter(|l| {
            l.split_whitespace().nth(9).is_some_and(|inode| inodes.iter().any(|i| i == inode))
        })
        .filter_map(|l| {
            let local = l.split_whitespace().nth(1)?;
            u16::from_str_radix(local.rsplit(':').next()?, 16).ok()
        })
        .collect();
    ports.sort();
    ports.dedup();
    ports
}

#[test]
fn sigterm_stops_gracefully_with_exit_0_and_a_second_signal_stops_at_once() {
    let (admin, port) = (unassigned_port(), unassigned_port());
    let ws = WsOrigin::start();
    let text = format!(
        "{{\n\tadmin 127.0.0.1:{admin}\n\tgrace_period 1s\n}}\n\n:{port} {{\n\treverse_proxy {}\n}}\n",
        ws.addr
    );
    let mut proxy = Running::start(&text, &[]);
    proxy.wait_listening(port);
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut live = ws_connect(ClientStream::connect_plain(addr), "x", "/live");
    let started = Instant::now();
    proxy.signal("TERM");
    match live.read() {
        Ok(Message::Close(Some(frame))) => assert_eq!(u16::from(frame.code), 1001),
        other => panic!("expected a 1001 close frame, got {other:?}"),
    }
    let status = proxy.wait_exit(Duration::from_secs(3));
    assert!(status.success(), "exit status {status}:\n{}", proxy.log());
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(2),
        "stopped after {took:?}"
    );

    // With a long grace period, a second SIGTERM ends the wait.
    let (admin, port) = (unassigned_port(), unassigned_port());
    let text = format!(
        "{{\n\tadmin 127.0.0.1:{admin}\n\tgrace_period 1m\n}}\n\n:{port} {{\n\treverse_proxy {}\n}}\n",
        ws.addr
    );
    let mut proxy = Running::start(&text, &[]);
    proxy.wait_listening(port);
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let _live = ws_connect(ClientStream::connect_plain(addr), "x", "/live");
    proxy.signal("TERM");
    proxy.wait_for_log("shutting down gracefully", Duration::from_secs(5));
    let second = Instant::now();
    proxy.signal("TERM");
    assert!(proxy.wait_exit(Duration::from_secs(3)).success());
    assert!(second.elapsed() < Duration::from_secs(2));
}

#[test]
fn systemd_hears_ready_reloading_and_stopping_on_its_notify_socket() {
    let dir = temp_dir("notify");
    let socket_path = dir.path().join("notify.sock");
    let systemd = UnixDatagram::bind(&socket_path).unwrap();
    systemd.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let (admin, port) = (unassigned_port(), unassigned_port());
    let notify = socket_path.display().to_string();
    let mut proxy =
        Running::start(&caddyfile(admin, port, "\trespond ok\n"), &[("NOTIFY_SOCKET", &notify)]);
    let receive = || {
        let mut buf = [0u8; 256];
        let n = systemd.recv(&mut buf).expect("no notification");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    let ready = receive();
    assert!(ready.starts_with("READY=1"), "{ready}");
    // READY=1 comes after the listeners are bound.
    assert!(TcpStream::connect(("127.0.0.1", port)).is_ok());
    proxy.signal("HUP");
    assert!(receive().starts_with("RELOADING=1\nMONOTONIC_USEC="));
    assert!(receive().starts_with("READY=1"));
    proxy.signal("TERM");
    assert!(receive().starts_with("STOPPING=1"));
    assert!(proxy.wait_exit(Duration::from_secs(5)).success());
}

#[test]
fn the_systemd_unit_passes_systemd_analyze_verify() {
    let Ok(version) = Command::new("systemd-analyze").arg("--version").output() else {
        eprintln!("SKIPPED: systemd-analyze is not installed here");
        return;
    };
    assert!(version.status.success());
    let dir = temp_dir("unit");
    let unit =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/dist/ringproxy.service"))
            .unwrap()
            .replace("/usr/local/bin/ringproxy", env!("CARGO_BIN_EXE_ringproxy"))
            .replace("/bin/kill", "/usr/bin/kill");
    let path = dir.path().join("ringproxy.service");
    std::fs::write(&path, unit).unwrap();
    let out = Command::new("systemd-analyze").arg("verify").arg(&path).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && !stderr.contains("ringproxy.service:"), "{stderr}");
}

#[test]
fn metrics_count_the_traffic_follow_upstream_health_and_parse_as_prometheus_exposition() {
    let (admin, port) = (unassigned_port(), unassigned_port());
    let origin = Origin::start("o");
    let ws = WsOrigin::start();
    let dying = Origin::start("dying");
    let dying_addr = dying.addr;
    let dead = dead_port();
    let site = format!(
        "\thandle /ws/* {{\n\t\treverse_proxy {ws}\n\t}}\n\
         \thandle /down/* {{\n\t\treverse_proxy {dead}\n\t}}\n\
         \thandle /dying/* {{\n\t\treverse_proxy {dying_addr} {{\n\t\t\thealth_uri /status/200\n\t\t\thealth_interval 100ms\n\t\t\thealth_timeout 500ms\n\t\t}}\n\t}}\n\
         \thandle /missing {{\n\t\trespond 404\n\t}}\n\
         \thandle {{\n\t\treverse_proxy {}\n\t}}\n",
        origin.addr,
        ws = ws.addr,
    );
    let mut proxy = Running::start(&caddyfile(admin, port, &site), &[]);
    proxy.wait_listening(port);
    for _ in 0..5 {
        assert_eq!(get(port, "x", "/ok").0, 200);
    }
    assert_eq!(get(port, "x", "/missing").0, 404);
    assert_eq!(get(port, "x", "/down/x").0, 502);
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut sockets: Vec<_> = (0..3)
        .map(|i| ws_connect(ClientStream::connect_plain(addr), "x", &format!("/ws/{i}")))
        .collect();
    for (i, socket) in sockets.iter_mut().enumerate() {
        socket.send(Message::Binary(vec![i as u8; 1000])).unwrap();
        assert_eq!(socket.read().unwrap(), Message::Binary(vec![i as u8; 1000]));
    }
    let metrics = admin_get(admin, "/metrics").1;
    let sample = |series: &str| -> Option<f64> {
        metrics.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    };
    assert_eq!(sample("ringproxy_http_requests_total{code=\"200\"}"), Some(5.0), "{metrics}");
    assert_eq!(sample("ringproxy_http_requests_total{code=\"404\"}"), Some(1.0));
    assert_eq!(sample("ringproxy_http_requests_total{code=\"502\"}"), Some(1.0));
    assert_eq!(sample("ringproxy_http_requests_total{code=\"101\"}"), Some(3.0));
    assert_eq!(sample("ringproxy_http_request_duration_seconds_count"), Some(10.0));
    assert_eq!(sample("ringproxy_websockets_open"), Some(3.0));
    assert!(sample("ringproxy_relayed_bytes_total{direction=\"upstream\"}").unwrap() >= 3000.0);
    assert!(sample("ringproxy_relayed_bytes_total{direction=\"downstream\"}").unwrap() >= 3000.0);
    assert_eq!(
        sample(&format!("ringproxy_upstream_healthy{{upstream=\"{dying_addr}\"}}")),
        Some(1.0)
    );
    assert!(sample("process_resident_memory_bytes").unwrap() > 0.0);
    assert!(sample("process_open_fds").unwrap() > 0.0);

    // A real parser has the last word on the exposition.
    let promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let mut promtool =
        promtool.expect("promtool not found: tests/run installs it (Debian's prometheus package)");
    use std::io::Write as _;
    promtool.stdin.take().unwrap().write_all(metrics.as_bytes()).unwrap();
    let checked = promtool.wait_with_output().unwrap();
    assert!(
        checked.status.success(),
        "promtool rejected the exposition: {}{}\n{metrics}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );

    // Closing the sockets brings the gauge back to 0; the dying upstream goes unhealthy.
    for mut socket in sockets {
        socket.close(None).unwrap();
        let _ = socket.read();
    }
    drop(dying);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let metrics = admin_get(admin, "/metrics").1;
        let value = |series: &str| -> Option<f64> {
            metrics.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        };
        let open = value("ringproxy_websockets_open");
        let healthy = value(&format!("ringproxy_upstream_healthy{{upstream=\"{dying_addr}\"}}"));
        if open == Some(0.0) && healthy == Some(0.0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "websockets_open {open:?}, healthy {healthy:?}:\n{metrics}"
        );
        thread::sleep(Duration::from_millis(50));
    }
    let upstreams = admin_get(admin, "/reverse_proxy/upstreams").1;
    let list: serde_json::Value = serde_json::from_str(&upstreams).unwrap();
    let entry =
        list.as_array().unwrap().iter().find(|u| u["address"] == dying_addr.to_string()).unwrap();
    assert_eq!(entry["healthy"], false, "{upstreams}");
}

#[test]
fn sigusr1_reopens_access_logs_that_logrotate_moved_away() {
    let (admin, port) = (unassigned_port(), unassigned_port());
    let dir = temp_dir("logs");
    let log = dir.path().join("access.log");
    let site = format!("\tlog {{\n\t\toutput file {}\n\t}}\n\trespond \"ok\" 200\n", log.display());
    let mut proxy = Running::start(&caddyfile(admin, port, &site), &[]);
    proxy.wait_listening(port);
    let wait_for_line = |path: &std::path::Path, uri: &str| {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            if text.contains(&format!("\"uri\":\"{uri}\"")) {
                return text;
            }
            assert!(Instant::now() < deadline, "no line for {uri} in {}:\n{text}", path.display());
            thread::sleep(Duration::from_millis(20));
        }
    };
    assert_eq!(get(port, "x", "/before").0, 200);
    wait_for_line(&log, "/before");
    let moved = dir.path().join("access.log.1");
    std::fs::rename(&log, &moved).unwrap();
    proxy.signal("USR1");
    thread::sleep(Duration::from_millis(200));
    assert_eq!(get(port, "x", "/after").0, 200);
    let fresh = wait_for_line(&log, "/after");
    assert!(!fresh.contains("/before"), "the reopened file got old lines");
    assert!(
        !std::fs::read_to_string(&moved).unwrap().contains("/after"),
        "lines went to the moved file"
    );
}

#[test]
fn shutdown_delay_keeps_serving_before_the_graceful_stop() {
    let (admin, port) = (unassigned_port(), unassigned_port());
    let text = format!(
        "{{\n\tadmin 127.0.0.1:{admin}\n\tshutdown_delay 1s\n\tgrace_period 1s\n}}\n\n:{port} {{\n\trespond \"ok\" 200\n}}\n"
    );
    let mut proxy = Running::start(&text, &[]);
    proxy.wait_listening(port);
    let started = Instant::now();
    proxy.signal("TERM");
    thread::sleep(Duration::from_millis(300));
    assert_eq!(
        get(port, "x", "/during-the-delay").0,
        200,
        "new requests are served during shutdown_delay"
    );
    assert!(proxy.wait_exit(Duration::from_secs(5)).success());
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(950),
        "stopped after {took:?}, inside the 1 s shutdown_delay"
    );
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
}

#[test]
fn sighup_re_reads_imported_files_and_an_error_in_one_names_that_file() {
    let (admin, port) = (unassigned_port(), unassigned_port());
    // An absolute glob, so the site file exists before the process starts.
    let sites = tempfile::tempdir().unwrap();
    let site = sites.path().join("main.caddy");
    std::fs::write(&site, format!(":{port} {{\n\trespond \"one\" 200\n}}\n")).unwrap();
    let main =
        format!("{{\n\tadmin 127.0.0.1:{admin}\n}}\n\nimport {}/*.caddy\n", sites.path().display());
    let mut proxy = Running::start(&main, &[]);
    proxy.wait_listening(port);
    assert_eq!(get(port, "x", "/").1, "one");

    // Only the imported file changes; SIGHUP picks it up.
    std::fs::write(&site, format!(":{port} {{\n\trespond \"two\" 200\n}}\n")).unwrap();
    proxy.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(5);
    while get(port, "x", "/").1 != "two" {
        assert!(Instant::now() < deadline, "SIGHUP did not re-read the import:\n{}", proxy.log());
        thread::sleep(Duration::from_millis(20));
    }
    // A broken imported file: its own name and line in the log, the running config stays.
    std::fs::write(&site, format!(":{port} {{\n\trespond \"x\" 99\n}}\n")).unwrap();
    proxy.signal("HUP");
    proxy.wait_for_log(
        &format!("{}:2 - invalid status code '99'", site.display()),
        Duration::from_secs(5),
    );
    assert_eq!(get(port, "x", "/").1, "two");
}
