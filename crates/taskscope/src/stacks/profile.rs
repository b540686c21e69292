//! The CPU profile being collected: samples folded per (task group, scope group, stack), with
//! every table bounded, so a profile of a long run holds as much memory as one of a short run.
//!
//! A sample arrives as raw addresses. Each address is turned into frames once (its frames are
//! interned, with their `frame_flags`), and a task id into its labels once, so folding a sample
//! costs a lookup per address and one per stack — no string is copied or hashed.

use std::collections::HashMap;

use taskscope_wire::{Profile, ProfileGroup, ProfileStack, StackFrame};

use super::frames::{flags, frame_flags};

/// Distinct stacks kept at most; samples of further stacks count under their group's
/// `[other stacks]`.
const MAX_STACKS: usize = 4096;
/// Distinct frames kept at most (a stack that would add more counts as `[other stacks]`).
const MAX_FRAMES: usize = 16_384;
/// Groups kept at most (further groups count under the last one).
const MAX_GROUPS: usize = 1024;
/// Frames kept per stack, innermost first (deeper callers are cut).
pub(crate) const MAX_DEPTH: usize = 96;
/// Addresses, and task ids, whose frames or labels are remembered at most (then forgotten, to
/// be looked up again).
const MAX_CACHED: usize = 65_536;

/// The group of samples of a task retired before they were folded and no longer known.
pub(crate) const RETIRED: &str = "[retired task]";

/// Where a busy sample was taken: its task group and, inside it, its scope group.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct SampleLabel {
    pub(crate) group: ProfileGroup,
    pub(crate) scope: Option<ProfileGroup>,
}

impl SampleLabel {
    /// The label of a group with no location of its own (`[retired task]`,
    /// `[uninstrumented]`), in no scope.
    pub(crate) fn named(name: &str) -> SampleLabel {
        SampleLabel {
            group: ProfileGroup {
                name: name.into(),
                location: String::new(),
            },
            scope: None,
        }
    }
}

/// What has been sampled so far.
#[derive(Debug, Default)]
pub(crate) struct ProfileStore {
    hz: u32,
    threads: u32,
    outside_polls: u64,
    idle: u64,
    missed: u64,
    sampling_ns: u64,
    groups: Vec<ProfileGroup>,
    group_index: HashMap<ProfileGroup, u32>,
    frames: Vec<StackFrame>,
    frame_flags: Vec<u8>,
    frame_index: HashMap<StackFrame, u32>,
    stacks: HashMap<(u32, Option<u32>, Vec<u32>), u64>,
    /// (address, whether exact) → its frames, innermost first (`None`: the frame table was full).
    addresses: HashMap<(usize, bool), Option<Vec<u32>>>,
    /// Task id → its group and scope (indices into `groups`).
    labels: HashMap<u64, (u32, Option<u32>)>,
    /// The working directory with a trailing `/`: files under it are shown relative to it.
    cwd: String,
    /// Whether anything changed since the exporter last took the profile.
    pub(crate) changed: bool,
}

impl ProfileStore {
    /// Starts a profile at `hz` samples a second per thread.
    pub(crate) fn start(&mut self, hz: u32) {
        *self = ProfileStore {
            hz,
            cwd: std::env::current_dir()
                .map(|d| format!("{}/", d.display()))
                .unwrap_or_default(),
            changed: true,
            ..ProfileStore::default()
        };
    }

    /// Whether a profile was started.
    pub(crate) fn is_on(&self) -> bool {
        self.hz > 0
    }

    /// What the profiler's thread counted since it last said: `threads` profiled now, `idle`
    /// samples' worth of their time off CPU, `missed` samples dropped, `sampling_ns` of the
    /// threads' time in the signal handler.
    pub(crate) fn round(&mut self, threads: u32, idle: u64, missed: u64, sampling_ns: u64) {
        self.threads = self.threads.max(threads);
        self.idle += idle;
        self.missed += missed;
        self.sampling_ns += sampling_ns;
        self.changed |= idle > 0 || missed > 0;
    }

    /// A sample: its addresses innermost first (each resolved by `resolve` the first time);
    /// the task whose poll it interrupted (`None`: no instrumented poll), labelled by `label`
    /// the first time. A sample in no task poll at all counts as outside polls.
    pub(crate) fn add_sample(
        &mut self,
        addresses: &[(usize, bool)],
        task: Option<u64>,
        mut resolve: impl FnMut(usize, bool) -> Vec<StackFrame>,
        label: impl FnOnce() -> SampleLabel,
    ) {
        self.changed = true;
        let mut ids: Vec<u32> = Vec::with_capacity(addresses.len() * 2);
        let mut complete = true;
        for &key in addresses {
            if !self.addresses.contains_key(&key) {
                if self.addresses.len() >= MAX_CACHED {
                    self.addresses.clear();
                }
                let frames = resolve(key.0, key.1);
                let interned = self.intern(frames);
                self.addresses.insert(key, interned);
            }
            match &self.addresses[&key] {
                Some(frames) => ids.extend_from_slice(frames),
                None => complete = false,
            }
        }
        let flag = |id: &u32| self.frame_flags[*id as usize];
        // In a task poll at all: an instrumented one, or tokio's harness innermost of the
        // runtime's frames.
        let in_poll = task.is_some()
            || ids
                .iter()
                .find(|id| flag(id) & flags::RUNTIME != 0)
                .is_some_and(|id| flag(id) & flags::TASK_HARNESS != 0);
        if !in_poll {
            self.outside_polls += 1;
            return;
        }
        // Up to the poll of the task or scope; without std's frames around the future.
        let mut end = ids
            .iter()
            .position(|id| flag(id) & (flags::RUNTIME | flags::WRAPPER) != 0)
            .unwrap_or(ids.len());
        while end > 1 && flag(&ids[end - 1]) & flags::STD != 0 {
            end -= 1;
        }
        ids.truncate(end.min(MAX_DEPTH));
        if !complete {
            ids.clear(); // `[other stacks]`
        }
        let (group, scope) = self.label_of(task, label);
        let mut key = (group, scope, ids);
        if let Some(count) = self.stacks.get_mut(&key) {
            *count += 1;
            return;
        }
        // A new stack: kept if there is room, else `[other stacks]`.
        if self.stacks.len() >= MAX_STACKS {
            key.2.clear();
        }
        *self.stacks.entry(key).or_default() += 1;
    }

    /// Whether the store has the labels of task `id` already.
    pub(crate) fn knows_task(&self, id: u64) -> bool {
        self.labels.contains_key(&id)
    }

    /// The group and scope of task `task`'s samples (`None`: a task taskscope did not spawn).
    fn label_of(
        &mut self,
        task: Option<u64>,
        label: impl FnOnce() -> SampleLabel,
    ) -> (u32, Option<u32>) {
        if let Some(&known) = task.and_then(|t| self.labels.get(&t)) {
            return known;
        }
        let label = match task {
            Some(_) => label(),
            None => SampleLabel::named(taskscope_wire::UNINSTRUMENTED),
        };
        let found = (
            self.group(&label.group),
            label.scope.as_ref().map(|s| self.group(s)),
        );
        // A task not known yet is looked up again next time.
        if let Some(task) = task.filter(|_| label.group.name != RETIRED) {
            if self.labels.len() >= MAX_CACHED {
                self.labels.clear();
            }
            self.labels.insert(task, found);
        }
        found
    }

    /// The ids of `frames`, interned (`None` when the table has no room for them).
    fn intern(&mut self, frames: Vec<StackFrame>) -> Option<Vec<u32>> {
        let new = frames
            .iter()
            .filter(|f| !self.frame_index.contains_key(*f))
            .count();
        if self.frames.len() + new > MAX_FRAMES {
            return None;
        }
        Some(frames.into_iter().map(|f| self.frame(f)).collect())
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
        // Judged by the full path; shown as std's backtraces show it.
        self.frame_flags.push(frame_flags(&frame));
        let mut shown = frame.clone();
        if let Some(rel) = shown
            .file
            .as_deref()
            .and_then(|p| p.strip_prefix(self.cwd.as_str()))
            .filter(|_| !self.cwd.is_empty())
        {
            shown.file = Some(rel.to_string());
        }
        self.frames.push(shown);
        self.frame_index.insert(frame, i);
        i
    }

    /// The profile as the wire carries it (`None` before one was started).
    pub(crate) fn to_wire(&self) -> Option<Profile> {
        if !self.is_on() {
            return None;
        }
        let stacks: Vec<ProfileStack> = self
            .stacks
            .iter()
            .map(|((group, scope, frames), &samples)| ProfileStack {
                group: *group,
                scope: *scope,
                frames: frames.clone(),
                samples,
            })
            .collect();
        let mut profile = Profile {
            hz: self.hz,
            threads: self.threads,
            // Every sample in a task poll is in one stack.
            busy: stacks.iter().map(|s| s.samples).sum(),
            outside_polls: self.outside_polls,
            idle: self.idle,
            missed: self.missed,
            sampling_ns: self.sampling_ns,
            groups: self.groups.clone(),
            frames: self.frames.clone(),
            stacks,
        };
        profile.sort_stacks();
        Some(profile)
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

    /// A sample whose addresses are the indices of `names` (all exact), in task 1.
    fn add(store: &mut ProfileStore, name: &str, names: &[&str]) {
        let addresses: Vec<(usize, bool)> = (0..names.len())
            .map(|i| (i + 1000 * names.len(), true))
            .collect();
        let f = frames(names);
        store.add_sample(
            &addresses,
            Some(name.len() as u64),
            |addr, _| vec![f[addr % 1000].clone()],
            || label(name),
        );
    }

    #[test]
    fn equal_stacks_fold_and_every_sample_is_counted_past_the_bound() {
        let mut store = ProfileStore::default();
        assert!(store.to_wire().is_none());
        store.start(99);
        add(&mut store, "a", &["f", "main"]);
        add(&mut store, "a", &["f", "main"]);
        add(&mut store, "bb", &["f", "main"]);
        store.round(2, 5, 1, 0);
        let p = store.to_wire().unwrap();
        assert_eq!((p.busy, p.frames.len(), p.stacks.len()), (3, 2, 2));
        assert_eq!((p.threads, p.idle, p.missed), (2, 5, 1));
        assert_eq!(p.stacks[0].samples, 2);
        for i in 0..MAX_STACKS + 10 {
            store.add_sample(
                &[(10_000 + i, true)],
                Some(1),
                |addr, _| frames(&[&format!("f{addr}")]),
                || label("a"),
            );
        }
        let p = store.to_wire().unwrap();
        assert_eq!(p.busy, 3 + MAX_STACKS as u64 + 10);
        assert_eq!(p.stacks.iter().map(|s| s.samples).sum::<u64>(), p.busy);
        assert!(p.stacks.len() <= MAX_STACKS + 1, "{}", p.stacks.len());
        let other = p.stacks.iter().find(|s| s.frames.is_empty()).unwrap();
        assert!(other.samples >= 10);
    }

    #[test]
    fn stacks_stop_at_the_poll_and_samples_outside_polls_are_counted_apart() {
        let mut store = ProfileStore::default();
        store.start(99);
        let frame = |function: &str, file: &str| StackFrame {
            function: function.into(),
            file: Some(file.into()),
            line: Some(1),
        };
        let harness = frame(
            "tokio::runtime::task::harness::poll",
            "/r/.cargo/registry/src/x/tokio-1.0.0/src/runtime/task/harness.rs",
        );
        let parker = frame(
            "tokio::runtime::park::park",
            "/r/.cargo/registry/src/x/tokio-1.0.0/src/runtime/park.rs",
        );
        let app = frame("app::work", "/elsewhere/src/main.rs");
        let catch = frame(
            "std::panicking::try",
            "/rustc/abc/library/std/src/panicking.rs",
        );
        let stack = [app.clone(), catch, harness];
        // An uninstrumented task's poll: cut at tokio's harness, std's frames trimmed.
        store.add_sample(
            &[(1, true), (2, false), (3, false)],
            None,
            |addr, _| vec![stack[addr - 1].clone()],
            || unreachable!(),
        );
        // A parked worker: outside any poll.
        store.add_sample(
            &[(9, true)],
            None,
            |_, _| vec![parker.clone()],
            || unreachable!(),
        );
        let p = store.to_wire().unwrap();
        assert_eq!((p.busy, p.outside_polls), (1, 1));
        let names: Vec<&str> = p.stacks[0]
            .frames
            .iter()
            .map(|&i| p.frames[i as usize].function.as_str())
            .collect();
        assert_eq!(names, ["app::work"]);
        assert_eq!(
            p.groups[p.stacks[0].group as usize].name,
            taskscope_wire::UNINSTRUMENTED
        );
    }
}
