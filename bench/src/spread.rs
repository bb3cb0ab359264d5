//! `portcullis-bench spread`: a dependency-free SVG of per-round values (e.g. added p99 per
//! round) grouped by a category (a load level) with one box per series (a gateway): the median
//! as a dot, the middle half as a box, the whole range as a whisker, on a linear axis that
//! may go below zero. Owns only this drawing; reads one tab-separated file, writes one SVG.

use std::{fmt::Write as _, path::Path};

use anyhow::{Context, Result, bail};

use crate::chart::{COLOURS, escape};

/// The values of one (series, group) cell.
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    /// Series (legend) name.
    pub series: String,
    /// Group (x axis) name.
    pub group: String,
    /// One value per round.
    pub values: Vec<f64>,
}

/// Parses `series<TAB>group<TAB>value` lines (order of first appearance kept).
pub fn parse(text: &str) -> Result<Vec<Cell>> {
    let mut cells: Vec<Cell> = Vec::new();
    for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split('\t').collect();
        let [series, group, value] = f[..] else {
            bail!("line {}: want series, group, value: {line:?}", n + 1)
        };
        let v: f64 = value.trim().parse().with_context(|| format!("line {}: value {value:?}", n + 1))?;
        match cells.iter_mut().find(|c| c.series == series && c.group == group) {
            Some(c) => c.values.push(v),
            None => cells.push(Cell { series: series.into(), group: group.into(), values: vec![v] }),
        }
    }
    Ok(cells)
}

/// `q` quantile of sorted values (linear between ranks).
fn at(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let (i, frac) = (pos.floor() as usize, pos.fract());
    sorted[i] + (sorted[(i + 1).min(sorted.len() - 1)] - sorted[i]) * frac
}

/// Renders the chart; `unit` labels the axis.
pub fn render(title: &str, unit: &str, cells: &[Cell]) -> String {
    let mut series: Vec<&str> = Vec::new();
    let mut groups: Vec<&str> = Vec::new();
    for c in cells {
        if !series.contains(&c.series.as_str()) {
            series.push(&c.series);
        }
        if !groups.contains(&c.group.as_str()) {
            groups.push(&c.group);
        }
    }
    let all = cells.iter().flat_map(|c| c.values.iter().copied());
    let lo = all.clone().fold(0.0_f64, f64::min);
    let hi = all.fold(0.0_f64, f64::max).max(lo + 1.0);
    let pad = (hi - lo) * 0.05;
    let (lo, hi) = (lo - pad, hi + pad);
    let (w, h) = (820.0, 440.0);
    let (left, right, top, bottom) = (80.0, 230.0, 40.0, 50.0);
    let (pw, ph) = (w - left - right, h - top - bottom);
    let y = |v: f64| top + ph - (v - lo) / (hi - lo) * ph;
    let gw = pw / groups.len().max(1) as f64;
    let bw = (gw * 0.8 / series.len().max(1) as f64).min(40.0);
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
    // About six gridlines at a round step.
    let raw = (hi - lo) / 6.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * mag).find(|st| *st >= raw).unwrap_or(raw);
    let mut t = (lo / step).ceil() * step;
    while t <= hi {
        let yy = y(t);
        let stroke = if t.abs() < step / 1e6 { "#888" } else { "#ddd" };
        let _ = writeln!(
            s,
            r#"<line x1="{left}" x2="{}" y1="{yy:.1}" y2="{yy:.1}" stroke="{stroke}"/>"#,
            left + pw
        );
        let _ = writeln!(s, r#"<text x="{}" y="{:.1}" text-anchor="end">{t}</text>"#, left - 6.0, yy + 4.0);
        t += step;
    }
    let _ =
        writeln!(s, r##"<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#444"/>"##);
    let _ = writeln!(
        s,
        r#"<text x="16" y="{}" transform="rotate(-90 16 {})" text-anchor="middle">{}</text>"#,
        top + ph / 2.0,
        top + ph / 2.0,
        escape(unit)
    );
    for (gi, g) in groups.iter().enumerate() {
        let gx = left + gw * gi as f64;
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{}" text-anchor="middle">{}</text>"#,
            gx + gw / 2.0,
            top + ph + 18.0,
            escape(g)
        );
        for (si, name) in series.iter().enumerate() {
            let Some(cell) = cells.iter().find(|c| c.series == *name && c.group == *g) else { continue };
            let mut v = cell.values.clone();
            v.sort_by(f64::total_cmp);
            let c = COLOURS[si % COLOURS.len()];
            let cx = gx + gw * 0.1 + bw * (si as f64 + 0.5);
            let (min, q1, med, q3, max) = (v[0], at(&v, 0.25), at(&v, 0.5), at(&v, 0.75), v[v.len() - 1]);
            let _ = writeln!(
                s,
                r#"<line x1="{cx:.1}" x2="{cx:.1}" y1="{:.1}" y2="{:.1}" stroke="{c}"/>"#,
                y(max),
                y(min)
            );
            let _ = writeln!(
                s,
                r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{c}" fill-opacity="0.3" stroke="{c}"/>"#,
                cx - bw * 0.35,
                y(q3),
                bw * 0.7,
                (y(q1) - y(q3)).max(1.0)
            );
            let _ = writeln!(
                s,
                r#"<circle cx="{cx:.1}" cy="{:.1}" r="3.5" fill="{c}"><title>{} at {}: median {med:.1}, range {min:.1} .. {max:.1} ({} rounds)</title></circle>"#,
                y(med),
                escape(name),
                escape(g),
                v.len()
            );
        }
    }
    for (si, name) in series.iter().enumerate() {
        let c = COLOURS[si % COLOURS.len()];
        let (lx, ly) = (left + pw + 16.0, top + 10.0 + 22.0 * si as f64);
        let _ = writeln!(s, r#"<rect x="{lx}" y="{}" width="14" height="10" fill="{c}"/>"#, ly - 5.0);
        let _ = writeln!(s, r#"<text x="{}" y="{}">{}</text>"#, lx + 20.0, ly + 4.0, escape(name));
    }
    let _ = writeln!(
        s,
        r##"<text x="{}" y="{}" font-size="10" fill="#444">dot: median; box: middle half; line: range</text>"##,
        left,
        h - 8.0
    );
    s.push_str("</svg>\n");
    s
}

/// Reads `input` (tab-separated) and writes the chart to `out`.
pub fn run(input: &Path, out: &Path, title: &str, unit: &str) -> Result<()> {
    let text = std::fs::read_to_string(input).with_context(|| format!("reading {}", input.display()))?;
    let cells = parse(&text)?;
    if cells.is_empty() {
        bail!("{}: no values", input.display());
    }
    std::fs::write(out, render(title, unit, &cells)).with_context(|| format!("writing {}", out.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_box_per_series_and_group() {
        let cells = parse("nginx\t25 %\t120\nnginx\t25 %\t-30\nportcullis\t25 %\t80\nnginx\t50 %\t300\n\n")
            .expect("parse");
        assert_eq!(cells.len(), 3);
        assert_eq!(cells[0].values, vec![120.0, -30.0]);
        let svg = render("added p99", "µs", &cells);
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<circle").count(), 3);
        assert!(svg.contains("median 45.0, range -30.0 .. 120.0 (2 rounds)"), "{svg}");
        assert!(svg.contains("stroke=\"#888\""), "a zero line when values go negative");
        assert!(parse("a\tb\n").is_err() && parse("a\tb\tx\n").is_err());
    }
}
