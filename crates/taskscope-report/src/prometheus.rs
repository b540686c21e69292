//! Prometheus text exposition: counters and gauges per task group, lock, semaphore and runtime,
//! and durations as real histograms (`_bucket{le=..}`, `_sum`, `_count` — never summaries, never
//! task ids as labels), so `histogram_quantile` aggregates across a fleet of instances.

use std::fmt::Write;

use taskscope_wire::{
    bucket_range, Histogram, Lock, ScopeGroup, Semaphore, Snapshot, TaskGroup, WarningKind,
};

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

/// One value of an entity's metric.
enum Value<'a> {
    /// A count.
    Count(u64),
    /// Nanoseconds, exposed as seconds.
    Seconds(u64),
    /// A histogram of nanoseconds, exposed in seconds.
    Histogram(&'a Histogram),
}

/// A metric every entity of one kind has: name, type (`counter`, `gauge`; `histogram` for a
/// [`Value::Histogram`]), help, and its value for one entity.
struct Metric<T>(
    &'static str,
    &'static str,
    &'static str,
    for<'a> fn(&'a T) -> Value<'a>,
);

const TASK_GROUP_METRICS: &[Metric<TaskGroup>] = &[
    Metric("taskscope_tasks_spawned_total", "counter", "Tasks spawned.", |g| Value::Count(g.spawned)),
    Metric("taskscope_tasks_completed_total", "counter", "Tasks that completed.", |g| Value::Count(g.completed)),
    Metric("taskscope_tasks_cancelled_total", "counter", "Tasks dropped before completing.", |g| Value::Count(g.cancelled)),
    Metric("taskscope_tasks_panicked_total", "counter", "Tasks that panicked.", |g| Value::Count(g.panicked)),
    Metric("taskscope_polls_total", "counter", "Polls.", |g| Value::Count(g.polls)),
    Metric("taskscope_tasks_alive", "gauge", "Tasks alive now.", |g| Value::Count(g.alive)),
    Metric(
        "taskscope_busy_seconds_total",
        "counter",
        "Time spent in polls (scaled from the timed polls when a busy task's polls are sampled).",
        |g| Value::Seconds(g.busy_ns),
    ),
    Metric(
        "taskscope_poll_duration_seconds",
        "histogram",
        "Duration of the timed polls (every poll of a task polled less often than the sampling interval, a sample of a busier one's; taskscope_polls_total counts them all).",
        |g| Value::Histogram(&g.poll_ns),
    ),
    Metric("taskscope_scheduled_delay_seconds", "histogram", "Wake to start of the next poll.", |g| Value::Histogram(&g.scheduled_ns)),
];

/// Per scope name (for the tower layer, per route), never per request.
const SCOPE_METRICS: &[Metric<ScopeGroup>] = &[Metric(
    "taskscope_scope_latency_seconds",
    "histogram",
    "Creation to end of each scope (for the tower layer: a request's latency).",
    |s| Value::Histogram(&s.latency_ns),
)];

const LOCK_METRICS: &[Metric<Lock>] = &[
    Metric(
        "taskscope_lock_acquisitions_total",
        "counter",
        "Lock acquisitions.",
        |l| Value::Count(l.acquisitions),
    ),
    Metric(
        "taskscope_lock_contended_total",
        "counter",
        "Lock acquisitions that had to wait.",
        |l| Value::Count(l.contended),
    ),
    Metric(
        "taskscope_lock_waiters",
        "gauge",
        "Tasks waiting for the lock now.",
        |l| Value::Count(l.waiters),
    ),
    Metric(
        "taskscope_lock_wait_seconds",
        "histogram",
        "Time from asking for a lock to getting it.",
        |l| Value::Histogram(&l.wait_ns),
    ),
    Metric(
        "taskscope_lock_hold_seconds",
        "histogram",
        "Time a lock was held (sampled).",
        |l| Value::Histogram(&l.hold_ns),
    ),
];

const SEMAPHORE_METRICS: &[Metric<Semaphore>] = &[
    Metric(
        "taskscope_semaphore_permits",
        "gauge",
        "Permits of the semaphore.",
        |s| Value::Count(s.permits),
    ),
    Metric(
        "taskscope_semaphore_available",
        "gauge",
        "Permits available now.",
        |s| Value::Count(s.available),
    ),
    Metric(
        "taskscope_semaphore_acquisitions_total",
        "counter",
        "Permit acquisitions.",
        |s| Value::Count(s.acquisitions),
    ),
    Metric(
        "taskscope_semaphore_saturated_seconds_total",
        "counter",
        "Time with no permit left.",
        |s| Value::Seconds(s.saturated_ns),
    ),
    Metric(
        "taskscope_semaphore_wait_seconds",
        "histogram",
        "Time from asking for permits to getting them.",
        |s| Value::Histogram(&s.wait_ns),
    ),
];

impl Out {
    /// Every metric of `metrics` for one entity, labelled `labels`.
    fn entity<T>(&mut self, metrics: &[Metric<T>], labels: &str, entity: &T) {
        for Metric(name, kind, help, value) in metrics {
            match value(entity) {
                Value::Count(n) => {
                    self.declare(name, kind, help);
                    self.sample(name, labels, n);
                }
                Value::Seconds(ns) => {
                    self.declare(name, kind, help);
                    self.sample(name, labels, ns as f64 / 1e9);
                }
                Value::Histogram(h) => self.histogram(name, help, labels, h),
            }
        }
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
        out.entity(TASK_GROUP_METRICS, &l, g);
    }
    for s in &snapshot.scopes {
        let l = format!(
            "scope=\"{}\",location=\"{}\"",
            label(&s.name),
            label(&s.location)
        );
        out.entity(SCOPE_METRICS, &l, s);
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
        out.entity(LOCK_METRICS, &l, lock);
    }
    for s in &snapshot.semaphores {
        let l = format!(
            "semaphore=\"{}\",location=\"{}\"",
            label(&s.name),
            label(&s.location)
        );
        out.entity(SEMAPHORE_METRICS, &l, s);
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
        "taskscope_refused_peers_total",
        "counter",
        "Peers the live stream and this endpoint turned away, by why.",
    );
    let refused = &snapshot.refused;
    for (reason, count) in [
        ("client_limit", refused.client_limit),
        ("hello_limit", refused.hello_limit),
        ("wrong_token", refused.wrong_token),
        ("bad_hello", refused.bad_hello),
        ("scrape_limit", refused.scrape_limit),
        ("scrape_unauthorized", refused.scrape_unauthorized),
    ] {
        out.sample(
            "taskscope_refused_peers_total",
            &format!("reason=\"{reason}\""),
            count,
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
