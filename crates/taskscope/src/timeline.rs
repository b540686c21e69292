//! The sampled poll timeline: what the watchdog sees running on each worker at each scan,
//! merged into one sample per poll (for Perfetto traces). It costs the hot path nothing: the
//! watchdog already reads every worker slot on every scan.

use std::collections::{HashMap, VecDeque};

use taskscope_wire::{PollSample, PollTimeline};

use crate::clock;
use crate::registry::Shared;

/// A poll being watched: its worker slot's `(task, start ticks)` and the last scan that saw it.
#[derive(Debug, Clone, Copy)]
struct Open {
    task: u64,
    start: u64,
    seen: u64,
}

/// Polls seen running, per worker, and the ended ones (the newest [`PollTimeline::MAX`]).
#[derive(Debug, Default)]
pub(crate) struct Timeline {
    open: HashMap<u64, Open>,
    ended: VecDeque<PollSample>,
    /// Ended samples not yet written to the recording.
    unsent: Vec<PollSample>,
    /// Exact ends of long polls, `(task, start) → end` ticks, for polls still open.
    exact: HashMap<(u64, u64), u64>,
}

/// Unsent samples kept for the recorder at most (it takes them every 100 ms).
const MAX_UNSENT: usize = 1 << 14;

impl Timeline {
    /// A scan saw `(task, start)` running on `worker` at `now`.
    pub(crate) fn seen(&mut self, shared: &Shared, worker: u64, task: u64, start: u64, now: u64) {
        match self.open.get_mut(&worker) {
            Some(open) if open.task == task && open.start == start => open.seen = now,
            _ => {
                self.close(shared, worker);
                self.open.insert(
                    worker,
                    Open {
                        task,
                        start,
                        seen: now,
                    },
                );
            }
        }
    }

    /// A scan saw `worker` idle (or gone).
    pub(crate) fn idle(&mut self, shared: &Shared, worker: u64) {
        self.close(shared, worker);
    }

    /// A long poll reported its exact end.
    pub(crate) fn exact_end(&mut self, task: u64, start: u64, end: u64) {
        if self
            .open
            .values()
            .any(|o| o.task == task && o.start == start)
        {
            self.exact.insert((task, start), end);
        }
    }

    fn close(&mut self, shared: &Shared, worker: u64) {
        let Some(open) = self.open.remove(&worker) else {
            return;
        };
        let exact = self.exact.remove(&(open.task, open.start));
        let sample = PollSample {
            worker,
            task: open.task,
            start_us: us_at(shared, open.start),
            end_us: us_at(shared, exact.unwrap_or(open.seen)),
            exact: exact.is_some(),
        };
        if self.ended.len() == PollTimeline::MAX {
            self.ended.pop_front();
        }
        self.ended.push_back(sample);
        if self.unsent.len() < MAX_UNSENT {
            self.unsent.push(sample);
        }
    }

    /// Ended samples not yet recorded.
    pub(crate) fn take_unsent(&mut self) -> Vec<PollSample> {
        std::mem::take(&mut self.unsent)
    }

    /// Everything: ended polls and, up to the last scan, the ones still running.
    pub(crate) fn all(&self, shared: &Shared) -> PollTimeline {
        let mut all = PollTimeline(self.ended.iter().copied().collect());
        let mut open: Vec<_> = self.open.iter().collect();
        open.sort_by_key(|(_, o)| o.start);
        all.extend(open.into_iter().map(|(&worker, o)| PollSample {
            worker,
            task: o.task,
            start_us: us_at(shared, o.start),
            end_us: us_at(shared, o.seen),
            exact: false,
        }));
        all
    }
}

fn us_at(shared: &Shared, ticks: u64) -> u64 {
    clock::delta_ns(
        shared.epoch.load(std::sync::atomic::Ordering::Relaxed),
        ticks,
    ) / 1_000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scans_of_one_poll_make_one_sample_and_long_polls_get_exact_ends() {
        let shared = crate::registry::shared();
        let mut t = Timeline::default();
        let base = shared.epoch.load(std::sync::atomic::Ordering::Relaxed);
        t.seen(shared, 1, 7, base + 100, base + 200);
        t.seen(shared, 1, 7, base + 100, base + 300);
        t.seen(shared, 2, 8, base + 150, base + 300);
        t.exact_end(8, base + 150, base + 5_000_000);
        t.seen(shared, 1, 9, base + 400, base + 500);
        t.idle(shared, 2);
        let sent = t.take_unsent();
        assert_eq!(sent.len(), 2);
        assert_eq!((sent[0].worker, sent[0].task, sent[0].exact), (1, 7, false));
        assert_eq!((sent[1].worker, sent[1].task, sent[1].exact), (2, 8, true));
        assert!(sent[1].end_us > sent[0].end_us);
        let all = t.all(shared);
        assert_eq!(all.0.len(), 3, "two ended, one still running");
        assert_eq!(all.0[2].task, 9);
        assert!(t.take_unsent().is_empty());
    }
}
