//! What a task's own polls note about the locks it takes: the locks it holds now (for the
//! lock-order graph and the watchdog) and its last read-only hold (for `stale_update`). Written
//! by the task's polls only, with plain loads and stores.

use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering::Relaxed};

/// How many locks held at once a task tracks for the lock-order graph; deeper nesting is rare
/// and only loses edges, never correctness of the locks.
pub(crate) const HELD_LOCKS: usize = 8;
const _: () = assert!(HELD_LOCKS <= 8, "held_mask is a u8");

/// A task's locks: the mask and the last read first, next to the first entries, which a
/// lock+unlock touches.
#[derive(Debug)]
#[repr(C)]
pub(crate) struct TaskLocks {
    /// Which entries of `held` are in use (bit i: entry i), so that taking a lock while holding
    /// none reads one byte instead of scanning every entry.
    pub(crate) held_mask: AtomicU8,
    /// The last hold that only read a lock's value.
    pub(crate) last_read: LastRead,
    /// Locks this task holds now: (lock id, acquire location address). Read by the watchdog to
    /// name the locks a blocked task holds.
    pub(crate) held: [(AtomicU64, AtomicUsize); HELD_LOCKS],
}

/// A task's last read-only hold of a lock, released and not yet followed by a write of the same
/// lock by the task: which lock (its write side for an `RwLock`; 0: none), where it was
/// acquired, the lock's write count then, and the poll that released it.
#[derive(Debug, Default)]
#[repr(C)]
pub(crate) struct LastRead {
    pub(crate) lock: AtomicU64,
    pub(crate) location: AtomicUsize,
    pub(crate) writes: AtomicU64,
    pub(crate) poll: AtomicU64,
}

impl LastRead {
    /// Remembers a read-only hold of `lock` released in `poll`.
    #[inline]
    pub(crate) fn set(&self, lock: u64, location: usize, writes: u64, poll: u64) {
        self.lock.store(lock, Relaxed);
        self.location.store(location, Relaxed);
        self.writes.store(writes, Relaxed);
        self.poll.store(poll, Relaxed);
    }
}

impl TaskLocks {
    pub(crate) fn new() -> Self {
        TaskLocks {
            held_mask: AtomicU8::new(0),
            last_read: LastRead::default(),
            held: [const { (AtomicU64::new(0), AtomicUsize::new(0)) }; HELD_LOCKS],
        }
    }

    /// As `new`, in place (statistics reused for a new task).
    pub(crate) fn reset(&mut self) {
        // Every field, by name: a field added later must be reset here too.
        let TaskLocks {
            held,
            held_mask,
            last_read,
        } = self;
        for (lock, at) in held.iter_mut() {
            *lock.get_mut() = 0;
            *at.get_mut() = 0;
        }
        *held_mask.get_mut() = 0;
        *last_read = LastRead::default();
    }
}
