//! Latency reports from a taskscope [`Snapshot`](taskscope_wire::Snapshot): per task group, the
//! count and percentiles of poll time and scheduled delay, totals, and every warning.
#![deny(missing_docs)]

pub mod csv;
pub mod hdr;
pub mod html;
pub mod json;
pub mod markdown;
pub mod prometheus;
