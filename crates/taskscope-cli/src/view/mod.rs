//! Drawing: one file per screen, each a function of `&App` (rendering borrows state, never
//! clones it per frame).

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Tabs, Wrap};
use ratatui::Frame;

use crate::app::{App, View};

mod dump;
mod help;
mod locks;
mod overview;
mod profile;
mod requests;
mod style;
mod task;
mod tasks;
mod warnings;

/// Draws the whole dashboard.
pub fn render(app: &App, frame: &mut Frame) {
    let area = frame.area();
    if area.width < 20 || area.height < 6 {
        frame.render_widget(Paragraph::new("taskscope: terminal too small"), area);
        return;
    }
    // A status longer than the terminal (a hint after a failed connection) wraps onto as many
    // lines as it needs, up to five, instead of being cut (counted as the paragraph wraps words).
    let status_lines = Paragraph::new(status_line(app))
        .wrap(Wrap { trim: false })
        .line_count(area.width)
        .clamp(1, 5);
    let [header, body, footer] = Layout::vertical([
        Constraint::Length(1 + status_lines as u16),
        Constraint::Min(3),
        Constraint::Length(1),
    ])
    .areas(area);
    render_header(app, frame, header);
    match app.view {
        View::Overview => overview::render(app, frame, body),
        View::Tasks => tasks::render(app, frame, body),
        View::Task => task::render(app, frame, body),
        View::Locks => locks::render_locks(app, frame, body),
        View::Semaphores => locks::render_semaphores(app, frame, body),
        View::Warnings => warnings::render(app, frame, body),
        View::Requests => requests::render(app, frame, body),
        View::Dump => dump::render(app, frame, body),
        View::Profile => profile::render(app, frame, body),
    }
    render_footer(app, frame, footer);
    if app.help {
        help::render(frame, area);
    }
}

fn render_header(app: &App, frame: &mut Frame, area: Rect) {
    let [tabs_area, status_area] =
        Layout::vertical([Constraint::Length(1), Constraint::Fill(1)]).areas(area);
    let warnings = app.snapshot.warnings.len();
    let titles: Vec<Line> = View::ALL
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let label = match v {
                View::Warnings if warnings > 0 => format!("{} {} ({warnings})", i + 1, v.title()),
                _ => format!("{} {}", i + 1, v.title()),
            };
            Line::from(label)
        })
        .collect();
    let selected = View::ALL.iter().position(|&v| v == app.view).unwrap_or(0);
    let tabs = Tabs::new(titles)
        .select(selected)
        .highlight_style(Style::new().add_modifier(Modifier::BOLD | Modifier::REVERSED))
        .divider("|");
    frame.render_widget(tabs, tabs_area);

    frame.render_widget(
        Paragraph::new(status_line(app)).wrap(Wrap { trim: false }),
        status_area,
    );
}

/// The header's second line: the app, the source's status, the time, drops, pause.
fn status_line(app: &App) -> Line<'static> {
    let snap = &app.snapshot;
    let mut spans = vec![
        Span::from(" taskscope ").bold(),
        Span::from(format!("{} ", app_label(&snap.process))),
        Span::from(format!("· {} ", app.status)).dim(),
        Span::from(format!("· {:.1}s ", snap.taken_at_ms as f64 / 1000.0)),
    ];
    if snap.dropped_events > 0 {
        spans.push(
            Span::from(format!("· dropped: {} ", snap.dropped_events))
                .yellow()
                .bold(),
        );
    }
    let refused = snap.refused.total();
    if refused > 0 {
        spans.push(Span::from(format!("· refused: {refused} peers ")).yellow());
    }
    if app.paused {
        spans.push(Span::from(" PAUSED ").black().on_yellow());
    }
    Line::from(spans)
}

fn render_footer(app: &App, frame: &mut Frame, area: Rect) {
    let text = if app.editing_filter {
        format!(" filter: {}▏ (enter: keep, esc: clear)", app.filter)
    } else {
        let filter = if app.filter.is_empty() {
            String::new()
        } else {
            format!(" [filter: {}]", app.filter)
        };
        format!(" q quit · ? help · tab/1-9 views · d dump · j/k move · enter open · h/l sort · i invert · / filter · p pause{filter}")
    };
    frame.render_widget(Paragraph::new(text).dim(), area);
}

/// The observed app as the header names it: `NAME (pid N)`; without the pid where the source
/// does not know it (console-subscriber's), and without the name where it is taskscope itself
/// (the demo runs in the `taskscope` process).
fn app_label(process: &taskscope_wire::ProcessInfo) -> String {
    match (process.name.as_str(), process.pid) {
        ("taskscope", pid) => format!("pid {pid}"),
        (name, 0) => name.to_string(),
        (name, pid) => format!("{name} (pid {pid})"),
    }
}

#[cfg(test)]
mod tests {
    use super::app_label;
    use taskscope_wire::ProcessInfo;

    fn process(name: &str, pid: u32) -> ProcessInfo {
        ProcessInfo {
            name: name.into(),
            pid,
            start_unix_ms: 0,
        }
    }

    #[test]
    fn the_header_names_the_app_once_and_no_unknown_pid() {
        assert_eq!(app_label(&process("server", 4242)), "server (pid 4242)");
        // The demo, inside the taskscope binary: not `taskscope taskscope (pid ..)`.
        assert_eq!(app_label(&process("taskscope", 77)), "pid 77");
        // console-subscriber gives no pid: not `(pid 0)`.
        assert_eq!(app_label(&process("api", 0)), "api");
    }
}
