//! `unbounded_spawn`: a loop that spawns a task per item with no bound is reported while it
//! happens, naming the group and its spawn line; the same work through a semaphore acquired
//! before each spawn, and a steady population of long-lived tasks, stay silent. On the
//! current-thread and the multi-thread runtime.

mod common;

use std::sync::Arc;
use std::time::Duration;

use taskscope::WarningKind;

const ITEMS: usize = 3_000;

fn guard() -> taskscope::Guard {
    common::exclusive(|| {
        taskscope::Builder::new()
            .no_server()
            .unbounded_spawn_alive(2_000)
    })
}

/// `unbounded_spawn` warnings of the group named `name`, as (ongoing, message).
fn fan_outs(name: &str) -> Vec<(bool, String)> {
    taskscope::snapshot()
        .warnings_of(WarningKind::UnboundedSpawn)
        .filter(|w| w.task_name.as_deref() == Some(name))
        .map(|w| (w.ongoing, w.message.clone()))
        .collect()
}

fn unbounded_fan_out_is_reported_live(multi: bool) {
    let _guard = guard();
    common::runtime(multi).block_on(async {
        let handles: Vec<_> = (0..ITEMS)
            .map(|i| {
                taskscope::spawn_named("fetch", async move {
                    tokio::time::sleep(Duration::from_millis(2_500)).await;
                    i
                })
            })
            .collect();
        // While the tasks are in flight, the warning is there, naming the spawn line.
        let mut seen = Vec::new();
        for _ in 0..40 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            seen = fan_outs("fetch");
            if !seen.is_empty() {
                break;
            }
        }
        assert_eq!(seen.len(), 1, "{seen:?}");
        let (ongoing, message) = &seen[0];
        assert!(*ongoing, "{message}");
        assert!(message.contains("fan_out.rs:"), "the spawn line: {message}");
        assert!(message.contains("3000 alive"), "{message}");
        for h in handles {
            h.await.unwrap();
        }
        // Once they are done, the warning is over (at the next second's count).
        tokio::time::sleep(Duration::from_millis(1_300)).await;
        let after = fan_outs("fetch");
        assert_eq!(after.len(), 1, "{after:?}");
        assert!(!after[0].0, "ended: {}", after[0].1);
    });
}

fn bounded_fan_out_and_a_steady_population_are_silent(multi: bool) {
    let _guard = guard();
    common::runtime(multi).block_on(async {
        // The same items through a semaphore of 64, acquired before each spawn: at most 64
        // alive at once, 3,000 spawned in all.
        let permits = Arc::new(tokio::sync::Semaphore::new(64));
        let mut handles = Vec::new();
        for i in 0..ITEMS {
            let permit = permits.clone().acquire_owned().await.unwrap();
            handles.push(taskscope::spawn_named("bounded-fetch", async move {
                tokio::time::sleep(Duration::from_millis(2)).await;
                drop(permit);
                i
            }));
        }
        for h in handles {
            h.await.unwrap();
        }
        // A server's connections under a load that grows slowly past the threshold and then
        // holds: 1,500 long-lived tasks, 60 more every 200 ms up to 2,400, then steady.
        let (stop, _) = tokio::sync::watch::channel(());
        let spawn_connection = |stop: &tokio::sync::watch::Sender<()>| {
            let mut stop = stop.subscribe();
            taskscope::spawn_named("connection", async move {
                let _ = stop.changed().await;
            })
        };
        let mut connections: Vec<_> = (0..1_500).map(|_| spawn_connection(&stop)).collect();
        for _ in 0..15 {
            tokio::time::sleep(Duration::from_millis(200)).await;
            connections.extend((0..60).map(|_| spawn_connection(&stop)));
        }
        tokio::time::sleep(Duration::from_millis(2_200)).await;
        assert_eq!(connections.len(), 2_400);
        assert!(
            fan_outs("bounded-fetch").is_empty(),
            "{:?}",
            fan_outs("bounded-fetch")
        );
        assert!(
            fan_outs("connection").is_empty(),
            "{:?}",
            fan_outs("connection")
        );
        drop(stop);
        for c in connections {
            c.await.unwrap();
        }
    });
}

#[test]
fn unbounded_fan_out_is_reported_live_on_a_current_thread_runtime() {
    unbounded_fan_out_is_reported_live(false);
}

#[test]
fn unbounded_fan_out_is_reported_live_on_a_multi_thread_runtime() {
    unbounded_fan_out_is_reported_live(true);
}

#[test]
fn bounded_fan_out_and_steady_connections_are_silent_on_a_current_thread_runtime() {
    bounded_fan_out_and_a_steady_population_are_silent(false);
}

#[test]
fn bounded_fan_out_and_steady_connections_are_silent_on_a_multi_thread_runtime() {
    bounded_fan_out_and_a_steady_population_are_silent(true);
}
