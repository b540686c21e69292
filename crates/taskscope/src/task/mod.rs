//! Instrumented tasks: the spawn functions, the poll wrapper and the waker proxy.

pub(crate) mod instrumented;
pub(crate) mod scope;
pub(crate) mod spawn;
pub(crate) mod waker;
