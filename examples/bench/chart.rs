//! A small SVG line chart: throughput against message size, log-log, one polyline per
//! module, several panels side by side. No plotting dependency.

use std::fmt::Write;

/// One line: a module's (message size in bytes, MB/s) points.
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

pub struct Panel {
    pub title: String,
    pub series: Vec<Series>,
}

const COLORS: [&str; 4] = ["#d62728", "#1f77b4", "#2ca02c", "#9467bd"];
const PW: f64 = 420.0; // panel width
const PH: f64 = 300.0; // panel height
const ML: f64 = 70.0; // margins inside a panel
const MR: f64 = 30.0;
const MT: f64 = 30.0;
const MB: f64 = 45.0;

fn size_label(b: f64) -> String {
    if b >= 1048576.0 {
        format!("{} MiB", b / 1048576.0)
    } else if b >= 1024.0 {
        format!("{} KiB", b / 1024.0)
    } else {
        format!("{b} B")
    }
}

fn rate_label(mb: f64) -> String {
    if mb >= 1000.0 {
        format!("{} GB/s", mb / 1000.0)
    } else {
        format!("{mb} MB/s")
    }
}

/// The whole SVG: panels in a row of `cols`, a legend, a subtitle line.
pub fn svg(title: &str, subtitle: &str, panels: &[Panel], cols: usize) -> String {
    let rows = panels.len().div_ceil(cols);
    let width = PW * cols as f64;
    let height = 60.0 + PH * rows as f64 + 30.0;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="22" text-anchor="middle" font-size="16" font-weight="bold">{}</text>"#,
        width / 2.0,
        esc(title)
    );
    let _ = writeln!(
        s,
        r##"<text x="{}" y="40" text-anchor="middle" fill="#555">{}</text>"##,
        width / 2.0,
        esc(subtitle)
    );
    // The legend from the first panel's series names.
    if let Some(p) = panels.first() {
        let mut x = 20.0;
        for (i, se) in p.series.iter().enumerate() {
            let c = COLORS[i % COLORS.len()];
            let _ = writeln!(
                s,
                r#"<line x1="{x}" y1="{y}" x2="{}" y2="{y}" stroke="{c}" stroke-width="3"/><text x="{}" y="{}">{}</text>"#,
                x + 24.0,
                x + 30.0,
                height - 12.0,
                esc(&se.name),
                y = height - 16.0
            );
            x += 40.0 + 8.0 * se.name.len() as f64;
        }
    }
    for (i, p) in panels.iter().enumerate() {
        let ox = PW * (i % cols) as f64;
        let oy = 50.0 + PH * (i / cols) as f64;
        panel(&mut s, ox, oy, p);
    }
    s.push_str("</svg>\n");
    s
}

fn panel(s: &mut String, ox: f64, oy: f64, p: &Panel) {
    let pts = p.series.iter().flat_map(|se| se.points.iter());
    let (mut xmin, mut xmax, mut ymin, mut ymax) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in pts {
        if x > 0.0 && y > 0.0 {
            xmin = xmin.min(x);
            xmax = xmax.max(x);
            ymin = ymin.min(y);
            ymax = ymax.max(y);
        }
    }
    if xmin > xmax {
        return;
    }
    // Whole decades on the y axis; the x axis spans the sizes measured.
    let (ly0, ly1) = (
        ymin.log10().floor(),
        ymax.log10().ceil().max(ymin.log10().floor() + 1.0),
    );
    let (lx0, lx1) = (xmin.log2(), xmax.log2().max(xmin.log2() + 1.0));
    let (x0, x1, y0, y1) = (ox + ML, ox + PW - MR, oy + PH - MB, oy + MT);
    let fx = |x: f64| x0 + (x.log2() - lx0) / (lx1 - lx0) * (x1 - x0);
    let fy = |y: f64| y0 - (y.log10() - ly0) / (ly1 - ly0) * (y0 - y1);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle" font-weight="bold">{}</text>"#,
        (x0 + x1) / 2.0,
        oy + MT - 10.0,
        esc(&p.title)
    );
    let _ = writeln!(
        s,
        r##"<rect x="{x0}" y="{y1}" width="{}" height="{}" fill="none" stroke="#333"/>"##,
        x1 - x0,
        y0 - y1
    );
    let mut d = ly0;
    while d <= ly1 + 1e-9 {
        let y = fy(10f64.powf(d));
        let _ = writeln!(
            s,
            r##"<line x1="{x0}" y1="{y}" x2="{x1}" y2="{y}" stroke="#ddd"/><text x="{}" y="{}" text-anchor="end">{}</text>"##,
            x0 - 5.0,
            y + 4.0,
            rate_label(10f64.powf(d))
        );
        d += 1.0;
    }
    let mut sizes: Vec<f64> = p
        .series
        .iter()
        .flat_map(|se| se.points.iter().map(|p| p.0))
        .collect();
    sizes.sort_by(f64::total_cmp);
    sizes.dedup();
    for &x in &sizes {
        let xx = fx(x);
        let _ = writeln!(
            s,
            r##"<line x1="{xx}" y1="{y0}" x2="{xx}" y2="{y1}" stroke="#eee"/><text x="{xx}" y="{}" text-anchor="middle">{}</text>"##,
            y0 + 16.0,
            size_label(x)
        );
    }
    let _ = writeln!(
        s,
        r##"<text x="{}" y="{}" text-anchor="middle" fill="#555">message size (log scale)</text>"##,
        (x0 + x1) / 2.0,
        y0 + 34.0
    );
    for (i, se) in p.series.iter().enumerate() {
        let c = COLORS[i % COLORS.len()];
        let line: Vec<String> = se
            .points
            .iter()
            .filter(|p| p.0 > 0.0 && p.1 > 0.0)
            .map(|&(x, y)| format!("{:.1},{:.1}", fx(x), fy(y)))
            .collect();
        let _ = writeln!(
            s,
            r#"<polyline points="{}" fill="none" stroke="{c}" stroke-width="2.5"/>"#,
            line.join(" ")
        );
        for &(x, y) in se.points.iter().filter(|p| p.0 > 0.0 && p.1 > 0.0) {
            let _ = writeln!(
                s,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3.5" fill="{c}"><title>{}: {} {:.0} MB/s</title></circle>"#,
                fx(x),
                fy(y),
                esc(&se.name),
                size_label(x),
                y
            );
        }
    }
}

fn esc(t: &str) -> String {
    t.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
