//! CPU-time timers for the profiler (Linux): each profiled thread gets a POSIX timer on its own
//! CPU clock, so samples fall where the thread spends its CPU and nowhere else. The kernel checks
//! CPU timers at its scheduler tick: a timer longer than the tick fires at the first tick after
//! it expired, which favours ticks that follow more CPU time since the last sample — the end of
//! a short burst of work over its start (a route's second function came out 3–5 points too
//! high at 99 Hz). So the timer runs at 1 ms of CPU, shorter than any tick, and fires at every
//! tick the thread is running at — each a sample of where it is, uniform over its CPU time —
//! and the handler keeps each with the probability `KEEP` that gives the asked rate (the
//! profiler thread sets it from the rate the signals come at), deciding before it walks the
//! stack, so a skipped signal costs next to nothing.
//!
//! A kept sample: the handler, on the sampled thread, walks the stack into a free entry of a
//! fixed ring and reads what the thread's worker slot shows it polling; the profiler thread
//! drains the ring. Nothing allocates or locks in the handler; a full ring drops the sample and
//! counts it.

use std::sync::atomic::{AtomicI32, AtomicU64, AtomicU8, AtomicUsize, Ordering::*};
use std::time::Duration;

use super::raw::{RawStack, SlotWords, MAX_FRAMES};

/// Samples waiting for the profiler thread at most.
pub(crate) const RING: usize = 512;
/// Threads profiled at once at most.
pub(crate) const MAX_THREADS: usize = 64;

const FREE: u8 = 0;
const WRITING: u8 = 1;
const READY: u8 = 2;

struct Entry {
    state: AtomicU8,
    pc: AtomicUsize,
    len: AtomicUsize,
    tags: [AtomicU64; 2],
    ips: [AtomicUsize; MAX_FRAMES],
}

static ENTRIES: [Entry; RING] = [const {
    Entry {
        state: AtomicU8::new(FREE),
        pc: AtomicUsize::new(0),
        len: AtomicUsize::new(0),
        tags: [const { AtomicU64::new(0) }; 2],
        ips: [const { AtomicUsize::new(0) }; MAX_FRAMES],
    }
}; RING];

/// Where the handler starts looking for a free entry.
static NEXT: AtomicUsize = AtomicUsize::new(0);
/// Samples the handler had no free entry for.
static DROPPED: AtomicU64 = AtomicU64::new(0);
/// Time the handler took on the sampled threads, in nanoseconds (what sampling costs them).
static HANDLER_NS: AtomicU64 = AtomicU64::new(0);
/// Signals the handler got (kept or not).
static SIGNALS: AtomicU64 = AtomicU64::new(0);
/// The chance a signal is kept, in 2^-32 units (`set_keep`).
static KEEP: AtomicU64 = AtomicU64::new(1 << 32);

/// The timer's period, in CPU time: shorter than any kernel tick.
pub(crate) const TIMER_PERIOD: Duration = Duration::from_millis(1);

/// Keeps each signal with probability `p` (clamped to 0..=1).
pub(crate) fn set_keep(p: f64) {
    KEEP.store((p.clamp(0.0, 1.0) * (1u64 << 32) as f64) as u64, Relaxed);
}

/// Signals the handler got since the last call.
pub(crate) fn take_signals() -> u64 {
    SIGNALS.swap(0, Relaxed)
}

/// A profiled thread: its kernel id and the addresses of the words of its worker slot the
/// handler reads (`SlotWords`: task, start, poll_sp; 0: none).
struct Watched {
    tid: AtomicI32,
    tag_at: [AtomicUsize; 3],
    /// The thread's xorshift state, for the keep-or-skip draw.
    random: AtomicU64,
}

static WATCHED: [Watched; MAX_THREADS] = [const {
    Watched {
        tid: AtomicI32::new(0),
        tag_at: [const { AtomicUsize::new(0) }; 3],
        random: AtomicU64::new(0),
    }
}; MAX_THREADS];

/// A thread's CPU timer, deleted on drop.
#[derive(Debug)]
pub(crate) struct CpuTimer {
    timer: usize,
    watched: usize,
}

// SAFETY: a timer id is a plain handle, usable from any thread of the process.
unsafe impl Send for CpuTimer {}

impl Drop for CpuTimer {
    fn drop(&mut self) {
        // SAFETY: the timer was created by `watch` and is deleted once.
        unsafe { libc::timer_delete(self.timer as libc::timer_t) };
        let w = &WATCHED[self.watched];
        for at in &w.tag_at {
            at.store(0, Relaxed);
        }
        w.tid.store(0, Release);
    }
}

/// The CPU clock of thread `tid` of this process (the kernel's `MAKE_THREAD_CPUCLOCK(tid,
/// CPUCLOCK_SCHED)`).
fn thread_cpu_clock(tid: i32) -> libc::clockid_t {
    ((!(tid as u32) << 3) | 4 | 2) as libc::clockid_t
}

/// Starts sampling thread `tid` every `period` of its CPU time with `signal`; `words` are read
/// by the handler at each sample (zeros when `None`).
pub(crate) fn watch(
    tid: i32,
    words: Option<SlotWords>,
    period: Duration,
    signal: i32,
) -> Result<CpuTimer, String> {
    let watched = WATCHED
        .iter()
        .position(|w| w.tid.compare_exchange(0, -1, AcqRel, Relaxed).is_ok())
        .ok_or("too many threads profiled")?;
    let w = &WATCHED[watched];
    let words = words.map(|w| [w.task, w.start, w.poll_sp]);
    for (at, tag) in w.tag_at.iter().zip(words.into_iter().flatten()) {
        at.store(tag as *const AtomicU64 as usize, Relaxed);
    }
    // Any odd seed will do; the thread id makes threads draw apart.
    w.random
        .store(0x9e37_79b9_7f4a_7c15 ^ (tid as u64) << 1 | 1, Relaxed);
    w.tid.store(tid, Release);
    // SAFETY: a zeroed sigevent is valid; the fields set are those SIGEV_THREAD_ID reads.
    let mut event: libc::sigevent = unsafe { std::mem::zeroed() };
    event.sigev_notify = libc::SIGEV_THREAD_ID;
    event.sigev_signo = signal;
    event.sigev_notify_thread_id = tid;
    let mut timer: libc::timer_t = std::ptr::null_mut();
    // SAFETY: valid pointers; the clock is a thread of this process.
    if unsafe { libc::timer_create(thread_cpu_clock(tid), &mut event, &mut timer) } != 0 {
        w.tid.store(0, Release);
        return Err(format!(
            "no CPU timer for thread {tid}: {}",
            std::io::Error::last_os_error()
        ));
    }
    let timer = CpuTimer {
        timer: timer as usize,
        watched,
    };
    let every = libc::timespec {
        tv_sec: period.as_secs() as libc::time_t,
        tv_nsec: period.subsec_nanos() as libc::c_long,
    };
    let spec = libc::itimerspec {
        it_interval: every,
        it_value: every,
    };
    // SAFETY: a timer just created; valid pointers.
    if unsafe { libc::timer_settime(timer.timer as libc::timer_t, 0, &spec, std::ptr::null_mut()) }
        != 0
    {
        return Err(format!(
            "cannot arm the CPU timer of thread {tid}: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(timer)
}

/// In the signal handler, on the thread a CPU timer fired for: one sample into the ring.
pub(super) fn on_timer(pc: usize, tid: i32) {
    // `clock_gettime` is async-signal-safe.
    let started = std::time::Instant::now();
    sample(pc, tid);
    HANDLER_NS.fetch_add(started.elapsed().as_nanos() as u64, Relaxed);
}

fn sample(pc: usize, tid: i32) {
    let Some(w) = WATCHED.iter().find(|w| w.tid.load(Acquire) == tid) else {
        return; // a timer being deleted
    };
    SIGNALS.fetch_add(1, Relaxed);
    // Only this thread's handler draws from its state (the signal is not re-entered: it is
    // blocked while its handler runs).
    let mut x = w.random.load(Relaxed);
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    w.random.store(x, Relaxed);
    if x >> 32 >= KEEP.load(Relaxed) {
        return;
    }
    let start = NEXT.fetch_add(1, Relaxed);
    let Some(entry) = (0..RING).map(|i| &ENTRIES[(start + i) % RING]).find(|e| {
        e.state
            .compare_exchange(FREE, WRITING, Acquire, Relaxed)
            .is_ok()
    }) else {
        DROPPED.fetch_add(1, Relaxed);
        return;
    };
    entry.pc.store(pc, Relaxed);
    let [task, start, poll_sp] = [0, 1, 2].map(|i| {
        let at = w.tag_at[i].load(Relaxed);
        // SAFETY: only addresses of `'static` atomics are stored in `tag_at`.
        if at == 0 {
            0
        } else {
            unsafe { (*(at as *const AtomicU64)).load(Relaxed) }
        }
    });
    entry.tags[0].store(task, Relaxed);
    entry.tags[1].store(start, Relaxed);
    // In a poll, the frames above the poll's are the runtime's, which the profile leaves out:
    // the walk stops past them.
    let stop_above = if start != 0 { poll_sp as usize } else { 0 };
    entry
        .len
        .store(super::imp::walk(&entry.ips, stop_above), Relaxed);
    entry.state.store(READY, Release);
}

/// The samples taken since the last call, how many were dropped for want of room, and the
/// time the handler took meanwhile (ns).
pub(crate) fn drain() -> (Vec<RawStack>, u64, u64) {
    let mut samples = Vec::new();
    for entry in &ENTRIES {
        if entry.state.load(Acquire) != READY {
            continue;
        }
        let len = entry.len.load(Relaxed).min(MAX_FRAMES);
        samples.push(RawStack {
            pc: entry.pc.load(Relaxed),
            ips: entry.ips[..len].iter().map(|ip| ip.load(Relaxed)).collect(),
            tags: [entry.tags[0].load(Relaxed), entry.tags[1].load(Relaxed)],
        });
        entry.state.store(FREE, Release);
    }
    (
        samples,
        DROPPED.swap(0, Relaxed),
        HANDLER_NS.swap(0, Relaxed),
    )
}
