//! Replay of the checked-in recording shows the same numbers as `taskscope report` on it.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

use taskscope_cli::app::{App, View};
use taskscope_cli::screenshot::{render, text};
use taskscope_cli::source::replay::Replay;

fn recording() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/v1.tsrec")
}

#[test]
fn replay_shows_what_the_report_says() {
    let dir = std::env::temp_dir().join(format!("taskscope-replay-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("report.json");
    let status = Command::new(env!("CARGO_BIN_EXE_taskscope"))
        .args([
            "report",
            recording().to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ])
        .status()
        .unwrap();
    assert!(status.success());
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let group = report["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "compat-worker")
        .unwrap();

    // Play the whole recording, as the dashboard does, and look at the overview's group row.
    let mut replay = Replay::open(&recording()).unwrap();
    let mut app = App::new("replay");
    app.update(Arc::new(replay.final_snapshot()));
    app.view = View::Overview;
    let screen = text(&render(&app, 160, 40));
    let row = screen
        .lines()
        .find(|l| l.contains("compat-worker"))
        .expect("the group is on screen");
    let cells: Vec<&str> = row.split_whitespace().collect();
    // Group, Alive, Spawned, Polls, Busy, Poll p50, Poll p99, Poll max, ...
    assert_eq!(cells[2], group["spawned"].to_string(), "{row}");
    assert_eq!(cells[3], group["polls"].to_string(), "{row}");
    let shown_p99 = cells[6];
    let report_p99 = taskscope_cli::app::fmt_ns(group["poll_ns"]["p99"].as_u64().unwrap());
    assert_eq!(shown_p99, report_p99, "{row}");
    // The same recording as Markdown and CSV.
    for (ext, needle) in [
        ("md", "| compat-worker |"),
        ("csv", "task_group,compat-worker,"),
        ("html", "<td>compat-worker</td>"),
    ] {
        let out = dir.join(format!("report.{ext}"));
        let status = Command::new(env!("CARGO_BIN_EXE_taskscope"))
            .args([
                "report",
                recording().to_str().unwrap(),
                "-o",
                out.to_str().unwrap(),
            ])
            .status()
            .unwrap();
        assert!(status.success());
        let text = std::fs::read_to_string(&out).unwrap();
        assert!(text.contains(needle), "{ext}: {text}");
    }
    let lock = report["locks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == "compat-lock")
        .unwrap();
    app.view = View::Locks;
    let screen = text(&render(&app, 160, 40));
    let row = screen.lines().find(|l| l.contains("compat-lock")).unwrap();
    let acquisitions = lock["acquisitions"].to_string();
    assert!(row.split_whitespace().any(|c| c == acquisitions), "{row}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn replay_controls_move_through_the_recording() {
    let mut replay = Replay::open(&recording()).unwrap();
    let end = replay.duration_ms();
    assert!(end > 0);
    replay.paused = true;
    replay.command(taskscope_cli::app::ReplayCmd::Seek(-10_000));
    assert_eq!(replay.position_ms, 0);
    replay.command(taskscope_cli::app::ReplayCmd::Step);
    let after_step = replay.position_ms;
    assert!(after_step > 0 && after_step <= end);
    replay.command(taskscope_cli::app::ReplayCmd::Seek(10_000));
    assert_eq!(replay.position_ms, end);
    replay.command(taskscope_cli::app::ReplayCmd::Faster);
    assert_eq!(replay.speed, 2.0);
    assert!(replay.status().contains("×2 paused"));
}

#[test]
fn a_damaged_recording_is_a_clear_error_or_a_partial_replay() {
    let dir = std::env::temp_dir().join(format!("taskscope-damaged-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bytes = std::fs::read(recording()).unwrap();
    let cut = dir.join("cut.tsrec");
    std::fs::write(&cut, &bytes[..bytes.len() - 7]).unwrap();
    let replay = Replay::open(&cut).unwrap();
    assert!(
        replay.status().contains("stops being readable at byte"),
        "{}",
        replay.status()
    );
    let junk = dir.join("junk.tsrec");
    std::fs::write(&junk, b"definitely not a recording").unwrap();
    let err = Replay::open(&junk).unwrap_err();
    assert!(
        format!("{err:#}").contains("not a taskscope recording"),
        "{err:#}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_taskscope"))
        .args([
            "report",
            junk.to_str().unwrap(),
            "-o",
            dir.join("x.json").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a taskscope recording"));
    std::fs::remove_dir_all(&dir).unwrap();
}
