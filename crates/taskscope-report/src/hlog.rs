//! The histograms as an HdrHistogram interval log (`.hlog`): one interval per histogram, tagged
//! `poll:<group>`, `scheduled:<group>`, `lock_wait:<lock>`, `lock_hold:<lock>` and
//! `semaphore_wait:<semaphore>` and `scope_latency:<scope>`, spanning the observed time. HdrHistogram's tools
//! (`HistogramLogProcessor`, `hdrhistogram` readers in any language) merge logs of many
//! processes by tag.

use std::time::{Duration, UNIX_EPOCH};

use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};
use hdrhistogram::serialization::V2DeflateSerializer;
use taskscope_wire::{Histogram, Snapshot};

use crate::hdr::to_hdr;

/// The interval log text.
pub fn render(snapshot: &Snapshot) -> String {
    let start = UNIX_EPOCH + Duration::from_millis(snapshot.process.start_unix_ms);
    let duration = Duration::from_millis(snapshot.taken_at_ms);
    let mut entries: Vec<(String, &Histogram)> = Vec::new();
    for g in &snapshot.task_groups {
        entries.push((format!("poll:{}", g.name), &g.poll_ns));
        entries.push((format!("scheduled:{}", g.name), &g.scheduled_ns));
    }
    for s in &snapshot.scopes {
        entries.push((format!("scope_latency:{}", s.name), &s.latency_ns));
    }
    for l in &snapshot.locks {
        let side = match l.kind.as_str() {
            "rwlock_read" => ":read",
            "rwlock_write" => ":write",
            _ => "",
        };
        entries.push((format!("lock_wait:{}{side}", l.name), &l.wait_ns));
        entries.push((format!("lock_hold:{}{side}", l.name), &l.hold_ns));
    }
    for s in &snapshot.semaphores {
        entries.push((format!("semaphore_wait:{}", s.name), &s.wait_ns));
    }

    let mut out = Vec::new();
    let mut serializer = V2DeflateSerializer::new();
    let mut writer = IntervalLogWriterBuilder::new()
        .add_comment(&format!("[{LOG_FORMAT}]"))
        .add_comment(&format!(
            "taskscope histograms (nanoseconds) of {} (pid {})",
            snapshot.process.name, snapshot.process.pid
        ))
        .with_start_time(start)
        .with_base_time(start)
        .begin_log_with(&mut out, &mut serializer)
        .expect("writing into a Vec never fails");
    for (tag, h) in entries.iter().filter(|(_, h)| h.count() > 0) {
        let tag = tag_text(tag);
        writer
            .write_histogram(&to_hdr(h), Duration::ZERO, duration, Tag::new(&tag))
            .expect("writing into a Vec never fails");
    }
    let log = String::from_utf8(out).expect("interval logs are text");
    // The legend line, after the header, as HdrHistogram's own log writers put it.
    let header_end = log
        .lines()
        .take_while(|line| line.starts_with('#'))
        .map(|line| line.len() + 1)
        .sum::<usize>();
    format!("{}{LEGEND}\n{}", &log[..header_end], &log[header_end..])
}

/// The format line HdrHistogram's `HistogramLogWriter` starts a log with.
const LOG_FORMAT: &str = "Histogram log format version 1.3";
/// The column legend of an interval log.
const LEGEND: &str =
    "\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\",\"Interval_Compressed_Histogram\"";

/// Tags may not hold commas, spaces or line breaks: those become `_`.
fn tag_text(tag: &str) -> String {
    tag.chars()
        .map(|c| {
            if matches!(c, ',' | ' ' | '\r' | '\n') {
                '_'
            } else {
                c
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
    use hdrhistogram::serialization::Deserializer;
    use taskscope_wire::TaskGroup;

    #[test]
    fn histograms_read_back_by_tag() {
        let mut s = Snapshot::default();
        s.process.start_unix_ms = 1_700_000_000_000;
        s.taken_at_ms = 4_000;
        let mut poll_ns = Histogram::default();
        for v in 1..=1_000u64 {
            poll_ns.record(v * 1_000);
        }
        s.task_groups.push(TaskGroup {
            name: "accept loop, v2".into(),
            poll_ns,
            ..Default::default()
        });
        let text = render(&s);
        assert!(
            text.starts_with("#[Histogram log format version 1.3]\n"),
            "{text}"
        );
        let lines: Vec<&str> = text.lines().collect();
        let legend = lines.iter().position(|l| *l == LEGEND).expect("the legend");
        assert!(lines[..legend].iter().all(|l| l.starts_with('#')), "{text}");
        assert!(
            lines[legend + 1..].iter().all(|l| l.starts_with("Tag=")),
            "{text}"
        );
        let mut found = 0;
        for entry in IntervalLogIterator::new(text.as_bytes()) {
            if let Ok(LogEntry::Interval(h)) = entry {
                assert_eq!(h.tag().map(|t| t.as_str()), Some("poll:accept_loop__v2"));
                assert_eq!(h.duration(), Duration::from_secs(4));
                let bytes = base64::Engine::decode(
                    &base64::engine::general_purpose::STANDARD,
                    h.encoded_histogram(),
                )
                .unwrap();
                assert_eq!(
                    u32::from_be_bytes(bytes[..4].try_into().unwrap()),
                    crate::hdr::V2_COMPRESSED_COOKIE
                );
                let back: hdrhistogram::Histogram<u64> =
                    Deserializer::new().deserialize(&mut &bytes[..]).unwrap();
                assert_eq!(back.len(), 1_000);
                let p50 = back.value_at_quantile(0.5) as f64;
                assert!((p50 - 500_000.0).abs() / 500_000.0 < 0.03, "{p50}");
                found += 1;
            }
        }
        assert_eq!(found, 1, "empty histograms are left out:\n{text}");
    }
}
