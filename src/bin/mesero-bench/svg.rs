//! The latency plot: one CDF per series on a log time axis, as plain SVG
//! (no plotting crate for a few lines and polylines).

use std::fmt::Write as _;

const W: f64 = 720.0;
const H: f64 = 420.0;
const LEFT: f64 = 60.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 50.0;
const COLORS: [&str; 4] = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"];

/// A CDF plot of `series` (name, (µs, cumulative share) points) titled `title`.
pub fn cdf(title: &str, series: &[(&str, Vec<(u64, f64)>)]) -> String {
    let mut out = String::new();
    let all = series.iter().flat_map(|(_, p)| p.iter().map(|(us, _)| *us));
    let (lo, hi) = all.fold((u64::MAX, 1u64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    // Whole decades around the data, in µs.
    let d0 = (lo.max(1) as f64).log10().floor().min(6.0);
    let d1 = (hi as f64).log10().ceil().max(d0 + 1.0);
    let pw = W - LEFT - RIGHT;
    let ph = H - TOP - BOTTOM;
    let x = |us: f64| LEFT + (us.max(1.0).log10() - d0) / (d1 - d0) * pw;
    let y = |share: f64| TOP + (1.0 - share) * ph;
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(out, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
    let _ = writeln!(
        out,
        r#"<text x="{}" y="22" text-anchor="middle" font-size="14">{}</text>"#,
        W / 2.0,
        escape(title)
    );
    let mut d = d0;
    while d <= d1 {
        let px = x(10f64.powf(d));
        let label = match d as i32 {
            0 => "1 µs".to_string(),
            1 => "10 µs".to_string(),
            2 => "100 µs".to_string(),
            3 => "1 ms".to_string(),
            4 => "10 ms".to_string(),
            5 => "100 ms".to_string(),
            6 => "1 s".to_string(),
            n => format!("{} s", 10f64.powi(n - 6)),
        };
        let _ = writeln!(
            out,
            r##"<line x1="{px:.1}" y1="{TOP}" x2="{px:.1}" y2="{:.1}" stroke="#ddd"/><text x="{px:.1}" y="{:.1}" text-anchor="middle">{label}</text>"##,
            TOP + ph,
            TOP + ph + 18.0
        );
        d += 1.0;
    }
    for share in [0.0, 0.5, 0.9, 0.99, 1.0] {
        let py = y(share);
        let _ = writeln!(
            out,
            r##"<line x1="{LEFT}" y1="{py:.1}" x2="{:.1}" y2="{py:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{share}</text>"##,
            LEFT + pw,
            LEFT - 6.0,
            py + 4.0
        );
    }
    let _ = writeln!(
        out,
        r#"<text x="{}" y="{}" text-anchor="middle">latency, change sent → event received (log scale)</text>"#,
        LEFT + pw / 2.0,
        H - 8.0
    );
    for (i, (name, points)) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let mut path = String::new();
        let mut prev = 0.0;
        for (us, share) in points {
            let px = x(*us as f64);
            let _ = write!(path, "{px:.1},{:.1} {px:.1},{:.1} ", y(prev), y(*share));
            prev = *share;
        }
        let _ = writeln!(
            out,
            r#"<polyline fill="none" stroke="{color}" stroke-width="1.5" points="{path}"/>"#
        );
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}" fill="{color}">{}</text>"#,
            LEFT + 10.0,
            TOP + 16.0 + 16.0 * i as f64,
            escape(name)
        );
    }
    out.push_str("</svg>\n");
    out
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
