//! [`JoinHandle`]: tokio's handle to a spawned task, which also tells taskscope whether the
//! task's result reached anyone (a panic in a task nobody awaits is lost).

use std::fmt;
use std::future::Future;
use std::ops::Deref;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::task::JoinError;

use crate::stats::task::TaskStats;

/// An owned permission to join a task spawned by [`spawn`](crate::spawn),
/// [`spawn_named`](crate::spawn_named) or [`spawn_blocking`](crate::spawn_blocking): tokio's
/// [`JoinHandle`](tokio::task::JoinHandle), awaited the same way, with its methods (`abort`,
/// `is_finished`, `abort_handle`, `id`) through `Deref`.
///
/// taskscope watches what becomes of it: a task whose handle returned its result (a panic
/// arrives as a [`JoinError`]) was seen; a task whose handle was dropped first is *detached*,
/// and if it panics, nobody sees the panic, which is what the `task_panicked` warning reports.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let handle = taskscope::spawn(async { 6 * 7 });
/// assert!(!handle.is_finished() || handle.is_finished()); // tokio's methods, by `Deref`
/// assert_eq!(handle.await.unwrap(), 42);
/// // Where tokio's own type is needed: taskscope then cannot tell who sees the result.
/// let tokio_handle: tokio::task::JoinHandle<()> = taskscope::spawn(async {}).into_tokio();
/// tokio_handle.await.unwrap();
/// # }
/// ```
pub struct JoinHandle<T> {
    inner: tokio::task::JoinHandle<T>,
    watch: Watch,
}

/// The task's statistics, told when the handle returns the result or is dropped (`None`
/// without a live Guard).
struct Watch(Option<Arc<TaskStats>>);

impl Drop for Watch {
    fn drop(&mut self) {
        let Some(stats) = self.0.take() else {
            return;
        };
        stats.join.dropped();
        // The last reference once the task is retired: back to the pool, as the registry
        // would have put them had the handle gone first.
        if let Some(shared) = crate::state::shared::active() {
            shared.recycle(stats);
        }
    }
}

impl<T> JoinHandle<T> {
    pub(crate) fn new(inner: tokio::task::JoinHandle<T>, stats: Option<Arc<TaskStats>>) -> Self {
        if let Some(stats) = &stats {
            stats.join.held();
        }
        JoinHandle {
            inner,
            watch: Watch(stats),
        }
    }

    /// tokio's handle, for code that needs that type (a `Vec<tokio::task::JoinHandle<_>>`,
    /// `futures::future::join_all` over several kinds). taskscope no longer knows whether the
    /// task's result is seen, and never reports its panic as unseen.
    pub fn into_tokio(self) -> tokio::task::JoinHandle<T> {
        if let Some(stats) = &self.watch.0 {
            stats.join.handed_off();
        }
        self.inner
    }
}

impl<T> Deref for JoinHandle<T> {
    type Target = tokio::task::JoinHandle<T>;

    fn deref(&self) -> &Self::Target {
        &self.inner
    }
}

impl<T> Future for JoinHandle<T> {
    type Output = Result<T, JoinError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let result = Pin::new(&mut self.inner).poll(cx);
        if result.is_ready() {
            if let Some(stats) = &self.watch.0 {
                stats.join.observed();
            }
        }
        result
    }
}

impl<T> From<JoinHandle<T>> for tokio::task::JoinHandle<T> {
    fn from(handle: JoinHandle<T>) -> Self {
        handle.into_tokio()
    }
}

impl<T: fmt::Debug> fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinHandle")
            .field("inner", &self.inner)
            .field("watched", &self.watch.0.is_some())
            .finish()
    }
}
