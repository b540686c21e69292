//! A lock's registration: its statistics, queued to the collector when the lock is made, and
//! retired when it is dropped.

use std::borrow::Cow;
use std::panic::Location;
use std::sync::Arc;

use crate::state::shared::{self, Event};
use crate::stats::lock::{LockKind, LockStats};

/// Registers a new lock's statistics, or `None` (an uninstrumented lock) without a Guard or when
/// the event queue is full.
pub(crate) fn register(
    name: Cow<'static, str>,
    location: &'static Location<'static>,
    kind: LockKind,
) -> Option<Registered> {
    let shared = shared::active()?;
    let stats = Arc::new(LockStats::new(shared.next_id(), name, location, kind));
    shared.push(Event::Lock(stats.clone())).ok()?;
    Some(Registered(stats))
}

/// A lock's reference to its registered statistics; dropping it (the lock was dropped) tells
/// the collector, which then retires the statistics instead of looking for dropped locks among
/// all of them every tick.
#[derive(Debug)]
pub(crate) struct Registered(Arc<LockStats>);

impl std::ops::Deref for Registered {
    type Target = Arc<LockStats>;
    fn deref(&self) -> &Arc<LockStats> {
        &self.0
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        if let Some(shared) = shared::active() {
            // If the queue is full the drop is shed and counted; the collector then looks at
            // every lock (`Registry::retire_locks`).
            let _ = shared.push(Event::LockDropped(self.0.id));
        }
    }
}
