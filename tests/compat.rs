//! Format compatibility: a recording made by each version of the format is checked into
//! `tests/data/` (`v1.tsrec`, `v2.tsrec`) and must stay readable, with the same content, by
//! every later build.
//!
//! Write the current version's file (only when the format version changes) with
//! `cargo test --test compat -- --ignored regenerate`.

use std::path::PathBuf;
use std::time::Duration;

use taskscope_wire::recording::RecordingReader;
use taskscope_wire::{Assembler, Frame, WarningKind};

fn data(version: u32) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("tests/data/v{version}.tsrec"))
}

#[test]
#[ignore = "writes tests/data/v{WIRE_VERSION}.tsrec; run by hand when the format version changes"]
fn regenerate() {
    let guard = taskscope::Builder::new()
        .no_server()
        .record(data(taskscope_wire::WIRE_VERSION))
        .blocked_threshold(Duration::from_millis(20))
        .init();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let lock = std::sync::Arc::new(taskscope::sync::Mutex::named("compat-lock", 0));
        let workers: Vec<_> = (0..4)
            .map(|_| {
                let lock = lock.clone();
                taskscope::spawn_named("compat-worker", async move {
                    for _ in 0..2 {
                        *lock.lock().await += 1;
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                })
            })
            .collect();
        for w in workers {
            w.await.unwrap();
        }
        taskscope::spawn_named("compat-blocker", async {
            std::thread::sleep(Duration::from_millis(80))
        })
        .await
        .unwrap();
        tokio::time::sleep(Duration::from_millis(250)).await;
        std::mem::forget(lock);
    });
    drop(guard);
}

#[test]
fn reads_the_checked_in_v1_recording() {
    check_recording(1);
}

#[test]
fn reads_the_checked_in_v2_recording_with_its_poll_timeline_and_stacks() {
    let snap = check_recording(2);
    assert!(!snap.poll_timeline.0.is_empty(), "Polls frames");
    let blocker = snap
        .warnings_of(WarningKind::BlockedWorker)
        .find(|w| w.task_name.as_deref() == Some("compat-blocker"))
        .expect("blocked_worker");
    let stack = snap.top_stack(blocker.id).expect("Stacks frame");
    assert!(
        stack
            .blocked_in
            .as_deref()
            .is_some_and(|c| c.ends_with("sleep")),
        "{stack:#?}"
    );
}

fn check_recording(version: u32) -> taskscope_wire::Snapshot {
    let rec = RecordingReader::open(data(version))
        .expect("a checked-in recording")
        .read_all();
    assert!(rec.stopped.is_none(), "{:?}", rec.stopped);
    assert!(matches!(rec.frames.first(), Some((_, Frame::Hello(h))) if h.version == version));
    let mut asm = Assembler::new();
    let mut last_ms = 0;
    for (at_ms, frame) in rec.frames {
        assert!(at_ms >= last_ms, "timestamps never go back");
        last_ms = at_ms;
        asm.apply(frame);
    }
    let snap = asm.snapshot();
    let workers = snap
        .task_groups
        .iter()
        .find(|g| g.name == "compat-worker")
        .expect("worker group");
    assert_eq!((workers.spawned, workers.completed), (4, 4));
    assert_eq!(workers.polls, workers.poll_ns.count());
    let lock = snap
        .locks
        .iter()
        .find(|l| l.name == "compat-lock")
        .expect("lock");
    assert_eq!(lock.acquisitions, 8);
    assert!(snap
        .warnings_of(WarningKind::BlockedWorker)
        .any(|w| w.task_name.as_deref() == Some("compat-blocker") && !w.ongoing));
    snap.clone()
}
