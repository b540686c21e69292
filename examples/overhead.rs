//! Per-poll overhead, side by side in one run: bare `tokio::spawn`, tokio-metrics' `TaskMonitor`,
//! `taskscope::spawn` with no Guard, and `taskscope::spawn` with everything on (poll timing,
//! scheduled delay, watchdog, collector).
//!
//! Workload (DESIGN.md §10): 1,000 tasks × 1,000 `yield_now`, on a 2-worker multi-thread runtime
//! and on a current-thread runtime. Prints a Markdown table of medians over several rounds, the
//! variants interleaved in each round so machine noise hits them alike.
//!
//! ```text
//! cargo run --release --example overhead [-- --rounds 7 --tasks 1000 --yields 1000]
//! ```

use std::future::Future;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, PartialEq)]
enum Variant {
    Bare,
    TokioMetrics,
    TaskscopeOff,
    Taskscope,
}

impl Variant {
    const ALL: [Variant; 4] = [
        Variant::Bare,
        Variant::TokioMetrics,
        Variant::TaskscopeOff,
        Variant::Taskscope,
    ];
    fn name(self) -> &'static str {
        match self {
            Variant::Bare => "bare tokio::spawn",
            Variant::TokioMetrics => "tokio-metrics TaskMonitor",
            Variant::TaskscopeOff => "taskscope::spawn, no Guard",
            Variant::Taskscope => "taskscope::spawn, all on",
        }
    }
}

fn runtime(multi: bool) -> tokio::runtime::Runtime {
    if multi {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    } else {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }
}

async fn yielder(yields: u32) {
    for _ in 0..yields {
        tokio::task::yield_now().await;
    }
}

fn spawn_all<F: Future<Output = ()> + Send + 'static>(
    tasks: u32,
    mut make: impl FnMut() -> F,
    spawn: impl Fn(F) -> tokio::task::JoinHandle<()>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..tasks).map(|_| spawn(make())).collect()
}

/// Nanoseconds per poll for one variant.
fn measure(variant: Variant, multi: bool, tasks: u32, yields: u32) -> f64 {
    let rt = runtime(multi);
    let guard =
        (variant == Variant::Taskscope).then(|| taskscope::Builder::new().retained_tasks(0).init());
    let monitor = tokio_metrics::TaskMonitor::new();
    let elapsed = rt.block_on(async {
        // Warm up: first spawns attach probes and calibrate the clock.
        tokio::spawn(async {}).await.unwrap();
        taskscope::spawn(async {}).await.unwrap();
        let start = Instant::now();
        let handles = match variant {
            Variant::Bare => spawn_all(tasks, || yielder(yields), tokio::spawn),
            Variant::TokioMetrics => {
                let handles: Vec<_> = (0..tasks)
                    .map(|_| tokio::spawn(monitor.instrument(yielder(yields))))
                    .collect();
                handles
            }
            Variant::TaskscopeOff | Variant::Taskscope => {
                spawn_all(tasks, || yielder(yields), |f| taskscope::spawn(f))
            }
        };
        for h in handles {
            h.await.unwrap();
        }
        start.elapsed()
    });
    if let Some(guard) = guard {
        let snap = guard.finish().expect("active guard");
        let polls: u64 = snap.task_groups.iter().map(|g| g.polls).sum();
        // The instrumented run really recorded every poll.
        assert!(
            polls >= u64::from(tasks) * u64::from(yields + 1),
            "recorded {polls} polls"
        );
    }
    elapsed.as_nanos() as f64 / (f64::from(tasks) * f64::from(yields + 1))
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn arg(name: &str, default: u32) -> u32 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let rounds = arg("--rounds", 7).max(1);
    let tasks = arg("--tasks", 1000);
    let yields = arg("--yields", 1000);
    println!(
        "per-poll cost, {tasks} tasks x {yields} yield_now, median of {rounds} rounds ({} CPUs)\n",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    // `--only taskscope` (for profiling) runs one variant on the multi-thread runtime.
    let args: Vec<String> = std::env::args().collect();
    if let Some(only) = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
    {
        let variant = *Variant::ALL
            .iter()
            .find(|v| v.name().starts_with(only.as_str()))
            .expect("variant");
        for _ in 0..rounds {
            println!(
                "{}: {:.1} ns/poll",
                variant.name(),
                measure(variant, true, tasks, yields)
            );
        }
        return;
    }
    for multi in [true, false] {
        let mut samples = vec![Vec::new(); Variant::ALL.len()];
        for _ in 0..rounds {
            for (i, v) in Variant::ALL.iter().enumerate() {
                samples[i].push(measure(*v, multi, tasks, yields));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let medians: Vec<f64> = samples.iter_mut().map(|s| median(s)).collect();
        let bare = medians[0];
        println!(
            "{}",
            if multi {
                "multi-thread runtime, 2 workers"
            } else {
                "current-thread runtime"
            }
        );
        println!("| variant | ns/poll | overhead vs bare | ratio |");
        println!("|---|---:|---:|---:|");
        for (v, m) in Variant::ALL.iter().zip(&medians) {
            println!(
                "| {} | {:.1} | {:+.1} ns | {:.2}x |",
                v.name(),
                m,
                m - bare,
                m / bare
            );
        }
        println!();
    }
}
