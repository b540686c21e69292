//! Reports checked the way their readers use them: the JSON validates against the checked-in
//! JSON Schema, and the numbers match workloads whose timings are known.

mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use taskscope_wire::recording::RecordingReader;
use taskscope_wire::{Assembler, Snapshot};

fn validate(report: &serde_json::Value) -> Result<(), String> {
    common::validate(taskscope_report::json::JSON_SCHEMA, report)
}

fn report_json(snapshot: &Snapshot) -> serde_json::Value {
    serde_json::from_str(&taskscope_report::json::render(snapshot)).expect("report is JSON")
}

fn recording_snapshot() -> Snapshot {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/v1.tsrec");
    let rec = RecordingReader::open(path).expect("recording").read_all();
    let mut asm = Assembler::new();
    for (_, frame) in rec.frames {
        asm.apply(frame);
    }
    asm.snapshot().clone()
}

#[test]
fn report_of_the_v1_recording_validates() {
    let report = report_json(&recording_snapshot());
    validate(&report).unwrap();
    assert!(!report["tasks"].as_array().unwrap().is_empty());
    assert!(!report["warnings"].as_array().unwrap().is_empty());
}

#[test]
fn schema_rejects_what_readers_could_not_use() {
    let good = report_json(&recording_snapshot());
    let mut bad_kind = good.clone();
    bad_kind["warnings"][0]["kind"] = "blocked".into();
    assert!(
        validate(&bad_kind).is_err(),
        "unknown warning kind accepted"
    );
    let mut missing = good.clone();
    missing["tasks"][0]
        .as_object_mut()
        .unwrap()
        .remove("poll_ns");
    assert!(validate(&missing).is_err(), "missing percentiles accepted");
    let mut negative = good;
    negative["dropped_events"] = (-1).into();
    assert!(validate(&negative).is_err(), "negative count accepted");
}

fn spin(d: Duration) {
    let start = Instant::now();
    while start.elapsed() < d {
        std::hint::spin_loop();
    }
}

/// The report's figure matches the one the task measured itself: within the histogram's
/// precision (1.6 % at a bucket's midpoint, 3 % at its edge) plus 0.5 ms for what lies between
/// the two clock readings (the poll wrapper around the loop, a wake-up after a release).
fn assert_matches(what: &str, got_ns: u64, measured: Duration) {
    let (got, measured) = (got_ns as f64, measured.as_nanos() as f64);
    assert!(
        (got - measured).abs() <= measured * 0.03 + 500_000.0,
        "{what}: report {got} ns, measured {measured} ns"
    );
}

#[inline(never)]
fn blocking_helper() -> u32 {
    std::thread::sleep(Duration::from_millis(120));
    std::hint::black_box(1)
}

#[cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
#[test]
fn a_blocked_workers_stack_is_in_the_report_and_validates() {
    let guard = common::exclusive(|| {
        taskscope::Builder::new()
            .no_server()
            .blocked_threshold(Duration::from_millis(20))
            .stacks(true)
    });
    common::two_workers().block_on(async {
        taskscope::spawn_named("report-blocker", async {
            blocking_helper();
        })
        .await
        .unwrap();
    });
    let snap = guard.finish().expect("active guard");
    let report = report_json(&snap);
    validate(&report).unwrap();
    let w = report["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["kind"] == "blocked_worker" && w["task_name"] == "report-blocker")
        .expect("blocked_worker row");
    let top = &w["stacks"][0];
    assert!(top["count"].as_u64().unwrap() >= 1, "{w:#}");
    assert!(
        top["frames"][0]["function"]
            .as_str()
            .unwrap()
            .ends_with("blocking_helper"),
        "{w:#}"
    );
    assert!(top["frames"][0]["file"]
        .as_str()
        .unwrap()
        .ends_with("tests/report_schema.rs"));
    let md = taskscope_report::markdown::render(&snap);
    assert!(md.contains("blocked at `"), "{md}");
}

#[test]
fn numbers_match_a_known_workload_and_the_report_validates() {
    let guard = common::exclusive(|| {
        taskscope::Builder::new()
            .no_server()
            .blocked_threshold(Duration::from_secs(5))
    });
    // Each task also times what it did with `Instant`: the reference the report must match,
    // whatever else the machine is doing (a preempted busy loop is longer in both).
    let polls_ref = Arc::new(std::sync::Mutex::new(Vec::new()));
    let lock_waits_ref = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sem_waits_ref = Arc::new(std::sync::Mutex::new(Vec::new()));
    let rt = common::two_workers();
    {
        let (polls_ref, lock_waits_ref, sem_waits_ref) = (
            polls_ref.clone(),
            lock_waits_ref.clone(),
            sem_waits_ref.clone(),
        );
        rt.block_on(async move {
            // 40 polls of 5 ms each: busy loops between yields.
            taskscope::spawn_named("five-ms", async move {
                for _ in 0..40 {
                    let t = Instant::now();
                    spin(Duration::from_millis(5));
                    polls_ref.lock().unwrap().push(t.elapsed());
                    tokio::task::yield_now().await;
                }
            })
            .await
            .unwrap();
            // A waiter that waits for a lock held 30 ms, 10 times.
            let lock = Arc::new(taskscope::sync::Mutex::named("held-30ms", ()));
            for _ in 0..10 {
                let guard = lock.clone().lock_owned().await;
                let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
                let waiter = {
                    let lock = lock.clone();
                    let waits = lock_waits_ref.clone();
                    taskscope::spawn_named("waiter", async move {
                        let _ = ready_tx.send(());
                        let t = Instant::now();
                        drop(lock.lock().await);
                        waits.lock().unwrap().push(t.elapsed());
                    })
                };
                ready_rx.await.unwrap();
                tokio::time::sleep(Duration::from_millis(30)).await;
                drop(guard);
                waiter.await.unwrap();
            }
            // A semaphore of one permit, held 20 ms by each of 5 tasks in turn.
            let sem = Arc::new(taskscope::sync::Semaphore::named("one-permit", 1));
            let holders: Vec<_> = (0..5)
                .map(|_| {
                    let sem = sem.clone();
                    let waits = sem_waits_ref.clone();
                    taskscope::spawn_named("sem-holder", async move {
                        let t = Instant::now();
                        let _permit = sem.acquire().await.unwrap();
                        waits.lock().unwrap().push(t.elapsed());
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    })
                })
                .collect();
            for h in holders {
                h.await.unwrap();
            }
        });
    }
    let snap = guard.finish().expect("active guard");
    let report = report_json(&snap);
    validate(&report).unwrap();

    let row = |section: &str, name: &str| -> serde_json::Value {
        report[section]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name)
            .unwrap_or_else(|| panic!("{section} row {name}"))
            .clone()
    };
    let sorted = |v: &Arc<std::sync::Mutex<Vec<Duration>>>| {
        let mut v = v.lock().unwrap().clone();
        v.sort();
        v
    };
    let five = row("tasks", "five-ms");
    assert_eq!(five["polls"], 41);
    // 40 of 41 polls are the busy loops: the report's median is theirs.
    let polls = sorted(&polls_ref);
    assert!(polls[0] >= Duration::from_millis(5));
    assert_matches(
        "five-ms poll p50",
        five["poll_ns"]["p50"].as_u64().unwrap(),
        polls[20],
    );
    let busy = five["busy_ns"].as_u64().unwrap() as f64;
    let busy_ref: f64 = polls.iter().map(|d| d.as_nanos() as f64).sum();
    assert!(
        busy >= busy_ref * 0.98,
        "busy {busy} ns, loops alone {busy_ref} ns"
    );

    let lock = row("locks", "held-30ms");
    assert_eq!(lock["acquisitions"], 20);
    assert_eq!(lock["contended"], 10);
    // 10 contended waits (the holder sleeps 30 ms after the waiter asked) and 10 uncontended
    // zeros; the longest is exact in the report.
    assert_eq!(lock["wait_ns"]["count"], 20);
    let waits = sorted(&lock_waits_ref);
    assert!(waits[0] >= Duration::from_millis(25), "{waits:?}");
    assert_matches(
        "lock wait max",
        lock["wait_ns"]["max"].as_u64().unwrap(),
        waits[9],
    );

    let sem = row("semaphores", "one-permit");
    assert_eq!(sem["acquisitions"], 5);
    // The k-th holder waits about k × 20 ms; the report's longest wait is the longest measured.
    let waits = sorted(&sem_waits_ref);
    assert!(waits[4] >= Duration::from_millis(75), "{waits:?}");
    assert_matches(
        "semaphore max wait",
        sem["wait_ns"]["max"].as_u64().unwrap(),
        waits[4],
    );
}

#[test]
fn every_warning_says_how_to_fix_it_in_json_markdown_and_html() {
    let snap = recording_snapshot();
    let report = report_json(&snap);
    validate(&report).unwrap();
    let warnings = report["warnings"].as_array().unwrap();
    assert!(!warnings.is_empty());
    for (json, warning) in warnings.iter().zip(&snap.warnings) {
        assert_eq!(json["hint"], warning.kind.hint(), "{json}");
    }
    let markdown = taskscope_report::markdown::render(&snap);
    let html = taskscope_report::html::render(&snap);
    for kind in taskscope_wire::WarningKind::ALL {
        let found = snap.warnings_of(kind).next().is_some();
        let fix = format!("### {kind} (");
        assert_eq!(markdown.contains(&fix), found, "{kind}");
        if found {
            let section = &markdown[markdown.find(&fix).unwrap()..];
            let next = section[3..].find("\n#").map_or(section.len(), |at| at + 3);
            assert!(
                section[..next].contains(&format!("**Fix:** {}", kind.hint())),
                "{kind} in:\n{}",
                &section[..next]
            );
        }
        assert_eq!(html.contains(kind.hint()), found, "{kind}");
    }
}
