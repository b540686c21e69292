//! The Warnings view: newest first; blocked workers and deadlocks stand out, ongoing ones are
//! marked. Under the list, the selected warning in full and how to fix it.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span, Text};
use ratatui::widgets::{Cell, Paragraph, Row, Table, TableState, Wrap};
use ratatui::Frame;
use taskscope_wire::Warning;

use super::style::{block, warning_style, window};
use crate::app::App;

/// Rows of the detail pane under the list (borders included), when the view is tall enough.
const DETAIL_HEIGHT: u16 = 8;

pub fn render(app: &App, frame: &mut Frame, area: Rect) {
    let selected = app.snapshot.warnings.iter().rev().nth(app.selected());
    let area = match selected {
        Some(warning) if area.height >= 3 * DETAIL_HEIGHT => {
            let [list, detail] =
                Layout::vertical([Constraint::Fill(1), Constraint::Length(DETAIL_HEIGHT)])
                    .areas(area);
            render_detail(app, warning, frame, detail);
            list
        }
        _ => area,
    };
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

/// The selected warning in full (the list cuts long messages), where it was blocked, and the
/// fix for its kind.
fn render_detail(app: &App, w: &Warning, frame: &mut Frame, area: Rect) {
    let style = warning_style(w.kind);
    let mut head = vec![
        Span::styled(w.kind.as_str(), style.bold()),
        Span::raw(format!(" at {:.1}s", w.at_ms as f64 / 1000.0)),
    ];
    if w.ongoing {
        head.push(Span::styled(" (now)", style));
    }
    let mut lines = vec![Line::from(head), Line::raw(w.message.clone())];
    if let Some(stack) = app.snapshot.top_stack(w.id) {
        lines.push(Line::raw(format!("at {}", stack.summary())).style(style));
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
