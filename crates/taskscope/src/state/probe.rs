//! Per-runtime probes (attached by `attach`): an event-loop lag heartbeat, worker busy ratios,
//! and tokio's stable per-worker counters, with which the watchdog sees a worker stuck in a task
//! that was *not* spawned through taskscope.
//!
//! The heartbeat needs no timer driver (so it works on runtimes built without `enable_time`, and
//! under paused test clocks): the watchdog thread stamps a ping and notifies a tiny task on the
//! runtime; the delay until that task runs is how long the runtime takes to get to newly woken
//! work — its event-loop lag.

use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::*};
use std::sync::Mutex;

use tokio::runtime::{Handle, RuntimeFlavor, RuntimeMetrics};
use tokio::sync::Notify;

use crate::base::clock;
use crate::stats::histogram::AtomicHistogram;

/// What the watchdog tracks per tokio worker to tell "stuck in one poll" from "busy".
#[derive(Debug, Default, Clone)]
pub(crate) struct WorkerWatch {
    pub(crate) park_unpark: u64,
    pub(crate) busy_ns: u64,
    pub(crate) changed_at: u64,
    pub(crate) warning: Option<u64>,
    pub(crate) suspect_scans: u32,
    /// Times the counters moved: tells one stall of this worker from the next.
    pub(crate) stalls: u32,
    /// The last stall, if it ended before its thread was found (`foreign`).
    pub(crate) closing: Option<StallEnded>,
}

/// A stall of a worker that ended before its thread was found: its samples' key and when it
/// began and ended (clock ticks).
#[derive(Debug, Clone, Copy)]
pub(crate) struct StallEnded {
    pub(crate) key: u64,
    pub(crate) start: u64,
    pub(crate) end: u64,
}

/// One runtime's probe.
#[derive(Debug)]
pub(crate) struct RuntimeProbe {
    pub(crate) id: u64,
    pub(crate) multi_thread: bool,
    pub(crate) metrics: RuntimeMetrics,
    pub(crate) lag_ns: AtomicHistogram,
    pub(crate) alive: AtomicBool,
    ping: Notify,
    /// Ticks of the outstanding ping (0: none outstanding).
    ping_sent: AtomicU64,
    pub(crate) watch: Mutex<Vec<WorkerWatch>>,
    /// Busy ratio per worker since the previous sample, and the sample it came from.
    pub(crate) busy: Mutex<(Vec<f64>, Vec<u64>, u64)>,
}

struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

/// tokio's runtime id as a number (its `Id` wraps one; hashing reads it without formatting).
pub(crate) fn runtime_key(handle: &Handle) -> u64 {
    let mut hasher = IdHasher(0);
    handle.id().hash(&mut hasher);
    hasher.finish()
}

pub(crate) fn current_runtime_id() -> Option<u64> {
    Handle::try_current().ok().map(|h| runtime_key(&h))
}

impl RuntimeProbe {
    /// A probe of the runtime behind `handle`, whose key is `id` (`runtime_key`).
    pub(crate) fn new(handle: &Handle, id: u64) -> RuntimeProbe {
        let metrics = handle.metrics();
        let workers = metrics.num_workers();
        RuntimeProbe {
            id,
            multi_thread: matches!(handle.runtime_flavor(), RuntimeFlavor::MultiThread),
            metrics,
            lag_ns: AtomicHistogram::preallocated(),
            alive: AtomicBool::new(true),
            ping: Notify::new(),
            ping_sent: AtomicU64::new(0),
            watch: Mutex::new(vec![WorkerWatch::default(); workers]),
            busy: Mutex::new((vec![0.0; workers], vec![0; workers], clock::now())),
        }
    }

    /// Waits for the next ping (the heartbeat task, on the runtime).
    pub(crate) async fn pinged(&self) {
        self.ping.notified().await;
    }

    /// Records the lag of the ping being answered, if one is outstanding.
    pub(crate) fn answer(&self) {
        let sent = self.ping_sent.swap(0, AcqRel);
        if sent != 0 {
            self.lag_ns.record(clock::delta_ns(sent, clock::now()));
        }
    }

    /// Sends a heartbeat ping unless one is still outstanding (a late one is measured when it
    /// finally runs).
    pub(crate) fn ping(&self) {
        if self
            .ping_sent
            .compare_exchange(0, clock::now(), AcqRel, Relaxed)
            .is_ok()
        {
            self.ping.notify_one();
        }
    }

    pub(crate) fn flavor(&self) -> &'static str {
        if self.multi_thread {
            "multi_thread"
        } else {
            "current_thread"
        }
    }

    /// Updates each worker's busy ratio from tokio's busy-duration counters.
    pub(crate) fn sample_busy(&self) {
        let now = clock::now();
        let mut busy = self.busy.lock().unwrap_or_else(|e| e.into_inner());
        let (ratios, last, at) = &mut *busy;
        let wall = clock::delta_ns(*at, now).max(1);
        for (worker, (ratio, last)) in ratios.iter_mut().zip(last.iter_mut()).enumerate() {
            let total = self.metrics.worker_total_busy_duration(worker).as_nanos() as u64;
            *ratio = (total.saturating_sub(*last) as f64 / wall as f64).min(1.0);
            *last = total;
        }
        *at = now;
    }
}
