//! The waker proxy: stamps the wake time so the next poll can measure the scheduled delay
//! (wake → poll start), then forwards to the runtime's waker.
//!
//! One proxy is allocated per task, at its first poll; clones are reference-count increments.
//! A self-wake (the task waking itself during its own poll, as `yield_now` does) only sets a flag
//! in the thread's worker slot: the poll wrapper then reuses its poll-end clock read as the wake
//! time, so the commonest wake costs no clock read and no atomic read-modify-write.

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
        self.stats.wakes.fetch_add(1, Relaxed);
        if self.stats.woken_at.load(Relaxed) == 0 {
            // Only the first wake since the last poll counts: the delay runs from it.
            let _ = self.stats.woken_at.compare_exchange(0, clock::now(), Relaxed, Relaxed);
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
