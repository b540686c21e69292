//! The Locks and Semaphores views.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style, Stylize};
use ratatui::widgets::{Cell, Row, Table, TableState};
use ratatui::Frame;

use super::style::{block, column_widths, fit_left, window};
use crate::app::{fmt_ns, App};

fn header(titles: &[&'static str]) -> Row<'static> {
    Row::new(titles.to_vec())
        .style(Style::new().add_modifier(Modifier::BOLD | Modifier::UNDERLINED))
}

pub fn render_locks(app: &App, frame: &mut Frame, area: Rect) {
    let locks = &app.snapshot.locks;
    let range = window(
        locks.len(),
        app.selected(),
        area.height.saturating_sub(3) as usize,
    );
    let offset = range.start;
    let widths = [
        Constraint::Fill(2),
        Constraint::Length(12),
        Constraint::Length(9),
        // "Contended": its header's length.
        Constraint::Length(9),
        Constraint::Length(9),
        Constraint::Length(9),
        Constraint::Length(9),
        Constraint::Length(9),
        Constraint::Length(9),
        Constraint::Length(9),
        Constraint::Length(11),
        Constraint::Fill(2),
        Constraint::Fill(2),
    ];
    // Locations cut from the left, so their file:line:col stays in view.
    let location_width = column_widths(area, &widths).last().copied().unwrap_or(0);
    let rows: Vec<Row> = locks[range]
        .iter()
        .map(|l| {
            let (w, h) = (l.wait_ns.percentiles(), l.hold_ns.percentiles());
            let contention = 100.0 * l.contended as f64 / l.acquisitions.max(1) as f64;
            let holder = match (l.holder, &l.holder_location) {
                (Some(t), Some(at)) => format!("task {t} at {at}"),
                (Some(t), None) => format!("task {t}"),
                _ => "-".into(),
            };
            let waiters = Cell::from(format!("{} (max {})", l.waiters, l.max_waiters));
            let waiters = if l.waiters > 0 {
                waiters.style(Style::new().fg(Color::Yellow))
            } else {
                waiters
            };
            Row::new(vec![
                Cell::from(l.name.clone()),
                Cell::from(l.kind.clone()),
                Cell::from(l.acquisitions.to_string()),
                Cell::from(format!("{contention:.1}%")),
                Cell::from(fmt_ns(w.p50)),
                Cell::from(fmt_ns(w.p99)),
                Cell::from(fmt_ns(w.max)),
                Cell::from(fmt_ns(h.p50)),
                Cell::from(fmt_ns(h.p99)),
                Cell::from(fmt_ns(h.max)),
                waiters,
                Cell::from(holder),
                Cell::from(fit_left(&l.location, location_width)).dim(),
            ])
        })
        .collect();
    let table = Table::new(rows, widths)
        .header(header(&[
            "Lock",
            "Kind",
            "Acquired",
            "Contended",
            "Wait p50",
            "Wait p99",
            "Wait max",
            "Hold p50",
            "Hold p99",
            "Hold max",
            "Waiters",
            "Holder",
            "Location",
        ]))
        .block(block("Locks (most waited-on first)"))
        .row_highlight_style(Style::new().add_modifier(Modifier::REVERSED));
    let mut state =
        TableState::default().with_selected(Some(app.selected().saturating_sub(offset)));
    frame.render_stateful_widget(table, area, &mut state);
}

pub fn render_semaphores(app: &App, frame: &mut Frame, area: Rect) {
    // Apps seen through console-subscriber also have other resources (timers, channels, ...).
    let area = if app.snapshot.resources.is_empty() {
        area
    } else {
        let wanted = app.snapshot.semaphores.len() as u16 + 3;
        let [sems, others] = Layout::vertical([
            Constraint::Length(wanted.clamp(4, area.height / 2)),
            Constraint::Min(3),
        ])
        .areas(area);
        render_resources(app, frame, others);
        sems
    };
    let sems = &app.snapshot.semaphores;
    let range = window(
        sems.len(),
        app.selected(),
        area.height.saturating_sub(3) as usize,
    );
    let offset = range.start;
    let rows: Vec<Row> = sems[range]
        .iter()
        .map(|s| {
            let w = s.wait_ns.percentiles();
            // A total of 0 with acquisitions is one never seen (console-subscriber reports the
            // permits free, not the total, and none was free while it was watched): `?`.
            let total = match (s.permits, s.acquisitions) {
                (0, 1..) => "?".to_string(),
                (n, _) => n.to_string(),
            };
            let available = Cell::from(format!("{}/{total}", s.available));
            let available = if s.available == 0 {
                available.style(Style::new().fg(Color::Red))
            } else {
                available
            };
            Row::new(vec![
                Cell::from(s.name.clone()),
                available,
                Cell::from(s.acquisitions.to_string()),
                Cell::from(format!("{} (max {})", s.waiters, s.max_waiters)),
                Cell::from(fmt_ns(s.saturated_ns)),
                Cell::from(fmt_ns(w.p50)),
                Cell::from(fmt_ns(w.p99)),
                Cell::from(fmt_ns(w.max)),
                Cell::from(s.location.clone()).dim(),
            ])
        })
        .collect();
    let widths = [
        Constraint::Fill(2),
        Constraint::Length(9),
        Constraint::Length(9),
        Constraint::Length(12),
        Constraint::Length(10),
        Constraint::Length(9),
        Constraint::Length(9),
        Constraint::Length(9),
        Constraint::Fill(2),
    ];
    let table = Table::new(rows, widths)
        .header(header(&[
            "Semaphore",
            "Free",
            "Acquired",
            "Waiters",
            "Saturated",
            "Wait p50",
            "Wait p99",
            "Wait max",
            "Location",
        ]))
        .block(block("Semaphores"))
        .row_highlight_style(Style::new().add_modifier(Modifier::REVERSED));
    let mut state =
        TableState::default().with_selected(Some(app.selected().saturating_sub(offset)));
    frame.render_stateful_widget(table, area, &mut state);
}

/// Resources other than locks and semaphores, by type and creation location (console-subscriber
/// apps only), most waited-on first.
fn render_resources(app: &App, frame: &mut Frame, area: Rect) {
    let mut resources: Vec<_> = app.snapshot.resources.iter().collect();
    resources.sort_by_key(|r| {
        (
            std::cmp::Reverse(r.waiters),
            std::cmp::Reverse(r.alive),
            std::cmp::Reverse(r.created),
        )
    });
    let rows: Vec<Row> = resources
        .iter()
        .take(area.height.saturating_sub(3) as usize)
        .map(|r| {
            let waiting = if r.waiting_tasks.is_empty() {
                "-".to_string()
            } else {
                r.waiting_tasks
                    .iter()
                    .map(|t| t.to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            };
            Row::new(vec![
                Cell::from(r.kind.clone()),
                Cell::from(r.alive.to_string()),
                Cell::from(r.created.to_string()),
                Cell::from(r.waiters.to_string()),
                Cell::from(waiting),
                Cell::from(r.state.clone()),
                Cell::from(r.location.clone()).dim(),
            ])
        })
        .collect();
    let widths = [
        Constraint::Length(16),
        Constraint::Length(7),
        Constraint::Length(9),
        Constraint::Length(8),
        Constraint::Length(12),
        Constraint::Fill(2),
        Constraint::Fill(2),
    ];
    let table = Table::new(rows, widths)
        .header(header(&[
            "Resource", "Alive", "Created", "Waiters", "Tasks", "State", "Location",
        ]))
        .block(block(
            "Other resources by creation site (seen through console-subscriber)",
        ));
    frame.render_widget(table, area);
}
