//! Which thread is the worker stuck in a task taskscope did not spawn. tokio's stable metrics
//! say that a worker of a runtime has been inside one poll too long, not which OS thread it is.
//! The watchdog samples the runtime's worker threads twice, 2 ms apart, and keeps those whose
//! call chain (return addresses) did not change: a busy worker running many short polls is
//! somewhere else the second time (`crate::threads::foreign`). Of those, the symbolising thread keeps
//! the ones inside a task poll (`frames::in_task_poll`; a parked worker's chain does not change
//! either), and the first one no other stuck worker's warning has is this warning's thread.

use std::collections::BTreeMap;

use taskscope_wire::{StackFrame, StackSample};

use super::threads::Thread;

/// Warnings whose attribution is kept at most (the oldest go first).
const MAX_WARNINGS: usize = 1024;

/// Per warning of a stuck uninstrumented worker: the thread found.
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
}

/// What a round of samples decided.
#[derive(Debug)]
pub(super) enum Found {
    /// Not yet known.
    Nothing,
    /// Another sample of the thread already found.
    Again(StackSample),
    /// The thread is found now: its sample, and where it is.
    Now(Thread, StackSample, Option<StackFrame>),
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

    /// The worker of warning `id` moved on (before or after its thread is found: samples
    /// still on their way may find it later, and it stays free for other warnings).
    pub(super) fn end(&mut self, id: u64) {
        self.warnings.entry(id).or_default().ended = true;
        while self.warnings.len() > MAX_WARNINGS {
            self.warnings.pop_first();
        }
    }

    /// Forgets what was found under `key`.
    pub(super) fn forget(&mut self, key: u64) {
        self.warnings.remove(&key);
    }

    /// Takes a round of samples of the threads that stayed in one call and are inside a task
    /// poll.
    pub(super) fn round(&mut self, id: u64, in_poll: Vec<(Thread, StackSample)>) -> Found {
        let taken: Vec<i32> = self
            .warnings
            .iter()
            .filter(|(&other, a)| other != id && !a.ended)
            .filter_map(|(_, a)| a.thread.as_ref().map(|t| t.tid))
            .collect();
        let attribution = self.warnings.entry(id).or_default();
        let found = match &attribution.thread {
            Some(thread) => match in_poll.into_iter().find(|(t, _)| t == thread) {
                Some((_, sample)) => Found::Again(sample),
                None => Found::Nothing,
            },
            None => match in_poll.into_iter().find(|(t, _)| !taken.contains(&t.tid)) {
                Some((thread, sample)) => {
                    attribution.thread = Some(thread.clone());
                    attribution.top = sample.frames.first().cloned();
                    Found::Now(thread, sample, attribution.top.clone())
                }
                None => Found::Nothing,
            },
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

    fn at(function: &str) -> StackSample {
        StackSample {
            count: 1,
            blocked_in: Some("std::thread::sleep".into()),
            frames: vec![StackFrame {
                function: function.into(),
                file: Some("src/main.rs".into()),
                line: Some(9),
            }],
        }
    }

    #[test]
    fn the_first_stuck_thread_is_found_and_then_only_it_counts() {
        let mut workers = ForeignWorkers::default();
        assert!(matches!(workers.round(7, Vec::new()), Found::Nothing));
        match workers.round(7, vec![(thread(1), at("app::slow"))]) {
            Found::Now(t, _, top) => {
                assert_eq!(t.tid, 1);
                assert_eq!(top.unwrap().function, "app::slow");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(workers.thread(7).unwrap().tid, 1);
        let round = vec![(thread(2), at("app::other")), (thread(1), at("app::slow"))];
        match workers.round(7, round) {
            Found::Again(sample) => assert_eq!(sample.frames[0].function, "app::slow"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn two_stuck_workers_get_one_thread_each_until_one_ends() {
        let mut workers = ForeignWorkers::default();
        let round = || vec![(thread(1), at("app::slow")), (thread(2), at("app::slow"))];
        assert!(matches!(workers.round(1, round()), Found::Now(..)));
        assert!(matches!(workers.round(2, round()), Found::Now(..)));
        assert_ne!(
            workers.thread(1).unwrap().tid,
            workers.thread(2).unwrap().tid
        );
        // Thread 1's stall is over: a new one may be on it.
        workers.end(1);
        assert!(matches!(
            workers.round(3, vec![(thread(1), at("app::slow"))]),
            Found::Now(..)
        ));
        // Ended before its samples arrived: found late, and not keeping its thread from others.
        workers.end(5);
        assert!(matches!(
            workers.round(5, vec![(thread(3), at("app::slow"))]),
            Found::Now(..)
        ));
        assert!(matches!(
            workers.round(6, vec![(thread(3), at("app::slow"))]),
            Found::Now(..)
        ));
        // Thread 2 is still warning 2's.
        assert!(matches!(
            workers.round(4, vec![(thread(2), at("app::slow"))]),
            Found::Nothing
        ));
    }
}
