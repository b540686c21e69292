//! Stacks of blocked workers (Linux): the warning names the application's blocking function and
//! its line, sampled while the worker is blocked — CPU work, a sleep and a file read — and
//! sampling survives a stress of many blocked polls while other tasks run.
#![cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]

use std::io::Write;
use std::time::{Duration, Instant};

use taskscope_wire::{Snapshot, StackSample, WarningKind};

/// Tests share one process and one taskscope: one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// taskscope with stacks on and a `threshold`, and a 2-worker runtime.
fn setup(threshold: Duration) -> (taskscope::Guard, tokio::runtime::Runtime) {
    let guard = taskscope::Builder::new()
        .no_server()
        .blocked_threshold(threshold)
        .stacks(true)
        .init();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    (guard, rt)
}

fn run_blocked<F>(name: &'static str, body: F) -> Snapshot
where
    F: FnOnce() + Send + 'static,
{
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (guard, rt) = setup(Duration::from_millis(20));
    rt.block_on(async move {
        taskscope::spawn_named(name, async move { body() })
            .await
            .unwrap();
    });
    guard.finish().expect("active guard")
}

fn stacks_of(snap: &Snapshot, task_name: &str) -> Vec<StackSample> {
    let w = snap
        .warnings_of(WarningKind::BlockedWorker)
        .find(|w| w.task_name.as_deref() == Some(task_name))
        .unwrap_or_else(|| panic!("no blocked_worker for {task_name}: {:#?}", snap.warnings));
    snap.warning_stacks
        .get(&w.id)
        .cloned()
        .unwrap_or_else(|| panic!("no stacks for {task_name}'s warning {}", w.id))
}

/// The lines of `fn name` in this file.
fn body_of(name: &str) -> std::ops::RangeInclusive<u32> {
    let source = include_str!("stacks.rs");
    let lines: Vec<&str> = source.lines().collect();
    let start = lines
        .iter()
        .position(|l| l.starts_with(&format!("fn {name}(")))
        .expect("function in this file");
    let end = start + lines[start..].iter().position(|l| *l == "}").expect("end");
    (start as u32 + 1)..=(end as u32 + 1)
}

/// The most sampled stack starts at `function`, in this file, at a line of its body.
fn assert_first_frame(stacks: &[StackSample], function: &str) {
    let lines = body_of(function);
    let top = &stacks[0];
    let first = top
        .frames
        .first()
        .unwrap_or_else(|| panic!("no frames: {stacks:#?}"));
    assert_eq!(
        // Inlined frames of optimised builds too: their path is read off the file.
        first.function,
        format!("stacks::{function}"),
        "first frame {first} is not {function}: {stacks:#?}"
    );
    assert!(
        first
            .file
            .as_deref()
            .is_some_and(|f| f.ends_with("tests/stacks.rs")),
        "{first}"
    );
    let line = first.line.expect("a line");
    assert!(
        lines.contains(&line),
        "{first}: line {line} not in {lines:?}"
    );
}

#[inline(never)]
fn slow_checksum(data: &[u8], rounds: u32) -> u64 {
    let mut sum = 0u64;
    for _ in 0..rounds {
        for &b in data {
            sum = sum.rotate_left(5) ^ u64::from(b);
        }
    }
    sum
}

/// The loop of `mixed_checksum`, inlined into it in optimised builds (where the debug info
/// names it `mix`, without a path).
#[inline(always)]
fn mix(data: &[u8], mut sum: u64) -> u64 {
    for &b in data {
        sum = sum.rotate_left(7) ^ u64::from(b);
    }
    sum
}

#[inline(never)]
fn mixed_checksum(data: &[u8], rounds: u32) -> u64 {
    let mut sum = 0;
    for _ in 0..rounds {
        sum = mix(data, sum);
    }
    sum
}

// Not a tail call: an optimised `fn nap(d) { sleep(d) }` jumps into `sleep` and leaves no
// frame of its own for any unwinder to find.
#[inline(never)]
fn nap(d: Duration) -> u32 {
    std::thread::sleep(d);
    std::hint::black_box(1)
}

#[inline(never)]
fn read_all(path: &std::path::Path) -> usize {
    let mut total = 0;
    // Several reads, so that a sample lands in one.
    for _ in 0..20 {
        total += std::fs::read(path).unwrap().len();
    }
    total
}

#[test]
fn cpu_work_is_named_by_its_function() {
    let snap = run_blocked("checksum", || {
        let data = vec![7u8; 1 << 20];
        let start = Instant::now();
        let mut x = 0;
        while start.elapsed() < Duration::from_millis(150) {
            x ^= slow_checksum(&data, 4);
        }
        std::hint::black_box(x);
    });
    let stacks = stacks_of(&snap, "checksum");
    assert_first_frame(&stacks, "slow_checksum");
}

#[test]
fn inlined_cpu_work_is_named_with_its_path() {
    let snap = run_blocked("mixing", || {
        let data = vec![7u8; 1 << 20];
        let start = Instant::now();
        let mut x = 0;
        while start.elapsed() < Duration::from_millis(150) {
            x ^= mixed_checksum(&data, 4);
        }
        std::hint::black_box(x);
    });
    let stacks = stacks_of(&snap, "mixing");
    assert_first_frame(&stacks, "mix");
}

#[test]
fn a_sleep_is_named_by_the_function_that_sleeps() {
    let snap = run_blocked("sleeper", || {
        nap(Duration::from_millis(150));
    });
    let stacks = stacks_of(&snap, "sleeper");
    assert_first_frame(&stacks, "nap");
    // The library call it made (std's path for it: `std::thread::functions::sleep`).
    let call = stacks[0].blocked_in.as_deref().unwrap_or_default();
    assert!(
        call.starts_with("std::thread::") && call.ends_with("::sleep"),
        "{call}"
    );
}

#[test]
fn a_file_read_is_named_by_the_function_that_reads() {
    let path = std::env::temp_dir().join(format!("taskscope-stacks-{}.bin", std::process::id()));
    {
        let mut f = std::fs::File::create(&path).unwrap();
        let block = vec![42u8; 1 << 20];
        for _ in 0..32 {
            f.write_all(&block).unwrap();
        }
    }
    let p = path.clone();
    let snap = run_blocked("reader", move || {
        let start = Instant::now();
        while start.elapsed() < Duration::from_millis(150) {
            std::hint::black_box(read_all(&p));
        }
    });
    let _ = std::fs::remove_file(&path);
    let stacks = stacks_of(&snap, "reader");
    // Reading copies from the page cache: most samples are inside `std::fs::read`.
    assert!(
        stacks.iter().any(|s| s
            .frames
            .first()
            .is_some_and(|f| f.function.ends_with("read_all"))),
        "{stacks:#?}"
    );
}

#[test]
fn stacks_off_means_no_stacks() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let guard = taskscope::Builder::new()
        .no_server()
        .blocked_threshold(Duration::from_millis(20))
        .stacks(false)
        .init();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        taskscope::spawn_named("unsampled", async {
            nap(Duration::from_millis(80));
        })
        .await
        .unwrap();
    });
    let snap = guard.finish().unwrap();
    assert!(snap.warnings_of(WarningKind::BlockedWorker).count() >= 1);
    assert!(snap.warning_stacks.is_empty());
}

/// Many blocked polls sampled while other tasks run and finish: every blocked poll is
/// reported, the process neither crashes nor hangs, and every stack is whole (its first frame
/// is the blocking function).
#[test]
fn a_thousand_blocked_polls_with_stacks_while_others_run() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // The watchdog scans every millisecond at this threshold: 1,000 polls of 5 ms, two at a
    // time (one per worker), are each seen blocked and sampled within their poll.
    let (guard, rt) = setup(Duration::from_millis(1));
    let busy = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    rt.block_on(async {
        let others: Vec<_> = (0..8)
            .map(|_| {
                let busy = busy.clone();
                taskscope::spawn_named("other", async move {
                    for _ in 0..2_000 {
                        busy.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        tokio::task::yield_now().await;
                    }
                })
            })
            .collect();
        for _ in 0..500 {
            let pair: Vec<_> = (0..2)
                .map(|_| {
                    taskscope::spawn_named("stress-blocker", async {
                        let start = Instant::now();
                        while start.elapsed() < Duration::from_millis(5) {
                            std::hint::black_box(slow_checksum(&[1u8; 4096], 1));
                        }
                    })
                })
                .collect();
            for b in pair {
                b.await.unwrap();
            }
        }
        for o in others {
            o.await.unwrap();
        }
    });
    let snap = guard.finish().unwrap();
    assert_eq!(busy.load(std::sync::atomic::Ordering::Relaxed), 16_000);
    let blocked: Vec<_> = snap
        .warnings_of(WarningKind::BlockedWorker)
        .filter(|w| w.task_name.as_deref() == Some("stress-blocker"))
        .collect();
    assert!(
        blocked.len() >= 900,
        "only {} of 1,000 reported",
        blocked.len()
    );
    let sampled: Vec<_> = blocked
        .iter()
        .filter_map(|w| snap.warning_stacks.get(&w.id))
        .collect();
    // Two busy workers on two cores leave the watchdog little CPU: many 5 ms polls end before
    // a scan sees them (reported from their end, unsampled) or before their sample lands (a
    // sample counts only if its poll is still running after the handler ran). Measured here:
    // about a fifth sampled in a debug build.
    assert!(
        sampled.len() >= 100,
        "only {} of {} sampled",
        sampled.len(),
        blocked.len()
    );
    // Samples that landed around the application's calls (in the poll wrapper, say) have no
    // application frame; every other one starts in this file's blocking code.
    let (mut inside, mut around) = (0, 0);
    for stacks in sampled {
        for s in stacks {
            let Some(first) = s.frames.first() else {
                around += s.count;
                continue;
            };
            inside += s.count;
            assert!(
                first.function.ends_with("slow_checksum")
                    || first.function.contains("async_block")
                    || first.function.contains("{{closure}}"),
                "corrupted or foreign stack: {s:#?}"
            );
            assert!(
                s.frames.iter().all(|f| f
                    .file
                    .as_deref()
                    .is_some_and(|f| f.ends_with("tests/stacks.rs"))),
                "corrupted or foreign stack: {s:#?}"
            );
        }
    }
    assert!(
        inside >= 9 * around,
        "{inside} samples in the application, {around} around it"
    );
}

/// A worker that blocks every signal is still reported blocked, just without a stack; the
/// watchdog stops asking it (one 20 ms wait per blocked poll, not one per scan); the signal,
/// delivered late when the thread unblocks it, does nothing; and another blocked worker is
/// sampled as usual meanwhile.
#[test]
fn a_worker_that_blocks_signals_is_reported_without_a_stack() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (guard, rt) = setup(Duration::from_millis(20));
    rt.block_on(async {
        let masked = taskscope::spawn_named("masked", async {
            // SAFETY: plain libc calls on sigset values owned here.
            let old = unsafe {
                let mut all: libc::sigset_t = std::mem::zeroed();
                let mut old: libc::sigset_t = std::mem::zeroed();
                libc::sigfillset(&mut all);
                libc::pthread_sigmask(libc::SIG_BLOCK, &all, &mut old);
                old
            };
            nap(Duration::from_millis(300));
            // SAFETY: restores this worker's mask (the runtime's thread is reused).
            unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut()) };
        });
        // Let the first one start blocking on one worker, then block the other.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let plain = taskscope::spawn_named("unmasked", async {
            nap(Duration::from_millis(200));
        });
        masked.await.unwrap();
        plain.await.unwrap();
    });
    let snap = guard.finish().unwrap();
    let masked = snap
        .warnings_of(WarningKind::BlockedWorker)
        .find(|w| w.task_name.as_deref() == Some("masked"))
        .expect("the masked worker is reported");
    assert!(masked.duration_ns.unwrap() >= 290_000_000, "{masked:?}");
    assert!(!snap.warning_stacks.contains_key(&masked.id));
    let stacks = stacks_of(&snap, "unmasked");
    assert_first_frame(&stacks, "nap");
}
