//! console-api's protobuf values in taskscope's terms: timestamps, durations, locations and
//! HdrHistograms.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use console_api as api;
use taskscope_wire::Histogram;

pub(super) fn to_time(ts: &prost_types::Timestamp) -> SystemTime {
    let secs = ts.seconds.max(0) as u64;
    let nanos = ts.nanos.clamp(0, 999_999_999) as u32;
    UNIX_EPOCH + Duration::new(secs, nanos)
}

pub(super) fn opt_time(ts: &Option<prost_types::Timestamp>) -> Option<SystemTime> {
    ts.as_ref().map(to_time)
}

pub(super) fn since(later: SystemTime, earlier: SystemTime) -> Duration {
    later.duration_since(earlier).unwrap_or_default()
}

pub(super) fn location(loc: &Option<api::Location>) -> String {
    let Some(loc) = loc else {
        return "<unknown>".into();
    };
    let mut out = loc.file.clone().unwrap_or_else(|| "<unknown>".into());
    if let Some(line) = loc.line {
        out.push_str(&format!(":{line}"));
        if let Some(col) = loc.column {
            out.push_str(&format!(":{col}"));
        }
    }
    out
}

pub(super) fn duration_ns(d: prost_types::Duration) -> u64 {
    (d.seconds.max(0) as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(d.nanos.max(0) as u64)
}

pub(super) struct Decoded {
    pub(super) histogram: Histogram,
    /// `(value, count)` of the values within the histogram's range.
    pub(super) in_range: Vec<(u64, u64)>,
    /// Values beyond the range (recorded by console-subscriber as the range's maximum).
    pub(super) outliers: u64,
    /// The range's maximum.
    pub(super) range_max: u64,
    /// The largest value beyond it.
    pub(super) highest_outlier: Option<u64>,
}

/// console-subscriber's histograms are HdrHistogram V2 in nanoseconds. A value above the
/// histogram's maximum (`max_value`) is recorded *as* that maximum and also counted in
/// `high_outliers`, with the largest in `highest_outlier`: those counts move to the largest
/// outlier here, so the maximum and the top percentiles are not capped at the range.
pub(super) fn decode(h: &api::tasks::DurationHistogram) -> Option<Decoded> {
    let hdr: hdrhistogram::Histogram<u64> = hdrhistogram::serialization::Deserializer::new()
        .deserialize(&mut h.raw_histogram.as_slice())
        .ok()?;
    let mut in_range: Vec<(u64, u64)> = hdr
        .iter_recorded()
        .map(|v| (v.value_iterated_to(), v.count_at_value()))
        .collect();
    let mut outliers = 0;
    if h.high_outliers > 0 && h.max_value > 0 {
        // Take them out of the buckets at the range's maximum.
        let mut left = h.high_outliers;
        for (value, count) in in_range.iter_mut().rev() {
            if left == 0 || !hdr.equivalent(*value, h.max_value) {
                break;
            }
            let take = left.min(*count);
            *count -= take;
            left -= take;
            outliers += take;
        }
        in_range.retain(|&(_, count)| count > 0);
    }
    let mut histogram = Histogram::default();
    for &(value, count) in &in_range {
        histogram.record_n(value, count);
    }
    if outliers > 0 {
        histogram.record_n(h.highest_outlier.unwrap_or(h.max_value), outliers);
    }
    Some(Decoded {
        histogram,
        in_range,
        outliers,
        range_max: h.max_value,
        highest_outlier: h.highest_outlier,
    })
}
