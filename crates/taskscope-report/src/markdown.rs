//! The Markdown report: reads well in a terminal and in a pull-request comment. Worst offenders
//! first: warnings, then the slowest task groups, the most waited-on locks and semaphores.

use std::fmt::Write;

use taskscope_wire::{fmt_ns as ns, Snapshot, WarningKind};

use crate::tables::{Cell, Shown, Table};

/// Escapes what would break a table cell.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// A section with one entity's table: names and text left-aligned, numbers right-aligned.
fn table<T>(out: &mut String, table: &Table<'_, T>) {
    let columns: Vec<_> = table.columns_in(Shown::Text).collect();
    let _ = writeln!(out, "## {}\n", table.title);
    let headers: Vec<_> = columns.iter().map(|c| c.header()).collect();
    let _ = writeln!(out, "| {} |", headers.join(" | "));
    let mut rule = String::from("|");
    for c in &columns {
        let sample = table.rows.first().map(|row| c.cell(row));
        let left = matches!(sample, None | Some(Cell::Name(_) | Cell::Location(_)));
        rule.push_str(if left { "---|" } else { "---:|" });
    }
    let _ = writeln!(out, "{rule}");
    for row in &table.rows {
        let cells: Vec<String> = columns
            .iter()
            .map(|c| match c.cell(row) {
                Cell::Name(s) => cell(s),
                Cell::Location(s) => format!("`{s}`"),
                Cell::Count(n) => n.to_string(),
                Cell::Ns(v) => ns(v),
                Cell::Text(s) => cell(&s),
                Cell::Bars(h) | Cell::Shape(h) => ns(h.percentiles().p99),
            })
            .collect();
        let _ = writeln!(out, "| {} |", cells.join(" | "));
    }
    let _ = writeln!(out);
}

/// The snapshot as Markdown.
pub fn render(snapshot: &Snapshot) -> String {
    let mut out = String::new();
    let p = &snapshot.process;
    let _ = writeln!(out, "# taskscope report: {} (pid {})\n", p.name, p.pid);
    let _ = writeln!(
        out,
        "{:.1} s observed · {} task groups · {} locks · {} semaphores · {} warnings{}\n",
        snapshot.taken_at_ms as f64 / 1000.0,
        snapshot.task_groups.len(),
        snapshot.locks.len(),
        snapshot.semaphores.len(),
        snapshot.warnings.len(),
        if snapshot.dropped_events > 0 {
            format!(
                " · **{} events dropped: numbers are incomplete**",
                snapshot.dropped_events
            )
        } else {
            String::new()
        }
    );

    let _ = writeln!(out, "## Warnings\n");
    if snapshot.warnings.is_empty() {
        let _ = writeln!(out, "None.\n");
    } else {
        for kind in WarningKind::ALL {
            let all: Vec<_> = snapshot.warnings_of(kind).collect();
            if all.is_empty() {
                continue;
            }
            let _ = writeln!(out, "### {kind} ({})\n", all.len());
            let _ = writeln!(out, "**Fix:** {}\n", kind.hint());
            let mut worst = all.clone();
            worst.sort_by_key(|w| std::cmp::Reverse(w.duration_ns.unwrap_or(0)));
            for w in worst.iter().take(10) {
                let _ = writeln!(
                    out,
                    "- {} _(at {:.1} s)_",
                    w.message,
                    w.at_ms as f64 / 1000.0
                );
                for (task, at) in crate::chains::waits(snapshot, w.id) {
                    let _ = writeln!(out, "  - task {task} waits in `{}`", at.join("` ← `"));
                }
                if let Some(stacks) = snapshot.warning_stacks.get(&w.id) {
                    let samples: u64 = stacks.iter().map(|s| s.count).sum();
                    for s in stacks.iter().take(3) {
                        let _ = writeln!(
                            out,
                            "  - blocked at `{}` ({} of {samples} samples)",
                            s.summary(),
                            s.count
                        );
                    }
                }
            }
            if all.len() > 10 {
                let _ = writeln!(out, "- … and {} more", all.len() - 10);
            }
            let _ = writeln!(out);
        }
    }

    let tables = crate::tables::tables(snapshot);
    if !tables.scopes.rows.is_empty() {
        table(&mut out, &tables.scopes);
    }
    table(&mut out, &tables.tasks);
    if crate::tables::any_sampled(snapshot) {
        let _ = writeln!(out, "{}\n", crate::tables::SAMPLED_NOTE);
    }
    if !tables.locks.rows.is_empty() {
        table(&mut out, &tables.locks);
    }
    if !tables.semaphores.rows.is_empty() {
        table(&mut out, &tables.semaphores);
    }
    out
}
