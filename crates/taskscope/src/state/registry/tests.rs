//! The registry's unit tests: finished tasks found by the scans, overflows past a full queue.
use super::*;
use crate::base::clock;
use crate::state::shared::OVERFLOW_CAPACITY_FOR_TESTS;
use taskscope_wire::WarningKind;

fn stats(id: u64, name: &'static str) -> Arc<TaskStats> {
    Arc::new(TaskStats::new(
        id,
        std::borrow::Cow::Borrowed(name),
        std::panic::Location::caller(),
        0,
        TaskKind::Async,
        clock::now(),
    ))
}

/// Past a full queue, new and finished tasks wait in the overflows and are registered and
/// retired with exact counts, no warning; past a full overflow a spawn is shed, counted,
/// and `events_dropped` says so.
#[test]
fn tasks_past_a_full_queue_overflow_and_only_past_the_overflow_are_shed() {
    let shared: &'static Shared = Box::leak(Box::new(Shared::new()));
    let filler = stats(1, "storm");
    while shared.queue.push(Event::Spawn(filler.clone())).is_ok() {}
    let dropped_before = shared.dropped.load(Relaxed);
    let late = stats(2, "storm");
    assert!(shared.push_spawn(late.clone()), "into the overflow");
    late.finish(crate::stats::task::OUTCOME_COMPLETED, clock::now());
    // As `shared::finish` does past a full queue (no Guard runs in unit tests).
    shared.done_overflow.push(late.id);
    let mut registry = Registry::default();
    registry.sync(shared);
    assert!(registry.live.contains_key(&2));
    registry.retire_finished(shared);
    assert!(
        !registry.live.contains_key(&2),
        "retired from the overflow's Done"
    );
    let group = registry
        .groups()
        .into_iter()
        .find(|g| g.name == "storm")
        .unwrap();
    assert_eq!(group.completed, 1);
    assert_eq!(shared.dropped.load(Relaxed), dropped_before);
    assert_eq!(registry.warnings.iter().count(), 0, "nothing was lost");

    while shared.queue.push(Event::Spawn(filler.clone())).is_ok() {}
    while shared.spawn_overflow.len() < OVERFLOW_CAPACITY_FOR_TESTS {
        shared.spawn_overflow.push(filler.clone());
    }
    assert!(
        !shared.push_spawn(stats(3, "storm")),
        "shed past the overflow"
    );
    registry.sync(shared);
    let total = shared.dropped.load(Relaxed);
    let w = registry
        .warnings
        .iter()
        .find(|w| w.kind == WarningKind::EventsDropped);
    assert_eq!(w.and_then(|w| w.count), Some(total));
}

/// A task whose `Done` event was shed is found by the scans: by a later regular retire,
/// and at once by the final one, whose group counts must be exact.
#[test]
fn finished_tasks_whose_done_was_shed_are_retired_by_the_final_scan() {
    // A `Shared` of this test's own (the global one belongs to Guards of other tests).
    let shared: &'static Shared = Box::leak(Box::new(Shared::new()));
    let tasks: Vec<Arc<TaskStats>> = (1..=3)
        .map(|id| {
            let stats = stats(id, "shed");
            shared.push(Event::Spawn(stats.clone())).unwrap();
            stats
        })
        .collect();
    let mut registry = Registry::default();
    registry.sync(shared);
    assert_eq!(registry.live.len(), 3);
    for stats in &tasks {
        // No Guard runs in unit tests, so finishing pushes no `Done`: as if it were shed.
        stats.finish(crate::stats::task::OUTCOME_COMPLETED, clock::now());
    }
    shared.dropped_done.fetch_add(3, Relaxed);
    drop(tasks);
    registry.retire_finished(shared);
    assert_eq!(registry.live.len(), 3, "a scan waits for ten calls");
    registry.retire_all_finished(shared);
    assert!(registry.live.is_empty());
    let group = registry
        .groups()
        .into_iter()
        .find(|g| g.name == "shed")
        .unwrap();
    assert_eq!((group.spawned, group.completed, group.alive), (3, 3, 0));
}
