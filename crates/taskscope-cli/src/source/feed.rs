//! What a source tells the UI.

use std::sync::Arc;

use taskscope_wire::Snapshot;

/// What a source tells the UI.
#[derive(Debug)]
pub enum Feed {
    /// The latest state.
    Snapshot(Arc<Snapshot>),
    /// A line for the status bar (connecting, disconnected, replay position, ...).
    Status(String),
}
