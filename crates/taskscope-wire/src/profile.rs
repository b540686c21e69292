//! A sampling CPU profile of the runtime's worker threads, each sample attributed to the task
//! group (and scope group) that was being polled when it was taken (wire version 7).

use serde::{Deserialize, Serialize};

use crate::model::StackFrame;

/// What the profiler has sampled since it started: every stack folded with its count, each
/// under the task group and scope group it was taken in. Threads are sampled every `1/hz`
/// seconds of the CPU time they use, so a stack's share of the samples is its share of the CPU.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    /// Samples per second asked for, per thread.
    pub hz: u32,
    /// Threads that were sampled (the workers that polled instrumented tasks and tokio's
    /// workers found by name).
    pub threads: u32,
    /// Samples taken of threads inside a task poll (`stacks` adds up to this).
    pub busy: u64,
    /// Samples of threads on CPU outside any task poll (the runtime's scheduler and drivers).
    pub outside_polls: u64,
    /// The samples the threads' time off CPU (parked, waiting) would have had at `hz`.
    pub idle: u64,
    /// Samples dropped for want of room (the profiler's ring or the symbolizer's queue).
    pub missed: u64,
    /// Time the sampled threads spent in the sampling signal's handler, in nanoseconds: what
    /// sampling cost them.
    pub sampling_ns: u64,
    /// Task and scope groups, which stacks name by index.
    pub groups: Vec<ProfileGroup>,
    /// Distinct frames, which stacks name by index.
    pub frames: Vec<StackFrame>,
    /// Folded stacks, most samples first.
    pub stacks: Vec<ProfileStack>,
}

/// A task group or scope group of a profile.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ProfileGroup {
    /// The group's name (as in [`TaskGroup::name`](crate::TaskGroup::name)); `[uninstrumented]`
    /// for tasks taskscope did not spawn.
    pub name: String,
    /// The spawn (or scope) location.
    pub location: String,
}

/// One folded stack of a profile.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProfileStack {
    /// The task group polled (index into [`Profile::groups`]).
    pub group: u32,
    /// The scope polled inside it, if any (index into [`Profile::groups`]).
    pub scope: Option<u32>,
    /// Frames, innermost first (indices into [`Profile::frames`]), up to the task's poll. Empty
    /// for samples past the profile's bound on distinct stacks (`[other stacks]`).
    pub frames: Vec<u32>,
    /// Samples with this stack.
    pub samples: u64,
}

/// Samples of one function in a group: where it was running itself and where it was on the
/// stack at all.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FunctionShare {
    /// The function's name.
    pub function: String,
    /// Where it is defined (the file of its first frame seen, if known).
    pub file: Option<String>,
    /// Samples whose innermost frame is this function.
    pub self_samples: u64,
    /// Samples with this function anywhere on the stack (counted once per sample).
    pub total_samples: u64,
}

/// The name of a group whose tasks taskscope did not spawn.
pub const UNINSTRUMENTED: &str = "[uninstrumented]";

impl Profile {
    /// The name stacks of group `index` go under in folded output: the task group, and the
    /// scope after a `/` when there is one.
    pub fn label(&self, stack: &ProfileStack) -> String {
        let name = |i: u32| self.groups.get(i as usize).map_or("?", |g| g.name.as_str());
        match stack.scope {
            Some(scope) => format!("{}/{}", name(stack.group), name(scope)),
            None => name(stack.group).to_string(),
        }
    }

    /// Busy samples per label (task group, or task group/scope), most first.
    pub fn by_label(&self) -> Vec<(String, u64)> {
        let mut totals: std::collections::BTreeMap<String, u64> = Default::default();
        for stack in &self.stacks {
            *totals.entry(self.label(stack)).or_default() += stack.samples;
        }
        let mut totals: Vec<_> = totals.into_iter().collect();
        totals.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        totals
    }

    /// The functions of the stacks that `keep` selects, by total samples (most first).
    pub fn functions(&self, keep: impl Fn(&ProfileStack) -> bool) -> Vec<FunctionShare> {
        let mut by_name: std::collections::HashMap<&str, FunctionShare> = Default::default();
        for stack in self.stacks.iter().filter(|s| keep(s)) {
            let mut seen: Vec<&str> = Vec::with_capacity(stack.frames.len());
            for (depth, &index) in stack.frames.iter().enumerate() {
                let Some(frame) = self.frames.get(index as usize) else {
                    continue;
                };
                let share =
                    by_name
                        .entry(frame.function.as_str())
                        .or_insert_with(|| FunctionShare {
                            function: frame.function.clone(),
                            file: frame.file.clone(),
                            ..FunctionShare::default()
                        });
                if depth == 0 {
                    share.self_samples += stack.samples;
                }
                if !seen.contains(&frame.function.as_str()) {
                    seen.push(frame.function.as_str());
                    share.total_samples += stack.samples;
                }
            }
        }
        let mut shares: Vec<FunctionShare> = by_name.into_values().collect();
        shares.sort_by(|a, b| {
            (b.total_samples, b.self_samples)
                .cmp(&(a.total_samples, a.self_samples))
                .then_with(|| a.function.cmp(&b.function))
        });
        shares
    }

    /// Busy samples of the stacks that `keep` selects.
    pub fn samples(&self, keep: impl Fn(&ProfileStack) -> bool) -> u64 {
        self.stacks
            .iter()
            .filter(|s| keep(s))
            .map(|s| s.samples)
            .sum()
    }

    /// The profile as folded stacks, one line per stack, outermost frame first, each line
    /// starting with its label and ending with its count: the input of `inferno-flamegraph` and
    /// `flamegraph.pl`. CPU outside any poll is the line `[outside polls]` (idle time is not
    /// CPU time, and is left out).
    pub fn folded(&self) -> String {
        let mut lines: std::collections::BTreeMap<String, u64> = Default::default();
        for stack in &self.stacks {
            let mut line = folded_name(&self.label(stack));
            if stack.frames.is_empty() {
                line.push_str(";[other stacks]");
            }
            for &index in stack.frames.iter().rev() {
                line.push(';');
                let function = self
                    .frames
                    .get(index as usize)
                    .map_or("?", |f| f.function.as_str());
                line.push_str(&folded_name(function));
            }
            *lines.entry(line).or_default() += stack.samples;
        }
        let mut out = String::new();
        for (line, count) in lines {
            out.push_str(&format!("{line} {count}\n"));
        }
        if self.outside_polls > 0 {
            out.push_str(&format!("[outside polls] {}\n", self.outside_polls));
        }
        out
    }
}

impl Profile {
    /// Puts the stacks in their order: most samples first, then by group, scope and frames.
    pub fn sort_stacks(&mut self) {
        self.stacks.sort_by(|a, b| {
            b.samples
                .cmp(&a.samples)
                .then_with(|| (a.group, a.scope, &a.frames).cmp(&(b.group, b.scope, &b.frames)))
        });
    }

    /// Several profiles as one (of replicas of a service, say): groups with the same name and
    /// location and equal frames are one, samples add up; `None` when none is given.
    pub fn merged<'a>(profiles: impl IntoIterator<Item = &'a Profile>) -> Option<Profile> {
        use std::collections::HashMap;
        let mut out: Option<Profile> = None;
        let mut groups: HashMap<ProfileGroup, u32> = HashMap::new();
        let mut frames: HashMap<StackFrame, u32> = HashMap::new();
        let mut stacks: HashMap<(u32, Option<u32>, Vec<u32>), u64> = HashMap::new();
        for p in profiles {
            let o = out.get_or_insert_with(Profile::default);
            o.hz = o.hz.max(p.hz);
            o.threads += p.threads;
            o.busy += p.busy;
            o.outside_polls += p.outside_polls;
            o.idle += p.idle;
            o.missed += p.missed;
            o.sampling_ns += p.sampling_ns;
            let mut group = |i: u32| {
                let g = p.groups.get(i as usize).cloned().unwrap_or_default();
                let next = groups.len() as u32;
                *groups.entry(g).or_insert(next)
            };
            for stack in &p.stacks {
                let g = group(stack.group);
                let scope = stack.scope.map(&mut group);
                let ids = stack
                    .frames
                    .iter()
                    .map(|&f| {
                        let frame = p.frames.get(f as usize).cloned().unwrap_or_default();
                        let next = frames.len() as u32;
                        *frames.entry(frame).or_insert(next)
                    })
                    .collect();
                *stacks.entry((g, scope, ids)).or_default() += stack.samples;
            }
        }
        let mut out = out?;
        out.groups = vec![ProfileGroup::default(); groups.len()];
        for (g, i) in groups {
            out.groups[i as usize] = g;
        }
        out.frames = vec![StackFrame::default(); frames.len()];
        for (f, i) in frames {
            out.frames[i as usize] = f;
        }
        out.stacks = stacks
            .into_iter()
            .map(|((group, scope, frames), samples)| ProfileStack {
                group,
                scope,
                frames,
                samples,
            })
            .collect();
        out.sort_stacks();
        Some(out)
    }
}

/// A name as one field of a folded line: `;` separates frames and the last space the count.
fn folded_name(name: &str) -> String {
    name.replace(';', ":").replace(['\n', '\r'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(function: &str) -> StackFrame {
        StackFrame {
            function: function.into(),
            file: Some("src/lib.rs".into()),
            line: Some(1),
        }
    }

    fn sample() -> Profile {
        Profile {
            hz: 99,
            threads: 2,
            busy: 10,
            outside_polls: 5,
            idle: 40,
            missed: 0,
            sampling_ns: 0,
            groups: vec![
                ProfileGroup {
                    name: "worker".into(),
                    location: "src/main.rs:1:1".into(),
                },
                ProfileGroup {
                    name: "GET /a;b".into(),
                    location: "src/main.rs:2:1".into(),
                },
            ],
            frames: vec![
                frame("app::checksum"),
                frame("app::run"),
                frame("app::parse"),
            ],
            stacks: vec![
                ProfileStack {
                    group: 0,
                    scope: None,
                    frames: vec![0, 1],
                    samples: 7,
                },
                ProfileStack {
                    group: 0,
                    scope: Some(1),
                    frames: vec![2, 1],
                    samples: 3,
                },
            ],
        }
    }

    #[test]
    fn folded_lines_go_outermost_first_under_their_label() {
        let folded = sample().folded();
        assert_eq!(
            folded,
            "worker/GET /a:b;app::run;app::parse 3\nworker;app::run;app::checksum 7\n[outside polls] 5\n"
        );
    }

    #[test]
    fn merged_profiles_add_up_per_group_and_frame() {
        let one = sample();
        let merged = Profile::merged([&one, &one]).unwrap();
        assert_eq!(
            (merged.busy, merged.outside_polls, merged.threads),
            (20, 10, 4)
        );
        assert_eq!(merged.frames.len(), 3);
        assert_eq!(
            merged.by_label(),
            [
                ("worker".to_string(), 14),
                ("worker/GET /a;b".to_string(), 6)
            ]
        );
        assert_eq!(
            merged.folded(),
            one.folded()
                .replace(" 7\n", " 14\n")
                .replace(" 3\n", " 6\n")
                .replace(" 5\n", " 10\n")
        );
        assert!(Profile::merged([]).is_none());
    }

    #[test]
    fn functions_count_self_and_total_once_per_sample() {
        let profile = sample();
        let shares = profile.functions(|_| true);
        assert_eq!(shares[0].function, "app::run");
        assert_eq!((shares[0].self_samples, shares[0].total_samples), (0, 10));
        let checksum = shares
            .iter()
            .find(|s| s.function == "app::checksum")
            .unwrap();
        assert_eq!((checksum.self_samples, checksum.total_samples), (7, 7));
        assert_eq!(profile.samples(|s| s.scope.is_some()), 3);
        assert_eq!(
            profile.by_label(),
            [
                ("worker".to_string(), 7),
                ("worker/GET /a;b".to_string(), 3)
            ]
        );
    }
}
