//! Recordings of the live stream: one holds what the stream sent and a truncated one keeps its
//! whole records; a size cap rotates to a second file and both read; a recording that cannot be
//! written is a warning, a writable one is not.

use std::time::Duration;

use taskscope::WarningKind;
use taskscope_wire::recording::RecordingReader;
use taskscope_wire::{Assembler, Frame};

mod common;
use common::exclusive;
use common::stream::{connect, wait_for};

#[test]
fn a_recording_holds_the_stream_and_a_truncated_one_keeps_its_whole_records() {
    let dir = std::env::temp_dir().join(format!("taskscope-rec-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("app.tsrec");
    let guard = exclusive(|| {
        taskscope::Builder::new()
            .no_server()
            .record(&path)
            .blocked_threshold(Duration::from_millis(20))
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        // Alive at the end, its handle dropped: the recording lists it as detached.
        drop(taskscope::spawn_named(
            "recorded-detached",
            std::future::pending::<()>(),
        ));
        for _ in 0..5 {
            taskscope::spawn_named("recorded", async {
                tokio::time::sleep(Duration::from_millis(30)).await
            })
            .await
            .unwrap();
        }
        taskscope::spawn_named("recorded-blocker", async {
            std::thread::sleep(Duration::from_millis(60))
        })
        .await
        .unwrap();
    });
    drop(guard); // flushes and syncs the last frames
    let rec = RecordingReader::open(&path).unwrap().read_all();
    assert!(rec.stopped.is_none(), "{:?}", rec.stopped);
    let mut asm = Assembler::new();
    for (_, frame) in rec.frames.clone() {
        asm.apply(frame);
    }
    let snap = asm.snapshot();
    assert_eq!(snap.process.pid, std::process::id());
    let detached = snap
        .tasks
        .iter()
        .find(|t| t.name == "recorded-detached")
        .unwrap();
    assert_eq!(snap.detached, [detached.id]);
    assert_eq!(
        snap.task_groups
            .iter()
            .find(|g| g.name == "recorded")
            .map(|g| g.completed),
        Some(5)
    );
    assert!(snap
        .warnings_of(WarningKind::BlockedWorker)
        .any(|w| w.task_name.as_deref() == Some("recorded-blocker")));

    // Cut the file in the middle of its last record: every record before it is still read.
    let bytes = std::fs::read(&path).unwrap();
    let cut = &bytes[..bytes.len() - 5];
    let partial = RecordingReader::new(cut).unwrap().read_all();
    assert_eq!(partial.frames.len(), rec.frames.len() - 1);
    let stopped = partial.stopped.expect("says where it stopped");
    assert!(
        stopped
            .error
            .to_string()
            .contains(&format!("byte {}", stopped.offset)),
        "{}",
        stopped.error
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_size_capped_recording_rotates_and_both_files_read() {
    let dir = std::env::temp_dir().join(format!("taskscope-rotate-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("app.tsrec");
    let guard = exclusive(|| {
        taskscope::Builder::new()
            .no_server()
            .record(&path)
            .record_max_bytes(4096)
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        for i in 0..60 {
            taskscope::spawn_named(format!("rotating-{i}"), async {
                tokio::time::sleep(Duration::from_millis(25)).await
            })
            .await
            .unwrap();
        }
    });
    drop(guard);
    let mut old = path.clone().into_os_string();
    old.push(".1");
    for file in [path.clone(), old.into()] {
        let rec = RecordingReader::open(&file).unwrap().read_all();
        assert!(
            rec.stopped.is_none(),
            "{}: {:?}",
            file.display(),
            rec.stopped
        );
        // Each file starts afresh: a hello and a key frame, readable on its own.
        assert!(
            matches!(rec.frames.first(), Some((_, Frame::Hello(_)))),
            "{}",
            file.display()
        );
        assert!(
            matches!(&rec.frames[1].1, Frame::Update(u) if u.full),
            "{}",
            file.display()
        );
    }
    assert!(
        std::fs::metadata(&path).unwrap().len() < 64 * 1024,
        "the cap bounds the file"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[cfg(target_os = "linux")]
#[test]
fn a_recording_that_cannot_be_written_is_a_warning_and_a_writable_one_is_not() {
    // /dev/full: it opens, and every write fails with ENOSPC.
    let guard = exclusive(|| {
        taskscope::Builder::new()
            .bind("127.0.0.1:0")
            .record("/dev/full")
    });
    let (_stream, rx) = connect(guard.local_addr().unwrap(), None);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        taskscope::spawn_named("recorded", async { tokio::task::yield_now().await })
            .await
            .unwrap();
    });
    // On the stream, while the app runs.
    let mut asm = Assembler::new();
    let streamed = wait_for(
        &rx,
        &mut asm,
        Duration::from_secs(5),
        |_, frame| match frame {
            Frame::Warning(w) if w.kind == WarningKind::RecordingStopped => Some(w.message.clone()),
            _ => None,
        },
    )
    .expect("a recording_stopped warning on the stream");
    assert!(
        streamed.contains("/dev/full") && streamed.contains("No space left"),
        "{streamed}"
    );
    // The app goes on.
    rt.block_on(async {
        taskscope::spawn_named("after", async {}).await.unwrap();
    });
    let snap = guard.finish().unwrap();
    let stopped: Vec<_> = snap.warnings_of(WarningKind::RecordingStopped).collect();
    assert_eq!(stopped.len(), 1, "said once: {stopped:#?}");
    assert_eq!(snap.group("after").unwrap().completed, 1);

    // The safe twin: a writable file records, and raises nothing.
    let dir = std::env::temp_dir().join(format!("taskscope-recstop-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("ok.tsrec");
    let guard = exclusive(|| taskscope::Builder::new().no_server().record(&path));
    rt.block_on(async {
        taskscope::spawn_named("recorded", async {}).await.unwrap();
    });
    std::thread::sleep(Duration::from_millis(300));
    let snap = guard.finish().unwrap();
    assert_eq!(snap.warnings_of(WarningKind::RecordingStopped).count(), 0);
    let rec = RecordingReader::open(&path).unwrap().read_all();
    assert!(rec.stopped.is_none() && !rec.frames.is_empty());
    std::fs::remove_dir_all(&dir).unwrap();
}
