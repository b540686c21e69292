//! A task dump of a real axum service over real HTTP on loopback, with taskscope's tower layer:
//! hyper and axum spawn the connection tasks, so the requests are dumped as the layer's scopes —
//! each named by its route, with the handler's chain of `async fn`s at their `.await` lines —
//! and every request completes after the dump (no wake-up lost).

mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::routing::get;
use axum::Router;
use common::{get_body, HttpClient};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use taskscope::{TaskKind, Trace};

const QUERY_AWAIT: u32 = line!() + 3;
async fn query_inventory(gate: Arc<tokio::sync::Notify>) -> &'static str {
    // The database answers when the test says so.
    gate.notified().await;
    "in stock"
}

const HANDLER_AWAIT: u32 = line!() + 2;
async fn inventory(State(gate): State<Arc<tokio::sync::Notify>>) -> &'static str {
    query_inventory(gate).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_pending_request_is_dumped_with_its_handlers_chain() {
    let guard = common::exclusive(|| taskscope::Builder::new().no_server());
    let gate = Arc::new(tokio::sync::Notify::new());
    let app = Router::new()
        .route("/inventory", get(inventory))
        .with_state(gate.clone())
        .layer(taskscope::tower::TaskscopeLayer::new());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
    let requests: Vec<_> = (0..5)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { get_body(&client, format!("http://{addr}/inventory")).await })
        })
        .collect();
    // All five in the handler.
    let mut dump = None;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let d = tokio::task::spawn_blocking(|| taskscope::task_dump(Duration::from_secs(5)))
            .await
            .unwrap();
        if d.named("GET /inventory").count() == 5 {
            dump = Some(d);
            break;
        }
    }
    let dump = dump.expect("five requests in the dump");
    for request in dump.named("GET /inventory") {
        assert_eq!(request.kind, TaskKind::Scope);
        let Trace::Suspended { chains } = &request.trace else {
            panic!("{dump}");
        };
        let lines: Vec<(String, Option<u32>)> = chains[0]
            .frames
            .iter()
            .map(|f| (f.function.rsplit("::").next().unwrap().to_string(), f.line))
            .collect();
        assert!(
            lines.contains(&("query_inventory".to_string(), Some(QUERY_AWAIT))),
            "{dump}"
        );
        assert!(
            lines.contains(&("inventory".to_string(), Some(HANDLER_AWAIT))),
            "{dump}"
        );
    }
    // The requests go on and finish after the dump.
    gate.notify_waiters();
    for request in requests {
        let body = tokio::time::timeout(Duration::from_secs(5), request)
            .await
            .expect("the request finished after the dump")
            .unwrap();
        assert_eq!(body, "in stock");
    }
    drop(guard);
}
