//! Per-task statistics: one `Arc<TaskStats>` per instrumented task, shared by the task's poll
//! wrapper (the writer), its waker proxy and the collector (the reader).

use std::borrow::Cow;
use std::panic::Location;
use std::ptr;
use std::sync::atomic::{AtomicPtr, AtomicU16, AtomicU32, AtomicU64, AtomicU8, Ordering::*};
use std::sync::Mutex;

use taskscope_wire::{bucket_index, bucket_range, Histogram, Outcome, TaskKind, TaskState};

use super::histogram::DenseHistogram;
use super::samples::*;
pub(crate) use super::state::*;
use super::task_locks::TaskLocks;
pub(crate) use super::task_locks::HELD_LOCKS;
use super::wake::WakeRef;

/// The one cache line every poll writes.
///
/// Tasks migrate between workers, so every line a poll writes is a cross-core miss on the next
/// poll elsewhere (measured with `perf annotate`: the histogram bucket increments dominated the
/// wrapper's cost). So a poll writes only this line: the state, the exact busy time and maximum,
/// and the poll's histogram buckets appended to a small buffer (twelve samples of 20 bits).
/// Every twelfth poll moves the buffer to the log in `Bins`, which every fifth move bins into
/// the histograms. The line also holds where the log is and how full, so that the poll before a
/// move can ask for the log's lines without a miss of its own (`prefetch_for_flush`). (The wake
/// stamp is on the task's wake line, `stats::wake`, which the poll reads and the wakers write.)
#[derive(Debug, Default)]
#[repr(C, align(64))]
pub(crate) struct Hot {
    pub(crate) state: AtomicU8,
    pub(crate) outcome: AtomicU8,
    /// Samples in `samples` (0..=12).
    pending: AtomicU8,
    /// Entries of the log in `bins` in use (0..=60).
    log_len: AtomicU8,
    /// Untimed polls, modulo 2^32 (`TaskStats::untimed_high` holds the rest).
    untimed: AtomicU32,
    busy_ns: AtomicU64,
    /// The longest poll so far (exact).
    pub(crate) max_poll_ns: AtomicU64,
    /// The histograms and the log, allocated by the first move of the buffer (the twelfth
    /// poll): a short task's samples never leave this line, so it costs no histogram memory at
    /// all (a spawn storm of a million one-poll tasks, `examples/app_overhead.rs`). Null until
    /// then; written by the poller only.
    bins: AtomicPtr<Bins>,
    /// Twelve samples of 20 bits, three a word: poll bucket (low 10 bits), scheduled-delay
    /// bucket + 1 (high 10; 0 when the poll was not preceded by a wake).
    samples: [AtomicU64; SAMPLE_WORDS],
}

const _: () = assert!(std::mem::size_of::<Hot>() == 64, "the hot line is one line");

/// Statistics of one task. Only the poller writes them (one poll at a time), with plain loads
/// and stores, except the wake line, which wakers write.
#[derive(Debug)]
pub(crate) struct TaskStats {
    pub(crate) hot: Hot,
    /// The wake stamp and the waker proxy's count (see `stats::wake`).
    pub(crate) wake: WakeRef,
    pub(crate) id: u64,
    pub(crate) name: Cow<'static, str>,
    pub(crate) location: &'static Location<'static>,
    pub(crate) parent: u64,
    pub(crate) kind: TaskKind,
    /// Spawn time, clock ticks.
    pub(crate) created: u64,
    pub(crate) first_poll: AtomicU64,
    pub(crate) self_wakes: AtomicU64,
    /// Untimed polls / 2^32 (see `Hot::untimed`).
    untimed_high: AtomicU64,
    /// Poll time measured for a reason other than sampling — the first poll, and untimed polls
    /// the watchdog found blocked — which `busy_ns` adds as it is instead of scaling it.
    exact_busy_ns: AtomicU64,
    /// How many of those were timed polls (the first poll) and untimed ones (blocked).
    exact_timed: AtomicU32,
    exact_untimed: AtomicU32,
    pub(crate) ended: AtomicU64,
    pub(crate) panic_message: Mutex<Option<String>>,
    /// The locks it holds and the last one it only read (see `stats::task_locks`).
    pub(crate) locks: TaskLocks,
    /// A scope's response status (HTTP, set by the tower layer; 0: none).
    pub(crate) response: AtomicU16,
    /// What became of its `JoinHandle`.
    pub(crate) join: super::join::JoinState,
}

use super::prefetch::prefetch;

impl Drop for TaskStats {
    fn drop(&mut self) {
        let bins = *self.hot.bins.get_mut();
        if !bins.is_null() {
            // SAFETY: made by `Box::into_raw` in `flush`, freed only here (`&mut self`).
            drop(unsafe { Box::from_raw(bins) });
        }
    }
}

impl TaskStats {
    pub(crate) fn new(
        id: u64,
        name: Cow<'static, str>,
        location: &'static Location<'static>,
        parent: u64,
        kind: TaskKind,
        created: u64,
    ) -> Self {
        TaskStats {
            hot: Hot::default(),
            wake: WakeRef::new(),
            id,
            name,
            location,
            parent,
            kind,
            created,
            first_poll: AtomicU64::new(0),
            self_wakes: AtomicU64::new(0),
            untimed_high: AtomicU64::new(0),
            exact_busy_ns: AtomicU64::new(0),
            exact_timed: AtomicU32::new(0),
            exact_untimed: AtomicU32::new(0),
            ended: AtomicU64::new(0),
            panic_message: Mutex::new(None),
            locks: TaskLocks::new(),
            response: AtomicU16::new(0),
            join: Default::default(),
        }
    }

    /// Whether these statistics can be reused for a new task: nothing else refers to them or to
    /// their wake line (`Arc::get_mut` on the caller's side checks the former).
    pub(crate) fn reusable(&self) -> bool {
        self.wake.is_unique()
    }

    /// Makes these statistics (and their wake line, which must be unreferenced: `reusable`) a
    /// new task's, as `new` would, keeping their allocations.
    pub(crate) fn reuse(
        &mut self,
        id: u64,
        name: Cow<'static, str>,
        location: &'static Location<'static>,
        parent: u64,
        kind: TaskKind,
        created: u64,
    ) {
        // Every field, by name: a field added later must be reset here too.
        let TaskStats {
            hot,
            wake,
            id: old_id,
            name: old_name,
            location: old_location,
            parent: old_parent,
            kind: old_kind,
            created: old_created,
            first_poll,
            self_wakes,
            untimed_high,
            exact_busy_ns,
            exact_timed,
            exact_untimed,
            ended,
            panic_message,
            locks,
            response,
            join,
        } = self;
        let bins = std::mem::replace(hot.bins.get_mut(), ptr::null_mut());
        if !bins.is_null() {
            // SAFETY: made by `Box::into_raw` in `bins_or_new`; `&mut self` is exclusive.
            drop(unsafe { Box::from_raw(bins) });
        }
        *hot = Hot::default();
        wake.reset_unique();
        (*old_id, *old_name, *old_location) = (id, name, location);
        (*old_parent, *old_kind, *old_created) = (parent, kind, created);
        *first_poll.get_mut() = 0;
        *self_wakes.get_mut() = 0;
        *untimed_high.get_mut() = 0;
        *exact_busy_ns.get_mut() = 0;
        *exact_timed.get_mut() = 0;
        *exact_untimed.get_mut() = 0;
        *ended.get_mut() = 0;
        *panic_message.get_mut().unwrap_or_else(|e| e.into_inner()) = None;
        locks.reset();
        *response.get_mut() = 0;
        join.reset();
    }

    /// Called at poll start, when the poller has the hot line anyway: if this poll's sample
    /// fills the buffer, asks for the log lines the move will write — and, if the log is full,
    /// for the poll histogram's chunk table that binning it reads first — so that they arrive
    /// while the task's future runs. (`perf annotate` of `flush`: two thirds of its samples were
    /// the loads of the `Bins` pointer and the log length, then on other lines.) Poller only.
    #[inline(always)]
    pub(crate) fn prefetch_for_flush(&self) {
        let hot = &self.hot;
        if hot.pending.load(Relaxed) + 1 != SAMPLES {
            return;
        }
        // SAFETY: as in `bins`; the poller is the only writer of the pointer.
        let Some(bins) = (unsafe { hot.bins.load(Relaxed).as_ref() }) else {
            return;
        };
        let len = usize::from(hot.log_len.load(Relaxed));
        if len + usize::from(SAMPLES) > LOG {
            bins.poll_ns.prefetch_header();
        } else {
            prefetch(&bins.log[len]);
            prefetch(&bins.log[len + usize::from(SAMPLES) - 1]);
        }
    }

    /// Records one poll and, if a wake preceded it, its scheduled delay. Poller only.
    #[inline(always)]
    pub(crate) fn record_poll(&self, poll_ns: u64, scheduled_ns: Option<u64>) {
        let hot = &self.hot;
        hot.busy_ns
            .store(hot.busy_ns.load(Relaxed).saturating_add(poll_ns), Relaxed);
        if poll_ns > hot.max_poll_ns.load(Relaxed) {
            hot.max_poll_ns.store(poll_ns, Relaxed);
        }
        let poll = bucket_index(poll_ns);
        let scheduled = scheduled_ns.map_or(0, |ns| bucket_index(ns) + 1);
        if poll >= SAMPLE_BUCKETS || scheduled >= SAMPLE_BUCKETS {
            return self.record_wide(poll, scheduled);
        }
        let sample = (poll | scheduled << 10) as u64;
        let pending = hot.pending.load(Relaxed);
        let word = &hot.samples[usize::from(pending / PER_WORD)];
        word.store(
            word.load(Relaxed) | sample << (SAMPLE_BITS * u32::from(pending % PER_WORD)),
            Relaxed,
        );
        if pending + 1 == SAMPLES {
            self.flush();
        } else {
            hot.pending.store(pending + 1, Release);
        }
    }

    /// Records a poll whose buckets do not fit a sample (over about 67 s) straight into the
    /// histograms; buffered and logged samples stay where they are (every reader adds them).
    /// `scheduled` is the bucket + 1, or 0.
    #[cold]
    #[inline(never)]
    fn record_wide(&self, poll: usize, scheduled: usize) {
        let bins = self.bins_or_new();
        bins.poll_ns.bump_index(poll);
        bins.polls.store(bins.polls.load(Relaxed) + 1, Relaxed);
        if scheduled != 0 {
            bins.scheduled_ns.bump_index(scheduled - 1);
        }
    }

    /// The histograms, allocated on first use. Poller only.
    fn bins_or_new(&self) -> &Bins {
        match self.bins() {
            Some(bins) => bins,
            None => {
                let fresh = Box::into_raw(Box::default());
                // Release: readers that see the pointer see an initialised `Bins`.
                self.hot.bins.store(fresh, Release);
                // SAFETY: just made; freed only when the stats drop.
                unsafe { &*fresh }
            }
        }
    }

    /// Moves the full buffer to the log (binning the log first if it does not fit), each
    /// sample as it is. Poller only.
    #[cold]
    #[inline(never)]
    fn flush(&self) {
        let hot = &self.hot;
        let bins = self.bins_or_new();
        let mut len = usize::from(hot.log_len.load(Relaxed));
        if len + usize::from(SAMPLES) > LOG {
            bins.bin_log(len);
            hot.log_len.store(0, Release);
            len = 0;
        }
        let log = &bins.log[len..len + usize::from(SAMPLES)];
        for (word, entries) in hot.samples.iter().zip(log.chunks_exact(PER_WORD.into())) {
            let word = word.load(Relaxed);
            for (i, entry) in entries.iter().enumerate() {
                entry.store(
                    (word >> (SAMPLE_BITS as usize * i)) as u32 & ((1 << SAMPLE_BITS) - 1),
                    Relaxed,
                );
            }
        }
        hot.log_len.store(len as u8 + SAMPLES, Release);
        for word in &hot.samples {
            word.store(0, Relaxed);
        }
        hot.pending.store(0, Release);
    }

    #[inline]
    fn bins(&self) -> Option<&Bins> {
        // SAFETY: non-null only once `flush` published an initialised `Bins`, which lives as
        // long as `self`.
        unsafe { self.hot.bins.load(Acquire).as_ref() }
    }

    /// Polls and wakes so far, read without walking the histograms.
    ///
    /// Wakes are those that made the task run: tokio polls a task only when it was woken, so
    /// every poll but the first had one (repeated wakes before a poll count once). The
    /// scheduled-delay histogram holds the stamped ones among them (see `task::waker`).
    pub(crate) fn counts(&self) -> (u64, u64) {
        let polls = self.timed_polls() + self.untimed_polls();
        (polls, polls.saturating_sub(1))
    }

    /// Timed polls so far.
    ///
    /// Every sample is one timed poll, so this adds the binned count and the two buffers'
    /// lengths, without decoding them: it runs for every task on every stream update. (While the
    /// poller moves samples between them a live task's count can be off by one buffer for an
    /// instant.)
    fn timed_polls(&self) -> u64 {
        let pending = u64::from(self.hot.pending.load(Acquire));
        pending
            + self.bins().map_or(0, |b| {
                let logged = u64::from(self.hot.log_len.load(Acquire)).min(LOG as u64);
                logged + b.polls.load(Relaxed)
            })
    }

    /// Polls that were not timed (see `task::instrumented`).
    fn untimed_polls(&self) -> u64 {
        loop {
            let high = self.untimed_high.load(Acquire);
            let low = self.hot.untimed.load(Acquire);
            if self.untimed_high.load(Acquire) == high {
                return high << 32 | u64::from(low);
            }
        }
    }

    /// Publishes the task's count of untimed polls, which its poll wrapper keeps. Stores only:
    /// the hot line is not read, so an untimed poll does not wait for it. Poller only.
    #[inline(always)]
    pub(crate) fn publish_untimed(&self, total: u64) {
        if total as u32 == 0 {
            self.carry_untimed(total);
        }
        self.hot.untimed.store(total as u32, Release);
    }

    #[cold]
    #[inline(never)]
    fn carry_untimed(&self, total: u64) {
        self.untimed_high.store(total >> 32, Release);
    }

    /// Notes poll time measured for a reason other than sampling: the first poll (`timed`: it is
    /// also among the timed polls' samples) or an untimed poll the watchdog found blocked (which
    /// this adds to the busy time and maximum). Poller only.
    #[cold]
    pub(crate) fn record_exact(&self, poll_ns: u64, timed: bool) {
        let add = |n: &AtomicU64, v: u64| n.store(n.load(Relaxed).saturating_add(v), Relaxed);
        add(&self.exact_busy_ns, poll_ns);
        let count = match timed {
            true => &self.exact_timed,
            false => {
                let hot = &self.hot;
                add(&hot.busy_ns, poll_ns);
                if poll_ns > hot.max_poll_ns.load(Relaxed) {
                    hot.max_poll_ns.store(poll_ns, Relaxed);
                }
                &self.exact_untimed
            }
        };
        count.store(count.load(Relaxed).saturating_add(1), Relaxed);
    }

    /// Busy time so far. Exact when every poll was timed. Otherwise the polls timed as samples
    /// (about one per sampling interval, chosen by time, whatever their durations) stand for
    /// every untimed poll too: their sum is scaled to all of them; the polls measured for
    /// another reason (the first, which is often a task's longest, and blocked ones) are added
    /// as they are.
    pub(crate) fn busy_ns(&self) -> u64 {
        let busy = self.hot.busy_ns.load(Relaxed);
        let untimed = self.untimed_polls();
        if untimed == 0 {
            return busy;
        }
        let exact = self.exact_busy_ns.load(Relaxed).min(busy);
        let samples = self
            .timed_polls()
            .saturating_sub(u64::from(self.exact_timed.load(Relaxed)));
        if samples == 0 {
            return busy;
        }
        let unmeasured = untimed.saturating_sub(u64::from(self.exact_untimed.load(Relaxed)));
        let scaled =
            u128::from(busy - exact) * u128::from(samples + unmeasured) / u128::from(samples);
        (u128::from(exact) + scaled).min(u64::MAX.into()) as u64
    }

    /// Changes whenever the task is polled, woken or finished: lets the stream send only the
    /// tasks that changed since its last update without reading their histograms.
    pub(crate) fn change_stamp(&self) -> (u64, u8, u8, bool) {
        let hot = &self.hot;
        (
            hot.busy_ns.load(Relaxed)
                ^ u64::from(hot.pending.load(Relaxed)) << 56
                ^ u64::from(hot.untimed.load(Relaxed)).rotate_left(24),
            hot.state.load(Relaxed),
            hot.outcome.load(Relaxed),
            self.woken(),
        )
    }

    /// Poll durations: binned ones plus those still buffered, with the exact sum and max.
    pub(crate) fn poll_histogram(&self) -> Histogram {
        let mut h = self
            .bins()
            .map_or_else(Histogram::default, |b| b.poll_ns.to_wire());
        self.add_pending(&mut h, |poll, _| Some(poll));
        h.sum = self.hot.busy_ns.load(Relaxed);
        h.max = self.hot.max_poll_ns.load(Relaxed);
        h
    }

    /// Scheduled delays of the stamped wakes (bucket precision for sum and max).
    pub(crate) fn scheduled_histogram(&self) -> Histogram {
        let mut h = Histogram::default();
        if let Some(bins) = self.bins() {
            bins.scheduled_ns.merge_into_wire_at_lower_bounds(&mut h);
        }
        self.add_pending(&mut h, |_, scheduled| scheduled);
        h
    }

    /// Adds a finished task's histograms into its group's, without building its wire form.
    pub(crate) fn merge_finished_into(&self, poll: &mut Histogram, scheduled: &mut Histogram) {
        debug_assert!(self.is_done());
        let poll_sum = poll.sum;
        if let Some(bins) = self.bins() {
            bins.poll_ns.merge_into_wire(poll);
            bins.scheduled_ns.merge_into_wire_at_lower_bounds(scheduled);
        }
        self.add_pending(poll, |poll, _| Some(poll));
        self.add_pending(scheduled, |_, scheduled| scheduled);
        // The poll histogram's exact sum and max live in the hot line.
        poll.sum = poll_sum.saturating_add(self.hot.busy_ns.load(Relaxed));
        poll.max = poll.max.max(self.hot.max_poll_ns.load(Relaxed));
    }

    /// Readers that go through many tasks (`LiveView::groups`) call these ahead of
    /// `add_into`, a few tasks ahead: a stage per cache-missing pointer, so that the lines of a
    /// task's statistics, histogram headers and buckets arrive in parallel instead of one miss
    /// after another (10,000 tasks' histograms are megabytes: every line is a miss).
    pub(crate) fn prefetch_stats(&self) {
        prefetch(ptr::addr_of!(self.hot).cast());
    }

    /// See `prefetch_stats`: the histograms' headers (the stats' line must be cached).
    pub(crate) fn prefetch_bins(&self) {
        if let Some(bins) = self.bins() {
            bins.poll_ns.prefetch_header();
            bins.scheduled_ns.prefetch_header();
        }
    }

    /// See `prefetch_stats`: the histograms' buckets (their headers must be cached).
    pub(crate) fn prefetch_buckets(&self) {
        if let Some(bins) = self.bins() {
            bins.poll_ns.prefetch_chunks();
            bins.scheduled_ns.prefetch_chunks();
        }
    }

    /// Adds this task's poll and scheduled-delay samples into group histograms.
    pub(crate) fn add_into(&self, poll: &mut DenseHistogram, scheduled: &mut DenseHistogram) {
        if let Some(bins) = self.bins() {
            bins.poll_ns.add_into(poll);
            bins.scheduled_ns.add_into_at_lower_bounds(scheduled);
        }
        self.for_each_unbinned(|p, s| {
            poll.counts[p] += 1;
            if let Some(i) = s {
                scheduled.counts[i] += 1;
                let value = bucket_range(i).0;
                scheduled.sum = scheduled.sum.saturating_add(value);
                scheduled.max = scheduled.max.max(value);
            }
        });
        // The poll histogram's exact sum and max live in the hot line (AtomicHistogram's stay 0).
        poll.sum = poll.sum.saturating_add(self.hot.busy_ns.load(Relaxed));
        poll.max = poll.max.max(self.hot.max_poll_ns.load(Relaxed));
    }

    fn add_pending(&self, h: &mut Histogram, pick: fn(usize, Option<usize>) -> Option<usize>) {
        self.for_each_unbinned(|poll, scheduled| {
            if let Some(index) = pick(poll, scheduled) {
                h.record(bucket_range(index).0);
            }
        });
    }

    /// Calls `f(poll bucket, scheduled bucket)` for every sample not binned yet: the log's,
    /// then the hot line's.
    fn for_each_unbinned(&self, mut f: impl FnMut(usize, Option<usize>)) {
        if let Some(bins) = self.bins() {
            let len = usize::from(self.hot.log_len.load(Acquire)).min(LOG);
            for entry in &bins.log[..len] {
                let (poll, scheduled) = decode_sample(entry.load(Relaxed));
                f(poll, scheduled);
            }
        }
        for_each_sample(&self.hot.samples, self.hot.pending.load(Acquire), &mut f);
    }

    /// Woken since its last poll started, as far as a stamp tells (wakes outside a stamping
    /// window leave none).
    fn woken(&self) -> bool {
        self.wake.cell().stamp().is_some()
    }

    /// Whether the task (or scope) was polled at least once.
    pub(crate) fn polled(&self) -> bool {
        self.first_poll.load(Relaxed) != 0
    }

    pub(crate) fn is_done(&self) -> bool {
        self.hot.state.load(Acquire) == STATE_DONE
    }

    /// Marks the task finished; the first outcome set wins (returns whether this one did).
    /// Called through `shared::finish`, which tells the collector, by the poller or by whoever
    /// drops the task's future (never during a poll). Buffered samples stay in the hot line,
    /// where every reader finds them: binning them here would allocate the histograms of every
    /// short task.
    pub(crate) fn finish(&self, outcome: u8, at: u64) -> bool {
        let hot = &self.hot;
        if hot
            .outcome
            .compare_exchange(OUTCOME_NONE, outcome, Relaxed, Relaxed)
            .is_ok()
        {
            self.ended.store(at, Relaxed);
            hot.state.store(STATE_DONE, Release);
            true
        } else {
            false
        }
    }

    pub(crate) fn state(&self) -> TaskState {
        match self.hot.state.load(Acquire) {
            STATE_RUNNING => TaskState::Running,
            STATE_DONE => TaskState::Done,
            _ if self.woken() => TaskState::Scheduled,
            STATE_SCHEDULED => TaskState::Scheduled,
            _ => TaskState::Idle,
        }
    }

    pub(crate) fn outcome(&self) -> Option<Outcome> {
        match self.hot.outcome.load(Acquire) {
            OUTCOME_COMPLETED => Some(Outcome::Completed),
            OUTCOME_CANCELLED => Some(Outcome::Cancelled),
            OUTCOME_PANICKED => Some(Outcome::Panicked),
            _ => None,
        }
    }

    pub(crate) fn location_string(&self) -> String {
        crate::base::location::format_location(self.location)
    }

    /// The given name, or the spawn location for an unnamed task (formatted only when read, so
    /// `spawn` does not pay for it).
    pub(crate) fn display_name(&self) -> Cow<'static, str> {
        if self.name.is_empty() {
            Cow::Owned(self.location_string())
        } else {
            self.name.clone()
        }
    }
}

#[cfg(test)]
#[path = "task_tests.rs"]
mod tests;
