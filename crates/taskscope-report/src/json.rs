//! The JSON report, schema `taskscope.report/v1` (DESIGN.md §8; every field is described in the
//! README).

use serde::Serialize;
use std::borrow::Cow;
use std::collections::BTreeMap;

use taskscope_wire::{Histogram, Percentiles, Snapshot, StackSample, Warning};

/// The schema name written in every report.
pub const SCHEMA: &str = "taskscope.report/v1";

/// The JSON Schema (draft 2020-12) every report validates against; the file is
/// `crates/taskscope-report/schema/report-v1.schema.json`.
pub const JSON_SCHEMA: &str = include_str!("../schema/report-v1.schema.json");

/// A report in the v1 shape.
#[derive(Debug, Serialize)]
pub struct Report<'a> {
    /// Always [`SCHEMA`].
    pub schema: &'static str,
    /// Executable name and pid.
    pub process: Process<'a>,
    /// Seconds observed.
    pub duration_s: f64,
    /// Events taskscope dropped under load (the numbers are incomplete when > 0).
    pub dropped_events: u64,
    /// Per task group, most busy first.
    pub tasks: Vec<Row>,
    /// Per scope group: latency and responses.
    pub scopes: Vec<Row>,
    /// Per lock (and RwLock side), most waited-on first.
    pub locks: Vec<Row>,
    /// Per semaphore, most waited-on first.
    pub semaphores: Vec<Row>,
    /// Every warning, oldest first.
    pub warnings: Vec<WarningRow<'a>>,
    /// The CPU profile, when one was taken (`null` otherwise).
    pub profile: Option<ProfileRow>,
}

/// Functions listed per group of [`ProfileRow::groups`]; the pprof report has them all.
pub const PROFILE_FUNCTIONS: usize = 50;

/// The CPU profile of a report: its counts, and per task group and scope its top functions.
#[derive(Debug, Serialize)]
pub struct ProfileRow {
    /// Samples per second asked for, per thread.
    pub hz: u32,
    /// Threads sampled.
    pub threads: u32,
    /// Samples inside task polls (the groups' samples add up to this).
    pub busy_samples: u64,
    /// Samples on CPU outside any task poll.
    pub outside_polls: u64,
    /// The samples the threads' time off CPU would have had.
    pub idle_samples: u64,
    /// Samples dropped for want of room.
    pub missed: u64,
    /// Time the sampled threads spent taking the samples, in nanoseconds.
    pub sampling_ns: u64,
    /// Per task group and scope, most samples first.
    pub groups: Vec<ProfileGroupRow>,
}

/// The samples of one task group (and scope) of a profile.
#[derive(Debug, Serialize)]
pub struct ProfileGroupRow {
    /// The task group polled.
    pub task_group: String,
    /// The scope polled inside it (an axum route through the tower layer), if any.
    pub scope: Option<String>,
    /// Where the scope, or else the task group, was created or spawned.
    pub location: String,
    /// Its samples.
    pub samples: u64,
    /// Its share of all busy samples, in percent.
    pub percent: f64,
    /// Its [`PROFILE_FUNCTIONS`] functions with most total samples.
    pub functions: Vec<FunctionRow>,
}

/// One function's samples in a group.
#[derive(Debug, Serialize)]
pub struct FunctionRow {
    /// The function.
    pub function: String,
    /// Its source file, when known.
    pub file: Option<String>,
    /// Samples where it was the innermost frame.
    pub self_samples: u64,
    /// Samples with it anywhere on the stack.
    pub total_samples: u64,
    /// `self_samples` as a percent of the group's samples.
    pub self_percent: f64,
    /// `total_samples` as a percent of the group's samples.
    pub total_percent: f64,
}

fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        return 0.0;
    }
    (1000.0 * part as f64 / whole as f64).round() / 10.0
}

/// The report's view of a profile.
pub fn profile_row(profile: &taskscope_wire::Profile) -> ProfileRow {
    let keys: std::collections::BTreeSet<(u32, Option<u32>)> =
        profile.stacks.iter().map(|s| (s.group, s.scope)).collect();
    let group = |i: u32| profile.groups.get(i as usize);
    let mut groups: Vec<ProfileGroupRow> = keys
        .into_iter()
        .map(|(g, scope)| {
            let keep = |s: &taskscope_wire::ProfileStack| s.group == g && s.scope == scope;
            let samples = profile.samples(keep);
            let functions = profile
                .functions(keep)
                .into_iter()
                .take(PROFILE_FUNCTIONS)
                .map(|f| FunctionRow {
                    self_percent: percent(f.self_samples, samples),
                    total_percent: percent(f.total_samples, samples),
                    function: f.function,
                    file: f.file,
                    self_samples: f.self_samples,
                    total_samples: f.total_samples,
                })
                .collect();
            let located = scope.and_then(group).or(group(g));
            ProfileGroupRow {
                task_group: group(g).map_or("?".into(), |x| x.name.clone()),
                scope: scope.and_then(group).map(|x| x.name.clone()),
                location: located.map_or(String::new(), |x| x.location.clone()),
                samples,
                percent: percent(samples, profile.busy),
                functions,
            }
        })
        .collect();
    groups.sort_by(|a, b| {
        b.samples
            .cmp(&a.samples)
            .then_with(|| (&a.task_group, &a.scope).cmp(&(&b.task_group, &b.scope)))
    });
    ProfileRow {
        hz: profile.hz,
        threads: profile.threads,
        busy_samples: profile.busy,
        outside_polls: profile.outside_polls,
        idle_samples: profile.idle,
        missed: profile.missed,
        sampling_ns: profile.sampling_ns,
        groups,
    }
}

/// A warning and, for a `blocked_worker` sampled while blocked, its stacks.
#[derive(Debug, Serialize)]
pub struct WarningRow<'a> {
    /// The warning's fields.
    #[serde(flatten)]
    pub warning: &'a Warning,
    /// How to fix what the warning found.
    pub hint: &'static str,
    /// Stacks sampled while the worker was blocked, most frequent first (empty when none).
    pub stacks: &'a [StackSample],
    /// `deadlock`, `long_wait`: where each of its tasks waited (empty when not traced).
    pub chains: Vec<ChainRow<'a>>,
}

/// Where one task of a warning waited: its chains of `async fn`s, from a task dump.
#[derive(Debug, Serialize)]
pub struct ChainRow<'a> {
    /// The task.
    pub task: u64,
    /// Its name.
    pub name: &'a str,
    /// One chain per future it waited on, innermost frame first.
    pub chains: &'a [taskscope_wire::Chain],
}

/// The observed process.
#[derive(Debug, Serialize)]
pub struct Process<'a> {
    /// Executable name.
    pub name: &'a str,
    /// Process id.
    pub pid: u32,
    /// Start of observation, ms since the Unix epoch.
    pub start_unix_ms: u64,
}

/// A report row: fields in the schema's order, serialised as a JSON object.
#[derive(Debug, Default)]
pub struct Row(Vec<(Cow<'static, str>, Field)>);

/// A value of a row: a model field as it is, or a histogram's percentiles (kept as a struct, so
/// that they print in their own order: count, p50 … max).
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum Field {
    /// A value from the model or computed for the report.
    Value(serde_json::Value),
    /// A histogram's percentiles.
    Percentiles(Percentiles),
}

impl Row {
    /// The row's value of `field`, if it has one.
    pub fn get(&self, field: &str) -> Option<&Field> {
        self.0
            .iter()
            .find(|(name, _)| name == field)
            .map(|(_, v)| v)
    }

    fn push(&mut self, field: impl Into<Cow<'static, str>>, value: impl Serialize) {
        let value = serde_json::to_value(value).unwrap_or(serde_json::Value::Null);
        self.0.push((field.into(), Field::Value(value)));
    }

    fn push_percentiles(&mut self, field: &'static str, h: &Histogram) {
        self.0
            .push((field.into(), Field::Percentiles(h.percentiles())));
    }

    /// Histogram field `field` as a base64 compressed HdrHistogram V2 serialisation,
    /// `<field>_hdr`.
    fn push_hdr(&mut self, field: &str, h: &Histogram) {
        self.push(format!("{field}_hdr"), crate::hdr::encode(h));
    }

    /// A model entity's `fields`, in that order, each histogram of `histograms` among them as
    /// its percentiles; then each histogram as a base64 compressed HdrHistogram V2
    /// serialisation, `<name>_hdr`. The model is the one description of what an entity holds;
    /// the row picks what the `taskscope.report/v1` schema promises.
    fn of(
        entity: &impl Serialize,
        fields: &[&'static str],
        histograms: &[(&'static str, &Histogram)],
    ) -> Row {
        let model = serde_json::to_value(entity).unwrap_or_default();
        let mut row = Row::default();
        for &field in fields {
            match histograms.iter().find(|(name, _)| *name == field) {
                Some((_, h)) => row.push_percentiles(field, h),
                None => row.push(field, model.get(field).cloned().unwrap_or_default()),
            }
        }
        for (name, h) in histograms {
            row.push_hdr(name, h);
        }
        row
    }
}

impl Serialize for Row {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (field, value) in &self.0 {
            map.serialize_entry(field, value)?;
        }
        map.end()
    }
}

/// A task group's row: what the `TaskGroup` of the model holds.
const TASK_FIELDS: &[&str] = &[
    "name",
    "location",
    "kind",
    "spawned",
    "alive",
    "completed",
    "cancelled",
    "panicked",
    "polls",
    "busy_ns",
    "poll_ns",
    "scheduled_ns",
];
/// A lock's row (its live holder and waiters stay out: a report is of a run).
const LOCK_FIELDS: &[&str] = &[
    "name",
    "kind",
    "location",
    "acquisitions",
    "contended",
    "max_waiters",
    "wait_ns",
    "hold_ns",
];
/// A semaphore's row.
const SEMAPHORE_FIELDS: &[&str] = &[
    "name",
    "location",
    "permits",
    "acquisitions",
    "max_waiters",
    "saturated_ns",
    "wait_ns",
];

/// Builds the report of a snapshot.
pub fn report(snapshot: &Snapshot) -> Report<'_> {
    Report {
        schema: SCHEMA,
        process: Process {
            name: &snapshot.process.name,
            pid: snapshot.process.pid,
            start_unix_ms: snapshot.process.start_unix_ms,
        },
        duration_s: snapshot.taken_at_ms as f64 / 1000.0,
        dropped_events: snapshot.dropped_events,
        tasks: snapshot
            .task_groups
            .iter()
            .map(|g| {
                let histograms = [("poll_ns", &g.poll_ns), ("scheduled_ns", &g.scheduled_ns)];
                Row::of(g, TASK_FIELDS, &histograms)
            })
            .collect(),
        scopes: snapshot
            .scopes
            .iter()
            .map(|s| {
                let mut row = Row::of(s, &["name", "location"], &[]);
                row.push("ended", s.latency_ns.count());
                row.push_percentiles("latency_ns", &s.latency_ns);
                row.push_hdr("latency_ns", &s.latency_ns);
                let responses: BTreeMap<_, _> = s.responses.classes().into_iter().collect();
                row.push("responses", responses);
                row
            })
            .collect(),
        locks: snapshot
            .locks
            .iter()
            .map(|l| {
                Row::of(
                    l,
                    LOCK_FIELDS,
                    &[("wait_ns", &l.wait_ns), ("hold_ns", &l.hold_ns)],
                )
            })
            .collect(),
        semaphores: snapshot
            .semaphores
            .iter()
            .map(|s| Row::of(s, SEMAPHORE_FIELDS, &[("wait_ns", &s.wait_ns)]))
            .collect(),
        warnings: snapshot
            .warnings
            .iter()
            .map(|w| WarningRow {
                warning: w,
                hint: w.hint(),
                stacks: snapshot
                    .warning_stacks
                    .get(&w.id)
                    .map_or(&[][..], Vec::as_slice),
                chains: snapshot
                    .warning_chains
                    .get(&w.id)
                    .into_iter()
                    .flatten()
                    .filter_map(|t| match &t.trace {
                        taskscope_wire::Trace::Suspended { chains } => Some(ChainRow {
                            task: t.id,
                            name: &t.name,
                            chains,
                        }),
                        _ => None,
                    })
                    .collect(),
            })
            .collect(),
        profile: snapshot.profile.as_ref().map(profile_row),
    }
}

/// The report as pretty-printed JSON.
pub fn render(snapshot: &Snapshot) -> String {
    serde_json::to_string_pretty(&report(snapshot)).expect("a report always serialises")
}
