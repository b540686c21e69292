//! The Perfetto (Chrome trace event JSON) report: it validates against the trace event format,
//! its async task slices pair up, and it shows a blocked worker's poll, the block, a long lock
//! wait and scopes on the worker tracks (nested in the poll that runs them) — from the Guard's
//! report and from a recording alike.

mod common;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use taskscope_wire::recording::RecordingReader;
use taskscope_wire::{Assembler, Frame};

fn validate(trace: &Value) -> Result<(), String> {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/chrome-trace-event.schema.json");
    common::validate(&std::fs::read_to_string(path).unwrap(), trace)
}

fn events(trace: &Value) -> &Vec<Value> {
    trace["traceEvents"].as_array().expect("traceEvents")
}

/// Every async begin has exactly one end with the same id and name, not before it.
fn assert_async_pairs(trace: &Value) {
    let mut open: HashMap<(String, String), f64> = HashMap::new();
    for e in events(trace) {
        let key = (e["id"].to_string(), e["name"].to_string());
        match e["ph"].as_str() {
            Some("b") => assert!(open.insert(key, e["ts"].as_f64().unwrap()).is_none()),
            Some("e") => {
                let begin = open.remove(&key).expect("end without a begin");
                assert!(e["ts"].as_f64().unwrap() >= begin, "ends before it begins");
            }
            _ => {}
        }
    }
    assert!(open.is_empty(), "unended async slices: {open:?}");
}

/// On every thread track, two complete (`X`) slices are either apart or one inside the other:
/// the trace viewers mis-nest or drop slices that overlap partially.
fn assert_slices_nest(trace: &Value, from: &str) {
    let mut tracks: HashMap<u64, Vec<(u64, u64, String)>> = HashMap::new();
    for e in events(trace).iter().filter(|e| e["ph"] == "X") {
        let ts = e["ts"].as_u64().unwrap();
        let end = ts + e["dur"].as_u64().unwrap();
        let name = e["name"].as_str().unwrap().to_string();
        tracks
            .entry(e["tid"].as_u64().unwrap())
            .or_default()
            .push((ts, end, name));
    }
    for (tid, mut slices) in tracks {
        // Outer slices first where two start together.
        slices.sort_by_key(|&(ts, end, _)| (ts, std::cmp::Reverse(end)));
        let mut open: Vec<(u64, u64, String)> = Vec::new();
        for slice in slices {
            while open.last().is_some_and(|top| top.1 <= slice.0) {
                open.pop();
            }
            if let Some(top) = open.last() {
                assert!(
                    slice.1 <= top.1,
                    "{from}: on track {tid}, {slice:?} overlaps {top:?} partially"
                );
            }
            open.push(slice);
        }
    }
}

fn check(trace: &Value, from: &str) {
    validate(trace).unwrap_or_else(|e| panic!("{from}: {e}"));
    assert_async_pairs(trace);
    let ev = events(trace);
    let worker_tids: Vec<u64> = ev
        .iter()
        .filter(|e| e["ph"] == "M" && e["name"] == "thread_name")
        .filter(|e| e["args"]["name"].as_str().unwrap().contains("(#"))
        .map(|e| e["tid"].as_u64().unwrap())
        .collect();
    assert_slices_nest(trace, from);
    // The blocker's 120 ms poll, on a worker track, with its measured end: one slice, the
    // block's.
    let poll = ev
        .iter()
        .find(|e| e["ph"] == "X" && e["name"] == "blocked: blocker")
        .unwrap_or_else(|| panic!("{from}: no slice of the blocker's poll"));
    assert_eq!(poll["cat"], "blocked_worker", "{from}");
    assert!(
        !ev.iter()
            .any(|e| e["ph"] == "X" && e["cat"] == "poll" && e["name"] == "blocker"),
        "{from}: the blocked poll drawn twice"
    );
    assert!(
        worker_tids.contains(&poll["tid"].as_u64().unwrap()),
        "{from}: {poll}"
    );
    assert_eq!(poll["args"]["end"], "measured", "{from}");
    let dur = poll["dur"].as_f64().unwrap();
    assert!(
        (120_000.0..1_000_000.0).contains(&dur),
        "{from}: poll of {dur} us"
    );
    assert!(
        poll["args"]["message"]
            .as_str()
            .unwrap()
            .contains("by one poll of task `blocker`"),
        "{from}: {poll}"
    );
    // The long wait, on its lock's track.
    assert!(
        ev.iter()
            .any(|e| e["cat"] == "lock_wait" && e["dur"].as_f64().unwrap() >= 50_000.0),
        "{from}: no lock wait slice"
    );
    // Scopes on the worker tracks, named though finished: one inside the poll of the task
    // `server` (its slice within that poll's), one in a task taskscope did not spawn.
    // (Each blocks longer than the threshold: its slice is the block's, `blocked: NAME`.)
    let slice = |name: &str| {
        let blocked = format!("blocked: {name}");
        ev.iter()
            .find(|e| e["ph"] == "X" && (e["name"] == name || e["name"] == blocked.as_str()))
            .unwrap_or_else(|| panic!("{from}: no poll slice named {name}"))
    };
    let (scope, server) = (slice("load-user"), slice("server"));
    assert_eq!(scope["tid"], server["tid"], "{from}");
    assert!(worker_tids.contains(&scope["tid"].as_u64().unwrap()));
    let span = |e: &Value| {
        let ts = e["ts"].as_f64().unwrap();
        (ts, ts + e["dur"].as_f64().unwrap())
    };
    let ((s0, s1), (t0, t1)) = (span(scope), span(server));
    assert!(t0 <= s0 && s1 <= t1, "{from}: {scope} outside {server}");
    assert!(s1 - s0 >= 20_000.0, "{from}: {scope}");
    let plain = slice("plain-scope");
    assert!(worker_tids.contains(&plain["tid"].as_u64().unwrap()));
    // Task lifetimes of the workload.
    assert!(
        ev.iter().any(|e| e["ph"] == "b" && e["name"] == "waiter"),
        "{from}"
    );
}

#[test]
fn trace_from_the_guard_and_from_a_recording() {
    let dir = std::env::temp_dir().join(format!("taskscope-perfetto-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (trace_path, rec_path) = (dir.join("run.trace.json"), dir.join("run.tsrec"));
    let guard = taskscope::Builder::new()
        .no_server()
        .blocked_threshold(Duration::from_millis(20))
        .long_wait_threshold(Duration::from_millis(50))
        .report(&trace_path)
        .record(&rec_path)
        .init();
    let rt = common::two_workers();
    rt.block_on(async {
        taskscope::spawn_named("blocker", async {
            std::thread::sleep(Duration::from_millis(120));
        })
        .await
        .unwrap();
        // A scope blocking inside an instrumented task's poll, with blocking before and after
        // it in the same poll; and one in a plain tokio task.
        taskscope::spawn_named("server", async {
            std::thread::sleep(Duration::from_millis(40));
            taskscope::scope("load-user", async {
                std::thread::sleep(Duration::from_millis(40));
            })
            .await;
            std::thread::sleep(Duration::from_millis(40));
        })
        .await
        .unwrap();
        tokio::spawn(taskscope::scope("plain-scope", async {
            std::thread::sleep(Duration::from_millis(40));
        }))
        .await
        .unwrap();
        let lock = Arc::new(taskscope::sync::Mutex::named("slow-lock", ()));
        let held = lock.clone().lock_owned().await;
        let waiter = {
            let lock = lock.clone();
            taskscope::spawn_named("waiter", async move { drop(lock.lock().await) })
        };
        tokio::time::sleep(Duration::from_millis(150)).await;
        drop(held);
        waiter.await.unwrap();
        // Let a collector tick record the last polls.
        tokio::time::sleep(Duration::from_millis(250)).await;
    });
    drop(guard);

    let from_guard: Value = serde_json::from_str(&std::fs::read_to_string(&trace_path).unwrap())
        .expect("the trace is JSON");
    check(&from_guard, "guard report");

    let rec = RecordingReader::open(&rec_path).unwrap().read_all();
    assert!(rec.stopped.is_none(), "{:?}", rec.stopped);
    assert!(
        rec.frames
            .iter()
            .any(|(_, f)| matches!(f, Frame::Polls(p) if !p.is_empty())),
        "the recording carries the poll timeline"
    );
    let mut asm = Assembler::new();
    for (_, frame) in rec.frames {
        asm.apply(frame);
    }
    let from_recording = taskscope_report::perfetto::trace(asm.snapshot());
    check(&from_recording, "recording");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_schema_rejects_malformed_events() {
    let bad = [
        serde_json::json!({"traceEvents": [{"ph": "X", "name": "p", "pid": 1, "tid": 1, "ts": 5}]}),
        serde_json::json!({"traceEvents": [{"ph": "b", "name": "t", "pid": 1, "tid": 0, "ts": 5, "cat": "task"}]}),
        serde_json::json!({"traceEvents": [{"ph": "Q", "name": "t", "pid": 1, "tid": 0, "ts": 5}]}),
    ];
    for trace in bad {
        assert!(validate(&trace).is_err(), "accepted {trace}");
    }
}
