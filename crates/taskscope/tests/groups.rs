//! Task groups: one per name and spawn location, bounded in number (its own test process: a
//! Guard observes the whole process).

/// Per-request names cannot grow memory without bound: past 4,096 groups, new names fold into
/// one group per spawn location, and every spawn is still counted.
#[test]
fn per_request_names_fold_into_one_group_past_the_limit() {
    let guard = taskscope::Builder::new().retained_tasks(10).init();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    const TASKS: u64 = 5_000;
    rt.block_on(async {
        for i in 0..TASKS {
            taskscope::spawn_named(format!("conn-{i}"), async {})
                .await
                .unwrap();
            if i % 1000 == 999 {
                // Let the registry drain the events: this test is about groups, not drops.
                let _ = taskscope::snapshot();
            }
        }
        // Unnamed tasks are grouped under their spawn location.
        for _ in 0..3 {
            taskscope::spawn(async {}).await.unwrap();
        }
    });
    let snap = guard.finish().unwrap();
    assert_eq!(snap.dropped_events, 0);
    let named: Vec<_> = snap
        .task_groups
        .iter()
        .filter(|g| g.name.starts_with("conn-"))
        .collect();
    assert_eq!(named.len(), 4096);
    assert!(named.iter().all(|g| g.spawned == 1 && g.completed == 1));
    let other = snap.group("(other names)").expect("folded group");
    assert_eq!(other.spawned, TASKS - 4096);
    assert_eq!(other.completed, TASKS - 4096);
    let unnamed = snap
        .task_groups
        .iter()
        .find(|g| g.name.starts_with("crates/taskscope/tests/groups.rs:"))
        .expect("unnamed group named after its location");
    assert_eq!((unnamed.spawned, unnamed.completed), (3, 3));
    assert_eq!(unnamed.name, unnamed.location);
}
