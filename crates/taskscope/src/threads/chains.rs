//! The thread that traces the tasks of new `deadlock` and `long_wait` warnings: the watchdog
//! hands it what the registry queued (it must not wait for trace polls itself), and it files
//! the chains back by warning id. One such thread at a time; what comes meanwhile waits for the
//! next scan.

use std::sync::atomic::{AtomicBool, Ordering::*};
use std::time::Duration;

use crate::state::registry::{self, Registry};
use crate::state::shared::Shared;

/// How long a warning's tasks may take to reach their trace poll.
const CHAIN_WAIT: Duration = Duration::from_secs(2);

/// Whether a tracing thread is running.
static RUNNING: AtomicBool = AtomicBool::new(false);

/// Hands the warnings the registry wants traced to a tracing thread (or leaves them queued if
/// one is running already).
pub(crate) fn trace_wanted(shared: &'static Shared, registry: &mut Registry) {
    if RUNNING.load(Acquire) {
        return;
    }
    let wanted = registry.chains.take_wanted();
    if wanted.is_empty() {
        return;
    }
    RUNNING.store(true, Release);
    let spawned = std::thread::Builder::new()
        .name("taskscope-chains".into())
        .spawn(move || {
            for (warning, tasks) in wanted {
                let traced = crate::dump::dump_tasks(&tasks, CHAIN_WAIT);
                registry::lock(shared).chains.found(warning, traced);
            }
            RUNNING.store(false, Release);
        });
    if spawned.is_err() {
        RUNNING.store(false, Release);
    }
}
