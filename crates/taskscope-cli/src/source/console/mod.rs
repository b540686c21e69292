//! `taskscope console`: attaches to an application instrumented with console-subscriber (the
//! tokio-console way, `console_subscriber::init()`) through the console-api gRPC protocol, and
//! turns what it streams into the [`Snapshot`] taskscope's views and reports are made of.
//!
//! What console-subscriber gives, and how it maps:
//! - tasks (named with tokio's task builder, or by spawn location) with their poll counts, busy
//!   time, wakes and self-wakes; per-task poll-time and scheduled-delay histograms come from one
//!   `WatchTaskDetails` stream per task (at most [`MAX_DETAIL_STREAMS`] at once; the task shown
//!   in the Task view always gets one);
//! - tokio's `Mutex` and `RwLock` become locks, `Semaphore` a semaphore: acquisitions, waits
//!   (the life of each `lock`/`acquire` async operation), tasks waiting now; other resources
//!   (timers, `Notify`, channels, ...) are listed with their state and waiters;
//! - warnings derived from that data: `blocked_worker` (a poll still running past the threshold,
//!   seen at console-subscriber's publish interval, or a long poll found afterwards in a task's
//!   poll histogram), `long_wait`, `lost_waker` (a task not done with no waker left) and
//!   `self_wakes` (more than half of a task's wakes).
//!
//! What it cannot give: worker threads and their stacks, lock holders and hold times, whether an
//! ended task completed or was cancelled (ended tasks count as completed), panics, lock-order
//! inversions and deadlocks. taskscope's own instrumentation has those.

use std::sync::mpsc::channel;

use super::live::Live;

mod decode;
mod detect;
mod entities;
mod session;
mod settings;
mod state;

pub use settings::{Thresholds, DEFAULT_ADDR, MAX_DETAIL_STREAMS, MAX_MESSAGE};
pub use state::ConsoleState;

/// Connects to a console-subscriber server at `addr` on a background thread, for as long as the
/// returned source's receiver lives; reconnects when the app goes away.
pub fn connect(addr: String, thresholds: Thresholds) -> Live {
    let (feed_tx, feed) = channel();
    let (watch, watch_rx) = channel();
    std::thread::Builder::new()
        .name("taskscope-console".into())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime for the console client");
            runtime.block_on(session::manage(addr, thresholds, feed_tx, watch_rx));
        })
        .expect("spawn the console client thread");
    Live::from_parts(feed, watch)
}

#[cfg(test)]
mod tests;
