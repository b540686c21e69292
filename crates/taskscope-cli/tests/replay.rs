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
    replay.command(taskscope_cli::app::ReplayCmd::Faster);
    assert_eq!(replay.speed, 2.0);
    assert!(replay.status().contains("×2 paused"), "{}", replay.status());
    replay.command(taskscope_cli::app::ReplayCmd::Seek(10_000));
    assert_eq!(replay.position_ms, end);
    assert!(
        replay.status().contains("end of recording"),
        "{}",
        replay.status()
    );
}

#[test]
fn the_status_follows_a_step_at_once_and_playing_reaches_the_report_s_end() {
    let mut source =
        taskscope_cli::source::Source::Replay(Box::new(Replay::open(&recording()).unwrap()));
    let status = |feeds: Vec<taskscope_cli::source::Feed>| {
        feeds
            .into_iter()
            .find_map(|f| match f {
                taskscope_cli::source::Feed::Status(s) => Some(s),
                _ => None,
            })
            .unwrap()
    };
    source.set_paused(true);
    let before = status(source.poll());
    source.replay(taskscope_cli::app::ReplayCmd::Step);
    let after = status(source.poll());
    assert_ne!(
        before, after,
        "the first poll after a step says where it went"
    );
    // Played to the end as the dashboard does (ticks at high speed), the state is the one the
    // report is made of: for both checked-in recordings and a fresh 6 s recording of the demo.
    let dir = std::env::temp_dir().join(format!("taskscope-played-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let fresh = dir.join("demo.tsrec");
    let demo = std::process::Command::new(env!("CARGO_BIN_EXE_taskscope"))
        .args(["demo", "--headless", "--duration", "6s", "--record"])
        .arg(&fresh)
        .output()
        .unwrap();
    assert!(
        demo.status.success(),
        "{}",
        String::from_utf8_lossy(&demo.stderr)
    );
    let v2 = recording().with_file_name("v2.tsrec");
    for path in [recording(), v2, fresh] {
        let last = played_to_the_end(&path);
        let report = Replay::open(&path).unwrap().final_snapshot();
        let groups = |s: &taskscope_wire::Snapshot| -> Vec<(String, u64, u64, u64)> {
            let mut groups: Vec<_> = s
                .task_groups
                .iter()
                .map(|g| (g.name.clone(), g.spawned, g.polls, g.poll_ns.count()))
                .collect();
            groups.sort();
            groups
        };
        assert!(!groups(&report).is_empty(), "{}", path.display());
        assert_eq!(groups(&last), groups(&report), "{}", path.display());
        let alive =
            |s: &taskscope_wire::Snapshot| s.tasks.iter().filter(|t| t.ended_ms.is_none()).count();
        assert_eq!(alive(&last), alive(&report), "{}", path.display());
        assert_eq!(
            last.warnings.len(),
            report.warnings.len(),
            "{}",
            path.display()
        );
    }
}

/// The replay played as the dashboard plays it, at 128×, to its end: its last snapshot.
fn played_to_the_end(path: &std::path::Path) -> std::sync::Arc<taskscope_wire::Snapshot> {
    let mut played = Replay::open(path).unwrap();
    for _ in 0..7 {
        played.command(taskscope_cli::app::ReplayCmd::Faster);
    }
    let mut last = None;
    let start = std::time::Instant::now();
    while played.position_ms < played.duration_ms() {
        assert!(start.elapsed().as_secs() < 60, "playback reaches the end");
        if let Some(snap) = played.tick() {
            last = Some(snap);
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let last = played.tick().or(last).unwrap();
    assert!(played.status().contains("end of recording"));
    last
}

#[test]
fn records_after_damage_in_the_middle_are_read_and_the_damage_is_named() {
    let dir = std::env::temp_dir().join(format!("taskscope-resync-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let whole = dir.join("whole.tsrec");
    let status = Command::new(env!("CARGO_BIN_EXE_taskscope"))
        .args(["demo", "--headless", "--duration", "2s", "--record"])
        .arg(&whole)
        .output()
        .unwrap();
    assert!(status.status.success(), "{status:?}");
    // Ten bytes overwritten a third of the way in.
    let mut bytes = std::fs::read(&whole).unwrap();
    let at = bytes.len() / 3;
    bytes[at..at + 10].copy_from_slice(&[0xa5; 10]);
    let damaged = dir.join("damaged.tsrec");
    std::fs::write(&damaged, &bytes).unwrap();

    let expected = Replay::open(&whole).unwrap().final_snapshot();
    let mut replay = Replay::open(&damaged).unwrap();
    assert!(replay.status().contains("skipped "), "{}", replay.status());
    assert!(
        replay.status().contains(" damaged bytes at byte "),
        "{}",
        replay.status()
    );
    let got = replay.final_snapshot();
    // The whole run, not the third before the damage.
    assert_eq!(got.taken_at_ms, expected.taken_at_ms);
    let spawned =
        |s: &taskscope_wire::Snapshot| s.task_groups.iter().map(|g| g.spawned).sum::<u64>();
    assert_eq!(spawned(&got), spawned(&expected));

    let out = Command::new(env!("CARGO_BIN_EXE_taskscope"))
        .arg("report")
        .arg(&damaged)
        .arg("-o")
        .arg(dir.join("report.json"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("skipped ") && said.contains("reporting every intact record"),
        "{said}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
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

#[test]
fn several_recordings_merge_into_one_report_and_every_format_is_written() {
    let dir = std::env::temp_dir().join(format!("taskscope-merge-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let rec = recording();
    let report = |src: &[&std::path::Path], out: &str| {
        let out = dir.join(out);
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_taskscope"));
        cmd.arg("report");
        cmd.args(src);
        let result = cmd.arg("-o").arg(&out).output().unwrap();
        (result, out)
    };
    let (one, one_path) = report(&[&rec], "one.json");
    assert!(one.status.success(), "{one:?}");
    let (two, two_path) = report(&[&rec, &rec], "two.json");
    assert!(two.status.success(), "{two:?}");
    let read = |p: &std::path::Path| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
    };
    let (one, two) = (read(&one_path), read(&two_path));
    let group = |r: &serde_json::Value| {
        r["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == "compat-worker")
            .unwrap()
            .clone()
    };
    let (g1, g2) = (group(&one), group(&two));
    assert_eq!(g2["spawned"], g1["spawned"].as_u64().unwrap() * 2);
    assert_eq!(g2["polls"], g1["polls"].as_u64().unwrap() * 2);
    assert_eq!(
        g2["poll_ns"]["count"],
        g1["poll_ns"]["count"].as_u64().unwrap() * 2
    );
    // Same data twice: the same percentiles.
    assert_eq!(g2["poll_ns"]["p50"], g1["poll_ns"]["p50"]);
    assert_eq!(
        two["warnings"].as_array().unwrap().len(),
        2 * one["warnings"].as_array().unwrap().len()
    );

    for (name, needle) in [
        ("r.trace.json", "traceEvents"),
        ("r.hlog", "#[StartTime:"),
        ("r.md", "compat-worker"),
        ("r.html", "<svg"),
        ("r.csv", "compat-worker"),
        ("r.prom", "taskscope_"),
    ] {
        let (out, path) = report(&[&rec], name);
        assert!(out.status.success(), "{name}: {out:?}");
        let text = std::fs::read_to_string(path).unwrap();
        assert!(text.contains(needle), "{name} lacks {needle}");
    }
    // A trace is one process; an unknown extension is a clear error.
    let (out, _) = report(&[&rec, &rec], "both.trace.json");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("one process"));
    let (out, _) = report(&[&rec], "r.pdf");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--format"));
    let _ = std::fs::remove_dir_all(&dir);
}
