//! `portcullis-bench chart`: a dependency-free SVG chart of latency percentiles (p50 to max,
//! log scale) with one line per gateway, drawn from `load` JSON reports. Owns only the
//! drawing; it reads the reports and writes one file.

use std::{fmt::Write as _, path::Path};

use anyhow::{Context, Result, bail};
use serde_json::Value;

/// Percentile keys of a report's `latency_us`, in drawing order, with their axis labels.
const POINTS: [(&str, &str); 5] =
    [("p50", "p50"), ("p90", "p90"), ("p99", "p99"), ("p99.9", "p99.9"), ("max", "max")];

/// Line colours (colour-blind safe palette), reused in order.
pub const COLOURS: [&str; 6] = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9"];

/// One line of the chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Legend text.
    pub label: String,
    /// Latency in µs at each of [`POINTS`].
    pub values: [f64; 5],
}

impl Series {
    /// Reads the percentiles of one or more `load` reports (repeated rounds): each point is
    /// the median over the reports.
    pub fn from_reports(label: &str, reports: &[Value]) -> Result<Self> {
        if reports.is_empty() {
            bail!("no report for {label}");
        }
        let mut values = [0.0; 5];
        for (v, (key, _)) in values.iter_mut().zip(POINTS) {
            let mut all = Vec::with_capacity(reports.len());
            for r in reports {
                let lat = r.get("latency_us").context("no latency_us in the report")?;
                all.push(
                    lat.get(key).and_then(Value::as_f64).with_context(|| format!("no latency_us.{key}"))?,
                );
            }
            *v = median(&mut all);
        }
        let mut rps: Vec<f64> = reports.iter().filter_map(|r| r.get("rps").and_then(Value::as_f64)).collect();
        let mut label = label.to_owned();
        if !rps.is_empty() {
            let _ = write!(label, " ({:.0} req/s)", median(&mut rps));
        }
        Ok(Self { label, values })
    }
}

/// Median of a non-empty list (mean of the middle two for an even count).
fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        0.0
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Escapes text for SVG.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// Renders the chart.
pub fn render(title: &str, series: &[Series]) -> String {
    let (w, h) = (820.0, 440.0);
    let (left, right, top, bottom) = (70.0, 290.0, 40.0, 50.0);
    let (pw, ph) = (w - left - right, h - top - bottom);
    let all = series.iter().flat_map(|s| s.values).filter(|v| *v > 0.0);
    let lo = all.clone().fold(f64::INFINITY, f64::min).max(0.1);
    let hi = all.fold(0.0_f64, f64::max).max(lo * 10.0);
    let (dlo, dhi) = (lo.log10().floor(), hi.log10().ceil());
    let y = |v: f64| top + ph - (v.max(0.01).log10() - dlo) / (dhi - dlo) * ph;
    let x = |i: usize| left + pw * (i as f64 + 0.5) / POINTS.len() as f64;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="{w}" height="{h}" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="22" font-size="15" text-anchor="middle">{}</text>"#,
        left + pw / 2.0,
        escape(title)
    );
    // Decades on the log axis.
    let mut d = dlo;
    while d <= dhi + 1e-9 {
        let v = 10f64.powf(d);
        let yy = y(v);
        let _ = writeln!(
            s,
            r##"<line x1="{left}" x2="{}" y1="{yy:.1}" y2="{yy:.1}" stroke="#ddd"/>"##,
            left + pw
        );
        let label = if v >= 1000.0 { format!("{} ms", v / 1000.0) } else { format!("{v} µs") };
        let _ =
            writeln!(s, r#"<text x="{}" y="{:.1}" text-anchor="end">{label}</text>"#, left - 6.0, yy + 4.0);
        d += 1.0;
    }
    let _ =
        writeln!(s, r##"<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#444"/>"##);
    for (i, (_, name)) in POINTS.iter().enumerate() {
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{}" text-anchor="middle">{name}</text>"#,
            x(i),
            top + ph + 18.0
        );
    }
    let _ = writeln!(
        s,
        r#"<text x="16" y="{}" transform="rotate(-90 16 {})" text-anchor="middle">latency (log scale)</text>"#,
        top + ph / 2.0,
        top + ph / 2.0
    );
    for (n, ser) in series.iter().enumerate() {
        let c = COLOURS[n % COLOURS.len()];
        let pts: Vec<String> =
            ser.values.iter().enumerate().map(|(i, v)| format!("{:.1},{:.1}", x(i), y(*v))).collect();
        let _ = writeln!(
            s,
            r#"<polyline fill="none" stroke="{c}" stroke-width="2" points="{}"/>"#,
            pts.join(" ")
        );
        for (i, v) in ser.values.iter().enumerate() {
            let _ = writeln!(
                s,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3.5" fill="{c}"><title>{}: {} = {v:.1} µs</title></circle>"#,
                x(i),
                y(*v),
                escape(&ser.label),
                POINTS[i].1
            );
        }
        let ly = top + 10.0 + 22.0 * n as f64;
        let lx = left + pw + 16.0;
        let _ = writeln!(
            s,
            r#"<line x1="{lx}" x2="{}" y1="{ly}" y2="{ly}" stroke="{c}" stroke-width="3"/>"#,
            lx + 18.0
        );
        let _ = writeln!(s, r#"<text x="{}" y="{}">{}</text>"#, lx + 24.0, ly + 4.0, escape(&ser.label));
    }
    s.push_str("</svg>\n");
    s
}

/// Reads `LABEL=a.json[,b.json...]` series and writes the chart to `out`.
pub fn run(out: &Path, title: &str, specs: &[String]) -> Result<()> {
    let mut series = Vec::with_capacity(specs.len());
    for spec in specs {
        let Some((label, files)) = spec.split_once('=') else {
            bail!("series {spec:?} is not LABEL=report.json[,report2.json...]");
        };
        let mut reports = Vec::new();
        for file in files.split(',').filter(|f| !f.is_empty()) {
            let text = std::fs::read_to_string(file).with_context(|| format!("reading {file}"))?;
            reports.push(serde_json::from_str::<Value>(&text).with_context(|| format!("parsing {file}"))?);
        }
        series.push(Series::from_reports(label, &reports).with_context(|| format!("series {label}"))?);
    }
    std::fs::write(out, render(title, &series)).with_context(|| format!("writing {}", out.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chart_has_one_line_per_series_and_escapes_labels() {
        let report = serde_json::json!({
            "rps": 1000.0,
            "latency_us": {"p50": 40.0, "p90": 60.0, "p99": 120.0, "p99.9": 900.0, "max": 4000.0}
        });
        let a = Series::from_reports("direct", std::slice::from_ref(&report)).expect("series");
        assert_eq!(a.values, [40.0, 60.0, 120.0, 900.0, 4000.0]);
        assert_eq!(a.label, "direct (1000 req/s)");
        let b = Series { label: "A<B>&".into(), values: [50.0, 70.0, 150.0, 1200.0, 9000.0] };
        let svg = render("t", &[a, b]);
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert_eq!(svg.matches("<circle").count(), 10);
        assert!(svg.contains("A&lt;B&gt;&amp;") && !svg.contains("A<B>"));
        assert!(svg.contains("10 ms")); // the axis reaches the largest value's decade
    }

    #[test]
    fn repeated_rounds_give_the_median() {
        let r = |p: f64, rps: f64| serde_json::json!({"rps": rps, "latency_us": {"p50": p, "p90": p, "p99": p, "p99.9": p, "max": p}});
        let s = Series::from_reports("g", &[r(10.0, 1.0), r(30.0, 3.0), r(20.0, 2.0)]).expect("series");
        assert_eq!(s.values, [20.0; 5]);
        assert_eq!(s.label, "g (2 req/s)");
    }

    #[test]
    fn report_without_percentiles_is_refused() {
        let bad = serde_json::json!({"latency_us": {"p50": 1.0}});
        assert!(Series::from_reports("x", &[bad]).is_err());
        assert!(Series::from_reports("x", &[]).is_err());
    }
}
