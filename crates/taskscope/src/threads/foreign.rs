//! Workers stuck in tasks taskscope did not spawn (a framework's own `tokio::spawn`): found with
//! tokio's stable per-worker counters, confirmed with the threads' stacks.
//!
//! tokio counts parks and busy time per worker. A worker that is unparked and whose counters
//! have not moved for longer than the threshold may be inside one long poll — or merely busy:
//! tokio publishes busy time only at a park or every 61 polls, so a worker running polls of a
//! few hundred µs each, or running on right after a long instrumented poll, looks the same. If
//! more workers of a runtime look stuck than taskscope's own slots on that runtime show in a
//! poll, the rest are candidates.
//!
//! Where stacks can be sampled (Linux), a candidate becomes a `blocked_worker` only once a thread
//! of the runtime is found at exactly the same call chain in two samples 2 ms apart, and either
//! the kernel says it is not waiting for work (not in `futex`/`epoll_wait`: a sleep, a read, a
//! busy loop) or its symbolised stack shows it inside a task poll (`stacks::foreign`); the
//! search starts at the first scan that sees the stall and goes on while it lasts. The warning then names that thread and the application's frame it is
//! blocked at, and its stacks go wherever a blocked worker's go. A stall that ends before its
//! samples are symbolised is reported when they are (within `CLOSING_FOR`). Elsewhere the
//! counters alone raise it, a worker index and no stack.

use std::sync::atomic::Ordering::*;
use std::time::Duration;

use taskscope_wire::{Warning, WarningKind};

use crate::base::clock;
use crate::stacks::Thread;
use crate::state::probe::{RuntimeProbe, StallEnded, WorkerWatch};
use crate::state::registry::Registry;
use crate::state::shared::Shared;
use crate::state::warnings::fmt_ns;
use crate::state::worker::WorkerSlot;

/// The task name of a worker stuck in a task taskscope did not spawn.
const UNINSTRUMENTED: &str = "(uninstrumented task)";

/// How long the samples of a stall that ended are waited for.
const CLOSING_FOR: Duration = Duration::from_secs(2);

/// A worker stuck in an uninstrumented task whose stack is due for a sample (`warning`: the
/// warning's id, or the stall's key before there is one, while its thread is looked for).
pub(crate) struct ForeignDue {
    warning: u64,
    runtime: u64,
    /// Its thread, once found.
    thread: Option<Thread>,
}

/// The key of the samples of one stall of a worker, before its warning exists: above every
/// warning id.
fn pending_key(runtime: u64, worker: usize, stall: u32) -> u64 {
    crate::stacks::PENDING_KEY
        | ((runtime & 0x7fff) << 48)
        | ((worker as u64 & 0xffff) << 32)
        | u64::from(stall)
}

/// One scan of a runtime's workers: updates, raises and completes their warnings, and says
/// which threads to sample (outside the registry lock: `sample`).
pub(crate) fn watch(
    shared: &Shared,
    registry: &mut Registry,
    probe: &RuntimeProbe,
    slots: &[&'static WorkerSlot],
    threshold: u64,
    now: u64,
) -> Vec<ForeignDue> {
    let instrumented_polling = slots
        .iter()
        .filter(|s| {
            s.alive.load(Acquire)
                && s.runtime.load(Relaxed) == probe.id
                && s.start.load(Acquire) != 0
        })
        .count();
    let stacks = crate::stacks::enabled();
    let mut watch = probe.watch.lock().unwrap_or_else(|e| e.into_inner());
    let mut stuck = Vec::new();
    for (worker, w) in watch.iter_mut().enumerate() {
        close(shared, registry, probe, worker, w, now);
        let park_unpark = probe.metrics.worker_park_unpark_count(worker);
        let busy_ns = probe.metrics.worker_total_busy_duration(worker).as_nanos() as u64;
        if park_unpark != w.park_unpark || busy_ns != w.busy_ns || w.changed_at == 0 {
            let key = pending_key(probe.id, worker, w.stalls);
            if w.warning.is_none() && registry.stacks.rounds(key) > 0 {
                // Its samples may still be on their way: wait for them a while.
                if let Some(older) = w.closing.take() {
                    registry.stacks.forget(older.key);
                }
                w.closing = Some(StallEnded {
                    key,
                    start: w.changed_at,
                    end: now,
                });
                close(shared, registry, probe, worker, w, now);
            } else {
                registry.stacks.forget(key);
            }
            w.park_unpark = park_unpark;
            w.busy_ns = busy_ns;
            w.changed_at = now;
            w.suspect_scans = 0;
            w.stalls = w.stalls.wrapping_add(1);
            if let Some(id) = w.warning.take() {
                registry.stacks.end_foreign(id);
                if let Some(warning) = registry.warnings.get_mut(id) {
                    warning.ongoing = false;
                    let elapsed = warning.duration_ns.unwrap_or(0);
                    warning.message = message(warning, probe.id, worker, elapsed);
                }
            }
            continue;
        }
        let parked = park_unpark % 2 == 1;
        if !parked && clock::delta_ns(w.changed_at, now) > threshold {
            w.suspect_scans += 1;
            stuck.push(worker);
        }
    }
    let unexplained = stuck.len().saturating_sub(instrumented_polling);

    let mut due = Vec::new();
    for worker in stuck.into_iter().take(unexplained) {
        let w = &mut watch[worker];
        let elapsed = clock::delta_ns(w.changed_at, now);
        let id = match w.warning.and_then(|id| registry.warnings.get_mut(id)) {
            Some(warning) => {
                warning.duration_ns = Some(elapsed);
                warning.message = message(warning, probe.id, worker, elapsed);
                warning.id
            }
            None => {
                let key = pending_key(probe.id, worker, w.stalls);
                // Raised once a thread is found stuck; or, without waiting for its stack to be
                // symbolised, once one stayed in one call outside the kernel's waits for work.
                let found = registry.stacks.foreign_thread(key).is_some();
                let seen = registry.stacks.is_stuck_seen(key);
                let ready = found || ((seen || !stacks) && w.suspect_scans >= 2);
                if !ready {
                    if stacks && registry.stacks.take_due(key, now, threshold / 2) {
                        due.push(ForeignDue {
                            warning: key,
                            runtime: probe.id,
                            thread: None,
                        });
                    }
                    continue;
                }
                let id = raise(
                    shared,
                    registry,
                    probe,
                    worker,
                    w.changed_at,
                    key,
                    elapsed,
                    true,
                );
                w.warning = Some(id);
                id
            }
        };
        if registry.stacks.take_due(id, now, threshold) {
            due.push(ForeignDue {
                warning: id,
                runtime: probe.id,
                thread: registry.stacks.foreign_thread(id).cloned(),
            });
        }
    }
    due
}

/// A stall that ended before its thread was found: reported, as over, once its samples find
/// it; forgotten after `CLOSING_FOR`.
fn close(
    shared: &Shared,
    registry: &mut Registry,
    probe: &RuntimeProbe,
    worker: usize,
    w: &mut WorkerWatch,
    now: u64,
) {
    let Some(closing) = w.closing else {
        return;
    };
    if registry.stacks.foreign_thread(closing.key).is_some() {
        let elapsed = clock::delta_ns(closing.start, closing.end);
        raise(
            shared,
            registry,
            probe,
            worker,
            closing.start,
            closing.key,
            elapsed,
            false,
        );
        w.closing = None;
    } else if clock::delta_ns(closing.end, now) > CLOSING_FOR.as_nanos() as u64 {
        registry.stacks.forget(closing.key);
        w.closing = None;
    }
}

/// Raises the `blocked_worker` of a stall of `worker` that began at `start`, with the thread
/// found stuck, if any, and the samples taken under `key`.
#[allow(clippy::too_many_arguments)]
fn raise(
    shared: &Shared,
    registry: &mut Registry,
    probe: &RuntimeProbe,
    worker: usize,
    start: u64,
    key: u64,
    elapsed: u64,
    ongoing: bool,
) -> u64 {
    let found = registry.stacks.foreign_thread(key).cloned();
    let mut warning = Warning::new(
        0,
        WarningKind::BlockedWorker,
        shared.ms_at(start),
        String::new(),
    );
    warning.task_name = Some(UNINSTRUMENTED.into());
    warning.worker = Some(format!("runtime {} worker {worker}", probe.id));
    warning.duration_ns = Some(elapsed);
    warning.ongoing = ongoing;
    warning.message = message(&warning, probe.id, worker, elapsed);
    if let Some(thread) = found {
        let location = registry.stacks.foreign_top(key).map(|f| f.to_string());
        crate::state::warnings::locate_uninstrumented(&mut warning, &thread, location);
    }
    let id = registry.warnings.raise(warning);
    registry.stacks.rename(key, id);
    if !ongoing {
        registry.stacks.end_foreign(id);
    }
    id
}

/// What tokio's counters tell of a stuck worker, until its stack was sampled
/// (`warnings::uninstrumented_message` then says where it is).
fn message(w: &Warning, runtime: u64, worker: usize, elapsed: u64) -> String {
    if let Some(located) = crate::state::warnings::uninstrumented_message(w) {
        return located;
    }
    let tense = if w.ongoing { "has been" } else { "was" };
    format!(
        "a worker of runtime {runtime} (tokio worker index {worker} or a sibling) {tense} inside one poll for {} {}",
        fmt_ns(elapsed),
        crate::state::warnings::UNINSTRUMENTED_ORIGIN,
    )
}

/// Samples the threads that may be workers stuck in uninstrumented tasks, outside the registry
/// lock: the thread found for a warning, or else every worker thread of its runtime that is
/// not in an instrumented poll (by the names of the threads seen running the runtime's tasks:
/// its heartbeat visits them), twice, 2 ms apart. The symbolising thread tells which one is
/// stuck.
pub(crate) fn sample(shared: &'static Shared, due: Vec<ForeignDue>, slots: &[&'static WorkerSlot]) {
    for job in due {
        let searching = job.thread.is_none();
        let candidates = match job.thread {
            Some(thread) => vec![thread],
            None => {
                let mut names: Vec<String> = Vec::new();
                let mut exclude: Vec<i32> = Vec::new();
                for slot in slots.iter().filter(|s| s.alive.load(Acquire)) {
                    let runtime = slot.runtime.load(Relaxed);
                    let tid = slot.tid.load(Relaxed);
                    if runtime == job.runtime && slot.start.load(Acquire) == 0 {
                        let name = slot.thread_name.lock().unwrap_or_else(|e| e.into_inner());
                        if !names.contains(&name) {
                            names.push(name.clone());
                        }
                    } else {
                        exclude.push(tid);
                    }
                }
                crate::stacks::threads_named(&names, &exclude)
            }
        };
        // A thread in an instrumented poll (a scope, say) is not the one to find: looked at
        // before and after each sample, as its poll may start or end in between.
        let in_instrumented_poll = |tid: i32| {
            slots.iter().any(|s| {
                s.alive.load(Acquire) && s.tid.load(Relaxed) == tid && s.start.load(Acquire) != 0
            })
        };
        let take = |candidates: &[Thread]| -> Vec<_> {
            candidates
                .iter()
                .filter(|t| !searching || !in_instrumented_poll(t.tid))
                .filter_map(|t| Some((t.clone(), crate::stacks::capture(t.tid)?)))
                .filter(|(t, _)| !searching || !in_instrumented_poll(t.tid))
                .collect()
        };
        let first = take(&candidates);
        if !searching {
            if !first.is_empty() {
                crate::threads::symbolizer::submit_foreign(job.warning, first);
            }
            continue;
        }
        // A second look 2 ms later: the stuck thread is where it was, a busy one has moved on.
        std::thread::sleep(Duration::from_millis(2));
        let stayed = stayed_in_one_call(first, take(&candidates));
        if stayed.is_empty() {
            continue;
        }
        // A thread that stayed in one call and is not waiting for work (the kernel says so at
        // once; its stack says so once symbolised, which can take a while the first time).
        if stayed
            .iter()
            .any(|(t, _)| !crate::stacks::waits_for_work(t.tid))
        {
            crate::state::registry::lock(shared)
                .stacks
                .stuck_seen(job.warning);
        }
        crate::threads::symbolizer::submit_foreign(job.warning, stayed);
    }
}

/// The second samples of the threads whose call chain is the same in both.
fn stayed_in_one_call(
    first: Vec<(Thread, crate::stacks::RawStack)>,
    second: Vec<(Thread, crate::stacks::RawStack)>,
) -> Vec<(Thread, crate::stacks::RawStack)> {
    second
        .into_iter()
        .filter(|(thread, raw)| {
            first
                .iter()
                .any(|(t, before)| t == thread && before.call_chain() == raw.call_chain())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stacks::RawStack;

    fn sample(tid: i32, pc: usize, callers: &[usize]) -> (Thread, RawStack) {
        let thread = Thread {
            tid,
            name: "tokio-rt-worker".into(),
        };
        // The handler's own frames first, then the interrupted instruction and its callers.
        let mut ips = vec![0x10, 0x20, pc];
        ips.extend_from_slice(callers);
        (
            thread,
            RawStack {
                pc,
                ips,
                tags: [0; 2],
            },
        )
    }

    #[test]
    fn only_threads_whose_callers_did_not_change_are_kept() {
        let first = vec![
            sample(1, 0x500, &[0x600, 0x700]),
            sample(2, 0x900, &[0xa00, 0x700]),
            sample(3, 0x500, &[0x600, 0x700]),
        ];
        let second = vec![
            // Stuck: the same callers (a spinning loop may be at another instruction).
            sample(1, 0x504, &[0x600, 0x700]),
            // Busy: somewhere else.
            sample(2, 0x500, &[0x600, 0x700]),
            // Not sampled the first time.
            sample(4, 0x500, &[0x600, 0x700]),
        ];
        let kept: Vec<i32> = stayed_in_one_call(first, second)
            .iter()
            .map(|(t, _)| t.tid)
            .collect();
        assert_eq!(kept, [1]);
    }
}
