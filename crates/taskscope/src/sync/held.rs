//! What every instrumented acquisition records, shared by `Mutex`, `RwLock` and `Semaphore`.
//!
//! Acquiring notes the holder (task and location), the lock-order edges from the locks the task
//! already holds, and a token of the poll it happens in; releasing records the hold time and, if
//! the release happens in a later poll than the acquire, reports `lock_held_across_await`.

use std::panic::Location;
use std::sync::atomic::Ordering::*;
use std::sync::Arc;

use crate::clock;
use crate::registry::{self, Event};
use crate::stats::lock::{LockStats, Waiter};
use crate::stats::task::TaskStats;
use crate::worker;

/// The instrumented context of the calling code: the task being polled on this thread, if any.
#[derive(Clone, Copy)]
pub(crate) struct Ctx {
    pub(crate) task: u64,
    /// The current poll's start ticks: a token unique to this poll (0: not in an instrumented poll).
    pub(crate) poll: u64,
    stats: *const TaskStats,
}

impl Ctx {
    #[inline]
    pub(crate) fn current() -> Ctx {
        match worker::current_if_any() {
            Some(slot) => {
                let poll = slot.start.load(Relaxed);
                if poll == 0 {
                    return Ctx {
                        task: 0,
                        poll: 0,
                        stats: std::ptr::null(),
                    };
                }
                Ctx {
                    task: slot.task.load(Relaxed),
                    poll,
                    stats: slot.stats.load(Relaxed),
                }
            }
            None => Ctx {
                task: 0,
                poll: 0,
                stats: std::ptr::null(),
            },
        }
    }

    /// The polled task's statistics. Valid only during the poll this context was taken in.
    fn task_stats(&self) -> Option<&TaskStats> {
        // SAFETY: `stats` was published by the poll running on this thread, which holds an `Arc`
        // to them until it ends; a Ctx is only used within the call it was taken in.
        (!self.stats.is_null()).then(|| unsafe { &*self.stats })
    }
}

/// One acquisition, alive as long as the guard or permit.
#[derive(Debug)]
pub(crate) struct Held {
    stats: *const LockStats,
    acquired_at: u64,
    task: u64,
    poll: u64,
    task_stats: *const TaskStats,
    held_index: usize,
    location: &'static Location<'static>,
    exclusive: bool,
}

// SAFETY: the raw pointers are only dereferenced while the lock's owner keeps the stats alive
// (a guard borrows or owns its lock), and `task_stats` only during its own task's poll.
unsafe impl Send for Held {}
unsafe impl Sync for Held {}

/// Marks a task as waiting; dropping it (acquired, or the wait cancelled) unmarks it, so an
/// aborted waiter leaves no phantom behind.
pub(crate) struct Waiting<'a> {
    stats: &'a LockStats,
    waiter: Waiter,
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
        stats.start_waiting(waiter);
        Waiting { stats, waiter }
    }

    pub(crate) fn since(&self) -> u64 {
        self.waiter.since
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.stats.stop_waiting(&self.waiter);
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
        let now = clock::now();
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
            stats.holder.store(ctx.task, Relaxed);
            stats
                .holder_location
                .store(location as *const _ as *mut _, Relaxed);
        } else {
            stats.acquisitions.fetch_add(1, Relaxed);
            if contended {
                stats.contended.fetch_add(1, Relaxed);
            }
            stats.holders.fetch_add(1, Relaxed);
        }
        if exclusive {
            stats.wait_ns.record_exclusive(wait_ns);
        } else {
            stats.wait_ns.record(wait_ns);
        }
        let mut held_index = usize::MAX;
        if let Some(task) = ctx.task_stats() {
            held_index = note_held(task, stats, ctx.task, location);
        }
        Held {
            stats: Arc::as_ptr(stats),
            acquired_at: now,
            task: ctx.task,
            poll: ctx.poll,
            task_stats: ctx.stats,
            held_index,
            location,
            exclusive,
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
fn note_held(
    task: &TaskStats,
    stats: &LockStats,
    task_id: u64,
    location: &'static Location<'static>,
) -> usize {
    let mut free = usize::MAX;
    for (i, (id, at)) in task.held.iter().enumerate() {
        let held = id.load(Relaxed);
        if held == 0 {
            if free == usize::MAX {
                free = i;
            }
        } else if held != stats.id && !stats.knows_predecessor(held) {
            lock_edge(held, at.load(Relaxed), stats.id, location, task_id);
        }
    }
    if free != usize::MAX {
        task.held[free].0.store(stats.id, Relaxed);
        task.held[free]
            .1
            .store(location as *const Location<'static> as usize, Relaxed);
    }
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
    if let Some(shared) = registry::active() {
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
        let now = clock::now();
        let hold_ns = clock::delta_ns(self.acquired_at, now);
        let stats = self.stats();
        // Dropped before the inner guard: an exclusive holder still holds the lock here.
        if self.exclusive {
            stats.hold_ns.record_exclusive(hold_ns);
            stats.holder.store(0, Relaxed);
            stats.holder_location.store(std::ptr::null_mut(), Relaxed);
        } else {
            stats.hold_ns.record(hold_ns);
            stats.holders.fetch_sub(1, Relaxed);
        }
        if self.poll == 0 {
            return;
        }
        let ctx = Ctx::current();
        if self.held_index != usize::MAX && std::ptr::eq(ctx.stats, self.task_stats) {
            if let Some(task) = ctx.task_stats() {
                let entry = &task.held[self.held_index].0;
                if entry.load(Relaxed) == stats.id {
                    entry.store(0, Relaxed);
                }
            }
        }
        // Released in a later poll (or outside the poll it was taken in): the holder returned
        // Pending, or was dropped, while holding it.
        if ctx.poll != self.poll {
            held_across_await(stats.id, self.task, self.location, hold_ns);
        }
    }
}

#[cold]
#[inline(never)]
fn held_across_await(lock: u64, task: u64, location: &'static Location<'static>, hold_ns: u64) {
    if let Some(shared) = registry::active() {
        let _ = shared.push(Event::HeldAcrossAwait {
            lock,
            task,
            location,
            hold_ns,
        });
    }
}
