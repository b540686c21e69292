//! The terminal event loop: data from the source and keys from the terminal update the `App`; a
//! fixed frame tick draws it. `ratatui::init` installs the panic hook that restores the terminal.

use std::io::IsTerminal;
use std::time::Duration;

use anyhow::bail;
use ratatui::crossterm::event::{self, Event};
use ratatui::DefaultTerminal;

use crate::app::{Action, App};
use crate::source::{Feed, Source};
use crate::view;

const FRAME: Duration = Duration::from_millis(33);

/// Whether the dashboard can run here; a clear error when not.
pub fn check_terminal() -> anyhow::Result<()> {
    let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false");
    if ci || !std::io::stdout().is_terminal() || !std::io::stdin().is_terminal() {
        bail!("the dashboard needs a terminal (stdin and stdout are not one here); use `taskscope demo --headless` or `taskscope report`");
    }
    Ok(())
}

/// Runs the dashboard in the terminal on `source` until the user quits.
pub fn run(source: Source, status: &str) -> anyhow::Result<()> {
    check_terminal()?;
    let mut terminal = ratatui::init();
    // ratatui's hook gives the terminal back on a panic: right for the UI thread, wrong for a
    // panic that a runtime catches in one of its tasks (the demo's panicking task), which must
    // neither tear the dashboard down nor print over it. The dashboard shows it as a warning.
    let restore_and_report = std::panic::take_hook();
    let ui = std::thread::current().id();
    std::panic::set_hook(Box::new(move |info| {
        if std::thread::current().id() == ui {
            restore_and_report(info);
        }
    }));
    let result = event_loop(&mut terminal, source, status);
    ratatui::restore();
    let _ = std::panic::take_hook(); // back to the default hook
    result
}

fn event_loop(
    terminal: &mut DefaultTerminal,
    mut source: Source,
    status: &str,
) -> anyhow::Result<()> {
    let mut app = App::new(status);
    loop {
        for feed in source.poll() {
            match feed {
                Feed::Snapshot(s) => app.update(s),
                Feed::Status(s) => app.status = s,
                Feed::Dump(d) => app.set_dump(d),
            }
        }
        terminal.draw(|frame| view::render(&app, frame))?;
        if event::poll(FRAME)? {
            if let Event::Key(key) = event::read()? {
                let was_paused = app.paused;
                match app.on_key(key) {
                    Action::Quit => return Ok(()),
                    Action::Redraw => terminal.clear()?,
                    Action::Watch(task) => source.watch(task),
                    Action::Replay(cmd) => source.replay(cmd),
                    Action::Dump => {
                        app.status = match source.dump() {
                            true => "task dump asked for (view 8)".into(),
                            false => "task dumps need a live taskscope app".into(),
                        }
                    }
                    Action::None => {}
                }
                if app.paused != was_paused {
                    source.set_paused(app.paused);
                }
            }
            // Resize events need nothing: the next draw uses the new size.
        }
    }
}
