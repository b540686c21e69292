//! Dashboard state and key handling: plain data, no drawing. Keys map to small named methods and
//! return an [`Action`] for the event loop to perform (quit, watch a task, move a replay).

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use taskscope_wire::{Snapshot, Task, TaskDump};

use crate::task_tree::{tree_rows, TreeRow};

/// The screens, in tab order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// Workers, lag, task and warning counts, busiest groups.
    Overview,
    /// Every task.
    Tasks,
    /// One task in detail.
    Task,
    /// Locks.
    Locks,
    /// Semaphores.
    Semaphores,
    /// Warnings, newest first.
    Warnings,
    /// Scopes and requests (the tower layer's routes), slowest first.
    Requests,
    /// The last task dump, tasks grouped by where they wait.
    Dump,
    /// The CPU profile: task groups and scopes by samples, the selected one's top functions.
    Profile,
}

impl View {
    /// Every view, in tab order (keys 1 to 9).
    pub const ALL: [View; 9] = [
        View::Overview,
        View::Tasks,
        View::Task,
        View::Locks,
        View::Semaphores,
        View::Warnings,
        View::Requests,
        View::Dump,
        View::Profile,
    ];

    /// The view's name on its tab.
    pub fn title(self) -> &'static str {
        match self {
            View::Overview => "Overview",
            View::Tasks => "Tasks",
            View::Task => "Task",
            View::Locks => "Locks",
            View::Semaphores => "Semaphores",
            View::Warnings => "Warnings",
            View::Requests => "Requests",
            View::Dump => "Dump",
            View::Profile => "Profile",
        }
    }
}

/// Columns of the tasks table (sortable).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Column {
    /// Task id.
    Id,
    /// Task name.
    Name,
    /// Running, scheduled, idle or done.
    State,
    /// Polls so far.
    Polls,
    /// Busy time.
    Busy,
    /// 99th percentile of poll durations.
    PollP99,
    /// Longest poll.
    PollMax,
    /// 99th percentile of scheduling delays.
    SchedP99,
    /// Wakes so far.
    Wakes,
    /// Spawn location.
    Location,
}

impl Column {
    /// Every column, left to right (the order `s` cycles through).
    pub const ALL: [Column; 10] = [
        Column::Id,
        Column::Name,
        Column::State,
        Column::Polls,
        Column::Busy,
        Column::PollP99,
        Column::PollMax,
        Column::SchedP99,
        Column::Wakes,
        Column::Location,
    ];

    /// The column's header.
    pub fn title(self) -> &'static str {
        match self {
            Column::Id => "ID",
            Column::Name => "Name",
            Column::State => "State",
            Column::Polls => "Polls",
            Column::Busy => "Busy",
            Column::PollP99 => "Poll p99",
            Column::PollMax => "Poll max",
            Column::SchedP99 => "Sched p99",
            Column::Wakes => "Wakes",
            Column::Location => "Location",
        }
    }
}

/// What the event loop should do after a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Nothing to do.
    None,
    /// Leave the dashboard.
    Quit,
    /// Repaint the whole screen (ctrl-l), after something else wrote over it.
    Redraw,
    /// Ask the source for a task's details (histograms), or stop.
    Watch(Option<u64>),
    /// Replay controls (ignored by live sources).
    Replay(ReplayCmd),
    /// Ask the source for a task dump (`d`).
    Dump,
}

/// Replay controls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayCmd {
    /// One frame forward (paused).
    Step,
    /// Jump by this many milliseconds (negative: back).
    Seek(i64),
    /// Play twice as fast.
    Faster,
    /// Play half as fast.
    Slower,
}

/// One sample of the overview's sparklines.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sample {
    /// When, ms since observation started.
    pub at_ms: u64,
    /// Tasks alive.
    pub alive: u64,
    /// Tasks spawned so far.
    pub spawned: u64,
    /// The worst runtime's event-loop lag, p99.
    pub lag_p99_ns: u64,
}

/// Everything the views draw.
#[derive(Debug)]
pub struct App {
    /// The latest state from the source.
    pub snapshot: Arc<Snapshot>,
    /// What the source says about itself ("connected to ...", "disconnected, retrying").
    pub status: String,
    /// The view shown.
    pub view: View,
    /// The Tasks view's sort column.
    pub sort: Column,
    /// Whether the sort is descending.
    pub descending: bool,
    /// The `/` task filter.
    pub filter: String,
    /// Whether keys go to the filter.
    pub editing_filter: bool,
    /// Whether the view is frozen (`p`).
    pub paused: bool,
    /// Whether the help overlay is shown (`?`).
    pub help: bool,
    /// Selected row per table view.
    pub selected: [usize; 9],
    /// The task shown in the Task view.
    pub task: Option<u64>,
    /// The overview's sparkline samples, oldest first.
    pub history: VecDeque<Sample>,
    /// The last task dump (`d`), for the Dump view and the Task view's "waiting at".
    pub dump: Option<Arc<TaskDump>>,
    /// Its tasks grouped by where they wait (indices into its tasks), most first.
    pub dump_groups: Vec<Vec<usize>>,
    /// Whether the Tasks view shows the spawn tree (`t`).
    pub tree: bool,
    /// Tasks whose subtree the tree hides (`c`).
    pub collapsed: HashSet<u64>,
    /// The tree's rows, in display order (empty when the list is flat).
    tree_rows: Vec<TreeRow>,
    /// The snapshot's detached tasks.
    detached: HashSet<u64>,
    /// Sorted and filtered task indices into `snapshot.tasks`, recomputed when they change.
    order: Vec<usize>,
    pending_g: bool,
}

const HISTORY: usize = 120;

impl App {
    /// An empty dashboard with a status line.
    pub fn new(status: impl Into<String>) -> Self {
        App {
            snapshot: Arc::new(Snapshot::default()),
            status: status.into(),
            view: View::Overview,
            sort: Column::Busy,
            descending: true,
            filter: String::new(),
            editing_filter: false,
            paused: false,
            help: false,
            selected: [0; 9],
            task: None,
            history: VecDeque::with_capacity(HISTORY),
            dump: None,
            dump_groups: Vec::new(),
            tree: false,
            collapsed: HashSet::new(),
            tree_rows: Vec::new(),
            detached: HashSet::new(),
            order: Vec::new(),
            pending_g: false,
        }
    }

    /// A new snapshot from the source (kept back while paused).
    pub fn update(&mut self, snapshot: Arc<Snapshot>) {
        if self.paused {
            return;
        }
        let lag = snapshot
            .runtimes
            .iter()
            .map(|r| r.lag_ns.value_at_quantile(0.99))
            .max()
            .unwrap_or(0);
        // Tasks only: scopes run inside tasks (the Requests view counts them).
        let tasks = || {
            snapshot
                .task_groups
                .iter()
                .filter(|g| g.kind != taskscope_wire::TaskKind::Scope)
        };
        let sample = Sample {
            at_ms: snapshot.taken_at_ms,
            alive: tasks().map(|g| g.alive).sum(),
            spawned: tasks().map(|g| g.spawned).sum(),
            lag_p99_ns: lag,
        };
        if self.history.back().is_none_or(|s| s.at_ms != sample.at_ms) {
            if self.history.len() == HISTORY {
                self.history.pop_front();
            }
            self.history.push_back(sample);
        }
        self.detached = snapshot.detached.iter().copied().collect();
        self.snapshot = snapshot;
        self.reorder();
    }

    /// Whether task `id` is detached: alive, its `JoinHandle` dropped.
    pub fn is_detached(&self, id: u64) -> bool {
        self.detached.contains(&id)
    }

    /// Tasks in display order (sorted, filtered).
    pub fn tasks(&self) -> impl ExactSizeIterator<Item = &Task> + '_ {
        self.order.iter().map(|&i| &self.snapshot.tasks[i])
    }

    /// The spawn tree's row at display position `i` (`None` when the list is flat).
    pub fn tree_row(&self, i: usize) -> Option<&TreeRow> {
        self.tree_rows.get(i)
    }

    /// Shows the spawn tree or the flat list, keeping the selected task selected.
    pub fn toggle_tree(&mut self) {
        let selected = self
            .tasks()
            .nth(self.selected[View::Tasks as usize])
            .map(|t| t.id);
        self.tree = !self.tree;
        self.reorder();
        self.select_task(selected);
    }

    /// Collapses or expands the subtree of the selected task (in the tree).
    pub fn toggle_collapsed(&mut self) {
        let Some(id) = self
            .tasks()
            .nth(self.selected[View::Tasks as usize])
            .map(|t| t.id)
        else {
            return;
        };
        if !self.collapsed.remove(&id) {
            self.collapsed.insert(id);
        }
        self.reorder();
        self.select_task(Some(id));
    }

    fn select_task(&mut self, id: Option<u64>) {
        if let Some(row) = id.and_then(|id| self.tasks().position(|t| t.id == id)) {
            self.selected[View::Tasks as usize] = row;
        }
    }

    /// How many tasks the Tasks view lists (after the filter).
    pub fn task_count(&self) -> usize {
        self.order.len()
    }

    fn reorder(&mut self) {
        let filter = self.filter.to_lowercase();
        let tasks = &self.snapshot.tasks;
        let mut order: Vec<usize> = (0..tasks.len())
            .filter(|&i| {
                filter.is_empty()
                    || tasks[i].name.to_lowercase().contains(&filter)
                    || tasks[i].location.to_lowercase().contains(&filter)
            })
            .collect();
        let key = |t: &Task| -> (u64, String) {
            match self.sort {
                Column::Id => (t.id, String::new()),
                Column::Name => (0, t.name.clone()),
                Column::State => (t.state as u64, String::new()),
                Column::Polls => (t.polls, String::new()),
                Column::Busy => (t.busy_ns, String::new()),
                Column::PollP99 => (t.poll_ns.value_at_quantile(0.99), String::new()),
                Column::PollMax => (t.poll_ns.max, String::new()),
                Column::SchedP99 => (t.scheduled_ns.value_at_quantile(0.99), String::new()),
                Column::Wakes => (t.wakes, String::new()),
                Column::Location => (0, t.location.clone()),
            }
        };
        // Keys are computed once per task, not per comparison: 100,000 tasks sort in milliseconds.
        let mut keyed: Vec<((u64, String), u64, usize)> = order
            .drain(..)
            .map(|i| (key(&tasks[i]), tasks[i].id, i))
            .collect();
        keyed.sort_unstable_by(|a, b| {
            let ord = a.0.cmp(&b.0).then(a.1.cmp(&b.1));
            if self.descending {
                ord.reverse()
            } else {
                ord
            }
        });
        self.order = keyed.into_iter().map(|(_, _, i)| i).collect();
        if self.tree {
            self.tree_rows = tree_rows(tasks, &self.order, &self.collapsed);
            self.order = self.tree_rows.iter().map(|r| r.index).collect();
        } else {
            self.tree_rows.clear();
        }
        let max = self.order.len().saturating_sub(1);
        let sel = &mut self.selected[View::Tasks as usize];
        *sel = (*sel).min(max);
        let max = self.warning_rows().len().saturating_sub(1);
        let sel = &mut self.selected[View::Warnings as usize];
        *sel = (*sel).min(max);
    }

    fn rows(&self) -> usize {
        match self.view {
            View::Overview => self.snapshot.task_groups.len(),
            View::Tasks => self.order.len(),
            View::Task => 0,
            View::Locks => self.snapshot.locks.len(),
            View::Semaphores => self.snapshot.semaphores.len(),
            View::Warnings => self.warning_rows().len(),
            View::Requests => self.snapshot.scopes.len(),
            View::Dump => self.dump_groups.len(),
            View::Profile => self
                .snapshot
                .profile
                .as_ref()
                .map_or(0, |p| p.by_label().len()),
        }
    }

    /// The selected row of the current view.
    pub fn selected(&self) -> usize {
        self.selected[self.view as usize]
    }

    fn select(&mut self, row: usize) {
        let max = self.rows().saturating_sub(1);
        self.selected[self.view as usize] = row.min(max);
    }

    fn show(&mut self, view: View) -> Action {
        let was_task = self.view == View::Task;
        self.view = view;
        match (was_task, view == View::Task) {
            (false, true) => Action::Watch(self.task),
            (true, false) => Action::Watch(None),
            _ => Action::None,
        }
    }

    /// Shows the next view (tab).
    pub fn next_tab(&mut self) -> Action {
        let i = View::ALL.iter().position(|&v| v == self.view).unwrap_or(0);
        self.show(View::ALL[(i + 1) % View::ALL.len()])
    }

    /// Shows the previous view (shift-tab).
    pub fn previous_tab(&mut self) -> Action {
        let i = View::ALL.iter().position(|&v| v == self.view).unwrap_or(0);
        self.show(View::ALL[(i + View::ALL.len() - 1) % View::ALL.len()])
    }

    /// Sorts by the next (or previous) column.
    pub fn next_sort_column(&mut self, forward: bool) {
        let i = Column::ALL
            .iter()
            .position(|&c| c == self.sort)
            .unwrap_or(0);
        let n = Column::ALL.len();
        self.sort = Column::ALL[if forward {
            (i + 1) % n
        } else {
            (i + n - 1) % n
        }];
        self.reorder();
    }

    /// The Warnings view's rows: repeats folded, the `/` filter applied, newest first.
    pub fn warning_rows(&self) -> Vec<crate::warning_rows::WarningRow<'_>> {
        crate::warning_rows::warning_rows(&self.snapshot.warnings, &self.filter)
    }

    /// Shows only tasks whose name or location contains `text` (case-insensitive), and only
    /// warnings whose kind, text, task or location does.
    pub fn set_filter(&mut self, text: &str) {
        self.filter = text.to_string();
        self.reorder();
    }

    /// Reverses the sort.
    pub fn invert_sort(&mut self) {
        self.descending = !self.descending;
        self.reorder();
    }

    /// Freezes or unfreezes the view.
    pub fn toggle_pause(&mut self) {
        self.paused = !self.paused;
    }

    /// Opens the selected task (Tasks view) or the task of the selected warning.
    pub fn open_selected(&mut self) -> Action {
        let id = match self.view {
            View::Tasks => self.tasks().nth(self.selected()).map(|t| t.id),
            View::Warnings => {
                let rows = self.warning_rows();
                rows.get(self.selected()).and_then(|row| row.latest.task)
            }
            _ => None,
        };
        match id {
            Some(id) => {
                self.task = Some(id);
                self.view = View::Task;
                Action::Watch(Some(id))
            }
            None => Action::None,
        }
    }

    /// A task dump from the source: shown in the Dump view, and in the Task view.
    pub fn set_dump(&mut self, dump: Arc<TaskDump>) {
        self.dump_groups = crate::dump_groups::dump_groups(&dump);
        let groups = self.dump_groups.len();
        self.dump = Some(dump);
        let sel = &mut self.selected[View::Dump as usize];
        *sel = (*sel).min(groups.saturating_sub(1));
    }

    /// Handles one key; key releases and repeats of crossterm are ignored.
    pub fn on_key(&mut self, key: KeyEvent) -> Action {
        if key.kind != KeyEventKind::Press {
            return Action::None;
        }
        if key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c') {
            return Action::Quit;
        }
        if key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('l') {
            return Action::Redraw;
        }
        if self.editing_filter {
            match key.code {
                KeyCode::Esc => {
                    self.filter.clear();
                    self.editing_filter = false;
                }
                KeyCode::Enter => self.editing_filter = false,
                KeyCode::Backspace => {
                    self.filter.pop();
                }
                KeyCode::Char(c) => self.filter.push(c),
                _ => {}
            }
            self.reorder();
            return Action::None;
        }
        if self.help {
            self.help = false; // any key closes the help
            return Action::None;
        }
        let g_pending = std::mem::take(&mut self.pending_g);
        match key.code {
            KeyCode::Char('q') => return Action::Quit,
            KeyCode::Char('?') => self.help = true,
            KeyCode::Tab => return self.next_tab(),
            KeyCode::BackTab => return self.previous_tab(),
            KeyCode::Char(c @ '1'..='9') => return self.show(View::ALL[c as usize - '1' as usize]),
            KeyCode::Char('d') => return Action::Dump,
            KeyCode::Char('t') if self.view == View::Tasks => self.toggle_tree(),
            KeyCode::Char('c') if self.view == View::Tasks && self.tree => self.toggle_collapsed(),
            KeyCode::Down | KeyCode::Char('j') => self.select(self.selected() + 1),
            KeyCode::Up | KeyCode::Char('k') => self.select(self.selected().saturating_sub(1)),
            KeyCode::PageDown => self.select(self.selected() + 20),
            KeyCode::PageUp => self.select(self.selected().saturating_sub(20)),
            KeyCode::Home => self.select(0),
            KeyCode::End | KeyCode::Char('G') => self.select(usize::MAX),
            KeyCode::Char('g') if g_pending => self.select(0),
            KeyCode::Char('g') => self.pending_g = true,
            KeyCode::Right | KeyCode::Char('l') => self.next_sort_column(true),
            KeyCode::Left | KeyCode::Char('h') => self.next_sort_column(false),
            KeyCode::Char('s') => self.next_sort_column(true),
            KeyCode::Char('i') => self.invert_sort(),
            KeyCode::Char('/') => self.editing_filter = true,
            KeyCode::Char('p') | KeyCode::Char(' ') => self.toggle_pause(),
            KeyCode::Enter => return self.open_selected(),
            KeyCode::Esc if self.view == View::Task => return self.show(View::Tasks),
            KeyCode::Esc => {
                self.filter.clear();
                self.reorder();
            }
            KeyCode::Char('n') => return Action::Replay(ReplayCmd::Step),
            KeyCode::Char(']') => return Action::Replay(ReplayCmd::Seek(10_000)),
            KeyCode::Char('[') => return Action::Replay(ReplayCmd::Seek(-10_000)),
            KeyCode::Char('+') => return Action::Replay(ReplayCmd::Faster),
            KeyCode::Char('-') => return Action::Replay(ReplayCmd::Slower),
            _ => {}
        }
        Action::None
    }
}

/// Durations as the views' narrow columns show them: the reports' form without its space
/// (`1.2ms`).
pub fn fmt_ns(ns: u64) -> String {
    taskscope_wire::fmt_ns(ns).replace(' ', "")
}
