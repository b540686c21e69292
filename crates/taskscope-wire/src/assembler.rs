//! Rebuilding a [`Snapshot`] from the frames of a stream or a recording.

use crate::frame::{Frame, Hello, Update};
use crate::model::Snapshot;

/// Rebuilds a [`Snapshot`] from a stream of frames.
#[derive(Debug, Default, Clone)]
pub struct Assembler {
    snapshot: Snapshot,
    /// Task id → position in `snapshot.tasks`.
    index: std::collections::HashMap<u64, usize>,
    /// The peer's hello, once received.
    pub hello: Option<Hello>,
    /// Frames the peer dropped for us.
    pub dropped_frames: u64,
}

impl Assembler {
    /// An empty assembler.
    pub fn new() -> Self {
        Assembler::default()
    }

    /// Applies one frame.
    pub fn apply(&mut self, frame: Frame) {
        let snap = &mut self.snapshot;
        match frame {
            Frame::Hello(hello) => {
                snap.process.name = hello.process.clone();
                snap.process.pid = hello.pid;
                snap.process.start_unix_ms = hello.start_unix_ms;
                self.hello = Some(hello);
            }
            Frame::Update(update) => {
                let Update {
                    at_ms,
                    full,
                    tasks,
                    task_changes,
                    removed_tasks,
                    task_groups,
                    workers,
                    runtimes,
                    locks,
                    semaphores,
                    dropped_events,
                } = *update;
                let reindex = full || !removed_tasks.is_empty();
                if full {
                    snap.tasks.clear();
                }
                if !removed_tasks.is_empty() {
                    let removed: std::collections::HashSet<u64> =
                        removed_tasks.into_iter().collect();
                    snap.tasks.retain(|t| !removed.contains(&t.id));
                }
                if reindex {
                    self.index = snap
                        .tasks
                        .iter()
                        .enumerate()
                        .map(|(i, t)| (t.id, i))
                        .collect();
                }
                for task in tasks {
                    match self.index.get(&task.id) {
                        Some(&i) => snap.tasks[i] = task,
                        None => {
                            self.index.insert(task.id, snap.tasks.len());
                            snap.tasks.push(task);
                        }
                    }
                }
                for change in task_changes {
                    if let Some(&i) = self.index.get(&change.id) {
                        change.apply_to(&mut snap.tasks[i]);
                    }
                }
                snap.taken_at_ms = at_ms;
                if let Some(groups) = task_groups {
                    snap.task_groups = groups;
                }
                snap.workers = workers;
                snap.runtimes = runtimes;
                if let Some(locks) = locks {
                    snap.locks = locks;
                }
                if let Some(semaphores) = semaphores {
                    snap.semaphores = semaphores;
                }
                snap.dropped_events = dropped_events;
            }
            Frame::Warning(warning) => {
                match snap.warnings.iter_mut().find(|w| w.id == warning.id) {
                    Some(existing) => *existing = *warning,
                    None => snap.warnings.push(*warning),
                }
            }
            Frame::TaskDetail(task) => match self.index.get(&task.id) {
                Some(&i) => snap.tasks[i] = *task,
                None => {
                    self.index.insert(task.id, snap.tasks.len());
                    snap.tasks.push(*task);
                }
            },
            Frame::Dropped { count } => self.dropped_frames = count,
            Frame::Polls(samples) => snap.poll_timeline.extend(samples),
            Frame::Stacks { warning, stacks } => {
                snap.warning_stacks.insert(warning, stacks);
            }
            Frame::Scopes(scopes) => snap.scopes = scopes,
            Frame::PollNames(names) => snap.timeline_names.extend(names),
            Frame::Chains { warning, tasks } => {
                snap.warning_chains.insert(warning, tasks);
            }
            Frame::Profile(profile) => snap.profile = Some(*profile),
            Frame::Detached(ids) => snap.detached = ids,
            Frame::Refusals(refused) => snap.refused = refused,
            Frame::Refused { .. } | Frame::Dump(_) => {}
        }
    }

    /// The state so far.
    pub fn snapshot(&self) -> &Snapshot {
        &self.snapshot
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::tests::sample_update;

    use crate::model::Task;
    use crate::warning::{Warning, WarningKind};

    #[test]
    fn poll_names_are_for_version_3_readers_only_and_name_the_timeline() {
        let frame = Frame::PollNames(vec![(7, "GET /users".into())]);
        assert_eq!(frame.for_version(2), Some(None));
        assert_eq!(frame.for_version(3), None);
        let back: Frame = postcard::from_bytes(&postcard::to_allocvec(&frame).unwrap()).unwrap();
        let mut asm = Assembler::new();
        asm.apply(back);
        assert_eq!(asm.snapshot().timeline_names[&7], "GET /users");
    }

    #[test]
    fn assembler_applies_deltas_and_key_frames() {
        let mut a = Assembler::new();
        a.apply(sample_update());
        let mut changed = Task {
            id: 2,
            name: "b".into(),
            ..Task::default()
        };
        a.apply(Frame::Update(Box::new(Update {
            at_ms: 8,
            tasks: vec![changed.clone()],
            ..Update::default()
        })));
        assert_eq!(a.snapshot().tasks.len(), 2);
        changed.polls = 5;
        a.apply(Frame::Update(Box::new(Update {
            at_ms: 9,
            tasks: vec![changed],
            removed_tasks: vec![1],
            ..Update::default()
        })));
        assert_eq!(a.snapshot().tasks.len(), 1);
        assert_eq!(a.snapshot().tasks[0].polls, 5);
        let mut w = Warning::new(1, WarningKind::BlockedWorker, 1, "blocked 10 ms");
        a.apply(Frame::Warning(Box::new(w.clone())));
        w.message = "blocked 200 ms".into();
        a.apply(Frame::Warning(Box::new(w)));
        assert_eq!(a.snapshot().warnings.len(), 1);
        assert_eq!(a.snapshot().warnings[0].message, "blocked 200 ms");
        a.apply(sample_update());
        assert_eq!(
            a.snapshot().tasks.len(),
            1,
            "a key frame replaces the tasks"
        );
    }
}
