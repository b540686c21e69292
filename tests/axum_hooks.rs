//! `taskscope::hooks` on a real axum service over real HTTP on loopback: with
//! `--cfg tokio_unstable`, the tasks axum and hyper spawn with `tokio::spawn` are timed by their
//! spawn location, and a worker the handler blocks is blamed on the connection task that ran it.
//! (Run by CI with `RUSTFLAGS="--cfg tokio_unstable"`; without it this file is empty.)
#![cfg(tokio_unstable)]

mod common;

use std::time::{Duration, Instant};

use axum::routing::get;
use axum::Router;
use common::{get_body, HttpClient};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use taskscope::WarningKind;

/// The handler line that blocks (asserted in the warning's stack).
const BLOCKING_LINE: u32 = line!() + 3;

async fn report_handler() -> &'static str {
    std::thread::sleep(Duration::from_millis(300));
    "report"
}

#[test]
fn hooks_time_the_tasks_axum_spawns_and_blame_the_blocking_one() {
    let runtime = taskscope::hooks(
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all(),
    )
    .build()
    .unwrap();
    let snap = runtime.block_on(async {
        let guard = taskscope::Builder::new()
            .no_server()
            .blocked_threshold(Duration::from_millis(50))
            .init();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new()
            .route("/fast", get(|| async { "fast" }))
            .route("/report", get(report_handler));
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

        // No idle connections kept: each request is a connection, a task axum spawns.
        let client: HttpClient = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(0)
            .build_http();
        for _ in 0..20 {
            assert_eq!(
                get_body(&client, format!("http://{addr}/fast")).await,
                "fast"
            );
        }
        assert_eq!(
            get_body(&client, format!("http://{addr}/report")).await,
            "report"
        );
        // The worker's stack is symbolised off the hot path: wait for it.
        let deadline = Instant::now() + Duration::from_secs(10);
        let stack = loop {
            let snap = taskscope::snapshot();
            // (Ended too: tokio reports the run's end after the response was sent.)
            let stack = snap
                .warnings_of(WarningKind::BlockedWorker)
                .filter(|w| !w.ongoing)
                .find_map(|w| snap.top_stack(w.id))
                .map(|stack| stack.summary());
            if let Some(stack) = stack {
                break stack;
            }
            assert!(Instant::now() < deadline, "no stack: {:#?}", snap.warnings);
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        (guard.finish().unwrap(), stack)
    });
    let (snap, stack) = snap;

    // axum's serve loop spawns one task per connection, at a line of axum's own source.
    let connections = snap
        .task_groups
        .iter()
        .find(|g| g.location.contains("axum") && g.location.contains("serve"))
        .unwrap_or_else(|| panic!("no connection group in axum: {:#?}", snap.task_groups));
    assert_eq!(connections.kind, taskscope::TaskKind::Async);
    assert_eq!(connections.spawned, 21, "{connections:#?}");
    assert!(connections.polls >= 21 * 2, "{connections:#?}");

    let blocked: Vec<_> = snap.warnings_of(WarningKind::BlockedWorker).collect();
    assert_eq!(blocked.len(), 1, "{blocked:#?}");
    let warning = blocked[0];
    assert!(
        // The connection task is named by its spawn line in axum, from the crate's directory.
        warning
            .message
            .contains("by one poll of task spawned at axum-0.8")
            && warning.message.contains("/src/serve/mod.rs:"),
        "{}",
        warning.message
    );
    assert!(
        !warning.message.contains("not spawned through taskscope"),
        "{}",
        warning.message
    );
    let handler = format!("report_handler::{{{{closure}}}} (tests/axum_hooks.rs:{BLOCKING_LINE})");
    assert!(stack.contains(&handler), "{handler} in {stack}");
}
