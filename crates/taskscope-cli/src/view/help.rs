//! The `?` overlay listing every key.

use ratatui::layout::{Constraint, Flex, Layout, Rect};
use ratatui::text::Line;
use ratatui::widgets::{Clear, Paragraph};
use ratatui::Frame;

use super::style::block;

pub const KEYS: [(&str, &str); 21] = [
    ("q, ctrl-c", "quit"),
    ("ctrl-l", "repaint the screen"),
    ("?", "this help (any key closes it)"),
    ("tab, shift-tab", "next, previous view"),
    (
        "1-9",
        "Overview, Tasks, Task, Locks, Semaphores, Warnings, Requests, Dump, Profile",
    ),
    (
        "d",
        "dump the live app's tasks: where each waits (Dump, Task)",
    ),
    ("j/k, down/up", "move the selection"),
    ("pgdn/pgup", "move by 20 rows"),
    ("gg, home", "first row"),
    ("G, end", "last row"),
    ("enter", "open the selected task (Tasks, Warnings)"),
    ("esc", "back from a task; clear the filter"),
    ("h/l, left/right, s", "sort by the previous/next column"),
    ("i", "invert the sort"),
    ("/", "filter tasks by name or location"),
    (
        "t",
        "Tasks: the spawn tree (children under their parent) or the flat list",
    ),
    (
        "c",
        "Tasks, in the tree: collapse or expand the selected task's subtree",
    ),
    ("p, space", "pause (keep showing this moment)"),
    ("n", "replay: step to the next update"),
    ("[ ]", "replay: seek 10 s back / forward"),
    ("- +", "replay: slower / faster"),
];

pub fn render(frame: &mut Frame, area: Rect) {
    let width = 84.min(area.width);
    let height = (KEYS.len() as u16 + 2).min(area.height);
    let [area] = Layout::horizontal([Constraint::Length(width)])
        .flex(Flex::Center)
        .areas(area);
    let [area] = Layout::vertical([Constraint::Length(height)])
        .flex(Flex::Center)
        .areas(area);
    let lines: Vec<Line> = KEYS
        .iter()
        .map(|(k, what)| Line::from(format!("{k:>20}  {what}")))
        .collect();
    frame.render_widget(Clear, area);
    frame.render_widget(Paragraph::new(lines).block(block("Keys")), area);
}
