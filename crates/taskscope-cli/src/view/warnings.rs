//! The Warnings view: newest first; blocked workers and deadlocks stand out, ongoing ones are
//! marked.

use ratatui::layout::{Constraint, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Text};
use ratatui::widgets::{Cell, Row, Table, TableState};
use ratatui::Frame;

use super::style::{block, warning_style, window};
use crate::app::App;

pub fn render(app: &App, frame: &mut Frame, area: Rect) {
    let warnings = &app.snapshot.warnings;
    let range = window(
        warnings.len(),
        app.selected(),
        area.height.saturating_sub(3) as usize,
    );
    let offset = range.start;
    let rows: Vec<Row> = warnings
        .iter()
        .rev()
        .skip(range.start)
        .take(range.len())
        .map(|w| {
            let style = warning_style(w.kind);
            let now = if w.ongoing {
                Cell::from("NOW").style(style.add_modifier(Modifier::REVERSED))
            } else {
                Cell::from("")
            };
            // A sampled blocked worker gets a second line: where it was blocked.
            let (what, height) = match app.snapshot.top_stack(w.id) {
                Some(stack) => (
                    Text::from(vec![
                        Line::raw(w.message.clone()),
                        Line::raw(format!("  at {}", stack.summary())).style(style),
                    ]),
                    2,
                ),
                None => (Text::raw(w.message.clone()), 1),
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
    let table = Table::new(rows, widths)
        .header(Row::new(["At", "Kind", "", "What"]).style(Style::new().bold().underlined()))
        .block(block("Warnings (newest first; enter opens the task)"))
        .row_highlight_style(Style::new().add_modifier(Modifier::REVERSED));
    let mut state =
        TableState::default().with_selected(Some(app.selected().saturating_sub(offset)));
    frame.render_stateful_widget(table, area, &mut state);
}
