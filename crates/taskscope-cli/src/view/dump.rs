//! The Dump view: the last task dump (`d` asks the app for one), its tasks grouped by where they
//! wait, most first — a thousand tasks parked on one `.await` are one row with a count. Under
//! the list, the selected group's whole chain, innermost first, and its tasks.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style, Stylize};
use ratatui::text::Line;
use ratatui::widgets::{Cell, Paragraph, Row, Table, TableState};
use ratatui::Frame;
use taskscope_wire::{Chain, Trace};

use super::style::{block, window};
use crate::app::App;
use crate::dump_groups::DumpGroup;

/// Rows of the chain pane under the list (borders included), when the view is tall enough.
const DETAIL_HEIGHT: u16 = 12;
/// Task ids listed per group in the pane.
const IDS_SHOWN: usize = 12;

pub fn render(app: &App, frame: &mut Frame, area: Rect) {
    let Some(dump) = &app.dump else {
        let text = "No task dump yet: press d to ask the app for one (a live app of stream \
                    version 6 or later). It shows where every task waits: the chain of async fns \
                    at their .await lines.";
        frame.render_widget(
            Paragraph::new(text)
                .wrap(ratatui::widgets::Wrap { trim: false })
                .block(block("Dump")),
            area,
        );
        return;
    };
    let groups: Vec<DumpGroup<'_>> = app
        .dump_groups
        .iter()
        .map(|tasks| DumpGroup::of(dump, tasks))
        .collect();
    let selected = groups.get(app.selected());
    let area = match selected {
        Some(group) if area.height >= 2 * DETAIL_HEIGHT => {
            let [list, detail] =
                Layout::vertical([Constraint::Fill(1), Constraint::Length(DETAIL_HEIGHT)])
                    .areas(area);
            render_chain(group, frame, detail);
            list
        }
        _ => area,
    };
    let range = window(
        groups.len(),
        app.selected(),
        area.height.saturating_sub(3) as usize,
    );
    let offset = range.start;
    let rows: Vec<Row> = groups
        .iter()
        .skip(range.start)
        .take(range.len())
        .map(|g| {
            let names = names(g);
            Row::new(vec![
                Cell::from(g.tasks.len().to_string()),
                Cell::from(names),
                Cell::from(g.waiting_at()),
                Cell::from(g.leaf().unwrap_or("").to_string()).dim(),
            ])
        })
        .collect();
    let widths = [
        Constraint::Length(6),
        Constraint::Length(18),
        Constraint::Fill(3),
        Constraint::Fill(2),
    ];
    let omitted = match dump.omitted {
        0 => String::new(),
        n => format!(", {n} left out"),
    };
    let title = format!(
        "Dump at {:.1}s: {} tasks in {} places{omitted} (d: dump again)",
        dump.taken_at_ms as f64 / 1000.0,
        dump.tasks.len(),
        groups.len()
    );
    let table = Table::new(rows, widths)
        .header(
            Row::new(["Tasks", "Names", "Waiting at", "On"])
                .style(Style::new().bold().underlined()),
        )
        .block(block(&title))
        .row_highlight_style(Style::new().add_modifier(Modifier::REVERSED));
    let mut state =
        TableState::default().with_selected(Some(app.selected().saturating_sub(offset)));
    frame.render_stateful_widget(table, area, &mut state);
}

/// The group's task names, most common first (`handler ×12, worker`).
fn names(group: &DumpGroup<'_>) -> String {
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for t in &group.tasks {
        match counts.iter_mut().find(|(n, _)| *n == t.name) {
            Some((_, c)) => *c += 1,
            None => counts.push((&t.name, 1)),
        }
    }
    counts.sort_by_key(|&(_, c)| std::cmp::Reverse(c));
    counts
        .iter()
        .map(|(n, c)| match c {
            1 => n.to_string(),
            c => format!("{n} ×{c}"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn render_chain(group: &DumpGroup<'_>, frame: &mut Frame, area: Rect) {
    let mut lines: Vec<Line> = Vec::new();
    let ids: Vec<String> = group
        .tasks
        .iter()
        .take(IDS_SHOWN)
        .map(|t| t.id.to_string())
        .collect();
    let more = group.tasks.len().saturating_sub(IDS_SHOWN);
    let more = if more > 0 {
        format!(" and {more} more")
    } else {
        String::new()
    };
    lines.push(Line::from(format!("tasks {}{more}", ids.join(", "))).bold());
    if let Some(wait) = group.tasks.iter().find_map(|t| t.waiting_for.as_ref()) {
        let holder = wait
            .holder
            .map(|h| format!(", held by task {h}"))
            .unwrap_or_default();
        lines.push(Line::from(format!(
            "waiting for {} `{}` (asked at {}){holder}",
            wait.kind, wait.lock, wait.at
        )));
    }
    match group.trace {
        Trace::Suspended { chains } => {
            for (i, chain) in chains.iter().enumerate() {
                if chains.len() > 1 {
                    lines.push(Line::from(format!("branch {}:", i + 1)).dim());
                }
                chain_lines(chain, &mut lines);
            }
        }
        _ => lines.push(Line::from(group.waiting_at())),
    }
    frame.render_widget(Paragraph::new(lines).block(block("Where they wait")), area);
}

/// A chain as the Task view and this pane print it: the leaf, then each `async fn` outward.
pub(super) fn chain_lines(chain: &Chain, lines: &mut Vec<Line<'static>>) {
    if let Some(leaf) = &chain.leaf {
        lines.push(Line::from(format!("on {leaf}")).dim());
    }
    for f in &chain.frames {
        lines.push(Line::from(format!("in {}", f.at())));
    }
}
