//! What taskscope's own threads cost while the application idles with many live objects: its
//! CPU must not grow with the number of locks or tasks that just sit there.
//!
//! ```text
//! cargo run --release --example idle_cost [-- --seconds 5]
//! ```
//!
//! For each row, a fresh Guard (no stream client), the objects created, then `--seconds` of
//! nothing: prints the CPU time of taskscope's threads (watchdog, collector, server) as % of one
//! core, from /proc (Linux).

use std::sync::Arc;
use std::time::{Duration, Instant};

mod common;
use common::{arg, thread_cpu};

/// taskscope's threads' CPU, as % of a core, over `seconds` of idling with `locks` idle locks
/// and `tasks` idle tasks alive.
fn idle(locks: usize, tasks: usize, seconds: u64) -> f64 {
    let guard = taskscope::Builder::new().no_server().init();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let held: Vec<_> = (0..locks).map(|i| taskscope::sync::Mutex::new(i)).collect();
    let never = Arc::new(tokio::sync::Notify::new());
    let handles: Vec<_> = rt.block_on(async {
        (0..tasks)
            .map(|_| {
                let never = never.clone();
                taskscope::spawn(async move { never.notified().await })
            })
            .collect()
    });
    // Let the spawns and registrations settle before measuring.
    std::thread::sleep(Duration::from_millis(500));
    let (cpu, start) = (thread_cpu("taskscope"), Instant::now());
    std::thread::sleep(Duration::from_secs(seconds));
    let percent = 100.0 * (thread_cpu("taskscope") - cpu) / start.elapsed().as_secs_f64();
    for h in handles {
        h.abort();
    }
    drop(held);
    drop(rt);
    drop(guard);
    percent
}

fn main() {
    let seconds = arg("--seconds", 5);
    println!("taskscope's threads while the application idles, {seconds} s a row\n");
    println!("| idle locks | idle tasks | taskscope threads CPU |");
    println!("|---:|---:|---:|");
    for (locks, tasks) in [(0, 0), (10_000, 0), (100_000, 0), (0, 10_000), (0, 100_000)] {
        let percent = idle(locks, tasks, seconds);
        println!("| {locks} | {tasks} | {percent:.2} % of a core |");
    }
}
