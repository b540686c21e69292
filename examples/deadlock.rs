//! Two tasks taking two locks in opposite orders. First run: they happen not to collide, and
//! taskscope still reports the lock-order inversion (a deadlock waiting to happen). Second run:
//! they collide, and taskscope reports the deadlock while the tasks are stuck.
//!
//! ```text
//! cargo run --example deadlock
//! ```

use std::sync::Arc;
use std::time::Duration;

use taskscope::sync::Mutex;
use taskscope::WarningKind;

async fn transfer(from: Arc<Mutex<i64>>, to: Arc<Mutex<i64>>, pause: Duration) {
    let mut a = from.lock().await;
    tokio::time::sleep(pause).await;
    let mut b = to.lock().await;
    *a -= 10;
    *b += 10;
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let guard = taskscope::Builder::new().init();
    let alice = Arc::new(Mutex::named("account:alice", 100));
    let bob = Arc::new(Mutex::named("account:bob", 100));

    // One after the other: no deadlock, but the orders are inverted.
    taskscope::spawn_named(
        "alice->bob",
        transfer(alice.clone(), bob.clone(), Duration::ZERO),
    )
    .await
    .unwrap();
    taskscope::spawn_named(
        "bob->alice",
        transfer(bob.clone(), alice.clone(), Duration::ZERO),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    for w in taskscope::snapshot().warnings_of(WarningKind::LockOrderInversion) {
        println!("{}: {}\n", w.kind, w.message);
    }

    // At the same time: each holds one account and waits for the other.
    let t1 = taskscope::spawn_named(
        "alice->bob",
        transfer(alice.clone(), bob.clone(), Duration::from_millis(10)),
    );
    let t2 = taskscope::spawn_named(
        "bob->alice",
        transfer(bob.clone(), alice.clone(), Duration::from_millis(10)),
    );
    let hung = tokio::time::timeout(Duration::from_millis(500), async {
        let _ = t1.await;
        let _ = t2.await;
    })
    .await
    .is_err();
    println!("tasks hung: {hung}");
    for w in taskscope::snapshot().warnings_of(WarningKind::Deadlock) {
        println!("{} (ongoing: {}): {}", w.kind, w.ongoing, w.message);
    }
    drop(guard);
    std::process::exit(0); // the deadlocked tasks never finish
}
