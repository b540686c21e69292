//! The Tasks view: every task, sortable, filterable, state-coloured, long polls highlighted; as
//! a list or as the spawn tree (`t`).
//! Only the visible rows are built, so 100,000 tasks draw as fast as 100.

use ratatui::layout::{Constraint, Rect};
use ratatui::style::{Color, Modifier, Style, Stylize};
use ratatui::widgets::{Cell, Row, Table, TableState};
use ratatui::Frame;

use super::style::{block, column_widths, fit_left, state_style, window};
use crate::app::{fmt_ns, App, Column};
use crate::task_tree::TreeRow;

/// A poll this long is highlighted (the default blocked threshold).
const LONG_POLL_NS: u64 = 10_000_000;

pub fn render(app: &App, frame: &mut Frame, area: Rect) {
    let header = Row::new(Column::ALL.iter().map(|&c| {
        let title = if c == app.sort {
            format!("{}{}", c.title(), if app.descending { "▼" } else { "▲" })
        } else {
            c.title().to_string()
        };
        Cell::from(title)
    }))
    .style(Style::new().add_modifier(Modifier::BOLD | Modifier::UNDERLINED));
    // The tree's names are indented and carry their subtree's counts: more room for them.
    let name_share = if app.tree { 5 } else { 2 };
    let widths = [
        Constraint::Length(6),
        Constraint::Fill(name_share),
        Constraint::Length(9),
        Constraint::Length(8),
        Constraint::Length(9),
        Constraint::Length(9),
        Constraint::Length(9),
        Constraint::Length(10),
        Constraint::Length(7),
        Constraint::Fill(2),
    ];
    // Locations cut from the left, so their file:line:col stays in view.
    let location_width = column_widths(area, &widths).last().copied().unwrap_or(0);
    let height = area.height.saturating_sub(3) as usize;
    let rows_range = window(app.task_count(), app.selected(), height);
    let offset = rows_range.start;
    let rows: Vec<Row> = app
        .tasks()
        .skip(rows_range.start)
        .take(rows_range.len())
        .enumerate()
        .map(|(k, t)| {
            // Detached tasks (their handle dropped) are marked `⇥` before the name.
            let marked = match app.is_detached(t.id) {
                true => format!("⇥{}", t.name),
                false => t.name.clone(),
            };
            let name = match app.tree_row(offset + k) {
                Some(row) => tree_name(row, &marked),
                None => marked,
            };
            let p99 = t.poll_ns.value_at_quantile(0.99);
            let long = t.poll_ns.max >= LONG_POLL_NS;
            let max = Cell::from(fmt_ns(t.poll_ns.max));
            let max = if long {
                max.style(Style::new().fg(Color::Red).add_modifier(Modifier::BOLD))
            } else {
                max
            };
            Row::new(vec![
                Cell::from(t.id.to_string()),
                Cell::from(name),
                Cell::from(format!("{:?}", t.state).to_lowercase()).style(state_style(t.state)),
                Cell::from(t.polls.to_string()),
                Cell::from(fmt_ns(t.busy_ns)),
                Cell::from(fmt_ns(p99)),
                max,
                Cell::from(fmt_ns(t.scheduled_ns.value_at_quantile(0.99))),
                Cell::from(t.wakes.to_string()),
                Cell::from(fit_left(&t.location, location_width)).dim(),
            ])
        })
        .collect();
    let title = format!(
        "Tasks ({} shown of {}){}{}",
        app.task_count(),
        app.snapshot.tasks.len(),
        match app.tree {
            true => " — spawn tree: t for the list, c to collapse or expand",
            false => "",
        },
        match app.snapshot.detached.is_empty() {
            true => "",
            false => " · ⇥ detached (its JoinHandle dropped)",
        }
    );
    let table = Table::new(rows, widths)
        .header(header)
        .block(block(&title))
        .row_highlight_style(Style::new().add_modifier(Modifier::REVERSED));
    let mut state = TableState::default().with_selected(Some(app.selected() - offset));
    frame.render_stateful_widget(table, area, &mut state);
}

/// A task's name in the spawn tree: indented by its depth, marked when it has tasks below it
/// (`▾` shown, `▸` collapsed), with how many (`+6`) and how many of them are alive.
fn tree_name(row: &TreeRow, name: &str) -> String {
    let indent = "  ".repeat(row.depth.min(12));
    match (row.below, row.collapsed) {
        (0, _) => format!("{indent}  {name}"),
        (below, collapsed) => format!(
            "{indent}{} {name} +{below} ({} alive)",
            if collapsed { '▸' } else { '▾' },
            row.below_alive,
        ),
    }
}
