//! `taskscope::layer()` names the span a blocked poll is in, and every warning is also a
//! `tracing` event under target `taskscope`.

mod common;

use std::time::{Duration, Instant};

use common::Captured;
use tracing::Instrument;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

#[test]
fn blocked_worker_names_the_current_span_and_is_logged() {
    let captured = Captured::default();
    tracing_subscriber::registry()
        .with(taskscope::layer())
        .with(captured.clone())
        .init();
    let _guard = taskscope::Builder::new()
        .blocked_threshold(Duration::from_millis(10))
        .init();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let path = "/users";
    rt.block_on(async {
        taskscope::spawn_named(
            "handler",
            async {
                std::thread::sleep(Duration::from_millis(100));
            }
            .instrument(tracing::info_span!("handle_request", path)),
        )
        .await
        .unwrap();
    });
    let deadline = Instant::now() + Duration::from_secs(2);
    let warning = loop {
        let snap = taskscope::snapshot();
        if let Some(w) = snap
            .warnings_of(taskscope::WarningKind::BlockedWorker)
            .find(|w| !w.ongoing)
        {
            break w.clone();
        }
        assert!(Instant::now() < deadline, "no blocked_worker warning");
        std::thread::sleep(Duration::from_millis(5));
    };
    assert_eq!(warning.span.as_deref(), Some("handle_request{path=/users}"));
    assert!(
        warning.message.contains("handle_request{path=/users}"),
        "{}",
        warning.message
    );
    let events = captured.events();
    assert!(
        events.iter().any(|e| e.target == "taskscope"
            && e.message.contains("handler")
            && e.message.contains("blocked")),
        "{events:?}"
    );
}
