//! What a console connection keeps of each task, resource and async operation.

use std::collections::{BTreeMap, HashMap};
use std::time::SystemTime;

use console_api as api;
use taskscope_wire::{Histogram, Task, TaskGroup, TaskKind, TaskState};

use super::decode::*;

/// One task as console-subscriber reported it, plus what taskscope derived from it.
#[derive(Debug, Default)]
pub(super) struct TaskEntry {
    /// tokio's task id when the span carries it (what `tokio::task::id()` shows), else the span id.
    pub(super) id: u64,
    pub(super) name: String,
    pub(super) location: String,
    pub(super) kind: TaskKind,
    pub(super) stats: api::tasks::Stats,
    pub(super) poll_ns: Histogram,
    pub(super) scheduled_ns: Histogram,
    /// Poll counts above the blocked threshold in the last details, by histogram value.
    pub(super) long_polls: BTreeMap<u64, u64>,
    /// Polls beyond the histogram's range in the last details.
    pub(super) long_outliers: u64,
    pub(super) highest_outlier: u64,
    /// Ends of long polls reported live, not yet matched in a details histogram.
    pub(super) live_long_polls: Vec<SystemTime>,
    /// The live `blocked_worker` warning of the poll that started at this time.
    pub(super) blocked: Option<(SystemTime, usize)>,
    pub(super) lost_waker: Option<usize>,
    pub(super) self_wakes_warned: bool,
    /// A details message newer than the task's end has arrived: no need to watch it further.
    pub(super) details_final: bool,
    pub(super) details_failed: bool,
}

impl TaskEntry {
    pub(super) fn dropped_at(&self) -> Option<SystemTime> {
        opt_time(&self.stats.dropped_at)
    }

    pub(super) fn poll_stats(&self) -> api::PollStats {
        self.stats.poll_stats.unwrap_or_default()
    }

    /// The start of a poll that is running now, if one is.
    pub(super) fn running_since(&self) -> Option<SystemTime> {
        let polls = self.poll_stats();
        let started = opt_time(&polls.last_poll_started)?;
        match opt_time(&polls.last_poll_ended) {
            Some(ended) if ended >= started => None,
            _ if self.dropped_at().is_some() => None,
            _ => Some(started),
        }
    }

    pub(super) fn state(&self) -> TaskState {
        if self.dropped_at().is_some() {
            return TaskState::Done;
        }
        if self.running_since().is_some() {
            return TaskState::Running;
        }
        let polls = self.poll_stats();
        let ended = opt_time(&polls.last_poll_ended);
        match (opt_time(&self.stats.last_wake), ended) {
            (_, None) => TaskState::Scheduled, // never polled yet
            (Some(wake), Some(ended)) if wake > ended => TaskState::Scheduled,
            _ => TaskState::Idle,
        }
    }

    pub(super) fn wakers(&self) -> i64 {
        self.stats.waker_clones as i64 - self.stats.waker_drops as i64
    }
}

/// A resource: a tokio `Mutex`, `RwLock`, `Semaphore`, timer, channel, ...
#[derive(Debug, Default)]
pub(super) struct ResourceEntry {
    pub(super) kind: String,
    pub(super) location: String,
    pub(super) internal: bool,
    pub(super) created_at: Option<SystemTime>,
    pub(super) dropped_at: Option<SystemTime>,
    pub(super) attributes: BTreeMap<String, String>,
    /// `Semaphore`'s `permits` attribute: available now, and the most seen.
    pub(super) available: Option<u64>,
    pub(super) permits_seen: u64,
    /// Per kind of operation (`Mutex::lock`, `RwLock::read`, `RwLock::write`, ...): finished
    /// ones, those that waited, and their durations.
    pub(super) ops: BTreeMap<String, OpTotals>,
    pub(super) max_waiters: BTreeMap<String, u64>,
    pub(super) saturated_ns: u64,
}

#[derive(Debug, Default, Clone)]
pub(super) struct OpTotals {
    pub(super) finished: u64,
    pub(super) contended: u64,
    pub(super) wait_ns: Histogram,
}

/// An async operation (`Mutex::lock`, `Semaphore::acquire`, `Sleep::new_timeout`, ...).
#[derive(Debug, Default)]
pub(super) struct OpEntry {
    pub(super) source: String,
    pub(super) resource: u64,
    pub(super) task_span: Option<u64>,
    pub(super) created_at: Option<SystemTime>,
    pub(super) dropped_at: Option<SystemTime>,
    /// A poll of it returned `Pending`.
    pub(super) waited: bool,
    pub(super) long_wait: Option<usize>,
}

/// A task group's identity: name, spawn location, kind.
pub(super) type GroupKey = (String, String, TaskKind);

/// Adds a task to its group in `groups`.
pub(super) fn account(groups: &mut HashMap<GroupKey, TaskGroup>, t: &Task) {
    let group = groups
        .entry((t.name.clone(), t.location.clone(), t.kind))
        .or_insert_with(|| TaskGroup {
            name: t.name.clone(),
            location: t.location.clone(),
            kind: t.kind,
            ..TaskGroup::default()
        });
    group.spawned += 1;
    if t.state == TaskState::Done {
        group.completed += 1;
    } else {
        group.alive += 1;
    }
    group.polls += t.polls;
    group.busy_ns += t.busy_ns;
    group.poll_ns.merge(&t.poll_ns);
    group.scheduled_ns.merge(&t.scheduled_ns);
}

/// Whether a resource kind is one taskscope shows as a lock or semaphore.
pub(super) fn is_lock_like(kind: &str) -> bool {
    matches!(kind, "Mutex" | "RwLock" | "Semaphore")
}
