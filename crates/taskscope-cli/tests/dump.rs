//! `taskscope dump ADDR`, the real binary against a running app over loopback: the chain of
//! each waiting task with its lines, as text and as JSON; the waits resume afterwards. A peer
//! that is not a taskscope stream and an app too old for dumps get clear errors.

use std::io::Read;
use std::net::TcpListener;
use std::process::Command;
use std::time::Duration;

const INNER_AWAIT: u32 = line!() + 2;
async fn fetch_quote(rx: tokio::sync::oneshot::Receiver<u32>) -> u32 {
    rx.await.unwrap_or(0)
}

const OUTER_AWAIT: u32 = line!() + 2;
async fn serve_quote(rx: tokio::sync::oneshot::Receiver<u32>) -> u32 {
    fetch_quote(rx).await + 1
}

fn taskscope(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_taskscope"))
        .args(args)
        .output()
        .expect("run taskscope");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_cli_prints_the_chain_of_each_waiting_task_of_a_running_app() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let guard = taskscope::Builder::new().bind("127.0.0.1:0").init();
    let addr = guard
        .local_addr()
        .expect("the stream is served")
        .to_string();
    let (tx, rx) = tokio::sync::oneshot::channel();
    #[allow(clippy::async_yields_async)] // the task's handle, awaited after the dumps
    let task = rt.block_on(async {
        drop(taskscope::spawn_named(
            "fire-and-forget",
            std::future::pending::<()>(),
        ));
        let task = taskscope::spawn_named("quote", serve_quote(rx));
        tokio::time::sleep(Duration::from_millis(100)).await;
        task
    });

    let (ok, text, err) = taskscope(&["dump", &addr]);
    assert!(ok, "{err}");
    assert!(text.contains("task ") && text.contains("`quote`"), "{text}");
    for (function, line) in [("fetch_quote", INNER_AWAIT), ("serve_quote", OUTER_AWAIT)] {
        assert!(
            text.contains(&format!(
                "{function} (crates/taskscope-cli/tests/dump.rs:{line})"
            )) || text.contains(&format!("{function} (tests/dump.rs:{line})")),
            "{function}:{line} in\n{text}"
        );
    }

    // The task whose handle was dropped is said to be detached, and no other.
    let detached_block = text
        .split("\n\n")
        .find(|b| b.contains("`fire-and-forget`"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        detached_block.contains("detached: its JoinHandle was dropped"),
        "{text}"
    );
    assert_eq!(
        text.matches("detached: its JoinHandle").count(),
        1,
        "{text}"
    );

    let (ok, json, err) = taskscope(&["dump", &addr, "--json"]);
    assert!(ok, "{err}");
    let dump: serde_json::Value = serde_json::from_str(&json).unwrap();
    let id_of = |name: &str| {
        let tasks = dump["tasks"].as_array().unwrap();
        tasks.iter().find(|t| t["name"] == name).unwrap()["id"].clone()
    };
    assert_eq!(
        dump["detached"],
        serde_json::json!([id_of("fire-and-forget")])
    );
    let quote = dump["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "quote")
        .unwrap_or_else(|| panic!("{json}"));
    let frames = &quote["trace"]["suspended"]["chains"][0]["frames"];
    assert_eq!(
        frames[0]["line"].as_u64(),
        Some(u64::from(INNER_AWAIT)),
        "{json}"
    );

    // The task goes on after the dumps.
    tx.send(41).unwrap();
    assert_eq!(rt.block_on(task).unwrap(), 42);
    drop(guard);
}

#[test]
fn a_peer_that_is_not_a_taskscope_stream_or_too_old_is_a_clear_error() {
    // Silent: accepts, says nothing.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_addr = silent.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        let (mut conn, _) = silent.accept().unwrap();
        let mut sink = Vec::new();
        let _ = conn.read_to_end(&mut sink);
    });
    let (ok, _, err) = taskscope(&["dump", &silent_addr]);
    assert!(!ok);
    assert!(err.contains("is not a taskscope stream"), "{err}");

    // A taskscope stream of version 5, from before dumps.
    let old = TcpListener::bind("127.0.0.1:0").unwrap();
    let old_addr = old.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        let (mut conn, _) = old.accept().unwrap();
        let hello = taskscope_wire::Frame::Hello(taskscope_wire::Hello {
            version: 5,
            pid: 1,
            process: "old-app".into(),
            start_unix_ms: 0,
        });
        taskscope_wire::write_frame(&mut conn, &hello).unwrap();
        let mut sink = Vec::new();
        let _ = conn.read_to_end(&mut sink);
    });
    let (ok, _, err) = taskscope(&["dump", &old_addr]);
    assert!(!ok);
    assert!(err.contains("cannot dump tasks (stream version 5"), "{err}");
}
