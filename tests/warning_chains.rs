//! The chains of a `deadlock` and of a `long_wait`: when one is raised, taskscope dumps the
//! tasks it involves, and the snapshot, the JSON report (valid against its schema), Markdown,
//! HTML and the recording say where each waits — the `async fn` and the line of the lock it waits for.

mod common;

use std::sync::Arc;
use std::time::Duration;

use taskscope::sync::Mutex;
use taskscope::{Snapshot, WarningKind};

const SECOND_LOCK: u32 = line!() + 5;
async fn transfer(first: Arc<Mutex<u32>>, second: Arc<Mutex<u32>>) {
    let _a = first.lock().await;
    // Long enough for the other transfer to take its first lock.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let _b = second.lock().await;
}

/// Waits (up to 10 s) until `f` finds what it wants in a snapshot.
fn wait_for<T>(mut f: impl FnMut(&Snapshot) -> Option<T>) -> T {
    for _ in 0..200 {
        if let Some(found) = f(&taskscope::snapshot()) {
            return found;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("not found in 10 s: {:#?}", taskscope::snapshot().warnings);
}

/// The `(name, innermost frame's function, its line)` of each traced task of `warning`.
fn waits(snap: &Snapshot, warning: u64) -> Vec<(String, String, Option<u32>)> {
    snap.warning_chains
        .get(&warning)
        .into_iter()
        .flatten()
        .filter_map(|t| match &t.trace {
            taskscope::Trace::Suspended { chains } => chains[0]
                .frames
                .iter()
                .find(|f| {
                    f.file
                        .as_deref()
                        .is_some_and(|p| p.ends_with("warning_chains.rs"))
                })
                .map(|f| (t.name.clone(), f.function.clone(), f.line)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_deadlock_says_where_each_of_its_tasks_waits_in_every_report() {
    let dir = std::env::temp_dir().join(format!("taskscope-chains-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let recording = dir.join("deadlock.tsrec");
    let guard = common::exclusive(|| taskscope::Builder::new().no_server().record(&recording));
    let rt = common::two_workers();
    let (a, b) = (
        Arc::new(Mutex::named("account:alice", 0)),
        Arc::new(Mutex::named("account:bob", 0)),
    );
    let tasks = rt.block_on(async {
        vec![
            taskscope::spawn_named("alice->bob", transfer(a.clone(), b.clone())),
            taskscope::spawn_named("bob->alice", transfer(b.clone(), a.clone())),
        ]
    });
    let deadlock = wait_for(|s| s.warnings_of(WarningKind::Deadlock).next().map(|w| w.id));
    let found = wait_for(|s| {
        let w = waits(s, deadlock);
        (w.len() == 2).then_some(w)
    });
    for (name, function, line) in &found {
        assert!(function.ends_with("transfer"), "{name}: {function}");
        assert_eq!(*line, Some(SECOND_LOCK), "{name}");
    }
    let snap = taskscope::snapshot();
    let json: serde_json::Value =
        serde_json::from_str(&taskscope_report::Format::Json.render(&snap)).unwrap();
    common::validate(taskscope_report::json::JSON_SCHEMA, &json).unwrap();
    let row = json["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["kind"] == "deadlock")
        .unwrap();
    assert_eq!(row["chains"].as_array().unwrap().len(), 2, "{row}");
    let at = format!("warning_chains.rs:{SECOND_LOCK})");
    let markdown = taskscope_report::Format::Markdown.render(&snap);
    assert!(
        markdown.contains("waits in `") && markdown.contains(&at),
        "{markdown}"
    );
    let html = taskscope_report::Format::Html.render(&snap);
    assert!(html.contains(" waits in <code>") && html.contains(&at));
    for task in tasks {
        task.abort();
    }
    // And the recording has them, read back as `taskscope report` and `replay` do.
    std::thread::sleep(Duration::from_millis(300));
    drop(guard);
    assert_eq!(
        waits(&common::read_recording(&recording), deadlock).len(),
        2
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

const WAITER_LOCK: u32 = line!() + 2;
async fn pay(account: Arc<Mutex<u32>>) {
    *account.lock().await += 1;
}

#[test]
fn a_long_wait_says_where_the_waiter_waits() {
    let _guard = common::exclusive(|| {
        taskscope::Builder::new()
            .no_server()
            .long_wait_threshold(Duration::from_millis(100))
    });
    let rt = common::two_workers();
    let account = Arc::new(Mutex::named("account", 0));
    let (holder, waiter) = rt.block_on(async {
        let a = account.clone();
        let holder = taskscope::spawn_named("audit", async move {
            let _held = a.lock().await;
            tokio::time::sleep(Duration::from_millis(1500)).await;
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        let waiter = taskscope::spawn_named("pay", pay(account.clone()));
        (holder, waiter)
    });
    let long_wait = wait_for(|s| {
        s.warnings_of(WarningKind::LongWait)
            .find(|w| w.task_name.as_deref() == Some("pay"))
            .map(|w| w.id)
    });
    let found = wait_for(|s| {
        let w = waits(s, long_wait);
        w.iter().any(|(name, _, _)| name == "pay").then_some(w)
    });
    let (_, function, line) = found.iter().find(|(n, _, _)| n == "pay").unwrap();
    assert!(function.ends_with("pay"), "{function}");
    assert_eq!(*line, Some(WAITER_LOCK));
    // The wait ends as it would have: the payment goes through once the audit is done.
    rt.block_on(async {
        holder.await.unwrap();
        waiter.await.unwrap();
    });
    assert_eq!(*account.blocking_lock(), 1);
}
