//! `stale_update`: the guide's read/await/write race — a task reads a value under a lock,
//! releases it, awaits, then writes a value computed from what it read while other tasks wrote
//! in between — is reported with the read and the write line, on a `Mutex` and an `RwLock`,
//! and for a check-then-set split by an `.await` (and, without the word "awaited", a read and
//! a write in one poll with another thread's write in between). Its safe twins stay silent:
//! the read-modify-write in one critical section, a single writer that reads, awaits and
//! writes, readers only, a queue whose every hold writes, a cache that checks, fetches and
//! inserts other keys (maps are not judged), a check repeated under the lock before the set,
//! and a write that re-reads and validates the value under the lock first.
//! On the current-thread and the multi-thread runtime.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use taskscope::sync::{Mutex, RwLock};
use taskscope::WarningKind;

const TASKS: u64 = 8;
const ROUNDS: u64 = 50;

fn guard() -> taskscope::Guard {
    common::exclusive(|| taskscope::Builder::new().no_server())
}

/// Every `stale_update` warning now: (message, count, location).
fn stale_updates() -> Vec<(String, u64, String)> {
    taskscope::snapshot()
        .warnings_of(WarningKind::StaleUpdate)
        .map(|w| {
            (
                w.message.clone(),
                w.count.unwrap_or(1),
                w.location.clone().unwrap_or_default(),
            )
        })
        .collect()
}

/// Spawns `TASKS` tasks named `name` running `round` `ROUNDS` times each, and awaits them.
async fn run_tasks<F, Fut>(name: &'static str, round: F)
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let round = Arc::new(round);
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| {
            let round = round.clone();
            taskscope::spawn_named(name, async move {
                for r in 0..ROUNDS {
                    round(t * ROUNDS + r).await;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
}

/// The file's name and a line, as warnings print a location.
fn at(line: u32) -> String {
    format!("stale_update.rs:{line}:")
}

fn a_read_await_write_on_a_mutex_is_reported(multi: bool) {
    let _guard = guard();
    let (updates, lines) = common::runtime(multi).block_on(async {
        let balance = Arc::new(Mutex::named("balance", 0u64));
        let lines = Arc::new(std::sync::Mutex::new((0, 0)));
        let (b, l) = (balance.clone(), lines.clone());
        run_tasks("deposit", move |_| {
            let (balance, lines) = (b.clone(), l.clone());
            async move {
                // The guide's race: `current = data[key]; await validate(); data[key] = current + value`.
                let (current, read) = (*balance.lock().await, line!());
                tokio::time::sleep(Duration::from_micros(200)).await;
                let (mut guard, write) = (balance.lock().await, line!());
                *guard = current + 1;
                *lines.lock().unwrap() = (read, write);
            }
        })
        .await;
        let updates = *balance.lock().await;
        let lines = *lines.lock().unwrap();
        (updates, lines)
    });
    // The race is real: updates were lost.
    assert!(updates < TASKS * ROUNDS, "{updates} of {}", TASKS * ROUNDS);
    let found = stale_updates();
    assert_eq!(found.len(), 1, "{found:?}");
    let (message, count, location) = &found[0];
    assert!(message.contains("task `deposit`"), "{message}");
    assert!(message.contains("lock `balance`"), "{message}");
    assert!(message.contains("awaited, then wrote"), "{message}");
    assert!(
        message.contains(&at(lines.0)),
        "read line {}: {message}",
        lines.0
    );
    assert!(
        message.contains(&at(lines.1)),
        "write line {}: {message}",
        lines.1
    );
    assert!(location.contains(&at(lines.1)), "{location}");
    // One row for every repeat of the same pair of sites.
    assert!(*count > 1 && *count <= TASKS * ROUNDS, "count {count}");
}

#[test]
fn a_read_await_write_on_a_mutex_is_reported_current_thread() {
    a_read_await_write_on_a_mutex_is_reported(false);
}

#[test]
fn a_read_await_write_on_a_mutex_is_reported_multi_thread() {
    a_read_await_write_on_a_mutex_is_reported(true);
}

fn a_read_await_write_on_an_rwlock_is_reported(multi: bool) {
    let _guard = guard();
    let (updates, read_line) = common::runtime(multi).block_on(async {
        let hits = Arc::new(RwLock::named("hits", 0u64));
        let line = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let (h, l) = (hits.clone(), line.clone());
        run_tasks("counter", move |_| {
            let (hits, line) = (h.clone(), l.clone());
            async move {
                let (seen, read) = (*hits.read().await, line!());
                line.store(read, std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(Duration::from_micros(200)).await;
                *hits.write().await = seen + 1;
            }
        })
        .await;
        let updates = *hits.read().await;
        (updates, line.load(std::sync::atomic::Ordering::Relaxed))
    });
    assert!(updates < TASKS * ROUNDS, "{updates}");
    let found = stale_updates();
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].0.contains("lock `hits`"), "{}", found[0].0);
    assert!(found[0].0.contains(&at(read_line)), "{}", found[0].0);
}

#[test]
fn a_read_await_write_on_an_rwlock_is_reported_current_thread() {
    a_read_await_write_on_an_rwlock_is_reported(false);
}

#[test]
fn a_read_await_write_on_an_rwlock_is_reported_multi_thread() {
    a_read_await_write_on_an_rwlock_is_reported(true);
}

#[test]
fn a_check_then_set_split_by_an_await_is_reported() {
    let _guard = guard();
    let overwritten = common::runtime(true).block_on(async {
        let leader: Arc<Mutex<Option<u64>>> = Arc::new(Mutex::named("leader", None));
        let overwritten = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let (l, n) = (leader.clone(), overwritten.clone());
        run_tasks("elect", move |i| {
            let (leader, overwritten) = (l.clone(), n.clone());
            async move {
                let vacant = leader.lock().await.is_none();
                tokio::time::sleep(Duration::from_micros(200)).await; // ask the others
                if vacant {
                    if leader.lock().await.replace(i).is_some() {
                        overwritten.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    tokio::time::sleep(Duration::from_micros(200)).await;
                    *leader.lock().await = None; // step down
                }
            }
        })
        .await;
        overwritten.load(std::sync::atomic::Ordering::Relaxed)
    });
    // A task took a seat it had seen vacant while another had taken it meanwhile.
    assert!(overwritten > 0, "{overwritten}");
    let found = stale_updates();
    assert!(
        found.iter().any(|(m, _, _)| m.contains("lock `leader`")),
        "{found:?}"
    );
}

fn safe_twins_stay_silent(multi: bool) {
    let _guard = guard();
    let rt = common::runtime(multi);

    // The read-modify-write in one critical section, with awaits between rounds: nothing lost.
    let balance = Arc::new(Mutex::new(0u64));
    let b = balance.clone();
    rt.block_on(run_tasks("one_section", move |_| {
        let balance = b.clone();
        async move {
            tokio::time::sleep(Duration::from_micros(200)).await;
            let mut guard = balance.lock().await;
            let current = *guard;
            *guard = current + 1;
        }
    }));
    assert_eq!(*balance.blocking_lock(), TASKS * ROUNDS);

    // Readers only, awaiting between reads.
    let config = Arc::new(RwLock::new(7u64));
    let c = config.clone();
    rt.block_on(run_tasks("readers", move |_| {
        let config = c.clone();
        async move {
            let v = *config.read().await;
            tokio::time::sleep(Duration::from_micros(200)).await;
            assert_eq!(*config.read().await, v);
        }
    }));

    // A queue: every hold writes (push, then pop), awaiting in between.
    let queue = Arc::new(Mutex::new(Vec::<u64>::new()));
    let q = queue.clone();
    rt.block_on(run_tasks("queue", move |i| {
        let queue = q.clone();
        async move {
            queue.lock().await.push(i);
            tokio::time::sleep(Duration::from_micros(200)).await;
            queue.lock().await.pop();
        }
    }));

    // A cache: check, fetch, then insert with `entry().or_insert()`, while other tasks insert
    // other keys. (Maps, vectors and strings are not judged: a write changes one entry of many.)
    let cache: Arc<Mutex<HashMap<u64, u64>>> = Arc::new(Mutex::new(HashMap::new()));
    let m = cache.clone();
    rt.block_on(run_tasks("cache", move |i| {
        let cache = m.clone();
        async move {
            if !cache.lock().await.contains_key(&i) {
                tokio::time::sleep(Duration::from_micros(200)).await;
                cache.lock().await.entry(i).or_insert(i * 2);
            }
        }
    }));
    assert_eq!(cache.blocking_lock().len() as u64, TASKS * ROUNDS);

    // A plain value checked again under the lock before it is set.
    let slot: Arc<Mutex<Option<u64>>> = Arc::new(Mutex::new(None));
    let s = slot.clone();
    rt.block_on(run_tasks("rechecked", move |i| {
        let slot = s.clone();
        async move {
            if i % ROUNDS == 0 {
                *slot.lock().await = None;
            }
            if slot.lock().await.is_none() {
                tokio::time::sleep(Duration::from_micros(200)).await;
                let mut guard = slot.lock().await;
                if guard.is_none() {
                    *guard = Some(i);
                }
            }
        }
    }));

    // Read, await, then re-read and validate under the lock before writing (an optimistic
    // update that retries): nothing lost.
    let version = Arc::new(Mutex::new(0u64));
    let v = version.clone();
    rt.block_on(run_tasks("validated", move |_| {
        let version = v.clone();
        async move {
            loop {
                let seen = *version.lock().await;
                tokio::time::sleep(Duration::from_micros(200)).await;
                let mut guard = version.lock().await;
                if *guard == seen {
                    *guard = seen + 1;
                    break;
                }
            }
        }
    }));
    assert_eq!(*version.blocking_lock(), TASKS * ROUNDS);

    assert_eq!(stale_updates(), Vec::new());
}

#[test]
fn safe_twins_stay_silent_current_thread() {
    safe_twins_stay_silent(false);
}

#[test]
fn safe_twins_stay_silent_multi_thread() {
    safe_twins_stay_silent(true);
}

#[test]
fn a_read_then_write_in_one_poll_over_another_threads_write_is_reported_without_an_await() {
    let _guard = guard();
    let (total, read_line) = common::runtime(true).block_on(async {
        let total = Arc::new(Mutex::named("total", 0u64));
        let t = total.clone();
        let read_line = taskscope::spawn_named("split", async move {
            let (current, read) = (*t.lock().await, line!());
            // Another thread writes meanwhile (this poll waits for it: a short, deliberate block).
            let other = t.clone();
            std::thread::spawn(move || *other.blocking_lock() += 10)
                .join()
                .unwrap();
            *t.lock().await = current + 1;
            read
        })
        .await
        .unwrap();
        let total = *total.lock().await;
        (total, read_line)
    });
    assert_eq!(total, 1, "the other thread's update is lost");
    let found = stale_updates();
    assert_eq!(found.len(), 1, "{found:?}");
    let message = &found[0].0;
    assert!(message.contains(&at(read_line)), "{message}");
    assert!(!message.contains("awaited"), "{message}");
    assert!(
        message.contains("code outside instrumented tasks"),
        "{message}"
    );
}

#[test]
fn a_single_writer_that_reads_awaits_and_writes_stays_silent() {
    // One task reads, awaits and writes back: no other writer in between, nothing is lost.
    let _guard = guard();
    let total = common::runtime(true).block_on(async {
        let total = Arc::new(Mutex::new(0u64));
        let t = total.clone();
        taskscope::spawn_named("alone", async move {
            for _ in 0..ROUNDS {
                let current = *t.lock().await;
                tokio::time::sleep(Duration::from_micros(200)).await;
                *t.lock().await = current + 1;
            }
        })
        .await
        .unwrap();
        let total = *total.lock().await;
        total
    });
    assert_eq!(total, ROUNDS);
    assert_eq!(stale_updates(), Vec::new());
}
