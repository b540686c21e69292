//! Unit tests of `stats::task`.

use super::*;

fn stats() -> TaskStats {
    TaskStats::new(
        1,
        Cow::Borrowed("t"),
        Location::caller(),
        0,
        TaskKind::Async,
        1,
    )
}

/// Busy time when most polls were not timed: the sampled polls' sum is scaled to the polls
/// they stand for; the first poll and a blocked untimed poll count as measured, once.
#[test]
fn busy_time_scales_the_samples_only() {
    let s = stats();
    // A 5 ms first poll (setup), then 100 sampled polls of 1 µs among 9,900 untimed ones.
    s.record_poll(5_000_000, None);
    s.record_exact(5_000_000, true);
    for _ in 0..100 {
        s.record_poll(1_000, None);
    }
    s.publish_untimed(9_900);
    assert_eq!(s.counts().0, 10_001);
    // 5 ms + 100 µs × (100 + 9,900) / 100; scaling the first poll too would give ~500 ms.
    assert_eq!(s.busy_ns(), 15_000_000);
    // One more untimed poll, blocked 200 ms and measured: added as it is, and the maximum.
    s.publish_untimed(9_901);
    s.record_exact(200_000_000, false);
    assert_eq!(s.busy_ns(), 215_000_000);
    assert_eq!(s.poll_histogram().max, 200_000_000);
    // The histogram holds the timed polls only.
    assert_eq!(s.poll_histogram().count(), 101);
}

/// With every poll timed, busy time is their exact sum, first poll included.
#[test]
fn busy_time_is_exact_when_every_poll_was_timed() {
    let s = stats();
    s.record_poll(5_000_000, None);
    s.record_exact(5_000_000, true);
    for _ in 0..100 {
        s.record_poll(1_000, None);
    }
    assert_eq!(s.busy_ns(), 5_100_000);
}

#[test]
fn buffered_and_binned_samples_are_all_counted() {
    let s = stats();
    let mut expected_poll = Histogram::default();
    let mut expected_sched = Histogram::default();
    // Enough polls to fill the hot buffer and the log several times over.
    for i in 0..(3 * LOG as u64 + 7) {
        let poll = 100 + i * 977;
        let sched = (i % 3 != 0).then_some(5_000 + i * 13);
        s.record_poll(poll, sched);
        expected_poll.record(poll);
        if let Some(d) = sched {
            expected_sched.record(d);
        }
        // Every prefix reads back complete, whether samples sit in the buffer or the bins.
        let got = s.poll_histogram();
        assert_eq!(got.count(), i + 1);
        assert_eq!(got.buckets, expected_poll.buckets);
        assert_eq!(got.sum, expected_poll.sum);
        assert_eq!(got.max, expected_poll.max);
        let sched = s.scheduled_histogram();
        assert_eq!(sched.buckets, expected_sched.buckets);
        // Scheduled delays are known by bucket: lower bounds stand for sum and max.
        let lower = |(b, n): &(u32, u64)| bucket_range(*b as usize).0 * n;
        assert_eq!(
            sched.sum,
            expected_sched.buckets.iter().map(lower).sum::<u64>()
        );
        assert_eq!(
            sched.max,
            expected_sched
                .buckets
                .last()
                .map_or(0, |&(b, _)| bucket_range(b as usize).0)
        );
    }
    s.finish(OUTCOME_COMPLETED, 2);
    assert_eq!(s.poll_histogram().buckets, expected_poll.buckets);
    assert_eq!(s.scheduled_histogram().count(), expected_sched.count());
}

#[test]
fn a_short_task_keeps_its_samples_in_the_hot_line_and_merges_them_when_retired() {
    let s = stats();
    let mut expected_poll = Histogram::default();
    for i in 0..(u64::from(SAMPLES) - 1) {
        s.record_poll(1_000 + i * 10_000, Some(500));
        expected_poll.record(1_000 + i * 10_000);
    }
    s.finish(OUTCOME_COMPLETED, 2);
    assert!(s.bins().is_none(), "no histogram memory for a short task");
    let n = u64::from(SAMPLES) - 1;
    // Every poll but the first followed a wake.
    assert_eq!(s.counts(), (n, n - 1));
    let (mut poll, mut scheduled) = (Histogram::default(), Histogram::default());
    poll.record(7);
    s.merge_finished_into(&mut poll, &mut scheduled);
    assert_eq!(poll.count(), n + 1);
    assert_eq!(
        poll.sum,
        7 + expected_poll.sum,
        "exact busy time, not bucket bounds"
    );
    assert_eq!(poll.max, expected_poll.max);
    assert_eq!(scheduled.count(), n);
    // The twelfth poll moves the buffer to the log (and allocates the histograms).
    let s = stats();
    for _ in 0..SAMPLES {
        s.record_poll(1_000, None);
    }
    assert!(s.bins().is_some());
    assert_eq!(s.counts(), (n + 1, n));
}

#[test]
fn polls_and_delays_too_long_for_a_sample_are_binned_with_the_others() {
    let s = stats();
    let mut expected_poll = Histogram::default();
    let mut expected_sched = Histogram::default();
    let long = 100_000_000_000; // 100 s: past what a 10-bit bucket holds
    assert!(bucket_index(long) >= SAMPLE_BUCKETS);
    for (poll, sched) in [
        (1_000, Some(2_000)),
        (long, None),
        (3_000, Some(long)),
        (long, Some(long)),
        (4_000, None),
    ] {
        s.record_poll(poll, sched);
        expected_poll.record(poll);
        if let Some(d) = sched {
            expected_sched.record(d);
        }
    }
    assert_eq!(s.counts(), (5, 4));
    let poll = s.poll_histogram();
    assert_eq!(poll.buckets, expected_poll.buckets);
    assert_eq!((poll.sum, poll.max), (expected_poll.sum, long));
    assert_eq!(s.scheduled_histogram().buckets, expected_sched.buckets);
    s.finish(OUTCOME_COMPLETED, 2);
    let (mut p, mut d) = (Histogram::default(), Histogram::default());
    s.merge_finished_into(&mut p, &mut d);
    assert_eq!(p.buckets, expected_poll.buckets);
    assert_eq!(d.buckets, expected_sched.buckets);
}

#[test]
fn reused_statistics_read_like_new_ones_and_drop_what_the_old_task_held() {
    struct Count;
    impl std::task::Wake for Count {
        fn wake(self: std::sync::Arc<Self>) {}
    }
    let runtime_waker = std::sync::Arc::new(Count);
    let mut s = stats();
    // SAFETY: the wake line is not shared yet.
    unsafe {
        s.wake
            .cell()
            .set_target(std::task::Waker::from(runtime_waker.clone()), 1)
    };
    for _ in 0..(2 * LOG) {
        s.record_poll(1_000, Some(10));
    }
    s.self_wakes.store(3, Relaxed);
    s.first_poll.store(5, Relaxed);
    s.locks.held[0].0.store(42, Relaxed);
    s.locks.held_mask.store(1, Relaxed);
    *s.panic_message.lock().unwrap() = Some("boom".into());
    s.finish(OUTCOME_PANICKED, 9);
    assert!(s.bins().is_some());

    let waker = s.wake.clone();
    assert!(!s.reusable(), "a waker of the old task is still out");
    drop(waker);
    assert!(s.reusable());
    s.reuse(
        2,
        Cow::Borrowed("new"),
        Location::caller(),
        7,
        TaskKind::Blocking,
        11,
    );
    assert_eq!(
        std::sync::Arc::strong_count(&runtime_waker),
        1,
        "old runtime waker dropped"
    );
    assert_eq!(
        (s.id, &*s.name, s.parent, s.kind, s.created),
        (2, "new", 7, TaskKind::Blocking, 11)
    );
    assert!(s.bins().is_none());
    assert_eq!(s.counts(), (0, 0));
    assert_eq!(s.busy_ns(), 0);
    assert_eq!(s.poll_histogram().count(), 0);
    assert_eq!(s.scheduled_histogram().count(), 0);
    assert_eq!((s.outcome(), s.state()), (None, TaskState::Idle));
    assert!(!s.woken());
    assert!(s.wake.cell().target().is_none());
    assert_eq!(s.self_wakes.load(Relaxed), 0);
    assert_eq!(s.first_poll.load(Relaxed), 0);
    assert_eq!(s.ended.load(Relaxed), 0);
    assert_eq!(s.locks.held_mask.load(Relaxed), 0);
    assert_eq!(s.locks.held[0].0.load(Relaxed), 0);
    assert!(s.panic_message.lock().unwrap().is_none());
}
