//! Whose poll a CPU profile's sample was taken in: the task group and scope group of the task
//! id the sampled thread's worker slot showed.

use taskscope_wire::{ProfileGroup, TaskKind, UNINSTRUMENTED};

use super::Registry;
use crate::base::location::format_location;
use crate::stacks::SampleLabel;
use crate::stats::task::TaskStats;

/// Scopes looked through at most to find the task a scope runs in.
const MAX_NESTING: usize = 16;

impl Registry {
    /// The label of a sample taken in the poll of task (or scope) `id`; `None` for an id
    /// taskscope does not know (or no longer: a task retired before its sample was folded).
    pub(crate) fn profile_label(&self, id: u64) -> Option<SampleLabel> {
        let mut stats = self.known_task(id)?;
        let mut scope = None;
        for _ in 0..MAX_NESTING {
            if stats.kind != TaskKind::Scope {
                break;
            }
            // The innermost scope names the sample; the task it runs in, its group.
            scope.get_or_insert_with(|| group_of(stats));
            match self.known_task(stats.parent) {
                Some(parent) => stats = parent,
                None => {
                    return Some(SampleLabel {
                        group: ProfileGroup {
                            name: UNINSTRUMENTED.into(),
                            location: String::new(),
                        },
                        scope,
                    })
                }
            }
        }
        Some(SampleLabel {
            group: group_of(stats),
            scope,
        })
    }

    /// A live task's statistics, or a finished one's that is still kept.
    fn known_task(&self, id: u64) -> Option<&TaskStats> {
        if id == 0 {
            return None;
        }
        if let Some((stats, _)) = self.live.get(&id) {
            return Some(stats);
        }
        self.finished
            .iter()
            .rev()
            .find(|r| r.stats.id == id)
            .map(|r| &*r.stats)
    }
}

/// The group a task's samples go under: named as its task group is.
fn group_of(stats: &TaskStats) -> ProfileGroup {
    let location = format_location(stats.location);
    ProfileGroup {
        name: if stats.name.is_empty() {
            location.clone()
        } else {
            stats.name.to_string()
        },
        location,
    }
}
