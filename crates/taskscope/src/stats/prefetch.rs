//! A cache-line prefetch hint, for the statistics the collector is about to read.

use std::sync::atomic::AtomicU32;

/// Asks for the line of `at` ahead of its use.
#[inline(always)]
pub(crate) fn prefetch(at: *const AtomicU32) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint; it never faults, whatever the address.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(at.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = at;
}
