//! The rows of the Warnings view: a warning that repeats — the same kind, task group and
//! location, like a handler that blocks its worker on every request — is one row with a count,
//! its latest and its worst, so that one-off findings (an inversion, a panic) stay in sight.

use taskscope_wire::{Warning, WarningKind};

/// One row: a warning, or the repeats of one.
#[derive(Debug, Clone, Copy)]
pub struct WarningRow<'a> {
    /// The first of the row's warnings.
    pub first: &'a Warning,
    /// The newest of the row's warnings (the one the row shows).
    pub latest: &'a Warning,
    /// The longest of them (by duration; the latest when none has one).
    pub worst: &'a Warning,
    /// How many warnings the row stands for.
    pub count: usize,
    /// Whether one of them is still going on.
    pub ongoing: bool,
    /// Where the latest stands among the snapshot's warnings (their order is the order they
    /// were raised in).
    order: usize,
}

/// Kinds whose warnings repeat for one cause: one row per task group and location.
fn folds(kind: WarningKind) -> bool {
    matches!(
        kind,
        WarningKind::BlockedWorker
            | WarningKind::LongWait
            | WarningKind::TaskPanicked
            | WarningKind::LockHeldAcrossAwait
    )
}

/// Whether `w` matches the `/` filter (lowercased): a case-insensitive part of its kind,
/// message, task or location (an empty filter matches all).
fn matches(w: &Warning, filter: &str) -> bool {
    if filter.is_empty() {
        return true;
    }
    [
        Some(w.kind.as_str()),
        Some(w.message.as_str()),
        w.task_name.as_deref(),
        w.location.as_deref(),
    ]
    .into_iter()
    .flatten()
    .any(|text| text.to_lowercase().contains(filter))
}

/// The view's rows of `warnings` (in the order they were raised, as in a snapshot) that match
/// `filter`, the latest raised first.
pub fn warning_rows<'a>(warnings: &'a [Warning], filter: &str) -> Vec<WarningRow<'a>> {
    let mut rows: Vec<WarningRow<'a>> = Vec::new();
    let mut index: std::collections::HashMap<(WarningKind, Option<&str>, Option<&str>), usize> =
        std::collections::HashMap::new();
    let filter = filter.to_lowercase();
    for (order, w) in warnings
        .iter()
        .enumerate()
        .filter(|(_, w)| matches(w, &filter))
    {
        let key = (w.kind, w.task_name.as_deref(), w.location.as_deref());
        let folded = folds(w.kind) && (key.1.is_some() || key.2.is_some());
        match folded.then(|| index.get(&key).copied()).flatten() {
            Some(at) => {
                let row = &mut rows[at];
                if w.duration_ns.unwrap_or(0) >= row.worst.duration_ns.unwrap_or(0) {
                    row.worst = w;
                }
                row.latest = w;
                row.order = order;
                row.count += 1;
                row.ongoing |= w.ongoing;
            }
            None => {
                if folded {
                    index.insert(key, rows.len());
                }
                rows.push(WarningRow {
                    first: w,
                    latest: w,
                    worst: w,
                    count: 1,
                    ongoing: w.ongoing,
                    order,
                });
            }
        }
    }
    rows.sort_by_key(|r| std::cmp::Reverse(r.order));
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    fn warning(id: u64, kind: WarningKind, task: &str, at_ms: u64, ns: u64) -> Warning {
        let mut w = Warning::new(id, kind, at_ms, format!("{kind} of {task}"));
        w.task_name = Some(task.into());
        w.location = Some(format!("src/{task}.rs:1:1"));
        w.duration_ns = Some(ns);
        w
    }

    #[test]
    fn repeats_fold_into_one_row_and_one_offs_stay_apart() {
        let blocked = WarningKind::BlockedWorker;
        let warnings = vec![
            warning(1, blocked, "handler", 100, 30),
            warning(2, WarningKind::LockOrderInversion, "a", 150, 0),
            warning(3, blocked, "handler", 200, 90),
            warning(4, WarningKind::LockOrderInversion, "a", 250, 0),
            warning(5, blocked, "handler", 300, 10),
            warning(6, blocked, "export", 350, 5),
        ];
        let rows = warning_rows(&warnings, "");
        let shown: Vec<(u64, usize, u64)> = rows
            .iter()
            .map(|r| (r.latest.id, r.count, r.worst.id))
            .collect();
        // Newest first; the three blocks of `handler` are one row, worst the 90 ns one; the
        // inversions are one-offs, each its own row.
        assert_eq!(shown, [(6, 1, 6), (5, 3, 3), (4, 1, 4), (2, 1, 2)]);
    }

    #[test]
    fn the_filter_keeps_warnings_whose_text_matches() {
        let warnings = vec![
            warning(1, WarningKind::BlockedWorker, "handler", 100, 30),
            warning(2, WarningKind::LockHeldAcrossAwait, "cache", 150, 0),
        ];
        let ids = |filter| -> Vec<u64> {
            warning_rows(&warnings, filter)
                .iter()
                .map(|r| r.latest.id)
                .collect()
        };
        assert_eq!(ids("AWAIT"), [2]);
        assert_eq!(ids("handler.rs"), [1]);
        assert_eq!(ids("nothing"), Vec::<u64>::new());
        assert_eq!(ids(""), [2, 1]);
    }
}
