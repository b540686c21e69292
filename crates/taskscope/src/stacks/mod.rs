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
use std::sync::atomic::Ordering::*;

use taskscope_wire::StackSample;

mod foreign;
mod frames;
mod names;
mod profile;
mod raw;
mod threads;

pub(crate) use frames::{fold, in_task_poll, split_app_frames};
pub(crate) use names::enclosing_fn;
pub(crate) use profile::{ProfileStore, SampleLabel, RETIRED};
use raw::ACTIVE;
pub(crate) use raw::{RawStack, SlotWords};
pub(crate) use threads::{named as threads_named, Thread};

/// Samples taken per blocked poll at most.
pub(crate) const MAX_SAMPLES: u32 = 32;

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

/// The functions and lines at a code address (the symbolizer thread's work, off every hot
/// path).
pub(crate) fn symbolize(addr: usize) -> Vec<taskscope_wire::StackFrame> {
    imp::resolve(addr)
}

/// Lets go of the debug info read for [`symbolize`] (memory maps and parsed tables), to be
/// read again at the next call: the symbolizer thread's, when it has been idle a while.
pub(crate) fn forget_debug_info() {
    imp::forget();
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

pub(crate) use cpu_timers::{
    drain as profile_samples, set_keep as profile_keep, take_signals as profile_signals, CpuTimer,
    RING as PROFILE_RING,
};

/// Profiles thread `tid`: a signal every millisecond of its CPU time (at most one per kernel
/// tick), each kept with the chance `profile_keep` set, the handler reading `words` on the
/// thread as it samples it (what its worker slot shows it polling).
pub(crate) fn profile_thread(tid: i32, words: Option<SlotWords>) -> Result<CpuTimer, String> {
    match imp::signal() {
        0 => Err("stack sampling is off".into()),
        signal => cpu_timers::watch(tid, words, cpu_timers::TIMER_PERIOD, signal),
    }
}

/// Whether thread `tid` blocks the sampling signal (then asking again is pointless).
pub(crate) fn blocks_signal(tid: i32) -> bool {
    imp::blocks_signal(tid)
}

/// Whether thread `tid` is in one of the kernel's waits a parked tokio worker is in (`futex`,
/// `epoll_wait` and kin), by `/proc/self/task/TID/syscall`. A thread the kernel cannot tell
/// about counts as waiting.
pub(crate) fn waits_for_work(tid: i32) -> bool {
    imp::waits_for_work(tid)
}

/// The kernel id of the calling thread (0 where there is none to signal).
pub(crate) fn current_tid() -> i32 {
    imp::current_tid()
}

/// The bit that marks a stall's key before its warning exists (see `crate::threads::foreign`).
pub(crate) const PENDING_KEY: u64 = 1 << 63;

/// Stack sampling state kept in the registry.
#[derive(Debug, Default)]
pub(crate) struct Stacks {
    /// Folded stacks per warning.
    pub(crate) folded: std::collections::BTreeMap<u64, Vec<StackSample>>,
    /// Warnings whose stacks changed since the exporter last sent them.
    pub(crate) changed: std::collections::BTreeSet<u64>,
    /// Per warning: samples taken and when the last one was (clock ticks).
    sampled: HashMap<u64, (u32, u64)>,
    /// The threads of workers stuck in uninstrumented tasks, per warning.
    foreign: foreign::ForeignWorkers,
    /// Keys of stuck workers' samples from before their warning existed → the warning.
    aliases: HashMap<u64, u64>,
    /// Keys of stalls in which a thread stayed in one call outside the kernel's waits for work.
    stuck_seen: std::collections::HashSet<u64>,
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
            Some(&(n, last)) => {
                n < MAX_SAMPLES && crate::base::clock::delta_ns(last, now) >= every_ns
            }
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

    /// The thread found for the warning of a worker stuck in an uninstrumented task.
    pub(crate) fn foreign_thread(&self, id: u64) -> Option<&Thread> {
        self.foreign.thread(self.resolve(id))
    }

    /// The application frame that thread is stuck at, if it has one.
    pub(crate) fn foreign_top(&self, id: u64) -> Option<&taskscope_wire::StackFrame> {
        self.foreign.top(self.resolve(id))
    }

    /// Rounds of samples taken for `id`.
    pub(crate) fn rounds(&self, id: u64) -> u32 {
        self.sampled.get(&id).map_or(0, |&(n, _)| n)
    }

    /// The samples taken under `key` (a stuck worker's, before its warning existed) become
    /// warning `id`'s, and so do samples still on their way under `key`.
    pub(crate) fn rename(&mut self, key: u64, id: u64) {
        self.stuck_seen.remove(&key);
        if let Some(sampled) = self.sampled.remove(&key) {
            self.sampled.insert(id, sampled);
        }
        if let Some(folded) = self.folded.remove(&key) {
            self.folded.insert(id, folded);
            self.changed.insert(id);
        }
        self.changed.remove(&key);
        self.foreign.rename(key, id);
        self.aliases.insert(key, id);
        if self.aliases.len() > 1024 {
            // The oldest stalls' keys: their samples have long arrived.
            let mut by_warning: Vec<(u64, u64)> =
                self.aliases.iter().map(|(&k, &v)| (v, k)).collect();
            by_warning.sort_unstable();
            for (_, key) in &by_warning[..by_warning.len() - 512] {
                self.aliases.remove(key);
            }
        }
    }

    /// The worker of warning `id` moved on: its thread is free to be found stuck again
    /// (samples taken while it was stuck still count when they arrive).
    pub(crate) fn end_foreign(&mut self, id: u64) {
        self.foreign.end(id);
    }

    /// Notes that in the stall of `key` a thread stayed in one call, not waiting for work.
    pub(crate) fn stuck_seen(&mut self, key: u64) {
        if self.sampled.contains_key(&key) {
            self.stuck_seen.insert(key);
        }
    }

    /// Whether `stuck_seen` was said of `key`.
    pub(crate) fn is_stuck_seen(&self, key: u64) -> bool {
        self.stuck_seen.contains(&key)
    }

    /// Forgets what was sampled under `key` if no warning came of it (its worker moved on).
    pub(crate) fn forget(&mut self, key: u64) {
        self.stuck_seen.remove(&key);
        if !self.aliases.contains_key(&key) && self.sampled.remove(&key).is_some() {
            self.folded.remove(&key);
            self.changed.remove(&key);
            self.foreign.forget(key);
        }
    }

    fn resolve(&self, id: u64) -> u64 {
        self.aliases.get(&id).copied().unwrap_or(id)
    }

    /// Takes a round of samples of the threads that may be the stuck worker of warning `id`
    /// (those that stayed in one call and are inside a task poll), folding in the stuck
    /// thread's. Returns the warning (or key) they count for, the thread and where it is stuck
    /// when this round found it.
    pub(crate) fn add_foreign(
        &mut self,
        id: u64,
        in_poll: Vec<(Thread, StackSample)>,
    ) -> Option<(u64, Thread, Option<taskscope_wire::StackFrame>)> {
        let id = self.resolve(id);
        if id & PENDING_KEY != 0 && !self.sampled.contains_key(&id) {
            // A stall that ended with no thread found (`forget`): its late samples say
            // nothing of any later stall.
            return None;
        }
        match self.foreign.round(id, in_poll) {
            foreign::Found::Nothing => None,
            foreign::Found::Again(sample) => {
                self.add(id, sample);
                None
            }
            foreign::Found::Now(thread, sample, top) => {
                self.add(id, sample);
                Some((id, thread, top))
            }
        }
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

#[cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
#[path = "cpu_timers_linux.rs"]
mod cpu_timers;
#[cfg(not(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
)))]
#[path = "cpu_timers_other.rs"]
mod cpu_timers;
#[cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
#[path = "capture_linux.rs"]
mod imp;
#[cfg(not(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
)))]
#[path = "capture_other.rs"]
mod imp;
#[cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
mod mapped_object;
#[cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
#[path = "object_symbols_linux.rs"]
mod object_symbols;

#[cfg(test)]
mod tests {
    use super::frames::{split_app_frames, MAX_STACKS, OWN_SOURCES};
    use super::*;
    use taskscope_wire::StackFrame;

    fn frame(function: &str, file: Option<&str>) -> StackFrame {
        StackFrame {
            function: function.into(),
            file: file.map(Into::into),
            line: file.map(|_| 7),
        }
    }

    #[test]
    fn a_stack_without_any_line_says_the_binary_needs_debug_info() {
        let frames = vec![
            frame("__GI___clock_nanosleep", None),
            frame("std::thread::functions::sleep", None),
            frame("app::handler", None),
        ];
        let sample = split_app_frames(frames);
        let call = sample.blocked_in.unwrap();
        assert!(
            call.starts_with("__GI___clock_nanosleep (no line information"),
            "{call}"
        );
        assert!(call.contains("line-tables-only"), "{call}");
        // With lines for std (a build with debug info), the same call says nothing of it.
        let frames = vec![
            frame("__GI___clock_nanosleep", None),
            frame(
                "std::thread::sleep",
                Some("/rustc/abc/library/std/src/thread/mod.rs"),
            ),
            frame("tokio::runtime::task::harness::poll", None),
        ];
        let call = split_app_frames(frames).blocked_in.unwrap();
        assert_eq!(call, "__GI___clock_nanosleep");
    }

    #[test]
    fn an_address_without_a_symbol_is_not_the_call_named_when_a_named_one_is_inward() {
        let frames = vec![
            frame("__clock_gettime", None),
            frame(
                "std::time::Instant::now",
                Some("/rustc/abc/library/std/src/time.rs"),
            ),
            frame("0x55d5bbfc49b0 (app)", None),
            frame("app::checksum", Some("src/main.rs")),
        ];
        let sample = split_app_frames(frames);
        assert_eq!(
            sample.blocked_in.as_deref(),
            Some("std::time::Instant::now")
        );
        assert_eq!(
            sample.summary(),
            "app::checksum (src/main.rs:7) in std::time::Instant::now"
        );
        // Only addresses: the address is what there is, with its mapping.
        let frames = vec![
            frame("0x7ffd1000 ([vdso])", None),
            frame("app::f", Some("src/main.rs")),
        ];
        assert_eq!(
            split_app_frames(frames).blocked_in.as_deref(),
            Some("0x7ffd1000 ([vdso])")
        );
        // Without lines anywhere, the named frame too.
        let frames = vec![
            frame("0x1234 (libc.so.6)", None),
            frame("std::thread::sleep", None),
        ];
        let call = split_app_frames(frames).blocked_in.unwrap();
        assert!(call.starts_with("std::thread::sleep"), "{call}");
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
}
