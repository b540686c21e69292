//! The trace poll of a task dump (`taskscope::task_dump`): where a pending task is suspended.
//!
//! A dump asks for some tasks (`request`) and wakes them. The next poll of such a task gives its
//! future a tracing waker around the waker it would have had: the leaf future the task waits on
//! registers the context's waker — it is a new one, so a channel, a timer, a lock or a `Notify`
//! clones it — and the clone captures the stack at that moment, from the leaf's `poll` up
//! through every `async fn` and block to the task's poll. The clone itself is the waker the
//! poll would have handed out, so the task's real wake-up is kept. The poll is an ordinary poll
//! (spurious polls are allowed by the `Future` contract): it may make progress, complete or
//! panic, which the dump reports as such.
//!
//! Cost when no dump is running: one relaxed load of a static per poll; while one runs, one
//! more of the task's wake line, and the asked tasks' trace polls.

use std::collections::HashMap;
use std::future::Future;
use std::mem::ManuallyDrop;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Mutex;
use std::task::{Context, Poll, RawWaker, RawWakerVTable, Waker};

use crate::stats::wake::WakeCell;

/// Whether a dump is waiting for trace polls.
static TRACING: AtomicBool = AtomicBool::new(false);

/// The tasks a dump asked for, and what each one's trace poll found (`None`: not polled yet).
static REQUESTS: Mutex<Option<HashMap<u64, Option<Traced>>>> = Mutex::new(None);

/// At most this many registrations are captured per trace poll (a `select!` over many
/// branches registers one waker each).
const MAX_STACKS: usize = 16;

/// What the trace poll of one task found.
#[derive(Debug)]
pub(crate) enum Traced {
    /// It returned `Pending`: the stacks of the wakers registered during the poll (none: its
    /// leaf future kept an older waker, or it waits on nothing).
    Pending(Vec<backtrace::Backtrace>),
    /// It completed in that poll.
    Completed,
    /// It panicked in that poll.
    Panicked,
}

/// Asks for a trace poll of each of `tasks` (replacing an earlier request).
pub(crate) fn request(tasks: impl IntoIterator<Item = u64>) {
    let asked: HashMap<u64, Option<Traced>> = tasks.into_iter().map(|id| (id, None)).collect();
    *REQUESTS.lock().unwrap_or_else(|e| e.into_inner()) = Some(asked);
    TRACING.store(true, Relaxed);
}

/// How many of the asked tasks have been traced.
pub(crate) fn traced_count() -> usize {
    let requests = REQUESTS.lock().unwrap_or_else(|e| e.into_inner());
    requests
        .as_ref()
        .map_or(0, |r| r.values().filter(|t| t.is_some()).count())
}

/// Ends the request: what each traced task's poll found.
pub(crate) fn finish() -> HashMap<u64, Traced> {
    TRACING.store(false, Relaxed);
    let requests = REQUESTS.lock().unwrap_or_else(|e| e.into_inner()).take();
    requests
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(id, traced)| traced.map(|t| (id, t)))
        .collect()
}

/// Polls `future` of task `task` (whose wake line is `cell`) with `waker`, catching a panic;
/// traced if a dump asked for it. While a dump runs, a task it did not ask for reads one more
/// flag, on its wake line; only the asked ones take the requests' lock.
#[inline(always)]
pub(crate) fn poll<F: Future>(
    future: Pin<&mut F>,
    waker: &Waker,
    task: u64,
    cell: &WakeCell,
) -> std::thread::Result<Poll<F::Output>> {
    if TRACING.load(Relaxed) && cell.trace_asked() {
        cell.ask_trace(false);
        return traced_poll(future, waker, task);
    }
    let mut cx = Context::from_waker(waker);
    catch_unwind(AssertUnwindSafe(|| future.poll(&mut cx)))
}

/// The trace poll, if `task` is asked for and not traced yet; else an ordinary poll.
#[cold]
#[inline(never)]
fn traced_poll<F: Future>(
    future: Pin<&mut F>,
    waker: &Waker,
    task: u64,
) -> std::thread::Result<Poll<F::Output>> {
    let asked = REQUESTS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
        .is_some_and(|r| matches!(r.get(&task), Some(None)));
    if !asked {
        let mut cx = Context::from_waker(waker);
        return catch_unwind(AssertUnwindSafe(|| future.poll(&mut cx)));
    }
    let tracer = Tracer {
        inner: waker,
        stacks: Mutex::new(Vec::new()),
    };
    // SAFETY: the tracing waker only lives for this poll (lent by reference, never dropped:
    // `ManuallyDrop`), while `tracer` does; its clones are clones of `waker`.
    let traced = ManuallyDrop::new(unsafe { tracing_waker(&tracer) });
    let mut cx = Context::from_waker(&traced);
    let result = catch_unwind(AssertUnwindSafe(|| future.poll(&mut cx)));
    let found = match &result {
        Ok(Poll::Pending) => Traced::Pending(
            tracer
                .stacks
                .into_inner()
                .unwrap_or_else(|e| e.into_inner()),
        ),
        Ok(Poll::Ready(_)) => Traced::Completed,
        Err(_) => Traced::Panicked,
    };
    if let Some(requests) = REQUESTS.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
        if let Some(slot) = requests.get_mut(&task) {
            *slot = Some(found);
        }
    }
    result
}

/// The waker a trace poll lends its future: the poll's own, with its registrations recorded.
struct Tracer<'a> {
    inner: &'a Waker,
    stacks: Mutex<Vec<backtrace::Backtrace>>,
}

impl Tracer<'_> {
    fn capture(&self) {
        let mut stacks = self.stacks.lock().unwrap_or_else(|e| e.into_inner());
        if stacks.len() < MAX_STACKS {
            // Resolved by the dump, off this poll.
            stacks.push(backtrace::Backtrace::new_unresolved());
        }
    }
}

static TRACE_VTABLE: RawWakerVTable =
    RawWakerVTable::new(trace_clone, trace_wake, trace_wake_by_ref, trace_drop);

/// # Safety
/// The waker must not outlive `tracer` (keep it in `ManuallyDrop`, lend it by reference only).
unsafe fn tracing_waker(tracer: &Tracer<'_>) -> Waker {
    let raw = RawWaker::new((tracer as *const Tracer<'_>).cast(), &TRACE_VTABLE);
    // SAFETY: the vtable's functions read the live `Tracer` (the caller's promise).
    unsafe { Waker::from_raw(raw) }
}

/// A registration: the stack is captured, and the clone is the poll's own waker's.
///
/// # Safety
/// `data` is the live `Tracer` of the trace poll in progress.
#[inline(never)]
unsafe fn trace_clone(data: *const ()) -> RawWaker {
    // SAFETY: see `tracing_waker`.
    let tracer = unsafe { &*data.cast::<Tracer<'_>>() };
    tracer.capture();
    let inner = ManuallyDrop::new(tracer.inner.clone());
    RawWaker::new(inner.data(), inner.vtable())
}

/// # Safety
/// As `trace_clone`. (Only reachable by reference: clones are the inner waker's.)
unsafe fn trace_wake(data: *const ()) {
    // SAFETY: as in `trace_clone`.
    unsafe { trace_wake_by_ref(data) }
}

/// A wake during the trace poll (a task that yields or wakes itself): captured too.
///
/// # Safety
/// As `trace_clone`.
#[inline(never)]
unsafe fn trace_wake_by_ref(data: *const ()) {
    // SAFETY: as in `trace_clone`.
    let tracer = unsafe { &*data.cast::<Tracer<'_>>() };
    tracer.capture();
    tracer.inner.wake_by_ref();
}

unsafe fn trace_drop(_: *const ()) {}
