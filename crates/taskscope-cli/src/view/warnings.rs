//! The Warnings view: newest first, repeats folded into one row with a count; blocked workers
//! and deadlocks stand out, ongoing ones are marked. Under the list, the selected warning in
//! full and how to fix it.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span, Text};
use ratatui::widgets::{Cell, Paragraph, Row, Table, TableState, Wrap};
use ratatui::Frame;

use super::style::{block, warning_style, window};
use crate::app::App;
use crate::warning_rows::WarningRow;

/// Rows of the detail pane under the list (borders included), when the view is tall enough.
const DETAIL_HEIGHT: u16 = 8;

pub fn render(app: &App, frame: &mut Frame, area: Rect) {
    let all = app.warning_rows();
    let selected = all.get(app.selected());
    let area = match selected {
        Some(warning) if area.height >= 3 * DETAIL_HEIGHT => {
            // A line more for each task of a deadlock or long wait whose chain is known.
            let chains = app
                .snapshot
                .warning_chains
                .get(&warning.latest.id)
                .map_or(0, |c| c.len() as u16);
            let height = DETAIL_HEIGHT + chains.min(4);
            let [list, detail] =
                Layout::vertical([Constraint::Fill(1), Constraint::Length(height)]).areas(area);
            render_detail(app, warning, frame, detail);
            list
        }
        _ => area,
    };
    let range = window(
        all.len(),
        app.selected(),
        area.height.saturating_sub(3) as usize,
    );
    let offset = range.start;
    let rows: Vec<Row> = all
        .iter()
        .skip(range.start)
        .take(range.len())
        .map(|row| {
            let w = row.latest;
            let style = warning_style(w.kind);
            let now = if row.ongoing {
                Cell::from("NOW").style(style.add_modifier(Modifier::REVERSED))
            } else {
                Cell::from("")
            };
            let message = match row.count {
                1 => w.message.clone(),
                n => format!("×{n} {}", w.message),
            };
            // A sampled blocked worker gets a second line: where it was blocked.
            let stack = app.snapshot.top_stack(w.id);
            let (what, height) = match stack.or_else(|| app.snapshot.top_stack(row.worst.id)) {
                Some(stack) => (
                    Text::from(vec![
                        Line::raw(message),
                        Line::raw(format!("  at {}", stack.summary())).style(style),
                    ]),
                    2,
                ),
                None => (Text::raw(message), 1),
            };
            Row::new(vec![
                Cell::from(format!("{:.1}s", w.at_ms as f64 / 1000.0)),
                Cell::from(w.kind.as_str()).style(style),
                now,
                Cell::from(what),
            ])
            .height(height)
        })
        .collect();
    let widths = [
        Constraint::Length(8),
        Constraint::Length(23),
        Constraint::Length(4),
        Constraint::Fill(1),
    ];
    let title = title(app);
    let table = Table::new(rows, widths)
        .header(Row::new(["At", "Kind", "", "What"]).style(Style::new().bold().underlined()))
        .block(block(&title))
        .row_highlight_style(Style::new().add_modifier(Modifier::REVERSED));
    let mut state =
        TableState::default().with_selected(Some(app.selected().saturating_sub(offset)));
    frame.render_stateful_widget(table, area, &mut state);
}

/// The list's title: what it shows and the filter in use.
fn title(app: &App) -> String {
    let filter = if app.filter.is_empty() {
        String::new()
    } else {
        format!(" matching `{}`", app.filter)
    };
    format!("Warnings{filter} (newest first, repeats folded; enter opens the task)")
}

/// The selected warning in full (the list cuts long messages), how often and how badly it
/// repeated, where it was blocked, and the fix for its kind.
fn render_detail(app: &App, row: &WarningRow<'_>, frame: &mut Frame, area: Rect) {
    let w = row.latest;
    let style = warning_style(w.kind);
    let mut head = vec![
        Span::styled(w.kind.as_str(), style.bold()),
        Span::raw(format!(" at {:.1}s", w.at_ms as f64 / 1000.0)),
    ];
    if row.ongoing {
        head.push(Span::styled(" (now)", style));
    }
    if row.count > 1 {
        let worst = row.worst;
        let longest = worst
            .duration_ns
            .map(|ns| format!(", the longest {}", crate::app::fmt_ns(ns)))
            .unwrap_or_default();
        head.push(Span::raw(format!(
            " · {} times since {:.1}s{longest} (at {:.1}s)",
            row.count,
            row.first.at_ms as f64 / 1000.0,
            worst.at_ms as f64 / 1000.0
        )));
    }
    let mut lines = vec![Line::from(head), Line::raw(w.message.clone())];
    let stack = app.snapshot.top_stack(w.id);
    if let Some(stack) = stack.or_else(|| app.snapshot.top_stack(row.worst.id)) {
        lines.push(Line::raw(format!("at {}", stack.summary())).style(style));
    }
    // A deadlock's or long wait's tasks: where each waits, from the dump taken when raised.
    for task in app.snapshot.warning_chains.get(&w.id).into_iter().flatten() {
        if let Some(chain) = task.first_chain() {
            // The application's frames: the dependencies' (tokio's `lock`) say less.
            let at: Vec<String> = chain
                .frames
                .iter()
                .filter(|f| !f.in_dependency())
                .map(|f| f.at())
                .collect();
            lines.push(Line::raw(format!(
                "task {} `{}` waits in {}",
                task.id,
                task.name,
                at.join(" ← ")
            )));
        }
    }
    lines.push(Line::from(vec![
        Span::styled("Fix: ", Style::new().bold()),
        Span::raw(w.hint()),
    ]));
    let detail = Paragraph::new(lines)
        .wrap(Wrap { trim: false })
        .block(block("Selected warning"));
    frame.render_widget(detail, area);
}
