//! `semaphore_saturated`: a semaphore with no permit free and tasks queued behind it for most
//! of the time — its limit, not the work, sets the pace (a bound set too tight, or holders that
//! keep their permits across slow `.await`s).
//!
//! Once a second the collector reads each live semaphore's saturated time (no permit free),
//! its waits (their count and summed length) and its permits. Over the last `WINDOW_S`
//! seconds a semaphore is reported when no permit was free for at least half of them, and its
//! waits add up to at least half of them — on average at least half a task queued, by
//! Little's law — from at least `MIN_WAITS` waits. A semaphore whose permits are all in use
//! with nobody waiting is a bound doing its job, one with brief queues now and then is not
//! saturated; neither is reported. The warning stays on, with the window's figures kept
//! current, until a window no longer qualifies.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering::Relaxed;

use taskscope_wire::{fmt_ns, Warning, WarningKind};

use super::Registry;
use crate::base::clock;
use crate::base::location::format_location;
use crate::state::shared::Shared;
use crate::stats::lock::{LockKind, LockStats};

/// Seconds a judgement spans.
const WINDOW_S: u64 = 5;
/// Waits in the window below which nothing is judged.
const MIN_WAITS: u64 = 10;

/// One reading of a semaphore's counters.
#[derive(Clone, Copy, Debug)]
struct Reading {
    at_ms: u64,
    saturated_ns: u64,
    waits: u64,
    wait_ns: u64,
}

/// The readings of the last seconds and the warnings going on, per semaphore id.
#[derive(Debug, Default)]
pub(crate) struct Saturation {
    /// Ids of live semaphores (a subset of the registry's locks, read without walking them all).
    pub(crate) semaphores: Vec<u64>,
    history: HashMap<u64, VecDeque<Reading>>,
    /// Semaphore id → its ongoing warning's id.
    raised: HashMap<u64, u64>,
    last_check_ms: u64,
}

/// What a window of readings shows.
struct Window {
    span_ms: u64,
    saturated_ns: u64,
    waits: u64,
    wait_ns: u64,
}

impl Window {
    fn between(first: &Reading, last: &Reading) -> Window {
        Window {
            span_ms: last.at_ms - first.at_ms,
            saturated_ns: last.saturated_ns.saturating_sub(first.saturated_ns),
            waits: last.waits.saturating_sub(first.waits),
            wait_ns: last.wait_ns.saturating_sub(first.wait_ns),
        }
    }

    fn saturated(&self) -> bool {
        let half_ns = self.span_ms * 1_000_000 / 2;
        self.span_ms >= (WINDOW_S - 1) * 1000
            && self.waits >= MIN_WAITS
            && self.saturated_ns >= half_ns
            && self.wait_ns >= half_ns
    }
}

impl Registry {
    /// Reads each live semaphore (once a second at most) and raises, updates or ends its
    /// `semaphore_saturated`.
    pub(crate) fn check_saturation(&mut self, shared: &Shared) {
        let now = clock::now();
        let now_ms = shared.ms_at(now);
        let state = &mut self.saturation;
        if state.last_check_ms != 0 && now_ms < state.last_check_ms + 1000 {
            return;
        }
        state.last_check_ms = now_ms.max(1);
        let locks = &self.locks;
        state.semaphores.retain(|id| locks.contains_key(id));
        let live = &state.semaphores;
        state.history.retain(|id, _| live.contains(id));
        let mut judged = Vec::new();
        for &id in &state.semaphores {
            let stats = &locks[&id];
            let reading = read(stats, now, now_ms);
            let history = state.history.entry(id).or_default();
            history.push_back(reading);
            while history.len() > WINDOW_S as usize + 1 {
                history.pop_front();
            }
            let window = Window::between(&history[0], &reading);
            judged.push((id, window));
        }
        for (id, window) in judged {
            let stats = self.locks[&id].clone();
            let raised = self.saturation.raised.get(&id).copied();
            match (raised, window.saturated()) {
                (None, true) => {
                    let mut w = Warning::new(
                        0,
                        WarningKind::SemaphoreSaturated,
                        now_ms,
                        message(&stats, &window),
                    );
                    w.location = Some(format_location(stats.location));
                    w.count = Some(window.waits);
                    w.ongoing = true;
                    let warning = self.warnings.raise(w);
                    self.saturation.raised.insert(id, warning);
                }
                (Some(warning), true) => {
                    if let Some(w) = self.warnings.get_mut(warning) {
                        w.message = message(&stats, &window);
                        w.count = Some(window.waits);
                    }
                }
                (Some(warning), false) => {
                    self.saturation.raised.remove(&id);
                    if let Some(w) = self.warnings.get_mut(warning) {
                        w.ongoing = false;
                        w.message.push_str("; it has eased");
                    }
                }
                (None, false) => {}
            }
        }
        // Semaphores dropped while saturated: their warnings end.
        let live = &self.saturation.semaphores;
        let gone: Vec<(u64, u64)> = self
            .saturation
            .raised
            .iter()
            .filter(|(id, _)| !live.contains(id))
            .map(|(&id, &warning)| (id, warning))
            .collect();
        for (id, warning) in gone {
            self.saturation.raised.remove(&id);
            if let Some(w) = self.warnings.get_mut(warning) {
                w.ongoing = false;
            }
        }
    }

    /// Notes a new lock: semaphores are read for saturation.
    pub(super) fn note_semaphore(&mut self, stats: &LockStats) {
        if stats.kind == LockKind::Semaphore {
            self.saturation.semaphores.push(stats.id);
        }
    }
}

fn read(stats: &LockStats, now: u64, now_ms: u64) -> Reading {
    Reading {
        at_ms: now_ms,
        saturated_ns: stats.saturated_ns_at(now),
        waits: stats.contended.load(Relaxed),
        wait_ns: stats.wait_ns.sum(),
    }
}

fn message(stats: &LockStats, window: &Window) -> String {
    let span_ns = (window.span_ms * 1_000_000).max(1);
    let share = 100.0 * window.saturated_ns.min(span_ns) as f64 / span_ns as f64;
    let queued = window.wait_ns as f64 / span_ns as f64;
    let mean = window.wait_ns / window.waits.max(1);
    format!(
        "semaphore `{}` (created at {}) is saturated: no permit of {} free for {share:.0}% of the last {:.0} s, {queued:.1} tasks queued on average ({} at most), {} waits of {} on average: its limit sets the pace",
        stats.display_name(),
        format_location(stats.location),
        stats.permits.load(Relaxed),
        window.span_ms as f64 / 1000.0,
        stats.max_waiters.load(Relaxed),
        window.waits,
        fmt_ns(mean),
    )
}
