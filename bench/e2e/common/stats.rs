//! Percentiles of latency samples, the fixed quantile set recorded for CDF plots, and the
//! median/min/max summary used across rounds.

/// Nearest-rank percentile (`p` in 0..=100) of already sorted samples; `None` when empty.
///
/// Nearest-rank never interpolates, so p99.9 of 20,000 samples is an observed round trip (the
/// 19,980th), not an average of two.
pub fn percentile(sorted: &[u64], p: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let exact = p / 100.0 * sorted.len() as f64;
    // 99.9 % of 1,000 is 999.0000000000001 in binary floating point; that is rank 999.
    let rank =
        if (exact - exact.round()).abs() < 1e-6 { exact.round() } else { exact.ceil() } as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// The quantiles (in %) every latency scenario records as `cdf_p<q>_us` metrics, so that a
/// CDF can be drawn per target, protocol and round from a few lines instead of a sample dump:
/// every decile for the body, then denser steps into the tail, where the proxies differ.
pub const CDF_QUANTILES: &[f64] = &[
    1.0, 5.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0, 95.0, 98.0, 99.0, 99.5, 99.8,
    99.9, 99.95, 99.99,
];

/// The metric name under which quantile `q` (in %) of a latency distribution is recorded.
pub fn cdf_metric(q: f64) -> String {
    format!("cdf_p{q}_us")
}

/// The quantile (in %) a `cdf_p<q>_us` metric records; `None` for every other metric.
pub fn cdf_quantile(metric: &str) -> Option<f64> {
    let q: f64 = metric.strip_prefix("cdf_p")?.strip_suffix("_us")?.parse().ok()?;
    (0.0..=100.0).contains(&q).then_some(q)
}

/// Median, minimum and maximum of a set of per-round figures.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

/// The median of an even count is the mean of the two middle values.
pub fn spread(values: &[f64]) -> Option<Spread> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 };
    Some(Spread { median, min: v[0], max: v[n - 1] })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<u64> = (1..=1000).collect();
        assert_eq!(percentile(&v, 50.0), Some(500));
        assert_eq!(percentile(&v, 99.0), Some(990));
        assert_eq!(percentile(&v, 99.9), Some(999));
        assert_eq!(percentile(&v, 100.0), Some(1000));
        assert_eq!(percentile(&v, 0.0), Some(1));
        assert_eq!(percentile(&[], 50.0), None);
        assert_eq!(percentile(&[7], 99.9), Some(7));
    }

    #[test]
    fn cdf_metric_names_round_trip_to_their_quantile() {
        for &q in CDF_QUANTILES {
            assert_eq!(cdf_quantile(&cdf_metric(q)), Some(q));
        }
        assert_eq!(cdf_metric(1.0), "cdf_p1_us");
        assert_eq!(cdf_metric(99.99), "cdf_p99.99_us");
        assert_eq!(cdf_quantile("p99_us"), None);
        assert_eq!(cdf_quantile("cdf_p101_us"), None);
        assert_eq!(cdf_quantile("cdf_px_us"), None);
    }

    #[test]
    fn spread_of_odd_and_even_counts() {
        assert_eq!(spread(&[3.0, 1.0, 2.0]), Some(Spread { median: 2.0, min: 1.0, max: 3.0 }));
        assert_eq!(spread(&[4.0, 1.0, 2.0, 3.0]).map(|s| s.median), Some(2.5));
        assert_eq!(spread(&[f64::NAN]), None);
        assert_eq!(spread(&[]), None);
    }
}
