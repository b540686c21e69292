//! Platforms without stack sampling: every call says so.

use taskscope_wire::StackFrame;

use super::raw::RawStack;

pub(super) fn current_tid() -> i32 {
    0
}

/// No signal is ever installed.
pub(super) fn signal() -> i32 {
    0
}

pub(super) fn install() -> Result<(), String> {
    Err("stack sampling of blocked workers needs Linux on x86_64 or aarch64".into())
}

pub(super) fn capture(_tid: i32) -> Option<RawStack> {
    None
}

pub(super) fn blocks_signal(_tid: i32) -> bool {
    true
}

pub(super) fn forget() {}

pub(super) fn resolve(_addr: usize) -> Vec<StackFrame> {
    Vec::new()
}

pub(super) fn waits_for_work(_tid: i32) -> bool {
    true
}
