//! A fixed snapshot for rendering and key tests: deterministic numbers, every kind of row.

use taskscope_wire::{
    Histogram, Lock, Outcome, ProcessInfo, Runtime, Semaphore, Snapshot, Task, TaskGroup, TaskKind,
    TaskState, Warning, WarningKind,
};

fn hist(values: &[u64]) -> Histogram {
    let mut h = Histogram::default();
    for &v in values {
        h.record(v);
    }
    h
}

pub fn snapshot() -> Snapshot {
    let mut tasks = Vec::new();
    for i in 0..12u64 {
        let polls: Vec<u64> = (0..(i + 1) * 3)
            .map(|k| 1_000 * (k % 7 + 1) + i * 100)
            .collect();
        tasks.push(Task {
            id: i + 1,
            name: if i % 3 == 0 {
                format!("accept-loop-{i}")
            } else {
                format!("handler-{i}")
            },
            location: format!("src/server.rs:{}:9", 10 + i),
            parent: (i > 0).then_some(1),
            kind: TaskKind::Async,
            state: [
                TaskState::Idle,
                TaskState::Running,
                TaskState::Scheduled,
                TaskState::Done,
            ][i as usize % 4],
            outcome: (i % 4 == 3).then_some(Outcome::Completed),
            polls: polls.len() as u64,
            busy_ns: polls.iter().sum(),
            wakes: polls.len() as u64 - 1,
            self_wakes: i % 2,
            first_poll_delay_ns: Some(5_000),
            created_ms: i * 10,
            ended_ms: (i % 4 == 3).then_some(500),
            poll_ns: hist(&polls),
            scheduled_ns: hist(&[2_000, 4_000 + i * 10, 30_000]),
            panic_message: None,
        });
    }
    tasks[4].poll_ns.record(200_000_000); // one long poll: highlighted
    tasks[4].busy_ns += 200_000_000;
    let mut blocked = Warning::new(1, WarningKind::BlockedWorker, 1_500, "worker tokio-runtime-worker (#0) has been blocked for 200.0 ms by task `handler-4` (spawned at src/server.rs:14:9); still blocked");
    blocked.task = Some(5);
    blocked.task_name = Some("handler-4".into());
    blocked.ongoing = true;
    let mut deadlock = Warning::new(2, WarningKind::Deadlock, 2_000, "deadlock: task `handler-1` waits for `a` held by task `handler-2`; task `handler-2` waits for `b` held by task `handler-1`");
    deadlock.tasks = vec![2, 3];
    deadlock.ongoing = true;
    let inversion = Warning::new(
        3,
        WarningKind::LockOrderInversion,
        2_500,
        "locks `a` and `b` are taken in both orders",
    );
    let mut stale = Warning::new(
        4,
        WarningKind::StaleUpdate,
        1_000,
        "task `handler-6` read lock `balance` at src/server.rs:40:22, awaited, then wrote it at src/server.rs:42:5 without reading it again, while another task `handler-6` (at src/server.rs:42:5) wrote it in between (31 times): if the value written was computed from the earlier read, that update is lost",
    );
    stale.task = Some(7);
    stale.task_name = Some("handler-6".into());
    stale.location = Some("src/server.rs:42:5".into());
    stale.locks = vec!["balance".into()];
    stale.count = Some(31);
    // Where the deadlock's two tasks wait, from the dump taken when it was raised.
    let chains = dump()
        .tasks
        .into_iter()
        .take(2)
        .enumerate()
        .map(|(i, mut t)| {
            t.id = [2, 3][i];
            t.name = format!("handler-{}", i + 1);
            t
        })
        .collect();
    Snapshot {
        process: ProcessInfo {
            name: "server".into(),
            pid: 4242,
            start_unix_ms: 0,
        },
        taken_at_ms: 3_000,
        dropped_events: 0,
        task_groups: vec![
            TaskGroup {
                name: "handler".into(),
                location: "src/server.rs:11:9".into(),
                kind: TaskKind::Async,
                spawned: 12,
                alive: 9,
                completed: 3,
                polls: 234,
                busy_ns: 900_000,
                poll_ns: hist(&[1_000, 2_000, 3_000, 200_000_000]),
                scheduled_ns: hist(&[2_000, 4_000]),
                ..TaskGroup::default()
            },
            TaskGroup {
                name: "GET /report".into(),
                location: "(tower layer)".into(),
                kind: TaskKind::Scope,
                spawned: 40,
                alive: 2,
                completed: 37,
                cancelled: 1,
                polls: 120,
                busy_ns: 3_100_000_000,
                poll_ns: hist(&[20_000, 80_000_000]),
                ..TaskGroup::default()
            },
        ],
        tasks,
        workers: Vec::new(),
        runtimes: vec![Runtime {
            id: 1,
            flavor: "multi_thread".into(),
            workers: 2,
            alive_tasks: 9,
            worker_busy: vec![0.75, 0.25],
            lag_ns: hist(&[50_000, 60_000, 900_000]),
        }],
        locks: vec![Lock {
            id: 20,
            name: "cache".into(),
            kind: "mutex".into(),
            location: "src/cache.rs:7:13".into(),
            acquisitions: 1_000,
            contended: 250,
            waiters: 2,
            max_waiters: 5,
            holder: Some(3),
            holder_location: Some("src/cache.rs:40:22".into()),
            wait_ns: hist(&[0, 0, 0, 15_000, 2_000_000]),
            hold_ns: hist(&[500, 800, 30_000_000]),
        }],
        semaphores: vec![Semaphore {
            id: 30,
            name: "db-pool".into(),
            location: "src/db.rs:3:15".into(),
            permits: 4,
            available: 0,
            acquisitions: 640,
            waiters: 12,
            max_waiters: 12,
            saturated_ns: 990_000_000,
            wait_ns: hist(&[0, 20_000_000]),
        }],
        warnings: vec![stale, inversion, deadlock, blocked],
        warning_chains: [(2, chains)].into_iter().collect(),
        poll_timeline: Default::default(),
        warning_stacks: [(
            1,
            vec![taskscope_wire::StackSample {
                count: 9,
                blocked_in: Some("std::fs::read".into()),
                frames: vec![taskscope_wire::StackFrame {
                    function: "server::load_report".into(),
                    file: Some("src/server.rs".into()),
                    line: Some(88),
                }],
            }],
        )]
        .into(),
        resources: Vec::new(),
        scopes: vec![
            taskscope_wire::ScopeGroup {
                name: "GET /report".into(),
                location: "(tower layer)".into(),
                latency_ns: hist(&[80_000_000, 81_000_000, 150_000_000]),
                responses: taskscope_wire::Responses {
                    success: 36,
                    server_error: 1,
                    ..Default::default()
                },
            },
            taskscope_wire::ScopeGroup {
                name: "GET /users/{id}".into(),
                location: "(tower layer)".into(),
                latency_ns: hist(&[40_000, 55_000, 90_000]),
                responses: taskscope_wire::Responses {
                    success: 210,
                    client_error: 4,
                    ..Default::default()
                },
            },
        ],
        timeline_names: Default::default(),
        profile: Some(profile()),
        detached: Vec::new(),
        refused: Default::default(),
    }
}

/// A CPU profile of the fixture's app: the `GET /report` route spends its CPU rendering and
/// compressing, the `session-touch` group hashing.
fn profile() -> taskscope_wire::Profile {
    use taskscope_wire::{Profile, ProfileGroup, ProfileStack, StackFrame};
    let frame = |function: &str, line: u32| StackFrame {
        function: function.into(),
        file: Some("src/server.rs".into()),
        line: Some(line),
    };
    let group = |name: &str, line: u32| ProfileGroup {
        name: name.into(),
        location: format!("src/server.rs:{line}:5"),
    };
    let stack = |group: u32, scope: Option<u32>, frames: Vec<u32>, samples: u64| ProfileStack {
        group,
        scope,
        frames,
        samples,
    };
    Profile {
        hz: 99,
        threads: 2,
        busy: 1_000,
        outside_polls: 40,
        idle: 3_100,
        missed: 0,
        sampling_ns: 2_500_000,
        groups: vec![
            group("[uninstrumented]", 1),
            group("GET /report", 40),
            group("session-touch", 60),
        ],
        frames: vec![
            frame("server::render_report", 88),
            frame("server::report_handler", 41),
            frame("flate2::deflate::compress", 12),
            frame("server::hash_session", 61),
        ],
        stacks: vec![
            stack(0, Some(1), vec![0, 1], 420),
            stack(0, Some(1), vec![2, 0, 1], 280),
            stack(2, None, vec![3], 300),
        ],
    }
}

/// A task dump of the fixture's app: nine handlers parked on one `.await`, the one that holds
/// lock `a` waiting on its backend, and a worker in a `select!`.
pub fn dump() -> taskscope_wire::TaskDump {
    use taskscope_wire::{AsyncFrame, Chain, DumpedTask, LockWait, TaskDump, TaskState, Trace};
    let frame = |function: &str, line: u32| AsyncFrame {
        function: function.into(),
        file: Some("src/server.rs".into()),
        line: Some(line),
    };
    let parked = Chain {
        leaf: Some("<tokio::sync::batch_semaphore::Acquire as Future>::poll".into()),
        frames: vec![
            AsyncFrame {
                file: Some("tokio-1.54.1/src/sync/mutex.rs".into()),
                ..frame("tokio::sync::mutex::Mutex<T>::acquire", 658)
            },
            frame("server::load_session", 31),
            frame("server::handle", 12),
        ],
    };
    let task = |id: u64, name: &str, trace: Trace, waiting_for: Option<LockWait>| DumpedTask {
        id,
        name: name.into(),
        location: "src/server.rs:11:9".into(),
        parent: None,
        kind: TaskKind::Async,
        state: TaskState::Idle,
        since_poll_ns: Some(1_200_000_000),
        trace,
        waiting_for,
    };
    let mut tasks: Vec<DumpedTask> = (1..=9)
        .map(|id| {
            task(
                id,
                "handler",
                Trace::Suspended {
                    chains: vec![parked.clone()],
                },
                Some(LockWait {
                    lock: "a".into(),
                    kind: "mutex".into(),
                    at: "src/server.rs:31:20".into(),
                    waited_ns: 1_200_000_000,
                    holder: Some(10),
                }),
            )
        })
        .collect();
    tasks.push(task(
        10,
        "refresh",
        Trace::Suspended {
            chains: vec![Chain {
                leaf: Some("<tokio::sync::oneshot::Receiver<T> as Future>::poll".into()),
                frames: vec![
                    frame("server::backend_call", 52),
                    frame("server::refresh", 47),
                ],
            }],
        },
        None,
    ));
    tasks.push(task(
        11,
        "worker",
        Trace::Suspended {
            chains: vec![
                Chain {
                    leaf: Some("tokio::sync::mpsc::chan::Rx<T,S>::recv".into()),
                    frames: vec![frame("server::worker", 70)],
                },
                Chain {
                    leaf: Some("<tokio::sync::notify::Notified as Future>::poll".into()),
                    frames: vec![frame("server::worker", 71)],
                },
            ],
        },
        None,
    ));
    TaskDump {
        taken_at_ms: 2_900,
        tasks,
        omitted: 0,
        detached: Vec::new(),
    }
}
