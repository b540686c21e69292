//! The bottom floor: the clock, how a source location is shown, id-keyed maps, start-up errors.

pub(crate) mod clock;
pub(crate) mod error;
pub(crate) mod ids;
pub(crate) mod location;
pub(crate) mod schedstat;
