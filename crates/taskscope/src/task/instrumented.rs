//! `Instrumented<F>`: times every poll of a spawned future.
//!
//! Per poll: two clock reads, a handful of relaxed loads and stores on lines only this thread
//! writes (single-writer stats, the thread's worker slot), a sample buffered for the task's
//! histograms, and a compare against the blocked threshold. Nothing allocates after the first
//! poll; nothing locks. A poll that opens or closes a stamping window (see `task::waker`) also
//! writes the task's wake line.

use std::future::Future;
use std::mem::ManuallyDrop;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::ptr::NonNull;
use std::sync::atomic::Ordering::*;
use std::sync::Arc;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;

use crate::clock;
use crate::registry::{self, Event};
use crate::stats::task::*;
use crate::stats::wake::WakeCell;
use crate::task::waker::{poll_waker, proxy_waker_borrowed, PollWaker};
use crate::worker;

pin_project! {
    /// A future whose polls are recorded in a [`TaskStats`].
    ///
    /// Only ever spawned on tokio (`task::spawn`), which polls a task with the same waker every
    /// time: the proxy forwards to the waker of the first poll.
    ///
    /// Field order is layout: this struct sits in tokio's task cell right after the header, and
    /// every field is read or written by every poll. `repr(C)` keeps them together in front of
    /// the future (40 bytes; the order Rust picked put them on a line of their own, one more
    /// cache miss per poll with a thousand tasks).
    #[repr(C)]
    pub(crate) struct Instrumented<F> {
        stats: Arc<TaskStats>,
        // `stats.id`, kept here: this struct's line is hot anyway (tokio's task cell), while
        // `TaskStats`' second line would be one more cache miss per poll.
        id: u64,
        // The task's wake line (kept alive by `stats`), which proxy wakers point to.
        cell: NonNull<WakeCell>,
        // Poll-end ticks of a poll during which the task woke itself (0: none).
        self_woken_at: u64,
        // Ticks from which the next poll opens a stamping window, with the low bit set while a
        // window is open (0: not polled yet).
        next_window: u64,
        #[pin]
        future: F,
    }

    impl<F> PinnedDrop for Instrumented<F> {
        fn drop(this: Pin<&mut Self>) {
            // Dropped before completing: aborted, or its runtime shut down.
            this.stats.finish(OUTCOME_CANCELLED, clock::now());
        }
    }
}

// SAFETY: `cell` points into the task's statistics, which `stats` (an `Arc` of `Send + Sync`
// data) keeps alive; the cell is `Sync` (see `WakeRef`). Everything else is as the future.
unsafe impl<F: Send> Send for Instrumented<F> {}

impl<F> Instrumented<F> {
    pub(crate) fn new(future: F, stats: Arc<TaskStats>) -> Self {
        Instrumented {
            id: stats.id,
            cell: NonNull::from(stats.wake.cell()),
            stats,
            self_woken_at: 0,
            next_window: 0,
            future,
        }
    }
}

/// In `Instrumented::next_window`: a window is open.
const OPEN: u64 = 1;

impl<F: Future> Future for Instrumented<F> {
    type Output = F::Output;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let stats: &TaskStats = this.stats;
        let slot = worker::current();

        let start = clock::now();
        // A poll inside another instrumented poll (a `block_on` in a task) saves the outer one.
        let outer_start = slot.start.load(Relaxed);
        let outer = (outer_start != 0).then(|| (slot.task.load(Relaxed), slot.stats.load(Relaxed)));
        slot.task.store(*this.id, Relaxed);
        slot.stats
            .store(stats as *const TaskStats as *mut TaskStats, Relaxed);
        slot.start.store(start, Release);
        let hot = &stats.hot;
        hot.state.store(STATE_RUNNING, Relaxed);
        stats.prefetch_for_flush();

        // SAFETY: `stats` keeps the cell alive.
        let cell = unsafe { this.cell.as_ref() };
        if *this.next_window == 0 {
            first_poll(stats, cell, cx, start);
        }
        // The wake that made this poll happen: a self-wake in the last poll (stamped with that
        // poll's end), or the stamp of the window the last poll opened. A stamp older than the
        // window is a late store of a wake from before it.
        let interval = registry::WAKE_SAMPLE_TICKS.load(Relaxed);
        let mut woken = std::mem::take(this.self_woken_at);
        let open = *this.next_window & OPEN != 0;
        if open {
            let opened = (*this.next_window & !OPEN).saturating_sub(interval);
            if let Some(stamp) = cell.stamp().filter(|&s| woken == 0 && s >= opened) {
                woken = stamp;
            }
        }
        // Open a window for the next wake (plain stores: a wake landing between the load above
        // and this store is a wake during this poll, already served by it), or close this one.
        if start >= *this.next_window & !OPEN {
            *this.next_window = start.saturating_add(interval) | OPEN;
            cell.open_window();
        } else if open {
            *this.next_window &= !OPEN;
            cell.close_window();
        }
        let scheduled = (woken != 0).then(|| clock::delta_ns(woken, start));

        // In a window the proxy stamps wakes: it borrows the reference `stats` holds (not
        // counted, never dropped). Outside one the future gets the runtime's waker wrapped for
        // this poll only, which only notes self-wakes.
        let runtime_waker = PollWaker {
            inner: cx.waker(),
            task: stats as *const TaskStats as usize,
        };
        // SAFETY: the cell's target was set by the first poll; the poll waker outlives the
        // context it is lent to.
        let proxy = ManuallyDrop::new(unsafe {
            if *this.next_window & OPEN != 0 {
                proxy_waker_borrowed(cell)
            } else {
                poll_waker(&runtime_waker)
            }
        });
        let mut proxied = Context::from_waker(&proxy);
        let result = catch_unwind(AssertUnwindSafe(|| this.future.poll(&mut proxied)));

        let end = clock::now();
        let duration = clock::delta_ns(start, end);
        // A long poll's exact end is queued before the slot shows the poll over: a watchdog scan
        // that finds the slot free then finds the event too (`watchdog::scan`).
        if duration >= registry::BLOCKED_NS.load(Relaxed) {
            long_poll(*this.id, start, end);
        }
        // `task` and `stats` mean nothing while `start` is 0: only the outer poll, if any, puts
        // them back.
        if let Some((outer_task, outer_stats)) = outer {
            slot.task.store(outer_task, Relaxed);
            slot.stats.store(outer_stats, Relaxed);
        }
        slot.start.store(outer_start, Release);
        stats.record_poll(duration, scheduled);
        let self_woken = slot.self_woken.load(Relaxed);
        if self_woken {
            slot.self_woken.store(false, Relaxed);
            *this.self_woken_at = end;
            stats
                .self_wakes
                .store(stats.self_wakes.load(Relaxed) + 1, Relaxed);
        }

        match result {
            Ok(Poll::Pending) => {
                hot.state.store(
                    if self_woken {
                        STATE_SCHEDULED
                    } else {
                        STATE_IDLE
                    },
                    Relaxed,
                );
                Poll::Pending
            }
            Ok(Poll::Ready(output)) => {
                stats.finish(OUTCOME_COMPLETED, end);
                Poll::Ready(output)
            }
            Err(panic) => {
                record_panic(stats, panic.as_ref());
                stats.finish(OUTCOME_PANICKED, end);
                resume_unwind(panic)
            }
        }
    }
}

#[cold]
#[inline(never)]
fn first_poll(stats: &TaskStats, cell: &WakeCell, cx: &Context<'_>, start: u64) {
    stats.first_poll.store(start, Relaxed);
    // SAFETY: no proxy waker for this wake line exists before the first poll, so nothing reads
    // the target concurrently; the first poll happens once.
    unsafe { cell.set_target(cx.waker().clone(), stats as *const TaskStats as usize) };
}

#[cold]
#[inline(never)]
fn long_poll(task: u64, start: u64, end: u64) {
    if let Some(shared) = registry::active() {
        let _ = shared.push(Event::LongPoll { task, start, end });
    }
}

#[cold]
#[inline(never)]
pub(crate) fn record_panic(stats: &TaskStats, panic: &(dyn std::any::Any + Send)) {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(panic payload is not a string)".to_string());
    *stats
        .panic_message
        .lock()
        .unwrap_or_else(|e| e.into_inner()) = Some(message);
}
