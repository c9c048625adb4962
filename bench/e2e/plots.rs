//! SVG plots of a run, written by `loadgen report --plots DIR`: one latency CDF per latency
//! scenario and protocol (one line per target, from the `cdf_p<q>_us` quantiles the scenarios
//! record), and one bar chart of the subject's ratio to the best anchor on every report row that
//! has one, with a 1.0× line and issue 12's targets marked.
//!
//! The SVG is written by hand: plain shapes and text in a generic font family, no scripts, no
//! external resources, so GitHub's markdown viewer shows it as an image. The ratios and targets
//! come from report.rs (the tables and the bars must agree); this module only draws.

use std::fmt::Write as _;
use std::path::Path;

use crate::common::stats::{cdf_quantile, spread};
use crate::common::ToolError;
use crate::report::{fmt_num, ratio_rows, Layout, RatioRow, Results};

/// A latency scenario whose distribution is drawn, and what one of its samples is.
struct CdfScenario {
    scenario: &'static str,
    title: &'static str,
    samples: &'static str,
}

const CDF_SCENARIOS: &[CdfScenario] = &[
    CdfScenario {
        scenario: "pingpong",
        title: "WebSocket ping-pong, 1,920 B: round-trip latency",
        samples: "round trips",
    },
    CdfScenario {
        scenario: "paced",
        title: "Paced audio, 200 streams: latency from the scheduled send",
        samples: "messages",
    },
    CdfScenario {
        scenario: "paced2000",
        title: "Paced audio, 2,000 streams: latency from the scheduled send",
        samples: "messages",
    },
];

/// How a target is drawn: its name in legends, colour, and dashes (the floor and the variant
/// builds are dashed so the proxies stand out).
struct Style {
    target: &'static str,
    name: &'static str,
    colour: &'static str,
    dashed: bool,
}

const STYLES: &[Style] = &[
    Style { target: "direct", name: "direct (no proxy)", colour: "#7f7f7f", dashed: true },
    Style { target: "caddy-2.6.2", name: "Caddy 2.6.2", colour: "#1f77b4", dashed: false },
    Style { target: "caddy-2.11.7", name: "Caddy 2.11.7", colour: "#17becf", dashed: false },
    Style { target: "nginx", name: "nginx", colour: "#2ca02c", dashed: false },
    Style { target: "haproxy", name: "HAProxy", colour: "#9467bd", dashed: false },
    Style { target: "ringproxy", name: "ringproxy", colour: "#d62728", dashed: false },
    Style {
        target: "ringproxy-nometrics",
        name: "ringproxy, metrics off",
        colour: "#ff7f0e",
        dashed: true,
    },
];

/// Colours for targets the table does not know, in turn.
const SPARE_COLOURS: &[&str] = &["#8c564b", "#e377c2", "#bcbd22", "#393b79"];

/// One SVG written, with the alt text its markdown image gets.
#[derive(Debug, Clone, PartialEq)]
pub struct Plot {
    pub file: String,
    pub alt: String,
}

/// Writes every plot the results have data for into `dir` (created if missing) and returns
/// them in a fixed order; `run` names the run (date and mode) in every title.
pub fn write_plots(
    results: &Results,
    layout: &Layout,
    dir: &Path,
    run: &str,
) -> Result<Vec<Plot>, ToolError> {
    std::fs::create_dir_all(dir)?;
    let mut plots = Vec::new();
    for sc in CDF_SCENARIOS {
        for proto in ["plain", "tls"] {
            let Some(svg) = cdf_svg(results, layout, sc, proto, run) else { continue };
            let file = format!("{}-{proto}-cdf.svg", sc.scenario);
            std::fs::write(dir.join(&file), svg)?;
            plots.push(Plot { file, alt: format!("{} ({}), CDF per target", sc.title, proto) });
        }
    }
    if let Some(svg) = ratio_svg(&ratio_rows(results, layout), layout, run) {
        let file = "ratios.svg".to_owned();
        std::fs::write(dir.join(&file), svg)?;
        plots.push(Plot { file, alt: format!("{} ÷ best anchor per row", layout.subject) });
    }
    Ok(plots)
}

/// The markdown that embeds `plots`, each linked as `prefix/file`.
pub fn markdown(plots: &[Plot], prefix: &str) -> String {
    if plots.is_empty() {
        return String::new();
    }
    let mut md = String::from("\n### Plots\n\n");
    for p in plots {
        let _ = writeln!(md, "![{}]({prefix}/{})\n", p.alt, p.file);
    }
    md
}

/// One target's distribution: (latency µs, fraction ≤ it) in quantile order.
struct Series {
    target: String,
    points: Vec<(f64, f64)>,
}

impl Series {
    fn at(&self, fraction: f64) -> Option<f64> {
        self.points.iter().find(|(_, f)| (f - fraction).abs() < 1e-9).map(|(v, _)| *v)
    }
}

/// Each target's CDF: for every recorded quantile, its median over the rounds. The median of
/// each quantile keeps the curve monotone (medians preserve order) while one bad round cannot
/// bend it; the rounds' quantiles cannot be pooled into one distribution without the samples.
fn cdf_series(results: &Results, layout: &Layout, scenario: &str, proto: &str) -> Vec<Series> {
    let mut out = Vec::new();
    for target in &layout.targets {
        let mut points: Vec<(f64, f64)> = results
            .iter()
            .filter(|(k, _)| k.0 == scenario && k.1 == proto && k.3 == *target)
            .filter_map(|(k, rounds)| {
                let q = cdf_quantile(&k.2)?;
                let values: Vec<f64> = rounds.values().copied().collect();
                let median = spread(&values)?.median;
                // A log axis has no place for a zero latency (a message echoed on schedule).
                (median > 0.0).then_some((median, q / 100.0))
            })
            .collect();
        points.sort_by(|a, b| a.1.total_cmp(&b.1));
        if points.len() >= 2 {
            out.push(Series { target: target.clone(), points });
        }
    }
    out
}

/// How many rounds the scenario's distributions come from (the most any target has).
fn rounds_of(results: &Results, scenario: &str, proto: &str) -> usize {
    results
        .iter()
        .filter(|(k, _)| k.0 == scenario && k.1 == proto && cdf_quantile(&k.2).is_some())
        .map(|(_, rounds)| rounds.len())
        .max()
        .unwrap_or(0)
}

fn style_of(target: &str, index: usize) -> (String, &'static str, bool) {
    match STYLES.iter().find(|s| s.target == target) {
        Some(s) => (s.name.to_owned(), s.colour, s.dashed),
        None => (target.to_owned(), SPARE_COLOURS[index % SPARE_COLOURS.len()], false),
    }
}

fn proto_name(proto: &str) -> &'static str {
    if proto == "tls" {
        "TLS"
    } else {
        "plaintext"
    }
}

const CDF_W: f64 = 780.0;
const CDF_H: f64 = 480.0;
const CDF_LEFT: f64 = 70.0;
const CDF_RIGHT: f64 = 560.0;
const CDF_TOP: f64 = 72.0;
const CDF_BOTTOM: f64 = 400.0;

fn cdf_svg(
    results: &Results,
    layout: &Layout,
    sc: &CdfScenario,
    proto: &str,
    run: &str,
) -> Option<String> {
    let series = cdf_series(results, layout, sc.scenario, proto);
    if series.is_empty() {
        return None;
    }
    let all = series.iter().flat_map(|s| s.points.iter().map(|p| p.0));
    let (lo, hi) = all.fold((f64::MAX, 0.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    // A little room either side of the data, and at least half a decade, so that close
    // curves are spread over the width instead of squeezed into one decade.
    let low = (lo / 1.15).log10();
    let high = (hi * 1.15).log10().max(low + 0.5);
    let span = high - low;
    let x = |v: f64| CDF_LEFT + (v.log10() - low) / span * (CDF_RIGHT - CDF_LEFT);
    let y = |f: f64| CDF_BOTTOM - f * (CDF_BOTTOM - CDF_TOP);

    let mut svg = Svg::new(CDF_W, CDF_H);
    svg.text(
        CDF_W / 2.0,
        26.0,
        16.0,
        "middle",
        true,
        &format!("{}, {}", sc.title, proto_name(proto)),
    );
    svg.text(CDF_W / 2.0, 46.0, 12.0, "middle", false, &format!("run {run}"));
    // Grid and ticks: 1, 2 and 5 in every decade; 2 and 5 labelled only while there is room.
    for decade in low.floor() as i32..=high.ceil() as i32 {
        for m in [1.0, 2.0, 5.0] {
            let v = m * 10f64.powi(decade);
            if v.log10() < low || v.log10() > high {
                continue;
            }
            let major = m == 1.0;
            let px = x(v);
            svg.line(
                px,
                CDF_TOP,
                px,
                CDF_BOTTOM,
                if major { "#c8c8c8" } else { "#ececec" },
                1.0,
                false,
            );
            if major || span <= 2.5 {
                svg.text(px, CDF_BOTTOM + 16.0, 11.0, "middle", false, &tick_label(v));
            }
        }
    }
    for i in 0..=10 {
        let f = f64::from(i) / 10.0;
        svg.line(CDF_LEFT, y(f), CDF_RIGHT, y(f), "#ececec", 1.0, false);
        svg.text(CDF_LEFT - 6.0, y(f) + 4.0, 11.0, "end", false, &format!("{f:.1}"));
    }
    svg.rect_outline(CDF_LEFT, CDF_TOP, CDF_RIGHT - CDF_LEFT, CDF_BOTTOM - CDF_TOP);
    svg.text(
        (CDF_LEFT + CDF_RIGHT) / 2.0,
        CDF_BOTTOM + 36.0,
        12.0,
        "middle",
        false,
        "latency (µs, log scale)",
    );
    svg.vertical_text(
        18.0,
        (CDF_TOP + CDF_BOTTOM) / 2.0,
        12.0,
        &format!("fraction of {} at or below", sc.samples),
    );
    let first_q = series.iter().filter_map(|s| s.points.first()).map(|p| p.1).fold(1.0, f64::min);
    let last_q = series.iter().filter_map(|s| s.points.last()).map(|p| p.1).fold(0.0, f64::max);
    svg.text(
        CDF_W / 2.0,
        CDF_H - 22.0,
        11.0,
        "middle",
        false,
        &format!(
            "Each point: one quantile (p{} to p{}) of a target's distribution, the median of that \
             quantile over {} round(s).",
            fmt_quantile(first_q),
            fmt_quantile(last_q),
            rounds_of(results, sc.scenario, proto)
        ),
    );
    svg.text(
        CDF_W / 2.0,
        CDF_H - 8.0,
        11.0,
        "middle",
        false,
        "Further left is faster; the tail (p99 and above) is the top strip.",
    );
    // Legend: a line sample, the name, and the median and p99 for reading without the curve.
    let legend_x = CDF_RIGHT + 20.0;
    for (i, s) in series.iter().enumerate() {
        let (name, colour, dashed) = style_of(&s.target, i);
        let width = if s.target == layout.subject { 3.0 } else { 1.8 };
        let pts: Vec<(f64, f64)> = s.points.iter().map(|&(v, f)| (x(v), y(f))).collect();
        svg.polyline(&pts, colour, width, dashed, &s.target);
        let ly = CDF_TOP + 10.0 + 38.0 * i as f64;
        svg.line(legend_x, ly, legend_x + 26.0, ly, colour, width, dashed);
        svg.text(legend_x + 32.0, ly + 4.0, 12.0, "start", s.target == layout.subject, &name);
        let summary = match (s.at(0.5), s.at(0.99)) {
            (Some(p50), Some(p99)) => format!("p50 {} · p99 {} µs", fmt_num(p50), fmt_num(p99)),
            _ => String::new(),
        };
        svg.text(legend_x + 32.0, ly + 19.0, 10.5, "start", false, &summary);
    }
    Some(svg.finish())
}

/// A tick value without a spurious decimal (100, not 100.0) and with thousands separators.
fn tick_label(v: f64) -> String {
    if v >= 1000.0 {
        fmt_num(v)
    } else if v >= 1.0 {
        format!("{v:.0}")
    } else {
        format!("{v}")
    }
}

fn fmt_quantile(fraction: f64) -> String {
    let p = (fraction * 1e4).round() / 100.0;
    format!("{p}")
}

const BAR_W: f64 = 1000.0;
const BAR_LABELS_END: f64 = 360.0;
const BAR_START: f64 = 370.0;
const BAR_END: f64 = 740.0;
const BAR_TOP: f64 = 104.0;
const BAR_ROW: f64 = 20.0;

const BETTER_COLOUR: &str = "#2a9d4a";
const WORSE_COLOUR: &str = "#e07b39";

fn ratio_svg(rows: &[RatioRow], layout: &Layout, run: &str) -> Option<String> {
    if rows.is_empty() {
        return None;
    }
    let most = rows.iter().flat_map(|r| [Some(r.ratio), r.target]).flatten().fold(1.0, f64::max);
    let step = nice_step(most / 6.0);
    let axis_max = (most * 1.05 / step).ceil() * step;
    let x = |r: f64| BAR_START + r / axis_max * (BAR_END - BAR_START);
    let bottom = BAR_TOP + BAR_ROW * rows.len() as f64;
    let height = bottom + 64.0;

    let mut svg = Svg::new(BAR_W, height);
    let title = format!("{} ÷ the best anchor on each row", layout.subject);
    svg.text(BAR_W / 2.0, 26.0, 16.0, "middle", true, &title);
    svg.text(BAR_W / 2.0, 46.0, 12.0, "middle", false, &format!("run {run}"));
    let anchors = layout.anchors.iter().map(|a| style_of(a, 0).0).collect::<Vec<_>>().join(", ");
    let how = format!(
        "Medians over rounds; the best of {anchors} on each row is named. \
         ↓ lower is better, ↑ higher is better."
    );
    svg.text(BAR_W / 2.0, 64.0, 11.0, "middle", false, &how);
    let colours = format!(
        "Green: {} beats that anchor, orange: it does not; black tick: issue 12's target.",
        layout.subject
    );
    svg.text(BAR_W / 2.0, 79.0, 11.0, "middle", false, &colours);
    let ticks = (axis_max / step).round() as u32;
    for i in 0..=ticks {
        // Rounded so that 3 × 0.1 reads 0.3, not 0.30000000000000004.
        let tick = (f64::from(i) * step * 1e6).round() / 1e6;
        svg.line(x(tick), BAR_TOP - 4.0, x(tick), bottom, "#ececec", 1.0, false);
        svg.text(x(tick), bottom + 16.0, 11.0, "middle", false, &format!("{tick}×"));
    }
    svg.text(
        (BAR_START + BAR_END) / 2.0,
        bottom + 36.0,
        12.0,
        "middle",
        false,
        "ratio (linear scale)",
    );
    for (i, r) in rows.iter().enumerate() {
        let top = BAR_TOP + BAR_ROW * i as f64;
        let arrow = if r.lower_is_better { "↓" } else { "↑" };
        let label = format!("{} · {} · {} {arrow}", r.section, r.label, r.proto);
        svg.text(BAR_LABELS_END, top + 14.0, 11.5, "end", false, &label);
        let better = if r.lower_is_better { r.ratio < 1.0 } else { r.ratio > 1.0 };
        let colour = if better { BETTER_COLOUR } else { WORSE_COLOUR };
        svg.bar(BAR_START, top + 3.0, x(r.ratio) - BAR_START, BAR_ROW - 6.0, colour);
        let mut value = format!("{}× vs {}", fmt_num(r.ratio), style_of(&r.anchor, 0).0);
        if let Some(t) = r.target {
            svg.line(x(t), top + 1.0, x(t), top + BAR_ROW - 1.0, "#000000", 2.5, false);
            let bound = if r.lower_is_better { "≤" } else { "≥" };
            let _ = write!(value, " (target {bound} {}×)", fmt_num(t));
        }
        svg.text(BAR_END + 10.0, top + 14.0, 11.0, "start", false, &value);
    }
    svg.line(x(1.0), BAR_TOP - 8.0, x(1.0), bottom, "#333333", 1.5, true);
    svg.text(x(1.0), BAR_TOP - 11.0, 10.5, "middle", false, "1.0× = best anchor");
    Some(svg.finish())
}

/// 1, 2 or 5 times a power of ten, the smallest at least `raw`.
fn nice_step(raw: f64) -> f64 {
    let base = 10f64.powf(raw.max(1e-6).log10().floor());
    [1.0, 2.0, 5.0, 10.0].into_iter().map(|m| m * base).find(|s| *s >= raw).unwrap_or(10.0 * base)
}

/// An SVG document under construction; every text is escaped, every number rounded to 0.1 px.
struct Svg {
    out: String,
}

impl Svg {
    fn new(width: f64, height: f64) -> Self {
        let mut out = String::new();
        let _ = write!(
            out,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width:.0}\" height=\"{height:.0}\" \
             viewBox=\"0 0 {width:.0} {height:.0}\" font-family=\"sans-serif\">\n\
             <rect x=\"0\" y=\"0\" width=\"{width:.0}\" height=\"{height:.0}\" fill=\"#ffffff\"/>\n"
        );
        Svg { out }
    }

    fn text(&mut self, x: f64, y: f64, size: f64, anchor: &str, bold: bool, text: &str) {
        let weight = if bold { " font-weight=\"bold\"" } else { "" };
        let _ = writeln!(
            self.out,
            "<text x=\"{x:.1}\" y=\"{y:.1}\" font-size=\"{size}\" text-anchor=\"{anchor}\"{weight} \
             fill=\"#222222\">{}</text>",
            escape(text)
        );
    }

    fn vertical_text(&mut self, x: f64, y: f64, size: f64, text: &str) {
        let _ = writeln!(
            self.out,
            "<text x=\"{x:.1}\" y=\"{y:.1}\" font-size=\"{size}\" text-anchor=\"middle\" \
             fill=\"#222222\" transform=\"rotate(-90 {x:.1} {y:.1})\">{}</text>",
            escape(text)
        );
    }

    #[allow(clippy::too_many_arguments, reason = "a line is its ends and its stroke")]
    fn line(&mut self, x1: f64, y1: f64, x2: f64, y2: f64, colour: &str, width: f64, dashed: bool) {
        let dash = if dashed { " stroke-dasharray=\"6 4\"" } else { "" };
        let _ = writeln!(
            self.out,
            "<line x1=\"{x1:.1}\" y1=\"{y1:.1}\" x2=\"{x2:.1}\" y2=\"{y2:.1}\" stroke=\"{colour}\" \
             stroke-width=\"{width}\"{dash}/>"
        );
    }

    fn rect_outline(&mut self, x: f64, y: f64, w: f64, h: f64) {
        let _ = writeln!(
            self.out,
            "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{h:.1}\" fill=\"none\" \
             stroke=\"#999999\"/>"
        );
    }

    fn bar(&mut self, x: f64, y: f64, w: f64, h: f64, colour: &str) {
        let _ = writeln!(
            self.out,
            "<rect class=\"bar\" x=\"{x:.1}\" y=\"{y:.1}\" width=\"{:.2}\" height=\"{h:.1}\" \
             fill=\"{colour}\"/>",
            w.max(0.0)
        );
    }

    fn polyline(
        &mut self,
        points: &[(f64, f64)],
        colour: &str,
        width: f64,
        dashed: bool,
        id: &str,
    ) {
        let dash = if dashed { " stroke-dasharray=\"6 4\"" } else { "" };
        let pts: Vec<String> = points.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
        let _ = writeln!(
            self.out,
            "<polyline class=\"series\" data-target=\"{}\" points=\"{}\" fill=\"none\" \
             stroke=\"{colour}\" stroke-width=\"{width}\"{dash} stroke-linejoin=\"round\"/>",
            escape(id),
            pts.join(" ")
        );
    }

    fn finish(mut self) -> String {
        self.out.push_str("</svg>\n");
        self.out
    }
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

/// A minimal XML well-formedness check for the SVG written here (and by the self-test): tags
/// nest and close, attributes are quoted, `&` starts an entity, one root element.
#[cfg(test)]
pub fn check_well_formed(xml: &str) -> Result<(), String> {
    let mut open: Vec<&str> = Vec::new();
    let mut roots = 0;
    let mut rest = xml;
    while let Some(lt) = rest.find('<') {
        check_text(&rest[..lt])?;
        if open.is_empty() && !rest[..lt].trim().is_empty() {
            return Err(format!("text outside the root: {:?}", &rest[..lt]));
        }
        let gt = rest[lt..].find('>').ok_or("unterminated tag")? + lt;
        let tag = &rest[lt + 1..gt];
        rest = &rest[gt + 1..];
        if let Some(name) = tag.strip_prefix('/') {
            match open.pop() {
                Some(o) if o == name.trim() => {}
                other => return Err(format!("</{name}> closes {other:?}")),
            }
            continue;
        }
        let self_closing = tag.ends_with('/');
        let body = tag.trim_end_matches('/');
        let name_end = body.find(char::is_whitespace).unwrap_or(body.len());
        let name = &body[..name_end];
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == ':') {
            return Err(format!("bad element name in <{tag}>"));
        }
        check_attributes(&body[name_end..])?;
        if open.is_empty() {
            roots += 1;
        }
        if !self_closing {
            open.push(name);
        }
    }
    check_text(rest)?;
    match (open.last(), roots, rest.trim().is_empty()) {
        (Some(o), _, _) => Err(format!("<{o}> is never closed")),
        (None, 1, true) => Ok(()),
        _ => Err(format!("{roots} root elements, trailing {rest:?}")),
    }
}

#[cfg(test)]
fn check_text(text: &str) -> Result<(), String> {
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        let semi = rest[amp..].find(';').ok_or_else(|| format!("bare & in {text:?}"))?;
        let entity = &rest[amp + 1..amp + semi];
        if !matches!(entity, "amp" | "lt" | "gt" | "quot" | "apos") {
            return Err(format!("unknown entity &{entity};"));
        }
        rest = &rest[amp + semi + 1..];
    }
    if text.contains('>') {
        return Err(format!("> in text {text:?}"));
    }
    Ok(())
}

#[cfg(test)]
fn check_attributes(mut attrs: &str) -> Result<(), String> {
    let mut seen = Vec::new();
    loop {
        attrs = attrs.trim_start();
        if attrs.is_empty() {
            return Ok(());
        }
        let eq = attrs.find('=').ok_or_else(|| format!("attribute without a value: {attrs:?}"))?;
        let name = attrs[..eq].trim();
        if name.is_empty() || name.contains(char::is_whitespace) || seen.contains(&name) {
            return Err(format!("bad or repeated attribute {name:?}"));
        }
        seen.push(name);
        let value = attrs[eq + 1..].strip_prefix('"').ok_or(format!("{name} is not quoted"))?;
        let close = value.find('"').ok_or(format!("{name}'s value is not closed"))?;
        check_text(&value[..close])?;
        if value[..close].contains('<') {
            return Err(format!("< in {name}'s value"));
        }
        attrs = &value[close + 1..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::parse_results;

    fn layout() -> Layout {
        let targets: Vec<String> =
            ["direct", "caddy-2.6.2", "nginx", "ringproxy"].iter().map(|t| t.to_string()).collect();
        Layout {
            anchors: vec!["caddy-2.6.2".into(), "nginx".into()],
            baseline: "direct".into(),
            subject: "ringproxy".into(),
            pending: vec![],
            targets,
        }
    }

    /// Two rounds of ping-pong quantiles per target (each target `scale` times direct's), plus
    /// bulk and keep-alive rows for the ratio bars.
    fn synthetic() -> String {
        let mut raw = String::new();
        let scales = [("direct", 1.0), ("caddy-2.6.2", 3.0), ("nginx", 2.5), ("ringproxy", 2.0)];
        for round in 1..=2 {
            for (target, scale) in scales {
                for (q, us) in [(1.0, 40.0), (50.0, 50.0), (99.0, 80.0), (99.99, 300.0)] {
                    let v = us * scale * f64::from(round);
                    let metric = crate::common::stats::cdf_metric(q);
                    raw.push_str(&format!("{round}\t{target}\tpingpong\tplain\t{metric}\t{v}\n"));
                }
            }
        }
        raw.push_str(
            "1\tcaddy-2.6.2\tbulk\tplain\tmb_per_s\t1000\n\
             1\tnginx\tbulk\tplain\tmb_per_s\t2000\n\
             1\tringproxy\tbulk\tplain\tmb_per_s\t3000\n\
             1\tcaddy-2.6.2\twrk\ttls\treq_per_s\t400\n\
             1\tnginx\twrk\ttls\treq_per_s\t200\n\
             1\tringproxy\twrk\ttls\treq_per_s\t200\n",
        );
        raw
    }

    fn temp_dir(name: &str) -> std::path::PathBuf {
        let dir =
            std::env::temp_dir().join(format!("ringproxy-plots-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn attribute(element: &str, name: &str) -> String {
        let start = element.find(&format!(" {name}=\"")).unwrap() + name.len() + 3;
        element[start..].split('"').next().unwrap().to_owned()
    }

    #[test]
    fn a_cdf_and_the_ratio_bars_are_written_as_well_formed_svg() {
        let dir = temp_dir("written");
        let results = parse_results(&synthetic()).unwrap();
        let plots = write_plots(&results, &layout(), &dir, "2026-12-01 (quick mode)").unwrap();
        let files: Vec<&str> = plots.iter().map(|p| p.file.as_str()).collect();
        assert_eq!(files, ["pingpong-plain-cdf.svg", "ratios.svg"]);
        for p in &plots {
            let svg = std::fs::read_to_string(dir.join(&p.file)).unwrap();
            check_well_formed(&svg).unwrap_or_else(|e| panic!("{}: {e}\n{svg}", p.file));
            assert!(svg.contains("run 2026-12-01 (quick mode)"), "{svg}");
            assert!(!svg.contains("<script"));
        }
        let md = markdown(&plots, "bench");
        assert!(md.contains("![WebSocket ping-pong"), "{md}");
        assert!(md.contains("](bench/pingpong-plain-cdf.svg)"), "{md}");
        assert!(md.contains("](bench/ratios.svg)"), "{md}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_cdf_has_one_series_per_target_from_the_medians_of_its_quantiles() {
        let results = parse_results(&synthetic()).unwrap();
        let series = cdf_series(&results, &layout(), "pingpong", "plain");
        let names: Vec<&str> = series.iter().map(|s| s.target.as_str()).collect();
        assert_eq!(names, ["direct", "caddy-2.6.2", "nginx", "ringproxy"]);
        // Rounds 1 and 2 are 1× and 2× the base: the median is 1.5×.
        assert_eq!(
            series[3].points,
            [(120.0, 0.01), (150.0, 0.5), (240.0, 0.99), (900.0, 99.99 / 100.0)]
        );
        let svg = cdf_svg(&results, &layout(), &CDF_SCENARIOS[0], "plain", "r").unwrap();
        assert_eq!(svg.matches("<polyline class=\"series\"").count(), 4);
        for target in names {
            assert!(svg.contains(&format!("data-target=\"{target}\"")), "{target}");
        }
        assert!(svg.contains("Caddy 2.6.2") && svg.contains("direct (no proxy)"));
        assert!(svg.contains("p50 150 · p99 240 µs"), "{svg}");
        assert!(svg.contains("over 2 round(s)"), "{svg}");
        assert!(svg.contains("latency (µs, log scale)"));
    }

    #[test]
    fn ratio_bars_are_as_long_as_their_ratios_and_carry_the_issue_targets() {
        let results = parse_results(&synthetic()).unwrap();
        let rows = ratio_rows(&results, &layout());
        // In table order: keep-alive TLS, 200 over Caddy's 400; bulk, 3000 over nginx's 2000.
        assert_eq!(rows.len(), 2, "{rows:?}");
        let summary = |r: &RatioRow| (r.ratio, r.anchor.clone(), r.target);
        assert_eq!(summary(&rows[0]), (0.5, "caddy-2.6.2".to_owned(), Some(1.5)));
        assert_eq!(summary(&rows[1]), (1.5, "nginx".to_owned(), Some(1.2)));
        let svg = ratio_svg(&rows, &layout(), "r").unwrap();
        check_well_formed(&svg).unwrap();
        let widths: Vec<f64> = svg
            .lines()
            .filter(|l| l.starts_with("<rect class=\"bar\""))
            .map(|l| attribute(l, "width").parse().unwrap())
            .collect();
        assert_eq!(widths.len(), 2);
        assert!((widths[1] / widths[0] - 3.0).abs() < 0.01, "{widths:?}");
        assert!(svg.contains("1.50× vs nginx (target ≥ 1.20×)"), "{svg}");
        assert!(svg.contains("1.0× = best anchor"));
        // The better ratio is green, the worse orange.
        assert!(svg.contains(&format!("fill=\"{BETTER_COLOUR}\"")));
        assert!(svg.contains(&format!("fill=\"{WORSE_COLOUR}\"")));
    }

    #[test]
    fn missing_targets_and_metrics_are_skipped() {
        let dir = temp_dir("missing");
        // nginx has a single quantile (not a curve), Caddy none; no anchor has a ratio row.
        let raw = "1\tdirect\tpaced\ttls\tcdf_p50_us\t100\n\
                   1\tdirect\tpaced\ttls\tcdf_p99_us\t200\n\
                   1\tnginx\tpaced\ttls\tcdf_p50_us\t150\n\
                   1\tringproxy\tpaced\ttls\tcdf_p50_us\t0\n\
                   1\tringproxy\tpaced\ttls\tcdf_p99_us\t180\n\
                   1\tringproxy\tbulk\tplain\tmb_per_s\t3000\n";
        let results = parse_results(raw).unwrap();
        let plots = write_plots(&results, &layout(), &dir, "r").unwrap();
        assert_eq!(
            plots.iter().map(|p| p.file.as_str()).collect::<Vec<_>>(),
            ["paced-tls-cdf.svg"]
        );
        let svg = std::fs::read_to_string(dir.join("paced-tls-cdf.svg")).unwrap();
        check_well_formed(&svg).unwrap();
        // ringproxy's zero latency cannot sit on a log axis: one point left, so no curve.
        assert_eq!(svg.matches("<polyline class=\"series\"").count(), 1, "{svg}");
        assert!(svg.contains("data-target=\"direct\""));
        assert!(write_plots(&parse_results("").unwrap(), &layout(), &dir, "r").unwrap().is_empty());
        assert_eq!(markdown(&[], "bench"), "");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_well_formedness_check_rejects_broken_xml() {
        check_well_formed("<svg a=\"1\"><g><text>x &amp; y</text></g><line/></svg>\n").unwrap();
        for bad in [
            "<svg><g></svg>",
            "<svg a=1></svg>",
            "<svg>a & b</svg>",
            "<svg></svg><svg></svg>",
            "<svg a=\"1\" a=\"2\"></svg>",
            "<svg>",
            "text<svg></svg>",
        ] {
            assert!(check_well_formed(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn text_is_escaped_and_steps_are_round() {
        assert_eq!(escape("a<b & \"c\">"), "a&lt;b &amp; &quot;c&quot;&gt;");
        assert_eq!(nice_step(0.3), 0.5);
        assert_eq!(nice_step(1.2), 2.0);
        assert_eq!(nice_step(7.0), 10.0);
        assert_eq!(tick_label(1000.0), "1,000");
        assert_eq!(tick_label(20.0), "20");
        assert_eq!(fmt_quantile(0.9999), "99.99");
    }
}
