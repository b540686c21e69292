//! `taskscope::layer()` names the span a blocked poll is in, and every warning is also a
//! `tracing` event under target `taskscope`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tracing::Instrument;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<(String, String)>>>);

impl<S: tracing::Subscriber> Layer<S> for Captured {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        struct Msg(String);
        impl tracing::field::Visit for Msg {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                if field.name() == "message" {
                    self.0 = format!("{value:?}");
                }
            }
        }
        let mut msg = Msg(String::new());
        event.record(&mut msg);
        self.0
            .lock()
            .unwrap()
            .push((event.metadata().target().to_string(), msg.0));
    }
}

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
    let events = captured.0.lock().unwrap().clone();
    assert!(
        events.iter().any(|(target, msg)| target == "taskscope"
            && msg.contains("handler")
            && msg.contains("blocked")),
        "{events:?}"
    );
}
