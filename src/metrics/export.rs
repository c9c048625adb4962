//! The Prometheus text exposition (format 0.0.4) of a [`Registry`]: every worker's counters
//! summed, the control plane's, upstream health, certificate expiry and the process's own.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{SystemTime, UNIX_EPOCH};

use super::names::{self, Family};
use super::process::ProcessStats;
use super::{
    Counter, Registry, WorkerMetrics, DURATION_BUCKETS, FIRST_STATUS, PROXY_HEADER_REFUSALS,
};

/// `Content-Type` of the exposition.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Render the whole exposition of `registry`, with `process` as the process metrics.
pub fn render(registry: &Registry, process: &ProcessStats) -> String {
    let mut out = String::with_capacity(8 * 1024);
    let workers = registry.workers();
    render_data_path(&workers, &mut out);
    render_upstreams(registry, &mut out);
    render_control(registry, &mut out);
    render_process(registry, process, &mut out);
    out
}

fn header(out: &mut String, family: Family) {
    let _ = writeln!(out, "# HELP {} {}", family.name, family.help);
    let _ = writeln!(out, "# TYPE {} {}", family.name, family.kind);
}

fn sum(
    workers: &[std::sync::Arc<WorkerMetrics>],
    counter: impl Fn(&WorkerMetrics) -> &Counter,
) -> u64 {
    workers.iter().map(|w| counter(w).get()).fold(0, u64::wrapping_add)
}

fn gauge_sum(
    workers: &[std::sync::Arc<WorkerMetrics>],
    gauge: impl Fn(&WorkerMetrics) -> u64,
) -> i64 {
    // Two's-complement deltas: the wrapping sum is the exact live count.
    workers.iter().map(|w| gauge(w)).fold(0u64, u64::wrapping_add) as i64
}

fn render_data_path(workers: &[std::sync::Arc<WorkerMetrics>], out: &mut String) {
    header(out, names::HTTP_REQUESTS);
    let codes = workers.first().map_or(0, |w| w.requests.len());
    for i in 0..codes {
        let n: u64 = workers.iter().map(|w| w.requests[i].get()).fold(0, u64::wrapping_add);
        if n > 0 {
            let code = FIRST_STATUS as usize + i;
            let _ = writeln!(out, "{}{{code=\"{code}\"}} {n}", names::HTTP_REQUESTS.name);
        }
    }

    let name = names::HTTP_REQUEST_DURATION.name;
    header(out, names::HTTP_REQUEST_DURATION);
    let mut cumulative = 0u64;
    for (i, le) in DURATION_BUCKETS.iter().enumerate() {
        cumulative += sum(workers, |w| &w.request_duration.buckets[i]);
        let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {cumulative}");
    }
    cumulative += sum(workers, |w| &w.request_duration.buckets[DURATION_BUCKETS.len()]);
    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {cumulative}");
    let nanos = sum(workers, |w| &w.request_duration.sum_nanos);
    let _ = writeln!(out, "{name}_sum {}", nanos as f64 / 1e9);
    let _ = writeln!(out, "{name}_count {cumulative}");

    header(out, names::WEBSOCKETS_OPEN);
    let open = gauge_sum(workers, |w| w.websockets_open.raw());
    let _ = writeln!(out, "{} {open}", names::WEBSOCKETS_OPEN.name);

    header(out, names::RELAYED_BYTES);
    let name = names::RELAYED_BYTES.name;
    let _ =
        writeln!(out, "{name}{{direction=\"upstream\"}} {}", sum(workers, |w| &w.relayed_upstream));
    let _ = writeln!(
        out,
        "{name}{{direction=\"downstream\"}} {}",
        sum(workers, |w| &w.relayed_downstream)
    );

    header(out, names::CONNECTIONS_OPEN);
    let name = names::CONNECTIONS_OPEN.name;
    let plain = gauge_sum(workers, |w| w.connections_open_plain.raw());
    let tls = gauge_sum(workers, |w| w.connections_open_tls.raw());
    let _ = writeln!(out, "{name}{{kind=\"plain\"}} {plain}");
    let _ = writeln!(out, "{name}{{kind=\"tls\"}} {tls}");

    header(out, names::CONNECTIONS_REFUSED);
    let name = names::CONNECTIONS_REFUSED.name;
    let _ = writeln!(
        out,
        "{name}{{cap=\"max_connections\"}} {}",
        sum(workers, |w| &w.refused_max_connections)
    );
    let _ = writeln!(
        out,
        "{name}{{cap=\"max_connections_per_ip\"}} {}",
        sum(workers, |w| &w.refused_per_ip)
    );

    header(out, names::CONNECTIONS_SHED);
    let _ = writeln!(
        out,
        "{} {}",
        names::CONNECTIONS_SHED.name,
        sum(workers, |w| &w.shed_idle_connections)
    );
    header(out, names::PROXY_PROTOCOL_REFUSED);
    let name = names::PROXY_PROTOCOL_REFUSED.name;
    for (i, reason) in PROXY_HEADER_REFUSALS.iter().enumerate() {
        let refused = sum(workers, |w| &w.proxy_header_refused[i]);
        let _ = writeln!(out, "{name}{{reason=\"{reason}\"}} {refused}");
    }

    header(out, names::TLS_HANDSHAKES);
    let name = names::TLS_HANDSHAKES.name;
    let _ = writeln!(out, "{name}{{result=\"ok\"}} {}", sum(workers, |w| &w.tls_handshakes_ok));
    let _ =
        writeln!(out, "{name}{{result=\"error\"}} {}", sum(workers, |w| &w.tls_handshakes_error));

    header(out, names::LOG_LINES_DROPPED);
    let dropped = sum(workers, |w| &w.log_lines_dropped);
    let _ = writeln!(out, "{} {dropped}", names::LOG_LINES_DROPPED.name);
}

fn render_upstreams(registry: &Registry, out: &mut String) {
    // address → (healthy on every worker, requests in flight)
    let mut upstreams: BTreeMap<String, (bool, u64)> = BTreeMap::new();
    for entries in registry.upstreams() {
        for entry in entries {
            let slot = upstreams.entry(entry.address.clone()).or_insert((true, 0));
            slot.0 &= entry.stats.healthy.load(Relaxed) == 1;
            slot.1 = slot.1.wrapping_add(entry.stats.in_flight.raw());
        }
    }
    header(out, names::UPSTREAM_HEALTHY);
    for (address, (healthy, _)) in &upstreams {
        let _ = writeln!(
            out,
            "{}{{upstream=\"{}\"}} {}",
            names::UPSTREAM_HEALTHY.name,
            escape(address),
            u8::from(*healthy)
        );
    }
    header(out, names::UPSTREAM_IN_FLIGHT);
    for (address, (_, in_flight)) in &upstreams {
        let _ = writeln!(
            out,
            "{}{{upstream=\"{}\"}} {}",
            names::UPSTREAM_IN_FLIGHT.name,
            escape(address),
            *in_flight as i64
        );
    }
}

fn render_control(registry: &Registry, out: &mut String) {
    let control = &registry.control;
    header(out, names::CONFIG_RELOADS);
    let name = names::CONFIG_RELOADS.name;
    let _ = writeln!(out, "{name}{{result=\"success\"}} {}", control.reloads_ok.load(Relaxed));
    let _ = writeln!(out, "{name}{{result=\"failure\"}} {}", control.reloads_failed.load(Relaxed));
    header(out, names::CONFIG_LAST_RELOAD_SUCCESS);
    let ms = control.last_reload_success_ms.load(Relaxed);
    let _ = writeln!(out, "{} {}", names::CONFIG_LAST_RELOAD_SUCCESS.name, ms as f64 / 1e3);

    header(out, names::CERTIFICATE_EXPIRY);
    for (name, expiry) in registry.certificates() {
        let _ = writeln!(
            out,
            "{}{{name=\"{}\"}} {}",
            names::CERTIFICATE_EXPIRY.name,
            escape(&name),
            unix_seconds(expiry)
        );
    }
}

fn render_process(registry: &Registry, process: &ProcessStats, out: &mut String) {
    let mut gauge = |family: Family, value: Option<String>| {
        if let Some(value) = value {
            header(out, family);
            let _ = writeln!(out, "{} {value}", family.name);
        }
    };
    gauge(names::PROCESS_RESIDENT_MEMORY, process.resident_bytes.map(|v| v.to_string()));
    gauge(names::PROCESS_CPU, process.cpu.map(|d| d.as_secs_f64().to_string()));
    gauge(names::PROCESS_OPEN_FDS, process.open_fds.map(|v| v.to_string()));
    gauge(names::PROCESS_MAX_FDS, process.max_fds.map(|v| v.to_string()));
    gauge(names::PROCESS_START_TIME, Some(unix_seconds(registry.start_time()).to_string()));
}

fn unix_seconds(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

/// Label values escape backslash, double quote and newline (exposition format 0.0.4).
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::metrics::{UpstreamEntry, UpstreamStats};

    fn sample(text: &str, series: &str) -> Option<String> {
        text.lines()
            .find(|l| l.strip_prefix(series).is_some_and(|rest| rest.starts_with(' ')))
            .map(|l| l[series.len() + 1..].to_string())
    }

    #[test]
    fn counters_are_summed_over_workers_and_histograms_are_cumulative() {
        let registry = Registry::new();
        let (a, b) = (registry.add_worker(0), registry.add_worker(1));
        a.request(200, Duration::from_micros(300));
        b.request(200, Duration::from_millis(3));
        b.request(502, Duration::from_secs(20));
        a.websockets_open.inc();
        a.websockets_open.inc();
        b.websockets_open.dec();
        a.relayed_upstream.add(100);
        b.relayed_upstream.add(23);
        let text = render(&registry, &ProcessStats::default());
        assert_eq!(sample(&text, "ringproxy_http_requests_total{code=\"200\"}").unwrap(), "2");
        assert_eq!(sample(&text, "ringproxy_http_requests_total{code=\"502\"}").unwrap(), "1");
        assert!(sample(&text, "ringproxy_http_requests_total{code=\"404\"}").is_none());
        let bucket = |le: &str| {
            sample(&text, &format!("ringproxy_http_request_duration_seconds_bucket{{le=\"{le}\"}}"))
        };
        assert_eq!(bucket("0.0005").unwrap(), "1");
        assert_eq!(bucket("0.005").unwrap(), "2");
        assert_eq!(bucket("10").unwrap(), "2");
        assert_eq!(bucket("+Inf").unwrap(), "3");
        assert_eq!(sample(&text, "ringproxy_http_request_duration_seconds_count").unwrap(), "3");
        assert_eq!(sample(&text, "ringproxy_websockets_open").unwrap(), "1");
        assert_eq!(
            sample(&text, "ringproxy_relayed_bytes_total{direction=\"upstream\"}").unwrap(),
            "123"
        );
    }

    #[test]
    fn an_upstream_is_healthy_only_when_every_worker_says_so() {
        let registry = Registry::new();
        let entry = |healthy: u64| UpstreamEntry {
            address: "127.0.0.1:8080".into(),
            stats: Arc::new(UpstreamStats { healthy: healthy.into(), ..UpstreamStats::default() }),
        };
        registry.set_upstreams(0, vec![entry(1)]);
        registry.set_upstreams(1, vec![entry(1)]);
        let text = render(&registry, &ProcessStats::default());
        assert_eq!(
            sample(&text, "ringproxy_upstream_healthy{upstream=\"127.0.0.1:8080\"}").unwrap(),
            "1"
        );
        registry.set_upstreams(1, vec![entry(0)]);
        let text = render(&registry, &ProcessStats::default());
        assert_eq!(
            sample(&text, "ringproxy_upstream_healthy{upstream=\"127.0.0.1:8080\"}").unwrap(),
            "0"
        );
    }

    #[test]
    fn every_family_has_help_and_type_and_label_values_are_escaped() {
        let registry = Registry::new();
        registry.set_certificates(vec![("a\"b\\c".into(), UNIX_EPOCH + Duration::from_secs(42))]);
        let process = ProcessStats {
            resident_bytes: Some(1),
            cpu: Some(Duration::from_millis(1500)),
            open_fds: Some(3),
            max_fds: Some(1024),
        };
        let text = render(&registry, &process);
        for family in names::ALL {
            assert!(text.contains(&format!("# HELP {} ", family.name)), "{}", family.name);
            assert!(
                text.contains(&format!("# TYPE {} {}\n", family.name, family.kind)),
                "{}",
                family.name
            );
        }
        assert!(text.contains("{name=\"a\\\"b\\\\c\"} 42\n"), "{text}");
        assert_eq!(sample(&text, "process_cpu_seconds_total").unwrap(), "1.5");
    }
}
