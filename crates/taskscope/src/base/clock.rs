//! The one clock of the hot path.
//!
//! On x86_64 with an invariant TSC (what `quanta` checks and calibrates against the OS clock) a
//! reading is one inlined `rdtsc` (≈ 8 ns here, against ≈ 18 ns for `Instant::now()`,
//! DESIGN.md §10); `quanta::Clock::raw` itself is not inlinable across crates and measured as a
//! visible share of the per-poll cost. Elsewhere, or without a usable TSC, readings come from
//! quanta's monotonic clock. Ticks become nanoseconds only as deltas, by one multiply.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering::Relaxed};
use std::sync::OnceLock;

const UNSET: u8 = 0;
const TSC: u8 = 1;
const QUANTA: u8 = 2;

static MODE: AtomicU8 = AtomicU8::new(UNSET);
/// Nanoseconds per tick × 2^32.
static SCALE: AtomicU64 = AtomicU64::new(1 << 32);
static CLOCK: OnceLock<quanta::Clock> = OnceLock::new();

/// Raw ticks now. Never 0, so 0 can mean "unset" in atomics.
#[inline(always)]
pub(crate) fn now() -> u64 {
    #[cfg(target_arch = "x86_64")]
    if MODE.load(Relaxed) == TSC {
        // SAFETY: `rdtsc` exists on every x86_64 CPU; MODE is TSC only when quanta found the
        // TSC invariant and calibrated it.
        return unsafe { core::arch::x86_64::_rdtsc() } | 1;
    }
    slow_now()
}

#[inline(never)]
fn slow_now() -> u64 {
    clock().raw() | 1
}

fn clock() -> &'static quanta::Clock {
    CLOCK.get_or_init(|| {
        let clock = quanta::Clock::new();
        // quanta reads the TSC directly when it uses it: a reading bracketed by two `rdtsc`s
        // tells which source it chose.
        let mode = if tsc_in_use(&clock) { TSC } else { QUANTA };
        SCALE.store(clock.delta_as_nanos(0, 1 << 32).max(1), Relaxed);
        if mode == QUANTA {
            SCALE.store(1 << 32, Relaxed); // monotonic readings are nanoseconds
        }
        MODE.store(mode, Relaxed);
        clock
    })
}

#[cfg(target_arch = "x86_64")]
fn tsc_in_use(clock: &quanta::Clock) -> bool {
    (0..3).all(|_| {
        // SAFETY: see `now`.
        let before = unsafe { core::arch::x86_64::_rdtsc() };
        let reading = clock.raw();
        let after = unsafe { core::arch::x86_64::_rdtsc() };
        before <= reading && reading <= after
    })
}

#[cfg(not(target_arch = "x86_64"))]
fn tsc_in_use(_: &quanta::Clock) -> bool {
    false
}

/// Nanoseconds from `start` to `end` (0 when `end` is not after `start`).
#[inline(always)]
pub(crate) fn delta_ns(start: u64, end: u64) -> u64 {
    if end <= start {
        return 0;
    }
    ((u128::from(end - start) * u128::from(SCALE.load(Relaxed))) >> 32) as u64
}

/// Clock ticks in `d` (after calibration; saturates).
pub(crate) fn ticks_for(d: std::time::Duration) -> u64 {
    let ticks = (d.as_nanos() << 32) / u128::from(SCALE.load(Relaxed).max(1));
    u64::try_from(ticks).unwrap_or(u64::MAX)
}

/// Calibrates the clock before the first poll needs it.
pub(crate) fn warm_up() {
    let _ = clock();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deltas_follow_the_os_clock() {
        warm_up();
        let (t0, i0) = (now(), std::time::Instant::now());
        std::thread::sleep(std::time::Duration::from_millis(50));
        let (t1, i1) = (now(), std::time::Instant::now());
        let ours = delta_ns(t0, t1) as f64;
        let os = (i1 - i0).as_nanos() as f64;
        assert!((ours - os).abs() / os < 0.02, "ours {ours} ns, OS {os} ns");
        assert_eq!(delta_ns(t1, t0), 0);
        let ticks = ticks_for(std::time::Duration::from_millis(3));
        let back = delta_ns(t0, t0 + ticks) as f64;
        assert!((back - 3e6).abs() < 3e6 * 0.001, "{back} ns");
    }
}
