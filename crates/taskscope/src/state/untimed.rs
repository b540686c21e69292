//! The starts the watchdog gives to polls that read no clock (untimed polls).

use std::collections::HashSet;
use std::sync::atomic::Ordering::*;

use crate::base::clock;
use crate::state::worker::WorkerSlot;

/// Untimed polls (`task::instrumented`) show a marker in their worker slot instead of a start
/// time. The watchdog gives such a poll, when it first sees it, the later of two moments before
/// its start: the thread's last clock reading (`WorkerSlot::tick`, taken by the thread's last
/// timed poll) and the previous scan (which did not see the poll). The first is µs before the
/// start on a busy worker (a thread times one poll in 65, and its first after the watchdog saw
/// it idle); it is older only by what the worker ran outside instrumented polls in between,
/// and the second caps that at a scan period. So a block is reported about when it crosses the
/// threshold, as a timed one is (DESIGN.md §10: threshold + 5 ms; measured with
/// `examples/blocked_latency.rs --yields-first 10`), and its duration is long by that gap. A
/// poll found blocked then times its own end (`WorkerSlot::long_marker`).
#[derive(Debug, Default)]
pub(crate) struct UntimedPolls {
    /// Per slot index: the marker last seen there and the start given to it.
    seen: std::collections::HashMap<u64, (u64, u64)>,
    /// When the last scan read the slots.
    last_scan: u64,
    /// Markers of polls found blocked → the start the watchdog gave them, and the last scan
    /// that saw them running.
    pub(crate) flagged: std::collections::HashMap<u64, (u64, u64)>,
}

impl UntimedPolls {
    /// The start given to the untimed poll showing `marker` on slot `index`, whose thread's
    /// last clock reading is `tick`.
    pub(crate) fn start(&mut self, index: u64, marker: u64, tick: u64) -> u64 {
        let start = tick.max(self.last_scan);
        let entry = self.seen.entry(index).or_insert((marker, start));
        if entry.0 != marker {
            *entry = (marker, start);
        }
        entry.1
    }

    /// When the watchdog first saw the untimed poll showing `marker` on slot `index`, if it did.
    pub(crate) fn seen_start(&self, index: u64, marker: u64) -> Option<u64> {
        self.seen
            .get(&index)
            .filter(|(seen, _)| *seen == marker)
            .map(|&(_, at)| at)
    }

    /// Forgets flagged polls no slot has shown for a second (their ends were folded, or shed;
    /// an end queued just after a scan is folded by the next).
    pub(crate) fn forget_ended(&mut self, slots: &[&'static WorkerSlot], now: u64) {
        self.last_scan = now;
        if self.flagged.is_empty() {
            return;
        }
        let showing: HashSet<u64> = slots.iter().map(|s| s.start.load(Acquire)).collect();
        self.flagged.retain(|marker, (_, seen)| {
            if showing.contains(marker) {
                *seen = now;
            }
            clock::delta_ns(*seen, now) < 1_000_000_000
        });
    }
}
