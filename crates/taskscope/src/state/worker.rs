//! Per-thread slots: each poll publishes (task, start) in its thread's slot, so the watchdog can see
//! a poll that is running too long *while it runs*, from its own OS thread.
//!
//! A thread finds its slot through a const-initialised thread local holding a raw pointer: one
//! `fs:`-relative load on Linux, no lazy-init check, no destructor on the hot path. Slots are never
//! freed; a slot whose thread exited goes back to a free list and is reused by the next new
//! thread, so their number is bounded by the peak number of threads, not by thread churn.

use std::cell::{Cell, RefCell};
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicPtr, AtomicU32, AtomicU64, Ordering::*};
use std::sync::{Arc, Mutex};

use crate::stats::task::TaskStats;

/// One thread's view for the watchdog.
#[derive(Debug)]
#[repr(align(128))]
pub(crate) struct WorkerSlot {
    pub(crate) index: u64,
    /// Task being polled; meaningful only while `start != 0`.
    pub(crate) task: AtomicU64,
    /// Clock ticks when the current poll started (odd: `clock::now` sets the low bit), or the
    /// marker of an untimed poll (even, unique per slot: `next_marker`), or 0: not polling.
    pub(crate) start: AtomicU64,
    /// This thread's last clock reading in a poll: how a poll knows, without reading the
    /// clock, whether its task is due a timed poll (`task::instrumented`). At most
    /// `UNTIMED_RUN` polls old while the thread is busy.
    pub(crate) tick: AtomicU64,
    /// Untimed polls this thread may still run before it times one to refresh `tick`.
    pub(crate) untimed_left: AtomicU32,
    /// The marker of this thread's last untimed poll.
    pub(crate) marker: AtomicU64,
    /// Written by the watchdog: the marker of an untimed poll it found blocked, which then
    /// times its end (`watchdog::scan`).
    pub(crate) long_marker: AtomicU64,
    /// Written by the watchdog before `long_marker`: the start it gave that poll.
    pub(crate) long_start: AtomicU64,
    /// The polled task's statistics, valid while `start != 0` (the poll holds an `Arc` to them).
    pub(crate) stats: AtomicPtr<TaskStats>,
    /// The stack pointer of the innermost instrumented poll's frame, meaningful while `start !=
    /// 0` (0: unknown): the profiler's stack walk stops past it, as the frames above it are
    /// the runtime's and the profile leaves them out.
    pub(crate) poll_sp: AtomicU64,
    /// Counts lock acquisitions on this thread, to time one in `HOLD_SAMPLE` holds.
    pub(crate) lock_ops: AtomicU32,
    /// Lock attempts left on this thread before one spends cooperative budget (`sync`).
    pub(crate) coop_left: AtomicU32,
    /// Set by a task's waker when the task wakes itself during its own poll on this thread.
    pub(crate) self_woken: AtomicBool,
    /// Whether a thread owns this slot now.
    pub(crate) alive: AtomicBool,
    /// The owning thread's kernel id, for stack sampling (0: unknown).
    pub(crate) tid: AtomicI32,
    /// The tokio runtime of the thread (0: none).
    pub(crate) runtime: AtomicU64,
    pub(crate) thread_name: Mutex<String>,
    /// The innermost `tracing` span entered on this thread (set by `taskscope::layer()`).
    pub(crate) span: Mutex<Option<Arc<str>>>,
}

/// Untimed polls a thread runs at most between two timed ones.
pub(crate) const UNTIMED_RUN: u32 = 64;

/// Where a slot's index sits in its untimed-poll markers (below: a per-slot count, times two).
const MARKER_INDEX_SHIFT: u32 = 44;

/// Whether a slot's `start` is an untimed poll's marker rather than clock ticks.
#[inline(always)]
pub(crate) fn is_marker(start: u64) -> bool {
    start != 0 && start & 1 == 0
}

/// What a poll found in its thread's slot: a poll inside another instrumented poll (a
/// `block_on` in a task) saves the outer one's and puts it back when it ends.
pub(crate) struct OuterPoll {
    start: u64,
    task: Option<(u64, *mut TaskStats, u64)>,
}

/// The stack pointer here (0 where it is not read).
#[inline(always)]
fn stack_pointer() -> u64 {
    let sp: u64;
    #[cfg(target_arch = "x86_64")]
    // SAFETY: copies the stack pointer register into another; reads and writes no memory.
    unsafe {
        std::arch::asm!("mov {}, rsp", out(reg) sp, options(nomem, nostack, preserves_flags));
    }
    #[cfg(target_arch = "aarch64")]
    // SAFETY: as above.
    unsafe {
        std::arch::asm!("mov {}, sp", out(reg) sp, options(nomem, nostack, preserves_flags));
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        sp = 0;
    }
    sp
}

impl WorkerSlot {
    /// Shows a poll of `task` (whose statistics are `stats`) starting at `start` (clock ticks,
    /// or an untimed poll's marker). Owner only.
    #[inline(always)]
    pub(crate) fn enter_poll(&self, task: u64, stats: &TaskStats, start: u64) -> OuterPoll {
        let outer_start = self.start.load(Relaxed);
        let outer = OuterPoll {
            start: outer_start,
            task: (outer_start != 0).then(|| {
                (
                    self.task.load(Relaxed),
                    self.stats.load(Relaxed),
                    self.poll_sp.load(Relaxed),
                )
            }),
        };
        self.task.store(task, Relaxed);
        self.poll_sp.store(stack_pointer(), Relaxed);
        self.stats
            .store(stats as *const TaskStats as *mut TaskStats, Relaxed);
        self.start.store(start, Release);
        outer
    }

    /// Shows the poll over: the outer poll again, if any. Owner only.
    #[inline(always)]
    pub(crate) fn leave_poll(&self, outer: OuterPoll) {
        // `task`, `stats` and `poll_sp` mean nothing while `start` is 0: only an outer poll puts
        // them back.
        if let Some((task, stats, sp)) = outer.task {
            self.task.store(task, Relaxed);
            self.stats.store(stats, Relaxed);
            self.poll_sp.store(sp, Relaxed);
        }
        self.start.store(outer.start, Release);
    }

    /// Whether the poll that just ended woke its own task (then counted in `stats`). Owner only.
    #[inline(always)]
    pub(crate) fn take_self_wake(&self, stats: &TaskStats) -> bool {
        let woken = self.self_woken.load(Relaxed);
        if woken {
            self.self_woken.store(false, Relaxed);
            stats
                .self_wakes
                .store(stats.self_wakes.load(Relaxed) + 1, Relaxed);
        }
        woken
    }

    /// A fresh marker for an untimed poll on this slot's thread (owner only).
    #[inline(always)]
    pub(crate) fn next_marker(&self) -> u64 {
        let marker = self.marker.load(Relaxed) + 2;
        self.marker.store(marker, Relaxed);
        marker
    }
}

static SLOTS: Mutex<Vec<&'static WorkerSlot>> = Mutex::new(Vec::new());

thread_local! {
    static CURRENT: Cell<*const WorkerSlot> = const { Cell::new(ptr::null()) };
    static OWNER: RefCell<Option<SlotOwner>> = const { RefCell::new(None) };
}

/// Gives the slot back when its thread exits.
struct SlotOwner(&'static WorkerSlot);

impl Drop for SlotOwner {
    fn drop(&mut self) {
        let _ = CURRENT.try_with(|c| c.set(ptr::null()));
        self.0.task.store(0, Relaxed);
        self.0.start.store(0, Release);
        if let Ok(mut span) = self.0.span.lock() {
            *span = None;
        }
        self.0.alive.store(false, Release);
    }
}

/// This thread's slot, created on first use.
#[inline(always)]
pub(crate) fn current() -> &'static WorkerSlot {
    let slot = CURRENT.with(|c| c.get());
    if slot.is_null() {
        return register();
    }
    // SAFETY: slots are leaked (`&'static`) and never freed.
    unsafe { &*slot }
}

/// This thread's slot if it has one (for wakers, which must not create slots on foreign threads).
#[inline(always)]
pub(crate) fn current_if_any() -> Option<&'static WorkerSlot> {
    let slot = CURRENT.try_with(|c| c.get()).unwrap_or(ptr::null());
    // SAFETY: as in `current`.
    (!slot.is_null()).then(|| unsafe { &*slot })
}

#[cold]
#[inline(never)]
fn register() -> &'static WorkerSlot {
    let mut slots = SLOTS.lock().unwrap_or_else(|e| e.into_inner());
    let slot = match slots.iter().find(|s| !s.alive.load(Acquire)) {
        Some(free) => *free,
        None => {
            let slot: &'static WorkerSlot = Box::leak(Box::new(WorkerSlot {
                index: slots.len() as u64,
                task: AtomicU64::new(0),
                start: AtomicU64::new(0),
                tick: AtomicU64::new(0),
                untimed_left: AtomicU32::new(0),
                // Markers of different slots never meet: the slot index is in the high bits.
                marker: AtomicU64::new((slots.len() as u64) << MARKER_INDEX_SHIFT),
                long_marker: AtomicU64::new(0),
                long_start: AtomicU64::new(0),
                stats: AtomicPtr::new(ptr::null_mut()),
                poll_sp: AtomicU64::new(0),
                lock_ops: AtomicU32::new(0),
                coop_left: AtomicU32::new(0),
                self_woken: AtomicBool::new(false),
                alive: AtomicBool::new(false),
                tid: AtomicI32::new(0),
                runtime: AtomicU64::new(0),
                thread_name: Mutex::new(String::new()),
                span: Mutex::new(None),
            }));
            slots.push(slot);
            slot
        }
    };
    slot.tid.store(crate::stacks::current_tid(), Relaxed);
    slot.alive.store(true, Release);
    drop(slots);
    let thread = std::thread::current();
    *slot.thread_name.lock().unwrap_or_else(|e| e.into_inner()) = thread
        .name()
        .map_or_else(|| format!("{:?}", thread.id()), str::to_owned);
    slot.runtime.store(
        crate::state::probe::current_runtime_id().unwrap_or(0),
        Relaxed,
    );
    // If the thread is already tearing down its locals, keep the slot (it stays alive): rare,
    // and still correct, just not reused.
    let _ = OWNER.try_with(|o| *o.borrow_mut() = Some(SlotOwner(slot)));
    CURRENT.with(|c| c.set(slot));
    slot
}

/// Every slot ever created (alive or free).
pub(crate) fn all() -> Vec<&'static WorkerSlot> {
    SLOTS.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// The id of the task being polled on this thread (0: none), used as the parent of spawned tasks.
#[inline]
pub(crate) fn current_task() -> u64 {
    // `task` is stale once the poll ended (`start` back to 0).
    current_if_any()
        .filter(|s| s.start.load(Relaxed) != 0)
        .map_or(0, |s| s.task.load(Relaxed))
}

#[cfg(tokio_unstable)]
thread_local! {
    /// Set while this thread spawns a task the tokio hooks must skip (`task::hooks`).
    static SPAWNING_UNHOOKED: Cell<bool> = const { Cell::new(false) };
}

/// Runs `spawn`, telling taskscope's tokio hooks (`--cfg tokio_unstable`) to skip the task it
/// spawns: an instrumented task (timed by its wrapper) or one of taskscope's own.
#[inline(always)]
pub(crate) fn spawn_unhooked<R>(spawn: impl FnOnce() -> R) -> R {
    #[cfg(tokio_unstable)]
    {
        let before = SPAWNING_UNHOOKED.with(|s| s.replace(true));
        let spawned = spawn();
        SPAWNING_UNHOOKED.with(|s| s.set(before));
        spawned
    }
    #[cfg(not(tokio_unstable))]
    spawn()
}

/// Whether this thread is inside [`spawn_unhooked`].
#[cfg(tokio_unstable)]
pub(crate) fn spawning_unhooked() -> bool {
    SPAWNING_UNHOOKED.with(|s| s.get())
}
