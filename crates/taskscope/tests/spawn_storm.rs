//! A spawn storm that outruns the watchdog's drain of the event queue (16 Ki events): every task
//! is still registered, none is shed, and the counts are exact.

use std::sync::Arc;

mod common;

#[test]
fn a_storm_past_the_event_queue_registers_every_task_and_sheds_none() {
    const TASKS: u64 = 200_000;
    let guard = common::exclusive(|| taskscope::Builder::new().no_server());
    let rt = common::current_thread();
    // Closed to let them all finish (also those not polled yet).
    let release = Arc::new(tokio::sync::Semaphore::new(0));
    let handles = rt.block_on(async {
        // All spawned before any runs (a current-thread runtime runs them once this yields),
        // far faster than the watchdog drains the queue every 2 ms.
        let handles: Vec<_> = (0..TASKS)
            .map(|_| {
                let release = release.clone();
                taskscope::spawn_named("storm", async move {
                    let _ = release.acquire().await;
                })
            })
            .collect();
        tokio::task::yield_now().await;
        handles
    });
    let snap = common::wait_for(std::time::Duration::from_secs(10), |snap| {
        let group = snap.task_groups.iter().find(|g| g.name == "storm")?;
        (group.spawned == TASKS).then(|| snap.clone())
    })
    .expect("every spawn registered");
    assert_eq!(snap.dropped_events, 0);
    let group = snap.task_groups.iter().find(|g| g.name == "storm").unwrap();
    assert_eq!(group.alive, TASKS);
    rt.block_on(async {
        release.close();
        for handle in handles {
            handle.await.unwrap();
        }
    });
    let end = guard.finish().expect("active guard");
    let group = end.task_groups.iter().find(|g| g.name == "storm").unwrap();
    assert_eq!(
        (group.spawned, group.completed, group.alive),
        (TASKS, TASKS, 0)
    );
    assert_eq!(end.dropped_events, 0);
}
