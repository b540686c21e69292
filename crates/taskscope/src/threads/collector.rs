//! The collector OS thread: on a fixed tick it drains the event queue, retires finished tasks into
//! their groups (bounded retention), and samples the runtimes. It runs on its own thread, not on
//! the application's runtime, so it keeps working while every worker is blocked.

use std::sync::atomic::{AtomicBool, Ordering::*};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::export::Exporter;
use crate::state::shared::Shared;

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
        let mut registry = crate::state::registry::lock(shared);
        if last_tick.elapsed() < TICK {
            // Woken early: finished tasks piled up (see `Registry::sync`).
            registry.retire_finished(shared);
            continue;
        }
        last_tick = Instant::now();
        registry.retire_finished(shared);
        registry.retire_locks(shared);
        registry.check_fan_out(shared);
        registry.check_wakers(shared);
        registry.check_saturation(shared);
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
            registry = crate::state::registry::lock(shared);
        }
        exporter.tick(shared, &mut registry);
    }
    *shared.collector.lock().unwrap_or_else(|e| e.into_inner()) = None;
    exporter
}
