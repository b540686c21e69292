//! The statistics' atomics read into the wire model (`taskscope_wire`): tasks, task changes,
//! locks and semaphores.

use std::sync::atomic::Ordering::*;

use taskscope_wire::{Lock, Semaphore, Task, TaskChange};

use crate::base::clock;
use crate::base::location::format_location;
use crate::state::shared::Shared;
use crate::stats::lock::LockStats;
use crate::stats::task::TaskStats;

/// The changing fields of a task, without names or (unless asked) histograms.
pub(crate) fn task_change(stats: &TaskStats, shared: &Shared, histograms: bool) -> TaskChange {
    let (polls, wakes) = stats.counts();
    let ended = stats.ended.load(Relaxed);
    TaskChange {
        id: stats.id,
        state: stats.state(),
        outcome: stats.outcome(),
        polls,
        busy_ns: stats.busy_ns(),
        wakes,
        self_wakes: stats.self_wakes.load(Relaxed),
        ended_ms: (ended != 0).then(|| shared.ms_at(ended)),
        poll_ns: histograms.then(|| stats.poll_histogram()),
        scheduled_ns: histograms.then(|| stats.scheduled_histogram()),
    }
}

/// Reads a task's atomics into the wire model.
pub(crate) fn task_to_wire(stats: &TaskStats, shared: &Shared) -> Task {
    let (polls, wakes) = stats.counts();
    let poll_ns = stats.poll_histogram();
    let scheduled_ns = stats.scheduled_histogram();
    let self_wakes = stats.self_wakes.load(Relaxed);
    let first_poll = stats.first_poll.load(Relaxed);
    let ended = stats.ended.load(Relaxed);
    Task {
        id: stats.id,
        name: stats.display_name().into_owned(),
        location: stats.location_string(),
        parent: (stats.parent != 0).then_some(stats.parent),
        kind: stats.kind,
        state: stats.state(),
        outcome: stats.outcome(),
        panic_message: stats
            .panic_message
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone(),
        polls,
        busy_ns: stats.busy_ns(),
        wakes,
        self_wakes,
        first_poll_delay_ns: (first_poll != 0).then(|| clock::delta_ns(stats.created, first_poll)),
        created_ms: shared.ms_at(stats.created),
        ended_ms: (ended != 0).then(|| shared.ms_at(ended)),
        poll_ns,
        scheduled_ns,
    }
}

/// Reads a lock's atomics into the wire model.
pub(crate) fn lock_to_wire(stats: &LockStats) -> Lock {
    let holder = stats.owner.holder.load(Relaxed);
    let at = stats.owner.holder_location.load(Relaxed);
    Lock {
        id: stats.id,
        name: stats.display_name(),
        kind: stats.kind.as_str().to_string(),
        location: format_location(stats.location),
        acquisitions: stats.acquisitions.load(Relaxed),
        contended: stats.contended.load(Relaxed),
        waiters: stats.waiting.load(Relaxed),
        max_waiters: stats.max_waiters.load(Relaxed),
        holder: (holder != 0).then_some(holder),
        // SAFETY: holder locations are `&'static Location`s.
        holder_location: (!at.is_null()).then(|| format_location(unsafe { &*at })),
        wait_ns: stats.wait_histogram(),
        hold_ns: stats.hold_ns.to_wire(),
    }
}

/// Reads a semaphore's atomics into the wire model.
pub(crate) fn semaphore_to_wire(stats: &LockStats) -> Semaphore {
    let permits = stats.permits.load(Relaxed);
    Semaphore {
        id: stats.id,
        name: stats.display_name(),
        location: format_location(stats.location),
        permits,
        available: stats.available.load(Relaxed),
        acquisitions: stats.acquisitions.load(Relaxed),
        waiters: stats.waiting.load(Relaxed),
        max_waiters: stats.max_waiters.load(Relaxed),
        saturated_ns: stats.saturated_ns_at(clock::now()),
        wait_ns: stats.wait_histogram(),
    }
}
