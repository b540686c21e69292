//! Shared by the integration tests: a layer that captures taskscope's `tracing` events, a
//! future that wakes itself, runtimes, one Guard at a time, snapshot polling and the blocking
//! calls of the blocked-worker tests.
#![allow(dead_code)] // each test file uses a part of it

pub mod stream;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use taskscope::{Snapshot, Warning, WarningKind};

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

/// A 2-worker multi-thread runtime.
pub fn multi_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A 2-worker multi-thread runtime (`multi`) or a current-thread one.
pub fn runtime(multi: bool) -> tokio::runtime::Runtime {
    match multi {
        true => multi_thread(),
        false => current_thread(),
    }
}

/// Starts taskscope, waiting while another test of this binary has it running (one Guard per
/// process at a time).
pub fn exclusive(builder: impl Fn() -> taskscope::Builder) -> taskscope::Guard {
    loop {
        match builder().try_init() {
            Ok(guard) => return guard,
            Err(taskscope::Error::AlreadyRunning) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => panic!("{e}"),
        }
    }
}

/// A current-thread runtime.
pub fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Takes snapshots until `f` finds something in one, for at most `timeout`.
pub fn wait_for<T>(timeout: Duration, mut f: impl FnMut(&Snapshot) -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Some(found) = f(&taskscope::snapshot()) {
            return Some(found);
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    None
}

/// The `blocked_worker` warning of the task named `task`, if any.
pub fn blocked_of<'a>(snap: &'a Snapshot, task: &str) -> Option<&'a Warning> {
    snap.warnings_of(WarningKind::BlockedWorker)
        .find(|w| w.task_name.as_deref() == Some(task))
}

/// Blocks the calling thread in a sleep for 200 ms.
pub fn sleep_200ms() {
    std::thread::sleep(Duration::from_millis(200));
}

/// Blocks the calling thread in a busy loop for 200 ms.
pub fn spin_200ms() {
    let start = Instant::now();
    let mut x = 0u64;
    while start.elapsed() < Duration::from_millis(200) {
        x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
    }
}
