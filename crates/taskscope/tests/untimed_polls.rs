//! Untimed polls: a busy task's polls between its samples read no clock and show a marker in
//! their worker slot; the watchdog times them itself. Everything here runs under one Guard whose
//! sampling interval is an hour, so after its first two polls a task is timed only when its
//! thread refreshes its clock reading (one poll in 65 on that thread).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use taskscope::Outcome;

mod common;
use common::{blocked_of, current_thread, multi_thread, sleep_200ms, spin_200ms, wait_for};

fn guard() {
    static GUARD: OnceLock<taskscope::Guard> = OnceLock::new();
    GUARD.get_or_init(|| {
        taskscope::Builder::new()
            .no_server()
            .blocked_threshold(Duration::from_millis(10))
            .sample_interval(Duration::from_secs(3600))
            .init()
    });
}

/// On a current-thread runtime of its own, a task named `name` yields 10 times and blocks in its
/// 11th poll — untimed: polls 1 and 2 are timed (first poll, window close), the thread then
/// runs 64 untimed ones. The warning must be in a snapshot taken while the poll runs, and be
/// completed with the poll's duration: the watchdog dates the poll's start from the thread's
/// last clock reading (the end of poll 2, microseconds before), its end is timed.
fn check_untimed_block(name: &'static str, block: fn()) {
    guard();
    let rt = current_thread();
    let finished = Arc::new(AtomicBool::new(false));
    let flag = finished.clone();
    let watcher = std::thread::spawn(move || {
        let warning = wait_for(Duration::from_secs(2), |s| blocked_of(s, name).cloned());
        (warning, flag.load(Ordering::SeqCst))
    });
    let done_flag = finished.clone();
    let entered = rt.enter();
    let line = line!() + 1;
    let task = taskscope::spawn_named(name, async move {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        block();
        done_flag.store(true, Ordering::SeqCst);
    });
    drop(entered);
    rt.block_on(task).unwrap();

    let (warning, finished_then) = watcher.join().unwrap();
    let warning = warning.unwrap_or_else(|| panic!("no blocked_worker warning for {name}"));
    assert!(
        !finished_then,
        "warning only seen after the poll ended: {warning:?}"
    );
    assert!(warning.ongoing, "{warning:?}");
    assert!(warning.duration_ns.unwrap() >= 10_000_000, "{warning:?}");
    let location = warning.location.clone().unwrap();
    assert!(
        location.starts_with(&format!("{}:{}:", file!(), line)),
        "{location}"
    );

    let done = wait_for(Duration::from_secs(2), |s| {
        blocked_of(s, name).filter(|w| !w.ongoing).cloned()
    })
    .expect("warning completed after the poll ended");
    let ms = done.duration_ns.unwrap() / 1_000_000;
    // As in core.rs: the TSC against `Instant`, 199 ms is a correct reading.
    assert!((196..1_000).contains(&ms), "final duration {ms} ms");
    assert!(done.message.contains("was blocked for"), "{}", done.message);

    let snap = taskscope::snapshot();
    let t = snap.tasks.iter().find(|t| t.name == name).unwrap();
    assert_eq!(
        (t.polls, t.outcome),
        (11, Some(Outcome::Completed)),
        "{t:?}"
    );
    // Only polls 1 and 2 were timed: the blocking poll took the untimed path.
    assert_eq!(t.poll_ns.count(), 2, "{t:?}");
    // Measured by its own end and the watchdog's start, it is the task's longest poll and
    // most of its busy time, counted once.
    assert!(
        (196_000_000..1_000_000_000).contains(&t.poll_ns.max),
        "{t:?}"
    );
    assert!((196_000_000..1_000_000_000).contains(&t.busy_ns), "{t:?}");
}

#[test]
fn a_blocking_sleep_in_an_untimed_poll_is_reported_while_blocked() {
    check_untimed_block("untimed-sleep", sleep_200ms);
}

#[test]
fn a_busy_loop_in_an_untimed_poll_is_reported_while_blocked() {
    check_untimed_block("untimed-spin", spin_200ms);
}

/// On 2 workers the blocking poll is most likely untimed too (a worker times one poll in 65 of
/// its own, and the task may move): reported while blocked and completed either way.
#[test]
fn a_block_after_yields_is_reported_while_blocked_on_multi_thread() {
    guard();
    let rt = multi_thread();
    let name = "untimed-multi";
    let finished = Arc::new(AtomicBool::new(false));
    let flag = finished.clone();
    let task = rt.spawn(async move {
        taskscope::spawn_named(name, async move {
            for _ in 0..10 {
                tokio::task::yield_now().await;
            }
            sleep_200ms();
            flag.store(true, Ordering::SeqCst);
        })
        .await
        .unwrap()
    });
    let warning = wait_for(Duration::from_secs(2), |s| blocked_of(s, name).cloned())
        .expect("no blocked_worker warning");
    assert!(
        !finished.load(Ordering::SeqCst),
        "seen only after: {warning:?}"
    );
    assert!(warning.ongoing, "{warning:?}");
    rt.block_on(task).unwrap();
    let done = wait_for(Duration::from_secs(2), |s| {
        blocked_of(s, name).filter(|w| !w.ongoing).cloned()
    })
    .expect("warning completed after the poll ended");
    let ms = done.duration_ns.unwrap() / 1_000_000;
    assert!((196..1_000).contains(&ms), "final duration {ms} ms");
}

#[test]
fn counts_stay_exact_when_most_polls_are_untimed() {
    guard();
    let rt = multi_thread();
    rt.block_on(async {
        let tasks: Vec<_> = (0..1000)
            .map(|_| {
                taskscope::spawn_named("untimed-yielder", async {
                    for _ in 0..100 {
                        tokio::task::yield_now().await;
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    });
    let snap = taskscope::snapshot();
    let group = snap
        .task_groups
        .iter()
        .find(|g| g.name == "untimed-yielder")
        .unwrap();
    assert_eq!((group.spawned, group.completed), (1000, 1000), "{group:?}");
    assert_eq!(group.polls, 1000 * 101, "{group:?}");
    // Two timed polls per task (first poll, window close) and one in 65 of the rest.
    let timed = group.poll_ns.count();
    assert!(
        (2000..=2000 + 1000 * 99 / 60).contains(&timed),
        "{timed} timed polls"
    );
    assert!(group.busy_ns > group.poll_ns.sum, "{group:?}");
}
