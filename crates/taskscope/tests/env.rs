//! Environment configuration: a bad value is a clear error from `try_init()` and a logged
//! fallback from `init()`, never a panic.

#[test]
fn bad_environment_values_are_errors_and_init_falls_back() {
    std::env::set_var("TASKSCOPE_BLOCKED_MS", "ten");
    let err = taskscope::try_init().unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("TASKSCOPE_BLOCKED_MS") && text.contains("ten"),
        "{text}"
    );
    // init() logs and runs with the default.
    let guard = taskscope::init();
    assert!(guard.is_active());
    drop(guard);

    std::env::set_var("TASKSCOPE_BLOCKED_MS", "25");
    std::env::set_var("TASKSCOPE_REPORT", "out.xml");
    let err = taskscope::try_init().unwrap_err();
    assert!(
        matches!(err, taskscope::Error::UnsupportedReportFormat(_)),
        "{err}"
    );
    std::env::remove_var("TASKSCOPE_REPORT");
    let guard = taskscope::try_init().expect("valid environment");
    drop(guard);
    std::env::remove_var("TASKSCOPE_BLOCKED_MS");

    // The sampling interval, under its name and its name before 0.1.6 (the new one wins).
    for var in ["TASKSCOPE_SAMPLE_US", "TASKSCOPE_WAKE_SAMPLE_US"] {
        std::env::set_var(var, "1ms");
        let text = taskscope::try_init().unwrap_err().to_string();
        assert!(
            text.contains(var) && text.contains("microseconds"),
            "{text}"
        );
        std::env::set_var(var, "0");
        drop(taskscope::try_init().expect("0 times every poll"));
        std::env::remove_var(var);
    }
    std::env::set_var("TASKSCOPE_SAMPLE_US", "500");
    std::env::set_var("TASKSCOPE_WAKE_SAMPLE_US", "1ms");
    drop(taskscope::try_init().expect("the old name is not read when the new one is set"));
    std::env::remove_var("TASKSCOPE_SAMPLE_US");
    std::env::remove_var("TASKSCOPE_WAKE_SAMPLE_US");

    // The unbounded-spawn threshold: a bad value is an error; a low one makes a fan-out of
    // 1,500 tasks (far below the default 10,000) a warning.
    std::env::set_var("TASKSCOPE_UNBOUNDED_SPAWN_ALIVE", "lots");
    let text = taskscope::try_init().unwrap_err().to_string();
    assert!(text.contains("TASKSCOPE_UNBOUNDED_SPAWN_ALIVE"), "{text}");
    std::env::set_var("TASKSCOPE_UNBOUNDED_SPAWN_ALIVE", "500");
    std::env::set_var("TASKSCOPE_BIND", "off");
    let guard = taskscope::try_init().expect("a valid threshold");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let warned = rt.block_on(async {
        let tasks: Vec<_> = (0..1_500)
            .map(|_| {
                taskscope::spawn_named("fetch-all", async {
                    tokio::time::sleep(std::time::Duration::from_millis(2_500)).await
                })
            })
            .collect();
        let mut warned = false;
        for _ in 0..40 {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            warned = taskscope::snapshot()
                .warnings_of(taskscope::WarningKind::UnboundedSpawn)
                .any(|w| w.task_name.as_deref() == Some("fetch-all"));
            if warned {
                break;
            }
        }
        for task in tasks {
            task.abort();
        }
        warned
    });
    assert!(
        warned,
        "no unbounded_spawn at the threshold from the environment"
    );
    drop(guard);
    std::env::remove_var("TASKSCOPE_UNBOUNDED_SPAWN_ALIVE");

    // The CPU profile: off by default; a rate turns it on; a bad one is an error.
    let guard = taskscope::try_init().expect("defaults");
    assert!(guard.finish().unwrap().profile.is_none());
    for bad in ["fast", "10001", "-1"] {
        std::env::set_var("TASKSCOPE_PROFILE_HZ", bad);
        let text = taskscope::try_init().unwrap_err().to_string();
        assert!(text.contains("TASKSCOPE_PROFILE_HZ"), "{bad}: {text}");
    }
    std::env::set_var("TASKSCOPE_PROFILE_HZ", "97");
    let guard = taskscope::try_init().expect("a valid rate");
    let profile = guard.finish().unwrap().profile;
    if cfg!(all(
        target_os = "linux",
        any(target_arch = "x86_64", target_arch = "aarch64")
    )) {
        assert_eq!(profile.map(|p| p.hz), Some(97));
    }
    std::env::remove_var("TASKSCOPE_PROFILE_HZ");
    std::env::remove_var("TASKSCOPE_BIND");
}
