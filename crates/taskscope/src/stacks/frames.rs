//! Which frames are the application's, where its code ends, and how samples fold.

use taskscope_wire::{StackFrame, StackSample};

/// Application frames kept per folded stack.
const MAX_APP_FRAMES: usize = 24;
/// Distinct stacks kept per warning (the rarest are dropped first).
pub(crate) const MAX_STACKS: usize = 8;
/// Said after the call of a stack with no source line in any frame.
const NO_DEBUG_INFO: &str = " (no line information: the binary has no debug info; \
`debug = \"line-tables-only\"` under `[profile.release]` names the application's lines)";
/// taskscope's own sources: where the application's frames end (the poll wrapper).
pub(super) const OWN_SOURCES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src/");

/// Frames of libraries (the system's C code, std, crates from a registry) rather than of the
/// application. Judged by source path first: in optimised builds inlined frames carry short
/// names (`sleep`, `{closure#0}`) but still their file.
fn is_library(frame: &StackFrame) -> bool {
    let Some(file) = frame.file.as_deref() else {
        return true; // no debug info: the system's, or stripped
    };
    is_std_source(file)
        || file.contains("/.cargo/registry/")
        || file.contains("/.cargo/git/")
        // glibc and other system libraries are built with relative paths
        || (file.starts_with("./") && !frame.function.contains("::"))
        || file.starts_with(OWN_SOURCES)
}

/// A frame that is only an address (nothing resolved it to a function).
fn unsymbolised(frame: &StackFrame) -> bool {
    frame.file.is_none() && frame.function.starts_with("0x")
}

/// Where the application's code ends: taskscope's poll wrapper, or the runtime.
fn is_boundary(frame: &StackFrame) -> bool {
    frame.file.as_deref().is_some_and(|f| {
        f.starts_with(OWN_SOURCES) || (f.contains("/tokio-") && f.contains("/src/runtime/"))
    }) || frame.function.contains("taskscope::task::instrumented")
        || frame.function.starts_with("tokio::runtime::")
        || frame.function.starts_with("<tokio::runtime::")
}

/// A frame of tokio's runtime (scheduler, task harness, drivers), by file or by name.
fn is_runtime(frame: &StackFrame) -> bool {
    frame
        .file
        .as_deref()
        .is_some_and(|f| f.contains("/tokio-") && f.contains("/src/runtime/"))
        || frame.function.starts_with("tokio::runtime::")
        || frame.function.starts_with("<tokio::runtime::")
}

/// Whether a thread's stack is inside the poll of an async task: the innermost frame of
/// tokio's runtime is its task harness. A parked worker's innermost runtime frame is the
/// parker or a driver; a blocking-pool thread's is its blocking task (`runtime/blocking/`),
/// though all of them run inside a task harness further out (tokio's workers are themselves
/// blocking tasks).
pub(crate) fn in_task_poll(frames: &[StackFrame]) -> bool {
    frames
        .iter()
        .find(|f| is_runtime(f))
        .is_some_and(is_task_harness)
}

/// A frame of tokio's runtime that is its task harness (`runtime/task/`), by file or by name.
fn is_task_harness(frame: &StackFrame) -> bool {
    frame
        .file
        .as_deref()
        .map_or(frame.function.contains("runtime::task::"), |file| {
            file.contains("/src/runtime/task/")
        })
}

/// A source file of Rust's standard library.
fn is_std_source(file: &str) -> bool {
    file.starts_with("/rustc/")
        || file.contains("/library/std/")
        || file.contains("/library/core/")
        || file.contains("/library/alloc/")
}

/// What a CPU profile needs to know of a frame (`frame_flags`).
pub(crate) mod flags {
    /// A frame of tokio's runtime.
    pub(crate) const RUNTIME: u8 = 1;
    /// A frame of tokio's task harness (the innermost runtime frame of a task's poll).
    pub(crate) const TASK_HARNESS: u8 = 2;
    /// taskscope's poll wrappers of tasks and scopes: where a sample's stack is cut.
    pub(crate) const WRAPPER: u8 = 4;
    /// Rust's standard library.
    pub(crate) const STD: u8 = 8;
}

/// The profile's flags of a frame (`flags`).
pub(crate) fn frame_flags(frame: &StackFrame) -> u8 {
    let task_sources = concat!(env!("CARGO_MANIFEST_DIR"), "/src/task/");
    let mut f = 0;
    if is_runtime(frame) {
        f |= flags::RUNTIME;
        if is_task_harness(frame) {
            f |= flags::TASK_HARNESS;
        }
    }
    if frame
        .file
        .as_deref()
        .is_some_and(|p| p.starts_with(task_sources))
        || frame.function.contains("taskscope::task::")
    {
        f |= flags::WRAPPER;
    }
    if is_std(frame) {
        f |= flags::STD;
    }
    f
}

/// A frame of Rust's standard library.
fn is_std(frame: &StackFrame) -> bool {
    frame.file.as_deref().map_or_else(
        || frame.function.starts_with("std::") || frame.function.starts_with("core::"),
        is_std_source,
    )
}

/// Keeps the application's frames, from the first one outward up to the poll boundary, and
/// names the library call it was blocked in.
pub(crate) fn split_app_frames(frames: Vec<StackFrame>) -> StackSample {
    let first_app = frames
        .iter()
        .take_while(|f| !is_boundary(f))
        .position(|f| !is_library(f));
    let Some(first_app) = first_app else {
        // No frame of the application's with a source file: either the sample landed in
        // library code around its calls (taskscope's poll wrapper, std's `catch_unwind`), or the
        // binary has no debug info. Keep the Rust functions of unknown source (the
        // application's, without debug info), not std's or the system's.
        let mut blocked_in = frames
            .iter()
            .find(|f| !unsymbolised(f))
            .or(frames.first())
            .map(|f| f.function.clone());
        if frames.iter().all(|f| f.file.is_none()) {
            // Not one line anywhere, not even std's: the binary has no debug info.
            if let Some(call) = &mut blocked_in {
                call.push_str(NO_DEBUG_INFO);
            }
        }
        return StackSample {
            count: 1,
            blocked_in,
            frames: frames
                .into_iter()
                .take_while(|f| !is_boundary(f))
                .filter(|f| f.file.is_none() && f.function.contains("::"))
                .take(MAX_APP_FRAMES)
                .collect(),
        };
    };
    // The call the application made: the outermost library frame below its own (for a sleep:
    // `std::thread::sleep`, not the libc wrapper under it).
    // An address without a symbol (a stub, the vDSO) says nothing: the nearest named call
    // inward stands for it.
    let blocked_in = frames[..first_app]
        .iter()
        .rev()
        .find(|f| !unsymbolised(f))
        .or(first_app.checked_sub(1).map(|i| &frames[i]))
        .map(|f| f.function.clone());
    let app = frames
        .into_iter()
        .skip(first_app)
        .take_while(|f| !is_boundary(f))
        .filter(|f| !is_library(f))
        .take(MAX_APP_FRAMES)
        .collect();
    StackSample {
        count: 1,
        blocked_in,
        frames: app,
    }
}

/// Adds a sample to a warning's folded stacks, most frequent first, at most `MAX_STACKS`.
pub(crate) fn fold(stacks: &mut Vec<StackSample>, sample: StackSample) {
    match stacks
        .iter_mut()
        .find(|s| s.frames == sample.frames && s.blocked_in == sample.blocked_in)
    {
        Some(s) => s.count += sample.count,
        None => stacks.push(sample),
    }
    stacks.sort_by_key(|s| std::cmp::Reverse(s.count));
    stacks.truncate(MAX_STACKS);
}
