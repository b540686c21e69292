//! Tests that fail on hazards: `#[taskscope::test]` and `taskscope::check`.
//!
//! The test's body runs as a scope (`taskscope::scope`, named after the test) on a runtime
//! built for it; the findings are the warnings of the fatal kinds about the scope and the
//! tasks it spawned (their parents lead to it), so the tasks of other tests running at the same
//! time are never counted. The tests of a process share one Guard (taskscope is process-wide),
//! started by the first and stopped by the last; it detects blocked workers at the lowest
//! threshold of the tests running, and each test counts only the blocks that reach its own.
//! `cargo nextest` runs each test in a process of its own.

use std::collections::HashSet;
use std::fmt;
use std::future::Future;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use taskscope_wire::{Snapshot, Warning, WarningKind};

use crate::builder::Builder;
use crate::guard::Guard;

/// The warning kinds that fail a test unless allowed.
pub const FATAL: [WarningKind; 8] = [
    WarningKind::BlockedWorker,
    WarningKind::Deadlock,
    WarningKind::LockOrderInversion,
    WarningKind::LockHeldAcrossAwait,
    WarningKind::StaleUpdate,
    WarningKind::TaskPanicked,
    WarningKind::LostWaker,
    WarningKind::TasksAliveAtExit,
];

/// How a test runs: what `#[taskscope::test]`'s arguments say.
#[derive(Clone, Copy, Debug)]
pub struct Config {
    /// The test's name (its path), the name of the scope its body runs in.
    pub name: &'static str,
    /// A multi-thread runtime (else current-thread).
    pub multi_thread: bool,
    /// Its workers (default 2).
    pub worker_threads: Option<usize>,
    /// Starts with tokio's clock paused (current-thread only).
    pub start_paused: bool,
    /// A poll longer than this blocks a worker (`"5ms"`, `"500us"`, `"1s"`; default 10 ms).
    pub blocked_threshold: Option<&'static str>,
    /// Warning kinds that do not fail the test (`"lock_held_across_await"`, ...).
    pub allow: &'static [&'static str],
    /// Warning kinds beyond [`FATAL`] that fail it too (`"long_wait"`, `"self_wakes"`, ...).
    pub fail_on: &'static [&'static str],
}

impl Config {
    /// A multi-thread test named `name`, with the defaults.
    pub const fn new(name: &'static str) -> Config {
        Config {
            name,
            multi_thread: true,
            worker_threads: None,
            start_paused: false,
            blocked_threshold: None,
            allow: &[],
            fail_on: &[],
        }
    }
}

/// What a test's code did that it should not have: the warnings of [`FATAL`] kinds about the
/// test's own tasks.
#[derive(Clone, Debug, Default)]
pub struct Findings {
    /// The test's name.
    pub test: String,
    /// The warnings, oldest first.
    pub warnings: Vec<Warning>,
    /// Where the tasks of a `deadlock` or `long_wait` among them waited, by warning id.
    pub chains: std::collections::BTreeMap<u64, Vec<taskscope_wire::DumpedTask>>,
}

impl Findings {
    /// Whether nothing was found.
    pub fn is_clean(&self) -> bool {
        self.warnings.is_empty()
    }

    /// Panics with every finding — kind, message, where, how to fix it — unless there is none.
    #[track_caller]
    pub fn assert_clean(&self) {
        if !self.is_clean() {
            panic!("{self}");
        }
    }
}

impl fmt::Display for Findings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_clean() {
            return write!(f, "taskscope found nothing in {}", self.test);
        }
        writeln!(
            f,
            "taskscope found {} problem{} in {}:",
            self.warnings.len(),
            if self.warnings.len() == 1 { "" } else { "s" },
            self.test
        )?;
        for w in &self.warnings {
            writeln!(f, "\n{}: {}", w.kind, w.message)?;
            if let Some(at) = &w.location {
                writeln!(f, "  at {at}")?;
            }
            for task in self.chains.get(&w.id).into_iter().flatten() {
                if let Some(chain) = task.first_chain() {
                    let at: Vec<String> = chain
                        .frames
                        .iter()
                        .filter(|fr| !fr.in_dependency())
                        .map(|fr| fr.at())
                        .collect();
                    writeln!(f, "  task `{}` waits in {}", task.name, at.join(" <- "))?;
                }
            }
            writeln!(f, "  fix: {}", w.hint())?;
        }
        Ok(())
    }
}

/// Runs `body` as the test `config` describes and returns what taskscope found in it; the
/// test's own panic, if any, is resumed after taskscope stopped.
///
/// ```
/// let findings = taskscope::check(taskscope::testing::Config::new("blocks"), async {
///     std::thread::sleep(std::time::Duration::from_millis(50)); // blocks the worker
/// });
/// assert_eq!(findings.warnings[0].kind, taskscope::WarningKind::BlockedWorker);
/// ```
#[track_caller]
pub fn check<F: Future>(config: Config, body: F) -> Findings {
    let (findings, outcome) = run_body(config, body, std::panic::Location::caller());
    if let Ended::Panicked(panic) = outcome {
        resume_unwind(panic);
    }
    findings
}

/// How a test's body ended.
enum Ended<T> {
    Finished(T),
    /// It never would: a deadlock was raised (the wait for it was given up).
    Deadlocked,
    Panicked(Box<dyn std::any::Any + Send>),
}

/// `#[taskscope::test]`'s body: [`check`], then a failure for any finding.
#[doc(hidden)]
#[track_caller]
pub fn run<F: Future>(config: Config, body: F) -> F::Output {
    let (findings, outcome) = run_body(config, body, std::panic::Location::caller());
    match outcome {
        Ended::Finished(output) => {
            findings.assert_clean();
            output
        }
        Ended::Deadlocked => panic!("the test deadlocked: {findings}"),
        Ended::Panicked(panic) => {
            if !findings.is_clean() {
                eprintln!("{findings}");
            }
            resume_unwind(panic)
        }
    }
}

/// `at`: the test's location, where its scope says it was created.
fn run_body<F: Future>(
    config: Config,
    body: F,
    at: &'static std::panic::Location<'static>,
) -> (Findings, Ended<F::Output>) {
    let runtime = runtime(&config);
    let threshold = config
        .blocked_threshold
        .map(|t| parse_duration(t).unwrap_or_else(|e| panic!("blocked_threshold: {e}")));
    let lease = Lease::take(threshold, runtime.handle());
    // A deadlocked body never finishes: a thread of ours watches for a deadlock of the test's
    // own tasks and, once their chains are in, ends the wait.
    let scope_id = Arc::new(AtomicU64::new(0));
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let stop = Arc::new(AtomicBool::new(false));
    let (watching, scope) = (stop.clone(), scope_id.clone());
    let watcher = std::thread::spawn(move || {
        while !watching.load(Relaxed) {
            std::thread::sleep(Duration::from_millis(50));
            let snapshot = crate::snapshot();
            let ours = ours(&snapshot, scope.load(Relaxed));
            let deadlock = snapshot
                .warnings_of(WarningKind::Deadlock)
                .find(|w| w.ongoing && w.tasks.iter().any(|t| ours.contains(t)));
            if let Some(id) = deadlock.map(|w| w.id) {
                for _ in 0..60 {
                    if crate::snapshot().warning_chains.contains_key(&id) {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                let _ = tx.send(());
                return;
            }
        }
    });
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        runtime.block_on(async {
            let mut test = pin!(crate::task::scope::scope_at(
                config.name.into(),
                at,
                async {
                    scope_id.store(crate::state::worker::current_task(), Relaxed);
                    body.await
                }
            ));
            let mut deadlocked = pin!(rx);
            std::future::poll_fn(|cx| {
                if let Poll::Ready(output) = test.as_mut().poll(cx) {
                    return Poll::Ready(Some(output));
                }
                match deadlocked.as_mut().poll(cx) {
                    Poll::Ready(Ok(())) => Poll::Ready(None),
                    _ => Poll::Pending,
                }
            })
            .await
        })
    }));
    stop.store(true, Relaxed);
    let _ = watcher.join();
    // Before the runtime goes: its tasks still running are the test's tasks alive at its end.
    let snapshot = crate::snapshot();
    let findings = findings(&config, &snapshot, scope_id.load(Relaxed), lease.0);
    drop(runtime);
    drop(lease);
    let outcome = match outcome {
        Ok(Some(output)) => Ended::Finished(output),
        Ok(None) => Ended::Deadlocked,
        Err(panic) => Ended::Panicked(panic),
    };
    (findings, outcome)
}

/// The Guard the taskscope tests of a process share: started by the first one, stopped when
/// the last one ends. Its blocked-worker threshold is the lowest of the running tests'; each
/// test counts only the blocks that reach its own.
static SHARED: Mutex<Option<SharedGuard>> = Mutex::new(None);

struct SharedGuard {
    _guard: Guard,
    /// The threshold of a test that asks for none (the Builder's: its default or
    /// `TASKSCOPE_BLOCKED_THRESHOLD`), in nanoseconds.
    default_ns: u64,
    /// The blocked threshold of each running test, in nanoseconds.
    thresholds: Vec<u64>,
}

impl SharedGuard {
    /// The detectors' threshold: the lowest a running test asked for.
    fn apply(&self) {
        if let Some(&lowest) = self.thresholds.iter().min() {
            crate::state::shared::THRESHOLDS
                .blocked_ns
                .store(lowest, Relaxed);
        }
    }
}

/// A test's use of the shared Guard, with the test's blocked threshold in nanoseconds.
struct Lease(u64);

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX).max(1)
}

impl Lease {
    fn take(threshold: Option<Duration>, runtime: &tokio::runtime::Handle) -> Lease {
        loop {
            let mut shared = SHARED.lock().unwrap_or_else(|e| e.into_inner());
            match shared.as_mut() {
                Some(s) => {
                    let own = threshold.map_or(s.default_ns, nanos);
                    s.thresholds.push(own);
                    s.apply();
                    return Lease(own);
                }
                None => {
                    let builder = Builder::new()
                        .no_server()
                        .retained_tasks(100_000)
                        .attach(runtime);
                    match builder.try_init() {
                        Ok(guard) => {
                            let default_ns =
                                crate::state::shared::THRESHOLDS.blocked_ns.load(Relaxed);
                            let own = threshold.map_or(default_ns, nanos);
                            let s = SharedGuard {
                                _guard: guard,
                                default_ns,
                                thresholds: vec![own],
                            };
                            s.apply();
                            *shared = Some(s);
                            return Lease(own);
                        }
                        // A Guard that is not the tests' (a plain test's): wait for it.
                        Err(crate::Error::AlreadyRunning) => {}
                        Err(e) => panic!("taskscope could not start for the test: {e}"),
                    }
                }
            }
            drop(shared);
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let mut shared = SHARED.lock().unwrap_or_else(|e| e.into_inner());
        let last = shared.as_mut().is_some_and(|s| {
            if let Some(at) = s.thresholds.iter().position(|&t| t == self.0) {
                s.thresholds.swap_remove(at);
            }
            s.apply();
            s.thresholds.is_empty()
        });
        if last {
            // Stops taskscope (outside no lock of its own: the Guard takes the registry's).
            let ended = shared.take();
            drop(shared);
            drop(ended);
        }
    }
}

fn runtime(config: &Config) -> tokio::runtime::Runtime {
    let mut builder = match config.multi_thread {
        true => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(config.worker_threads.unwrap_or(2));
            b
        }
        false => tokio::runtime::Builder::new_current_thread(),
    };
    builder.enable_all();
    if config.start_paused {
        builder.start_paused(true);
    }
    builder.build().expect("a runtime for the test")
}

/// The test's scope `scope` (finished scopes are not kept among the tasks) and every task
/// whose parents lead to it.
fn ours(snapshot: &Snapshot, scope: u64) -> HashSet<u64> {
    let parents: std::collections::HashMap<u64, Option<u64>> =
        snapshot.tasks.iter().map(|t| (t.id, t.parent)).collect();
    let mut ours: HashSet<u64> = HashSet::from([scope]);
    for &id in parents.keys() {
        let mut at = Some(id);
        let mut hops = 0;
        while let Some(task) = at {
            if task == scope {
                ours.insert(id);
                break;
            }
            at = parents.get(&task).copied().flatten();
            hops += 1;
            if hops > 1024 {
                break;
            }
        }
    }
    ours
}

/// The fatal, not allowed warnings about the test's scope `scope` and the tasks under it.
fn findings(config: &Config, snapshot: &Snapshot, scope: u64, blocked_ns: u64) -> Findings {
    let ours = ours(snapshot, scope);
    let about_us = |w: &Warning| {
        w.task.is_some_and(|t| ours.contains(&t)) || w.tasks.iter().any(|t| ours.contains(t))
    };
    let allowed = |kind: WarningKind| config.allow.contains(&kind.as_str());
    let panicked: HashSet<u64> = snapshot
        .tasks
        .iter()
        .filter(|t| t.outcome == Some(taskscope_wire::Outcome::Panicked))
        .map(|t| t.id)
        .collect();
    // The Guard's `tasks_alive_at_exit` counts every task of the process: this test's own are
    // told apart here.
    let mut warnings: Vec<Warning> = snapshot
        .warnings
        .iter()
        .filter(|w| {
            (FATAL.contains(&w.kind) || config.fail_on.contains(&w.kind.as_str()))
                && !allowed(w.kind)
        })
        .filter(|w| w.kind != WarningKind::TasksAliveAtExit && about_us(w))
        // A worker the machine stalled (runnable, without a CPU) was not blocked by the test.
        .filter(|w| {
            !w.message
                .contains("waiting for a CPU that other threads had")
        })
        // Nor one a panicking task held while the panic hook printed its backtrace: the
        // panic is the finding (or is allowed).
        .filter(|w| {
            w.kind != WarningKind::BlockedWorker || !w.task.is_some_and(|t| panicked.contains(&t))
        })
        // The Guard detects at the lowest threshold of the tests running; this test counts
        // the blocks that reach its own.
        .filter(|w| {
            w.kind != WarningKind::BlockedWorker || w.duration_ns.is_none_or(|d| d >= blocked_ns)
        })
        .cloned()
        .collect();
    let alive: Vec<&taskscope_wire::Task> = snapshot
        .tasks
        .iter()
        .filter(|t| t.id != scope && ours.contains(&t.id) && t.outcome.is_none())
        .collect();
    if !alive.is_empty() && !allowed(WarningKind::TasksAliveAtExit) {
        let listed: Vec<String> = alive
            .iter()
            .take(5)
            .map(|t| format!("`{}` ({})", t.name, t.location))
            .collect();
        let mut w = Warning::new(
            0,
            WarningKind::TasksAliveAtExit,
            snapshot.taken_at_ms,
            format!(
                "{} {} of the test {} still running when it ended: {}",
                alive.len(),
                if alive.len() == 1 { "task" } else { "tasks" },
                if alive.len() == 1 { "was" } else { "were" },
                listed.join(", ")
            ),
        );
        w.tasks = alive.iter().map(|t| t.id).collect();
        w.location = Some(alive[0].location.clone());
        warnings.push(w);
    }
    let chains = warnings
        .iter()
        .filter_map(|w| Some((w.id, snapshot.warning_chains.get(&w.id)?.clone())))
        .collect();
    Findings {
        test: config.name.to_string(),
        warnings,
        chains,
    }
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let at = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(at);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{s}` is not a duration like 5ms"))?;
    let seconds = match unit {
        "s" => value,
        "ms" => value / 1e3,
        "us" | "µs" => value / 1e6,
        _ => return Err(format!("`{s}`: use s, ms or us")),
    };
    Ok(Duration::from_secs_f64(seconds))
}
