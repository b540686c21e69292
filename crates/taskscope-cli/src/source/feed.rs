//! What a source tells the UI.

use std::sync::mpsc::Sender;
use std::sync::Arc;

use taskscope_wire::{Snapshot, TaskDump};

/// What a source tells the UI.
#[derive(Debug)]
pub enum Feed {
    /// The latest state.
    Snapshot(Arc<Snapshot>),
    /// A line for the status bar (connecting, disconnected, replay position, ...).
    Status(String),
    /// A task dump the UI asked for.
    Dump(Arc<TaskDump>),
}

/// Tells the UI that the connection to `addr` is being made; false when the UI is gone.
pub fn connecting(feed: &Sender<Feed>, addr: &str) -> bool {
    feed.send(Feed::Status(format!("connecting to {addr}")))
        .is_ok()
}

/// Tells the UI that the connection to `addr` ended (`why`) and a retry follows; false when the
/// UI is gone.
pub fn disconnected(feed: &Sender<Feed>, addr: &str, why: &str) -> bool {
    feed.send(Feed::Status(format!(
        "disconnected from {addr}: {why}; retrying"
    )))
    .is_ok()
}

/// Why the connection to `addr` ended, if `status` is what [`disconnected`] said.
pub fn disconnected_reason<'a>(status: &'a str, addr: &str) -> Option<&'a str> {
    let why = status
        .strip_prefix("disconnected from ")?
        .strip_prefix(addr)?
        .strip_prefix(": ")?;
    Some(why.trim_end_matches("; retrying"))
}
