//! Scenario 3: HTTP keep-alive with wrk. We run wrk as a child (it inherits our CPU pinning and
//! OPENSSL_CONF, which bench/run uses to offer only TLS 1.3 with AES-128-GCM, like our own
//! clients), read the proxy's CPU around it, and turn wrk's text report into metric lines.

use std::process::Command;

use crate::client::{Metrics, Target};
use crate::common::ToolError;

/// What we take from wrk's report.
#[derive(Debug, Default, PartialEq)]
pub struct WrkReport {
    pub requests: u64,
    pub req_per_s: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    /// Non-2xx/3xx responses plus socket errors.
    pub errors: u64,
}

pub fn run(t: &Target, wrk: &str, conns: usize, secs: u64) -> Result<Metrics, ToolError> {
    let mut m = Metrics::default();
    let scheme = if t.is_tls() { "https" } else { "http" };
    let url = format!("{scheme}://{}/small", t.host_header());
    let cpu_before = t.cpu()?;
    let out = Command::new(wrk)
        .args([
            "-t1",
            &format!("-c{conns}"),
            &format!("-d{secs}s"),
            "--latency",
            "--timeout",
            "5s",
            &url,
        ])
        .output()
        .map_err(|e| ToolError::Usage(format!("cannot run {wrk}: {e}")))?;
    let cpu_after = t.cpu()?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(ToolError::Usage(format!(
            "wrk failed ({}): {}{}",
            out.status,
            text,
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    let r =
        parse(&text).ok_or_else(|| ToolError::Usage(format!("unparsable wrk output:\n{text}")))?;
    if let (Some(b), Some(a)) = (cpu_before, cpu_after) {
        let spent = a.saturating_sub(b).as_secs_f64();
        m.put("proxy_cpu_s", spent);
        m.put("cpu_us_per_req", spent * 1e6 / r.requests.max(1) as f64);
    }
    m.put("requests", r.requests as f64);
    m.put("errors", r.errors as f64);
    m.put("req_per_s", r.req_per_s);
    m.put("p50_us", r.p50_us);
    m.put("p99_us", r.p99_us);
    Ok(m)
}

/// Parses wrk 4's report; `None` when a required line is missing.
pub fn parse(text: &str) -> Option<WrkReport> {
    let mut r = WrkReport::default();
    let (mut got_rps, mut got_p99, mut got_req) = (false, false, false);
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["Requests/sec:", v] => {
                r.req_per_s = v.parse().ok()?;
                got_rps = true;
            }
            ["50%", v] => r.p50_us = duration_us(v)?,
            ["99%", v] => {
                r.p99_us = duration_us(v)?;
                got_p99 = true;
            }
            [n, "requests", "in", ..] => {
                r.requests = n.parse().ok()?;
                got_req = true;
            }
            ["Non-2xx", "or", "3xx", "responses:", n] => r.errors += n.parse::<u64>().ok()?,
            ["Socket", "errors:", rest @ ..] => {
                // "connect 0, read 0, write 0, timeout 0"
                for pair in rest.chunks(2) {
                    if let [_, n] = pair {
                        r.errors += n.trim_end_matches(',').parse::<u64>().ok()?;
                    }
                }
            }
            _ => {}
        }
    }
    (got_rps && got_p99 && got_req).then_some(r)
}

/// wrk prints durations as `812.00us`, `1.23ms`, `2.00s` (and `m`/`h` for very long ones).
fn duration_us(v: &str) -> Option<f64> {
    let split = v.find(|c: char| c.is_ascii_alphabetic())?;
    let (num, unit) = v.split_at(split);
    let n: f64 = num.parse().ok()?;
    let scale = match unit {
        "us" => 1.0,
        "ms" => 1e3,
        "s" => 1e6,
        "m" => 60e6,
        "h" => 3600e6,
        _ => return None,
    };
    Some(n * scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "Running 2s test @ http://localhost:19080/small
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.02ms  201.15us   5.01ms   90.00%
    Req/Sec    62.71k     1.20k   64.00k    80.00%
  Latency Distribution
     50%  812.00us
     75%    1.10ms
     90%    1.25ms
     99%    2.50ms
  124801 requests in 2.00s, 12.40MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 4
Requests/sec:  62400.50
Transfer/sec:      6.20MB
";

    #[test]
    fn parses_a_wrk_report() {
        let r = parse(SAMPLE).unwrap();
        assert_eq!(r.requests, 124_801);
        assert_eq!(r.req_per_s, 62_400.5);
        assert_eq!(r.p50_us, 812.0);
        assert_eq!(r.p99_us, 2_500.0);
        assert_eq!(r.errors, 7);
    }

    #[test]
    fn missing_lines_or_bad_units_are_refused() {
        assert_eq!(parse("Requests/sec: 5\n"), None);
        assert_eq!(duration_us("3.5s"), Some(3.5e6));
        assert_eq!(duration_us("12"), None);
        assert_eq!(duration_us("1.0ns"), None);
    }
}
