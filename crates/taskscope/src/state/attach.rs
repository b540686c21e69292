//! Attaching a probe to a runtime: when the first instrumented task is spawned on it, or the
//! Guard starts in it (`Builder::attach`), and once per thread per Guard after that; the
//! heartbeat task that measures the runtime's event-loop lag.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering::*};
use std::sync::Arc;

use tokio::runtime::Handle;

use crate::state::probe::{runtime_key, RuntimeProbe};
use crate::state::shared::Shared;

/// Bumped by every new Guard, so threads re-attach probes to runtimes after a re-init.
pub(crate) static GENERATION: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// (runtime key, generation) this thread last made sure had a probe.
    static ATTACHED: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
}

/// Attaches a probe to the runtime unless this thread already did for this Guard.
#[inline]
pub(crate) fn ensure_attached(handle: &Handle, shared: &'static Shared) {
    let key = (runtime_key(handle), GENERATION.load(Relaxed));
    if ATTACHED.with(|a| a.get()) != key {
        attach(handle, key, shared);
    }
}

#[cold]
#[inline(never)]
fn attach(handle: &Handle, key: (u64, u64), shared: &'static Shared) {
    ATTACHED.with(|a| a.set(key));
    let mut registry = crate::state::registry::lock(shared);
    if registry
        .runtimes
        .iter()
        .any(|p| p.id == key.0 && p.alive.load(Acquire))
    {
        return;
    }
    let probe = Arc::new(RuntimeProbe::new(handle, key.0));
    registry.runtimes.push(probe.clone());
    drop(registry);
    crate::state::worker::spawn_unhooked(|| handle.spawn(heartbeat(probe)));
}

async fn heartbeat(probe: Arc<RuntimeProbe>) {
    /// The runtime dropped this task: it shut down.
    struct Detach(Arc<RuntimeProbe>);
    impl Drop for Detach {
        fn drop(&mut self) {
            self.0.alive.store(false, Release);
        }
    }
    let _detach = Detach(probe.clone());
    loop {
        probe.pinged().await;
        // The worker threads this runs on become known (name, kernel id, runtime): where the
        // watchdog looks for a worker stuck in a task taskscope did not spawn.
        crate::state::worker::current();
        probe.answer();
    }
}
