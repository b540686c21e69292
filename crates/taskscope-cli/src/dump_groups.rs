//! The Dump view's rows: the tasks of a task dump grouped by where they wait — tasks with the
//! same chain (the same functions at the same lines, the same leaf) are one row with a count, so
//! a thousand tasks parked on one `.await` are one line. Most tasks first.

use std::collections::HashMap;

use taskscope_wire::{Chain, DumpedTask, TaskDump, Trace};

/// Tasks waiting at the same place.
#[derive(Debug)]
pub struct DumpGroup<'a> {
    /// The tasks, by id.
    pub tasks: Vec<&'a DumpedTask>,
    /// Where they wait (the first task's trace; the same for all).
    pub trace: &'a Trace,
}

impl<'a> DumpGroup<'a> {
    /// The group of `dump`'s tasks at `tasks` (indices, as [`dump_groups`] gives them).
    pub fn of(dump: &'a TaskDump, tasks: &[usize]) -> DumpGroup<'a> {
        let tasks: Vec<&DumpedTask> = tasks.iter().map(|&i| &dump.tasks[i]).collect();
        DumpGroup {
            trace: &tasks[0].trace,
            tasks,
        }
    }

    /// The innermost `async fn` of the application (not of a dependency: tokio's own `lock`
    /// says less than the line that called it) and its line, or what the trace says instead.
    pub fn waiting_at(&self) -> String {
        match self.trace {
            Trace::Suspended { chains } => chains
                .first()
                .and_then(|c| {
                    c.frames
                        .iter()
                        .find(|f| !f.in_dependency())
                        .or(c.frames.first())
                })
                .map(|f| f.at())
                .unwrap_or_else(|| "(no async frame)".into()),
            Trace::NoWakerRegistered => "(pending, registered no new waker)".into(),
            Trace::CompletedDuringTrace => "(completed in the dump's poll)".into(),
            Trace::PanickedDuringTrace => "(panicked in the dump's poll)".into(),
            Trace::NotPolled => "(not polled within the timeout)".into(),
            Trace::NotTraceable { reason } => format!("(not traced: {reason})"),
        }
    }

    /// The leaf future of the first chain, if any.
    pub fn leaf(&self) -> Option<&str> {
        match self.trace {
            Trace::Suspended { chains } => chains.first().and_then(|c| c.leaf.as_deref()),
            _ => None,
        }
    }
}

/// The groups of `dump`, most tasks first (then by where they wait), as indices into its
/// tasks: computed once per dump (the view draws them every frame, with [`DumpGroup::of`]).
pub fn dump_groups(dump: &TaskDump) -> Vec<Vec<usize>> {
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for (i, task) in dump.tasks.iter().enumerate() {
        let key = signature(&task.trace);
        match index.get(&key) {
            Some(&g) => groups[g].push(i),
            None => {
                index.insert(key, groups.len());
                groups.push(vec![i]);
            }
        }
    }
    let mut keyed: Vec<(usize, String, Vec<usize>)> = groups
        .into_iter()
        .map(|g| (g.len(), DumpGroup::of(dump, &g).waiting_at(), g))
        .collect();
    keyed.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    keyed.into_iter().map(|(_, _, g)| g).collect()
}

/// What makes two traces the same place: every chain's leaf, functions and lines.
fn signature(trace: &Trace) -> String {
    match trace {
        Trace::Suspended { chains } => chains.iter().map(chain_signature).collect(),
        other => format!("{other:?}"),
    }
}

fn chain_signature(chain: &Chain) -> String {
    let mut s = chain.leaf.clone().unwrap_or_default();
    for f in &chain.frames {
        s.push_str(&format!("|{}:{:?}:{:?}", f.function, f.file, f.line));
    }
    s.push(';');
    s
}
