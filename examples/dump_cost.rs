//! What a task dump costs: the time to dump 1,000 and 10,000 tasks parked in nested `async fn`s
//! on oneshot channels (each traced, its stack resolved), on 2 workers.
//!
//! ```text
//! cargo run --release --example dump_cost
//! ```

use std::time::{Duration, Instant};

async fn leaf(rx: tokio::sync::oneshot::Receiver<()>) {
    rx.await.ok();
}

async fn handler(rx: tokio::sync::oneshot::Receiver<()>) {
    leaf(rx).await;
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let guard = taskscope::Builder::new().no_server().init();
    println!("| parked tasks | dump | traced | per task |");
    println!("|---:|---:|---:|---:|");
    for n in [1_000usize, 10_000] {
        let (senders, tasks): (Vec<_>, Vec<_>) = rt.block_on(async {
            (0..n)
                .map(|_| {
                    let (tx, rx) = tokio::sync::oneshot::channel();
                    (tx, taskscope::spawn_named("parked", handler(rx)))
                })
                .unzip()
        });
        std::thread::sleep(Duration::from_millis(200));
        let start = Instant::now();
        let dump = taskscope::task_dump(Duration::from_secs(30));
        let took = start.elapsed();
        let traced = dump
            .named("parked")
            .filter(|t| matches!(t.trace, taskscope::Trace::Suspended { .. }))
            .count();
        println!(
            "| {n} | {:.0} ms | {traced} | {:.1} µs |",
            took.as_secs_f64() * 1e3,
            took.as_secs_f64() * 1e6 / n as f64
        );
        for tx in senders {
            let _ = tx.send(());
        }
        rt.block_on(async {
            for task in tasks {
                task.await.unwrap();
            }
        });
    }
    drop(guard);
}
