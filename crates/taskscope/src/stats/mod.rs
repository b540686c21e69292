//! Lock-free statistics written on the hot path and sampled by the collector: the bottom floor of
//! the crate, atomics only.

pub(crate) mod histogram;
pub(crate) mod join;
pub(crate) mod lock;
pub(crate) mod prefetch;
pub(crate) mod samples;
pub(crate) mod state;
pub(crate) mod task;
pub(crate) mod task_histogram;
pub(crate) mod task_locks;
pub(crate) mod waiters;
pub(crate) mod wake;
