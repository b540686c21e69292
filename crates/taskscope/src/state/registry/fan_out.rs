//! `unbounded_spawn`: a task group whose live tasks jump to thousands with no bound in sight —
//! a loop that spawns a task per item (the async-concurrency guide's "unbounded concurrency").
//!
//! Once a second the collector counts each group's live tasks. A group is reported when it has
//! at least `THRESHOLDS.unbounded_alive` (default 10,000) live tasks and at least twice as many
//! as at its lowest in the two seconds before: a rise, not a level. A fan-out bounded by a
//! semaphore or a `JoinSet` stays at its bound; a server's connections under steady load stay
//! level; neither is reported, however many tasks they spawn in all. The warning goes on while
//! the group stays above half the threshold, with its live count and peak kept current.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering::Relaxed;

use taskscope_wire::{Warning, WarningKind};

use super::Registry;
use crate::base::clock;
use crate::state::shared::{Shared, THRESHOLDS};

/// Seconds of live counts kept per group (the rise is measured against their lowest).
const WINDOW: usize = 3;

/// The live counts of the last seconds and the warnings going on, per group index.
#[derive(Debug, Default)]
pub(crate) struct FanOut {
    history: HashMap<u32, VecDeque<u64>>,
    /// Group index → (warning id, peak live count).
    raised: HashMap<u32, (u64, u64)>,
    last_check_ms: u64,
}

impl Registry {
    /// Counts each group's live tasks (once a second at most) and raises, updates or ends its
    /// `unbounded_spawn`.
    pub(crate) fn check_fan_out(&mut self, shared: &Shared) {
        let now_ms = shared.ms_at(clock::now());
        if self.fan_out.last_check_ms != 0 && now_ms < self.fan_out.last_check_ms + 1000 {
            return;
        }
        self.fan_out.last_check_ms = now_ms.max(1);
        let threshold = THRESHOLDS.unbounded_alive.load(Relaxed);
        // Live tasks per group index (groups are bounded: `MAX_GROUPS`).
        let mut alive = vec![0u64; self.groups.len()];
        for &(_, group) in self.live.values() {
            alive[group as usize] += 1;
        }
        let alive_in = |group: u32| alive.get(group as usize).copied().unwrap_or(0);
        // Groups with no live task left forget their history.
        self.fan_out.history.retain(|&g, _| alive_in(g) > 0);
        for (group, &now) in alive.iter().enumerate().filter(|(_, &n)| n > 0) {
            let group = group as u32;
            let history = self.fan_out.history.entry(group).or_default();
            let lowest = history.iter().copied().min().unwrap_or(0);
            history.push_back(now);
            if history.len() > WINDOW {
                history.pop_front();
            }
            let seconds = history.len().saturating_sub(1).max(1);
            match self.fan_out.raised.get(&group).copied() {
                Some((id, peak)) => {
                    let peak = peak.max(now);
                    self.fan_out.raised.insert(group, (id, peak));
                    let text = self.fan_out_text(group, now, peak, None);
                    if let Some(w) = self.warnings.get_mut(id) {
                        w.message = text;
                        w.count = Some(peak);
                    }
                }
                None if now >= threshold && now >= lowest.saturating_mul(2) => {
                    let text = self.fan_out_text(group, now, now, Some((lowest, seconds)));
                    let info = &self.groups[group as usize];
                    let mut w = Warning::new(0, WarningKind::UnboundedSpawn, now_ms, text);
                    w.task_name = Some(info.name.clone());
                    w.location = Some(info.location.clone());
                    w.count = Some(now);
                    w.ongoing = true;
                    let id = self.warnings.raise(w);
                    self.fan_out.raised.insert(group, (id, now));
                }
                None => {}
            }
        }
        // Ended: below half the threshold (or no live task left).
        let ended: Vec<u32> = self
            .fan_out
            .raised
            .keys()
            .copied()
            .filter(|&g| alive_in(g) < threshold / 2)
            .collect();
        for group in ended {
            if let Some((id, peak)) = self.fan_out.raised.remove(&group) {
                let now = alive_in(group);
                let text = self.fan_out_text(group, now, peak, None);
                if let Some(w) = self.warnings.get_mut(id) {
                    w.ongoing = false;
                    w.message = text;
                }
            }
        }
    }

    /// The warning's text: the group, its live count, its peak, and the rise that raised it.
    fn fan_out_text(&self, group: u32, now: u64, peak: u64, rise: Option<(u64, usize)>) -> String {
        let info = &self.groups[group as usize];
        let who = if info.name == info.location {
            format!("tasks spawned at {}", info.location)
        } else {
            format!("task group `{}` (spawned at {})", info.name, info.location)
        };
        match rise {
            Some((lowest, seconds)) => format!(
                "{who}: {now} alive, up from {lowest} within {seconds} s, with no bound in sight"
            ),
            None => format!("{who}: {now} alive (at most {peak}), a fan-out with no bound"),
        }
    }
}
