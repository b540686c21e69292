//! How soon a blocked worker is reported, with many live tasks and a recording running (the
//! exporter then reads every task each second): DESIGN.md §10 asks for threshold + 5 ms.
//!
//! Spawns `--tasks` idle tasks, records to a temporary file, then blocks a worker `--blocks`
//! times for 120 ms each and prints, from the `tracing` events taskscope emits, the worst and
//! median time from a block's start to its `blocked_worker` event (threshold: 10 ms).
//!
//! ```text
//! cargo run --release --example blocked_latency [-- --tasks 100000 --blocks 20 --yields-first 10]
//! ```

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

mod common;
use common::arg;

/// When each `taskscope` event was emitted, and its message.
#[derive(Clone, Default)]
struct Events(Arc<Mutex<Vec<(Instant, String)>>>);

impl<S: tracing::Subscriber> Layer<S> for Events {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        struct Message(String);
        impl tracing::field::Visit for Message {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                if field.name() == "message" {
                    self.0 = format!("{value:?}");
                }
            }
        }
        if event.metadata().target() == "taskscope" {
            let mut message = Message(String::new());
            event.record(&mut message);
            self.0.lock().unwrap().push((Instant::now(), message.0));
        }
    }
}

fn main() {
    let (tasks, blocks) = (arg("--tasks", 100_000), arg("--blocks", 20).max(1));
    // `--yields-first 10`: each blocker yields that many times first, so that its blocking poll
    // is (most likely) an untimed one, which the watchdog times from when it first sees it.
    let yields_first = arg("--yields-first", 0);
    let events = Events::default();
    tracing_subscriber::registry().with(events.clone()).init();
    let recording =
        std::env::temp_dir().join(format!("blocked_latency-{}.tsrec", std::process::id()));
    let guard = taskscope::Builder::new()
        .no_server()
        .blocked_threshold(Duration::from_millis(10))
        .record(&recording)
        .init();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (release, _) = tokio::sync::watch::channel(());
    let idle: Vec<_> = rt.block_on(async {
        (0..tasks)
            .map(|_| {
                let mut released = release.subscribe();
                taskscope::spawn(async move {
                    let _ = released.changed().await;
                })
            })
            .collect()
    });
    std::thread::sleep(Duration::from_secs(2));
    let mut latencies = Vec::new();
    for i in 0..blocks {
        let name = format!("blocker-{i}");
        let started = rt.block_on(async {
            taskscope::spawn_named(name, async move {
                for _ in 0..yields_first {
                    tokio::task::yield_now().await;
                }
                let started = Instant::now();
                std::thread::sleep(Duration::from_millis(120));
                started
            })
            .await
            .unwrap()
        });
        // Blocks start at varied phases of the exporter's one-second cycle.
        std::thread::sleep(Duration::from_millis(137));
        let needle = format!("blocker-{i}`");
        match events
            .0
            .lock()
            .unwrap()
            .iter()
            .find(|(_, m)| m.contains(&needle))
        {
            Some((at, _)) => latencies.push(at.duration_since(started)),
            None => println!("block {i}: no blocked_worker event"),
        }
    }
    latencies.sort();
    println!(
        "{tasks} live tasks, recording on, {} blocks of 120 ms (threshold 10 ms) after {yields_first} \
         yields: blocked_worker logged after {:?} (median), {:?} (worst)",
        latencies.len(),
        latencies
            .get(latencies.len() / 2)
            .copied()
            .unwrap_or_default(),
        latencies.last().copied().unwrap_or_default()
    );
    release.send(()).unwrap();
    rt.block_on(async {
        for task in idle {
            task.await.unwrap();
        }
    });
    drop(guard);
    let _ = std::fs::remove_file(recording);
}
