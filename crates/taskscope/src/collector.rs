//! The collector OS thread: on a fixed tick it drains the event queue, retires finished tasks into
//! their groups (bounded retention), and samples the runtimes. It runs on its own thread, not on
//! the application's runtime, so it keeps working while every worker is blocked.

use std::sync::atomic::{AtomicBool, Ordering::*};
use std::sync::Arc;
use std::time::{Duration, Instant};

use taskscope_wire::{ProcessInfo, Runtime, Snapshot, Worker};

use crate::clock;
use crate::export::Exporter;
use crate::registry::{self, LiveView, Registry, Shared};
use crate::worker;

/// Collection tick. Sampling, not per-event work, so its cost does not grow with the poll rate.
const TICK: Duration = Duration::from_millis(100);

/// Runs until `stop`, then hands the exporter back for the final frames.
pub(crate) fn run(
    shared: &'static Shared,
    stop: Arc<AtomicBool>,
    mut exporter: Exporter,
) -> Exporter {
    *shared.collector.lock().unwrap_or_else(|e| e.into_inner()) = Some(std::thread::current());
    let mut last_tick = Instant::now();
    while !stop.load(Acquire) {
        std::thread::park_timeout(TICK.saturating_sub(last_tick.elapsed()));
        if stop.load(Acquire) {
            break;
        }
        let mut registry = shared.registry();
        if last_tick.elapsed() < TICK {
            // Woken early: finished tasks piled up (see `Registry::sync`).
            registry.retire_finished(shared);
            continue;
        }
        last_tick = Instant::now();
        registry.retire_finished(shared);
        registry.retire_locks(shared);
        registry.runtimes.retain(|p| p.alive.load(Acquire));
        for probe in &registry.runtimes {
            probe.sample_busy();
        }
        let (groups, tasks) = (exporter.groups_due(), exporter.tasks_due());
        if groups || tasks {
            // Every live task is read for the groups and the task counters: not under the lock
            // (see `Registry::view`).
            let view = registry.view();
            drop(registry);
            if groups {
                exporter.groups = Some(view.groups());
            }
            if tasks {
                exporter.prepare_tasks(shared, &view);
            }
            registry = shared.registry();
        }
        exporter.tick(shared, &mut registry);
    }
    *shared.collector.lock().unwrap_or_else(|e| e.into_inner()) = None;
    exporter
}

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
    let shared = registry::shared();
    let (view, partial) = {
        let mut registry = shared.registry();
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
        warning_stacks: registry.stacks.folded.clone(),
        resources: Vec::new(),
        scopes: registry.scope_groups(),
    }
}

/// The worker slots now. An untimed poll's running time is counted from the start the watchdog
/// gave it (0 before the watchdog saw it: it started less than a scan period ago).
pub(crate) fn workers(now: u64, untimed: &crate::watchdog::UntimedPolls) -> Vec<Worker> {
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
