//! Who waits for a lock: a small lock-free table of waiters, read by the watchdog for the
//! wait-for graph and `long_wait`.
//!
//! Each slot is a seqlock: a sequence number that is odd while the slot is being written. A writer
//! claims a free slot by moving its sequence from even to odd with one CAS, fills it, and makes
//! the sequence even again; a reader keeps a slot only if the sequence was even and unchanged
//! around its reads. Waiters beyond the table are counted by the caller but not listed.
//! Model-checked with loom (`LOOM_MAX_PREEMPTIONS=2 RUSTFLAGS="--cfg taskscope_loom" cargo test
//! -p taskscope --release --lib loom`, run by CI), which found that the first version — the task
//! id as the only check — could pair one waiter's task with the next waiter's start time.

use std::panic::Location;

#[cfg(taskscope_loom)]
use loom::sync::atomic::{fence, AtomicU64, AtomicUsize, Ordering::*};
#[cfg(not(taskscope_loom))]
use std::sync::atomic::{fence, AtomicU64, AtomicUsize, Ordering::*};

/// Waiters listed per lock; more wait rarely, and are still counted. (The loom model uses two
/// slots: the same code, a state space it can exhaust.)
#[cfg(not(taskscope_loom))]
const SLOTS: usize = 16;
#[cfg(taskscope_loom)]
const SLOTS: usize = 2;
/// A waiter outside instrumented tasks.
const UNKNOWN_TASK: u64 = u64::MAX - 1;

/// A task waiting to acquire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Waiter {
    pub(crate) task: u64,
    pub(crate) since: u64,
    pub(crate) location: &'static Location<'static>,
}

#[derive(Debug)]
struct Slot {
    /// Even: stable; odd: being written.
    seq: AtomicU64,
    /// 0: free.
    task: AtomicU64,
    since: AtomicU64,
    location: AtomicUsize,
}

#[derive(Debug)]
pub(crate) struct WaiterTable {
    slots: [Slot; SLOTS],
}

impl WaiterTable {
    pub(crate) fn new() -> Self {
        WaiterTable {
            slots: std::array::from_fn(|_| Slot {
                seq: AtomicU64::new(0),
                task: AtomicU64::new(0),
                since: AtomicU64::new(0),
                location: AtomicUsize::new(0),
            }),
        }
    }

    /// Lists a waiter; its slot, if one was free.
    pub(crate) fn insert(&self, waiter: Waiter) -> Option<usize> {
        let mark = if waiter.task == 0 {
            UNKNOWN_TASK
        } else {
            waiter.task
        };
        for (index, slot) in self.slots.iter().enumerate() {
            let seq = slot.seq.load(Acquire);
            if seq % 2 == 1 || slot.task.load(Relaxed) != 0 {
                continue;
            }
            // Claim: nobody else can change a slot without moving its sequence.
            if slot
                .seq
                .compare_exchange(seq, seq + 1, Acquire, Relaxed)
                .is_err()
            {
                continue;
            }
            fence(Release);
            slot.task.store(mark, Relaxed);
            slot.since.store(waiter.since, Relaxed);
            slot.location.store(
                waiter.location as *const Location<'static> as usize,
                Relaxed,
            );
            slot.seq.store(seq + 2, Release);
            return Some(index);
        }
        None
    }

    /// Unlists the waiter in `index` (only its inserter calls this).
    pub(crate) fn remove(&self, index: usize) {
        let slot = &self.slots[index];
        let seq = slot.seq.load(Relaxed);
        slot.seq.store(seq + 1, Relaxed);
        fence(Release);
        slot.task.store(0, Relaxed);
        slot.seq.store(seq + 2, Release);
    }

    /// The listed waiters now.
    pub(crate) fn list(&self) -> Vec<Waiter> {
        let mut out = Vec::new();
        for slot in &self.slots {
            let before = slot.seq.load(Acquire);
            if before % 2 == 1 {
                continue; // being written
            }
            let task = slot.task.load(Relaxed);
            let since = slot.since.load(Relaxed);
            let location = slot.location.load(Relaxed);
            fence(Acquire);
            if slot.seq.load(Relaxed) != before || task == 0 || location == 0 {
                continue; // free, or changed while we read it
            }
            // SAFETY: locations are `&'static Location`s stored as addresses, and a stable,
            // occupied slot always holds one (checked non-zero above).
            let location = unsafe { &*(location as *const Location<'static>) };
            let task = if task == UNKNOWN_TASK { 0 } else { task };
            out.push(Waiter {
                task,
                since,
                location,
            });
        }
        out
    }
}

#[cfg(all(test, taskscope_loom))]
mod loom_tests {
    use super::*;
    use loom::sync::Arc;

    fn waiter(task: u64, since: u64) -> Waiter {
        Waiter {
            task,
            since,
            location: Location::caller(),
        }
    }

    #[test]
    fn loom_sanity_catches_late_publication() {
        use loom::sync::atomic::AtomicU64;
        let r = std::panic::catch_unwind(|| {
            loom::model(|| {
                let a = Arc::new((AtomicU64::new(0), AtomicU64::new(0)));
                let b = a.clone();
                let t = loom::thread::spawn(move || {
                    b.0.store(1, Release);
                    b.1.store(100, Relaxed);
                });
                if a.0.load(Acquire) == 1 {
                    assert_eq!(a.1.load(Relaxed), 100);
                }
                t.join().unwrap();
            })
        });
        assert!(r.is_err(), "loom finds the late store");
    }

    /// A waiter comes and goes while the watchdog lists the table from another thread, and a
    /// second waiter takes a slot at the same time: every listed waiter is one that was
    /// inserted, whole (its own `since`), and the table is empty at the end.
    #[test]
    fn concurrent_insert_remove_and_list() {
        loom::model(|| {
            let table = Arc::new(WaiterTable::new());
            let lister = {
                let table = table.clone();
                loom::thread::spawn(move || {
                    let listed = table.list();
                    for w in &listed {
                        assert!(w.task == 1 || w.task == 2, "{w:?}");
                        assert_eq!(w.since, w.task * 100, "a listed waiter is whole");
                    }
                    listed.len()
                })
            };
            let other = {
                let table = table.clone();
                loom::thread::spawn(move || {
                    let slot = table.insert(waiter(2, 200)).expect("room");
                    table.remove(slot);
                })
            };
            let slot = table.insert(waiter(1, 100)).expect("room");
            table.remove(slot);
            lister.join().unwrap();
            other.join().unwrap();
            assert!(table.list().is_empty());
        });
    }
}

#[cfg(all(test, not(taskscope_loom)))]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn stress_exact_membership() {
        let table = Arc::new(WaiterTable::new());
        let threads: Vec<_> = (1..=4u64)
            .map(|t| {
                let table = table.clone();
                std::thread::spawn(move || {
                    for i in 0..20_000u64 {
                        let w = Waiter {
                            task: t,
                            since: t * 1_000_000 + i,
                            location: Location::caller(),
                        };
                        let slot = table.insert(w).expect("4 waiters fit in 16 slots");
                        for seen in table.list() {
                            assert_eq!(
                                seen.since / 1_000_000,
                                seen.task,
                                "fields of one waiter: {seen:?}"
                            );
                        }
                        table.remove(slot);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert!(table.list().is_empty());
        // A full table refuses politely.
        let slots: Vec<_> = (0..SLOTS as u64)
            .map(|i| {
                table.insert(Waiter {
                    task: i + 1,
                    since: 0,
                    location: Location::caller(),
                })
            })
            .collect();
        assert!(slots.iter().all(Option::is_some));
        assert!(table
            .insert(Waiter {
                task: 99,
                since: 0,
                location: Location::caller()
            })
            .is_none());
    }
}
