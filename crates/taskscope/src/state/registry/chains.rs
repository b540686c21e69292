//! The chains of `deadlock` and `long_wait` warnings: the tasks a new one involves are queued
//! here when it is raised (`sync::graph`), traced off the watchdog by a thread of their own
//! (`threads::watchdog` hands them to `dump`), and their chains kept by warning id for the
//! snapshot, the stream and recordings.

use std::collections::{BTreeMap, BTreeSet};

use taskscope_wire::DumpedTask;

/// Warnings waiting for their tasks to be traced, at most (more are not traced).
const MAX_WANTED: usize = 64;
/// Warnings whose chains are kept, at most (the oldest go first).
const MAX_KEPT: usize = 1024;

/// Wanted and found chains.
#[derive(Debug, Default)]
pub(crate) struct WarningChains {
    /// (warning, its tasks) to trace.
    wanted: Vec<(u64, Vec<u64>)>,
    /// The chains found, by warning id.
    pub(crate) by_warning: BTreeMap<u64, Vec<DumpedTask>>,
    /// Warnings whose chains the exporter has not sent yet.
    pub(crate) changed: BTreeSet<u64>,
}

impl WarningChains {
    /// Asks for the chains of `tasks` for `warning`.
    pub(crate) fn want(&mut self, warning: u64, tasks: Vec<u64>) {
        if self.wanted.len() < MAX_WANTED {
            self.wanted.push((warning, tasks));
        }
    }

    /// The warnings to trace now, handed over.
    pub(crate) fn take_wanted(&mut self) -> Vec<(u64, Vec<u64>)> {
        std::mem::take(&mut self.wanted)
    }

    /// Keeps the chains found for `warning`.
    pub(crate) fn found(&mut self, warning: u64, tasks: Vec<DumpedTask>) {
        while self.by_warning.len() >= MAX_KEPT {
            let Some((&oldest, _)) = self.by_warning.iter().next() else {
                break;
            };
            self.by_warning.remove(&oldest);
        }
        self.by_warning.insert(warning, tasks);
        self.changed.insert(warning);
    }
}
