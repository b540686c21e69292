//! The CPU profile as a gzipped pprof protobuf (`perftools.profiles.Profile`, the format of
//! `go tool pprof`, Grafana Pyroscope and speedscope): two sample types (`samples/count`,
//! `cpu/nanoseconds`), one location per frame, and each sample labelled with its `task_group`
//! and, inside a scope, its `scope`. CPU outside any poll and time off CPU are not samples of
//! it; the profile's comments count them.
//!
//! The messages are the fields of google/pprof's `proto/profile.proto` that taskscope writes,
//! declared with prost's derive (their tags are the proto's).

use std::collections::HashMap;
use std::io::Write;

use taskscope_wire::{Profile, Snapshot};

/// `perftools.profiles.Profile`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PprofProfile {
    /// What each value of a sample is.
    #[prost(message, repeated, tag = "1")]
    pub sample_type: Vec<ValueType>,
    /// The samples.
    #[prost(message, repeated, tag = "2")]
    pub sample: Vec<Sample>,
    /// The binaries (one: the profiled process).
    #[prost(message, repeated, tag = "3")]
    pub mapping: Vec<Mapping>,
    /// Code locations samples refer to.
    #[prost(message, repeated, tag = "4")]
    pub location: Vec<Location>,
    /// Functions locations refer to.
    #[prost(message, repeated, tag = "5")]
    pub function: Vec<Function>,
    /// Every string, by index; the first is "".
    #[prost(string, repeated, tag = "6")]
    pub string_table: Vec<String>,
    /// When the profile was started (ns since the Unix epoch).
    #[prost(int64, tag = "9")]
    pub time_nanos: i64,
    /// How long it covers.
    #[prost(int64, tag = "10")]
    pub duration_nanos: i64,
    /// What a sampling period is.
    #[prost(message, optional, tag = "11")]
    pub period_type: Option<ValueType>,
    /// The sampling period.
    #[prost(int64, tag = "12")]
    pub period: i64,
    /// Free-form notes (string table indices).
    #[prost(int64, repeated, tag = "13")]
    pub comment: Vec<i64>,
}

/// `perftools.profiles.ValueType`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ValueType {
    /// String index of the type (`cpu`).
    #[prost(int64, tag = "1")]
    pub r#type: i64,
    /// String index of the unit (`nanoseconds`).
    #[prost(int64, tag = "2")]
    pub unit: i64,
}

/// `perftools.profiles.Sample`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Sample {
    /// Locations, innermost first.
    #[prost(uint64, repeated, tag = "1")]
    pub location_id: Vec<u64>,
    /// One value per sample type.
    #[prost(int64, repeated, tag = "2")]
    pub value: Vec<i64>,
    /// Labels (task group, scope).
    #[prost(message, repeated, tag = "3")]
    pub label: Vec<Label>,
}

/// `perftools.profiles.Label`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Label {
    /// String index of the key.
    #[prost(int64, tag = "1")]
    pub key: i64,
    /// String index of the value.
    #[prost(int64, tag = "2")]
    pub str: i64,
}

/// `perftools.profiles.Mapping`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Mapping {
    /// Id (1).
    #[prost(uint64, tag = "1")]
    pub id: u64,
    /// String index of the binary's name.
    #[prost(int64, tag = "5")]
    pub filename: i64,
    /// Functions are resolved already.
    #[prost(bool, tag = "7")]
    pub has_functions: bool,
    /// File names are resolved already.
    #[prost(bool, tag = "8")]
    pub has_filenames: bool,
    /// Line numbers are resolved already.
    #[prost(bool, tag = "9")]
    pub has_line_numbers: bool,
    /// Inlined functions are resolved already (as locations of their own).
    #[prost(bool, tag = "10")]
    pub has_inline_frames: bool,
}

/// `perftools.profiles.Location`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Location {
    /// Id (the frame's index + 1).
    #[prost(uint64, tag = "1")]
    pub id: u64,
    /// The mapping (1).
    #[prost(uint64, tag = "2")]
    pub mapping_id: u64,
    /// The function and line.
    #[prost(message, repeated, tag = "4")]
    pub line: Vec<Line>,
}

/// `perftools.profiles.Line`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Line {
    /// The function's id.
    #[prost(uint64, tag = "1")]
    pub function_id: u64,
    /// The source line (0: unknown).
    #[prost(int64, tag = "2")]
    pub line: i64,
}

/// `perftools.profiles.Function`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Function {
    /// Id.
    #[prost(uint64, tag = "1")]
    pub id: u64,
    /// String index of the name.
    #[prost(int64, tag = "2")]
    pub name: i64,
    /// String index of the name as the binary has it.
    #[prost(int64, tag = "3")]
    pub system_name: i64,
    /// String index of the source file.
    #[prost(int64, tag = "4")]
    pub filename: i64,
}

/// The string table being built.
#[derive(Default)]
struct Strings {
    table: Vec<String>,
    index: HashMap<String, i64>,
}

impl Strings {
    fn new() -> Strings {
        let mut strings = Strings::default();
        strings.get("");
        strings
    }

    fn get(&mut self, s: &str) -> i64 {
        if let Some(&i) = self.index.get(s) {
            return i;
        }
        let i = self.table.len() as i64;
        self.table.push(s.to_string());
        self.index.insert(s.to_string(), i);
        i
    }
}

/// The snapshot's profile as a pprof message (empty, with its sample types, when it has none).
pub fn profile(snapshot: &Snapshot) -> PprofProfile {
    let empty = Profile::default();
    let profile = snapshot.profile.as_ref().unwrap_or(&empty);
    let mut strings = Strings::new();
    let period = 1_000_000_000 / i64::from(profile.hz.max(1));
    let cpu = ValueType {
        r#type: strings.get("cpu"),
        unit: strings.get("nanoseconds"),
    };
    let sample_type = vec![
        ValueType {
            r#type: strings.get("samples"),
            unit: strings.get("count"),
        },
        cpu.clone(),
    ];
    let mapping = vec![Mapping {
        id: 1,
        filename: strings.get(&snapshot.process.name),
        has_functions: true,
        has_filenames: true,
        has_line_numbers: true,
        has_inline_frames: true,
    }];
    let mut functions: HashMap<(&str, Option<&str>), u64> = HashMap::new();
    let mut function = Vec::new();
    let location = profile
        .frames
        .iter()
        .enumerate()
        .map(|(i, frame)| {
            let key = (frame.function.as_str(), frame.file.as_deref());
            let next = functions.len() as u64 + 1;
            let id = *functions.entry(key).or_insert_with(|| {
                let name = strings.get(&frame.function);
                function.push(Function {
                    id: next,
                    name,
                    system_name: name,
                    filename: strings.get(frame.file.as_deref().unwrap_or("")),
                });
                next
            });
            Location {
                id: i as u64 + 1,
                mapping_id: 1,
                line: vec![Line {
                    function_id: id,
                    line: i64::from(frame.line.unwrap_or(0)),
                }],
            }
        })
        .collect();
    let (group_key, scope_key) = (strings.get("task_group"), strings.get("scope"));
    let sample = profile
        .stacks
        .iter()
        .map(|stack| {
            let group = |i: u32| {
                profile
                    .groups
                    .get(i as usize)
                    .map_or("?", |g| g.name.as_str())
            };
            let mut label = vec![Label {
                key: group_key,
                str: strings.get(group(stack.group)),
            }];
            if let Some(scope) = stack.scope {
                label.push(Label {
                    key: scope_key,
                    str: strings.get(group(scope)),
                });
            }
            let samples = stack.samples as i64;
            Sample {
                location_id: stack.frames.iter().map(|&f| u64::from(f) + 1).collect(),
                value: vec![samples, samples.saturating_mul(period)],
                label,
            }
        })
        .collect();
    let comment = vec![
        strings.get(&format!(
            "taskscope: {} Hz of CPU time per thread, {} threads, {} samples in task polls, {} \
             outside polls, {} idle (off CPU), {} missed; sampling took {} ns of their CPU",
            profile.hz,
            profile.threads,
            profile.busy,
            profile.outside_polls,
            profile.idle,
            profile.missed,
            profile.sampling_ns
        )),
        strings.get(
            "samples are labelled task_group (and scope); outside polls and idle are left out",
        ),
    ];
    PprofProfile {
        sample_type,
        sample,
        mapping,
        location,
        function,
        string_table: strings.table,
        time_nanos: (snapshot.process.start_unix_ms as i64).saturating_mul(1_000_000),
        duration_nanos: (snapshot.taken_at_ms as i64).saturating_mul(1_000_000),
        period_type: Some(cpu),
        period,
        comment,
    }
}

/// The snapshot's profile, encoded and gzipped as pprof files are.
pub fn render(snapshot: &Snapshot) -> Vec<u8> {
    use prost::Message;
    let encoded = profile(snapshot).encode_to_vec();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&encoded).expect("writing to memory");
    gz.finish().expect("writing to memory")
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;
    use taskscope_wire::{ProfileGroup, ProfileStack, StackFrame};

    #[test]
    fn samples_keep_their_stack_labels_and_values_through_encoding() {
        let snapshot = Snapshot {
            profile: Some(Profile {
                hz: 100,
                busy: 3,
                groups: vec![ProfileGroup {
                    name: "worker".into(),
                    location: "src/main.rs:1:1".into(),
                }],
                frames: vec![StackFrame {
                    function: "app::checksum".into(),
                    file: Some("src/main.rs".into()),
                    line: Some(7),
                }],
                stacks: vec![ProfileStack {
                    group: 0,
                    scope: None,
                    frames: vec![0],
                    samples: 3,
                }],
                ..Profile::default()
            }),
            ..Snapshot::default()
        };
        let gz = render(&snapshot);
        let mut raw = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz[..]), &mut raw).unwrap();
        let p = PprofProfile::decode(&raw[..]).unwrap();
        assert_eq!(p.string_table[0], "");
        assert_eq!(p.sample[0].value, [3, 30_000_000]);
        let s = |i: i64| p.string_table[i as usize].as_str();
        assert_eq!(s(p.sample[0].label[0].str), "worker");
        let loc = &p.location[p.sample[0].location_id[0] as usize - 1];
        let f = &p.function[loc.line[0].function_id as usize - 1];
        assert_eq!((s(f.name), loc.line[0].line), ("app::checksum", 7));
    }
}
