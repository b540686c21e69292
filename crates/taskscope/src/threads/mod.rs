//! taskscope's own threads: the watchdog's 2 ms scan, the collector's 100 ms tick, the
//! symbolizer, the watch of workers stuck in tasks taskscope did not spawn, and the tracing of
//! the tasks of deadlocks and long waits.

pub(crate) mod chains;
pub(crate) mod collector;
pub(crate) mod foreign;
pub(crate) mod profiler;
pub(crate) mod symbolizer;
pub(crate) mod watchdog;
