//! `Builder`, `Guard`, `init()` and the environment variables of DESIGN.md §5.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering::*};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use taskscope_wire::{Snapshot, TaskState, Warning, WarningKind};

use crate::registry::{self, Shared};
use crate::{clock, collector, probe, watchdog};

const DEFAULT_BLOCKED: Duration = Duration::from_millis(10);
const DEFAULT_LONG_WAIT: Duration = Duration::from_millis(1000);
const DEFAULT_RETAINED: usize = 1000;

/// What can go wrong when starting taskscope.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// An environment variable has a value taskscope cannot use.
    InvalidEnv {
        /// The variable.
        var: &'static str,
        /// Its value.
        value: String,
        /// What it must be.
        expected: &'static str,
    },
    /// A report path whose extension names no format this version can write.
    UnsupportedReportFormat(PathBuf),
    /// A Guard is already alive in this process; taskscope observes one process once.
    AlreadyRunning,
    /// Starting a taskscope thread failed.
    Io(std::io::Error),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::InvalidEnv { var, value, expected } => {
                write!(f, "{var}={value:?} is invalid: expected {expected}")
            }
            Error::UnsupportedReportFormat(path) => write!(
                f,
                "cannot write a report to {}: the format is chosen by extension and this version writes .json",
                path.display()
            ),
            Error::AlreadyRunning => f.write_str("taskscope is already initialised in this process"),
            Error::Io(e) => write!(f, "cannot start taskscope's threads: {e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io(e) => Some(e),
            _ => None,
        }
    }
}

/// Configures and starts taskscope.
///
/// ```
/// use std::time::Duration;
/// let _guard = taskscope::Builder::new()
///     .blocked_threshold(Duration::from_millis(20))
///     .init();
/// ```
#[derive(Debug, Clone)]
pub struct Builder {
    blocked_threshold: Duration,
    long_wait_threshold: Duration,
    report: Option<PathBuf>,
    retained_tasks: usize,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            blocked_threshold: DEFAULT_BLOCKED,
            long_wait_threshold: DEFAULT_LONG_WAIT,
            report: None,
            retained_tasks: DEFAULT_RETAINED,
        }
    }
}

impl Builder {
    /// Defaults: 10 ms blocked threshold, 1 s long-wait threshold, no report, 1,000 finished
    /// tasks kept in full (all of them stay counted in their groups).
    pub fn new() -> Self {
        Builder::default()
    }

    /// The defaults overridden by `TASKSCOPE_BLOCKED_MS`, `TASKSCOPE_LONG_WAIT_MS` and
    /// `TASKSCOPE_REPORT`. Returns every invalid variable as an error.
    pub fn from_env() -> Result<Self, Error> {
        let (builder, mut errors) = Builder::from_env_lenient();
        match errors.is_empty() {
            true => Ok(builder),
            false => Err(errors.remove(0)),
        }
    }

    /// The defaults overridden by every valid variable, and the errors of the invalid ones.
    fn from_env_lenient() -> (Self, Vec<Error>) {
        let mut builder = Builder::new();
        let mut errors = Vec::new();
        match env_ms("TASKSCOPE_BLOCKED_MS") {
            Ok(Some(d)) => builder.blocked_threshold = d,
            Ok(None) => {}
            Err(e) => errors.push(e),
        }
        match env_ms("TASKSCOPE_LONG_WAIT_MS") {
            Ok(Some(d)) => builder.long_wait_threshold = d,
            Ok(None) => {}
            Err(e) => errors.push(e),
        }
        if let Some(path) = std::env::var_os("TASKSCOPE_REPORT").filter(|p| !p.is_empty()) {
            let path = PathBuf::from(path);
            match check_report_path(&path) {
                Ok(()) => builder.report = Some(path),
                Err(e) => errors.push(e),
            }
        }
        (builder, errors)
    }

    /// A poll longer than this is a `blocked_worker` (default 10 ms).
    pub fn blocked_threshold(mut self, threshold: Duration) -> Self {
        self.blocked_threshold = threshold;
        self
    }

    /// A lock or semaphore wait longer than this is a `long_wait` (default 1 s).
    pub fn long_wait_threshold(mut self, threshold: Duration) -> Self {
        self.long_wait_threshold = threshold;
        self
    }

    /// Writes a report here when the Guard drops; the format follows the extension (`.json`).
    pub fn report(mut self, path: impl Into<PathBuf>) -> Self {
        self.report = Some(path.into());
        self
    }

    /// How many finished tasks are kept in full for snapshots (default 1,000). Every finished task
    /// is still counted in its group, so memory stays bounded however many tasks a run spawns.
    pub fn retained_tasks(mut self, n: usize) -> Self {
        self.retained_tasks = n;
        self
    }

    /// Starts taskscope, or says why it cannot.
    pub fn try_init(self) -> Result<Guard, Error> {
        if let Some(path) = &self.report {
            check_report_path(path)?;
        }
        let shared = registry::shared();
        if shared.enabled.swap(true, AcqRel) {
            return Err(Error::AlreadyRunning);
        }
        clock::warm_up();
        let now = clock::now();
        shared.epoch.store(now, Relaxed);
        let unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        shared.start_unix_ms.store(unix_ms, Relaxed);
        let threshold_ns = u64::try_from(self.blocked_threshold.as_nanos())
            .unwrap_or(u64::MAX)
            .max(1);
        crate::registry::BLOCKED_NS.store(threshold_ns, Relaxed);
        let long_wait_ns = u64::try_from(self.long_wait_threshold.as_nanos())
            .unwrap_or(u64::MAX)
            .max(1);
        crate::registry::LONG_WAIT_NS.store(long_wait_ns, Relaxed);
        probe::GENERATION.fetch_add(1, Relaxed);
        shared.registry().reset(self.retained_tasks);

        let stop = Arc::new(AtomicBool::new(false));
        let spawn = |name: &str, f: fn(&'static Shared, Arc<AtomicBool>)| {
            let stop = stop.clone();
            std::thread::Builder::new()
                .name(name.into())
                .spawn(move || f(shared, stop))
        };
        let threads = match (
            spawn("taskscope-watchdog", watchdog::run),
            spawn("taskscope-collector", collector::run),
        ) {
            (Ok(a), Ok(b)) => vec![a, b],
            (a, b) => {
                stop.store(true, Release);
                let mut error = None;
                for t in [a, b] {
                    match t {
                        Ok(t) => {
                            t.thread().unpark();
                            let _ = t.join();
                        }
                        Err(e) => error = Some(e),
                    }
                }
                shared.enabled.store(false, Release);
                return Err(Error::Io(error.expect("one spawn failed")));
            }
        };
        Ok(Guard {
            inner: Some(GuardInner {
                shared,
                stop,
                threads,
                report: self.report,
            }),
        })
    }

    /// Starts taskscope; problems are logged (as `tracing` events and on stderr) and taskscope
    /// runs with what it could set up, or not at all — it never panics.
    pub fn init(self) -> Guard {
        match self.try_init() {
            Ok(guard) => guard,
            Err(Error::UnsupportedReportFormat(path)) => {
                log_error(&Error::UnsupportedReportFormat(path));
                Builder {
                    report: None,
                    ..Builder::new()
                }
                .init()
            }
            Err(e) => {
                log_error(&e);
                Guard { inner: None }
            }
        }
    }
}

fn log_error(e: &dyn std::fmt::Display) {
    tracing::error!(target: "taskscope", "{e}");
    eprintln!("taskscope: {e}");
}

fn env_ms(var: &'static str) -> Result<Option<Duration>, Error> {
    let Some(value) = std::env::var_os(var) else {
        return Ok(None);
    };
    let value = value.to_string_lossy().into_owned();
    match value.trim().parse::<u64>() {
        Ok(ms) if ms > 0 => Ok(Some(Duration::from_millis(ms))),
        _ => Err(Error::InvalidEnv {
            var,
            value,
            expected: "a whole number of milliseconds above 0",
        }),
    }
}

fn check_report_path(path: &Path) -> Result<(), Error> {
    match path.extension().and_then(|e| e.to_str()) {
        Some("json") => Ok(()),
        _ => Err(Error::UnsupportedReportFormat(path.to_path_buf())),
    }
}

/// Starts taskscope configured from the environment (DESIGN.md §5). A bad variable is logged and
/// its default used instead.
///
/// Keep the returned [`Guard`] alive as long as taskscope should observe; dropping it stops
/// taskscope's threads, raises `tasks_alive_at_exit` and writes the report, if one was asked for.
///
/// ```
/// let _guard = taskscope::init();
/// ```
pub fn init() -> Guard {
    let (builder, errors) = Builder::from_env_lenient();
    for e in &errors {
        log_error(&format!("{e}; using the default"));
    }
    builder.init()
}

/// Like [`init`], but a bad environment variable is an error.
pub fn try_init() -> Result<Guard, Error> {
    Builder::from_env()?.try_init()
}

/// Keeps taskscope running; dropping it stops taskscope and writes the report.
#[derive(Debug)]
#[must_use = "taskscope stops when the Guard is dropped"]
pub struct Guard {
    inner: Option<GuardInner>,
}

#[derive(Debug)]
struct GuardInner {
    shared: &'static Shared,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    report: Option<PathBuf>,
}

impl Guard {
    /// Whether this Guard runs taskscope (false when `init()` could not start it).
    pub fn is_active(&self) -> bool {
        self.inner.is_some()
    }

    /// Stops taskscope now and returns the final snapshot (the one the report is made of).
    pub fn finish(mut self) -> Option<Snapshot> {
        self.stop()
    }

    fn stop(&mut self) -> Option<Snapshot> {
        let inner = self.inner.take()?;
        inner.stop.store(true, Release);
        for t in &inner.threads {
            t.thread().unpark();
        }
        for t in inner.threads {
            let _ = t.join();
        }
        let shared = inner.shared;
        watchdog::scan(shared);
        let snapshot = {
            let mut registry = shared.registry();
            registry.retire_finished(shared);
            alive_at_exit(shared, &mut registry);
            collector::build(shared, &registry)
        };
        shared.enabled.store(false, Release);
        if let Some(path) = inner.report {
            if let Err(e) = write_report(&path, &snapshot) {
                log_error(&format!(
                    "cannot write the report to {}: {e}",
                    path.display()
                ));
            }
        }
        Some(snapshot)
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.stop();
    }
}

fn alive_at_exit(shared: &'static Shared, registry: &mut registry::Registry) {
    let mut alive: Vec<_> = registry
        .tasks(shared)
        .into_iter()
        .filter(|t| t.state != TaskState::Done)
        .collect();
    if alive.is_empty() {
        return;
    }
    alive.sort_by_key(|t| t.created_ms);
    let longest: Vec<String> = alive
        .iter()
        .take(5)
        .map(|t| format!("`{}` ({})", t.name, t.location))
        .collect();
    let mut w = Warning::new(
        0,
        WarningKind::TasksAliveAtExit,
        shared.ms_at(clock::now()),
        format!(
            "{} tasks were still alive when taskscope stopped; longest-lived: {}",
            alive.len(),
            longest.join(", ")
        ),
    );
    w.count = Some(alive.len() as u64);
    w.tasks = alive.iter().take(5).map(|t| t.id).collect();
    registry.warnings.raise(w);
}

fn write_report(path: &Path, snapshot: &Snapshot) -> std::io::Result<()> {
    let report = taskscope_report::json::render(snapshot);
    std::fs::write(path, report)
}
