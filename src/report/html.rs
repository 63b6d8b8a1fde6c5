//! `report.html`: the report as one self-contained page (inline CSS and SVG charts, no script, no
//! fetched asset), for a reviewer's browser and for printing.
//!
//! Owns: the layout of the report's sections; every figure comes from `Report` as stored in
//! `report.json`, so the two never disagree.

use std::fmt::Write as _;

use super::{Criterion, Report};
use crate::audit::AuditResult;
use crate::stress::StressResult;

const STYLE: &str = "
body{font-family:'Noto Sans','Noto Sans Thai',system-ui,sans-serif;margin:2rem auto;max-width:72rem;padding:0 1rem;color:#1d2433;line-height:1.45}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{margin-top:2.2rem;border-bottom:2px solid #dfe3eb;padding-bottom:.3rem}
table{border-collapse:collapse;width:100%;margin:.8rem 0;font-size:.92rem}
th,td{border:1px solid #dfe3eb;padding:.35rem .5rem;text-align:left;vertical-align:top}
th{background:#f3f5f9}td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.pass{color:#0b7a3e;font-weight:700}.fail{color:#b3261e;font-weight:700}
.verdict{display:inline-block;padding:.2rem .7rem;border-radius:.3rem;color:#fff;font-weight:700}
.verdict.pass{background:#0b7a3e;color:#fff}.verdict.fail{background:#b3261e;color:#fff}
.muted{color:#5b6475;font-size:.88rem}code{font-size:.85rem;overflow-wrap:anywhere}
svg{max-width:100%;height:auto;background:#fbfcfe;border:1px solid #dfe3eb}
@media print{body{margin:0;max-width:none}h2,h3{break-after:avoid}table,svg{break-inside:avoid}}
";

fn esc(s: &str) -> String {
    html_escape::encode_text(s).into_owned()
}

fn mark(passed: bool) -> &'static str {
    if passed {
        r#"<span class="pass">pass</span>"#
    } else {
        r#"<span class="fail">FAIL</span>"#
    }
}

fn verdict(passed: bool) -> &'static str {
    if passed {
        r#"<span class="verdict pass">passed</span>"#
    } else {
        r#"<span class="verdict fail">failed</span>"#
    }
}

/// The whole page.
pub fn render(report: &Report) -> String {
    let mut h = String::with_capacity(64 << 10);
    let _ = write!(
        h,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>edgeseo certification report</title><style>{STYLE}</style></head><body>\
         <h1>Certification report</h1><p class=\"muted\">Written {} by edgeseo {} ({}), \
         executable SHA-256 <code>{}</code>. Schema <code>{}</code>; every file of this report is \
         listed in <code>SHA256SUMS</code> (<code>edgeseo verify-report DIR</code>).</p>",
        esc(&report.created),
        esc(&report.edgeseo.version),
        esc(&report.edgeseo.target),
        esc(&report.edgeseo.executable_sha256),
        esc(&report.schema),
    );
    h.push_str("<table><tr><th>diagnosis</th><th>result</th></tr>");
    if let Some(a) = &report.audit {
        let _ = write!(
            h,
            "<tr><td>Localized SEO scan of {}</td><td>{}</td></tr>",
            esc(&a.base),
            verdict(a.passed)
        );
    }
    if let Some(s) = &report.stress {
        let _ = write!(
            h,
            "<tr><td>Chat stress test of {}</td><td>{}</td></tr>",
            esc(&s.result.target),
            verdict(s.passed)
        );
    }
    h.push_str("</table>");
    if let Some(a) = &report.audit {
        audit(&mut h, a);
    }
    if let Some(s) = &report.stress {
        stress(&mut h, &s.result, &s.criteria);
    }
    h.push_str(
        "<h2>Inputs</h2><table><tr><th>role</th><th>file</th><th>bytes</th><th>SHA-256</th></tr>",
    );
    for i in &report.inputs {
        let _ = write!(
            h,
            "<tr><td>{}</td><td><code>{}</code></td><td class=\"num\">{}</td><td><code>{}</code></td></tr>",
            esc(&i.role),
            esc(&i.path),
            i.bytes,
            esc(&i.sha256)
        );
    }
    h.push_str("</table></body></html>\n");
    h
}

fn criteria(h: &mut String, criteria: &[Criterion]) {
    h.push_str("<table><tr><th>criterion</th><th></th><th>required</th><th>measured</th></tr>");
    for c in criteria {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&c.name),
            mark(c.passed),
            esc(&c.required),
            esc(&c.measured)
        );
    }
    h.push_str("</table>");
}

fn audit(h: &mut String, a: &AuditResult) {
    let _ = write!(
        h,
        "<h2>Localized SEO scan</h2><p>{} pages of <code>{}</code>, every locale, fetched {}.</p>",
        a.pages.len(),
        esc(&a.base),
        match &a.via {
            Some(via) => format!("through the proxy <code>{}</code>", esc(via)),
            None => "from the machine that ran the scan".to_owned(),
        }
    );
    criteria(h, &a.criteria);
    if !a.keywords.is_empty() {
        h.push_str("<h3>Marketplace keywords per market</h3><table><tr><th>market</th><th>share of the search volume found</th><th>keywords found</th><th>most searched missing</th></tr>");
        for k in &a.keywords {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td class=\"num\">{} / {}</td><td>{}</td></tr>",
                esc(&k.locale),
                bar(k.share),
                k.found,
                k.keywords,
                esc(&k.missing.join(", "))
            );
        }
        h.push_str("</table>");
    }
    let to_fix: Vec<_> = a.pages.iter().filter(|p| !p.problems.is_empty()).collect();
    let _ = write!(h, "<h3>Pages to fix ({})</h3>", to_fix.len());
    if to_fix.is_empty() {
        h.push_str("<p>None.</p>");
    } else {
        h.push_str("<table><tr><th>page</th><th>problems</th></tr>");
        for p in to_fix.iter().take(300) {
            let _ = write!(
                h,
                "<tr><td><code>{}</code></td><td>{}</td></tr>",
                esc(&p.path),
                esc(&p.problems.join("; "))
            );
        }
        h.push_str("</table>");
    }
    h.push_str("<h3>Every page</h3><table><tr><th>page</th><th>status</th><th>first byte</th><th>load</th><th>KB sent / decoded</th><th>coding, cache</th><th>text in its language</th><th>structured data</th></tr>");
    for p in &a.pages {
        let _ = write!(
            h,
            "<tr><td><code>{}</code></td><td class=\"num\">{}</td><td class=\"num\">{:.0} ms</td><td class=\"num\">{:.0} ms</td><td class=\"num\">{:.1} / {:.1}</td><td>{}</td><td class=\"num\">{} / {}</td><td>{}</td></tr>",
            esc(&p.path),
            p.status,
            p.ttfb_ms,
            p.load_ms,
            p.wire_bytes as f64 / 1024.0,
            p.bytes as f64 / 1024.0,
            esc(&[
                p.content_encoding.as_deref().unwrap_or("none"),
                p.cache.as_deref().unwrap_or("")
            ]
            .iter()
            .filter(|s| !s.is_empty())
            .copied()
            .collect::<Vec<_>>()
            .join(", ")),
            p.blocks_in_language,
            p.text_blocks,
            esc(&p.jsonld_types.join(", "))
        );
    }
    h.push_str("</table>");
}

/// A share as a small horizontal bar with its percentage.
fn bar(share: f64) -> String {
    let w = (share.clamp(0.0, 1.0) * 120.0).round();
    format!(
        "<svg width=\"170\" height=\"16\" viewBox=\"0 0 170 16\" role=\"img\" aria-label=\"{:.1} %\" style=\"border:0;background:none\"><rect x=\"0\" y=\"3\" width=\"120\" height=\"10\" fill=\"#e4e8f0\"/><rect x=\"0\" y=\"3\" width=\"{w}\" height=\"10\" fill=\"#2f6fde\"/><text x=\"126\" y=\"13\" font-size=\"11\">{:.1} %</text></svg>",
        share * 100.0,
        share * 100.0
    )
}

fn stress(h: &mut String, r: &StressResult, c: &[Criterion]) {
    let _ = write!(
        h,
        "<h2>Chat stress test</h2><p>{} requests to <code>{}</code> at {} per second for {:.0} s, \
         each sent on its schedule whatever the latency (open loop); latency is measured from the \
         scheduled send. {}.</p>",
        r.sent,
        esc(&r.target),
        r.planned_rate,
        r.duration_s,
        r.outcome()
    );
    if r.generator_lag.late > 0 {
        let _ = write!(
            h,
            "<p class=\"fail\">The load generator fell behind its schedule: {} requests were sent \
             more than 10 ms late (at most {:.1} ms). The figures include that delay.</p>",
            r.generator_lag.late, r.generator_lag.max_ms
        );
    }
    criteria(h, c);
    let l = &r.latency_ms;
    let _ = write!(
        h,
        "<table><tr><th>mean</th><th>p50</th><th>p95</th><th>p99</th><th>max</th></tr>\
         <tr><td class=\"num\">{:.1} ms</td><td class=\"num\">{:.1} ms</td><td class=\"num\">{:.1} ms</td><td class=\"num\">{:.1} ms</td><td class=\"num\">{:.1} ms</td></tr></table>",
        l.mean, l.p50, l.p95, l.p99, l.max
    );
    h.push_str("<h3>Latency over time (mean and max per second)</h3>");
    let mean: Vec<f64> = r.timeline.iter().map(|s| s.mean_ms).collect();
    let max: Vec<f64> = r.timeline.iter().map(|s| s.max_ms).collect();
    h.push_str(&line_chart(
        &[("mean", "#2f6fde", &mean), ("max", "#d9822b", &max)],
        "ms",
    ));
    h.push_str("<h3>Requests per second (sent, answered, failed)</h3>");
    let sent: Vec<f64> = r.timeline.iter().map(|s| s.sent as f64).collect();
    let ok: Vec<f64> = r.timeline.iter().map(|s| s.ok as f64).collect();
    let failed: Vec<f64> = r.timeline.iter().map(|s| s.failed as f64).collect();
    h.push_str(&line_chart(
        &[
            ("sent", "#7a8599", &sent),
            ("answered", "#0b7a3e", &ok),
            ("failed", "#b3261e", &failed),
        ],
        "req/s",
    ));
    if !r.histogram.is_empty() {
        h.push_str("<h3>Latency histogram</h3>");
        h.push_str(&histogram(&r.histogram));
    }
    h.push_str("<h3>Accuracy per language</h3><table><tr><th>language</th><th>answered</th><th>intent recognised</th><th>language identified</th></tr>");
    for a in &r.accuracy {
        let _ = write!(
            h,
            "<tr><td>{}</td><td class=\"num\">{}</td><td>{}</td><td>{}</td></tr>",
            esc(&a.lang),
            a.answered,
            bar(a.intent()),
            bar(a.language())
        );
    }
    h.push_str("</table>");
}

/// Lines over the seconds of the run, y from 0 to the largest value.
fn line_chart(series: &[(&str, &str, &[f64])], unit: &str) -> String {
    let (w, hgt, left, bottom, top) = (760.0, 260.0, 56.0, 28.0, 24.0);
    let n = series.iter().map(|s| s.2.len()).max().unwrap_or(0).max(2);
    let ymax = series
        .iter()
        .flat_map(|s| s.2.iter().copied())
        .fold(0.0f64, f64::max)
        .max(1e-9)
        * 1.1;
    let x = |i: usize| left + (w - left - 12.0) * i as f64 / (n - 1) as f64;
    let y = |v: f64| top + (hgt - top - bottom) * (1.0 - v / ymax);
    let mut svg = format!(
        "<svg viewBox=\"0 0 {w} {hgt}\" width=\"{w}\" height=\"{hgt}\" role=\"img\" font-size=\"11\">"
    );
    for k in 0..=4 {
        let v = ymax * k as f64 / 4.0;
        let _ = write!(
            svg,
            "<line x1=\"{left}\" x2=\"{}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"#e4e8f0\"/><text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            w - 12.0,
            y(v),
            y(v),
            left - 4.0,
            y(v) + 4.0,
            short(v)
        );
    }
    let _ = write!(
        svg,
        "<text x=\"{left}\" y=\"14\">{unit}</text><text x=\"{}\" y=\"{}\" text-anchor=\"end\">second of the run → {}</text>",
        w - 12.0,
        hgt - 6.0,
        n - 1
    );
    for (k, (name, color, values)) in series.iter().enumerate() {
        let points: Vec<String> = values
            .iter()
            .enumerate()
            .map(|(i, &v)| format!("{:.1},{:.1}", x(i), y(v)))
            .collect();
        let _ = write!(
            svg,
            "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{}\"/>\
             <rect x=\"{}\" y=\"6\" width=\"10\" height=\"10\" fill=\"{color}\"/><text x=\"{}\" y=\"15\">{}</text>",
            points.join(" "),
            left + 80.0 + 110.0 * k as f64,
            left + 94.0 + 110.0 * k as f64,
            esc(name)
        );
    }
    svg.push_str("</svg>");
    svg
}

fn histogram(buckets: &[(Option<f64>, u64)]) -> String {
    let (w, hgt, bottom, top) = (760.0, 220.0, 40.0, 16.0);
    let max = buckets.iter().map(|b| b.1).max().unwrap_or(0).max(1) as f64;
    let slot = (w - 20.0) / buckets.len() as f64;
    let mut svg = format!(
        "<svg viewBox=\"0 0 {w} {hgt}\" width=\"{w}\" height=\"{hgt}\" role=\"img\" font-size=\"11\">"
    );
    for (i, (upper, count)) in buckets.iter().enumerate() {
        let bh = (hgt - top - bottom) * *count as f64 / max;
        let bx = 10.0 + slot * i as f64;
        let label = upper.map_or_else(|| "more".to_owned(), |u| format!("≤{}", short(u)));
        let _ = write!(
            svg,
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{bh:.1}\" fill=\"#2f6fde\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{count}</text>\
             <text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{label}</text>",
            bx + 3.0,
            hgt - bottom - bh,
            slot - 6.0,
            bx + slot / 2.0,
            hgt - bottom - bh - 3.0,
            bx + slot / 2.0,
            hgt - bottom + 16.0
        );
    }
    let _ = write!(
        svg,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">latency, ms</text></svg>",
        w - 10.0,
        hgt - 4.0
    );
    svg
}

/// A number for an axis: no decimals from 10 up.
fn short(v: f64) -> String {
    if v >= 10.0 || v == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}
