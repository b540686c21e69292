//! The symbolising thread and the address cache: raw samples become the application's frames.

use std::collections::HashMap;

use taskscope_wire::{StackFrame, StackSample};

use crate::stacks::{enabled, in_task_poll, split_app_frames, symbolize, RawStack, Thread};

/// What the symbolising thread is given.
#[derive(Debug)]
enum Job {
    /// A sample of the worker running the blocked instrumented poll of warning `.0`.
    Blocked(u64, RawStack),
    /// Samples of the threads that stayed in one call while a worker was stuck in an
    /// uninstrumented task (warning `.0`): the one inside a task poll is found here
    /// (`Stacks::add_foreign`).
    Foreign(u64, Vec<(Thread, RawStack)>),
    /// The CPU profiler's samples, each tagged with the task and poll start its thread's worker
    /// slot showed as it was taken (`threads::profiler`).
    Profile(Vec<RawStack>),
}

/// The symbolising thread: resolving addresses reads the binary's debug info (seconds, the
/// first time, for a large debug build), so it happens on a thread of its own, never on the
/// watchdog's (which must keep scanning) or the collector's (which must keep streaming).
static SYMBOLIZER: std::sync::Mutex<Option<SymbolizerThread>> = std::sync::Mutex::new(None);

/// Where samples go, and the thread that takes them.
type SymbolizerThread = (
    std::sync::mpsc::SyncSender<Job>,
    std::thread::JoinHandle<()>,
);

/// Whether the symbolising thread has read the binary's debug info (the profiler holds its
/// samples until then rather than fill the queue).
static READY: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether the symbolising thread is ready for samples.
pub(crate) fn is_ready() -> bool {
    READY.load(std::sync::atomic::Ordering::Acquire)
}

/// Samples waiting for the symbolising thread at most (≈ 1 KiB each): while it reads debug
/// info for the first time, a burst of blocked polls can outrun it; later samples are dropped.
const PENDING_SAMPLES: usize = 256;

/// How long the symbolizer keeps the debug info it read with no job to do.
const FORGET_AFTER: std::time::Duration = std::time::Duration::from_secs(10);

/// Starts the symbolising thread (when sampling is on).
pub(crate) fn start_symbolizer(shared: &'static crate::state::shared::Shared) {
    if !enabled() {
        return;
    }
    let (tx, rx) = std::sync::mpsc::sync_channel::<Job>(PENDING_SAMPLES);
    let thread = std::thread::Builder::new()
        .name("taskscope-stacks".into())
        .spawn(move || {
            let mut symbolizer = Symbolizer::default();
            // Reading the binary's debug info takes a while the first time (up to seconds for
            // a large debug build): done now, so the first blocked worker's stacks are not late.
            symbolizer.resolve(start_symbolizer as *const () as usize, true);
            READY.store(true, std::sync::atomic::Ordering::Release);
            loop {
                // Idle a while: the debug info goes (tens of MB of maps and tables), to be read
                // again by the next job.
                let first = match rx.recv_timeout(FORGET_AFTER) {
                    Ok(job) => job,
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                        crate::stacks::forget_debug_info();
                        match rx.recv() {
                            Ok(job) => job,
                            Err(_) => break,
                        }
                    }
                    Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
                };
                let batch: Vec<_> = std::iter::once(first)
                    .chain(rx.try_iter())
                    .map(|job| symbolizer.symbolize_job(job))
                    .collect();
                let mut registry = crate::state::registry::lock(shared);
                for done in batch {
                    match done {
                        Symbolized::Blocked(id, sample) => registry.stacks.add(id, sample),
                        Symbolized::Profile(samples) => {
                            // Tasks spawned since the last sync are known only after it.
                            registry.sync_events(shared);
                            for sample in &samples {
                                fold_profile_sample(&mut registry, &mut symbolizer, sample);
                            }
                        }
                        Symbolized::Foreign(id, in_poll) => {
                            if let Some((id, thread, top)) =
                                registry.stacks.add_foreign(id, in_poll)
                            {
                                if let Some(w) = registry.warnings.get_mut(id) {
                                    let location = top.map(|f| f.to_string());
                                    crate::state::warnings::locate_uninstrumented(
                                        w, &thread, location,
                                    );
                                }
                            }
                        }
                    }
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
    send(Job::Blocked(id, raw));
}

/// Hands the samples of the threads that may be the worker stuck in an uninstrumented task of
/// warning `id` to the symbolising thread; never waits.
pub(crate) fn submit_foreign(id: u64, samples: Vec<(Thread, RawStack)>) {
    send(Job::Foreign(id, samples));
}

/// Hands a round of the CPU profiler's samples to the symbolising thread; never waits.
/// Returns whether it took them (it has room for `PENDING_SAMPLES` jobs).
pub(crate) fn submit_profile(samples: Vec<RawStack>) -> bool {
    send(Job::Profile(samples))
}

fn send(job: Job) -> bool {
    match &*SYMBOLIZER.lock().unwrap_or_else(|e| e.into_inner()) {
        Some((tx, _)) => tx.try_send(job).is_ok(),
        None => false,
    }
}

/// Folds a profiler's sample into the registry's profile: its addresses' frames come from
/// the symbolizer's cache (resolved before the registry was locked), its labels from the
/// registry, each once.
fn fold_profile_sample(
    registry: &mut crate::state::registry::Registry,
    symbolizer: &mut Symbolizer,
    raw: &RawStack,
) {
    let [task, start] = raw.tags;
    let task = (start != 0).then_some(task);
    // The store cannot ask the registry it is part of: a task it has no label for yet is
    // looked up first (once per task).
    let label = task
        .filter(|&id| !registry.profile.knows_task(id))
        .map(|id| registry.profile_label(id));
    registry.profile.add_sample(
        &addresses(raw),
        task,
        |addr, exact| symbolizer.resolve(addr, exact),
        || label.expect("looked up for a task the store does not know"),
    );
}

/// A sample's addresses, innermost first. The unwinder starts in the handler; the interrupted
/// instruction is where the thread really was (exact), and above it the return addresses
/// (resolved one byte back, inside the call).
fn addresses(raw: &RawStack) -> Vec<(usize, bool)> {
    let mut out = vec![(raw.pc, true)];
    if let Some(i) = raw.ips.iter().position(|&ip| ip == raw.pc) {
        out.extend(raw.ips[i + 1..].iter().map(|&ip| (ip, false)));
    }
    out
}

/// A job's result.
enum Symbolized {
    Blocked(u64, StackSample),
    /// The threads found inside a task poll, with their application frames.
    Foreign(u64, Vec<(Thread, StackSample)>),
    /// The samples, their addresses now in the cache.
    Profile(Vec<RawStack>),
}

/// Symbolises what was submitted and stops the thread.
pub(crate) fn stop_symbolizer() {
    let taken = SYMBOLIZER.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some((tx, thread)) = taken {
        drop(tx);
        let _ = thread.join();
    }
}

/// Turns raw samples into application frames, with a cache of resolved addresses.
#[derive(Debug, Default)]
pub(super) struct Symbolizer {
    cache: HashMap<(usize, bool), Vec<StackFrame>>,
    /// The working directory, with a trailing `/`.
    cwd: Option<String>,
}

impl Symbolizer {
    fn symbolize_job(&mut self, job: Job) -> Symbolized {
        match job {
            Job::Blocked(id, raw) => Symbolized::Blocked(id, self.symbolize(&raw)),
            Job::Foreign(id, samples) => {
                let in_poll = samples
                    .into_iter()
                    .filter_map(|(thread, raw)| {
                        let frames = self.frames(&raw);
                        in_task_poll(&frames).then(|| (thread, self.app_frames(frames)))
                    })
                    .collect();
                Symbolized::Foreign(id, in_poll)
            }
            Job::Profile(samples) => {
                // Resolving a new address can take a while: done here, before the registry
                // is locked; folding then finds every address in the cache.
                for raw in &samples {
                    for (addr, exact) in addresses(raw) {
                        self.warm(addr, exact);
                    }
                }
                Symbolized::Profile(samples)
            }
        }
    }

    /// The sample as a stack of the application's frames (count 1).
    pub(super) fn symbolize(&mut self, raw: &RawStack) -> StackSample {
        let frames = self.frames(raw);
        self.app_frames(frames)
    }

    /// Every frame of the sample, innermost first.
    fn frames(&mut self, raw: &RawStack) -> Vec<StackFrame> {
        addresses(raw)
            .into_iter()
            .flat_map(|(ip, exact)| self.resolve(ip, exact))
            .collect()
    }

    fn app_frames(&mut self, frames: Vec<StackFrame>) -> StackSample {
        let mut sample = split_app_frames(frames);
        self.relativize(&mut sample.frames);
        sample
    }

    /// Resolves an address into the cache, copying nothing.
    fn warm(&mut self, ip: usize, exact: bool) {
        self.cache
            .entry((ip, exact))
            .or_insert_with(|| symbolize(if exact { ip } else { ip.saturating_sub(1) }));
    }

    fn resolve(&mut self, ip: usize, exact: bool) -> Vec<StackFrame> {
        self.warm(ip, exact);
        self.cache[&(ip, exact)].clone()
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

    use taskscope_wire::StackFrame;

    use super::Symbolizer;
    use crate::stacks::{capture, current_tid, set_enabled, symbolize};

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
            .flat_map(symbolize)
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
