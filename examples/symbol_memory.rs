//! What symbolising a blocked worker's stack costs the app in memory: the peak RSS of the same
//! workload with stacks off and on, side by side in one run.
//!
//! ```text
//! cargo run --release --example symbol_memory
//! CARGO_PROFILE_RELEASE_DEBUG=limited cargo run --release --example symbol_memory
//! ```
//!
//! Each row runs this binary again as a child (so each starts from a fresh process): a 2-worker
//! runtime whose task blocks its worker twice for 120 ms in `std::thread::sleep`, taskscope with
//! stacks off or on. The parent reads the child's peak RSS from `wait4` and prints the stack the
//! child found, so the number is that of a real symbolisation. Linux only.

use std::time::Duration;

/// The culprit: a blocking call on a worker.
#[inline(never)]
fn render_report_blocking() -> usize {
    std::thread::sleep(Duration::from_millis(120));
    std::hint::black_box(42)
}

/// The child: the workload, with taskscope's stacks `on` or off; prints the first stack.
fn child(on: bool) {
    let guard = taskscope::Builder::new().no_server().stacks(on).init();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        for _ in 0..2 {
            taskscope::spawn_named("report", async { render_report_blocking() })
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    let snap = guard.finish().expect("active guard");
    let stack = snap
        .warnings_of(taskscope::WarningKind::BlockedWorker)
        .find_map(|w| snap.top_stack(w.id))
        .map(|s| s.summary())
        .unwrap_or_else(|| "-".to_string());
    println!("{stack}");
}

#[cfg(target_os = "linux")]
#[allow(clippy::zombie_processes)] // reaped by `wait4`, which also gives its peak RSS
fn peak_rss_of_child(on: bool) -> (u64, String) {
    use std::process::{Command, Stdio};
    let exe = std::env::current_exe().unwrap();
    let mut command = Command::new(exe);
    command
        .arg("--child")
        .arg(if on { "on" } else { "off" })
        .stdout(Stdio::piped());
    let mut child = command.spawn().expect("run the child");
    let mut out = String::new();
    std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut out).unwrap();
    let mut status = 0;
    // SAFETY: an all-zero rusage is valid; wait4 fills it for our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = child.id() as libc::pid_t;
    // SAFETY: `pid` is our child, not yet waited for; the pointers are to live locals.
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(waited, pid, "wait4");
    assert_eq!(status, 0, "the child failed");
    (usage.ru_maxrss as u64, out.trim().to_string())
}

#[cfg(target_os = "linux")]
fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--child") {
        child(args.get(2).map(String::as_str) == Some("on"));
        return;
    }
    let size = std::fs::metadata(std::env::current_exe().unwrap())
        .map(|m| m.len())
        .unwrap_or(0);
    println!(
        "binary {:.1} MB (debug info: the profile's `debug` setting)\n",
        size as f64 / 1e6
    );
    println!("| stacks | peak RSS | over off | stack found |");
    println!("|---|---:|---:|---|");
    let (off, _) = peak_rss_of_child(false);
    println!("| off | {:.1} MB | | - |", off as f64 / 1024.0);
    for _ in 0..3 {
        let (on, stack) = peak_rss_of_child(true);
        println!(
            "| on | {:.1} MB | +{:.1} MB | {stack} |",
            on as f64 / 1024.0,
            (on as f64 - off as f64) / 1024.0
        );
    }
}

#[cfg(not(target_os = "linux"))]
fn main() {
    if std::env::args().nth(1).as_deref() == Some("--child") {
        child(true);
        return;
    }
    println!("symbol_memory measures Linux processes only");
}
