//! What every instrumented lock acquisition records, shared by `Mutex` and `RwLock` (semaphore
//! permits only count, see `count_shared`).
//!
//! Acquiring notes the holder (task and location), the lock-order edges from the locks the task
//! already holds, and a token of the poll it happens in; releasing records the hold time and, if
//! the release happens in a later poll than the acquire, reports `lock_held_across_await`.
//!
//! Hold times cost two clock reads, as much as tokio's whole uncontended lock+unlock, so one
//! acquisition in `HOLD_SAMPLE` per thread is timed and recorded with weight `HOLD_SAMPLE`
//! (an unbiased estimate of the distribution); every hold that spans an `.await` — the long ones
//! that matter — is recorded too, timed from the start of the poll that acquired it. Counts of
//! acquisitions and contended acquisitions, and every wait, are exact.

use std::panic::Location;
use std::sync::atomic::{AtomicU8, Ordering::*};
use std::sync::Arc;

use crate::base::clock;
use crate::state::shared::{self, Event, StaleUpdate};
use crate::state::worker;
use crate::stats::lock::{LockStats, Waiter};
use crate::stats::task::{TaskStats, HELD_LOCKS};

/// The instrumented context of the calling code: the task being polled on this thread, if any.
#[derive(Clone, Copy)]
pub(crate) struct Ctx {
    slot: Option<&'static crate::state::worker::WorkerSlot>,
    pub(crate) task: u64,
    /// The current poll's start ticks: a token unique to this poll (0: not in an instrumented poll).
    pub(crate) poll: u64,
    stats: *const TaskStats,
}

impl Ctx {
    #[inline]
    pub(crate) fn current() -> Ctx {
        let Some(slot) = worker::current_if_any() else {
            return Ctx {
                slot: None,
                task: 0,
                poll: 0,
                stats: std::ptr::null(),
            };
        };
        let poll = slot.start.load(Relaxed);
        if poll == 0 {
            return Ctx {
                slot: Some(slot),
                task: 0,
                poll: 0,
                stats: std::ptr::null(),
            };
        }
        Ctx {
            slot: Some(slot),
            task: slot.task.load(Relaxed),
            poll,
            stats: slot.stats.load(Relaxed),
        }
    }

    /// Whether to time this acquisition's hold: one in `HOLD_SAMPLE` on this thread, drawn by a
    /// per-thread xorshift generator (a plain counter would alias with code that alternates
    /// between locks); always on threads that never polled an instrumented task.
    #[inline]
    fn sample_hold(&self) -> bool {
        match self.slot {
            Some(slot) => {
                let mut x = slot.lock_ops.load(Relaxed) | 1;
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                slot.lock_ops.store(x, Relaxed);
                x % HOLD_SAMPLE == 0
            }
            None => true,
        }
    }

    /// The polled task's statistics. Valid only during the poll this context was taken in.
    fn task_stats(&self) -> Option<&TaskStats> {
        // SAFETY: `stats` was published by the poll running on this thread, which holds an `Arc`
        // to them until it ends; a Ctx is only used within the call it was taken in.
        (!self.stats.is_null()).then(|| unsafe { &*self.stats })
    }
}

/// Counts an acquisition of a shared primitive (a semaphore's permits), recording its wait when
/// it had to wait.
#[inline]
pub(crate) fn count_shared(stats: &LockStats, wait_ns: u64, contended: bool) {
    stats.acquisitions.fetch_add(1, Relaxed);
    if contended {
        stats.contended.fetch_add(1, Relaxed);
        stats.wait_ns.record(wait_ns);
    }
}

/// One hold in this many is timed (per thread).
pub(crate) const HOLD_SAMPLE: u32 = 8;

/// One acquisition, alive as long as the guard or permit.
#[derive(Debug)]
pub(crate) struct Held {
    stats: *const LockStats,
    /// Clock ticks at acquisition, or 0 when this hold is not sampled.
    acquired_at: u64,
    /// How many holds a timed one stands for.
    weight: u64,
    task: u64,
    poll: u64,
    task_stats: *const TaskStats,
    held_index: usize,
    location: &'static Location<'static>,
    exclusive: bool,
    /// How the guard was used: `READ`, `WROTE`, `WROTE_FIRST` bits (see `note_read`).
    access: AtomicU8,
}

/// `Held::access` bits: the value was read, written, and written before any read.
const READ: u8 = 1;
const WROTE: u8 = 2;
const WROTE_FIRST: u8 = 4;

// SAFETY: the raw pointers are only dereferenced while the lock's owner keeps the stats alive
// (a guard borrows or owns its lock), and `task_stats` only during its own task's poll.
unsafe impl Send for Held {}
unsafe impl Sync for Held {}

/// Marks a task as waiting; dropping it (acquired, or the wait cancelled) unmarks it, so an
/// aborted waiter leaves no phantom behind.
pub(crate) struct Waiting<'a> {
    stats: &'a LockStats,
    since: u64,
    slot: Option<usize>,
}

impl<'a> Waiting<'a> {
    pub(crate) fn start(
        stats: &'a LockStats,
        ctx: &Ctx,
        location: &'static Location<'static>,
    ) -> Self {
        let waiter = Waiter {
            task: ctx.task,
            since: clock::now(),
            location,
        };
        let (slot, first) = stats.start_waiting(waiter);
        if first {
            // After the count went up: see `Shared::waited_locks` and `graph::scan`.
            if let Some(shared) = crate::state::shared::active() {
                shared
                    .waited_locks
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(stats.id);
            }
        }
        Waiting {
            stats,
            since: waiter.since,
            slot,
        }
    }

    pub(crate) fn since(&self) -> u64 {
        self.since
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.stats.stop_waiting(self.slot);
    }
}

impl Held {
    /// Records an acquisition that waited `wait_ns` (0: acquired at once).
    #[inline]
    pub(crate) fn acquire(
        stats: &Arc<LockStats>,
        ctx: Ctx,
        location: &'static Location<'static>,
        wait_ns: u64,
        contended: bool,
        exclusive: bool,
    ) -> Held {
        // Sampled holds only, contended or not: the bookkeeping runs inside the critical section,
        // where every nanosecond is paid again by each waiter.
        let acquired_at = if ctx.sample_hold() { clock::now() } else { 0 };
        let weight = u64::from(HOLD_SAMPLE);
        if exclusive {
            // The only holder: plain stores.
            stats
                .acquisitions
                .store(stats.acquisitions.load(Relaxed) + 1, Relaxed);
            if contended {
                stats
                    .contended
                    .store(stats.contended.load(Relaxed) + 1, Relaxed);
            }
            stats.owner.holder.store(ctx.task, Relaxed);
            stats
                .owner
                .holder_location
                .store(location as *const _ as *mut _, Relaxed);
        } else {
            stats.acquisitions.fetch_add(1, Relaxed);
            if contended {
                stats.contended.fetch_add(1, Relaxed);
            }
        }
        // Uncontended waits are zeros, counted from `acquisitions - contended` when read.
        if contended {
            if exclusive {
                stats.wait_ns.record_exclusive_n(wait_ns, 1);
            } else {
                stats.wait_ns.record(wait_ns);
            }
        }
        // (Semaphores never get here: their permits are held across `.await`s by design and
        // stay out of the lock-order graph and the held-across check; see `count_shared`.)
        let mut held_index = usize::MAX;
        if let Some(task) = ctx.task_stats() {
            held_index = note_held(task, stats, ctx.task, location);
        }
        Held {
            stats: Arc::as_ptr(stats),
            acquired_at,
            weight,
            task: ctx.task,
            poll: ctx.poll,
            task_stats: ctx.stats,
            held_index,
            location,
            exclusive,
            access: AtomicU8::new(0),
        }
    }

    /// Notes a read of the value through the guard (`Deref`). Only the first access matters, so
    /// later ones cost a load; the guard may be shared between threads, and a lost note between
    /// two concurrent first reads only loses a `READ` that the other one sets.
    ///
    /// Guards note only plain values — those that own nothing to drop: numbers, flags, structs,
    /// tuples and arrays of them. A write to a map, vector or string usually changes one entry
    /// of many (`insert`, `push`, `entry().or_insert()`), and which one cannot be seen from the
    /// guard: judging them would report every cache that checks, fetches and inserts while
    /// other tasks insert other keys.
    #[inline(always)]
    pub(crate) fn note_read(&self) {
        if self.access.load(Relaxed) == 0 {
            self.access.store(READ, Relaxed);
        }
    }

    /// Notes a write through the guard (`DerefMut`, which takes the guard exclusively).
    #[inline(always)]
    pub(crate) fn note_write(&self) {
        let access = self.access.load(Relaxed);
        if access & WROTE == 0 {
            let first = if access == 0 { WROTE_FIRST } else { 0 };
            self.access.store(access | WROTE | first, Relaxed);
        }
    }

    /// Where the lock was acquired.
    pub(crate) fn location(&self) -> &'static Location<'static> {
        self.location
    }

    fn stats(&self) -> &LockStats {
        // SAFETY: see `unsafe impl Send for Held`.
        unsafe { &*self.stats }
    }
}

/// Adds the lock to the task's held set and reports lock-order edges the lock has not seen.
#[inline]
fn note_held(
    task: &TaskStats,
    stats: &LockStats,
    task_id: u64,
    location: &'static Location<'static>,
) -> usize {
    let mask = task.locks.held_mask.load(Relaxed);
    let mut others = mask;
    while others != 0 {
        let i = others.trailing_zeros() as usize;
        others &= others - 1;
        let (id, at) = &task.locks.held[i];
        let held = id.load(Relaxed);
        if held != 0 && held != stats.id && !stats.knows_predecessor(held) {
            lock_edge(held, at.load(Relaxed), stats.id, location, task_id);
        }
    }
    let free = mask.trailing_ones() as usize;
    if free >= HELD_LOCKS {
        return usize::MAX;
    }
    task.locks.held[free]
        .1
        .store(location as *const Location<'static> as usize, Relaxed);
    task.locks.held[free].0.store(stats.id, Relaxed);
    task.locks.held_mask.store(mask | 1 << free, Relaxed);
    free
}

#[cold]
#[inline(never)]
fn lock_edge(
    from: u64,
    from_location: usize,
    to: u64,
    to_location: &'static Location<'static>,
    task: u64,
) {
    if let Some(shared) = shared::active() {
        // SAFETY: held-set locations are `&'static Location`s stored as addresses.
        let from_location = unsafe { &*(from_location as *const Location<'static>) };
        let _ = shared.push(Event::LockEdge {
            from,
            from_location,
            to,
            to_location,
            task,
        });
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let stats = self.stats();
        let ctx = if self.poll != 0 {
            Some(Ctx::current())
        } else {
            None
        };
        let across_await = ctx.is_some_and(|ctx| ctx.poll != self.poll);
        // Timed: sampled (or contended) holds, and every hold across an `.await`, from the start
        // of the poll that acquired it when it was not sampled (if that poll was timed: an
        // untimed one has a marker, not a start, in its worker slot).
        let (hold_ns, weight) = if self.acquired_at != 0 {
            (
                Some(clock::delta_ns(self.acquired_at, clock::now())),
                self.weight,
            )
        } else if across_await && !worker::is_marker(self.poll) {
            (Some(clock::delta_ns(self.poll, clock::now())), 1)
        } else {
            (None, 0)
        };
        // Dropped before the inner guard: an exclusive holder still holds the lock here.
        if self.exclusive {
            if let Some(hold) = hold_ns {
                stats.hold_ns.record_exclusive_n(hold, weight);
            }
            stats.owner.holder.store(0, Relaxed);
            stats
                .owner
                .holder_location
                .store(std::ptr::null_mut(), Relaxed);
        } else if let Some(hold) = hold_ns {
            stats.hold_ns.record_n(hold, weight);
        }
        let access = self.access.load(Relaxed);
        let task = match &ctx {
            Some(ctx) if std::ptr::eq(ctx.stats, self.task_stats) => ctx.task_stats(),
            _ => None,
        };
        if let Some(task) = task {
            if self.held_index != usize::MAX {
                let entry = &task.locks.held[self.held_index].0;
                if entry.load(Relaxed) == stats.id {
                    entry.store(0, Relaxed);
                    let mask = task.locks.held_mask.load(Relaxed);
                    task.locks
                        .held_mask
                        .store(mask & !(1 << self.held_index), Relaxed);
                }
            }
            if access != 0 {
                // `ctx` is the poll releasing the hold (`task` is only `Some` with it).
                let release_poll = ctx.map_or(0, |ctx| ctx.poll);
                self.note_access(task, stats, access, release_poll);
            }
        }
        if access & WROTE != 0 {
            // The only holder (only exclusive guards write): plain stores.
            stats
                .owner
                .writes
                .store(stats.owner.writes.load(Relaxed) + 1, Relaxed);
            stats.owner.last_writer.store(self.task, Relaxed);
            stats
                .owner
                .last_write_location
                .store(self.location as *const _ as *mut _, Relaxed);
        }
        // Released in a later poll (or outside the poll it was taken in): the holder returned
        // Pending, or was dropped, while holding it.
        if across_await {
            held_across_await(stats.id, self.task, self.location, hold_ns.unwrap_or(0));
        }
    }
}

impl Held {
    /// What the hold's task remembers of its reads for `stale_update`: a read-only hold becomes
    /// its last read (released in `release_poll`); a write of the lock its last read was of
    /// forgets it — after reporting it, if the hold wrote before reading and another writer
    /// wrote in between (noting whether the task awaited in between: the hold began in a later
    /// poll than the read ended).
    #[inline]
    fn note_access(&self, task: &TaskStats, stats: &LockStats, access: u8, release_poll: u64) {
        let last = &task.locks.last_read;
        if access & WROTE == 0 {
            // SAFETY: the guard holding this hold is still alive (it is being dropped).
            let versioned = unsafe { stats.versioned() };
            last.set(
                versioned.id,
                self.location as *const Location<'static> as usize,
                versioned.owner.writes.load(Relaxed),
                release_poll,
            );
        } else if last.lock.load(Relaxed) == stats.id {
            if access & WROTE_FIRST != 0
                && last.writes.load(Relaxed) < stats.owner.writes.load(Relaxed)
                // (Its own write, released elsewhere — a guard sent to another task — is not
                // another writer's.)
                && stats.owner.last_writer.load(Relaxed) != self.task
            {
                let awaited = last.poll.load(Relaxed) != self.poll;
                let read_at = last.location.load(Relaxed);
                stale_update(stats, self.task, read_at, self.location, awaited);
            }
            last.lock.store(0, Relaxed);
        }
    }
}

#[cold]
#[inline(never)]
fn stale_update(
    stats: &LockStats,
    task: u64,
    read_at: usize,
    write_at: &'static Location<'static>,
    awaited: bool,
) {
    if let Some(shared) = shared::active() {
        let other_at = stats.owner.last_write_location.load(Relaxed);
        // SAFETY: both are `&'static Location`s stored as addresses (null: none).
        let (read_at, other_at) = unsafe {
            (
                &*(read_at as *const Location<'static>),
                (!other_at.is_null()).then(|| &*other_at),
            )
        };
        let _ = shared.push(Event::StaleUpdate(Box::new(StaleUpdate {
            lock: stats.id,
            task,
            read_at,
            write_at,
            other: stats.owner.last_writer.load(Relaxed),
            other_at,
            awaited,
        })));
    }
}

#[cold]
#[inline(never)]
fn held_across_await(lock: u64, task: u64, location: &'static Location<'static>, hold_ns: u64) {
    if let Some(shared) = shared::active() {
        let _ = shared.push(Event::HeldAcrossAwait {
            lock,
            task,
            location,
            hold_ns,
        });
    }
}
