//! A lock guard kept alive across an `.await` — the bug that makes every other task wait for a
//! network round trip — and what taskscope says about it.
//!
//! ```text
//! cargo run --example held_across_await
//! ```

use std::sync::Arc;
use std::time::Duration;

use taskscope::sync::Mutex;

async fn fetch_from_backend() -> u32 {
    tokio::time::sleep(Duration::from_millis(30)).await;
    42
}

#[tokio::main]
async fn main() {
    let guard = taskscope::Builder::new().init();
    let cache = Arc::new(Mutex::named("cache", Vec::<u32>::new()));

    // The bug: the guard lives until the end of the block, across the backend call.
    let c = cache.clone();
    taskscope::spawn_named("refresh-cache (buggy)", async move {
        let mut entries = c.lock().await;
        let value = fetch_from_backend().await;
        entries.push(value);
    })
    .await
    .unwrap();

    // The fix: fetch first, lock only to update.
    let c = cache.clone();
    taskscope::spawn_named("refresh-cache (fixed)", async move {
        let value = fetch_from_backend().await;
        c.lock().await.push(value);
    })
    .await
    .unwrap();

    let snap = guard.finish().expect("taskscope is running");
    for w in snap.warnings_of(taskscope::WarningKind::LockHeldAcrossAwait) {
        println!("{}: {}", w.kind, w.message);
    }
}
