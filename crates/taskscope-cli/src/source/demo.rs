//! The built-in demo workload: an instrumented app with the problems taskscope finds, run
//! in-process.

use std::fmt::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use std::sync::Arc;

use taskscope::sync::{Mutex, Semaphore};
use taskscope::{Snapshot, WarningKind};

/// Synchronous work in an async handler: the bug `blocked_worker` exists for.
fn checksum_blocking(rounds: u64) -> u64 {
    let start = Instant::now();
    let mut x = 0u64;
    while start.elapsed() < Duration::from_millis(rounds) {
        x = std::hint::black_box(
            x.wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407),
        );
    }
    x
}

async fn workload(until: Instant) {
    // Many small async requests.
    let requests = taskscope::spawn_named("request-loop", async move {
        let mut n = 0u64;
        while Instant::now() < until {
            let handles: Vec<_> = (0..50)
                .map(|_| {
                    taskscope::spawn_named("handle_request", async {
                        tokio::task::yield_now().await;
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    })
                })
                .collect();
            for h in handles {
                let _ = h.await;
                n += 1;
            }
        }
        n
    });
    // Every 700 ms a handler computes a checksum synchronously on the worker.
    let blocker = taskscope::spawn_named("export_report", async move {
        while Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(700)).await;
            std::hint::black_box(checksum_blocking(60));
        }
    });
    // A background job that panics; nobody awaits it.
    drop(taskscope::spawn_named("cache-refresh", async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        panic!("cache backend unreachable");
    }));
    // Blocking-pool work done right.
    let blocking = taskscope::spawn_blocking(|| checksum_blocking(30));
    let locks = taskscope::spawn_named("lock-workload", lock_workload(until));
    let _ = tokio::join!(requests, blocker, blocking, locks);
}

/// Recomputes a session under its lock: 20 µs of CPU, the same in debug and release builds.
fn refresh_session(count: u64) -> u64 {
    let until = Instant::now() + Duration::from_micros(20);
    while Instant::now() < until {
        std::hint::spin_loop();
    }
    count + 1
}

/// Contention, a lock held across an `.await`, a saturated semaphore and a lock-order inversion.
async fn lock_workload(until: Instant) {
    let sessions = Arc::new(Mutex::named("sessions", 0u64));
    let cache = Arc::new(Mutex::named("cache", Vec::<u64>::new()));
    let pool = Arc::new(Semaphore::named("db-pool", 4));
    let (accounts, audit) = (
        Arc::new(Mutex::named("accounts", 0)),
        Arc::new(Mutex::named("audit-log", 0)),
    );
    // Eight clients for a pool of four connections, each query 5 ms: four of them queue all
    // the time (`semaphore_saturated` after a few seconds).
    let mut clients = Vec::new();
    for _ in 0..8 {
        let pool = pool.clone();
        clients.push(taskscope::spawn_named("db-query", async move {
            while Instant::now() < until {
                let _conn = pool.acquire().await.expect("the pool is never closed");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }));
    }
    let mut round = 0u64;
    while Instant::now() < until {
        round += 1;
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let sessions = sessions.clone();
            tasks.push(taskscope::spawn_named("session-touch", async move {
                for _ in 0..50 {
                    // 20 µs of work under the lock: the other worker's tasks queue for it.
                    let mut count = sessions.lock().await;
                    *count = refresh_session(*count);
                    drop(count);
                    tokio::task::yield_now().await;
                }
            }));
        }
        let cache = cache.clone();
        tasks.push(taskscope::spawn_named("refresh-cache", async move {
            let mut entries = cache.lock().await;
            tokio::time::sleep(Duration::from_millis(15)).await; // held across .await
            entries.push(round);
        }));
        // Two code paths taking the same two locks in opposite orders, at different times.
        let (a, b) = (accounts.clone(), audit.clone());
        let path = if round.is_multiple_of(2) {
            "transfer"
        } else {
            "audit-sweep"
        };
        tasks.push(taskscope::spawn_named(path, async move {
            if round.is_multiple_of(2) {
                let _accounts = a.lock().await;
                let _audit = b.lock().await;
            } else {
                let _audit = b.lock().await;
                let _accounts = a.lock().await;
            }
        }));
        for t in tasks {
            let _ = t.await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for client in clients {
        let _ = client.await;
    }
}

/// The demo running in the background for the dashboard: its runtime runs on its own thread
/// until the handle is dropped.
#[derive(Debug)]
pub struct Running {
    /// The workload's taskscope (dropping it stops taskscope).
    pub guard: Option<taskscope::Guard>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Running {
    /// Starts the workload with the live stream on a free loopback port.
    pub fn start(report: Option<&Path>, record: Option<&Path>) -> anyhow::Result<Running> {
        let builder = outputs(
            taskscope::Builder::new().bind("127.0.0.1:0"),
            report,
            record,
        );
        let guard = builder.try_init()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("taskscope-demo".into())
            .spawn(move || {
                let Ok(rt) = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                else {
                    return;
                };
                rt.block_on(async {
                    tokio::select! {
                        _ = workload(Instant::now() + Duration::from_secs(24 * 3600)) => {}
                        _ = stopped => {}
                    }
                });
                rt.shutdown_timeout(Duration::from_millis(500));
            })?;
        Ok(Running {
            guard: Some(guard),
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The stream address to attach the dashboard to.
    pub fn addr(&self) -> String {
        self.guard
            .as_ref()
            .and_then(|g| g.local_addr())
            .map_or_else(String::new, |a| a.to_string())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        drop(self.guard.take());
    }
}

/// Adds the report and recording the user asked for.
fn outputs(
    mut builder: taskscope::Builder,
    report: Option<&Path>,
    record: Option<&Path>,
) -> taskscope::Builder {
    // The CPU profile, for the Profile view (Linux on x86_64 and aarch64; elsewhere nothing).
    builder = builder.profile_hz(99);
    if let Some(path) = report {
        builder = builder.report(path);
    }
    if let Some(path) = record {
        builder = builder.record(path);
    }
    builder
}

/// Runs the demo for `duration` without a terminal and returns the findings as Markdown.
pub fn run_headless(
    duration: Duration,
    report: Option<&Path>,
    record: Option<&Path>,
) -> anyhow::Result<String> {
    let snapshots = run_sampled(duration, report, record, duration)?;
    Ok(summary(
        snapshots.last().expect("at least the final snapshot"),
    ))
}

/// Runs the demo for `duration` and returns snapshots taken every `every`, the final one (taken
/// when taskscope stops) last.
pub fn run_sampled(
    duration: Duration,
    report: Option<&Path>,
    record: Option<&Path>,
    every: Duration,
) -> anyhow::Result<Vec<Snapshot>> {
    let builder = outputs(taskscope::Builder::new().no_server(), report, record);
    let guard = builder.try_init()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    // Keep the panicking demo task from printing a panic message over the summary.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let until = Instant::now() + duration;
    let mut snapshots = Vec::new();
    rt.block_on(async {
        let work = tokio::spawn(workload(until));
        while Instant::now() + every <= until {
            tokio::time::sleep(every).await;
            snapshots.push(taskscope::snapshot());
        }
        let _ = work.await;
    });
    std::panic::set_hook(hook);
    rt.shutdown_timeout(Duration::from_secs(1));
    snapshots.push(guard.finish().expect("the demo's Guard is active"));
    Ok(snapshots)
}

fn ms(ns: u64) -> String {
    match ns {
        0..=999 => format!("{ns} ns"),
        1_000..=999_999 => format!("{:.1} µs", ns as f64 / 1e3),
        _ => format!("{:.1} ms", ns as f64 / 1e6),
    }
}

/// The findings, worst first.
pub fn summary(snap: &Snapshot) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# taskscope demo — {:.1} s observed\n",
        snap.taken_at_ms as f64 / 1000.0
    );
    let _ = writeln!(out, "## Warnings\n");
    let mut kinds: Vec<WarningKind> = snap.warnings.iter().map(|w| w.kind).collect();
    kinds.sort();
    kinds.dedup();
    for kind in kinds {
        let all: Vec<_> = snap.warnings_of(kind).collect();
        let _ = writeln!(
            out,
            "- **{kind}** ×{}: {}",
            all.len(),
            all.last().map_or("", |w| w.message.as_str())
        );
        // Where the last sampled one was blocked (stacks: Linux).
        if let Some(stack) = all.iter().rev().find_map(|w| snap.top_stack(w.id)) {
            let _ = writeln!(out, "  - blocked at `{}`", stack.summary());
        }
    }
    let _ = writeln!(out, "\n## Task groups (most busy first)\n");
    let _ = writeln!(
        out,
        "| task | location | spawned | polls | poll p50 | poll p99 | poll max | sched p99 |"
    );
    let _ = writeln!(out, "|---|---|---:|---:|---:|---:|---:|---:|");
    for g in &snap.task_groups {
        let (p, s) = (g.poll_ns.percentiles(), g.scheduled_ns.percentiles());
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            g.name,
            g.location,
            g.spawned,
            g.polls,
            ms(p.p50),
            ms(p.p99),
            ms(p.max),
            ms(s.p99)
        );
    }
    let _ = writeln!(out, "\n## Locks (most waited-on first)\n");
    let _ = writeln!(
        out,
        "| lock | kind | acquisitions | contended | wait p99 | wait max | hold p99 | hold max |"
    );
    let _ = writeln!(out, "|---|---|---:|---:|---:|---:|---:|---:|");
    for l in &snap.locks {
        let (w, h) = (l.wait_ns.percentiles(), l.hold_ns.percentiles());
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            l.name,
            l.kind,
            l.acquisitions,
            l.contended,
            ms(w.p99),
            ms(w.max),
            ms(h.p99),
            ms(h.max)
        );
    }
    let _ = writeln!(out, "\n## Semaphores\n");
    let _ = writeln!(
        out,
        "| semaphore | permits | acquisitions | max waiters | saturated | wait p99 |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|");
    for s in &snap.semaphores {
        let w = s.wait_ns.percentiles();
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} |",
            s.name,
            s.permits,
            s.acquisitions,
            s.max_waiters,
            ms(s.saturated_ns),
            ms(w.p99)
        );
    }
    if snap.dropped_events > 0 {
        let _ = writeln!(out, "\ndropped events: {}", snap.dropped_events);
    }
    out
}
