//! A raw sample and what the signal handler needs: the frame limit and whether sampling is on.

use std::sync::atomic::{AtomicBool, AtomicU64};

/// Frames kept per sample (innermost first, before filtering).
pub(crate) const MAX_FRAMES: usize = 128;

/// Whether the Builder (or `TASKSCOPE_STACKS`) asked for stacks and the handler is installed.
pub(crate) static ACTIVE: AtomicBool = AtomicBool::new(false);

/// The words of a thread's worker slot a profiler's signal handler reads at each sample.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SlotWords {
    /// The task polled.
    pub(crate) task: &'static AtomicU64,
    /// The poll's start (0: no poll).
    pub(crate) start: &'static AtomicU64,
    /// The stack pointer of the innermost poll's frame: the walk stops past it.
    pub(crate) poll_sp: &'static AtomicU64,
}

/// One raw sample: the interrupted instruction and the return addresses above it.
#[derive(Debug, Clone)]
pub(crate) struct RawStack {
    pub(crate) pc: usize,
    pub(crate) ips: Vec<usize>,
    /// What the handler read, on the sampled thread, from the two words of its worker slot
    /// (a profiler's sample: the task polled and the poll's start; zeros otherwise).
    pub(crate) tags: [u64; 2],
}

impl RawStack {
    /// The return addresses of the interrupted code (the callers of where it was), hashed:
    /// equal in two samples of a thread that stayed in one call (a sleep, a read, a lock, a
    /// loop that calls nothing), equal only by chance for a thread that ran other polls in
    /// between (`stacks::foreign`).
    pub(crate) fn call_chain(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let start = self
            .ips
            .iter()
            .position(|&ip| ip == self.pc)
            .map_or(0, |i| i + 1);
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        self.ips[start..].hash(&mut hasher);
        hasher.finish()
    }
}
