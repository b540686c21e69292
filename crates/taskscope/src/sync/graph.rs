//! The watchdog's view of the locks: `long_wait` for waits past the threshold, and `deadlock` for
//! cycles in the wait-for graph (a task waits for a lock whose holder waits for a lock ... held by
//! the first task), raised while the tasks are stuck.
//!
//! A task waits on one lock at a time, so the wait-for graph has at most one edge out of each
//! task: following edges from every waiting task finds every cycle in linear time.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering::*;
use std::sync::Arc;

use taskscope_wire::{Warning, WarningKind};

use crate::base::clock;
use crate::base::location::format_location;
use crate::state::registry::Registry;
use crate::state::shared::{Shared, THRESHOLDS};
use crate::state::warnings::fmt_ns;
use crate::stats::lock::{LockKind, LockStats, Waiter};

/// One edge of the wait-for graph: `waiter` waits for `lock`, held by `holder`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WaitEdge {
    pub(crate) lock: u64,
    pub(crate) holder: u64,
}

/// Every cycle of a graph with at most one edge out of each node, each once, rotated to start at
/// its smallest node.
pub(crate) fn cycles(edges: &HashMap<u64, WaitEdge>) -> Vec<Vec<u64>> {
    let mut found = Vec::new();
    let mut done: HashSet<u64> = HashSet::new();
    let mut starts: Vec<u64> = edges.keys().copied().collect();
    starts.sort_unstable();
    for start in starts {
        let mut path: Vec<u64> = Vec::new();
        let mut on_path: HashSet<u64> = HashSet::new();
        let mut node = start;
        loop {
            if done.contains(&node) {
                break;
            }
            if !on_path.insert(node) {
                let at = path
                    .iter()
                    .position(|&n| n == node)
                    .expect("node is on the path");
                let mut cycle = path[at..].to_vec();
                let min = cycle
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, &n)| n)
                    .map(|(i, _)| i)
                    .unwrap_or(0);
                cycle.rotate_left(min);
                found.push(cycle);
                break;
            }
            path.push(node);
            match edges.get(&node) {
                Some(edge) => node = edge.holder,
                None => break,
            }
        }
        done.extend(path);
    }
    found
}

pub(crate) fn scan(shared: &Shared, registry: &mut Registry, now: u64) {
    let waited: Vec<Arc<LockStats>> = {
        let mut ids = shared
            .waited_locks
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        // Pruned under the list's lock, which a first waiter takes after counting itself: a
        // lock seen here without waiters that gets one now is added back after this.
        ids.retain(|id| {
            registry
                .locks
                .get(id)
                .is_some_and(|l| l.waiting.load(Relaxed) > 0)
        });
        ids.sort_unstable();
        ids.dedup();
        ids.iter()
            .filter_map(|id| registry.locks.get(id).cloned())
            .collect()
    };
    if waited.is_empty() && registry.long_waits.is_empty() && registry.deadlocks.is_empty() {
        return;
    }
    let long_wait = THRESHOLDS.long_wait_ns.load(Relaxed);
    let mut waits_seen = HashSet::new();
    let mut edges: HashMap<u64, WaitEdge> = HashMap::new();
    for lock in &waited {
        let waiters: Vec<Waiter> = lock.waiters();
        let holder = exclusive_holder(registry, lock);
        for waiter in waiters {
            if waiter.task != 0 && holder != 0 && holder != waiter.task {
                edges.insert(
                    waiter.task,
                    WaitEdge {
                        lock: lock.id,
                        holder,
                    },
                );
            }
            let waited_ns = clock::delta_ns(waiter.since, now);
            if waiter.task != 0 && waited_ns > long_wait {
                let key = (lock.id, waiter.task, waiter.since);
                waits_seen.insert(key);
                long_wait_warning(shared, registry, lock, &waiter, holder, waited_ns, key);
            }
        }
    }
    // Waits that ended.
    let ended: Vec<u64> = registry
        .long_waits
        .iter()
        .filter(|(k, _)| !waits_seen.contains(*k))
        .map(|(_, &id)| id)
        .collect();
    registry.long_waits.retain(|k, _| waits_seen.contains(k));
    for id in ended {
        if let Some(w) = registry.warnings.get_mut(id) {
            w.ongoing = false;
        }
    }

    let current: Vec<Vec<u64>> = cycles(&edges);
    for cycle in &current {
        if !registry.deadlocks.contains_key(cycle) {
            let w = deadlock_warning(shared, registry, cycle, &edges);
            let id = registry.warnings.raise(w);
            registry.deadlocks.insert(cycle.clone(), id);
            registry.chains.want(id, cycle.clone());
        }
    }
    let resolved: Vec<Vec<u64>> = registry
        .deadlocks
        .keys()
        .filter(|c| !current.contains(c))
        .cloned()
        .collect();
    for cycle in resolved {
        if let Some(id) = registry.deadlocks.remove(&cycle) {
            if let Some(w) = registry.warnings.get_mut(id) {
                w.ongoing = false;
            }
        }
    }
}

/// The task holding `lock` exclusively, or, for a read waiter of an RwLock, its writer.
pub(crate) fn exclusive_holder(registry: &Registry, lock: &LockStats) -> u64 {
    match lock.kind {
        LockKind::Mutex | LockKind::RwLockWrite => {
            let holder = lock.owner.holder.load(Relaxed);
            if holder != 0 || lock.kind == LockKind::Mutex {
                return holder;
            }
            // A writer waits for readers, whose tasks are not tracked one by one.
            0
        }
        LockKind::RwLockRead => registry
            .locks
            .get(&lock.partner.load(Relaxed))
            .map_or(0, |write| write.owner.holder.load(Relaxed)),
        LockKind::Semaphore => 0,
    }
}

fn task_name(registry: &Registry, task: u64) -> String {
    registry
        .describe(task)
        .map_or_else(|| format!("task #{task}"), |(name, _, _)| name)
}

fn long_wait_warning(
    shared: &Shared,
    registry: &mut Registry,
    lock: &LockStats,
    waiter: &Waiter,
    holder: u64,
    waited_ns: u64,
    key: (u64, u64, u64),
) {
    let what = if lock.kind == LockKind::Semaphore {
        "semaphore"
    } else {
        "lock"
    };
    let holder_text = if holder != 0 {
        format!(", held by {}", registry.who(holder))
    } else {
        String::new()
    };
    let message = format!(
        "{} has waited {} for {what} `{}` at {}{holder_text}",
        registry.who(waiter.task),
        fmt_ns(waited_ns),
        lock.display_name(),
        format_location(waiter.location),
    );
    if let Some(w) = registry
        .long_waits
        .get(&key)
        .copied()
        .and_then(|id| registry.warnings.get_mut(id))
    {
        w.duration_ns = Some(waited_ns);
        w.message = message;
        return;
    }
    let mut w = Warning::new(
        0,
        WarningKind::LongWait,
        shared.ms_at(waiter.since),
        message,
    );
    w.task = Some(waiter.task);
    w.task_name = Some(task_name(registry, waiter.task));
    w.location = Some(format_location(waiter.location));
    w.locks = vec![lock.display_name()];
    w.tasks = (holder != 0).then_some(holder).into_iter().collect();
    w.duration_ns = Some(waited_ns);
    w.ongoing = true;
    let id = registry.warnings.raise(w);
    registry.long_waits.insert(key, id);
    let tasks = std::iter::once(waiter.task).chain((holder != 0).then_some(holder));
    registry.chains.want(id, tasks.collect());
}

fn deadlock_warning(
    shared: &Shared,
    registry: &Registry,
    cycle: &[u64],
    edges: &HashMap<u64, WaitEdge>,
) -> Warning {
    let mut steps = Vec::new();
    let mut locks = Vec::new();
    for &task in cycle {
        let edge = edges[&task];
        let lock = registry.lock_name(edge.lock);
        steps.push(format!(
            "{} waits for `{lock}` held by {}",
            registry.who(task),
            registry.who(edge.holder)
        ));
        locks.push(lock);
    }
    let message = format!("deadlock: {}", steps.join("; "));
    let mut w = Warning::new(
        0,
        WarningKind::Deadlock,
        shared.ms_at(clock::now()),
        message,
    );
    w.task = cycle.first().copied();
    w.task_name = cycle.first().map(|&t| task_name(registry, t));
    w.tasks = cycle.to_vec();
    w.locks = locks;
    w.ongoing = true;
    w
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(edges: &[(u64, u64)]) -> HashMap<u64, WaitEdge> {
        edges
            .iter()
            .map(|&(from, to)| {
                (
                    from,
                    WaitEdge {
                        lock: from * 100,
                        holder: to,
                    },
                )
            })
            .collect()
    }

    #[test]
    fn finds_each_cycle_once_and_ignores_chains() {
        // 1 → 2 → 3 → 1 is a cycle; 4 → 1 waits on it; 5 → 6 → 7 is a chain; 8 ↔ 9.
        let g = graph(&[
            (1, 2),
            (2, 3),
            (3, 1),
            (4, 1),
            (5, 6),
            (6, 7),
            (9, 8),
            (8, 9),
        ]);
        let mut found = cycles(&g);
        found.sort();
        assert_eq!(found, vec![vec![1, 2, 3], vec![8, 9]]);
    }

    #[test]
    fn no_cycle_no_deadlock() {
        assert!(cycles(&graph(&[(1, 2), (2, 3), (4, 3)])).is_empty());
        assert!(cycles(&HashMap::new()).is_empty());
    }
}
