//! An application instrumented for tokio-console, not for taskscope: `console_subscriber::init()`
//! and tokio's own `Mutex`, `Semaphore`, `RwLock` and timers. Serves console-api on
//! `TOKIO_CONSOLE_BIND`. Each task has a name (tokio's task builder) and something for taskscope
//! to find: contention on a mutex, a saturated semaphore, a worker blocked by a long poll, a task
//! that waits for a wake that can never come (its waker was dropped), and one that keeps waking
//! itself.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::{Mutex, RwLock, Semaphore};

/// A future that is pending forever and keeps no waker: a lost wake-up.
struct Forgotten;

impl Future for Forgotten {
    type Output = ();
    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<()> {
        Poll::Pending
    }
}

/// Wakes its own task and returns Pending once: a hand-written yield, the busy-wait pattern
/// console-subscriber counts as self-wakes.
struct WakeSelf(bool);

impl Future for WakeSelf {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            return Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

#[track_caller]
fn spawn<F>(name: &str, fut: F)
where
    F: Future<Output = ()> + Send + 'static,
{
    tokio::task::Builder::new()
        .name(name)
        .spawn(fut)
        .expect("spawn a task");
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    console_subscriber::init();

    let cache = Arc::new(Mutex::new(0u64));
    for i in 0..4 {
        let cache = cache.clone();
        spawn(&format!("cache-writer-{i}"), async move {
            loop {
                let mut guard = cache.lock().await;
                *guard += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
                drop(guard);
                tokio::task::yield_now().await;
            }
        });
    }

    let pool = Arc::new(Semaphore::new(2));
    for i in 0..5 {
        let pool = pool.clone();
        spawn(&format!("db-query-{i}"), async move {
            loop {
                let _permit = pool.acquire().await.expect("open semaphore");
                tokio::time::sleep(Duration::from_millis(30)).await;
            }
        });
    }

    let config = Arc::new(RwLock::new(String::from("v1")));
    {
        let config = config.clone();
        spawn("config-reader", async move {
            loop {
                let len = config.read().await.len();
                std::hint::black_box(len);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        });
    }

    // Blocks its worker for 1.5 s every 3 s: long enough to be seen while it lasts.
    spawn("report-generator", async {
        loop {
            tokio::time::sleep(Duration::from_millis(300)).await;
            std::thread::sleep(Duration::from_millis(1500));
            tokio::time::sleep(Duration::from_millis(1200)).await;
        }
    });

    spawn("lost-wakeup", Forgotten);

    spawn("spinner", async {
        loop {
            tokio::time::sleep(Duration::from_millis(1)).await;
            for _ in 0..4 {
                WakeSelf(false).await;
            }
        }
    });

    tokio::signal::ctrl_c().await.expect("wait for ctrl-c");
}
