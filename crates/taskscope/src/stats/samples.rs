//! How a task's poll and scheduled-delay samples are held: 20-bit samples buffered in the hot
//! line (`stats::task::Hot`), the log in `Bins` they move to, and the histograms the log is
//! binned into.

use std::ptr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::*};

use super::prefetch::prefetch;
use super::task_histogram::TaskHistogram;

/// Polls buffered in the hot line before they move to the log.
pub(crate) const SAMPLES: u8 = 12;
/// Bits of one sample, in the buffer and in the log.
pub(crate) const SAMPLE_BITS: u32 = 20;
/// Samples per word of the buffer.
pub(crate) const PER_WORD: u8 = 3;
pub(crate) const SAMPLE_WORDS: usize = (SAMPLES / PER_WORD) as usize;
/// A sample holds bucket indexes below this (10 bits each): polls and scheduled delays under
/// about 67 s. Longer ones are binned at once, off the fast path.
pub(crate) const SAMPLE_BUCKETS: usize = 1024;

/// Samples the log in `Bins` holds: five moves of the hot line's buffer.
pub(crate) const LOG: usize = 5 * SAMPLES as usize;
const _: () = assert!(LOG <= u8::MAX as usize, "Hot::log_len is a u8");

/// A task's histograms, and a log of samples waiting to be binned into them.
///
/// Binning touches a histogram line per distinct bucket (and the lines of the chunk pointers):
/// done at every flush of the hot line's buffer, those misses were a fifth of all cycles on the
/// current-thread overhead workload (`perf report`). So a flush appends its samples to the log —
/// one or two lines written in sequence — and only every fifth flush bins the log. (How many
/// entries are in use is `Hot::log_len`.)
#[repr(C, align(64))]
pub(crate) struct Bins {
    /// Samples as the hot line buffered them (`decode_sample`).
    pub(crate) log: [AtomicU32; LOG],
    /// Polls binned into the histograms.
    pub(crate) polls: AtomicU64,
    pub(crate) poll_ns: TaskHistogram,
    pub(crate) scheduled_ns: TaskHistogram,
}

impl Default for Bins {
    fn default() -> Self {
        Bins {
            log: [const { AtomicU32::new(0) }; LOG],
            polls: AtomicU64::new(0),
            poll_ns: TaskHistogram::default(),
            scheduled_ns: TaskHistogram::default(),
        }
    }
}

impl std::fmt::Debug for Bins {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bins")
            .field("polls", &self.polls)
            .finish_non_exhaustive()
    }
}

impl Bins {
    /// Bins the first `len` logged samples into the histograms; the caller then empties the
    /// log. Poller only.
    ///
    /// In two passes: the first finds every sample's buckets and prefetches their lines, the
    /// second counts. The lines are cold (a task's buckets are touched once per 60 of its polls),
    /// and prefetching them together lets their misses overlap instead of queueing behind each
    /// bucket's chunk-pointer load.
    #[cold]
    #[inline(never)]
    pub(crate) fn bin_log(&self, len: usize) {
        let len = len.min(LOG);
        // (bucket, its index) for the poll and, if any, the scheduled delay of each sample.
        type Found = (*const AtomicU32, usize);
        let mut buckets: [(Found, Found); LOG] = [((ptr::null(), 0), (ptr::null(), 0)); LOG];
        for (entry, found) in self.log[..len].iter().zip(&mut buckets) {
            let (poll, scheduled) = decode_sample(entry.load(Relaxed));
            let poll_bucket = self.poll_ns.bucket_at(poll);
            prefetch(poll_bucket);
            found.0 = (poll_bucket, poll);
            if let Some(index) = scheduled {
                let bucket = self.scheduled_ns.bucket_at(index);
                prefetch(bucket);
                found.1 = (bucket, index);
            }
        }
        for &((poll, poll_index), (scheduled, scheduled_index)) in &buckets[..len] {
            // SAFETY: bucket addresses from `bucket_at` of histograms owned by `self`; chunks
            // are freed only when the histograms drop.
            unsafe {
                self.poll_ns.bump(&*poll, poll_index);
                if let Some(bucket) = scheduled.as_ref() {
                    self.scheduled_ns.bump(bucket, scheduled_index);
                }
            }
        }
        self.polls
            .store(self.polls.load(Relaxed) + len as u64, Relaxed);
    }
}

/// A sample, buffered or logged (bits above `SAMPLE_BITS` are ignored): poll bucket (low 10
/// bits), scheduled-delay bucket + 1 (next 10; 0: no wake).
pub(crate) fn decode_sample(entry: u32) -> (usize, Option<usize>) {
    let scheduled = (entry as usize >> 10) & (SAMPLE_BUCKETS - 1);
    (
        entry as usize & (SAMPLE_BUCKETS - 1),
        (scheduled != 0).then(|| scheduled - 1),
    )
}

/// Calls `f(poll bucket, scheduled bucket)` for the first `count` buffered samples.
pub(crate) fn for_each_sample(
    words: &[AtomicU64; SAMPLE_WORDS],
    count: u8,
    mut f: impl FnMut(usize, Option<usize>),
) {
    for i in 0..count.min(SAMPLES) {
        let word = words[usize::from(i / PER_WORD)].load(Relaxed);
        let (poll, scheduled) =
            decode_sample((word >> (SAMPLE_BITS * u32::from(i % PER_WORD))) as u32);
        f(poll, scheduled);
    }
}
