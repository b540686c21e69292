//! What the table formats (Markdown, HTML) say alike: poll counts of sampled groups, the scopes
//! by latency, the note under a table of sampled groups.

use taskscope_wire::Snapshot;

/// A group's poll count for a table, saying how many were timed when not all were (a busy
/// task's polls are sampled: `taskscope::Builder::sample_interval`), e.g. `37534 (3824
/// timed)`.
pub(crate) fn polls_cell(group: &taskscope_wire::TaskGroup) -> String {
    let timed = group.poll_ns.count();
    if timed >= group.polls {
        return group.polls.to_string();
    }
    format!("{} ({timed} timed)", group.polls)
}

/// The scope groups that have ended scopes, slowest p99 latency first.
pub(crate) fn scopes_by_latency(snapshot: &Snapshot) -> Vec<&taskscope_wire::ScopeGroup> {
    let mut scopes: Vec<_> = snapshot
        .scopes
        .iter()
        .filter(|s| s.latency_ns.count() > 0)
        .collect();
    scopes.sort_by_key(|s| std::cmp::Reverse(s.latency_ns.percentiles().p99));
    scopes
}

/// What a table of groups says under it when some groups' polls were sampled.
pub(crate) const SAMPLED_NOTE: &str = "Where only some polls were timed, the poll percentiles \
are those of the timed polls, and busy time is an estimate scaled from them.";

/// Whether any group's polls were sampled.
pub(crate) fn any_sampled(snapshot: &Snapshot) -> bool {
    snapshot
        .task_groups
        .iter()
        .any(|g| g.poll_ns.count() < g.polls)
}
