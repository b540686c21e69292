//! A fixed-shape, lock-free log-linear histogram (see `taskscope_wire::bucket_index`), for many
//! writers: locks' wait and hold times, the runtimes' event-loop lag. (A task's histograms have
//! one writer and are `stats::task_histogram::TaskHistogram`.)
//!
//! Buckets come in chunks of 32 (one per power of two) that are allocated the first time a value
//! lands in them, not the ≈ 10 KiB a dense array over the whole range would cost per recorder.
//! After those first allocations, recording never allocates.

use std::ptr;
use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering::*};

use taskscope_wire::{bucket_index, Histogram, CHUNKS, SUB_BUCKETS};

struct Chunk([AtomicU64; SUB_BUCKETS]);

/// A plain dense histogram, for summing many recorders cheaply (one index per bucket).
#[derive(Debug)]
pub(crate) struct DenseHistogram {
    pub(crate) counts: Box<[u64]>,
    pub(crate) sum: u64,
    pub(crate) max: u64,
}

impl Default for DenseHistogram {
    fn default() -> Self {
        DenseHistogram {
            counts: vec![0; taskscope_wire::BUCKETS].into_boxed_slice(),
            sum: 0,
            max: 0,
        }
    }
}

impl DenseHistogram {
    /// Adds everything into a wire histogram.
    pub(crate) fn merge_into(&self, h: &mut Histogram) {
        let dense = Histogram::from_dense(&self.counts, self.max, self.sum);
        h.merge(&dense);
    }
}

/// Recorder of nanosecond values.
///
/// `sum` and `max` come first so that they share a cache line with the pointers of the chunks
/// that short polls land in: a poll touches as few lines as possible (with a thousand tasks the
/// per-poll cost is mostly cache misses, measured with `perf annotate`).
#[repr(C)]
pub(crate) struct AtomicHistogram {
    sum: AtomicU64,
    max: AtomicU64,
    chunks: [AtomicPtr<Chunk>; CHUNKS],
}

impl std::fmt::Debug for AtomicHistogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AtomicHistogram")
            .field("count", &self.count())
            .finish()
    }
}

impl Default for AtomicHistogram {
    fn default() -> Self {
        AtomicHistogram {
            chunks: [const { AtomicPtr::new(ptr::null_mut()) }; CHUNKS],
            max: AtomicU64::new(0),
            sum: AtomicU64::new(0),
        }
    }
}

impl AtomicHistogram {
    /// A histogram with every chunk allocated up front (≈ 10 KiB): for long-lived recorders such
    /// as a runtime's lag probe, which then never allocate.
    pub(crate) fn preallocated() -> Self {
        let h = AtomicHistogram::default();
        for slot in &h.chunks {
            h.alloc_chunk(slot);
        }
        h
    }

    #[inline(always)]
    fn bucket(&self, value: u64) -> &AtomicU64 {
        self.bucket_at(bucket_index(value))
    }

    #[inline(always)]
    fn bucket_at(&self, index: usize) -> &AtomicU64 {
        let slot = &self.chunks[index / SUB_BUCKETS];
        let chunk = slot.load(Acquire);
        let chunk = if chunk.is_null() {
            self.alloc_chunk(slot)
        } else {
            chunk
        };
        // SAFETY: a non-null chunk pointer was published with Release by `alloc_chunk` and is
        // only freed in `drop`, which has `&mut self`.
        unsafe { &(*chunk).0[index % SUB_BUCKETS] }
    }

    #[cold]
    #[inline(never)]
    fn alloc_chunk(&self, slot: &AtomicPtr<Chunk>) -> *mut Chunk {
        let fresh = Box::into_raw(Box::new(Chunk([const { AtomicU64::new(0) }; SUB_BUCKETS])));
        match slot.compare_exchange(ptr::null_mut(), fresh, AcqRel, Acquire) {
            Ok(_) => fresh,
            Err(existing) => {
                // SAFETY: `fresh` was never shared.
                drop(unsafe { Box::from_raw(fresh) });
                existing
            }
        }
    }

    /// Records `n` occurrences of a value when the caller is the only writer (e.g. the holder of
    /// an exclusive lock recording that lock's times): loads and stores instead of locked
    /// read-modify-writes.
    #[inline]
    pub(crate) fn record_exclusive_n(&self, value: u64, n: u64) {
        let bucket = self.bucket(value);
        bucket.store(bucket.load(Relaxed).wrapping_add(n), Relaxed);
        let sum = self
            .sum
            .load(Relaxed)
            .saturating_add(value.saturating_mul(n));
        self.sum.store(sum, Relaxed);
        if value > self.max.load(Relaxed) {
            self.max.store(value, Relaxed);
        }
    }

    /// Records a value from any thread.
    #[inline]
    pub(crate) fn record(&self, value: u64) {
        self.record_n(value, 1);
    }

    /// Records `n` occurrences of a value from any thread.
    #[inline]
    pub(crate) fn record_n(&self, value: u64, n: u64) {
        self.bucket(value).fetch_add(n, Relaxed);
        self.sum.fetch_add(value.saturating_mul(n), Relaxed);
        if value > self.max.load(Relaxed) {
            self.max.fetch_max(value, Relaxed);
        }
    }

    /// The sum of the values recorded so far.
    pub(crate) fn sum(&self) -> u64 {
        self.sum.load(Relaxed)
    }

    /// Number of values recorded so far.
    pub(crate) fn count(&self) -> u64 {
        let mut n = 0u64;
        self.for_each_bucket(|_, c| n = n.wrapping_add(c));
        n
    }

    fn for_each_bucket(&self, mut f: impl FnMut(usize, u64)) {
        for (c, slot) in self.chunks.iter().enumerate() {
            let chunk = slot.load(Acquire);
            if chunk.is_null() {
                continue;
            }
            // SAFETY: see `bucket`.
            let chunk = unsafe { &*chunk };
            for (s, bucket) in chunk.0.iter().enumerate() {
                let n = bucket.load(Relaxed);
                if n > 0 {
                    f(c * SUB_BUCKETS + s, n);
                }
            }
        }
    }

    /// A copy in the wire format. Concurrent writers may land between bucket reads: the copy is
    /// a consistent-enough sample, as every monitoring read of live counters is.
    pub(crate) fn to_wire(&self) -> Histogram {
        let mut buckets = Vec::new();
        self.for_each_bucket(|i, n| buckets.push((i as u32, n)));
        Histogram {
            buckets,
            max: self.max.load(Relaxed),
            sum: self.sum.load(Relaxed),
        }
    }
}

impl Drop for AtomicHistogram {
    fn drop(&mut self) {
        for slot in &mut self.chunks {
            let chunk = *slot.get_mut();
            if !chunk.is_null() {
                // SAFETY: allocated by `alloc_chunk` with `Box`, and we have exclusive access.
                drop(unsafe { Box::from_raw(chunk) });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn concurrent_records_are_all_counted() {
        let h = Arc::new(AtomicHistogram::default());
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let h = h.clone();
                std::thread::spawn(move || {
                    for i in 0..50_000u64 {
                        h.record((i * 37 + t) % 5_000_000);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(h.count(), 200_000);
        assert_eq!(h.to_wire().count(), 200_000);
    }

    #[test]
    fn records_match_wire_histogram() {
        let h = AtomicHistogram::default();
        let mut expected = Histogram::default();
        for v in [0u64, 5, 31, 32, 1_000, 1_001, 250_000, 10_000_000_000] {
            h.record(v);
            expected.record(v);
        }
        assert_eq!(h.to_wire(), expected);
    }
}
