//! Stacks of blocked workers, sampled while they are blocked (Linux, x86_64 and aarch64).
//!
//! When the watchdog has a `blocked_worker` to report, it sends a real-time signal to that
//! worker thread. The handler, running on the blocked thread, only walks its stack into a
//! preallocated buffer: raw return addresses, no allocation, no lock of ours (libgcc's unwinder
//! finds unwind tables through glibc's lock-free `_dl_find_object` on current systems). The
//! collector thread turns addresses into functions and lines later, off every hot path, keeps
//! the frames of the application's own code and folds repeated samples into counts.
//!
//! Safety rules:
//! - one sample at a time (a state machine in `SLOT`); a handler that finds no request for its
//!   thread, or a request for another thread, returns at once;
//! - the signal is a real-time one that nobody handles: taskscope never replaces an
//!   application's handler, and checks before each sample that its own is still installed;
//! - `errno` is saved and restored by the handler;
//! - a blocking system call interrupted by the signal is restarted (`SA_RESTART`) when the
//!   kernel can; `nanosleep`, `poll` and a few others return `EINTR`, which std's wrappers retry,
//!   as they must for any profiler's signals.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering::*};

use taskscope_wire::{StackFrame, StackSample};

/// Frames kept per sample (innermost first, before filtering).
const MAX_FRAMES: usize = 128;
/// Application frames kept per folded stack.
const MAX_APP_FRAMES: usize = 24;
/// Distinct stacks kept per warning (the rarest are dropped first).
pub(crate) const MAX_STACKS: usize = 8;
/// Samples taken per blocked poll at most.
pub(crate) const MAX_SAMPLES: u32 = 32;

/// Whether the Builder (or `TASKSCOPE_STACKS`) asked for stacks and the handler is installed.
static ACTIVE: AtomicBool = AtomicBool::new(false);

/// One raw sample: the interrupted instruction and the return addresses above it.
#[derive(Debug, Clone)]
pub(crate) struct RawStack {
    pub(crate) pc: usize,
    pub(crate) ips: Vec<usize>,
}

/// Stacks can be sampled on this platform.
pub(crate) const SUPPORTED: bool = cfg!(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
));

/// Installs the signal handler (once per process) and turns sampling on or off.
pub(crate) fn set_enabled(on: bool) -> Result<(), String> {
    if !on {
        ACTIVE.store(false, Release);
        return Ok(());
    }
    imp::install()?;
    ACTIVE.store(true, Release);
    Ok(())
}

pub(crate) fn enabled() -> bool {
    ACTIVE.load(Acquire)
}

/// Samples the stack of thread `tid` (a kernel thread id), waiting a few milliseconds at most.
pub(crate) fn capture(tid: i32) -> Option<RawStack> {
    if !enabled() || tid <= 0 {
        return None;
    }
    imp::capture(tid)
}

/// Whether thread `tid` blocks the sampling signal (then asking again is pointless).
pub(crate) fn blocks_signal(tid: i32) -> bool {
    imp::blocks_signal(tid)
}

/// The kernel id of the calling thread (0 where there is none to signal).
pub(crate) fn current_tid() -> i32 {
    imp::current_tid()
}

/// The symbolising thread: resolving addresses reads the binary's debug info (seconds, the
/// first time, for a large debug build), so it happens on a thread of its own, never on the
/// watchdog's (which must keep scanning) or the collector's (which must keep streaming).
static SYMBOLIZER: std::sync::Mutex<Option<SymbolizerThread>> = std::sync::Mutex::new(None);

/// Where samples go, and the thread that takes them.
type SymbolizerThread = (
    std::sync::mpsc::SyncSender<(u64, RawStack)>,
    std::thread::JoinHandle<()>,
);

/// Samples waiting for the symbolising thread at most (≈ 1 KiB each): while it reads debug
/// info for the first time, a burst of blocked polls can outrun it; later samples are dropped.
const PENDING_SAMPLES: usize = 256;

/// Starts the symbolising thread (when sampling is on).
pub(crate) fn start_symbolizer(shared: &'static crate::registry::Shared) {
    if !enabled() {
        return;
    }
    let (tx, rx) = std::sync::mpsc::sync_channel::<(u64, RawStack)>(PENDING_SAMPLES);
    let thread = std::thread::Builder::new()
        .name("taskscope-stacks".into())
        .spawn(move || {
            let mut symbolizer = Symbolizer::default();
            while let Ok(first) = rx.recv() {
                let batch: Vec<_> = std::iter::once(first)
                    .chain(rx.try_iter())
                    .map(|(id, raw)| (id, symbolizer.symbolize(&raw)))
                    .collect();
                let mut registry = shared.registry();
                for (id, sample) in batch {
                    registry.stacks.add(id, sample);
                }
            }
        });
    if let Ok(thread) = thread {
        *SYMBOLIZER.lock().unwrap_or_else(|e| e.into_inner()) = Some((tx, thread));
    }
}

/// Hands a sample to the symbolising thread; never waits (a sample it has no room for is
/// dropped: the next one of a long block takes its place).
pub(crate) fn submit(id: u64, raw: RawStack) {
    if let Some((tx, _)) = &*SYMBOLIZER.lock().unwrap_or_else(|e| e.into_inner()) {
        let _ = tx.try_send((id, raw));
    }
}

/// Symbolises what was submitted and stops the thread.
pub(crate) fn stop_symbolizer() {
    let taken = SYMBOLIZER.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some((tx, thread)) = taken {
        drop(tx);
        let _ = thread.join();
    }
}

/// Stack sampling state kept in the registry.
#[derive(Debug, Default)]
pub(crate) struct Stacks {
    /// Folded stacks per warning.
    pub(crate) folded: std::collections::BTreeMap<u64, Vec<StackSample>>,
    /// Warnings whose stacks changed since the exporter last sent them.
    pub(crate) changed: std::collections::BTreeSet<u64>,
    /// Per warning: samples taken and when the last one was (clock ticks).
    sampled: HashMap<u64, (u32, u64)>,
}

impl Stacks {
    /// Whether the blocked poll of warning `id` is due for a sample at `now` (at once, then
    /// every `every_ns` while it lasts, `MAX_SAMPLES` at most); if so, counts the attempt.
    pub(crate) fn take_due(&mut self, id: u64, now: u64, every_ns: u64) -> bool {
        if !enabled() {
            return false;
        }
        let due = match self.sampled.get(&id) {
            None => true,
            Some(&(n, last)) => n < MAX_SAMPLES && crate::clock::delta_ns(last, now) >= every_ns,
        };
        if !due {
            return false;
        }
        let entry = self.sampled.entry(id).or_insert((0, now));
        *entry = (entry.0 + 1, now);
        if self.sampled.len() > 4096 {
            // Old warnings' counters: keep the newest ids.
            let mut ids: Vec<u64> = self.sampled.keys().copied().collect();
            ids.sort_unstable();
            for old in &ids[..ids.len() - 2048] {
                self.sampled.remove(old);
            }
        }
        true
    }

    /// Takes no more samples for warning `id`.
    pub(crate) fn give_up(&mut self, id: u64) {
        self.sampled.entry(id).or_insert((0, 0)).0 = MAX_SAMPLES;
    }

    /// Folds symbolised samples in.
    pub(crate) fn add(&mut self, id: u64, sample: StackSample) {
        fold(self.folded.entry(id).or_default(), sample);
        self.changed.insert(id);
        if self.folded.len() > 10_000 {
            let oldest = *self.folded.keys().next().expect("not empty");
            self.folded.remove(&oldest);
        }
    }
}

/// Turns raw samples into application frames, with a cache of resolved addresses.
#[derive(Debug, Default)]
pub(crate) struct Symbolizer {
    cache: HashMap<(usize, bool), Vec<StackFrame>>,
    /// The working directory, with a trailing `/`.
    cwd: Option<String>,
}

impl Symbolizer {
    /// The sample as a stack of the application's frames (count 1).
    pub(crate) fn symbolize(&mut self, raw: &RawStack) -> StackSample {
        // The unwinder starts in the handler; the interrupted instruction is where the thread
        // really was. Above it, return addresses (resolved one byte back, inside the call).
        let start = raw.ips.iter().position(|&ip| ip == raw.pc);
        let mut frames: Vec<StackFrame> = self.resolve(raw.pc, true);
        if let Some(i) = start {
            for &ip in raw.ips.iter().skip(i + 1) {
                frames.extend(self.resolve(ip, false));
            }
        }
        let mut sample = split_app_frames(frames);
        self.relativize(&mut sample.frames);
        sample
    }

    fn resolve(&mut self, ip: usize, exact: bool) -> Vec<StackFrame> {
        self.cache
            .entry((ip, exact))
            .or_insert_with(|| imp::resolve(if exact { ip } else { ip.saturating_sub(1) }))
            .clone()
    }

    /// Paths under the working directory are shown relative to it, as std's backtraces do
    /// (after the frames are classified, which needs the full paths).
    fn relativize(&mut self, frames: &mut [StackFrame]) {
        let cwd = self.cwd.get_or_insert_with(|| {
            std::env::current_dir()
                .map(|d| format!("{}/", d.display()))
                .unwrap_or_default()
        });
        if cwd.is_empty() {
            return;
        }
        for f in frames {
            if let Some(rel) = f.file.as_deref().and_then(|p| p.strip_prefix(cwd.as_str())) {
                f.file = Some(rel.to_string());
            }
        }
    }
}

/// taskscope's own sources: where the application's frames end (the poll wrapper).
const OWN_SOURCES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src/");

/// Frames of libraries (the system's C code, std, crates from a registry) rather than of the
/// application. Judged by source path first: in optimised builds inlined frames carry short
/// names (`sleep`, `{closure#0}`) but still their file.
fn is_library(frame: &StackFrame) -> bool {
    let Some(file) = frame.file.as_deref() else {
        return true; // no debug info: the system's, or stripped
    };
    file.starts_with("/rustc/")
        || file.contains("/library/std/")
        || file.contains("/library/core/")
        || file.contains("/library/alloc/")
        || file.contains("/.cargo/registry/")
        || file.contains("/.cargo/git/")
        // glibc and other system libraries are built with relative paths
        || (file.starts_with("./") && !frame.function.contains("::"))
        || file.starts_with(OWN_SOURCES)
}

/// Where the application's code ends: taskscope's poll wrapper, or the runtime.
fn is_boundary(frame: &StackFrame) -> bool {
    frame.file.as_deref().is_some_and(|f| {
        f.starts_with(OWN_SOURCES) || (f.contains("/tokio-") && f.contains("/src/runtime/"))
    }) || frame.function.contains("taskscope::task::instrumented")
        || frame.function.starts_with("tokio::runtime::")
        || frame.function.starts_with("<tokio::runtime::")
}

/// Keeps the application's frames, from the first one outward up to the poll boundary, and
/// names the library call it was blocked in.
fn split_app_frames(frames: Vec<StackFrame>) -> StackSample {
    let first_app = frames
        .iter()
        .take_while(|f| !is_boundary(f))
        .position(|f| !is_library(f));
    let Some(first_app) = first_app else {
        // No frame of the application's with a source file: either the sample landed in
        // library code around its calls (taskscope's poll wrapper, std's `catch_unwind`), or the
        // binary has no debug info. Keep the Rust functions of unknown source (the
        // application's, without debug info), not std's or the system's.
        let blocked_in = frames.first().map(|f| f.function.clone());
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
    let blocked_in = (first_app > 0).then(|| frames[first_app - 1].function.clone());
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

#[cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
mod imp {
    use std::sync::atomic::{AtomicI32, AtomicU8, AtomicUsize, Ordering::*};
    use std::sync::Mutex;
    use std::time::{Duration, Instant};

    use taskscope_wire::StackFrame;

    use super::{RawStack, ACTIVE, MAX_FRAMES};

    const IDLE: u8 = 0;
    const REQUESTED: u8 = 1;
    const WRITING: u8 = 2;
    const DONE: u8 = 3;

    /// The one sample in flight: written by the handler, read by the sampler.
    struct Slot {
        state: AtomicU8,
        tid: AtomicI32,
        pc: AtomicUsize,
        len: AtomicUsize,
        ips: [AtomicUsize; MAX_FRAMES],
    }

    static SLOT: Slot = Slot {
        state: AtomicU8::new(IDLE),
        tid: AtomicI32::new(0),
        pc: AtomicUsize::new(0),
        len: AtomicUsize::new(0),
        ips: [const { AtomicUsize::new(0) }; MAX_FRAMES],
    };

    /// The signal in use (0: not installed).
    static SIGNAL: AtomicI32 = AtomicI32::new(0);
    /// Serialises samplers (one watchdog per Guard, but tests run several in turn).
    static SAMPLER: Mutex<()> = Mutex::new(());

    pub(super) fn current_tid() -> i32 {
        // SAFETY: gettid has no preconditions.
        unsafe { libc::gettid() }
    }

    /// Installs the handler on the first real-time signal no one handles.
    pub(super) fn install() -> Result<(), String> {
        if SIGNAL.load(Acquire) != 0 {
            return Ok(());
        }
        let _one = SAMPLER.lock().unwrap_or_else(|e| e.into_inner());
        if SIGNAL.load(Acquire) != 0 {
            return Ok(());
        }
        // glibc keeps the first real-time signals for itself; SIGRTMIN() is past them. Leave a
        // few at each end for applications that count from SIGRTMIN or SIGRTMAX.
        for sig in (libc::SIGRTMIN() + 3)..=(libc::SIGRTMAX() - 3) {
            // SAFETY: querying and setting a handler with valid, zero-initialised structs.
            unsafe {
                let mut old: libc::sigaction = std::mem::zeroed();
                if libc::sigaction(sig, std::ptr::null(), &mut old) != 0 {
                    continue;
                }
                if old.sa_sigaction != libc::SIG_DFL {
                    continue;
                }
                let mut new: libc::sigaction = std::mem::zeroed();
                new.sa_sigaction = handler as *const () as usize;
                new.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
                libc::sigemptyset(&mut new.sa_mask);
                if libc::sigaction(sig, &new, std::ptr::null_mut()) == 0 {
                    SIGNAL.store(sig, Release);
                    return Ok(());
                }
            }
        }
        Err("no free real-time signal for stack sampling".into())
    }

    /// Whether `tid` has the signal in its blocked mask (`SigBlk` of its `/proc` status).
    pub(super) fn blocks_signal(tid: i32) -> bool {
        let sig = SIGNAL.load(Acquire);
        if sig <= 0 {
            return false;
        }
        let Ok(status) = std::fs::read_to_string(format!("/proc/self/task/{tid}/status")) else {
            return true; // the thread is gone
        };
        status
            .lines()
            .find_map(|l| l.strip_prefix("SigBlk:"))
            .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
            .is_some_and(|mask| mask & (1u64 << (sig - 1)) != 0)
    }

    /// Whether our handler is still the one installed (an application may install its own).
    fn still_ours(sig: i32) -> bool {
        // SAFETY: querying a handler.
        unsafe {
            let mut cur: libc::sigaction = std::mem::zeroed();
            libc::sigaction(sig, std::ptr::null(), &mut cur) == 0
                && cur.sa_sigaction == handler as *const () as usize
        }
    }

    extern "C" fn handler(_sig: libc::c_int, _info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
        // SAFETY: errno is thread-local; the handler must leave it as it found it.
        let errno = unsafe { *libc::__errno_location() };
        if SLOT
            .state
            .compare_exchange(REQUESTED, WRITING, Acquire, Relaxed)
            .is_ok()
        {
            if current_tid() == SLOT.tid.load(Relaxed) {
                SLOT.pc.store(interrupted_pc(ctx), Relaxed);
                let mut n = 0;
                // SAFETY: `trace_unsynchronized` takes no lock of backtrace's and allocates
                // nothing; it walks with libgcc's unwinder.
                unsafe {
                    backtrace::trace_unsynchronized(|frame| {
                        SLOT.ips[n].store(frame.ip() as usize, Relaxed);
                        n += 1;
                        n < MAX_FRAMES
                    });
                }
                SLOT.len.store(n, Relaxed);
                SLOT.state.store(DONE, Release);
            } else {
                // A request for another thread (this one may have reused an old id): put it
                // back for its thread.
                SLOT.state.store(REQUESTED, Release);
            }
        }
        // SAFETY: as above.
        unsafe { *libc::__errno_location() = errno };
    }

    fn interrupted_pc(ctx: *mut libc::c_void) -> usize {
        if ctx.is_null() {
            return 0;
        }
        // SAFETY: with SA_SIGINFO the third argument is the interrupted context.
        let uc = unsafe { &*(ctx as *const libc::ucontext_t) };
        #[cfg(target_arch = "x86_64")]
        {
            uc.uc_mcontext.gregs[libc::REG_RIP as usize] as usize
        }
        #[cfg(target_arch = "aarch64")]
        {
            uc.uc_mcontext.pc as usize
        }
    }

    pub(super) fn capture(tid: i32) -> Option<RawStack> {
        let sig = SIGNAL.load(Acquire);
        if sig == 0 || !still_ours(sig) {
            return None;
        }
        let _one = SAMPLER.lock().unwrap_or_else(|e| e.into_inner());
        if SLOT.state.load(Acquire) != IDLE {
            return None; // a handler from an abandoned request is still writing
        }
        SLOT.tid.store(tid, Relaxed);
        SLOT.state.store(REQUESTED, Release);
        // SAFETY: signals a thread of this process; a thread that exited makes it fail.
        let sent = unsafe {
            libc::syscall(
                libc::SYS_tgkill,
                libc::getpid(),
                libc::c_long::from(tid),
                libc::c_long::from(sig),
            )
        } == 0;
        let deadline = Instant::now() + Duration::from_millis(if sent { 20 } else { 0 });
        loop {
            match SLOT.state.load(Acquire) {
                DONE => break,
                REQUESTED if Instant::now() >= deadline => {
                    // Abandon; a late handler finds no request and returns.
                    if SLOT
                        .state
                        .compare_exchange(REQUESTED, IDLE, AcqRel, Acquire)
                        .is_ok()
                    {
                        return None;
                    }
                }
                WRITING if Instant::now() >= deadline + Duration::from_secs(1) => {
                    // The unwinder has not finished in a second: stop sampling for good
                    // rather than wait on it (the slot stays busy).
                    ACTIVE.store(false, Release);
                    tracing::error!(target: "taskscope", "stack sampling stopped: a stack walk did not finish");
                    return None;
                }
                _ => std::thread::sleep(Duration::from_micros(50)),
            }
        }
        let len = SLOT.len.load(Relaxed).min(MAX_FRAMES);
        let raw = RawStack {
            pc: SLOT.pc.load(Relaxed),
            ips: SLOT.ips[..len].iter().map(|ip| ip.load(Relaxed)).collect(),
        };
        SLOT.state.store(IDLE, Release);
        Some(raw)
    }

    /// The functions (inlined ones first) at an address of this process.
    pub(super) fn resolve(addr: usize) -> Vec<StackFrame> {
        let mut frames = Vec::new();
        backtrace::resolve(addr as *mut std::ffi::c_void, |symbol| {
            frames.push(StackFrame {
                function: symbol
                    .name()
                    .map_or_else(|| "?".to_string(), |n| format!("{n:#}")),
                file: symbol.filename().map(|f| f.display().to_string()),
                line: symbol.lineno(),
            });
        });
        if frames.is_empty() {
            frames.push(StackFrame {
                function: format!("{addr:#x}"),
                file: None,
                line: None,
            });
        }
        frames
    }
}

#[cfg(not(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
)))]
mod imp {
    use taskscope_wire::StackFrame;

    use super::RawStack;

    pub(super) fn current_tid() -> i32 {
        0
    }

    pub(super) fn install() -> Result<(), String> {
        Err("stack sampling of blocked workers needs Linux on x86_64 or aarch64".into())
    }

    pub(super) fn capture(_tid: i32) -> Option<RawStack> {
        None
    }

    pub(super) fn blocks_signal(_tid: i32) -> bool {
        true
    }

    pub(super) fn resolve(_addr: usize) -> Vec<StackFrame> {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(function: &str, file: Option<&str>) -> StackFrame {
        StackFrame {
            function: function.into(),
            file: file.map(Into::into),
            line: file.map(|_| 7),
        }
    }

    #[test]
    fn the_first_frame_is_the_applications_and_the_call_it_made_is_named() {
        let own = format!("{OWN_SOURCES}task/instrumented.rs");
        let frames = vec![
            frame(
                "clock_nanosleep",
                Some("./time/../sysdeps/unix/clock_nanosleep.c"),
            ),
            frame(
                "std::thread::sleep",
                Some("/rustc/abc/library/std/src/thread/mod.rs"),
            ),
            frame("app::nap", Some("src/main.rs")),
            frame("app::handler::{{closure}}", Some("src/main.rs")),
            frame(
                "{closure#0}<app::handler::{async_block_env#0}>",
                Some(own.as_str()),
            ),
            frame(
                "tokio::runtime::task::harness::poll",
                Some("/h/.cargo/registry/src/x/tokio-1.0.0/src/runtime/task/harness.rs"),
            ),
        ];
        let s = split_app_frames(frames);
        assert_eq!(s.blocked_in.as_deref(), Some("std::thread::sleep"));
        let names: Vec<_> = s.frames.iter().map(|f| f.function.as_str()).collect();
        assert_eq!(names, ["app::nap", "app::handler::{{closure}}"]);
    }

    #[test]
    fn folding_counts_equal_stacks_and_keeps_the_commonest() {
        let mut stacks = Vec::new();
        let a = split_app_frames(vec![frame("app::a", Some("a.rs"))]);
        let b = split_app_frames(vec![frame("app::b", Some("b.rs"))]);
        fold(&mut stacks, a.clone());
        fold(&mut stacks, b.clone());
        fold(&mut stacks, b);
        assert_eq!(stacks.len(), 2);
        assert_eq!(
            (stacks[0].count, stacks[0].frames[0].function.as_str()),
            (2, "app::b")
        );
        for i in 0..20 {
            fold(
                &mut stacks,
                split_app_frames(vec![frame(&format!("app::f{i}"), Some("f.rs"))]),
            );
        }
        assert_eq!(stacks.len(), MAX_STACKS);
        assert_eq!(stacks[0].count, 2);
    }

    #[cfg(all(
        target_os = "linux",
        any(target_arch = "x86_64", target_arch = "aarch64")
    ))]
    #[test]
    fn samples_a_spinning_thread_in_its_own_function() {
        set_enabled(true).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let spinner = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                tx.send(current_tid()).unwrap();
                spin_here(&stop)
            })
        };
        let tid = rx.recv().unwrap();
        // Let it get past the channel's wake-up and into its loop.
        std::thread::sleep(std::time::Duration::from_millis(20));
        let raw = capture(tid).expect("a sample");
        stop.store(true, Relaxed);
        spinner.join().unwrap();
        // (This crate's own frames are not the application's, so look at every frame.)
        let frames: Vec<StackFrame> = std::iter::once(raw.pc)
            .chain(raw.ips.iter().map(|ip| ip.saturating_sub(1)))
            .flat_map(imp::resolve)
            .collect();
        assert!(
            frames.iter().any(|f| f.function.ends_with("spin_here")),
            "{frames:#?}"
        );
        assert_eq!(Symbolizer::default().symbolize(&raw).count, 1);
    }

    #[inline(never)]
    fn spin_here(stop: &AtomicBool) {
        while !stop.load(Relaxed) {
            std::hint::spin_loop();
        }
    }
}
