//! What taskscope costs a server, side by side in one run: a loopback TCP request/response
//! workload (throughput and latency percentiles), peak memory after a million short tasks
//! (bounded by retention, not by how many tasks ran) and the memory of 100,000 long-lived ones.
//!
//! ```text
//! cargo run --release --example app_overhead [-- --rounds 3 --seconds 2 --connections 32]
//! ```
//!
//! Each memory figure comes from a fresh child process (`VmHWM` or `VmRSS` of
//! `/proc/self/status`, Linux), so the variants do not share a high-water mark.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

mod common;
use common::{arg, median};

const MESSAGE: usize = 64;

fn spawn<F>(instrumented: bool, f: F) -> tokio::task::JoinHandle<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    if instrumented {
        taskscope::spawn(f).into_tokio()
    } else {
        tokio::spawn(f)
    }
}

/// The server: one task per connection, echoing each 64-byte request after a little work under a
/// shared lock (the instrumented variant uses taskscope's `Mutex`).
async fn serve(listener: TcpListener, instrumented: bool) {
    let plain = Arc::new(tokio::sync::Mutex::new(0u64));
    let ours = Arc::new(taskscope::sync::Mutex::named("hits", 0u64));
    loop {
        let Ok((mut conn, _)) = listener.accept().await else {
            return;
        };
        let (plain, ours) = (plain.clone(), ours.clone());
        spawn(instrumented, async move {
            let _ = conn.set_nodelay(true);
            let mut buf = [0u8; MESSAGE];
            while conn.read_exact(&mut buf).await.is_ok() {
                if instrumented {
                    *ours.lock().await += 1;
                } else {
                    *plain.lock().await += 1;
                }
                if conn.write_all(&buf).await.is_err() {
                    break;
                }
            }
        });
    }
}

/// Requests per second and latency percentiles (µs) of `connections` closed-loop clients.
fn request_response(instrumented: bool, connections: u64, seconds: u64) -> (f64, f64, f64) {
    let guard = instrumented.then(|| {
        taskscope::Builder::new()
            .bind("127.0.0.1:0")
            .retained_tasks(1000)
            .init()
    });
    let server = two_workers();
    let listener = server.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
    let addr = listener.local_addr().unwrap();
    server.spawn(serve(listener, instrumented));

    // The load generator runs on a runtime of its own, never instrumented.
    let client = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (count, mut latencies) = client.block_on(async move {
        let deadline = Instant::now() + Duration::from_secs(seconds);
        let tasks: Vec<_> = (0..connections)
            .map(|_| {
                tokio::spawn(async move {
                    let mut conn = TcpStream::connect(addr).await.unwrap();
                    conn.set_nodelay(true).unwrap();
                    let mut hist = hdrhistogram::Histogram::<u64>::new(3).unwrap();
                    let mut buf = [7u8; MESSAGE];
                    while Instant::now() < deadline {
                        let t = Instant::now();
                        conn.write_all(&buf).await.unwrap();
                        conn.read_exact(&mut buf).await.unwrap();
                        hist.record(t.elapsed().as_nanos() as u64).unwrap();
                    }
                    hist
                })
            })
            .collect();
        let mut all = hdrhistogram::Histogram::<u64>::new(3).unwrap();
        for t in tasks {
            all.add(t.await.unwrap()).unwrap();
        }
        (all.len(), all)
    });
    drop(server);
    drop(guard);
    let p = |q| latencies.value_at_quantile(q) as f64 / 1000.0;
    let (p50, p99) = (p(0.5), p(0.99));
    latencies.reset();
    (count as f64 / seconds as f64, p50, p99)
}

/// A multi-thread runtime with two workers, as every measurement here uses.
fn two_workers() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Runs in a child: a million short tasks, then prints the peak resident set in KiB, how many of
/// the spawns were instrumented (the rest were shed, counted; 0 when bare) and how long the
/// million spawns and awaits took, in milliseconds.
fn rss_child(instrumented: bool) {
    // `--no-stacks` (by hand): without the stack sampler and its symbolizer.
    let stacks = !common::flag("--no-stacks");
    let guard = instrumented.then(|| taskscope::Builder::new().no_server().stacks(stacks).init());
    let rt = two_workers();
    let started = std::time::Instant::now();
    rt.block_on(async {
        for _ in 0..1_000 {
            let batch: Vec<_> = (0..1_000u64)
                .map(|i| spawn(instrumented, async move { std::hint::black_box(i) }))
                .collect();
            for t in batch {
                t.await.unwrap();
            }
        }
    });
    let storm_ms = started.elapsed().as_millis();
    let snap = guard.and_then(|g| g.finish());
    let instrumented_spawns = snap.map_or(0, |snap| {
        snap.task_groups.iter().map(|g| g.spawned).sum::<u64>()
    });
    let hwm = rss_kib("VmHWM:");
    println!("{hwm} {instrumented_spawns} {storm_ms}");
}

/// Runs in a child: 100,000 long-lived tasks (200 `yield_now`s each, then waiting), and prints
/// the resident set they added, in bytes per task.
fn rss_long_child(instrumented: bool) {
    const TASKS: u64 = 100_000;
    let guard = instrumented.then(|| taskscope::Builder::new().no_server().init());
    let rt = two_workers();
    let before = rss_kib("VmRSS:");
    rt.block_on(async {
        let (release, _) = tokio::sync::watch::channel(());
        let tasks: Vec<_> = (0..TASKS)
            .map(|_| {
                let mut released = release.subscribe();
                spawn(instrumented, async move {
                    for _ in 0..200 {
                        tokio::task::yield_now().await;
                    }
                    let _ = released.changed().await;
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_secs(2)).await;
        println!("{}", (rss_kib("VmRSS:") - before) * 1024 / TASKS);
        release.send(()).unwrap();
        for t in tasks {
            t.await.unwrap();
        }
    });
    drop(guard);
}

/// A line of `/proc/self/status`, in KiB (0 where there is none).
fn rss_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Bytes per long-lived task of a child run.
fn long_task_bytes(instrumented: bool) -> Option<u64> {
    let out = std::process::Command::new(std::env::current_exe().ok()?)
        .args(["--rss-long-child", if instrumented { "1" } else { "0" }])
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// Peak RSS in KiB, instrumented spawns and milliseconds of a child run.
fn peak_rss_kib(instrumented: bool) -> Option<(u64, u64, u64)> {
    let out = std::process::Command::new(std::env::current_exe().ok()?)
        .args(["--rss-child", if instrumented { "1" } else { "0" }])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut words = text.split_whitespace().map(|w| w.parse::<u64>().ok());
    Some((words.next()??, words.next()??, words.next()??))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--rss-child") {
        rss_child(args.get(i + 1).map(String::as_str) == Some("1"));
        return;
    }
    if let Some(i) = args.iter().position(|a| a == "--rss-long-child") {
        rss_long_child(args.get(i + 1).map(String::as_str) == Some("1"));
        return;
    }
    if args.iter().any(|a| a == "--only-taskscope") {
        // For profiling: one instrumented request/response run.
        let (rps, p50, p99) = request_response(true, arg("--connections", 32), arg("--seconds", 2));
        println!("taskscope: {rps:.0} requests/s, p50 {p50:.1} us, p99 {p99:.1} us");
        return;
    }
    let rounds = arg("--rounds", 3).max(1);
    let seconds = arg("--seconds", 2).max(1);
    let connections = arg("--connections", 32).max(1);
    println!(
        "request/response over loopback TCP: {connections} closed-loop connections, {seconds} s \
         per run, median of {rounds} rounds (variants interleaved), server on 2 workers\n"
    );
    let mut results = [Vec::new(), Vec::new()];
    for _ in 0..rounds {
        for (i, instrumented) in [false, true].into_iter().enumerate() {
            results[i].push(request_response(instrumented, connections, seconds));
        }
    }
    println!("| variant | requests/s | p50 µs | p99 µs |");
    println!("|---|---:|---:|---:|");
    let mut rows = Vec::new();
    for (i, name) in ["bare tokio", "taskscope (spawn, Mutex, stream server on)"]
        .iter()
        .enumerate()
    {
        let rps = median(results[i].iter().map(|r| r.0));
        let p50 = median(results[i].iter().map(|r| r.1));
        let p99 = median(results[i].iter().map(|r| r.2));
        println!("| {name} | {rps:.0} | {p50:.1} | {p99:.1} |");
        rows.push((rps, p50, p99));
    }
    println!(
        "\nthroughput {:.3}x, p50 {:.3}x, p99 {:.3}x of bare\n",
        rows[1].0 / rows[0].0,
        rows[1].1 / rows[0].1,
        rows[1].2 / rows[0].2
    );
    println!("peak memory after 1,000,000 short tasks (VmHWM of a fresh process each)\n");
    println!("| variant | peak RSS | spawns instrumented | spawn + await, all |");
    println!("|---|---:|---:|---:|");
    for (name, instrumented) in [("bare tokio::spawn", false), ("taskscope::spawn", true)] {
        match peak_rss_kib(instrumented) {
            Some((kib, spawns, ms)) if instrumented => println!(
                "| {name} | {:.1} MiB | {spawns} of 1000000 (the rest shed and counted) | {ms} ms |",
                kib as f64 / 1024.0
            ),
            Some((kib, _, ms)) => {
                println!("| {name} | {:.1} MiB | - | {ms} ms |", kib as f64 / 1024.0)
            }
            None => println!("| {name} | (not measured: needs /proc) | | |"),
        }
    }
    println!("\nresident memory of 100,000 long-lived tasks (200 yields each, then waiting)\n");
    println!("| variant | bytes per task |");
    println!("|---|---:|");
    for (name, instrumented) in [("bare tokio::spawn", false), ("taskscope::spawn", true)] {
        match long_task_bytes(instrumented) {
            Some(bytes) => println!("| {name} | {bytes} |"),
            None => println!("| {name} | (not measured: needs /proc) |"),
        }
    }
}
