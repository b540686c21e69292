//! The one clock of the hot path: raw TSC ticks through `quanta` (≈ 8 ns a read here, against
//! ≈ 18 ns for `Instant::now()`, DESIGN.md §10). Ticks are converted to nanoseconds only as
//! deltas; on machines without a usable TSC quanta falls back to the monotonic clock and the
//! same code keeps working.

use std::sync::OnceLock;

static CLOCK: OnceLock<quanta::Clock> = OnceLock::new();

#[inline(always)]
fn clock() -> &'static quanta::Clock {
    CLOCK.get_or_init(quanta::Clock::new)
}

/// Raw ticks now. Never 0, so 0 can mean "unset" in atomics.
#[inline(always)]
pub(crate) fn now() -> u64 {
    clock().raw() | 1
}

/// Nanoseconds from `start` to `end` (0 when `end` is not after `start`).
#[inline(always)]
pub(crate) fn delta_ns(start: u64, end: u64) -> u64 {
    clock().delta_as_nanos(start, end)
}

/// Makes sure the clock is calibrated before the first poll needs it.
pub(crate) fn warm_up() {
    let _ = now();
}
