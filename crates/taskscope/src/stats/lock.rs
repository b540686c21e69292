//! Per-lock and per-semaphore statistics, shared by the wrapper (writer) and the collector and
//! watchdog (readers).
//!
//! Whatever is recorded while a `Mutex` or an `RwLock` write lock is held is recorded by its only
//! holder, so those paths use plain loads and stores; shared holders (read locks, semaphore
//! permits) use atomic read-modify-writes.
//!
//! Waits are recorded only when an acquisition had to wait: the uncontended ones are zeros,
//! added back from `acquisitions - contended` when read.

use std::borrow::Cow;
use std::panic::Location;
use std::sync::atomic::{AtomicPtr, AtomicU64, AtomicUsize, Ordering::*};
use std::sync::Arc;

use super::histogram::AtomicHistogram;
pub(crate) use super::waiters::Waiter;
use super::waiters::WaiterTable;

/// What kind of primitive a [`LockStats`] describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum LockKind {
    Mutex,
    RwLockRead,
    RwLockWrite,
    Semaphore,
}

impl LockKind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            LockKind::Mutex => "mutex",
            LockKind::RwLockRead => "rwlock_read",
            LockKind::RwLockWrite => "rwlock_write",
            LockKind::Semaphore => "semaphore",
        }
    }
}

/// What an exclusive holder writes at acquire and release, on one cache line, which its core
/// owns for the critical section.
#[derive(Debug, Default)]
#[repr(C, align(64))]
pub(crate) struct Owner {
    /// Exclusive holder's task id (0: none or not an instrumented task).
    pub(crate) holder: AtomicU64,
    /// Exclusive holder's acquire location (null: none).
    pub(crate) holder_location: AtomicPtr<Location<'static>>,
    /// Exclusive holds that wrote through their guard (`DerefMut`), counted by their only
    /// holder; with the last of them: its task (0: not an instrumented task) and acquire location.
    pub(crate) writes: AtomicU64,
    pub(crate) last_writer: AtomicU64,
    pub(crate) last_write_location: AtomicPtr<Location<'static>>,
}

#[derive(Debug)]
pub(crate) struct LockStats {
    pub(crate) id: u64,
    pub(crate) name: Cow<'static, str>,
    pub(crate) location: &'static Location<'static>,
    pub(crate) kind: LockKind,
    pub(crate) acquisitions: AtomicU64,
    pub(crate) contended: AtomicU64,
    pub(crate) wait_ns: AtomicHistogram,
    pub(crate) hold_ns: AtomicHistogram,
    /// The exclusive holder and the last writer.
    pub(crate) owner: Owner,
    /// Semaphores: permits available, as last seen by an acquire or release.
    pub(crate) available: AtomicU64,
    /// Who waits now (lock-free; waits beyond the table are counted but not listed).
    waiters: WaiterTable,
    pub(crate) waiting: AtomicU64,
    pub(crate) max_waiters: AtomicU64,
    /// Locks held while acquiring this one, already reported to the lock-order graph.
    predecessors: [AtomicU64; 4],
    next_predecessor: AtomicUsize,
    /// For an RwLock side, the id of the other side's statistics (0: none).
    pub(crate) partner: AtomicU64,
    /// For an RwLock's read side, its write side, which counts the lock's writes (null: none).
    /// Set once when the lock is made; only dereferenced through a guard of the lock, which
    /// keeps both sides alive.
    write_side: AtomicPtr<LockStats>,
    // Semaphores.
    pub(crate) permits: AtomicU64,
    pub(crate) saturated_since: AtomicU64,
    pub(crate) saturated_ns: AtomicU64,
}

impl LockStats {
    pub(crate) fn new(
        id: u64,
        name: Cow<'static, str>,
        location: &'static Location<'static>,
        kind: LockKind,
    ) -> Self {
        LockStats {
            id,
            name,
            location,
            kind,
            acquisitions: AtomicU64::new(0),
            contended: AtomicU64::new(0),
            wait_ns: AtomicHistogram::default(),
            hold_ns: AtomicHistogram::default(),
            owner: Owner::default(),
            available: AtomicU64::new(0),
            waiters: WaiterTable::new(),
            waiting: AtomicU64::new(0),
            max_waiters: AtomicU64::new(0),
            predecessors: [const { AtomicU64::new(0) }; 4],
            next_predecessor: AtomicUsize::new(0),
            partner: AtomicU64::new(0),
            write_side: AtomicPtr::new(std::ptr::null_mut()),
            permits: AtomicU64::new(0),
            saturated_since: AtomicU64::new(0),
            saturated_ns: AtomicU64::new(0),
        }
    }

    /// The name shown in views: the given name or the creation location.
    pub(crate) fn display_name(&self) -> String {
        if self.name.is_empty() {
            crate::base::location::format_location(self.location)
        } else {
            self.name.to_string()
        }
    }

    /// Whether the edge `previous → self` was already reported; remembers it if not (lock-free
    /// and small: forgetting an edge only costs one more cold-path report).
    pub(crate) fn knows_predecessor(&self, previous: u64) -> bool {
        if self
            .predecessors
            .iter()
            .any(|s| s.load(Relaxed) == previous)
        {
            return true;
        }
        let i = self.next_predecessor.fetch_add(1, Relaxed) % self.predecessors.len();
        self.predecessors[i].store(previous, Relaxed);
        false
    }

    /// Lists a waiter and counts it; returns its table slot, if one was free, and whether it is
    /// the only waiter now.
    pub(crate) fn start_waiting(&self, waiter: Waiter) -> (Option<usize>, bool) {
        let n = self.waiting.fetch_add(1, Relaxed) + 1;
        if n > self.max_waiters.load(Relaxed) {
            self.max_waiters.fetch_max(n, Relaxed);
        }
        (self.waiters.insert(waiter), n == 1)
    }

    /// Unlists a waiter (acquired, or its wait was cancelled).
    pub(crate) fn stop_waiting(&self, index: Option<usize>) {
        if let Some(index) = index {
            self.waiters.remove(index);
        }
        self.waiting.fetch_sub(1, Relaxed);
    }

    /// Pairs an RwLock's read side (`self`) with its write side.
    pub(crate) fn set_write_side(&self, write: &Arc<LockStats>) {
        self.partner.store(write.id, Relaxed);
        write.partner.store(self.id, Relaxed);
        self.write_side
            .store(Arc::as_ptr(write) as *mut LockStats, Relaxed);
    }

    /// The statistics that count this lock's writes: its own, or an RwLock read side's write side.
    ///
    /// # Safety
    ///
    /// Only while a guard of the lock is alive (see `write_side`).
    pub(crate) unsafe fn versioned(&self) -> &LockStats {
        let write = self.write_side.load(Relaxed);
        if write.is_null() {
            self
        } else {
            // SAFETY: the caller holds a guard, so the lock and both its sides are alive.
            unsafe { &*write }
        }
    }

    /// The listed waiters now.
    pub(crate) fn waiters(&self) -> Vec<Waiter> {
        self.waiters.list()
    }
}

impl LockStats {
    /// The wait histogram with the uncontended (zero) waits added back.
    pub(crate) fn wait_histogram(&self) -> taskscope_wire::Histogram {
        let mut h = self.wait_ns.to_wire();
        let zeros = self
            .acquisitions
            .load(Relaxed)
            .saturating_sub(self.contended.load(Relaxed));
        h.record_n(0, zeros);
        h
    }

    /// Semaphores: the time no permit was free so far, the period going on at `now` (clock
    /// ticks) included.
    pub(crate) fn saturated_ns_at(&self, now: u64) -> u64 {
        let ongoing = match self.saturated_since.load(Relaxed) {
            0 => 0,
            since => crate::base::clock::delta_ns(since, now),
        };
        self.saturated_ns.load(Relaxed) + ongoing
    }
}
