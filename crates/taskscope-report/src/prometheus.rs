//! Prometheus text exposition: counters and gauges per task group, lock, semaphore and runtime,
//! and durations as real histograms (`_bucket{le=..}`, `_sum`, `_count` — never summaries, never
//! task ids as labels), so `histogram_quantile` aggregates across a fleet of instances.

use std::fmt::Write;

use taskscope_wire::{bucket_range, Histogram, Snapshot, WarningKind};

/// Bucket bounds, in seconds: 1 µs to 10 s in 1-2.5-5 steps.
pub const BUCKETS_S: [f64; 22] = [
    1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 0.01, 0.025,
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Escapes a label value (backslash, double quote, newline).
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

struct Out {
    text: String,
    declared: Vec<&'static str>,
}

impl Out {
    fn declare(&mut self, name: &'static str, kind: &str, help: &str) {
        if !self.declared.contains(&name) {
            self.declared.push(name);
            let _ = writeln!(self.text, "# HELP {name} {help}\n# TYPE {name} {kind}");
        }
    }

    fn sample(&mut self, name: &str, labels: &str, value: impl std::fmt::Display) {
        if labels.is_empty() {
            let _ = writeln!(self.text, "{name} {value}");
        } else {
            let _ = writeln!(self.text, "{name}{{{labels}}} {value}");
        }
    }

    /// A histogram of nanosecond values, exposed in seconds.
    fn histogram(&mut self, name: &'static str, help: &str, labels: &str, h: &Histogram) {
        self.declare(name, "histogram", help);
        let sep = if labels.is_empty() { "" } else { "," };
        // A value counts under `le` when its bucket's midpoint is at most `le`: within the
        // histogram's 1.6 % precision of the exact count.
        let mut cumulative = 0u64;
        let mut buckets = h.buckets.iter().peekable();
        for le in BUCKETS_S {
            let le_ns = le * 1e9;
            while let Some(&&(index, count)) = buckets.peek() {
                let (low, high) = bucket_range(index as usize);
                if (low + (high - low) / 2) as f64 > le_ns {
                    break;
                }
                cumulative += count;
                buckets.next();
            }
            self.sample(
                &format!("{name}_bucket"),
                &format!("{labels}{sep}le=\"{le}\""),
                cumulative,
            );
        }
        let total = h.count();
        self.sample(
            &format!("{name}_bucket"),
            &format!("{labels}{sep}le=\"+Inf\""),
            total,
        );
        self.sample(&format!("{name}_sum"), labels, h.sum as f64 / 1e9);
        self.sample(&format!("{name}_count"), labels, total);
    }
}

/// The snapshot in the Prometheus text format (version 0.0.4).
pub fn render(snapshot: &Snapshot) -> String {
    let mut out = Out {
        text: String::new(),
        declared: Vec::new(),
    };
    for g in &snapshot.task_groups {
        let l = format!(
            "group=\"{}\",location=\"{}\"",
            label(&g.name),
            label(&g.location)
        );
        for (name, help, value) in [
            ("taskscope_tasks_spawned_total", "Tasks spawned.", g.spawned),
            (
                "taskscope_tasks_completed_total",
                "Tasks that completed.",
                g.completed,
            ),
            (
                "taskscope_tasks_cancelled_total",
                "Tasks dropped before completing.",
                g.cancelled,
            ),
            (
                "taskscope_tasks_panicked_total",
                "Tasks that panicked.",
                g.panicked,
            ),
            ("taskscope_polls_total", "Polls.", g.polls),
        ] {
            out.declare(name, "counter", help);
            out.sample(name, &l, value);
        }
        out.declare("taskscope_tasks_alive", "gauge", "Tasks alive now.");
        out.sample("taskscope_tasks_alive", &l, g.alive);
        out.declare(
            "taskscope_busy_seconds_total",
            "counter",
            "Time spent in polls (scaled from the timed polls when a busy task's polls are sampled).",
        );
        out.sample("taskscope_busy_seconds_total", &l, g.busy_ns as f64 / 1e9);
        out.histogram(
            "taskscope_poll_duration_seconds",
            "Duration of the timed polls (every poll of a task polled less often than the sampling interval, a sample of a busier one's; taskscope_polls_total counts them all).",
            &l,
            &g.poll_ns,
        );
        out.histogram(
            "taskscope_scheduled_delay_seconds",
            "Wake to start of the next poll.",
            &l,
            &g.scheduled_ns,
        );
    }
    // Per scope name (for the tower layer, per route), never per request.
    for s in &snapshot.scopes {
        let l = format!(
            "scope=\"{}\",location=\"{}\"",
            label(&s.name),
            label(&s.location)
        );
        out.histogram(
            "taskscope_scope_latency_seconds",
            "Creation to end of each scope (for the tower layer: a request's latency).",
            &l,
            &s.latency_ns,
        );
    }
    for s in snapshot.scopes.iter().filter(|s| s.responses.total() > 0) {
        for (class, count) in s.responses.classes() {
            out.declare(
                "taskscope_scope_responses_total",
                "counter",
                "Responses of the tower layer's requests by status class.",
            );
            let l = format!(
                "scope=\"{}\",location=\"{}\",class=\"{class}\"",
                label(&s.name),
                label(&s.location)
            );
            out.sample("taskscope_scope_responses_total", &l, count);
        }
    }
    for lock in &snapshot.locks {
        let l = format!(
            "lock=\"{}\",kind=\"{}\",location=\"{}\"",
            label(&lock.name),
            label(&lock.kind),
            label(&lock.location)
        );
        out.declare(
            "taskscope_lock_acquisitions_total",
            "counter",
            "Lock acquisitions.",
        );
        out.sample("taskscope_lock_acquisitions_total", &l, lock.acquisitions);
        out.declare(
            "taskscope_lock_contended_total",
            "counter",
            "Lock acquisitions that had to wait.",
        );
        out.sample("taskscope_lock_contended_total", &l, lock.contended);
        out.declare(
            "taskscope_lock_waiters",
            "gauge",
            "Tasks waiting for the lock now.",
        );
        out.sample("taskscope_lock_waiters", &l, lock.waiters);
        out.histogram(
            "taskscope_lock_wait_seconds",
            "Time from asking for a lock to getting it.",
            &l,
            &lock.wait_ns,
        );
        out.histogram(
            "taskscope_lock_hold_seconds",
            "Time a lock was held (sampled).",
            &l,
            &lock.hold_ns,
        );
    }
    for s in &snapshot.semaphores {
        let l = format!(
            "semaphore=\"{}\",location=\"{}\"",
            label(&s.name),
            label(&s.location)
        );
        out.declare(
            "taskscope_semaphore_permits",
            "gauge",
            "Permits of the semaphore.",
        );
        out.sample("taskscope_semaphore_permits", &l, s.permits);
        out.declare(
            "taskscope_semaphore_available",
            "gauge",
            "Permits available now.",
        );
        out.sample("taskscope_semaphore_available", &l, s.available);
        out.declare(
            "taskscope_semaphore_acquisitions_total",
            "counter",
            "Permit acquisitions.",
        );
        out.sample("taskscope_semaphore_acquisitions_total", &l, s.acquisitions);
        out.declare(
            "taskscope_semaphore_saturated_seconds_total",
            "counter",
            "Time with no permit left.",
        );
        out.sample(
            "taskscope_semaphore_saturated_seconds_total",
            &l,
            s.saturated_ns as f64 / 1e9,
        );
        out.histogram(
            "taskscope_semaphore_wait_seconds",
            "Time from asking for permits to getting them.",
            &l,
            &s.wait_ns,
        );
    }
    for r in &snapshot.runtimes {
        let l = format!("runtime=\"{}\",flavor=\"{}\"", r.id, label(&r.flavor));
        out.histogram(
            "taskscope_event_loop_lag_seconds",
            "How late the runtime ran a task woken from outside.",
            &l,
            &r.lag_ns,
        );
        for (worker, busy) in r.worker_busy.iter().enumerate() {
            out.declare(
                "taskscope_worker_busy_ratio",
                "gauge",
                "Fraction of time a worker was busy lately.",
            );
            out.sample(
                "taskscope_worker_busy_ratio",
                &format!("{l},worker=\"{worker}\""),
                busy,
            );
        }
    }
    out.declare(
        "taskscope_warnings_total",
        "counter",
        "Warnings raised, by kind.",
    );
    for kind in WarningKind::ALL {
        out.sample(
            "taskscope_warnings_total",
            &format!("kind=\"{kind}\""),
            snapshot.warnings_of(kind).count(),
        );
    }
    out.declare(
        "taskscope_dropped_events_total",
        "counter",
        "Events taskscope shed under load.",
    );
    out.sample(
        "taskscope_dropped_events_total",
        "",
        snapshot.dropped_events,
    );
    out.text
}

#[cfg(test)]
mod tests {
    use super::*;
    use taskscope_wire::TaskGroup;

    #[test]
    fn histograms_are_cumulative_with_sum_and_count() {
        let mut poll_ns = Histogram::default();
        for v in [500u64, 3_000, 3_000, 2_000_000, 20_000_000_000] {
            poll_ns.record(v);
        }
        let snap = Snapshot {
            task_groups: vec![TaskGroup {
                name: "a \"quoted\" name".into(),
                poll_ns,
                ..TaskGroup::default()
            }],
            ..Snapshot::default()
        };
        let text = render(&snap);
        let line = |le: &str| {
            text.lines()
                .find(|l| {
                    l.starts_with("taskscope_poll_duration_seconds_bucket")
                        && l.contains(&format!("le=\"{le}\""))
                })
                .unwrap_or_else(|| panic!("no bucket {le}"))
                .rsplit(' ')
                .next()
                .unwrap()
                .parse::<u64>()
                .unwrap()
        };
        assert_eq!(line("0.000001"), 1);
        assert_eq!(line("0.000005"), 3);
        assert_eq!(line("0.0025"), 4);
        assert_eq!(line("10"), 4, "20 s is beyond the last bound");
        assert_eq!(line("+Inf"), 5);
        assert!(text.contains("group=\"a \\\"quoted\\\" name\""));
        assert!(text.contains("# TYPE taskscope_poll_duration_seconds histogram"));
        assert_eq!(
            text.matches("# TYPE taskscope_poll_duration_seconds ")
                .count(),
            1
        );
        let count = text
            .lines()
            .find(|l| l.starts_with("taskscope_poll_duration_seconds_count"))
            .unwrap();
        assert!(count.ends_with(" 5"));
    }
}
