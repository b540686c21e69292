//! Shared by the integration tests: a layer that captures taskscope's `tracing` events, and a
//! future that wakes itself.
#![allow(dead_code)] // each test file uses a part of it

use std::sync::{Arc, Mutex};
use std::time::Instant;

use tracing_subscriber::layer::Context;
use tracing_subscriber::Layer;

/// One captured event: when it was emitted, its target and its message.
#[derive(Clone, Debug)]
pub struct Event {
    pub at: Instant,
    pub target: String,
    pub message: String,
}

/// A layer that keeps every event.
#[derive(Clone, Default)]
pub struct Captured(pub Arc<Mutex<Vec<Event>>>);

impl Captured {
    /// The events so far.
    pub fn events(&self) -> Vec<Event> {
        self.0.lock().unwrap().clone()
    }
}

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
        self.0.lock().unwrap().push(Event {
            at: Instant::now(),
            target: event.metadata().target().to_string(),
            message: msg.0,
        });
    }
}

/// Wakes itself through its context's waker `n` times (returning `Pending`), then finishes.
pub struct SelfWaking(pub u32);

impl std::future::Future for SelfWaking {
    type Output = ();
    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        if self.0 == 0 {
            return std::task::Poll::Ready(());
        }
        self.0 -= 1;
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    }
}
