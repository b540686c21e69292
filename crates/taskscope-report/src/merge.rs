//! One report from several snapshots (recordings of several processes, or several runs): task
//! groups, locks and semaphores with the same name, location and kind are added together —
//! counts summed, histograms merged bucket by bucket, so percentiles are those of the whole
//! fleet — and every warning is kept, prefixed with its process.
//!
//! Individual tasks and poll timelines are per process and are left out: a trace is made from
//! one recording.

use std::collections::HashMap;

use taskscope_wire::{Lock, Semaphore, Snapshot, TaskGroup, TaskKind};

/// The merged snapshot (`snapshots` must not be empty; one snapshot comes back unchanged).
pub fn merge(snapshots: &[Snapshot]) -> Snapshot {
    if let [one] = snapshots {
        return one.clone();
    }
    let mut out = Snapshot::default();
    let mut names: Vec<&str> = Vec::new();
    for s in snapshots {
        if !names.contains(&s.process.name.as_str()) {
            names.push(&s.process.name);
        }
    }
    out.process.name = names.join(" + ");
    out.process.pid = 0;
    out.process.start_unix_ms = snapshots
        .iter()
        .map(|s| s.process.start_unix_ms)
        .min()
        .unwrap_or(0);
    // The span from the first start to the last end, in ms.
    out.taken_at_ms = snapshots
        .iter()
        .map(|s| {
            (s.process.start_unix_ms - out.process.start_unix_ms.min(s.process.start_unix_ms))
                + s.taken_at_ms
        })
        .max()
        .unwrap_or(0);
    out.dropped_events = snapshots.iter().map(|s| s.dropped_events).sum();
    out.profile =
        taskscope_wire::Profile::merged(snapshots.iter().filter_map(|s| s.profile.as_ref()));

    let mut groups: HashMap<(String, String, TaskKind), TaskGroup> = HashMap::new();
    let mut locks: HashMap<(String, String, String), Lock> = HashMap::new();
    let mut semaphores: HashMap<(String, String), Semaphore> = HashMap::new();
    for s in snapshots {
        for g in &s.task_groups {
            let key = (g.name.clone(), g.location.clone(), g.kind);
            match groups.get_mut(&key) {
                None => {
                    groups.insert(key, g.clone());
                }
                Some(m) => {
                    m.spawned += g.spawned;
                    m.alive += g.alive;
                    m.completed += g.completed;
                    m.cancelled += g.cancelled;
                    m.panicked += g.panicked;
                    m.polls += g.polls;
                    m.busy_ns += g.busy_ns;
                    m.poll_ns.merge(&g.poll_ns);
                    m.scheduled_ns.merge(&g.scheduled_ns);
                }
            }
        }
        for l in &s.locks {
            let key = (l.name.clone(), l.location.clone(), l.kind.clone());
            match locks.get_mut(&key) {
                None => {
                    let mut l = l.clone();
                    (l.waiters, l.holder, l.holder_location) = (0, None, None);
                    locks.insert(key, l);
                }
                Some(m) => {
                    m.acquisitions += l.acquisitions;
                    m.contended += l.contended;
                    m.max_waiters = m.max_waiters.max(l.max_waiters);
                    m.wait_ns.merge(&l.wait_ns);
                    m.hold_ns.merge(&l.hold_ns);
                }
            }
        }
        for x in &s.semaphores {
            let key = (x.name.clone(), x.location.clone());
            match semaphores.get_mut(&key) {
                None => {
                    let mut x = x.clone();
                    x.waiters = 0;
                    semaphores.insert(key, x);
                }
                Some(m) => {
                    m.permits = m.permits.max(x.permits);
                    m.acquisitions += x.acquisitions;
                    m.max_waiters = m.max_waiters.max(x.max_waiters);
                    m.saturated_ns += x.saturated_ns;
                    m.wait_ns.merge(&x.wait_ns);
                }
            }
        }
        for w in &s.warnings {
            let mut w = w.clone();
            w.id = out.warnings.len() as u64 + 1;
            w.message = format!("{} (pid {}): {}", s.process.name, s.process.pid, w.message);
            out.warnings.push(w);
        }
    }
    out.task_groups = groups.into_values().collect();
    out.task_groups
        .sort_by(|a, b| b.busy_ns.cmp(&a.busy_ns).then(a.name.cmp(&b.name)));
    out.locks = locks.into_values().collect();
    out.locks
        .sort_by(|a, b| b.wait_ns.sum.cmp(&a.wait_ns.sum).then(a.name.cmp(&b.name)));
    out.semaphores = semaphores.into_values().collect();
    out.semaphores
        .sort_by(|a, b| b.wait_ns.sum.cmp(&a.wait_ns.sum).then(a.name.cmp(&b.name)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use taskscope_wire::{Histogram, Warning, WarningKind};

    fn snapshot(name: &str, pid: u32, polls: &[u64]) -> Snapshot {
        let mut s = Snapshot::default();
        s.process.name = name.into();
        s.process.pid = pid;
        s.process.start_unix_ms = 1_000 * u64::from(pid);
        s.taken_at_ms = 2_000;
        let mut poll_ns = Histogram::default();
        for &p in polls {
            poll_ns.record(p);
        }
        s.task_groups.push(TaskGroup {
            name: "handler".into(),
            location: "src/main.rs:1:1".into(),
            spawned: polls.len() as u64,
            completed: polls.len() as u64,
            polls: polls.len() as u64,
            busy_ns: polls.iter().sum(),
            poll_ns,
            ..Default::default()
        });
        s.locks.push(Lock {
            name: "cache".into(),
            kind: "mutex".into(),
            acquisitions: 10,
            contended: 2,
            max_waiters: u64::from(pid),
            ..Default::default()
        });
        s.warnings
            .push(Warning::new(1, WarningKind::BlockedWorker, 5, "blocked"));
        s
    }

    #[test]
    fn groups_add_up_and_percentiles_cover_both() {
        let a = snapshot("api", 1, &[1_000; 90]);
        let b = snapshot("api", 2, &[1_000_000; 10]);
        let m = merge(&[a, b]);
        assert_eq!(m.process.name, "api");
        assert_eq!(m.process.pid, 0);
        assert_eq!(m.taken_at_ms, 3_000, "from the first start to the last end");
        assert_eq!(m.task_groups.len(), 1);
        let g = &m.task_groups[0];
        assert_eq!((g.spawned, g.polls), (100, 100));
        assert_eq!(g.poll_ns.count(), 100);
        let p = g.poll_ns.percentiles();
        assert!(p.p50 < 1_100 && p.p99 > 900_000, "{p:?}");
        assert_eq!(m.locks.len(), 1);
        assert_eq!((m.locks[0].acquisitions, m.locks[0].contended), (20, 4));
        assert_eq!(m.locks[0].max_waiters, 2);
        assert_eq!(m.warnings.len(), 2);
        assert!(m.warnings[1].message.starts_with("api (pid 2): "));
        assert_ne!(m.warnings[0].id, m.warnings[1].id);
    }
}
