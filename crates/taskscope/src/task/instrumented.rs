//! `Instrumented<F>`: counts every poll of a spawned future and times a sample of them.
//!
//! A timed poll: two clock reads, a handful of relaxed loads and stores on lines only this
//! thread writes (single-writer stats, the thread's worker slot), a sample buffered for the
//! task's histograms, and a compare against the blocked threshold. A poll that opens or closes a
//! sampling window (see `task::waker`) also writes the task's wake line.
//!
//! An untimed poll: no clock read. It puts a marker in the worker slot (the watchdog dates the
//! poll's start from the thread's last clock reading, so a blocked worker is still caught while
//! blocked; see `watchdog::UntimedPolls`), counts the poll and notes a self-wake. Which polls are timed: a task's first; the one that
//! closes a window (it measures the window's wake; a window opens at the first poll at least the
//! sampling interval after the last one opened, by the thread's last clock reading,
//! `WorkerSlot::tick`, so the opening poll needs no clock); and one in `UNTIMED_RUN + 1` on each
//! thread, which keeps `tick` fresh (and opens a window if one is due, by its own reading). So a
//! task polled less often than once per interval has every poll timed, a busy one about one per
//! interval. Two `rdtsc`s cost 25–27 ns on the AMD EPYC VM this was measured on, about
//! all of DESIGN.md §10's +30 ns budget for a poll; the untimed poll is what meets it.
//!
//! Nothing allocates after the first poll; nothing locks.

use std::future::Future;
use std::mem::ManuallyDrop;
use std::panic::resume_unwind;
use std::pin::Pin;
use std::ptr::NonNull;
use std::sync::atomic::Ordering::*;
use std::sync::Arc;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;

use crate::base::clock;
use crate::state::shared::{self, Event};
use crate::state::worker::{self, WorkerSlot, UNTIMED_RUN};
use crate::stats::task::*;
use crate::stats::wake::WakeCell;
use crate::task::trace;
use crate::task::waker::{poll_waker, proxy_waker_borrowed, PollWaker};

pin_project! {
    #[project = InstrumentedProj]
    /// A future whose polls are recorded in a [`TaskStats`].
    ///
    /// Only ever spawned on tokio (`task::spawn`), which polls a task with the same waker every
    /// time: the proxy forwards to the waker of the first poll.
    ///
    /// Field order is layout: this struct sits in tokio's task cell right after the header, and
    /// every field is read or written by every poll. `repr(C)` keeps them together in front of
    /// the future (40 bytes; the order Rust picked once put them on a line of their own, one
    /// more cache miss per poll with a thousand tasks, and so did a 48-byte version, which kept
    /// a self-wake's time here: that is now the window's wake stamp, on the wake line).
    #[repr(C)]
    pub(crate) struct Instrumented<F> {
        stats: Arc<TaskStats>,
        // `stats.id`, kept here: this struct's line is hot anyway (tokio's task cell), while
        // `TaskStats`' second line would be one more cache miss per poll.
        id: u64,
        // Untimed polls so far. The hot line gets a copy with a plain store, never a load, so
        // an untimed poll does not wait for that line.
        untimed: u64,
        // The task's wake line (kept alive by `stats`), which proxy wakers point to: reached
        // through `stats` it would cost window polls a miss on the statistics' second line.
        cell: NonNull<WakeCell>,
        // Ticks from which the next poll opens a stamping window, with the low bit set while a
        // window is open (0: not polled yet).
        next_window: u64,
        #[pin]
        future: F,
    }

    impl<F> PinnedDrop for Instrumented<F> {
        fn drop(this: Pin<&mut Self>) {
            // Dropped before completing: aborted, or its runtime shut down.
            crate::state::shared::finish(&this.stats, OUTCOME_CANCELLED, clock::now());
        }
    }
}

impl<F> Instrumented<F> {
    pub(crate) fn new(future: F, stats: Arc<TaskStats>) -> Self {
        Instrumented {
            id: stats.id,
            cell: NonNull::from(stats.wake.cell()),
            stats,
            untimed: 0,
            next_window: 0,
            future,
        }
    }
}

// SAFETY: `cell` points into the task's statistics, which `stats` (an `Arc` of `Send + Sync`
// data) keeps alive; the cell is `Sync` (see `WakeRef`). Everything else is as the future.
unsafe impl<F: Send> Send for Instrumented<F> {}

/// In `Instrumented::next_window`: a window is open.
const OPEN: u64 = 1;

impl<F: Future> Future for Instrumented<F> {
    type Output = F::Output;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let stats: &TaskStats = this.stats;
        let slot = worker::current();

        // Untimed unless this task has a window open (whose wake this poll measures), or the
        // thread must refresh its clock reading; and a task's first poll (`next_window` is 0
        // until then) is timed.
        let untimed_left = slot.untimed_left.load(Relaxed);
        let next_window = *this.next_window;
        if untimed_left != 0 && next_window & OPEN == 0 && next_window != 0 {
            slot.untimed_left.store(untimed_left - 1, Relaxed);
            let tick = slot.tick.load(Relaxed);
            let opens = tick >= next_window;
            if opens {
                // Opens a window (the next poll, timed, closes it), by the thread's clock.
                let interval = shared::THRESHOLDS.wake_sample_ticks.load(Relaxed);
                *this.next_window = tick.saturating_add(interval) | OPEN;
            }
            return untimed_poll(this, slot, cx, opens);
        }
        slot.untimed_left.store(UNTIMED_RUN, Relaxed);

        let start = clock::now();
        let outer = slot.enter_poll(*this.id, stats, start);
        stats.hot.state.store(STATE_RUNNING, Relaxed);
        stats.prefetch_for_flush();

        // SAFETY: `stats` keeps the cell alive.
        let cell = unsafe { this.cell.as_ref() };
        let first = *this.next_window == 0;
        if first {
            first_poll(stats, cell, cx, start);
        }
        // The wake that made this poll happen: the stamp of the window the last poll opened (a
        // wake through the proxy, or that poll's self-wake, stamped with its end). A stamp
        // older than the window is a late store of a wake from before it.
        let interval = shared::THRESHOLDS.wake_sample_ticks.load(Relaxed);
        let open = *this.next_window & OPEN != 0;
        let woken = match open {
            true => {
                let opened = (*this.next_window & !OPEN).saturating_sub(interval);
                cell.stamp().filter(|&s| s >= opened)
            }
            false => None,
        };
        // Open a window for the next wake (plain stores: a wake landing between the load above
        // and this store is a wake during this poll, already served by it), or close this one.
        if start >= *this.next_window & !OPEN {
            *this.next_window = start.saturating_add(interval) | OPEN;
            cell.open_window();
        } else if open {
            *this.next_window &= !OPEN;
            cell.close_window();
        }
        let scheduled = woken.map(|woken| clock::delta_ns(woken, start));

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
        let result = trace::poll(this.future, &proxy, *this.id, cell);

        let end = clock::now();
        slot.tick.store(end, Relaxed);
        cell.note_poll_end(end);
        let duration = clock::delta_ns(start, end);
        // A long poll's exact end is queued before the slot shows the poll over: a watchdog scan
        // that finds the slot free then finds the event too (`watchdog::scan`).
        if duration >= shared::THRESHOLDS.blocked_ns.load(Relaxed) {
            long_poll(*this.id, start, end);
        }
        slot.leave_poll(outer);
        stats.record_poll(duration, scheduled);
        if first {
            // Timed because it is the first, not as a sample: not scaled with the samples.
            stats.record_exact(duration, true);
        }
        let self_woken = slot.take_self_wake(stats);
        // The window's wake, if this poll opened one (unless a wake came first): a task that
        // wakes itself at every poll is sampled like any other busy task.
        if self_woken && *this.next_window & OPEN != 0 {
            cell.stamp_wake(|| end);
        }

        conclude(stats, result, self_woken, || end)
    }
}

/// A poll that is not timed: the task's busy periods are sampled by its timed polls, so this
/// one only counts, keeps the worker slot current for the watchdog (with a marker in place of a
/// start time, which the watchdog dates) and notes self-wakes. No clock read unless the
/// watchdog found it blocked, or it opened a window and woke itself.
#[inline(always)]
fn untimed_poll<F: Future>(
    this: InstrumentedProj<'_, F>,
    slot: &WorkerSlot,
    cx: &mut Context<'_>,
    opens_window: bool,
) -> Poll<F::Output> {
    let stats: &TaskStats = this.stats;
    let id = *this.id;
    // SAFETY: `stats` keeps the cell alive.
    let opened = opens_window.then_some(unsafe { this.cell.as_ref() });
    if let Some(cell) = opened {
        cell.open_window();
    }
    let marker = slot.next_marker();
    let outer = slot.enter_poll(id, stats, marker);
    stats.hot.state.store(STATE_RUNNING, Relaxed);

    let runtime_waker = PollWaker {
        inner: cx.waker(),
        task: stats as *const TaskStats as usize,
    };
    // SAFETY: as in the timed poll.
    let proxy = ManuallyDrop::new(unsafe {
        match opened {
            Some(cell) => proxy_waker_borrowed(cell),
            None => poll_waker(&runtime_waker),
        }
    });
    // SAFETY: `stats` keeps the cell alive.
    let result = trace::poll(this.future, &proxy, id, unsafe { this.cell.as_ref() });

    // As in a timed poll, the end of a poll the watchdog found blocked is queued before the
    // slot shows the poll over.
    if slot.long_marker.load(Acquire) == marker {
        long_untimed_poll(stats, id, marker, slot.long_start.load(Relaxed));
    }
    slot.leave_poll(outer);
    *this.untimed += 1;
    stats.publish_untimed(*this.untimed);
    let self_woken = slot.take_self_wake(stats);
    // The window's wake (unless a wake came first): the next poll measures its delay.
    if let Some(cell) = opened.filter(|_| self_woken) {
        cell.stamp_wake(clock::now);
    }
    conclude(stats, result, self_woken, clock::now)
}

/// The end of a poll, timed or not: the task's state, or its outcome (`end` gives the time it
/// ended), or the panic resumed.
#[inline(always)]
fn conclude<T>(
    stats: &TaskStats,
    result: std::thread::Result<Poll<T>>,
    self_woken: bool,
    end: impl FnOnce() -> u64,
) -> Poll<T> {
    match result {
        Ok(Poll::Pending) => {
            stats.hot.state.store(
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
            crate::state::shared::finish(stats, OUTCOME_COMPLETED, end());
            stats.wake.cell().release_target();
            Poll::Ready(output)
        }
        Err(panic) => {
            record_panic(stats, panic.as_ref());
            crate::state::shared::finish(stats, OUTCOME_PANICKED, end());
            stats.wake.cell().release_target();
            resume_unwind(panic)
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

/// The end of an untimed poll the watchdog found blocked, which gave it `start`: queued for
/// the watchdog (`marker` identifies the poll there), and counted in the task's busy time and
/// maximum as measured, not as a sample.
#[cold]
#[inline(never)]
fn long_untimed_poll(stats: &TaskStats, task: u64, marker: u64, start: u64) {
    let end = clock::now();
    long_poll(task, marker, end);
    stats.record_exact(clock::delta_ns(start, end), false);
}

#[cold]
#[inline(never)]
pub(crate) fn long_poll(task: u64, start: u64, end: u64) {
    if let Some(shared) = shared::active() {
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
