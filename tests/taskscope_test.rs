//! `#[taskscope::test]`: each hazard fails its test with a message naming the kind, the line
//! and the fix, and its safe twin passes. Sixteen tests, half hazardous, are started at once
//! by the test harness (they take turns on the process's Guard), next to a plain test that
//! spawns blocking taskscope tasks the whole time: no test is charged with another's findings.

use std::sync::Arc;
use std::time::Duration;

use taskscope::sync::Mutex;
use taskscope::testing::Config;
use taskscope::WarningKind;

// Blocking a worker.

#[taskscope::test]
#[should_panic(expected = "blocked_worker")]
async fn a_blocking_call_fails_the_test() {
    std::thread::sleep(Duration::from_millis(60));
}

#[taskscope::test]
async fn the_async_sleep_passes() {
    tokio::time::sleep(Duration::from_millis(60)).await;
}

#[taskscope::test(blocked_threshold = "200ms")]
async fn a_block_under_the_tests_own_threshold_passes() {
    std::thread::sleep(Duration::from_millis(30));
}

// A lock held across an `.await`.

#[taskscope::test]
#[should_panic(expected = "was held across an .await")]
async fn a_guard_across_an_await_fails_the_test() {
    let cache = Mutex::named("cache", Vec::new());
    let mut entries = cache.lock().await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    entries.push(1);
}

#[taskscope::test]
async fn copying_out_before_the_await_passes() {
    let cache = Mutex::named("cache", vec![1]);
    let first = cache.lock().await[0];
    tokio::time::sleep(Duration::from_millis(5)).await;
    cache.lock().await.push(first);
}

#[taskscope::test(allow(lock_held_across_await))]
async fn an_allowed_kind_passes() {
    let cache = Mutex::named("cache", Vec::new());
    let mut entries = cache.lock().await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    entries.push(1);
}

// Lock order.

#[taskscope::test]
#[should_panic(expected = "lock_order_inversion")]
async fn locks_taken_in_both_orders_fail_the_test() {
    let (a, b) = (Mutex::named("a", 0), Mutex::named("b", 0));
    {
        let _a = a.lock().await;
        let _b = b.lock().await;
    }
    let _b = b.lock().await;
    let _a = a.lock().await;
}

#[taskscope::test]
async fn one_lock_order_passes() {
    let (a, b) = (Mutex::named("a", 0), Mutex::named("b", 0));
    for _ in 0..2 {
        let _a = a.lock().await;
        let _b = b.lock().await;
    }
}

// A detached task's panic, and tasks left running.

#[taskscope::test]
#[should_panic(expected = "task_panicked")]
async fn a_detached_panic_fails_the_test() {
    drop(taskscope::spawn_named("fire-and-forget", async {
        panic!("nobody awaits me");
    }));
    // Until the panic is over (printing a backtrace can take a while in a debug build).
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let snapshot = taskscope::snapshot();
        if snapshot
            .warnings_of(WarningKind::TaskPanicked)
            .any(|w| w.message.contains("nobody awaits me"))
        {
            break;
        }
    }
}

// Its safe twin: a panic the test awaits and sees is no finding.
#[taskscope::test]
async fn an_awaited_panic_passes() {
    let joined = taskscope::spawn(async { panic!("handled") }).await;
    assert!(joined.unwrap_err().is_panic());
}

// A panic of a detached task that a test expects: allowed.
#[taskscope::test(allow(task_panicked))]
async fn an_expected_detached_panic_is_allowed() {
    drop(taskscope::spawn(async { panic!("expected") }));
    tokio::time::sleep(Duration::from_millis(200)).await;
}

#[taskscope::test]
#[should_panic(expected = "tasks_alive_at_exit")]
async fn a_task_left_running_fails_the_test() {
    drop(taskscope::spawn_named("forever", async {
        loop {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }));
}

#[taskscope::test]
async fn a_task_stopped_before_the_end_passes() {
    let worker = taskscope::spawn_named("worker", async {
        loop {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    worker.abort();
    let _ = worker.await;
}

// A stale read-modify-write.

#[taskscope::test]
#[should_panic(expected = "stale_update")]
async fn a_read_await_write_race_fails_the_test() {
    let balance = Arc::new(Mutex::named("balance", 0u64));
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let balance = balance.clone();
            taskscope::spawn(async move {
                for _ in 0..10 {
                    let current = *balance.lock().await;
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    *balance.lock().await = current + 1;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
}

#[taskscope::test]
async fn the_update_in_one_critical_section_passes() {
    let balance = Arc::new(Mutex::named("balance", 0u64));
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let balance = balance.clone();
            taskscope::spawn(async move {
                for _ in 0..10 {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    *balance.lock().await += 1;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(*balance.lock().await, 40);
}

// Paused time: virtual jumps are not blocks; a real block still is.

#[taskscope::test(flavor = "current_thread", start_paused = true)]
async fn an_hour_of_paused_time_passes() {
    tokio::time::sleep(Duration::from_secs(3600)).await;
}

#[taskscope::test(flavor = "current_thread", start_paused = true)]
#[should_panic(expected = "blocked_worker")]
async fn a_real_block_under_paused_time_fails_the_test() {
    tokio::time::sleep(Duration::from_secs(3600)).await;
    std::thread::sleep(Duration::from_millis(60));
}

// A deadlock, a lost waker, and a kind made fatal.

#[taskscope::test]
#[should_panic(expected = "the test deadlocked")]
async fn a_deadlock_fails_the_test_instead_of_hanging_it() {
    let (a, b) = (
        Arc::new(Mutex::named("a", 0)),
        Arc::new(Mutex::named("b", 0)),
    );
    let (a2, b2) = (a.clone(), b.clone());
    let other = taskscope::spawn(async move {
        let _b = b2.lock().await;
        tokio::time::sleep(Duration::from_millis(30)).await;
        let _a = a2.lock().await;
    });
    let _a = a.lock().await;
    tokio::time::sleep(Duration::from_millis(30)).await;
    let _b = b.lock().await;
    let _ = other.await;
}

/// Returns `Pending` and keeps no waker: nothing can wake its task again.
struct DropsItsWaker;

impl std::future::Future for DropsItsWaker {
    type Output = ();
    fn poll(self: std::pin::Pin<&mut Self>, _: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        std::task::Poll::Pending
    }
}

#[taskscope::test]
#[should_panic(expected = "lost_waker")]
async fn a_task_nothing_can_wake_fails_the_test() {
    let stuck = taskscope::spawn_named("forgetful", DropsItsWaker);
    tokio::time::sleep(Duration::from_millis(3500)).await;
    stuck.abort();
}

#[taskscope::test(fail_on(long_wait))]
#[should_panic(expected = "long_wait")]
async fn a_kind_made_fatal_fails_the_test() {
    // A second on a lock counts once `long_wait` is fatal (the threshold is a second).
    let lock = Arc::new(Mutex::named("slow", 0));
    let held = lock.clone().lock_owned().await;
    let waiter = taskscope::spawn({
        let lock = lock.clone();
        async move { *lock.lock().await += 1 }
    });
    tokio::time::sleep(Duration::from_millis(1300)).await;
    drop(held);
    waiter.await.unwrap();
}

// The function form, and what its findings say.

#[test]
fn check_returns_each_finding_with_its_line_and_fix() {
    let findings = taskscope::check(Config::new("check_deadlock"), async {
        let (a, b) = (
            Arc::new(Mutex::named("alice", 0)),
            Arc::new(Mutex::named("bob", 0)),
        );
        let (a2, b2) = (a.clone(), b.clone());
        let one = taskscope::spawn_named("alice->bob", async move {
            let _a = a2.lock().await;
            tokio::time::sleep(Duration::from_millis(30)).await;
            let _b = b2.lock().await;
        });
        let two = taskscope::spawn_named("bob->alice", async move {
            let _b = b.lock().await;
            tokio::time::sleep(Duration::from_millis(30)).await;
            let _a = a.lock().await;
        });
        let _ = (one.await, two.await); // never: they deadlock
    });
    let kinds: Vec<WarningKind> = findings.warnings.iter().map(|w| w.kind).collect();
    assert!(kinds.contains(&WarningKind::Deadlock), "{findings}");
    // The deadlocked tasks never ended.
    assert!(kinds.contains(&WarningKind::TasksAliveAtExit), "{findings}");
    let report = findings.to_string();
    assert!(report.contains("taskscope found"), "{report}");
    assert!(report.contains("fix: "), "{report}");
    // Where each deadlocked task waits, at the line of the lock it waits for.
    for task in ["alice->bob", "bob->alice"] {
        assert!(
            report.contains(&format!("task `{task}` waits in")),
            "{report}"
        );
    }
    assert!(report.contains("taskscope_test.rs:"), "{report}");
    // Only this test's tasks: not the plain test's `elsewhere` ones running meanwhile.
    assert!(!report.contains("elsewhere"), "{report}");
}

/// Not a taskscope test: spawns blocking taskscope tasks for three seconds, instrumented
/// whenever another test's Guard runs. None of the tests above may be charged with them.
#[test]
fn blocking_tasks_elsewhere_in_the_process_are_no_tests_findings() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let until = std::time::Instant::now() + Duration::from_secs(3);
    rt.block_on(async {
        while std::time::Instant::now() < until {
            taskscope::spawn_named("elsewhere", async {
                std::thread::sleep(Duration::from_millis(30));
            })
            .await
            .unwrap();
        }
    });
}

/// Sixteen checks at once, on threads of their own, bodies overlapping in time: the eight that
/// block a worker each get exactly their own `blocked_worker`, the eight that do not get none.
#[test]
fn sixteen_tests_at_once_each_see_only_their_own_findings() {
    let barrier = Arc::new(std::sync::Barrier::new(16));
    let runs: Vec<_> = (0..16)
        .map(|i| {
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let name: &'static str = Box::leak(format!("parallel-{i}").into_boxed_str());
                let hazardous = i % 2 == 0;
                barrier.wait();
                let mut window = (std::time::Instant::now(), std::time::Instant::now());
                let findings = taskscope::check(Config::new(name), async {
                    let start = std::time::Instant::now();
                    if hazardous {
                        std::thread::sleep(Duration::from_millis(60));
                    }
                    tokio::time::sleep(Duration::from_millis(400)).await;
                    window = (start, std::time::Instant::now());
                });
                (name, hazardous, findings, window)
            })
        })
        .collect();
    let runs: Vec<_> = runs.into_iter().map(|r| r.join().unwrap()).collect();
    // They ran at the same time: every body started before any ended.
    let last_start = runs.iter().map(|r| r.3 .0).max().unwrap();
    let first_end = runs.iter().map(|r| r.3 .1).min().unwrap();
    assert!(last_start < first_end, "the bodies did not overlap");
    for (name, hazardous, findings, _) in &runs {
        if *hazardous {
            assert_eq!(findings.warnings.len(), 1, "{findings}");
            let w = &findings.warnings[0];
            assert_eq!(w.kind, WarningKind::BlockedWorker, "{findings}");
            assert!(w.message.contains(&format!("scope `{name}`")), "{findings}");
        } else {
            assert!(findings.is_clean(), "{findings}");
        }
    }
}

/// Tests with different blocked thresholds run at the same time (no waiting for each other):
/// a 30 ms block fails the test whose threshold is 5 ms and passes the one whose threshold is
/// 200 ms, while both run.
#[test]
fn tests_with_different_thresholds_run_at_once_each_by_its_own() {
    let barrier = Arc::new(std::sync::Barrier::new(2));
    let runs: Vec<_> = [("strict-5ms", "5ms"), ("lenient-200ms", "200ms")]
        .into_iter()
        .map(|(name, threshold)| {
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                let mut window = (std::time::Instant::now(), std::time::Instant::now());
                let mut config = Config::new(name);
                config.blocked_threshold = Some(threshold);
                let findings = taskscope::check(config, async {
                    let start = std::time::Instant::now();
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    std::thread::sleep(Duration::from_millis(30));
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    window = (start, std::time::Instant::now());
                });
                (name, findings, window)
            })
        })
        .collect();
    let runs: Vec<_> = runs.into_iter().map(|r| r.join().unwrap()).collect();
    assert!(
        runs[0].2 .0.max(runs[1].2 .0) < runs[0].2 .1.min(runs[1].2 .1),
        "the bodies did not overlap"
    );
    let (strict, lenient) = (&runs[0].1, &runs[1].1);
    assert_eq!(strict.warnings.len(), 1, "{strict}");
    assert_eq!(
        strict.warnings[0].kind,
        WarningKind::BlockedWorker,
        "{strict}"
    );
    assert!(lenient.is_clean(), "{lenient}");
}
