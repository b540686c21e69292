//! What taskscope knows while the application runs: the process-global handle and its event
//! queue, the runtimes' probes, the worker slots, the warnings, the poll timeline, the starts of
//! untimed polls, the registry of live objects, and attaching runtimes — each file on its own
//! floor (ARCHITECTURE.md).

pub(crate) mod attach;
pub(crate) mod delta;
pub(crate) mod probe;
pub(crate) mod refusals;
pub(crate) mod registry;
pub(crate) mod shared;
pub(crate) mod timeline;
pub(crate) mod to_wire;
pub(crate) mod untimed;
pub(crate) mod warnings;
pub(crate) mod worker;
