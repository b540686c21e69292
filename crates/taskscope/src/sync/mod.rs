//! Drop-in replacements for `tokio::sync::{Mutex, RwLock, Semaphore}` that record waits, holds
//! and holders, and feed the lock-order and wait-for graphs (`lock_order_inversion`,
//! `deadlock`, `lock_held_across_await`, `long_wait`).
//!
//! They keep tokio's method names and signatures, so switching is an import change:
//!
//! ```
//! use taskscope::sync::Mutex;
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let cache = Mutex::named("cache", Vec::<u32>::new());
//! cache.lock().await.push(1);
//! assert_eq!(cache.lock().await.len(), 1);
//! # }
//! ```
//!
//! Locks created while no [`Guard`](crate::Guard) is alive are plain tokio locks plus one
//! `Option` check. `async fn`s of tokio are plain `fn`s returning futures here, so that the
//! caller's location is known (`#[track_caller]`); `lock().await` reads the same.

use std::borrow::Cow;
use std::panic::Location;
use std::sync::Arc;

use crate::state::shared::{self, Event};
use crate::stats::lock::{LockKind, LockStats};

/// Tries to acquire with `attempt` (a `try_` call), spending the task's cooperative budget as
/// tokio's own locks and semaphores do — before trying, so that a task whose budget is spent
/// yields *before* it acquires anything. A `try_` call alone spends no budget: without this, a
/// loop that only ever takes free locks would never yield and starve its worker. Taking a unit
/// costs tokio's context thread local twice (~20 ns, as much as the rest of an uncontended lock),
/// so one attempt in `COOP_EVERY` per thread takes one: such a loop yields after about
/// `COOP_EVERY` × 128 acquisitions instead of tokio's 128. On failure the unit is given back (the
/// caller then waits in tokio's own future, which spends its own).
///
/// Called through `try_spending_budget!`, which tests `coop_due()` first and makes the attempt
/// directly when it is false: an `.await` of this function on every attempt measured as a third
/// of an uncontended semaphore's cost.
async fn try_with_budget<T, E>(attempt: impl FnOnce() -> Result<T, E>) -> Result<T, E> {
    let budget = std::future::poll_fn(tokio::task::coop::poll_proceed).await;
    let result = attempt();
    if result.is_ok() {
        budget.made_progress();
    }
    result
}

/// Attempts per thread between two that spend a unit of cooperative budget.
const COOP_EVERY: u32 = 8;

/// Whether this attempt spends a unit of budget (always on a thread that never polled an
/// instrumented task: it has no slot to count in).
#[inline]
fn coop_due() -> bool {
    let Some(slot) = crate::state::worker::current_if_any() else {
        return true;
    };
    let left = slot.coop_left.load(std::sync::atomic::Ordering::Relaxed);
    let (due, next) = match left {
        0 => (true, COOP_EVERY - 1),
        n => (false, n - 1),
    };
    slot.coop_left
        .store(next, std::sync::atomic::Ordering::Relaxed);
    due
}

/// `$attempt` (a `try_` call), spending a unit of cooperative budget first when one is due
/// (`coop_due`, `try_with_budget`).
macro_rules! try_spending_budget {
    ($attempt:expr) => {
        if $crate::sync::coop_due() {
            $crate::sync::try_with_budget(|| $attempt).await
        } else {
            $attempt
        }
    };
}

mod acquire;
pub(crate) mod graph;
mod guards;
pub(crate) mod held;
mod mutex;
mod rwlock;
mod semaphore;

pub use mutex::{MappedMutexGuard, Mutex, MutexGuard, OwnedMappedMutexGuard, OwnedMutexGuard};
pub use rwlock::{
    OwnedRwLockReadGuard, OwnedRwLockWriteGuard, RwLock, RwLockMappedWriteGuard, RwLockReadGuard,
    RwLockWriteGuard,
};
pub use semaphore::{OwnedSemaphorePermit, Semaphore, SemaphorePermit};
pub use tokio::sync::{AcquireError, TryAcquireError, TryLockError};

/// Registers a new lock's statistics, or `None` (an uninstrumented lock) without a Guard or when
/// the event queue is full.
pub(crate) fn register(
    name: Cow<'static, str>,
    location: &'static Location<'static>,
    kind: LockKind,
) -> Option<Registered> {
    let shared = shared::active()?;
    let stats = Arc::new(LockStats::new(shared.next_id(), name, location, kind));
    shared.push(Event::Lock(stats.clone())).ok()?;
    Some(Registered(stats))
}

/// A lock's reference to its registered statistics; dropping it (the lock was dropped) tells
/// the collector, which then retires the statistics instead of looking for dropped locks among
/// all of them every tick.
#[derive(Debug)]
pub(crate) struct Registered(Arc<LockStats>);

impl std::ops::Deref for Registered {
    type Target = Arc<LockStats>;
    fn deref(&self) -> &Arc<LockStats> {
        &self.0
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        if let Some(shared) = shared::active() {
            // If the queue is full the drop is shed and counted; the collector then looks at
            // every lock (`Registry::retire_locks`).
            let _ = shared.push(Event::LockDropped(self.0.id));
        }
    }
}
