//! A service that hangs, and the task dump that says where each task waits: a request stuck on
//! a reply that never comes, a transfer waiting for a lock that a task holds while it waits for
//! a slow backend, and a worker in a `select!` over its queue and a shutdown signal.
//!
//! ```text
//! cargo run --example task_dump
//! ```

use std::sync::Arc;
use std::time::Duration;

use taskscope::sync::Mutex;

async fn backend_call(reply: tokio::sync::oneshot::Receiver<String>) -> String {
    reply.await.unwrap_or_default()
}

async fn handle_request(reply: tokio::sync::oneshot::Receiver<String>) -> usize {
    backend_call(reply).await.len()
}

async fn transfer(accounts: Arc<Mutex<u64>>, amount: u64) {
    *accounts.lock().await += amount;
}

async fn refresh(accounts: Arc<Mutex<u64>>, slow: tokio::sync::oneshot::Receiver<()>) {
    let _guard = accounts.lock().await;
    slow.await.ok(); // the backend, while holding the lock
}

async fn worker(
    mut queue: tokio::sync::mpsc::Receiver<u32>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            job = queue.recv() => if job.is_none() { return },
            _ = shutdown.changed() => return,
        }
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let guard = taskscope::Builder::new().init();
    let (_reply_tx, reply_rx) = tokio::sync::oneshot::channel();
    taskscope::spawn_named("request", handle_request(reply_rx));
    let accounts = Arc::new(Mutex::named("accounts", 0));
    let (_slow_tx, slow_rx) = tokio::sync::oneshot::channel();
    taskscope::spawn_named("refresh", refresh(accounts.clone(), slow_rx));
    tokio::time::sleep(Duration::from_millis(20)).await;
    taskscope::spawn_named("transfer", transfer(accounts.clone(), 10));
    let (_queue_tx, queue_rx) = tokio::sync::mpsc::channel(8);
    let (_shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
    taskscope::spawn_named("worker", worker(queue_rx, shutdown_rx));
    tokio::time::sleep(Duration::from_millis(100)).await;

    // The service hangs: where is every task waiting? (From a thread that is not a worker.)
    let dump = tokio::task::spawn_blocking(|| taskscope::task_dump(Duration::from_secs(2)))
        .await
        .unwrap();
    println!("{dump}");
    drop(guard);
}
