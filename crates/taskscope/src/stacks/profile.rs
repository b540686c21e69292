//! The CPU profile being collected: symbolised samples folded per (task group, scope group,
//! stack), with every table bounded, so a profile of a long run holds as much memory as one of
//! a short run.

use std::collections::HashMap;

use taskscope_wire::{Profile, ProfileGroup, ProfileStack, StackFrame};

/// Distinct stacks kept at most; samples of further stacks count under their group's
/// `[other stacks]`.
const MAX_STACKS: usize = 4096;
/// Distinct frames kept at most (a stack that would add more counts as `[other stacks]`).
const MAX_FRAMES: usize = 16_384;
/// Groups kept at most (further groups count under the last one).
const MAX_GROUPS: usize = 1024;
/// Frames kept per stack, innermost first (deeper callers are cut).
pub(crate) const MAX_DEPTH: usize = 96;

/// Where a busy sample was taken: its task group and, inside it, its scope group.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct SampleLabel {
    pub(crate) group: ProfileGroup,
    pub(crate) scope: Option<ProfileGroup>,
}

/// What has been sampled so far.
#[derive(Debug, Default)]
pub(crate) struct ProfileStore {
    hz: u32,
    threads: u32,
    busy: u64,
    outside_polls: u64,
    idle: u64,
    missed: u64,
    groups: Vec<ProfileGroup>,
    group_index: HashMap<ProfileGroup, u32>,
    frames: Vec<StackFrame>,
    frame_index: HashMap<StackFrame, u32>,
    stacks: HashMap<(u32, Option<u32>, Vec<u32>), u64>,
    /// Whether anything changed since the exporter last took the profile.
    pub(crate) changed: bool,
}

impl ProfileStore {
    /// Starts a profile at `hz` samples a second per thread.
    pub(crate) fn start(&mut self, hz: u32) {
        *self = ProfileStore {
            hz,
            changed: true,
            ..ProfileStore::default()
        };
    }

    /// Whether a profile was started.
    pub(crate) fn is_on(&self) -> bool {
        self.hz > 0
    }

    /// What the profiler's thread counted since it last said: `threads` profiled now, `idle`
    /// samples' worth of their time off CPU, `missed` samples dropped.
    pub(crate) fn round(&mut self, threads: u32, idle: u64, missed: u64) {
        self.threads = self.threads.max(threads);
        self.idle += idle;
        self.missed += missed;
        self.changed |= idle > 0 || missed > 0;
    }

    /// A sample of a thread on CPU outside any task poll (the runtime's scheduler, drivers).
    pub(crate) fn add_outside_poll(&mut self) {
        self.outside_polls += 1;
        self.changed = true;
    }

    /// A sample of a thread in the poll of `label`, its frames innermost first.
    pub(crate) fn add(&mut self, label: &SampleLabel, frames: Vec<StackFrame>) {
        self.busy += 1;
        self.changed = true;
        let group = self.group(&label.group);
        let scope = label.scope.as_ref().map(|s| self.group(s));
        let frames: Vec<StackFrame> = frames.into_iter().take(MAX_DEPTH).collect();
        let known: Option<Vec<u32>> = frames
            .iter()
            .map(|f| self.frame_index.get(f).copied())
            .collect();
        if let Some(count) = known.and_then(|ids| self.stacks.get_mut(&(group, scope, ids))) {
            *count += 1;
            return;
        }
        let new_frames = frames
            .iter()
            .filter(|f| !self.frame_index.contains_key(*f))
            .count();
        // A new stack: kept if there is room for it and its frames, else `[other stacks]`.
        let room = self.stacks.len() < MAX_STACKS && self.frames.len() + new_frames <= MAX_FRAMES;
        let ids: Vec<u32> = if room {
            frames.into_iter().map(|f| self.frame(f)).collect()
        } else {
            Vec::new()
        };
        *self.stacks.entry((group, scope, ids)).or_default() += 1;
    }

    fn group(&mut self, group: &ProfileGroup) -> u32 {
        if let Some(&i) = self.group_index.get(group) {
            return i;
        }
        if self.groups.len() >= MAX_GROUPS {
            return (self.groups.len() - 1) as u32;
        }
        let i = self.groups.len() as u32;
        self.groups.push(group.clone());
        self.group_index.insert(group.clone(), i);
        i
    }

    fn frame(&mut self, frame: StackFrame) -> u32 {
        if let Some(&i) = self.frame_index.get(&frame) {
            return i;
        }
        let i = self.frames.len() as u32;
        self.frames.push(frame.clone());
        self.frame_index.insert(frame, i);
        i
    }

    /// The profile as the wire carries it (`None` before one was started).
    pub(crate) fn to_wire(&self) -> Option<Profile> {
        if !self.is_on() {
            return None;
        }
        let mut stacks: Vec<ProfileStack> = self
            .stacks
            .iter()
            .map(|((group, scope, frames), &samples)| ProfileStack {
                group: *group,
                scope: *scope,
                frames: frames.clone(),
                samples,
            })
            .collect();
        stacks.sort_by(|a, b| {
            b.samples
                .cmp(&a.samples)
                .then_with(|| (a.group, a.scope, &a.frames).cmp(&(b.group, b.scope, &b.frames)))
        });
        Some(Profile {
            hz: self.hz,
            threads: self.threads,
            busy: self.busy,
            outside_polls: self.outside_polls,
            idle: self.idle,
            missed: self.missed,
            groups: self.groups.clone(),
            frames: self.frames.clone(),
            stacks,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn label(name: &str) -> SampleLabel {
        SampleLabel {
            group: ProfileGroup {
                name: name.into(),
                location: "src/main.rs:1:1".into(),
            },
            scope: None,
        }
    }

    fn frames(names: &[&str]) -> Vec<StackFrame> {
        names
            .iter()
            .map(|n| StackFrame {
                function: (*n).into(),
                file: None,
                line: None,
            })
            .collect()
    }

    #[test]
    fn equal_stacks_fold_and_every_sample_is_counted_past_the_bound() {
        let mut store = ProfileStore::default();
        assert!(store.to_wire().is_none());
        store.start(99);
        store.add(&label("a"), frames(&["f", "main"]));
        store.add(&label("a"), frames(&["f", "main"]));
        store.add(&label("b"), frames(&["f", "main"]));
        store.add_outside_poll();
        store.round(2, 5, 1);
        let p = store.to_wire().unwrap();
        assert_eq!(
            (p.busy, p.outside_polls, p.frames.len(), p.stacks.len()),
            (3, 1, 2, 2)
        );
        assert_eq!((p.threads, p.idle, p.missed), (2, 5, 1));
        assert_eq!(p.stacks[0].samples, 2);
        for i in 0..MAX_STACKS + 10 {
            store.add(&label("a"), frames(&[&format!("f{i}")]));
        }
        let p = store.to_wire().unwrap();
        assert_eq!(p.busy, 3 + MAX_STACKS as u64 + 10);
        assert_eq!(p.stacks.iter().map(|s| s.samples).sum::<u64>(), p.busy);
        assert!(p.stacks.len() <= MAX_STACKS + 1, "{}", p.stacks.len());
        let other = p.stacks.iter().find(|s| s.frames.is_empty()).unwrap();
        assert!(other.samples >= 10);
    }
}
