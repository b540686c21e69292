//! A self-contained HTML report: tables and inline SVG charts (per-group poll percentiles on a log
//! scale, each group's poll-time histogram, a timeline of warnings, the CPU profile's flame
//! graph), no scripts, no network.

use std::fmt::Write;

use taskscope_wire::{bucket_range, fmt_ns as ns, Histogram, Snapshot, WarningKind};

use crate::tables::{Cell, Shown, Table};

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn colour(kind: WarningKind) -> &'static str {
    match kind {
        WarningKind::BlockedWorker | WarningKind::Deadlock => "#d33",
        WarningKind::TaskPanicked | WarningKind::LockOrderInversion => "#a3a",
        _ => "#c90",
    }
}

/// x position (0..width) of a duration on a log scale from 100 ns to 10 s.
fn log_x(v: u64, width: f64) -> f64 {
    let v = (v.max(100) as f64).log10();
    ((v - 2.0) / 8.0).clamp(0.0, 1.0) * width
}

/// p50 / p99 / max of a histogram as bars on a log axis.
fn percentile_bars(h: &Histogram) -> String {
    let p = h.percentiles();
    let w = 200.0;
    let mut svg = format!(
        r#"<svg width="{w}" height="18" role="img"><title>p50 {} · p99 {} · max {}</title>"#,
        ns(p.p50),
        ns(p.p99),
        ns(p.max)
    );
    for (v, fill) in [(p.max, "#f3c0c0"), (p.p99, "#e58"), (p.p50, "#36c")] {
        let _ = write!(
            svg,
            r##"<rect x="0" y="3" width="{:.1}" height="12" fill="{fill}"/>"##,
            log_x(v, w)
        );
    }
    svg.push_str("</svg>");
    svg
}

/// The histogram's shape: counts per power of two, on the same log axis.
fn histogram_svg(h: &Histogram) -> String {
    let (w, ht) = (200.0, 40.0);
    let mut octaves: Vec<(u64, u64)> = Vec::new();
    for &(i, c) in &h.buckets {
        let low = bucket_range(i as usize).0.max(1);
        let octave = 1u64 << (63 - low.leading_zeros());
        match octaves.last_mut() {
            Some((o, n)) if *o == octave => *n += c,
            _ => octaves.push((octave, c)),
        }
    }
    let max = octaves.iter().map(|&(_, c)| c).max().unwrap_or(1).max(1) as f64;
    let mut svg = format!(r#"<svg width="{w}" height="{ht}" role="img">"#);
    for (octave, c) in octaves {
        let (x0, x1) = (log_x(octave, w), log_x(octave * 2, w));
        let bh = (c as f64 / max) * (ht - 2.0);
        let _ = write!(
            svg,
            r##"<rect x="{x0:.1}" y="{:.1}" width="{:.1}" height="{bh:.1}" fill="#7a9"><title>{} – {}: {c}</title></rect>"##,
            ht - bh,
            (x1 - x0 - 1.0).max(1.0),
            ns(octave),
            ns(octave * 2)
        );
    }
    svg.push_str("</svg>");
    svg
}

fn timeline(snapshot: &Snapshot) -> String {
    let (w, h) = (900.0, 60.0);
    let end = snapshot
        .taken_at_ms
        .max(snapshot.warnings.iter().map(|w| w.at_ms).max().unwrap_or(0))
        .max(1) as f64;
    let mut svg = format!(
        r##"<svg width="{w}" height="{h}" role="img"><line x1="0" y1="{}" x2="{w}" y2="{}" stroke="#999"/>"##,
        h / 2.0,
        h / 2.0
    );
    for warning in &snapshot.warnings {
        let x = warning.at_ms as f64 / end * (w - 10.0) + 5.0;
        let width = warning
            .duration_ns
            .map_or(3.0, |d| (d as f64 / 1e6 / end * (w - 10.0)).max(3.0));
        let _ = write!(
            svg,
            r#"<rect x="{x:.1}" y="{:.1}" width="{width:.1}" height="20" fill="{}" opacity="0.8"><title>{:.1} s {}: {}</title></rect>"#,
            h / 2.0 - 10.0,
            colour(warning.kind),
            warning.at_ms as f64 / 1000.0,
            warning.kind,
            esc(&warning.message)
        );
    }
    let _ = write!(
        svg,
        r##"<text x="0" y="{h}" font-size="11" fill="#666">0 s</text><text x="{}" y="{h}" font-size="11" fill="#666" text-anchor="end">{:.1} s</text></svg>"##,
        w,
        end / 1000.0
    );
    svg
}

/// A section with one entity's table, `intro` (HTML) between its heading and the table.
fn table<T>(out: &mut String, table: &Table<'_, T>, intro: &str) {
    let columns: Vec<_> = table.columns_in(Shown::Html).collect();
    // A table wider than the window scrolls in its box; the page never scrolls sideways.
    let _ = write!(
        out,
        r#"<h2>{}</h2>{intro}<div class="w"><table><tr>"#,
        esc(table.title)
    );
    // A header sits over its column as the column's cells do: the first column and locations
    // to the left, the rest to the right (read off the first row).
    for (i, c) in columns.iter().enumerate() {
        let left = i == 0
            || table
                .rows
                .first()
                .is_some_and(|row| matches!(c.cell(row), Cell::Location(_)));
        let class = if left { r#" class="l""# } else { "" };
        let _ = write!(out, "<th{class}>{}</th>", esc(c.header()));
    }
    out.push_str("</tr>");
    for row in &table.rows {
        out.push_str("<tr>");
        for c in &columns {
            let _ = match c.cell(row) {
                Cell::Name(s) => write!(out, "<td>{}</td>", esc(s)),
                Cell::Location(s) => write!(out, r#"<td class="l"><code>{}</code></td>"#, esc(s)),
                Cell::Count(n) => write!(out, "<td>{n}</td>"),
                Cell::Ns(v) => write!(out, "<td>{}</td>", ns(v)),
                Cell::Text(s) => write!(out, r#"<td class="t">{}</td>"#, esc(&s)),
                Cell::Bars(h) => write!(out, "<td>{}</td>", percentile_bars(h)),
                Cell::Shape(h) => write!(out, "<td>{}</td>", histogram_svg(h)),
            };
        }
        out.push_str("</tr>");
    }
    out.push_str("</table></div>");
}

/// The snapshot as one self-contained HTML page.
pub fn render(snapshot: &Snapshot) -> String {
    let p = &snapshot.process;
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>taskscope report: {name}</title><style>
body{{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222}} h1{{font-size:1.5em}} h2{{margin-top:1.6em}}
table{{border-collapse:collapse}} td,th{{padding:3px 6px;border-bottom:1px solid #ddd;text-align:right;vertical-align:middle}}
th{{vertical-align:bottom}} td{{white-space:nowrap}} td:first-child,th:first-child,td.l,th.l{{text-align:left}} td.l,td.t{{white-space:normal}}
td:first-child{{white-space:normal;overflow-wrap:anywhere;min-width:8em;max-width:18em}} code{{font-size:12px;color:#555;overflow-wrap:anywhere}} .k{{font-weight:bold}}
.w{{max-width:100%;overflow-x:auto}}
.legend span{{display:inline-block;width:10px;height:10px;margin:0 4px 0 12px}}
</style></head><body><h1>taskscope report: {name} (pid {pid})</h1>
<p>{secs:.1} s observed · {groups} task groups · {locks} locks · {sems} semaphores · {warns} warnings{dropped}</p>"#,
        name = esc(&p.name),
        pid = p.pid,
        secs = snapshot.taken_at_ms as f64 / 1000.0,
        groups = snapshot.task_groups.len(),
        locks = snapshot.locks.len(),
        sems = snapshot.semaphores.len(),
        warns = snapshot.warnings.len(),
        dropped = if snapshot.dropped_events > 0 {
            format!(
                " · <b>{} events dropped: numbers are incomplete</b>",
                snapshot.dropped_events
            )
        } else {
            String::new()
        }
    );
    let _ = write!(out, "<h2>Warnings</h2>{}", timeline(snapshot));
    let _ = write!(
        out,
        r#"<div class="w"><table><tr><th>at</th><th class="l">kind</th><th class="l">what</th></tr>"#
    );
    for w in snapshot.warnings.iter().rev() {
        // A sampled blocked worker: where it was blocked, most frequent stacks first.
        let mut stacks = String::new();
        if let Some(samples) = snapshot.warning_stacks.get(&w.id) {
            let total: u64 = samples.iter().map(|s| s.count).sum();
            for s in samples.iter().take(3) {
                let _ = write!(
                    stacks,
                    "<br>blocked at <code>{}</code> ({}/{total} samples)",
                    esc(&s.summary()),
                    s.count
                );
            }
        }
        for (task, at) in crate::chains::waits(snapshot, w.id) {
            let at: Vec<String> = at
                .iter()
                .map(|f| format!("<code>{}</code>", esc(f)))
                .collect();
            let _ = write!(
                stacks,
                "<br>task {} waits in {}",
                esc(&task),
                at.join(" ← ")
            );
        }
        let _ = write!(
            out,
            r#"<tr><td>{:.1} s</td><td class="l k" style="color:{}">{}</td><td class="l">{}{stacks}</td></tr>"#,
            w.at_ms as f64 / 1000.0,
            colour(w.kind),
            w.kind,
            esc(&w.message)
        );
    }
    out.push_str("</table></div>");
    // How to fix each kind found, gravest first.
    let found: Vec<WarningKind> = WarningKind::ALL
        .into_iter()
        .filter(|&kind| snapshot.warnings_of(kind).next().is_some())
        .collect();
    if !found.is_empty() {
        out.push_str("<h3>How to fix them</h3><dl>");
        for kind in found {
            let _ = write!(
                out,
                r#"<dt class="k" style="color:{}">{kind}</dt><dd>{}</dd>"#,
                colour(kind),
                esc(kind.hint())
            );
        }
        out.push_str("</dl>");
    }
    let tables = crate::tables::tables(snapshot);
    if !tables.scopes.rows.is_empty() {
        table(&mut out, &tables.scopes, "");
    }
    let legend = r##"<p class="legend">poll time on a log axis, 100 ns to 10 s:<span style="background:#36c"></span>p50<span style="background:#e58"></span>p99<span style="background:#f3c0c0"></span>max</p>"##;
    table(&mut out, &tables.tasks, legend);
    if crate::tables::any_sampled(snapshot) {
        let _ = write!(
            out,
            r#"<p class="legend">{}</p>"#,
            crate::tables::SAMPLED_NOTE
        );
    }
    if !tables.locks.rows.is_empty() {
        table(&mut out, &tables.locks, "");
    }
    if !tables.semaphores.rows.is_empty() {
        table(&mut out, &tables.semaphores, "");
    }
    if let Some(profile) = &snapshot.profile {
        let _ = write!(
            out,
            "<h2>CPU profile</h2><p>{} samples in task polls at {} Hz of CPU time per thread, {} \
             outside polls, {} idle, {} missed</p>",
            profile.busy, profile.hz, profile.outside_polls, profile.idle, profile.missed
        );
        if let Some(img) = crate::flame::img(profile) {
            out.push_str(&img);
        }
    }
    out.push_str("</body></html>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use taskscope_wire::{TaskGroup, Warning};

    #[test]
    fn self_contained_escaped_and_charted() {
        let mut h = Histogram::default();
        for v in [2_000u64, 3_000, 5_000_000] {
            h.record(v);
        }
        let snap = Snapshot {
            task_groups: vec![TaskGroup {
                name: "<script>alert(1)</script>".into(),
                poll_ns: h,
                ..TaskGroup::default()
            }],
            warnings: vec![Warning::new(
                1,
                WarningKind::BlockedWorker,
                10,
                "blocked & stuck",
            )],
            taken_at_ms: 100,
            warning_stacks: [(
                1,
                vec![taskscope_wire::StackSample {
                    count: 3,
                    blocked_in: Some("std::fs::read".into()),
                    frames: vec![taskscope_wire::StackFrame {
                        function: "app::load<T>".into(),
                        file: Some("src/app.rs".into()),
                        line: Some(9),
                    }],
                }],
            )]
            .into(),
            ..Snapshot::default()
        };
        let html = render(&snap);
        assert!(
            html.contains("blocked at <code>app::load&lt;T&gt; (src/app.rs:9) in std::fs::read</code> (3/3 samples)"),
            "the blocked worker's stack, escaped"
        );
        assert!(html.starts_with("<!doctype html>") && html.trim_end().ends_with("</html>"));
        assert!(
            !html.contains("<script>") && html.contains("&lt;script&gt;"),
            "names are escaped"
        );
        assert!(html.contains("blocked &amp; stuck"));
        assert!(
            html.matches("<svg").count() >= 3,
            "timeline, percentile bars, histogram"
        );
        assert!(!html.contains("http"), "nothing loaded from the network");
        assert_eq!(html.matches("<svg").count(), html.matches("</svg>").count());
    }
}
