//! What streaming costs the application: 10,000 busy tasks, measured side by side with taskscope
//! alone, with a connected dashboard client, and with a client plus a recording.
//!
//! ```text
//! cargo run --release --example stream_cost [-- --seconds 5 --tasks 10000 --only ROW]
//! ```
//!
//! Prints the application's throughput (task iterations per second), the CPU time taskscope's own
//! threads used (as % of one core, from /proc) in the steady part of the run (from one second in,
//! when the client has its key frame, until the tasks are stopped) and over the whole run
//! (the key frame and the ends of the 10,000 tasks included), and the bytes per second on the
//! wire and on disk.

use std::io::Read;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use taskscope_wire::{write_frame, ClientFrame, WIRE_VERSION};

mod common;
use common::{arg, thread_cpu};

struct Run {
    iterations_per_s: f64,
    /// Over the steady part: from one second in (the client has its key frame) to just before
    /// the tasks are stopped.
    cpu_percent: f64,
    /// Over the whole run, the client's key frame and the 10,000 tasks' ends included.
    cpu_whole_percent: f64,
    wire_bytes_per_s: f64,
    disk_bytes_per_s: f64,
}

fn run(tasks: u64, seconds: u64, client: bool, record: bool) -> Run {
    let path = std::env::temp_dir().join(format!(
        "taskscope-stream-cost-{}.tsrec",
        std::process::id()
    ));
    let mut builder = taskscope::Builder::new()
        .bind("127.0.0.1:0")
        .retained_tasks(100);
    if record {
        builder = builder.record(&path);
    }
    let guard = builder.try_init().expect("taskscope starts");
    let addr = guard.local_addr().expect("stream address");
    let wire_bytes = Arc::new(AtomicU64::new(0));
    let reading = Arc::new(AtomicBool::new(true));
    if client {
        let (bytes, reading) = (wire_bytes.clone(), reading.clone());
        std::thread::spawn(move || {
            let mut conn = std::net::TcpStream::connect(addr).unwrap();
            write_frame(
                &mut conn,
                &ClientFrame::Hello {
                    version: WIRE_VERSION,
                    token: None,
                },
            )
            .unwrap();
            let mut buf = vec![0u8; 1 << 16];
            while reading.load(Ordering::Relaxed) {
                match conn.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        bytes.fetch_add(n as u64, Ordering::Relaxed);
                    }
                }
            }
        });
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let iterations = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let cpu_before = thread_cpu("taskscope");
    let steady_result = std::sync::Mutex::new(0.0);
    let started = Instant::now();
    rt.block_on(async {
        let handles: Vec<_> = (0..tasks)
            .map(|i| {
                let (iterations, stop) = (iterations.clone(), stop.clone());
                taskscope::spawn_named(format!("worker-{}", i % 100), async move {
                    let mut x = i;
                    while !stop.load(Ordering::Relaxed) {
                        for _ in 0..200 {
                            x = std::hint::black_box(
                                x.wrapping_mul(6364136223846793005).wrapping_add(1),
                            );
                        }
                        iterations.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_secs(1)).await;
        let steady = (thread_cpu("taskscope"), Instant::now());
        tokio::time::sleep(Duration::from_secs(seconds.saturating_sub(1).max(1))).await;
        let steady_cpu = thread_cpu("taskscope") - steady.0;
        *steady_result.lock().unwrap() = steady_cpu / steady.1.elapsed().as_secs_f64();
        stop.store(true, Ordering::Relaxed);
        for h in handles {
            let _ = h.await;
        }
    });
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = thread_cpu("taskscope") - cpu_before;
    reading.store(false, Ordering::Relaxed);
    drop(guard);
    let disk = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    let _ = std::fs::remove_file(&path);
    Run {
        iterations_per_s: iterations.load(Ordering::Relaxed) as f64 / elapsed,
        cpu_percent: 100.0 * steady_result.into_inner().unwrap(),
        cpu_whole_percent: 100.0 * cpu / elapsed,
        wire_bytes_per_s: wire_bytes.load(Ordering::Relaxed) as f64 / elapsed,
        disk_bytes_per_s: disk as f64 / elapsed,
    }
}

fn main() {
    let seconds = arg("--seconds", 5);
    let tasks = arg("--tasks", 10_000);
    println!("{tasks} busy tasks (compute, then sleep 10 ms), {seconds} s per configuration, 2 workers\n");
    println!("| configuration | iterations/s | vs alone | taskscope threads CPU, steady | whole run | wire | disk |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    // `--only N` (for profiling): only the N-th row (1-based).
    let only = arg("--only", 0) as usize;
    let mut base = None;
    for (row, (name, client, record)) in [
        ("taskscope, no client", false, false),
        ("+ connected client", true, false),
        ("+ client + recording", true, true),
    ]
    .into_iter()
    .enumerate()
    {
        if only != 0 && only != row + 1 {
            continue;
        }
        let r = run(tasks, seconds, client, record);
        let base = *base.get_or_insert(r.iterations_per_s);
        println!(
            "| {name} | {:.0} | {:.3}x | {:.2} % of a core | {:.2} % | {:.0} KiB/s | {:.0} KiB/s |",
            r.iterations_per_s,
            r.iterations_per_s / base,
            r.cpu_percent,
            r.cpu_whole_percent,
            r.wire_bytes_per_s / 1024.0,
            r.disk_bytes_per_s / 1024.0
        );
    }
}
