//! The CPU profile of an axum service: `GET /work` spends about 70 % of its CPU in a checksum
//! and 30 % in a parse; taskscope samples every 1/499 s of each worker's CPU time and
//! attributes each sample to the route (through its tower layer). Prints the route's top
//! functions as `taskscope::snapshot()` gives them, next to the CPU time each function really
//! took (measured around every call), and the CPU of the profiler's own threads; records the
//! run for the reports (`--hz N` changes the rate):
//!
//! ```text
//! cargo run --release --example cpu_profile -- target/cpu.tsrec
//! taskscope report target/cpu.tsrec -o cpu.pb.gz     # go tool pprof, Pyroscope, speedscope
//! taskscope report target/cpu.tsrec -o cpu.folded    # inferno-flamegraph, flamegraph.pl
//! ```

use std::time::{Duration, Instant};

use axum::routing::get;
use axum::Router;
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

mod common;
#[path = "common/cpu_work.rs"]
mod cpu_work;

/// Each request: 1.4 ms of CPU in `checksum`, then 0.6 ms in `parse`.
static WORK: cpu_work::Work =
    cpu_work::Work::new(Duration::from_micros(1400), Duration::from_micros(600));

async fn work() -> String {
    WORK.run().to_string()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let recording = std::env::args()
        .nth(1)
        .filter(|a| !a.starts_with("--"))
        .unwrap_or_else(|| "target/cpu_profile.tsrec".into());
    // `--hz N`: the profile's rate (default 499).
    let hz = common::arg("--hz", 499u32);
    WORK.calibrate();
    let guard = taskscope::Builder::new()
        .no_server()
        .profile_hz(hz)
        .record(&recording)
        .init();
    let app = Router::new()
        .route("/work", get(work))
        .layer(taskscope::tower::TaskscopeLayer::new());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let client = Client::builder(TokioExecutor::new()).build_http::<String>();
    let uri: hyper::Uri = format!("http://{addr}/work").parse().unwrap();
    let start = Instant::now();
    let mut requests = 0u32;
    // `--seconds N`: how long the client sends requests (default 3).
    let run_for = Duration::from_secs(common::arg("--seconds", 3u64));
    let warm = Duration::from_secs(2).min(run_for / 2);
    let mut at_warm: Option<(Instant, f64, f64)> = None;
    while start.elapsed() < run_for {
        if at_warm.is_none() && start.elapsed() >= warm {
            at_warm = Some((
                Instant::now(),
                common::thread_cpu_precise("taskscope-prof"),
                common::thread_cpu_precise("taskscope-stack"),
            ));
        }
        let response = client.get(uri.clone()).await.expect("a response");
        response.into_body().collect().await.expect("a body");
        requests += 1;
    }

    let seconds = start.elapsed().as_secs_f64();
    // The profiler's own threads: the one that drains the samples and the symbolizer.
    let (profiler, symbolizer) = (
        common::thread_cpu_precise("taskscope-prof"),
        common::thread_cpu_precise("taskscope-stack"),
    );
    let snapshot = taskscope::snapshot();
    let profile = snapshot.profile.expect("profiling is on");
    let route = "[uninstrumented]/GET /work";
    let in_route = |s: &taskscope::ProfileStack| profile.label(s) == route;
    let samples = profile.samples(in_route);
    println!(
        "{requests} requests; {} samples in task polls, {} outside polls, {} idle, {} missed",
        profile.busy, profile.outside_polls, profile.idle, profile.missed
    );
    println!("samples per task group/scope: {:?}", profile.by_label());
    println!("{route}: {samples} samples; its functions by total (self), first 6:");
    for f in profile.functions(in_route).iter().take(6) {
        println!(
            "  {:5.1} % ({:5.1} %)  {}",
            100.0 * f.total_samples as f64 / samples.max(1) as f64,
            100.0 * f.self_samples as f64 / samples.max(1) as f64,
            f.function
        );
    }
    // Optimised builds name inlined frames without their path (`checksum`, not
    // `cpu_profile::checksum`): the last segment is compared.
    let total = |name: &str| {
        profile
            .functions(in_route)
            .iter()
            .find(|f| f.function.rsplit("::").next() == Some(name))
            .map_or(0, |f| f.total_samples) as f64
    };
    let (c, p) = (total("checksum"), total("parse"));
    println!(
        "checksum: {:.1} % of checksum + parse samples, {:.1} % of their CPU time",
        100.0 * c / (c + p).max(1.0),
        100.0 * WORK.checksum_share()
    );
    println!(
        "at {hz} Hz: the signal handler took {:.2} % of a core on the sampled threads ({:.1} µs a \
         sample)",
        100.0 * profile.sampling_ns as f64 / 1e9 / seconds,
        profile.sampling_ns as f64 / 1e3 / (profile.busy + profile.outside_polls).max(1) as f64
    );
    println!(
        "at {hz} Hz over {seconds:.1} s: the profiler's thread used {:.2} % of a core, the \
         symbolizer's {:.2} % (its first reading of the debug info included)",
        100.0 * profiler / seconds,
        100.0 * symbolizer / seconds
    );
    if let Some((at, p0, s0)) = at_warm {
        let steady = at.elapsed().as_secs_f64();
        println!(
            "  after the first {:.0} s: the profiler's {:.2} %, the symbolizer's {:.2} % of a core",
            warm.as_secs_f64(),
            100.0 * (profiler - p0) / steady,
            100.0 * (symbolizer - s0) / steady
        );
    }
    drop(guard);
    println!("recorded to {recording}");
}
