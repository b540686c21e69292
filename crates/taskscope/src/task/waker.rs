//! The waker proxy: stamps the wake time so the next poll can measure the scheduled delay
//! (wake → poll start), then forwards to the runtime's waker.
//!
//! One proxy is allocated per task, at its first poll; clones are reference-count increments.
//! A wake costs one clock read and plain loads and stores — no read-modify-write: only the first
//! wake since the last poll is stamped (later ones find the stamp set), and wakes are counted by
//! the poller, which consumes the stamp. Two racing first wakes may both store; the later stamp
//! wins, shortening that one delay by the race window.
//!
//! A self-wake (the task waking itself during its own poll) only sets a flag in the thread's
//! worker slot: the poll wrapper then reuses its poll-end clock read as the wake time. (tokio's
//! `yield_now` defers its wake until the worker has run the rest of its batch, so it arrives after
//! the poll and counts as an ordinary wake, stamped when it really happens.)

use std::sync::atomic::Ordering::*;
use std::sync::Arc;
use std::task::{Wake, Waker};

use crate::clock;
use crate::stats::task::TaskStats;
use crate::worker;

#[derive(Debug)]
pub(crate) struct WakeProxy {
    pub(crate) stats: Arc<TaskStats>,
    pub(crate) inner: Waker,
}

impl WakeProxy {
    #[inline]
    fn stamp(&self) {
        let id = self.stats.id;
        if let Some(slot) = worker::current_if_any() {
            if slot.task.load(Relaxed) == id && slot.start.load(Relaxed) != 0 {
                slot.self_woken.store(true, Relaxed);
                return;
            }
        }
        let woken_at = &self.stats.hot.woken_at;
        if woken_at.load(Relaxed) == 0 {
            woken_at.store(clock::now(), Relaxed);
        }
    }
}

impl Wake for WakeProxy {
    fn wake(self: Arc<Self>) {
        self.stamp();
        self.inner.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.stamp();
        self.inner.wake_by_ref();
    }
}
