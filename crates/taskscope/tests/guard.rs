//! What happens when the Guard drops: `tasks_alive_at_exit`, the JSON report, and a clean stop.

use std::time::Duration;

/// The tests of this file each need the process's one Guard: wait for the other to finish.
fn exclusive(builder: impl Fn() -> taskscope::Builder) -> taskscope::Guard {
    loop {
        match builder().try_init() {
            Ok(guard) => return guard,
            Err(taskscope::Error::AlreadyRunning) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => panic!("{e}"),
        }
    }
}

#[test]
fn dropping_the_guard_reports_alive_tasks_and_writes_the_json_report() {
    let dir = std::env::temp_dir().join(format!("taskscope-guard-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("report.json");
    let guard = exclusive(|| {
        // No live server: under nextest each test is a process of its own, and two would
        // race for the default port.
        taskscope::Builder::new()
            .no_server()
            .blocked_threshold(Duration::from_millis(10))
            .report(&path)
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        for _ in 0..3 {
            taskscope::spawn_named("forever", std::future::pending::<()>());
        }
        taskscope::spawn_named("slow-poll", async {
            std::thread::sleep(Duration::from_millis(30))
        })
        .await
        .unwrap();
        for _ in 0..10 {
            taskscope::spawn_named("short", async { tokio::task::yield_now().await })
                .await
                .unwrap();
        }
        let lock = taskscope::sync::Mutex::named("report-lock", 0);
        let sem = taskscope::sync::Semaphore::named("report-sem", 3);
        for _ in 0..5 {
            *lock.lock().await += 1;
            let _p = sem.acquire().await.unwrap();
        }
        // Alive at the end, like locks in a long-lived struct.
        std::mem::forget(lock);
        std::mem::forget(sem);
    });
    let snap = guard.finish().expect("active");
    let alive = snap
        .warnings_of(taskscope::WarningKind::TasksAliveAtExit)
        .next()
        .expect("tasks_alive_at_exit");
    assert_eq!(alive.count, Some(3));
    assert!(alive.message.contains("forever"), "{}", alive.message);
    assert_eq!(alive.tasks.len(), 3);

    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(json["schema"], "taskscope.report/v1");
    assert_eq!(json["process"]["pid"], std::process::id());
    let tasks = json["tasks"].as_array().unwrap();
    let short = tasks.iter().find(|t| t["name"] == "short").unwrap();
    assert_eq!(short["spawned"], 10);
    assert_eq!(short["completed"], 10);
    assert_eq!(short["polls"], 20);
    assert_eq!(short["poll_ns"]["count"], 20);
    let slow = tasks.iter().find(|t| t["name"] == "slow-poll").unwrap();
    let p50 = slow["poll_ns"]["p50"].as_u64().unwrap();
    assert!((30_000_000..60_000_000).contains(&p50), "p50 {p50}");
    assert!(slow["location"].as_str().unwrap().starts_with(file!()));
    // The slowest group comes first: a reader sees what to fix.
    assert_eq!(tasks[0]["name"], "slow-poll");
    let lock = json["locks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == "report-lock")
        .unwrap();
    assert_eq!(lock["kind"], "mutex");
    assert_eq!(lock["acquisitions"], 5);
    assert_eq!(lock["wait_ns"]["count"], 5);
    assert!(lock["location"].as_str().unwrap().starts_with(file!()));
    let sem = json["semaphores"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "report-sem")
        .unwrap();
    assert_eq!(
        (sem["permits"].as_u64(), sem["acquisitions"].as_u64()),
        (Some(3), Some(5))
    );
    let kinds: Vec<&str> = json["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["kind"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains(&"blocked_worker") && kinds.contains(&"tasks_alive_at_exit"),
        "{kinds:?}"
    );
    rt.shutdown_background();
    std::fs::remove_dir_all(&dir).unwrap();

    // Stopped: a new Guard starts afresh.
    let guard = exclusive(|| taskscope::Builder::new().no_server());
    assert!(taskscope::snapshot().tasks.is_empty());
    drop(guard);
}

#[test]
fn second_guard_while_one_is_alive_is_an_error() {
    let guard = exclusive(|| taskscope::Builder::new().no_server());
    assert!(matches!(
        taskscope::Builder::new().try_init(),
        Err(taskscope::Error::AlreadyRunning)
    ));
    let inert = taskscope::Builder::new().init();
    assert!(!inert.is_active());
    drop(guard);
}

#[test]
fn a_panic_whose_handle_is_never_awaited_is_reported_when_the_guard_stops() {
    let guard = exclusive(|| taskscope::Builder::new().no_server());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (never, awaited) = rt.block_on(async {
        let never = taskscope::spawn_named("never-awaited", async { panic!("kept, not awaited") });
        let awaited = taskscope::spawn_named("awaited", async { panic!("awaited in time") });
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            taskscope::snapshot()
                .warnings_of(taskscope::WarningKind::TaskPanicked)
                .next()
                .is_none(),
            "reported while its handle could still be awaited"
        );
        assert!(awaited.await.unwrap_err().is_panic());
        (never, ())
    });
    let snap = guard.finish().expect("active");
    let panics: Vec<_> = snap
        .warnings_of(taskscope::WarningKind::TaskPanicked)
        .collect();
    assert_eq!(panics.len(), 1, "{panics:#?}");
    assert_eq!(panics[0].task_name.as_deref(), Some("never-awaited"));
    assert!(
        panics[0].message.contains("never awaited"),
        "{}",
        panics[0].message
    );
    drop((never, awaited));
}
