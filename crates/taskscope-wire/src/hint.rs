//! What to do about each kind of warning: one or two sentences with the tokio remedy, shown
//! with every warning in the dashboard and the reports. A function of the kind, so recordings
//! and streams of every version carry it without a field of their own.

use crate::warning::{Warning, WarningKind};

impl WarningKind {
    /// How to fix what this kind of warning found.
    ///
    /// ```
    /// use taskscope_wire::WarningKind;
    /// assert!(WarningKind::BlockedWorker.hint().contains("spawn_blocking"));
    /// ```
    pub fn hint(self) -> &'static str {
        match self {
            WarningKind::Deadlock => {
                "The tasks wait on each other in a cycle: take these locks in one order \
                 everywhere, or hold one at a time."
            }
            WarningKind::BlockedWorker => {
                "Move the synchronous work off the worker with `tokio::task::spawn_blocking` \
                 (or `block_in_place` on a multi-thread runtime), or use its async form \
                 (`tokio::time::sleep`, `tokio::fs`, an async client)."
            }
            WarningKind::LockOrderInversion => {
                "Two code paths take these locks in opposite orders, which deadlocks when they \
                 interleave: pick one order and take them in it everywhere, or merge the locks."
            }
            WarningKind::LockHeldAcrossAwait => {
                "Drop the guard before the `.await` (copy out what you need, or end its scope); \
                 for a short section that never awaits, a `std::sync::Mutex` is cheaper."
            }
            WarningKind::LongWait => {
                "The lock or semaphore is a bottleneck: hold it for less time (no `.await` or \
                 slow work inside), split the data it guards, or add permits."
            }
            WarningKind::TaskPanicked => {
                "Await the task's `JoinHandle` (or keep it in a `JoinSet`) so that its panic is \
                 seen and handled; a detached task's panic is otherwise lost."
            }
            WarningKind::TasksAliveAtExit => {
                "Keep the handles of long-lived tasks and await or abort them at shutdown (a \
                 `JoinSet`, a `CancellationToken`) before the runtime drops them mid-work."
            }
            WarningKind::EventsDropped => {
                "taskscope's bounded event queue was full (a storm of spawns or lock creations), \
                 so its counts are lower bounds; the application itself was not slowed."
            }
            WarningKind::RecordingStopped => {
                "Free disk space, or cap the file with `Builder::record_max_bytes` so that the \
                 recording rotates instead of filling the disk."
            }
            WarningKind::LostWaker => {
                "Nothing holds a waker of this task, so it never runs again: a future returned \
                 `Pending` without storing `cx.waker()`; find the leaf future that drops it."
            }
            WarningKind::UnboundedSpawn => {
                "Bound the fan-out: acquire a `Semaphore` permit before each spawn, keep at most \
                 N tasks in a `JoinSet`, or use `futures::stream::iter(..).buffer_unordered(N)`."
            }
            WarningKind::StaleUpdate => {
                "Read, compute and write in one critical section (keep the guard; do the slow \
                 `.await` before taking the lock or after releasing it), or re-read the value \
                 under the lock and check it is unchanged before writing."
            }
            WarningKind::SemaphoreSaturated => {
                "Tasks queue for the permits most of the time: give the semaphore more permits \
                 if what it guards can take them, or hold each permit for less (release it \
                 before slow `.await`s that do not need it)."
            }
            WarningKind::SelfWakes => {
                "The task wakes itself in its own poll instead of waiting (`wake_by_ref()` \
                 then `Pending`, a busy loop): wait on the channel, `Notify` or timer instead."
            }
        }
    }
}

impl Warning {
    /// How to fix what this warning found (its kind's [`hint`](WarningKind::hint)).
    pub fn hint(&self) -> &'static str {
        self.kind.hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_a_short_hint_of_its_own() {
        let mut seen = std::collections::HashSet::new();
        for kind in WarningKind::ALL {
            let hint = kind.hint();
            assert!(hint.len() > 40 && hint.len() < 260, "{kind}: {hint}");
            assert!(hint.ends_with('.'), "{kind}: {hint}");
            assert!(seen.insert(hint), "{kind} shares its hint");
        }
    }
}
