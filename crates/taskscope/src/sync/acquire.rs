//! How the lock wrappers take one side of a lock (a mutex, a read or a write side): at once if
//! it is free, else marked as a waiter until tokio's own future gives it; and the hold that
//! starts. The `Mutex` and `RwLock` wrappers differ only in which tokio calls they pass in.

use std::panic::Location;

use crate::base::clock;
use crate::sync::held::{Ctx, Held};
use crate::sync::register::Registered;

/// A blocking acquisition that waited longer than this counts as contended.
const BLOCKING_CONTENDED_NS: u64 = 1_000_000;

/// The hold an acquisition of `side` starts at `at` after waiting `wait_ns` (`None` for a lock
/// made without a Guard).
#[inline]
pub(crate) fn hold(
    side: Option<&Registered>,
    at: &'static Location<'static>,
    wait_ns: u64,
    contended: bool,
    exclusive: bool,
) -> Option<Held> {
    let stats = side?;
    Some(Held::acquire(
        stats,
        Ctx::current(),
        at,
        wait_ns,
        contended,
        exclusive,
    ))
}

/// Takes `$side` (an `Option<&Registered>`) at `$at` with `$attempt` (tokio's `try_` call,
/// spending cooperative budget when due) or, when that fails, with `$wait` (tokio's future),
/// marked as a waiter meanwhile: `(guard, wait_ns, contended)`, for [`hold`]. The mark is removed
/// on drop, so a cancelled wait leaves no phantom waiter. An uninstrumented lock goes straight
/// to `$wait`.
///
/// A macro, not an `async fn`, and the hold built by the caller in the guard's own field: a
/// nested future and a `(guard, Option<Held>)` moved twice measured +15 ns on an uncontended
/// `Mutex` (66 → 82 ns, `overhead --locks`; +19 instructions per lock+unlock under callgrind).
macro_rules! acquire {
    ($side:expr, $at:expr, $attempt:expr, $wait:expr) => {{
        let side: Option<&$crate::sync::register::Registered> = $side;
        match side {
            None => ($wait.await, 0, false),
            Some(stats) => match $crate::sync::budget::try_spending_budget!($attempt) {
                Ok(guard) => (guard, 0, false),
                Err(_) => {
                    // The context (a raw pointer) is a temporary of this statement, so it does
                    // not live across the `.await`.
                    let waiting = $crate::sync::held::Waiting::start(
                        stats,
                        &$crate::sync::held::Ctx::current(),
                        $at,
                    );
                    let guard = $wait.await;
                    let wait_ns =
                        $crate::base::clock::delta_ns(waiting.since(), $crate::base::clock::now());
                    (guard, wait_ns, true)
                }
            },
        }
    }};
}
pub(crate) use acquire;

/// Takes `side` from synchronous code with `lock` (tokio's `blocking_` call) for the caller's
/// caller, timing the wait: the guard and its hold.
#[track_caller]
pub(crate) fn blocking<G>(
    side: Option<&Registered>,
    exclusive: bool,
    lock: impl FnOnce() -> G,
) -> (G, Option<Held>) {
    let at = Location::caller();
    let start = clock::now();
    let guard = lock();
    let wait_ns = clock::delta_ns(start, clock::now());
    let contended = wait_ns > BLOCKING_CONTENDED_NS;
    (guard, hold(side, at, wait_ns, contended, exclusive))
}
