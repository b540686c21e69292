//! What taskscope found: the warning kinds and a warning.

use serde::{Deserialize, Serialize};

/// The stable warning kinds of DESIGN.md §4.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WarningKind {
    /// A single poll ran longer than the blocked threshold.
    BlockedWorker,
    /// A lock guard lived across a `Pending` return of its holder.
    LockHeldAcrossAwait,
    /// Two locks were taken in both orders.
    LockOrderInversion,
    /// A cycle in the wait-for graph.
    Deadlock,
    /// A task waited on a lock or semaphore longer than the long-wait threshold.
    LongWait,
    /// An instrumented task panicked.
    TaskPanicked,
    /// Tasks were still alive when the Guard dropped.
    TasksAliveAtExit,
    /// The event queue shed load.
    EventsDropped,
    /// A task that is not done, not running and not woken has no waker left: nothing can wake
    /// it again (from taskscope's waker proxy, or console-subscriber's waker counts in
    /// `taskscope console`).
    LostWaker,
    /// More than half of a task's wakes (at least 20 in a second) were its own, during its own
    /// poll: a busy loop that re-polls itself instead of waiting.
    SelfWakes,
    /// The recording could not be written (a full disk, a failed rotation) and stopped; it
    /// holds what came before (version 3).
    RecordingStopped,
    /// A task group's live tasks jumped to thousands with no bound in sight: a fan-out that
    /// spawns a task per item without a limit (version 4).
    UnboundedSpawn,
    /// A task read a lock's value, awaited, then wrote the lock without reading it again while
    /// another task wrote it in between: a read-modify-write split by an `.await`, whose
    /// update may overwrite the other one (version 5).
    StaleUpdate,
    /// A semaphore had no permit free and tasks queued for it most of a 5 s window: its limit
    /// sets the pace (version 9).
    SemaphoreSaturated,
}

impl WarningKind {
    /// The kind's stable name, as in JSON (`blocked_worker`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            WarningKind::BlockedWorker => "blocked_worker",
            WarningKind::LockHeldAcrossAwait => "lock_held_across_await",
            WarningKind::LockOrderInversion => "lock_order_inversion",
            WarningKind::Deadlock => "deadlock",
            WarningKind::LongWait => "long_wait",
            WarningKind::TaskPanicked => "task_panicked",
            WarningKind::TasksAliveAtExit => "tasks_alive_at_exit",
            WarningKind::EventsDropped => "events_dropped",
            WarningKind::LostWaker => "lost_waker",
            WarningKind::SelfWakes => "self_wakes",
            WarningKind::RecordingStopped => "recording_stopped",
            WarningKind::UnboundedSpawn => "unbounded_spawn",
            WarningKind::StaleUpdate => "stale_update",
            WarningKind::SemaphoreSaturated => "semaphore_saturated",
        }
    }

    /// The wire version that introduced the kind: readers of older versions cannot decode it
    /// (see [`Frame::for_version`](crate::Frame::for_version)).
    pub fn since_version(self) -> u32 {
        match self {
            WarningKind::RecordingStopped => 3,
            WarningKind::UnboundedSpawn => 4,
            WarningKind::StaleUpdate => 5,
            WarningKind::SemaphoreSaturated => 9,
            _ => 1,
        }
    }

    /// Every kind, the gravest first: the order reports and views list them in.
    pub const ALL: [WarningKind; 14] = [
        WarningKind::Deadlock,
        WarningKind::BlockedWorker,
        WarningKind::LockOrderInversion,
        WarningKind::LockHeldAcrossAwait,
        WarningKind::StaleUpdate,
        WarningKind::UnboundedSpawn,
        WarningKind::LongWait,
        WarningKind::SemaphoreSaturated,
        WarningKind::TaskPanicked,
        WarningKind::TasksAliveAtExit,
        WarningKind::EventsDropped,
        WarningKind::RecordingStopped,
        WarningKind::LostWaker,
        WarningKind::SelfWakes,
    ];
}

impl std::fmt::Display for WarningKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Something taskscope found.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Warning {
    /// Unique id; an update of an ongoing warning keeps its id.
    pub id: u64,
    /// What was found.
    pub kind: WarningKind,
    /// When it was raised.
    pub at_ms: u64,
    /// The task concerned, if one.
    pub task: Option<u64>,
    /// That task's name.
    pub task_name: Option<String>,
    /// Spawn location of the task (or the acquire location, for lock warnings).
    pub location: Option<String>,
    /// One line a person can act on.
    pub message: String,
    /// How long (blocked, waited, held), so far if `ongoing`.
    pub duration_ns: Option<u64>,
    /// Still happening (e.g. the worker is still blocked).
    pub ongoing: bool,
    /// The worker thread, for `blocked_worker`.
    pub worker: Option<String>,
    /// The `tracing` span current on that worker, for `blocked_worker`.
    pub span: Option<String>,
    /// Locks concerned (held, waited on, in the cycle).
    pub locks: Vec<String>,
    /// Tasks concerned beyond `task` (deadlock cycles, longest-lived tasks at exit).
    pub tasks: Vec<u64>,
    /// A count, for `events_dropped` and `tasks_alive_at_exit`.
    pub count: Option<u64>,
}

impl Warning {
    /// A warning of `kind` with only the message set.
    pub fn new(id: u64, kind: WarningKind, at_ms: u64, message: impl Into<String>) -> Self {
        Warning {
            id,
            kind,
            at_ms,
            task: None,
            task_name: None,
            location: None,
            message: message.into(),
            duration_ns: None,
            ongoing: false,
            worker: None,
            span: None,
            locks: Vec::new(),
            tasks: Vec::new(),
            count: None,
        }
    }
}
