//! A real axum service with taskscope's one-line set-up and its tower layer: a fast route, a
//! route with a blocking call, a route that holds a lock across an `.await` and a route behind a
//! semaphore, driven by an in-process HTTP client over loopback for a few seconds. It prints
//! what taskscope found per route.
//!
//! ```text
//! cargo run --release --example axum_server [-- --seconds 3] [--no-layer]
//! ```
//!
//! `--no-layer` leaves the tower layer out: what `taskscope::init()` alone finds.
//!
//! While it runs, `taskscope live` in another terminal shows it (Requests view: key 7).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::routing::get;
use axum::Router;
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use taskscope::sync::{Mutex, Semaphore};
use taskscope::tower::TaskscopeLayer;
use taskscope::{fmt_ns, WarningKind};

#[derive(Clone)]
struct AppState {
    cache: Arc<Mutex<Vec<u64>>>,
    db_pool: Arc<Semaphore>,
}

async fn fast() -> &'static str {
    "ok"
}

/// The hazard: a blocking call inside an async handler stalls its worker thread.
async fn report() -> String {
    let started = Instant::now();
    std::thread::sleep(Duration::from_millis(25));
    format!("report took {:?}", started.elapsed())
}

/// The hazard: the cache lock is held while the backend is awaited.
async fn refresh(State(state): State<AppState>) -> String {
    let mut entries = state.cache.lock().await;
    tokio::time::sleep(Duration::from_millis(3)).await; // the backend call
    let next = entries.len() as u64;
    entries.push(next);
    format!("{} entries", entries.len())
}

/// Two database connections for everyone: requests queue on the semaphore.
async fn query(State(state): State<AppState>) -> &'static str {
    let _connection = state.db_pool.acquire().await.expect("pool open");
    tokio::time::sleep(Duration::from_millis(2)).await;
    "rows"
}

fn seconds() -> f64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == "--seconds")
        .and_then(|i| args.get(i + 1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0)
}

#[tokio::main]
async fn main() {
    // The one line: watches this runtime, its blocked workers and their stacks.
    let guard = taskscope::init();

    let state = AppState {
        cache: Arc::new(Mutex::named("cache", Vec::new())),
        db_pool: Arc::new(Semaphore::named("db-pool", 2)),
    };
    let app = Router::new()
        .route("/fast", get(fast))
        .route("/report", get(report))
        .route("/refresh", get(refresh))
        .route("/query", get(query))
        .with_state(state);
    // One scope per request, named by route.
    let app = match std::env::args().any(|a| a == "--no-layer") {
        true => app,
        false => app.layer(TaskscopeLayer::new()),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    // The load: 16 clients, each mostly on /fast, now and then on the other routes.
    let until = Instant::now() + Duration::from_secs_f64(seconds());
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let mut clients = Vec::new();
    for c in 0..16u64 {
        let client = client.clone();
        clients.push(tokio::spawn(async move {
            let mut sent = 0u64;
            while Instant::now() < until {
                let path = match (sent + c) % 50 {
                    0 => "/report",
                    1..=3 => "/refresh",
                    4..=9 => "/query",
                    _ => "/fast",
                };
                let uri = format!("http://{addr}{path}").parse().unwrap();
                let response = client.get(uri).await.expect("the server answers");
                response.into_body().collect().await.expect("a body");
                sent += 1;
            }
            sent
        }));
    }
    let mut sent = 0;
    for c in clients {
        sent += c.await.unwrap();
    }

    let snap = guard.finish().expect("taskscope is running");
    println!("{sent} requests\n");
    println!(
        "{:<14} {:>8} {:>10} {:>10} {:>10} {:>6} {:>6}",
        "route", "requests", "p50", "p99", "max", "2xx", "5xx"
    );
    let mut routes: Vec<_> = snap.scopes.iter().collect();
    routes.sort_by(|a, b| a.name.cmp(&b.name));
    for route in routes {
        let p = route.latency_ns.percentiles();
        println!(
            "{:<14} {:>8} {:>10} {:>10} {:>10} {:>6} {:>6}",
            route.name,
            p.count,
            fmt_ns(p.p50),
            fmt_ns(p.p99),
            fmt_ns(p.max),
            route.responses.success,
            route.responses.server_error
        );
    }
    for kind in [
        WarningKind::BlockedWorker,
        WarningKind::LockHeldAcrossAwait,
        WarningKind::LongWait,
    ] {
        let all: Vec<_> = snap.warnings_of(kind).collect();
        if all.is_empty() {
            continue;
        }
        println!("\n{kind}: {}", all.len());
        let worst = all
            .iter()
            .max_by_key(|w| w.duration_ns.unwrap_or(0))
            .unwrap();
        println!("  worst: {}", worst.message);
        if let Some(stack) = snap.top_stack(worst.id) {
            println!("  blocked at {}", stack.summary());
        }
    }
    if let Some(pool) = snap.semaphores.iter().find(|s| s.name == "db-pool") {
        let wait = pool.wait_ns.percentiles();
        println!(
            "\ndb-pool: {} acquisitions, wait p99 {}, max {} waiting",
            pool.acquisitions,
            fmt_ns(wait.p99),
            pool.max_waiters
        );
    }
}
