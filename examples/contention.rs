//! A shared counter behind one mutex, hammered by many tasks — and what taskscope says about it.
//!
//! ```text
//! cargo run --release --example contention
//! ```

use std::sync::Arc;
use std::time::Duration;

use taskscope::fmt_ns;

use taskscope::sync::Mutex;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let guard = taskscope::Builder::new().init();
    let counter = Arc::new(Mutex::named("hit-counter", 0u64));
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let counter = counter.clone();
            taskscope::spawn_named("request", async move {
                for _ in 0..2_000 {
                    let mut hits = counter.lock().await;
                    *hits += 1;
                    // Work done while holding the lock makes everyone else wait.
                    std::hint::black_box((0..200).sum::<u64>());
                    drop(hits);
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let snap = guard.finish().expect("taskscope is running");
    println!("counter = {}\n", *counter.lock().await);
    for lock in &snap.locks {
        let (w, h) = (lock.wait_ns.percentiles(), lock.hold_ns.percentiles());
        println!(
            "lock `{}` ({}): {} acquisitions, {:.1}% contended, max {} waiters\n  wait p50 {}, p99 {}, max {}\n  hold p50 {}, p99 {}, max {}",
            lock.name,
            lock.location,
            lock.acquisitions,
            100.0 * lock.contended as f64 / lock.acquisitions.max(1) as f64,
            lock.max_waiters,
            fmt_ns(w.p50),
            fmt_ns(w.p99),
            fmt_ns(w.max),
            fmt_ns(h.p50),
            fmt_ns(h.p99),
            fmt_ns(h.max)
        );
    }
}
