//! `ConsoleState`: everything a console connection has seen (updates and task details),
//! retired within bounds and turned into a [`Snapshot`].

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use console_api as api;
use taskscope_wire::{
    fmt_ns, Histogram, Lock, ProcessInfo, Resource, Runtime, Semaphore, Snapshot, Task, TaskGroup,
    TaskKind, TaskState, Warning, WarningKind,
};

use super::decode::*;
use super::entities::*;
use super::settings::*;

/// Everything a console connection has seen, turned into taskscope's model.
#[derive(Debug)]
pub struct ConsoleState {
    pub(super) name: String,
    pub(super) thresholds: Thresholds,
    /// Start of observation: the oldest thing the first update knew of.
    pub(super) base: Option<SystemTime>,
    pub(super) now: SystemTime,
    /// Field names by metadata id, for fields sent by index.
    pub(super) field_names: HashMap<u64, Vec<String>>,
    pub(super) tasks: BTreeMap<u64, TaskEntry>,
    /// Groups of tasks no longer kept, by (name, location, kind).
    pub(super) retired: HashMap<GroupKey, TaskGroup>,
    pub(super) resources: BTreeMap<u64, ResourceEntry>,
    pub(super) ops: BTreeMap<u64, OpEntry>,
    /// Other resources dropped, by (type, location): how many, and the last one's attributes.
    pub(super) dropped_resources: BTreeMap<(String, String), (u64, BTreeMap<String, String>)>,
    /// Operations already counted (console-subscriber may send a finished one again), oldest
    /// first, bounded.
    pub(super) finished_ops: HashSet<u64>,
    /// Details newer than the last update, by task.
    pub(super) pending_details: HashMap<u64, api::tasks::TaskDetails>,
    pub(super) finished_order: std::collections::VecDeque<u64>,
    pub(super) dropped_events: u64,
    pub(super) warnings: Vec<Warning>,
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

    pub(super) fn ms(&self, at: SystemTime) -> u64 {
        since(at, self.base.unwrap_or(at)).as_millis() as u64
    }

    pub(super) fn field_name(&self, field: &api::Field) -> Option<String> {
        match field.name.as_ref()? {
            api::field::Name::StrName(name) => Some(name.clone()),
            api::field::Name::NameIdx(idx) => {
                let meta = field.metadata_id.as_ref()?.id;
                self.field_names.get(&meta)?.get(*idx as usize).cloned()
            }
        }
    }

    pub(super) fn raise(&mut self, kind: WarningKind, at: SystemTime, message: String) -> usize {
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
        self.detect_hazards(interval);
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

    pub(super) fn add_task(&mut self, task: api::tasks::Task) {
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

    pub(super) fn details_given_up(&self, span: u64) -> bool {
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

    /// Bounds memory: ended tasks beyond the retention and dropped resources go, their totals
    /// kept in their group.
    pub(super) fn retire(&mut self) {
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
    pub(super) fn task(&self, task: &TaskEntry) -> Task {
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
pub(super) fn attributes(attributes: &BTreeMap<String, String>) -> String {
    attributes
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}
