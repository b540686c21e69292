//! `taskscope console` end to end: a real application instrumented with console-subscriber
//! (`tests/console-app`, built here with `--cfg tokio_unstable` as console-subscriber requires)
//! and taskscope's client over the real gRPC stream; and what happens when the address is not a
//! console server.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use taskscope_cli::source::console::{self, Thresholds};
use taskscope_cli::source::Feed;
use taskscope_wire::{Snapshot, WarningKind};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Builds the console-subscriber app (its own workspace and lock file) into target/console-app.
fn build_app() -> PathBuf {
    let target = workspace().join("target/console-app");
    let status = Command::new(env!("CARGO"))
        .args(["build", "--locked", "--quiet"])
        .current_dir(workspace().join("tests/console-app"))
        .env("CARGO_TARGET_DIR", &target)
        .env("RUSTFLAGS", "--cfg tokio_unstable")
        .status()
        .expect("run cargo");
    assert!(status.success(), "building tests/console-app failed");
    target.join("debug/console-app")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The app, killed when the test ends however it ends.
struct App(Child);

impl Drop for App {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn report(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_taskscope"))
        .arg("report")
        .args(args)
        .output()
        .expect("run taskscope report")
}

fn task_named<'a>(snap: &'a Snapshot, name: &str) -> Option<&'a taskscope_wire::Task> {
    snap.tasks.iter().find(|t| t.name == name)
}

fn warned(snap: &Snapshot, kind: WarningKind, task: &str) -> bool {
    snap.warnings_of(kind)
        .any(|w| w.task_name.as_deref() == Some(task))
}

/// Everything the app has to show, or what is still missing.
fn missing(snap: &Snapshot) -> Vec<String> {
    let mut missing = Vec::new();
    for name in [
        "cache-writer-0",
        "db-query-0",
        "config-reader",
        "report-generator",
        "spinner",
    ] {
        match task_named(snap, name) {
            Some(t) if t.polls > 0 && t.busy_ns > 0 && !t.poll_ns.is_empty() => {}
            _ => missing.push(format!("task {name} with polls and a poll histogram")),
        }
    }
    let lock = |kind: &str| {
        snap.locks
            .iter()
            .any(|l| l.kind == kind && l.acquisitions > 0 && l.location.starts_with("src/main.rs:"))
    };
    if !lock("mutex") {
        missing.push("tokio's Mutex with acquisitions".into());
    }
    if !lock("rwlock_read") {
        missing.push("tokio's RwLock with reads".into());
    }
    if !snap
        .semaphores
        .iter()
        .any(|s| s.acquisitions > 0 && s.location.starts_with("src/main.rs:"))
    {
        missing.push("tokio's Semaphore with acquisitions".into());
    }
    // It blocks for 1.5 s at a time: seen ongoing, a warning grows until then.
    if !snap.warnings_of(WarningKind::BlockedWorker).any(|w| {
        w.task_name.as_deref() == Some("report-generator")
            && w.duration_ns.unwrap_or(0) >= 1_000_000_000
    }) {
        missing.push("a blocked_worker of report-generator of 1 s or more".into());
    }
    if !snap
        .resources
        .iter()
        .any(|r| r.kind == "Sleep" && r.created > 0)
    {
        missing.push("a Sleep among the resources".into());
    }
    for (kind, task) in [
        (WarningKind::BlockedWorker, "report-generator"),
        (WarningKind::LostWaker, "lost-wakeup"),
        (WarningKind::SelfWakes, "spinner"),
    ] {
        if !warned(snap, kind, task) {
            missing.push(format!("{kind} for {task}"));
        }
    }
    missing
}

#[test]
fn sees_a_console_subscriber_app_over_grpc() {
    let binary = build_app();
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let _app = App(Command::new(&binary)
        .env("TOKIO_CONSOLE_BIND", &addr)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the console app"));

    // The library's client, as the dashboard uses it.
    let source = console::connect(addr.clone(), Thresholds::default());
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last: Option<std::sync::Arc<Snapshot>> = None;
    let mut status = String::new();
    loop {
        match source.feed.recv_timeout(Duration::from_millis(500)) {
            Ok(Feed::Snapshot(s)) => last = Some(s),
            Ok(Feed::Status(s)) => status = s,
            Ok(Feed::Dump(_)) => unreachable!("a console source cannot dump"),
            Err(_) => {}
        }
        if last.as_ref().is_some_and(|s| missing(s).is_empty()) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "after 60 s, still missing {:?} (status: {status})",
            last.as_ref().map(|s| missing(s))
        );
    }
    let snap = last.unwrap();

    // The warnings name the right tasks, and only them.
    let blocked = snap
        .warnings_of(WarningKind::BlockedWorker)
        .filter(|w| w.task_name.as_deref() == Some("report-generator"))
        .max_by_key(|w| w.duration_ns)
        .unwrap();
    // It blocks for 1.5 s at a time.
    assert!(blocked.duration_ns.unwrap() >= 1_000_000_000, "{blocked:?}");
    assert!(blocked
        .location
        .as_deref()
        .unwrap()
        .starts_with("src/main.rs:"));
    for w in snap.warnings_of(WarningKind::LostWaker) {
        assert_eq!(w.task_name.as_deref(), Some("lost-wakeup"), "{w:?}");
    }
    for w in snap.warnings_of(WarningKind::SelfWakes) {
        assert_eq!(w.task_name.as_deref(), Some("spinner"), "{w:?}");
    }
    let spinner = task_named(&snap, "spinner").unwrap();
    assert!(spinner.self_wakes * 2 > spinner.wakes, "{spinner:?}");
    // The tasks have tokio's ids and their own spawn locations (the app's helper is
    // #[track_caller]).
    let locations: std::collections::HashSet<&str> =
        snap.tasks.iter().map(|t| t.location.as_str()).collect();
    assert!(locations.len() >= 5, "{locations:?}");
    // The four writers wait for one mutex held 20 ms at a time: most acquisitions waited.
    let mutex = snap.locks.iter().find(|l| l.kind == "mutex").unwrap();
    assert!(
        mutex.contended > 0 && mutex.wait_ns.percentiles().max >= 10_000_000,
        "{mutex:?}"
    );

    // The same app through `taskscope report console://ADDR`.
    let dir = std::env::temp_dir().join(format!("taskscope-console-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("console.json");
    let output = report(&[
        &format!("console://{addr}"),
        "-o",
        out.to_str().unwrap(),
        "--duration",
        "4s",
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let groups = json["tasks"].as_array().unwrap();
    let writer = groups
        .iter()
        .find(|g| g["name"] == "cache-writer-1")
        .expect("the writer's group");
    assert!(writer["polls"].as_u64().unwrap() > 0, "{writer}");
    assert!(writer["poll_ns"]["count"].as_u64().unwrap() > 0, "{writer}");
    let kinds: Vec<&str> = json["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["kind"].as_str().unwrap())
        .collect();
    for kind in ["blocked_worker", "lost_waker", "self_wakes"] {
        assert!(kinds.contains(&kind), "{kind} not in {kinds:?}");
    }
    assert!(json["locks"].as_array().unwrap().len() >= 2);
    assert_eq!(json["semaphores"].as_array().unwrap().len(), 1);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Asks for a report from `console://addr` and returns its error text; fails if it succeeded
/// or took too long.
fn report_error(addr: &str) -> String {
    let started = Instant::now();
    let out =
        std::env::temp_dir().join(format!("taskscope-console-bad-{}.json", std::process::id()));
    let output = report(&[
        &format!("console://{addr}"),
        "-o",
        out.to_str().unwrap(),
        "--duration",
        "5s",
    ]);
    assert!(!output.status.success(), "a report from {addr}?");
    assert!(started.elapsed() < Duration::from_secs(20), "it hung");
    assert!(!out.exists());
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn a_port_with_nothing_behind_it_is_a_clear_error() {
    // Port 1: nothing listens there. (A port found free a moment ago can be taken by another
    // test's server in the meantime, as a Guard's stream once did here.)
    let addr = "127.0.0.1:1".to_string();
    let err = report_error(&addr);
    assert!(err.contains(&addr) && err.contains("refused"), "{err}");
}

#[test]
fn a_taskscope_stream_is_not_a_console_server() {
    // The wrong port of the right kind of app: taskscope's own stream.
    let guard = taskscope::Builder::new()
        .bind("127.0.0.1:0")
        .try_init()
        .expect("taskscope starts");
    let addr = guard.local_addr().expect("a stream address").to_string();
    let err = report_error(&addr);
    assert!(err.contains("is not a console-subscriber server"), "{err}");
    drop(guard);
}

#[test]
fn a_silent_server_is_not_a_console_server() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    // Accepts and reads, never answers.
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    let err = report_error(&addr);
    assert!(
        err.contains("is not a console-subscriber server") && err.contains("no answer"),
        "{err}"
    );
}
