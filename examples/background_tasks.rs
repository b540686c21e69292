//! Background tasks, the guide's way and the careless way: a detached task whose panic nobody
//! sees, workers nobody stops before shutdown, and a task cancelled while it holds a
//! connection permit and waits for a lock — and what taskscope says about each.
//!
//! ```text
//! cargo run --example background_tasks
//! ```

use std::sync::Arc;
use std::time::Duration;

use taskscope::sync::{Mutex, Semaphore};
use taskscope::WarningKind;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let guard = taskscope::Builder::new().init();

    // 1. Fire and forget: the handle is dropped, so the panic is seen by no one.
    drop(taskscope::spawn_named("send-metrics", async {
        tokio::time::sleep(Duration::from_millis(10)).await;
        panic!("metrics endpoint refused the batch");
    }));

    // 2. Cancellation: a task holding a connection permit, waiting for the account lock, is
    // aborted. Its guard and permit are dropped with it: nothing leaks, nobody is left waiting.
    let pool = Arc::new(Semaphore::named("connections", 2));
    let account = Arc::new(Mutex::named("account", 0u64));
    let held = account.clone().lock_owned().await;
    let (p, a) = (pool.clone(), account.clone());
    let transfer = taskscope::spawn_named("transfer", async move {
        let _connection = p.acquire().await.unwrap();
        *a.lock().await += 1;
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    transfer.abort();
    let _ = transfer.await;
    drop(held);

    // 3. Workers started and never stopped: still running when the app shuts down.
    for i in 0..3 {
        taskscope::spawn_named("poll-queue", async move {
            loop {
                tokio::time::sleep(Duration::from_millis(5 + i)).await;
            }
        });
    }
    // The fix for 1 and 3: keep the handles (a `JoinSet`), stop the workers, await them.
    let mut tracked = tokio::task::JoinSet::new();
    let (stop, _) = tokio::sync::broadcast::channel::<()>(1);
    for _ in 0..3 {
        let mut stopped = stop.subscribe();
        tracked.spawn(taskscope::spawn_named("poll-queue (tracked)", async move {
            loop {
                tokio::select! {
                    _ = stopped.recv() => return,
                    _ = tokio::time::sleep(Duration::from_millis(5)) => {}
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    stop.send(()).unwrap();
    while let Some(done) = tracked.join_next().await {
        done.unwrap().unwrap();
    }

    let snap = guard.finish().expect("taskscope is running");
    for kind in [WarningKind::TaskPanicked, WarningKind::TasksAliveAtExit] {
        for w in snap.warnings_of(kind) {
            println!("{}: {}\nfix: {}\n", w.kind, w.message, w.hint());
        }
    }
    let group = snap.group("transfer").expect("the transfer group");
    println!(
        "cancelled: `transfer` {} cancelled of {} spawned",
        group.cancelled, group.spawned
    );
    for s in snap.semaphores.iter().filter(|s| s.name == "connections") {
        println!(
            "  semaphore `{}`: {} of {} permits available, {} waiting",
            s.name, s.available, s.permits, s.waiters
        );
    }
    for l in snap.locks.iter().filter(|l| l.name == "account") {
        println!(
            "  lock `{}`: holder {:?}, {} waiting",
            l.name, l.holder, l.waiters
        );
    }
}
