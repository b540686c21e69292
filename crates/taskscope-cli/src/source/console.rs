//! `taskscope console`: attaches to an application instrumented with console-subscriber (the
//! tokio-console way, `console_subscriber::init()`) through the console-api gRPC protocol, and
//! turns what it streams into the [`Snapshot`] taskscope's views and reports are made of.
//!
//! What console-subscriber gives, and how it maps:
//! - tasks (named with tokio's task builder, or by spawn location) with their poll counts, busy
//!   time, wakes and self-wakes; per-task poll-time and scheduled-delay histograms come from one
//!   `WatchTaskDetails` stream per task (at most [`MAX_DETAIL_STREAMS`] at once; the task shown
//!   in the Task view always gets one);
//! - tokio's `Mutex` and `RwLock` become locks, `Semaphore` a semaphore: acquisitions, waits
//!   (the life of each `lock`/`acquire` async operation), tasks waiting now; other resources
//!   (timers, `Notify`, channels, ...) are listed with their state and waiters;
//! - warnings derived from that data: `blocked_worker` (a poll still running past the threshold,
//!   seen at console-subscriber's publish interval, or a long poll found afterwards in a task's
//!   poll histogram), `long_wait`, `lost_waker` (a task not done with no waker left) and
//!   `self_wakes` (more than half of a task's wakes).
//!
//! What it cannot give: worker threads and their stacks, lock holders and hold times, whether an
//! ended task completed or was cancelled (ended tasks count as completed), panics, lock-order
//! inversions and deadlocks. taskscope's own instrumentation has those.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::mpsc::{channel, Receiver, Sender, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use console_api as api;
use taskscope_wire::{
    fmt_ns, Histogram, Lock, ProcessInfo, Resource, Runtime, Semaphore, Snapshot, Task, TaskGroup,
    TaskKind, TaskState, Warning, WarningKind,
};

use super::live::Live;
use super::Feed;

/// console-subscriber's default address.
pub const DEFAULT_ADDR: &str = "127.0.0.1:6669";
/// Task-details streams open at once (each costs the app one histogram encoding per publish).
pub const MAX_DETAIL_STREAMS: usize = 256;
/// The largest gRPC message accepted from the app (console-subscriber keeps its own under 4 MiB).
pub const MAX_MESSAGE: usize = 16 << 20;
/// A server that has not answered the first call in this long is not a console server.
const HELLO_TIMEOUT: Duration = Duration::from_secs(3);
/// How long the first update may take once the server has answered.
const FIRST_UPDATE_TIMEOUT: Duration = Duration::from_secs(30);
/// How often the UI gets a fresh snapshot.
const PUBLISH_EVERY: Duration = Duration::from_millis(250);
/// Ended tasks kept for the views (groups keep every task's totals).
const RETAINED_ENDED_TASKS: usize = 1000;
/// Finished async operations remembered, so one sent again is not counted twice.
const MAX_FINISHED_OPS: usize = 100_000;
/// A task must have been idle without a waker this long before `lost_waker` is raised.
const LOST_WAKER_AFTER: Duration = Duration::from_secs(1);
/// Wakes a task needs before its self-wake share is judged.
const SELF_WAKES_MIN: u64 = 20;

/// What turns observations into warnings.
#[derive(Clone, Copy, Debug)]
pub struct Thresholds {
    /// A poll longer than this is a `blocked_worker`.
    pub blocked: Duration,
    /// A lock or semaphore wait longer than this is a `long_wait`.
    pub long_wait: Duration,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            blocked: Duration::from_millis(10),
            long_wait: Duration::from_secs(1),
        }
    }
}

/// Connects to a console-subscriber server at `addr` on a background thread, for as long as the
/// returned source's receiver lives; reconnects when the app goes away.
pub fn connect(addr: String, thresholds: Thresholds) -> Live {
    let (feed_tx, feed) = channel();
    let (watch, watch_rx) = channel();
    std::thread::Builder::new()
        .name("taskscope-console".into())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime for the console client");
            runtime.block_on(manage(addr, thresholds, feed_tx, watch_rx));
        })
        .expect("spawn the console client thread");
    Live::from_parts(feed, watch)
}

async fn manage(
    addr: String,
    thresholds: Thresholds,
    feed: Sender<Feed>,
    watch: Receiver<Option<u64>>,
) {
    let mut watching = None;
    loop {
        let _ = feed.send(Feed::Status(format!("connecting to {addr}")));
        let why = match session(&addr, thresholds, &feed, &watch, &mut watching).await {
            Ok(()) => return, // the UI is gone
            Err(why) => why,
        };
        if feed
            .send(Feed::Status(format!("disconnected: {why}; retrying")))
            .is_err()
        {
            return;
        }
        let retry_at = Instant::now() + Duration::from_secs(1);
        while Instant::now() < retry_at {
            tokio::time::sleep(Duration::from_millis(50)).await;
            match watch.try_recv() {
                Ok(task) => watching = task,
                Err(TryRecvError::Empty) => {}
                Err(TryRecvError::Disconnected) => return,
            }
        }
    }
}

type Client = api::instrument::instrument_client::InstrumentClient<tonic::transport::Channel>;

/// Why a call failed, in words (tonic's Display of a transport error hides the cause).
fn describe(status: &tonic::Status) -> String {
    let text = chain(status);
    if text.is_empty() {
        format!("{:?}", status.code())
    } else {
        text
    }
}

/// An error and its causes, `a: b: c`, without repeats.
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = String::new();
    let mut next = Some(error);
    while let Some(e) = next {
        let part = match e.downcast_ref::<tonic::Status>() {
            Some(status) => status.message().to_string(),
            None => e.to_string(),
        };
        if !part.is_empty() && !text.contains(&part) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&part);
        }
        next = e.source();
    }
    text
}

/// Opens the connection and the update stream; errors say plainly when the peer is not a
/// console-subscriber server.
async fn open(
    addr: &str,
) -> Result<
    (
        Client,
        tonic::Streaming<api::instrument::Update>,
        api::instrument::Update,
    ),
    String,
> {
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|e| format!("{addr} is not an address: {e}"))?
        .connect_timeout(Duration::from_secs(2))
        .tcp_nodelay(true);
    let not_console = |why: String| format!("{addr} is not a console-subscriber server: {why}");
    // TCP has its own timeout; a peer that accepts but never answers HTTP/2 is caught here.
    let channel = tokio::time::timeout(HELLO_TIMEOUT, endpoint.connect())
        .await
        .map_err(|_| {
            not_console(format!(
                "no answer to the HTTP/2 handshake in {}s",
                HELLO_TIMEOUT.as_secs()
            ))
        })?
        .map_err(|e| format!("{addr}: {}", chain(&e)))?;
    let mut client = Client::new(channel).max_decoding_message_size(MAX_MESSAGE);
    let mut stream = tokio::time::timeout(
        HELLO_TIMEOUT,
        client.watch_updates(api::instrument::InstrumentRequest {}),
    )
    .await
    .map_err(|_| {
        not_console(format!(
            "no answer to the gRPC call in {}s",
            HELLO_TIMEOUT.as_secs()
        ))
    })?
    .map_err(|s| not_console(describe(&s)))?
    .into_inner();
    // The first update holds everything the app retained (an hour of history by default): it
    // can take a while to encode and send.
    let first = tokio::time::timeout(FIRST_UPDATE_TIMEOUT, stream.message())
        .await
        .map_err(|_| {
            format!(
                "{addr}: no first update in {}s",
                FIRST_UPDATE_TIMEOUT.as_secs()
            )
        })?
        .map_err(|s| format!("{addr}: {}", describe(&s)))?
        .ok_or_else(|| format!("{addr}: the stream ended before the first update"))?;
    Ok((client, stream, first))
}

enum Event {
    Update(Option<Result<api::instrument::Update, tonic::Status>>),
    Details(u64, Result<api::tasks::TaskDetails, String>),
    Tick,
}

/// One connection; `Ok` when the UI went away, `Err(why)` when the connection ended.
async fn session(
    addr: &str,
    thresholds: Thresholds,
    feed: &Sender<Feed>,
    watch: &Receiver<Option<u64>>,
    watching: &mut Option<u64>,
) -> Result<(), String> {
    let (client, mut updates, first) = open(addr).await?;
    let _ = feed.send(Feed::Status(format!("console: {addr}")));
    let mut state = ConsoleState::new(format!("console {addr}"), thresholds);
    state.apply_update(first);

    let (details_tx, mut details_rx) = tokio::sync::mpsc::channel(1024);
    let mut streams: HashMap<u64, tokio::task::JoinHandle<()>> = HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    let mut last_publish = Instant::now() - PUBLISH_EVERY;
    let mut dirty = true;
    // Which details streams to have changes only with an update, a failed stream or the
    // watched task: checked then, not on every message.
    let mut reconcile = true;
    let result = loop {
        let event = tokio::select! {
            update = updates.message() => Event::Update(update.transpose()),
            Some((span, details)) = details_rx.recv() => Event::Details(span, details),
            _ = tick.tick() => Event::Tick,
        };
        match event {
            Event::Update(Some(Ok(update))) => {
                state.apply_update(update);
                dirty = true;
                reconcile = true;
            }
            Event::Update(Some(Err(status))) => break Err(describe(&status)),
            Event::Update(None) => break Err("the app closed the stream".into()),
            Event::Details(span, Ok(details)) => {
                state.apply_details(span, details);
                dirty = true;
            }
            Event::Details(span, Err(why)) => {
                state.details_failed(span, why);
                reconcile = true;
            }
            Event::Tick => {}
        }
        loop {
            match watch.try_recv() {
                Ok(task) => {
                    *watching = task;
                    reconcile = true;
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => return Ok(()),
            }
        }
        if std::mem::take(&mut reconcile) {
            // Open and close task-details streams to follow what the state wants.
            open_details(&state, &client, &details_tx, &mut streams, *watching);
        }
        if dirty && last_publish.elapsed() >= PUBLISH_EVERY {
            if feed
                .send(Feed::Snapshot(Arc::new(state.snapshot())))
                .is_err()
            {
                break Ok(());
            }
            last_publish = Instant::now();
            dirty = false;
        }
    };
    for handle in streams.values() {
        handle.abort();
    }
    result
}

/// Where the details streams send what they receive, with the task's console span id.
type DetailsTx = tokio::sync::mpsc::Sender<(u64, Result<api::tasks::TaskDetails, String>)>;

/// Opens the details streams the state wants and closes the others.
fn open_details(
    state: &ConsoleState,
    client: &Client,
    details_tx: &DetailsTx,
    streams: &mut HashMap<u64, tokio::task::JoinHandle<()>>,
    watching: Option<u64>,
) {
    let wanted = state.wanted_details(watching);
    streams.retain(|span, handle| {
        let keep = wanted.contains(span) && !handle.is_finished();
        if !keep {
            handle.abort();
        }
        keep
    });
    for span in wanted {
        if streams.contains_key(&span) || state.details_given_up(span) {
            continue;
        }
        let mut client = client.clone();
        let tx = details_tx.clone();
        streams.insert(
            span,
            tokio::spawn(async move {
                let request = api::instrument::TaskDetailsRequest {
                    id: Some(api::Id { id: span }),
                };
                let mut stream = match client.watch_task_details(request).await {
                    Ok(response) => response.into_inner(),
                    Err(status) => {
                        let _ = tx.send((span, Err(describe(&status)))).await;
                        return;
                    }
                };
                loop {
                    let message = match stream.message().await {
                        Ok(Some(details)) => Ok(details),
                        Ok(None) => Err("the details stream ended".to_string()),
                        Err(status) => Err(describe(&status)),
                    };
                    let end = message.is_err();
                    if tx.send((span, message)).await.is_err() || end {
                        return;
                    }
                }
            }),
        );
    }
}

fn to_time(ts: &prost_types::Timestamp) -> SystemTime {
    let secs = ts.seconds.max(0) as u64;
    let nanos = ts.nanos.clamp(0, 999_999_999) as u32;
    UNIX_EPOCH + Duration::new(secs, nanos)
}

fn opt_time(ts: &Option<prost_types::Timestamp>) -> Option<SystemTime> {
    ts.as_ref().map(to_time)
}

fn since(later: SystemTime, earlier: SystemTime) -> Duration {
    later.duration_since(earlier).unwrap_or_default()
}

fn location(loc: &Option<api::Location>) -> String {
    let Some(loc) = loc else {
        return "<unknown>".into();
    };
    let mut out = loc.file.clone().unwrap_or_else(|| "<unknown>".into());
    if let Some(line) = loc.line {
        out.push_str(&format!(":{line}"));
        if let Some(col) = loc.column {
            out.push_str(&format!(":{col}"));
        }
    }
    out
}

/// One task as console-subscriber reported it, plus what taskscope derived from it.
#[derive(Debug, Default)]
struct TaskEntry {
    /// tokio's task id when the span carries it (what `tokio::task::id()` shows), else the span id.
    id: u64,
    name: String,
    location: String,
    kind: TaskKind,
    stats: api::tasks::Stats,
    poll_ns: Histogram,
    scheduled_ns: Histogram,
    /// Poll counts above the blocked threshold in the last details, by histogram value.
    long_polls: BTreeMap<u64, u64>,
    /// Polls beyond the histogram's range in the last details.
    long_outliers: u64,
    highest_outlier: u64,
    /// Ends of long polls reported live, not yet matched in a details histogram.
    live_long_polls: Vec<SystemTime>,
    /// The live `blocked_worker` warning of the poll that started at this time.
    blocked: Option<(SystemTime, usize)>,
    lost_waker: Option<usize>,
    self_wakes_warned: bool,
    /// A details message newer than the task's end has arrived: no need to watch it further.
    details_final: bool,
    details_failed: bool,
}

impl TaskEntry {
    fn dropped_at(&self) -> Option<SystemTime> {
        opt_time(&self.stats.dropped_at)
    }

    fn poll_stats(&self) -> api::PollStats {
        self.stats.poll_stats.unwrap_or_default()
    }

    /// The start of a poll that is running now, if one is.
    fn running_since(&self) -> Option<SystemTime> {
        let polls = self.poll_stats();
        let started = opt_time(&polls.last_poll_started)?;
        match opt_time(&polls.last_poll_ended) {
            Some(ended) if ended >= started => None,
            _ if self.dropped_at().is_some() => None,
            _ => Some(started),
        }
    }

    fn state(&self) -> TaskState {
        if self.dropped_at().is_some() {
            return TaskState::Done;
        }
        if self.running_since().is_some() {
            return TaskState::Running;
        }
        let polls = self.poll_stats();
        let ended = opt_time(&polls.last_poll_ended);
        match (opt_time(&self.stats.last_wake), ended) {
            (_, None) => TaskState::Scheduled, // never polled yet
            (Some(wake), Some(ended)) if wake > ended => TaskState::Scheduled,
            _ => TaskState::Idle,
        }
    }

    fn wakers(&self) -> i64 {
        self.stats.waker_clones as i64 - self.stats.waker_drops as i64
    }
}

/// A resource: a tokio `Mutex`, `RwLock`, `Semaphore`, timer, channel, ...
#[derive(Debug, Default)]
struct ResourceEntry {
    kind: String,
    location: String,
    internal: bool,
    created_at: Option<SystemTime>,
    dropped_at: Option<SystemTime>,
    attributes: BTreeMap<String, String>,
    /// `Semaphore`'s `permits` attribute: available now, and the most seen.
    available: Option<u64>,
    permits_seen: u64,
    /// Per kind of operation (`Mutex::lock`, `RwLock::read`, `RwLock::write`, ...): finished
    /// ones, those that waited, and their durations.
    ops: BTreeMap<String, OpTotals>,
    max_waiters: BTreeMap<String, u64>,
    saturated_ns: u64,
}

#[derive(Debug, Default, Clone)]
struct OpTotals {
    finished: u64,
    contended: u64,
    wait_ns: Histogram,
}

/// An async operation (`Mutex::lock`, `Semaphore::acquire`, `Sleep::new_timeout`, ...).
#[derive(Debug, Default)]
struct OpEntry {
    source: String,
    resource: u64,
    task_span: Option<u64>,
    created_at: Option<SystemTime>,
    dropped_at: Option<SystemTime>,
    /// A poll of it returned `Pending`.
    waited: bool,
    long_wait: Option<usize>,
}

/// A task group's identity: name, spawn location, kind.
type GroupKey = (String, String, TaskKind);

/// Adds a task to its group in `groups`.
fn account(groups: &mut HashMap<GroupKey, TaskGroup>, t: &Task) {
    let group = groups
        .entry((t.name.clone(), t.location.clone(), t.kind))
        .or_insert_with(|| TaskGroup {
            name: t.name.clone(),
            location: t.location.clone(),
            kind: t.kind,
            ..TaskGroup::default()
        });
    group.spawned += 1;
    if t.state == TaskState::Done {
        group.completed += 1;
    } else {
        group.alive += 1;
    }
    group.polls += t.polls;
    group.busy_ns += t.busy_ns;
    group.poll_ns.merge(&t.poll_ns);
    group.scheduled_ns.merge(&t.scheduled_ns);
}

/// Everything a console connection has seen, turned into taskscope's model.
#[derive(Debug)]
pub struct ConsoleState {
    name: String,
    thresholds: Thresholds,
    /// Start of observation: the oldest thing the first update knew of.
    base: Option<SystemTime>,
    now: SystemTime,
    /// Field names by metadata id, for fields sent by index.
    field_names: HashMap<u64, Vec<String>>,
    tasks: BTreeMap<u64, TaskEntry>,
    /// Groups of tasks no longer kept, by (name, location, kind).
    retired: HashMap<GroupKey, TaskGroup>,
    resources: BTreeMap<u64, ResourceEntry>,
    ops: BTreeMap<u64, OpEntry>,
    /// Other resources dropped, by (type, location): how many, and the last one's attributes.
    dropped_resources: BTreeMap<(String, String), (u64, BTreeMap<String, String>)>,
    /// Operations already counted (console-subscriber may send a finished one again), oldest
    /// first, bounded.
    finished_ops: HashSet<u64>,
    /// Details newer than the last update, by task.
    pending_details: HashMap<u64, api::tasks::TaskDetails>,
    finished_order: std::collections::VecDeque<u64>,
    dropped_events: u64,
    warnings: Vec<Warning>,
}

impl ConsoleState {
    /// An empty state; `name` becomes the snapshot's process name.
    pub fn new(name: String, thresholds: Thresholds) -> Self {
        ConsoleState {
            name,
            thresholds,
            base: None,
            now: UNIX_EPOCH,
            field_names: HashMap::new(),
            tasks: BTreeMap::new(),
            retired: HashMap::new(),
            resources: BTreeMap::new(),
            ops: BTreeMap::new(),
            dropped_resources: BTreeMap::new(),
            finished_ops: HashSet::new(),
            pending_details: HashMap::new(),
            finished_order: std::collections::VecDeque::new(),
            dropped_events: 0,
            warnings: Vec::new(),
        }
    }

    fn ms(&self, at: SystemTime) -> u64 {
        since(at, self.base.unwrap_or(at)).as_millis() as u64
    }

    fn field_name(&self, field: &api::Field) -> Option<String> {
        match field.name.as_ref()? {
            api::field::Name::StrName(name) => Some(name.clone()),
            api::field::Name::NameIdx(idx) => {
                let meta = field.metadata_id.as_ref()?.id;
                self.field_names.get(&meta)?.get(*idx as usize).cloned()
            }
        }
    }

    fn raise(&mut self, kind: WarningKind, at: SystemTime, message: String) -> usize {
        let id = self.warnings.len() as u64 + 1;
        let at_ms = self.ms(at);
        self.warnings.push(Warning::new(id, kind, at_ms, message));
        self.warnings.len() - 1
    }

    /// Applies one `Update` of the `WatchUpdates` stream.
    pub fn apply_update(&mut self, update: api::instrument::Update) {
        let previous_now = self.now;
        if let Some(now) = &update.now {
            self.now = to_time(now);
        }
        if let Some(meta) = update.new_metadata {
            for new in meta.metadata {
                if let (Some(id), Some(meta)) = (new.id, new.metadata) {
                    self.field_names.insert(id.id, meta.field_names);
                }
            }
        }
        if self.base.is_none() {
            let oldest = update
                .task_update
                .iter()
                .flat_map(|t| t.stats_update.values())
                .filter_map(|s| opt_time(&s.created_at))
                .chain(std::iter::once(self.now))
                .min();
            self.base = oldest;
        }
        if let Some(tasks) = update.task_update {
            self.dropped_events += tasks.dropped_events;
            for task in tasks.new_tasks {
                self.add_task(task);
            }
            for (span, stats) in tasks.stats_update {
                self.tasks.entry(span).or_default().stats = stats;
            }
        }
        let mut poll_ops = Vec::new();
        if let Some(resources) = update.resource_update {
            self.dropped_events += resources.dropped_events;
            for resource in resources.new_resources {
                let Some(id) = resource.id.as_ref().map(|id| id.id) else {
                    continue;
                };
                let entry = self.resources.entry(id).or_default();
                entry.kind = resource.concrete_type;
                entry.location = location(&resource.location);
                entry.internal = resource.is_internal;
            }
            for (id, stats) in resources.stats_update {
                let mut attributes = BTreeMap::new();
                let mut permits = None;
                for attribute in &stats.attributes {
                    let Some(field) = &attribute.field else {
                        continue;
                    };
                    let Some(name) = self.field_name(field) else {
                        continue;
                    };
                    let value = field
                        .value
                        .as_ref()
                        .map(|v| v.to_string())
                        .unwrap_or_default();
                    if name == "permits" {
                        if let Some(api::field::Value::U64Val(n)) = field.value {
                            permits = Some(n);
                        }
                    }
                    let unit = attribute.unit.clone().unwrap_or_default();
                    attributes.insert(name, format!("{value}{unit}"));
                }
                let entry = self.resources.entry(id).or_default();
                entry.created_at = opt_time(&stats.created_at);
                entry.dropped_at = opt_time(&stats.dropped_at);
                entry.attributes = attributes;
                if let Some(n) = permits {
                    entry.available = Some(n);
                    entry.permits_seen = entry.permits_seen.max(n);
                }
            }
            poll_ops = resources.new_poll_ops;
        }
        if let Some(ops) = update.async_op_update {
            self.dropped_events += ops.dropped_events;
            for op in ops.new_async_ops {
                let Some(id) = op.id.map(|id| id.id) else {
                    continue;
                };
                if self.finished_ops.contains(&id) {
                    continue;
                }
                let entry = self.ops.entry(id).or_default();
                entry.source = op.source;
                entry.resource = op.resource_id.map(|r| r.id).unwrap_or(0);
            }
            for (id, stats) in ops.stats_update {
                if self.finished_ops.contains(&id) {
                    continue;
                }
                let entry = self.ops.entry(id).or_default();
                entry.created_at = opt_time(&stats.created_at);
                entry.dropped_at = opt_time(&stats.dropped_at);
                entry.task_span = stats.task_id.map(|t| t.id);
            }
        }
        // After the operations they belong to are known.
        for poll in poll_ops {
            if let Some(op) = poll.async_op_id.and_then(|id| self.ops.get_mut(&id.id)) {
                op.waited |= !poll.is_ready;
            }
        }
        let interval = if previous_now == UNIX_EPOCH {
            Duration::ZERO
        } else {
            since(self.now, previous_now)
        };
        self.derive(interval);
        self.retire();
        let now = self.now;
        let ready: Vec<u64> = self
            .pending_details
            .iter()
            .filter(|(_, d)| opt_time(&d.now).is_none_or(|t| t <= now))
            .map(|(&span, _)| span)
            .collect();
        for span in ready {
            let details = self.pending_details.remove(&span).expect("pending");
            self.apply_details(span, details);
        }
    }

    fn add_task(&mut self, task: api::tasks::Task) {
        let Some(span) = task.id.as_ref().map(|id| id.id) else {
            return;
        };
        let mut name = None;
        let mut id = span;
        let mut kind = match task.kind() {
            api::tasks::task::Kind::Blocking => TaskKind::Blocking,
            api::tasks::task::Kind::Spawn => TaskKind::Async,
        };
        for field in &task.fields {
            match (self.field_name(field).as_deref(), &field.value) {
                (Some("task.name"), Some(value)) => name = Some(value.to_string()),
                (Some("task.id"), Some(api::field::Value::U64Val(n))) => id = *n,
                (Some("kind"), Some(value)) if value.to_string() == "blocking" => {
                    kind = TaskKind::Blocking
                }
                _ => {}
            }
        }
        let location = location(&task.location);
        let entry = self.tasks.entry(span).or_default();
        entry.id = id;
        entry.name = name.unwrap_or_else(|| location.clone());
        entry.location = location;
        entry.kind = kind;
    }

    /// Applies one `TaskDetails` message of the task with console span id `span`.
    pub fn apply_details(&mut self, span: u64, details: api::tasks::TaskDetails) {
        let now = opt_time(&details.now).unwrap_or(self.now);
        if now > self.now {
            // Newer than the last update: whether a poll seen running has ended by then is
            // not known yet. Applied after the next update.
            self.pending_details.insert(span, details);
            return;
        }
        let threshold = self.thresholds.blocked.as_nanos() as u64;
        let Some(entry) = self.tasks.get_mut(&span) else {
            return;
        };
        if entry.dropped_at().is_some_and(|dropped| now >= dropped) {
            entry.details_final = true;
        }
        if let Some(h) = details.scheduled_times_histogram.as_ref().and_then(decode) {
            entry.scheduled_ns = h.histogram;
        }
        let poll = match details.poll_times_histogram {
            Some(api::tasks::task_details::PollTimesHistogram::Histogram(h)) => decode(&h),
            Some(api::tasks::task_details::PollTimesHistogram::LegacyHistogram(raw)) => {
                decode(&api::tasks::DurationHistogram {
                    raw_histogram: raw,
                    ..Default::default()
                })
            }
            None => None,
        };
        let Some(poll) = poll else {
            return;
        };
        entry.poll_ns = poll.histogram;
        // Long polls that arrived since the last details and were not seen live.
        // Values are keyed by the histogram's bucket value, which does not move; polls beyond
        // the histogram's range are only counted (`outliers`), so a new one is known to be longer
        // than that range, no more.
        let long: BTreeMap<u64, u64> = poll
            .in_range
            .into_iter()
            .filter(|&(v, _)| v > threshold)
            .collect();
        let mut new = 0;
        let mut longest = 0;
        for (&value, &count) in &long {
            let before = entry.long_polls.get(&value).copied().unwrap_or(0);
            if count > before {
                new += count - before;
                longest = longest.max(value);
            }
        }
        entry.long_polls = long;
        if poll.outliers > entry.long_outliers && poll.range_max > threshold {
            new += poll.outliers - entry.long_outliers;
            // A new largest outlier is this poll's duration; otherwise it is only known to be
            // beyond the range.
            let exact = poll.highest_outlier.filter(|&h| h > entry.highest_outlier);
            longest = longest.max(exact.unwrap_or(poll.range_max));
        }
        entry.long_outliers = poll.outliers;
        entry.highest_outlier = entry.highest_outlier.max(poll.highest_outlier.unwrap_or(0));
        // Long polls reported live that had ended by then are in this histogram: not new.
        let ended = entry.live_long_polls.iter().filter(|&&e| e <= now).count();
        let seen_live = (new as usize).min(ended);
        entry.live_long_polls.sort();
        entry.live_long_polls.drain(..seen_live);
        let new = new - seen_live as u64;
        if new == 0 {
            return;
        }
        let (task, name, location) = (entry.id, entry.name.clone(), entry.location.clone());
        let message = if new == 1 {
            format!(
                "a poll of task `{name}` (spawned at {location}) blocked its worker for {} (found afterwards in its poll histogram)",
                fmt_ns(longest)
            )
        } else {
            format!(
                "{new} polls of task `{name}` (spawned at {location}) blocked their worker for over {}, the longest {} (found afterwards in its poll histogram)",
                fmt_ns(threshold),
                fmt_ns(longest)
            )
        };
        let index = self.raise(WarningKind::BlockedWorker, now, message);
        let w = &mut self.warnings[index];
        w.task = Some(task);
        w.task_name = Some(name);
        w.location = Some(location);
        w.duration_ns = Some(longest);
        w.count = Some(new);
    }

    /// A task-details stream failed (say, the task is no longer known to the app).
    pub fn details_failed(&mut self, span: u64, _why: String) {
        if let Some(entry) = self.tasks.get_mut(&span) {
            entry.details_failed = true;
        }
    }

    fn details_given_up(&self, span: u64) -> bool {
        self.tasks.get(&span).is_none_or(|t| t.details_failed)
    }

    /// The tasks (console span ids) whose details should be streamed: the one the user watches
    /// (a taskscope task id), then live tasks and ended ones not yet seen in final form, up to
    /// [`MAX_DETAIL_STREAMS`].
    pub fn wanted_details(&self, watching: Option<u64>) -> HashSet<u64> {
        let mut wanted: HashSet<u64> = self
            .tasks
            .iter()
            .filter(|(_, t)| watching == Some(t.id))
            .map(|(&span, _)| span)
            .collect();
        for (&span, task) in &self.tasks {
            if wanted.len() >= MAX_DETAIL_STREAMS {
                break;
            }
            if !task.details_final && !task.details_failed {
                wanted.insert(span);
            }
        }
        wanted
    }

    /// Warnings from the latest state.
    fn derive(&mut self, interval: Duration) {
        let now = self.now;
        let blocked = self.thresholds.blocked;
        let spans: Vec<u64> = self.tasks.keys().copied().collect();
        for span in spans {
            // blocked_worker, live: a poll still running past the threshold.
            let task = &self.tasks[&span];
            let (id, name, location) = (task.id, task.name.clone(), task.location.clone());
            let running = task.running_since();
            if let Some((started, index)) = task.blocked {
                if running != Some(started) {
                    // That poll ended: its final duration.
                    let polls = task.poll_stats();
                    let ended = opt_time(&polls.last_poll_ended)
                        .filter(|&e| e >= started)
                        .or(task.dropped_at())
                        .unwrap_or(now);
                    let took = since(ended, started);
                    let w = &mut self.warnings[index];
                    w.ongoing = false;
                    w.duration_ns = Some(took.as_nanos() as u64);
                    w.message = format!(
                        "a poll of task `{name}` (spawned at {location}) blocked its worker for {}",
                        fmt_ns(took.as_nanos() as u64)
                    );
                    let task = self.tasks.get_mut(&span).expect("the task");
                    task.blocked = None;
                    // The poll shows up in a later details histogram: not a new one then.
                    task.live_long_polls.push(ended);
                }
            }
            let task = &self.tasks[&span];
            if let Some(started) = running {
                let so_far = since(now, started);
                if so_far >= blocked {
                    let message = format!(
                        "a worker has been blocked for {} by a poll of task `{name}` (spawned at {location}); still blocked",
                        fmt_ns(so_far.as_nanos() as u64)
                    );
                    let index = match task.blocked {
                        Some((_, index)) => index,
                        None => {
                            let index = self.raise(
                                WarningKind::BlockedWorker,
                                started + blocked,
                                String::new(),
                            );
                            let w = &mut self.warnings[index];
                            w.task = Some(id);
                            w.task_name = Some(name.clone());
                            w.location = Some(location.clone());
                            w.count = Some(1);
                            let task = self.tasks.get_mut(&span).expect("the task");
                            task.blocked = Some((started, index));
                            index
                        }
                    };
                    let w = &mut self.warnings[index];
                    w.ongoing = true;
                    w.duration_ns = Some(so_far.as_nanos() as u64);
                    w.message = message;
                }
            }

            // lost_waker: not done, not running, not woken, polled, and no waker left.
            let task = &self.tasks[&span];
            let idle_for = opt_time(&task.poll_stats().last_poll_ended).map(|e| since(now, e));
            let lost = task.state() == TaskState::Idle
                && task.poll_stats().polls > 0
                && task.wakers() <= 0
                && idle_for.is_some_and(|d| d >= LOST_WAKER_AFTER);
            match (task.lost_waker, lost, task.dropped_at()) {
                (None, true, _) => {
                    let index = self.raise(
                        WarningKind::LostWaker,
                        now,
                        format!(
                            "task `{name}` (spawned at {location}) is waiting with no waker left: nothing can wake it again (a future returned Pending without keeping the waker, or dropped it)"
                        ),
                    );
                    let w = &mut self.warnings[index];
                    w.task = Some(id);
                    w.task_name = Some(name.clone());
                    w.location = Some(location.clone());
                    w.ongoing = true;
                    self.tasks.get_mut(&span).expect("the task").lost_waker = Some(index);
                }
                (Some(index), _, Some(dropped)) if self.warnings[index].ongoing => {
                    let at = self.ms(dropped);
                    let w = &mut self.warnings[index];
                    w.ongoing = false;
                    w.duration_ns = Some((at.saturating_sub(w.at_ms)) * 1_000_000);
                }
                (Some(index), false, None) if self.warnings[index].ongoing => {
                    // It was woken after all (a waker was cloned late).
                    self.warnings[index].ongoing = false;
                }
                _ => {}
            }

            // self_wakes: more than half of its wakes.
            let task = &self.tasks[&span];
            let (wakes, self_wakes) = (task.stats.wakes, task.stats.self_wakes);
            if !task.self_wakes_warned && wakes >= SELF_WAKES_MIN && self_wakes * 2 > wakes {
                let index = self.raise(
                    WarningKind::SelfWakes,
                    now,
                    format!(
                        "task `{name}` (spawned at {location}) woke itself in {self_wakes} of its {wakes} wakes ({:.0}%): it yields or re-polls in a loop instead of waiting for an event",
                        100.0 * self_wakes as f64 / wakes as f64
                    ),
                );
                let w = &mut self.warnings[index];
                w.task = Some(id);
                w.task_name = Some(name);
                w.location = Some(location);
                w.count = Some(self_wakes);
                self.tasks
                    .get_mut(&span)
                    .expect("the task")
                    .self_wakes_warned = true;
            }
        }

        // Async operations: waits on locks and semaphores.
        let ids: Vec<u64> = self.ops.keys().copied().collect();
        let mut waiting: HashMap<(u64, String), u64> = HashMap::new();
        for id in ids {
            let op = &self.ops[&id];
            let Some(created) = op.created_at else {
                continue;
            };
            let resource = self.resources.get(&op.resource);
            let lock_like = resource.is_some_and(|r| is_lock_like(&r.kind) && !r.internal);
            let label = resource
                .map(|r| format!("{} at {}", r.kind, r.location))
                .unwrap_or_else(|| "a resource".into());
            let task = op
                .task_span
                .and_then(|s| self.tasks.get(&s))
                .map(|t| (t.id, t.name.clone(), t.location.clone()));
            match op.dropped_at {
                Some(dropped) => {
                    let waited = since(dropped, created);
                    let (source, resource_id, contended) =
                        (op.source.clone(), op.resource, op.waited);
                    let message = format!(
                        "{} waited {} for {label} ({source})",
                        who(&task),
                        fmt_ns(waited.as_nanos() as u64)
                    );
                    let index = match op.long_wait {
                        Some(index) => Some(index),
                        None if lock_like && waited >= self.thresholds.long_wait => {
                            let index = self.raise(
                                WarningKind::LongWait,
                                created + self.thresholds.long_wait,
                                String::new(),
                            );
                            describe_wait(&mut self.warnings[index], &task, &label);
                            Some(index)
                        }
                        None => None,
                    };
                    if let Some(index) = index {
                        let w = &mut self.warnings[index];
                        w.ongoing = false;
                        w.duration_ns = Some(waited.as_nanos() as u64);
                        w.message = message;
                    }
                    if let Some(r) = self.resources.get_mut(&resource_id) {
                        let totals = r.ops.entry(source).or_default();
                        totals.finished += 1;
                        totals.contended += contended as u64;
                        totals.wait_ns.record(waited.as_nanos() as u64);
                    }
                    self.ops.remove(&id);
                    self.finished_ops.insert(id);
                    self.finished_order.push_back(id);
                    if self.finished_order.len() > MAX_FINISHED_OPS {
                        let oldest = self.finished_order.pop_front().expect("not empty");
                        self.finished_ops.remove(&oldest);
                    }
                }
                None => {
                    *waiting.entry((op.resource, op.source.clone())).or_default() += 1;
                    let so_far = since(now, created);
                    if lock_like && so_far >= self.thresholds.long_wait {
                        let message = format!(
                            "{} has been waiting {} for {label} ({}); still waiting",
                            who(&task),
                            fmt_ns(so_far.as_nanos() as u64),
                            op.source
                        );
                        let index = match op.long_wait {
                            Some(index) => index,
                            None => {
                                let index = self.raise(
                                    WarningKind::LongWait,
                                    created + self.thresholds.long_wait,
                                    String::new(),
                                );
                                let w = &mut self.warnings[index];
                                describe_wait(w, &task, &label);
                                w.ongoing = true;
                                self.ops.get_mut(&id).expect("the op").long_wait = Some(index);
                                index
                            }
                        };
                        let w = &mut self.warnings[index];
                        w.duration_ns = Some(so_far.as_nanos() as u64);
                        w.message = message;
                    }
                }
            }
        }
        for ((resource, source), n) in waiting {
            if let Some(r) = self.resources.get_mut(&resource) {
                let max = r.max_waiters.entry(source).or_default();
                *max = (*max).max(n);
            }
        }
        for r in self.resources.values_mut() {
            if r.kind == "Semaphore" && r.available == Some(0) && r.dropped_at.is_none() {
                r.saturated_ns += interval.as_nanos() as u64;
            }
        }
    }

    /// Bounds memory: ended tasks beyond the retention and dropped resources go, their totals
    /// kept in their group.
    fn retire(&mut self) {
        let mut ended: Vec<(SystemTime, u64)> = self
            .tasks
            .iter()
            .filter(|(_, t)| t.lost_waker.is_none_or(|i| !self.warnings[i].ongoing))
            .filter_map(|(&span, t)| t.dropped_at().map(|d| (d, span)))
            .collect();
        if ended.len() > RETAINED_ENDED_TASKS {
            ended.sort();
            let excess = ended.len() - RETAINED_ENDED_TASKS;
            for (_, span) in ended.into_iter().take(excess) {
                let entry = self.tasks.remove(&span).expect("an ended task");
                let task = self.task(&entry);
                account(&mut self.retired, &task);
            }
        }
        // Other resources that were dropped leave only a count behind.
        let dropped: Vec<u64> = self
            .resources
            .iter()
            .filter(|(_, r)| !is_lock_like(&r.kind) && r.dropped_at.is_some())
            .map(|(&id, _)| id)
            .collect();
        for id in dropped {
            let r = self.resources.remove(&id).expect("a dropped resource");
            let group = self
                .dropped_resources
                .entry((r.kind, r.location))
                .or_default();
            group.0 += 1;
            if !r.attributes.is_empty() {
                group.1 = r.attributes;
            }
        }
    }

    /// taskscope's model of one task.
    fn task(&self, task: &TaskEntry) -> Task {
        let polls = task.poll_stats();
        let created = opt_time(&task.stats.created_at);
        let first_poll = opt_time(&polls.first_poll);
        Task {
            id: task.id,
            name: task.name.clone(),
            location: task.location.clone(),
            parent: None,
            kind: task.kind,
            state: task.state(),
            outcome: None,
            panic_message: None,
            polls: polls.polls,
            busy_ns: polls.busy_time.map(duration_ns).unwrap_or(0),
            wakes: task.stats.wakes,
            self_wakes: task.stats.self_wakes,
            first_poll_delay_ns: match (created, first_poll) {
                (Some(c), Some(f)) => Some(since(f, c).as_nanos() as u64),
                _ => None,
            },
            created_ms: created.map(|c| self.ms(c)).unwrap_or(0),
            ended_ms: task.dropped_at().map(|d| self.ms(d)),
            poll_ns: task.poll_ns.clone(),
            scheduled_ns: task.scheduled_ns.clone(),
        }
    }

    /// taskscope's view of everything seen so far.
    pub fn snapshot(&self) -> Snapshot {
        let base = self.base.unwrap_or(self.now);
        let mut snap = Snapshot {
            process: ProcessInfo {
                name: self.name.clone(),
                pid: 0,
                start_unix_ms: since(base, UNIX_EPOCH).as_millis() as u64,
            },
            taken_at_ms: self.ms(self.now),
            dropped_events: self.dropped_events,
            ..Snapshot::default()
        };
        let mut groups = self.retired.clone();
        for entry in self.tasks.values() {
            if entry.name.is_empty() && entry.location.is_empty() {
                continue; // stats of a task whose spawn was not seen (console dropped it)
            }
            let task = self.task(entry);
            account(&mut groups, &task);
            snap.tasks.push(task);
        }
        snap.task_groups = groups.into_values().collect();
        snap.task_groups
            .sort_by(|a, b| b.busy_ns.cmp(&a.busy_ns).then(a.name.cmp(&b.name)));
        let alive = snap
            .tasks
            .iter()
            .filter(|t| t.state != TaskState::Done)
            .count();
        snap.runtimes.push(Runtime {
            id: 0,
            flavor: "seen through console-subscriber".into(),
            workers: 0,
            alive_tasks: alive,
            worker_busy: Vec::new(),
            lag_ns: Histogram::default(),
        });

        // Waits in progress, by resource and operation.
        let mut waiting: HashMap<(u64, &str), Vec<u64>> = HashMap::new();
        for op in self.ops.values() {
            if op.dropped_at.is_none() {
                let task = op
                    .task_span
                    .and_then(|s| self.tasks.get(&s))
                    .map(|t| t.id)
                    .unwrap_or(0);
                waiting
                    .entry((op.resource, op.source.as_str()))
                    .or_default()
                    .push(task);
            }
        }
        let waiting_on =
            |id: u64, source: &str| waiting.get(&(id, source)).map(Vec::len).unwrap_or(0) as u64;
        let mut others: BTreeMap<(String, String), Resource> = BTreeMap::new();
        for (&id, r) in &self.resources {
            if r.internal {
                continue;
            }
            let name = r.location.clone();
            match r.kind.as_str() {
                "Mutex" | "RwLock" => {
                    let ops: &[(&str, &str, u64)] = if r.kind == "Mutex" {
                        &[("Mutex::lock", "mutex", id)]
                    } else {
                        &[
                            ("RwLock::read", "rwlock_read", id << 1),
                            ("RwLock::write", "rwlock_write", (id << 1) | 1),
                        ]
                    };
                    for &(source, kind, lock_id) in ops {
                        let totals = r.ops.get(source).cloned().unwrap_or_default();
                        snap.locks.push(Lock {
                            id: lock_id,
                            name: name.clone(),
                            kind: kind.into(),
                            location: r.location.clone(),
                            acquisitions: totals.finished,
                            contended: totals.contended,
                            waiters: waiting_on(id, source),
                            max_waiters: r.max_waiters.get(source).copied().unwrap_or(0),
                            holder: None,
                            holder_location: None,
                            wait_ns: totals.wait_ns,
                            hold_ns: Histogram::default(),
                        });
                    }
                }
                "Semaphore" => {
                    let mut totals = OpTotals::default();
                    let mut waiters = 0;
                    let mut max_waiters = 0;
                    for (source, t) in &r.ops {
                        totals.finished += t.finished;
                        totals.contended += t.contended;
                        totals.wait_ns.merge(&t.wait_ns);
                        waiters += waiting_on(id, source);
                        max_waiters =
                            max_waiters.max(r.max_waiters.get(source).copied().unwrap_or(0));
                    }
                    snap.semaphores.push(Semaphore {
                        id,
                        name,
                        location: r.location.clone(),
                        permits: r.permits_seen,
                        available: r.available.unwrap_or(0),
                        acquisitions: totals.finished,
                        waiters,
                        max_waiters,
                        saturated_ns: r.saturated_ns,
                        wait_ns: totals.wait_ns,
                    });
                }
                _ => {
                    let group = others
                        .entry((r.kind.clone(), r.location.clone()))
                        .or_insert_with(|| Resource {
                            kind: r.kind.clone(),
                            location: r.location.clone(),
                            ..Resource::default()
                        });
                    group.created += 1;
                    group.alive += 1;
                    if !r.attributes.is_empty() {
                        group.state = attributes(&r.attributes);
                    }
                    for ((res, _), tasks) in &waiting {
                        if *res == id {
                            group.waiters += tasks.len() as u64;
                            group.waiting_tasks.extend(tasks);
                        }
                    }
                }
            }
        }
        for ((kind, location), (count, last)) in &self.dropped_resources {
            let group = others
                .entry((kind.clone(), location.clone()))
                .or_insert_with(|| Resource {
                    kind: kind.clone(),
                    location: location.clone(),
                    state: attributes(last),
                    ..Resource::default()
                });
            group.created += count;
        }
        snap.resources = others.into_values().collect();
        snap.warnings = self.warnings.clone();
        snap
    }
}

/// `name=value` pairs.
fn attributes(attributes: &BTreeMap<String, String>) -> String {
    attributes
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A task as a warning names it.
fn who(task: &Option<(u64, String, String)>) -> String {
    task.as_ref()
        .map(|(_, name, _)| format!("task `{name}`"))
        .unwrap_or_else(|| "a task".into())
}

fn describe_wait(w: &mut Warning, task: &Option<(u64, String, String)>, label: &str) {
    if let Some((id, name, location)) = task {
        w.task = Some(*id);
        w.task_name = Some(name.clone());
        w.location = Some(location.clone());
    }
    w.locks = vec![label.to_string()];
}

fn is_lock_like(kind: &str) -> bool {
    matches!(kind, "Mutex" | "RwLock" | "Semaphore")
}

fn duration_ns(d: prost_types::Duration) -> u64 {
    (d.seconds.max(0) as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(d.nanos.max(0) as u64)
}

struct Decoded {
    histogram: Histogram,
    /// `(value, count)` of the values within the histogram's range.
    in_range: Vec<(u64, u64)>,
    /// Values beyond the range (recorded by console-subscriber as the range's maximum).
    outliers: u64,
    /// The range's maximum.
    range_max: u64,
    /// The largest value beyond it.
    highest_outlier: Option<u64>,
}

/// console-subscriber's histograms are HdrHistogram V2 in nanoseconds. A value above the
/// histogram's maximum (`max_value`) is recorded *as* that maximum and also counted in
/// `high_outliers`, with the largest in `highest_outlier`: those counts move to the largest
/// outlier here, so the maximum and the top percentiles are not capped at the range.
fn decode(h: &api::tasks::DurationHistogram) -> Option<Decoded> {
    let hdr: hdrhistogram::Histogram<u64> = hdrhistogram::serialization::Deserializer::new()
        .deserialize(&mut h.raw_histogram.as_slice())
        .ok()?;
    let mut in_range: Vec<(u64, u64)> = hdr
        .iter_recorded()
        .map(|v| (v.value_iterated_to(), v.count_at_value()))
        .collect();
    let mut outliers = 0;
    if h.high_outliers > 0 && h.max_value > 0 {
        // Take them out of the buckets at the range's maximum.
        let mut left = h.high_outliers;
        for (value, count) in in_range.iter_mut().rev() {
            if left == 0 || !hdr.equivalent(*value, h.max_value) {
                break;
            }
            let take = left.min(*count);
            *count -= take;
            left -= take;
            outliers += take;
        }
        in_range.retain(|&(_, count)| count > 0);
    }
    let mut histogram = Histogram::default();
    for &(value, count) in &in_range {
        histogram.record_n(value, count);
    }
    if outliers > 0 {
        histogram.record_n(h.highest_outlier.unwrap_or(h.max_value), outliers);
    }
    Some(Decoded {
        histogram,
        in_range,
        outliers,
        range_max: h.max_value,
        highest_outlier: h.highest_outlier,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use api::instrument::Update;
    use api::tasks::{
        task_details::PollTimesHistogram, DurationHistogram, TaskDetails, TaskUpdate,
    };
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

    fn update(
        now: u64,
        new: Vec<api::tasks::Task>,
        stats: Vec<(u64, api::tasks::Stats)>,
    ) -> Update {
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
}
