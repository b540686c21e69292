//! `taskscope::task_dump`: the `.await` chain of every live task spawned through taskscope,
//! found by one trace poll of each (`task::trace`), with the taskscope lock it waits for and
//! who holds it.

mod chain;

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use taskscope_wire::{AsyncFrame, Chain, DumpedTask, LockWait, TaskDump, Trace};
use taskscope_wire::{TaskKind, TaskState};

use crate::base::clock;
use crate::base::location::format_location;
use crate::state::registry;
use crate::state::shared;
use crate::state::worker;
use crate::stats::task::TaskStats;
use crate::task::trace::{self, Traced};

/// Dumps the live tasks spawned through taskscope: for each, where it is suspended — the chain
/// of `async fn`s from the future it waits on up to the task's own, each at its `.await` —
/// the taskscope lock or semaphore it waits for and who holds it. Waits up to `timeout` for
/// the tasks' trace polls; a task not polled by then is reported so.
///
/// Each task is woken once and polled with a waker that records where it is registered; the
/// poll is an ordinary one (spurious polls are allowed by the `Future` contract), so a task
/// may make progress, complete or panic in it, which the dump says. No wake-up is lost: the
/// registered waker is the one the poll would have handed out. Without a running Guard the
/// dump is empty.
///
/// Names of `async fn`s come from the debug info: a debug build, or `debug = "limited"` in the
/// release profile, names them; `debug = "line-tables-only"` keeps file and line but names
/// them `{async_fn#0}`.
///
/// # Panics
///
/// On a thread that polls instrumented tasks (a runtime worker, or inside `block_on`): the
/// dump waits for those polls. Call it from another thread (`std::thread::spawn`,
/// `tokio::task::spawn_blocking`).
///
/// ```
/// # #[tokio::main(flavor = "multi_thread", worker_threads = 2)] async fn main() {
/// let guard = taskscope::Builder::new().no_server().init();
/// let (tx, rx) = tokio::sync::oneshot::channel::<()>();
/// let waiting = taskscope::spawn_named("waiting", async move { rx.await.ok(); });
/// tokio::time::sleep(std::time::Duration::from_millis(50)).await;
/// let dump = tokio::task::spawn_blocking(|| taskscope::task_dump(std::time::Duration::from_secs(2)))
///     .await
///     .unwrap();
/// assert!(dump.named("waiting").next().is_some());
/// println!("{dump}");
/// tx.send(()).unwrap();
/// waiting.await.unwrap();
/// # drop(guard);
/// # }
/// ```
pub fn task_dump(timeout: Duration) -> TaskDump {
    // A thread with a worker slot has polled instrumented tasks: a worker, or `block_on`.
    if worker::current_if_any().is_some() {
        panic!(
            "taskscope::task_dump waits for the tasks' trace polls, so it cannot run on a thread \
             that polls them (a runtime worker, or inside block_on): call it from \
             std::thread::spawn or tokio::task::spawn_blocking"
        );
    }
    dump(None, timeout)
}

/// The dump of the tasks `ids` alone (those still alive), for a warning's chains. From a
/// thread that polls no tasks.
pub(crate) fn dump_tasks(ids: &[u64], timeout: Duration) -> Vec<DumpedTask> {
    dump(Some(ids), timeout).tasks
}

/// The dump of every live task, or of `only` those.
fn dump(only: Option<&[u64]>, timeout: Duration) -> TaskDump {
    // One dump at a time (the API's and the stream's): a trace request replaces the last.
    let _one = DUMPING.lock().unwrap_or_else(|e| e.into_inner());
    let Some(shared) = shared::active() else {
        return TaskDump {
            taken_at_ms: 0,
            tasks: Vec::new(),
            omitted: 0,
            detached: Vec::new(),
        };
    };
    let now = clock::now();
    let (live, waits, detached) = {
        let registry = registry::lock(shared);
        let live: Vec<Arc<TaskStats>> = registry
            .live
            .values()
            .map(|(stats, _)| stats.clone())
            .filter(|s| !s.is_done() && only.is_none_or(|ids| ids.contains(&s.id)))
            .collect();
        (live, lock_waits(&registry, now), registry.detached())
    };
    let states: Vec<(TaskState, Option<u64>)> = live
        .iter()
        .map(|s| {
            let end = s.wake.cell().last_poll_end();
            let since = (end != 0).then(|| clock::delta_ns(end, now));
            (s.state(), since)
        })
        .collect();

    // Ask for a trace poll of every async task polled at least once, and wake it (a task
    // that ended meanwhile has no waker to wake, and is not waited for).
    let traceable: Vec<&Arc<TaskStats>> = live
        .iter()
        .filter(|s| s.kind != TaskKind::Blocking && s.polled())
        .collect();
    trace::request(traceable.iter().map(|s| s.id));
    let mut woken = 0;
    for stats in &traceable {
        let cell = stats.wake.cell();
        cell.ask_trace(true);
        if let Some((waker, _)) = cell.target_for_dump() {
            waker.wake_by_ref();
            woken += 1;
        }
    }
    let deadline = Instant::now() + timeout;
    while trace::traced_count() < woken && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    let mut traced = trace::finish();
    for stats in &traceable {
        stats.wake.cell().ask_trace(false);
    }

    // Parked tasks mostly share a few stacks: each distinct one is resolved once.
    let mut chains: HashMap<Vec<usize>, Chain> = HashMap::new();
    let mut chain_of = |stack: backtrace::Backtrace| -> Chain {
        let key: Vec<usize> = stack.frames().iter().map(|f| f.ip() as usize).collect();
        chains
            .entry(key)
            .or_insert_with(|| chain::chain(stack))
            .clone()
    };
    let mut tasks: Vec<DumpedTask> = live
        .iter()
        .zip(states)
        .map(|(stats, (state, since_poll_ns))| {
            let trace = match traced.remove(&stats.id) {
                Some(Traced::Pending(stacks)) if stacks.is_empty() => Trace::NoWakerRegistered,
                Some(Traced::Pending(stacks)) => Trace::Suspended {
                    chains: stacks.into_iter().map(&mut chain_of).collect(),
                },
                Some(Traced::Completed) => Trace::CompletedDuringTrace,
                Some(Traced::Panicked) => Trace::PanickedDuringTrace,
                None if stats.kind == TaskKind::Blocking => Trace::NotTraceable {
                    reason: "a blocking task runs on its own thread, outside any poll".into(),
                },
                None if !stats.polled() => Trace::NotTraceable {
                    reason: "not polled yet".into(),
                },
                None => Trace::NotPolled,
            };
            DumpedTask {
                id: stats.id,
                name: stats.display_name().into_owned(),
                location: stats.location_string(),
                parent: (stats.parent != 0).then_some(stats.parent),
                kind: stats.kind,
                state,
                since_poll_ns,
                trace,
                waiting_for: waits.get(&stats.id).cloned(),
            }
        })
        .collect();
    tasks.sort_by_key(|t| t.id);
    TaskDump {
        taken_at_ms: shared.ms_at(now),
        detached: detached
            .into_iter()
            .filter(|id| tasks.binary_search_by_key(id, |t| t.id).is_ok())
            .collect(),
        tasks,
        omitted: 0,
    }
}

/// Held for the whole of a dump.
static DUMPING: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The taskscope lock or semaphore each waiting task waits for.
fn lock_waits(registry: &registry::Registry, now: u64) -> HashMap<u64, LockWait> {
    let mut waits = HashMap::new();
    for lock in registry.locks.values() {
        if lock.waiting.load(Relaxed) == 0 {
            continue;
        }
        let holder = crate::sync::graph::exclusive_holder(registry, lock);
        for waiter in lock.waiters() {
            waits.insert(
                waiter.task,
                LockWait {
                    lock: lock.display_name(),
                    kind: lock.kind.as_str().to_string(),
                    at: format_location(waiter.location),
                    waited_ns: clock::delta_ns(waiter.since, now),
                    holder: (holder != 0).then_some(holder),
                },
            );
        }
    }
    waits
}
