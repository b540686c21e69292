//! What every view draws alike: the bordered block, state and warning colours, the visible
//! window of a long list.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style, Stylize};
use ratatui::text::Span;
use ratatui::widgets::Block;
use taskscope_wire::{TaskState, WarningKind};

/// A block with a title.
pub(crate) fn block(title: &str) -> Block<'_> {
    Block::bordered().title(Span::from(format!(" {title} ")).bold())
}

/// The colour of a task state.
pub(crate) fn state_style(state: TaskState) -> Style {
    match state {
        TaskState::Running => Style::new().fg(Color::Green),
        TaskState::Scheduled => Style::new().fg(Color::Cyan),
        TaskState::Idle => Style::new(),
        TaskState::Done => Style::new().fg(Color::DarkGray),
    }
}

/// How a warning kind stands out: blocked workers and deadlocks loudest.
pub(crate) fn warning_style(kind: WarningKind) -> Style {
    match kind {
        WarningKind::BlockedWorker | WarningKind::Deadlock => {
            Style::new().fg(Color::Red).add_modifier(Modifier::BOLD)
        }
        WarningKind::TaskPanicked | WarningKind::LockOrderInversion => {
            Style::new().fg(Color::Magenta)
        }
        _ => Style::new().fg(Color::Yellow),
    }
}

/// The rows of `total` that fit in `height`, keeping `selected` in view.
pub(crate) fn window(total: usize, selected: usize, height: usize) -> std::ops::Range<usize> {
    if height == 0 || total == 0 {
        return 0..0;
    }
    let start = selected
        .saturating_sub(height - 1)
        .min(total.saturating_sub(height));
    start..(start + height).min(total)
}

/// The widths a bordered table in `area` gives its columns (`widths`, one column apart), as
/// ratatui lays them out.
pub(crate) fn column_widths(area: Rect, widths: &[Constraint]) -> Vec<u16> {
    let inner = Rect {
        x: area.x + 1,
        y: area.y,
        width: area.width.saturating_sub(2),
        height: 1,
    };
    Layout::horizontal(widths.iter().copied())
        .spacing(1)
        .split(inner)
        .iter()
        .map(|r| r.width)
        .collect()
}

/// `text` in at most `width` columns, cut from the left (`…` and the end) so that a location
/// keeps its `file:line:col`.
pub(crate) fn fit_left(text: &str, width: u16) -> String {
    let width = usize::from(width);
    let chars = text.chars().count();
    if chars <= width {
        return text.to_string();
    }
    if width == 0 {
        return String::new();
    }
    let tail: String = text.chars().skip(chars - (width - 1)).collect();
    format!("…{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_locations_keep_their_line() {
        let at = "crates/taskscope-cli/src/source/demo.rs:63:13";
        assert_eq!(fit_left(at, 100), at);
        assert_eq!(fit_left(at, 12), "…mo.rs:63:13");
        assert_eq!(fit_left(at, 12).chars().count(), 12);
        assert!(fit_left(at, 12).ends_with(":63:13"));
        assert_eq!(fit_left(at, 0), "");
    }
}
