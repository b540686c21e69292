//! `taskscope::spawn`, `spawn_named` and `spawn_blocking`.

use std::borrow::Cow;
use std::future::Future;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe, Location};
use std::sync::atomic::Ordering::*;
use std::sync::Arc;

use taskscope_wire::TaskKind;
use tokio::runtime::Handle;

use crate::base::clock;
use crate::state::attach;
use crate::state::shared;
use crate::state::shared::Shared;
use crate::state::worker;
use crate::stats::task::*;
use crate::task::instrumented::{record_panic, Instrumented};
use crate::task::join::JoinHandle;

/// Spawns a future on the current tokio runtime, like [`tokio::spawn`], and records every poll.
///
/// The task is named after its spawn location (`file:line:column`). Without a live
/// [`Guard`](crate::Guard) this is a plain `tokio::spawn`.
///
/// # Panics
///
/// Like `tokio::spawn`, when called outside a tokio runtime.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let handle = taskscope::spawn(async { 1 + 1 });
/// assert_eq!(handle.await.unwrap(), 2);
/// # }
/// ```
#[track_caller]
pub fn spawn<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    spawn_inner(Cow::Borrowed(""), Location::caller(), future)
}

/// Spawns a named future, like [`spawn`]. Tasks with the same name and spawn location are
/// grouped in reports.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let id = 7;
/// taskscope::spawn_named("accept-loop", async {}).await.unwrap();
/// taskscope::spawn_named(format!("conn-{id}"), async {}).await.unwrap();
/// # }
/// ```
#[track_caller]
pub fn spawn_named<F>(name: impl Into<Cow<'static, str>>, future: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    spawn_inner(name.into(), Location::caller(), future)
}

fn spawn_inner<F>(
    name: Cow<'static, str>,
    location: &'static Location<'static>,
    future: F,
) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let Some(shared) = shared::active() else {
        return JoinHandle::new(tokio::spawn(future), None);
    };
    let handle = match Handle::try_current() {
        Ok(handle) => handle,
        // Let tokio panic with its own message, at the caller's location.
        Err(_) => return JoinHandle::new(tokio::spawn(future), None),
    };
    attach::ensure_attached(&handle, shared);
    match register(shared, name, location, TaskKind::Async) {
        Some(stats) => {
            let watched = stats.clone();
            let future = Instrumented::new(future, stats);
            JoinHandle::new(
                worker::spawn_unhooked(|| handle.spawn(future)),
                Some(watched),
            )
        }
        None => JoinHandle::new(handle.spawn(future), None),
    }
}

/// Runs a blocking closure on tokio's blocking pool, like [`tokio::task::spawn_blocking`], and
/// records its run time, queueing delay and outcome.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let sum = taskscope::spawn_blocking(|| (1..=10u32).sum::<u32>()).await.unwrap();
/// assert_eq!(sum, 55);
/// # }
/// ```
#[track_caller]
pub fn spawn_blocking<F, R>(f: F) -> JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    let location = Location::caller();
    let Some(shared) = shared::active() else {
        return JoinHandle::new(tokio::task::spawn_blocking(f), None);
    };
    let Some(stats) = register(shared, Cow::Borrowed(""), location, TaskKind::Blocking) else {
        return JoinHandle::new(tokio::task::spawn_blocking(f), None);
    };
    let watched = stats.clone();
    let run = BlockingRun(stats);
    JoinHandle::new(
        tokio::task::spawn_blocking(move || run.run(f)),
        Some(watched),
    )
}

/// Marks a blocking task cancelled if its closure is dropped without running (runtime shutdown).
struct BlockingRun(Arc<TaskStats>);

impl BlockingRun {
    fn run<R>(self, f: impl FnOnce() -> R) -> R {
        let stats = &self.0;
        let start = clock::now();
        stats.first_poll.store(start, Relaxed);
        stats.hot.state.store(STATE_RUNNING, Relaxed);
        let result = catch_unwind(AssertUnwindSafe(f));
        let end = clock::now();
        stats.record_poll(clock::delta_ns(start, end), None);
        match result {
            Ok(value) => {
                crate::state::shared::finish(stats, OUTCOME_COMPLETED, end);
                value
            }
            Err(panic) => {
                record_panic(stats, panic.as_ref());
                crate::state::shared::finish(stats, OUTCOME_PANICKED, end);
                resume_unwind(panic)
            }
        }
    }
}

impl Drop for BlockingRun {
    fn drop(&mut self) {
        crate::state::shared::finish(&self.0, OUTCOME_CANCELLED, clock::now());
    }
}

pub(crate) fn register(
    shared: &'static Shared,
    name: Cow<'static, str>,
    location: &'static Location<'static>,
    kind: TaskKind,
) -> Option<Arc<TaskStats>> {
    let (id, parent, created) = (shared.next_id(), worker::current_task(), clock::now());
    // Pooled statistics are unique (see `registry::recycle`).
    let mut pooled = shared.pool.pop();
    let stats = match pooled.as_mut().and_then(Arc::get_mut) {
        Some(reused) => {
            reused.reuse(id, name, location, parent, kind, created);
            pooled.expect("just reused")
        }
        None => Arc::new(TaskStats::new(id, name, location, parent, kind, created)),
    };
    // Past a full queue and its overflow the task's instrumentation is shed (counted as a
    // drop), never the task.
    shared.push_spawn(stats.clone()).then_some(stats)
}
