//! Log-linear bucketing shared by the lock-free recorders and the serialised histograms.
//!
//! Values (nanoseconds) below 32 get a bucket each; above, every power of two is split into 32
//! equal sub-buckets, so a bucket is at most 1/32 of its lower bound wide: reporting the midpoint
//! keeps the relative error under 1.6 % (DESIGN.md §2 asks for ≤ 3 %). Buckets are grouped in
//! chunks of 32 (one chunk per power of two) so recorders can allocate only the chunks they use.

use serde::{Deserialize, Serialize};

/// Sub-buckets per power of two (and values per chunk).
pub const SUB_BUCKETS: usize = 32;
const SUB_BITS: u32 = 5;
/// Highest power of two kept apart; larger values (≥ 2^45 ns, about 9.8 hours) share the last bucket.
const MAX_MSB: u32 = 44;
/// Number of chunks: chunk 0 holds 0..32 exactly, chunk `c ≥ 1` holds `[2^(c+4), 2^(c+5))`.
pub const CHUNKS: usize = (MAX_MSB - SUB_BITS + 2) as usize;
/// Total number of buckets.
pub const BUCKETS: usize = CHUNKS * SUB_BUCKETS;

/// The bucket a value falls in, as a flat index `chunk * 32 + sub_bucket`.
#[inline(always)]
pub fn bucket_index(value: u64) -> usize {
    if value < SUB_BUCKETS as u64 {
        return value as usize;
    }
    let value = value.min((1u64 << (MAX_MSB + 1)) - 1);
    let msb = 63 - value.leading_zeros();
    let chunk = (msb - SUB_BITS + 1) as usize;
    let sub = ((value >> (msb - SUB_BITS)) as usize) & (SUB_BUCKETS - 1);
    chunk * SUB_BUCKETS + sub
}

/// The values `[low, high)` that bucket `index` holds.
pub fn bucket_range(index: usize) -> (u64, u64) {
    let chunk = index / SUB_BUCKETS;
    let sub = (index % SUB_BUCKETS) as u64;
    if chunk == 0 {
        return (sub, sub + 1);
    }
    let msb = chunk as u32 + SUB_BITS - 1;
    let width = 1u64 << (msb - SUB_BITS);
    let low = (1u64 << msb) + sub * width;
    (low, low + width)
}

/// The value that stands for a bucket: its midpoint.
fn bucket_value(index: usize) -> u64 {
    let (low, high) = bucket_range(index);
    low + (high - low - 1) / 2
}

/// A serialisable histogram of nanosecond values in taskscope's log-linear buckets.
///
/// Only non-empty buckets are stored, as `(bucket index, count)` pairs sorted by index, so a
/// histogram of a task whose polls all take about the same time costs a few bytes. `max` and
/// `sum` are exact.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Histogram {
    /// `(bucket index, count)` for every non-empty bucket, sorted by index.
    pub buckets: Vec<(u32, u64)>,
    /// The largest value recorded (exact).
    pub max: u64,
    /// The sum of all values recorded (exact, saturating).
    pub sum: u64,
}

/// A duration in nanoseconds as people read it: `850 ns`, `12.3 µs`, `4.5 ms`, `1.20 s`.
pub fn fmt_ns(ns: u64) -> String {
    match ns {
        0..=999 => format!("{ns} ns"),
        1_000..=999_999 => format!("{:.1} µs", ns as f64 / 1e3),
        1_000_000..=999_999_999 => format!("{:.1} ms", ns as f64 / 1e6),
        _ => format!("{:.2} s", ns as f64 / 1e9),
    }
}

/// The summary every report prints for a histogram: count and the usual percentiles, in ns.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Percentiles {
    /// Number of values.
    pub count: u64,
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Largest value (exact).
    pub max: u64,
}

impl Histogram {
    /// Builds a histogram from dense bucket counts (index = bucket), plus the exact max and sum.
    pub fn from_dense(counts: &[u64], max: u64, sum: u64) -> Self {
        let buckets = counts
            .iter()
            .enumerate()
            .filter(|(_, &c)| c > 0)
            .map(|(i, &c)| (i as u32, c))
            .collect();
        Histogram { buckets, max, sum }
    }

    /// Adds `count` values to the bucket with this index (sum and max are left to the caller).
    pub fn add_to_bucket(&mut self, index: u32, count: u64) {
        if count == 0 {
            return;
        }
        match self.buckets.binary_search_by_key(&index, |&(i, _)| i) {
            Ok(pos) => self.buckets[pos].1 = self.buckets[pos].1.saturating_add(count),
            Err(pos) => self.buckets.insert(pos, (index, count)),
        }
    }

    /// Records one value.
    pub fn record(&mut self, value: u64) {
        self.record_n(value, 1);
    }

    /// Records `count` occurrences of a value.
    pub fn record_n(&mut self, value: u64, count: u64) {
        if count == 0 {
            return;
        }
        let index = bucket_index(value) as u32;
        match self.buckets.binary_search_by_key(&index, |&(i, _)| i) {
            Ok(pos) => self.buckets[pos].1 = self.buckets[pos].1.saturating_add(count),
            Err(pos) => self.buckets.insert(pos, (index, count)),
        }
        self.max = self.max.max(value);
        self.sum = self.sum.saturating_add(value.saturating_mul(count));
    }

    /// Adds every value of `other` to this histogram.
    pub fn merge(&mut self, other: &Histogram) {
        let mut merged = Vec::with_capacity(self.buckets.len().max(other.buckets.len()));
        let (mut a, mut b) = (
            self.buckets.iter().peekable(),
            other.buckets.iter().peekable(),
        );
        loop {
            match (a.peek(), b.peek()) {
                (Some(&&(ia, ca)), Some(&&(ib, cb))) => {
                    if ia == ib {
                        merged.push((ia, ca.saturating_add(cb)));
                        a.next();
                        b.next();
                    } else if ia < ib {
                        merged.push((ia, ca));
                        a.next();
                    } else {
                        merged.push((ib, cb));
                        b.next();
                    }
                }
                (Some(&&x), None) => {
                    merged.push(x);
                    a.next();
                }
                (None, Some(&&x)) => {
                    merged.push(x);
                    b.next();
                }
                (None, None) => break,
            }
        }
        self.buckets = merged;
        self.max = self.max.max(other.max);
        self.sum = self.sum.saturating_add(other.sum);
    }

    /// Number of values recorded.
    pub fn count(&self) -> u64 {
        self.buckets
            .iter()
            .fold(0u64, |n, &(_, c)| n.saturating_add(c))
    }

    /// True when nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }

    /// Mean of the values, 0 when empty.
    pub fn mean(&self) -> u64 {
        self.sum.checked_div(self.count()).unwrap_or(0)
    }

    /// The value at quantile `q` (0.0..=1.0): the midpoint of the bucket holding the
    /// `ceil(q * count)`-th value, never above the exact maximum. 0 when empty.
    pub fn value_at_quantile(&self, q: f64) -> u64 {
        let total = self.count();
        if total == 0 {
            return 0;
        }
        let q = q.clamp(0.0, 1.0);
        let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0u64;
        for &(index, count) in &self.buckets {
            seen = seen.saturating_add(count);
            if seen >= rank {
                return bucket_value(index as usize).min(self.max);
            }
        }
        self.max
    }

    /// Count, p50, p90, p99, p99.9 and max.
    pub fn percentiles(&self) -> Percentiles {
        Percentiles {
            count: self.count(),
            p50: self.value_at_quantile(0.50),
            p90: self.value_at_quantile(0.90),
            p99: self.value_at_quantile(0.99),
            p999: self.value_at_quantile(0.999),
            max: self.max,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_every_value_once_and_in_order() {
        let mut expected_low = 0u64;
        for index in 0..BUCKETS {
            let (low, high) = bucket_range(index);
            assert_eq!(low, expected_low, "bucket {index} leaves a gap");
            assert!(high > low);
            assert_eq!(bucket_index(low), index);
            assert_eq!(bucket_index(high - 1), index);
            expected_low = high;
        }
        assert_eq!(bucket_index(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn relative_error_is_within_design_bound() {
        // DESIGN.md §2: ≤ 3 % relative error. Check many values across the range.
        let mut v = 1u64;
        while v < (1 << 44) {
            for probe in [v, v + v / 3, v + v / 2, v * 2 - 1] {
                let mut h = Histogram::default();
                h.record(probe);
                h.record(u64::MAX / 4); // keep max from clamping the estimate
                let est = h.value_at_quantile(0.5);
                let err = (est as f64 - probe as f64).abs() / probe as f64;
                assert!(
                    err <= 0.03,
                    "value {probe} estimated as {est} ({:.2}%)",
                    err * 100.0
                );
            }
            v = v * 3 / 2 + 1;
        }
    }

    #[test]
    fn percentiles_of_a_known_distribution() {
        let mut h = Histogram::default();
        for v in 1..=10_000u64 {
            h.record(v * 1_000);
        }
        let p = h.percentiles();
        assert_eq!(p.count, 10_000);
        assert_eq!(p.max, 10_000_000);
        for (got, want) in [
            (p.p50, 5_000_000.0),
            (p.p90, 9_000_000.0),
            (p.p99, 9_900_000.0),
        ] {
            assert!((got as f64 - want).abs() / want < 0.03, "{got} vs {want}");
        }
        assert_eq!(h.mean(), 5_000_500);
    }

    #[test]
    fn merge_equals_recording_everything_in_one() {
        let (mut a, mut b, mut all) = (
            Histogram::default(),
            Histogram::default(),
            Histogram::default(),
        );
        for v in 0..5_000u64 {
            let x = v * v % 1_000_003;
            if v % 3 == 0 {
                a.record(x)
            } else {
                b.record(x)
            }
            all.record(x);
        }
        a.merge(&b);
        assert_eq!(a, all);
    }
}
