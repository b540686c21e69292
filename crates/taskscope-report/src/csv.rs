//! CSV: one row per task group, lock and semaphore, durations in nanoseconds, for spreadsheets
//! and scripts.

use std::fmt::Write;

use taskscope_wire::{Histogram, Snapshot};

/// Quotes a field when it needs it (RFC 4180).
fn field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn stats(h: &Histogram) -> String {
    let p = h.percentiles();
    format!(
        "{},{},{},{},{},{}",
        p.count, p.p50, p.p90, p.p99, p.p999, p.max
    )
}

/// The snapshot as CSV with a header row.
pub fn render(snapshot: &Snapshot) -> String {
    let mut out = String::from(
        "type,name,kind,location,count,p50_ns,p90_ns,p99_ns,p999_ns,max_ns,spawned,completed,cancelled,panicked,acquisitions,contended,busy_ns\n",
    );
    for g in &snapshot.task_groups {
        let _ = writeln!(
            out,
            "task_group,{},{:?},{},{},{},{},{},{},,,{}",
            field(&g.name),
            g.kind,
            field(&g.location),
            stats(&g.poll_ns),
            g.spawned,
            g.completed,
            g.cancelled,
            g.panicked,
            g.busy_ns
        );
    }
    for l in &snapshot.locks {
        let _ = writeln!(
            out,
            "lock_wait,{},{},{},{},,,,,{},{},",
            field(&l.name),
            l.kind,
            field(&l.location),
            stats(&l.wait_ns),
            l.acquisitions,
            l.contended
        );
    }
    for s in &snapshot.semaphores {
        let _ = writeln!(
            out,
            "semaphore_wait,{},semaphore,{},{},,,,,{},,",
            field(&s.name),
            field(&s.location),
            stats(&s.wait_ns),
            s.acquisitions
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use taskscope_wire::TaskGroup;

    #[test]
    fn every_row_has_the_header_s_columns_and_fields_are_quoted() {
        let mut h = Histogram::default();
        h.record(5_000_000);
        let snap = Snapshot {
            task_groups: vec![TaskGroup {
                name: "a, \"b\"".into(),
                poll_ns: h,
                spawned: 1,
                ..TaskGroup::default()
            }],
            ..Snapshot::default()
        };
        let text = render(&snap);
        let mut lines = text.lines();
        let columns = lines.next().unwrap().split(',').count();
        let row = lines.next().unwrap();
        assert!(row.starts_with("task_group,\"a, \"\"b\"\"\","), "{row}");
        // Count fields outside quotes.
        let (mut n, mut quoted) = (1, false);
        for c in row.chars() {
            match c {
                '"' => quoted = !quoted,
                ',' if !quoted => n += 1,
                _ => {}
            }
        }
        assert_eq!(n, columns, "{row}");
    }
}
