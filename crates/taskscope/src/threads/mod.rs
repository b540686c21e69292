//! taskscope's own threads: the watchdog's 2 ms scan, the collector's 100 ms tick, the
//! symbolizer, and the watch of workers stuck in tasks taskscope did not spawn.

pub(crate) mod collector;
pub(crate) mod foreign;
pub(crate) mod symbolizer;
pub(crate) mod watchdog;
