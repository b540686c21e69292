//! `lost_waker` and `self_wakes` from taskscope's own instrumentation: a task that awaits a
//! future which drops its waker is reported while it is stuck and the warning ends when it is
//! aborted; tasks that wait on a channel, a timer, a lock, a join or a `Notify` — with a waker
//! held there — stay silent however long they wait. A task that wakes itself in a loop is
//! reported while it spins; one that waits for a timer between rounds is not. On the
//! current-thread and the multi-thread runtime.

mod common;

use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use taskscope::WarningKind;

fn guard() -> taskscope::Guard {
    common::exclusive(|| taskscope::Builder::new().no_server())
}

/// Warnings of `kind` about the task named `name`, as (ongoing, message).
fn warnings(kind: WarningKind, name: &str) -> Vec<(bool, String)> {
    taskscope::snapshot()
        .warnings_of(kind)
        .filter(|w| w.task_name.as_deref() == Some(name))
        .map(|w| (w.ongoing, w.message.clone()))
        .collect()
}

/// Waits (up to 5 s) until a warning of `kind` about `name` is there.
async fn until_warned(kind: WarningKind, name: &str) -> Vec<(bool, String)> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let seen = warnings(kind, name);
        if !seen.is_empty() || Instant::now() > deadline {
            return seen;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A future that looks at its waker, clones it, drops the clone and returns `Pending`: nothing
/// can ever wake the task awaiting it.
struct DropsItsWaker;

impl Future for DropsItsWaker {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        drop(cx.waker().clone());
        Poll::Pending
    }
}

fn a_task_with_no_waker_left_is_reported_live(multi: bool) {
    let _guard = guard();
    common::runtime(multi).block_on(async {
        // A few rounds of real work first, then the future that loses the waker.
        let stuck = taskscope::spawn_named("forgetful", async {
            for _ in 0..3 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            DropsItsWaker.await;
        });
        let seen = until_warned(WarningKind::LostWaker, "forgetful").await;
        assert_eq!(seen.len(), 1, "{seen:?}");
        let (ongoing, message) = &seen[0];
        assert!(*ongoing, "raised while it is stuck: {message}");
        assert!(message.contains("wakers.rs:"), "the spawn line: {message}");
        assert!(message.contains("no waker left"), "{message}");
        let w = taskscope::snapshot()
            .warnings_of(WarningKind::LostWaker)
            .find(|w| w.task_name.as_deref() == Some("forgetful"))
            .cloned()
            .unwrap();
        assert!(w.duration_ns.unwrap() >= 900_000_000, "{w:?}");
        assert!(w.hint().contains("waker"), "a fix hint: {}", w.hint());
        // Aborted, it ends, and so does the warning (at the next second's check).
        stuck.abort();
        let _ = stuck.await;
        tokio::time::sleep(Duration::from_millis(1_300)).await;
        let after = warnings(WarningKind::LostWaker, "forgetful");
        assert_eq!(after.len(), 1, "{after:?}");
        assert!(!after[0].0, "ended: {}", after[0].1);
        assert!(after[0].1.contains("then it ended"), "{}", after[0].1);
    });
}

fn tasks_whose_waker_is_held_are_silent(multi: bool) {
    let _guard = guard();
    common::runtime(multi).block_on(async {
        let (_tx, rx) = tokio::sync::oneshot::channel::<()>();
        let receiver = taskscope::spawn_named("receiver", async move {
            let _ = rx.await;
        });
        let sleeper = taskscope::spawn_named("sleeper", async {
            tokio::time::sleep(Duration::from_secs(30)).await;
        });
        let lock = Arc::new(taskscope::sync::Mutex::new(0u32));
        let held = lock.clone().lock_owned().await;
        let waiter = taskscope::spawn_named("lock-waiter", {
            let lock = lock.clone();
            async move {
                *lock.lock().await += 1;
            }
        });
        let notify = Arc::new(tokio::sync::Notify::new());
        let notified = taskscope::spawn_named("notified", {
            let notify = notify.clone();
            async move { notify.notified().await }
        });
        let joiner = taskscope::spawn_named("joiner", async move {
            let _ = sleeper.await;
        });
        // A task polled often (every 2 ms, more often than the sample interval) that then
        // waits on a channel: its last wakers are the runtime's, and one is held.
        let (tick_tx, mut tick_rx) = tokio::sync::mpsc::channel::<()>(1);
        let busy_then_waiting = taskscope::spawn_named("busy-then-waiting", async move {
            for _ in 0..200 {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            tick_rx.recv().await;
        });
        tokio::time::sleep(Duration::from_millis(3_500)).await;
        for name in [
            "receiver",
            "sleeper",
            "lock-waiter",
            "notified",
            "joiner",
            "busy-then-waiting",
        ] {
            let seen = warnings(WarningKind::LostWaker, name);
            assert!(seen.is_empty(), "{name}: {seen:?}");
        }
        // All of them can still be woken.
        drop(held);
        waiter.await.unwrap();
        notify.notify_one();
        notified.await.unwrap();
        drop(_tx);
        receiver.await.unwrap();
        tick_tx.send(()).await.unwrap();
        busy_then_waiting.await.unwrap();
        joiner.abort();
        assert_eq!(*lock.lock().await, 1);
    });
}

fn a_self_waking_loop_is_reported_while_it_spins(multi: bool) {
    let _guard = guard();
    common::runtime(multi).block_on(async {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let spinner = taskscope::spawn_named("spinner", {
            let stop = stop.clone();
            // Polls until told to stop, waking itself each time instead of waiting.
            poll_fn(move |cx| {
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    return Poll::Ready(());
                }
                std::thread::sleep(Duration::from_micros(50));
                cx.waker().wake_by_ref();
                Poll::Pending
            })
        });
        let seen = until_warned(WarningKind::SelfWakes, "spinner").await;
        assert_eq!(seen.len(), 1, "{seen:?}");
        let (ongoing, message) = &seen[0];
        assert!(*ongoing, "{message}");
        assert!(message.contains("wakers.rs:"), "the spawn line: {message}");
        assert!(message.contains("woke itself"), "{message}");
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        spinner.await.unwrap();
        tokio::time::sleep(Duration::from_millis(2_300)).await;
        let after = warnings(WarningKind::SelfWakes, "spinner");
        assert_eq!(after.len(), 1, "{after:?}");
        assert!(!after[0].0, "stopped: {}", after[0].1);
    });
}

fn a_loop_that_waits_between_rounds_is_silent(multi: bool) {
    let _guard = guard();
    common::runtime(multi).block_on(async {
        let ticker = taskscope::spawn_named("ticker", async {
            let mut interval = tokio::time::interval(Duration::from_millis(2));
            for _ in 0..1_200 {
                interval.tick().await;
            }
        });
        // tokio's `yield_now` hands the wake to the runtime after the poll: a cooperative
        // yield between chunks of work, not a self-wake.
        let yielder = taskscope::spawn_named("yielder", async {
            let until = Instant::now() + Duration::from_millis(2_500);
            while Instant::now() < until {
                std::thread::sleep(Duration::from_micros(50));
                tokio::task::yield_now().await;
            }
        });
        ticker.await.unwrap();
        yielder.await.unwrap();
        for name in ["ticker", "yielder"] {
            let seen = warnings(WarningKind::SelfWakes, name);
            assert!(seen.is_empty(), "{name}: {seen:?}");
            let seen = warnings(WarningKind::LostWaker, name);
            assert!(seen.is_empty(), "{name}: {seen:?}");
        }
    });
}

#[test]
fn lost_waker_is_reported_live_on_a_current_thread_runtime() {
    a_task_with_no_waker_left_is_reported_live(false);
}

#[test]
fn lost_waker_is_reported_live_on_a_multi_thread_runtime() {
    a_task_with_no_waker_left_is_reported_live(true);
}

#[test]
fn waiting_with_a_held_waker_is_silent_on_a_current_thread_runtime() {
    tasks_whose_waker_is_held_are_silent(false);
}

#[test]
fn waiting_with_a_held_waker_is_silent_on_a_multi_thread_runtime() {
    tasks_whose_waker_is_held_are_silent(true);
}

#[test]
fn self_wakes_are_reported_while_they_go_on_on_a_current_thread_runtime() {
    a_self_waking_loop_is_reported_while_it_spins(false);
}

#[test]
fn self_wakes_are_reported_while_they_go_on_on_a_multi_thread_runtime() {
    a_self_waking_loop_is_reported_while_it_spins(true);
}

#[test]
fn waiting_between_rounds_is_silent_on_a_current_thread_runtime() {
    a_loop_that_waits_between_rounds_is_silent(false);
}

#[test]
fn waiting_between_rounds_is_silent_on_a_multi_thread_runtime() {
    a_loop_that_waits_between_rounds_is_silent(true);
}
