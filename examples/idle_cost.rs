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

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// CPU seconds used so far by this process's threads whose name starts with `prefix`.
fn thread_cpu(prefix: &str) -> f64 {
    let mut ticks = 0u64;
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return 0.0;
    };
    for entry in dir.flatten() {
        let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
        if !comm.trim_end().starts_with(prefix) {
            continue;
        }
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        // Fields after the ")" of the command name: utime is field 14, stime 15.
        let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.len() > 12 {
            ticks +=
                fields[11].parse::<u64>().unwrap_or(0) + fields[12].parse::<u64>().unwrap_or(0);
        }
    }
    ticks as f64 / 100.0 // USER_HZ
}

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
