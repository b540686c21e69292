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

mod acquire;
mod budget;
pub(crate) mod graph;
mod guards;
pub(crate) mod held;
mod mutex;
mod register;
mod rwlock;
mod rwlock_owned;
mod semaphore;

pub use mutex::{MappedMutexGuard, Mutex, MutexGuard, OwnedMappedMutexGuard, OwnedMutexGuard};
pub use rwlock::{
    OwnedRwLockReadGuard, OwnedRwLockWriteGuard, RwLock, RwLockMappedWriteGuard, RwLockReadGuard,
    RwLockWriteGuard,
};
pub use rwlock_owned::OwnedRwLockMappedWriteGuard;
pub use semaphore::{OwnedSemaphorePermit, Semaphore, SemaphorePermit};
pub use tokio::sync::{AcquireError, TryAcquireError, TryLockError};
