//! The limits and thresholds of a console connection.

use std::time::Duration;

/// console-subscriber's default address.
pub const DEFAULT_ADDR: &str = "127.0.0.1:6669";
/// Task-details streams open at once (each costs the app one histogram encoding per publish).
pub const MAX_DETAIL_STREAMS: usize = 256;
/// The largest gRPC message accepted from the app (console-subscriber keeps its own under 4 MiB).
pub const MAX_MESSAGE: usize = 16 << 20;
/// A server that has not answered the first call in this long is not a console server.
pub(super) const HELLO_TIMEOUT: Duration = Duration::from_secs(3);
/// How long the first update may take once the server has answered.
pub(super) const FIRST_UPDATE_TIMEOUT: Duration = Duration::from_secs(30);
/// How often the UI gets a fresh snapshot.
pub(super) const PUBLISH_EVERY: Duration = Duration::from_millis(250);
/// Ended tasks kept for the views (groups keep every task's totals).
pub(super) const RETAINED_ENDED_TASKS: usize = 1000;
/// Finished async operations remembered, so one sent again is not counted twice.
pub(super) const MAX_FINISHED_OPS: usize = 100_000;
/// A task must have been idle without a waker this long before `lost_waker` is raised.
pub(super) const LOST_WAKER_AFTER: Duration = Duration::from_secs(1);
/// Wakes a task needs before its self-wake share is judged.
pub(super) const SELF_WAKES_MIN: u64 = 20;

/// What turns observations into warnings.
#[derive(Clone, Copy, Debug)]
pub struct Thresholds {
    /// A poll longer than this is a `blocked_worker`.
    pub blocked: Duration,
    /// A lock or semaphore wait longer than this is a `long_wait`.
    pub long_wait: Duration,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            blocked: Duration::from_millis(10),
            long_wait: Duration::from_secs(1),
        }
    }
}
