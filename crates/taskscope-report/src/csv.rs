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

/// The columns, in order. Each row fills the ones its entity has; the rest stay empty.
const COLUMNS: [&str; 20] = [
    "type",
    "name",
    "kind",
    "location",
    "count",
    "p50_ns",
    "p90_ns",
    "p99_ns",
    "p999_ns",
    "max_ns",
    "spawned",
    "completed",
    "cancelled",
    "panicked",
    "acquisitions",
    "contended",
    "busy_ns",
    "responses_2xx",
    "responses_4xx",
    "responses_5xx",
];

/// A row under construction: a value per named column.
#[derive(Default)]
struct Row(Vec<(&'static str, String)>);

impl Row {
    fn new(kind_of_row: &str, name: &str, kind: &str, location: &str, h: &Histogram) -> Row {
        let p = h.percentiles();
        let mut row = Row::default();
        row.set("type", kind_of_row)
            .set("name", name)
            .set("kind", kind)
            .set("location", location)
            .set("count", p.count)
            .set("p50_ns", p.p50)
            .set("p90_ns", p.p90)
            .set("p99_ns", p.p99)
            .set("p999_ns", p.p999)
            .set("max_ns", p.max);
        row
    }

    fn set(&mut self, column: &'static str, value: impl ToString) -> &mut Row {
        debug_assert!(COLUMNS.contains(&column), "no column {column}");
        self.0.push((column, value.to_string()));
        self
    }

    fn write(&self, out: &mut String) {
        let cells: Vec<String> = COLUMNS
            .iter()
            .map(|c| {
                self.0
                    .iter()
                    .find(|(name, _)| name == c)
                    .map_or_else(String::new, |(_, v)| field(v))
            })
            .collect();
        let _ = writeln!(out, "{}", cells.join(","));
    }
}

/// The snapshot as CSV with a header row.
pub fn render(snapshot: &Snapshot) -> String {
    let mut out = COLUMNS.join(",") + "\n";
    for g in &snapshot.task_groups {
        let kind = format!("{:?}", g.kind);
        Row::new("task_group", &g.name, &kind, &g.location, &g.poll_ns)
            .set("spawned", g.spawned)
            .set("completed", g.completed)
            .set("cancelled", g.cancelled)
            .set("panicked", g.panicked)
            .set("busy_ns", g.busy_ns)
            .write(&mut out);
    }
    // A scope group's latency (its polls and outcomes are in its task_group row).
    for s in &snapshot.scopes {
        let r = &s.responses;
        Row::new(
            "scope_latency",
            &s.name,
            "scope",
            &s.location,
            &s.latency_ns,
        )
        .set("responses_2xx", r.success)
        .set("responses_4xx", r.client_error)
        .set("responses_5xx", r.server_error)
        .write(&mut out);
    }
    for l in &snapshot.locks {
        Row::new("lock_wait", &l.name, &l.kind, &l.location, &l.wait_ns)
            .set("acquisitions", l.acquisitions)
            .set("contended", l.contended)
            .write(&mut out);
    }
    for s in &snapshot.semaphores {
        Row::new(
            "semaphore_wait",
            &s.name,
            "semaphore",
            &s.location,
            &s.wait_ns,
        )
        .set("acquisitions", s.acquisitions)
        .write(&mut out);
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
