//! A blocked worker that spent its block waiting for a CPU (other threads took it) says so, and
//! is not presented as its task's blocking call when the poll itself ran under the threshold; a
//! worker blocked in a sleep says nothing of the kind, whatever else runs on its CPU.
#![cfg(target_os = "linux")]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Pins the calling thread to CPU 0.
fn pin_to_cpu0() {
    // SAFETY: a zeroed cpu_set_t is the empty set; CPU_SET and sched_setaffinity get a valid
    // pointer to it and its size, for the calling thread (pid 0).
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(0, &mut set);
        let rc = libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
        assert_eq!(rc, 0, "sched_setaffinity");
    }
}

/// `n` threads spinning on CPU 0 until the returned flag is set.
fn hogs(n: usize) -> (Arc<AtomicBool>, Vec<std::thread::JoinHandle<()>>) {
    let stop = Arc::new(AtomicBool::new(false));
    let threads = (0..n)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                pin_to_cpu0();
                while !stop.load(Ordering::Relaxed) {
                    std::hint::spin_loop();
                }
            })
        })
        .collect();
    (stop, threads)
}

fn blocked_messages(snap: &taskscope::Snapshot, task: &str) -> Vec<String> {
    snap.warnings_of(taskscope::WarningKind::BlockedWorker)
        .filter(|w| w.task_name.as_deref() == Some(task))
        .map(|w| w.message.clone())
        .collect()
}

#[test]
fn a_worker_waiting_for_a_cpu_is_the_machine_s_stall_and_a_sleep_is_not() {
    if std::thread::available_parallelism().map_or(1, |n| n.get()) < 2 {
        return; // the watchdog needs a CPU of its own
    }
    let guard = taskscope::Builder::new()
        .no_server()
        .blocked_threshold(Duration::from_millis(150))
        .init();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // The runtime's one worker is this thread, on CPU 0 with eight threads that never yield it.
    pin_to_cpu0();
    let (stop, threads) = hogs(8);
    std::thread::sleep(Duration::from_millis(50));
    rt.block_on(async {
        // Safe twin: blocked in a sleep, not runnable, so not waiting for a CPU.
        taskscope::spawn_named("sleeper", async {
            std::thread::sleep(Duration::from_millis(300));
        })
        .await
        .unwrap();
        // The hazard's look-alike: 300 ms of wall time in one poll, of which the hogs take most.
        taskscope::spawn_named("starved", async {
            let start = Instant::now();
            while start.elapsed() < Duration::from_millis(300) {
                std::hint::spin_loop();
            }
        })
        .await
        .unwrap();
    });
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    std::thread::sleep(Duration::from_millis(50));
    let snap = taskscope::snapshot();
    drop(guard);

    let sleeper = blocked_messages(&snap, "sleeper");
    assert_eq!(sleeper.len(), 1, "{sleeper:?}");
    // Blamed on its task as before. (On a loaded machine the thread may wait for a CPU once its
    // sleep ends, which the text may then say in parentheses: that is true.)
    assert!(sleeper[0].contains("was blocked for"), "{}", sleeper[0]);
    assert!(!sleeper[0].contains("stalled"), "{}", sleeper[0]);

    let starved = blocked_messages(&snap, "starved");
    println!("{sleeper:?}\n{starved:?}");
    assert_eq!(starved.len(), 1, "{starved:?}");
    assert!(
        starved[0].contains("waiting for a CPU"),
        "the wait is named: {}",
        starved[0]
    );
    // A fifth of the CPU or less was the poll's (nine threads share it): under the threshold.
    assert!(
        starved[0].contains("was stalled for")
            && starved[0].contains("so the poll itself ran at most"),
        "not blamed on the task: {}",
        starved[0]
    );
}
