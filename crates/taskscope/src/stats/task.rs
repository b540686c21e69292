//! Per-task statistics: one `Arc<TaskStats>` per instrumented task, shared by the task's poll
//! wrapper (the writer), its waker proxy and the collector (the reader).

use std::borrow::Cow;
use std::panic::Location;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering::*};
use std::sync::Mutex;

use taskscope_wire::{Outcome, TaskKind, TaskState};

use super::histogram::AtomicHistogram;

pub(crate) const STATE_IDLE: u8 = 0;
pub(crate) const STATE_RUNNING: u8 = 1;
pub(crate) const STATE_SCHEDULED: u8 = 2;
pub(crate) const STATE_DONE: u8 = 3;

pub(crate) const OUTCOME_NONE: u8 = 0;
pub(crate) const OUTCOME_COMPLETED: u8 = 1;
pub(crate) const OUTCOME_CANCELLED: u8 = 2;
pub(crate) const OUTCOME_PANICKED: u8 = 3;

/// Statistics of one task. Fields written by the poller are single-writer (load + store).
/// The fields every poll touches come first, together, to keep the lines a poll touches few;
/// `woken_at` is not padded apart: most wakes come from the task's own worker thread.
#[derive(Debug)]
#[repr(C)]
pub(crate) struct TaskStats {
    // Touched by every poll.
    pub(crate) state: AtomicU8,
    pub(crate) outcome: AtomicU8,
    /// Ticks of the first wake since the last poll started (0: not woken).
    pub(crate) woken_at: AtomicU64,
    /// Wakes that made the task runnable (repeated wakes before it runs count once).
    pub(crate) wakes: AtomicU64,
    pub(crate) id: u64,
    pub(crate) poll_ns: AtomicHistogram,
    pub(crate) scheduled_ns: AtomicHistogram,

    pub(crate) name: Cow<'static, str>,
    pub(crate) location: &'static Location<'static>,
    pub(crate) parent: u64,
    pub(crate) kind: TaskKind,
    /// Spawn time, clock ticks.
    pub(crate) created: u64,

    pub(crate) first_poll: AtomicU64,
    pub(crate) self_wakes: AtomicU64,
    pub(crate) ended: AtomicU64,
    pub(crate) panic_message: Mutex<Option<String>>,
}

impl TaskStats {
    pub(crate) fn new(
        id: u64,
        name: Cow<'static, str>,
        location: &'static Location<'static>,
        parent: u64,
        kind: TaskKind,
        created: u64,
    ) -> Self {
        TaskStats {
            id,
            name,
            location,
            parent,
            kind,
            created,
            poll_ns: AtomicHistogram::default(),
            scheduled_ns: AtomicHistogram::default(),
            first_poll: AtomicU64::new(0),
            self_wakes: AtomicU64::new(0),
            state: AtomicU8::new(STATE_IDLE),
            outcome: AtomicU8::new(OUTCOME_NONE),
            ended: AtomicU64::new(0),
            panic_message: Mutex::new(None),
            woken_at: AtomicU64::new(0),
            wakes: AtomicU64::new(0),
        }
    }

    pub(crate) fn is_done(&self) -> bool {
        self.state.load(Acquire) == STATE_DONE
    }

    /// Marks the task finished; the first outcome set wins.
    pub(crate) fn finish(&self, outcome: u8, at: u64) {
        if self
            .outcome
            .compare_exchange(OUTCOME_NONE, outcome, Relaxed, Relaxed)
            .is_ok()
        {
            self.ended.store(at, Relaxed);
            self.state.store(STATE_DONE, Release);
        }
    }

    pub(crate) fn state(&self) -> TaskState {
        match self.state.load(Acquire) {
            STATE_RUNNING => TaskState::Running,
            STATE_DONE => TaskState::Done,
            _ if self.woken_at.load(Relaxed) != 0 => TaskState::Scheduled,
            STATE_SCHEDULED => TaskState::Scheduled,
            _ => TaskState::Idle,
        }
    }

    pub(crate) fn outcome(&self) -> Option<Outcome> {
        match self.outcome.load(Acquire) {
            OUTCOME_COMPLETED => Some(Outcome::Completed),
            OUTCOME_CANCELLED => Some(Outcome::Cancelled),
            OUTCOME_PANICKED => Some(Outcome::Panicked),
            _ => None,
        }
    }

    pub(crate) fn location_string(&self) -> String {
        format_location(self.location)
    }

    /// The given name, or the spawn location for an unnamed task (formatted only when read, so
    /// `spawn` does not pay for it).
    pub(crate) fn display_name(&self) -> Cow<'static, str> {
        if self.name.is_empty() {
            Cow::Owned(self.location_string())
        } else {
            self.name.clone()
        }
    }
}

/// `file:line:column`, the form every view and report uses.
pub(crate) fn format_location(location: &Location<'_>) -> String {
    format!(
        "{}:{}:{}",
        location.file(),
        location.line(),
        location.column()
    )
}
