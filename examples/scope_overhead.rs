//! What a scope and the tower layer cost, side by side in one run (medians of interleaved
//! rounds, so machine noise hits every variant alike):
//!
//! - per poll: 1,000 plain `tokio::spawn` tasks × 1,000 `yield_now` on a 2-worker runtime, each
//!   task's body bare, inside a `taskscope::scope` with no Guard, and inside one with taskscope
//!   running (no server);
//! - per request: an axum `Router` called in-process (no sockets: the cost of the layer, not of
//!   the network) by 8 tasks on the same runtime — bare, with `TaskscopeLayer` (taskscope
//!   running), and with tower-http's `TraceLayer` (the ecosystem's usual per-request middleware;
//!   its spans go to a `tracing_subscriber::registry()`, no output).
//!
//! ```text
//! cargo run --release --example scope_overhead [-- --rounds 7 --requests 200000]
//! ```

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::routing::get;
use axum::Router;
use http_body_util::BodyExt;
use tower::ServiceExt;

mod common;
use common::{arg, median, text_arg};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn guard() -> taskscope::Guard {
    taskscope::Builder::new()
        .no_server()
        .try_init()
        .expect("taskscope starts")
}

#[derive(Clone, Copy, PartialEq)]
enum Poll {
    Bare,
    ScopeNoGuard,
    Scope,
}

impl Poll {
    const ALL: [Poll; 3] = [Poll::Bare, Poll::ScopeNoGuard, Poll::Scope];
    fn name(self) -> &'static str {
        match self {
            Poll::Bare => "bare task body",
            Poll::ScopeNoGuard => "inside taskscope::scope, no Guard",
            Poll::Scope => "inside taskscope::scope, taskscope running",
        }
    }
}

/// Nanoseconds per poll.
fn per_poll(variant: Poll, tasks: usize, yields: usize) -> f64 {
    let rt = runtime();
    let guard = (variant == Poll::Scope).then(guard);
    let elapsed = rt.block_on(async {
        let start = Instant::now();
        let mut handles = Vec::with_capacity(tasks);
        for _ in 0..tasks {
            let body = async move {
                for _ in 0..yields {
                    tokio::task::yield_now().await;
                }
            };
            handles.push(match variant {
                Poll::Bare => tokio::spawn(body),
                _ => tokio::spawn(async move { taskscope::scope("worker", body).await }),
            });
        }
        for h in handles {
            h.await.unwrap();
        }
        start.elapsed()
    });
    drop(guard);
    elapsed.as_nanos() as f64 / (tasks * (yields + 1)) as f64
}

#[derive(Clone, Copy, PartialEq)]
enum Request {
    Bare,
    Layer,
    Trace,
}

impl Request {
    const ALL: [Request; 3] = [Request::Bare, Request::Layer, Request::Trace];
    fn name(self) -> &'static str {
        match self {
            Request::Bare => "bare Router",
            Request::Layer => "Router + TaskscopeLayer, taskscope running",
            Request::Trace => "Router + tower-http TraceLayer",
        }
    }
}

fn router(variant: Request) -> Router {
    let router = Router::new()
        .route("/users/{id}", get(|| async { "user" }))
        .route("/health", get(|| async { "ok" }));
    match variant {
        Request::Bare => router,
        Request::Layer => router.layer(taskscope::tower::TaskscopeLayer::new()),
        Request::Trace => router.layer(tower_http::trace::TraceLayer::new_for_http()),
    }
}

/// Nanoseconds per request.
fn per_request(variant: Request, requests: usize) -> f64 {
    let rt = runtime();
    let guard = (variant == Request::Layer).then(guard);
    let app = router(variant);
    let clients = 8;
    let elapsed = rt.block_on(async {
        let start = Instant::now();
        let mut handles = Vec::new();
        for c in 0..clients {
            let app = app.clone();
            handles.push(tokio::spawn(async move {
                for i in 0..requests / clients {
                    let uri = if i % 2 == 0 {
                        format!("/users/{}", c * 1_000_000 + i)
                    } else {
                        "/health".to_string()
                    };
                    let request = axum::http::Request::get(uri).body(Body::empty()).unwrap();
                    let response = app.clone().oneshot(request).await.unwrap();
                    assert!(response.status().is_success());
                    response.into_body().collect().await.unwrap();
                }
            }));
        }
        for h in handles {
            h.await.unwrap();
        }
        start.elapsed()
    });
    if let Some(guard) = guard {
        // A request whose scope finds taskscope's event queue full runs untimed (counted as a
        // drop): say how many, so the figure is read for what it is.
        let snap = guard.finish().expect("a snapshot");
        let counted: u64 = snap.scopes.iter().map(|s| s.latency_ns.count()).sum();
        let sent = (requests / clients * clients) as u64;
        if counted < sent {
            println!(
                "  ({counted} of {sent} requests timed, {} events dropped)",
                snap.dropped_events
            );
        }
    }
    elapsed.as_nanos() as f64 / (requests / clients * clients) as f64
}

fn main() {
    // TraceLayer's spans go somewhere real, as in an application.
    tracing::subscriber::set_global_default(tracing_subscriber::registry()).unwrap();
    let rounds = arg("--rounds", 7).max(1);
    let tasks = arg("--tasks", 1000);
    let yields = arg("--yields", 1000);
    let requests = arg("--requests", 200_000);
    println!(
        "median of {rounds} interleaved rounds, 2 workers ({} CPUs)\n",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    // `--only NAME` (for profiling) runs the request variant whose name starts with NAME.
    if let Some(only) = text_arg("--only").as_ref() {
        let variant = *Request::ALL
            .iter()
            .find(|v| v.name().starts_with(only.as_str()))
            .expect("a request variant");
        for _ in 0..rounds {
            println!(
                "{}: {:.0} ns/request",
                variant.name(),
                per_request(variant, requests)
            );
        }
        return;
    }
    let mut polls: Vec<Vec<f64>> = vec![Vec::new(); Poll::ALL.len()];
    let mut reqs: Vec<Vec<f64>> = vec![Vec::new(); Request::ALL.len()];
    for _ in 0..rounds {
        for (i, v) in Poll::ALL.iter().enumerate() {
            polls[i].push(per_poll(*v, tasks, yields));
        }
        for (i, v) in Request::ALL.iter().enumerate() {
            reqs[i].push(per_request(*v, requests));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    println!("| {tasks} tasks × {yields} yield_now | ns/poll | vs bare |\n|---|---:|---:|");
    let bare = median(polls[0].clone());
    for (i, v) in Poll::ALL.iter().enumerate() {
        let m = median(polls[i].clone());
        println!("| {} | {m:.1} | {:+.1} |", v.name(), m - bare);
    }
    println!(
        "\n| {requests} in-process requests, 8 tasks | ns/request | vs bare |\n|---|---:|---:|"
    );
    let bare = median(reqs[0].clone());
    for (i, v) in Request::ALL.iter().enumerate() {
        let m = median(reqs[i].clone());
        println!("| {} | {m:.0} | {:+.0} |", v.name(), m - bare);
    }
}
