//! Dashboard speed at scale: frames per second drawing the Tasks and Overview views with 1,000,
//! 10,000 and 100,000 tasks, and the cost of taking in a new snapshot (filter + sort).
//!
//! ```text
//! cargo run --release -p taskscope-cli --example render_bench
//! ```

use std::sync::Arc;
use std::time::Instant;

use taskscope_cli::app::{App, View};
use taskscope_cli::screenshot::render;
use taskscope_wire::{Histogram, Snapshot, Task, TaskGroup, TaskState};

fn snapshot(n: u64) -> Snapshot {
    let mut h = Histogram::default();
    for v in [800u64, 1_500, 3_000, 40_000, 2_000_000] {
        h.record(v);
    }
    let tasks = (0..n)
        .map(|i| Task {
            id: i + 1,
            name: format!("handler-{}", i % 1000),
            location: format!("src/server.rs:{}:9", i % 200),
            state: [TaskState::Idle, TaskState::Running, TaskState::Scheduled][i as usize % 3],
            polls: i * 7 % 10_000,
            busy_ns: i * 7_919 % 100_000_000,
            poll_ns: h.clone(),
            scheduled_ns: h.clone(),
            ..Task::default()
        })
        .collect();
    let task_groups = (0..100)
        .map(|g| TaskGroup {
            name: format!("group-{g}"),
            poll_ns: h.clone(),
            ..TaskGroup::default()
        })
        .collect();
    Snapshot {
        tasks,
        task_groups,
        ..Snapshot::default()
    }
}

fn main() {
    println!("| tasks | take a snapshot (filter + sort) | Tasks view | Overview |");
    println!("|---:|---:|---:|---:|");
    for n in [1_000u64, 10_000, 100_000] {
        let snap = Arc::new(snapshot(n));
        let mut app = App::new("bench");
        let start = Instant::now();
        app.update(snap.clone());
        let update_ms = start.elapsed().as_secs_f64() * 1e3;
        let fps = |app: &mut App, view: View| {
            app.view = view;
            let frames = 60;
            let start = Instant::now();
            for _ in 0..frames {
                std::hint::black_box(render(app, 160, 45));
            }
            f64::from(frames) / start.elapsed().as_secs_f64()
        };
        let tasks_fps = fps(&mut app, View::Tasks);
        let overview_fps = fps(&mut app, View::Overview);
        println!(
            "| {n} | {update_ms:.1} ms | {tasks_fps:.0} frames/s | {overview_fps:.0} frames/s |"
        );
    }
}
