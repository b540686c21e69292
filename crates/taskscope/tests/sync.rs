//! `taskscope::sync` end to end: exact counts under stress, each warning in its scenario and not in
//! a clean control, live deadlock detection while hung, cancellation, and tokio's semantics.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use taskscope::sync::{Mutex, RwLock, Semaphore, TryAcquireError};
use taskscope::{Snapshot, Warning, WarningKind};

fn guard() {
    static GUARD: OnceLock<taskscope::Guard> = OnceLock::new();
    GUARD.get_or_init(|| {
        taskscope::Builder::new()
            .blocked_threshold(Duration::from_millis(100))
            .long_wait_threshold(Duration::from_millis(100))
            .init()
    });
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn wait_for<T>(timeout: Duration, mut f: impl FnMut(&Snapshot) -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(found) = f(&taskscope::snapshot()) {
            return Some(found);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn warnings_naming(snap: &Snapshot, kind: WarningKind, lock: &str) -> Vec<Warning> {
    snap.warnings_of(kind)
        .filter(|w| w.locks.iter().any(|l| l == lock))
        .cloned()
        .collect()
}

fn lock_of<'a>(snap: &'a Snapshot, name: &str, kind: &str) -> &'a taskscope::Lock {
    snap.locks
        .iter()
        .find(|l| l.name == name && l.kind == kind)
        .unwrap_or_else(|| panic!("lock {name}"))
}

#[test]
fn sixteen_tasks_times_ten_thousand_increments_are_exact() {
    guard();
    let rt = runtime();
    let counter = Arc::new(Mutex::named("counter", 0u64));
    rt.block_on(async {
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let counter = counter.clone();
                taskscope::spawn_named("incrementer", async move {
                    for i in 0..10_000 {
                        *counter.lock().await += 1;
                        if i % 64 == 0 {
                            tokio::task::yield_now().await;
                        }
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    });
    assert_eq!(*rt.block_on(counter.lock()), 160_000);
    let snap = taskscope::snapshot();
    let lock = lock_of(&snap, "counter", "mutex");
    assert_eq!(lock.acquisitions, 160_001);
    assert_eq!(lock.wait_ns.count(), 160_001);
    // Holds are sampled one in eight per thread, each standing for eight: the count estimates
    // the acquisitions.
    let holds = lock.hold_ns.count();
    assert!((140_000..=180_000).contains(&holds), "{holds}");
    assert!(
        lock.contended > 0,
        "two workers, sixteen tasks: some lock() had to wait"
    );
    assert_eq!(lock.waiters, 0);
    assert!(lock.location.starts_with(file!()));
    // The guard was always dropped before the task's next .await.
    assert!(warnings_naming(&snap, WarningKind::LockHeldAcrossAwait, "counter").is_empty());
}

#[test]
fn lock_held_across_await_is_reported_and_a_clean_control_is_not() {
    guard();
    let rt = runtime();
    let bad = Arc::new(Mutex::named("held-across", 0));
    let good = Arc::new(Mutex::named("dropped-before-await", 0));
    let line = line!() + 4;
    rt.block_on(async {
        let (bad, good) = (bad.clone(), good.clone());
        taskscope::spawn_named("holder", async move {
            let guard = bad.lock().await;
            tokio::time::sleep(Duration::from_millis(20)).await;
            drop(guard);
            {
                let mut g = good.lock().await;
                *g += 1;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
            let _again = good.lock().await;
        })
        .await
        .unwrap();
    });
    let w = wait_for(Duration::from_secs(2), |s| {
        warnings_naming(s, WarningKind::LockHeldAcrossAwait, "held-across").pop()
    })
    .expect("lock_held_across_await");
    assert_eq!(w.task_name.as_deref(), Some("holder"));
    assert!(
        w.location
            .as_deref()
            .unwrap()
            .starts_with(&format!("{}:{line}:", file!())),
        "{w:?}"
    );
    assert!(w.duration_ns.unwrap() >= 20_000_000, "{w:?}");
    let snap = taskscope::snapshot();
    assert!(warnings_naming(
        &snap,
        WarningKind::LockHeldAcrossAwait,
        "dropped-before-await"
    )
    .is_empty());
}

#[test]
fn lock_order_inversion_is_reported_without_a_deadlock_and_consistent_order_is_not() {
    guard();
    let rt = runtime();
    let a = Arc::new(Mutex::named("order-a", ()));
    let b = Arc::new(Mutex::named("order-b", ()));
    let c = Arc::new(Mutex::named("order-c", ()));
    rt.block_on(async {
        let (a1, b1, c1) = (a.clone(), b.clone(), c.clone());
        taskscope::spawn_named("a-then-b", async move {
            let _a = a1.lock().await;
            let _b = b1.lock().await;
            let _c = c1.lock().await;
        })
        .await
        .unwrap();
        let (a2, b2, c2) = (a.clone(), b.clone(), c.clone());
        // Later, another task: b then a (inverted), and a then c (consistent).
        taskscope::spawn_named("b-then-a", async move {
            {
                let _b = b2.lock().await;
                let _a = a2.lock().await;
            }
            let _a = a2.lock().await;
            let _c = c2.lock().await;
        })
        .await
        .unwrap();
    });
    let w = wait_for(Duration::from_secs(2), |s| {
        s.warnings_of(WarningKind::LockOrderInversion)
            .find(|w| w.locks.contains(&"order-a".to_string()))
            .cloned()
    })
    .expect("lock_order_inversion");
    let mut locks = w.locks.clone();
    locks.sort();
    assert_eq!(locks, ["order-a", "order-b"]);
    assert!(
        w.message.contains("a-then-b") && w.message.contains("b-then-a"),
        "{}",
        w.message
    );
    assert_eq!(
        w.message.matches(file!()).count(),
        4,
        "both acquire sites of both orders: {}",
        w.message
    );
    let snap = taskscope::snapshot();
    assert!(
        snap.warnings_of(WarningKind::LockOrderInversion)
            .all(|w| !w.locks.contains(&"order-c".to_string())),
        "a then c, always in that order, is fine"
    );
}

#[test]
fn a_real_deadlock_is_reported_while_hung_and_aborting_cleans_up() {
    guard();
    let rt = runtime();
    let a = Arc::new(Mutex::named("dl-a", 0));
    let b = Arc::new(Mutex::named("dl-b", 0));
    let barrier = Arc::new(tokio::sync::Barrier::new(2));
    let _enter = rt.enter();
    let spawn = |first: Arc<Mutex<i32>>, second: Arc<Mutex<i32>>, name: &'static str| {
        let barrier = barrier.clone();
        taskscope::spawn_named(name, async move {
            let _first = first.lock().await;
            barrier.wait().await;
            let _second = second.lock().await;
        })
    };
    let t1 = spawn(a.clone(), b.clone(), "dl-task-1");
    let t2 = spawn(b.clone(), a.clone(), "dl-task-2");
    let started = Instant::now();
    let w = wait_for(Duration::from_secs(3), |s| {
        s.warnings_of(WarningKind::Deadlock)
            .find(|w| w.locks.contains(&"dl-a".to_string()))
            .cloned()
    })
    .expect("deadlock reported while hung");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "reported within a second of the hang"
    );
    assert!(w.ongoing);
    assert_eq!(w.tasks.len(), 2);
    let mut locks = w.locks.clone();
    locks.sort();
    assert_eq!(locks, ["dl-a", "dl-b"]);
    assert!(
        w.message.contains("dl-task-1") && w.message.contains("dl-task-2"),
        "{}",
        w.message
    );
    assert!(
        !t1.is_finished() && !t2.is_finished(),
        "still hung when reported"
    );

    // Abort both in the middle of their waits: the waits are cancelled and the guards released.
    t1.abort();
    assert!(rt.block_on(t1).unwrap_err().is_cancelled());
    // t1's abort released `dl-a`, so t2 may have finished before its own abort lands.
    t2.abort();
    match rt.block_on(t2) {
        Ok(()) => {}
        Err(e) => assert!(e.is_cancelled()),
    }
    let snap = taskscope::snapshot();
    for name in ["dl-a", "dl-b"] {
        let lock = lock_of(&snap, name, "mutex");
        assert_eq!(lock.waiters, 0, "no phantom waiter on {name}");
        assert_eq!(lock.holder, None, "{name} released");
    }
    rt.block_on(async {
        let _a = tokio::time::timeout(Duration::from_secs(1), a.lock())
            .await
            .expect("a is free again");
        let _b = tokio::time::timeout(Duration::from_secs(1), b.lock())
            .await
            .expect("b is free again");
    });
    let w = wait_for(Duration::from_secs(2), |s| {
        s.warnings_of(WarningKind::Deadlock)
            .find(|w| w.locks.contains(&"dl-a".to_string()) && !w.ongoing)
            .cloned()
    });
    assert!(
        w.is_some(),
        "the deadlock is marked resolved once the cycle is gone"
    );
}

#[test]
fn long_wait_names_the_waiter_and_the_holder() {
    guard();
    let rt = runtime();
    let lock = Arc::new(Mutex::named("slow-holder", ()));
    rt.block_on(async {
        let l1 = lock.clone();
        let holder = taskscope::spawn_named("long-holder", async move {
            let _g = l1.lock().await;
            tokio::time::sleep(Duration::from_millis(400)).await;
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        let l2 = lock.clone();
        let waiter = taskscope::spawn_named("long-waiter", async move {
            let _g = l2.lock().await;
        });
        let w = tokio::task::spawn_blocking(|| {
            wait_for(Duration::from_secs(2), |s| {
                s.warnings_of(WarningKind::LongWait)
                    .find(|w| w.locks == ["slow-holder"] && w.ongoing)
                    .cloned()
            })
        })
        .await
        .unwrap()
        .expect("long_wait while waiting");
        assert_eq!(w.task_name.as_deref(), Some("long-waiter"));
        assert!(w.message.contains("long-holder"), "{}", w.message);
        holder.await.unwrap();
        waiter.await.unwrap();
    });
    let snap = taskscope::snapshot();
    let lock = lock_of(&snap, "slow-holder", "mutex");
    assert_eq!(
        (
            lock.acquisitions,
            lock.contended,
            lock.waiters,
            lock.max_waiters
        ),
        (2, 1, 0, 1)
    );
    assert!(lock.wait_ns.max >= 300_000_000, "{:?}", lock.wait_ns.max);
}

#[test]
fn cancelled_waiters_leave_no_phantom_and_aborted_holders_release() {
    guard();
    let rt = runtime();
    let lock = Arc::new(Mutex::named("cancel", 0));
    rt.block_on(async {
        let held = lock.clone().lock_owned().await;
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let lock = lock.clone();
                taskscope::spawn(async move {
                    *lock.lock().await += 1;
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(
            lock_of(&taskscope::snapshot(), "cancel", "mutex").waiters,
            3
        );
        for w in &waiters {
            w.abort();
        }
        for w in waiters {
            assert!(w.await.unwrap_err().is_cancelled());
        }
        assert_eq!(
            lock_of(&taskscope::snapshot(), "cancel", "mutex").waiters,
            0
        );
        drop(held);

        // A holder aborted mid-hold releases the lock.
        let l = lock.clone();
        let holder = taskscope::spawn(async move {
            let _g = l.lock().await;
            std::future::pending::<()>().await;
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(lock.try_lock().is_err());
        holder.abort();
        let _ = holder.await;
        let g = tokio::time::timeout(Duration::from_secs(1), lock.lock())
            .await
            .expect("released");
        assert_eq!(*g, 0, "no aborted waiter incremented");
    });
    let snap = taskscope::snapshot();
    let lock = lock_of(&snap, "cancel", "mutex");
    assert_eq!(lock.acquisitions, 3);
    assert_eq!(lock.holder, None);
}

#[test]
fn mutex_keeps_tokio_semantics() {
    guard();
    let rt = runtime();
    rt.block_on(async {
        // try_lock
        let m = Mutex::new(1);
        let g = m.try_lock().unwrap();
        assert!(m.try_lock().is_err());
        drop(g);
        // map, try_map
        let m = Mutex::new((1, 2));
        let mut g = taskscope::sync::MutexGuard::map(m.lock().await, |p| &mut p.1);
        *g += 40;
        drop(g);
        assert_eq!(m.lock().await.1, 42);
        let g = m.lock().await;
        assert!(taskscope::sync::MutexGuard::try_map(g, |_| None::<&mut i32>).is_err());
        // owned guards
        let m = Arc::new(Mutex::new(String::new()));
        let mut g = m.clone().lock_owned().await;
        g.push('x');
        assert!(Arc::ptr_eq(taskscope::sync::OwnedMutexGuard::mutex(&g), &m));
        drop(g);
        let g = m.clone().try_lock_owned().unwrap();
        assert!(m.clone().try_lock_owned().is_err());
        drop(g);
        // into_inner, get_mut
        let mut m = Mutex::new(5);
        *m.get_mut() += 1;
        assert_eq!(m.into_inner(), 6);
        // Fairness: waiters get the lock in the order they asked.
        let m = Arc::new(Mutex::new(Vec::new()));
        let g = m.lock().await;
        let mut handles = Vec::new();
        for i in 0..5 {
            let m = m.clone();
            handles.push(taskscope::spawn(async move { m.lock().await.push(i) }));
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        drop(g);
        for h in handles {
            h.await.unwrap();
        }
        assert_eq!(*m.lock().await, vec![0, 1, 2, 3, 4]);
    });
}

#[test]
fn rwlock_records_readers_and_writers_apart_and_keeps_tokio_semantics() {
    guard();
    let rt = runtime();
    let lock = Arc::new(RwLock::named("rw", 0u32));
    rt.block_on(async {
        let r1 = lock.read().await;
        let r2 = lock.try_read().unwrap();
        assert!(lock.try_write().is_err());
        let l = lock.clone();
        let writer = taskscope::spawn_named("writer", async move {
            *l.write().await += 1;
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        // Write-preferring: a writer is queued, so new readers wait.
        assert!(lock.try_read().is_err());
        drop((r1, r2));
        writer.await.unwrap();
        let w = lock.write().await;
        let r = taskscope::sync::RwLockWriteGuard::downgrade(w);
        assert_eq!(*r, 1);
        assert!(lock.try_read().is_ok());
        drop(r);
        let mut ow = lock.clone().write_owned().await;
        *ow += 1;
        drop(ow);
        assert_eq!(*lock.clone().read_owned().await, 2);
        let mapped = taskscope::sync::RwLockReadGuard::map(lock.read().await, |v| v);
        assert_eq!(*mapped, 2);
    });
    let snap = taskscope::snapshot();
    let reads = lock_of(&snap, "rw", "rwlock_read");
    let writes = lock_of(&snap, "rw", "rwlock_write");
    assert_eq!(writes.acquisitions, 3);
    assert_eq!(writes.contended, 1);
    assert!(writes.wait_ns.max >= 15_000_000);
    assert_eq!(reads.acquisitions, 6);
}

#[test]
fn semaphore_records_permits_waits_and_saturation_and_keeps_tokio_semantics() {
    guard();
    let rt = runtime();
    let sem = Arc::new(Semaphore::named("pool", 2));
    rt.block_on(async {
        let a = sem.acquire().await.unwrap();
        let b = sem.clone().acquire_owned().await.unwrap();
        assert_eq!(sem.available_permits(), 0);
        assert!(matches!(sem.try_acquire(), Err(TryAcquireError::NoPermits)));
        let s = sem.clone();
        let waiter = taskscope::spawn_named("pool-waiter", async move {
            let p = s.acquire_many(2).await.unwrap();
            assert_eq!(p.num_permits(), 2);
        });
        tokio::time::sleep(Duration::from_millis(30)).await;
        let snap = taskscope::snapshot();
        let pool = snap.semaphores.iter().find(|s| s.name == "pool").unwrap();
        assert_eq!((pool.waiters, pool.available, pool.permits), (1, 0, 2));
        drop(a);
        drop(b);
        waiter.await.unwrap();
        sem.add_permits(1);
        assert_eq!(sem.available_permits(), 3);
        let p = sem.try_acquire_many(3).unwrap();
        p.forget();
        assert_eq!(sem.available_permits(), 0);
        sem.add_permits(1);
        sem.close();
        assert!(sem.is_closed());
        assert!(sem.acquire().await.is_err());
        assert!(matches!(sem.try_acquire(), Err(TryAcquireError::Closed)));
    });
    let snap = taskscope::snapshot();
    let pool = snap.semaphores.iter().find(|s| s.name == "pool").unwrap();
    assert_eq!(pool.acquisitions, 4);
    assert_eq!(pool.max_waiters, 1);
    assert_eq!(pool.permits, 1, "2 + 1 added - 3 forgotten + 1 added");
    assert!(pool.wait_ns.max >= 25_000_000, "{:?}", pool.wait_ns);
    assert!(pool.saturated_ns >= 25_000_000, "{}", pool.saturated_ns);
}

#[test]
fn a_blocked_worker_names_the_locks_its_task_holds() {
    guard();
    let rt = runtime();
    let lock = Arc::new(Mutex::named("held-while-blocking", ()));
    rt.block_on(async {
        let l = lock.clone();
        taskscope::spawn_named("blocks-with-lock", async move {
            let _g = l.lock().await;
            std::thread::sleep(Duration::from_millis(250));
        })
        .await
        .unwrap();
    });
    let w = wait_for(Duration::from_secs(2), |s| {
        s.warnings_of(WarningKind::BlockedWorker)
            .find(|w| w.task_name.as_deref() == Some("blocks-with-lock"))
            .cloned()
    })
    .expect("blocked_worker");
    assert_eq!(w.locks, ["held-while-blocking"]);
    assert!(
        w.message.contains("holding `held-while-blocking`"),
        "{}",
        w.message
    );
}

#[test]
fn works_on_a_current_thread_runtime() {
    guard();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let m = Arc::new(Mutex::named("ct-mutex", 0));
    let sem = Arc::new(Semaphore::named("ct-sem", 1));
    rt.block_on(async {
        let tasks: Vec<_> = (0..4)
            .map(|_| {
                let (m, sem) = (m.clone(), sem.clone());
                taskscope::spawn(async move {
                    for _ in 0..100 {
                        let _p = sem.acquire().await.unwrap();
                        let mut g = m.lock().await;
                        *g += 1;
                        drop(g);
                        tokio::task::yield_now().await;
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    });
    assert_eq!(*rt.block_on(m.lock()), 400);
    let snap = taskscope::snapshot();
    assert_eq!(lock_of(&snap, "ct-mutex", "mutex").acquisitions, 401);
    let sem = snap.semaphores.iter().find(|s| s.name == "ct-sem").unwrap();
    assert_eq!(sem.acquisitions, 400);
    assert!(
        sem.max_waiters >= 1,
        "permits held across yield_now make the others wait"
    );
    // Permits are meant to be held across `.await`s (a connection pool): not a warning.
    assert!(warnings_naming(&snap, WarningKind::LockHeldAcrossAwait, "ct-sem").is_empty());
}

#[test]
fn dropped_locks_fold_into_one_entry_with_exact_counts() {
    guard();
    let rt = runtime();
    rt.block_on(async {
        for _ in 0..200 {
            // One creation site: 200 locks of one group.
            let lock = Mutex::named("short-lived", 0u32);
            for _ in 0..3 {
                *lock.lock().await += 1;
            }
        }
    });
    // Each dropped lock announces itself; the collector folds it into its group within a tick.
    let folded = wait_for(Duration::from_secs(5), |s| {
        let entries: Vec<_> = s.locks.iter().filter(|l| l.name == "short-lived").collect();
        (entries.len() == 1).then(|| entries[0].clone())
    })
    .expect("the 200 dropped locks end up as one entry");
    assert_eq!(folded.acquisitions, 600);
}
