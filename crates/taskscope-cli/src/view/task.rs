//! The Task view: one task's numbers, its poll-time and scheduled-delay histograms as bar charts,
//! and its warnings.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Bar, BarChart, BarGroup, Paragraph, Wrap};
use ratatui::Frame;
use taskscope_wire::{bucket_range, Histogram};

use super::style::{block, state_style, warning_style};
use crate::app::{fmt_ns, App};

/// The task's chain in the last dump: the lock it waits for, then each chain.
fn waiting_lines(app: &App, id: u64) -> Option<Vec<Line<'static>>> {
    let task = app.dump.as_ref()?.task(id)?;
    let mut lines = Vec::new();
    if let Some(wait) = &task.waiting_for {
        let holder = wait
            .holder
            .map(|h| format!(", held by task {h}"))
            .unwrap_or_default();
        lines.push(Line::from(format!(
            "waiting for {} `{}`{holder}",
            wait.kind, wait.lock
        )));
    }
    match &task.trace {
        taskscope_wire::Trace::Suspended { chains } => {
            for chain in chains {
                super::dump::chain_lines(chain, &mut lines);
            }
        }
        other => lines.push(Line::from(format!("{other:?}"))),
    }
    Some(lines)
}

pub fn render(app: &App, frame: &mut Frame, area: Rect) {
    let Some(task) = app.task.and_then(|id| app.snapshot.task(id)) else {
        let text = "No task selected: choose one in the Tasks view (2) and press enter.";
        frame.render_widget(Paragraph::new(text).block(block("Task")), area);
        return;
    };
    // Where it waits, from the last task dump (`d`), when the dump has it.
    let waiting = waiting_lines(app, task.id);
    let waiting_height = waiting.as_ref().map_or(0, |l| (l.len() as u16 + 2).min(9));
    let [info, waiting_area, charts, warnings] = Layout::vertical([
        Constraint::Length(8),
        Constraint::Length(waiting_height),
        Constraint::Min(6),
        Constraint::Length(6),
    ])
    .areas(area);
    if let Some(lines) = waiting {
        let title = format!(
            "Waiting at (dump at {:.1}s; d: again)",
            app.dump.as_ref().map_or(0, |d| d.taken_at_ms) as f64 / 1000.0
        );
        frame.render_widget(Paragraph::new(lines).block(block(&title)), waiting_area);
    }
    let p = task.poll_ns.percentiles();
    let s = task.scheduled_ns.percentiles();
    let parent = task.parent.map_or("-".to_string(), |p| p.to_string());
    let lines = vec![
        Line::from(vec![
            "state ".into(),
            Span::styled(
                format!("{:?}", task.state).to_lowercase(),
                state_style(task.state),
            ),
            format!(
                "   outcome {}",
                task.outcome
                    .map_or("-".to_string(), |o| format!("{o:?}").to_lowercase())
            )
            .into(),
        ]),
        Line::from(format!(
            "spawned at {}   kind {:?}   parent {parent}{}",
            task.location,
            task.kind,
            match app.is_detached(task.id) {
                true => "   detached (its JoinHandle was dropped)",
                false => "",
            }
        )),
        Line::from(format!(
            "polls {}   busy {}{}   wakes {} ({} self)",
            task.polls,
            // Scaled from the timed polls when not every poll was timed.
            if task.poll_ns.count() < task.polls {
                "~"
            } else {
                ""
            },
            fmt_ns(task.busy_ns),
            task.wakes,
            task.self_wakes
        )),
        percentiles_line(
            "poll     ",
            &p,
            sampled_note(task.poll_ns.count(), task.polls, "polls timed"),
        ),
        percentiles_line(
            "scheduled",
            &s,
            sampled_note(task.scheduled_ns.count(), task.wakes, "wakes, sampled"),
        ),
        Line::from(format!(
            "first poll after {}",
            task.first_poll_delay_ns.map_or("-".into(), fmt_ns)
        )),
    ];
    let title = format!("Task {} `{}`", task.id, task.name);
    frame.render_widget(Paragraph::new(lines).block(block(&title)), info);
    let [left, right] =
        Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(charts);
    frame.render_widget(chart("Poll durations", &task.poll_ns, left.width), left);
    frame.render_widget(
        chart("Scheduled delays", &task.scheduled_ns, right.width),
        right,
    );
    let lines: Vec<Line> = app
        .snapshot
        .warnings
        .iter()
        .rev()
        .filter(|w| w.task == Some(task.id) || w.tasks.contains(&task.id))
        .flat_map(|w| {
            let mut lines = vec![Line::styled(
                format!("{}: {}", w.kind, w.message),
                warning_style(w.kind),
            )];
            // A sampled blocked worker: where it was blocked, and how often.
            if let Some(stacks) = app.snapshot.warning_stacks.get(&w.id) {
                let samples: u64 = stacks.iter().map(|s| s.count).sum();
                for s in stacks.iter().take(3) {
                    lines.push(Line::raw(format!(
                        "  at {} ({}/{samples} samples)",
                        s.summary(),
                        s.count
                    )));
                }
            }
            lines
        })
        .collect();
    let para = if lines.is_empty() {
        Paragraph::new("none").dim()
    } else {
        Paragraph::new(lines)
    };
    frame.render_widget(
        para.wrap(Wrap { trim: true }).block(block("Its warnings")),
        warnings,
    );
}

/// A histogram as bars: its log-linear buckets regrouped by power of two, labelled by the
/// lower bound.
fn chart<'a>(title: &'a str, h: &Histogram, width: u16) -> BarChart<'a> {
    let mut octaves: Vec<(u64, u64)> = Vec::new();
    for &(index, count) in &h.buckets {
        let low = bucket_range(index as usize).0;
        let octave = if low == 0 {
            0
        } else {
            1u64 << (63 - low.leading_zeros())
        };
        match octaves.last_mut() {
            Some((o, c)) if *o == octave => *c += count,
            _ => octaves.push((octave, count)),
        }
    }
    let max_bars = (width.saturating_sub(2) / 7).max(1) as usize;
    if octaves.len() > max_bars {
        octaves.drain(..octaves.len() - max_bars);
    }
    let bars: Vec<Bar> = octaves
        .iter()
        .map(|&(low, count)| {
            Bar::default()
                .value(count)
                .label(Line::from(fmt_ns(low)))
                .text_value(count.to_string())
        })
        .collect();
    BarChart::default()
        .block(block(title))
        .data(BarGroup::default().bars(&bars))
        .bar_width(6)
        .bar_gap(1)
        .bar_style(Style::new().cyan())
}

/// Says how many polls or wakes a histogram comes from when taskscope measured only some of
/// them (a busy task's polls and wakes are sampled: `Builder::sample_interval`).
fn sampled_note(measured: u64, all: u64, what: &str) -> String {
    if measured >= all {
        return String::new();
    }
    format!("   ({measured} of {all} {what})")
}

/// `LABEL p50 .. p90 .. p99 .. max ..` and a note.
fn percentiles_line(label: &str, p: &taskscope_wire::Percentiles, note: String) -> Line<'static> {
    Line::from(format!(
        "{label} p50 {}  p90 {}  p99 {}  max {}{note}",
        fmt_ns(p.p50),
        fmt_ns(p.p90),
        fmt_ns(p.p99),
        fmt_ns(p.max),
    ))
}
