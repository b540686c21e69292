//! Unbounded fan-out against a slow dependency vs the same work through a `Semaphore` taken
//! before each spawn: the latency each request sees, the `unbounded_spawn` warning of the
//! first (the second stays silent), and what taskscope shows about the semaphore.
//!
//! ```text
//! cargo run --release --example bounded_concurrency
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use taskscope::sync::Semaphore;

/// A dependency that thrashes under load, like a database past its connection limit: each
/// request costs 1 ms × (1 + in_flight / 8)².
async fn query(in_flight: &std::sync::atomic::AtomicU64) -> Duration {
    use std::sync::atomic::Ordering::SeqCst;
    let n = in_flight.fetch_add(1, SeqCst) as f64;
    let cost = Duration::from_secs_f64(0.001 * (1.0 + n / 8.0).powi(2));
    tokio::time::sleep(cost).await;
    in_flight.fetch_sub(1, SeqCst);
    cost
}

async fn run(limit: Option<usize>) -> (Duration, Duration) {
    let in_flight = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let sem = limit.map(|n| Arc::new(Semaphore::named("db-pool", n)));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..400 {
        let in_flight = in_flight.clone();
        // The bound: a permit is taken before each spawn, so at most `limit` tasks are alive.
        let permit = match &sem {
            Some(s) => Some(s.clone().acquire_owned().await.unwrap()),
            None => None,
        };
        let name = if limit.is_some() {
            "bounded"
        } else {
            "unbounded"
        };
        tasks.push(taskscope::spawn_named(name, async move {
            let _permit = permit;
            query(&in_flight).await;
            // Every request arrived at `start`: its latency includes its wait for a permit.
            start.elapsed()
        }));
    }
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.push(t.await.unwrap());
    }
    latencies.sort();
    (latencies[latencies.len() / 2], start.elapsed())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // A fan-out is reported from 10,000 live tasks by default; this one has 400.
    let guard = taskscope::Builder::new().unbounded_spawn_alive(300).init();
    let (p50_unbounded, total_unbounded) = run(None).await;
    let (p50_bounded, total_bounded) = run(Some(8)).await;
    println!("400 requests against a dependency that thrashes under load:");
    println!(
        "  unbounded fan-out: median latency {p50_unbounded:?}, all done in {total_unbounded:?}"
    );
    println!("  semaphore of 8:    median latency {p50_bounded:?}, all done in {total_bounded:?}");
    let snap = guard.finish().expect("taskscope is running");
    for w in snap.warnings_of(taskscope::WarningKind::UnboundedSpawn) {
        println!("\n{}: {}\nfix: {}", w.kind, w.message, w.hint());
    }
    for s in &snap.semaphores {
        let w = s.wait_ns.percentiles();
        println!(
            "\nsemaphore `{}`: {} permits, {} acquisitions, max {} waiters, saturated {:.1} ms\n  wait p50 {:.2} ms, p99 {:.2} ms",
            s.name,
            s.permits,
            s.acquisitions,
            s.max_waiters,
            s.saturated_ns as f64 / 1e6,
            w.p50 as f64 / 1e6,
            w.p99 as f64 / 1e6
        );
    }
}
