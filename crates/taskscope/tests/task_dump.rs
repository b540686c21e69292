//! `taskscope::task_dump`: every pending task's chain of `async fn`s, each at its `.await` line,
//! down to the future it waits on; the taskscope lock a task waits for and who holds it; no
//! wake-up lost and nothing run twice by the dump's poll; a task that completes, panics or
//! registers no new waker in that poll reported as such; and a clear panic on a worker. On the
//! multi-thread and the current-thread runtime.

mod common;

use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::sync::{Arc, Mutex as StdMutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use taskscope::{TaskDump, Trace};

fn guard() -> taskscope::Guard {
    common::exclusive(|| taskscope::Builder::new().no_server())
}

/// A dump taken from a thread of its own, as a user would from a signal handler's thread.
fn dump() -> TaskDump {
    std::thread::spawn(|| taskscope::task_dump(Duration::from_secs(5)))
        .join()
        .unwrap()
}

const INNER_AWAIT: u32 = line!() + 2;
async fn inner_stage(rx: tokio::sync::oneshot::Receiver<u32>) -> u32 {
    rx.await.unwrap()
}

const MIDDLE_AWAIT: u32 = line!() + 2;
async fn middle_stage(rx: tokio::sync::oneshot::Receiver<u32>) -> u32 {
    inner_stage(rx).await + 1
}

const OUTER_AWAIT: u32 = line!() + 2;
async fn outer_stage(rx: tokio::sync::oneshot::Receiver<u32>) -> u32 {
    middle_stage(rx).await * 2
}

/// The chains of the task named `name`.
fn chains<'a>(dump: &'a TaskDump, name: &'a str) -> &'a [taskscope::Chain] {
    let task = dump
        .named(name)
        .next()
        .unwrap_or_else(|| panic!("no task {name} in\n{dump}"));
    match &task.trace {
        Trace::Suspended { chains } => chains,
        other => panic!("{name}: {other:?}\n{dump}"),
    }
}

fn the_chain_of_a_pending_task_names_each_async_fn_at_its_await(multi: bool) {
    let _guard = guard();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let rt = Arc::new(common::runtime(multi));
    let handle = rt.spawn(async {
        taskscope::spawn_named("pipeline", outer_stage(rx))
            .await
            .unwrap()
    });
    // The current-thread runtime runs only while something blocks on it.
    let driver = (!multi).then(|| {
        let rt = rt.clone();
        std::thread::spawn(move || {
            rt.block_on(async { tokio::time::sleep(Duration::from_millis(1500)).await })
        })
    });
    std::thread::sleep(Duration::from_millis(100));
    let dump = dump();
    let chains = chains(&dump, "pipeline");
    assert_eq!(chains.len(), 1, "{dump}");
    let chain = &chains[0];
    assert!(
        chain
            .leaf
            .as_deref()
            .is_some_and(|l| l.contains("oneshot::Receiver")),
        "{dump}"
    );
    let found: Vec<(String, Option<u32>)> = chain
        .frames
        .iter()
        .take(3)
        .map(|f| (f.function.rsplit("::").next().unwrap().to_string(), f.line))
        .collect();
    assert_eq!(
        found,
        [
            ("inner_stage".to_string(), Some(INNER_AWAIT)),
            ("middle_stage".to_string(), Some(MIDDLE_AWAIT)),
            ("outer_stage".to_string(), Some(OUTER_AWAIT)),
        ],
        "{dump}"
    );
    assert!(
        chain.frames[0]
            .file
            .as_deref()
            .is_some_and(|f| f.ends_with("task_dump.rs")),
        "{dump}"
    );
    let text = dump.to_string();
    assert!(
        text.contains(&format!("task_dump.rs:{INNER_AWAIT})")),
        "{text}"
    );
    // The task's wake-up was not lost: it finishes when the value comes.
    tx.send(20).unwrap();
    if let Some(driver) = driver {
        driver.join().unwrap();
    }
    let result = rt.block_on(handle).unwrap();
    assert_eq!(result, 42);
}

#[test]
fn the_chain_of_a_pending_task_names_each_async_fn_at_its_await_multi_thread() {
    the_chain_of_a_pending_task_names_each_async_fn_at_its_await(true);
}

#[test]
fn the_chain_of_a_pending_task_names_each_async_fn_at_its_await_current_thread() {
    the_chain_of_a_pending_task_names_each_async_fn_at_its_await(false);
}

#[test]
fn no_wake_is_lost_and_nothing_runs_twice() {
    let _guard = guard();
    let rt = common::multi_thread();
    let (started, finished) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0)));
    let notify = Arc::new(tokio::sync::Notify::new());
    let lock = Arc::new(taskscope::sync::Mutex::named("gate", 0u32));
    let (tasks, held) = rt.block_on(async {
        let held = lock.clone().lock_owned().await;
        let mut tasks = Vec::new();
        for i in 0..30 {
            let (started, finished) = (started.clone(), finished.clone());
            let (notify, lock) = (notify.clone(), lock.clone());
            tasks.push(taskscope::spawn_named("waiter", async move {
                started.fetch_add(1, SeqCst);
                match i % 3 {
                    0 => notify.notified().await,
                    1 => *lock.lock().await += 1,
                    _ => tokio::time::sleep(Duration::from_millis(400)).await,
                }
                finished.fetch_add(1, SeqCst);
            }));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        (tasks, held)
    });
    let dump = dump();
    assert_eq!(dump.named("waiter").count(), 30, "{dump}");
    for task in dump.named("waiter") {
        assert!(matches!(task.trace, Trace::Suspended { .. }), "{dump}");
    }
    // Each task ran its first step once, the dump's poll notwithstanding; only the timers'
    // may have finished meanwhile (the first dump reads the debug info, which can outlast
    // them in a debug build).
    assert_eq!(started.load(SeqCst), 30);
    assert!(finished.load(SeqCst) <= 10, "{}", finished.load(SeqCst));
    // Released: every one finishes (the Notify's, the lock's and the timer's wake-ups kept).
    drop(held);
    notify.notify_waiters();
    rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(5), async {
            for task in tasks {
                task.await.unwrap();
            }
        })
        .await
        .expect("every task finished after the dump")
    });
    assert_eq!(started.load(SeqCst), 30);
    assert_eq!(finished.load(SeqCst), 30);
    assert_eq!(*lock.blocking_lock(), 10);
}

#[test]
fn a_task_waiting_for_a_lock_names_the_lock_and_its_holder() {
    let _guard = guard();
    let rt = common::multi_thread();
    let accounts = Arc::new(taskscope::sync::Mutex::named("accounts", 0u32));
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let (holder, waiter) = rt.block_on(async {
        let a = accounts.clone();
        let holder = taskscope::spawn_named("holder", async move {
            let _guard = a.lock().await;
            rx.await.ok();
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        let a = accounts.clone();
        let waiter = taskscope::spawn_named("transfer", async move {
            *a.lock().await += 1;
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        (holder, waiter)
    });
    let dump = dump();
    let holder_id = dump.named("holder").next().unwrap().id;
    let transfer = dump.named("transfer").next().unwrap();
    let wait = transfer
        .waiting_for
        .as_ref()
        .unwrap_or_else(|| panic!("{dump}"));
    assert_eq!(wait.lock, "accounts");
    assert_eq!(wait.holder, Some(holder_id), "{dump}");
    assert!(wait.at.contains("task_dump.rs:"), "{dump}");
    assert!(dump.to_string().contains("waiting for mutex `accounts`"));
    // The holder's own chain: it waits on its oneshot while holding the lock.
    assert!(
        chains(&dump, "holder")[0]
            .leaf
            .as_deref()
            .is_some_and(|l| l.contains("oneshot")),
        "{dump}"
    );
    tx.send(()).unwrap();
    rt.block_on(async {
        holder.await.unwrap();
        waiter.await.unwrap();
    });
    assert_eq!(*accounts.blocking_lock(), 1);
}

/// Pending at its first poll (keeping the waker, so the test can finish it), then `action` at
/// the next.
struct SecondPoll<F> {
    polls: u32,
    action: F,
}

impl<F: FnMut() + Unpin> Future for SecondPoll<F> {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<()> {
        self.polls += 1;
        if self.polls == 1 {
            return Poll::Pending;
        }
        (self.action)();
        Poll::Ready(())
    }
}

#[test]
fn a_task_that_completes_or_panics_in_the_dumps_poll_is_reported_so() {
    let _guard = guard();
    let rt = common::multi_thread();
    let (completes, panics) = rt.block_on(async {
        let completes = taskscope::spawn_named(
            "completes",
            SecondPoll {
                polls: 0,
                action: || {},
            },
        );
        let panics = taskscope::spawn_named(
            "panics",
            SecondPoll {
                polls: 0,
                action: || panic!("woken by the dump"),
            },
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        (completes, panics)
    });
    let dump = dump();
    let trace = |name: &str| dump.named(name).next().map(|t| t.trace.clone());
    assert_eq!(
        trace("completes"),
        Some(Trace::CompletedDuringTrace),
        "{dump}"
    );
    assert_eq!(trace("panics"), Some(Trace::PanickedDuringTrace), "{dump}");
    rt.block_on(async {
        completes.await.unwrap();
        assert!(panics.await.unwrap_err().is_panic());
    });
    // Its handle returned the panic: the test saw it, so it is no `task_panicked`.
    let snap = taskscope::snapshot();
    assert_eq!(snap.group("panics").unwrap().panicked, 1);
    assert!(!snap
        .warnings_of(taskscope::WarningKind::TaskPanicked)
        .any(|w| w.message.contains("woken by the dump")));
}

#[test]
fn a_task_whose_future_keeps_an_old_waker_is_reported_so() {
    let _guard = guard();
    let rt = common::multi_thread();
    let kept: Arc<StdMutex<Option<Waker>>> = Arc::default();
    let done = Arc::new(AtomicU32::new(0));
    #[allow(clippy::async_yields_async)] // the task's handle, awaited after the dump
    let task = rt.block_on(async {
        let (kept, done) = (kept.clone(), done.clone());
        let task = taskscope::spawn_named(
            "keeps-old-waker",
            poll_fn(move |cx| {
                let mut slot = kept.lock().unwrap();
                if done.load(SeqCst) == 1 {
                    return Poll::Ready(());
                }
                // Registers only once: later polls keep the first waker.
                if slot.is_none() {
                    *slot = Some(cx.waker().clone());
                }
                Poll::Pending
            }),
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        task
    });
    let dump = dump();
    let traced = dump.named("keeps-old-waker").next().unwrap();
    assert_eq!(traced.trace, Trace::NoWakerRegistered, "{dump}");
    // The kept waker still works.
    done.store(1, SeqCst);
    kept.lock().unwrap().take().unwrap().wake();
    rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .unwrap()
            .unwrap()
    });
}

#[test]
fn a_dump_on_a_worker_panics_with_a_clear_message() {
    let _guard = guard();
    let rt = common::multi_thread();
    let error = rt.block_on(async {
        taskscope::spawn_named("dumps-on-a-worker", async {
            taskscope::task_dump(Duration::from_millis(100));
        })
        .await
        .unwrap_err()
    });
    let message = error.into_panic();
    let text = message
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| message.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap();
    assert!(text.contains("spawn_blocking"), "{text}");
}

#[test]
fn without_a_guard_the_dump_is_empty() {
    // Waits for other tests' Guards to end, then holds none.
    drop(guard());
    let dump = dump();
    assert!(dump.tasks.is_empty(), "{dump}");
}

const TIMER_AWAIT: u32 = line!() + 2;
async fn nap() {
    tokio::time::sleep(Duration::from_secs(30)).await;
}

const JOIN_AWAIT: u32 = line!() + 2;
async fn join(handle: taskscope::JoinHandle<()>) {
    handle.await.unwrap();
}

const READ_AWAIT: u32 = line!() + 3;
async fn read_request(mut stream: tokio::net::TcpStream) -> usize {
    use tokio::io::AsyncReadExt;
    let n = stream.read(&mut [0u8; 64]).await.unwrap();
    n
}

/// The line of the innermost `.await` of the task named `name`'s first chain.
fn innermost(dump: &TaskDump, name: &str) -> (String, Option<u32>) {
    let frame = &chains(dump, name)[0].frames[0];
    let function = frame.function.rsplit("::").next().unwrap().to_string();
    (function, frame.line)
}

#[test]
fn a_timer_a_join_and_a_tcp_read_are_each_named_at_their_await() {
    let _guard = guard();
    let rt = common::multi_thread();
    let (tasks, client) = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (server_side, _) = listener.accept().await.unwrap();
        let sleeper = taskscope::spawn_named("sleeper", nap());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let child = taskscope::spawn_named("child", async move {
            rx.await.ok();
        });
        let parent = taskscope::spawn_named("parent", join(child));
        let reader = taskscope::spawn_named("reader", read_request(server_side));
        tokio::time::sleep(Duration::from_millis(100)).await;
        ((sleeper, tx, parent, reader), client)
    });
    let dump = dump();
    assert_eq!(
        innermost(&dump, "sleeper"),
        ("nap".into(), Some(TIMER_AWAIT)),
        "{dump}"
    );
    assert_eq!(
        innermost(&dump, "parent"),
        ("join".into(), Some(JOIN_AWAIT)),
        "{dump}"
    );
    assert_eq!(
        innermost(&dump, "reader"),
        ("read_request".into(), Some(READ_AWAIT)),
        "{dump}"
    );
    // They all go on: the read gets its bytes, the join its child, the timer is aborted.
    let (sleeper, tx, parent, reader) = tasks;
    rt.block_on(async {
        use tokio::io::AsyncWriteExt;
        let mut client = client;
        client.write_all(b"GET /").await.unwrap();
        assert_eq!(reader.await.unwrap(), 5);
        tx.send(()).unwrap();
        parent.await.unwrap();
        sleeper.abort();
    });
}

#[test]
fn dumping_again_and_again_while_tasks_run_loses_no_wake() {
    let _guard = guard();
    let rt = common::multi_thread();
    let done = Arc::new(AtomicU32::new(0));
    let tasks: Vec<_> = rt.block_on(async {
        let (tx, _) = tokio::sync::broadcast::channel::<u32>(1024);
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let (mut rx, done) = (tx.subscribe(), done.clone());
            tasks.push(taskscope::spawn_named("consumer", async move {
                let mut seen = 0;
                while let Ok(n) = rx.recv().await {
                    seen += n;
                }
                done.fetch_add(1, SeqCst);
                seen
            }));
        }
        let producer = taskscope::spawn_named("producer", async move {
            for _ in 0..400 {
                tx.send(1).unwrap();
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        });
        tasks.push(taskscope::spawn_named("wait-producer", async move {
            producer.await.unwrap();
            0
        }));
        tasks
    });
    // Dumps while the producer and consumers run.
    let mut dumps = 0;
    while done.load(SeqCst) < 50 && dumps < 200 {
        let dump = taskscope::task_dump(Duration::from_secs(2));
        assert!(!dump.tasks.is_empty() || done.load(SeqCst) == 50);
        dumps += 1;
    }
    assert!(dumps >= 3, "only {dumps} dumps ran");
    let totals: Vec<u32> = rt.block_on(async {
        let mut totals = Vec::new();
        for task in tasks {
            totals.push(
                tokio::time::timeout(Duration::from_secs(10), task)
                    .await
                    .expect("every task finished")
                    .unwrap(),
            );
        }
        totals
    });
    // Every consumer saw every message: no wake-up was lost to a dump.
    assert!(totals[..50].iter().all(|&t| t == 400), "{totals:?}");
}

#[test]
fn a_dump_says_which_task_spawned_each_one() {
    let _guard = guard();
    let rt = common::multi_thread();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    #[allow(clippy::async_yields_async)] // the task's handle, awaited after the dump
    let parent = rt.block_on(async {
        let parent = taskscope::spawn_named("supervisor", async move {
            taskscope::spawn_named("child", async move {
                rx.await.ok();
            })
            .await
            .unwrap();
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        parent
    });
    let dump = dump();
    let supervisor = dump.named("supervisor").next().unwrap();
    let child = dump.named("child").next().unwrap();
    assert_eq!(child.parent, Some(supervisor.id), "{dump}");
    assert_eq!(supervisor.parent, None, "{dump}");
    assert!(
        dump.to_string()
            .contains(&format!("by task {}:", supervisor.id)),
        "{dump}"
    );
    tx.send(()).unwrap();
    rt.block_on(parent).unwrap();
}

/// A task that spawned two workers, one of which spawned a helper: the dump lists them as a
/// tree under it.
#[test]
fn the_dump_shows_the_spawn_tree() {
    let _guard = guard();
    let rt = common::multi_thread();
    let (tx, rx) = tokio::sync::watch::channel(());
    #[allow(clippy::async_yields_async)] // the supervisor's handle, awaited after the dump
    let supervisor = rt.block_on(async {
        let supervisor = taskscope::spawn_named("supervisor", async move {
            let helper_rx = rx.clone();
            let mut workers = vec![taskscope::spawn_named("worker-a", async move {
                let mut rx = helper_rx.clone();
                let helper = taskscope::spawn_named("helper", async move {
                    rx.changed().await.ok();
                });
                helper.await.ok();
            })];
            let mut rx = rx.clone();
            workers.push(taskscope::spawn_named("worker-b", async move {
                rx.changed().await.ok();
            }));
            for w in workers {
                w.await.ok();
            }
        });
        drop(taskscope::spawn_named(
            "orphan",
            std::future::pending::<()>(),
        ));
        tokio::time::sleep(Duration::from_millis(100)).await;
        supervisor
    });
    let dump = dump();
    let orphan = dump.named("orphan").next().unwrap().id;
    assert_eq!(
        dump.detached,
        [orphan],
        "only the task whose handle was dropped"
    );
    let tree: Vec<(usize, String)> = dump
        .spawn_tree()
        .into_iter()
        .filter(|(_, t)| {
            ["supervisor", "worker-a", "worker-b", "helper"].contains(&t.name.as_str())
        })
        .map(|(depth, t)| (depth, t.name.clone()))
        .collect();
    let names = |v: &[(usize, &str)]| {
        v.iter()
            .map(|(d, n)| (*d, n.to_string()))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        tree,
        names(&[
            (0, "supervisor"),
            (1, "worker-a"),
            (2, "helper"),
            (1, "worker-b")
        ]),
        "{dump}"
    );
    let text = dump.to_string();
    assert!(text.contains("spawn tree:"), "{text}");
    assert!(
        text.contains("\n    ") && text.contains("`helper` [idle]"),
        "{text}"
    );
    tx.send(()).unwrap();
    rt.block_on(async { supervisor.await.unwrap() });
}
