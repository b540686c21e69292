//! `taskscope::hooks`: every task of a runtime timed through tokio's task hooks, libraries'
//! tasks included (needs `--cfg tokio_unstable`).
//!
//! tokio calls the hooks on spawn (on the spawning thread), around each run of a task on a
//! worker (a poll, or the cancellation of an aborted task) and when a task ends (inside its last
//! run, or wherever it is dropped: an abort of an idle task, the runtime's shutdown). Each task
//! spawned while a [`Guard`](crate::Guard) is live gets statistics named after its spawn
//! location, in a map from tokio's task id; a run looks them up and shows itself in the worker
//! slot, as an instrumented poll does, so the watchdog, the stacks and the scopes inside see it.
//!
//! What tokio's hooks do not give, a hooked task does not have: its wakes and scheduling delays
//! (no waker of taskscope's is in the chain), and whether a run that ended the task completed it
//! or cancelled it (an aborted task's cancellation is a run too: counted completed). A task that
//! panics is seen by taskscope's panic hook, installed with the task hooks (it calls the hook
//! that was there before).
//!
//! Tasks spawned through [`spawn`](crate::spawn) on a hooked runtime are instrumented as
//! before, and taskscope's own tasks are not profiled: both are spawned inside
//! `worker::spawn_unhooked`, which the hooks skip.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::Ordering::*;
use std::sync::{Arc, Mutex, Once};

use taskscope_wire::TaskKind;
use tokio::runtime::{Builder, TaskMeta};
use tokio::task::Id;

use crate::base::clock;
use crate::state::shared;
use crate::state::worker::{self, OuterPoll};
use crate::stats::task::*;
use crate::task::instrumented::{long_poll, record_panic};
use crate::task::spawn::register;

/// Installs taskscope's task hooks on a runtime builder: every task the runtime runs is timed
/// while a [`Guard`](crate::Guard) is live, with its spawn location as tokio gives it, including
/// the tasks of hyper, axum, tonic and other libraries. Only with `--cfg tokio_unstable`.
///
/// ```
/// let runtime = taskscope::hooks(&mut tokio::runtime::Builder::new_multi_thread())
///     .enable_all()
///     .build()
///     .unwrap();
/// runtime.block_on(async {
///     let guard = taskscope::Builder::new().no_server().init();
///     tokio::spawn(async { tokio::task::yield_now().await }).await.unwrap();
///     let snap = guard.finish().unwrap();
///     assert_eq!(snap.task_groups.iter().map(|g| g.completed).sum::<u64>(), 1);
/// });
/// ```
pub fn hooks(builder: &mut Builder) -> &mut Builder {
    static PANIC_HOOK: Once = Once::new();
    PANIC_HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            note_panic(info.payload());
            previous(info);
        }));
    });
    builder
        .on_task_spawn(spawned)
        .on_before_task_poll(run_starts)
        .on_after_task_poll(run_ends)
        .on_task_terminate(terminated)
}

/// Hooked tasks by tokio's id, sharded so that runs on different workers rarely meet.
struct Tasks([Mutex<HashMap<Id, Arc<TaskStats>, foldhash::fast::FixedState>>; SHARDS]);

const SHARDS: usize = 32;

static TASKS: Tasks = Tasks([const { Mutex::new(HashMap::with_hasher(FIXED)) }; SHARDS]);
const FIXED: foldhash::fast::FixedState = foldhash::fast::FixedState::with_seed(0x7a5c);

impl Tasks {
    fn shard(&self, id: Id) -> &Mutex<HashMap<Id, Arc<TaskStats>, foldhash::fast::FixedState>> {
        use std::hash::BuildHasher;
        &self.0[FIXED.hash_one(id) as usize % SHARDS]
    }

    fn get(&self, id: Id) -> Option<Arc<TaskStats>> {
        let shard = self.shard(id).lock().unwrap_or_else(|e| e.into_inner());
        shard.get(&id).cloned()
    }
}

/// The run in progress on this thread: which task, since when, what it found in the slot.
struct Run {
    id: Id,
    stats: Arc<TaskStats>,
    start: u64,
    outer: OuterPoll,
    panicked: bool,
    ended: bool,
}

thread_local! {
    /// Runs in progress on this thread, innermost last (a `block_on` inside a task nests one).
    static RUNS: RefCell<Vec<Run>> = const { RefCell::new(Vec::new()) };
}

fn spawned(meta: &TaskMeta<'_>) {
    let Some(shared) = shared::active() else {
        return;
    };
    if worker::spawning_unhooked() {
        return;
    }
    if let Ok(handle) = tokio::runtime::Handle::try_current() {
        crate::state::attach::ensure_attached(&handle, shared);
    }
    let Some(stats) = register(
        shared,
        Cow::Borrowed(""),
        meta.spawned_at(),
        TaskKind::Async,
    ) else {
        return;
    };
    let id = meta.id();
    TASKS
        .shard(id)
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(id, stats);
}

fn run_starts(meta: &TaskMeta<'_>) {
    if shared::active().is_none() {
        return;
    }
    let id = meta.id();
    let Some(stats) = TASKS.get(id) else {
        return;
    };
    // Running, unless it already finished: a finished task stays finished (the collector
    // retires it by its `Done`), whatever order the hooks of its last moments come in.
    let running = stats.hot.state.fetch_update(Relaxed, Relaxed, |s| {
        (s != STATE_DONE).then_some(STATE_RUNNING)
    });
    if running.is_err() {
        return;
    }
    let slot = worker::current();
    let start = clock::now();
    let outer = slot.enter_poll(stats.id, &stats, start);
    if stats.first_poll.load(Relaxed) == 0 {
        stats.first_poll.store(start, Relaxed);
    }
    let run = Run {
        id,
        stats,
        start,
        outer,
        panicked: false,
        ended: false,
    };
    RUNS.with(|runs| runs.borrow_mut().push(run));
}

fn run_ends(meta: &TaskMeta<'_>) {
    let id = meta.id();
    let run = RUNS.with(|runs| {
        let mut runs = runs.borrow_mut();
        match runs.last() {
            Some(run) if run.id == id => runs.pop(),
            _ => None,
        }
    });
    let Some(run) = run else {
        return;
    };
    let stats = &run.stats;
    let end = clock::now();
    let slot = worker::current();
    slot.tick.store(end, Relaxed);
    let duration = clock::delta_ns(run.start, end);
    // As for an instrumented poll, a long run's exact end is queued before the slot shows it
    // over (the watchdog keys it by the start it saw).
    if duration >= shared::THRESHOLDS.blocked_ns.load(Relaxed) {
        long_poll(stats.id, run.start, end);
    }
    slot.leave_poll(run.outer);
    stats.record_poll(duration, None);
    if run.ended {
        let outcome = match run.panicked {
            true => OUTCOME_PANICKED,
            false => OUTCOME_COMPLETED,
        };
        crate::state::shared::finish(stats, outcome, end);
    } else {
        // (Not over a `Done` set meanwhile by a terminate hook elsewhere.)
        let _ = stats
            .hot
            .state
            .compare_exchange(STATE_RUNNING, STATE_IDLE, Relaxed, Relaxed);
    }
}

fn terminated(meta: &TaskMeta<'_>) {
    let id = meta.id();
    let Some(stats) = TASKS
        .shard(id)
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&id)
    else {
        return;
    };
    // Inside the task's own run: it ended there (the run's end records the outcome after the
    // poll). Elsewhere it was dropped without running to its end.
    let in_run = RUNS.with(|runs| match runs.borrow_mut().last_mut() {
        Some(run) if run.id == id => {
            run.ended = true;
            true
        }
        _ => false,
    });
    if !in_run {
        crate::state::shared::finish(&stats, OUTCOME_CANCELLED, clock::now());
    }
}

/// From the panic hook: a panic inside a hooked task's run marks that task panicked.
fn note_panic(payload: &(dyn std::any::Any + Send)) {
    let _ = RUNS.try_with(|runs| {
        if let Ok(mut runs) = runs.try_borrow_mut() {
            if let Some(run) = runs.last_mut() {
                run.panicked = true;
                record_panic(&run.stats, payload);
            }
        }
    });
}
