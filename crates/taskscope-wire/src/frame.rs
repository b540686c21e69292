//! The event stream: length-prefixed frames (u32 little-endian length, then a postcard-encoded
//! [`Frame`]). A connection opens with [`Frame::Hello`]; then [`Frame::Update`]s carry what changed
//! since the previous one (a `full` update replaces everything), [`Frame::Warning`]s arrive as
//! they are raised or updated, and [`Frame::Dropped`] reports load shedding.
//!
//! Every length read from a peer is bounded by [`MAX_FRAME`]; a malformed frame is an error naming
//! its byte offset, never a panic.

use std::io::{self, Read, Write};

use serde::{Deserialize, Serialize};

use crate::dump::TaskDump;
use crate::histogram::Histogram;
use crate::model::{
    Lock, Outcome, PollSample, Runtime, ScopeGroup, Semaphore, StackSample, Task, TaskGroup,
    TaskState, Worker,
};
use crate::warning::Warning;

/// Version of the frame format this build writes. Version 2 added the `Polls` and `Stacks`
/// frames; version 3 the `Scopes` frame and tasks of kind [`TaskKind::Scope`](crate::TaskKind)
/// (which [`Frame::for_version`] turns into `async` ones for older readers); version 4 the
/// warning kind `unbounded_spawn`, version 5 `stale_update` (each kept from older readers:
/// [`WarningKind::since_version`](crate::WarningKind::since_version)); version 6 task dumps
/// ([`ClientFrame::Dump`], [`Frame::Dump`]); version 7 CPU profiles ([`Frame::Profile`]);
/// version 8 detached tasks ([`Frame::Detached`]); version 9 refused peers
/// ([`Frame::Refusals`]) and the warning kind `semaphore_saturated`; everything else is as in version 1.
pub const WIRE_VERSION: u32 = 9;

/// The oldest version this build reads (recordings) and serves (clients, which are then sent
/// only version-1 frames).
pub const MIN_WIRE_VERSION: u32 = 1;

/// The largest frame accepted from a peer or a file (16 MiB).
pub const MAX_FRAME: usize = 16 << 20;

/// The largest frame a client may send to a server (4 KiB: a client only says hello).
pub const MAX_CLIENT_FRAME: usize = 4 << 10;

/// The first frame of a connection or recording.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// [`WIRE_VERSION`] of the sender.
    pub version: u32,
    /// Process id of the observed process.
    pub pid: u32,
    /// Executable name.
    pub process: String,
    /// Start of observation, ms since the Unix epoch.
    pub start_unix_ms: u64,
}

/// What changed since the previous update.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Update {
    /// Milliseconds since observation started.
    pub at_ms: u64,
    /// A key frame: replaces all state instead of adding to it.
    pub full: bool,
    /// Tasks new to the receiver, in full.
    pub tasks: Vec<Task>,
    /// Tasks the receiver knows that changed: their changing fields only.
    pub task_changes: Vec<TaskChange>,
    /// Tasks no longer kept (finished and past retention).
    pub removed_tasks: Vec<u64>,
    /// Every task group, when they were recomputed (`None`: unchanged since the last ones sent).
    pub task_groups: Option<Vec<TaskGroup>>,
    /// Every worker thread.
    pub workers: Vec<Worker>,
    /// Every probed runtime.
    pub runtimes: Vec<Runtime>,
    /// Every lock, when sent with this update (`None`: unchanged).
    pub locks: Option<Vec<Lock>>,
    /// Every semaphore, when sent with this update (`None`: unchanged).
    pub semaphores: Option<Vec<Semaphore>>,
    /// Events dropped so far.
    pub dropped_events: u64,
}

/// The changing fields of a task the receiver already has; histograms only now and then.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TaskChange {
    /// Task id.
    pub id: u64,
    /// Current state.
    pub state: TaskState,
    /// How it ended, once it has.
    pub outcome: Option<Outcome>,
    /// Polls so far.
    pub polls: u64,
    /// Busy time so far.
    pub busy_ns: u64,
    /// Wakes so far.
    pub wakes: u64,
    /// Self-wakes so far.
    pub self_wakes: u64,
    /// When it ended.
    pub ended_ms: Option<u64>,
    /// The poll histogram, when sent with this change.
    pub poll_ns: Option<Histogram>,
    /// The scheduled-delay histogram, when sent with this change.
    pub scheduled_ns: Option<Histogram>,
}

impl TaskChange {
    /// Applies the change to the task it describes.
    pub fn apply_to(self, task: &mut Task) {
        task.state = self.state;
        task.outcome = self.outcome;
        task.polls = self.polls;
        task.busy_ns = self.busy_ns;
        task.wakes = self.wakes;
        task.self_wakes = self.self_wakes;
        task.ended_ms = self.ended_ms;
        if let Some(h) = self.poll_ns {
            task.poll_ns = h;
        }
        if let Some(h) = self.scheduled_ns {
            task.scheduled_ns = h;
        }
    }
}

/// A frame of the event stream (server → client, and recordings).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Frame {
    /// First frame.
    Hello(Hello),
    /// State changes.
    Update(Box<Update>),
    /// A warning raised, or an update of one (same id).
    Warning(Box<Warning>),
    /// A watched task in full, histograms included (see [`ClientFrame::Watch`]).
    TaskDetail(Box<Task>),
    /// The stream shed frames for this client (it read too slowly); a full update follows.
    Dropped {
        /// Frames dropped for this client so far.
        count: u64,
    },
    /// Polls the watchdog saw that ended since the last such frame (version 2; recordings only).
    Polls(Vec<PollSample>),
    /// Every stack sampled so far for a `blocked_worker` warning, folded (version 2).
    Stacks {
        /// The warning's id.
        warning: u64,
        /// Its stacks, most frequent first.
        stacks: Vec<StackSample>,
    },
    /// Every scope group's latency and responses, sent with the task groups (version 3).
    Scopes(Vec<ScopeGroup>),
    /// Names of scopes whose polls are in `Polls` frames, by task id, each once (version 3;
    /// recordings only): finished scopes are not kept among the tasks.
    PollNames(Vec<(u64, String)>),
    /// The server refused this client and says why (a wrong or missing token, too many
    /// clients) before closing (version 3).
    Refused {
        /// Why, in words.
        reason: String,
    },
    /// The answer to [`ClientFrame::Dump`], to that client only (version 6).
    Dump(Box<TaskDump>),
    /// Where the tasks of a `deadlock` or `long_wait` warning wait (version 6).
    Chains {
        /// The warning's id.
        warning: u64,
        /// Its tasks, as a task dump shows them.
        tasks: Vec<crate::dump::DumpedTask>,
    },
    /// The CPU profile so far, whole (version 7; sent with the task groups when it changed).
    Profile(Box<crate::profile::Profile>),
    /// Every live task whose `JoinHandle` was dropped before it ended (detached), by id,
    /// whole (version 8; sent with the task groups when it changed).
    Detached(Vec<u64>),
    /// The peers turned away so far, by why (version 9; sent when they changed).
    Refusals(crate::model::Refusals),
}

impl Frame {
    /// This frame as a reader of wire `version` can decode it: `None` when it can be sent as it
    /// is, `Some(None)` when such a reader must not get it at all (a frame of a later version),
    /// `Some(Some(copy))` when it must get a copy (version 2 and older know no scope tasks: they
    /// get them as `async` tasks).
    pub fn for_version(&self, version: u32) -> Option<Option<Frame>> {
        use crate::model::TaskKind;
        if version >= WIRE_VERSION {
            return None;
        }
        // Kinds older readers cannot decode.
        match self {
            Frame::Warning(w) if w.kind.since_version() > version => return Some(None),
            Frame::Dump(_) | Frame::Chains { .. } if version < 6 => return Some(None),
            Frame::Profile(_) if version < 7 => return Some(None),
            Frame::Detached(_) if version < 8 => return Some(None),
            Frame::Refusals(_) if version < 9 => return Some(None),
            _ if version >= 3 => return None,
            _ => {}
        }
        let scope = |kind: TaskKind| kind == TaskKind::Scope;
        match self {
            Frame::Scopes(_) | Frame::PollNames(_) | Frame::Refused { .. } => Some(None),
            Frame::Polls(_) | Frame::Stacks { .. } if version < 2 => Some(None),
            Frame::Update(update)
                if update.tasks.iter().any(|t| scope(t.kind))
                    || update.task_groups.iter().flatten().any(|g| scope(g.kind)) =>
            {
                let mut update = update.clone();
                for task in &mut update.tasks {
                    if scope(task.kind) {
                        task.kind = TaskKind::Async;
                    }
                }
                for group in update.task_groups.iter_mut().flatten() {
                    if scope(group.kind) {
                        group.kind = TaskKind::Async;
                    }
                }
                Some(Some(Frame::Update(update)))
            }
            Frame::TaskDetail(task) if scope(task.kind) => {
                let mut task = task.clone();
                task.kind = TaskKind::Async;
                Some(Some(Frame::TaskDetail(task)))
            }
            _ => None,
        }
    }
}

/// A frame a client sends to the server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientFrame {
    /// The client's version and, for servers reachable beyond loopback, the access token.
    Hello {
        /// [`WIRE_VERSION`] of the client.
        version: u32,
        /// Access token, if the server requires one.
        token: Option<String>,
    },
    /// Asks for [`Frame::TaskDetail`] of one task, refreshed with the stream (`None`: stop).
    /// Updates carry only the changing counters of tasks; histograms come on demand.
    Watch {
        /// The task to watch.
        task: Option<u64>,
    },
    /// Asks for a task dump ([`Frame::Dump`]), waiting up to `timeout_ms` for the tasks' trace
    /// polls (servers cap it at 10 s). Only for servers of version 6 or later: older ones close
    /// the connection on a frame they do not know.
    Dump {
        /// How long the server may wait for the trace polls.
        timeout_ms: u64,
    },
}

/// A stream or recording that cannot be read.
#[derive(Debug)]
#[non_exhaustive]
pub enum WireError {
    /// Reading or writing failed.
    Io(io::Error),
    /// A length prefix above the limit.
    FrameTooLarge {
        /// Byte offset of the length prefix.
        offset: u64,
        /// The length it claimed.
        len: u64,
        /// The limit.
        max: usize,
    },
    /// The input ended inside a frame.
    Truncated {
        /// Byte offset of the incomplete frame.
        offset: u64,
    },
    /// A frame whose bytes do not decode.
    Malformed {
        /// Byte offset of the frame.
        offset: u64,
        /// What the decoder said.
        reason: String,
    },
    /// A recording record whose checksum does not match its bytes.
    Checksum {
        /// Byte offset of the record.
        offset: u64,
    },
    /// Not a taskscope recording.
    BadMagic,
    /// An empty file where a recording was expected.
    Empty,
    /// A recording header with flags this build does not know (bytes 12 to 15).
    UnsupportedFlags {
        /// The flags found.
        found: u32,
    },
    /// A version this build cannot read.
    UnsupportedVersion {
        /// The version found.
        found: u32,
    },
}

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WireError::Io(e) => write!(f, "i/o error: {e}"),
            WireError::FrameTooLarge { offset, len, max } => {
                write!(
                    f,
                    "frame at byte {offset} claims {len} bytes, above the {max}-byte limit"
                )
            }
            WireError::Truncated { offset } => {
                write!(f, "input ends inside the frame at byte {offset}")
            }
            WireError::Malformed { offset, reason } => {
                write!(f, "frame at byte {offset} does not decode: {reason}")
            }
            WireError::Checksum { offset } => {
                write!(f, "record at byte {offset} fails its checksum")
            }
            WireError::BadMagic => f.write_str("not a taskscope recording (bad magic bytes)"),
            WireError::Empty => f.write_str("the file is empty (not even a recording's header)"),
            WireError::UnsupportedFlags { found } => write!(
                f,
                "the recording's header has flags {found:#x}, which this build does not know"
            ),
            WireError::UnsupportedVersion { found } => {
                write!(f, "format version {found} is not supported (this build reads versions {MIN_WIRE_VERSION} to {WIRE_VERSION})")
            }
        }
    }
}

/// The text of an `Io` error says its cause, so it names no `source` (an error chain would
/// print the cause twice).
impl std::error::Error for WireError {}

impl From<io::Error> for WireError {
    fn from(e: io::Error) -> Self {
        WireError::Io(e)
    }
}

/// Encodes any frame with its length prefix.
pub fn encode<T: Serialize>(frame: &T) -> Vec<u8> {
    let out = vec![0u8; 4];
    let body = postcard::to_extend(frame, out).expect("frames always serialise");
    let mut out = body;
    let len = (out.len() - 4) as u32;
    out[..4].copy_from_slice(&len.to_le_bytes());
    out
}

/// Writes one length-prefixed frame.
pub fn write_frame<T: Serialize>(w: &mut impl Write, frame: &T) -> io::Result<()> {
    w.write_all(&encode(frame))
}

/// Reads length-prefixed frames from a byte stream, tracking offsets for error messages.
#[derive(Debug)]
pub struct FrameReader<R> {
    inner: R,
    offset: u64,
    max: usize,
    buf: Vec<u8>,
}

impl<R: Read> FrameReader<R> {
    /// A reader accepting frames up to [`MAX_FRAME`].
    pub fn new(inner: R) -> Self {
        FrameReader::with_limit(inner, MAX_FRAME)
    }

    /// A reader accepting frames up to `max` bytes.
    pub fn with_limit(inner: R, max: usize) -> Self {
        FrameReader {
            inner,
            offset: 0,
            max,
            buf: Vec::new(),
        }
    }

    /// Bytes consumed so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The underlying reader.
    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }

    /// The next frame, `None` at a clean end of input.
    pub fn next_frame<T: for<'de> Deserialize<'de>>(&mut self) -> Result<Option<T>, WireError> {
        let start = self.offset;
        let mut len = [0u8; 4];
        match read_full(&mut self.inner, &mut len)? {
            0 => return Ok(None),
            4 => {}
            _ => return Err(WireError::Truncated { offset: start }),
        }
        let len = u32::from_le_bytes(len) as u64;
        if len > self.max as u64 {
            return Err(WireError::FrameTooLarge {
                offset: start,
                len,
                max: self.max,
            });
        }
        self.buf.clear();
        let got = (&mut self.inner).take(len).read_to_end(&mut self.buf)?;
        if (got as u64) < len {
            return Err(WireError::Truncated { offset: start });
        }
        self.offset += 4 + len;
        postcard::from_bytes(&self.buf)
            .map(Some)
            .map_err(|e| WireError::Malformed {
                offset: start,
                reason: e.to_string(),
            })
    }
}

/// Reads until `buf` is full or the input ends; returns the bytes read.
pub(crate) fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

#[cfg(test)]
#[path = "frame_tests.rs"]
pub(crate) mod tests;
