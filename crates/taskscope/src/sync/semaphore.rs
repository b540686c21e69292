//! `taskscope::sync::Semaphore`: `tokio::sync::Semaphore` with waits, holds and saturation
//! recorded.

use std::borrow::Cow;
use std::fmt;
use std::panic::Location;
use std::sync::atomic::Ordering::*;
use std::sync::Arc;

use crate::base::clock;
use crate::stats::lock::{LockKind, LockStats};
use crate::sync::budget::try_spending_budget;
use crate::sync::held::{Ctx, Waiting};
use crate::sync::register::register;
use tokio::sync::{AcquireError, TryAcquireError};

/// A counting semaphore, like [`tokio::sync::Semaphore`] (fair), that records waits, holds,
/// waiters and how long no permit was left.
///
/// ```
/// use taskscope::sync::Semaphore;
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let pool = Semaphore::named("db-pool", 2);
/// let a = pool.acquire().await.unwrap();
/// let _b = pool.acquire().await.unwrap();
/// assert_eq!(pool.available_permits(), 0);
/// drop(a);
/// assert_eq!(pool.available_permits(), 1);
/// # }
/// ```
pub struct Semaphore {
    stats: Option<crate::sync::register::Registered>,
    inner: tokio::sync::Semaphore,
}

/// Permits borrowed from a [`Semaphore`]; returned when dropped.
#[must_use]
pub struct SemaphorePermit<'a> {
    inner: Option<tokio::sync::SemaphorePermit<'a>>,
    sem: &'a Semaphore,
}

/// Permits owned together with an `Arc` of their [`Semaphore`].
#[must_use]
pub struct OwnedSemaphorePermit {
    // Borrows from `sem`, declared after it so it outlives it.
    inner: Option<tokio::sync::SemaphorePermit<'static>>,
    sem: Arc<Semaphore>,
}

impl Semaphore {
    /// The most permits a semaphore can hold.
    pub const MAX_PERMITS: usize = tokio::sync::Semaphore::MAX_PERMITS;

    /// A semaphore with `permits` permits, named after its creation location.
    #[track_caller]
    pub fn new(permits: usize) -> Self {
        Semaphore::build(Cow::Borrowed(""), Location::caller(), permits)
    }

    /// A semaphore with a name for views and reports.
    #[track_caller]
    pub fn named(name: impl Into<Cow<'static, str>>, permits: usize) -> Self {
        Semaphore::build(name.into(), Location::caller(), permits)
    }

    /// A semaphore usable in a `static`: a plain tokio semaphore that taskscope does not observe.
    pub const fn const_new(permits: usize) -> Self {
        Semaphore {
            stats: None,
            inner: tokio::sync::Semaphore::const_new(permits),
        }
    }

    fn build(
        name: Cow<'static, str>,
        location: &'static Location<'static>,
        permits: usize,
    ) -> Self {
        let stats = register(name, location, LockKind::Semaphore);
        if let Some(stats) = &stats {
            stats.permits.store(permits as u64, Relaxed);
            stats.available.store(permits as u64, Relaxed);
        }
        Semaphore {
            stats,
            inner: tokio::sync::Semaphore::new(permits),
        }
    }

    /// Permits available now.
    pub fn available_permits(&self) -> usize {
        self.inner.available_permits()
    }

    /// Adds `n` permits.
    pub fn add_permits(&self, n: usize) {
        self.inner.add_permits(n);
        if let Some(stats) = &self.stats {
            stats.permits.fetch_add(n as u64, Relaxed);
            self.end_saturation(stats);
        }
    }

    /// Removes up to `n` available permits; returns how many were removed.
    pub fn forget_permits(&self, n: usize) -> usize {
        let removed = self.inner.forget_permits(n);
        if let Some(stats) = &self.stats {
            stats.permits.fetch_sub(removed as u64, Relaxed);
            self.note_saturation(stats);
        }
        removed
    }

    /// Closes the semaphore: pending and future acquires fail.
    pub fn close(&self) {
        self.inner.close();
    }

    /// Whether [`close`](Self::close) was called.
    pub fn is_closed(&self) -> bool {
        self.inner.is_closed()
    }

    /// Acquires one permit, waiting (fairly) for it.
    #[track_caller]
    pub fn acquire(
        &self,
    ) -> impl std::future::Future<Output = Result<SemaphorePermit<'_>, AcquireError>> + '_ {
        self.acquire_at(1, Location::caller())
    }

    /// Acquires `n` permits at once, waiting (fairly) for them.
    #[track_caller]
    pub fn acquire_many(
        &self,
        n: u32,
    ) -> impl std::future::Future<Output = Result<SemaphorePermit<'_>, AcquireError>> + '_ {
        self.acquire_at(n, Location::caller())
    }

    async fn acquire_at(
        &self,
        n: u32,
        at: &'static Location<'static>,
    ) -> Result<SemaphorePermit<'_>, AcquireError> {
        let Some(stats) = &self.stats else {
            let inner = self.inner.acquire_many(n).await?;
            return Ok(SemaphorePermit {
                inner: Some(inner),
                sem: self,
            });
        };
        let (inner, wait, contended) = match try_spending_budget!(self.inner.try_acquire_many(n)) {
            Ok(inner) => (inner, 0, false),
            // Closed for good: tokio's acquire returns its error at once.
            Err(TryAcquireError::Closed) => match self.inner.acquire_many(n).await {
                Err(e) => return Err(e),
                Ok(inner) => (inner, 0, false),
            },
            Err(TryAcquireError::NoPermits) => {
                // Unmarked on drop, so a cancelled wait leaves no phantom waiter.
                let waiting = Waiting::start(stats, &Ctx::current(), at);
                let inner = self.inner.acquire_many(n).await?;
                (inner, clock::delta_ns(waiting.since(), clock::now()), true)
            }
        };
        Ok(self.permit(inner, wait, contended))
    }

    fn permit<'a>(
        &'a self,
        inner: tokio::sync::SemaphorePermit<'a>,
        wait: u64,
        contended: bool,
    ) -> SemaphorePermit<'a> {
        // Permits are meant to be held across `.await`s, are not in the lock-order graph and
        // have no hold histogram (reports show waits and saturation), so an acquisition only
        // counts and, when it waited, records its wait: no `Held` to build and drop.
        if let Some(stats) = &self.stats {
            crate::sync::held::count_shared(stats, wait, contended);
            self.note_saturation(stats);
        }
        SemaphorePermit {
            inner: Some(inner),
            sem: self,
        }
    }

    /// Acquires one permit from synchronous code, blocking the thread.
    ///
    /// # Panics
    ///
    /// Like tokio's, when called inside an asynchronous execution context.
    #[track_caller]
    pub fn blocking_acquire(&self) -> Result<SemaphorePermit<'_>, AcquireError> {
        self.blocking_acquire_many(1)
    }

    /// Acquires `n` permits from synchronous code, blocking the thread.
    ///
    /// # Panics
    ///
    /// Like tokio's, when called inside an asynchronous execution context.
    #[track_caller]
    pub fn blocking_acquire_many(&self, n: u32) -> Result<SemaphorePermit<'_>, AcquireError> {
        // As `Mutex::blocking_lock`: tokio's call first (it panics in an async context even
        // when a permit is free), its wait timed around it.
        let start = clock::now();
        let inner = self.inner.blocking_acquire_many(n)?;
        let wait = clock::delta_ns(start, clock::now());
        Ok(self.permit(inner, wait, wait > 1_000_000))
    }

    /// Acquires one owned permit from synchronous code, blocking the thread.
    ///
    /// # Panics
    ///
    /// Like tokio's, when called inside an asynchronous execution context.
    #[track_caller]
    pub fn blocking_acquire_owned(self: Arc<Self>) -> Result<OwnedSemaphorePermit, AcquireError> {
        let permit = self.blocking_acquire_many(1)?;
        Ok(OwnedSemaphorePermit::from_permit(permit, &self))
    }

    /// Acquires `n` owned permits from synchronous code, blocking the thread.
    ///
    /// # Panics
    ///
    /// Like tokio's, when called inside an asynchronous execution context.
    #[track_caller]
    pub fn blocking_acquire_many_owned(
        self: Arc<Self>,
        n: u32,
    ) -> Result<OwnedSemaphorePermit, AcquireError> {
        let permit = self.blocking_acquire_many(n)?;
        Ok(OwnedSemaphorePermit::from_permit(permit, &self))
    }

    /// Acquires one permit if one is available.
    #[track_caller]
    pub fn try_acquire(&self) -> Result<SemaphorePermit<'_>, TryAcquireError> {
        let inner = self.inner.try_acquire()?;
        Ok(self.permit(inner, 0, false))
    }

    /// Acquires `n` permits if they are available.
    #[track_caller]
    pub fn try_acquire_many(&self, n: u32) -> Result<SemaphorePermit<'_>, TryAcquireError> {
        let inner = self.inner.try_acquire_many(n)?;
        Ok(self.permit(inner, 0, false))
    }

    /// Acquires one permit owned with an `Arc` of the semaphore.
    #[track_caller]
    pub fn acquire_owned(
        self: Arc<Self>,
    ) -> impl std::future::Future<Output = Result<OwnedSemaphorePermit, AcquireError>> {
        let at = Location::caller();
        async move {
            self.acquire_at(1, at)
                .await
                .map(|p| OwnedSemaphorePermit::from_permit(p, &self))
        }
    }

    /// Acquires `n` permits owned with an `Arc` of the semaphore.
    #[track_caller]
    pub fn acquire_many_owned(
        self: Arc<Self>,
        n: u32,
    ) -> impl std::future::Future<Output = Result<OwnedSemaphorePermit, AcquireError>> {
        let at = Location::caller();
        async move {
            self.acquire_at(n, at)
                .await
                .map(|p| OwnedSemaphorePermit::from_permit(p, &self))
        }
    }

    /// Acquires one owned permit if one is available.
    #[track_caller]
    pub fn try_acquire_owned(self: Arc<Self>) -> Result<OwnedSemaphorePermit, TryAcquireError> {
        let permit = self.try_acquire()?;
        Ok(OwnedSemaphorePermit::from_permit(permit, &self))
    }

    /// Acquires `n` owned permits if they are available.
    #[track_caller]
    pub fn try_acquire_many_owned(
        self: Arc<Self>,
        n: u32,
    ) -> Result<OwnedSemaphorePermit, TryAcquireError> {
        let permit = self.try_acquire_many(n)?;
        Ok(OwnedSemaphorePermit::from_permit(permit, &self))
    }

    /// Publishes the permits available now, and starts a saturation period when none is left.
    fn note_saturation(&self, stats: &LockStats) {
        let available = self.inner.available_permits();
        stats.available.store(available as u64, Relaxed);
        if available == 0 && stats.saturated_since.load(Relaxed) == 0 {
            let _ = stats
                .saturated_since
                .compare_exchange(0, clock::now(), Relaxed, Relaxed);
        }
    }

    /// Publishes the permits available now, and ends a saturation period once one is.
    fn end_saturation(&self, stats: &LockStats) {
        let available = self.inner.available_permits();
        stats.available.store(available as u64, Relaxed);
        let since = stats.saturated_since.load(Relaxed);
        if since != 0
            && available > 0
            && stats
                .saturated_since
                .compare_exchange(since, 0, Relaxed, Relaxed)
                .is_ok()
        {
            stats
                .saturated_ns
                .fetch_add(clock::delta_ns(since, clock::now()), Relaxed);
        }
    }

    fn released(&self) {
        if let Some(stats) = &self.stats {
            self.end_saturation(stats);
        }
    }
}

/// Forgets the permits of a borrowed or owned permit, keeping the semaphore's count true.
fn forget_permits(inner: &mut Option<tokio::sync::SemaphorePermit<'_>>, sem: &Semaphore) {
    if let Some(inner) = inner.take() {
        let n = inner.num_permits() as u64;
        inner.forget();
        if let Some(stats) = &sem.stats {
            stats.permits.fetch_sub(n, Relaxed);
        }
    }
}

/// Moves `theirs` into `ours`.
fn merge_permits<'a>(
    ours: &mut Option<tokio::sync::SemaphorePermit<'a>>,
    theirs: &mut Option<tokio::sync::SemaphorePermit<'a>>,
) {
    if let (Some(inner), Some(theirs)) = (ours.as_mut(), theirs.take()) {
        inner.merge(theirs);
    }
}

fn count(inner: &Option<tokio::sync::SemaphorePermit<'_>>) -> usize {
    inner.as_ref().map_or(0, |p| p.num_permits())
}

impl<'a> SemaphorePermit<'a> {
    /// Keeps the permits out of the semaphore for good.
    pub fn forget(mut self) {
        forget_permits(&mut self.inner, self.sem);
    }

    /// Moves the permits of `other` into this one.
    pub fn merge(&mut self, mut other: Self) {
        merge_permits(&mut self.inner, &mut other.inner);
    }

    /// Splits `n` permits off into a new permit, or `None` if this one holds fewer.
    pub fn split(&mut self, n: usize) -> Option<Self> {
        let inner = self.inner.as_mut()?.split(n)?;
        Some(SemaphorePermit {
            inner: Some(inner),
            sem: self.sem,
        })
    }

    /// How many permits this holds.
    pub fn num_permits(&self) -> usize {
        count(&self.inner)
    }

    /// The semaphore the permits came from.
    pub fn semaphore(&self) -> &'a Semaphore {
        self.sem
    }
}

impl Drop for SemaphorePermit<'_> {
    fn drop(&mut self) {
        drop(self.inner.take());
        self.sem.released();
    }
}

impl OwnedSemaphorePermit {
    fn from_permit(mut permit: SemaphorePermit<'_>, sem: &Arc<Semaphore>) -> Self {
        let inner = permit.inner.take();
        // SAFETY: the permit borrows the semaphore inside `sem`'s allocation, which the returned
        // value keeps alive for as long as the permit.
        let inner: Option<tokio::sync::SemaphorePermit<'static>> =
            unsafe { std::mem::transmute(inner) };
        OwnedSemaphorePermit {
            inner,
            sem: sem.clone(),
        }
    }

    /// Keeps the permits out of the semaphore for good.
    pub fn forget(mut self) {
        forget_permits(&mut self.inner, &self.sem);
    }

    /// Moves the permits of `other` (of the same semaphore) into this one.
    pub fn merge(&mut self, mut other: Self) {
        merge_permits(&mut self.inner, &mut other.inner);
    }

    /// Splits `n` permits off into a new permit, or `None` if this one holds fewer.
    pub fn split(&mut self, n: usize) -> Option<Self> {
        let inner = self.inner.as_mut()?.split(n)?;
        Some(OwnedSemaphorePermit {
            inner: Some(inner),
            sem: self.sem.clone(),
        })
    }

    /// How many permits this holds.
    pub fn num_permits(&self) -> usize {
        count(&self.inner)
    }

    /// The semaphore the permits came from.
    pub fn semaphore(&self) -> &Arc<Semaphore> {
        &self.sem
    }
}

impl Drop for OwnedSemaphorePermit {
    fn drop(&mut self) {
        drop(self.inner.take());
        self.sem.released();
    }
}

/// As tokio's.
impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.inner, f)
    }
}

/// As tokio's: `SemaphorePermit { sem: .., permits: N }`.
impl fmt::Debug for SemaphorePermit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SemaphorePermit")
            .field("sem", &self.sem.inner)
            .field("permits", &(self.num_permits() as u32))
            .finish()
    }
}

/// As tokio's: `OwnedSemaphorePermit { sem: .., permits: N }`.
impl fmt::Debug for OwnedSemaphorePermit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnedSemaphorePermit")
            .field("sem", &self.sem.inner)
            .field("permits", &(self.num_permits() as u32))
            .finish()
    }
}
