//! tokio's `sync` semantics, checked against the instrumented wrappers (with a Guard alive, so the
//! instrumented paths run): fairness, try variants, owned guards and permits, close, add_permits,
//! acquire_many, forget, merge and split.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use taskscope::sync::{Mutex, RwLock, Semaphore, TryAcquireError};

fn guard() {
    static GUARD: OnceLock<taskscope::Guard> = OnceLock::new();
    GUARD.get_or_init(|| taskscope::Builder::new().init());
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn semaphore_is_fair_a_queued_large_request_blocks_later_small_ones() {
    guard();
    rt().block_on(async {
        let sem = Arc::new(Semaphore::new(1));
        let one = sem.acquire().await.unwrap();
        let s = sem.clone();
        let big = taskscope::spawn(async move { s.acquire_many(2).await.unwrap().num_permits() });
        tokio::task::yield_now().await;
        sem.add_permits(1); // one free, but the queued request for two comes first
        assert!(matches!(sem.try_acquire(), Err(TryAcquireError::NoPermits)));
        drop(one);
        assert_eq!(big.await.unwrap(), 2);
        assert_eq!(sem.available_permits(), 2);
    });
}

#[test]
fn close_wakes_every_waiter_with_an_error() {
    guard();
    rt().block_on(async {
        let sem = Arc::new(Semaphore::new(0));
        let waiters: Vec<_> = (0..5)
            .map(|_| {
                let s = sem.clone();
                taskscope::spawn(async move { s.acquire().await.is_err() })
            })
            .collect();
        tokio::task::yield_now().await;
        sem.close();
        for w in waiters {
            assert!(w.await.unwrap(), "every waiter gets AcquireError");
        }
        // add_permits on a closed semaphore still adds them; acquiring still fails.
        sem.add_permits(2);
        assert_eq!(sem.available_permits(), 2);
        assert!(sem.clone().acquire_owned().await.is_err());
    });
}

#[test]
fn permits_merge_split_and_forget() {
    guard();
    rt().block_on(async {
        let sem = Arc::new(Semaphore::new(5));
        let mut a = sem.try_acquire_many(2).unwrap();
        let b = sem.try_acquire().unwrap();
        a.merge(b);
        assert_eq!(a.num_permits(), 3);
        let c = a.split(1).unwrap();
        assert_eq!((a.num_permits(), c.num_permits()), (2, 1));
        assert!(a.split(3).is_none());
        assert!(std::ptr::eq(c.semaphore(), &*sem));
        drop(c);
        assert_eq!(sem.available_permits(), 3);
        a.forget();
        assert_eq!(
            sem.available_permits(),
            3,
            "forgotten permits never come back"
        );
        assert_eq!(sem.forget_permits(10), 3);
        assert_eq!(sem.available_permits(), 0);

        let sem = Arc::new(Semaphore::new(3));
        let mut owned = sem.clone().try_acquire_many_owned(2).unwrap();
        let single = sem.clone().try_acquire_owned().unwrap();
        owned.merge(single);
        assert_eq!(owned.num_permits(), 3);
        let split = owned.split(2).unwrap();
        assert!(Arc::ptr_eq(split.semaphore(), &sem));
        drop((owned, split));
        assert_eq!(sem.available_permits(), 3);
    });
}

#[test]
fn semaphore_stress_keeps_every_permit() {
    guard();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    rt.block_on(async {
        let sem = Arc::new(Semaphore::new(5));
        let tasks: Vec<_> = (0..100)
            .map(|_| {
                let s = sem.clone();
                taskscope::spawn(async move {
                    for _ in 0..100 {
                        let _p = s.acquire().await.unwrap();
                        tokio::task::yield_now().await;
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(sem.available_permits(), 5);
        assert_eq!(
            sem.clone()
                .acquire_many_owned(5)
                .await
                .unwrap()
                .num_permits(),
            5
        );
    });
}

#[test]
fn owned_mutex_guards_move_between_tasks() {
    guard();
    rt().block_on(async {
        let m = Arc::new(Mutex::new(0));
        let mut g = m.clone().lock_owned().await;
        *g += 1;
        let other = taskscope::spawn(async move {
            *g += 1;
            drop(g);
        });
        other.await.unwrap();
        assert_eq!(*m.lock().await, 2);
        let mapped = taskscope::sync::OwnedMutexGuard::map(m.clone().lock_owned().await, |v| v);
        assert_eq!(*mapped, 2);
        assert!(m.try_lock().is_err());
        drop(mapped);
        assert!(m.try_lock().is_ok());
    });
}

#[test]
fn rwlock_limits_readers_and_lets_a_writer_through_fairly() {
    guard();
    rt().block_on(async {
        let lock = Arc::new(RwLock::with_max_readers(0, 2));
        let r1 = lock.read().await;
        let r2 = lock.read().await;
        assert!(lock.try_read().is_err(), "at most two readers");
        drop(r1);
        let r3 = lock.try_read().unwrap();
        drop((r2, r3));
        let l = lock.clone();
        let w = l.clone().write_owned().await;
        let reader = taskscope::spawn(async move { *l.read().await });
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert!(!reader.is_finished(), "readers wait for the writer");
        let mut w = w;
        *w = 7;
        drop(w);
        assert_eq!(reader.await.unwrap(), 7);
        assert!(lock.clone().try_write_owned().is_ok());
        let mut lock = Arc::try_unwrap(lock).ok().unwrap();
        *lock.get_mut() += 1;
        assert_eq!(lock.into_inner(), 8);
    });
}

#[test]
fn locks_created_without_a_guard_work_as_plain_tokio_locks() {
    // Made before any Guard in this process? Not guaranteed here; `const_new` always is.
    static M: Mutex<u32> = Mutex::const_new(0);
    static S: Semaphore = Semaphore::const_new(1);
    rt().block_on(async {
        *M.lock().await += 1;
        let p = S.acquire().await.unwrap();
        assert!(S.try_acquire().is_err());
        drop(p);
        assert_eq!(*M.lock().await, 1);
    });
}

/// Runs `$op` (an uncontended acquire and release) in a loop in an instrumented task, and
/// returns after how many iterations another task on the same current-thread runtime ran.
macro_rules! iterations_until_other_task_runs {
    ($op:expr) => {{
        guard();
        let runtime = rt();
        let _entered = runtime.enter();
        runtime
            .block_on(taskscope::spawn(async move {
                let ran = Arc::new(std::sync::atomic::AtomicBool::new(false));
                let flag = ran.clone();
                // Queued behind the running task: it runs only when that task yields.
                let other = tokio::spawn(async move {
                    flag.store(true, std::sync::atomic::Ordering::SeqCst);
                });
                let mut seen = None;
                for i in 0..10_000u32 {
                    $op;
                    if ran.load(std::sync::atomic::Ordering::SeqCst) {
                        seen = Some(i);
                        break;
                    }
                }
                other.await.unwrap();
                seen
            }))
            .unwrap()
    }};
}

/// tokio's locks and semaphores spend the task's cooperative budget (`task::coop`): a loop that
/// only ever takes free locks still yields to the other tasks of its worker every so often
/// (tokio's budget is 128 units). The wrappers take a free lock with a `try_` call first, which
/// alone spends no budget: they must spend it themselves (one attempt in 8 per thread takes a
/// unit), or such a loop starves its worker.
#[test]
fn loops_of_uncontended_acquires_still_yield_to_other_tasks() {
    guard(); // before the locks are made: instrumented ones
    let mutex = Arc::new(Mutex::new(0u64));
    let seen = iterations_until_other_task_runs!(*mutex.lock().await += 1);
    assert!(seen.is_some_and(|i| i <= 2 * 8 * 128), "Mutex: {seen:?}");

    let rwlock = Arc::new(RwLock::new(0u64));
    let r = rwlock.clone();
    let seen = iterations_until_other_task_runs!(drop(r.read().await));
    assert!(
        seen.is_some_and(|i| i <= 2 * 8 * 128),
        "RwLock::read: {seen:?}"
    );
    let seen = iterations_until_other_task_runs!(*rwlock.write().await += 1);
    assert!(
        seen.is_some_and(|i| i <= 2 * 8 * 128),
        "RwLock::write: {seen:?}"
    );

    let semaphore = Arc::new(Semaphore::new(2));
    let seen = iterations_until_other_task_runs!(drop(semaphore.acquire().await.unwrap()));
    assert!(
        seen.is_some_and(|i| i <= 2 * 8 * 128),
        "Semaphore: {seen:?}"
    );
}

#[test]
fn blocking_acquire_waits_outside_the_runtime_and_panics_inside_it_like_tokios() {
    guard();
    let sem = Arc::new(Semaphore::named("blocking-sem", 1));
    let rt = rt();
    let held = rt.block_on(sem.clone().acquire_owned()).unwrap();
    let waiter = {
        let sem = sem.clone();
        std::thread::spawn(move || {
            let permit = sem.blocking_acquire().unwrap();
            assert_eq!(permit.num_permits(), 1);
            drop(permit);
            let many = sem.clone().blocking_acquire_many_owned(1).unwrap();
            assert_eq!(many.num_permits(), 1);
            drop(many);
            let owned = sem.blocking_acquire_owned().unwrap();
            assert_eq!(owned.num_permits(), 1);
        })
    };
    std::thread::sleep(Duration::from_millis(30));
    drop(held);
    waiter.join().unwrap();
    assert_eq!(sem.available_permits(), 1);
    // Inside an async context both panic, even with a permit free.
    for (name, call) in [
        (
            "taskscope",
            Box::new(|| drop(Semaphore::new(1).blocking_acquire())) as Box<dyn Fn() + Send>,
        ),
        (
            "tokio",
            Box::new(|| drop(tokio::sync::Semaphore::new(1).blocking_acquire())),
        ),
    ] {
        let panicked =
            rt.block_on(async { std::panic::catch_unwind(std::panic::AssertUnwindSafe(&call)) });
        assert!(panicked.is_err(), "{name}'s blocking_acquire in block_on");
    }
    sem.close();
    assert!(sem.blocking_acquire_many(1).is_err());
    // Three acquisitions through the blocking calls, one before them.
    let snap = taskscope::snapshot();
    let stats = snap
        .semaphores
        .iter()
        .find(|s| s.name == "blocking-sem")
        .expect("the semaphore");
    assert_eq!(stats.acquisitions, 4, "{stats:?}");
}

#[test]
fn a_write_guard_downgrades_to_a_part_of_the_value_or_stays_a_write_guard() {
    guard();
    static LIMITED: RwLock<u32> = RwLock::const_with_max_readers(5, 2);
    rt().block_on(async {
        let (a, b) = (LIMITED.read().await, LIMITED.read().await);
        assert_eq!(*a + *b, 10);
        assert!(LIMITED.try_read().is_err(), "two readers at most");
        drop((a, b));
        let lock = Arc::new(RwLock::new((1u32, String::from("b"))));
        let write = lock.write().await;
        let read = taskscope::sync::RwLockWriteGuard::downgrade_map(write, |v| &v.1);
        assert_eq!(*read, "b");
        // Readers get in beside the downgraded guard; a writer does not.
        assert_eq!(lock.try_read().unwrap().0, 1);
        assert!(lock.try_write().is_err());
        drop(read);
        let write = lock.write().await;
        let mut write =
            match taskscope::sync::RwLockWriteGuard::try_downgrade_map(write, |_| None::<&u32>) {
                Ok(_) => panic!("None keeps the write guard"),
                Err(write) => write,
            };
        write.0 = 2;
        let read = taskscope::sync::RwLockWriteGuard::try_downgrade_map(write, |v| Some(&v.0))
            .unwrap_or_else(|_| panic!("Some downgrades"));
        assert_eq!(*read, 2);
        assert!(lock.try_write().is_err());
        drop(read);
        assert!(lock.try_write().is_ok());
    });
}

#[test]
fn an_owned_write_guard_downgrades_and_an_owned_read_guard_maps() {
    use taskscope::sync::{OwnedRwLockReadGuard, OwnedRwLockWriteGuard};
    guard();
    rt().block_on(async {
        let lock = Arc::new(RwLock::new((1u32, String::from("b"))));
        let write = lock.clone().write_owned().await;
        assert!(Arc::ptr_eq(OwnedRwLockWriteGuard::rwlock(&write), &lock));
        let read = OwnedRwLockWriteGuard::downgrade_map(write, |v| &v.1);
        assert_eq!(*read, "b");
        assert!(Arc::ptr_eq(OwnedRwLockReadGuard::rwlock(&read), &lock));
        // Readers get in beside the downgraded guard; a writer does not.
        assert_eq!(lock.try_read().unwrap().0, 1);
        assert!(lock.try_write().is_err());
        drop(read);

        let write = lock.clone().write_owned().await;
        let mut write = match OwnedRwLockWriteGuard::try_downgrade_map(write, |_| None::<&u32>) {
            Ok(_) => panic!("None keeps the write guard"),
            Err(write) => write,
        };
        assert!(lock.try_read().is_err(), "still writing");
        write.0 = 2;
        let read = OwnedRwLockWriteGuard::try_downgrade_map(write, |v| Some(&v.0))
            .unwrap_or_else(|_| panic!("Some downgrades"));
        assert_eq!(*read, 2);
        assert!(lock.try_write().is_err());
        drop(read);

        let read = lock.clone().write_owned().await.downgrade();
        assert_eq!(read.0, 2);
        assert!(lock.try_read().is_ok() && lock.try_write().is_err());
        let read = match OwnedRwLockReadGuard::try_map(read, |_| None::<&u32>) {
            Ok(_) => panic!("None gives the guard back"),
            Err(read) => read,
        };
        let part = OwnedRwLockReadGuard::map(read, |v| &v.1);
        assert_eq!(format!("{part} {part:?}"), "b \"b\"");
        let part = OwnedRwLockReadGuard::try_map(part, |s| s.get(..1))
            .unwrap_or_else(|_| panic!("Some maps"));
        assert_eq!(&*part, "b");
        assert!(lock.try_write().is_err());
        drop(part);
        assert!(
            lock.try_write().is_ok(),
            "the mapped guard released the lock"
        );
    });
}

#[test]
fn every_guard_maps_and_try_maps_and_keeps_the_lock_until_dropped() {
    use taskscope::sync::{
        MappedMutexGuard, MutexGuard, OwnedMappedMutexGuard, OwnedMutexGuard,
        OwnedRwLockMappedWriteGuard, OwnedRwLockWriteGuard, RwLockMappedWriteGuard,
        RwLockReadGuard, RwLockWriteGuard,
    };
    guard();
    rt().block_on(async {
        let mutex = Arc::new(Mutex::new((1u32, vec![2u32])));
        let owned = mutex.clone().lock_owned().await;
        let owned = OwnedMutexGuard::try_map(owned, |_| None::<&mut u32>)
            .expect_err("None gives the guard back");
        let mut part = OwnedMutexGuard::try_map(owned, |v| Some(&mut v.1))
            .ok()
            .unwrap();
        part.push(3);
        let mut first = OwnedMappedMutexGuard::map(part, |v| &mut v[0]);
        *first += 10;
        let first = OwnedMappedMutexGuard::try_map(first, |_| None::<&mut u32>)
            .err()
            .unwrap();
        assert!(
            mutex.try_lock().is_err(),
            "the mapped guard holds the mutex"
        );
        drop(
            OwnedMappedMutexGuard::try_map(first, |v| Some(v))
                .ok()
                .unwrap(),
        );
        let guard = MutexGuard::map(mutex.try_lock().unwrap(), |v| &mut v.1);
        let guard = MappedMutexGuard::try_map(guard, |_| None::<&mut u32>)
            .err()
            .unwrap();
        let last = MappedMutexGuard::try_map(guard, |v| v.last_mut())
            .ok()
            .unwrap();
        assert_eq!(*last, 3);
        assert!(mutex.try_lock().is_err());
        drop(last);
        assert_eq!(*mutex.lock().await, (1, vec![12, 3]));

        let lock = Arc::new(RwLock::new((1u32, String::from("a"))));
        let read = RwLockReadGuard::try_map(lock.read().await, |_| None::<&u32>)
            .err()
            .unwrap();
        let read = RwLockReadGuard::try_map(read, |v| Some(&v.1)).ok().unwrap();
        assert_eq!(&*read, "a");
        assert!(lock.try_write().is_err() && lock.try_read().is_ok());
        drop(read);
        let write = RwLockWriteGuard::try_map(lock.write().await, |_| None::<&mut u32>)
            .err()
            .unwrap();
        let mut whole = RwLockWriteGuard::into_mapped(write);
        whole.0 = 2;
        let mut text = RwLockMappedWriteGuard::map(whole, |v| &mut v.1);
        text.push('b');
        let text = RwLockMappedWriteGuard::try_map(text, |_| None::<&mut u32>)
            .err()
            .unwrap();
        let mut text = RwLockMappedWriteGuard::try_map(text, |v| Some(v))
            .ok()
            .unwrap();
        text.push('c');
        assert!(
            lock.try_read().is_err(),
            "the mapped write guard keeps readers out"
        );
        drop(text);
        let mut number = RwLockWriteGuard::try_map(lock.write().await, |v| Some(&mut v.0))
            .ok()
            .unwrap();
        *number += 1;
        drop(number);
        assert_eq!(*lock.read().await, (3, "abc".to_string()));

        let owned = lock.clone().write_owned().await;
        let owned = OwnedRwLockWriteGuard::try_map(owned, |_| None::<&mut u32>)
            .err()
            .unwrap();
        let mut whole = OwnedRwLockWriteGuard::into_mapped(owned);
        assert!(Arc::ptr_eq(
            OwnedRwLockMappedWriteGuard::rwlock(&whole),
            &lock
        ));
        whole.0 = 4;
        let text = OwnedRwLockMappedWriteGuard::map(whole, |v| &mut v.1);
        let text = OwnedRwLockMappedWriteGuard::try_map(text, |_| None::<&mut u32>)
            .err()
            .unwrap();
        let mut text = OwnedRwLockMappedWriteGuard::try_map(text, |v| Some(v))
            .ok()
            .unwrap();
        text.push('d');
        // Moves to another task like tokio's owned guard.
        let lock2 = lock.clone();
        let waiting = tokio::spawn(async move { lock2.read().await.1.clone() });
        tokio::task::yield_now().await;
        assert!(
            !waiting.is_finished(),
            "the reader waits for the owned mapped guard"
        );
        tokio::spawn(async move { drop(text) }).await.unwrap();
        assert_eq!(waiting.await.unwrap(), "abcd");
        let mut number = OwnedRwLockWriteGuard::map(lock.clone().write_owned().await, |v| &mut v.0);
        *number += 1;
        drop(number);
        let number =
            OwnedRwLockWriteGuard::try_map(lock.clone().write_owned().await, |v| Some(&mut v.0))
                .ok()
                .unwrap();
        assert_eq!(*number, 5);
        drop(number);
        assert!(lock.try_write().is_ok());
    });
}

#[test]
fn debug_reads_as_tokios() {
    guard();
    rt().block_on(async {
        let (ours, theirs) = (Mutex::new("data"), tokio::sync::Mutex::new("data"));
        assert_eq!(format!("{ours:?}"), format!("{theirs:?}"));
        let (g1, g2) = (ours.lock().await, theirs.lock().await);
        assert_eq!(format!("{ours:?}"), "Mutex { data: <locked> }");
        assert_eq!(format!("{ours:?}"), format!("{theirs:?}"));
        assert_eq!(format!("{g1:?}"), format!("{g2:?}"));
        drop((g1, g2));

        let (ours, theirs) = (RwLock::new(7), tokio::sync::RwLock::new(7));
        assert_eq!(format!("{ours:?}"), format!("{theirs:?}"));
        let (w1, w2) = (ours.write().await, theirs.write().await);
        assert_eq!(format!("{ours:?}"), format!("{theirs:?}"));
        drop((w1, w2));

        let ours = Arc::new(Semaphore::new(3));
        let theirs = Arc::new(tokio::sync::Semaphore::new(3));
        assert_eq!(format!("{ours:?}"), format!("{theirs:?}"));
        let (p1, p2) = (
            ours.acquire_many(2).await.unwrap(),
            theirs.acquire_many(2).await.unwrap(),
        );
        assert_eq!(format!("{p1:?}"), format!("{p2:?}"));
        let (o1, o2) = (
            ours.clone().acquire_owned().await.unwrap(),
            theirs.clone().acquire_owned().await.unwrap(),
        );
        assert_eq!(format!("{o1:?}"), format!("{o2:?}"));
    });
}

#[test]
fn guards_print_like_tokio_s_debug_and_display_of_the_value() {
    guard();
    rt().block_on(async {
        let lock = Arc::new(RwLock::new(7u32));
        assert_eq!(
            format!("{} {:?}", lock.read().await, lock.read().await),
            "7 7"
        );
        let owned = lock.clone().read_owned().await;
        assert_eq!(owned.to_string(), "7");
        drop(owned);
        assert_eq!(lock.write().await.to_string(), "7");
        let mutex = Mutex::new(String::from("ok"));
        let held = mutex.lock().await;
        assert_eq!(format!("{held} {held:?}"), "ok \"ok\"");
    });
}
