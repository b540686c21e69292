//! The hazards a console connection detects in what console-subscriber reports.

use std::collections::HashMap;
use std::time::Duration;

use taskscope_wire::{fmt_ns, TaskState, Warning, WarningKind};

use super::decode::*;
use super::entities::*;
use super::settings::*;
use super::state::ConsoleState;

impl ConsoleState {
    /// Raises the warnings the latest state shows: `blocked_worker` (a poll running past the
    /// threshold, or found afterwards in a task's poll histogram), `long_wait`, `lost_waker` and
    /// `self_wakes`; and accounts semaphores' saturated time over `interval`.
    pub(super) fn detect_hazards(&mut self, interval: Duration) {
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
}

/// A task as a warning names it.
pub(super) fn who(task: &Option<(u64, String, String)>) -> String {
    task.as_ref()
        .map(|(_, name, _)| format!("task `{name}`"))
        .unwrap_or_else(|| "a task".into())
}

pub(super) fn describe_wait(w: &mut Warning, task: &Option<(u64, String, String)>, label: &str) {
    if let Some((id, name, location)) = task {
        w.task = Some(*id);
        w.task_name = Some(name.clone());
        w.location = Some(location.clone());
    }
    w.locks = vec![label.to_string()];
}
