//! The Markdown report: reads well in a terminal and in a pull-request comment. Worst offenders
//! first: warnings, then the slowest task groups, the most waited-on locks and semaphores.

use std::fmt::Write;

use taskscope_wire::{fmt_ns as ns, Percentiles, Snapshot, WarningKind};

fn cells(p: &Percentiles) -> String {
    format!(
        "{} | {} | {} | {} | {}",
        ns(p.p50),
        ns(p.p90),
        ns(p.p99),
        ns(p.p999),
        ns(p.max)
    )
}

/// Escapes what would break a table cell.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
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
            let mut worst = all.clone();
            worst.sort_by_key(|w| std::cmp::Reverse(w.duration_ns.unwrap_or(0)));
            for w in worst.iter().take(10) {
                let _ = writeln!(
                    out,
                    "- {} _(at {:.1} s)_",
                    w.message,
                    w.at_ms as f64 / 1000.0
                );
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

    let scopes = crate::tables::scopes_by_latency(snapshot);
    if !scopes.is_empty() {
        let _ = writeln!(out, "## Scopes and requests (slowest first)\n");
        let _ = writeln!(out, "| scope | ended | latency p50 | p90 | p99 | p99.9 | max | 2xx | 3xx | 4xx | 5xx | location |");
        let _ = writeln!(
            out,
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
        );
        for s in scopes {
            let r = &s.responses;
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | `{}` |",
                cell(&s.name),
                s.latency_ns.count(),
                cells(&s.latency_ns.percentiles()),
                r.success,
                r.redirection,
                r.client_error,
                r.server_error,
                s.location
            );
        }
        let _ = writeln!(out);
    }

    let _ = writeln!(out, "## Task groups (most busy first)\n");
    let _ = writeln!(out, "| group | spawned | completed | cancelled | panicked | polls | busy | poll p50 | p90 | p99 | p99.9 | max | sched p99 | location |");
    let _ = writeln!(
        out,
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
    );
    for g in &snapshot.task_groups {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | `{}` |",
            cell(&g.name),
            g.spawned,
            g.completed,
            g.cancelled,
            g.panicked,
            crate::tables::polls_cell(g),
            ns(g.busy_ns),
            cells(&g.poll_ns.percentiles()),
            ns(g.scheduled_ns.percentiles().p99),
            g.location
        );
    }
    if crate::tables::any_sampled(snapshot) {
        let _ = writeln!(out, "\n{}", crate::tables::SAMPLED_NOTE);
    }
    if !snapshot.locks.is_empty() {
        let _ = writeln!(out, "\n## Locks (most waited-on first)\n");
        let _ = writeln!(out, "| lock | kind | acquisitions | contended | wait p50 | p90 | p99 | p99.9 | max | hold p99 | hold max | location |");
        let _ = writeln!(
            out,
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
        );
        for l in &snapshot.locks {
            let h = l.hold_ns.percentiles();
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | `{}` |",
                cell(&l.name),
                l.kind,
                l.acquisitions,
                l.contended,
                cells(&l.wait_ns.percentiles()),
                ns(h.p99),
                ns(h.max),
                l.location
            );
        }
    }
    if !snapshot.semaphores.is_empty() {
        let _ = writeln!(out, "\n## Semaphores\n");
        let _ = writeln!(out, "| semaphore | permits | acquisitions | max waiters | saturated | wait p50 | p90 | p99 | p99.9 | max | location |");
        let _ = writeln!(
            out,
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
        );
        for s in &snapshot.semaphores {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | `{}` |",
                cell(&s.name),
                s.permits,
                s.acquisitions,
                s.max_waiters,
                ns(s.saturated_ns),
                cells(&s.wait_ns.percentiles()),
                s.location
            );
        }
    }
    out
}
