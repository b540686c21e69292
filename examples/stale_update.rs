//! The guide's read/await/write race — `current = balance; await validate(); balance = current +
//! amount` — losing deposits, its fix, a check-then-act (TOCTOU) across an `.await` electing two
//! leaders, and what taskscope says about them.
//!
//! ```text
//! cargo run --example stale_update
//! ```

use std::sync::Arc;
use std::time::Duration;

use taskscope::sync::Mutex;

async fn validate() {
    tokio::time::sleep(Duration::from_millis(1)).await;
}

/// 8 tasks deposit 1 each, 50 times, into `balance`; `racy` picks the buggy version.
async fn deposits(balance: Arc<Mutex<u64>>, racy: bool) -> u64 {
    let name = if racy {
        "deposit (buggy)"
    } else {
        "deposit (fixed)"
    };
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let balance = balance.clone();
            taskscope::spawn_named(name, async move {
                for _ in 0..50 {
                    if racy {
                        // The bug: read, release, await, write what was read plus one.
                        let current = *balance.lock().await;
                        validate().await;
                        *balance.lock().await = current + 1;
                    } else {
                        // The fix: validate first, then read-modify-write in one critical section.
                        validate().await;
                        *balance.lock().await += 1;
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let total = *balance.lock().await;
    total
}

/// 8 candidates each see the seat vacant, ask the others (an `.await`), then take it.
async fn election(leader: Arc<Mutex<Option<u32>>>) -> u32 {
    let candidates: Vec<_> = (0..8)
        .map(|id| {
            let leader = leader.clone();
            taskscope::spawn_named("elect", async move {
                let vacant = leader.lock().await.is_none(); // check
                validate().await;
                // act on the check: `replace` writes before it reads, so it does not re-check
                vacant && leader.lock().await.replace(id).is_some()
            })
        })
        .collect();
    let mut overwritten = 0;
    for candidate in candidates {
        overwritten += u32::from(candidate.await.unwrap());
    }
    overwritten
}

#[tokio::main]
async fn main() {
    let guard = taskscope::Builder::new().init();
    let buggy = deposits(Arc::new(Mutex::named("balance (buggy)", 0)), true).await;
    let fixed = deposits(Arc::new(Mutex::named("balance (fixed)", 0)), false).await;
    println!("400 deposits: the buggy balance is {buggy}, the fixed one {fixed}");
    let overwritten = election(Arc::new(Mutex::named("leader", None))).await;
    println!("election: {overwritten} candidates took a seat another had already taken");

    let snap = guard.finish().expect("taskscope is running");
    for w in snap.warnings_of(taskscope::WarningKind::StaleUpdate) {
        println!("{}: {}", w.kind, w.message);
        println!("fix: {}", w.hint());
    }
}
