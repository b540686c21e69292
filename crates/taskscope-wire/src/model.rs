//! Tasks, runtimes, locks, semaphores and warnings: what a [`Snapshot`] holds.
//!
//! Times are nanoseconds (`*_ns`) or milliseconds since the process started being observed
//! (`*_ms`, the `at_ms` of warnings). Field names are part of the JSON report schema
//! (DESIGN.md §8) and of the wire format: rename only with a version bump.

use serde::{Deserialize, Serialize};

use crate::histogram::Histogram;
use crate::warning::{Warning, WarningKind};

/// Everything taskscope knows at one moment.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The observed process.
    pub process: ProcessInfo,
    /// Milliseconds since observation started, when this snapshot was taken.
    pub taken_at_ms: u64,
    /// Events the library had to drop because its queue was full (load shedding).
    pub dropped_events: u64,
    /// Live tasks and the most recently finished ones (bounded by retention).
    pub tasks: Vec<Task>,
    /// Per group (name + spawn location): every task ever spawned, finished ones included.
    pub task_groups: Vec<TaskGroup>,
    /// Worker threads that have polled instrumented tasks.
    pub workers: Vec<Worker>,
    /// Tokio runtimes on which instrumented tasks were spawned.
    pub runtimes: Vec<Runtime>,
    /// Instrumented locks (`Mutex`, `RwLock`).
    pub locks: Vec<Lock>,
    /// Instrumented semaphores.
    pub semaphores: Vec<Semaphore>,
    /// Warnings, oldest first.
    pub warnings: Vec<Warning>,
    /// Polls the watchdog saw running, oldest first (bounded; see [`PollTimeline`]).
    #[serde(default)]
    pub poll_timeline: PollTimeline,
    /// Stacks sampled from blocked workers while they were blocked, by warning id
    /// (`blocked_worker` warnings; Linux only).
    #[serde(default)]
    pub warning_stacks: std::collections::BTreeMap<u64, Vec<StackSample>>,
    /// Where the tasks of a `deadlock` or `long_wait` waited, from a task dump of them taken
    /// when the warning was raised, by warning id (wire version 6).
    #[serde(default)]
    pub warning_chains: std::collections::BTreeMap<u64, Vec<crate::dump::DumpedTask>>,
    /// Other resources, seen through console-subscriber (`taskscope console`): timers, `Notify`,
    /// channels, ... Empty for taskscope's own instrumentation, whose locks and semaphores are
    /// in `locks` and `semaphores`.
    #[serde(default)]
    pub resources: Vec<Resource>,
    /// Latency and responses of each scope group (see [`ScopeGroup`]).
    #[serde(default)]
    pub scopes: Vec<ScopeGroup>,
    /// Names of the scopes in `poll_timeline`, by task id (finished scopes are not kept in
    /// `tasks`; tasks are named there).
    #[serde(default)]
    pub timeline_names: std::collections::BTreeMap<u64, String>,
    /// The sampling CPU profile of the worker threads, when profiling is on (wire version 7).
    #[serde(default)]
    pub profile: Option<crate::profile::Profile>,
    /// Live tasks whose `JoinHandle` was dropped before they ended (detached), by id, ascending
    /// (wire version 8): nobody awaits them, so nobody would see their panic or result.
    #[serde(default)]
    pub detached: Vec<u64>,
    /// Peers the live stream and the Prometheus endpoint turned away, by why, since the process
    /// started (wire version 9).
    #[serde(default)]
    pub refused: Refusals,
}

/// Peers turned away by the live stream and the Prometheus endpoint, by why (each is also
/// logged with the peer's address under the `taskscope` tracing target).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusals {
    /// Stream clients refused because the client limit (16) was reached.
    pub client_limit: u64,
    /// Connections refused because the limit of connections still saying hello (8) was reached.
    pub hello_limit: u64,
    /// Stream clients whose hello had a wrong token or none where one is required.
    pub wrong_token: u64,
    /// Stream connections whose hello was garbage, cut off, too slow, or of an unknown version.
    pub bad_hello: u64,
    /// Prometheus scrapes answered `503` because as many connections were being served.
    pub scrape_limit: u64,
    /// Prometheus scrapes answered `401`: no or a wrong bearer token.
    pub scrape_unauthorized: u64,
}

impl Refusals {
    /// Every refusal, whatever its reason.
    pub fn total(&self) -> u64 {
        self.client_limit
            + self.hello_limit
            + self.wrong_token
            + self.bad_hello
            + self.scrape_limit
            + self.scrape_unauthorized
    }
}

/// Resources other than locks and semaphores that share a type and a creation location, as
/// console-subscriber reports them (`taskscope console`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resource {
    /// tokio's type name: `Sleep`, `Notify`, `Barrier`, `Sender|Receiver`, ...
    pub kind: String,
    /// Creation location.
    pub location: String,
    /// The attributes of a recent one, as `name=value` pairs (`duration=100ms`).
    pub state: String,
    /// How many were created (that this client saw).
    pub created: u64,
    /// How many exist now.
    pub alive: u64,
    /// Async operations on them not finished now (tasks waiting on them).
    pub waiters: u64,
    /// Those tasks.
    pub waiting_tasks: Vec<u64>,
}

/// One frame of a sampled stack, innermost first.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct StackFrame {
    /// Demangled function name, without the hash (`?` when unknown).
    pub function: String,
    /// Source file, when debug info is there.
    pub file: Option<String>,
    /// Source line, when debug info is there.
    pub line: Option<u32>,
}

impl std::fmt::Display for StackFrame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.function)?;
        match (&self.file, self.line) {
            (Some(file), Some(line)) => write!(f, " ({file}:{line})"),
            (Some(file), None) => write!(f, " ({file})"),
            _ => Ok(()),
        }
    }
}

/// A stack seen `count` times while a worker was blocked: `frames[0]` is the first frame of the
/// application's code (the blocking call's caller), then its callers up to the task's future;
/// `blocked_in` is the innermost frame, inside the library or the system, that was running.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StackSample {
    /// How many samples had this stack.
    pub count: u64,
    /// The innermost frame (e.g. `std::thread::sleep`, `read`), if not the application's.
    pub blocked_in: Option<String>,
    /// The application's frames, innermost first.
    pub frames: Vec<StackFrame>,
}

/// One poll seen running by the watchdog, which looks at every worker every few milliseconds:
/// a sampled timeline of polls (every poll longer than the scan period is in it; shorter ones
/// only when a scan caught them). Times are microseconds since observation started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PollSample {
    /// The worker thread ([`Worker::id`]).
    pub worker: u64,
    /// The polled task.
    pub task: u64,
    /// When the poll started.
    pub start_us: u64,
    /// When it ended if `exact`, otherwise the last time a scan saw it still running.
    pub end_us: u64,
    /// Whether `end_us` is the poll's measured end (polls past the blocked threshold report it).
    pub exact: bool,
}

/// The sampled poll timeline: at most [`PollTimeline::MAX`] samples, the newest kept.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PollTimeline(pub Vec<PollSample>);

impl PollTimeline {
    /// The most samples kept (≈ 2.6 MiB; at a scan every 2 ms on 2 busy workers, ≈ 30 minutes).
    pub const MAX: usize = 1 << 16;

    /// Adds samples, dropping the oldest beyond [`PollTimeline::MAX`].
    pub fn extend(&mut self, samples: impl IntoIterator<Item = PollSample>) {
        self.0.extend(samples);
        if self.0.len() > Self::MAX {
            let excess = self.0.len() - Self::MAX;
            self.0.drain(..excess);
        }
    }
}

impl std::fmt::Debug for PollTimeline {
    // Tens of thousands of samples would drown `println!("{snap:#?}")`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PollTimeline({} samples)", self.0.len())
    }
}

/// The observed process.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessInfo {
    /// Executable name.
    pub name: String,
    /// Process id.
    pub pid: u32,
    /// Wall-clock start of observation, milliseconds since the Unix epoch.
    pub start_unix_ms: u64,
}

/// Whether a task runs futures or a blocking closure.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskKind {
    /// Spawned with `taskscope::spawn*`: a future polled by the runtime.
    #[default]
    Async,
    /// Spawned with `taskscope::spawn_blocking`: a closure on the blocking pool.
    Blocking,
    /// A future timed with `taskscope::scope` (or one request through the tower layer) inside a
    /// task someone else spawned: its polls are part of the enclosing task's (wire version 3).
    Scope,
}

/// Where a task is in its life.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskState {
    /// Waiting for a wake.
    #[default]
    Idle,
    /// Woken, waiting for a worker to poll it.
    Scheduled,
    /// Being polled right now.
    Running,
    /// Finished (see [`Outcome`]).
    Done,
}

/// How a task ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Its future returned `Ready`.
    Completed,
    /// It was dropped before completing (aborted, or its runtime shut down).
    Cancelled,
    /// It panicked.
    Panicked,
}

/// One instrumented task.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Task {
    /// Unique in the process, never reused.
    pub id: u64,
    /// The given name, or the spawn location.
    pub name: String,
    /// Spawn location, `file:line:column`.
    pub location: String,
    /// The instrumented task that spawned this one, if any.
    pub parent: Option<u64>,
    /// Async or blocking.
    pub kind: TaskKind,
    /// Current state.
    pub state: TaskState,
    /// How it ended, once it has.
    pub outcome: Option<Outcome>,
    /// The panic message, for a task that panicked.
    pub panic_message: Option<String>,
    /// Number of polls (for blocking tasks: 1 once it ran).
    pub polls: u64,
    /// Total time spent in polls.
    pub busy_ns: u64,
    /// Wakes that made the task runnable (repeated wakes before it runs count once), self-wakes
    /// included.
    pub wakes: u64,
    /// Wakes the task gave itself while being polled (e.g. `yield_now`).
    pub self_wakes: u64,
    /// Spawn → first poll start.
    pub first_poll_delay_ns: Option<u64>,
    /// When it was spawned.
    pub created_ms: u64,
    /// When it ended.
    pub ended_ms: Option<u64>,
    /// Duration of each poll.
    pub poll_ns: Histogram,
    /// Wake → start of the next poll.
    pub scheduled_ns: Histogram,
}

/// All tasks that share a name and a spawn location.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TaskGroup {
    /// Task name (or spawn location when unnamed).
    pub name: String,
    /// Spawn location.
    pub location: String,
    /// Async or blocking.
    pub kind: TaskKind,
    /// Tasks spawned.
    pub spawned: u64,
    /// Tasks alive now.
    pub alive: u64,
    /// Tasks that completed.
    pub completed: u64,
    /// Tasks dropped before completing.
    pub cancelled: u64,
    /// Tasks that panicked.
    pub panicked: u64,
    /// Polls over all tasks.
    pub polls: u64,
    /// Busy time over all tasks.
    pub busy_ns: u64,
    /// Poll durations over all tasks.
    pub poll_ns: Histogram,
    /// Scheduled delays over all tasks.
    pub scheduled_ns: Histogram,
}

/// What only scopes have, per scope group (the group of the same name and location in
/// [`Snapshot::task_groups`], kind [`TaskKind::Scope`], has the polls and outcomes).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ScopeGroup {
    /// Scope name (for the tower layer: `"{METHOD} {route}"`).
    pub name: String,
    /// Where the scope was created.
    pub location: String,
    /// Start → end of every scope that ended (for a request: its latency, until the response
    /// was ready or the request was dropped).
    pub latency_ns: Histogram,
    /// Responses by status class, for scopes that carry one (the tower layer's requests).
    pub responses: Responses,
}

/// Responses counted by HTTP status class.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Responses {
    /// 1xx.
    pub informational: u64,
    /// 2xx.
    pub success: u64,
    /// 3xx.
    pub redirection: u64,
    /// 4xx.
    pub client_error: u64,
    /// 5xx.
    pub server_error: u64,
}

impl Responses {
    /// Counts one response with this status code (codes outside 100–599 are not counted).
    pub fn count(&mut self, status: u16) {
        match status {
            100..=199 => self.informational += 1,
            200..=299 => self.success += 1,
            300..=399 => self.redirection += 1,
            400..=499 => self.client_error += 1,
            500..=599 => self.server_error += 1,
            _ => {}
        }
    }

    /// Adds another's counts.
    pub fn add(&mut self, other: &Responses) {
        self.informational += other.informational;
        self.success += other.success;
        self.redirection += other.redirection;
        self.client_error += other.client_error;
        self.server_error += other.server_error;
    }

    /// All responses counted.
    pub fn total(&self) -> u64 {
        self.informational + self.success + self.redirection + self.client_error + self.server_error
    }

    /// `(class, count)` for each class, `"2xx"` etc.
    pub fn classes(&self) -> [(&'static str, u64); 5] {
        [
            ("1xx", self.informational),
            ("2xx", self.success),
            ("3xx", self.redirection),
            ("4xx", self.client_error),
            ("5xx", self.server_error),
        ]
    }
}

/// A thread that has polled instrumented tasks.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Worker {
    /// taskscope's index for the thread.
    pub id: u64,
    /// Thread name (tokio names its workers `tokio-runtime-worker`).
    pub thread: String,
    /// The runtime the thread belongs to, if it is a runtime thread.
    pub runtime: Option<u64>,
    /// The task being polled right now, if any.
    pub current_task: Option<u64>,
    /// How long the current poll has run so far.
    pub current_poll_ns: Option<u64>,
}

/// A tokio runtime that runs instrumented tasks.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Runtime {
    /// tokio's runtime id.
    pub id: u64,
    /// `multi_thread` or `current_thread`.
    pub flavor: String,
    /// Worker threads.
    pub workers: usize,
    /// Tasks alive on the runtime, instrumented or not (tokio's count).
    pub alive_tasks: usize,
    /// Fraction of wall time each worker was busy since the previous snapshot (0.0..=1.0).
    pub worker_busy: Vec<f64>,
    /// Event-loop lag: how late a 1 ms heartbeat timer fired.
    pub lag_ns: Histogram,
}

/// An instrumented `Mutex` or `RwLock`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Lock {
    /// Unique id.
    pub id: u64,
    /// Given name, or creation location.
    pub name: String,
    /// `mutex`, `rwlock_read` or `rwlock_write`.
    pub kind: String,
    /// Creation location.
    pub location: String,
    /// Successful acquisitions.
    pub acquisitions: u64,
    /// Acquisitions that had to wait.
    pub contended: u64,
    /// Tasks waiting now.
    pub waiters: u64,
    /// Most tasks ever waiting at once.
    pub max_waiters: u64,
    /// The task holding it now, if any.
    pub holder: Option<u64>,
    /// Where the current holder acquired it.
    pub holder_location: Option<String>,
    /// Time from asking to acquiring.
    pub wait_ns: Histogram,
    /// Time from acquiring to releasing.
    pub hold_ns: Histogram,
}

/// An instrumented semaphore.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Semaphore {
    /// Unique id.
    pub id: u64,
    /// Given name, or creation location.
    pub name: String,
    /// Creation location.
    pub location: String,
    /// Permits it was created with plus those added.
    pub permits: u64,
    /// Permits available now.
    pub available: u64,
    /// Successful acquisitions.
    pub acquisitions: u64,
    /// Tasks waiting now.
    pub waiters: u64,
    /// Most tasks ever waiting at once.
    pub max_waiters: u64,
    /// Total time with no permit available.
    pub saturated_ns: u64,
    /// Time from asking to acquiring.
    pub wait_ns: Histogram,
}

impl StackSample {
    /// One line: the application's frame and the call it was in, e.g.
    /// `app::nap (src/main.rs:12) in std::thread::sleep`.
    pub fn summary(&self) -> String {
        match (self.frames.first(), &self.blocked_in) {
            (Some(place), Some(call)) => format!("{place} in {call}"),
            (Some(place), None) => place.to_string(),
            (None, Some(call)) => format!("{call} (outside the application's code)"),
            (None, None) => "?".to_string(),
        }
    }
}

impl Snapshot {
    /// The most sampled stack of a warning, if its worker's stack was sampled.
    pub fn top_stack(&self, warning: u64) -> Option<&StackSample> {
        self.warning_stacks.get(&warning)?.first()
    }

    /// Warnings of one kind.
    pub fn warnings_of(&self, kind: WarningKind) -> impl Iterator<Item = &Warning> {
        self.warnings.iter().filter(move |w| w.kind == kind)
    }

    /// The live or retained task with this id.
    pub fn task(&self, id: u64) -> Option<&Task> {
        self.tasks.iter().find(|t| t.id == id)
    }

    /// The group of tasks with this name, if any.
    pub fn group(&self, name: &str) -> Option<&TaskGroup> {
        self.task_groups.iter().find(|g| g.name == name)
    }

    /// The latency and responses of the scope group with this name (the first, if several
    /// locations use it).
    pub fn scope(&self, name: &str) -> Option<&ScopeGroup> {
        self.scopes.iter().find(|s| s.name == name)
    }
}
