//! What the table formats (Markdown, HTML) say alike: one description per entity of the columns
//! of its table (header, cell, which formats show it), the scopes by latency, and the note under
//! a table of sampled groups. Each format only draws cells.

use taskscope_wire::{Histogram, Lock, ScopeGroup, Semaphore, Snapshot, TaskGroup};

/// One cell's content; the format decides how it looks.
pub(crate) enum Cell<'a> {
    /// A name (escaped by the format).
    Name(&'a str),
    /// A source location (code style).
    Location(&'a str),
    /// A count.
    Count(u64),
    /// A duration in nanoseconds.
    Ns(u64),
    /// Text made for the table (e.g. `37534 (3824 timed)`).
    Text(String),
    /// p50 / p99 / max of a histogram, as a chart where a format draws charts.
    Bars(&'a Histogram),
    /// A histogram's shape, as a chart where a format draws charts.
    Shape(&'a Histogram),
}

/// Which formats show a column: HTML draws a chart where Markdown writes the numbers.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shown {
    /// Every table format.
    Both,
    /// Text tables only (the numbers a chart stands for in HTML).
    Text,
    /// HTML only (charts).
    Html,
}

/// A column of an entity's table: its header, which formats show it, and the cell of one row.
pub(crate) struct Column<T>(
    pub &'static str,
    pub Shown,
    pub for<'a> fn(&'a T) -> Cell<'a>,
);

impl<T> Column<T> {
    /// The header.
    pub(crate) fn header(&self) -> &'static str {
        self.0
    }

    /// The cell of `row`.
    pub(crate) fn cell<'a>(&self, row: &'a T) -> Cell<'a> {
        (self.2)(row)
    }
}

/// A table: its title, columns and rows, in the order to show them.
pub(crate) struct Table<'s, T: 'static> {
    /// The section heading.
    pub title: &'static str,
    /// The columns.
    pub columns: &'static [Column<T>],
    /// The rows.
    pub rows: Vec<&'s T>,
}

impl<T> Table<'_, T> {
    /// The columns a format shows: `Shown::Both` and its own kind.
    pub(crate) fn columns_in(&self, format: Shown) -> impl Iterator<Item = &'static Column<T>> {
        self.columns
            .iter()
            .filter(move |c| c.1 == Shown::Both || c.1 == format)
    }
}

use Shown::{Both, Html, Text};

/// Scope groups: latency and responses.
pub(crate) const SCOPE_COLUMNS: &[Column<ScopeGroup>] = &[
    Column("scope", Both, |s| Cell::Name(&s.name)),
    Column("ended", Both, |s| Cell::Count(s.latency_ns.count())),
    Column("latency p50", Both, |s| {
        Cell::Ns(s.latency_ns.percentiles().p50)
    }),
    Column("p90", Text, |s| Cell::Ns(s.latency_ns.percentiles().p90)),
    Column("p99", Both, |s| Cell::Ns(s.latency_ns.percentiles().p99)),
    Column("p99.9", Text, |s| Cell::Ns(s.latency_ns.percentiles().p999)),
    Column("max", Both, |s| Cell::Ns(s.latency_ns.percentiles().max)),
    Column("latency", Html, |s| Cell::Shape(&s.latency_ns)),
    Column("2xx", Both, |s| Cell::Count(s.responses.success)),
    Column("3xx", Both, |s| Cell::Count(s.responses.redirection)),
    Column("4xx", Both, |s| Cell::Count(s.responses.client_error)),
    Column("5xx", Both, |s| Cell::Count(s.responses.server_error)),
    Column("location", Both, |s| Cell::Location(&s.location)),
];

/// Task groups: outcomes, polls and their durations.
pub(crate) const TASK_COLUMNS: &[Column<TaskGroup>] = &[
    Column("group", Both, |g| Cell::Name(&g.name)),
    Column("spawned", Both, |g| Cell::Count(g.spawned)),
    Column("completed", Text, |g| Cell::Count(g.completed)),
    Column("cancelled", Text, |g| Cell::Count(g.cancelled)),
    Column("panicked", Text, |g| Cell::Count(g.panicked)),
    Column("polls", Both, |g| Cell::Text(polls_cell(g))),
    Column("busy", Both, |g| Cell::Ns(g.busy_ns)),
    Column("poll p50", Both, |g| Cell::Ns(g.poll_ns.percentiles().p50)),
    Column("p90", Text, |g| Cell::Ns(g.poll_ns.percentiles().p90)),
    Column("p99", Both, |g| Cell::Ns(g.poll_ns.percentiles().p99)),
    Column("p99.9", Text, |g| Cell::Ns(g.poll_ns.percentiles().p999)),
    Column("max", Both, |g| Cell::Ns(g.poll_ns.percentiles().max)),
    Column("percentiles", Html, |g| Cell::Bars(&g.poll_ns)),
    Column("histogram", Html, |g| Cell::Shape(&g.poll_ns)),
    Column("sched p99", Both, |g| {
        Cell::Ns(g.scheduled_ns.percentiles().p99)
    }),
    Column("location", Both, |g| Cell::Location(&g.location)),
];

/// Locks (and RwLock sides): acquisitions, waits and holds.
pub(crate) const LOCK_COLUMNS: &[Column<Lock>] = &[
    Column("lock", Both, |l| Cell::Name(&l.name)),
    Column("kind", Both, |l| Cell::Name(&l.kind)),
    Column("acquisitions", Both, |l| Cell::Count(l.acquisitions)),
    Column("contended", Both, |l| Cell::Count(l.contended)),
    Column("wait p50", Text, |l| Cell::Ns(l.wait_ns.percentiles().p50)),
    Column("p90", Text, |l| Cell::Ns(l.wait_ns.percentiles().p90)),
    Column("wait p99", Both, |l| Cell::Ns(l.wait_ns.percentiles().p99)),
    Column("p99.9", Text, |l| Cell::Ns(l.wait_ns.percentiles().p999)),
    Column("max", Text, |l| Cell::Ns(l.wait_ns.percentiles().max)),
    Column("wait", Html, |l| Cell::Bars(&l.wait_ns)),
    Column("hold p99", Both, |l| Cell::Ns(l.hold_ns.percentiles().p99)),
    Column("hold max", Text, |l| Cell::Ns(l.hold_ns.percentiles().max)),
    Column("hold", Html, |l| Cell::Bars(&l.hold_ns)),
    Column("location", Both, |l| Cell::Location(&l.location)),
];

/// Semaphores: permits, saturation and waits.
pub(crate) const SEMAPHORE_COLUMNS: &[Column<Semaphore>] = &[
    Column("semaphore", Both, |s| Cell::Name(&s.name)),
    Column("permits", Both, |s| Cell::Count(s.permits)),
    Column("acquisitions", Both, |s| Cell::Count(s.acquisitions)),
    Column("max waiters", Both, |s| Cell::Count(s.max_waiters)),
    Column("saturated", Both, |s| Cell::Ns(s.saturated_ns)),
    Column("wait p50", Text, |s| Cell::Ns(s.wait_ns.percentiles().p50)),
    Column("p90", Text, |s| Cell::Ns(s.wait_ns.percentiles().p90)),
    Column("wait p99", Both, |s| Cell::Ns(s.wait_ns.percentiles().p99)),
    Column("p99.9", Text, |s| Cell::Ns(s.wait_ns.percentiles().p999)),
    Column("max", Text, |s| Cell::Ns(s.wait_ns.percentiles().max)),
    Column("wait", Html, |s| Cell::Bars(&s.wait_ns)),
    Column("location", Both, |s| Cell::Location(&s.location)),
];

/// The four tables of a report, in their order (scopes only when some ended; locks and
/// semaphores only when there are any).
pub(crate) struct Tables<'s> {
    /// Scope groups with ended scopes, slowest p99 first.
    pub scopes: Table<'s, ScopeGroup>,
    /// Task groups as the snapshot orders them (most busy first).
    pub tasks: Table<'s, TaskGroup>,
    /// Locks, most waited-on first.
    pub locks: Table<'s, Lock>,
    /// Semaphores.
    pub semaphores: Table<'s, Semaphore>,
}

/// The report's tables of a snapshot.
pub(crate) fn tables(snapshot: &Snapshot) -> Tables<'_> {
    Tables {
        scopes: Table {
            title: "Scopes and requests (slowest first)",
            columns: SCOPE_COLUMNS,
            rows: scopes_by_latency(snapshot),
        },
        tasks: Table {
            title: "Task groups (most busy first)",
            columns: TASK_COLUMNS,
            rows: snapshot.task_groups.iter().collect(),
        },
        locks: Table {
            title: "Locks (most waited-on first)",
            columns: LOCK_COLUMNS,
            rows: snapshot.locks.iter().collect(),
        },
        semaphores: Table {
            title: "Semaphores",
            columns: SEMAPHORE_COLUMNS,
            rows: snapshot.semaphores.iter().collect(),
        },
    }
}

/// A group's poll count for a table, saying how many were timed when not all were (a busy
/// task's polls are sampled: `taskscope::Builder::sample_interval`), e.g. `37534 (3824
/// timed)`.
pub(crate) fn polls_cell(group: &TaskGroup) -> String {
    let timed = group.poll_ns.count();
    if timed >= group.polls {
        return group.polls.to_string();
    }
    format!("{} ({timed} timed)", group.polls)
}

/// The scope groups that have ended scopes, slowest p99 latency first.
pub(crate) fn scopes_by_latency(snapshot: &Snapshot) -> Vec<&ScopeGroup> {
    let mut scopes: Vec<_> = snapshot
        .scopes
        .iter()
        .filter(|s| s.latency_ns.count() > 0)
        .collect();
    scopes.sort_by_key(|s| std::cmp::Reverse(s.latency_ns.percentiles().p99));
    scopes
}

/// What a table of groups says under it when some groups' polls were sampled.
pub(crate) const SAMPLED_NOTE: &str = "Where only some polls were timed, the poll percentiles \
are those of the timed polls, and busy time is an estimate scaled from them.";

/// Whether any group's polls were sampled.
pub(crate) fn any_sampled(snapshot: &Snapshot) -> bool {
    snapshot
        .task_groups
        .iter()
        .any(|g| g.poll_ns.count() < g.polls)
}

#[cfg(test)]
mod tests {
    use super::*;
    use taskscope_wire::Responses;

    fn snapshot() -> Snapshot {
        let mut h = Histogram::default();
        h.record(5_000);
        Snapshot {
            task_groups: vec![TaskGroup {
                name: "a|b".into(),
                poll_ns: h.clone(),
                polls: 3,
                ..TaskGroup::default()
            }],
            scopes: vec![ScopeGroup {
                name: "GET /".into(),
                latency_ns: h.clone(),
                responses: Responses {
                    success: 1,
                    ..Responses::default()
                },
                ..ScopeGroup::default()
            }],
            locks: vec![Lock {
                wait_ns: h.clone(),
                ..Lock::default()
            }],
            semaphores: vec![Semaphore {
                wait_ns: h,
                ..Semaphore::default()
            }],
            ..Snapshot::default()
        }
    }

    #[test]
    fn every_markdown_table_row_has_its_header_s_cells() {
        let md = crate::markdown::render(&snapshot());
        let mut tables = 0;
        let mut lines = md.lines().peekable();
        while let Some(line) = lines.next() {
            if !line.starts_with("| ") || !lines.peek().is_some_and(|l| l.starts_with("|---")) {
                continue;
            }
            tables += 1;
            // Escaped pipes (`\|`) are inside a cell.
            let cells = |l: &str| l.replace("\\|", "").matches('|').count();
            let header = cells(line);
            lines.next();
            while let Some(row) = lines.next_if(|l| l.starts_with('|')) {
                assert_eq!(cells(row), header, "{row}");
            }
        }
        assert_eq!(tables, 4, "{md}");
    }

    #[test]
    fn every_html_table_row_has_its_header_s_cells() {
        let html = crate::html::render(&snapshot());
        let mut tables = 0;
        for table in html.split("<table>").skip(1) {
            let table = &table[..table.find("</table>").unwrap()];
            let mut rows = table.split("<tr>").skip(1);
            let header = rows.next().unwrap().matches("<th").count();
            for row in rows {
                assert_eq!(row.matches("<td").count(), header, "{row}");
            }
            tables += 1;
        }
        assert_eq!(tables, 5, "the warnings and four entity tables");
    }
}
