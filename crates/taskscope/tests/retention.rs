//! Memory is bounded by retention, not by run time: a long run of short tasks keeps a bounded
//! number of tasks in full while every one stays counted in its group.

#[test]
fn millions_of_short_tasks_keep_bounded_state_and_exact_group_counts() {
    let guard = taskscope::Builder::new().retained_tasks(100).init();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    const TASKS: u64 = 300_000;
    rt.block_on(async {
        let mut batch = Vec::with_capacity(1000);
        for i in 0..TASKS {
            batch.push(taskscope::spawn_named("short", async {}));
            if i % 1000 == 999 {
                for h in batch.drain(..) {
                    h.await.unwrap();
                }
            }
        }
    });
    let snap = guard.finish().unwrap();
    let group = snap.group("short").unwrap();
    // Every task is instrumented: spawns and ends past a full event queue wait in its
    // overflows, none is shed.
    assert_eq!((group.spawned, group.completed), (TASKS, TASKS));
    assert_eq!(snap.dropped_events, 0);
    assert_eq!(
        snap.warnings_of(taskscope::WarningKind::EventsDropped)
            .count(),
        0
    );
    assert!(
        snap.tasks.len() <= 100,
        "{} tasks kept in full",
        snap.tasks.len()
    );
}
