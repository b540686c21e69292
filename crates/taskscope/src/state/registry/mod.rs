//! The live objects and what is kept of finished ones, owned behind one mutex that only
//! taskscope's own threads and `snapshot()` take — never the hot path, which talks to the
//! registry through the bounded event queue.

use std::collections::{HashMap, VecDeque};
use std::panic::Location;
use std::sync::atomic::Ordering::*;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use taskscope_wire::{Outcome, Task, TaskChange, TaskGroup, TaskKind};

use crate::base::ids::IdMap;
use crate::base::location::format_location;
use crate::state::delta::{live_task_changes, LiveView, SentTasks, TaskChanges};
use crate::state::probe::RuntimeProbe;
use crate::state::shared::{Event, Shared};
use crate::state::to_wire::task_to_wire;
use crate::state::warnings::Warnings;
use crate::stats::lock::LockStats;
use crate::stats::task::TaskStats;

mod chains;
mod fan_out;
mod locks;
mod panics;
mod profile;
mod saturation;
mod stale_updates;
mod wakers;

/// Beyond this many distinct (name, location) groups, new names fold into one group per location,
/// so per-request names (`format!("conn-{id}")`) cannot grow memory without bound.
const MAX_GROUPS: usize = 4096;
/// Finished tasks waiting to be retired past which the collector is woken before its tick.
const RETIRE_EARLY: usize = 4096;
/// The group name new names fold into past `MAX_GROUPS`.
const OTHER_NAMES: &str = "(other names)";

/// The registry, behind the one mutex that only taskscope's threads and `snapshot()` take.
static REGISTRY: OnceLock<Mutex<Registry>> = OnceLock::new();

/// Locks the registry and folds in pending events. Warnings raised while it is held are
/// emitted as `tracing` events when the returned guard drops, outside the lock.
pub(crate) fn lock(shared: &'static Shared) -> RegistryGuard {
    let mut guard = REGISTRY
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    guard.sync(shared);
    RegistryGuard(Some(guard))
}

/// The locked registry; emits the warnings raised under it once released.
pub(crate) struct RegistryGuard(Option<MutexGuard<'static, Registry>>);

impl std::ops::Deref for RegistryGuard {
    type Target = Registry;
    fn deref(&self) -> &Registry {
        self.0
            .as_ref()
            .expect("registry guard is only emptied in drop")
    }
}

impl std::ops::DerefMut for RegistryGuard {
    fn deref_mut(&mut self) -> &mut Registry {
        self.0
            .as_mut()
            .expect("registry guard is only emptied in drop")
    }
}

impl Drop for RegistryGuard {
    fn drop(&mut self) {
        let Some(mut guard) = self.0.take() else {
            return;
        };
        let raised = std::mem::take(&mut guard.warnings.to_emit);
        drop(guard);
        for warning in raised {
            crate::state::warnings::emit(&warning);
        }
    }
}

/// Where the two locks of a lock-order edge were acquired, and by which task.
#[derive(Debug, Clone, Copy)]
struct Edge {
    from_location: &'static Location<'static>,
    to_location: &'static Location<'static>,
    task: u64,
}

/// Live objects, aggregates of finished ones, and the warnings.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    /// Live tasks, each with the index of its group in `groups` (resolved once, at spawn).
    pub(crate) live: IdMap<(Arc<TaskStats>, u32)>,
    /// Tasks that announced they finished, not yet retired.
    done: Vec<u64>,
    dropped_at_scan: u64,
    /// The collector was woken to retire `done` early and has not run since.
    retire_asked: bool,
    scans_skipped: u32,
    groups: Vec<TaskGroup>,
    /// Latency and responses of the scope groups, by index into `groups`.
    scope_groups: std::collections::BTreeMap<u32, taskscope_wire::ScopeGroup>,
    /// Index into `groups` by spawn location, then by given name ("" for unnamed tasks, whose
    /// group is named after the location): finding a task's group formats and allocates
    /// nothing, which matters when a spawn storm brings hundreds of thousands a second.
    /// (foldhash: names are the application's, and a peer's only through the tower layer,
    /// which bounds them: `tower::MAX_ROUTES`; the table is bounded by `MAX_GROUPS`.)
    group_index: HashMap<
        &'static Location<'static>,
        HashMap<Box<str>, u32, foldhash::fast::RandomState>,
        foldhash::fast::RandomState,
    >,
    /// The most recently finished tasks, kept whole (`retain_finished` of them).
    finished: VecDeque<Retained>,
    pub(crate) retain_finished: usize,
    pub(crate) warnings: Warnings,
    pub(crate) runtimes: Vec<Arc<RuntimeProbe>>,
    /// Long polls reported by the hot path, for the watchdog to match with what it saw.
    pub(crate) long_polls: Vec<(u64, u64, u64)>,
    /// Untimed polls the watchdog is timing itself.
    pub(crate) untimed: crate::state::untimed::UntimedPolls,
    /// The sampled poll timeline, fed by the watchdog's scans.
    pub(crate) timeline: crate::state::timeline::Timeline,
    /// Stacks sampled from blocked workers.
    pub(crate) stacks: crate::stacks::Stacks,
    /// The CPU profile of the worker threads, when profiling is on (`threads::profiler`).
    pub(crate) profile: crate::stacks::ProfileStore,
    /// The groups of tasks retired lately, while profiling: their samples may still be on
    /// their way to the profile (`profile.rs`).
    retired: profile::Retired,
    /// Live locks and semaphores.
    pub(crate) locks: IdMap<Arc<LockStats>>,
    /// Locks announced dropped, to retire (some may still be referenced: retried).
    dropped_locks: Vec<u64>,
    /// `Shared::dropped` when every lock was last looked at for retiring.
    dropped_at_lock_scan: u64,
    /// Dropped locks, folded per (name, location, kind).
    lock_groups: HashMap<(String, String, &'static str), taskscope_wire::Lock>,
    semaphore_groups: HashMap<(String, String), taskscope_wire::Semaphore>,
    /// The lock-order graph: (from, to) → where each was taken.
    edges: HashMap<(u64, u64), Edge>,
    /// Names of locks that appear in edges, kept after the locks are dropped.
    lock_names: HashMap<u64, String>,
    /// How the task of each edge is named in a warning (`task `name``), taken when the edge was
    /// new: the task may have ended by the time the reverse edge comes.
    edge_tasks: HashMap<u64, String>,
    /// (lock, acquire location) → `lock_held_across_await` warning id.
    held_across: HashMap<(u64, usize), u64>,
    /// (lock, read location, write location) → `stale_update` warning id.
    stale_updates: HashMap<(u64, usize, usize), u64>,
    /// (lock, task, wait start) → `long_wait` warning id.
    pub(crate) long_waits: HashMap<(u64, u64, u64), u64>,
    /// Tasks of a wait-for cycle, smallest first → `deadlock` warning id.
    pub(crate) deadlocks: HashMap<Vec<u64>, u64>,
    dropped_reported: u64,
    /// Live counts per group for `unbounded_spawn` (`fan_out.rs`).
    pub(crate) fan_out: fan_out::FanOut,
    /// Readings of the semaphores for `semaphore_saturated` (`saturation.rs`).
    pub(crate) saturation: saturation::Saturation,
    /// What the last waker check saw (`wakers.rs`).
    wakers: wakers::WakerWatch,
    /// The chains of deadlocks and long waits (`chains.rs`).
    pub(crate) chains: chains::WarningChains,
    /// Panicked tasks whose `JoinHandle` may still return the panic (`panics.rs`).
    held_panics: panics::HeldPanics,
}

impl Registry {
    /// Clears everything for a new Guard.
    pub(crate) fn reset(&mut self, retain_finished: usize) {
        *self = Registry {
            retain_finished,
            ..Registry::default()
        };
    }

    /// Folds in the events queued since the registry was locked (the watchdog, after reading
    /// the worker slots).
    pub(crate) fn sync_events(&mut self, shared: &'static Shared) {
        self.sync(shared);
    }

    fn sync(&mut self, shared: &'static Shared) {
        // The overflow of finished tasks first, then the queue, then the overflow of new ones: a
        // task's spawn was pushed (to the queue or its overflow) before its `Done` was (to
        // either), so when a `Done` is read here, its spawn is read by the end of this call.
        while let Some(id) = shared.done_overflow.pop() {
            self.done.push(id);
        }
        while let Some(event) = shared.queue.pop() {
            match event {
                Event::Done(id) => self.done.push(id),
                Event::Spawn(stats) => self.register(stats),
                Event::LongPoll { task, start, end } => self.long_polls.push((task, start, end)),
                Event::Lock(stats) => {
                    self.note_semaphore(&stats);
                    self.locks.insert(stats.id, stats);
                }
                Event::LockDropped(id) => self.dropped_locks.push(id),
                Event::LockEdge {
                    from,
                    from_location,
                    to,
                    to_location,
                    task,
                } => {
                    let edge = Edge {
                        from_location,
                        to_location,
                        task,
                    };
                    self.lock_edge(shared, from, to, edge);
                }
                Event::HeldAcrossAwait {
                    lock,
                    task,
                    location,
                    hold_ns,
                } => self.held_across_await(shared, lock, task, location, hold_ns),
                Event::StaleUpdate(update) => self.stale_update(shared, &update),
            }
        }
        while let Some(stats) = shared.spawn_overflow.pop() {
            self.register(stats);
        }
        if self.done.len() >= RETIRE_EARLY && !self.retire_asked {
            // Finished tasks hold their statistics until retired: in a spawn storm, waiting for
            // the collector's tick would hold a tick's worth of them (100 ms × the spawn rate).
            self.retire_asked = true;
            if let Some(collector) = &*shared.collector.lock().unwrap_or_else(|e| e.into_inner()) {
                collector.unpark();
            }
        }
        let dropped = shared.dropped.load(Relaxed);
        if dropped > self.dropped_reported {
            self.dropped_reported = dropped;
            self.warnings.events_dropped(shared, dropped);
        }
    }

    /// A new task into the live set and its group.
    fn register(&mut self, stats: Arc<TaskStats>) {
        let group = self.group_of(&stats);
        self.groups[group as usize].spawned += 1;
        self.live.insert(stats.id, (stats, group));
    }

    /// The index of the group a new task belongs to, created if new (past `MAX_GROUPS`, new
    /// names fold into one group per location).
    fn group_of(&mut self, stats: &TaskStats) -> u32 {
        let full = self.groups.len() >= MAX_GROUPS;
        let names = self.group_index.entry(stats.location).or_default();
        if let Some(&index) = names.get(&*stats.name) {
            return index;
        }
        // An unnamed task's group is its location's anyway: it never folds.
        let name: &str = if full && !stats.name.is_empty() {
            OTHER_NAMES
        } else {
            &stats.name
        };
        if let Some(&index) = names.get(name) {
            return index;
        }
        let index = self.groups.len() as u32;
        names.insert(name.into(), index);
        self.groups.push(TaskGroup {
            name: match name {
                "" => format_location(stats.location),
                name => name.to_string(),
            },
            location: format_location(stats.location),
            kind: stats.kind,
            ..TaskGroup::default()
        });
        index
    }

    /// Like `retire_finished`, and also every finished task whose `Done` event was shed (a full
    /// scan of the live set): for the final snapshot, whose group counts must be exact.
    pub(crate) fn retire_all_finished(&mut self, shared: &'static Shared) {
        self.scans_skipped = u32::MAX;
        self.retire_finished(shared);
        self.check_held_panics(shared, true);
    }

    /// Moves finished tasks out of the live set: folds them into their group, keeps the most
    /// recent ones in full, and raises `task_panicked` for those that panicked.
    pub(crate) fn retire_finished(&mut self, shared: &'static Shared) {
        // Finished tasks announce themselves; a full scan of the live set runs when `Done`
        // events were dropped, at most every tenth call (a spawn storm that fills the queue
        // would otherwise make every call scan a large live set), and every 100th as a backstop.
        let dropped = shared.dropped_done.load(Relaxed);
        let scan = (dropped != self.dropped_at_scan && self.scans_skipped >= 10)
            || self.scans_skipped >= 100;
        let mut done = std::mem::take(&mut self.done);
        self.retire_asked = false;
        if scan {
            self.dropped_at_scan = dropped;
            self.scans_skipped = 0;
            done.extend(
                self.live
                    .iter()
                    .filter(|(_, (s, _))| s.is_done())
                    .map(|(&id, _)| id),
            );
        } else {
            self.scans_skipped += 1;
        }
        // Every task goes straight into its group, from its atomics (a spawn storm retires
        // hundreds of thousands a second); the last `retain_finished` are kept as they are, and
        // become wire tasks only when read.
        let keep_from = done.len().saturating_sub(self.retain_finished);
        for (i, id) in done.into_iter().enumerate() {
            let Some((stats, index)) = self.live.remove(&id) else {
                continue;
            };
            if self.profile.is_on() {
                self.retired.push(id, index, stats.parent);
            }
            let group = &mut self.groups[index as usize];
            if stats.kind == TaskKind::Scope {
                let scope =
                    self.scope_groups
                        .entry(index)
                        .or_insert_with(|| taskscope_wire::ScopeGroup {
                            name: group.name.clone(),
                            location: group.location.clone(),
                            ..Default::default()
                        });
                let ended = stats.ended.load(Relaxed);
                scope
                    .latency_ns
                    .record(crate::base::clock::delta_ns(stats.created, ended));
                scope.responses.count(stats.response.load(Relaxed));
            }
            match stats.outcome() {
                Some(Outcome::Completed) => group.completed += 1,
                Some(Outcome::Cancelled) => group.cancelled += 1,
                Some(Outcome::Panicked) => group.panicked += 1,
                None => {}
            }
            group.polls += stats.counts().0;
            group.busy_ns = group.busy_ns.saturating_add(stats.busy_ns());
            stats.merge_finished_into(&mut group.poll_ns, &mut group.scheduled_ns);
            if stats.outcome() == Some(Outcome::Panicked) {
                self.task_panicked(shared, &stats);
            }
            // Scopes (requests) live on in their groups, not one by one among the finished
            // tasks, which they would crowd out; unless they panicked.
            let kept = stats.kind != TaskKind::Scope || stats.outcome() == Some(Outcome::Panicked);
            if i >= keep_from && self.retain_finished > 0 && kept {
                if self.finished.len() >= self.retain_finished {
                    if let Some(oldest) = self.finished.pop_front() {
                        shared.recycle(oldest.stats);
                    }
                }
                self.finished.push_back(Retained {
                    stats,
                    wire: OnceLock::new(),
                });
            } else {
                shared.recycle(stats);
            }
        }
        self.check_held_panics(shared, false);
    }

    /// Tasks new to the stream (in full) and changed ones (counters), and the ids of those it
    /// sent that are gone: what `sent` remembers is brought up to date.
    pub(crate) fn changed_tasks(
        &self,
        shared: &'static Shared,
        sent: &mut SentTasks,
        histograms: bool,
    ) -> (Vec<Task>, Vec<TaskChange>, Vec<u64>) {
        let mut changed = sent.begin_pass();
        live_task_changes(
            self.live.values().map(|(s, _)| s),
            shared,
            sent,
            histograms,
            &mut changed,
        );
        self.finish_task_changes(shared, sent, changed)
    }

    /// The second half of `changed_tasks`, for changes of live tasks found outside the registry
    /// lock (`LiveView::task_changes`): retained finished tasks, and the tasks gone.
    pub(crate) fn finish_task_changes(
        &self,
        shared: &'static Shared,
        sent: &mut SentTasks,
        changed: TaskChanges,
    ) -> (Vec<Task>, Vec<TaskChange>, Vec<u64>) {
        sent.finish_pass(
            changed,
            self.finished
                .iter()
                .map(|task| (task.stats.id, || task.wire(shared).clone())),
        )
    }

    /// One task in full, live or retained.
    pub(crate) fn task(&self, shared: &'static Shared, id: u64) -> Option<Task> {
        match self.live.get(&id) {
            Some((stats, _)) => Some(task_to_wire(stats, shared)),
            None => self
                .finished
                .iter()
                .find(|t| t.stats.id == id)
                .map(|t| t.wire(shared).clone()),
        }
    }

    /// The retained finished tasks.
    pub(crate) fn finished_tasks(&self, shared: &Shared) -> Vec<Task> {
        self.finished
            .iter()
            .map(|t| t.wire(shared).clone())
            .collect()
    }

    /// Latency and responses of every scope group with an ended scope.
    pub(crate) fn scope_groups(&self) -> Vec<taskscope_wire::ScopeGroup> {
        self.scope_groups.values().cloned().collect()
    }

    /// Groups with live tasks' numbers added in, busiest first.
    pub(crate) fn groups(&self) -> Vec<TaskGroup> {
        self.view().groups()
    }

    /// What reading the live tasks needs, copied out (an `Arc` per task), so that the reading
    /// itself — microseconds a task, a third of a second for 100,000 — can happen after the
    /// registry lock is released, not while the watchdog and the event queue wait for it.
    pub(crate) fn view(&self) -> LiveView {
        LiveView::new(self.live.values().cloned().collect(), self.groups.clone())
    }

    /// The instrumented task a live task or scope was created in, if any.
    pub(crate) fn parent_of(&self, id: u64) -> Option<u64> {
        self.live
            .get(&id)
            .map(|(s, _)| s.parent)
            .filter(|&p| p != 0)
    }

    /// Name and location of a task the registry knows.
    pub(crate) fn describe(&self, id: u64) -> Option<(String, String, TaskKind)> {
        self.live
            .get(&id)
            .map(|(s, _)| (s.display_name().into_owned(), s.location_string(), s.kind))
    }

    pub(crate) fn kind_of(&self, id: u64) -> Option<TaskKind> {
        self.live.get(&id).map(|(s, _)| s.kind)
    }

    /// A task's or scope's live parents, innermost first (at most 64).
    pub(crate) fn parents(&self, id: u64) -> Vec<u64> {
        let mut parents = Vec::new();
        let mut at = id;
        while parents.len() < 64 {
            match self.parent_of(at) {
                Some(parent) if self.live.contains_key(&parent) => {
                    parents.push(parent);
                    at = parent;
                }
                _ => break,
            }
        }
        parents
    }

    /// The first instrumented task up a scope's parents (scopes nest), if it is still live.
    pub(crate) fn task_of_scope(&self, scope: u64) -> Option<String> {
        let task = self
            .parents(scope)
            .into_iter()
            .find(|&parent| self.kind_of(parent) != Some(TaskKind::Scope))?;
        self.describe(task).map(|(name, _, _)| name)
    }

    /// How a warning's text names the task or scope `id`: ``task `name` `` or, for a scope,
    /// ``scope `name` in task `task` `` (the instrumented task it runs in, when there is one).
    pub(crate) fn who(&self, id: u64) -> String {
        match self.describe(id) {
            Some((name, _, TaskKind::Scope)) => match self.task_of_scope(id) {
                Some(task) => format!("scope `{name}` in task `{task}`"),
                None => format!("scope `{name}`"),
            },
            Some((name, _, _)) => format!("task `{name}`"),
            None => format!("task #{id}"),
        }
    }
}

/// A finished task kept whole: its statistics, and their wire form once read (a finished task
/// no longer changes, and snapshots read every retained task).
#[derive(Debug)]
struct Retained {
    stats: Arc<TaskStats>,
    wire: OnceLock<Task>,
}

impl Retained {
    fn wire(&self, shared: &Shared) -> &Task {
        self.wire.get_or_init(|| task_to_wire(&self.stats, shared))
    }
}

#[cfg(test)]
mod tests;
