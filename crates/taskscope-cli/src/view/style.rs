//! What every view draws alike: the bordered block, state and warning colours, the visible
//! window of a long list.

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
