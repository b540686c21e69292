//! The CPU profiler's thread (`Builder::profile_hz`, `TASKSCOPE_PROFILE_HZ`; off by default,
//! and then not started at all): `hz` times a second it samples the stack of every thread that
//! polls tasks — the worker slots of threads that polled instrumented tasks, and tokio's
//! workers found by name — with the signal the watchdog uses for blocked workers. The handler
//! also reads, on the sampled thread, which task that thread's slot shows it polling at that
//! instant, so each sample is attributed to the poll it interrupted, however short. Samples go
//! to the symbolizer thread in one batch per round, which folds them into the registry's
//! profile (`stacks::ProfileStore`).

use std::sync::atomic::{AtomicBool, Ordering::*};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::state::shared::Shared;
use crate::state::worker;
use crate::threads::symbolizer::{is_ready, submit_profile};

/// The most samples a second per thread (and the least: 1).
pub(crate) const MAX_HZ: u32 = 10_000;
/// How often the threads named like tokio's workers are looked for again.
const FIND_THREADS_EVERY: Duration = Duration::from_millis(200);
/// How often the rounds' counts (threads, missed samples) go to the registry.
const FLUSH_EVERY: Duration = Duration::from_millis(100);

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

fn run(shared: &'static Shared, hz: u32, stop: &AtomicBool) {
    let period = Duration::from_secs_f64(1.0 / f64::from(hz));
    let mut named: Vec<i32> = Vec::new();
    let mut found_at: Option<Instant> = None;
    let mut flushed_at = Instant::now();
    let (mut threads, mut missed) = (0u32, 0u64);
    // Until the symbolizer has read the debug info, samples would only pile up in its queue.
    while !is_ready() && !stop.load(Acquire) {
        std::thread::park_timeout(Duration::from_millis(5));
    }
    let mut next = Instant::now();
    while !stop.load(Acquire) {
        let now = Instant::now();
        if next > now {
            std::thread::park_timeout(next - now);
            continue; // woken early (to stop) or on time: look again
        }
        // A round that is late (the machine is busy) is taken now; rounds missed meanwhile
        // are not made up.
        next = (next + period).max(now);
        if found_at.is_none_or(|at| now.duration_since(at) >= FIND_THREADS_EVERY) {
            found_at = Some(now);
            named = crate::stacks::threads_named(&[], &[])
                .into_iter()
                .map(|t| t.tid)
                .collect();
        }
        let targets = targets(&named);
        threads = threads.max(targets.len() as u32);
        let samples: Vec<_> = targets
            .iter()
            .filter_map(|t| match t.slot {
                Some(slot) => crate::stacks::capture_tagged(t.tid, [&slot.task, &slot.start]),
                None => crate::stacks::capture(t.tid),
            })
            .collect();
        missed += (targets.len() - samples.len()) as u64;
        if !samples.is_empty() {
            let taken = samples.len() as u64;
            if !submit_profile(samples) {
                missed += taken;
            }
        }
        if now.duration_since(flushed_at) >= FLUSH_EVERY {
            flushed_at = now;
            crate::state::registry::lock(shared)
                .profile
                .round(threads, std::mem::take(&mut missed));
        }
    }
    crate::state::registry::lock(shared)
        .profile
        .round(threads, missed);
}

/// The threads to sample now: live worker slots of a runtime, then the threads named like
/// tokio's workers that have no slot.
fn targets(named: &[i32]) -> Vec<Target> {
    let mut targets: Vec<Target> = worker::all()
        .into_iter()
        .filter(|s| s.alive.load(Acquire) && s.runtime.load(Relaxed) != 0)
        .filter_map(|slot| {
            let tid = slot.tid.load(Relaxed);
            (tid > 0).then_some(Target {
                tid,
                slot: Some(slot),
            })
        })
        .collect();
    for &tid in named {
        if !targets.iter().any(|t| t.tid == tid) {
            targets.push(Target { tid, slot: None });
        }
    }
    targets
}
