//! `taskscope::scope`: times a future that runs inside a task someone else spawned (a
//! framework's connection task, a request handler), as a task of kind `scope`.
//!
//! A scope's poll shows the scope in its thread's worker slot, so a blocked worker, a long lock
//! wait or a lock held across an `.await` inside it names the scope (the innermost, when scopes
//! nest) and, through its parent, the instrumented task it runs in. Inside an instrumented poll
//! the slot keeps that poll's start as the poll's token (the worker is blocked since then, and
//! a lock taken before the scope and released inside it was not held across an `.await`);
//! outside one, the scope's own start. Every poll is timed (two clock reads): scopes are polled
//! a few times per request, not in tight loops. No waker is wrapped — the enclosing task's
//! wakes are its own — so a scope has no scheduling delays. Nothing allocates after creation.

use std::borrow::Cow;
use std::future::Future;
use std::panic::{resume_unwind, Location};
use std::pin::Pin;
use std::sync::atomic::Ordering::*;
use std::sync::Arc;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;
use taskscope_wire::TaskKind;

use crate::base::clock;
use crate::state::shared;
use crate::state::worker;
use crate::stats::task::*;
use crate::task::instrumented::{long_poll, record_panic};
use crate::task::spawn::register;

/// Longest scope name kept, in bytes (longer ones are cut on a character boundary).
pub const MAX_SCOPE_NAME: usize = 256;

/// The name of a scope given an empty one.
const UNNAMED: &str = "(unnamed scope)";

pin_project! {
    /// A future timed as a scope: see [`scope`].
    #[derive(Debug)]
    #[must_use = "futures do nothing unless polled"]
    pub struct Scope<F> {
        stats: Option<Arc<TaskStats>>,
        #[pin]
        future: F,
    }

    impl<F> PinnedDrop for Scope<F> {
        fn drop(this: Pin<&mut Self>) {
            // Dropped before completing: the request was cancelled (client gone, timeout).
            if let Some(stats) = &this.stats {
                if !stats.is_done() {
                    crate::state::shared::finish(stats, OUTCOME_CANCELLED, clock::now());
                }
            }
        }
    }
}

/// Times `future` as a scope named `name`, inside whatever task polls it: its polls (as part of
/// the enclosing task's), its lifetime from this call to its completion (for a request handler,
/// the request's latency), its outcome (completed, dropped before completion, panicked) and
/// the locks it holds and waits for. Scopes with the same name and location form a group of
/// kind `scope` in snapshots and reports, with a latency histogram. Scopes nest.
///
/// An empty name becomes `(unnamed scope)`; a name longer than [`MAX_SCOPE_NAME`] bytes is
/// cut. Without a live [`Guard`](crate::Guard) the future runs as it is.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let guard = taskscope::Builder::new().no_server().init();
/// let total = taskscope::scope("load-user", async {
///     tokio::task::yield_now().await;
///     40 + 2
/// })
/// .await;
/// assert_eq!(total, 42);
/// let snap = guard.finish().unwrap();
/// let group = snap.group("load-user").unwrap();
/// assert_eq!((group.kind, group.completed), (taskscope::TaskKind::Scope, 1));
/// assert_eq!(snap.scope("load-user").unwrap().latency_ns.count(), 1);
/// # }
/// ```
#[track_caller]
pub fn scope<F: Future>(name: impl Into<Cow<'static, str>>, future: F) -> Scope<F> {
    scope_at(name.into(), Location::caller(), future)
}

/// A scope created at `location` (the tower layer's requests are created in the layer).
pub(crate) fn scope_at<F: Future>(
    name: Cow<'static, str>,
    location: &'static Location<'static>,
    future: F,
) -> Scope<F> {
    let stats = shared::active()
        .and_then(|shared| register(shared, bounded(name), location, TaskKind::Scope));
    Scope { stats, future }
}

/// The name as kept: never empty, at most `MAX_SCOPE_NAME` bytes.
fn bounded(name: Cow<'static, str>) -> Cow<'static, str> {
    if name.is_empty() {
        return Cow::Borrowed(UNNAMED);
    }
    if name.len() <= MAX_SCOPE_NAME {
        return name;
    }
    let mut end = MAX_SCOPE_NAME;
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(name[..end].to_owned())
}

impl<F: Future> Future for Scope<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.poll_with(cx, |_| 0)
    }
}

impl<F: Future> Scope<F> {
    /// Polls the scope; when it completes, `response` tells its response status (HTTP; 0:
    /// none), recorded before the scope ends (the tower layer).
    pub(crate) fn poll_with(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        response: impl FnOnce(&F::Output) -> u16,
    ) -> Poll<F::Output> {
        let this = self.project();
        let Some(stats) = this.stats.as_deref() else {
            return this.future.poll(cx);
        };
        let slot = worker::current();
        let start = clock::now();
        let enclosing = slot.start.load(Relaxed);
        let token = if enclosing != 0 { enclosing } else { start };
        let outer = slot.enter_poll(stats.id, stats, token);
        if stats.first_poll.load(Relaxed) == 0 {
            stats.first_poll.store(start, Relaxed);
            // The enclosing task's waker, for a task dump to wake the scope by (kept until the
            // scope's statistics are retired).
            // SAFETY: a scope makes no proxy waker of its wake line, so nothing reads the
            // target concurrently; the first poll happens once.
            unsafe {
                stats
                    .wake
                    .cell()
                    .set_target(cx.waker().clone(), stats as *const TaskStats as usize)
            };
        }
        stats.hot.state.store(STATE_RUNNING, Relaxed);
        let result = crate::task::trace::poll(this.future, cx.waker(), stats.id, stats.wake.cell());
        let end = clock::now();
        let duration = clock::delta_ns(start, end);
        // As for a task's poll, the end of a long one is queued before the slot shows it over
        // (the watchdog keys it by the token it saw).
        if enclosing == 0 && duration >= shared::THRESHOLDS.blocked_ns.load(Relaxed) {
            long_poll(stats.id, token, end);
        }
        slot.leave_poll(outer);
        stats.record_poll(duration, None);
        match result {
            Ok(Poll::Pending) => {
                stats.hot.state.store(STATE_IDLE, Relaxed);
                Poll::Pending
            }
            Ok(Poll::Ready(output)) => {
                stats.response.store(response(&output), Relaxed);
                crate::state::shared::finish(stats, OUTCOME_COMPLETED, end);
                Poll::Ready(output)
            }
            Err(panic) => {
                record_panic(stats, panic.as_ref());
                crate::state::shared::finish(stats, OUTCOME_PANICKED, end);
                resume_unwind(panic)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_never_empty_and_never_longer_than_the_bound() {
        assert_eq!(bounded(Cow::Borrowed("")), UNNAMED);
        assert_eq!(bounded(Cow::Borrowed("GET /")), "GET /");
        let huge = "é".repeat(10_000);
        let kept = bounded(Cow::Owned(huge));
        assert!(kept.len() <= MAX_SCOPE_NAME && kept.len() >= MAX_SCOPE_NAME - 1);
        assert!(kept.chars().all(|c| c == 'é'));
    }
}
