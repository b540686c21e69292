//! What became of tasks' `JoinHandle`s: the live tasks that are detached, and `task_panicked`,
//! a panic nobody saw.
//! A task spawned through taskscope panics; if its
//! `JoinHandle` returns the `JoinError` to the code that awaits it, that code saw the panic and
//! nothing is reported. The warning is raised when the handle was dropped without returning it
//! (the task was detached), or was still held, never awaited, when taskscope stopped. A task
//! with no handle of taskscope's (a scope, whose panic unwinds into a task of the framework; a
//! task seen by the runtime hooks) is reported as soon as it is retired: nothing tells whether
//! its panic is seen. A handle given to tokio (`into_tokio`) is not reported.

use std::sync::Arc;

use super::{task_to_wire, Registry};
use crate::state::shared::Shared;
use crate::stats::join::{DETACHED, HELD, UNKNOWN};
use crate::stats::task::TaskStats;

/// Panicked tasks whose handle is still held: reported when it is dropped unawaited.
#[derive(Debug, Default)]
pub(crate) struct HeldPanics(Vec<Arc<TaskStats>>);

impl Registry {
    /// The live tasks whose handle was dropped before they ended, by id, ascending.
    pub(crate) fn detached(&self) -> Vec<u64> {
        let mut ids: Vec<u64> = self
            .live
            .iter()
            .filter(|(_, (s, _))| s.join.get() == DETACHED && !s.is_done())
            .map(|(&id, _)| id)
            .collect();
        ids.sort_unstable();
        ids
    }

    /// A retired task panicked: reports it now, later (its handle is held) or never (its handle
    /// returned the panic).
    pub(super) fn task_panicked(&mut self, shared: &Shared, stats: &Arc<TaskStats>) {
        match stats.join.get() {
            UNKNOWN => self
                .warnings
                .task_panicked(shared, &task_to_wire(stats, shared), None),
            DETACHED => self.report_detached(shared, stats),
            HELD => self.held_panics.0.push(stats.clone()),
            _ => {} // OBSERVED: the awaiting code has the JoinError; or HANDED_OFF
        }
    }

    /// Reports the held panics whose handle has since been dropped unawaited, and forgets those
    /// whose handle returned the panic or was handed to tokio; at `stop`, also those whose
    /// handle is still held.
    pub(super) fn check_held_panics(&mut self, shared: &Shared, stop: bool) {
        let held = std::mem::take(&mut self.held_panics.0);
        for stats in held {
            match stats.join.get() {
                DETACHED => self.report_detached(shared, &stats),
                HELD if stop => self.warnings.task_panicked(
                    shared,
                    &task_to_wire(&stats, shared),
                    Some("its JoinHandle was never awaited"),
                ),
                HELD => self.held_panics.0.push(stats),
                _ => {}
            }
        }
    }

    fn report_detached(&mut self, shared: &Shared, stats: &Arc<TaskStats>) {
        let why = "its JoinHandle was dropped: the task was detached, and no code saw the panic";
        let task = task_to_wire(stats, shared);
        self.warnings.task_panicked(shared, &task, Some(why));
    }
}
