//! Per-poll cost of bare tokio, tokio-metrics, taskscope (its `spawn`, and plain `tokio::spawn`
//! on a runtime with `taskscope::hooks`) and console-subscriber, in one process
//! (DESIGN.md §10's workload: 1,000 tasks × 1,000 `yield_now` on 2 workers, and on a
//! current-thread runtime). Built with `--cfg tokio_unstable`, which console-subscriber needs.
//!
//! ```text
//! cd benches/console-overhead && cargo run --release [-- --rounds 5]
//! ```
//!
//! taskscope runs with its live server and a client reading the stream (`--no-client`: none),
//! as in the main `overhead` example.
//!
//! console-subscriber installs a global `tracing` subscriber that every later runtime reports
//! to, so its rounds run last, after the interleaved rounds of the other variants.

use std::time::Instant;

#[path = "../../../examples/common/stream_client.rs"]
mod stream_client;
use stream_client::Client;

#[path = "../../../examples/common/mod.rs"]
mod common;
use common::{arg, median, print_poll_table, spawn_all, yielder};

#[derive(Clone, Copy, PartialEq)]
enum Variant {
    Bare,
    TokioMetrics,
    Taskscope,
    Hooks,
    Console,
}

impl Variant {
    fn name(self) -> &'static str {
        match self {
            Variant::Bare => "bare tokio::spawn",
            Variant::TokioMetrics => "tokio-metrics TaskMonitor",
            Variant::Taskscope => "taskscope::spawn, all on",
            Variant::Hooks => "tokio::spawn, taskscope::hooks",
            Variant::Console => "console-subscriber",
        }
    }
}

fn runtime(multi: bool, hooks: bool) -> tokio::runtime::Runtime {
    let mut b = if multi {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(2);
        b
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    if hooks {
        taskscope::hooks(&mut b);
    }
    b.enable_all().build().unwrap()
}

fn measure(variant: Variant, multi: bool, tasks: u32, yields: u32) -> f64 {
    let rt = runtime(multi, variant == Variant::Hooks);
    let guard = matches!(variant, Variant::Taskscope | Variant::Hooks).then(|| {
        taskscope::Builder::new()
            .bind("127.0.0.1:0")
            .retained_tasks(0)
            .init()
    });
    // As in the main `overhead` example: a client reads taskscope's stream through the run
    // (`--no-client`: none).
    let client = Client::unless_no_client(guard.as_ref());
    let monitor = tokio_metrics::TaskMonitor::new();
    let elapsed = rt.block_on(async {
        tokio::spawn(async {}).await.unwrap();
        let start = Instant::now();
        let handles = match variant {
            Variant::Bare | Variant::Console | Variant::Hooks => {
                spawn_all(tasks, || yielder(yields), tokio::spawn)
            }
            Variant::TokioMetrics => {
                spawn_all(tasks, || monitor.instrument(yielder(yields)), tokio::spawn)
            }
            Variant::Taskscope => spawn_all(tasks, || yielder(yields), |f| taskscope::spawn(f)),
        };
        for h in handles {
            h.await.unwrap();
        }
        start.elapsed()
    });
    if let Some(client) = client {
        assert!(client.stop() > 0, "the client read nothing");
    }
    drop(guard);
    elapsed.as_nanos() as f64 / (f64::from(tasks) * f64::from(yields + 1))
}

fn main() {
    let rounds: usize = arg("--rounds", 5);
    let (tasks, yields) = (1000, 1000);
    let flavours = [true, false];
    let firsts = [
        Variant::Bare,
        Variant::TokioMetrics,
        Variant::Taskscope,
        Variant::Hooks,
    ];
    // results[flavour][variant]
    let mut results = vec![vec![Vec::new(); 5]; 2];
    for _ in 0..rounds {
        for (f, &multi) in flavours.iter().enumerate() {
            for (v, &variant) in firsts.iter().enumerate() {
                results[f][v].push(measure(variant, multi, tasks, yields));
            }
        }
    }
    // From here on every runtime reports to console-subscriber (its server on 127.0.0.1:6669,
    // its aggregator running; no client connected).
    console_subscriber::init();
    for _ in 0..rounds {
        for (f, &multi) in flavours.iter().enumerate() {
            results[f][4].push(measure(Variant::Console, multi, tasks, yields));
        }
    }
    println!(
        "per-poll cost, {tasks} tasks x {yields} yield_now, median of {rounds} rounds, \
         built with --cfg tokio_unstable ({} CPUs)\n",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let all = [
        Variant::Bare,
        Variant::TokioMetrics,
        Variant::Taskscope,
        Variant::Hooks,
        Variant::Console,
    ];
    for (f, &multi) in flavours.iter().enumerate() {
        let medians = results[f].iter().map(|r| median(r.iter().copied()));
        print_poll_table(multi, all.iter().map(|v| v.name()).zip(medians));
    }
}
