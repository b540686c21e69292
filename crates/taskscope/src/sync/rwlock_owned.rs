//! What `taskscope::sync::RwLock`'s owned guards do besides reading and writing, as tokio's:
//! mapping to a part of the value, downgrading write access to read access, and the owned
//! mapped write guard. A write hold that becomes a read hold ends as a write and starts as a
//! read at the same acquire site.

use std::sync::Arc;

use crate::sync::guards::guard;
use crate::sync::held::Held;
use crate::sync::rwlock::{read_hold, OwnedRwLockReadGuard, OwnedRwLockWriteGuard, RwLock};

guard! {
    /// Owned write access to a part of an [`RwLock`]'s value, from
    /// [`OwnedRwLockWriteGuard::map`] or [`OwnedRwLockWriteGuard::into_mapped`].
    #[must_use = "if unused the RwLock will immediately unlock"]
    pub struct OwnedRwLockMappedWriteGuard [T: ?Sized + 'static, U: ?Sized + 'static] [T, U]
        declared [T: ?Sized + 'static, U: ?Sized + 'static = T] => U, write {
        held: Option<Held>,
        // Dropped before the lock it borrows from (fields drop in order).
        inner: tokio::sync::RwLockMappedWriteGuard<'static, U>,
        lock: Arc<RwLock<T>>,
    }
}

impl<T: ?Sized + 'static, U: ?Sized + 'static> OwnedRwLockReadGuard<T, U> {
    /// The `Arc` of the locked lock.
    pub fn rwlock(this: &Self) -> &Arc<RwLock<T>> {
        &this.lock
    }

    /// Maps the guard to a part of the value.
    pub fn map<V: ?Sized + 'static, F: FnOnce(&U) -> &V>(
        this: Self,
        f: F,
    ) -> OwnedRwLockReadGuard<T, V> {
        let OwnedRwLockReadGuard { held, inner, lock } = this;
        OwnedRwLockReadGuard {
            held,
            inner: tokio::sync::RwLockReadGuard::map(inner, f),
            lock,
        }
    }

    /// Maps the guard to a part of the value if `f` returns `Some`; gives the guard back if not.
    pub fn try_map<V: ?Sized + 'static, F: FnOnce(&U) -> Option<&V>>(
        this: Self,
        f: F,
    ) -> Result<OwnedRwLockReadGuard<T, V>, Self> {
        let OwnedRwLockReadGuard { held, inner, lock } = this;
        match tokio::sync::RwLockReadGuard::try_map(inner, f) {
            Ok(inner) => Ok(OwnedRwLockReadGuard { held, inner, lock }),
            Err(inner) => Err(OwnedRwLockReadGuard { held, inner, lock }),
        }
    }
}

impl<T: ?Sized + 'static> OwnedRwLockWriteGuard<T> {
    /// The `Arc` of the locked lock.
    pub fn rwlock(this: &Self) -> &Arc<RwLock<T>> {
        &this.lock
    }

    /// Maps the guard to a part of the value, still writing.
    pub fn map<U: ?Sized + 'static, F: FnOnce(&mut T) -> &mut U>(
        this: Self,
        f: F,
    ) -> OwnedRwLockMappedWriteGuard<T, U> {
        let OwnedRwLockWriteGuard { held, inner, lock } = this;
        OwnedRwLockMappedWriteGuard {
            held,
            inner: tokio::sync::RwLockWriteGuard::map(inner, f),
            lock,
        }
    }

    /// Maps the guard to a part of the value if `f` returns `Some`; gives the guard back if not.
    pub fn try_map<U: ?Sized + 'static, F: FnOnce(&mut T) -> Option<&mut U>>(
        this: Self,
        f: F,
    ) -> Result<OwnedRwLockMappedWriteGuard<T, U>, Self> {
        let OwnedRwLockWriteGuard { held, inner, lock } = this;
        match tokio::sync::RwLockWriteGuard::try_map(inner, f) {
            Ok(inner) => Ok(OwnedRwLockMappedWriteGuard { held, inner, lock }),
            Err(inner) => Err(OwnedRwLockWriteGuard { held, inner, lock }),
        }
    }

    /// The guard as a mapped guard of the whole value.
    pub fn into_mapped(this: Self) -> OwnedRwLockMappedWriteGuard<T> {
        Self::map(this, |value| value)
    }

    /// Turns write access into read access without letting a writer in between.
    pub fn downgrade(self) -> OwnedRwLockReadGuard<T> {
        Self::downgrade_map(self, |value| value)
    }

    /// Turns write access into read access to a part of the value, without letting a writer in
    /// between.
    pub fn downgrade_map<U: ?Sized + 'static, F: FnOnce(&T) -> &U>(
        this: Self,
        f: F,
    ) -> OwnedRwLockReadGuard<T, U> {
        let OwnedRwLockWriteGuard { held, inner, lock } = this;
        let location = held.as_ref().map(Held::location);
        drop(held); // the write hold ends here
        let inner = tokio::sync::RwLockWriteGuard::downgrade_map(inner, f);
        OwnedRwLockReadGuard {
            held: read_hold(&lock, location),
            inner,
            lock,
        }
    }

    /// Like [`downgrade_map`](Self::downgrade_map) if `f` returns `Some`; gives the write guard
    /// back, still writing, if not.
    pub fn try_downgrade_map<U: ?Sized + 'static, F: FnOnce(&T) -> Option<&U>>(
        this: Self,
        f: F,
    ) -> Result<OwnedRwLockReadGuard<T, U>, Self> {
        let OwnedRwLockWriteGuard { held, inner, lock } = this;
        match tokio::sync::RwLockWriteGuard::try_downgrade_map(inner, f) {
            Ok(inner) => {
                let location = held.as_ref().map(Held::location);
                drop(held); // the write hold ends here
                Ok(OwnedRwLockReadGuard {
                    held: read_hold(&lock, location),
                    inner,
                    lock,
                })
            }
            Err(inner) => Err(OwnedRwLockWriteGuard { held, inner, lock }),
        }
    }
}

impl<T: ?Sized + 'static, U: ?Sized + 'static> OwnedRwLockMappedWriteGuard<T, U> {
    /// The `Arc` of the locked lock.
    pub fn rwlock(this: &Self) -> &Arc<RwLock<T>> {
        &this.lock
    }

    /// Maps further.
    pub fn map<V: ?Sized + 'static, F: FnOnce(&mut U) -> &mut V>(
        this: Self,
        f: F,
    ) -> OwnedRwLockMappedWriteGuard<T, V> {
        let OwnedRwLockMappedWriteGuard { held, inner, lock } = this;
        OwnedRwLockMappedWriteGuard {
            held,
            inner: tokio::sync::RwLockMappedWriteGuard::map(inner, f),
            lock,
        }
    }

    /// Maps further if `f` returns `Some`; gives the guard back if not.
    pub fn try_map<V: ?Sized + 'static, F: FnOnce(&mut U) -> Option<&mut V>>(
        this: Self,
        f: F,
    ) -> Result<OwnedRwLockMappedWriteGuard<T, V>, Self> {
        let OwnedRwLockMappedWriteGuard { held, inner, lock } = this;
        match tokio::sync::RwLockMappedWriteGuard::try_map(inner, f) {
            Ok(inner) => Ok(OwnedRwLockMappedWriteGuard { held, inner, lock }),
            Err(inner) => Err(OwnedRwLockMappedWriteGuard { held, inner, lock }),
        }
    }
}
