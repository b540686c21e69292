//! `taskscope::hooks`: with `--cfg tokio_unstable`, tasks spawned with plain `tokio::spawn` are
//! timed, named by their spawn location, and a worker one of them blocks is blamed on it.
//! (Run by CI with `RUSTFLAGS="--cfg tokio_unstable"`; without it this file is empty.)
#![cfg(tokio_unstable)]

use std::sync::Mutex;
use std::time::Duration;

use taskscope::{TaskKind, WarningKind};

/// One test at a time: taskscope is process-global.
static EXCLUSIVE: Mutex<()> = Mutex::new(());

fn hooked_runtime() -> tokio::runtime::Runtime {
    taskscope::hooks(
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all(),
    )
    .build()
    .unwrap()
}

/// The spawn location of the yielding tasks (asserted as their group's location).
const YIELDERS_LINE: u32 = line!() + 4;
fn spawn_yielders() -> Vec<tokio::task::JoinHandle<()>> {
    (0..50)
        .map(|_| {
            tokio::spawn(async {
                for _ in 0..4 {
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect()
}

#[test]
fn plain_tokio_spawns_are_timed_and_a_blocking_one_is_blamed() {
    let _one = EXCLUSIVE.lock().unwrap_or_else(|e| e.into_inner());
    let runtime = hooked_runtime();
    let snap = runtime.block_on(async {
        let guard = taskscope::Builder::new()
            .no_server()
            .blocked_threshold(Duration::from_millis(20))
            .init();
        for handle in spawn_yielders() {
            handle.await.unwrap();
        }
        // A library's task that blocks its worker.
        let blocker_line = line!() + 1;
        tokio::spawn(async { std::thread::sleep(Duration::from_millis(150)) })
            .await
            .unwrap();
        // tokio calls the after-poll hook (which reports the run's end) after the task's
        // completion woke this future: give it its moment before stopping.
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        while taskscope::snapshot()
            .warnings_of(WarningKind::BlockedWorker)
            .any(|w| w.ongoing)
            && std::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // An instrumented task on the hooked runtime is counted once, by taskscope::spawn.
        taskscope::spawn_named("instrumented", async {
            tokio::task::yield_now().await;
        })
        .await
        .unwrap();
        (guard.finish().unwrap(), blocker_line)
    });
    let (snap, blocker_line) = snap;

    let yielders = format!("hooks.rs:{YIELDERS_LINE}:");
    let group = snap
        .task_groups
        .iter()
        .find(|g| g.location.contains(&yielders))
        .unwrap_or_else(|| panic!("no group at {yielders}: {:#?}", snap.task_groups));
    assert_eq!(
        (group.kind, group.spawned, group.completed),
        (TaskKind::Async, 50, 50)
    );
    // Five runs each: four yields and the one that completes.
    assert_eq!(group.polls, 250, "{group:#?}");

    let instrumented = snap.group("instrumented").unwrap();
    assert_eq!((instrumented.spawned, instrumented.polls), (1, 2));
    let total: u64 = snap.task_groups.iter().map(|g| g.spawned).sum();
    assert_eq!(total, 52, "{:#?}", snap.task_groups);

    let blocker = format!("hooks.rs:{blocker_line}:");
    let blocked: Vec<_> = snap.warnings_of(WarningKind::BlockedWorker).collect();
    assert_eq!(blocked.len(), 1, "{blocked:#?}");
    assert!(
        blocked[0]
            .location
            .as_deref()
            .unwrap_or("")
            .contains(&blocker),
        "{:#?}",
        blocked[0]
    );
    assert!(
        blocked[0].message.contains("by one poll of task"),
        "{}",
        blocked[0].message
    );
    assert!(!blocked[0].message.contains("not spawned through taskscope"));
}

#[test]
fn outcomes_of_hooked_tasks_panicked_and_cancelled() {
    let _one = EXCLUSIVE.lock().unwrap_or_else(|e| e.into_inner());
    let runtime = hooked_runtime();
    let snap = runtime.block_on(async {
        let guard = taskscope::Builder::new().no_server().init();
        let panicking_line = line!() + 1;
        let panicked = tokio::spawn(async { panic!("hooked panic") });
        assert!(panicked.await.unwrap_err().is_panic());
        let idle_line = line!() + 1;
        let idle = tokio::spawn(tokio::time::sleep(Duration::from_secs(60)));
        tokio::time::sleep(Duration::from_millis(20)).await;
        idle.abort();
        assert!(idle.await.unwrap_err().is_cancelled());
        let snap = guard.finish().unwrap();
        (snap, panicking_line, idle_line)
    });
    let (snap, panicking_line, idle_line) = snap;
    let at = |line: u32| {
        let place = format!("hooks.rs:{line}:");
        snap.task_groups
            .iter()
            .find(|g| g.location.contains(&place))
            .unwrap_or_else(|| panic!("no group at {place}: {:#?}", snap.task_groups))
    };
    let panicked = at(panicking_line);
    assert_eq!((panicked.panicked, panicked.completed), (1, 0));
    let warning = snap
        .warnings_of(WarningKind::TaskPanicked)
        .next()
        .expect("a task_panicked warning");
    assert!(
        warning.message.contains("hooked panic"),
        "{}",
        warning.message
    );
    // An aborted idle task: tokio runs its cancellation as a run of the task, which the hooks
    // cannot tell from a completion (documented).
    let idle = at(idle_line);
    assert_eq!(idle.spawned, 1);
    assert_eq!(idle.completed + idle.cancelled, 1);
}

#[test]
fn without_a_guard_the_hooks_record_nothing() {
    let _one = EXCLUSIVE.lock().unwrap_or_else(|e| e.into_inner());
    let runtime = hooked_runtime();
    runtime.block_on(async {
        for handle in spawn_yielders() {
            handle.await.unwrap();
        }
        let guard = taskscope::Builder::new().no_server().init();
        let snap = guard.finish().unwrap();
        assert!(
            snap.task_groups.iter().all(|g| g.spawned == 0),
            "{:#?}",
            snap.task_groups
        );
    });
}
