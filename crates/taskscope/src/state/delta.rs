//! What the stream has sent of the tasks, and what changed since: the change tracking behind
//! the stream's updates (`export`), and the live tasks copied out of the registry so that they
//! are read without its lock.

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use taskscope_wire::{Task, TaskChange, TaskGroup};

use crate::base::ids::IdMap;
use crate::state::shared::{Shared, THRESHOLDS};
use crate::state::to_wire::{task_change, task_to_wire};
use crate::stats::histogram::DenseHistogram;
use crate::stats::task::TaskStats;

/// Live tasks and their groups, copied out of the registry (see `Registry::view`).
pub(crate) struct LiveView {
    live: Vec<(Arc<TaskStats>, u32)>,
    groups: Vec<TaskGroup>,
}

impl LiveView {
    /// The live tasks (each with its group's index) and the groups, copied out.
    pub(crate) fn new(live: Vec<(Arc<TaskStats>, u32)>, groups: Vec<TaskGroup>) -> LiveView {
        LiveView { live, groups }
    }

    /// Changes of the live tasks for the stream, found without the registry lock (with 100,000
    /// tasks this takes ~10 ms, which the watchdog used to wait out when it came at the moment
    /// a worker blocked). Finished by `Registry::finish_task_changes` under the lock.
    pub(crate) fn task_changes(
        &self,
        shared: &'static Shared,
        sent: &mut SentTasks,
    ) -> TaskChanges {
        let mut changed = sent.begin_pass();
        live_task_changes(
            self.live.iter().map(|(s, _)| s),
            shared,
            sent,
            false,
            &mut changed,
        );
        changed
    }

    /// The live tasks, by id.
    pub(crate) fn live_tasks(&self, shared: &Shared) -> Vec<Task> {
        let mut tasks: Vec<Task> = self
            .live
            .iter()
            .map(|(s, _)| task_to_wire(s, shared))
            .collect();
        tasks.sort_by_key(|t| t.id);
        tasks
    }

    /// Groups with live tasks' numbers added in, busiest first. Reads the live tasks' atomics
    /// directly (no per-task copies), so it is cheap enough to run every second with 10,000s of
    /// tasks.
    pub(crate) fn groups(&self) -> Vec<TaskGroup> {
        let mut groups = self.groups.clone();
        // Live tasks' buckets are summed into dense arrays per group first (an index, not a
        // search, per bucket), then merged once into each group's sparse histogram.
        let mut dense: HashMap<u32, (DenseHistogram, DenseHistogram)> = HashMap::new();
        // Three stages of prefetching, a few tasks apart (see `TaskStats::prefetch_stats`).
        let ahead = |n: usize| self.live.iter().skip(n).map(|(s, _)| s);
        let (mut stats_ahead, mut bins_ahead, mut buckets_ahead) = (ahead(6), ahead(4), ahead(2));
        for (stats, index) in &self.live {
            stats_ahead.next().inspect(|s| s.prefetch_stats());
            bins_ahead.next().inspect(|s| s.prefetch_bins());
            buckets_ahead.next().inspect(|s| s.prefetch_buckets());
            if stats.is_done() {
                continue; // counted when retired
            }
            let group = &mut groups[*index as usize];
            let (polls, _) = stats.counts();
            group.alive += 1;
            group.polls += polls;
            group.busy_ns = group.busy_ns.saturating_add(stats.busy_ns());
            let (poll, scheduled) = dense.entry(*index).or_default();
            stats.add_into(poll, scheduled);
        }
        for (index, (poll, scheduled)) in dense {
            let group = &mut groups[index as usize];
            poll.merge_into(&mut group.poll_ns);
            scheduled.merge_into(&mut group.scheduled_ns);
        }
        groups.sort_by(|a, b| b.busy_ns.cmp(&a.busy_ns).then_with(|| a.name.cmp(&b.name)));
        groups
    }
}

/// See `TaskStats::change_stamp`.
type ChangeStamp = (u64, u8, u8, bool);

/// What the stream remembers of the tasks it sent: change stamp, the pass that last saw each,
/// and the octave of the longest poll its histograms had when last sent.
#[derive(Debug, Default)]
pub(crate) struct SentTasks {
    tasks: IdMap<(ChangeStamp, u64, u32)>,
    pass: u64,
}

impl SentTasks {
    /// Starts a pass over the tasks: those not seen in it are gone.
    pub(crate) fn begin_pass(&mut self) -> TaskChanges {
        self.pass = self.pass.wrapping_add(1);
        TaskChanges {
            pass: self.pass,
            new: Vec::new(),
            changes: Vec::new(),
            grown_left: GROWN_PER_PASS,
        }
    }

    /// Ends the pass begun with `changed`: every finished task (id, and its wire form when it
    /// must be sent) is sent in full once more, with its final numbers, then no longer changes;
    /// the tasks the pass did not see are gone. Returns the new tasks (in full), the changes
    /// and the ids gone.
    pub(crate) fn finish_pass<F: FnOnce() -> Task>(
        &mut self,
        changed: TaskChanges,
        finished: impl Iterator<Item = (u64, F)>,
    ) -> (Vec<Task>, Vec<TaskChange>, Vec<u64>) {
        let TaskChanges {
            pass,
            mut new,
            changes,
            ..
        } = changed;
        for (id, wire) in finished {
            // A stamp no live task can have marks a finished task.
            let stamp = (u64::MAX, u8::MAX, u8::MAX, true);
            let entry = self
                .tasks
                .entry(id)
                .or_insert((Default::default(), pass, 0));
            entry.1 = pass;
            if entry.0 != stamp {
                entry.0 = stamp;
                new.push(wire());
            }
        }
        let mut removed = Vec::new();
        self.tasks.retain(|&id, entry| {
            let keep = entry.1 == pass;
            if !keep {
                removed.push(id);
            }
            keep
        });
        new.sort_by_key(|t| t.id);
        (new, changes, removed)
    }
}

/// What a pass over the tasks found so far (see `Registry::changed_tasks`).
#[derive(Debug, Default)]
pub(crate) struct TaskChanges {
    pass: u64,
    new: Vec<Task>,
    changes: Vec<TaskChange>,
    /// Changes that may still carry histograms this pass for a longest poll that grew.
    grown_left: u32,
}

/// Tasks a pass sends histograms for because their longest poll doubled (below the blocked
/// threshold; past it, every one).
const GROWN_PER_PASS: u32 = 64;

/// Live tasks new to the stream or changed since it last saw them, added to `changed`.
pub(crate) fn live_task_changes<'a>(
    live: impl Iterator<Item = &'a Arc<TaskStats>> + Clone,
    shared: &'static Shared,
    sent: &mut SentTasks,
    histograms: bool,
    changed: &mut TaskChanges,
) {
    // Every task's hot line is a miss here (the workers write them): ask for them ahead.
    let mut stats_ahead = live.clone().skip(4);
    let blocked_ns = THRESHOLDS.blocked_ns.load(Relaxed);
    for stats in live {
        stats_ahead.next().inspect(|s| s.prefetch_stats());
        let stamp = stats.change_stamp();
        // The longest poll's octave (powers of two): histograms go with a change when it at
        // least doubled; always past the blocked threshold, else `GROWN_PER_PASS` tasks a pass
        // (10,000 busy tasks whose preempted polls keep doubling tripled the stream without
        // the bound: `stream_cost`).
        let max = stats.hot.max_poll_ns.load(Relaxed);
        let longest = 64 - max.leading_zeros();
        match sent.tasks.get_mut(&stats.id) {
            None => {
                sent.tasks.insert(stats.id, (stamp, changed.pass, longest));
                changed.new.push(task_to_wire(stats, shared));
            }
            Some(entry) => {
                entry.1 = changed.pass;
                if entry.0 != stamp {
                    entry.0 = stamp;
                    // Changes carry counters only, unless the task's longest poll doubled:
                    // then its histograms too, so views sorted by the longest poll find it.
                    let long = max >= blocked_ns;
                    let grew = longest > entry.2 && (long || changed.grown_left > 0);
                    if grew {
                        entry.2 = longest;
                        if !long {
                            changed.grown_left -= 1;
                        }
                    }
                    changed
                        .changes
                        .push(task_change(stats, shared, histograms || grew));
                }
            }
        }
    }
}
