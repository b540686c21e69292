//! Histograms in the compressed HdrHistogram V2 serialisation (V2 + DEFLATE, base64), inside the
//! JSON report and the interval logs: the form `Histogram.decodeFromCompressedByteBuffer` (Java),
//! `HdrHistogram.decode` (Python's `hdrhistogram`) and every `HistogramLogReader` take, so other
//! HDR tools can read and merge them.

use base64::Engine;
use hdrhistogram::serialization::{Serializer, V2DeflateSerializer};
use taskscope_wire::{bucket_range, Histogram};

/// The histogram as an `hdrhistogram` one (3 significant digits; each log-linear bucket recorded
/// at its midpoint, within the 1.6 % of taskscope's buckets).
pub fn to_hdr(h: &Histogram) -> hdrhistogram::Histogram<u64> {
    let mut hdr = hdrhistogram::Histogram::<u64>::new(3).expect("3 significant digits are valid");
    for &(index, count) in &h.buckets {
        let (low, high) = bucket_range(index as usize);
        let mid = low + (high - low - 1) / 2;
        // The top bucket's values are known not to exceed the exact maximum.
        let value = if (low..mid).contains(&h.max) {
            h.max
        } else {
            mid
        };
        // Auto-resizing histograms accept any u64; a failure would only drop that bucket.
        let _ = hdr.record_n(value, count);
    }
    hdr
}

/// The compressed V2 serialisation's cookie (the first four bytes, big-endian).
pub const V2_COMPRESSED_COOKIE: u32 = 0x1c84_9314;

/// Base64 of the compressed V2 serialisation.
pub fn encode(h: &Histogram) -> String {
    let mut bytes = Vec::new();
    V2DeflateSerializer::new()
        .serialize(&to_hdr(h), &mut bytes)
        .expect("serialising into a Vec never fails");
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hdrhistogram::serialization::Deserializer;

    #[test]
    fn compressed_v2_round_trips_with_the_same_percentiles() {
        let mut h = Histogram::default();
        for v in (1..=5_000u64).map(|i| i * 997) {
            h.record(v);
        }
        let text = encode(&h);
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text)
            .unwrap();
        // The compressed form, which readers of other languages insist on.
        assert_eq!(
            u32::from_be_bytes(bytes[..4].try_into().unwrap()),
            V2_COMPRESSED_COOKIE
        );
        let back: hdrhistogram::Histogram<u64> =
            Deserializer::new().deserialize(&mut &bytes[..]).unwrap();
        assert_eq!(back.len(), 5_000);
        for q in [0.5, 0.9, 0.99] {
            let (ours, theirs) = (
                h.value_at_quantile(q) as f64,
                back.value_at_quantile(q) as f64,
            );
            assert!(
                (ours - theirs).abs() / ours < 0.03,
                "q{q}: {ours} vs {theirs}"
            );
        }
    }
}
