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
}
