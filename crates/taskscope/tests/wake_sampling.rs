//! Sampling windows (`Builder::sample_interval`): with the default interval a task polled
//! less often than once per interval has every wake's scheduled delay and every poll measured, a
//! busier one about one wake and one or two polls per interval; polls, wakes and self-wakes stay
//! exact either way, busy time is scaled from the timed polls. (Every test here runs under one
//! Guard with the default interval, 1 ms.)

mod common;
use common::{current_thread, multi_thread, SelfWaking};

use std::sync::OnceLock;
use std::time::{Duration, Instant};

fn guard() {
    static GUARD: OnceLock<taskscope::Guard> = OnceLock::new();
    GUARD.get_or_init(|| {
        // The environment cannot change the interval under test.
        std::env::remove_var("TASKSCOPE_SAMPLE_US");
        std::env::remove_var("TASKSCOPE_WAKE_SAMPLE_US");
        taskscope::Builder::new().no_server().init()
    });
}

fn task(name: &str) -> taskscope::Task {
    taskscope::snapshot()
        .tasks
        .iter()
        .find(|t| t.name == name)
        .cloned()
        .unwrap_or_else(|| panic!("no task {name}"))
}

#[test]
fn a_task_woken_less_often_than_the_interval_has_every_wake_measured() {
    guard();
    let rt = current_thread();
    rt.block_on(async {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<u32>(1);
        let consumer = taskscope::spawn_named("slow-consumer", async move {
            let mut n = 0;
            while rx.recv().await.is_some() {
                n += 1;
            }
            n
        });
        for i in 0..20 {
            // Each message comes at least 10 ms after the last: every poll opens a window.
            // (An idle thread's clock reading is refreshed when the watchdog, scanning every
            // 2 ms, sees it idle; 3 ms gaps failed once when a loaded machine delayed scans.)
            tokio::time::sleep(Duration::from_millis(10)).await;
            tx.send(i).await.unwrap();
        }
        drop(tx);
        assert_eq!(consumer.await.unwrap(), 20);
    });
    let t = task("slow-consumer");
    // A wake per message (the last one may also see the channel closed), each measured.
    assert!(t.wakes >= 20 && t.wakes == t.polls - 1, "{t:?}");
    assert_eq!(t.scheduled_ns.count(), t.wakes, "{t:?}");
    assert_eq!(t.poll_ns.count(), t.polls, "every poll timed: {t:?}");
}

#[test]
fn a_busy_task_samples_its_wakes_and_keeps_exact_counts() {
    guard();
    let rt = current_thread();
    let started = Instant::now();
    let yields = 200_000;
    rt.block_on(async {
        taskscope::spawn_named("busy-yielder", async move {
            for _ in 0..yields {
                tokio::task::yield_now().await;
            }
        })
        .await
        .unwrap();
    });
    let elapsed = started.elapsed();
    let t = task("busy-yielder");
    assert_eq!((t.polls, t.wakes), (yields + 1, yields), "{t:?}");
    let stamped = t.scheduled_ns.count();
    // The first poll opens a window; later ones open one at least 1 ms (of taskscope's clock,
    // calibrated against the OS clock: 5 % of slack) after the last did.
    let most = (elapsed.as_secs_f64() * 1000.0 * 1.05) as u64 + 2;
    // Timed: the first poll, those that close windows, and one in 65 on the thread (the thread
    // refreshes its clock reading; this task is the only one on it).
    let timed = t.poll_ns.count();
    assert!(
        (1..=2 * most + t.polls / 65 + 2).contains(&timed),
        "{timed} timed polls of {} in {elapsed:?}",
        t.polls
    );
    assert!(timed < t.polls / 10, "{timed} timed polls of {}", t.polls);
    // Busy time is the timed polls' sum scaled to all polls.
    assert!(t.busy_ns >= t.poll_ns.sum, "{t:?}");
    // More than the first poll's window: windows opened by untimed polls stamp wakes too.
    assert!(
        (3..=most).contains(&stamped),
        "{stamped} stamped wakes in {elapsed:?} ({} polls)",
        t.polls
    );
    // Each measured delay is a real wake-to-poll time: never more than the whole run.
    assert!(t.scheduled_ns.max <= elapsed.as_nanos() as u64);
}

#[test]
fn self_wakes_are_counted_outside_windows_too() {
    guard();
    let rt = current_thread();
    rt.block_on(async {
        taskscope::spawn_named("busy-self-waker", SelfWaking(100_000))
            .await
            .unwrap();
    });
    let t = task("busy-self-waker");
    assert_eq!(
        (t.polls, t.wakes, t.self_wakes),
        (100_001, 100_000, 100_000)
    );
    // A self-wake in a poll that opened a window is that window's wake: sampled like other
    // wakes, in more windows than the first poll's.
    assert!(
        (2..100_000).contains(&t.scheduled_ns.count()),
        "{} measured",
        t.scheduled_ns.count()
    );
}

#[test]
fn a_waker_cloned_outside_a_window_still_wakes_the_task() {
    guard();
    let rt = multi_thread();
    rt.block_on(async {
        let notify = std::sync::Arc::new(tokio::sync::Notify::new());
        let waiter = {
            let notify = notify.clone();
            taskscope::spawn_named("waiter", async move {
                // Busy first, so that later polls fall outside windows, then wait on clones of
                // the waker made in those polls; each notification must still arrive.
                for _ in 0..10_000 {
                    tokio::task::yield_now().await;
                }
                for _ in 0..100 {
                    notify.notified().await;
                }
            })
        };
        while !waiter.is_finished() {
            notify.notify_one();
            tokio::task::yield_now().await;
        }
        waiter.await.unwrap();
    });
    let t = task("waiter");
    assert_eq!(t.outcome, Some(taskscope::Outcome::Completed));
    assert_eq!(t.wakes, t.polls - 1);
}
