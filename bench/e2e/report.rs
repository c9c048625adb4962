//! Turns the raw per-round results of a run into the markdown tables of docs/benchmarks.md:
//! medians with min–max over rounds, the proxy's added latency (paired with the direct run of
//! the same round), ratios to direct, and the subject (ringproxy) against the best of the anchors
//! (the other proxies it is measured against) on each row, naming that anchor. It also lists
//! those ratios with issue 12's target for each row, which plots.rs draws as bars.
//!
//! Input lines (tab-separated, written by bench/run): `round target scenario proto metric value`.

use std::collections::BTreeMap;

use crate::common::stats::{spread, Spread};
use crate::common::ToolError;

pub const BEGIN: &str = "<!-- bench:results:begin -->";
pub const END: &str = "<!-- bench:results:end -->";

/// How a row's per-round values are derived.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// The metric as measured.
    Plain,
    /// The metric minus the baseline's in the same round and protocol (added latency).
    Added,
}

/// Which way a row improves: it decides which anchor is the best on that row.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Better {
    Lower,
    Higher,
}

struct RowDef {
    metric: &'static str,
    label: &'static str,
    kind: Kind,
    better: Better,
}

/// A measured row where less is better (latency, CPU, memory, losses).
const fn row(metric: &'static str, label: &'static str) -> RowDef {
    RowDef { metric, label, kind: Kind::Plain, better: Better::Lower }
}

/// A measured row where more is better (rates, throughput).
const fn rate(metric: &'static str, label: &'static str) -> RowDef {
    RowDef { metric, label, kind: Kind::Plain, better: Better::Higher }
}

const fn added(metric: &'static str, label: &'static str) -> RowDef {
    RowDef { metric, label, kind: Kind::Added, better: Better::Lower }
}

struct Section {
    scenario: &'static str,
    title: &'static str,
    /// The section's name in a plot's row labels, where the title is too long.
    short: &'static str,
    rows: &'static [RowDef],
}

const SECTIONS: &[Section] = &[
    Section {
        scenario: "pingpong",
        title: "1. WebSocket ping-pong (1 connection, one 1,920-byte frame in flight)",
        short: "ping-pong",
        rows: &[
            row("p50_us", "round trip p50 (µs)"),
            row("p99_us", "round trip p99 (µs)"),
            row("p999_us", "round trip p99.9 (µs)"),
            added("p50_us", "added p50 (µs)"),
            added("p99_us", "added p99 (µs)"),
            added("p999_us", "added p99.9 (µs)"),
            row("cpu_us_per_rt", "proxy CPU per round trip (µs)"),
        ],
    },
    Section {
        scenario: "paced",
        title: "2. Paced audio streams (open loop, latency from the scheduled send time)",
        short: "paced 200",
        rows: &[
            row("p50_us", "latency p50 (µs)"),
            row("p99_us", "latency p99 (µs)"),
            row("p999_us", "latency p99.9 (µs)"),
            added("p50_us", "added p50 (µs)"),
            added("p99_us", "added p99 (µs)"),
            added("p999_us", "added p99.9 (µs)"),
            row("cpu_us_per_msg", "proxy CPU per message (µs)"),
            row("cpu_busy_pct", "proxy CPU busy (% of its core)"),
        ],
    },
    Section {
        scenario: "wrk",
        title: "3. HTTP keep-alive, small GET (wrk)",
        short: "keep-alive",
        rows: &[
            rate("req_per_s", "requests/s"),
            row("p99_us", "latency p99 (µs)"),
            row("cpu_us_per_req", "proxy CPU per request (µs)"),
        ],
    },
    Section {
        scenario: "connrate",
        title: "4. New connection per request (TLS: full handshake, no resumption)",
        short: "new connections",
        rows: &[
            rate("conn_per_s", "connections/s"),
            row("cpu_us_per_conn", "proxy CPU per connection (µs)"),
        ],
    },
    Section {
        scenario: "bulk",
        title: "5. Bulk download",
        short: "bulk",
        rows: &[rate("mb_per_s", "throughput (MB/s)"), row("cpu_s_per_gb", "proxy CPU per GB (s)")],
    },
    Section {
        scenario: "idle",
        title: "6. Idle WebSockets",
        short: "idle WS",
        rows: &[row("kib_per_conn", "proxy RSS growth per connection (KiB)")],
    },
    Section {
        scenario: "reload",
        title: "7. Reload under load (paced streams, a config change posted to /load every second)",
        short: "reload",
        rows: &[
            rate("reloads_ok", "reloads applied"),
            row("streams_closed", "streams closed by the target"),
            row("lost", "frames lost"),
            row("longest_stall_ms", "longest round trip (ms)"),
            row("p99_us", "latency p99 (µs)"),
        ],
    },
    Section {
        scenario: "paced2000",
        title: "8. Paced audio streams, 2,000 of them (25,000 frames/s)",
        short: "paced 2,000",
        rows: &[
            row("p50_us", "latency p50 (µs)"),
            row("p99_us", "latency p99 (µs)"),
            row("p999_us", "latency p99.9 (µs)"),
            added("p50_us", "added p50 (µs)"),
            added("p99_us", "added p99 (µs)"),
            added("p999_us", "added p99.9 (µs)"),
            row("cpu_us_per_msg", "proxy CPU per message (µs)"),
            row("cpu_busy_pct", "proxy CPU busy (% of its core)"),
        ],
    },
];

/// One of issue 12's targets for the subject's ratio to the best anchor. The bound's direction
/// is the row's: at most `ratio` where lower is better, at least where higher is.
struct RatioTarget {
    scenario: &'static str,
    metric: &'static str,
    kind: Kind,
    /// `None`: the same target over plaintext and TLS.
    proto: Option<&'static str>,
    ratio: f64,
}

const fn target(
    scenario: &'static str,
    metric: &'static str,
    kind: Kind,
    proto: Option<&'static str>,
    ratio: f64,
) -> RatioTarget {
    RatioTarget { scenario, metric, kind, proto, ratio }
}

/// Issue 12's Targets table, the rows that are ratios to the best anchor (idle RSS is a bound
/// in KiB, not a ratio, and is left out).
const RATIO_TARGETS: &[RatioTarget] = &[
    target("paced", "p99_us", Kind::Added, None, 0.7),
    target("paced2000", "cpu_us_per_msg", Kind::Plain, Some("plain"), 0.8),
    target("paced2000", "cpu_us_per_msg", Kind::Plain, Some("tls"), 0.7),
    target("pingpong", "p50_us", Kind::Added, None, 0.6),
    target("wrk", "req_per_s", Kind::Plain, Some("plain"), 1.3),
    target("wrk", "req_per_s", Kind::Plain, Some("tls"), 1.5),
    target("bulk", "mb_per_s", Kind::Plain, Some("plain"), 1.2),
    target("bulk", "mb_per_s", Kind::Plain, Some("tls"), 1.15),
    target("bulk", "cpu_s_per_gb", Kind::Plain, None, 0.7),
    target("connrate", "conn_per_s", Kind::Plain, Some("tls"), 2.0),
];

fn ratio_target(scenario: &str, r: &RowDef, proto: &str) -> Option<f64> {
    RATIO_TARGETS
        .iter()
        .find(|t| {
            t.scenario == scenario
                && t.metric == r.metric
                && t.kind == r.kind
                && t.proto.is_none_or(|p| p == proto)
        })
        .map(|t| t.ratio)
}

/// (scenario, proto, metric, target) → round → value.
pub type Results = BTreeMap<(String, String, String, String), BTreeMap<u32, f64>>;

/// Parses the raw results; malformed lines are errors (a silently dropped line is a wrong table).
pub fn parse_results(text: &str) -> Result<Results, ToolError> {
    let mut out = Results::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split('\t').collect();
        let bad = || ToolError::Usage(format!("results line {}: {line:?}", i + 1));
        let [round, target, scenario, proto, metric, value] = f.as_slice() else {
            return Err(bad());
        };
        let round: u32 = round.parse().map_err(|_| bad())?;
        let value: f64 = value.parse().map_err(|_| bad())?;
        out.entry((
            scenario.to_string(),
            proto.to_string(),
            metric.to_string(),
            target.to_string(),
        ))
        .or_default()
        .insert(round, value);
    }
    Ok(out)
}

/// Which targets to show and how they relate.
pub struct Layout {
    /// Column order; includes `baseline` and `subject`.
    pub targets: Vec<String>,
    pub baseline: String,
    pub subject: String,
    /// The targets the subject is compared with; the best of them on each row is its reference.
    pub anchors: Vec<String>,
    /// Targets with no figures yet and why (shown as "pending").
    pub pending: Vec<String>,
}

impl Layout {
    fn non_baseline(&self) -> Vec<&String> {
        self.targets.iter().filter(|t| **t != self.baseline).collect()
    }
}

/// Renders every section that has at least one figure.
pub fn render(results: &Results, layout: &Layout) -> String {
    let mut md = String::new();
    let protos = ["plain", "tls"];
    for sec in SECTIONS {
        let has_any = results.keys().any(|k| k.0 == sec.scenario);
        if !has_any {
            continue;
        }
        md.push_str(&format!("\n### {}\n\n", sec.title));
        let nb = layout.non_baseline();
        md.push_str("| metric | proto |");
        for t in &layout.targets {
            md.push_str(&format!(" {t} |"));
        }
        md.push_str(&format!(
            " ÷ {} ({}) | {} ÷ best anchor |\n",
            layout.baseline,
            join(&nb),
            layout.subject,
        ));
        md.push_str(&"|---".repeat(layout.targets.len() + 4));
        md.push_str("|\n");
        for r in sec.rows {
            for proto in protos {
                let cells: Vec<Option<Spread>> = layout
                    .targets
                    .iter()
                    .map(|t| figure(results, sec.scenario, proto, r, t, &layout.baseline))
                    .collect();
                if cells.iter().all(Option::is_none) {
                    continue;
                }
                md.push_str(&format!("| {} | {proto} |", r.label));
                for (t, c) in layout.targets.iter().zip(&cells) {
                    let text = match c {
                        Some(s) => fmt_spread(s),
                        None if layout.pending.contains(t) => "pending".to_owned(),
                        None => "—".to_owned(),
                    };
                    md.push_str(&format!(" {text} |"));
                }
                let median = |t: &String| {
                    layout
                        .targets
                        .iter()
                        .position(|x| x == t)
                        .and_then(|i| cells[i])
                        .map(|s| s.median)
                };
                let base = median(&layout.baseline).filter(|_| r.kind == Kind::Plain);
                let to_base: Vec<String> = nb.iter().map(|t| ratio(median(t), base)).collect();
                let to_best = match subject_to_best(layout, r.better, median) {
                    Some((name, x)) => format!("{}× ({name})", fmt_num(x)),
                    None => "—".to_owned(),
                };
                md.push_str(&format!(" {} | {to_best} |\n", to_base.join(" / ")));
            }
        }
    }
    md
}

/// One report row where the subject has a ratio to the best anchor.
#[derive(Debug, Clone, PartialEq)]
pub struct RatioRow {
    /// The section's short name.
    pub section: &'static str,
    pub label: &'static str,
    pub proto: &'static str,
    /// The subject's median over the best anchor's.
    pub ratio: f64,
    pub anchor: String,
    pub lower_is_better: bool,
    /// Issue 12's target for this ratio, if it sets one.
    pub target: Option<f64>,
}

/// Every row of the tables that has a ratio in its last column, in table order.
pub fn ratio_rows(results: &Results, layout: &Layout) -> Vec<RatioRow> {
    let mut out = Vec::new();
    for sec in SECTIONS {
        for r in sec.rows {
            for proto in ["plain", "tls"] {
                let median = |t: &String| {
                    figure(results, sec.scenario, proto, r, t, &layout.baseline).map(|s| s.median)
                };
                let Some((anchor, ratio)) = subject_to_best(layout, r.better, median) else {
                    continue;
                };
                out.push(RatioRow {
                    section: sec.short,
                    label: r.label,
                    proto,
                    ratio,
                    anchor: anchor.to_owned(),
                    lower_is_better: r.better == Better::Lower,
                    target: ratio_target(sec.scenario, r, proto),
                });
            }
        }
    }
    out
}

/// The subject's median over the best anchor's on a row, naming that anchor; `None` unless the
/// ratio means something (see `ratio_of`).
fn subject_to_best(
    layout: &Layout,
    better: Better,
    median: impl Fn(&String) -> Option<f64>,
) -> Option<(&str, f64)> {
    let (name, best) = best_anchor(&layout.anchors, better, &median)?;
    Some((name, ratio_of(median(&layout.subject), Some(best))?))
}

/// The anchor with the best median on a row (ties go to the first listed), with that median.
fn best_anchor(
    anchors: &[String],
    better: Better,
    median: impl Fn(&String) -> Option<f64>,
) -> Option<(&str, f64)> {
    let mut best: Option<(&str, f64)> = None;
    for a in anchors {
        let Some(m) = median(a) else { continue };
        let wins = match (best, better) {
            (None, _) => true,
            (Some((_, b)), Better::Lower) => m < b,
            (Some((_, b)), Better::Higher) => m > b,
        };
        if wins {
            best = Some((a, m));
        }
    }
    best
}

fn join(v: &[&String]) -> String {
    v.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" / ")
}

/// One cell's figure: the spread over rounds, for added rows paired by round with the baseline.
fn figure(
    results: &Results,
    scenario: &str,
    proto: &str,
    r: &RowDef,
    target: &str,
    baseline: &str,
) -> Option<Spread> {
    let key = |t: &str| (scenario.to_owned(), proto.to_owned(), r.metric.to_owned(), t.to_owned());
    let mine = results.get(&key(target))?;
    let values: Vec<f64> = match r.kind {
        Kind::Plain => mine.values().copied().collect(),
        Kind::Added => {
            if target == baseline {
                return None;
            }
            let base = results.get(&key(baseline))?;
            mine.iter().filter_map(|(round, v)| base.get(round).map(|b| v - b)).collect()
        }
    };
    spread(&values)
}

/// `num / den`; a dash unless both are measured and the reference is positive (an added latency
/// below zero is noise, and a ratio to it would read as a sign flip).
fn ratio(num: Option<f64>, den: Option<f64>) -> String {
    match ratio_of(num, den) {
        Some(r) => format!("{}×", fmt_num(r)),
        None => "—".to_owned(),
    }
}

fn ratio_of(num: Option<f64>, den: Option<f64>) -> Option<f64> {
    match (num, den) {
        (Some(n), Some(d)) if d > 0.0 && n >= 0.0 => Some(n / d),
        _ => None,
    }
}

fn fmt_spread(s: &Spread) -> String {
    if s.min == s.max {
        fmt_num(s.median)
    } else {
        format!("{} ({}–{})", fmt_num(s.median), fmt_num(s.min), fmt_num(s.max))
    }
}

/// Three significant figures or so, with thousands separators for large numbers.
pub fn fmt_num(v: f64) -> String {
    let a = v.abs();
    if a >= 1000.0 {
        let n = v.round() as i64;
        let digits = n.unsigned_abs().to_string();
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(c);
        }
        if n < 0 {
            out.insert(0, '-');
        }
        out
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// Replaces the text between the result markers of `doc` with `section` (appending the markers
/// when the document has none).
pub fn splice_into(doc: &str, section: &str) -> String {
    match (doc.find(BEGIN), doc.find(END)) {
        (Some(b), Some(e)) if b < e => {
            format!("{}{BEGIN}\n{}\n{END}{}", &doc[..b], section.trim_end(), &doc[e + END.len()..])
        }
        _ => format!("{}\n{BEGIN}\n{}\n{END}\n", doc.trim_end(), section.trim_end()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> Layout {
        Layout {
            targets: vec!["direct".into(), "caddy".into(), "ringproxy".into()],
            baseline: "direct".into(),
            subject: "ringproxy".into(),
            anchors: vec!["caddy".into()],
            pending: vec!["ringproxy".into()],
        }
    }

    fn layout_with_anchors(anchors: &[&str]) -> Layout {
        let mut targets = vec!["direct".to_owned()];
        targets.extend(anchors.iter().map(|a| a.to_string()));
        targets.push("ringproxy".into());
        Layout {
            targets,
            baseline: "direct".into(),
            subject: "ringproxy".into(),
            anchors: anchors.iter().map(|a| a.to_string()).collect(),
            pending: vec![],
        }
    }

    #[test]
    fn added_latency_pairs_rounds_and_ratios_use_medians() {
        let raw = "1\tdirect\tpingpong\tplain\tp50_us\t10\n\
                   2\tdirect\tpingpong\tplain\tp50_us\t20\n\
                   3\tdirect\tpingpong\tplain\tp50_us\t12\n\
                   1\tcaddy\tpingpong\tplain\tp50_us\t40\n\
                   2\tcaddy\tpingpong\tplain\tp50_us\t60\n\
                   3\tcaddy\tpingpong\tplain\tp50_us\t50\n";
        let md = render(&parse_results(raw).unwrap(), &layout());
        // Medians 12 and 50; added per round 30, 40, 38 → median 38.
        assert!(md.contains("| round trip p50 (µs) | plain | 12.0 (10.0–20.0) | 50.0 (40.0–60.0) | pending | 4.17× / — | — |"), "{md}");
        assert!(md.contains("| ringproxy ÷ best anchor |"), "{md}");
        assert!(
            md.contains("| added p50 (µs) | plain | — | 38.0 (30.0–40.0) | pending | — / — | — |"),
            "{md}"
        );
        assert!(!md.contains("| tls |"));
        assert!(!md.contains("Bulk"));
    }

    #[test]
    fn subject_is_compared_with_each_other_proxy() {
        let raw = "1\tdirect\tbulk\ttls\tmb_per_s\t2000\n\
                   1\tcaddy\tbulk\ttls\tmb_per_s\t1000\n\
                   1\tringproxy\tbulk\ttls\tmb_per_s\t1900\n";
        let md = render(&parse_results(raw).unwrap(), &layout());
        assert!(
            md.contains(
                "| throughput (MB/s) | tls | 2,000 | 1,000 | 1,900 | 0.50× / 0.95× | 1.90× (caddy) |"
            ),
            "{md}"
        );
    }

    #[test]
    fn the_best_anchor_is_the_lowest_for_costs_and_the_highest_for_rates() {
        let raw = "1\tdirect\tbulk\tplain\tmb_per_s\t2000\n\
                   1\tnginx\tbulk\tplain\tmb_per_s\t1000\n\
                   1\thaproxy\tbulk\tplain\tmb_per_s\t1600\n\
                   1\tringproxy\tbulk\tplain\tmb_per_s\t1200\n\
                   1\tnginx\tbulk\tplain\tcpu_s_per_gb\t0.2\n\
                   1\thaproxy\tbulk\tplain\tcpu_s_per_gb\t0.4\n\
                   1\tringproxy\tbulk\tplain\tcpu_s_per_gb\t0.1\n";
        let md = render(&parse_results(raw).unwrap(), &layout_with_anchors(&["nginx", "haproxy"]));
        assert!(md.contains("| 0.50× / 0.80× / 0.60× | 0.75× (haproxy) |"), "{md}");
        assert!(md.contains("| proxy CPU per GB (s) | plain | — | 0.20 | 0.40 | 0.10 | — / — / — | 0.50× (nginx) |"), "{md}");
    }

    #[test]
    fn anchors_without_figures_are_passed_over_and_none_gives_a_dash() {
        let raw = "1\tdirect\tpingpong\tplain\tp99_us\t20\n\
                   2\tdirect\tpingpong\tplain\tp99_us\t20\n\
                   1\thaproxy\tpingpong\tplain\tp99_us\t300\n\
                   2\thaproxy\tpingpong\tplain\tp99_us\t500\n\
                   1\tringproxy\tpingpong\tplain\tp99_us\t200\n\
                   2\tringproxy\tpingpong\tplain\tp99_us\t600\n\
                   1\tringproxy\tpingpong\tplain\tcpu_us_per_rt\t50\n";
        let md = render(&parse_results(raw).unwrap(), &layout_with_anchors(&["nginx", "haproxy"]));
        // p99 keeps its min–max over rounds; nginx has no figure, so HAProxy is the best anchor.
        assert!(md.contains("| round trip p99 (µs) | plain | 20.0 | — | 400 (300–500) | 400 (200–600) | — / 20.0× / 20.0× | 1.00× (haproxy) |"), "{md}");
        assert!(
            md.contains(
                "| proxy CPU per round trip (µs) | plain | — | — | — | 50.0 | — / — / — | — |"
            ),
            "{md}"
        );
    }

    #[test]
    fn a_ratio_to_a_negative_added_latency_is_a_dash() {
        let raw = "1\tdirect\tpaced\tplain\tp99_us\t900\n\
                   1\tnginx\tpaced\tplain\tp99_us\t800\n\
                   1\tringproxy\tpaced\tplain\tp99_us\t950\n";
        let md = render(&parse_results(raw).unwrap(), &layout_with_anchors(&["nginx"]));
        assert!(md.contains("| added p99 (µs) | plain | — | -100 | 50.0 | — / — | — |"), "{md}");
    }

    #[test]
    fn ratio_rows_follow_the_tables_and_carry_the_issue_targets() {
        let raw = "1\tdirect\tpaced\tplain\tp99_us\t100\n\
                   1\tnginx\tpaced\tplain\tp99_us\t300\n\
                   1\tringproxy\tpaced\tplain\tp99_us\t200\n\
                   1\tnginx\tpaced\tplain\tcpu_us_per_msg\t50\n\
                   1\tringproxy\tpaced\tplain\tcpu_us_per_msg\t40\n\
                   1\tringproxy\tpaced\ttls\tcpu_us_per_msg\t40\n";
        let rows = ratio_rows(&parse_results(raw).unwrap(), &layout_with_anchors(&["nginx"]));
        let got: Vec<(&str, &str, f64, Option<f64>)> =
            rows.iter().map(|r| (r.label, r.proto, r.ratio, r.target)).collect();
        // Added p99: (200 − 100) / (300 − 100); TLS CPU has no anchor figure, so no row.
        assert_eq!(
            got,
            [
                ("latency p99 (µs)", "plain", 200.0 / 300.0, None),
                ("added p99 (µs)", "plain", 0.5, Some(0.7)),
                ("proxy CPU per message (µs)", "plain", 0.8, None),
            ]
        );
        assert!(rows.iter().all(|r| r.section == "paced 200" && r.anchor == "nginx"));
        assert!(rows.iter().all(|r| r.lower_is_better));
    }

    #[test]
    fn malformed_results_are_refused() {
        assert!(parse_results("1\tdirect\tbulk\tplain\tmb_per_s\n").is_err());
        assert!(parse_results("x\tdirect\tbulk\tplain\tmb_per_s\t1\n").is_err());
        assert!(parse_results("\n").unwrap().is_empty());
    }

    #[test]
    fn numbers_are_formatted_by_magnitude() {
        assert_eq!(fmt_num(1234567.4), "1,234,567");
        assert_eq!(fmt_num(-1234.0), "-1,234");
        assert_eq!(fmt_num(123.4), "123");
        assert_eq!(fmt_num(12.34), "12.3");
        assert_eq!(fmt_num(0.1234), "0.12");
    }

    #[test]
    fn results_replace_only_the_marked_region() {
        let doc = format!("# T\nintro\n{BEGIN}\nold\n{END}\ntail\n");
        assert_eq!(splice_into(&doc, "new\n"), format!("# T\nintro\n{BEGIN}\nnew\n{END}\ntail\n"));
        assert_eq!(splice_into("# T\n", "x"), format!("# T\n{BEGIN}\nx\n{END}\n"));
    }
}
