//! The `taskscope` binary end to end: the headless demo finds every seeded problem, writes its
//! report, and commands that need a terminal say so without one.

use std::process::Command;

fn taskscope() -> Command {
    Command::new(env!("CARGO_BIN_EXE_taskscope"))
}

#[test]
fn headless_demo_finds_every_seeded_problem_and_writes_the_report() {
    let dir = std::env::temp_dir().join(format!("taskscope-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let report = dir.join("demo.json");
    let record = dir.join("demo.tsrec");
    let out = taskscope()
        .args(["demo", "--headless", "--duration", "2s", "--report"])
        .arg(&report)
        .arg("--record")
        .arg(&record)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for kind in [
        "blocked_worker",
        "lock_held_across_await",
        "lock_order_inversion",
        "task_panicked",
    ] {
        assert!(
            stdout.contains(&format!("**{kind}**")),
            "{kind} missing from:\n{stdout}"
        );
    }
    assert!(
        stdout.contains("export_report") && stdout.contains("db-pool"),
        "{stdout}"
    );
    // The blocked worker's stack names the demo's blocking helper (Linux).
    if cfg!(all(
        target_os = "linux",
        any(target_arch = "x86_64", target_arch = "aarch64")
    )) {
        assert!(
            stdout.contains("blocked at `") && stdout.contains("checksum_blocking ("),
            "no stack in:\n{stdout}"
        );
    }
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(json["schema"], "taskscope.report/v1");
    assert!(json["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["name"] == "handle_request"));
    assert!(json["semaphores"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["name"] == "db-pool"));
    // The recording replays into the same findings.
    let replayed = dir.join("replayed.json");
    let status = taskscope()
        .args(["report"])
        .arg(&record)
        .arg("-o")
        .arg(&replayed)
        .status()
        .unwrap();
    assert!(status.success());
    let again: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&replayed).unwrap()).unwrap();
    let kinds = |v: &serde_json::Value| {
        let mut k: Vec<String> = v["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w["kind"].to_string())
            .collect();
        k.sort();
        k.dedup();
        k
    };
    assert_eq!(kinds(&again), kinds(&json));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_dashboard_without_a_terminal_says_so_and_fails() {
    let out = taskscope()
        .args(["demo"])
        .env("CI", "true")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("needs a terminal"), "{stderr}");
}

#[test]
fn bad_arguments_are_clear_errors() {
    let out = taskscope()
        .args(["demo", "--headless", "--duration", "5h"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown unit"));
    let out = taskscope()
        .args([
            "demo",
            "--headless",
            "--duration",
            "1s",
            "--report",
            "x.xml",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(".json"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
