//! The real binary in a real terminal (tmux): `taskscope demo` shows the blocked task and the
//! lock warnings on screen, keys switch views, `d` dumps the demo's tasks into the Dump view,
//! `q` quits and gives the terminal back.

use std::process::Command;
use std::time::{Duration, Instant};

struct Session(String);

impl Drop for Session {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", &self.0])
            .output();
    }
}

fn tmux(args: &[&str]) -> String {
    let out = Command::new("tmux")
        .args(args)
        .output()
        .expect("tmux is needed for this test (apt-get install tmux)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn wait_for_screen(session: &str, timeout: Duration, what: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + timeout;
    let mut tries = 0;
    loop {
        let screen = tmux(&["capture-pane", "-p", "-t", session]);
        if what(&screen) || Instant::now() > deadline {
            return screen;
        }
        tries += 1;
        if tries % 10 == 0 {
            // A capture can race the terminal (half a frame); ask for a full repaint.
            tmux(&["send-keys", "-t", session, "C-l"]);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn demo_in_a_terminal_shows_the_blocked_task_and_lock_warnings() {
    let name = format!("taskscope-e2e-{}", std::process::id());
    let bin = env!("CARGO_BIN_EXE_taskscope");
    // CI=true means "no terminal" to taskscope; this test gives it one.
    let command = format!("env -u CI {bin} demo; echo EXITED $?; sleep 30");
    let status = Command::new("tmux")
        .args([
            "new-session",
            "-d",
            "-s",
            &name,
            "-x",
            "160",
            "-y",
            "45",
            &command,
        ])
        .status()
        .expect("tmux is needed for this test (apt-get install tmux)");
    assert!(status.success());
    let _session = Session(name.clone());

    // The overview counts the blocked workers: wait until it shows at least one.
    let blocked_count = |s: &str| -> u64 {
        s.lines()
            .filter_map(|l| {
                l.split_whitespace()
                    .skip_while(|w| !w.ends_with("blocked_worker"))
                    .nth(1)
            })
            .filter_map(|n| n.parse().ok())
            .next()
            .unwrap_or(0)
    };
    // A capture can catch a frame half drawn: wait for a whole one.
    let ready =
        |s: &str| blocked_count(s) > 0 && s.contains("1 Overview") && s.contains("export_report");
    let overview = wait_for_screen(&name, Duration::from_secs(15), ready);
    assert!(ready(&overview), "{overview}");

    tmux(&["send-keys", "-t", &name, "6"]);
    let warnings = wait_for_screen(&name, Duration::from_secs(15), |s| {
        s.contains("Warnings (newest first")
            && s.contains("by one poll of task `export_report`")
            && s.contains("lock_order_inversion")
            && s.contains("lock_held_across_await")
    });
    assert!(
        warnings.contains("by one poll of task `export_report`"),
        "{warnings}"
    );
    assert!(
        warnings.contains("lock_order_inversion") && warnings.contains("lock_held_across_await"),
        "{warnings}"
    );

    tmux(&["send-keys", "-t", &name, "4"]);
    let locks_ready = |s: &str| {
        s.contains("Locks (most waited-on first)") && s.contains("sessions") && s.contains("cache")
    };
    let locks = wait_for_screen(&name, Duration::from_secs(10), locks_ready);
    assert!(locks_ready(&locks), "{locks}");

    // A task dump of the demo's tasks over the stream: grouped by where they wait.
    tmux(&["send-keys", "-t", &name, "8"]);
    tmux(&["send-keys", "-t", &name, "d"]);
    let dump_ready = |s: &str| {
        s.contains("Dump at") && s.contains("Where they wait") && s.contains("request-loop")
    };
    let dump = wait_for_screen(&name, Duration::from_secs(15), dump_ready);
    assert!(dump_ready(&dump), "{dump}");
    tmux(&["send-keys", "-t", &name, "4"]);
    let locks = wait_for_screen(&name, Duration::from_secs(10), locks_ready);
    assert!(locks_ready(&locks), "{locks}");

    tmux(&["send-keys", "-t", &name, "?"]);
    let help_ready = |s: &str| s.contains("Keys") && s.contains("sort by the previous/next column");
    let help = wait_for_screen(&name, Duration::from_secs(10), help_ready);
    assert!(help_ready(&help), "{help}");

    tmux(&["send-keys", "-t", &name, "Escape"]);
    // Wait for the help to close before `q`: an Escape followed at once by `q` reaches the
    // terminal as one Alt-q (the same bytes), which is not quit (seen: 1 run in 3 failed).
    let closed = wait_for_screen(&name, Duration::from_secs(10), |s| {
        !help_ready(s) && locks_ready(s)
    });
    assert!(locks_ready(&closed), "{closed}");
    tmux(&["send-keys", "-t", &name, "q"]);
    let after = wait_for_screen(&name, Duration::from_secs(10), |s| s.contains("EXITED"));
    assert!(after.contains("EXITED 0"), "{after}");
    assert!(
        !after.contains("1 Overview"),
        "the terminal is restored (alternate screen left): {after}"
    );
}

#[test]
fn top_against_a_server_that_is_not_taskscope_shows_the_whole_hint_at_80_columns() {
    // Like an HTTP server: accepts, reads, never speaks first.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming().flatten() {
            held.push(conn);
        }
    });
    let name = format!("taskscope-e2e-top-{}", std::process::id());
    let bin = env!("CARGO_BIN_EXE_taskscope");
    let command = format!("env -u CI {bin} top {addr}; sleep 30");
    let status = Command::new("tmux")
        .args(["new-session", "-d", "-s", &name, "-x", "80", "-y", "24"])
        .arg(&command)
        .status()
        .expect("tmux is needed for this test (apt-get install tmux)");
    assert!(status.success());
    let _session = Session(name.clone());
    let words = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    let hint = format!(
        "disconnected from {addr}: {addr} is not a taskscope stream (nothing sent in 3s) (an app \
         instrumented with console-subscriber? `taskscope console {addr}`, or report from \
         console://{addr}); retrying"
    );
    let shown = wait_for_screen(&name, Duration::from_secs(20), |s| words(s).contains(&hint));
    assert!(words(&shown).contains(&hint), "{shown}");
    // The panes below keep their place.
    assert!(shown.contains("Runtime"), "{shown}");
}
