//! Whose poll a CPU profile's sample was taken in: the task group and scope group of the task
//! id the sampled thread's worker slot showed. A sample reaches the registry after its task may
//! have finished (a request's scope lasts milliseconds; symbolising takes a while the first
//! time an address is seen), so while profiling, the groups of the tasks retired lately are kept.

use std::collections::VecDeque;

use taskscope_wire::{ProfileGroup, TaskKind, UNINSTRUMENTED};

use super::Registry;
use crate::base::ids::IdMap;
use crate::stacks::{SampleLabel, RETIRED};

/// Scopes looked through at most to find the task a scope runs in.
const MAX_NESTING: usize = 16;
/// Retired tasks whose groups are kept (≈ 40 bytes each, only while profiling).
const RETIRED_KEPT: usize = 16_384;

/// The groups and parents of the tasks retired lately, oldest first out.
#[derive(Debug, Default)]
pub(crate) struct Retired {
    by_id: IdMap<(u32, u64)>,
    order: VecDeque<u64>,
}

impl Retired {
    /// Keeps task `id`'s group index and parent.
    pub(crate) fn push(&mut self, id: u64, group: u32, parent: u64) {
        if self.order.len() >= RETIRED_KEPT {
            if let Some(old) = self.order.pop_front() {
                self.by_id.remove(&old);
            }
        }
        self.by_id.insert(id, (group, parent));
        self.order.push_back(id);
    }
}

impl Registry {
    /// The label of a sample taken in the poll of task (or scope) `id`.
    pub(crate) fn profile_label(&self, id: u64) -> SampleLabel {
        let Some((mut group, mut parent)) = self.group_and_parent(id) else {
            return SampleLabel::named(RETIRED);
        };
        let mut scope = None;
        for _ in 0..MAX_NESTING {
            if self.groups[group as usize].kind != TaskKind::Scope {
                break;
            }
            // The innermost scope names the sample; the task it runs in, its group.
            scope.get_or_insert_with(|| self.profile_group(group));
            match self.group_and_parent(parent) {
                Some((g, p)) => (group, parent) = (g, p),
                None => {
                    // In a task taskscope did not spawn (hyper's connection task, say), or
                    // one retired and no longer kept.
                    let name = if parent == 0 { UNINSTRUMENTED } else { RETIRED };
                    return SampleLabel {
                        scope,
                        ..SampleLabel::named(name)
                    };
                }
            }
        }
        SampleLabel {
            group: self.profile_group(group),
            scope,
        }
    }

    /// A live or lately retired task's group index and parent.
    fn group_and_parent(&self, id: u64) -> Option<(u32, u64)> {
        if id == 0 {
            return None;
        }
        match self.live.get(&id) {
            Some((stats, group)) => Some((*group, stats.parent)),
            None => self.retired.by_id.get(&id).copied(),
        }
    }

    fn profile_group(&self, index: u32) -> ProfileGroup {
        let group = &self.groups[index as usize];
        ProfileGroup {
            name: group.name.clone(),
            location: group.location.clone(),
        }
    }
}
