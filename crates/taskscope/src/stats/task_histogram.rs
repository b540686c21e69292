//! A task's histograms: the log-linear buckets of `taskscope_wire::bucket_index` with 32-bit
//! counts, written by one thread (the task's poller).
//!
//! Like `AtomicHistogram`, buckets come in chunks of 32 (one per power of two) allocated the
//! first time a value lands in them; the counts are half as wide, so a chunk is 128 bytes (two
//! cache lines) instead of 256. A task whose polls and scheduled delays spread over ten powers of
//! two (measured: 100,000 tasks of 200 yields each averaged 4.7 chunks of polls and 6.0 of
//! delays) then costs ~1.4 KiB of buckets instead of ~2.7, and binning touches half the lines.
//! A bucket about to pass `u32::MAX` carries into a 64-bit array allocated for the purpose: one
//! task polled a million times a second, every poll in the same bucket, gets there after 72
//! minutes.

use std::ptr;
use std::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, AtomicU8, Ordering::*};

use taskscope_wire::{bucket_range, Histogram, BUCKETS, CHUNKS, SUB_BUCKETS};

use super::histogram::DenseHistogram;

struct Chunk([AtomicU32; SUB_BUCKETS]);

/// Carried counts: 2^32 per carry, by bucket.
struct Carries([AtomicU64; BUCKETS]);

/// Chunks a histogram finds through its small table; more spill into a full one.
const NEAR: usize = 8;
/// In `octaves`: the chunk is in the full table.
const FAR: u8 = u8::MAX;

/// One task's histogram. Sum and max are the caller's (exact ones live in the task's hot line;
/// scheduled delays take them from the buckets' lower bounds).
///
/// A table of 41 chunk pointers would be 328 bytes of a 128-byte-per-chunk histogram that uses
/// five or six chunks: chunks are found through a byte per power of two instead, pointing into
/// eight slots, and only a histogram that reaches a ninth power of two gets a full table.
pub(crate) struct TaskHistogram {
    /// Per power of two: 0 (no chunk), slot + 1 in `near`, or `FAR` (in `far`).
    octaves: [AtomicU8; CHUNKS],
    /// Slots of `near` in use (written by the writer only).
    used: AtomicU8,
    near: [AtomicPtr<Chunk>; NEAR],
    far: AtomicPtr<[AtomicPtr<Chunk>; CHUNKS]>,
    carries: AtomicPtr<Carries>,
}

impl Default for TaskHistogram {
    fn default() -> Self {
        TaskHistogram {
            octaves: [const { AtomicU8::new(0) }; CHUNKS],
            used: AtomicU8::new(0),
            near: [const { AtomicPtr::new(ptr::null_mut()) }; NEAR],
            far: AtomicPtr::new(ptr::null_mut()),
            carries: AtomicPtr::new(ptr::null_mut()),
        }
    }
}

impl std::fmt::Debug for TaskHistogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut count = 0u64;
        self.for_each_bucket(|_, n| count += n);
        f.debug_struct("TaskHistogram")
            .field("count", &count)
            .finish()
    }
}

impl TaskHistogram {
    /// The counter of bucket `index`, allocating its chunk on first use. Writer only.
    #[inline(always)]
    pub(crate) fn bucket_at(&self, index: usize) -> &AtomicU32 {
        let octave = index / SUB_BUCKETS;
        let chunk = match self.octaves[octave].load(Relaxed) {
            0 => self.new_chunk(octave),
            FAR => self.far_chunk(octave),
            slot => self.near[usize::from(slot - 1)].load(Relaxed),
        };
        // SAFETY: chunk pointers are published (with Release) before the octave points to them,
        // and freed only in `drop`, which has `&mut self`.
        unsafe { &(*chunk).0[index % SUB_BUCKETS] }
    }

    /// Allocates the chunk of a power of two and publishes it. Writer only.
    #[cold]
    #[inline(never)]
    fn new_chunk(&self, octave: usize) -> *mut Chunk {
        let chunk = Box::into_raw(Box::new(Chunk([const { AtomicU32::new(0) }; SUB_BUCKETS])));
        let used = self.used.load(Relaxed);
        if usize::from(used) < NEAR {
            self.near[usize::from(used)].store(chunk, Release);
            self.used.store(used + 1, Relaxed);
            // Release: a reader that sees the slot number sees the slot's pointer.
            self.octaves[octave].store(used + 1, Release);
        } else {
            let mut far = self.far.load(Relaxed);
            if far.is_null() {
                far = Box::into_raw(Box::new(
                    [const { AtomicPtr::new(ptr::null_mut()) }; CHUNKS],
                ));
                self.far.store(far, Release);
            }
            // SAFETY: `far` is published above and freed only in `drop`.
            unsafe { &(*far)[octave] }.store(chunk, Release);
            self.octaves[octave].store(FAR, Release);
        }
        chunk
    }

    /// The chunk of a power of two kept in the full table.
    fn far_chunk(&self, octave: usize) -> *mut Chunk {
        // SAFETY: an octave is `FAR` only once `far` was published (the Acquire load of the
        // octave orders this one); freed only in `drop`.
        unsafe { self.far.load(Acquire).as_ref() }
            .map_or(ptr::null_mut(), |far| far[octave].load(Acquire))
    }

    /// The chunk of a power of two, for readers.
    fn chunk(&self, octave: usize) -> Option<&Chunk> {
        let chunk = match self.octaves[octave].load(Acquire) {
            0 => return None,
            FAR => self.far_chunk(octave),
            slot => self.near[usize::from(slot - 1)].load(Acquire),
        };
        // SAFETY: see `bucket_at`.
        unsafe { chunk.as_ref() }
    }

    /// Asks for the lines of the chunk table (readers, ahead of reading the buckets).
    pub(crate) fn prefetch_header(&self) {
        super::prefetch::prefetch(self.octaves.as_ptr().cast());
        super::prefetch::prefetch(self.near.as_ptr().cast());
    }

    /// Asks for both lines of every chunk in the small table (readers; the header must be
    /// cached, see `prefetch_header`).
    pub(crate) fn prefetch_chunks(&self) {
        let used = usize::from(self.used.load(Acquire)).min(NEAR);
        for slot in &self.near[..used] {
            let chunk = slot.load(Acquire);
            if !chunk.is_null() {
                // SAFETY: only the addresses are computed (a prefetch never faults).
                let buckets = unsafe { ptr::addr_of!((*chunk).0) }.cast::<AtomicU32>();
                super::prefetch::prefetch(buckets);
                super::prefetch::prefetch(buckets.wrapping_add(SUB_BUCKETS / 2));
            }
        }
    }

    /// Adds one to `bucket`, which `bucket_at(index)` returned. Writer only.
    #[inline(always)]
    pub(crate) fn bump(&self, bucket: &AtomicU32, index: usize) {
        let count = bucket.load(Relaxed);
        if count == u32::MAX {
            self.carry(index);
            bucket.store(0, Relaxed);
        } else {
            bucket.store(count + 1, Relaxed);
        }
    }

    /// Adds one to bucket `index`. Writer only.
    pub(crate) fn bump_index(&self, index: usize) {
        self.bump(self.bucket_at(index), index);
    }

    /// Moves a full 32-bit bucket (and the value that overflows it) into the carries.
    #[cold]
    #[inline(never)]
    fn carry(&self, index: usize) {
        let mut carries = self.carries.load(Acquire);
        if carries.is_null() {
            carries = Box::into_raw(Box::new(Carries([const { AtomicU64::new(0) }; BUCKETS])));
            self.carries.store(carries, Release);
        }
        // SAFETY: as for chunks.
        let carried = unsafe { &(*carries).0[index] };
        carried.store(carried.load(Relaxed) + (1 << 32), Relaxed);
    }

    /// Calls `f(bucket, count)` for every non-empty bucket. Readers may run beside the writer: a
    /// read is a consistent-enough sample, as every monitoring read of live counters is.
    fn for_each_bucket(&self, mut f: impl FnMut(usize, u64)) {
        // SAFETY: as for chunks.
        let carries = unsafe { self.carries.load(Acquire).as_ref() };
        for c in 0..CHUNKS {
            let Some(chunk) = self.chunk(c) else {
                continue;
            };
            for (s, bucket) in chunk.0.iter().enumerate() {
                let index = c * SUB_BUCKETS + s;
                let n = u64::from(bucket.load(Relaxed))
                    + carries.map_or(0, |carries| carries.0[index].load(Relaxed));
                if n > 0 {
                    f(index, n);
                }
            }
        }
    }

    /// Adds every bucket into a wire histogram (sum and max untouched).
    pub(crate) fn merge_into_wire(&self, h: &mut Histogram) {
        self.for_each_bucket(|i, n| h.add_to_bucket(i as u32, n));
    }

    /// A copy in the wire format, with sum and max left at 0 for the caller.
    pub(crate) fn to_wire(&self) -> Histogram {
        let mut h = Histogram::default();
        self.merge_into_wire(&mut h);
        h
    }

    /// Adds every bucket into a wire histogram, each bucket's lower bound standing for its values
    /// in sum and max (for values known only by their buckets, such as scheduled delays).
    pub(crate) fn merge_into_wire_at_lower_bounds(&self, h: &mut Histogram) {
        self.for_each_bucket(|i, n| {
            h.add_to_bucket(i as u32, n);
            let low = bucket_range(i).0;
            h.sum = h.sum.saturating_add(low.saturating_mul(n));
            h.max = h.max.max(low);
        });
    }

    /// Adds every bucket into a dense histogram (sum and max untouched).
    ///
    /// Straight over each allocated chunk, with no test per bucket: these run for every live
    /// task when the stream computes task groups, and a branch per bucket (most are empty) cost
    /// more than the adds (`perf`, `examples/stream_cost.rs`).
    pub(crate) fn add_into(&self, h: &mut DenseHistogram) {
        self.add_chunks(h, |_, _| {});
    }

    /// Like `add_into`, with lower bounds for sum and max (see `merge_into_wire_at_lower_bounds`).
    pub(crate) fn add_into_at_lower_bounds(&self, h: &mut DenseHistogram) {
        let (mut sum, mut max) = (h.sum, h.max);
        self.add_chunks(h, |n, low| {
            sum = sum.saturating_add(low.saturating_mul(n));
            if n > 0 {
                max = max.max(low);
            }
        });
        (h.sum, h.max) = (sum, max);
    }

    /// Adds every chunk's counts into `h`, calling `per_bucket(count, lower bound)` for
    /// every bucket of an allocated chunk, empty ones included.
    #[inline(always)]
    fn add_chunks(&self, h: &mut DenseHistogram, mut per_bucket: impl FnMut(u64, u64)) {
        // SAFETY: as for chunks.
        let carries = unsafe { self.carries.load(Acquire).as_ref() };
        for c in 0..CHUNKS {
            let Some(chunk) = self.chunk(c) else {
                continue;
            };
            let base = c * SUB_BUCKETS;
            let counts = &mut h.counts[base..base + SUB_BUCKETS];
            let (first_low, _) = bucket_range(base);
            let width = bucket_range(base + 1).0 - first_low;
            for (s, (count, bucket)) in counts.iter_mut().zip(&chunk.0).enumerate() {
                let mut n = u64::from(bucket.load(Relaxed));
                if let Some(carries) = carries {
                    n += carries.0[base + s].load(Relaxed);
                }
                *count += n;
                per_bucket(n, first_low + s as u64 * width);
            }
        }
    }
}

impl Drop for TaskHistogram {
    fn drop(&mut self) {
        let free = |chunk: *mut Chunk| {
            if !chunk.is_null() {
                // SAFETY: allocated with `Box` in `new_chunk`; `&mut self` is exclusive, and
                // each chunk is in one slot only.
                drop(unsafe { Box::from_raw(chunk) });
            }
        };
        for slot in &mut self.near {
            free(*slot.get_mut());
        }
        let far = *self.far.get_mut();
        if !far.is_null() {
            // SAFETY: allocated with `Box` in `new_chunk`.
            let far = unsafe { Box::from_raw(far) };
            for slot in far.iter() {
                free(slot.load(Relaxed));
            }
        }
        let carries = *self.carries.get_mut();
        if !carries.is_null() {
            // SAFETY: allocated with `Box` in `carry`.
            drop(unsafe { Box::from_raw(carries) });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use taskscope_wire::bucket_index;

    #[test]
    fn counts_match_a_wire_histogram_and_carry_past_32_bits() {
        let h = TaskHistogram::default();
        let mut expected = Histogram::default();
        for v in [
            0u64,
            5,
            31,
            32,
            1_000,
            1_001,
            65_000,
            3_000_000_000,
            1 << 50,
        ] {
            h.bump_index(bucket_index(v));
            expected.record(v);
        }
        assert_eq!(h.to_wire().buckets, expected.buckets);
        // A bucket at the edge of 32 bits carries instead of wrapping.
        let i = bucket_index(1_000);
        h.bucket_at(i).store(u32::MAX - 1, Relaxed);
        h.bump_index(i);
        h.bump_index(i);
        h.bump_index(i);
        let got = h.to_wire();
        let n = got.buckets.iter().find(|b| b.0 as usize == i).unwrap().1;
        assert_eq!(n, u64::from(u32::MAX) + 2);
    }

    #[test]
    fn every_power_of_two_past_the_small_table_is_kept() {
        let h = TaskHistogram::default();
        let mut expected = Histogram::default();
        for shift in 0..50 {
            for v in [1u64 << shift, (1u64 << shift) + (1u64 << shift) / 3] {
                h.bump_index(bucket_index(v));
                expected.record(v);
            }
        }
        assert!(
            !h.far.load(Relaxed).is_null(),
            "past eight powers of two: the full table"
        );
        assert_eq!(h.to_wire().buckets, expected.buckets);
    }
}
