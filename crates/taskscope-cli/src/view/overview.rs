//! The Overview: workers, event-loop lag, tasks alive and spawn rate (with sparklines), warnings
//! by kind, and the busiest task groups.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Gauge, Paragraph, Row, Sparkline, Table, TableState};
use ratatui::Frame;
use taskscope_wire::WarningKind;

use super::style::{block, warning_style, window};
use crate::app::{fmt_ns, App};

pub fn render(app: &App, frame: &mut Frame, area: Rect) {
    let [top, groups] = Layout::vertical([Constraint::Length(12), Constraint::Min(3)]).areas(area);
    let [left, middle, right] = Layout::horizontal([
        Constraint::Percentage(34),
        Constraint::Percentage(33),
        Constraint::Percentage(33),
    ])
    .areas(top);
    render_runtime(app, frame, left);
    render_tasks(app, frame, middle);
    render_warnings(app, frame, right);
    render_groups(app, frame, groups);
}

fn render_runtime(app: &App, frame: &mut Frame, area: Rect) {
    let b = block("Runtime");
    let inner = b.inner(area);
    frame.render_widget(b, area);
    let snap = &app.snapshot;
    let mut lines: Vec<Line> = Vec::new();
    for r in &snap.runtimes {
        let lag = r.lag_ns.percentiles();
        lines.push(Line::from(if r.workers > 0 {
            format!(
                "{}, {} workers, {} tasks",
                r.flavor, r.workers, r.alive_tasks
            )
        } else {
            format!("{}, {} tasks", r.flavor, r.alive_tasks)
        }));
        if !r.lag_ns.is_empty() {
            lines.push(Line::from(format!(
                "event-loop lag p50 {} p99 {} max {}",
                fmt_ns(lag.p50),
                fmt_ns(lag.p99),
                fmt_ns(lag.max)
            )));
        }
    }
    if lines.is_empty() {
        lines.push(Line::from("no runtime probed yet").dim());
    }
    let rows = lines.len() as u16;
    let [text, gauges] =
        Layout::vertical([Constraint::Length(rows), Constraint::Min(0)]).areas(inner);
    frame.render_widget(Paragraph::new(lines), text);
    let busy: Vec<f64> = snap
        .runtimes
        .iter()
        .flat_map(|r| r.worker_busy.iter().copied())
        .collect();
    for (i, ratio) in busy.iter().enumerate().take(gauges.height as usize) {
        let row = Rect {
            y: gauges.y + i as u16,
            height: 1,
            ..gauges
        };
        let gauge = Gauge::default()
            .ratio(ratio.clamp(0.0, 1.0))
            .label(format!("worker {i} busy {:.0}%", ratio * 100.0))
            .gauge_style(Style::new().green());
        frame.render_widget(gauge, row);
    }
}

fn render_tasks(app: &App, frame: &mut Frame, area: Rect) {
    let b = block("Tasks");
    let inner = b.inner(area);
    frame.render_widget(b, area);
    let last = app.history.back().copied().unwrap_or_default();
    let rate = match (app.history.iter().rev().nth(5), app.history.back()) {
        (Some(a), Some(b)) if b.at_ms > a.at_ms => {
            (b.spawned - a.spawned.min(b.spawned)) as f64 * 1000.0 / (b.at_ms - a.at_ms) as f64
        }
        _ => 0.0,
    };
    let [text, alive, spawn] = Layout::vertical([
        Constraint::Length(2),
        Constraint::Min(1),
        Constraint::Min(1),
    ])
    .areas(inner);
    frame.render_widget(
        Paragraph::new(vec![
            Line::from(format!("alive {}  spawned {}", last.alive, last.spawned)),
            Line::from(format!(
                "spawn rate {rate:.0}/s  lag p99 {}",
                fmt_ns(last.lag_p99_ns)
            )),
        ]),
        text,
    );
    let alive_data: Vec<u64> = app.history.iter().map(|s| s.alive).collect();
    frame.render_widget(
        Sparkline::default()
            .data(&alive_data)
            .style(Style::new().cyan()),
        alive,
    );
    let spawns: Vec<u64> = app
        .history
        .iter()
        .zip(app.history.iter().skip(1))
        .map(|(a, b)| b.spawned.saturating_sub(a.spawned))
        .collect();
    frame.render_widget(
        Sparkline::default()
            .data(&spawns)
            .style(Style::new().magenta()),
        spawn,
    );
}

fn render_warnings(app: &App, frame: &mut Frame, area: Rect) {
    // The rare kinds are listed once they occur, which keeps the pane short.
    let rare = |kind: WarningKind| {
        matches!(
            kind,
            WarningKind::LostWaker | WarningKind::SelfWakes | WarningKind::RecordingStopped
        )
    };
    let lines: Vec<Line> = WarningKind::ALL
        .into_iter()
        .filter(|&kind| !rare(kind) || app.snapshot.warnings_of(kind).next().is_some())
        .map(|kind| {
            let all = app.snapshot.warnings_of(kind).count();
            let ongoing = app.snapshot.warnings_of(kind).filter(|w| w.ongoing).count();
            let style = if all > 0 {
                warning_style(kind)
            } else {
                Style::new().dim()
            };
            let now = if ongoing > 0 {
                format!(" ({ongoing} now)")
            } else {
                String::new()
            };
            Line::from(vec![
                Span::styled(format!("{:<23}", kind.as_str()), style),
                Span::from(format!("{all:>5}{now}")),
            ])
        })
        .collect();
    frame.render_widget(Paragraph::new(lines).block(block("Warnings")), area);
}

fn render_groups(app: &App, frame: &mut Frame, area: Rect) {
    let groups = &app.snapshot.task_groups;
    let height = area.height.saturating_sub(3) as usize;
    let range = window(groups.len(), app.selected(), height);
    let offset = range.start;
    let rows: Vec<Row> = groups[range]
        .iter()
        .map(|g| {
            let (p, s) = (g.poll_ns.percentiles(), g.scheduled_ns.percentiles());
            Row::new(vec![
                Cell::from(g.name.clone()),
                Cell::from(g.alive.to_string()),
                Cell::from(g.spawned.to_string()),
                Cell::from(g.polls.to_string()),
                Cell::from(fmt_ns(g.busy_ns)),
                Cell::from(fmt_ns(p.p50)),
                Cell::from(fmt_ns(p.p99)),
                Cell::from(fmt_ns(p.max)),
                Cell::from(fmt_ns(s.p99)),
                Cell::from(g.location.clone()).dim(),
            ])
        })
        .collect();
    let header = Row::new([
        "Group",
        "Alive",
        "Spawned",
        "Polls",
        "Busy",
        "Poll p50",
        "Poll p99",
        "Poll max",
        "Sched p99",
        "Location",
    ])
    .style(Style::new().add_modifier(Modifier::BOLD | Modifier::UNDERLINED));
    let widths = [
        Constraint::Fill(2),
        Constraint::Length(6),
        Constraint::Length(8),
        Constraint::Length(8),
        Constraint::Length(9),
        Constraint::Length(9),
        Constraint::Length(9),
        Constraint::Length(9),
        Constraint::Length(10),
        Constraint::Fill(2),
    ];
    let table = Table::new(rows, widths)
        .header(header)
        .block(block("Task groups (busiest first)"))
        .row_highlight_style(Style::new().add_modifier(Modifier::REVERSED));
    let mut state =
        TableState::default().with_selected(Some(app.selected().saturating_sub(offset)));
    frame.render_stateful_widget(table, area, &mut state);
}
