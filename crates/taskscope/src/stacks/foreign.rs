//! Which thread is the worker stuck in a task taskscope did not spawn. tokio's stable metrics
//! say that a worker of a runtime has been inside one poll too long, not which OS thread it is;
//! the watchdog samples the runtime's worker threads (`threads::named`), and a thread whose
//! stack is inside a task poll at the same application frames in two samples in a row is the
//! stuck one: a busy worker running many short polls is somewhere else each time.

use std::collections::BTreeMap;

use taskscope_wire::{StackFrame, StackSample};

use super::threads::Thread;

/// Warnings whose attribution is kept at most (the oldest go first).
const MAX_WARNINGS: usize = 1024;

/// Per warning of a stuck uninstrumented worker: the thread found, or the last round's
/// candidates.
#[derive(Debug, Default)]
pub(super) struct ForeignWorkers {
    warnings: BTreeMap<u64, Attribution>,
}

#[derive(Debug, Default)]
struct Attribution {
    thread: Option<Thread>,
    /// The application frame the thread found is stuck at.
    top: Option<StackFrame>,
    /// The worker moved on: its thread may be another warning's now.
    ended: bool,
    last: Vec<(Thread, StackSample)>,
}

/// Whether two samples are at the same place in the application: the same frames (a spinning
/// loop may move between lines of its innermost one).
fn same_place(a: &StackSample, b: &StackSample) -> bool {
    a.frames.len() == b.frames.len()
        && (!a.frames.is_empty() || a.blocked_in == b.blocked_in)
        && a.frames
            .iter()
            .zip(&b.frames)
            .enumerate()
            .all(|(i, (x, y))| {
                x.function == y.function && x.file == y.file && (i == 0 || x.line == y.line)
            })
}

/// What a round of samples decided.
#[derive(Debug)]
pub(super) enum Found {
    /// Not yet known.
    Nothing,
    /// Another sample of the thread already found.
    Again(StackSample),
    /// The thread is found now: its two samples, and where it is.
    Now(Thread, Vec<StackSample>, Option<StackFrame>),
}

impl ForeignWorkers {
    /// The thread found for warning `id`, if any.
    pub(super) fn thread(&self, id: u64) -> Option<&Thread> {
        self.warnings.get(&id)?.thread.as_ref()
    }

    /// Where the thread found for warning `id` is stuck.
    pub(super) fn top(&self, id: u64) -> Option<&StackFrame> {
        self.warnings.get(&id)?.top.as_ref()
    }

    /// What was found under `key` is warning `id`'s now.
    pub(super) fn rename(&mut self, key: u64, id: u64) {
        if let Some(attribution) = self.warnings.remove(&key) {
            self.warnings.insert(id, attribution);
        }
    }

    /// The worker of warning `id` moved on.
    pub(super) fn end(&mut self, id: u64) {
        if let Some(attribution) = self.warnings.get_mut(&id) {
            attribution.ended = true;
        }
    }

    /// Forgets what was found under `key`.
    pub(super) fn forget(&mut self, key: u64) {
        self.warnings.remove(&key);
    }

    /// Takes a round of samples of the threads found inside a task poll.
    pub(super) fn round(&mut self, id: u64, in_poll: Vec<(Thread, StackSample)>) -> Found {
        let taken: Vec<i32> = self
            .warnings
            .iter()
            .filter(|(&other, a)| other != id && !a.ended)
            .filter_map(|(_, a)| a.thread.as_ref().map(|t| t.tid))
            .collect();
        let attribution = self.warnings.entry(id).or_default();
        if let Some(thread) = &attribution.thread {
            return match in_poll.into_iter().find(|(t, _)| t == thread) {
                Some((_, sample)) => Found::Again(sample),
                None => Found::Nothing,
            };
        }
        let stayed = in_poll.iter().position(|(thread, sample)| {
            !taken.contains(&thread.tid)
                && attribution
                    .last
                    .iter()
                    .any(|(t, before)| t == thread && same_place(before, sample))
        });
        let found = match stayed {
            Some(i) => {
                let (thread, sample) = in_poll[i].clone();
                let before = attribution
                    .last
                    .iter()
                    .find(|(t, _)| *t == thread)
                    .map(|(_, s)| s.clone());
                attribution.thread = Some(thread.clone());
                attribution.last.clear();
                let top = sample.frames.first().cloned();
                attribution.top = top.clone();
                Found::Now(thread, before.into_iter().chain([sample]).collect(), top)
            }
            None => {
                attribution.last = in_poll;
                Found::Nothing
            }
        };
        while self.warnings.len() > MAX_WARNINGS {
            self.warnings.pop_first();
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn thread(tid: i32) -> Thread {
        Thread {
            tid,
            name: "tokio-runtime-w".into(),
        }
    }

    fn at(function: &str, line: u32) -> StackSample {
        StackSample {
            count: 1,
            blocked_in: Some("std::thread::sleep".into()),
            frames: vec![StackFrame {
                function: function.into(),
                file: Some("src/main.rs".into()),
                line: Some(line),
            }],
        }
    }

    #[test]
    fn the_thread_that_stays_in_one_place_is_found_and_a_busy_one_is_not() {
        let mut workers = ForeignWorkers::default();
        // Round 1: both threads inside a poll, nothing to compare with yet.
        let round = vec![
            (thread(1), at("app::slow", 9)),
            (thread(2), at("app::fast", 3)),
        ];
        assert!(matches!(workers.round(7, round), Found::Nothing));
        // Round 2: thread 2 moved on to another request, thread 1 is where it was.
        let round = vec![
            (thread(1), at("app::slow", 9)),
            (thread(2), at("app::other", 4)),
        ];
        match workers.round(7, round) {
            Found::Now(t, samples, top) => {
                assert_eq!(t.tid, 1);
                assert_eq!(samples.len(), 2);
                assert_eq!(top.unwrap().function, "app::slow");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(workers.thread(7).unwrap().tid, 1);
        // Later rounds only count the thread found.
        let round = vec![
            (thread(2), at("app::slow", 9)),
            (thread(1), at("app::slow", 9)),
        ];
        assert!(matches!(workers.round(7, round), Found::Again(_)));
    }

    #[test]
    fn a_thread_that_moves_is_never_found() {
        let mut workers = ForeignWorkers::default();
        for i in 0..10 {
            let round = vec![(thread(2), at(&format!("app::handler{i}"), 3))];
            assert!(matches!(workers.round(1, round), Found::Nothing));
        }
        assert!(workers.thread(1).is_none());
    }

    #[test]
    fn two_stuck_workers_at_the_same_place_get_one_thread_each() {
        let mut workers = ForeignWorkers::default();
        let round = || {
            vec![
                (thread(1), at("app::slow", 9)),
                (thread(2), at("app::slow", 9)),
            ]
        };
        for id in [1, 2] {
            assert!(matches!(workers.round(id, round()), Found::Nothing));
        }
        for id in [1, 2] {
            assert!(matches!(workers.round(id, round()), Found::Now(..)));
        }
        assert_ne!(
            workers.thread(1).unwrap().tid,
            workers.thread(2).unwrap().tid
        );
    }

    #[test]
    fn a_spinning_loop_may_move_within_its_innermost_frame() {
        assert!(same_place(&at("app::spin", 3), &at("app::spin", 4)));
        assert!(!same_place(&at("app::spin", 3), &at("app::other", 3)));
    }
}
