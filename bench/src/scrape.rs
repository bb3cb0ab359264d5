//! `portcullis-bench added`: the gateway's own added time over one measured window, from two
//! scrapes of its `/metrics` (before and after): the `portcullis_gateway_added_seconds`
//! histogram's buckets summed over every label set, differenced, and read as quantiles
//! (linear within a bucket, like Prometheus' `histogram_quantile`). Owns only that arithmetic
//! on Prometheus text; it opens no socket.

use std::{collections::BTreeMap, path::Path};

use anyhow::{Context, Result, bail};
use serde::Serialize;

/// The histogram read by default.
pub const ADDED: &str = "portcullis_gateway_added_seconds";

/// Cumulative bucket counts by upper bound (seconds), summed over label sets.
fn buckets(text: &str, metric: &str) -> BTreeMap<u64, f64> {
    let prefix = format!("{metric}_bucket{{");
    let mut out = BTreeMap::new();
    for line in text.lines().filter(|l| l.starts_with(&prefix)) {
        let Some(le_at) = line.find("le=\"") else { continue };
        let le_text = &line[le_at + 4..];
        let Some(end) = le_text.find('"') else { continue };
        let le = match &le_text[..end] {
            "+Inf" => u64::MAX,
            v => match v.parse::<f64>() {
                // Keyed in nanoseconds: exact for every bound the gateway exports.
                Ok(s) => (s * 1e9).round() as u64,
                Err(_) => continue,
            },
        };
        let Some(count) = line.rsplit(' ').next().and_then(|c| c.parse::<f64>().ok()) else { continue };
        *out.entry(le).or_insert(0.0) += count;
    }
    out
}

/// The added time of one window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Window {
    /// Requests recorded in the window.
    pub count: u64,
    /// Quantiles in µs (`None` when nothing was recorded).
    pub p50_us: Option<f64>,
    /// 99th percentile, µs.
    pub p99_us: Option<f64>,
    /// 99.9th percentile, µs.
    pub p999_us: Option<f64>,
}

/// `q` quantile (µs) of cumulative buckets `(upper bound ns, count)`, linear inside a bucket.
fn quantile(cum: &[(u64, f64)], q: f64) -> Option<f64> {
    let total = cum.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let (mut lo_le, mut lo_n) = (0u64, 0.0);
    for &(le, n) in cum {
        if n >= rank && n > lo_n {
            if le == u64::MAX {
                return Some(lo_le as f64 / 1e3); // beyond the last bound: report that bound
            }
            let frac = (rank - lo_n) / (n - lo_n);
            return Some((lo_le as f64 + frac * (le - lo_le) as f64) / 1e3);
        }
        (lo_le, lo_n) = (le, n);
    }
    None
}

/// The window between scrapes `before` and `after` of `metric`.
pub fn window(before: &str, after: &str, metric: &str) -> Result<Window> {
    let (b, a) = (buckets(before, metric), buckets(after, metric));
    if a.is_empty() {
        bail!("no {metric}_bucket lines in the second scrape");
    }
    let cum: Vec<(u64, f64)> =
        a.iter().map(|(le, n)| (*le, (n - b.get(le).copied().unwrap_or(0.0)).max(0.0))).collect();
    let count = cum.last().map_or(0.0, |c| c.1) as u64;
    Ok(Window {
        count,
        p50_us: quantile(&cum, 0.5),
        p99_us: quantile(&cum, 0.99),
        p999_us: quantile(&cum, 0.999),
    })
}

/// Reads the two scrape files and prints the window as one JSON line.
pub fn run(before: &Path, after: &Path, metric: &str) -> Result<()> {
    let read = |p: &Path| std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()));
    let w = window(&read(before)?, &read(after)?, metric)?;
    println!("{}", serde_json::to_string(&w)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scrape(counts: &[(&str, &str, u64)]) -> String {
        let mut s = String::from("# TYPE portcullis_gateway_added_seconds histogram\n");
        for (labels, le, n) in counts {
            s.push_str(&format!("portcullis_gateway_added_seconds_bucket{{{labels},le=\"{le}\"}} {n}\n"));
        }
        s.push_str("portcullis_requests_total{route=\"r\"} 5\n");
        s
    }

    #[test]
    fn differences_two_scrapes_over_label_sets() {
        let h1 = "protocol=\"http/1.1\",reply=\"proxied\"";
        let h2 = "protocol=\"h2\",reply=\"local\"";
        let before = scrape(&[(h1, "0.00001", 5), (h1, "0.00002", 5), (h1, "+Inf", 5)]);
        // After: 100 more in the window, 90 of them under 10 µs, 9 in 10..20 µs, 1 above.
        let after = scrape(&[
            (h1, "0.00001", 65),
            (h1, "0.00002", 70),
            (h1, "+Inf", 71),
            (h2, "0.00001", 30),
            (h2, "0.00002", 34),
            (h2, "+Inf", 34),
        ]);
        let w = window(&before, &after, ADDED).expect("window");
        assert_eq!(w.count, 100);
        let p50 = w.p50_us.expect("p50");
        assert!((p50 - 50.0 / 90.0 * 10.0).abs() < 1e-6, "{p50}");
        let p99 = w.p99_us.expect("p99");
        assert!((p99 - (10.0 + 10.0 * (99.0 - 90.0) / 9.0)).abs() < 1e-6, "{p99}");
        assert_eq!(w.p999_us, Some(20.0), "beyond the last finite bound: that bound");
    }

    #[test]
    fn empty_window_and_missing_metric() {
        let s = scrape(&[("a=\"b\"", "0.001", 3), ("a=\"b\"", "+Inf", 3)]);
        let w = window(&s, &s, ADDED).expect("window");
        assert_eq!((w.count, w.p99_us), (0, None));
        assert!(window(&s, "nothing\n", ADDED).is_err());
    }
}
