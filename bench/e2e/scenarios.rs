//! The load generator's scenarios, each measuring one property of a target and printing
//! `metric<TAB>value` lines (see docs/benchmarks.md for what each one means):
//! - `pingpong`: WebSocket round-trip latency on one connection;
//! - `paced`: many WebSockets sending on a fixed schedule (open loop), latency from each
//!   message's scheduled send time, so a stalled proxy cannot hide its stall (no coordinated
//!   omission);
//! - `connrate`: one new connection (full TLS handshake with --tls) per request;
//! - `bulk`: one large download;
//! - `idle`: many open, idle WebSockets and the proxy's RSS growth per connection;
//! - `reload`: paced streams while the target's config is reloaded every second through its
//!   admin endpoint: frames lost, streams closed, the longest stall;
//! - `sequential`: one request or one upgrade at a time, each timed: what a per-request step
//!   (such as `forward_auth`'s auth round trip) adds, without queueing in the figure.
//!
//! Proxy CPU is read from /proc around each measured window and reported per unit of work.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;

use crate::client::{tighten_timer_slack, Conn, Metrics, Target};
use crate::common::stats::{cdf_metric, percentile, CDF_QUANTILES};
use crate::common::ws::{self, FrameReader};
use crate::common::ToolError;

/// The mask every client frame uses. RFC 6455 wants it unpredictable to defeat cache
/// poisoning through broken intermediaries; on loopback benchmarks a fixed key costs the same.
const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

fn payload(size: usize) -> Vec<u8> {
    (0..size).map(|i| (i % 251) as u8).collect()
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Emits the proxy CPU spent between `before` and now, divided by `units`.
pub fn put_cpu(
    m: &mut Metrics,
    t: &Target,
    before: Option<Duration>,
    units: f64,
    metric: &str,
    scale: f64,
) -> Result<(), ToolError> {
    if let (Some(b), Some(a)) = (before, t.cpu()?) {
        let spent = a.saturating_sub(b).as_secs_f64();
        m.put("proxy_cpu_s", spent);
        m.put(metric, spent * scale / units.max(1.0));
    }
    Ok(())
}

/// The headline percentiles, plus the fixed quantile set the report draws CDFs from (a few
/// dozen lines per run, however many samples there were).
fn put_latency(m: &mut Metrics, samples: &mut [u64]) {
    samples.sort_unstable();
    for (name, p) in [("p50_us", 50.0), ("p99_us", 99.0), ("p999_us", 99.9)] {
        if let Some(ns) = percentile(samples, p) {
            m.put(name, ns as f64 / 1000.0);
        }
    }
    for &q in CDF_QUANTILES {
        if let Some(ns) = percentile(samples, q) {
            m.put(&cdf_metric(q), ns as f64 / 1000.0);
        }
    }
    m.put("samples", samples.len() as f64);
}

/// Scenario 1: one WebSocket, `rounds` round trips of `size`-byte binary frames, one at a time.
pub async fn pingpong(
    t: &Target,
    rounds: usize,
    warmup: usize,
    size: usize,
) -> Result<Metrics, ToolError> {
    let mut m = Metrics::default();
    let (mut c, rest) = t.connect_ws().await?;
    let mut reader = FrameReader::with_leftover(&rest);
    let body = payload(size);
    let mut frame = Vec::with_capacity(size + 14);
    ws::encode_frame(&mut frame, ws::OP_BINARY, &body, Some(MASK));
    let mut samples = Vec::with_capacity(rounds);
    let mut cpu_before = None;
    let mut started = Instant::now();
    for i in 0..warmup + rounds {
        if i == warmup {
            cpu_before = t.cpu()?;
            started = Instant::now();
        }
        let sent = Instant::now();
        c.write_all(&frame).await?;
        c.flush().await?;
        let f =
            reader.next(&mut c).await?.ok_or(ToolError::Ws("closed during ping-pong".into()))?;
        let rtt = sent.elapsed();
        if f.opcode != ws::OP_BINARY || f.payload != &body[..] {
            return Err(ToolError::Ws("echo differs from what was sent".into()));
        }
        if i >= warmup {
            samples.push(rtt.as_nanos() as u64);
        }
    }
    let elapsed = started.elapsed();
    put_cpu(&mut m, t, cpu_before, rounds as f64, "cpu_us_per_rt", 1e6)?;
    m.put("mean_us", micros(elapsed) / rounds as f64);
    put_latency(&mut m, &mut samples);
    Ok(m)
}

/// Opens `n` WebSockets with at most `concurrency` upgrades in flight.
async fn open_many(
    t: &Target,
    n: usize,
    concurrency: usize,
) -> Result<Vec<(Conn, Vec<u8>)>, ToolError> {
    let sem = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut set = JoinSet::new();
    for i in 0..n {
        let permit = sem
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| ToolError::Usage("semaphore closed".into()))?;
        let t = t.clone();
        set.spawn_local(async move {
            let r = t.connect_ws().await;
            drop(permit);
            r.map(|c| (i, c))
        });
    }
    let mut out: Vec<Option<(Conn, Vec<u8>)>> = (0..n).map(|_| None).collect();
    while let Some(r) = set.join_next().await {
        let (i, c) = r.map_err(|e| ToolError::Usage(format!("task failed: {e}")))??;
        out[i] = Some(c);
    }
    Ok(out.into_iter().flatten().collect())
}

/// Scenario 2: `conns` WebSockets each sending `rate` messages per second for `secs` seconds.
///
/// The sends of all connections are spread evenly: message `j` (over all connections) is due at
/// `t0 + j × period` on connection `j mod conns`, with `period = 1 / (rate × conns)`. A ticker
/// thread sleeps until each due time (tokio's timer has 1 ms granularity, far coarser than what
/// we measure) and hands `j` to that connection's writer; the payload carries `j`, so the reader
/// computes latency from the *scheduled* time whatever happened in between.
pub async fn paced(
    t: &Target,
    conns: usize,
    rate: f64,
    size: usize,
    secs: f64,
    warmup_secs: f64,
) -> Result<Metrics, ToolError> {
    let mut m = Metrics::default();
    if conns == 0 || rate <= 0.0 || size < 8 || secs <= 0.0 {
        return Err(ToolError::Usage("paced needs conns > 0, rate > 0, size ≥ 8, secs > 0".into()));
    }
    let per_conn = (rate * secs).round() as u64;
    let total = per_conn * conns as u64;
    let period = Duration::from_secs_f64(1.0 / (rate * conns as f64));
    let warmup_index = (warmup_secs * rate * conns as f64) as u64;
    let opened = open_many(t, conns, 32).await?;

    let t0 = Instant::now() + Duration::from_millis(100);
    let mut txs = Vec::with_capacity(conns);
    let mut tasks = JoinSet::new();
    let body = payload(size);
    for (conn, rest) in opened {
        let (mut rd, mut wr) = tokio::io::split(conn);
        let (tx, mut rx) = mpsc::unbounded_channel::<u64>();
        txs.push(tx);
        let mut body = body.clone();
        tasks.spawn_local(async move {
            let mut frame = Vec::with_capacity(size + 14);
            // Ends when the ticker drops the sender after the last message.
            while let Some(j) = rx.recv().await {
                body[..8].copy_from_slice(&j.to_le_bytes());
                frame.clear();
                ws::encode_frame(&mut frame, ws::OP_BINARY, &body, Some(MASK));
                wr.write_all(&frame).await?;
                wr.flush().await?;
            }
            Ok::<_, ToolError>(Paced::Writer)
        });
        tasks.spawn_local(async move {
            let mut reader = FrameReader::with_leftover(&rest);
            let mut lat = Vec::with_capacity(per_conn as usize);
            for _ in 0..per_conn {
                let f = reader
                    .next(&mut rd)
                    .await?
                    .ok_or(ToolError::Ws("closed while paced".into()))?;
                let now = Instant::now();
                let mut jb = [0u8; 8];
                jb.copy_from_slice(f.payload.get(..8).ok_or(ToolError::Ws("short echo".into()))?);
                let j = u64::from_le_bytes(jb);
                if j >= warmup_index {
                    let due = t0 + period.saturating_mul(u32::try_from(j).unwrap_or(u32::MAX));
                    lat.push(now.saturating_duration_since(due).as_nanos() as u64);
                }
            }
            Ok(Paced::Reader(lat))
        });
    }
    let cpu_before = t.cpu()?;
    let cpu_window = Instant::now();
    let ticker = std::thread::spawn(move || {
        tighten_timer_slack();
        // How late each send was handed over: the client's own share of the latency.
        let mut late = Vec::with_capacity(total as usize);
        for j in 0..total {
            let due = t0 + period.saturating_mul(u32::try_from(j).unwrap_or(u32::MAX));
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            late.push(Instant::now().saturating_duration_since(due).as_nanos() as u64);
            if txs[(j % txs.len() as u64) as usize].send(j).is_err() {
                break;
            }
        }
        late
    });
    let deadline = Duration::from_secs_f64(secs + warmup_secs.max(0.0) + 30.0);
    let mut samples = Vec::with_capacity(total as usize);
    let collect = async {
        while let Some(r) = tasks.join_next().await {
            match r.map_err(|e| ToolError::Usage(format!("task failed: {e}")))?? {
                Paced::Writer => {}
                Paced::Reader(lat) => samples.extend(lat),
            }
        }
        Ok::<(), ToolError>(())
    };
    tokio::time::timeout(deadline, collect)
        .await
        .map_err(|_| ToolError::Timeout("paced echoes"))??;
    let elapsed = t0.elapsed();
    let mut late = ticker.join().map_err(|_| ToolError::Usage("ticker panicked".into()))?;
    put_cpu(&mut m, t, cpu_before, total as f64, "cpu_us_per_msg", 1e6)?;
    // How much of its core the proxy needed for this load: the headroom left on it.
    if let Some(spent) = m.get("proxy_cpu_s") {
        m.put("cpu_busy_pct", 100.0 * spent / cpu_window.elapsed().as_secs_f64().max(1e-9));
    }
    m.put("messages", total as f64);
    m.put("elapsed_s", elapsed.as_secs_f64());
    late.sort_unstable();
    for (name, p) in [("ticker_late_p50_us", 50.0), ("ticker_late_p99_us", 99.0)] {
        m.put(name, percentile(&late, p).unwrap_or(0) as f64 / 1000.0);
    }
    put_latency(&mut m, &mut samples);
    Ok(m)
}

/// Scenario 7: `paced`'s streams while a reloader thread posts `configs` in turn to the
/// target's admin endpoint (`POST /load`, `Content-Type: text/caddyfile`, which Caddy 2.6 and
/// 2.11 and ringproxy all take) every `every`. Unlike `paced`, a stream that the target closes
/// is counted, not an error: that is what the scenario is there to show.
pub async fn reload(t: &Target, load: Streams, reloads: Reloads) -> Result<Metrics, ToolError> {
    let Streams { conns, rate, size, secs } = load;
    let Reloads { admin, configs, every } = reloads;
    let mut m = Metrics::default();
    if conns == 0 || rate <= 0.0 || size < 8 || secs <= 0.0 || configs.len() < 2 {
        return Err(ToolError::Usage(
            "reload needs conns, rate, size ≥ 8, secs and two configs".into(),
        ));
    }
    let per_conn = (rate * secs).round() as u64;
    let total = per_conn * conns as u64;
    let period = Duration::from_secs_f64(1.0 / (rate * conns as f64));
    let opened = open_many(t, conns, 32).await?;
    let t0 = Instant::now() + Duration::from_millis(100);
    let mut txs = Vec::with_capacity(conns);
    let mut tasks = JoinSet::new();
    let body = payload(size);
    for (conn, rest) in opened {
        let (mut rd, mut wr) = tokio::io::split(conn);
        let (tx, mut rx) = mpsc::unbounded_channel::<u64>();
        txs.push(tx);
        let mut body = body.clone();
        tasks.spawn_local(async move {
            let mut frame = Vec::with_capacity(size + 14);
            while let Some(j) = rx.recv().await {
                body[..8].copy_from_slice(&j.to_le_bytes());
                frame.clear();
                ws::encode_frame(&mut frame, ws::OP_BINARY, &body, Some(MASK));
                if wr.write_all(&frame).await.is_err() || wr.flush().await.is_err() {
                    break;
                }
            }
            Reloaded::Writer
        });
        tasks.spawn_local(async move {
            let mut reader = FrameReader::with_leftover(&rest);
            let mut lat = Vec::with_capacity(per_conn as usize);
            for _ in 0..per_conn {
                let frame = match reader.next(&mut rd).await {
                    Ok(Some(f)) if f.opcode == ws::OP_BINARY && f.payload.len() >= 8 => f,
                    // A close frame, EOF or a reset: the target dropped the stream.
                    _ => return Reloaded::Reader { latencies: lat, closed: true },
                };
                let now = Instant::now();
                let mut jb = [0u8; 8];
                jb.copy_from_slice(&frame.payload[..8]);
                let j = u64::from_le_bytes(jb);
                let due = t0 + period.saturating_mul(u32::try_from(j).unwrap_or(u32::MAX));
                lat.push(now.saturating_duration_since(due).as_nanos() as u64);
            }
            Reloaded::Reader { latencies: lat, closed: false }
        });
    }
    let stop_reloads = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reloader = {
        let stop = stop_reloads.clone();
        std::thread::spawn(move || {
            let (mut ok, mut failed) = (0u64, 0u64);
            let mut next = Instant::now() + every;
            let mut i = 1;
            while !stop.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(20));
                if Instant::now() < next {
                    continue;
                }
                next += every;
                match post_load(admin, &configs[i % configs.len()]) {
                    Ok(()) => ok += 1,
                    Err(_) => failed += 1,
                }
                i += 1;
            }
            (ok, failed)
        })
    };
    let ticker = std::thread::spawn(move || {
        tighten_timer_slack();
        for j in 0..total {
            let due = t0 + period.saturating_mul(u32::try_from(j).unwrap_or(u32::MAX));
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            // A stream the target closed has no writer any more: its frames are lost.
            let _ = txs[(j % txs.len() as u64) as usize].send(j);
        }
    });
    let mut samples = Vec::with_capacity(total as usize);
    let mut closed = 0u64;
    let collect = async {
        while let Some(r) = tasks.join_next().await {
            match r.map_err(|e| ToolError::Usage(format!("task failed: {e}")))? {
                Reloaded::Writer => {}
                Reloaded::Reader { latencies, closed: was_closed } => {
                    samples.extend(latencies);
                    closed += u64::from(was_closed);
                }
            }
        }
        Ok::<(), ToolError>(())
    };
    let deadline = Duration::from_secs_f64(secs + 30.0);
    tokio::time::timeout(deadline, collect)
        .await
        .map_err(|_| ToolError::Timeout("reload echoes"))??;
    // Reloads go on for the whole schedule, even when the target dropped every stream early.
    while !ticker.is_finished() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop_reloads.store(true, Ordering::SeqCst);
    ticker.join().map_err(|_| ToolError::Usage("ticker panicked".into()))?;
    let (ok, failed) = reloader.join().map_err(|_| ToolError::Usage("reloader panicked".into()))?;
    let echoed = samples.len() as u64;
    m.put("messages", total as f64);
    m.put("lost", total.saturating_sub(echoed) as f64);
    m.put("streams_closed", closed as f64);
    m.put("reloads_ok", ok as f64);
    m.put("reloads_failed", failed as f64);
    let longest = samples.iter().copied().max().unwrap_or(0);
    m.put("longest_stall_ms", longest as f64 / 1e6);
    put_latency(&mut m, &mut samples);
    Ok(m)
}

/// The paced streams of the reload scenario.
pub struct Streams {
    pub conns: usize,
    /// Messages per second per connection.
    pub rate: f64,
    pub size: usize,
    pub secs: f64,
}

/// What the reloader posts, where and how often.
pub struct Reloads {
    pub admin: std::net::SocketAddr,
    /// Caddyfiles posted in turn; the first is what the target started with.
    pub configs: Vec<Vec<u8>>,
    pub every: Duration,
}

/// `POST /load` with a Caddyfile; `Err` unless the answer is 2xx.
fn post_load(admin: std::net::SocketAddr, caddyfile: &[u8]) -> Result<(), ToolError> {
    use std::io::{Read, Write};
    let io = |e: std::io::Error| ToolError::Usage(format!("admin {admin}: {e}"));
    let mut conn =
        std::net::TcpStream::connect_timeout(&admin, Duration::from_secs(5)).map_err(io)?;
    conn.set_read_timeout(Some(Duration::from_secs(30))).map_err(io)?;
    let head = format!(
        "POST /load HTTP/1.1\r\nHost: {admin}\r\nContent-Type: text/caddyfile\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        caddyfile.len()
    );
    conn.write_all(head.as_bytes()).map_err(io)?;
    conn.write_all(caddyfile).map_err(io)?;
    let mut response = Vec::new();
    conn.read_to_end(&mut response).map_err(io)?;
    match response.get(9) {
        Some(b'2') => Ok(()),
        _ => Err(ToolError::Usage(format!(
            "admin {admin} refused the config: {}",
            String::from_utf8_lossy(&response)
        ))),
    }
}

/// What a reload-scenario connection's tasks hand back.
enum Reloaded {
    Writer,
    Reader { latencies: Vec<u64>, closed: bool },
}

/// What a paced connection's tasks hand back: the writer nothing, the reader its latencies.
enum Paced {
    Writer,
    Reader(Vec<u64>),
}

/// Scenario 4: a new connection per request (`Connection: close`), `concurrency` at a time, for
/// `secs` seconds. With --tls every connection is a full handshake (the client never resumes).
pub async fn connrate(t: &Target, secs: f64, concurrency: usize) -> Result<Metrics, ToolError> {
    let mut m = Metrics::default();
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let req =
        format!("GET /small HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n", t.host_header());
    let cpu_before = t.cpu()?;
    let started = Instant::now();
    let mut set = JoinSet::new();
    for _ in 0..concurrency.max(1) {
        let (t, done, failed, req) = (t.clone(), done.clone(), failed.clone(), req.clone());
        set.spawn_local(async move {
            // Bounded by the deadline; each pass is one connection with its own timeout.
            while Instant::now() < deadline {
                let one =
                    tokio::time::timeout(Duration::from_secs(10), one_request(&t, &req)).await;
                match one {
                    Ok(Ok(())) => done.fetch_add(1, Ordering::Relaxed),
                    Ok(Err(e)) => {
                        if failed.fetch_add(1, Ordering::Relaxed) == 0 {
                            eprintln!("connrate: {e}");
                        }
                        0
                    }
                    Err(_) => failed.fetch_add(1, Ordering::Relaxed),
                };
            }
        });
    }
    while set.join_next().await.is_some() {}
    let elapsed = started.elapsed().as_secs_f64();
    let n = done.load(Ordering::Relaxed);
    put_cpu(&mut m, t, cpu_before, n as f64, "cpu_us_per_conn", 1e6)?;
    m.put("conns", n as f64);
    m.put("errors", failed.load(Ordering::Relaxed) as f64);
    m.put("conn_per_s", n as f64 / elapsed);
    Ok(m)
}

async fn one_request(t: &Target, req: &str) -> Result<(), ToolError> {
    let mut c = t.connect().await?;
    c.write_all(req.as_bytes()).await?;
    c.flush().await?;
    let mut resp = Vec::with_capacity(512);
    let mut buf = [0u8; 2048];
    // Read to the server's close; bounded by the caller's timeout and the 64 KiB cap.
    loop {
        match c.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => resp.extend_from_slice(&buf[..n]),
            // A TLS peer that closes TCP without close_notify: fine once the body is complete.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(e.into()),
        }
        if resp.len() > 64 * 1024 {
            return Err(ToolError::Http("response larger than expected".into()));
        }
    }
    check_small_response(&resp)
}

/// Checks a complete `/small` response: status 200 and the whole Content-Length body.
pub fn check_small_response(resp: &[u8]) -> Result<(), ToolError> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut r = httparse::Response::new(&mut headers);
    let head_len = match r.parse(resp) {
        Ok(httparse::Status::Complete(n)) => n,
        _ => return Err(ToolError::Http("incomplete response head".into())),
    };
    if r.code != Some(200) {
        return Err(ToolError::Http(format!("status {:?}", r.code)));
    }
    let len = content_length(r.headers)?;
    if (resp.len() - head_len) as u64 != len {
        return Err(ToolError::Http("body length differs from Content-Length".into()));
    }
    Ok(())
}

fn content_length(headers: &[httparse::Header<'_>]) -> Result<u64, ToolError> {
    headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
        .and_then(|h| std::str::from_utf8(h.value).ok()?.trim().parse().ok())
        .ok_or_else(|| ToolError::Http("no valid Content-Length".into()))
}

/// One request or upgrade at a time: `rounds` `GET /small` on one keep-alive connection, then
/// `upgrades` WebSocket upgrades of `/ws`, each on a fresh connection whose connect (and TLS
/// handshake) is not timed. Reports `get_p50_us`/`get_p99_us` (request written to response
/// read) and `upgrade_p50_us`/`upgrade_p99_us` (upgrade request written to `101` read).
pub async fn sequential(
    t: &Target,
    rounds: usize,
    upgrades: usize,
    warmup: usize,
) -> Result<Metrics, ToolError> {
    let mut m = Metrics::default();
    let req = format!("GET /small HTTP/1.1\r\nHost: {}\r\n\r\n", t.host_header());
    let mut c = t.connect().await?;
    let mut gets = Vec::with_capacity(rounds);
    let mut resp = Vec::with_capacity(512);
    for i in 0..warmup + rounds {
        let sent = Instant::now();
        c.write_all(req.as_bytes()).await?;
        c.flush().await?;
        read_small_response(&mut c, &mut resp).await?;
        if i >= warmup {
            gets.push(sent.elapsed().as_nanos() as u64);
        }
    }
    drop(c);
    let mut ups = Vec::with_capacity(upgrades);
    for i in 0..warmup + upgrades {
        let mut c = t.connect().await?;
        let sent = Instant::now();
        ws::client_upgrade(&mut c, &t.host_header(), "/ws").await?;
        if i >= warmup {
            ups.push(sent.elapsed().as_nanos() as u64);
        }
    }
    for (name, samples) in [("get", &mut gets), ("upgrade", &mut ups)] {
        samples.sort_unstable();
        for (p_name, p) in [("p50_us", 50.0), ("p99_us", 99.0)] {
            if let Some(ns) = percentile(samples, p) {
                m.put(&format!("{name}_{p_name}"), ns as f64 / 1000.0);
            }
        }
        m.put(&format!("{name}_samples"), samples.len() as f64);
    }
    Ok(m)
}

/// Read one whole `/small` response (head and Content-Length body) into `resp`, and check it.
async fn read_small_response(c: &mut Conn, resp: &mut Vec<u8>) -> Result<(), ToolError> {
    resp.clear();
    let mut buf = [0u8; 2048];
    loop {
        let n = c.read(&mut buf).await?;
        if n == 0 {
            return Err(ToolError::Http("closed before the response ended".into()));
        }
        resp.extend_from_slice(&buf[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut r = httparse::Response::new(&mut headers);
        if let Ok(httparse::Status::Complete(head_len)) = r.parse(resp) {
            if (resp.len() - head_len) as u64 >= content_length(r.headers)? {
                return check_small_response(resp);
            }
        }
        if resp.len() > 64 * 1024 {
            return Err(ToolError::Http("response larger than expected".into()));
        }
    }
}

/// Scenario 5: download `bytes` bytes on one connection.
pub async fn bulk(t: &Target, bytes: u64) -> Result<Metrics, ToolError> {
    let mut m = Metrics::default();
    let mut c = t.connect().await?;
    let req = format!("GET /bytes/{bytes} HTTP/1.1\r\nHost: {}\r\n\r\n", t.host_header());
    let cpu_before = t.cpu()?;
    let started = Instant::now();
    c.write_all(req.as_bytes()).await?;
    c.flush().await?;
    let (head, rest) = ws::read_head(&mut c).await?;
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut r = httparse::Response::new(&mut headers);
    if !matches!(r.parse(&head), Ok(httparse::Status::Complete(_))) || r.code != Some(200) {
        return Err(ToolError::Http(format!("bulk answered {:?}", r.code)));
    }
    if content_length(r.headers)? != bytes {
        return Err(ToolError::Http("bulk Content-Length differs from the request".into()));
    }
    let mut got = rest.len() as u64;
    let mut buf = vec![0u8; 256 * 1024];
    // Bounded by `bytes`: every pass reads at least one byte or fails.
    while got < bytes {
        let n = c.read(&mut buf).await?;
        if n == 0 {
            return Err(ToolError::Http(format!("bulk ended after {got} of {bytes} bytes")));
        }
        got += n as u64;
    }
    let elapsed = started.elapsed().as_secs_f64();
    if got != bytes {
        return Err(ToolError::Http(format!("bulk sent {got} bytes, {bytes} expected")));
    }
    put_cpu(&mut m, t, cpu_before, bytes as f64 / 1e9, "cpu_s_per_gb", 1.0)?;
    m.put("mb_per_s", bytes as f64 / 1e6 / elapsed);
    Ok(m)
}

/// Scenario 6: `conns` WebSockets opened, each used once (one small echo, so every relay is
/// live end to end), then left idle; reports the proxy's RSS growth per connection.
pub async fn idle(t: &Target, conns: usize, settle: Duration) -> Result<Metrics, ToolError> {
    let mut m = Metrics::default();
    let w = t.watched.ok_or_else(|| ToolError::Usage("idle needs --pid".into()))?;
    let rss_before = w.rss_kib()?;
    let mut opened = open_many(t, conns, 32).await?;
    let mut frame = Vec::new();
    ws::encode_frame(&mut frame, ws::OP_BINARY, b"idle-check-0123", Some(MASK));
    let mut kept = Vec::with_capacity(opened.len());
    for (mut c, rest) in opened.drain(..) {
        c.write_all(&frame).await?;
        c.flush().await?;
        let mut reader = FrameReader::with_leftover(&rest);
        match reader.next(&mut c).await? {
            Some(f) if f.payload == b"idle-check-0123" => {}
            _ => return Err(ToolError::Ws("idle connection did not echo".into())),
        }
        kept.push(c);
    }
    tokio::time::sleep(settle).await;
    let rss_after = w.rss_kib()?;
    m.put("conns", kept.len() as f64);
    m.put("rss_before_kib", rss_before as f64);
    m.put("rss_after_kib", rss_after as f64);
    m.put("kib_per_conn", (rss_after as f64 - rss_before as f64) / kept.len().max(1) as f64);
    drop(kept);
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_response_must_be_complete_and_ok() {
        let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
        check_small_response(ok).unwrap();
        assert!(check_small_response(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nhello").is_err());
        assert!(
            check_small_response(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n").is_err()
        );
        assert!(check_small_response(b"HTTP/1.1 200 OK\r\n").is_err());
    }
}
