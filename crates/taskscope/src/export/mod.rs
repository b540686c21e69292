//! Everything that leaves the process: the live stream server, recordings, and the report written
//! when the Guard drops. The collector thread drives it on its tick, so its cost follows the tick
//! rate, not the poll rate, and it runs while the application's runtime is blocked.

use std::collections::HashMap;

use taskscope_wire::{Frame, Hello, TaskGroup, Update, Warning, WIRE_VERSION};

use crate::state::delta::{LiveView, SentTasks, TaskChanges};
use crate::state::registry::Registry;
use crate::state::shared::Shared;

pub(crate) mod conn;
pub(crate) mod handshake;
pub(crate) mod prometheus;
pub(crate) mod recorder;
pub(crate) mod server;
pub(crate) mod snapshot;

use recorder::Recorder;
use server::{Published, Server};

/// Builds update frames (what changed since the last tick) and hands them to the sinks.
#[derive(Debug, Default)]
pub(crate) struct Exporter {
    pub(crate) server: Option<Server>,
    pub(crate) recorder: Option<Recorder>,
    sent_tasks: SentTasks,
    sent_warnings: HashMap<u64, Warning>,
    ticks: u64,
    /// Task groups computed by the collector for the coming tick outside the registry lock
    /// (they read every live task); see `groups_due`.
    pub(crate) groups: Option<Vec<TaskGroup>>,
    /// Changes of live tasks found for the coming tick outside the registry lock; see
    /// `tasks_due`.
    live_changes: Option<TaskChanges>,
    /// The detached tasks last sent (`Frame::Detached`).
    sent_detached: Vec<u64>,
    /// The refused peers last sent (`Frame::Refusals`).
    sent_refused: taskscope_wire::Refusals,
}

/// Every collector tick (100 ms) sends new warnings, workers and runtimes; every `TASKS_EVERY`
/// ticks (1 s, tokio-console's default publish interval) the changed counters of tasks, locks
/// and semaphores, and the details of watched tasks; every `GROUPS_EVERY` ticks (5 s) the task
/// groups, which merge every live task's histograms. Key frames carry everything. This keeps
/// the stream of 10,000 busy tasks near 2 % of a core (measured by `examples/stream_cost.rs`).
const TASKS_EVERY: u64 = 10;
const GROUPS_EVERY: u64 = 50;

impl Exporter {
    fn active(&self) -> bool {
        self.recorder.is_some() || self.server.as_ref().is_some_and(|s| s.has_clients())
    }

    /// Whether the next tick sends task groups: then the collector computes them first,
    /// without holding the registry lock, and leaves them in `groups`.
    pub(crate) fn groups_due(&self) -> bool {
        self.active()
            && ((self.ticks + 1) % GROUPS_EVERY == 1
                || self.server.as_ref().is_some_and(|s| s.needs_key_frame()))
    }

    /// Whether the next tick sends task counters: then the collector finds the live tasks'
    /// changes first, without holding the registry lock (`prepare_tasks`).
    pub(crate) fn tasks_due(&self) -> bool {
        let next = self.ticks + 1;
        self.active() && (next % TASKS_EVERY == 1 || next % GROUPS_EVERY == 1)
    }

    /// Finds the changes of the live tasks in `view` for the next tick (see `tasks_due`).
    pub(crate) fn prepare_tasks(&mut self, shared: &'static Shared, view: &LiveView) {
        self.live_changes = Some(view.task_changes(shared, &mut self.sent_tasks));
    }

    /// One tick: sends changes to every sink; a client that just connected (or fell behind) gets
    /// the hello and a full key frame first.
    pub(crate) fn tick(&mut self, shared: &'static Shared, registry: &mut Registry) {
        self.tick_with(shared, registry, false);
        self.groups = None;
        self.live_changes = None;
    }

    fn tick_with(&mut self, shared: &'static Shared, registry: &mut Registry, all_groups: bool) {
        // Ended polls of the timeline go to the recording only: live clients do not use them,
        // and clients older than the `Polls` frame would not understand it.
        // A recording that stopped last tick is a warning from this one on (streamed below).
        self.raise_recording_failure(shared, registry);
        let (polls, poll_names) = registry.timeline.take_unsent();
        let changed_stacks: Vec<Frame> = std::mem::take(&mut registry.stacks.changed)
            .into_iter()
            .filter_map(|id| stacks_frame(registry, id))
            .collect();
        let changed_chains: Vec<Frame> = std::mem::take(&mut registry.chains.changed)
            .into_iter()
            .filter_map(|id| chains_frame(registry, id))
            .collect();
        // The profile, whole, every `GROUPS_EVERY` ticks when it changed (and at the end).
        let profile_due = (all_groups || (self.ticks + 1) % GROUPS_EVERY == 1)
            && std::mem::take(&mut registry.profile.changed);
        let profile = profile_due.then(|| profile_frame(registry)).flatten();
        let registry: &Registry = registry;
        if !self.active() {
            // Nobody listens: forget what was sent, so the next listener starts from a key frame.
            self.sent_tasks = SentTasks::default();
            self.sent_warnings.clear();
            self.sent_detached.clear();
            self.sent_refused = Default::default();
            return;
        }
        // Refused peers, every tick they changed: a refusal is news to whoever watches.
        let refused = Some(shared.refused.load())
            .filter(|r| *r != self.sent_refused)
            .map(|r| {
                self.sent_refused = r;
                Frame::Refusals(r)
            });
        // The detached tasks, whole, with the task groups when they changed (and at the end).
        let detached = (all_groups || (self.ticks + 1) % GROUPS_EVERY == 1)
            .then(|| registry.detached())
            .filter(|ids| *ids != self.sent_detached)
            .map(|ids| {
                self.sent_detached = ids.clone();
                Frame::Detached(ids)
            });
        let hello = Frame::Hello(hello(shared));
        let needs_key = self.server.as_ref().is_some_and(|s| s.needs_key_frame());
        let key_frames = needs_key.then(|| {
            let (first, stacks, scopes) = start_frames(self, shared, registry);
            let frames: Vec<Frame> = std::iter::once(hello.clone()).chain(first).collect();
            Published::new(&frames, &stacks, &[scopes])
        });

        self.ticks += 1;
        let mut sent = std::mem::take(&mut self.sent_tasks);
        let live_changes = self.live_changes.take();
        let update = self.update_with(shared, registry, &mut sent, false, all_groups, live_changes);
        self.sent_tasks = sent;
        // Scope groups' latencies travel with the task groups.
        let scopes: Vec<Frame> = match &update {
            Frame::Update(u) if u.task_groups.is_some() => vec![scopes_frame(registry)],
            _ => Vec::new(),
        };
        let mut frames = vec![update];
        // Clients older than version 6 get them left out (`Frame::for_version`), older than 7
        // the profile.
        frames.extend(changed_chains);
        frames.extend(profile);
        frames.extend(detached);
        frames.extend(refused);
        // Up to 10,000 warnings are compared every tick: copy only the changed ones.
        for w in registry.warnings.iter() {
            if self.sent_warnings.get(&w.id) != Some(w) {
                self.sent_warnings.insert(w.id, w.clone());
                frames.push(Frame::Warning(Box::new(w.clone())));
            }
        }
        let at_ms = shared.ms_at(crate::base::clock::now());
        if let Some(recorder) = &mut self.recorder {
            if polls.is_empty()
                && poll_names.is_empty()
                && changed_stacks.is_empty()
                && scopes.is_empty()
            {
                recorder.write(&hello, || recording_start(shared, registry), &frames, at_ms);
            } else {
                let mut all = frames.clone();
                all.extend(changed_stacks.iter().cloned());
                all.extend(scopes.iter().cloned());
                if !poll_names.is_empty() {
                    all.push(Frame::PollNames(poll_names));
                }
                if !polls.is_empty() {
                    all.push(Frame::Polls(polls));
                }
                recorder.write(&hello, || recording_start(shared, registry), &all, at_ms);
            }
        }
        if let Some(server) = &self.server {
            // Polls frames stay out of the live stream (dashboards draw no timeline); stacks go
            // to clients that speak version 2, scopes to those that speak version 3.
            let encoded = Published::new(&frames, &changed_stacks, &scopes);
            server.publish(key_frames.as_ref(), &encoded);
            if self.ticks % TASKS_EVERY == 1 {
                for id in server.watched() {
                    if let Some(task) = registry.task(shared, id) {
                        server.publish_detail(id, &Frame::TaskDetail(Box::new(task)));
                    }
                }
            }
        }
    }

    /// The update of this tick: changed tasks (all of them for a key frame) and every aggregate.
    pub(crate) fn update(
        &self,
        shared: &'static Shared,
        registry: &Registry,
        sent: &mut SentTasks,
        full: bool,
    ) -> Frame {
        self.update_with(shared, registry, sent, full, full, None)
    }

    fn update_with(
        &self,
        shared: &'static Shared,
        registry: &Registry,
        sent: &mut SentTasks,
        full: bool,
        all_groups: bool,
        live_changes: Option<TaskChanges>,
    ) -> Frame {
        let now = crate::base::clock::now();
        let groups_tick = full || all_groups || self.ticks % GROUPS_EVERY == 1;
        let tasks_tick = groups_tick || self.ticks % TASKS_EVERY == 1;
        let (tasks, task_changes, removed_tasks) = if tasks_tick {
            // Histograms of tasks travel only as details, to clients that watch them.
            match live_changes {
                Some(changed) => registry.finish_task_changes(shared, sent, changed),
                None => registry.changed_tasks(shared, sent, false),
            }
        } else {
            Default::default()
        };
        let task_groups =
            groups_tick.then(|| self.groups.clone().unwrap_or_else(|| registry.groups()));
        let (locks, semaphores) = if tasks_tick {
            let (l, s) = registry.locks_and_semaphores();
            (Some(l), Some(s))
        } else {
            (None, None)
        };
        Frame::Update(Box::new(Update {
            at_ms: shared.ms_at(now),
            full,
            tasks,
            task_changes,
            removed_tasks: if full { Vec::new() } else { removed_tasks },
            task_groups,
            workers: snapshot::workers(now, &registry.untimed),
            runtimes: snapshot::runtimes(registry),
            locks,
            semaphores,
            dropped_events: shared.dropped.load(std::sync::atomic::Ordering::Relaxed),
        }))
    }

    /// Final frames at shutdown, flushed to disk.
    /// Raises `recording_stopped` once the recorder has failed.
    fn raise_recording_failure(&mut self, shared: &Shared, registry: &mut Registry) {
        if let Some(why) = self.recorder.as_mut().and_then(|r| r.take_failure()) {
            registry.warnings.recording_stopped(shared, why);
        }
    }

    pub(crate) fn finish(&mut self, shared: &'static Shared, registry: &mut Registry) {
        self.tick_with(shared, registry, true);
        if let Some(recorder) = &mut self.recorder {
            recorder.close();
        }
        // The last frames failed: the final snapshot and report say so.
        self.raise_recording_failure(shared, registry);
        if let Some(server) = self.server.take() {
            server.shutdown();
        }
    }
}

/// What a new reader needs before the first update: a key frame and every warning, every
/// warning's stacks (for readers of version 2 on), and the scope groups (version 3).
fn start_frames(
    exporter: &mut Exporter,
    shared: &'static Shared,
    registry: &Registry,
) -> (Vec<Frame>, Vec<Frame>, Frame) {
    let update = exporter.update(shared, registry, &mut SentTasks::default(), true);
    let warnings = registry.warnings.all().into_iter();
    let chains = registry
        .chains
        .by_warning
        .keys()
        .filter_map(|&id| chains_frame(registry, id));
    let first = std::iter::once(update)
        .chain(warnings.map(|w| Frame::Warning(Box::new(w))))
        .chain(chains)
        .chain(profile_frame(registry))
        .chain(detached_frame(registry))
        .chain(refusals_frame(shared))
        .collect();
    let stacks = registry
        .stacks
        .folded
        .keys()
        .filter_map(|&id| stacks_frame(registry, id))
        .collect();
    (first, stacks, scopes_frame(registry))
}

/// What a recording starts with after its hello: all of `start_frames`.
fn recording_start(shared: &'static Shared, registry: &Registry) -> Vec<Frame> {
    let (mut frames, stacks, scopes) = start_frames(&mut Exporter::default(), shared, registry);
    frames.extend(stacks);
    frames.push(scopes);
    frames
}

/// Every scope group's latency and responses, as a frame.
pub(crate) fn scopes_frame(registry: &Registry) -> Frame {
    Frame::Scopes(registry.scope_groups())
}

/// The CPU profile so far, as a frame (none when profiling is off).
fn profile_frame(registry: &Registry) -> Option<Frame> {
    Some(Frame::Profile(Box::new(registry.profile.to_wire()?)))
}

/// The live detached tasks, as a frame (none when there are none).
fn detached_frame(registry: &Registry) -> Option<Frame> {
    let ids = registry.detached();
    (!ids.is_empty()).then_some(Frame::Detached(ids))
}

/// The peers refused so far, as a frame (none when none were).
fn refusals_frame(shared: &Shared) -> Option<Frame> {
    let refused = shared.refused.load();
    (refused.total() > 0).then_some(Frame::Refusals(refused))
}

/// Where the tasks of a warning wait, as a frame.
fn chains_frame(registry: &Registry, warning: u64) -> Option<Frame> {
    let tasks = registry.chains.by_warning.get(&warning)?;
    Some(Frame::Chains {
        warning,
        tasks: tasks.clone(),
    })
}

/// The folded stacks of a warning, as a frame.
fn stacks_frame(registry: &Registry, warning: u64) -> Option<Frame> {
    let stacks = registry.stacks.folded.get(&warning)?;
    Some(Frame::Stacks {
        warning,
        stacks: stacks.clone(),
    })
}

pub(crate) fn hello(shared: &Shared) -> Hello {
    let process = snapshot::process_info(shared);
    Hello {
        version: WIRE_VERSION,
        pid: process.pid,
        process: process.name,
        start_unix_ms: process.start_unix_ms,
    }
}
