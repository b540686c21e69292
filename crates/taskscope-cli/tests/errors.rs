//! What the `taskscope` command says when it cannot do what it was asked, and when it did it:
//! each message names the thing at fault once, as a user reads it on a terminal.

use std::path::PathBuf;
use std::process::{Command, Output};

fn taskscope(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_taskscope"))
        .args(args)
        .output()
        .expect("run taskscope")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn recording() -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/v2.tsrec");
    path.to_string_lossy().into_owned()
}

#[test]
fn a_missing_recording_is_no_such_file_not_a_bad_address() {
    let out = taskscope(&["report", "nope.tsrec", "-o", "unused.md"]);
    assert!(!out.status.success());
    let text = stderr(&out);
    assert!(text.contains("nope.tsrec: no such file"), "{text}");
    assert!(!text.contains("socket address"), "{text}");
}

#[test]
fn replaying_a_missing_file_says_so_once_before_asking_for_a_terminal() {
    let out = taskscope(&["replay", "nope.tsrec"]);
    assert!(!out.status.success());
    let text = stderr(&out);
    assert!(text.contains("cannot replay nope.tsrec"), "{text}");
    assert_eq!(text.matches("No such file").count(), 1, "{text}");
    assert!(!text.contains("terminal"), "{text}");
}

#[test]
fn a_refused_connection_names_the_address_and_the_reason() {
    // Port 1 on loopback: nothing listens there.
    let out = taskscope(&[
        "report",
        "127.0.0.1:1",
        "-o",
        "unused.md",
        "--duration",
        "5s",
    ]);
    assert!(!out.status.success());
    let text = stderr(&out);
    assert!(
        text.contains("no data from 127.0.0.1:1: ") && text.contains("refused"),
        "{text}"
    );
}

#[test]
fn a_written_report_says_where_and_what_it_holds() {
    let dir = std::env::temp_dir().join(format!("taskscope-errors-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let output = dir.join("report.md");
    let out = taskscope(&["report", &recording(), "-o", output.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let said = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        said.trim(),
        format!("wrote {} (2 task groups, 1 warning)", output.display())
    );
    assert!(std::fs::metadata(&output).unwrap().len() > 0);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_refused_dashboard_is_told_why() {
    let guard = loop {
        match taskscope::Builder::new()
            .bind("0.0.0.0:0")
            .allow_remote("s3cret")
            .try_init()
        {
            Ok(guard) => break guard,
            Err(taskscope::Error::AlreadyRunning) => {
                std::thread::sleep(std::time::Duration::from_millis(10))
            }
            Err(e) => panic!("{e}"),
        }
    };
    let addr = format!("127.0.0.1:{}", guard.local_addr().unwrap().port());
    let out = Command::new(env!("CARGO_BIN_EXE_taskscope"))
        .args(["report", &addr, "-o", "unused.md", "--duration", "5s"])
        .env("TASKSCOPE_TOKEN", "guess")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text = stderr(&out);
    assert!(
        text.contains("refused this dashboard: wrong or missing token"),
        "{text}"
    );
    assert!(!text.contains("console-subscriber"), "{text}");
    drop(guard);
}
