//! Platforms without stack sampling: no CPU timers, no samples.

use std::time::Duration;

use super::raw::{RawStack, SlotWords};

/// The timer's period (unused here).
pub(crate) const TIMER_PERIOD: Duration = Duration::from_millis(1);

/// Samples waiting for the profiler thread at most (none here).
pub(crate) const RING: usize = 512;

/// No timer.
#[derive(Debug)]
pub(crate) struct CpuTimer;

pub(crate) fn watch(
    _tid: i32,
    _words: Option<SlotWords>,
    _period: Duration,
    _signal: i32,
) -> Result<CpuTimer, String> {
    Err("CPU profiles need Linux on x86_64 or aarch64".into())
}

pub(crate) fn set_keep(_p: f64) {}

pub(crate) fn take_signals() -> u64 {
    0
}

pub(crate) fn drain() -> (Vec<RawStack>, u64, u64) {
    (Vec::new(), 0, 0)
}
