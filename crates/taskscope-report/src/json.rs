//! The JSON report, schema `taskscope.report/v1` (DESIGN.md §8; every field is described in the
//! README).

use serde::Serialize;
use taskscope_wire::{Percentiles, Snapshot, StackSample, TaskKind, Warning};

/// The schema name written in every report.
pub const SCHEMA: &str = "taskscope.report/v1";

/// The JSON Schema (draft 2020-12) every report validates against; the file is
/// `crates/taskscope-report/schema/report-v1.schema.json`.
pub const JSON_SCHEMA: &str = include_str!("../schema/report-v1.schema.json");

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
    /// Per scope group: latency and responses.
    pub scopes: Vec<ScopeRow<'a>>,
    /// Per lock (and RwLock side), most waited-on first.
    pub locks: Vec<LockRow<'a>>,
    /// Per semaphore, most waited-on first.
    pub semaphores: Vec<SemaphoreRow<'a>>,
    /// Every warning, oldest first.
    pub warnings: Vec<WarningRow<'a>>,
}

/// A warning and, for a `blocked_worker` sampled while blocked, its stacks.
#[derive(Debug, Serialize)]
pub struct WarningRow<'a> {
    /// The warning's fields.
    #[serde(flatten)]
    pub warning: &'a Warning,
    /// Stacks sampled while the worker was blocked, most frequent first (empty when none).
    pub stacks: &'a [StackSample],
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
    /// `poll_ns` as a base64 compressed HdrHistogram V2 serialisation.
    pub poll_ns_hdr: String,
    /// `scheduled_ns` as a base64 compressed HdrHistogram V2 serialisation.
    pub scheduled_ns_hdr: String,
}

/// What only a scope group has (its task row has the polls and outcomes).
#[derive(Debug, Serialize)]
pub struct ScopeRow<'a> {
    /// Scope name.
    pub name: &'a str,
    /// Where the scopes were created.
    pub location: &'a str,
    /// Scopes that ended.
    pub ended: u64,
    /// Creation → end.
    pub latency_ns: Percentiles,
    /// `latency_ns` as a base64 compressed HdrHistogram V2 serialisation.
    pub latency_ns_hdr: String,
    /// Responses per status class.
    pub responses: std::collections::BTreeMap<&'static str, u64>,
}

/// One lock, or one side of an RwLock.
#[derive(Debug, Serialize)]
pub struct LockRow<'a> {
    /// Given name or creation location.
    pub name: &'a str,
    /// `mutex`, `rwlock_read` or `rwlock_write`.
    pub kind: &'a str,
    /// Creation location.
    pub location: &'a str,
    /// Acquisitions.
    pub acquisitions: u64,
    /// Acquisitions that had to wait.
    pub contended: u64,
    /// Most tasks waiting at once.
    pub max_waiters: u64,
    /// Ask → acquire.
    pub wait_ns: Percentiles,
    /// Acquire → release (sampled, see the README).
    pub hold_ns: Percentiles,
    /// `wait_ns` as a base64 compressed HdrHistogram V2 serialisation.
    pub wait_ns_hdr: String,
    /// `hold_ns` as a base64 compressed HdrHistogram V2 serialisation.
    pub hold_ns_hdr: String,
}

/// One semaphore.
#[derive(Debug, Serialize)]
pub struct SemaphoreRow<'a> {
    /// Given name or creation location.
    pub name: &'a str,
    /// Creation location.
    pub location: &'a str,
    /// Permits (created plus added, less forgotten).
    pub permits: u64,
    /// Acquisitions.
    pub acquisitions: u64,
    /// Most tasks waiting at once.
    pub max_waiters: u64,
    /// Time with no permit left.
    pub saturated_ns: u64,
    /// Ask → acquire.
    pub wait_ns: Percentiles,
    /// `wait_ns` as a base64 compressed HdrHistogram V2 serialisation.
    pub wait_ns_hdr: String,
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
                poll_ns: g.poll_ns.percentiles(),
                scheduled_ns: g.scheduled_ns.percentiles(),
                poll_ns_hdr: crate::hdr::encode(&g.poll_ns),
                scheduled_ns_hdr: crate::hdr::encode(&g.scheduled_ns),
            })
            .collect(),
        scopes: snapshot
            .scopes
            .iter()
            .map(|s| ScopeRow {
                name: &s.name,
                location: &s.location,
                ended: s.latency_ns.count(),
                latency_ns: s.latency_ns.percentiles(),
                latency_ns_hdr: crate::hdr::encode(&s.latency_ns),
                responses: s.responses.classes().into_iter().collect(),
            })
            .collect(),
        locks: snapshot
            .locks
            .iter()
            .map(|l| LockRow {
                name: &l.name,
                kind: &l.kind,
                location: &l.location,
                acquisitions: l.acquisitions,
                contended: l.contended,
                max_waiters: l.max_waiters,
                wait_ns: l.wait_ns.percentiles(),
                hold_ns: l.hold_ns.percentiles(),
                wait_ns_hdr: crate::hdr::encode(&l.wait_ns),
                hold_ns_hdr: crate::hdr::encode(&l.hold_ns),
            })
            .collect(),
        semaphores: snapshot
            .semaphores
            .iter()
            .map(|s| SemaphoreRow {
                name: &s.name,
                location: &s.location,
                permits: s.permits,
                acquisitions: s.acquisitions,
                max_waiters: s.max_waiters,
                saturated_ns: s.saturated_ns,
                wait_ns: s.wait_ns.percentiles(),
                wait_ns_hdr: crate::hdr::encode(&s.wait_ns),
            })
            .collect(),
        warnings: snapshot
            .warnings
            .iter()
            .map(|w| WarningRow {
                warning: w,
                stacks: snapshot
                    .warning_stacks
                    .get(&w.id)
                    .map_or(&[][..], Vec::as_slice),
            })
            .collect(),
    }
}

/// The report as pretty-printed JSON.
pub fn render(snapshot: &Snapshot) -> String {
    serde_json::to_string_pretty(&report(snapshot)).expect("a report always serialises")
}
