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

/// Within the histogram's precision (1.6 % at the bucket midpoint) of `expected`, allowing the
/// poll to run longer than its busy loop (being descheduled on a shared machine), never shorter.
fn assert_near(what: &str, got: u64, expected: Duration, slack: f64) {
    let expected = expected.as_nanos() as f64;
    let got = got as f64;
    assert!(
        got >= expected * (1.0 - 0.02) && got <= expected * (1.0 + slack),
        "{what}: {got} ns, expected about {expected} ns"
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
    let rt = common::two_workers();
    rt.block_on(async {
        // 40 polls of 5 ms each: busy loops between yields.
        taskscope::spawn_named("five-ms", async {
            for _ in 0..40 {
                spin(Duration::from_millis(5));
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
                taskscope::spawn_named("waiter", async move {
                    let _ = ready_tx.send(());
                    drop(lock.lock().await);
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
                taskscope::spawn_named("sem-holder", async move {
                    let _permit = sem.acquire().await.unwrap();
                    tokio::time::sleep(Duration::from_millis(20)).await;
                })
            })
            .collect();
        for h in holders {
            h.await.unwrap();
        }
    });
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
    let five = row("tasks", "five-ms");
    assert_eq!(five["polls"], 41);
    // 40 of 41 polls are 5 ms busy loops: the median and p90 are one of them.
    let poll = &five["poll_ns"];
    assert_near(
        "five-ms p50",
        poll["p50"].as_u64().unwrap(),
        Duration::from_millis(5),
        0.10,
    );
    assert_near(
        "five-ms p90",
        poll["p90"].as_u64().unwrap(),
        Duration::from_millis(5),
        0.25,
    );
    let busy = five["busy_ns"].as_u64().unwrap() as f64;
    assert!(busy >= 40.0 * 5e6 * 0.99, "busy {busy} ns");

    let lock = row("locks", "held-30ms");
    assert_eq!(lock["acquisitions"], 20);
    assert_eq!(lock["contended"], 10);
    // Waits: 10 contended of ~30 ms (the waiter asks right before the holder starts sleeping)
    // and 10 uncontended zeros, so p90 is a contended one.
    assert_eq!(lock["wait_ns"]["count"], 20);
    assert_near(
        "lock wait p90",
        lock["wait_ns"]["p90"].as_u64().unwrap(),
        Duration::from_millis(30),
        0.5,
    );

    let sem = row("semaphores", "one-permit");
    assert_eq!(sem["acquisitions"], 5);
    // The k-th holder waits about k × 20 ms: the longest wait is about 80 ms.
    assert_near(
        "semaphore max wait",
        sem["wait_ns"]["max"].as_u64().unwrap(),
        Duration::from_millis(80),
        0.5,
    );
}
