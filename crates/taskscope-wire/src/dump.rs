//! What a task dump holds, and how it prints: like a goroutine dump, one paragraph per task with
//! the chain of `async fn`s it is suspended in, innermost first. Made by `taskscope::task_dump`
//! in the application, sent over the stream to `taskscope dump`.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::model::{TaskKind, TaskState};

/// Where every live task spawned through taskscope is waiting: `taskscope::task_dump`'s answer,
/// and the stream's `Frame::Dump` (wire version 6).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskDump {
    /// When the dump was taken, ms since the Guard started.
    pub taken_at_ms: u64,
    /// The tasks, by id.
    pub tasks: Vec<DumpedTask>,
    /// Tasks left out to fit the dump in one stream frame (0 in the application).
    pub omitted: u64,
    /// Its tasks that are detached (their `JoinHandle` dropped), by id. Not part of the `Dump`
    /// frame (whose layout readers of version 6 and 7 know): a reader of the stream fills it
    /// from the `Detached` frame.
    #[serde(skip)]
    pub detached: Vec<u64>,
}

/// One task of a [`TaskDump`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DumpedTask {
    /// The task's id.
    pub id: u64,
    /// Its name (or spawn location).
    pub name: String,
    /// Where it was spawned, `file:line:column`.
    pub location: String,
    /// The task (or scope) it was spawned in, if an instrumented one.
    pub parent: Option<u64>,
    /// Async or blocking.
    pub kind: TaskKind,
    /// Its state when the dump began.
    pub state: TaskState,
    /// Time since the end of its last timed poll when the dump began (a task polled less often
    /// than once per sampling interval has every poll timed; a busier one is within one
    /// interval of it). `None`: not polled yet.
    pub since_poll_ns: Option<u64>,
    /// Where it is suspended.
    pub trace: Trace,
    /// The taskscope lock or semaphore it waits for, if any.
    pub waiting_for: Option<LockWait>,
}

/// Where a task is suspended, found by its trace poll.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trace {
    /// It returned `Pending`: one chain per waker it registered (a `select!` or `join!` waits on
    /// several futures at once).
    Suspended {
        /// The chains, in registration order.
        chains: Vec<Chain>,
    },
    /// It returned `Pending` without registering a new waker: its leaf future keeps an older
    /// waker without re-registering it (or waits on nothing).
    NoWakerRegistered,
    /// It completed in the dump's poll.
    CompletedDuringTrace,
    /// It panicked in the dump's poll (also a `task_panicked` warning, unless its `JoinHandle`
    /// returns the panic to the code awaiting it).
    PanickedDuringTrace,
    /// It was not polled within the dump's timeout: still in a poll (a blocked worker: see its
    /// `blocked_worker` warning's stack), or its runtime did not get to it.
    NotPolled,
    /// It cannot be traced (why, in words).
    NotTraceable {
        /// Why.
        reason: String,
    },
}

/// The chain from a leaf future up to the task's own future.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Chain {
    /// The future that registered the waker (e.g. `tokio::sync::oneshot::Receiver`'s `poll`),
    /// when it is not itself an `async` body.
    pub leaf: Option<String>,
    /// The `async fn`s and `async` blocks, innermost first, each at its `.await`.
    pub frames: Vec<AsyncFrame>,
}

/// One `async fn` or `async` block, suspended at an `.await`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AsyncFrame {
    /// The function (`crate::module::name`; `{async_block}` marks a block).
    pub function: String,
    /// The source file.
    pub file: Option<String>,
    /// The line of the `.await`.
    pub line: Option<u32>,
}

/// A wait for a taskscope lock or semaphore.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LockWait {
    /// The lock's name (or creation location).
    pub lock: String,
    /// `mutex`, `rwlock_read`, `rwlock_write` or `semaphore`.
    pub kind: String,
    /// Where the task asked for it.
    pub at: String,
    /// How long it has waited so far.
    pub waited_ns: u64,
    /// The task holding it exclusively, if known (its own entry is in the dump).
    pub holder: Option<u64>,
}

impl TaskDump {
    /// The task with this id.
    pub fn task(&self, id: u64) -> Option<&DumpedTask> {
        self.tasks.iter().find(|t| t.id == id)
    }

    /// The dumped tasks as their spawn tree, depth first: each task after the task that spawned
    /// it, one level deeper, with its depth. A task whose parent is not in the dump (spawned
    /// outside any task, or by one that has ended) is at depth 0; so is one whose parent's id is
    /// not smaller than its own (ids grow with each spawn: a corrupt dump, which would loop).
    pub fn spawn_tree(&self) -> Vec<(usize, &DumpedTask)> {
        use std::collections::HashMap;
        let index: HashMap<u64, usize> = self
            .tasks
            .iter()
            .enumerate()
            .map(|(i, t)| (t.id, i))
            .collect();
        let mut children: HashMap<usize, Vec<usize>> = HashMap::new();
        let mut roots = Vec::new();
        for (i, t) in self.tasks.iter().enumerate() {
            match t.parent.filter(|&p| p < t.id).and_then(|p| index.get(&p)) {
                Some(&parent) => children.entry(parent).or_default().push(i),
                None => roots.push(i),
            }
        }
        let mut out = Vec::with_capacity(self.tasks.len());
        let mut stack: Vec<(usize, usize)> = roots.iter().rev().map(|&i| (i, 0)).collect();
        while let Some((i, depth)) = stack.pop() {
            out.push((depth, &self.tasks[i]));
            if let Some(kids) = children.get(&i) {
                stack.extend(kids.iter().rev().map(|&k| (k, depth + 1)));
            }
        }
        out
    }

    /// The tasks with this name.
    pub fn named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a DumpedTask> + 'a {
        self.tasks.iter().filter(move |t| t.name == name)
    }
}

impl DumpedTask {
    /// The chain of the first future a suspended task registered its waker with (`None`: not
    /// suspended).
    pub fn first_chain(&self) -> Option<&Chain> {
        match &self.trace {
            Trace::Suspended { chains } => chains.first(),
            _ => None,
        }
    }
}

impl AsyncFrame {
    /// Whether the frame is in a dependency's source (a crate directory of cargo's registry, as
    /// dumps print them: `tokio-1.54.1/src/...`), not the application's.
    pub fn in_dependency(&self) -> bool {
        let Some(file) = &self.file else {
            return false;
        };
        let first = file.split('/').next().unwrap_or("");
        first.rsplit_once('-').is_some_and(|(name, version)| {
            !name.is_empty()
                && version.starts_with(|c: char| c.is_ascii_digit())
                && version.split('.').count() >= 3
                && version.split('.').all(|p| !p.is_empty())
        })
    }

    /// `function (file:line)`.
    pub fn at(&self) -> String {
        match (&self.file, self.line) {
            (Some(file), Some(line)) => format!("{} ({file}:{line})", self.function),
            (Some(file), None) => format!("{} ({file})", self.function),
            _ => self.function.clone(),
        }
    }
}

fn duration(ns: u64) -> String {
    match ns {
        ns if ns >= 1_000_000_000 => format!("{:.2} s", ns as f64 / 1e9),
        ns if ns >= 1_000_000 => format!("{:.1} ms", ns as f64 / 1e6),
        ns => format!("{:.1} µs", ns as f64 / 1e3),
    }
}

impl fmt::Display for TaskDump {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "taskscope task dump at {:.3} s: {} tasks",
            self.taken_at_ms as f64 / 1000.0,
            self.tasks.len()
        )?;
        for task in &self.tasks {
            writeln!(f)?;
            write!(f, "{task}")?;
            if self.detached.contains(&task.id) {
                writeln!(f, "    detached: its JoinHandle was dropped")?;
            }
        }
        if self.omitted > 0 {
            writeln!(
                f,
                "\n({} more tasks left out: the dump did not fit in one frame)",
                self.omitted
            )?;
        }
        // The spawn tree, when some task's parent is in the dump.
        let tree = self.spawn_tree();
        if tree.iter().any(|(depth, _)| *depth > 0) {
            writeln!(f, "\nspawn tree:")?;
            for (depth, task) in tree {
                let state = format!("{:?}", task.state).to_lowercase();
                let indent = "  ".repeat(depth.min(32));
                let detached = match self.detached.contains(&task.id) {
                    true => " detached",
                    false => "",
                };
                writeln!(f, "{indent}{} `{}` [{state}]{detached}", task.id, task.name)?;
            }
        }
        Ok(())
    }
}

impl fmt::Display for DumpedTask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = format!("{:?}", self.state).to_lowercase();
        let since = self
            .since_poll_ns
            .map(|ns| format!(", last polled {} ago", duration(ns)))
            .unwrap_or_default();
        let by = self
            .parent
            .map(|p| format!(" by task {p}"))
            .unwrap_or_default();
        let (what, made) = match self.kind {
            TaskKind::Scope => ("scope", "created"),
            _ => ("task", "spawned"),
        };
        writeln!(
            f,
            "{what} {} `{}` [{state}{since}], {made} at {}{by}:",
            self.id, self.name, self.location
        )?;
        if let Some(wait) = &self.waiting_for {
            let holder = wait
                .holder
                .map(|h| format!(", held by task {h}"))
                .unwrap_or_default();
            writeln!(
                f,
                "    waiting for {} `{}` for {} (asked at {}){holder}",
                wait.kind,
                wait.lock,
                duration(wait.waited_ns),
                wait.at
            )?;
        }
        match &self.trace {
            Trace::Suspended { chains } => {
                for (i, chain) in chains.iter().enumerate() {
                    if chains.len() > 1 {
                        writeln!(f, "    branch {}:", i + 1)?;
                    }
                    if let Some(leaf) = &chain.leaf {
                        writeln!(f, "    waiting on {leaf}")?;
                    }
                    for frame in &chain.frames {
                        writeln!(f, "    in {}", frame.at())?;
                    }
                }
                Ok(())
            }
            Trace::NoWakerRegistered => writeln!(
                f,
                "    pending, but its poll registered no new waker (a future that keeps an older one)"
            ),
            Trace::CompletedDuringTrace => writeln!(f, "    completed in the dump's poll"),
            Trace::PanickedDuringTrace => writeln!(f, "    panicked in the dump's poll"),
            Trace::NotPolled => writeln!(
                f,
                "    not polled within the dump's timeout (in a poll, or its runtime is busy)"
            ),
            Trace::NotTraceable { reason } => writeln!(f, "    not traced: {reason}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{AsyncFrame, DumpedTask, TaskDump, Trace};
    use crate::model::{TaskKind, TaskState};

    fn task(id: u64, parent: Option<u64>) -> DumpedTask {
        DumpedTask {
            id,
            name: format!("t{id}"),
            location: "src/main.rs:1:1".into(),
            parent,
            kind: TaskKind::Async,
            state: TaskState::Idle,
            since_poll_ns: None,
            trace: Trace::NotPolled,
            waiting_for: None,
        }
    }

    #[test]
    fn the_dump_prints_its_spawn_tree() {
        let dump = TaskDump {
            taken_at_ms: 0,
            tasks: vec![
                task(1, None),
                task(2, Some(1)),
                task(3, Some(2)),
                task(4, Some(1)),
                task(5, Some(9)),
                task(6, Some(6)),
            ],
            omitted: 0,
            detached: vec![4],
        };
        let shape: Vec<(usize, u64)> = dump.spawn_tree().iter().map(|(d, t)| (*d, t.id)).collect();
        assert_eq!(shape, [(0, 1), (1, 2), (2, 3), (1, 4), (0, 5), (0, 6)]);
        let text = dump.to_string();
        let tree = text.split("spawn tree:\n").nth(1).expect(&text);
        assert!(
            text.contains("detached: its JoinHandle was dropped"),
            "{text}"
        );
        assert_eq!(
            tree,
            "1 `t1` [idle]\n  2 `t2` [idle]\n    3 `t3` [idle]\n  4 `t4` [idle] detached\n5 `t5` [idle]\n6 `t6` [idle]\n"
        );
        // No task under another: no tree.
        let flat = TaskDump {
            tasks: vec![task(1, None), task(2, Some(9))],
            ..dump
        };
        assert!(!flat.to_string().contains("spawn tree"));
    }

    fn at(file: &str) -> AsyncFrame {
        AsyncFrame {
            function: "f".into(),
            file: Some(file.into()),
            line: Some(1),
        }
    }

    #[test]
    fn dependencies_are_told_by_their_crate_directory() {
        assert!(at("tokio-1.54.1/src/sync/mutex.rs").in_dependency());
        assert!(at("tower-http-0.6.11/src/trace/mod.rs").in_dependency());
        assert!(!at("src/server.rs").in_dependency());
        assert!(!at("crates/taskscope-cli/src/app.rs").in_dependency());
    }
}
