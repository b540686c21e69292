//! Requests: every scope group (`taskscope::scope`, or a route through the tower layer) with
//! its latency percentiles and responses per status class, slowest p99 first.

use ratatui::layout::{Constraint, Rect};
use ratatui::style::{Color, Modifier, Style, Stylize};
use ratatui::text::Line;
use ratatui::widgets::{Cell, Paragraph, Row, Table, TableState};
use ratatui::Frame;
use taskscope_wire::{ScopeGroup, TaskKind};

use super::style::{block, window};
use crate::app::{fmt_ns, App};

/// The scope groups, slowest p99 first.
fn by_latency(app: &App) -> Vec<&ScopeGroup> {
    let mut scopes: Vec<&ScopeGroup> = app.snapshot.scopes.iter().collect();
    scopes.sort_by_key(|s| std::cmp::Reverse(s.latency_ns.percentiles().p99));
    scopes
}

pub fn render(app: &App, frame: &mut Frame, area: Rect) {
    let scopes = by_latency(app);
    if scopes.is_empty() {
        let text = vec![
            Line::from("No scopes yet."),
            Line::from(""),
            Line::from("Time requests with taskscope::tower::TaskscopeLayer (axum, tonic, hyper)"),
            Line::from("or any future with taskscope::scope(name, future)."),
        ];
        frame.render_widget(Paragraph::new(text).block(block("Requests")), area);
        return;
    }
    let height = area.height.saturating_sub(3) as usize;
    let range = window(scopes.len(), app.selected(), height);
    let offset = range.start;
    let rows: Vec<Row> = scopes[range]
        .iter()
        .map(|s| {
            let p = s.latency_ns.percentiles();
            let r = &s.responses;
            // The scope's group (same name and location) has what is in flight now.
            let alive = app
                .snapshot
                .task_groups
                .iter()
                .find(|g| g.kind == TaskKind::Scope && g.name == s.name && g.location == s.location)
                .map_or(0, |g| g.alive);
            let errors = Cell::from(r.server_error.to_string());
            Row::new(vec![
                Cell::from(s.name.clone()),
                Cell::from(p.count.to_string()),
                Cell::from(alive.to_string()),
                Cell::from(fmt_ns(p.p50)),
                Cell::from(fmt_ns(p.p99)),
                Cell::from(fmt_ns(p.max)),
                Cell::from(r.success.to_string()),
                Cell::from(r.redirection.to_string()),
                Cell::from(r.client_error.to_string()),
                if r.server_error > 0 {
                    errors.style(Style::new().fg(Color::Red))
                } else {
                    errors
                },
                Cell::from(s.location.clone()).dim(),
            ])
        })
        .collect();
    let header = Row::new([
        "Scope", "Ended", "Now", "p50", "p99", "Max", "2xx", "3xx", "4xx", "5xx", "Location",
    ])
    .style(Style::new().add_modifier(Modifier::BOLD | Modifier::UNDERLINED));
    let widths = [
        Constraint::Fill(2),
        Constraint::Length(8),
        Constraint::Length(5),
        Constraint::Length(9),
        Constraint::Length(9),
        Constraint::Length(9),
        Constraint::Length(7),
        Constraint::Length(6),
        Constraint::Length(6),
        Constraint::Length(6),
        Constraint::Fill(1),
    ];
    let table = Table::new(rows, widths)
        .header(header)
        .block(block("Requests and scopes (slowest p99 first)"))
        .row_highlight_style(Style::new().add_modifier(Modifier::REVERSED));
    let mut state =
        TableState::default().with_selected(Some(app.selected().saturating_sub(offset)));
    frame.render_stateful_widget(table, area, &mut state);
}
