//! The CPU profiler's thread (`Builder::profile_hz`, `TASKSCOPE_PROFILE_HZ`; off by default,
//! and then not started at all). Every thread that polls tasks — the worker slots of threads
//! that polled instrumented tasks or scopes, and tokio's workers found by name — gets a timer on
//! its own CPU clock (`stacks::profile_thread`) that signals it at every kernel tick it runs at,
//! of which the handler keeps the share that makes `hz` samples a CPU-second (this thread
//! measures the signals' rate and sets the share): samples fall where CPU time goes, however
//! short the polls, and a thread that waits is not sampled at all. The handler reads, on the
//! sampled thread, which task its worker slot shows it polling at that instant (and where that
//! poll's frame is, past which its stack walk stops). This thread drains the samples every 10
//! to 100 ms (as the rate asks) and hands them to the symbolizer thread, which folds them into
//! the registry's profile (`stacks::ProfileStore`); it counts the time the threads spent off CPU
//! as idle, from the kernel's account of each thread's CPU time (`base::schedstat`).

use std::sync::atomic::{AtomicBool, Ordering::*};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::state::shared::Shared;
use crate::state::worker;
use crate::threads::symbolizer::{is_ready, submit_profile};

/// The most samples a second per thread (and the least: 1).
pub(crate) const MAX_HZ: u32 = 10_000;
/// How often the threads named like tokio's workers are looked for again.
const FIND_THREADS_EVERY: Duration = Duration::from_millis(500);
/// How often the counts (threads, idle, missed samples, the handler's time) go to the registry
/// and the kept share is set again.
const FLUSH_EVERY: Duration = Duration::from_millis(250);

type ProfilerThread = (Arc<AtomicBool>, std::thread::JoinHandle<()>);

static PROFILER: Mutex<Option<ProfilerThread>> = Mutex::new(None);

/// Starts profiling at `hz` samples a second per thread (stack sampling must be on).
pub(crate) fn start(shared: &'static Shared, hz: u32) {
    let hz = hz.clamp(1, MAX_HZ);
    crate::state::registry::lock(shared).profile.start(hz);
    let stop = Arc::new(AtomicBool::new(false));
    let thread = {
        let stop = stop.clone();
        std::thread::Builder::new()
            .name("taskscope-profiler".into())
            .spawn(move || run(shared, hz, &stop))
    };
    if let Ok(thread) = thread {
        *PROFILER.lock().unwrap_or_else(|e| e.into_inner()) = Some((stop, thread));
    }
}

/// Stops the profiler's thread (the profile stays in the registry).
pub(crate) fn stop() {
    let taken = PROFILER.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some((stop, thread)) = taken {
        stop.store(true, Release);
        thread.thread().unpark();
        let _ = thread.join();
    }
}

/// A thread to sample: its kernel id and, if it has one, its worker slot.
struct Target {
    tid: i32,
    slot: Option<&'static worker::WorkerSlot>,
}

/// A thread being profiled, and its CPU time when last looked at.
struct Profiled {
    _timer: crate::stacks::CpuTimer,
    cpu_ns: u64,
}

/// The kernel's tick rate assumed until the signals' rate is measured.
const ASSUMED_TICK_HZ: f64 = 250.0;

/// Samples kept at most while the symbolizer is not ready (≈ 1 KiB each).
const MAX_PENDING: usize = 4096;

/// How often samples are handed to the symbolizer: when the handler's ring would be a quarter
/// full at `hz` samples a second on each of `threads` threads, within 10..=100 ms. (Each drain
/// wakes this thread and the symbolizer's: at 25 ms, most of this thread's cost at 99 Hz.)
fn drain_every(hz: u32, threads: usize) -> Duration {
    let per_second = f64::from(hz) * threads.max(1) as f64;
    let quarter = crate::stacks::PROFILE_RING as f64 / 4.0;
    Duration::from_secs_f64((quarter / per_second).clamp(0.010, 0.100))
}

fn run(shared: &'static Shared, hz: u32, stop: &AtomicBool) {
    // Until the signals' rate is known: the usual kernel tick rate, 250 a CPU-second.
    let mut keep = (f64::from(hz) / ASSUMED_TICK_HZ).min(1.0);
    crate::stacks::profile_keep(keep);
    // Samples taken while the symbolizer reads the debug info for the first time (seconds, in
    // a large debug build) wait here rather than overflow its queue.
    let mut pending: Vec<crate::stacks::RawStack> = Vec::new();
    let mut profiled: std::collections::HashMap<i32, Profiled> = Default::default();
    let mut found_at: Option<Instant> = None;
    let mut flushed_at = Instant::now();
    let (mut missed, mut off_cpu_ns, mut handler_ns) = (0u64, 0u128, 0u64);
    let mut failed_once = false;
    while !stop.load(Acquire) {
        std::thread::park_timeout(drain_every(hz, profiled.len()));
        let now = Instant::now();
        if found_at.is_none_or(|at| now.duration_since(at) >= FIND_THREADS_EVERY) {
            found_at = Some(now);
            let named: Vec<i32> = crate::stacks::threads_named(&[], &[])
                .into_iter()
                .map(|t| t.tid)
                .collect();
            let targets = targets(&named);
            profiled.retain(|tid, _| targets.iter().any(|t| t.tid == *tid));
            for target in targets {
                if profiled.contains_key(&target.tid) {
                    continue;
                }
                let words = target.slot.map(|s| crate::stacks::SlotWords {
                    task: &s.task,
                    start: &s.start,
                    poll_sp: &s.poll_sp,
                });
                match crate::stacks::profile_thread(target.tid, words) {
                    Ok(timer) => {
                        let cpu_ns = crate::base::schedstat::on_cpu_ns(target.tid).unwrap_or(0);
                        profiled.insert(
                            target.tid,
                            Profiled {
                                _timer: timer,
                                cpu_ns,
                            },
                        );
                    }
                    Err(why) if !failed_once => {
                        failed_once = true;
                        tracing::warn!(target: "taskscope", "CPU profile: {why}");
                    }
                    Err(_) => {}
                }
            }
        }
        let (samples, dropped, spent) = crate::stacks::profile_samples();
        missed += dropped;
        handler_ns += spent;
        pending.extend(samples);
        if is_ready() && !pending.is_empty() {
            let batch = std::mem::take(&mut pending);
            let taken = batch.len() as u64;
            if !submit_profile(batch) {
                missed += taken;
            }
        } else if pending.len() > MAX_PENDING {
            missed += (pending.len() - MAX_PENDING) as u64;
            pending.truncate(MAX_PENDING);
        }
        let since = now.duration_since(flushed_at);
        if since >= FLUSH_EVERY {
            flushed_at = now;
            // Off CPU: the wall time since the last look that a thread did not spend on CPU.
            let mut on_cpu_ns = 0u64;
            for (&tid, p) in profiled.iter_mut() {
                let Some(cpu_ns) = crate::base::schedstat::on_cpu_ns(tid) else {
                    continue;
                };
                let on = cpu_ns.saturating_sub(p.cpu_ns);
                p.cpu_ns = cpu_ns;
                on_cpu_ns += on;
                off_cpu_ns += since.as_nanos().saturating_sub(u128::from(on));
            }
            // The signals come at the kernel's tick rate while a thread runs: keep the share
            // of them that makes `hz` a CPU-second.
            let signals = crate::stacks::profile_signals();
            if on_cpu_ns >= 20_000_000 && signals >= 4 {
                let rate = signals as f64 / (on_cpu_ns as f64 / 1e9);
                let wanted = (f64::from(hz) / rate).min(1.0);
                keep = 0.5 * keep + 0.5 * wanted;
                crate::stacks::profile_keep(keep);
            }
            let idle = (off_cpu_ns * u128::from(hz) / 1_000_000_000) as u64;
            off_cpu_ns -= u128::from(idle) * 1_000_000_000 / u128::from(hz);
            crate::state::registry::lock(shared).profile.round(
                profiled.len() as u32,
                idle,
                std::mem::take(&mut missed),
                std::mem::take(&mut handler_ns),
            );
        }
    }
    drop(profiled);
    let (samples, dropped, spent) = crate::stacks::profile_samples();
    pending.extend(samples);
    let taken = pending.len() as u64;
    if taken > 0 && !submit_profile(pending) {
        missed += taken;
    }
    crate::state::registry::lock(shared)
        .profile
        .round(0, 0, missed + dropped, handler_ns + spent);
}

/// The threads to sample now: live worker slots of a runtime, and the threads named like
/// tokio's workers (with their slot, if they have one: a runtime taskscope was not attached to
/// when the thread first polled an instrumented task or scope leaves it unnamed in the slot).
fn targets(named: &[i32]) -> Vec<Target> {
    let slots: Vec<&'static worker::WorkerSlot> = worker::all()
        .into_iter()
        .filter(|s| s.alive.load(Acquire) && s.tid.load(Relaxed) > 0)
        .collect();
    let mut targets: Vec<Target> = slots
        .iter()
        .filter(|s| s.runtime.load(Relaxed) != 0)
        .map(|&slot| Target {
            tid: slot.tid.load(Relaxed),
            slot: Some(slot),
        })
        .collect();
    for &tid in named {
        if !targets.iter().any(|t| t.tid == tid) {
            let slot = slots.iter().copied().find(|s| s.tid.load(Relaxed) == tid);
            targets.push(Target { tid, slot });
        }
    }
    targets
}

#[cfg(test)]
mod tests {
    use super::drain_every;
    use std::time::Duration;

    #[test]
    fn the_ring_is_drained_before_it_can_fill() {
        // 99 Hz on 2 workers: 20 samples in 100 ms, far from the ring's 512.
        assert_eq!(drain_every(99, 2), Duration::from_millis(100));
        // 999 Hz on 2 workers: drained when a quarter of the ring (128) has come.
        assert_eq!(drain_every(999, 2).as_millis(), 64);
        // The most a thread may ask for, on 64 threads: every 10 ms, at the floor.
        assert_eq!(drain_every(super::MAX_HZ, 64), Duration::from_millis(10));
        // Before any thread is found it counts as one.
        assert_eq!(drain_every(99, 0), Duration::from_millis(100));
    }
}
