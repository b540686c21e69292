//! The process-global handle that the hot path and taskscope's threads share: the bounded
//! event queue (and its drop counters), the pool of reusable task statistics, the thresholds,
//! the collector's thread. Everything above talks to the registry through it; it knows no
//! registry.

use std::panic::Location;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::*};
use std::sync::{Arc, Mutex, OnceLock};

use crossbeam_queue::{ArrayQueue, SegQueue};

use crate::base::clock;
use crate::state::refusals::RefusalCounts;
use crate::stats::lock::LockStats;
use crate::stats::task::TaskStats;

/// Capacity of the event queue. Events are drained every watchdog scan (≤ 10 ms), so 16 Ki
/// events absorb a burst of ~1.6 M spawns per second without loss while costing ~0.5 MiB.
const QUEUE_CAPACITY: usize = 16 * 1024;

/// New and finished tasks waiting beyond a full event queue at most, each (16 and 8 bytes an
/// entry, beside the statistics the task has anyway): a spawn storm outruns the watchdog's drain,
/// and a task is registered or retired late rather than not at all. Past this (the watchdog is
/// not draining), spawns are shed and counted as dropped events, and finished tasks are left to
/// the collector's scan.
const OVERFLOW_CAPACITY: usize = 1 << 20;
#[cfg(test)]
pub(crate) const OVERFLOW_CAPACITY_FOR_TESTS: usize = OVERFLOW_CAPACITY;
/// Discrete events from the hot path.
#[derive(Debug)]
pub(crate) enum Event {
    /// A task was spawned.
    Spawn(Arc<TaskStats>),
    /// A task finished.
    Done(u64),
    /// A poll ran past the blocked threshold (sent when it ends).
    LongPoll { task: u64, start: u64, end: u64 },
    /// A lock or semaphore was created.
    Lock(Arc<LockStats>),
    /// A lock or semaphore was dropped (its statistics can be retired).
    LockDropped(u64),
    /// A task acquired `to` while holding `from`.
    LockEdge {
        from: u64,
        from_location: &'static Location<'static>,
        to: u64,
        to_location: &'static Location<'static>,
        task: u64,
    },
    /// A guard was released in a later poll than the one that acquired it.
    HeldAcrossAwait {
        lock: u64,
        task: u64,
        location: &'static Location<'static>,
        hold_ns: u64,
    },
    /// A task wrote a lock's value without reading it in that hold, after reading it in an
    /// earlier hold, and another writer wrote it in between (boxed: rare, and larger than the
    /// other events).
    StaleUpdate(Box<StaleUpdate>),
}

/// See [`Event::StaleUpdate`].
#[derive(Debug)]
pub(crate) struct StaleUpdate {
    /// The lock (an `RwLock`'s write side).
    pub(crate) lock: u64,
    pub(crate) task: u64,
    /// Where the task acquired the lock to read it, and to write it.
    pub(crate) read_at: &'static Location<'static>,
    pub(crate) write_at: &'static Location<'static>,
    /// The last writer in between (0: not an instrumented task), and where it acquired the lock.
    pub(crate) other: u64,
    pub(crate) other_at: Option<&'static Location<'static>>,
    /// Whether the task returned `Pending` between the read and the write (else both were in
    /// one poll, and the other writer ran on another thread meanwhile).
    pub(crate) awaited: bool,
}

/// State shared by the hot path and taskscope's threads, created once per process.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) enabled: AtomicBool,
    pub(crate) queue: ArrayQueue<Event>,
    /// New tasks that found the queue full, and finished ones (`Done`): drained with the queue,
    /// in an order that never leaves a task's `Done` without its spawn (see `Registry::sync`).
    pub(crate) spawn_overflow: SegQueue<Arc<TaskStats>>,
    pub(crate) done_overflow: SegQueue<u64>,
    pub(crate) dropped: AtomicU64,
    /// `Done`s that found the queue and its overflow full: after them finished tasks must be
    /// looked for in the live set (not dropped events: the scan finds every one).
    pub(crate) dropped_done: AtomicU64,
    pub(crate) next_id: AtomicU64,
    /// Clock ticks when the current Guard started.
    pub(crate) epoch: AtomicU64,
    pub(crate) start_unix_ms: AtomicU64,
    /// The collector thread, woken early when finished tasks pile up between its ticks.
    pub(crate) collector: Mutex<Option<std::thread::Thread>>,
    /// Statistics of retired tasks that nothing refers to any more, for new tasks to reuse: a
    /// spawn then allocates nothing of taskscope's. (With glibc, the two cache-line-aligned
    /// allocations a task's statistics need take the allocator's arena lock, against the
    /// collector freeing retired ones: `perf` put a spawn storm's main thread in futex waits.)
    pub(crate) pool: ArrayQueue<Arc<TaskStats>>,
    /// Ids of locks that may have waiters: a lock's first waiter adds it, the watchdog prunes
    /// the ones with none. The watchdog's wait-for scan reads these instead of every lock (it
    /// used to walk them all every 2 ms: 10,000 idle locks cost 15 % of a core, 100,000 cost
    /// 69 %).
    pub(crate) waited_locks: Mutex<Vec<u64>>,
    /// Peers the stream and the Prometheus endpoint turned away.
    pub(crate) refused: RefusalCounts,
}

/// Retired statistics kept for reuse (about 0.5 KiB each).
const POOL_CAPACITY: usize = 4096;

static SHARED: OnceLock<Shared> = OnceLock::new();

/// The thresholds the Guard was configured with (`Builder`), where the hot path reads them
/// without going through `SHARED`.
#[derive(Debug)]
pub(crate) struct Thresholds {
    /// A poll at least this long blocked its worker.
    pub(crate) blocked_ns: AtomicU64,
    /// A wait at least this long for a lock or semaphore is a `long_wait`.
    pub(crate) long_wait_ns: AtomicU64,
    /// Clock ticks between a task's stamping windows (`Builder::sample_interval`; 0: every
    /// poll opens one, so every wake is stamped).
    pub(crate) wake_sample_ticks: AtomicU64,
    /// A task group with at least this many live tasks, doubled within two seconds, is an
    /// `unbounded_spawn` (`Builder::unbounded_spawn_alive`).
    pub(crate) unbounded_alive: AtomicU64,
}

pub(crate) static THRESHOLDS: Thresholds = Thresholds {
    blocked_ns: AtomicU64::new(u64::MAX),
    long_wait_ns: AtomicU64::new(u64::MAX),
    wake_sample_ticks: AtomicU64::new(0),
    unbounded_alive: AtomicU64::new(u64::MAX),
};

/// The process-global handle (created on first use; a Guard enables it).
pub(crate) fn global() -> &'static Shared {
    SHARED.get_or_init(Shared::new)
}

/// The shared state when a Guard is alive; `None` makes every wrapper a plain tokio call.
#[inline(always)]
pub(crate) fn active() -> Option<&'static Shared> {
    let shared = SHARED.get()?;
    shared.enabled.load(Relaxed).then_some(shared)
}

impl Shared {
    pub(crate) fn new() -> Shared {
        Shared {
            enabled: AtomicBool::new(false),
            queue: ArrayQueue::new(QUEUE_CAPACITY),
            spawn_overflow: SegQueue::new(),
            done_overflow: SegQueue::new(),
            dropped: AtomicU64::new(0),
            dropped_done: AtomicU64::new(0),
            next_id: AtomicU64::new(1),
            epoch: AtomicU64::new(0),
            start_unix_ms: AtomicU64::new(0),
            collector: Mutex::new(None),
            pool: ArrayQueue::new(POOL_CAPACITY),
            waited_locks: Mutex::new(Vec::new()),
            refused: RefusalCounts::default(),
        }
    }

    /// Offers retired statistics for reuse, if nothing else refers to them or their wake line
    /// (the registry, when it retires a task; a `JoinHandle` dropped after that).
    pub(crate) fn recycle(&self, mut stats: Arc<TaskStats>) {
        if Arc::get_mut(&mut stats).is_some_and(|s| s.reusable()) {
            let _ = self.pool.push(stats);
        }
    }

    /// Queues a new task's statistics; past a full queue, in the overflow (allocating a segment
    /// every 32 tasks). False when both are full: the task is shed, counted as a dropped event.
    pub(crate) fn push_spawn(&self, stats: Arc<TaskStats>) -> bool {
        let pushed = match self.queue.push(Event::Spawn(stats)) {
            Ok(()) => true,
            Err(Event::Spawn(stats)) => overflow(&self.spawn_overflow, stats),
            // The queue hands back the event it was given: never another.
            Err(_) => false,
        };
        if !pushed {
            self.dropped.fetch_add(1, Relaxed);
        }
        pushed
    }

    /// Queues a finished task's id; past a full queue, in the overflow. Past both, counted in
    /// `dropped_done` for the collector's scan (nothing is lost: not a dropped event).
    fn push_done(&self, id: u64) {
        let pushed = match self.queue.push(Event::Done(id)) {
            Ok(()) => true,
            Err(_) => overflow(&self.done_overflow, id),
        };
        if !pushed {
            self.dropped_done.fetch_add(1, Relaxed);
        }
    }

    /// Queues an event, counting it as dropped when the queue is full. Never blocks.
    #[inline]
    pub(crate) fn push(&self, event: Event) -> Result<(), Event> {
        self.queue.push(event).inspect_err(|_| {
            self.dropped.fetch_add(1, Relaxed);
        })
    }

    pub(crate) fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Relaxed)
    }

    /// Milliseconds from the Guard's start to `ticks`.
    pub(crate) fn ms_at(&self, ticks: u64) -> u64 {
        clock::delta_ns(self.epoch.load(Relaxed), ticks) / 1_000_000
    }
}

/// Pushes `item` on an overflow unless it is full (`OVERFLOW_CAPACITY`).
fn overflow<T>(queue: &SegQueue<T>, item: T) -> bool {
    let room = queue.len() < OVERFLOW_CAPACITY;
    if room {
        queue.push(item);
    }
    room
}

/// Marks a task finished (the first outcome wins: see `TaskStats::finish`) and tells the
/// collector, so it retires finished tasks without scanning the live ones: through the queue,
/// or past a full one its overflow. Past both, the collector's periodic full scan finds the
/// task instead; nothing is lost, so it is not a dropped event.
pub(crate) fn finish(stats: &TaskStats, outcome: u8, at: u64) {
    if stats.finish(outcome, at) {
        if let Some(shared) = active() {
            shared.push_done(stats.id);
        }
    }
}
