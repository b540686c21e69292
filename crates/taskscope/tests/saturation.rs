//! `semaphore_saturated`: a semaphore whose permits are all taken with tasks queued behind it
//! most of the time is reported while it happens, naming it, its creation line and its
//! figures, and ends when the queue goes; beside it, a semaphore whose permits are all held
//! with nobody waiting (a bound doing its job) and one with brief queues now and then stay
//! silent.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use taskscope::sync::Semaphore;
use taskscope::WarningKind;

/// `semaphore_saturated` warnings naming `name`, as (ongoing, message).
fn saturated(name: &str) -> Vec<(bool, String)> {
    taskscope::snapshot()
        .warnings_of(WarningKind::SemaphoreSaturated)
        .filter(|w| w.message.contains(&format!("`{name}`")))
        .map(|w| (w.ongoing, w.message.clone()))
        .collect()
}

/// `workers` tasks that each take a permit, hold it for `hold`, and rest `rest`, until `until`.
fn load(sem: &Arc<Semaphore>, workers: usize, hold: Duration, rest: Duration, until: Instant) {
    for _ in 0..workers {
        let sem = sem.clone();
        drop(taskscope::spawn(async move {
            while Instant::now() < until {
                let permit = sem.acquire().await.unwrap();
                tokio::time::sleep(hold).await;
                drop(permit);
                tokio::time::sleep(rest).await;
            }
        }));
    }
}

#[test]
fn a_semaphore_with_tasks_queued_most_of_the_time_is_reported_and_its_twins_are_not() {
    let _guard = common::exclusive(|| taskscope::Builder::new().no_server());
    common::runtime(true).block_on(async {
        let until = Instant::now() + Duration::from_millis(7_500);
        // Eight tasks for two permits, each held 20 ms: six tasks queued all the time.
        let tight = Arc::new(Semaphore::named("tight", 2));
        load(&tight, 8, Duration::from_millis(20), Duration::ZERO, until);
        // Every permit held, nobody waiting: the bound does its job.
        let full = Arc::new(Semaphore::named("full", 4));
        load(&full, 4, Duration::from_millis(50), Duration::ZERO, until);
        // Three tasks for two permits, held 1 ms then resting 20 ms: a queue now and then.
        let brief = Arc::new(Semaphore::named("brief", 2));
        load(
            &brief,
            3,
            Duration::from_millis(1),
            Duration::from_millis(20),
            until,
        );

        let mut seen = Vec::new();
        while Instant::now() < until && seen.is_empty() {
            tokio::time::sleep(Duration::from_millis(200)).await;
            seen = saturated("tight");
        }
        assert_eq!(seen.len(), 1, "reported while it happens: {seen:?}");
        let (ongoing, message) = &seen[0];
        assert!(*ongoing, "{message}");
        assert!(
            message.contains("saturation.rs:"),
            "its creation line: {message}"
        );
        assert!(message.contains("no permit of 2 free"), "{message}");
        eprintln!("{message}");
        let most: u64 = message
            .split(" at most)")
            .next()
            .and_then(|s| s.rsplit('(').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{message}"));
        assert!(
            (5..=8).contains(&most),
            "six tasks wait behind two: {message}"
        );
        // Six tasks wait all the time: the average queue says so (within scheduling noise).
        let queued: f64 = message
            .split(" tasks queued on average")
            .next()
            .and_then(|s| s.rsplit(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{message}"));
        assert!((3.0..=7.0).contains(&queued), "{queued} queued: {message}");

        tokio::time::sleep(until.saturating_duration_since(Instant::now())).await;
        assert!(saturated("full").is_empty(), "{:?}", saturated("full"));
        assert!(saturated("brief").is_empty(), "{:?}", saturated("brief"));
        // The queue is gone: within a window and a second the warning ends.
        let mut ended = false;
        for _ in 0..40 {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let now = saturated("tight");
            assert_eq!(now.len(), 1, "still one warning: {now:?}");
            if !now[0].0 {
                ended = true;
                break;
            }
        }
        assert!(ended, "the warning ends once nobody queues");
        drop((tight, full, brief));
    });
}
