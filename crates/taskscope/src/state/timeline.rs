//! The sampled poll timeline: what the watchdog sees running on each worker at each scan,
//! merged into one sample per poll (for Perfetto traces). It costs the hot path nothing: the
//! watchdog already reads every worker slot on every scan.

use std::collections::{HashMap, VecDeque};

use taskscope_wire::{PollSample, PollTimeline};

use crate::base::clock;
use crate::state::shared::Shared;

/// A poll being watched: its worker slot's `(task, start ticks)`, when the timeline shows it
/// starting (`from`: a nested scope's first scan; else `start`) and the last scan that saw it.
#[derive(Debug, Clone, Copy)]
struct Open {
    task: u64,
    start: u64,
    from: u64,
    seen: u64,
}

/// Polls seen running, per worker, and the ended ones (the newest [`PollTimeline::MAX`]).
///
/// A scope polled inside a task's poll shows in the worker slot with the enclosing poll's start:
/// the timeline opens it as a slice nested in that poll's (from the scan that first saw it to
/// the last one), so traces draw the scope inside the task's poll on the worker's track.
#[derive(Debug, Default)]
pub(crate) struct Timeline {
    /// Per worker, the polls running there, outermost first.
    open: HashMap<u64, Vec<Open>>,
    ended: VecDeque<PollSample>,
    /// Ended samples not yet written to the recording.
    unsent: Vec<PollSample>,
    /// Exact ends of long polls, `(task, start) → end` ticks, for polls still open.
    exact: HashMap<(u64, u64), u64>,
    /// Scopes' names for their samples (open or ended), with how many samples refer to each.
    names: HashMap<u64, (String, u32)>,
    /// Names not yet written to the recording.
    unsent_names: Vec<(u64, String)>,
}

/// Unsent samples kept for the recorder at most (it takes them every 100 ms).
const MAX_UNSENT: usize = 1 << 14;

impl Timeline {
    /// A scan saw `(task, start)` running on `worker` at `now`: a task's poll (`scope_parents`
    /// `None`) or a scope polled inside one, with its parents, innermost first. Returns whether
    /// that opened a new sample (the caller names a scope's with [`Timeline::name`]).
    pub(crate) fn seen(
        &mut self,
        shared: &Shared,
        worker: u64,
        (task, start): (u64, u64),
        now: u64,
        scope_parents: Option<&[u64]>,
    ) -> bool {
        let stack = self.open.entry(worker).or_default();
        let same_poll = stack.first().is_some_and(|o| o.start == start);
        // Where it belongs in the open polls: on itself (still running), or just inside its
        // innermost open parent (a scope). A task's poll, or a scope none of whose parents
        // is open, starts a new stack.
        let keep = match scope_parents {
            _ if !same_poll => None,
            None => (stack[0].task == task).then_some(1),
            Some(parents) => stack
                .iter()
                .rposition(|o| o.task == task || parents.contains(&o.task))
                .map(|at| at + 1),
        };
        let Some(keep) = keep else {
            self.close(shared, worker);
            let stack = self.open.entry(worker).or_default();
            stack.push(Open {
                task,
                start,
                from: start,
                seen: now,
            });
            return true;
        };
        let finished: Vec<Open> = stack.drain(keep..).rev().collect();
        for open in stack.iter_mut() {
            open.seen = now;
        }
        let opened = stack[keep - 1].task != task;
        if opened {
            stack.push(Open {
                task,
                start,
                from: now,
                seen: now,
            });
        }
        for open in finished {
            self.close_one(shared, worker, open);
        }
        opened
    }

    /// Names the scope `task` for its samples (call when [`Timeline::seen`] opened one).
    pub(crate) fn name(&mut self, task: u64, name: String) {
        match self.names.get_mut(&task) {
            Some((_, count)) => *count += 1,
            None => {
                if self.unsent_names.len() < MAX_UNSENT {
                    self.unsent_names.push((task, name.clone()));
                }
                self.names.insert(task, (name, 1));
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
            .flatten()
            .any(|o| o.task == task && o.start == start)
        {
            self.exact.insert((task, start), end);
        }
    }

    /// Closes every poll open on `worker`, innermost first.
    fn close(&mut self, shared: &Shared, worker: u64) {
        let Some(stack) = self.open.remove(&worker) else {
            return;
        };
        for open in stack.into_iter().rev() {
            self.close_one(shared, worker, open);
        }
    }

    fn close_one(&mut self, shared: &Shared, worker: u64, open: Open) {
        let exact = self.exact.remove(&(open.task, open.start));
        let sample = PollSample {
            worker,
            task: open.task,
            start_us: us_at(shared, open.from),
            end_us: us_at(shared, exact.unwrap_or(open.seen)),
            exact: exact.is_some(),
        };
        if self.ended.len() == PollTimeline::MAX {
            if let Some(gone) = self.ended.pop_front() {
                self.forget(gone.task);
            }
        }
        self.ended.push_back(sample);
        if self.unsent.len() < MAX_UNSENT {
            self.unsent.push(sample);
        }
    }

    /// One sample of `task` left the timeline.
    fn forget(&mut self, task: u64) {
        if let Some((_, count)) = self.names.get_mut(&task) {
            *count -= 1;
            if *count == 0 {
                self.names.remove(&task);
            }
        }
    }

    /// Ended samples not yet recorded, and the scope names first seen since the last call.
    pub(crate) fn take_unsent(&mut self) -> (Vec<PollSample>, Vec<(u64, String)>) {
        (
            std::mem::take(&mut self.unsent),
            std::mem::take(&mut self.unsent_names),
        )
    }

    /// Everything: ended polls and, up to the last scan, the ones still running.
    pub(crate) fn all(&self, shared: &Shared) -> PollTimeline {
        let mut all = PollTimeline(self.ended.iter().copied().collect());
        let mut open: Vec<(u64, &Open)> = self
            .open
            .iter()
            .flat_map(|(&worker, stack)| stack.iter().map(move |o| (worker, o)))
            .collect();
        open.sort_by_key(|(_, o)| o.from);
        all.extend(open.into_iter().map(|(worker, o)| PollSample {
            worker,
            task: o.task,
            start_us: us_at(shared, o.from),
            end_us: us_at(shared, o.seen),
            exact: false,
        }));
        all
    }

    /// The names of the scopes in [`Timeline::all`].
    pub(crate) fn names(&self) -> std::collections::BTreeMap<u64, String> {
        self.names
            .iter()
            .map(|(&id, (name, _))| (id, name.clone()))
            .collect()
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
        let shared = crate::state::shared::global();
        let mut t = Timeline::default();
        let base = shared.epoch.load(std::sync::atomic::Ordering::Relaxed);
        t.seen(shared, 1, (7, base + 100), base + 200, None);
        t.seen(shared, 1, (7, base + 100), base + 300, None);
        t.seen(shared, 2, (8, base + 150), base + 300, None);
        t.exact_end(8, base + 150, base + 5_000_000);
        t.seen(shared, 1, (9, base + 400), base + 500, None);
        t.idle(shared, 2);
        let (sent, _) = t.take_unsent();
        assert_eq!(sent.len(), 2);
        assert_eq!((sent[0].worker, sent[0].task, sent[0].exact), (1, 7, false));
        assert_eq!((sent[1].worker, sent[1].task, sent[1].exact), (2, 8, true));
        assert!(sent[1].end_us > sent[0].end_us);
        let all = t.all(shared);
        assert_eq!(all.0.len(), 3, "two ended, one still running");
        assert_eq!(all.0[2].task, 9);
        assert!(t.take_unsent().0.is_empty());
    }

    #[test]
    fn a_scope_inside_a_poll_is_a_slice_nested_in_it_and_named() {
        let shared = crate::state::shared::global();
        let mut t = Timeline::default();
        let base = shared.epoch.load(std::sync::atomic::Ordering::Relaxed);
        let ms = |n: u64| base + crate::base::clock::ticks_for(std::time::Duration::from_millis(n));
        let task = None;
        // Task 7's poll starts at 1 ms; its scope 70 shows with the same start from 3 ms to
        // 5 ms; then 7 again; then the worker idles.
        assert!(t.seen(shared, 1, (7, ms(1)), ms(2), task));
        assert!(t.seen(shared, 1, (70, ms(1)), ms(3), Some(&[7])));
        t.name(70, "GET /users".into());
        assert!(!t.seen(shared, 1, (70, ms(1)), ms(5), Some(&[7])));
        assert!(!t.seen(shared, 1, (7, ms(1)), ms(7), task));
        t.idle(shared, 1);
        let (sent, names) = t.take_unsent();
        assert_eq!(names, vec![(70, "GET /users".to_string())]);
        let [scope, outer] = sent[..] else {
            panic!("two samples: {sent:?}")
        };
        assert_eq!((scope.task, outer.task), (70, 7));
        // The scope's slice lies inside the task's: [3, 5] in [1, 7] ms.
        assert!(outer.start_us <= scope.start_us && scope.end_us <= outer.end_us);
        assert!(
            scope.start_us >= 2_900 && scope.end_us <= 5_100,
            "{scope:?}"
        );
        assert!(outer.end_us >= 6_900, "{outer:?}");
        assert_eq!(t.names().get(&70).map(String::as_str), Some("GET /users"));

        // Scope 81 inside scope 80 inside task 8, the inner one seen first: the outer scope
        // seen afterwards is not nested in its own child.
        assert!(t.seen(shared, 2, (81, ms(10)), ms(11), Some(&[80, 8])));
        assert!(t.seen(shared, 2, (80, ms(10)), ms(12), Some(&[8])));
        assert!(t.seen(shared, 2, (8, ms(10)), ms(13), task));
        // A new poll on the worker closes everything open there.
        assert!(t.seen(shared, 2, (9, ms(14)), ms(15), task));
        let (sent, _) = t.take_unsent();
        let order: Vec<(u64, u64)> = sent
            .iter()
            .map(|s| (s.task, (s.start_us + 500) / 1000))
            .collect();
        assert_eq!(order, vec![(81, 10), (80, 10), (8, 10)]);
        // Each ends where the next (its parent) was seen: each inside the next one.
        assert!(sent[0].end_us <= sent[1].end_us && sent[1].end_us <= sent[2].end_us);
    }
}
