//! `taskscope::sync::RwLock`: `tokio::sync::RwLock` with read and write sides recorded apart.

use std::borrow::Cow;
use std::future::Future;
use std::panic::Location;
use std::sync::Arc;

use crate::stats::lock::LockKind;
use crate::sync::acquire::{acquire, blocking, hold};
use crate::sync::guards::{guard, lock_impls};
use crate::sync::held::Held;
use crate::sync::register::register;
use tokio::sync::TryLockError;

/// An asynchronous reader-writer lock, like [`tokio::sync::RwLock`] (fair, write-preferring), that
/// records waits and holds of readers and writers separately.
///
/// ```
/// use taskscope::sync::RwLock;
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let config = RwLock::named("config", String::from("v1"));
/// assert_eq!(*config.read().await, "v1");
/// *config.write().await = "v2".into();
/// assert_eq!(*config.read().await, "v2");
/// # }
/// ```
pub struct RwLock<T: ?Sized> {
    read_stats: Option<crate::sync::register::Registered>,
    write_stats: Option<crate::sync::register::Registered>,
    inner: tokio::sync::RwLock<T>,
}

guard! {
    /// Shared read access to an [`RwLock`].
    #[must_use = "if unused the RwLock will immediately unlock"]
    pub struct RwLockReadGuard ['a, T: ?Sized] ['a, T] => T, read {
        held: Option<Held>,
        inner: tokio::sync::RwLockReadGuard<'a, T>,
    }
}

guard! {
    /// Exclusive write access to an [`RwLock`].
    #[must_use = "if unused the RwLock will immediately unlock"]
    pub struct RwLockWriteGuard ['a, T: ?Sized] ['a, T] => T, write {
        held: Option<Held>,
        inner: tokio::sync::RwLockWriteGuard<'a, T>,
        lock: &'a RwLock<T>,
    }
}

guard! {
    /// Write access to a part of an [`RwLock`]'s value.
    #[must_use = "if unused the RwLock will immediately unlock"]
    pub struct RwLockMappedWriteGuard ['a, T: ?Sized] ['a, T] => T, write {
        held: Option<Held>,
        inner: tokio::sync::RwLockMappedWriteGuard<'a, T>,
    }
}

guard! {
    /// Owned read access, from [`RwLock::read_owned`], to the value (`U` = `T`) or to a part of
    /// it (`map`, `OwnedRwLockWriteGuard::downgrade_map`), as tokio's.
    #[must_use = "if unused the RwLock will immediately unlock"]
    pub struct OwnedRwLockReadGuard [T: ?Sized + 'static, U: ?Sized + 'static] [T, U]
        declared [T: ?Sized + 'static, U: ?Sized + 'static = T] => U, read {
        pub(super) held: Option<Held>,
        // Dropped before the lock it borrows from (fields drop in order).
        pub(super) inner: tokio::sync::RwLockReadGuard<'static, U>,
        pub(super) lock: Arc<RwLock<T>>,
    }
}

guard! {
    /// Owned write access, from [`RwLock::write_owned`].
    #[must_use = "if unused the RwLock will immediately unlock"]
    pub struct OwnedRwLockWriteGuard [T: ?Sized + 'static] [T] => T, write {
        pub(super) held: Option<Held>,
        pub(super) inner: tokio::sync::RwLockWriteGuard<'static, T>,
        pub(super) lock: Arc<RwLock<T>>,
    }
}

impl<T> RwLock<T> {
    /// A new lock, named after its creation location.
    #[track_caller]
    pub fn new(value: T) -> Self {
        RwLock::build(
            Cow::Borrowed(""),
            Location::caller(),
            tokio::sync::RwLock::new(value),
        )
    }

    /// A new lock with a name for views and reports.
    #[track_caller]
    pub fn named(name: impl Into<Cow<'static, str>>, value: T) -> Self {
        RwLock::build(
            name.into(),
            Location::caller(),
            tokio::sync::RwLock::new(value),
        )
    }

    /// A new lock allowing at most `max_reads` concurrent readers.
    ///
    /// # Panics
    ///
    /// Like tokio's, if `max_reads` is above `u32::MAX >> 3`.
    #[track_caller]
    pub fn with_max_readers(value: T, max_reads: u32) -> Self {
        let inner = tokio::sync::RwLock::with_max_readers(value, max_reads);
        RwLock::build(Cow::Borrowed(""), Location::caller(), inner)
    }

    /// A lock usable in a `static` with at most `max_reads` concurrent readers: a plain tokio
    /// lock that taskscope does not observe.
    ///
    /// # Panics
    ///
    /// Like tokio's, if `max_reads` is above `u32::MAX >> 3`.
    pub const fn const_with_max_readers(value: T, max_reads: u32) -> Self {
        RwLock {
            read_stats: None,
            write_stats: None,
            inner: tokio::sync::RwLock::const_with_max_readers(value, max_reads),
        }
    }

    /// A lock usable in a `static`: a plain tokio lock that taskscope does not observe.
    pub const fn const_new(value: T) -> Self {
        RwLock {
            read_stats: None,
            write_stats: None,
            inner: tokio::sync::RwLock::const_new(value),
        }
    }

    fn build(
        name: Cow<'static, str>,
        location: &'static Location<'static>,
        inner: tokio::sync::RwLock<T>,
    ) -> Self {
        let read_stats = register(name.clone(), location, LockKind::RwLockRead);
        let write_stats = register(name, location, LockKind::RwLockWrite);
        if let (Some(read), Some(write)) = (&read_stats, &write_stats) {
            read.set_write_side(write);
        }
        RwLock {
            read_stats,
            write_stats,
            inner,
        }
    }

    /// Consumes the lock, returning the value.
    pub fn into_inner(self) -> T {
        self.inner.into_inner()
    }
}

impl<T: ?Sized> RwLock<T> {
    /// Locks for reading, waiting while a writer holds or waits for the lock.
    #[track_caller]
    pub fn read(&self) -> impl Future<Output = RwLockReadGuard<'_, T>> + '_ {
        self.read_at(Location::caller())
    }

    /// Locks for writing, waiting while anyone holds the lock.
    #[track_caller]
    pub fn write(&self) -> impl Future<Output = RwLockWriteGuard<'_, T>> + '_ {
        self.write_at(Location::caller())
    }

    /// Locks for reading if no writer holds or waits for the lock.
    #[track_caller]
    pub fn try_read(&self) -> Result<RwLockReadGuard<'_, T>, TryLockError> {
        let inner = self.inner.try_read()?;
        Ok(RwLockReadGuard {
            held: hold(
                self.read_stats.as_ref(),
                Location::caller(),
                0,
                false,
                false,
            ),
            inner,
        })
    }

    /// Locks for writing if the lock is free.
    #[track_caller]
    pub fn try_write(&self) -> Result<RwLockWriteGuard<'_, T>, TryLockError> {
        let inner = self.inner.try_write()?;
        Ok(RwLockWriteGuard {
            held: hold(
                self.write_stats.as_ref(),
                Location::caller(),
                0,
                false,
                true,
            ),
            inner,
            lock: self,
        })
    }

    /// Locks for reading from synchronous code.
    ///
    /// # Panics
    ///
    /// Like tokio's, when called inside an asynchronous execution context.
    #[track_caller]
    pub fn blocking_read(&self) -> RwLockReadGuard<'_, T> {
        let (inner, held) = blocking(self.read_stats.as_ref(), false, || {
            self.inner.blocking_read()
        });
        RwLockReadGuard { held, inner }
    }

    /// Locks for writing from synchronous code.
    ///
    /// # Panics
    ///
    /// Like tokio's, when called inside an asynchronous execution context.
    #[track_caller]
    pub fn blocking_write(&self) -> RwLockWriteGuard<'_, T> {
        let (inner, held) = blocking(self.write_stats.as_ref(), true, || {
            self.inner.blocking_write()
        });
        RwLockWriteGuard {
            held,
            inner,
            lock: self,
        }
    }

    /// Locks for reading, returning a guard that owns an `Arc` of the lock.
    #[track_caller]
    pub fn read_owned(self: Arc<Self>) -> impl Future<Output = OwnedRwLockReadGuard<T>>
    where
        T: 'static,
    {
        let read = Location::caller();
        async move {
            let guard = self.read_at(read).await;
            OwnedRwLockReadGuard::from_guard(guard, &self)
        }
    }

    async fn read_at(&self, at: &'static Location<'static>) -> RwLockReadGuard<'_, T> {
        let side = self.read_stats.as_ref();
        let (inner, wait, contended) = acquire!(side, at, self.inner.try_read(), self.inner.read());
        RwLockReadGuard {
            held: hold(side, at, wait, contended, false),
            inner,
        }
    }

    async fn write_at(&self, at: &'static Location<'static>) -> RwLockWriteGuard<'_, T> {
        let side = self.write_stats.as_ref();
        let (inner, wait, contended) =
            acquire!(side, at, self.inner.try_write(), self.inner.write());
        RwLockWriteGuard {
            held: hold(side, at, wait, contended, true),
            inner,
            lock: self,
        }
    }

    /// Locks for writing, returning a guard that owns an `Arc` of the lock.
    #[track_caller]
    pub fn write_owned(self: Arc<Self>) -> impl Future<Output = OwnedRwLockWriteGuard<T>>
    where
        T: 'static,
    {
        let at = Location::caller();
        async move {
            let guard = self.write_at(at).await;
            OwnedRwLockWriteGuard::from_guard(guard, &self)
        }
    }

    /// Locks for reading if possible, returning an owned guard.
    #[track_caller]
    pub fn try_read_owned(self: Arc<Self>) -> Result<OwnedRwLockReadGuard<T>, TryLockError>
    where
        T: 'static,
    {
        let guard = self.try_read()?;
        Ok(OwnedRwLockReadGuard::from_guard(guard, &self))
    }

    /// Locks for writing if possible, returning an owned guard.
    #[track_caller]
    pub fn try_write_owned(self: Arc<Self>) -> Result<OwnedRwLockWriteGuard<T>, TryLockError>
    where
        T: 'static,
    {
        let guard = self.try_write()?;
        Ok(OwnedRwLockWriteGuard::from_guard(guard, &self))
    }

    /// A mutable reference to the value; the borrow is exclusive.
    pub fn get_mut(&mut self) -> &mut T {
        self.inner.get_mut()
    }
}

impl<T: ?Sized + 'static> OwnedRwLockReadGuard<T> {
    fn from_guard(guard: RwLockReadGuard<'_, T>, lock: &Arc<RwLock<T>>) -> Self {
        let RwLockReadGuard { held, inner } = guard;
        // SAFETY: the guard borrows the lock inside `lock`'s allocation, kept alive by the `Arc`
        // field, which is dropped after the guard field.
        let inner: tokio::sync::RwLockReadGuard<'static, T> = unsafe { std::mem::transmute(inner) };
        OwnedRwLockReadGuard {
            held,
            inner,
            lock: lock.clone(),
        }
    }
}

impl<T: ?Sized + 'static> OwnedRwLockWriteGuard<T> {
    fn from_guard(guard: RwLockWriteGuard<'_, T>, lock: &Arc<RwLock<T>>) -> Self {
        let RwLockWriteGuard { held, inner, .. } = guard;
        // SAFETY: as in `OwnedRwLockReadGuard::from_guard`.
        let inner: tokio::sync::RwLockWriteGuard<'static, T> =
            unsafe { std::mem::transmute(inner) };
        OwnedRwLockWriteGuard {
            held,
            inner,
            lock: lock.clone(),
        }
    }
}

impl<'a, T: ?Sized> RwLockReadGuard<'a, T> {
    /// Maps the guard to a part of the value.
    pub fn map<U: ?Sized, F: FnOnce(&T) -> &U>(this: Self, f: F) -> RwLockReadGuard<'a, U> {
        let RwLockReadGuard { held, inner } = this;
        RwLockReadGuard {
            held,
            inner: tokio::sync::RwLockReadGuard::map(inner, f),
        }
    }

    /// Maps the guard to a part of the value if `f` returns `Some`; gives the guard back if not.
    pub fn try_map<U: ?Sized, F: FnOnce(&T) -> Option<&U>>(
        this: Self,
        f: F,
    ) -> Result<RwLockReadGuard<'a, U>, Self> {
        let RwLockReadGuard { held, inner } = this;
        match tokio::sync::RwLockReadGuard::try_map(inner, f) {
            Ok(inner) => Ok(RwLockReadGuard { held, inner }),
            Err(inner) => Err(RwLockReadGuard { held, inner }),
        }
    }
}

impl<'a, T: ?Sized> RwLockWriteGuard<'a, T> {
    /// Maps the guard to a part of the value.
    pub fn map<U: ?Sized, F: FnOnce(&mut T) -> &mut U>(
        this: Self,
        f: F,
    ) -> RwLockMappedWriteGuard<'a, U> {
        let RwLockWriteGuard { held, inner, .. } = this;
        RwLockMappedWriteGuard {
            held,
            inner: tokio::sync::RwLockWriteGuard::map(inner, f),
        }
    }

    /// Maps the guard to a part of the value if `f` returns `Some`; gives the guard back if not.
    pub fn try_map<U: ?Sized, F: FnOnce(&mut T) -> Option<&mut U>>(
        this: Self,
        f: F,
    ) -> Result<RwLockMappedWriteGuard<'a, U>, Self> {
        let RwLockWriteGuard { held, inner, lock } = this;
        match tokio::sync::RwLockWriteGuard::try_map(inner, f) {
            Ok(inner) => Ok(RwLockMappedWriteGuard { held, inner }),
            Err(inner) => Err(RwLockWriteGuard { held, inner, lock }),
        }
    }

    /// The guard as a mapped guard of the whole value.
    pub fn into_mapped(this: Self) -> RwLockMappedWriteGuard<'a, T> {
        Self::map(this, |value| value)
    }

    /// Turns write access into read access without letting a writer in between.
    pub fn downgrade(self) -> RwLockReadGuard<'a, T> {
        let RwLockWriteGuard { held, inner, lock } = self;
        let location = held.as_ref().map(Held::location);
        drop(held); // the write hold ends here
        let inner = inner.downgrade();
        RwLockReadGuard {
            held: read_hold(lock, location),
            inner,
        }
    }

    /// Turns write access into read access to a part of the value, without letting a writer in
    /// between.
    pub fn downgrade_map<U: ?Sized, F: FnOnce(&T) -> &U>(
        this: Self,
        f: F,
    ) -> RwLockReadGuard<'a, U> {
        let RwLockWriteGuard { held, inner, lock } = this;
        let location = held.as_ref().map(Held::location);
        drop(held); // the write hold ends here
        let inner = tokio::sync::RwLockWriteGuard::downgrade_map(inner, f);
        RwLockReadGuard {
            held: read_hold(lock, location),
            inner,
        }
    }

    /// Like [`downgrade_map`](Self::downgrade_map) if `f` returns `Some`; gives the write guard
    /// back, still writing, if not.
    pub fn try_downgrade_map<U: ?Sized, F: FnOnce(&T) -> Option<&U>>(
        this: Self,
        f: F,
    ) -> Result<RwLockReadGuard<'a, U>, Self> {
        let RwLockWriteGuard { held, inner, lock } = this;
        match tokio::sync::RwLockWriteGuard::try_downgrade_map(inner, f) {
            Ok(inner) => {
                let location = held.as_ref().map(Held::location);
                drop(held); // the write hold ends here
                Ok(RwLockReadGuard {
                    held: read_hold(lock, location),
                    inner,
                })
            }
            Err(inner) => Err(RwLockWriteGuard { held, inner, lock }),
        }
    }
}

impl<'a, T: ?Sized> RwLockMappedWriteGuard<'a, T> {
    /// Maps further.
    pub fn map<U: ?Sized, F: FnOnce(&mut T) -> &mut U>(
        this: Self,
        f: F,
    ) -> RwLockMappedWriteGuard<'a, U> {
        let RwLockMappedWriteGuard { held, inner } = this;
        RwLockMappedWriteGuard {
            held,
            inner: tokio::sync::RwLockMappedWriteGuard::map(inner, f),
        }
    }

    /// Maps further if `f` returns `Some`; gives the guard back if not.
    pub fn try_map<U: ?Sized, F: FnOnce(&mut T) -> Option<&mut U>>(
        this: Self,
        f: F,
    ) -> Result<RwLockMappedWriteGuard<'a, U>, Self> {
        let RwLockMappedWriteGuard { held, inner } = this;
        match tokio::sync::RwLockMappedWriteGuard::try_map(inner, f) {
            Ok(inner) => Ok(RwLockMappedWriteGuard { held, inner }),
            Err(inner) => Err(RwLockMappedWriteGuard { held, inner }),
        }
    }
}

/// The read hold a downgraded write guard starts, at the write's acquire site.
pub(super) fn read_hold<T: ?Sized>(
    lock: &RwLock<T>,
    location: Option<&'static Location<'static>>,
) -> Option<Held> {
    location.and_then(|at| hold(lock.read_stats.as_ref(), at, 0, false, false))
}

lock_impls!(RwLock);
