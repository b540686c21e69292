//! A real axum service over real HTTP on loopback, with nothing of taskscope's but `init`: axum
//! and hyper spawn every task with `tokio::spawn`, so taskscope has to find a blocked worker
//! without having spawned the task that blocks it, and name the handler's line.

mod common;

use std::time::{Duration, Instant};

use axum::routing::get;
use axum::Router;
use common::{get_body, HttpClient};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use taskscope::{Snapshot, WarningKind};

/// The handler line that blocks (asserted in the stack).
const BLOCKING_LINE: u32 = line!() + 5;

async fn report_handler() -> &'static str {
    // A blocking call inside an async handler: the hazard. (Long enough to be seen while it
    // lasts even in a debug build, whose first stack takes a few hundred ms to symbolise.)
    std::thread::sleep(Duration::from_millis(600));
    "report"
}

async fn fast_handler() -> &'static str {
    "fast"
}

fn app() -> Router {
    Router::new()
        .route("/fast", get(fast_handler))
        .route("/report", get(report_handler))
}

async fn serve() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // axum spawns each connection's task itself, with tokio::spawn.
    tokio::spawn(async move { axum::serve(listener, app()).await.unwrap() });
    addr
}

fn blocked(snap: &Snapshot) -> Vec<&taskscope::Warning> {
    snap.warnings_of(WarningKind::BlockedWorker).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_alone_reports_a_blocked_handler_while_it_blocks_with_its_line() {
    let guard = common::exclusive(|| taskscope::Builder::new().no_server());
    let addr = serve().await;
    let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();

    for _ in 0..20 {
        assert_eq!(
            get_body(&client, format!("http://{addr}/fast")).await,
            "fast"
        );
    }
    let snap = taskscope::snapshot();
    assert!(blocked(&snap).is_empty(), "{:#?}", blocked(&snap));

    // One blocking request; the test's own future runs outside the runtime's workers.
    let slow = {
        let client = client.clone();
        tokio::spawn(async move { get_body(&client, format!("http://{addr}/report")).await })
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    let ongoing = loop {
        let snap = taskscope::snapshot();
        if let Some(w) = blocked(&snap).into_iter().find(|w| w.ongoing) {
            break w.clone();
        }
        assert!(Instant::now() < deadline, "no ongoing blocked_worker");
        std::thread::sleep(Duration::from_millis(2));
    };
    assert!(
        !slow.is_finished(),
        "reported while the request is still blocked"
    );
    assert_eq!(slow.await.unwrap(), "report");

    // The worker's stack names the handler and its line, and the call it blocked in.
    let deadline = Instant::now() + Duration::from_secs(10);
    let (warning, stack) = loop {
        let snap = taskscope::snapshot();
        let found = snap
            .warnings_of(WarningKind::BlockedWorker)
            .find(|w| w.id == ongoing.id)
            .cloned()
            .zip(snap.top_stack(ongoing.id).cloned());
        if let Some(found) = found.filter(|(w, _)| !w.ongoing && w.location.is_some()) {
            break found;
        }
        assert!(Instant::now() < deadline, "no stack for {ongoing:#?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let summary = stack.summary();
    let place = format!("axum_service.rs:{BLOCKING_LINE}");
    assert!(
        summary.contains("report_handler") && summary.contains(&place),
        "{summary}"
    );
    // (std's path for it: `std::thread::sleep`, `std::thread::functions::sleep` since 1.9x)
    assert!(
        summary.contains(" in std::thread::") && summary.ends_with("sleep"),
        "{summary}"
    );
    let location = warning.location.as_deref().unwrap();
    assert!(
        location.contains("report_handler") && location.contains(&place),
        "{location}"
    );
    assert!(
        warning.message.contains("report_handler"),
        "{}",
        warning.message
    );
    let duration = warning.duration_ns.unwrap();
    assert!(duration >= 500_000_000, "{duration}");

    // Fast requests after it are not blamed.
    for _ in 0..20 {
        get_body(&client, format!("http://{addr}/fast")).await;
    }
    let snap = guard.finish().expect("a final snapshot");
    assert_eq!(blocked(&snap).len(), 1, "{:#?}", blocked(&snap));

    // The report says where, as for an instrumented task.
    let markdown = taskscope_report::Format::Markdown.render(&snap);
    let line = format!("blocked at `axum_service::report_handler::{{{{closure}}}} (tests/axum_service.rs:{BLOCKING_LINE}) in std::thread::");
    assert!(markdown.contains(&line), "{markdown}");
}

async fn user_handler(axum::extract::Path(id): axum::extract::Path<u32>) -> String {
    format!("user {id}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_layer_blames_the_blocking_route_and_counts_every_route_exactly() {
    let guard = common::exclusive(|| taskscope::Builder::new().no_server());
    let app = app()
        .route("/users/{id}", get(user_handler))
        .layer(taskscope::tower::TaskscopeLayer::new());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();

    let mut requests = Vec::new();
    for i in 0..60u32 {
        let client = client.clone();
        let path = match i % 20 {
            0 => "/report".to_string(),
            1..=5 => format!("/users/{i}"),
            6 => format!("/missing/{i}"),
            _ => "/fast".to_string(),
        };
        requests.push(tokio::spawn(async move {
            let response = client
                .get(format!("http://{addr}{path}").parse().unwrap())
                .await
                .unwrap();
            response.status().as_u16()
        }));
    }
    let mut statuses = Vec::new();
    for request in requests {
        statuses.push(request.await.unwrap());
    }
    assert_eq!(statuses.iter().filter(|&&s| s == 404).count(), 3);

    let snap = guard.finish().expect("a final snapshot");
    let route = |name: &str| {
        let group = snap
            .group(name)
            .unwrap_or_else(|| panic!("no group {name}: {:#?}", snap.task_groups));
        let scope = snap.scope(name).unwrap();
        assert_eq!(group.kind, taskscope::TaskKind::Scope);
        (group.completed, scope.latency_ns.count(), scope.responses)
    };
    let (completed, latencies, responses) = route("GET /fast");
    assert_eq!((completed, latencies, responses.success), (39, 39, 39));
    let (completed, _, responses) = route("GET /report");
    assert_eq!((completed, responses.success), (3, 3));
    let (completed, _, responses) = route("GET /users/{id}");
    assert_eq!((completed, responses.success), (15, 15));
    let (_, _, responses) = route("GET /missing/:id");
    assert_eq!((responses.client_error, responses.total()), (3, 3));
    // A request takes at least its handler's blocking call: exactly in the sum, and within the
    // histogram's stated precision (buckets report their midpoint, under 1.6 % off) in the quantiles.
    let report = snap.scope("GET /report").unwrap();
    assert!(report.latency_ns.sum >= 3 * 600_000_000, "{report:?}");
    assert!(
        report.latency_ns.value_at_quantile(0.0) >= 600_000_000 * 984 / 1000,
        "{report:?}"
    );

    // Every blocked worker is blamed on the blocking route, none on the others.
    let blocked = blocked(&snap);
    assert!(!blocked.is_empty());
    for w in &blocked {
        assert_eq!(w.task_name.as_deref(), Some("GET /report"), "{w:#?}");
        assert!(
            w.message
                .contains("by one poll of scope `GET /report` (a request through the tower layer)"),
            "{}",
            w.message
        );
    }
    // Every report has the routes, as a user reads them.
    let json: serde_json::Value =
        serde_json::from_str(&taskscope_report::Format::Json.render(&snap)).unwrap();
    common::validate(taskscope_report::json::JSON_SCHEMA, &json).unwrap();
    let fast = json["scopes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "GET /fast")
        .unwrap();
    assert_eq!(
        (fast["ended"].as_u64(), fast["responses"]["2xx"].as_u64()),
        (Some(39), Some(39))
    );
    let markdown = taskscope_report::Format::Markdown.render(&snap);
    let row = markdown
        .lines()
        .find(|l| l.starts_with("| GET /missing/:id | 3 |"))
        .unwrap_or_else(|| panic!("{markdown}"));
    assert!(row.contains("| 0 | 0 | 3 | 0 |"), "{row}");
    let prometheus = taskscope_report::Format::Prometheus.render(&snap);
    assert!(
        prometheus.lines().any(|l| l
            .starts_with("taskscope_scope_latency_seconds_count{scope=\"GET /fast\",")
            && l.ends_with(" 39")),
        "{prometheus}"
    );
    assert!(
        prometheus.lines().any(|l| l
            .starts_with("taskscope_scope_responses_total{scope=\"GET /report\",")
            && l.contains("class=\"2xx\"")
            && l.ends_with(" 3")),
        "{prometheus}"
    );
    let hlog = taskscope_report::Format::Hlog.render(&snap);
    let tags: Vec<String> =
        hdrhistogram::serialization::interval_log::IntervalLogIterator::new(hlog.as_bytes())
            .filter_map(|e| match e {
                Ok(hdrhistogram::serialization::interval_log::LogEntry::Interval(h)) => {
                    h.tag().map(|t| t.as_str().to_string())
                }
                _ => None,
            })
            .collect();
    assert!(
        tags.iter().any(|t| t == "scope_latency:GET_/users/{id}"),
        "{tags:?}"
    );

    // And the stack names the handler's line, as without the layer.
    let stack = snap.top_stack(blocked[0].id).expect("a stack").summary();
    assert!(
        stack.contains(&format!(
            "report_handler::{{{{closure}}}} (tests/axum_service.rs:{BLOCKING_LINE})"
        )),
        "{stack}"
    );
}

async fn short_block_handler() -> &'static str {
    std::thread::sleep(Duration::from_millis(60));
    "short"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_alone_reports_every_short_block_once_while_other_requests_run() {
    let guard = common::exclusive(|| taskscope::Builder::new().no_server());
    let app = app().route("/short", get(short_block_handler));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();

    // Fast requests all along, on the worker the blocks leave free.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let (client, stop) = (client.clone(), stop.clone());
        tokio::spawn(async move {
            let mut sent = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                get_body(&client, format!("http://{addr}/fast")).await;
                sent += 1;
            }
            sent
        })
    };
    for _ in 0..4 {
        assert_eq!(
            get_body(&client, format!("http://{addr}/short")).await,
            "short"
        );
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(load.await.unwrap() > 0);

    // Its samples symbolised, the last block's warning is there before the final snapshot.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let snap = guard.finish().expect("a final snapshot");
    let blocked: Vec<_> = blocked(&snap)
        .into_iter()
        .filter(|w| {
            !w.location
                .as_deref()
                .unwrap_or("")
                .contains("report_handler")
        })
        .collect();
    assert_eq!(blocked.len(), 4, "{blocked:#?}");
    for w in blocked {
        // How long each block lasted is dated from tokio's counters (the scan that last saw them
        // move), so under load it reads short by up to a scan period: not asserted, as no time is.
        assert!(w.duration_ns.is_some_and(|d| d > 0), "{w:#?}");
        let location = w.location.as_deref().unwrap_or_else(|| panic!("{w:#?}"));
        assert!(location.contains("short_block_handler"), "{location}");
    }
}
