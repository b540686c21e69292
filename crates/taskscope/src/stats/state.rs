//! A task's state and outcome as its hot line holds them (one byte each).

pub(crate) const STATE_IDLE: u8 = 0;
pub(crate) const STATE_RUNNING: u8 = 1;
pub(crate) const STATE_SCHEDULED: u8 = 2;
pub(crate) const STATE_DONE: u8 = 3;

/// Not finished yet.
pub(crate) const OUTCOME_NONE: u8 = 0;
pub(crate) const OUTCOME_COMPLETED: u8 = 1;
pub(crate) const OUTCOME_CANCELLED: u8 = 2;
pub(crate) const OUTCOME_PANICKED: u8 = 3;
