//! The wake line of a task: one cache line, allocated at spawn, holding the reference count of
//! the task's waker proxy, the wake stamp and the runtime waker the proxy forwards to.
//!
//! Why a hand-counted line and not `Arc<WakeProxy>`: a wake cycle (tokio clones the waker during
//! the poll, wakes it later, the next poll reads the stamp) is the per-poll cost that matters most,
//! and with a thousand tasks every line it touches is a cache miss. `Arc` puts its counters in
//! front of the data, so a 64-byte-aligned payload starts a line after them and an unaligned one
//! straddles two lines half of the time. Here the count, the stamp and the forwarded waker share
//! one aligned line: the proxy's clone, its wake and the poller's read of the stamp all touch it
//! and nothing else of the task (`cargo run --release --example overhead`, callgrind: one D1
//! miss per poll fewer than the `Arc` proxy with the stamp in `TaskStats`).
//!
//! The counting follows `std::sync::Arc`: increments are `Relaxed` (a new reference is made from
//! an existing one, which keeps the cell alive), the decrement is `Release` and the one that
//! reaches zero fences with `Acquire` before freeing, so every use of the cell happens before its
//! release. Model-checked with loom (`loom_tests` below: freed exactly once, whichever thread
//! drops the last reference).

#[cfg(taskscope_loom)]
use loom::cell::UnsafeCell;
#[cfg(not(taskscope_loom))]
use std::cell::UnsafeCell;
use std::ptr::NonNull;
use std::task::Waker;

#[cfg(taskscope_loom)]
use loom::sync::atomic::{fence, AtomicBool, AtomicU64, AtomicUsize, Ordering::*};
#[cfg(not(taskscope_loom))]
use std::sync::atomic::{fence, AtomicBool, AtomicU64, AtomicUsize, Ordering::*};

/// Counts above this abort, as `Arc` does: a leak of that many wakers is a bug to stop, not to
/// wrap around into a use-after-free.
const MAX_REFS: usize = isize::MAX as usize;

#[repr(C, align(64))]
pub(crate) struct WakeCell {
    refs: AtomicUsize,
    /// The stamping window (see `task::waker`): [`UNARMED`] while closed; 0 while open and not
    /// woken yet; the ticks of the window's first wake once woken.
    pub(crate) woken_at: AtomicU64,
    /// Clock ticks at the end of the task's last timed poll (0: none yet), for task dumps: a
    /// task polled less often than once per sampling interval has every poll timed, a busier
    /// one a poll at least every interval. Written by the poller, on a line it writes anyway.
    last_poll_end: AtomicU64,
    /// Whether a task dump asked for a trace poll of this task (read by polls only while a
    /// dump runs: `task::trace`); while it is set, the dump may read `target`.
    trace_asked: AtomicBool,
    /// Whether the task's last poll let go of `target` or is letting go of it
    /// ([`WakeCell::release_target`]): a dump must not read it any more.
    released: AtomicBool,
    /// The runtime waker to forward to and the address of the task's `TaskStats` (its identity
    /// for the self-wake check). Written once, by the task's first poll, before the first proxy
    /// waker exists; read-only afterwards, until the last poll takes it when nothing else can
    /// read it (`release_target`) or the cell is reset for reuse.
    target: UnsafeCell<Option<(Waker, usize)>>,
}

/// `woken_at` of a cell whose stamping window is closed (never a clock reading: those are odd and
/// far below it).
const UNARMED: u64 = u64::MAX;

/// A counted reference to a [`WakeCell`].
pub(crate) struct WakeRef(NonNull<WakeCell>);

// SAFETY: the cell's shared state is atomics, plus `target`, which is written once before the
// cell is shared with other threads (see `set_target`) and only read afterwards; `Waker` is
// `Send + Sync`.
unsafe impl Send for WakeRef {}
// SAFETY: as above.
unsafe impl Sync for WakeRef {}

impl std::fmt::Debug for WakeRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WakeRef")
            .field("woken_at", &self.cell().woken_at.load(Relaxed))
            .finish()
    }
}

impl WakeRef {
    /// A fresh cell with one reference (this one).
    pub(crate) fn new() -> Self {
        let cell = Box::new(WakeCell {
            refs: AtomicUsize::new(1),
            woken_at: AtomicU64::new(UNARMED),
            last_poll_end: AtomicU64::new(0),
            trace_asked: AtomicBool::new(false),
            released: AtomicBool::new(false),
            target: UnsafeCell::new(None),
        });
        WakeRef(NonNull::from(Box::leak(cell)))
    }

    #[inline(always)]
    pub(crate) fn cell(&self) -> &WakeCell {
        // SAFETY: a `WakeRef` holds a reference, so the cell is alive.
        unsafe { self.0.as_ref() }
    }

    /// Whether this is the only reference: no waker of the cell exists, and none can be made.
    pub(crate) fn is_unique(&self) -> bool {
        self.cell().refs.load(Acquire) == 1
    }

    /// Whether the task's last poll handed out counted wakers and none is alive, nor was one woken
    /// since: its stamping window is open and unstamped, and this is the only reference. Nothing
    /// taskscope counted can wake the task (`lost_waker`, `state::registry::wakers`).
    pub(crate) fn no_counted_waker_left(&self) -> bool {
        let cell = self.cell();
        cell.woken_at.load(Acquire) == 0 && cell.refs.load(Acquire) == 1
    }

    /// Clears a cell nothing else refers to, for a new task: window closed, no target (the runtime
    /// waker it held is dropped here).
    pub(crate) fn reset_unique(&mut self) {
        assert!(self.is_unique(), "a wake line in use cannot be reset");
        let cell = self.cell();
        cell.woken_at.store(UNARMED, Relaxed);
        cell.last_poll_end.store(0, Relaxed);
        cell.trace_asked.store(false, Relaxed);
        cell.released.store(false, Relaxed);
        // SAFETY: the only reference, held mutably: nobody reads the target concurrently.
        unsafe { *cell.target_mut() = None };
    }

    /// Gives up this reference as a raw pointer (proxy wakers count their references on the
    /// cell this way; tests check the count with it).
    #[cfg(test)]
    pub(crate) fn into_raw(self) -> *const WakeCell {
        let ptr = self.0.as_ptr();
        std::mem::forget(self);
        ptr
    }

    /// Takes back a reference given up by [`WakeRef::into_raw`].
    ///
    /// # Safety
    /// `ptr` comes from `into_raw` (or was counted by `clone_raw`) and its reference is not used
    /// again by the caller.
    pub(crate) unsafe fn from_raw(ptr: *const WakeCell) -> Self {
        // SAFETY: by the caller, `ptr` is a live cell's non-null address.
        WakeRef(unsafe { NonNull::new_unchecked(ptr as *mut WakeCell) })
    }

    /// Adds a reference to the cell at `ptr`, which the caller holds one of.
    ///
    /// # Safety
    /// `ptr` is a live cell the caller holds a reference to.
    #[inline]
    pub(crate) unsafe fn clone_raw(ptr: *const WakeCell) {
        // SAFETY: by the caller.
        let old = unsafe { &*ptr }.refs.fetch_add(1, Relaxed);
        if old > MAX_REFS {
            std::process::abort();
        }
    }
}

impl WakeCell {
    /// The target's address, for reading (under loom, the read is checked for races).
    #[inline(always)]
    fn target_ref(&self) -> *const Option<(Waker, usize)> {
        #[cfg(taskscope_loom)]
        return self.target.with(|p| p);
        #[cfg(not(taskscope_loom))]
        return self.target.get();
    }

    /// The target's address, for writing (under loom, the write is checked for races).
    #[inline(always)]
    fn target_mut(&self) -> *mut Option<(Waker, usize)> {
        #[cfg(taskscope_loom)]
        return self.target.with_mut(|p| p);
        #[cfg(not(taskscope_loom))]
        return self.target.get();
    }

    /// Opens the stamping window (poller only): the next wake will be stamped.
    #[inline(always)]
    pub(crate) fn open_window(&self) {
        self.woken_at.store(0, Relaxed);
    }

    /// Closes the stamping window (poller only): wakes leave no stamp until it opens again.
    #[inline(always)]
    pub(crate) fn close_window(&self) {
        self.woken_at.store(UNARMED, Relaxed);
    }

    /// Notes the end of a timed poll (poller only).
    #[inline(always)]
    pub(crate) fn note_poll_end(&self, end: u64) {
        self.last_poll_end.store(end, Relaxed);
    }

    /// Asks for (or stops asking for) a trace poll of the task. Withdrawing releases the dump's
    /// reads of the target to the task's last poll (`release_target`).
    pub(crate) fn ask_trace(&self, asked: bool) {
        self.trace_asked.store(asked, Release);
    }

    /// The waker to forward to, for a task dump that asked for a trace poll
    /// ([`WakeCell::ask_trace`], not yet withdrawn); `None` once the task's last poll let go of
    /// it or before the first poll.
    pub(crate) fn target_for_dump(&self) -> Option<&(Waker, usize)> {
        debug_assert!(self.trace_asked.load(Relaxed), "ask_trace(true) first");
        // Pairs with the fence in `release_target`.
        fence(SeqCst);
        if self.released.load(Relaxed) {
            return None;
        }
        self.target()
    }

    /// The task's last poll (poller only, after it returned `Ready` or panicked): drops the
    /// runtime waker now, not when the statistics are retired or reused, so the runtime frees
    /// the task on the thread that drops its last handle, as without taskscope (a retired wake
    /// line kept it alive until the collector let go of it, on the collector's thread). Only
    /// when nothing else can read the target: no counted waker left (their releases are
    /// acquired by the load), and no task dump reading it. The dump stores `trace_asked`, then
    /// a `SeqCst` fence, then reads `released`; this side stores `released`, a fence, then
    /// reads `trace_asked`: one of the two sees the other's store (model-checked below), so
    /// either the dump finds the target released and leaves it alone, or this side finds a
    /// dump and leaves the target to `reset_unique`. Returns whether it dropped the waker.
    pub(crate) fn release_target(&self) -> bool {
        if self.refs.load(Acquire) != 1 {
            return false;
        }
        self.released.store(true, Relaxed);
        fence(SeqCst);
        // Acquire: a dump that withdrew its ask read the target before this drop.
        if self.trace_asked.load(Acquire) {
            return false;
        }
        // SAFETY: no waker of the cell exists (and none can be made: the task is not polled
        // again), and no dump reads the target (above); the poller is the only reader left.
        drop(unsafe { (*self.target_mut()).take() });
        true
    }

    /// Whether a trace poll of the task is asked for.
    #[inline(always)]
    pub(crate) fn trace_asked(&self) -> bool {
        self.trace_asked.load(Relaxed)
    }

    /// The end of the task's last timed poll, in clock ticks (0: none yet).
    pub(crate) fn last_poll_end(&self) -> u64 {
        self.last_poll_end.load(Relaxed)
    }

    /// The stamp of the window's first wake, if any (poller only).
    #[inline(always)]
    pub(crate) fn stamp(&self) -> Option<u64> {
        let stamp = self.woken_at.load(Relaxed);
        (stamp != 0 && stamp != UNARMED).then_some(stamp)
    }

    /// Whether the stamping window is closed (proxy clones then hand out the runtime's waker).
    #[inline(always)]
    pub(crate) fn window_closed(&self) -> bool {
        self.woken_at.load(Relaxed) == UNARMED
    }

    /// A wake: stamps it with `now()` if the window is open and not stamped yet. A
    /// compare-and-swap, not a store: a wake that read an open window and stamps after the poller
    /// closed it must not reopen it (model-checked below).
    #[inline(always)]
    pub(crate) fn stamp_wake(&self, now: impl FnOnce() -> u64) {
        if self.woken_at.load(Relaxed) == 0 {
            let _ = self.woken_at.compare_exchange(0, now(), Relaxed, Relaxed);
        }
    }

    /// Sets the waker to forward to and the task's identity.
    ///
    /// # Safety
    /// Only before any proxy waker of this cell exists, and only once: readers of `target` do
    /// not synchronise with this write.
    pub(crate) unsafe fn set_target(&self, inner: Waker, task: usize) {
        // SAFETY: the caller guarantees no concurrent reader or writer.
        unsafe { *self.target_mut() = Some((inner, task)) };
    }

    /// The waker to forward to and the task's identity (`None` before the first poll, and after
    /// the last one let go of it). For the poller and the cell's wakers; a task dump reads it
    /// with [`WakeCell::target_for_dump`].
    #[inline(always)]
    pub(crate) fn target(&self) -> Option<&(Waker, usize)> {
        // SAFETY: written once before this cell was shared (see `set_target`), and taken only
        // when no waker of the cell is left and no dump reads it (`release_target`).
        unsafe { (*self.target_ref()).as_ref() }
    }
}

impl Clone for WakeRef {
    fn clone(&self) -> Self {
        // SAFETY: `self` holds a reference.
        unsafe { WakeRef::clone_raw(self.0.as_ptr()) };
        WakeRef(self.0)
    }
}

impl Drop for WakeRef {
    #[inline]
    fn drop(&mut self) {
        if self.cell().refs.fetch_sub(1, Release) != 1 {
            return;
        }
        fence(Acquire);
        // SAFETY: the last reference: nobody else can reach the cell, which came from a `Box`.
        drop(unsafe { Box::from_raw(self.0.as_ptr()) });
    }
}

#[cfg(all(test, not(taskscope_loom)))]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::task::Wake;

    struct Count(std::sync::atomic::AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Relaxed);
        }
    }

    #[test]
    fn the_forwarded_waker_lives_as_long_as_the_last_reference() {
        let count = Arc::new(Count(Default::default()));
        let a = WakeRef::new();
        // SAFETY: not shared yet.
        unsafe { a.cell().set_target(Waker::from(count.clone()), 7) };
        assert_eq!(Arc::strong_count(&count), 2);
        let b = a.clone();
        let raw = b.clone().into_raw();
        drop(a);
        assert_eq!(b.cell().target().map(|t| t.1), Some(7));
        drop(b);
        assert_eq!(Arc::strong_count(&count), 2, "a raw reference is still out");
        // SAFETY: `raw` came from `into_raw`.
        let c = unsafe { WakeRef::from_raw(raw) };
        c.cell().target().unwrap().0.wake_by_ref();
        drop(c);
        assert_eq!(
            Arc::strong_count(&count),
            1,
            "freed with its last reference"
        );
        assert_eq!(count.0.load(Relaxed), 1);
    }

    #[test]
    fn the_last_poll_drops_the_runtime_waker_unless_a_waker_or_a_dump_may_still_read_it() {
        let runtime = Arc::new(Count(AtomicUsize::new(0)));
        let with_target = || {
            let cell = WakeRef::new();
            // SAFETY: not shared yet.
            unsafe { cell.cell().set_target(Waker::from(runtime.clone()), 1) };
            cell
        };
        // Alone: dropped at once, and a dump then finds nothing to wake.
        let cell = with_target();
        assert_eq!(Arc::strong_count(&runtime), 2);
        assert!(cell.cell().release_target());
        assert_eq!(Arc::strong_count(&runtime), 1);
        cell.cell().ask_trace(true);
        assert!(cell.cell().target_for_dump().is_none());
        cell.cell().ask_trace(false);
        // A waker of the task is still held somewhere: it may forward, so the target stays.
        let cell = with_target();
        let waker = cell.clone();
        assert!(!cell.cell().release_target());
        assert!(waker.cell().target().is_some());
        drop((waker, cell));
        // A dump is reading it: it stays, and the dump, asking after, finds it released.
        let mut cell = with_target();
        cell.cell().ask_trace(true);
        assert!(!cell.cell().release_target());
        assert!(cell.cell().target().is_some());
        assert!(cell.cell().target_for_dump().is_none());
        cell.cell().ask_trace(false);
        // Reuse clears it, and the cell is as new.
        cell.reset_unique();
        assert!(cell.cell().target().is_none());
        assert_eq!(Arc::strong_count(&runtime), 1);
        cell.cell().ask_trace(true);
        assert!(cell.cell().target_for_dump().is_none(), "never polled");
    }

    #[test]
    fn one_line() {
        assert_eq!(std::mem::size_of::<WakeCell>(), 64);
        assert_eq!(std::mem::align_of::<WakeCell>(), 64);
    }
}

#[cfg(all(test, taskscope_loom))]
thread_local! {
    /// Frees of cells in the loom model, per test thread (loom runs a model's threads on the
    /// test's own): tests that free cells at the same time do not count each other's.
    static FREED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

#[cfg(all(test, taskscope_loom))]
impl Drop for WakeCell {
    fn drop(&mut self) {
        FREED.with(|f| f.set(f.get() + 1));
    }
}

#[cfg(all(test, taskscope_loom))]
mod loom_tests {
    use super::*;

    /// A task's last poll letting go of its runtime waker while a task dump asks for a trace
    /// poll: never both (the dump would wake through a dropped waker).
    #[test]
    fn loom_a_dump_never_reads_a_released_target() {
        loom::model(|| {
            let cell = loom::sync::Arc::new(WakeRef::new());
            // SAFETY: not shared yet.
            unsafe { cell.cell().set_target(std::task::Waker::noop().clone(), 1) };
            let dump = {
                let cell = cell.clone();
                loom::thread::spawn(move || {
                    cell.cell().ask_trace(true);
                    // The dump uses the waker until it withdraws its ask: read it twice, at
                    // both ends (loom checks each read against the drop's write).
                    if cell.cell().target_for_dump().is_some() {
                        loom::thread::yield_now();
                        assert!(cell.cell().target().is_some(), "dropped while in use");
                    }
                    cell.cell().ask_trace(false);
                })
            };
            cell.cell().release_target();
            dump.join().unwrap();
        });
    }

    /// A wake racing with the poller's closing of the window: whichever runs first, the window
    /// ends closed, and a stamp the poller read before closing is the waker's.
    #[test]
    fn loom_a_late_wake_never_reopens_a_closed_window() {
        loom::model(|| {
            let cell = WakeRef::new();
            cell.cell().open_window();
            let waker = {
                let cell = cell.clone();
                loom::thread::spawn(move || {
                    // Without a yield first, loom 0.7 builds histories in which a store and a
                    // concurrent read-modify-write are not atomic (tokio-rs/loom#254): it fails
                    // this test even with every operation SeqCst. The mutant with a plain store
                    // instead of the compare-and-swap still fails it with the yield.
                    loom::thread::yield_now();
                    cell.cell().stamp_wake(|| 7)
                })
            };
            let read = cell.cell().stamp();
            cell.cell().close_window();
            waker.join().unwrap();
            assert!(matches!(read, None | Some(7)));
            assert!(
                cell.cell().window_closed(),
                "a late stamp reopened the window"
            );
            assert_eq!(cell.cell().stamp(), None);
        });
    }

    /// References cloned, used and dropped on several threads: the cell is freed exactly once,
    /// after the last use, whichever thread drops last.
    #[test]
    fn loom_cell_freed_once_after_last_use() {
        loom::model(|| {
            FREED.with(|f| f.set(0));
            let cell = WakeRef::new();
            // SAFETY: not shared yet.
            unsafe { cell.cell().set_target(std::task::Waker::noop().clone(), 1) };
            let handles: Vec<_> = (0..2)
                .map(|i| {
                    let r = cell.clone();
                    loom::thread::spawn(move || {
                        let extra = r.clone();
                        drop(r);
                        extra.cell().woken_at.store(i + 2, Relaxed);
                        assert!(extra.cell().target().is_some());
                    })
                })
                .collect();
            drop(cell);
            for h in handles {
                h.join().unwrap();
            }
            assert_eq!(FREED.with(|f| f.get()), 1);
        });
    }
}
