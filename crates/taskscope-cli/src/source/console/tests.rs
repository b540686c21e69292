//! Unit tests of the console source: decoding and the hazards detected.

use std::time::{Duration, UNIX_EPOCH};

use console_api as api;
use taskscope_wire::{Warning, WarningKind};

use super::decode::decode;
use super::settings::Thresholds;
use super::state::ConsoleState;
use api::instrument::Update;
use api::tasks::{task_details::PollTimesHistogram, DurationHistogram, TaskDetails, TaskUpdate};
use hdrhistogram::serialization::Serializer;

fn at(ms: u64) -> prost_types::Timestamp {
    (UNIX_EPOCH + Duration::from_secs(1_800_000_000) + Duration::from_millis(ms)).into()
}

fn task(span: u64, name: &str) -> api::tasks::Task {
    api::tasks::Task {
        id: Some(api::Id { id: span }),
        fields: vec![api::Field {
            name: Some(api::field::Name::StrName("task.name".into())),
            value: Some(api::field::Value::StrVal(name.into())),
            metadata_id: None,
        }],
        location: Some(api::Location {
            file: Some("src/app.rs".into()),
            line: Some(span as u32),
            column: Some(5),
            module_path: None,
        }),
        ..Default::default()
    }
}

struct Poll {
    polls: u64,
    started: u64,
    ended: Option<u64>,
}

fn stats(poll: Poll, wakes: u64, self_wakes: u64, wakers: u64) -> api::tasks::Stats {
    api::tasks::Stats {
        created_at: Some(at(0)),
        wakes,
        self_wakes,
        waker_clones: wakers,
        poll_stats: Some(api::PollStats {
            polls: poll.polls,
            first_poll: Some(at(1)),
            last_poll_started: Some(at(poll.started)),
            last_poll_ended: poll.ended.map(at),
            busy_time: Some(prost_types::Duration {
                seconds: 0,
                nanos: 1000,
            }),
        }),
        ..Default::default()
    }
}

fn update(now: u64, new: Vec<api::tasks::Task>, stats: Vec<(u64, api::tasks::Stats)>) -> Update {
    Update {
        now: Some(at(now)),
        task_update: Some(TaskUpdate {
            new_tasks: new,
            stats_update: stats.into_iter().collect(),
            dropped_events: 0,
        }),
        ..Default::default()
    }
}

/// console-subscriber's encoding: values over the range recorded as its maximum, and counted
/// as outliers.
fn histogram(values: &[(u64, u64)], outliers: &[u64]) -> DurationHistogram {
    let max = 1_000_000_000;
    let mut h = hdrhistogram::Histogram::<u64>::new_with_bounds(1, max, 2).unwrap();
    for &(v, n) in values {
        h.record_n(v, n).unwrap();
    }
    for _ in outliers {
        h.record(max).unwrap();
    }
    let mut raw = Vec::new();
    hdrhistogram::serialization::V2Serializer::new()
        .serialize(&h, &mut raw)
        .unwrap();
    DurationHistogram {
        raw_histogram: raw,
        max_value: max,
        high_outliers: outliers.len() as u64,
        highest_outlier: outliers.iter().copied().max(),
    }
}

fn details(span: u64, now: u64, h: DurationHistogram) -> TaskDetails {
    TaskDetails {
        task_id: Some(api::Id { id: span }),
        now: Some(at(now)),
        poll_times_histogram: Some(PollTimesHistogram::Histogram(h)),
        scheduled_times_histogram: None,
    }
}

#[test]
fn outliers_are_not_capped_at_the_histogram_range() {
    let decoded = decode(&histogram(
        &[(50_000, 1000)],
        &[1_500_000_000, 1_200_000_000],
    ))
    .unwrap();
    assert_eq!(decoded.histogram.count(), 1002);
    assert_eq!(decoded.outliers, 2);
    assert_eq!(decoded.in_range.iter().map(|&(_, n)| n).sum::<u64>(), 1000);
    let max = decoded.histogram.percentiles().max;
    assert!((1_450_000_000..=1_550_000_000).contains(&max), "{max}");
}

fn blocked(state: &ConsoleState) -> Vec<Warning> {
    state
        .snapshot()
        .warnings_of(WarningKind::BlockedWorker)
        .cloned()
        .collect()
}

#[test]
fn a_long_poll_seen_live_and_in_the_histogram_is_one_warning() {
    let mut state = ConsoleState::new("t".into(), Thresholds::default());
    let short = [(20_000, 10)];
    state.apply_update(update(
        100,
        vec![task(1, "worker")],
        vec![(
            1,
            stats(
                Poll {
                    polls: 10,
                    started: 90,
                    ended: Some(91),
                },
                10,
                0,
                1,
            ),
        )],
    ));
    state.apply_details(1, details(1, 100, histogram(&short, &[])));
    assert!(blocked(&state).is_empty());
    // A poll starts at 150 ms and is still running at 1100 ms: raised while it lasts.
    state.apply_update(update(
        1100,
        vec![],
        vec![(
            1,
            stats(
                Poll {
                    polls: 11,
                    started: 150,
                    ended: Some(91),
                },
                11,
                0,
                1,
            ),
        )],
    ));
    let live = blocked(&state);
    assert_eq!(live.len(), 1);
    assert!(
        live[0].ongoing && live[0].duration_ns == Some(950_000_000),
        "{live:?}"
    );
    assert_eq!(live[0].task_name.as_deref(), Some("worker"));
    // The next publish: the details (with the poll in them) arrive before the update that
    // says the poll ended. Still one warning, now with the final duration.
    let with_long = [(20_000, 10), (600_000_000, 1)];
    state.apply_details(1, details(1, 2100, histogram(&with_long, &[])));
    state.apply_update(update(
        2100,
        vec![],
        vec![(
            1,
            stats(
                Poll {
                    polls: 11,
                    started: 150,
                    ended: Some(750),
                },
                11,
                0,
                1,
            ),
        )],
    ));
    let done = blocked(&state);
    assert_eq!(done.len(), 1, "{done:?}");
    assert!(
        !done[0].ongoing && done[0].duration_ns == Some(600_000_000),
        "{done:?}"
    );
    // A long poll that started and ended between two publishes is found in the histogram.
    let with_two = [(20_000, 12), (600_000_000, 1), (40_000_000, 1)];
    state.apply_update(update(
        3100,
        vec![],
        vec![(
            1,
            stats(
                Poll {
                    polls: 13,
                    started: 3000,
                    ended: Some(3001),
                },
                13,
                0,
                1,
            ),
        )],
    ));
    state.apply_details(1, details(1, 3100, histogram(&with_two, &[])));
    let after = blocked(&state);
    assert_eq!(after.len(), 2, "{after:?}");
    let found = &after[1];
    assert!(
        !found.ongoing && found.message.contains("afterwards"),
        "{found:?}"
    );
    let d = found.duration_ns.unwrap();
    assert!((39_000_000..=41_000_000).contains(&d), "{d}");
}

#[test]
fn lost_wakers_and_self_wakes_name_only_their_tasks() {
    let mut state = ConsoleState::new("t".into(), Thresholds::default());
    let idle = |wakers| {
        stats(
            Poll {
                polls: 1,
                started: 10,
                ended: Some(11),
            },
            0,
            0,
            wakers,
        )
    };
    state.apply_update(update(
        3000,
        vec![
            task(1, "lost"),
            task(2, "waiting"),
            task(3, "spinner"),
            task(4, "timer"),
        ],
        vec![
            (1, idle(0)),
            // Holds a waker: whoever has it can wake it.
            (2, idle(1)),
            (
                3,
                stats(
                    Poll {
                        polls: 30,
                        started: 10,
                        ended: Some(11),
                    },
                    30,
                    20,
                    1,
                ),
            ),
            (
                4,
                stats(
                    Poll {
                        polls: 30,
                        started: 10,
                        ended: Some(11),
                    },
                    30,
                    10,
                    1,
                ),
            ),
        ],
    ));
    let snap = state.snapshot();
    let names = |kind| {
        snap.warnings_of(kind)
            .map(|w| w.task_name.clone().unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(names(WarningKind::LostWaker), ["lost"]);
    assert_eq!(names(WarningKind::SelfWakes), ["spinner"]);
    assert_eq!(snap.task_groups.len(), 4);
}
