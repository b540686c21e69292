//! The CPU profile (Linux): a task group that spends 70 % of its time in one function and 30 %
//! in another is profiled as such (against the CPU time each really used); samples in a scope
//! carry the scope; tasks taskscope did not spawn are profiled as `[uninstrumented]`; workers
//! off CPU count as idle; profiling off starts nothing.
#![cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]

use std::hint::black_box;
use std::time::Duration;

use taskscope_wire::{Profile, Snapshot};

/// Tests share one process and one taskscope: one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Hashes bytes until `spend` has passed.
#[path = "../../../examples/common/cpu_work.rs"]
mod cpu_work;

/// Each round of the workload: 700 µs of CPU in `checksum`, then 300 µs in `parse`.
static WORK: cpu_work::Work =
    cpu_work::Work::new(Duration::from_micros(700), Duration::from_micros(300));

fn round() -> u64 {
    WORK.run()
}

/// Runs `body` on a 2-worker runtime with the profiler at 499 Hz, and returns the snapshot.
fn profiled(body: impl std::future::Future<Output = ()> + Send + 'static) -> Snapshot {
    profiled_at(499, body)
}

/// Like `profiled`, at `hz`.
fn profiled_at(hz: u32, body: impl std::future::Future<Output = ()> + Send + 'static) -> Snapshot {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    WORK.calibrate(); // before profiling
    let guard = taskscope::Builder::new().no_server().profile_hz(hz).init();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(body);
    drop(rt);
    guard.finish().expect("an active guard")
}

/// Runs `round` until the workload has used `spend` of CPU (however loaded the machine),
/// yielding between rounds.
async fn busy_for(spend: Duration) {
    let start = WORK.spent_ns();
    while WORK.spent_ns() - start < spend.as_nanos() as u64 {
        black_box(round());
        tokio::task::yield_now().await;
    }
}

/// The share (total samples) of the function named `name` among the stacks `keep` selects.
fn share(profile: &Profile, name: &str, keep: impl Fn(&str) -> bool + Copy) -> f64 {
    let label = |s: &taskscope_wire::ProfileStack| keep(&profile.label(s));
    let all = profile.samples(label) as f64;
    let of = profile
        .functions(label)
        .into_iter()
        .find(|f| f.function.ends_with(name))
        .map_or(0, |f| f.total_samples) as f64;
    of / all.max(1.0)
}

#[test]
fn a_task_groups_time_is_split_between_its_two_functions_as_it_spends_it() {
    let snap = profiled(async {
        // 4 s of CPU: about 950 samples, so that 5 points are 3.5 standard errors of the
        // sampled share (with 2 s, 475 samples, a CI run read 0.688 for a truth of 0.741).
        let hasher = taskscope::spawn_named("hasher", busy_for(Duration::from_secs(4)));
        let sleeper = taskscope::spawn_named("sleeper", async {
            for _ in 0..400 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        });
        hasher.await.unwrap();
        sleeper.await.unwrap();
    });
    let profile = snap.profile.expect("a profile");
    assert_eq!(profile.hz, 499);
    let hasher = |label: &str| label == "hasher";
    let samples = profile.samples(|s| hasher(&profile.label(s)));
    // 4 s of CPU at 499 Hz (at most the kernel's tick rate): hundreds of samples.
    assert!(samples > 600, "{samples} samples of hasher: {profile:#?}");
    let checksum = share(&profile, "::checksum", hasher);
    let parse = share(&profile, "::parse", hasher);
    // The truth: the CPU time each function used, measured around every call.
    let truth = WORK.checksum_share();
    let measured = checksum / (checksum + parse);
    eprintln!(
        "hasher: {samples} samples, checksum {measured:.3} of checksum + parse (CPU time: \
         {truth:.3}); busy {} outside polls {} idle {} missed {} threads {}",
        profile.busy, profile.outside_polls, profile.idle, profile.missed, profile.threads
    );
    assert!(
        (measured - truth).abs() <= 0.05,
        "checksum {measured:.3} of the samples, {truth:.3} of the CPU time"
    );
    // Samples land in the two functions, not in the code around them.
    assert!(
        checksum + parse > 0.9,
        "checksum {checksum:.3} + parse {parse:.3}"
    );
    // The sleeper polls for microseconds: it has next to no samples, and the second worker
    // is mostly idle.
    let sleeper = profile.samples(|s| profile.label(s) == "sleeper");
    assert!(
        sleeper * 20 < samples,
        "sleeper {sleeper} vs hasher {samples}"
    );
    assert!(
        profile.idle > samples / 4,
        "idle {} of {}",
        profile.idle,
        samples
    );
    assert_eq!(profile.busy, profile.samples(|_| true));
    // Frames carry their file and line, and stop at the task's future.
    let top = profile
        .stacks
        .iter()
        .find(|s| hasher(&profile.label(s)))
        .unwrap();
    let frames: Vec<_> = top
        .frames
        .iter()
        .map(|&i| &profile.frames[i as usize])
        .collect();
    assert!(
        frames.iter().any(|f| f.function.contains("busy_for")),
        "{frames:#?}"
    );
    assert!(
        !frames.iter().any(|f| f.function.contains("tokio::runtime")),
        "{frames:#?}"
    );
    let folded = profile.folded();
    assert!(
        folded
            .lines()
            .any(|l| l.starts_with("hasher;") && l.contains("::checksum ")),
        "{folded}"
    );
}

/// Below the kernel's tick rate the handler keeps a share of the ticks' signals: the split
/// holds there too (a timer of 1/99 s favoured the end of a burst of work).
#[test]
fn at_99_hz_the_split_holds_too() {
    let before = WORK.spent();
    let snap = profiled_at(99, async {
        taskscope::spawn_named("hasher", busy_for(Duration::from_secs(5)))
            .await
            .unwrap();
    });
    let after = WORK.spent();
    let profile = snap.profile.expect("a profile");
    let hasher = |label: &str| label == "hasher";
    let samples = profile.samples(|s| hasher(&profile.label(s)));
    let (checksum, parse) = (
        share(&profile, "::checksum", hasher),
        share(&profile, "::parse", hasher),
    );
    let truth =
        (after[0] - before[0]) as f64 / (after[0] + after[1] - before[0] - before[1]) as f64;
    let measured = checksum / (checksum + parse);
    eprintln!("at 99 Hz: {samples} samples, checksum {measured:.3} (CPU time: {truth:.3})");
    // 5 s of CPU at 99 Hz: about 500 samples, whatever the kernel's tick rate.
    assert!((300..=800).contains(&samples), "{samples} samples");
    assert!(
        (measured - truth).abs() <= 0.06,
        "checksum {measured:.3} of the samples, {truth:.3} of the CPU time"
    );
}

#[test]
fn samples_in_a_scope_carry_the_scope_and_the_task_around_it() {
    let snap = profiled(async {
        taskscope::spawn_named("server", async {
            taskscope::scope("GET /sum", busy_for(Duration::from_millis(600))).await;
        })
        .await
        .unwrap();
    });
    let profile = snap.profile.expect("a profile");
    let in_scope = profile.samples(|s| profile.label(s) == "server/GET /sum");
    assert!(in_scope > 50, "{:?}", profile.by_label());
    assert!(share(&profile, "::checksum", |l| l == "server/GET /sum") > 0.5);
}

#[test]
fn tasks_taskscope_did_not_spawn_are_profiled_as_uninstrumented() {
    let snap = profiled(async {
        tokio::spawn(busy_for(Duration::from_millis(600)))
            .await
            .unwrap();
    });
    let profile = snap.profile.expect("a profile");
    let label = |l: &str| l == taskscope_wire::UNINSTRUMENTED;
    assert!(
        profile.samples(|s| label(&profile.label(s))) > 50,
        "{:?} (idle {}, missed {}, threads {})",
        profile.by_label(),
        profile.idle,
        profile.missed,
        profile.threads
    );
    assert!(share(&profile, "::checksum", label) > 0.5);
}

#[test]
fn with_profiling_off_there_is_no_profile_and_no_profiler_thread() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let guard = taskscope::Builder::new().no_server().init();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    rt.block_on(async { taskscope::spawn(async {}).await })
        .unwrap();
    let names: Vec<String> = std::fs::read_dir("/proc/self/task")
        .unwrap()
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok())
        .collect();
    assert!(
        !names.iter().any(|n| n.starts_with("taskscope-prof")),
        "{names:?}"
    );
    drop(rt);
    assert!(guard.finish().unwrap().profile.is_none());
}
