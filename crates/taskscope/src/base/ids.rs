//! Maps keyed by the ids taskscope gives tasks and locks.

use std::collections::HashMap;

/// Maps keyed by task id: every spawn inserts, every retire removes, every stream update looks
/// up each live task, so they hash with foldhash rather than std's DoS-resistant SipHash (ids
/// are ours, not a peer's).
pub(crate) type IdMap<V> = HashMap<u64, V, foldhash::fast::RandomState>;
