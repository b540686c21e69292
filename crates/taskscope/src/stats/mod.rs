//! Lock-free statistics written on the hot path and sampled by the collector: the bottom floor of
//! the crate, atomics only.

pub(crate) mod histogram;
pub(crate) mod task;

/// Keeps a value on its own cache line, so writers on other cores do not invalidate its
/// neighbours (the waker's fields are written from other threads than the poller's).
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct CachePadded<T>(pub(crate) T);

impl<T> std::ops::Deref for CachePadded<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}
