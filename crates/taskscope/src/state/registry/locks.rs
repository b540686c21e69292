//! The registry's locks and semaphores: their names, the lock-order graph's edges, locks held
//! across an `.await`, retiring dropped ones into their groups, and their wire form.

use std::panic::Location;
use std::sync::atomic::Ordering::*;
use std::sync::Arc;

use taskscope_wire::{Lock, Semaphore, Warning, WarningKind};

use super::{Edge, Registry};
use crate::base::clock;
use crate::base::location::format_location;
use crate::state::shared::Shared;
use crate::state::to_wire::{lock_to_wire, semaphore_to_wire};
use crate::stats::lock::{LockKind, LockStats};

impl Registry {
    pub(crate) fn lock_name(&self, id: u64) -> String {
        self.locks
            .get(&id)
            .map(|l| l.display_name())
            .or_else(|| self.lock_names.get(&id).cloned())
            .unwrap_or_else(|| format!("lock #{id}"))
    }

    /// Adds an edge of the lock-order graph; seeing both orders of a pair raises
    /// `lock_order_inversion` once for that pair.
    pub(super) fn lock_edge(&mut self, shared: &Shared, from: u64, to: u64, edge: Edge) {
        for id in [from, to] {
            let name = self.lock_name(id);
            self.lock_names.entry(id).or_insert(name);
        }
        if self.edges.insert((from, to), edge).is_some() {
            return;
        }
        if let Some((name, _, _)) = self.describe(edge.task) {
            self.edge_tasks
                .entry(edge.task)
                .or_insert_with(|| format!("task `{name}`"));
        }
        let Some(reverse) = self.edges.get(&(to, from)).copied() else {
            return;
        };
        let (a, b) = (self.lock_name(from), self.lock_name(to));
        let describe = |task: u64| match self.edge_tasks.get(&task) {
            Some(named) => named.clone(),
            None if task == 0 => "code outside instrumented tasks".to_string(),
            None => format!("task #{task}"),
        };
        let message = format!(
            "locks `{a}` and `{b}` are taken in both orders — a potential deadlock: `{a}` (at {}) then `{b}` (at {}) by {}, and `{b}` (at {}) then `{a}` (at {}) by {}",
            format_location(edge.from_location),
            format_location(edge.to_location),
            describe(edge.task),
            format_location(reverse.from_location),
            format_location(reverse.to_location),
            describe(reverse.task),
        );
        let mut w = Warning::new(
            0,
            WarningKind::LockOrderInversion,
            shared.ms_at(clock::now()),
            message,
        );
        w.locks = vec![a, b];
        w.location = Some(format_location(edge.to_location));
        w.task = (edge.task != 0).then_some(edge.task);
        w.tasks = [edge.task, reverse.task]
            .into_iter()
            .filter(|&t| t != 0)
            .collect();
        self.warnings.raise(w);
    }

    /// One `lock_held_across_await` warning per lock and acquire location, counting repeats and
    /// keeping the longest hold.
    pub(super) fn held_across_await(
        &mut self,
        shared: &Shared,
        lock: u64,
        task: u64,
        location: &'static Location<'static>,
        hold_ns: u64,
    ) {
        let key = (lock, location as *const Location<'static> as usize);
        let lock_name = self.lock_name(lock);
        let task_name = self.describe(task).map(|(name, _, _)| name);
        let who = (task != 0).then(|| self.who(task));
        if let Some(w) = self
            .held_across
            .get(&key)
            .and_then(|&id| self.warnings.get_mut(id))
        {
            let count = w.count.unwrap_or(1) + 1;
            w.count = Some(count);
            let longest = w.duration_ns.unwrap_or(0).max(hold_ns);
            w.duration_ns = Some(longest);
            w.message = held_message(&lock_name, who.as_deref(), location, longest, count);
            return;
        }
        let message = held_message(&lock_name, who.as_deref(), location, hold_ns, 1);
        let mut w = Warning::new(
            0,
            WarningKind::LockHeldAcrossAwait,
            shared.ms_at(clock::now()),
            message,
        );
        w.task = (task != 0).then_some(task);
        w.task_name = task_name;
        w.location = Some(format_location(location));
        w.locks = vec![lock_name];
        w.duration_ns = Some(hold_ns);
        w.count = Some(1);
        let id = self.warnings.raise(w);
        self.held_across.insert(key, id);
    }

    /// Folds dropped locks into their groups.
    ///
    /// Looks only at the locks announced dropped: walking all of them every tick (a cache miss
    /// each) cost 4 % of a core per 100,000 live locks. Every lock is looked at only after the
    /// event queue shed events, one of which may have been such an announcement.
    pub(crate) fn retire_locks(&mut self, shared: &Shared) {
        let shed = shared.dropped.load(Relaxed);
        let announced = std::mem::take(&mut self.dropped_locks);
        let full_scan = shed != self.dropped_at_lock_scan;
        let candidates: Vec<u64> = if full_scan {
            self.dropped_at_lock_scan = shed;
            // Announced locks still referenced stay announced.
            self.dropped_locks = announced;
            self.locks.keys().copied().collect()
        } else {
            announced
        };
        for id in candidates {
            let Some(stats) = self.locks.get(&id) else {
                continue;
            };
            if Arc::strong_count(stats) > 1 {
                // Still referenced: a live lock (full scan), or an announced drop whose wrapper
                // releases its reference right after announcing it — retried next tick.
                if !full_scan && !self.dropped_locks.contains(&id) {
                    self.dropped_locks.push(id);
                }
                continue;
            }
            let Some(stats) = self.locks.remove(&id) else {
                continue;
            };
            if stats.kind == LockKind::Semaphore {
                let s = semaphore_to_wire(&stats);
                let key = (s.name.clone(), s.location.clone());
                merge_semaphore(
                    self.semaphore_groups
                        .entry(key)
                        .or_insert_with(|| Semaphore {
                            id: s.id,
                            ..s.clone()
                        }),
                    &s,
                );
            } else {
                let l = lock_to_wire(&stats);
                let key = (l.name.clone(), l.location.clone(), stats.kind.as_str());
                merge_lock(
                    self.lock_groups.entry(key).or_insert_with(|| Lock {
                        id: l.id,
                        ..l.clone()
                    }),
                    &l,
                );
            }
        }
    }

    /// Live locks, then groups of dropped ones.
    pub(crate) fn locks_and_semaphores(&self) -> (Vec<Lock>, Vec<Semaphore>) {
        let mut locks: Vec<Lock> = Vec::new();
        let mut semaphores: Vec<Semaphore> = Vec::new();
        let mut live: Vec<&Arc<LockStats>> = self.locks.values().collect();
        live.sort_by_key(|l| l.id);
        for stats in live {
            if stats.kind == LockKind::Semaphore {
                semaphores.push(semaphore_to_wire(stats));
            } else {
                locks.push(lock_to_wire(stats));
            }
        }
        locks.extend(self.lock_groups.values().cloned());
        semaphores.extend(self.semaphore_groups.values().cloned());
        locks.sort_by(|a, b| b.wait_ns.sum.cmp(&a.wait_ns.sum).then(a.id.cmp(&b.id)));
        semaphores.sort_by(|a, b| b.wait_ns.sum.cmp(&a.wait_ns.sum).then(a.id.cmp(&b.id)));
        (locks, semaphores)
    }

    /// Names of the locks a task holds now.
    pub(crate) fn locks_held_by(&self, task: u64) -> Vec<String> {
        let Some((stats, _)) = self.live.get(&task) else {
            return Vec::new();
        };
        stats
            .locks
            .held
            .iter()
            .map(|(id, _)| id.load(Relaxed))
            .filter(|&id| id != 0)
            .map(|id| self.lock_name(id))
            .collect()
    }
}

/// `who`: the holder as [`Registry::who`] names it, if known.
fn held_message(
    lock: &str,
    who: Option<&str>,
    location: &Location<'_>,
    hold_ns: u64,
    count: u64,
) -> String {
    let task = who.unwrap_or("a task");
    let times = if count > 1 {
        format!(" ({count} times)")
    } else {
        String::new()
    };
    format!(
        "lock `{lock}` acquired at {} was held across an .await by {task}{times}, up to {}: other tasks wait while it is suspended",
        format_location(location),
        crate::state::warnings::fmt_ns(hold_ns)
    )
}

fn merge_lock(into: &mut Lock, from: &Lock) {
    if into.id == from.id {
        return; // the group was created from this lock
    }
    into.acquisitions += from.acquisitions;
    into.contended += from.contended;
    into.max_waiters = into.max_waiters.max(from.max_waiters);
    into.wait_ns.merge(&from.wait_ns);
    into.hold_ns.merge(&from.hold_ns);
}

fn merge_semaphore(into: &mut Semaphore, from: &Semaphore) {
    if into.id == from.id {
        return;
    }
    into.acquisitions += from.acquisitions;
    into.max_waiters = into.max_waiters.max(from.max_waiters);
    into.saturated_ns += from.saturated_ns;
    into.wait_ns.merge(&from.wait_ns);
}
