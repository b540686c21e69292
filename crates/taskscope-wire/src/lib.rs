//! The data model shared by the taskscope library, its reports and its tools.
//!
//! `taskscope-wire` has no tokio dependency: it holds plain data (tasks, warnings, histograms) that
//! the library produces and every consumer (reports, the dashboard, recordings) reads. A
//! [`Snapshot`] taken in-process and one rebuilt from a recording are the same type, so every
//! consumer is written once.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod assembler;
mod dump;
pub mod frame;
mod hint;
mod histogram;
mod model;
mod profile;
pub mod recording;
mod warning;

pub use assembler::Assembler;
pub use dump::{AsyncFrame, Chain, DumpedTask, LockWait, TaskDump, Trace};
pub use frame::{
    encode, write_frame, ClientFrame, Frame, FrameReader, Hello, TaskChange, Update, WireError,
    MAX_CLIENT_FRAME, MAX_FRAME, MIN_WIRE_VERSION, WIRE_VERSION,
};
pub use histogram::{
    bucket_index, bucket_range, fmt_ns, Histogram, Percentiles, BUCKETS, CHUNKS, SUB_BUCKETS,
};
pub use model::{
    Lock, Outcome, PollSample, PollTimeline, ProcessInfo, Refusals, Resource, Responses, Runtime,
    ScopeGroup, Semaphore, Snapshot, StackFrame, StackSample, Task, TaskGroup, TaskKind, TaskState,
    Worker,
};
pub use profile::{FunctionShare, Profile, ProfileGroup, ProfileStack, UNINSTRUMENTED};
pub use warning::{Warning, WarningKind};
