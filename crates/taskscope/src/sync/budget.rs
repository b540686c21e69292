//! The cooperative budget of the lock wrappers: a task that only ever takes free locks still
//! yields to the others, as with tokio's own locks.

/// Tries to acquire with `attempt` (a `try_` call), spending the task's cooperative budget as
/// tokio's own locks and semaphores do — before trying, so that a task whose budget is spent
/// yields *before* it acquires anything. A `try_` call alone spends no budget: without this, a
/// loop that only ever takes free locks would never yield and starve its worker. Taking a unit
/// costs tokio's context thread local twice (~20 ns, as much as the rest of an uncontended lock),
/// so one attempt in `COOP_EVERY` per thread takes one: such a loop yields after about
/// `COOP_EVERY` × 128 acquisitions instead of tokio's 128. On failure the unit is given back (the
/// caller then waits in tokio's own future, which spends its own).
///
/// Called through `try_spending_budget!`, which tests `coop_due()` first and makes the attempt
/// directly when it is false: an `.await` of this function on every attempt measured as a third
/// of an uncontended semaphore's cost.
pub(crate) async fn try_with_budget<T, E>(attempt: impl FnOnce() -> Result<T, E>) -> Result<T, E> {
    let budget = std::future::poll_fn(tokio::task::coop::poll_proceed).await;
    let result = attempt();
    if result.is_ok() {
        budget.made_progress();
    }
    result
}

/// Attempts per thread between two that spend a unit of cooperative budget.
const COOP_EVERY: u32 = 8;

/// Whether this attempt spends a unit of budget (always on a thread that never polled an
/// instrumented task: it has no slot to count in).
#[inline]
pub(crate) fn coop_due() -> bool {
    let Some(slot) = crate::state::worker::current_if_any() else {
        return true;
    };
    let left = slot.coop_left.load(std::sync::atomic::Ordering::Relaxed);
    let (due, next) = match left {
        0 => (true, COOP_EVERY - 1),
        n => (false, n - 1),
    };
    slot.coop_left
        .store(next, std::sync::atomic::Ordering::Relaxed);
    due
}

/// `$attempt` (a `try_` call), spending a unit of cooperative budget first when one is due
/// (`coop_due`, `try_with_budget`).
macro_rules! try_spending_budget {
    ($attempt:expr) => {
        if $crate::sync::budget::coop_due() {
            $crate::sync::budget::try_with_budget(|| $attempt).await
        } else {
            $attempt
        }
    };
}
pub(crate) use try_spending_budget;
