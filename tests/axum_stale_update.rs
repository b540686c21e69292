//! `stale_update` in a real axum service over real HTTP on loopback, with taskscope's tower
//! layer: a handler that reads a balance under a `taskscope::sync::Mutex`, awaits, then writes
//! back what it read plus one loses updates under concurrent requests, and the warning names
//! the route and the handler's read and write lines; the route that does the same in one
//! critical section loses nothing and is not named. The run's recording, read back, has the
//! warning, and every report format that lists warnings shows it (JSON valid against its
//! schema, Markdown with its fix, HTML, Prometheus's count, Perfetto's instant event).

mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::routing::get;
use axum::Router;
use common::{get_body, HttpClient};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use taskscope::sync::Mutex;
use taskscope::WarningKind;

#[derive(Clone)]
struct Accounts {
    racy: Arc<Mutex<u64>>,
    safe: Arc<Mutex<u64>>,
}

/// The handler's read and write lines (asserted in the warning).
const READ_LINE: u32 = line!() + 4;
const WRITE_LINE: u32 = READ_LINE + 3;
async fn deposit(State(accounts): State<Accounts>) -> &'static str {
    // The guide's race: read, await (a call to another service), write what was read plus one.
    let current = *accounts.racy.lock().await;
    tokio::time::sleep(Duration::from_millis(2)).await;
    // (the write)
    *accounts.racy.lock().await = current + 1;
    "deposited"
}

async fn deposit_safe(State(accounts): State<Accounts>) -> &'static str {
    tokio::time::sleep(Duration::from_millis(2)).await;
    *accounts.safe.lock().await += 1;
    "deposited"
}

const REQUESTS: u64 = 40;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_that_reads_awaits_and_writes_is_named_by_route_and_line() {
    let dir = std::env::temp_dir().join(format!("taskscope-stale-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let recording = dir.join("stale.tsrec");
    let guard = common::exclusive(|| taskscope::Builder::new().no_server().record(&recording));
    let accounts = Accounts {
        racy: Arc::new(Mutex::named("racy balance", 0)),
        safe: Arc::new(Mutex::named("safe balance", 0)),
    };
    let app = Router::new()
        .route("/deposit", get(deposit))
        .route("/deposit_safe", get(deposit_safe))
        .with_state(accounts.clone())
        .layer(taskscope::tower::TaskscopeLayer::new());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();

    let requests: Vec<_> = (0..2 * REQUESTS)
        .map(|i| {
            let client = client.clone();
            let path = if i % 2 == 0 {
                "deposit"
            } else {
                "deposit_safe"
            };
            tokio::spawn(async move { get_body(&client, format!("http://{addr}/{path}")).await })
        })
        .collect();
    for request in requests {
        assert_eq!(request.await.unwrap(), "deposited");
    }
    let racy = *accounts.racy.lock().await;
    let safe = *accounts.safe.lock().await;
    assert!(racy < REQUESTS, "the race lost no update: {racy}");
    assert_eq!(safe, REQUESTS);

    let snap = guard.finish().expect("a final snapshot");
    let found: Vec<_> = snap.warnings_of(WarningKind::StaleUpdate).collect();
    assert_eq!(found.len(), 1, "{found:#?}");
    let w = found[0];
    assert_eq!(w.task_name.as_deref(), Some("GET /deposit"), "{w:#?}");
    assert_eq!(w.locks, vec!["racy balance".to_string()]);
    for line in [READ_LINE, WRITE_LINE] {
        let at = format!("axum_stale_update.rs:{line}:");
        assert!(w.message.contains(&at), "{at} in {}", w.message);
    }
    assert!(w.message.contains("scope `GET /deposit`"), "{}", w.message);
    assert!(w.message.contains("awaited"), "{}", w.message);

    // Read back from the recording, as `taskscope report` and `replay` do.
    let replayed = &common::read_recording(&recording);
    let again: Vec<_> = replayed.warnings_of(WarningKind::StaleUpdate).collect();
    assert_eq!(again.len(), 1, "{:#?}", replayed.warnings);
    assert_eq!(again[0].message, w.message);
    std::fs::remove_dir_all(&dir).unwrap();

    let json: serde_json::Value =
        serde_json::from_str(&taskscope_report::Format::Json.render(replayed)).unwrap();
    common::validate(taskscope_report::json::JSON_SCHEMA, &json).unwrap();
    let kinds: Vec<&str> = json["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|w| w["kind"].as_str())
        .collect();
    assert!(kinds.contains(&"stale_update"), "{kinds:?}");
    let markdown = taskscope_report::Format::Markdown.render(replayed);
    assert!(markdown.contains("### stale_update ("), "{markdown}");
    assert!(
        markdown.contains(&format!("**Fix:** {}", WarningKind::StaleUpdate.hint())),
        "{markdown}"
    );
    let html = taskscope_report::Format::Html.render(replayed);
    assert!(html.contains(WarningKind::StaleUpdate.hint()));
    assert!(html.contains("racy balance"));
    let prometheus = taskscope_report::Format::Prometheus.render(replayed);
    assert!(
        prometheus
            .lines()
            .any(|l| l == "taskscope_warnings_total{kind=\"stale_update\"} 1"),
        "{prometheus}"
    );
    let perfetto: serde_json::Value =
        serde_json::from_str(&taskscope_report::Format::Perfetto.render(replayed)).unwrap();
    let events = perfetto["traceEvents"].as_array().unwrap();
    assert!(
        events.iter().any(|e| e["name"]
            .as_str()
            .is_some_and(|n| n.contains("stale_update"))),
        "no stale_update event in the trace"
    );
}
