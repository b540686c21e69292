//! A warning's task chains as the text formats print them: per task, its first chain's
//! `async fn`s, innermost first, each `function (file:line)`.

use taskscope_wire::{Snapshot, Trace};

/// (task `id` `name`, its frames) for each traced task of warning `warning`.
pub(crate) fn waits(snapshot: &Snapshot, warning: u64) -> Vec<(String, Vec<String>)> {
    snapshot
        .warning_chains
        .get(&warning)
        .into_iter()
        .flatten()
        .filter_map(|t| {
            let Trace::Suspended { chains } = &t.trace else {
                return None;
            };
            let frames = chains
                .first()?
                .frames
                .iter()
                .map(|f| match (&f.file, f.line) {
                    (Some(file), Some(line)) => format!("{} ({file}:{line})", f.function),
                    _ => f.function.clone(),
                })
                .collect();
            Some((format!("{} `{}`", t.id, t.name), frames))
        })
        .collect()
}
