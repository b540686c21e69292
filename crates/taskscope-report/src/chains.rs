//! A warning's task chains as the text formats print them: per task, its first chain's
//! `async fn`s, innermost first, each `function (file:line)`.

use taskscope_wire::Snapshot;

/// (task `id` `name`, its frames) for each traced task of warning `warning`.
pub(crate) fn waits(snapshot: &Snapshot, warning: u64) -> Vec<(String, Vec<String>)> {
    snapshot
        .warning_chains
        .get(&warning)
        .into_iter()
        .flatten()
        .filter_map(|t| {
            let frames = t.first_chain()?.frames.iter().map(|f| f.at()).collect();
            Some((format!("{} `{}`", t.id, t.name), frames))
        })
        .collect()
}
