//! The warning store and the text of each warning kind (DESIGN.md §4). Every warning raised is
//! also emitted as a `tracing` event under target `taskscope`, so it reaches the app's logs.

use std::collections::{HashMap, VecDeque};

pub(crate) use taskscope_wire::fmt_ns;
use taskscope_wire::{Task, Warning, WarningKind};

use crate::base::clock;
use crate::state::shared::Shared;

/// How many warnings are kept; the oldest finished ones go first.
const MAX_WARNINGS: usize = 10_000;

/// Warnings, oldest first, with the bookkeeping to update ongoing ones.
#[derive(Debug, Default)]
pub(crate) struct Warnings {
    list: VecDeque<Warning>,
    next_id: u64,
    /// Warnings raised but not yet emitted as `tracing` events (emitted outside the lock).
    pub(crate) to_emit: Vec<Warning>,
    /// (task, poll start ticks) → warning id, for `blocked_worker` warnings.
    pub(crate) blocked: HashMap<(u64, u64), u64>,
    /// What each `blocked_worker` in `blocked` calls the task or scope that blocked (its text
    /// is rewritten as the block goes on).
    pub(crate) subjects: HashMap<u64, String>,
    /// How long the worker of each ongoing `blocked_worker` has waited for a CPU meanwhile.
    pub(crate) cpu_waits: HashMap<u64, CpuWait>,
    /// The same for polls seen running long but not yet past the threshold, by (task, start).
    pub(crate) cpu_waits_before: HashMap<(u64, u64), CpuWait>,
    dropped_warning: Option<u64>,
}

/// A long poll's wait for a CPU: its worker thread, and the thread's run-queue wait
/// (`base::schedstat`) when the poll was first seen running long and at the latest reading.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CpuWait {
    pub(crate) tid: i32,
    pub(crate) since: u64,
    pub(crate) last: u64,
}

impl CpuWait {
    /// A first reading of thread `tid`'s run-queue wait (`None` where the kernel does not say).
    pub(crate) fn read(tid: i32) -> Option<CpuWait> {
        let at = crate::base::schedstat::runqueue_wait_ns(tid)?;
        Some(CpuWait {
            tid,
            since: at,
            last: at,
        })
    }

    /// Takes the latest reading (kept as it was where the kernel does not say).
    pub(crate) fn read_again(&mut self) {
        if let Some(at) = crate::base::schedstat::runqueue_wait_ns(self.tid) {
            self.last = at;
        }
    }

    /// Nanoseconds the worker was runnable but not running between the two readings: at least
    /// that much of the poll was the machine's, not the task's.
    pub(crate) fn waited(&self) -> u64 {
        self.last.saturating_sub(self.since)
    }
}

impl Warnings {
    pub(crate) fn raise(&mut self, mut warning: Warning) -> u64 {
        self.next_id += 1;
        warning.id = self.next_id;
        self.to_emit.push(warning.clone());
        if self.list.len() >= MAX_WARNINGS {
            let oldest_done = self.list.iter().position(|w| !w.ongoing).unwrap_or(0);
            self.list.remove(oldest_done);
        }
        self.list.push_back(warning);
        self.next_id
    }

    /// What `blocked_worker` warning `id` calls the task or scope that blocked.
    pub(crate) fn subject(&self, id: u64) -> String {
        self.subjects
            .get(&id)
            .cloned()
            .unwrap_or_else(|| "?".into())
    }

    pub(crate) fn get_mut(&mut self, id: u64) -> Option<&mut Warning> {
        self.list.iter_mut().rev().find(|w| w.id == id)
    }

    pub(crate) fn all(&self) -> Vec<Warning> {
        self.list.iter().cloned().collect()
    }

    /// The warnings, oldest first, without copying them.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Warning> {
        self.list.iter()
    }

    pub(crate) fn ongoing(&self) -> impl Iterator<Item = &Warning> {
        self.list.iter().filter(|w| w.ongoing)
    }

    pub(crate) fn events_dropped(&mut self, shared: &Shared, total: u64) {
        let message = format!(
            "taskscope dropped {total} events because its queue was full; the numbers shown are incomplete"
        );
        if let Some(w) = self.dropped_warning.and_then(|id| self.get_mut(id)) {
            w.count = Some(total);
            w.message = message;
            return;
        }
        let mut w = Warning::new(
            0,
            WarningKind::EventsDropped,
            shared.ms_at(clock::now()),
            message,
        );
        w.count = Some(total);
        self.dropped_warning = Some(self.raise(w));
    }

    /// The recording stopped: `why` says at which file and what failed.
    pub(crate) fn recording_stopped(&mut self, shared: &Shared, why: String) {
        let w = Warning::new(
            0,
            WarningKind::RecordingStopped,
            shared.ms_at(clock::now()),
            format!("{why}; the recording holds what came before"),
        );
        self.raise(w);
    }

    /// `task` panicked and no code saw it; `why` says how taskscope knows, when it does.
    pub(crate) fn task_panicked(&mut self, shared: &Shared, task: &Task, why: Option<&str>) {
        let panic = task.panic_message.as_deref().unwrap_or("(no message)");
        let why = why.map_or(String::new(), |why| format!(" ({why})"));
        let mut w = Warning::new(
            0,
            WarningKind::TaskPanicked,
            task.ended_ms.unwrap_or_else(|| shared.ms_at(clock::now())),
            format!(
                "task `{}` spawned at {} panicked: {panic}{why}",
                task.name, task.location
            ),
        );
        w.task = Some(task.id);
        w.task_name = Some(task.name.clone());
        w.location = Some(task.location.clone());
        self.raise(w);
    }
}

/// Emits a warning as a `tracing` event under target `taskscope`.
pub(crate) fn emit(w: &Warning) {
    tracing::warn!(
        target: "taskscope",
        kind = w.kind.as_str(),
        task = w.task_name.as_deref().unwrap_or(""),
        location = w.location.as_deref().unwrap_or(""),
        "{}",
        w.message
    );
}

/// Where the task blocking a worker comes from when taskscope did not spawn it.
pub(crate) const UNINSTRUMENTED_ORIGIN: &str =
    "in a task not spawned through taskscope (e.g. a library's own tokio::spawn)";

/// Names the thread of a `blocked_worker` in a task taskscope did not spawn and the application
/// frame it is blocked at (`location`), and says so in its text.
pub(crate) fn locate_uninstrumented(
    w: &mut Warning,
    thread: &dyn std::fmt::Display,
    location: Option<String>,
) {
    w.worker = Some(thread.to_string());
    w.location = location;
    if let Some(message) = uninstrumented_message(w) {
        w.message = message;
    }
}

/// The text of a `blocked_worker` in a task taskscope did not spawn, once the worker's thread
/// and the application frame it is blocked at are known (`worker`, `location`).
pub(crate) fn uninstrumented_message(w: &Warning) -> Option<String> {
    let (location, thread) = (w.location.as_deref()?, w.worker.as_deref()?);
    let elapsed = fmt_ns(w.duration_ns.unwrap_or(0));
    Some(if w.ongoing {
        format!("worker {thread} has been blocked for {elapsed} at {location} {UNINSTRUMENTED_ORIGIN}; still blocked")
    } else {
        format!("worker {thread} was blocked for {elapsed} at {location} {UNINSTRUMENTED_ORIGIN}")
    })
}
