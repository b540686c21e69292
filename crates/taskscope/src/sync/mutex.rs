//! `taskscope::sync::Mutex`: `tokio::sync::Mutex` with waits, holds and holders recorded.

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

/// An asynchronous mutex, like [`tokio::sync::Mutex`], that records how long tasks wait for it
/// and hold it, who holds it now, and lock-order and held-across-await problems.
///
/// ```
/// use std::sync::Arc;
/// use taskscope::sync::Mutex;
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let counter = Arc::new(Mutex::named("counter", 0u64));
/// let c = counter.clone();
/// tokio::spawn(async move { *c.lock().await += 1 }).await.unwrap();
/// assert_eq!(*counter.lock().await, 1);
/// # }
/// ```
pub struct Mutex<T: ?Sized> {
    stats: Option<crate::sync::register::Registered>,
    inner: tokio::sync::Mutex<T>,
}

guard! {
    /// A guard of a [`Mutex`]; releases the lock when dropped.
    #[must_use = "if unused the Mutex will immediately unlock"]
    pub struct MutexGuard ['a, T: ?Sized] ['a, T] => T, write {
        // Dropped first: records the hold while the lock is still held.
        held: Option<Held>,
        inner: tokio::sync::MutexGuard<'a, T>,
        lock: &'a Mutex<T>,
    }
}

guard! {
    /// A guard of a [`Mutex`] mapped to a part of the protected value.
    #[must_use = "if unused the Mutex will immediately unlock"]
    pub struct MappedMutexGuard ['a, T: ?Sized] ['a, T] => T, write {
        held: Option<Held>,
        inner: tokio::sync::MappedMutexGuard<'a, T>,
    }
}

guard! {
    /// An owned guard of a [`Mutex`] in an `Arc`, from [`Mutex::lock_owned`].
    #[must_use = "if unused the Mutex will immediately unlock"]
    pub struct OwnedMutexGuard [T: ?Sized + 'static] [T] => T, write {
        held: Option<Held>,
        // Borrows from `lock`, which is declared after it so it outlives it.
        inner: tokio::sync::MutexGuard<'static, T>,
        lock: Arc<Mutex<T>>,
    }
}

guard! {
    /// An owned guard mapped to a part of the protected value.
    #[must_use = "if unused the Mutex will immediately unlock"]
    pub struct OwnedMappedMutexGuard [T: ?Sized + 'static, U: ?Sized + 'static] [T, U]
        declared [T: ?Sized + 'static, U: ?Sized + 'static = T] => U, write {
        held: Option<Held>,
        inner: tokio::sync::MappedMutexGuard<'static, U>,
        _lock: Arc<Mutex<T>>,
    }
}

impl<T> Mutex<T> {
    /// A new mutex, named after its creation location.
    #[track_caller]
    pub fn new(value: T) -> Self {
        Mutex::with_name(Cow::Borrowed(""), Location::caller(), value)
    }

    /// A new mutex with a name for views and reports.
    #[track_caller]
    pub fn named(name: impl Into<Cow<'static, str>>, value: T) -> Self {
        Mutex::with_name(name.into(), Location::caller(), value)
    }

    /// A mutex usable in a `static`. It cannot register itself at compile time, so it is a plain
    /// tokio mutex that taskscope does not observe.
    pub const fn const_new(value: T) -> Self {
        Mutex {
            stats: None,
            inner: tokio::sync::Mutex::const_new(value),
        }
    }

    fn with_name(name: Cow<'static, str>, location: &'static Location<'static>, value: T) -> Self {
        Mutex {
            stats: register(name, location, LockKind::Mutex),
            inner: tokio::sync::Mutex::new(value),
        }
    }

    /// Consumes the mutex, returning the value.
    pub fn into_inner(self) -> T {
        self.inner.into_inner()
    }
}

impl<T: ?Sized> Mutex<T> {
    /// Locks the mutex, waiting (fairly, first come first served) while another holds it.
    #[track_caller]
    pub fn lock(&self) -> impl Future<Output = MutexGuard<'_, T>> + '_ {
        self.lock_at(Location::caller())
    }

    /// Locks the mutex if it is free.
    #[track_caller]
    pub fn try_lock(&self) -> Result<MutexGuard<'_, T>, TryLockError> {
        let inner = self.inner.try_lock()?;
        Ok(MutexGuard {
            held: hold(self.stats.as_ref(), Location::caller(), 0, false, true),
            inner,
            lock: self,
        })
    }

    /// Locks the mutex from synchronous code, blocking the thread.
    ///
    /// # Panics
    ///
    /// Like tokio's, when called inside an asynchronous execution context.
    #[track_caller]
    pub fn blocking_lock(&self) -> MutexGuard<'_, T> {
        let (inner, held) = blocking(self.stats.as_ref(), true, || self.inner.blocking_lock());
        MutexGuard {
            held,
            inner,
            lock: self,
        }
    }

    /// Locks the mutex and returns a guard that owns an `Arc` of it.
    #[track_caller]
    pub fn lock_owned(self: Arc<Self>) -> impl Future<Output = OwnedMutexGuard<T>>
    where
        T: 'static,
    {
        let location = Location::caller();
        async move {
            let guard = self.lock_at(location).await;
            OwnedMutexGuard::from_guard(guard, &self)
        }
    }

    async fn lock_at(&self, location: &'static Location<'static>) -> MutexGuard<'_, T> {
        let side = self.stats.as_ref();
        let (inner, wait, contended) =
            acquire!(side, location, self.inner.try_lock(), self.inner.lock());
        MutexGuard {
            held: hold(side, location, wait, contended, true),
            inner,
            lock: self,
        }
    }

    /// Locks the mutex if it is free, returning an owned guard.
    #[track_caller]
    pub fn try_lock_owned(self: Arc<Self>) -> Result<OwnedMutexGuard<T>, TryLockError>
    where
        T: 'static,
    {
        let guard = self.try_lock()?;
        Ok(OwnedMutexGuard::from_guard(guard, &self))
    }

    /// Locks from synchronous code, returning an owned guard.
    #[track_caller]
    pub fn blocking_lock_owned(self: Arc<Self>) -> OwnedMutexGuard<T>
    where
        T: 'static,
    {
        let guard = self.blocking_lock();
        OwnedMutexGuard::from_guard(guard, &self)
    }

    /// A mutable reference to the value; no locking needed, the borrow is exclusive.
    pub fn get_mut(&mut self) -> &mut T {
        self.inner.get_mut()
    }
}

impl<T: ?Sized + 'static> OwnedMutexGuard<T> {
    fn from_guard(guard: MutexGuard<'_, T>, lock: &Arc<Mutex<T>>) -> Self {
        let MutexGuard { held, inner, .. } = guard;
        // SAFETY: the guard borrows the mutex inside `lock`'s allocation, which the returned
        // value keeps alive (the `Arc` field is dropped after the guard field).
        let inner: tokio::sync::MutexGuard<'static, T> = unsafe { std::mem::transmute(inner) };
        OwnedMutexGuard {
            held,
            inner,
            lock: lock.clone(),
        }
    }

    /// The `Arc` of the locked mutex.
    pub fn mutex(this: &Self) -> &Arc<Mutex<T>> {
        &this.lock
    }

    /// Maps the guard to a part of the value.
    pub fn map<U: ?Sized + 'static, F: FnOnce(&mut T) -> &mut U>(
        this: Self,
        f: F,
    ) -> OwnedMappedMutexGuard<T, U> {
        let OwnedMutexGuard { held, inner, lock } = this;
        OwnedMappedMutexGuard {
            held,
            inner: tokio::sync::MutexGuard::map(inner, f),
            _lock: lock,
        }
    }

    /// Maps the guard to a part of the value if `f` returns `Some`; gives the guard back if not.
    pub fn try_map<U: ?Sized + 'static, F: FnOnce(&mut T) -> Option<&mut U>>(
        this: Self,
        f: F,
    ) -> Result<OwnedMappedMutexGuard<T, U>, Self> {
        let OwnedMutexGuard { held, inner, lock } = this;
        match tokio::sync::MutexGuard::try_map(inner, f) {
            Ok(inner) => Ok(OwnedMappedMutexGuard {
                held,
                inner,
                _lock: lock,
            }),
            Err(inner) => Err(OwnedMutexGuard { held, inner, lock }),
        }
    }
}

impl<T: ?Sized + 'static, U: ?Sized + 'static> OwnedMappedMutexGuard<T, U> {
    /// Maps further.
    pub fn map<V: 'static, F: FnOnce(&mut U) -> &mut V>(
        this: Self,
        f: F,
    ) -> OwnedMappedMutexGuard<T, V> {
        let OwnedMappedMutexGuard { held, inner, _lock } = this;
        OwnedMappedMutexGuard {
            held,
            inner: tokio::sync::MappedMutexGuard::map(inner, f),
            _lock,
        }
    }

    /// Maps further if `f` returns `Some`; gives the guard back if not.
    pub fn try_map<V: 'static, F: FnOnce(&mut U) -> Option<&mut V>>(
        this: Self,
        f: F,
    ) -> Result<OwnedMappedMutexGuard<T, V>, Self> {
        let OwnedMappedMutexGuard { held, inner, _lock } = this;
        match tokio::sync::MappedMutexGuard::try_map(inner, f) {
            Ok(inner) => Ok(OwnedMappedMutexGuard { held, inner, _lock }),
            Err(inner) => Err(OwnedMappedMutexGuard { held, inner, _lock }),
        }
    }
}

impl<'a, T: ?Sized> MutexGuard<'a, T> {
    /// The locked mutex.
    pub fn mutex(this: &Self) -> &'a Mutex<T> {
        this.lock
    }

    /// Maps the guard to a part of the value.
    pub fn map<U: ?Sized, F: FnOnce(&mut T) -> &mut U>(
        this: Self,
        f: F,
    ) -> MappedMutexGuard<'a, U> {
        let MutexGuard { held, inner, .. } = this;
        MappedMutexGuard {
            held,
            inner: tokio::sync::MutexGuard::map(inner, f),
        }
    }

    /// Maps the guard to a part of the value if `f` returns `Some`; gives the guard back if not.
    pub fn try_map<U: ?Sized, F: FnOnce(&mut T) -> Option<&mut U>>(
        this: Self,
        f: F,
    ) -> Result<MappedMutexGuard<'a, U>, Self> {
        let MutexGuard { held, inner, lock } = this;
        match tokio::sync::MutexGuard::try_map(inner, f) {
            Ok(inner) => Ok(MappedMutexGuard { held, inner }),
            Err(inner) => Err(MutexGuard { held, inner, lock }),
        }
    }
}

impl<'a, T: ?Sized> MappedMutexGuard<'a, T> {
    /// Maps further.
    pub fn map<U, F: FnOnce(&mut T) -> &mut U>(this: Self, f: F) -> MappedMutexGuard<'a, U> {
        let MappedMutexGuard { held, inner } = this;
        MappedMutexGuard {
            held,
            inner: tokio::sync::MappedMutexGuard::map(inner, f),
        }
    }

    /// Maps further if `f` returns `Some`; gives the guard back if not.
    pub fn try_map<U, F: FnOnce(&mut T) -> Option<&mut U>>(
        this: Self,
        f: F,
    ) -> Result<MappedMutexGuard<'a, U>, Self> {
        let MappedMutexGuard { held, inner } = this;
        match tokio::sync::MappedMutexGuard::try_map(inner, f) {
            Ok(inner) => Ok(MappedMutexGuard { held, inner }),
            Err(inner) => Err(MappedMutexGuard { held, inner }),
        }
    }
}

lock_impls!(Mutex);
