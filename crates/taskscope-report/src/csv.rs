//! CSV: one row per task group, scope group's latency, lock and semaphore, durations in nanoseconds, for spreadsheets
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
        "type,name,kind,location,count,p50_ns,p90_ns,p99_ns,p999_ns,max_ns,spawned,completed,cancelled,panicked,acquisitions,contended,busy_ns,responses_2xx,responses_4xx,responses_5xx\n",
    );
    for g in &snapshot.task_groups {
        let _ = writeln!(
            out,
            "task_group,{},{:?},{},{},{},{},{},{},,,{},,,",
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
    // A scope group's latency (its polls and outcomes are in its task_group row).
    for s in &snapshot.scopes {
        let r = &s.responses;
        let _ = writeln!(
            out,
            "scope_latency,{},scope,{},{},,,,,,,,{},{},{}",
            field(&s.name),
            field(&s.location),
            stats(&s.latency_ns),
            r.success,
            r.client_error,
            r.server_error,
        );
    }
    for l in &snapshot.locks {
        let _ = writeln!(
            out,
            "lock_wait,{},{},{},{},,,,,{},{},,,,",
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
            "semaphore_wait,{},semaphore,{},{},,,,,{},,,,,",
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
            locks: vec![taskscope_wire::Lock::default()],
            semaphores: vec![taskscope_wire::Semaphore::default()],
            scopes: vec![taskscope_wire::ScopeGroup {
                name: "GET /users/{id}".into(),
                responses: taskscope_wire::Responses {
                    success: 7,
                    server_error: 2,
                    ..Default::default()
                },
                ..Default::default()
            }],
            ..Snapshot::default()
        };
        let text = render(&snap);
        let mut lines = text.lines();
        let header: Vec<&str> = lines.next().unwrap().split(',').collect();
        let rows: Vec<&str> = lines.collect();
        assert_eq!(rows.len(), 4);
        assert!(
            rows[0].starts_with("task_group,\"a, \"\"b\"\"\","),
            "{}",
            rows[0]
        );
        for row in &rows {
            // Split outside quotes.
            let (mut fields, mut quoted, mut field) = (Vec::new(), false, String::new());
            for c in row.chars() {
                match c {
                    '"' => quoted = !quoted,
                    ',' if !quoted => fields.push(std::mem::take(&mut field)),
                    c => field.push(c),
                }
            }
            fields.push(field);
            assert_eq!(fields.len(), header.len(), "{row}");
            if fields[0] == "scope_latency" {
                let column = |name: &str| &fields[header.iter().position(|h| *h == name).unwrap()];
                assert_eq!(column("responses_2xx"), "7");
                assert_eq!(column("responses_5xx"), "2");
                assert_eq!(column("completed"), "");
            }
        }
    }
}
