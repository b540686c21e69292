//! A small server where one handler calls a blocking function — and what taskscope says about it.
//!
//! ```text
//! cargo run --example blocking
//! ```
//!
//! The server listens on loopback; an in-process client sends requests to `/users` (async, fast)
//! and `/report` (which calls `std::fs`-style blocking code on the worker). taskscope reports the
//! blocked worker while it is blocked, naming the task, its spawn location and the span.

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tracing::Instrument;
use tracing_subscriber::prelude::*;

/// The culprit: synchronous work inside an async handler.
fn render_report_blocking() -> String {
    std::thread::sleep(Duration::from_millis(120));
    "report: 42 rows".to_string()
}

async fn handle(stream: TcpStream) {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    while let Ok(Some(path)) = lines.next_line().await {
        let body = async {
            match path.as_str() {
                "/report" => render_report_blocking(),
                _ => {
                    tokio::task::yield_now().await;
                    "users: alice, bob".to_string()
                }
            }
        }
        .instrument(tracing::info_span!("handle_request", path = %path))
        .await;
        if write
            .write_all(format!("{body}\n").as_bytes())
            .await
            .is_err()
        {
            break;
        }
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> std::io::Result<()> {
    // Warnings are tracing events under target `taskscope`; print them, and let taskscope's
    // layer tell which span a blocked poll was in.
    tracing_subscriber::registry()
        .with(taskscope::layer())
        .with(tracing_subscriber::fmt::layer().with_target(true))
        .init();
    let guard = taskscope::init();

    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    taskscope::spawn_named("accept-loop", async move {
        while let Ok((stream, _)) = listener.accept().await {
            taskscope::spawn_named("connection", handle(stream));
        }
    });

    let client = TcpStream::connect(addr).await?;
    let (read, mut write) = client.into_split();
    let mut replies = BufReader::new(read).lines();
    for i in 0..20 {
        let path = if i % 10 == 9 { "/report" } else { "/users" };
        write.write_all(format!("{path}\n").as_bytes()).await?;
        replies.next_line().await?;
    }

    let snap = taskscope::snapshot();
    println!("\ntaskscope found:");
    for w in snap.warnings_of(taskscope::WarningKind::BlockedWorker) {
        println!(
            "  blocked_worker: task `{}` at {} blocked a worker for {:.1} ms (span: {})",
            w.task_name.as_deref().unwrap_or("?"),
            w.location.as_deref().unwrap_or("?"),
            w.duration_ns.unwrap_or(0) as f64 / 1e6,
            w.span.as_deref().unwrap_or("-"),
        );
    }
    println!(
        "\n  {:<12} {:>6} {:>8} {:>10} {:>10}",
        "task", "polls", "p50", "p99", "max"
    );
    for g in &snap.task_groups {
        let p = g.poll_ns.percentiles();
        println!(
            "  {:<12} {:>6} {:>8} {:>10} {:>10}",
            g.name,
            g.polls,
            fmt(p.p50),
            fmt(p.p99),
            fmt(p.max)
        );
    }
    drop(guard);
    Ok(())
}

fn fmt(ns: u64) -> String {
    if ns >= 1_000_000 {
        format!("{:.1}ms", ns as f64 / 1e6)
    } else {
        format!("{:.1}µs", ns as f64 / 1e3)
    }
}
