//! Profile: the CPU profile (`TASKSCOPE_PROFILE_HZ`). On the left, task groups and scopes by
//! their samples; on the right, the selected one's top functions, by total and self share of
//! its samples.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style, Stylize};
use ratatui::text::Line;
use ratatui::widgets::{Cell, Paragraph, Row, Table, TableState};
use ratatui::Frame;
use taskscope_wire::Profile;

use super::style::{block, window};
use crate::app::App;

/// A share as the view shows it: `42.0%`.
fn percent(part: u64, whole: u64) -> String {
    format!("{:.1}%", 100.0 * part as f64 / whole.max(1) as f64)
}

pub fn render(app: &App, frame: &mut Frame, area: Rect) {
    let Some(profile) = app.snapshot.profile.as_ref() else {
        let text = vec![
            Line::from("No CPU profile."),
            Line::from(""),
            Line::from("Run the application with TASKSCOPE_PROFILE_HZ=99 (or"),
            Line::from("taskscope::Builder::profile_hz(99)); Linux on x86_64 or aarch64."),
        ];
        frame.render_widget(Paragraph::new(text).block(block("Profile")), area);
        return;
    };
    let [summary, body] =
        Layout::vertical([Constraint::Length(1), Constraint::Fill(1)]).areas(area);
    frame.render_widget(
        Paragraph::new(format!(
            " {} Hz of CPU, {} threads · samples: {} in task polls, {} outside, {} idle, {} \
             missed · sampling cost {} of CPU",
            profile.hz,
            profile.threads,
            profile.busy,
            profile.outside_polls,
            profile.idle,
            profile.missed,
            crate::app::fmt_ns(profile.sampling_ns)
        ))
        .dim(),
        summary,
    );
    let [left, right] =
        Layout::horizontal([Constraint::Percentage(40), Constraint::Percentage(60)]).areas(body);
    let labels = profile.by_label();
    render_labels(app, profile, &labels, frame, left);
    let selected = labels.get(app.selected()).map(|(label, _)| label.as_str());
    render_functions(profile, selected, frame, right);
}

fn render_labels(
    app: &App,
    profile: &Profile,
    labels: &[(String, u64)],
    frame: &mut Frame,
    area: Rect,
) {
    let height = area.height.saturating_sub(3) as usize;
    let range = window(labels.len(), app.selected(), height);
    let offset = range.start;
    let rows: Vec<Row> = labels[range]
        .iter()
        .map(|(label, samples)| {
            Row::new(vec![
                Cell::from(label.clone()),
                Cell::from(samples.to_string()),
                Cell::from(percent(*samples, profile.busy)),
            ])
        })
        .collect();
    let header = Row::new(["Task group / scope", "Samples", "CPU"])
        .style(Style::new().add_modifier(Modifier::BOLD | Modifier::UNDERLINED));
    let widths = [
        Constraint::Fill(1),
        Constraint::Length(8),
        Constraint::Length(7),
    ];
    let table = Table::new(rows, widths)
        .header(header)
        .block(block("Where the CPU goes"))
        .row_highlight_style(Style::new().add_modifier(Modifier::REVERSED));
    let mut state =
        TableState::default().with_selected(Some(app.selected().saturating_sub(offset)));
    frame.render_stateful_widget(table, area, &mut state);
}

fn render_functions(profile: &Profile, label: Option<&str>, frame: &mut Frame, area: Rect) {
    let Some(label) = label else {
        frame.render_widget(
            Paragraph::new("No samples in task polls yet.").block(block("Functions")),
            area,
        );
        return;
    };
    let keep = |s: &taskscope_wire::ProfileStack| profile.label(s) == label;
    let samples = profile.samples(keep);
    let height = area.height.saturating_sub(3) as usize;
    let rows: Vec<Row> = profile
        .functions(keep)
        .into_iter()
        .take(height)
        .map(|f| {
            Row::new(vec![
                Cell::from(percent(f.total_samples, samples)),
                Cell::from(percent(f.self_samples, samples)),
                Cell::from(f.function),
            ])
        })
        .collect();
    let header = Row::new(["Total", "Self", "Function"])
        .style(Style::new().add_modifier(Modifier::BOLD | Modifier::UNDERLINED));
    let widths = [
        Constraint::Length(7),
        Constraint::Length(7),
        Constraint::Fill(1),
    ];
    let title = format!("Functions of {label} ({samples} samples)");
    frame.render_widget(
        Table::new(rows, widths).header(header).block(block(&title)),
        area,
    );
}
