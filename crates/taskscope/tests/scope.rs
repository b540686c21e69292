//! `taskscope::scope`: a future timed inside a task taskscope did not spawn (or did), with its
//! outcome, its latency, and the hazards inside it named after it — each with a safe twin that
//! stays silent.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{blocked_of, multi_thread, wait_for};
use taskscope::sync::Mutex;
use taskscope::{Outcome, TaskKind, WarningKind};

fn guard() -> taskscope::Guard {
    loop {
        match taskscope::Builder::new().no_server().try_init() {
            Ok(guard) => return guard,
            Err(taskscope::Error::AlreadyRunning) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => panic!("{e}"),
        }
    }
}

#[test]
fn outcomes_and_latency_of_scopes_in_plain_tokio_tasks() {
    let guard = guard();
    let rt = multi_thread();
    rt.block_on(async {
        // Completed, in tasks taskscope did not spawn.
        let mut handles = Vec::new();
        for _ in 0..50 {
            handles.push(tokio::spawn(taskscope::scope("work", async {
                tokio::time::sleep(Duration::from_millis(5)).await;
            })));
        }
        for h in handles {
            h.await.unwrap();
        }
        // Dropped before completion: a timeout.
        for _ in 0..4 {
            let slow = taskscope::scope("slow", tokio::time::sleep(Duration::from_secs(10)));
            assert!(tokio::time::timeout(Duration::from_millis(5), slow)
                .await
                .is_err());
        }
        // Panicked.
        let panicked = tokio::spawn(taskscope::scope("boom", async { panic!("scope panic") }));
        assert!(panicked.await.unwrap_err().is_panic());
    });
    let snap = guard.finish().unwrap();
    let work = snap.group("work").unwrap();
    assert_eq!(
        (work.kind, work.spawned, work.completed, work.cancelled),
        (TaskKind::Scope, 50, 50, 0)
    );
    let latency = &snap.scope("work").unwrap().latency_ns;
    assert_eq!(latency.count(), 50);
    assert!(latency.value_at_quantile(0.0) >= 5_000_000, "{latency:?}");
    let slow = snap.group("slow").unwrap();
    assert_eq!((slow.cancelled, slow.completed), (4, 0));
    let boom = snap.group("boom").unwrap();
    assert_eq!(boom.panicked, 1);
    let task = snap.tasks.iter().find(|t| t.name == "boom").unwrap();
    assert_eq!(task.outcome, Some(Outcome::Panicked));
    assert_eq!(task.panic_message.as_deref(), Some("scope panic"));
    // The panic is reported as for a task.
    assert_eq!(snap.warnings_of(WarningKind::TaskPanicked).count(), 1);
}

#[test]
fn a_block_inside_a_scope_names_the_innermost_scope_and_its_task_once() {
    let guard = guard();
    let rt = multi_thread();
    rt.block_on(async {
        taskscope::spawn_named("worker", async {
            taskscope::scope("outer", async {
                taskscope::scope("inner", async { common::sleep_200ms() }).await;
                // The safe twin: an asynchronous wait of the same length.
                taskscope::scope("waits", tokio::time::sleep(Duration::from_millis(200))).await;
            })
            .await;
        })
        .await
        .unwrap();
    });
    let w = wait_for(Duration::from_secs(2), |s| {
        blocked_of(s, "inner").filter(|w| !w.ongoing).cloned()
    })
    .expect("a blocked_worker naming the inner scope");
    assert!(
        w.message.contains("scope `inner` (created at ") && w.message.contains("in task `worker`"),
        "{}",
        w.message
    );
    assert!(w.duration_ns.unwrap() >= 190_000_000, "{w:?}");
    let snap = guard.finish().unwrap();
    // One block, one warning: not a second one for the enclosing task's poll.
    let blocked: Vec<_> = snap.warnings_of(WarningKind::BlockedWorker).collect();
    assert_eq!(blocked.len(), 1, "{blocked:#?}");
    assert_eq!(snap.group("waits").unwrap().completed, 1);
}

#[test]
fn a_lock_held_across_an_await_in_a_scope_is_reported_and_one_released_in_the_same_poll_is_not() {
    let guard = guard();
    let rt = multi_thread();
    let across = Arc::new(Mutex::named("scope-across", 0));
    let same_poll = Arc::new(Mutex::named("scope-same-poll", 0));
    rt.block_on(async {
        let (across, same_poll) = (across.clone(), same_poll.clone());
        tokio::spawn(async move {
            taskscope::scope("handler", async {
                let guard = across.lock().await;
                tokio::time::sleep(Duration::from_millis(20)).await;
                drop(guard);
            })
            .await;
            // Taken in an instrumented task's poll, released inside a scope in that same poll.
            taskscope::spawn(async move {
                let guard = same_poll.lock().await;
                taskscope::scope("releases", async move { drop(guard) }).await;
                tokio::task::yield_now().await;
            })
            .await
            .unwrap();
        })
        .await
        .unwrap();
    });
    let w = wait_for(Duration::from_secs(2), |s| {
        s.warnings_of(WarningKind::LockHeldAcrossAwait)
            .find(|w| w.message.contains("scope-across"))
            .cloned()
    })
    .expect("lock_held_across_await in the scope");
    assert_eq!(w.task_name.as_deref(), Some("handler"));
    // In a plain tokio task: the scope alone (no instrumented task around it).
    assert!(
        w.message
            .contains("held across an .await by scope `handler`, up to"),
        "{}",
        w.message
    );
    let snap = guard.finish().unwrap();
    let held: Vec<_> = snap.warnings_of(WarningKind::LockHeldAcrossAwait).collect();
    assert_eq!(held.len(), 1, "{held:#?}");
}

#[test]
fn a_long_wait_inside_a_scope_names_the_scope_and_its_task_and_a_short_one_is_silent() {
    let guard = loop {
        let builder = taskscope::Builder::new()
            .no_server()
            .long_wait_threshold(Duration::from_millis(60));
        match builder.try_init() {
            Ok(guard) => break guard,
            Err(taskscope::Error::AlreadyRunning) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => panic!("{e}"),
        }
    };
    let rt = multi_thread();
    let lock = Arc::new(Mutex::named("scope-waited", ()));
    rt.block_on(async {
        for (hold, scope) in [(300, "load-user"), (5, "quick")] {
            let (locked, is_locked) = tokio::sync::oneshot::channel();
            let holder = taskscope::spawn_named("holder", {
                let lock = lock.clone();
                async move {
                    let guard = lock.lock().await;
                    locked.send(()).unwrap();
                    tokio::time::sleep(Duration::from_millis(hold)).await;
                    drop(guard);
                }
            });
            is_locked.await.unwrap();
            let lock = lock.clone();
            taskscope::spawn_named("server", async move {
                taskscope::scope(scope, async move { drop(lock.lock().await) }).await;
            })
            .await
            .unwrap();
            holder.await.unwrap();
        }
    });
    let w = wait_for(Duration::from_secs(2), |s| {
        s.warnings_of(WarningKind::LongWait).next().cloned()
    })
    .expect("a long_wait");
    assert!(
        w.message
            .starts_with("scope `load-user` in task `server` has waited ")
            && w.message.contains("for lock `scope-waited`")
            && w.message.ends_with("held by task `holder`"),
        "{}",
        w.message
    );
    let snap = guard.finish().unwrap();
    // The 5 ms wait of the scope `quick` is under the threshold: one warning in all.
    let waits: Vec<_> = snap.warnings_of(WarningKind::LongWait).collect();
    assert_eq!(waits.len(), 1, "{waits:#?}");
}

#[test]
fn huge_and_empty_names_are_kept_bounded() {
    let guard = guard();
    let rt = multi_thread();
    rt.block_on(async {
        taskscope::scope("", async {}).await;
        taskscope::scope("x".repeat(1 << 20), async {}).await;
    });
    let snap = guard.finish().unwrap();
    assert_eq!(snap.group("(unnamed scope)").unwrap().completed, 1);
    let long = snap
        .task_groups
        .iter()
        .find(|g| g.name.starts_with("xxx"))
        .unwrap();
    assert_eq!(long.name.len(), taskscope::MAX_SCOPE_NAME);
}

#[test]
fn without_a_guard_a_scope_is_the_future_itself() {
    let rt = multi_thread();
    let out = rt.block_on(taskscope::scope("nothing", async { 7 }));
    assert_eq!(out, 7);
}
