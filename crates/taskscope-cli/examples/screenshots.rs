//! Regenerates `screenshots/*.svg`: runs the demo workload for a few seconds, then draws every
//! view of the dashboard with the real rendering code into SVG files.
//!
//! ```text
//! cargo run -p taskscope-cli --example screenshots [-- OUT_DIR]
//! ```

use std::sync::Arc;
use std::time::Duration;

use ratatui::crossterm::event::{KeyCode, KeyEvent};
use taskscope_cli::app::{App, View};
use taskscope_cli::{screenshot, source::demo};

fn main() -> anyhow::Result<()> {
    let out = std::env::args()
        .nth(1)
        .unwrap_or_else(|| format!("{}/../../screenshots", env!("CARGO_MANIFEST_DIR")));
    std::fs::create_dir_all(&out)?;
    let mut snapshots = demo::run_sampled(
        Duration::from_secs(4),
        None,
        None,
        Duration::from_millis(100),
    )?;
    snapshots.pop(); // the final one is taken after the demo's runtime shut down
    let mut app = App::new("demo");
    for s in snapshots {
        app.update(Arc::new(s));
    }
    let shots: [(&str, View); 6] = [
        ("overview", View::Overview),
        ("tasks", View::Tasks),
        ("locks", View::Locks),
        ("semaphores", View::Semaphores),
        ("warnings", View::Warnings),
        ("profile", View::Profile),
    ];
    for (name, view) in shots {
        app.view = view;
        write(&out, name, &app)?;
    }
    // The task that blocked its worker, in detail.
    app.view = View::Tasks;
    app.set_filter("export_report");
    app.on_key(KeyEvent::from(KeyCode::Enter));
    assert_eq!(app.view, View::Task, "the export_report task opens");
    write(&out, "task", &app)?;
    app.help = true;
    write(&out, "help", &app)?;
    println!("wrote 8 screenshots to {out}");
    Ok(())
}

fn write(dir: &str, name: &str, app: &App) -> anyhow::Result<()> {
    let buffer = screenshot::render(app, 150, 42);
    std::fs::write(format!("{dir}/{name}.svg"), screenshot::svg(&buffer))?;
    Ok(())
}
