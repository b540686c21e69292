//! Per-poll overhead, side by side in one run: bare `tokio::spawn`, tokio-metrics' `TaskMonitor`,
//! `taskscope::spawn` with no Guard, and `taskscope::spawn` with everything on (poll timing,
//! scheduled delay, watchdog, collector, and the live server with a client reading the stream;
//! `--no-client` leaves the client out) — with the default sampling windows (a busy task's polls
//! are timed and its wakes stamped about once a millisecond, every poll counted) and with every
//! poll timed and every wake stamped (`sample_interval(Duration::ZERO)`).
//!
//! For pairs of fresh processes (steadier on a noisy machine than one table): `--only bare
//! --rounds 1`, then `--only "taskscope::spawn, all on" --rounds 1`; `--current-thread` for the
//! current-thread runtime; `--sample-us N` (formerly `--wake-sample-us`) changes the sampling
//! interval of "all on". Under callgrind use 5000000 to keep windows out of the way: the run is
//! so much slower that with 50000 still 28 % of polls are timed (`--show-timed` prints
//! how many polls were timed).
//!
//! Workload (DESIGN.md §10): 1,000 tasks × 1,000 `yield_now`, on a 2-worker multi-thread runtime
//! and on a current-thread runtime. Prints a Markdown table of medians over several rounds, the
//! variants interleaved in each round so machine noise hits them alike.
//!
//! ```text
//! cargo run --release --example overhead [-- --rounds 7 --tasks 1000 --yields 1000]
//! ```

use std::time::{Duration, Instant};

#[path = "common/stream_client.rs"]
mod stream_client;
use stream_client::Client;

mod common;
use common::{arg, flag, median, print_poll_table, spawn_all, text_arg, yielder, Joined};

#[derive(Clone, Copy, PartialEq)]
enum Variant {
    Bare,
    TokioMetrics,
    TaskscopeOff,
    Taskscope,
    TaskscopeEveryWake,
    TaskscopeProfile99,
    TaskscopeProfile999,
}

impl Variant {
    const ALL: [Variant; 7] = [
        Variant::Bare,
        Variant::TokioMetrics,
        Variant::TaskscopeOff,
        Variant::Taskscope,
        Variant::TaskscopeEveryWake,
        Variant::TaskscopeProfile99,
        Variant::TaskscopeProfile999,
    ];
    fn name(self) -> &'static str {
        match self {
            Variant::Bare => "bare tokio::spawn",
            Variant::TokioMetrics => "tokio-metrics TaskMonitor",
            Variant::TaskscopeOff => "taskscope::spawn, no Guard",
            Variant::Taskscope => "taskscope::spawn, all on",
            Variant::TaskscopeEveryWake => "taskscope::spawn, all on, every poll timed",
            Variant::TaskscopeProfile99 => "taskscope::spawn, all on, CPU profile at 99 Hz",
            Variant::TaskscopeProfile999 => "taskscope::spawn, all on, CPU profile at 999 Hz",
        }
    }

    /// The CPU profile's rate of the variant (0: off).
    fn profile_hz(self) -> u32 {
        match self {
            Variant::TaskscopeProfile99 => 99,
            Variant::TaskscopeProfile999 => 999,
            _ => 0,
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

/// Nanoseconds per poll for one variant.
fn measure(variant: Variant, multi: bool, tasks: u32, yields: u32) -> f64 {
    let rt = runtime(multi);
    let instrumented = !matches!(
        variant,
        Variant::Bare | Variant::TokioMetrics | Variant::TaskscopeOff
    );
    let guard = instrumented.then(|| {
        // `--no-stacks` (for comparing): stack sampling of blocked workers off; it is on by
        // default and costs nothing on polls that do not block.
        let stacks = !flag("--no-stacks");
        taskscope::Builder::new()
            .retained_tasks(0)
            .stacks(stacks)
            .profile_hz(variant.profile_hz())
            .bind("127.0.0.1:0")
            // `--sample-us N` (for profiling under callgrind: 5000000, see the top): the
            // sampling interval of "all on" (default 1,000).
            .sample_interval(if variant == Variant::TaskscopeEveryWake {
                Duration::ZERO
            } else {
                Duration::from_micros(arg("--sample-us", arg("--wake-sample-us", 1000u64)))
            })
            .init()
    });
    // A dashboard client reads the live stream through the run (`--no-client`: none).
    let client = Client::unless_no_client(guard.as_ref());
    let monitor = tokio_metrics::TaskMonitor::new();
    let elapsed = rt.block_on(async {
        // Warm up: first spawns attach probes and calibrate the clock.
        tokio::spawn(async {}).await.unwrap();
        taskscope::spawn(async {}).await.unwrap();
        let start = Instant::now();
        let handles = match variant {
            Variant::Bare => spawn_all(
                tasks,
                || yielder(yields),
                |f| Joined::Tokio(tokio::spawn(f)),
            ),
            Variant::TokioMetrics => {
                let handles: Vec<_> = (0..tasks)
                    .map(|_| Joined::Tokio(tokio::spawn(monitor.instrument(yielder(yields)))))
                    .collect();
                handles
            }
            _ => spawn_all(
                tasks,
                || yielder(yields),
                |f| Joined::Taskscope(taskscope::spawn(f)),
            ),
        };
        for h in handles {
            h.join().await;
        }
        start.elapsed()
    });
    if let Some(client) = client {
        assert!(client.stop() > 0, "the client read nothing");
    }
    if let Some(guard) = guard {
        let snap = guard.finish().expect("active guard");
        let polls: u64 = snap.task_groups.iter().map(|g| g.polls).sum();
        // `--show-timed`: how many polls were timed (the rest were counted only).
        if flag("--show-timed") {
            let timed: u64 = snap.task_groups.iter().map(|g| g.poll_ns.count()).sum();
            eprintln!("{}: {timed} of {polls} polls timed", variant.name());
        }
        // A profiled run really profiled.
        if variant.profile_hz() > 0 {
            let busy = snap.profile.as_ref().map_or(0, |p| p.busy);
            assert!(busy > 0, "{}: no samples", variant.name());
            if flag("--show-timed") {
                eprintln!("{}: {busy} samples in task polls", variant.name());
            }
        }
        // The instrumented run really recorded every poll.
        assert!(
            polls >= u64::from(tasks) * u64::from(yields + 1),
            "recorded {polls} polls"
        );
    }
    elapsed.as_nanos() as f64 / (f64::from(tasks) * f64::from(yields + 1))
}

/// Nanoseconds per uncontended lock+unlock (or acquire+release), inside one task on a
/// current-thread runtime: `taskscope` is true for the taskscope wrappers (with a Guard).
fn measure_lock(taskscope: bool, semaphore: bool, ops: u32) -> f64 {
    let rt = runtime(false);
    let guard = taskscope.then(|| taskscope::Builder::new().retained_tasks(0).init());
    let elapsed = rt.block_on(async {
        let body = async move {
            let start = Instant::now();
            match (taskscope, semaphore) {
                (false, false) => {
                    let m = tokio::sync::Mutex::new(0u64);
                    for _ in 0..ops {
                        *m.lock().await += 1;
                    }
                }
                (true, false) => {
                    let m = taskscope::sync::Mutex::new(0u64);
                    for _ in 0..ops {
                        *m.lock().await += 1;
                    }
                }
                (false, true) => {
                    let s = tokio::sync::Semaphore::new(4);
                    for _ in 0..ops {
                        drop(std::hint::black_box(s.acquire().await.unwrap()));
                    }
                }
                (true, true) => {
                    let s = taskscope::sync::Semaphore::new(4);
                    for _ in 0..ops {
                        drop(std::hint::black_box(s.acquire().await.unwrap()));
                    }
                }
            }
            start.elapsed()
        };
        if taskscope {
            taskscope::spawn(body).await.unwrap()
        } else {
            tokio::spawn(body).await.unwrap()
        }
    });
    drop(guard);
    elapsed.as_nanos() as f64 / f64::from(ops)
}

/// Nanoseconds per lock+unlock (or acquire+release of a 2-permit semaphore) with 8 tasks
/// contending on a 2-worker runtime.
fn measure_contended(taskscope: bool, semaphore: bool, ops_per_task: u32) -> f64 {
    use std::sync::Arc;
    let rt = runtime(true);
    let guard = taskscope.then(|| taskscope::Builder::new().retained_tasks(0).init());
    let elapsed = rt.block_on(async move {
        let start = Instant::now();
        let tokio_mutex = Arc::new(tokio::sync::Mutex::new(0u64));
        let our_mutex = Arc::new(taskscope::sync::Mutex::new(0u64));
        let tokio_semaphore = Arc::new(tokio::sync::Semaphore::new(2));
        let our_semaphore = Arc::new(taskscope::sync::Semaphore::new(2));
        let handles: Vec<Joined> = (0..8)
            .map(|_| {
                let (tm, om) = (tokio_mutex.clone(), our_mutex.clone());
                let (ts, os) = (tokio_semaphore.clone(), our_semaphore.clone());
                let body = async move {
                    for _ in 0..ops_per_task {
                        match (taskscope, semaphore) {
                            (false, false) => *tm.lock().await += 1,
                            (true, false) => *om.lock().await += 1,
                            (false, true) => {
                                drop(std::hint::black_box(ts.acquire().await.unwrap()))
                            }
                            (true, true) => drop(std::hint::black_box(os.acquire().await.unwrap())),
                        }
                    }
                };
                if taskscope {
                    Joined::Taskscope(taskscope::spawn(body))
                } else {
                    Joined::Tokio(tokio::spawn(body))
                }
            })
            .collect();
        for h in handles {
            h.join().await;
        }
        start.elapsed()
    });
    drop(guard);
    elapsed.as_nanos() as f64 / (8.0 * f64::from(ops_per_task))
}

fn main() {
    let rounds = arg("--rounds", 7).max(1);
    let tasks = arg("--tasks", 1000);
    let yields = arg("--yields", 1000);
    println!(
        "per-poll cost, {tasks} tasks x {yields} yield_now, median of {rounds} rounds ({} CPUs)\n",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    // `--only taskscope` (for profiling) runs one variant on the multi-thread runtime
    // (`--current-thread`: on a current-thread one).
    if let Some(only) = text_arg("--only").as_ref() {
        let variant = *Variant::ALL
            .iter()
            .find(|v| v.name().starts_with(only.as_str()))
            .expect("variant");
        let multi = !flag("--current-thread");
        for _ in 0..rounds {
            println!(
                "{}: {:.1} ns/poll",
                variant.name(),
                measure(variant, multi, tasks, yields)
            );
        }
        return;
    }
    // `--locks` skips the per-poll tables.
    let polls = if flag("--locks") {
        &[][..]
    } else {
        &[true, false][..]
    };
    for &multi in polls {
        let mut samples = vec![Vec::new(); Variant::ALL.len()];
        for _ in 0..rounds {
            for (i, v) in Variant::ALL.iter().enumerate() {
                samples[i].push(measure(*v, multi, tasks, yields));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let medians = samples.iter().map(|s| median(s.iter().copied()));
        print_poll_table(multi, Variant::ALL.iter().map(|v| v.name()).zip(medians));
    }

    println!("locks: ns per operation, median of {rounds} rounds");
    println!("| operation | tokio | taskscope | ratio |");
    println!("|---|---:|---:|---:|");
    let ops = 1_000_000;
    type Run = Box<dyn Fn(bool) -> f64>;
    let rows: [(&str, Run); 4] = [
        (
            "Mutex lock+unlock, uncontended",
            Box::new(move |t| measure_lock(t, false, ops)),
        ),
        (
            "Semaphore acquire+release, uncontended",
            Box::new(move |t| measure_lock(t, true, ops)),
        ),
        (
            "Mutex lock+unlock, 8 tasks contending",
            Box::new(|t| measure_contended(t, false, 20_000)),
        ),
        (
            "Semaphore (2 permits) acquire+release, 8 tasks contending",
            Box::new(|t| measure_contended(t, true, 20_000)),
        ),
    ];
    // `--lock-row N` (for profiling) runs one row, taskscope's side (`--tokio`: tokio's).
    let only_row = text_arg("--lock-row").and_then(|v| v.parse::<usize>().ok());
    for (i, (name, run)) in rows.into_iter().enumerate() {
        if let Some(row) = only_row {
            if row == i {
                let tokio_side = flag("--tokio");
                println!("{name}: {:.1} ns", run(!tokio_side));
            }
            continue;
        }
        let (mut tokio, mut ours) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            tokio.push(run(false));
            ours.push(run(true));
        }
        let (t, o) = (median(tokio), median(ours));
        println!("| {name} | {t:.1} | {o:.1} | {:.2}x |", o / t);
    }
}
