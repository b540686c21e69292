//! Latency reports from a taskscope [`Snapshot`]: per task group, the
//! count and percentiles of poll time and scheduled delay, totals, and every warning.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod chains;
pub mod csv;
pub mod flame;
pub mod hdr;
pub mod hlog;
pub mod html;
pub mod json;
pub mod markdown;
pub mod merge;
pub mod perfetto;
pub mod pprof;
pub mod prometheus;
mod tables;

use std::path::Path;

use taskscope_wire::Snapshot;

/// A report format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `taskscope.report/v1` JSON ([`json`]).
    Json,
    /// Markdown, worst offenders first ([`markdown`]).
    Markdown,
    /// Self-contained HTML with SVG charts ([`html`]).
    Html,
    /// CSV, one row per task group, lock and semaphore ([`csv`]).
    Csv,
    /// Prometheus text exposition ([`prometheus`]).
    Prometheus,
    /// Chrome trace event JSON for Perfetto ([`perfetto`]).
    Perfetto,
    /// HdrHistogram interval log ([`hlog`]).
    Hlog,
    /// The CPU profile as a gzipped pprof protobuf ([`pprof`]; binary: see [`Format::bytes`]).
    Pprof,
    /// The CPU profile as folded stacks, for `inferno-flamegraph` or `flamegraph.pl`.
    Folded,
    /// The CPU profile as a flame graph, an SVG document ([`flame`]).
    FlameGraph,
}

/// What the format names and extensions are, for error messages.
pub const FORMATS: &str = "json, md, html, csv, prom, perfetto, hlog, pprof, folded or svg \
                           (by extension: .json, .md, .html, .csv, .prom, .trace.json or \
                           .perfetto.json, .hlog, .pb.gz or .pprof, .folded, .svg)";

impl Format {
    /// The format a `--format` name asks for.
    pub fn from_name(name: &str) -> Option<Format> {
        Some(match name {
            "json" => Format::Json,
            "md" | "markdown" => Format::Markdown,
            "html" | "htm" => Format::Html,
            "csv" => Format::Csv,
            "prom" | "prometheus" | "txt" => Format::Prometheus,
            "perfetto" | "trace" | "chrome-trace" => Format::Perfetto,
            "hlog" => Format::Hlog,
            "pprof" => Format::Pprof,
            "folded" => Format::Folded,
            "svg" | "flamegraph" => Format::FlameGraph,
            _ => return None,
        })
    }

    /// The format a file name asks for: `.trace.json` and `.perfetto.json` are traces, other
    /// `.json` files reports.
    pub fn from_path(path: &Path) -> Option<Format> {
        let name = path.file_name()?.to_str()?;
        if name.ends_with(".trace.json") || name.ends_with(".perfetto.json") {
            return Some(Format::Perfetto);
        }
        if name.ends_with(".pb.gz") {
            return Some(Format::Pprof);
        }
        Format::from_name(path.extension()?.to_str()?)
    }

    /// Whether the format needs a CPU profile ([`Snapshot::profile`]).
    pub fn needs_profile(self) -> bool {
        matches!(self, Format::Pprof | Format::Folded | Format::FlameGraph)
    }

    /// The snapshot in this format, as the bytes of its file.
    pub fn bytes(self, snapshot: &Snapshot) -> Vec<u8> {
        match self {
            Format::Pprof => pprof::render(snapshot),
            text => text.render(snapshot).into_bytes(),
        }
    }

    /// The snapshot in this text format.
    ///
    /// # Panics
    ///
    /// For [`Format::Pprof`], which is binary: [`Format::bytes`] writes every format.
    pub fn render(self, snapshot: &Snapshot) -> String {
        match self {
            Format::Json => json::render(snapshot),
            Format::Markdown => markdown::render(snapshot),
            Format::Html => html::render(snapshot),
            Format::Csv => csv::render(snapshot),
            Format::Prometheus => prometheus::render(snapshot),
            Format::Perfetto => perfetto::render(snapshot),
            Format::Hlog => hlog::render(snapshot),
            Format::Folded => snapshot
                .profile
                .as_ref()
                .map(|p| p.folded())
                .unwrap_or_default(),
            Format::FlameGraph => snapshot
                .profile
                .as_ref()
                .and_then(flame::svg)
                .unwrap_or_default(),
            Format::Pprof => panic!("pprof is binary: use Format::bytes"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tables::{polls_cell, SAMPLED_NOTE};

    #[test]
    fn formats_by_name_and_path() {
        assert_eq!(Format::from_path(Path::new("r.json")), Some(Format::Json));
        assert_eq!(
            Format::from_path(Path::new("a/r.trace.json")),
            Some(Format::Perfetto)
        );
        assert_eq!(
            Format::from_path(Path::new("r.perfetto.json")),
            Some(Format::Perfetto)
        );
        assert_eq!(Format::from_path(Path::new("r.md")), Some(Format::Markdown));
        assert_eq!(Format::from_path(Path::new("r.pdf")), None);
        assert_eq!(Format::from_path(Path::new("noext")), None);
        assert_eq!(Format::from_name("prom"), Some(Format::Prometheus));
        assert_eq!(
            Format::from_path(Path::new("cpu.pb.gz")),
            Some(Format::Pprof)
        );
        assert_eq!(
            Format::from_path(Path::new("cpu.pprof")),
            Some(Format::Pprof)
        );
        assert_eq!(
            Format::from_path(Path::new("cpu.folded")),
            Some(Format::Folded)
        );
    }

    /// A group whose polls were sampled says so in the Markdown and HTML tables; one whose
    /// polls were all timed does not.
    #[test]
    fn sampled_polls_are_marked_in_tables() {
        let mut busy = taskscope_wire::TaskGroup {
            name: "busy-loop".into(),
            polls: 37_534,
            ..Default::default()
        };
        busy.poll_ns.record_n(20_000, 3_824);
        let mut quiet = taskscope_wire::TaskGroup {
            name: "quiet".into(),
            polls: 12,
            ..Default::default()
        };
        quiet.poll_ns.record_n(5_000_000, 12);
        assert_eq!(polls_cell(&busy), "37534 (3824 timed)");
        assert_eq!(polls_cell(&quiet), "12");

        let mut snapshot = Snapshot {
            task_groups: vec![quiet.clone()],
            ..Default::default()
        };
        for format in [Format::Markdown, Format::Html] {
            assert!(!format.render(&snapshot).contains(SAMPLED_NOTE));
        }
        snapshot.task_groups.push(busy);
        for format in [Format::Markdown, Format::Html] {
            let out = format.render(&snapshot);
            assert!(out.contains("37534 (3824 timed)"), "{format:?}");
            assert!(out.contains(SAMPLED_NOTE), "{format:?}");
        }
    }
}
