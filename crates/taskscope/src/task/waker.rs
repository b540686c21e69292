//! The waker proxy: stamps the wake time so the next poll can measure the scheduled delay
//! (wake → poll start), then forwards to the runtime's waker.
//!
//! The proxy is a `RawWaker` over the task's wake line (`stats::wake::WakeCell`): cloning it
//! counts a reference on that line, waking it stamps that line and forwards to the runtime waker
//! stored there. A whole wake cycle touches that one line of the task and nothing else.
//!
//! Stamping windows. A stamp costs a clock read, and a proxy clone two reference-count updates
//! on top of the runtime's own: together about a third of the per-poll overhead of a task that
//! yields in a loop. So a task stamps its wakes in windows: a poll opens one when at least
//! `Builder::sample_interval` (default 1 ms; 0: every poll) has passed since the poll that
//! opened the last, and the next poll closes it. While a window is open the proxy works as above;
//! while it is closed, the poll gives its future a `PollWaker` instead (the runtime's waker
//! wrapped for that poll), and cloning either hands out a clone of the runtime's own waker, whose
//! wake never comes back through taskscope. A task polled less often than once per interval thus has
//! every wake stamped; a busier one about one wake per interval — a sample, unbiased by what the
//! delays are, since windows open by time (the thread's last clock reading, which is at most a
//! few dozen polls old: `task::instrumented`). A task's first poll always opens one. The polls
//! that open and close a window are also the task's timed polls.
//!
//! An open window's stamp costs one clock read and plain loads and stores, plus one
//! compare-and-swap, which keeps a late wake from overwriting the mark of a closed window; only
//! the first wake since the window opened is stamped (later ones find the stamp set).
//!
//! A self-wake (the task waking itself during its own poll through its context's waker) only
//! sets a flag in the thread's worker slot, in or out of a window: the poll wrapper counts
//! it and, if the poll opened a window, reuses its poll-end clock read as the wake time. (tokio's `yield_now` defers its wake
//! until the worker has run the rest of its batch, so it arrives after the poll and counts as an
//! ordinary wake.)

use std::sync::atomic::Ordering::*;
use std::task::{RawWaker, RawWakerVTable, Waker};

use crate::base::clock;
use crate::state::worker;
use crate::stats::wake::{WakeCell, WakeRef};

static VTABLE: RawWakerVTable = RawWakerVTable::new(clone, wake, wake_by_ref, drop_waker);

/// A proxy waker for `cell` that borrows a reference held elsewhere: it must not be dropped
/// (wrap it in `ManuallyDrop`) nor outlive that reference. Its clones count their own.
///
/// # Safety
/// The cell's target is set, and the caller keeps a counted reference for the waker's life.
#[inline(always)]
pub(crate) unsafe fn proxy_waker_borrowed(cell: &WakeCell) -> Waker {
    let raw = RawWaker::new((cell as *const WakeCell).cast(), &VTABLE);
    // SAFETY: the vtable's functions treat the data pointer as a live `WakeCell`, which the
    // caller's reference keeps alive; `clone` counts a new reference for every clone.
    unsafe { Waker::from_raw(raw) }
}

/// What a poll outside a stamping window gives its future as the context's waker: the
/// runtime's own waker (on tokio's stack, for this poll) and the task's identity. Cloning it
/// clones the runtime's waker; waking it through the reference only notes a self-wake. It
/// touches no line of the task's: outside windows a proxy clone used to read the wake line for
/// the runtime's waker, a cache miss on every yield (`perf`: 2.3–2.6 % of all CPU samples).
pub(crate) struct PollWaker<'a> {
    pub(crate) inner: &'a Waker,
    /// Address of the task's statistics, as in `WakeCell::target`.
    pub(crate) task: usize,
}

static POLL_VTABLE: RawWakerVTable =
    RawWakerVTable::new(poll_clone, poll_wake, poll_wake_by_ref, poll_drop);

/// A waker over `poll_waker`, valid while it is: only for the context of one poll (it is
/// handed out by reference only; its clones are the runtime's own wakers). Never dropped.
///
/// # Safety
/// The returned waker must not outlive `poll_waker` (keep it in `ManuallyDrop`, lend it out by
/// reference only).
#[inline(always)]
pub(crate) unsafe fn poll_waker(poll_waker: &PollWaker<'_>) -> Waker {
    let raw = RawWaker::new((poll_waker as *const PollWaker<'_>).cast(), &POLL_VTABLE);
    // SAFETY: the vtable's functions read the `PollWaker`, alive as long as the waker by the
    // caller's promise.
    unsafe { Waker::from_raw(raw) }
}

/// # Safety
/// `data` points at the `PollWaker` of the poll in progress (`poll_waker`).
unsafe fn poll_clone(data: *const ()) -> RawWaker {
    // SAFETY: `data` is the live `PollWaker` of the current poll (see `poll_waker`).
    let poll_waker = unsafe { &*data.cast::<PollWaker<'_>>() };
    runtime_clone(poll_waker.inner)
}

/// # Safety
/// `data` points at the `PollWaker` of the poll in progress (`poll_clone`).
unsafe fn poll_wake(data: *const ()) {
    // Only reachable by value through a clone, and clones are the runtime's wakers; a waker
    // owning nothing has nothing to release.
    // SAFETY: as in `poll_clone`.
    unsafe { poll_wake_by_ref(data) }
}

/// # Safety
/// `data` points at the `PollWaker` of the poll in progress (`poll_clone`).
unsafe fn poll_wake_by_ref(data: *const ()) {
    // SAFETY: as in `poll_clone`.
    let poll_waker = unsafe { &*data.cast::<PollWaker<'_>>() };
    note_self_wake(poll_waker.task);
    poll_waker.inner.wake_by_ref();
}

unsafe fn poll_drop(_: *const ()) {}

/// # Safety
/// `data` is a counted `WakeRef` cell pointer that this vtable handed out (`VTABLE`).
unsafe fn clone(data: *const ()) -> RawWaker {
    // SAFETY: `data` is a live cell: the waker being cloned holds a reference.
    let cell = unsafe { &*data.cast::<WakeCell>() };
    if cell.window_closed() {
        if let Some((inner, _)) = cell.target() {
            return runtime_clone(inner);
        }
    }
    // SAFETY: `data` is a counted reference held by the waker being cloned.
    unsafe { WakeRef::clone_raw(data.cast()) };
    RawWaker::new(data, &VTABLE)
}

/// # Safety
/// `data` is a counted `WakeRef` cell pointer that this vtable handed out (`VTABLE`).
unsafe fn wake(data: *const ()) {
    // SAFETY: as in `clone`; the waker's reference is released after the forward.
    unsafe {
        wake_by_ref(data);
        drop_waker(data);
    }
}

/// # Safety
/// `data` is a counted `WakeRef` cell pointer that this vtable handed out (`VTABLE`).
unsafe fn wake_by_ref(data: *const ()) {
    // SAFETY: as in `clone`.
    let cell = unsafe { &*data.cast::<WakeCell>() };
    let Some((inner, task)) = cell.target() else {
        return;
    };
    if !note_self_wake(*task) {
        cell.stamp_wake(clock::now);
    }
    inner.wake_by_ref();
}

/// A clone of the runtime's waker, as a `RawWaker` (it owns its own reference): what a proxy
/// hands out outside a stamping window.
fn runtime_clone(inner: &Waker) -> RawWaker {
    let inner = std::mem::ManuallyDrop::new(inner.clone());
    RawWaker::new(inner.data(), inner.vtable())
}

/// If the task whose statistics are at `task` is being polled on this thread, notes a
/// self-wake in the thread's worker slot (the poll wrapper counts it) and returns true.
fn note_self_wake(task: usize) -> bool {
    let Some(slot) = worker::current_if_any() else {
        return false;
    };
    // Compare addresses, not task ids: the id lives on another line than the wake line.
    let own = slot.stats.load(Relaxed) as usize == task && slot.start.load(Relaxed) != 0;
    if own {
        slot.self_woken.store(true, Relaxed);
    }
    own
}

/// # Safety
/// `data` is a counted `WakeRef` cell pointer that this vtable handed out (`VTABLE`).
unsafe fn drop_waker(data: *const ()) {
    // SAFETY: as in `clone`; this gives back the waker's reference.
    drop(unsafe { WakeRef::from_raw(data.cast()) });
}
