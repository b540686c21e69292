//! Instrumented tasks: the spawn functions, the poll wrapper, the waker proxy and the trace
//! poll of task dumps.

#[cfg(tokio_unstable)]
pub(crate) mod hooks;
pub(crate) mod instrumented;
pub(crate) mod join;
pub(crate) mod scope;
pub(crate) mod spawn;
pub(crate) mod trace;
pub(crate) mod waker;
