//! taskscope shows what async Rust code on tokio is really doing: how long every poll takes, how
//! long woken tasks wait to run, which task blocks a worker thread — reported *while* it blocks —
//! and which tasks panicked or were cancelled.
//!
//! It works on stable Rust, without `--cfg tokio_unstable`: it instruments the points your code
//! already touches. Swap `tokio::spawn` for [`taskscope::spawn`](spawn) and keep a [`Guard`]:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let guard = taskscope::init(); // configured by TASKSCOPE_* variables
//! taskscope::spawn_named("worker", async {
//!     tokio::task::yield_now().await;
//! })
//! .await
//! .unwrap();
//! let snap = taskscope::snapshot();
//! assert_eq!(snap.group("worker").unwrap().completed, 1);
//! # drop(guard); }
//! ```
//!
//! Without a live Guard every wrapper is the plain tokio call.
#![deny(missing_docs)]

mod base;
mod builder;
mod dump;
mod export;
mod guard;
mod layer;
mod stacks;
mod state;
mod stats;
pub mod sync;
mod task;
#[cfg(feature = "testing")]
pub mod testing;
mod threads;
#[cfg(feature = "tower")]
pub mod tower;

pub use base::error::Error;
pub use builder::{init, try_init, Builder, DEFAULT_BIND};
pub use dump::{task_dump, AsyncFrame, Chain, DumpedTask, LockWait, TaskDump, Trace};
pub use export::snapshot::snapshot;
pub use guard::Guard;
pub use layer::{layer, SpanLayer};
#[cfg(tokio_unstable)]
pub use task::hooks::hooks;
pub use task::join::JoinHandle;
pub use task::scope::{scope, Scope, MAX_SCOPE_NAME};
pub use task::spawn::{spawn, spawn_blocking, spawn_named};
/// A tokio test that fails when its code blocks a worker, holds a lock across `.await`, takes
/// locks in both orders, deadlocks, loses a panic or a waker, writes a stale update, or leaves
/// tasks running: each finding with its kind, task, line and fix, like an assertion message.
/// Takes `#[tokio::test]`'s `flavor`, `worker_threads` and `start_paused`, and
/// `blocked_threshold = "5ms"`, `allow(kind, ...)` and `fail_on(kind, ...)`. See [`testing`] (cargo
/// feature `testing`).
///
/// ```
/// #[taskscope::test(flavor = "current_thread", blocked_threshold = "5ms")]
/// async fn sums_in_a_task() {
///     let total = taskscope::spawn(async { (1..=10).sum::<u32>() }).await.unwrap();
///     assert_eq!(total, 55);
/// }
/// ```
#[cfg(feature = "testing")]
pub use taskscope_macros::test;
pub use taskscope_wire::fmt_ns;
pub use taskscope_wire::{
    FunctionShare, Histogram, Lock, Outcome, Percentiles, Profile, ProfileGroup, ProfileStack,
    Responses, Runtime, ScopeGroup, Semaphore, Snapshot, Task, TaskGroup, TaskKind, TaskState,
    Warning, WarningKind, Worker,
};
#[cfg(feature = "testing")]
pub use testing::check;
