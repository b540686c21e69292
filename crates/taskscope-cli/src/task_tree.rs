//! The Tasks view's spawn tree: tasks under the task that spawned them, depth first, siblings in
//! the view's sort order, each parent with the counts of the tasks below it (rolled up), and
//! collapsed subtrees left out.

use std::collections::{HashMap, HashSet};

use taskscope_wire::{Task, TaskState};

/// One row of the tree.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TreeRow {
    /// Index into the snapshot's tasks.
    pub index: usize,
    /// Its depth: 0 for a task whose parent is not shown (spawned outside any task, ended and
    /// retired, or left out by the filter).
    pub depth: usize,
    /// Tasks below it, at any depth.
    pub below: usize,
    /// Of those, the ones still alive (not done).
    pub below_alive: usize,
    /// Whether its subtree is collapsed (hidden).
    pub collapsed: bool,
}

/// The tree of the tasks at `order` (indices into `tasks`, in the order siblings take), without
/// the subtrees of the tasks in `collapsed`.
pub fn tree_rows(tasks: &[Task], order: &[usize], collapsed: &HashSet<u64>) -> Vec<TreeRow> {
    let shown: HashMap<u64, usize> = order.iter().map(|&i| (tasks[i].id, i)).collect();
    let mut children: HashMap<usize, Vec<usize>> = HashMap::new();
    let mut roots = Vec::new();
    for &i in order {
        // Ids grow with each spawn, so a parent's is smaller: a parent that is not (a corrupt
        // recording) would make a loop, and the task is taken as a root.
        let parent = tasks[i].parent.filter(|&p| p < tasks[i].id);
        match parent.and_then(|p| shown.get(&p)) {
            Some(&parent) => children.entry(parent).or_default().push(i),
            None => roots.push(i),
        }
    }
    // Rolled-up counts, children before parents (an explicit stack: trees can be deep).
    let mut below: HashMap<usize, (usize, usize)> = HashMap::new();
    let mut stack: Vec<(usize, bool)> = roots.iter().rev().map(|&i| (i, false)).collect();
    while let Some((i, expanded)) = stack.pop() {
        let kids = children.get(&i).map_or(&[][..], Vec::as_slice);
        if !expanded {
            stack.push((i, true));
            stack.extend(kids.iter().rev().map(|&k| (k, false)));
            continue;
        }
        let mut sum = (0, 0);
        for k in kids {
            let (n, alive) = below[k];
            let kid_alive = usize::from(tasks[*k].state != TaskState::Done);
            sum = (sum.0 + n + 1, sum.1 + alive + kid_alive);
        }
        below.insert(i, sum);
    }
    let mut rows = Vec::with_capacity(order.len());
    let mut stack: Vec<(usize, usize)> = roots.iter().rev().map(|&i| (i, 0)).collect();
    while let Some((i, depth)) = stack.pop() {
        let (n, alive) = below[&i];
        let folded = n > 0 && collapsed.contains(&tasks[i].id);
        rows.push(TreeRow {
            index: i,
            depth,
            below: n,
            below_alive: alive,
            collapsed: folded,
        });
        if !folded {
            if let Some(kids) = children.get(&i) {
                stack.extend(kids.iter().rev().map(|&k| (k, depth + 1)));
            }
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(id: u64, parent: Option<u64>, busy_ns: u64, state: TaskState) -> Task {
        Task {
            id,
            parent,
            busy_ns,
            state,
            name: format!("t{id}"),
            ..Task::default()
        }
    }

    #[test]
    fn children_follow_their_parent_with_counts_rolled_up() {
        let tasks = vec![
            task(1, None, 10, TaskState::Idle),
            task(2, Some(1), 20, TaskState::Idle),
            task(3, Some(2), 30, TaskState::Done),
            task(4, Some(1), 40, TaskState::Running),
            task(5, Some(99), 50, TaskState::Idle), // its parent has ended
        ];
        let order: Vec<usize> = (0..tasks.len()).collect();
        let rows = tree_rows(&tasks, &order, &HashSet::new());
        let shape: Vec<(u64, usize, usize, usize)> = rows
            .iter()
            .map(|r| (tasks[r.index].id, r.depth, r.below, r.below_alive))
            .collect();
        assert_eq!(
            shape,
            [
                (1, 0, 3, 2),
                (2, 1, 1, 0),
                (3, 2, 0, 0),
                (4, 1, 0, 0),
                (5, 0, 0, 0)
            ]
        );
        // Collapsed: its subtree is hidden, its counts stay.
        let rows = tree_rows(&tasks, &order, &HashSet::from([1]));
        let ids: Vec<u64> = rows.iter().map(|r| tasks[r.index].id).collect();
        assert_eq!(ids, [1, 5]);
        assert!(rows[0].collapsed && rows[0].below == 3);
        // Siblings take the order given.
        let rows = tree_rows(&tasks, &[4, 3, 2, 1, 0], &HashSet::new());
        let ids: Vec<u64> = rows.iter().map(|r| tasks[r.index].id).collect();
        assert_eq!(ids, [5, 1, 4, 2, 3]);
    }

    #[test]
    fn parents_that_would_loop_are_roots() {
        let tasks = vec![
            task(1, Some(1), 1, TaskState::Idle),
            task(2, Some(3), 1, TaskState::Idle),
            task(3, Some(2), 1, TaskState::Idle),
        ];
        let rows = tree_rows(&tasks, &[0, 1, 2], &HashSet::new());
        let shape: Vec<(u64, usize)> = rows.iter().map(|r| (tasks[r.index].id, r.depth)).collect();
        assert_eq!(shape, [(1, 0), (2, 0), (3, 1)]);
    }
}
