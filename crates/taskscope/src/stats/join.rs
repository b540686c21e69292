//! Who will see a task's result: what became of its `JoinHandle`.
//!
//! A panic in a task whose handle is awaited reaches the awaiting code as a `JoinError`; a panic
//! in a task whose handle was dropped (detached) reaches no one, and that is what
//! `task_panicked` reports. tokio's own `JoinHandle` does not say when it is dropped, so
//! `taskscope::spawn` returns a handle of its own that tells these statistics.

use std::sync::atomic::{AtomicU8, Ordering::*};

/// No handle of taskscope's: a scope (awaited in place) or a task seen by the runtime hooks.
pub(crate) const UNKNOWN: u8 = 0;
/// Its handle is alive and has not returned the result.
pub(crate) const HELD: u8 = 1;
/// Its handle was dropped before it returned the result: the task is detached.
pub(crate) const DETACHED: u8 = 2;
/// Its handle returned the result (`Ok` or the `JoinError`) to the code that awaited it.
pub(crate) const OBSERVED: u8 = 3;
/// Its handle was given to tokio (`JoinHandle::into_tokio`): taskscope cannot tell who sees the
/// result.
pub(crate) const HANDED_OFF: u8 = 4;

/// The state of a task's handle: one of [`UNKNOWN`], [`HELD`], [`DETACHED`], [`OBSERVED`],
/// [`HANDED_OFF`].
#[derive(Debug, Default)]
pub(crate) struct JoinState(AtomicU8);

impl JoinState {
    /// The current state.
    pub(crate) fn get(&self) -> u8 {
        self.0.load(Acquire)
    }

    /// A handle of taskscope's was made for the task.
    pub(crate) fn held(&self) {
        self.0.store(HELD, Release);
    }

    /// The handle returned the task's result.
    pub(crate) fn observed(&self) {
        self.0.store(OBSERVED, Release);
    }

    /// The handle was given to tokio: whoever holds it now is not known.
    pub(crate) fn handed_off(&self) {
        self.0.store(HANDED_OFF, Release);
    }

    /// The handle was dropped: the task is detached, unless the handle returned the result
    /// first or was handed off.
    pub(crate) fn dropped(&self) {
        let _ = self.0.compare_exchange(HELD, DETACHED, AcqRel, Relaxed);
    }

    /// Back to [`UNKNOWN`], for statistics reused by a new task (exclusive access).
    pub(crate) fn reset(&mut self) {
        *self.0.get_mut() = UNKNOWN;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dropped_handle_detaches_only_a_task_whose_result_it_did_not_return() {
        let dropped = JoinState::default();
        dropped.held();
        dropped.dropped();
        assert_eq!(dropped.get(), DETACHED);
        let awaited = JoinState::default();
        awaited.held();
        awaited.observed();
        awaited.dropped();
        assert_eq!(awaited.get(), OBSERVED);
        let handed = JoinState::default();
        handed.held();
        handed.handed_off();
        handed.dropped();
        assert_eq!(handed.get(), HANDED_OFF);
    }
}
