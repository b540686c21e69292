//! `Instrumented<F>`: times every poll of a spawned future.
//!
//! Per poll: two clock reads, a handful of relaxed loads and stores on lines only this thread
//! writes (single-writer stats, the thread's worker slot), a sample buffered for the task's
//! histograms, and a compare against the blocked threshold. Nothing allocates after the first
//! poll; nothing locks. A poll that opens or closes a stamping window (see `task::waker`) also
//! writes the task's wake line.

use std::future::Future;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::Ordering::*;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use pin_project_lite::pin_project;

use crate::clock;
use crate::registry::{self, Event};
use crate::stats::task::*;
use crate::stats::wake::UNARMED;
use crate::task::waker::{cell_of, proxy_waker};
use crate::worker;

pin_project! {
    /// A future whose polls are recorded in a [`TaskStats`].
    pub(crate) struct Instrumented<F> {
        #[pin]
        future: F,
        stats: Arc<TaskStats>,
        // `stats.id`, kept here: this struct's line is hot anyway (tokio's task cell), while
        // `TaskStats`' second line would be one more cache miss per poll.
        id: u64,
        // The waker proxy, made at the first poll; the runtime waker it forwards to is on the
        // task's wake line.
        proxy: Option<Waker>,
        // Poll-end ticks of a poll during which the task woke itself (0: none).
        self_woken_at: u64,
        // Start ticks of the poll that opened the stamping window now open (0: closed).
        window: u64,
        // Ticks from which the next poll opens a window.
        next_window: u64,
        // The runtime waker the proxy forwards to (data and vtable addresses): while tokio
        // polls with it, the proxy stands in for it.
        runtime: (usize, usize),
    }

    impl<F> PinnedDrop for Instrumented<F> {
        fn drop(this: Pin<&mut Self>) {
            // Dropped before completing: aborted, or its runtime shut down.
            this.stats.finish(OUTCOME_CANCELLED, clock::now());
        }
    }
}

impl<F> Instrumented<F> {
    pub(crate) fn new(future: F, stats: Arc<TaskStats>) -> Self {
        Instrumented {
            future,
            id: stats.id,
            stats,
            proxy: None,
            self_woken_at: 0,
            window: 0,
            next_window: 0,
            runtime: (0, 0),
        }
    }
}

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

        let proxy = match this.proxy {
            Some(proxy) => &*proxy,
            none => first_poll(none, this.runtime, stats, cx, start),
        };
        // SAFETY: `proxy` was made by `proxy_waker`.
        let cell = unsafe { cell_of(proxy) };

        // The wake that made this poll happen: a self-wake in the last poll (stamped with that
        // poll's end), or the stamp of the window the last poll opened. A stamp older than the
        // window is a late store of a wake from before it.
        let mut woken = std::mem::take(this.self_woken_at);
        if *this.window != 0 {
            let stamp = cell.woken_at.load(Relaxed);
            if woken == 0 && stamp != UNARMED && stamp >= *this.window {
                woken = stamp;
            }
        }
        // Open a window for the next wake (plain stores: a wake landing between the load above
        // and this store is a wake during this poll, already served by it), or close this one.
        if start >= *this.next_window {
            *this.window = start;
            *this.next_window = start.saturating_add(registry::WAKE_SAMPLE_TICKS.load(Relaxed));
            cell.woken_at.store(0, Relaxed);
        } else if *this.window != 0 {
            *this.window = 0;
            cell.woken_at.store(UNARMED, Relaxed);
        }
        let scheduled = (woken != 0).then(|| clock::delta_ns(woken, start));

        // tokio gives a task the same waker on every poll; if a caller ever polls us with another
        // one, pass it through rather than wake the wrong one.
        let waker = cx.waker();
        let result =
            if (waker.data() as usize, waker.vtable() as *const _ as usize) == *this.runtime {
                let mut proxied = Context::from_waker(proxy);
                catch_unwind(AssertUnwindSafe(|| this.future.poll(&mut proxied)))
            } else {
                catch_unwind(AssertUnwindSafe(|| this.future.poll(cx)))
            };

        let end = clock::now();
        // `task` and `stats` mean nothing while `start` is 0: only the outer poll, if any, puts
        // them back.
        if let Some((outer_task, outer_stats)) = outer {
            slot.task.store(outer_task, Relaxed);
            slot.stats.store(outer_stats, Relaxed);
        }
        slot.start.store(outer_start, Release);
        let duration = clock::delta_ns(start, end);
        stats.record_poll(duration, scheduled);
        let self_woken = slot.self_woken.load(Relaxed);
        if self_woken {
            slot.self_woken.store(false, Relaxed);
            *this.self_woken_at = end;
            stats
                .self_wakes
                .store(stats.self_wakes.load(Relaxed) + 1, Relaxed);
        }
        if duration >= registry::BLOCKED_NS.load(Relaxed) {
            long_poll(*this.id, start, end);
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
fn first_poll<'a>(
    slot: &'a mut Option<Waker>,
    runtime: &mut (usize, usize),
    stats: &TaskStats,
    cx: &Context<'_>,
    start: u64,
) -> &'a Waker {
    stats.first_poll.store(start, Relaxed);
    let waker = cx.waker();
    *runtime = (waker.data() as usize, waker.vtable() as *const _ as usize);
    // SAFETY: no proxy waker for this wake line exists before this one, so nothing reads the
    // target concurrently; the first poll happens once.
    unsafe {
        stats
            .wake
            .set_target(cx.waker().clone(), stats as *const TaskStats as usize)
    };
    slot.insert(proxy_waker(stats.wake.clone()))
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
