//! `lost_waker` and `self_wakes` from taskscope's own waker proxy (the same kinds `taskscope
//! console` derives from console-subscriber's counts).
//!
//! Once a second the collector looks at every live task spawned through taskscope:
//!
//! - **`lost_waker`**: the task is idle (not running, not woken), its last poll handed out
//!   counted wakers (a poll that opened a stamping window, `task::waker`: every poll of a task
//!   polled less often than once per `sample_interval`, and every first poll), none of them is
//!   alive and none was woken — so nothing can wake it. Seen so at two checks a second apart with
//!   no poll in between, it is raised, naming the task and its spawn location; it ends when the
//!   task runs again or ends. A task whose last poll was not a counted one (it was polled more
//!   often than once per interval just before) is not judged: the wakers of such a poll are the
//!   runtime's own, which taskscope cannot see. A task waiting on a channel, a timer, I/O or a
//!   lock keeps a waker registered there and is never reported, however long it waits.
//! - **`self_wakes`**: in the last second the task was woken at least `SELF_WAKES_MIN` times
//!   and more than half of those wakes were its own, during its own poll (`wake_by_ref()` and
//!   `Pending`: a loop that re-polls itself instead of waiting for an event). Raised while it
//!   goes on, with the counts; it ends after a second without. tokio's `yield_now` defers its
//!   wake past the poll, so it counts as an ordinary wake (as in console-subscriber).

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;

use taskscope_wire::{TaskKind, TaskState, Warning, WarningKind};

use super::Registry;
use crate::base::clock;
use crate::base::location::format_location;
use crate::state::shared::Shared;
use crate::stats::task::TaskStats;

/// Wakes in a second from which a task's self-wakes are judged (console's lint: 20 in all).
const SELF_WAKES_MIN: u64 = 20;

/// What the last check saw of the tasks that matter to it.
#[derive(Debug, Default)]
pub(crate) struct WakerWatch {
    /// Tasks with no counted waker left at the last check: task → (polls then, first seen ms,
    /// `lost_waker` warning id once raised).
    suspects: HashMap<u64, (u64, u64, Option<u64>)>,
    /// Tasks that woke themselves: task → (polls, self-wakes at the last check, `self_wakes`
    /// warning id while it goes on).
    self_waking: HashMap<u64, (u64, u64, Option<u64>)>,
    last_check_ms: u64,
}

impl Registry {
    /// Raises, updates and ends `lost_waker` and `self_wakes` (once a second at most).
    pub(crate) fn check_wakers(&mut self, shared: &Shared) {
        let now_ms = shared.ms_at(clock::now());
        let watch = &mut self.wakers;
        if watch.last_check_ms != 0 && now_ms < watch.last_check_ms + 1000 {
            return;
        }
        watch.last_check_ms = now_ms.max(1);
        let mut raise: Vec<Warning> = Vec::new();
        let mut lost_now: HashMap<u64, (u64, u64, Option<u64>)> = HashMap::new();
        let mut waking_now: HashMap<u64, (u64, u64, Option<u64>)> = HashMap::new();
        let mut ended: Vec<(u64, String)> = Vec::new();
        for (id, (stats, _)) in self.live.iter() {
            if stats.kind == TaskKind::Scope || stats.is_done() {
                continue;
            }
            let (polls, _) = stats.counts();
            // lost_waker.
            let before = watch.suspects.get(id).copied();
            let lost =
                polls > 0 && stats.state() == TaskState::Idle && stats.wake.no_counted_waker_left();
            match (before, lost) {
                (Some((then, since, warning)), true) if then == polls => {
                    let warning = warning.or_else(|| {
                        raise.push(lost_waker(stats, now_ms, since));
                        None
                    });
                    lost_now.insert(*id, (polls, since, warning));
                }
                (before, true) => {
                    if let Some((_, _, Some(w))) = before {
                        ended.push((w, ran_again(stats)));
                    }
                    lost_now.insert(*id, (polls, now_ms, None));
                }
                (Some((_, _, Some(w))), false) => ended.push((w, ran_again(stats))),
                _ => {}
            }
            // self_wakes.
            let self_wakes = stats.self_wakes.load(Relaxed);
            if self_wakes == 0 {
                continue;
            }
            let (polls_then, self_then, warning) = watch
                .self_waking
                .get(id)
                .copied()
                .unwrap_or((polls, self_wakes, None));
            let (woken, own) = (
                polls.saturating_sub(polls_then),
                self_wakes.saturating_sub(self_then),
            );
            let busy = woken >= SELF_WAKES_MIN && own * 2 > woken;
            let warning = match (warning, busy) {
                (None, true) => {
                    raise.push(self_waking(stats, now_ms, own, woken, self_wakes));
                    None
                }
                (Some(w), true) => {
                    if let Some(warning) = self.warnings.get_mut(w) {
                        warning.count = Some(self_wakes);
                        warning.message = self_wakes_text(stats, own, woken, self_wakes);
                    }
                    Some(w)
                }
                (Some(w), false) => {
                    stop_self_wakes(self.warnings.get_mut(w));
                    None
                }
                (None, false) => None,
            };
            waking_now.insert(*id, (polls, self_wakes, warning));
        }
        // Tasks gone since: their warnings end.
        for (id, (_, _, warning)) in watch.suspects.drain() {
            if let (false, Some(w)) = (lost_now.contains_key(&id), warning) {
                ended.push((w, "it ended (aborted, or its runtime shut down)".into()));
            }
        }
        for (id, (_, _, warning)) in watch.self_waking.drain() {
            if let (false, Some(w)) = (waking_now.contains_key(&id), warning) {
                stop_self_wakes(self.warnings.get_mut(w));
            }
        }
        for (w, why) in ended {
            if let Some(warning) = self.warnings.get_mut(w) {
                if warning.ongoing {
                    warning.ongoing = false;
                    warning.duration_ns = Some(
                        now_ms
                            .saturating_sub(warning.at_ms)
                            .saturating_mul(1_000_000)
                            + warning.duration_ns.unwrap_or(0),
                    );
                    warning.message = format!("{}; then {why}", warning.message);
                }
            }
        }
        // Raised last: the ids go back into the watch.
        for warning in raise {
            let (task, kind) = (warning.task.unwrap_or(0), warning.kind);
            let id = self.warnings.raise(warning);
            let watched = match kind {
                WarningKind::LostWaker => lost_now.get_mut(&task),
                _ => waking_now.get_mut(&task),
            };
            if let Some(entry) = watched {
                entry.2 = Some(id);
            }
        }
        let watch = &mut self.wakers;
        watch.suspects = lost_now;
        watch.self_waking = waking_now;
    }
}

/// Why a `lost_waker` ended while the task lives.
fn ran_again(stats: &TaskStats) -> String {
    match stats.is_done() {
        true => "it ended".into(),
        false => "it ran again (something outside taskscope's count woke it)".into(),
    }
}

fn subject(stats: &TaskStats) -> String {
    format!(
        "task `{}` (spawned at {})",
        stats.display_name(),
        format_location(stats.location)
    )
}

fn lost_waker(stats: &TaskStats, now_ms: u64, since_ms: u64) -> Warning {
    let idle_s = now_ms.saturating_sub(since_ms) as f64 / 1000.0;
    let mut w = Warning::new(
        0,
        WarningKind::LostWaker,
        now_ms,
        format!(
            "{} is waiting with no waker left: not polled for at least {idle_s:.1} s and nothing can wake it again (a future returned Pending without keeping the waker, or dropped it)",
            subject(stats)
        ),
    );
    w.task = Some(stats.id);
    w.task_name = Some(stats.display_name().into_owned());
    w.location = Some(format_location(stats.location));
    w.duration_ns = Some(now_ms.saturating_sub(since_ms).saturating_mul(1_000_000));
    w.ongoing = true;
    w
}

fn self_waking(stats: &TaskStats, now_ms: u64, own: u64, woken: u64, total: u64) -> Warning {
    let mut w = Warning::new(
        0,
        WarningKind::SelfWakes,
        now_ms,
        self_wakes_text(stats, own, woken, total),
    );
    w.task = Some(stats.id);
    w.task_name = Some(stats.display_name().into_owned());
    w.location = Some(format_location(stats.location));
    w.count = Some(total);
    w.ongoing = true;
    w
}

fn self_wakes_text(stats: &TaskStats, own: u64, woken: u64, total: u64) -> String {
    let share = 100.0 * own as f64 / woken.max(1) as f64;
    format!(
        "{} woke itself in {own} of its {woken} wakes of the last second ({share:.0}%; {total} self-wakes in all): it re-polls itself in a loop instead of waiting for an event",
        subject(stats)
    )
}

/// Ends an ongoing `self_wakes` warning: the task stopped waking itself, or ended.
fn stop_self_wakes(warning: Option<&mut Warning>) {
    if let Some(w) = warning.filter(|w| w.ongoing) {
        w.ongoing = false;
        w.message.push_str("; it has stopped");
    }
}
