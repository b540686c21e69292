//! The JSON report, schema `taskscope.report/v1` (DESIGN.md §8; every field is described in the
//! README).

use serde::Serialize;
use taskscope_wire::{Histogram, Percentiles, Snapshot, TaskKind, Warning};

/// The schema name written in every report.
pub const SCHEMA: &str = "taskscope.report/v1";

/// A report in the v1 shape.
#[derive(Debug, Serialize)]
pub struct Report<'a> {
    /// Always [`SCHEMA`].
    pub schema: &'static str,
    /// Executable name and pid.
    pub process: Process<'a>,
    /// Seconds observed.
    pub duration_s: f64,
    /// Events taskscope dropped under load (the numbers are incomplete when > 0).
    pub dropped_events: u64,
    /// Per task group, most busy first.
    pub tasks: Vec<TaskRow<'a>>,
    /// Per lock.
    pub locks: Vec<serde_json::Value>,
    /// Per semaphore.
    pub semaphores: Vec<serde_json::Value>,
    /// Every warning, oldest first.
    pub warnings: &'a [Warning],
}

/// The observed process.
#[derive(Debug, Serialize)]
pub struct Process<'a> {
    /// Executable name.
    pub name: &'a str,
    /// Process id.
    pub pid: u32,
    /// Start of observation, ms since the Unix epoch.
    pub start_unix_ms: u64,
}

/// One task group.
#[derive(Debug, Serialize)]
pub struct TaskRow<'a> {
    /// Group name (task name, or spawn location when unnamed).
    pub name: &'a str,
    /// Spawn location.
    pub location: &'a str,
    /// `async` or `blocking`.
    pub kind: TaskKind,
    /// Tasks spawned.
    pub spawned: u64,
    /// Tasks still alive.
    pub alive: u64,
    /// Tasks completed.
    pub completed: u64,
    /// Tasks dropped before completing.
    pub cancelled: u64,
    /// Tasks that panicked.
    pub panicked: u64,
    /// Polls.
    pub polls: u64,
    /// Time in polls.
    pub busy_ns: u64,
    /// Poll durations.
    pub poll_ns: Percentiles,
    /// Wake → poll delays.
    pub scheduled_ns: Percentiles,
}

fn summary(h: &Histogram) -> Percentiles {
    h.percentiles()
}

/// Builds the report of a snapshot.
pub fn report(snapshot: &Snapshot) -> Report<'_> {
    Report {
        schema: SCHEMA,
        process: Process {
            name: &snapshot.process.name,
            pid: snapshot.process.pid,
            start_unix_ms: snapshot.process.start_unix_ms,
        },
        duration_s: snapshot.taken_at_ms as f64 / 1000.0,
        dropped_events: snapshot.dropped_events,
        tasks: snapshot
            .task_groups
            .iter()
            .map(|g| TaskRow {
                name: &g.name,
                location: &g.location,
                kind: g.kind,
                spawned: g.spawned,
                alive: g.alive,
                completed: g.completed,
                cancelled: g.cancelled,
                panicked: g.panicked,
                polls: g.polls,
                busy_ns: g.busy_ns,
                poll_ns: summary(&g.poll_ns),
                scheduled_ns: summary(&g.scheduled_ns),
            })
            .collect(),
        locks: Vec::new(),
        semaphores: Vec::new(),
        warnings: &snapshot.warnings,
    }
}

/// The report as pretty-printed JSON.
pub fn render(snapshot: &Snapshot) -> String {
    serde_json::to_string_pretty(&report(snapshot)).expect("a report always serialises")
}
