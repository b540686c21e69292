//! A Chrome trace event JSON file (the "JSON trace format" that Perfetto's UI, `ui.perfetto.dev`,
//! and `chrome://tracing` open): one track per worker thread with the sampled poll timeline and
//! the blocked-worker periods (a scope polled inside a task's poll nests in that poll's slice),
//! task lifetimes as async slices paired by task id (tasks move
//! between threads), lock waits on a track per lock, and the other warnings as instant events.
//!
//! Times in the file are microseconds since observation started.

use std::collections::{BTreeMap, HashMap};

use serde_json::{json, Value};
use taskscope_wire::{Snapshot, WarningKind};

/// Track (tid) of task lifetimes and process-wide warnings.
const TASKS_TID: u64 = 0;
/// Workers are tids `WORKER_TID_BASE + worker id`; lock tracks follow them.
const WORKER_TID_BASE: u64 = 1;
const LOCK_TID_BASE: u64 = 100_000;

/// The trace as JSON text.
pub fn render(snapshot: &Snapshot) -> String {
    serde_json::to_string(&trace(snapshot)).expect("a trace always serialises")
}

/// The trace as a JSON value: `{"traceEvents": [...], "displayTimeUnit": "ms", "otherData": ..}`.
pub fn trace(snapshot: &Snapshot) -> Value {
    let pid = u64::from(snapshot.process.pid);
    let end_us = snapshot.taken_at_ms * 1000;
    let mut events = Vec::new();
    let meta = |tid: u64, name: &str, sort: u64| {
        [
            json!({"ph": "M", "name": "thread_name", "pid": pid, "tid": tid,
                   "args": {"name": name}}),
            json!({"ph": "M", "name": "thread_sort_index", "pid": pid, "tid": tid,
                   "args": {"sort_index": sort}}),
        ]
    };
    events.push(
        json!({"ph": "M", "name": "process_name", "pid": pid, "tid": TASKS_TID,
                       "args": {"name": process_label(snapshot)}}),
    );
    events.extend(meta(TASKS_TID, "tasks and warnings", 0));

    // Worker tracks: every worker the snapshot knows, and any the samples name.
    let mut workers: BTreeMap<u64, String> = snapshot
        .workers
        .iter()
        .map(|w| (w.id, format!("{} (#{})", w.thread, w.id)))
        .collect();
    for s in &snapshot.poll_timeline.0 {
        workers
            .entry(s.worker)
            .or_insert_with(|| format!("worker #{}", s.worker));
    }
    for w in &snapshot.warnings {
        if let Some(id) = w.worker.as_deref().and_then(worker_index) {
            workers
                .entry(id)
                .or_insert_with(|| w.worker.clone().unwrap_or_default());
        }
    }
    for (&id, name) in &workers {
        events.extend(meta(WORKER_TID_BASE + id, name, 10 + id));
    }

    // Names of tasks, for the poll slices; scopes the snapshot no longer holds by their
    // timeline names.
    let mut names: HashMap<u64, (&str, &str)> = snapshot
        .timeline_names
        .iter()
        .map(|(&id, name)| (id, (name.as_str(), "")))
        .collect();
    names.extend(
        snapshot
            .tasks
            .iter()
            .map(|t| (t.id, (t.name.as_str(), t.location.as_str()))),
    );

    // Poll slices, by (worker track, task): a blocked worker's warning becomes its poll's slice
    // rather than a second slice beside it (two slices of one poll overlap partially, which
    // the viewers mis-nest: the warning's time is in whole milliseconds).
    let mut polls: HashMap<(u64, u64), Vec<usize>> = HashMap::new();
    for s in &snapshot.poll_timeline.0 {
        let (name, location) = names.get(&s.task).copied().unwrap_or(("task", ""));
        let tid = WORKER_TID_BASE + s.worker;
        polls.entry((tid, s.task)).or_default().push(events.len());
        events.push(json!({
            "ph": "X", "cat": "poll", "name": name, "pid": pid,
            "tid": tid,
            "ts": s.start_us, "dur": s.end_us.saturating_sub(s.start_us).max(1),
            "args": {"task": s.task, "location": location,
                     "end": if s.exact { "measured" } else { "last seen by a scan" }},
        }));
    }

    for t in &snapshot.tasks {
        let start = t.created_ms * 1000;
        let end = t.ended_ms.map_or(end_us, |ms| ms * 1000).max(start);
        let args = json!({"task": t.id, "location": t.location, "polls": t.polls,
        "busy_ns": t.busy_ns,
        "outcome": t.outcome.map_or("alive", |o| match o {
            taskscope_wire::Outcome::Completed => "completed",
            taskscope_wire::Outcome::Cancelled => "cancelled",
            taskscope_wire::Outcome::Panicked => "panicked",
        })});
        events.push(
            json!({"ph": "b", "cat": "task", "name": t.name, "id": t.id, "pid": pid,
                           "tid": TASKS_TID, "ts": start, "args": args}),
        );
        events.push(
            json!({"ph": "e", "cat": "task", "name": t.name, "id": t.id, "pid": pid,
                           "tid": TASKS_TID, "ts": end}),
        );
    }

    let mut lock_tids: BTreeMap<String, u64> = BTreeMap::new();
    for w in &snapshot.warnings {
        let ts = w.at_ms * 1000;
        let dur_us = w.duration_ns.map(|ns| (ns / 1000).max(1));
        let args = json!({"kind": w.kind.as_str(), "message": w.message, "task": w.task,
                          "location": w.location, "ongoing": w.ongoing, "locks": w.locks});
        match (w.kind, dur_us) {
            (WarningKind::BlockedWorker, Some(dur)) => {
                let tid = w
                    .worker
                    .as_deref()
                    .and_then(worker_index)
                    .map_or(TASKS_TID, |id| WORKER_TID_BASE + id);
                let name = format!("blocked: {}", w.task_name.as_deref().unwrap_or("?"));
                // The poll it blocked in: same track and task, overlapping the block (whose
                // start is cut to the millisecond).
                let overlap = |i: usize| {
                    let start = events[i]["ts"].as_u64().unwrap_or(0);
                    let end = start + events[i]["dur"].as_u64().unwrap_or(0);
                    end.min(ts + 1000 + dur).saturating_sub(start.max(ts))
                };
                let poll = w
                    .task
                    .and_then(|task| polls.get(&(tid, task)))
                    .and_then(|found| found.iter().copied().max_by_key(|&i| overlap(i)))
                    .filter(|&i| overlap(i) > 0);
                match poll {
                    Some(i) => {
                        let slice = &mut events[i];
                        slice["cat"] = json!("blocked_worker");
                        slice["name"] = json!(name);
                        let end = slice["args"]["end"].clone();
                        slice["args"] = args;
                        slice["args"]["end"] = end;
                    }
                    None => events.push(json!({"ph": "X", "cat": "blocked_worker",
                        "name": name, "pid": pid, "tid": tid, "ts": ts, "dur": dur,
                        "args": args})),
                }
            }
            (WarningKind::LongWait, Some(dur)) => {
                let lock = w.locks.first().cloned().unwrap_or_else(|| "lock".into());
                let next = LOCK_TID_BASE + lock_tids.len() as u64;
                let tid = *lock_tids.entry(lock.clone()).or_insert_with(|| {
                    events.extend(meta(next, &format!("waits for {lock}"), next));
                    next
                });
                events.push(json!({"ph": "X", "cat": "lock_wait",
                    "name": format!("{} waits", w.task_name.as_deref().unwrap_or("?")),
                    "pid": pid, "tid": tid, "ts": ts.saturating_sub(dur), "dur": dur,
                    "args": args}));
            }
            _ => events.push(json!({"ph": "i", "s": "p", "cat": "warning",
                "name": w.kind.as_str(), "pid": pid, "tid": TASKS_TID, "ts": ts,
                "args": args})),
        }
    }

    json!({
        "traceEvents": events,
        "displayTimeUnit": "ms",
        "otherData": {
            "producer": "taskscope",
            "process": snapshot.process.name,
            "poll_samples": snapshot.poll_timeline.0.len(),
            "note": "Polls are sampled: the watchdog scans every worker every few ms; a poll is \
                     shown from its start to its measured end (long polls) or to the last scan \
                     that saw it running.",
        },
    })
}

fn process_label(snapshot: &Snapshot) -> String {
    let name = if snapshot.process.name.is_empty() {
        "process"
    } else {
        &snapshot.process.name
    };
    format!("{name} (pid {})", snapshot.process.pid)
}

/// The worker index in a warning's worker name, `thread (#3)`.
fn worker_index(name: &str) -> Option<u64> {
    let start = name.rfind("(#")? + 2;
    let end = start + name[start..].find(')')?;
    name[start..end].parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_names_give_their_index() {
        assert_eq!(worker_index("tokio-rt-worker (#12)"), Some(12));
        assert_eq!(worker_index("main"), None);
        assert_eq!(worker_index("x (#)"), None);
    }
}
