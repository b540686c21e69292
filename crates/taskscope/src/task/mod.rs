//! Instrumented tasks: the spawn functions, the poll wrapper and the waker proxy.

#[cfg(tokio_unstable)]
pub(crate) mod hooks;
pub(crate) mod instrumented;
pub(crate) mod scope;
pub(crate) mod spawn;
pub(crate) mod waker;
