//! Building a [`Snapshot`]: the registry's objects, the worker slots, the runtimes' probes and
//! the process, in the wire model.

use std::sync::atomic::Ordering::*;

use taskscope_wire::{ProcessInfo, Runtime, Snapshot, Worker};

use crate::base::clock;
use crate::state::delta::LiveView;
use crate::state::registry::Registry;
use crate::state::shared::{self, Shared};
use crate::state::worker;

/// Everything taskscope knows now. Without a live [`Guard`](crate::Guard) the snapshot holds
/// only the process description.
///
/// ```
/// let _guard = taskscope::Builder::new().init();
/// let snap = taskscope::snapshot();
/// assert!(snap.tasks.is_empty());
/// println!("{snap:#?}");
/// ```
pub fn snapshot() -> Snapshot {
    let shared = shared::global();
    let (view, partial) = {
        let mut registry = crate::state::registry::lock(shared);
        registry.retire_finished(shared);
        (registry.view(), build_without_live(shared, &registry))
    };
    // Live tasks are read outside the registry lock (see `Registry::view`).
    with_live(shared, view, partial)
}

/// Everything, under the registry lock (for the final snapshot, when nothing else runs).
pub(crate) fn build(shared: &'static Shared, registry: &Registry) -> Snapshot {
    with_live(
        shared,
        registry.view(),
        build_without_live(shared, registry),
    )
}

/// Adds the live tasks (before the retained finished ones) and the groups.
fn with_live(shared: &Shared, view: LiveView, mut snapshot: Snapshot) -> Snapshot {
    let finished = std::mem::take(&mut snapshot.tasks);
    snapshot.tasks = view.live_tasks(shared);
    snapshot.tasks.extend(finished);
    snapshot.task_groups = view.groups();
    snapshot
}

/// A snapshot whose `tasks` are only the retained finished ones and whose `task_groups` are
/// empty: what needs the registry, without the per-task reads of the live tasks.
fn build_without_live(shared: &'static Shared, registry: &Registry) -> Snapshot {
    let now = clock::now();
    let (locks, semaphores) = registry.locks_and_semaphores();
    Snapshot {
        process: process_info(shared),
        taken_at_ms: shared.ms_at(now),
        dropped_events: shared.dropped.load(Relaxed),
        tasks: registry.finished_tasks(shared),
        task_groups: Vec::new(),
        workers: workers(now, &registry.untimed),
        runtimes: runtimes(registry),
        locks,
        semaphores,
        warnings: registry.warnings.all(),
        poll_timeline: registry.timeline.all(shared),
        timeline_names: registry.timeline.names(),
        profile: registry.profile.to_wire(),
        warning_stacks: registry.stacks.folded.clone(),
        warning_chains: registry.chains.by_warning.clone(),
        resources: Vec::new(),
        scopes: registry.scope_groups(),
        detached: registry.detached(),
        refused: shared.refused.load(),
    }
}

/// The worker slots now. An untimed poll's running time is counted from the start the watchdog
/// gave it (0 before the watchdog saw it: it started less than a scan period ago).
pub(crate) fn workers(now: u64, untimed: &crate::state::untimed::UntimedPolls) -> Vec<Worker> {
    worker::all()
        .into_iter()
        .filter(|s| s.alive.load(Acquire))
        .map(|s| {
            let start = s.start.load(Acquire);
            let task = s.task.load(Relaxed);
            Worker {
                id: s.index,
                thread: s
                    .thread_name
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone(),
                runtime: Some(s.runtime.load(Relaxed)).filter(|&r| r != 0),
                current_task: (start != 0 && task != 0).then_some(task),
                current_poll_ns: (start != 0).then(|| {
                    let start = match worker::is_marker(start) {
                        true => untimed.seen_start(s.index, start).unwrap_or(now),
                        false => start,
                    };
                    clock::delta_ns(start, now)
                }),
            }
        })
        .collect()
}

pub(crate) fn runtimes(registry: &Registry) -> Vec<Runtime> {
    registry
        .runtimes
        .iter()
        .filter(|p| p.alive.load(Acquire))
        .map(|p| Runtime {
            id: p.id,
            flavor: p.flavor().to_string(),
            workers: p.metrics.num_workers(),
            alive_tasks: p.metrics.num_alive_tasks(),
            worker_busy: p.busy.lock().unwrap_or_else(|e| e.into_inner()).0.clone(),
            lag_ns: p.lag_ns.to_wire(),
        })
        .collect()
}

pub(crate) fn process_info(shared: &Shared) -> ProcessInfo {
    let name = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_default();
    ProcessInfo {
        name,
        pid: std::process::id(),
        start_unix_ms: shared.start_unix_ms.load(Relaxed),
    }
}
