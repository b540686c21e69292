//! What every lock's guard and every lock share: a guard is declared with the hold it stands
//! for and the tokio guard it wraps, reads (and for write access writes) through to the value,
//! and prints as the value does; a lock prints, defaults and converts like tokio's.

/// Declares a guard — `#[attributes] pub struct Name [generics] [arguments] => Target, read |
/// write { fields }` — whose field `inner` derefs to `Target`, with `Deref` (and `DerefMut` for
/// `write`), `Debug` and `Display` like tokio's guards. Its field `held: Option<Held>` notes
/// each access to a plain value, read or write, for `stale_update` (see `Held::note_read`).
/// `declared [generics]` after the arguments declares the struct with other generics than its
/// impls (a default type, `U: ?Sized = T`).
macro_rules! guard {
    ($(#[$attr:meta])* pub struct $guard:ident [$($gen:tt)*] [$($arg:tt)*] => $target:ident, $access:ident {
        $($fields:tt)*
    }) => {
        $crate::sync::guards::guard! {
            $(#[$attr])*
            pub struct $guard [$($gen)*] [$($arg)*] declared [$($gen)*] => $target, $access {
                $($fields)*
            }
        }
    };
    ($(#[$attr:meta])* pub struct $guard:ident [$($gen:tt)*] [$($arg:tt)*] declared [$($decl:tt)*]
        => $target:ident, $access:ident {
        $($fields:tt)*
    }) => {
        $(#[$attr])*
        pub struct $guard<$($decl)*> {
            $($fields)*
        }
        impl<$($gen)*> std::ops::Deref for $guard<$($arg)*> {
            type Target = $target;
            #[inline]
            fn deref(&self) -> &$target {
                // Only plain values are judged (see `Held::note_read`): for the others the note
                // is compiled out.
                if let (false, Some(held)) = (std::mem::needs_drop::<$target>(), &self.held) {
                    held.note_read();
                }
                &self.inner
            }
        }
        impl<$($gen)*> std::fmt::Debug for $guard<$($arg)*> where $target: std::fmt::Debug {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                std::fmt::Debug::fmt(&**self, f)
            }
        }
        impl<$($gen)*> std::fmt::Display for $guard<$($arg)*> where $target: std::fmt::Display {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                std::fmt::Display::fmt(&**self, f)
            }
        }
        $crate::sync::guards::guard!(@$access $guard [$($gen)*] [$($arg)*] => $target);
    };
    (@read $($rest:tt)*) => {};
    (@write $guard:ident [$($gen:tt)*] [$($arg:tt)*] => $target:ident) => {
        impl<$($gen)*> std::ops::DerefMut for $guard<$($arg)*> {
            #[inline]
            fn deref_mut(&mut self) -> &mut $target {
                if let (false, Some(held)) = (std::mem::needs_drop::<$target>(), &self.held) {
                    held.note_write();
                }
                &mut self.inner
            }
        }
    };
}

/// `Debug` as tokio's (the value, or `<locked>` while it is locked, without acquiring it),
/// `Default` and `From<T>` for a lock type `Lock<T>` with a `#[track_caller] fn new(T)`.
macro_rules! lock_impls {
    ($lock:ident) => {
        /// As tokio's: `Lock { data: .. }`, or `Lock { data: <locked> }` while it is held
        /// exclusively (not counted as an acquisition).
        impl<T: ?Sized + std::fmt::Debug> std::fmt::Debug for $lock<T> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                std::fmt::Debug::fmt(&self.inner, f)
            }
        }
        impl<T: Default> Default for $lock<T> {
            #[track_caller]
            fn default() -> Self {
                $lock::new(T::default())
            }
        }
        impl<T> From<T> for $lock<T> {
            #[track_caller]
            fn from(value: T) -> Self {
                $lock::new(value)
            }
        }
    };
}

pub(crate) use {guard, lock_impls};
