//! The watchdog OS thread: every few milliseconds it reads the worker slots and raises
//! `blocked_worker` for a poll that has run past the threshold *while it is still running*,
//! keeps the warning's duration current, and completes it when the poll ends. It also pings the
//! runtimes' lag probes and has `foreign` watch for workers stuck in tasks that were not spawned
//! through taskscope.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering::*};
use std::sync::Arc;
use std::time::Duration;

use taskscope_wire::{TaskKind, Warning, WarningKind};

use crate::base::clock;
use crate::state::probe::RuntimeProbe;
use crate::state::registry::Registry;
use crate::state::shared::Shared;
use crate::state::warnings::{fmt_ns, CpuWait, Warnings};
use crate::state::worker::{self, WorkerSlot};

/// Period of the scans that discover polls: half the threshold, between 1 and 5 ms.
///
/// A block is still reported at the threshold, not up to a period after it: a scan that sees a
/// poll running asks for the next scan no later than the moment that poll crosses the threshold
/// (`run`), so a blocked poll is reported within threshold + the watchdog's own scheduling delay
/// (DESIGN.md §10: threshold + 5 ms). Only polls shorter than a period can pass unseen, and those
/// are not blocked. (Scans used to run every fifth of the threshold, 2 ms by default, which made
/// the watchdog's wake-ups most of taskscope's cost on an idle application.)
pub(crate) fn scan_period(threshold_ns: u64) -> Duration {
    Duration::from_nanos((threshold_ns / 2).clamp(1_000_000, 5_000_000))
}

pub(crate) fn run(shared: &'static Shared, stop: Arc<AtomicBool>) {
    let threshold = crate::state::shared::THRESHOLDS.blocked_ns.load(Relaxed);
    let period = scan_period(threshold);
    let mut wait = period;
    while !stop.load(Acquire) {
        std::thread::park_timeout(wait);
        let deadline = scan(shared);
        wait = match deadline {
            Some(at) => {
                let now = clock::now();
                let until = Duration::from_nanos(clock::delta_ns(now, at));
                // A little past the deadline, so the poll has crossed it when looked at.
                (until + Duration::from_micros(100)).min(period)
            }
            None => period,
        };
    }
}

/// Clock ticks of the last lag-probe ping.
static LAST_PING: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
/// The lag heartbeat wakes a worker thread (a futex wake): every 10 ms is plenty for a lag
/// histogram.
const PING_EVERY: Duration = Duration::from_millis(10);

/// One pass over slots, ongoing warnings and runtime probes. Returns the earliest moment (clock
/// ticks) at which a poll seen running but not yet blocked crosses the threshold.
pub(crate) fn scan(shared: &'static Shared) -> Option<u64> {
    let threshold = crate::state::shared::THRESHOLDS.blocked_ns.load(Relaxed);
    let threshold_ticks = clock::ticks_for(Duration::from_nanos(threshold));
    let period_ns = scan_period(threshold).as_nanos() as u64;
    let mut registry = crate::state::registry::lock(shared);
    let now = clock::now();

    // Long polls that ended since the last scan, before the slots are read (the timeline
    // closes their slices at their measured ends).
    fold_long_polls(shared, &mut registry);

    let mut running = HashSet::new();
    let mut deadline: Option<u64> = None;
    let mut to_sample: Vec<(u64, &'static WorkerSlot, u64)> = Vec::new();
    let slots = worker::all();
    for &slot in &slots {
        if !slot.alive.load(Acquire) {
            registry.timeline.idle(shared, slot.index);
            continue;
        }
        let raw = slot.start.load(Acquire);
        if raw == 0 {
            registry.timeline.idle(shared, slot.index);
            // The thread's clock reading may grow old while it idles: its next poll refreshes
            // it (see `untimed::UntimedPolls`).
            if slot.untimed_left.load(Relaxed) != 0 {
                slot.untimed_left.store(0, Relaxed);
            }
            continue;
        }
        let task = slot.task.load(Relaxed);
        // The thread's last clock reading: while the same untimed poll runs, the one from
        // before it started.
        let tick = slot.tick.load(Acquire);
        if slot.start.load(Acquire) != raw {
            continue; // the poll changed under us; look again next scan
        }
        let start = if worker::is_marker(raw) {
            registry.untimed.start(slot.index, raw, tick)
        } else {
            raw
        };
        running.insert((task, start));
        let is_scope = registry.kind_of(task) == Some(TaskKind::Scope);
        let parents = is_scope.then(|| registry.parents(task));
        let opened =
            registry
                .timeline
                .seen(shared, slot.index, (task, start), now, parents.as_deref());
        if let Some((name, _, _)) = (opened && is_scope)
            .then(|| registry.describe(task))
            .flatten()
        {
            registry.timeline.name(task, name);
        }
        let elapsed = clock::delta_ns(start, now);
        if elapsed < threshold {
            let at = start.saturating_add(threshold_ticks);
            deadline = Some(deadline.map_or(at, |d| d.min(at)));
            // A poll long enough that it may block: read its worker's wait for a CPU now, so
            // that a block's text can tell the machine's share from the task's.
            if elapsed >= period_ns / 2 {
                let before = &mut registry.warnings.cpu_waits_before;
                if let std::collections::hash_map::Entry::Vacant(e) = before.entry((task, start)) {
                    if let Some(wait) = CpuWait::read(slot.tid.load(Relaxed)) {
                        e.insert(wait);
                    }
                }
            }
            continue;
        }
        let id = match registry.warnings.blocked.get(&(task, start)).copied() {
            Some(id) => {
                // Not once completed: the poll's exact end can arrive a moment before its slot
                // shows it over.
                let subject = registry.warnings.subject(id);
                let waited = cpu_wait(&mut registry.warnings, id, true).map_or(0, |w| w.waited());
                if let Some(w) = registry.warnings.get_mut(id).filter(|w| w.ongoing) {
                    w.duration_ns = Some(elapsed);
                    w.message = blocked_message(w, &subject, elapsed, true, waited);
                }
                id
            }
            None => {
                let (w, subject) = blocked_warning(shared, &registry, slot, task, start, elapsed);
                let id = registry.warnings.raise(w);
                registry.warnings.subjects.insert(id, subject);
                registry.warnings.blocked.insert((task, start), id);
                let seen = registry.warnings.cpu_waits_before.remove(&(task, start));
                let wait = seen.or_else(|| CpuWait::read(slot.tid.load(Relaxed)));
                if let Some(wait) = wait {
                    registry.warnings.cpu_waits.insert(id, wait);
                }
                if worker::is_marker(raw) {
                    // The poll times its own end from now on.
                    registry.untimed.flagged.insert(raw, (start, now));
                    slot.long_start.store(start, Relaxed);
                    slot.long_marker.store(raw, Release);
                }
                id
            }
        };
        if registry.stacks.take_due(id, now, threshold) {
            to_sample.push((id, slot, raw));
        }
    }

    registry
        .warnings
        .cpu_waits_before
        .retain(|key, _| running.contains(key));

    // Long polls that ended while the slots were read: a poll queues its event before its slot
    // shows it over, so a blocked poll found ended above has its exact end here (unless the
    // event was shed) and is not completed with the last scan's duration.
    registry.sync_events(shared);
    fold_long_polls(shared, &mut registry);
    registry.untimed.forget_ended(&slots, now);

    // A poll we saw blocked that no slot shows any more has ended; its exact duration arrived
    // above with its long-poll event, if that was not dropped.
    let ended: Vec<(u64, u64)> = registry
        .warnings
        .blocked
        .iter()
        .filter(|(key, _)| !running.contains(key))
        .map(|(&key, _)| key)
        .collect();
    for key in ended {
        let Some(&id) = registry.warnings.blocked.get(&key) else {
            continue;
        };
        let subject = registry.warnings.subject(id);
        let waited = cpu_wait(&mut registry.warnings, id, false).map_or(0, |w| w.waited());
        if let Some(w) = registry.warnings.get_mut(id) {
            if w.ongoing {
                w.ongoing = false;
                let elapsed = w.duration_ns.unwrap_or(0);
                w.message = blocked_message(w, &subject, elapsed, false, waited);
            }
        }
        registry.warnings.cpu_waits.remove(&id);
    }
    if registry.warnings.blocked.len() > 1024 {
        let keep: HashSet<u64> = registry.warnings.ongoing().map(|w| w.id).collect();
        registry.warnings.blocked.retain(|_, id| keep.contains(id));
        registry.warnings.subjects.retain(|id, _| keep.contains(id));
        registry
            .warnings
            .cpu_waits
            .retain(|id, _| keep.contains(id));
    }

    crate::sync::graph::scan(shared, &mut registry, now);
    crate::threads::chains::trace_wanted(shared, &mut registry);

    let probes: Vec<Arc<RuntimeProbe>> = registry.runtimes.clone();
    let last_ping = LAST_PING.load(Relaxed);
    let ping = clock::delta_ns(last_ping, now) >= PING_EVERY.as_nanos() as u64 || last_ping > now;
    if ping {
        LAST_PING.store(now, Relaxed);
    }
    let mut foreign = Vec::new();
    for probe in probes.iter().filter(|p| p.alive.load(Acquire)) {
        if ping {
            probe.ping();
        }
        if probe.multi_thread {
            let due = crate::threads::foreign::watch(
                shared,
                &mut registry,
                probe,
                &slots,
                threshold,
                now,
            );
            foreign.extend(due);
        }
    }
    drop(registry);
    sample_stacks(shared, to_sample);
    crate::threads::foreign::sample(shared, foreign, &slots);
    deadline
}

/// Samples the stacks of blocked workers, outside the registry lock (a sample waits for the
/// blocked thread to run its signal handler). A sample counts only if the same poll is still
/// running after it: then the handler ran during that poll.
fn sample_stacks(shared: &'static Shared, to_sample: Vec<(u64, &'static WorkerSlot, u64)>) {
    if to_sample.is_empty() {
        return;
    }
    // A thread that blocks the signal (or exited) is not asked again for the same blocked
    // poll: each unanswered request costs the watchdog its 20 ms wait. One that was merely not
    // scheduled in time (a loaded machine) is asked again at the next interval.
    let mut unanswered = Vec::new();
    for (id, slot, start) in to_sample {
        let tid = slot.tid.load(Relaxed);
        let Some(raw) = crate::stacks::capture(tid) else {
            if crate::stacks::blocks_signal(tid) {
                unanswered.push(id);
            }
            continue;
        };
        if slot.start.load(Acquire) == start {
            crate::threads::symbolizer::submit(id, raw);
        }
    }
    if !unanswered.is_empty() {
        let mut registry = crate::state::registry::lock(shared);
        for id in unanswered {
            registry.stacks.give_up(id);
        }
    }
}

/// Completes the warnings (and timeline slices) of the long polls whose ends were queued.
fn fold_long_polls(shared: &Shared, registry: &mut Registry) {
    for (task, start, end) in std::mem::take(&mut registry.long_polls) {
        let start = match worker::is_marker(start) {
            true => match registry.untimed.flagged.remove(&start) {
                Some((seen, _)) => seen,
                None => continue,
            },
            false => start,
        };
        registry.timeline.exact_end(task, start, end);
        poll_ended(shared, registry, task, start, end);
    }
}

fn poll_ended(shared: &Shared, registry: &mut Registry, task: u64, start: u64, end: u64) {
    let duration = clock::delta_ns(start, end);
    // A scope polled inside this poll shows the poll's start as its own (`task::scope`): the
    // watchdog saw the scope, the innermost, blocked; this poll's end completes that warning.
    let existing = registry
        .warnings
        .blocked
        .get(&(task, start))
        .copied()
        .or_else(|| {
            registry
                .warnings
                .blocked
                .iter()
                .find(|(&(_, seen), _)| seen == start)
                .map(|(_, &id)| id)
        });
    let subject = existing.map(|id| registry.warnings.subject(id));
    let waited = existing
        .and_then(|id| cpu_wait(&mut registry.warnings, id, false))
        .map_or(0, |w| w.waited());
    if let Some(id) = existing {
        registry.warnings.cpu_waits.remove(&id);
    }
    match existing.and_then(|id| registry.warnings.get_mut(id)) {
        Some(w) => {
            w.duration_ns = Some(duration);
            w.ongoing = false;
            let subject = subject.as_deref().unwrap_or("?");
            w.message = blocked_message(w, subject, duration, false, waited);
            let done = w.clone();
            registry.warnings.to_emit.push(done);
        }
        None => {
            // Ended before a scan saw it (or the threshold is below the scan period).
            let (mut w, subject) = blocked_by(shared, registry, task, start, duration);
            w.message = blocked_message(&w, &subject, duration, false, 0);
            let id = registry.warnings.raise(w);
            registry.warnings.blocked.insert((task, start), id);
            registry.warnings.subjects.insert(id, subject);
        }
    }
}

/// A blocking task's name and location, and what the warning's text calls it: a task and
/// where it was spawned, or a scope, where it was created (the tower layer's requests are
/// created inside taskscope: no location of the application's) and the task it runs in.
fn describe(registry: &Registry, task: u64) -> (String, String, String) {
    match registry.describe(task) {
        Some((name, location, TaskKind::Scope)) => {
            let created = if location == crate::base::location::LAYER_LOCATION {
                "a request through the tower layer".to_string()
            } else {
                format!("created at {location}")
            };
            let within = registry
                .task_of_scope(task)
                .map(|parent| format!(" in task `{parent}`"))
                .unwrap_or_default();
            let subject = format!("scope `{name}` ({created}){within}");
            (name, location, subject)
        }
        Some((name, location, _)) => {
            // An unnamed task is named by its location: say it once.
            let subject = if name == location {
                format!("task spawned at {location}")
            } else {
                format!("task `{name}` (spawned at {location})")
            };
            (name, location, subject)
        }
        None => (
            format!("task #{task}"),
            "(unknown location)".into(),
            format!("task #{task}"),
        ),
    }
}

/// A `blocked_worker` of `task`'s poll from `start`, `duration` long so far, without its text;
/// and how the text names what blocked (`describe`).
fn blocked_by(
    shared: &Shared,
    registry: &Registry,
    task: u64,
    start: u64,
    duration: u64,
) -> (Warning, String) {
    let (name, location, subject) = describe(registry, task);
    let mut w = Warning::new(
        0,
        WarningKind::BlockedWorker,
        shared.ms_at(start),
        String::new(),
    );
    w.task = Some(task);
    w.task_name = Some(name);
    w.location = Some(location);
    w.duration_ns = Some(duration);
    (w, subject)
}

fn blocked_warning(
    shared: &Shared,
    registry: &Registry,
    slot: &WorkerSlot,
    task: u64,
    start: u64,
    elapsed: u64,
) -> (Warning, String) {
    let (mut w, subject) = blocked_by(shared, registry, task, start, elapsed);
    w.ongoing = true;
    w.worker = Some(worker_name(slot));
    w.span = slot
        .span
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_deref()
        .map(str::to_owned);
    w.locks = registry.locks_held_by(task);
    w.message = blocked_message(&w, &subject, elapsed, true, 0);
    (w, subject)
}

fn worker_name(slot: &WorkerSlot) -> String {
    let thread = slot.thread_name.lock().unwrap_or_else(|e| e.into_inner());
    format!("{thread} (#{})", slot.index)
}

/// Warning `id`'s wait for a CPU, read anew while the block goes on (`refresh`), not once it
/// has ended (the thread runs other work then).
fn cpu_wait(warnings: &mut Warnings, id: u64, refresh: bool) -> Option<CpuWait> {
    let wait = warnings.cpu_waits.get_mut(&id)?;
    if refresh {
        wait.read_again();
    }
    Some(*wait)
}

/// A wait for a CPU worth saying: at least 1 ms and a tenth of the block.
fn worth_saying(waited: u64, elapsed: u64) -> bool {
    waited >= 1_000_000 && waited >= elapsed / 10
}

/// The text of a `blocked_worker`; `subject` says what blocked (`describe`), `waited` how much
/// of it the worker spent runnable but not running. When that leaves the poll itself under the
/// threshold, the text says the machine stalled the worker, not the task.
fn blocked_message(w: &Warning, subject: &str, elapsed: u64, ongoing: bool, waited: u64) -> String {
    let worker = w
        .worker
        .as_deref()
        .map(|t| format!("worker {t} "))
        .unwrap_or_else(|| "a worker ".into());
    let span = w
        .span
        .as_deref()
        .map(|s| format!(" in span {s}"))
        .unwrap_or_default();
    let span = if w.locks.is_empty() {
        span
    } else {
        let locks: Vec<String> = w.locks.iter().map(|l| format!("`{l}`")).collect();
        format!("{span}, holding {}", locks.join(", "))
    };
    let threshold = crate::state::shared::THRESHOLDS.blocked_ns.load(Relaxed);
    if worth_saying(waited, elapsed) && elapsed.saturating_sub(waited) < threshold {
        let (ran, waited) = (fmt_ns(elapsed.saturating_sub(waited)), fmt_ns(waited));
        let verb = if ongoing {
            "has been stalled"
        } else {
            "was stalled"
        };
        let still = if ongoing { "; still stalled" } else { "" };
        return format!(
            "{worker}{verb} for {} polling {subject}{span}: {waited} of it waiting for a CPU \
             that other threads had (the machine is oversubscribed), so the poll itself ran at \
             most {ran}{still}",
            fmt_ns(elapsed)
        );
    }
    let of_which = if worth_saying(waited, elapsed) {
        format!(" (of which {} waiting for a CPU)", fmt_ns(waited))
    } else {
        String::new()
    };
    if ongoing {
        format!(
            "{worker}has been blocked for {}{of_which} by {subject}{span}; still blocked",
            fmt_ns(elapsed)
        )
    } else {
        format!(
            "{worker}was blocked for {}{of_which} by one poll of {subject}{span}",
            fmt_ns(elapsed)
        )
    }
}
