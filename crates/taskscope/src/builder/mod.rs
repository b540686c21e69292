//! `Builder`, `init()` and the environment variables of DESIGN.md §5: configuring and starting
//! taskscope (the threads, the sinks, the runtimes to attach).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering::*};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::runtime::Handle;

use crate::base::error::{log_error, Error};
use crate::export::prometheus::Endpoint;
use crate::export::recorder::Recorder;
use crate::export::server::{parse_bind, BindAddr, Server};
use crate::export::Exporter;
use crate::guard::{Guard, GuardInner};
use crate::state::shared::{self};
use crate::{base::clock, state::attach, threads::collector, threads::watchdog};

mod env;

use env::check_report_path;

const DEFAULT_BLOCKED: Duration = Duration::from_millis(10);
const DEFAULT_LONG_WAIT: Duration = Duration::from_millis(1000);
/// Live tasks of one group from which a sudden rise is an `unbounded_spawn`.
const DEFAULT_UNBOUNDED_ALIVE: u64 = 10_000;
const DEFAULT_RETAINED: usize = 1000;
const DEFAULT_SAMPLE: Duration = Duration::from_millis(1);

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
    unbounded_alive: u64,
    report: Option<PathBuf>,
    retained_tasks: usize,
    bind: Result<Option<BindAddr>, String>,
    token: Option<String>,
    record: Option<PathBuf>,
    record_max_bytes: Option<u64>,
    prometheus: Option<String>,
    stacks: bool,
    profile_hz: u32,
    sample_interval: Duration,
    attach: Vec<tokio::runtime::Handle>,
}

/// The live stream's default address.
pub const DEFAULT_BIND: &str = "127.0.0.1:6670";

impl Default for Builder {
    fn default() -> Self {
        Builder {
            blocked_threshold: DEFAULT_BLOCKED,
            long_wait_threshold: DEFAULT_LONG_WAIT,
            unbounded_alive: DEFAULT_UNBOUNDED_ALIVE,
            report: None,
            retained_tasks: DEFAULT_RETAINED,
            bind: parse_bind(DEFAULT_BIND),
            token: None,
            record: None,
            record_max_bytes: None,
            prometheus: None,
            stacks: crate::stacks::SUPPORTED,
            profile_hz: 0,
            sample_interval: DEFAULT_SAMPLE,
            attach: Vec::new(),
        }
    }
}

impl Builder {
    /// Defaults: the live stream on 127.0.0.1:6670, 10 ms blocked threshold, 1 s long-wait
    /// threshold, no report, no recording, 1,000 finished tasks kept in full (all of them stay
    /// counted in their groups).
    pub fn new() -> Self {
        Builder::default()
    }

    /// Serves the live stream on `addr` (`host:port`, `unix:/path`, or `off`); default
    /// 127.0.0.1:6670. An address beyond loopback also needs [`allow_remote`](Self::allow_remote).
    /// Port 0 picks a free port: see [`Guard::local_addr`].
    pub fn bind(mut self, addr: &str) -> Self {
        self.bind = parse_bind(addr);
        self
    }

    /// Samples the stack of a blocked worker while it is blocked, so `blocked_worker` names the
    /// blocking call (on by default where supported: Linux on x86_64 and aarch64; elsewhere
    /// turning it on logs that it is not available and changes nothing else).
    pub fn stacks(mut self, on: bool) -> Self {
        self.stacks = on;
        self
    }

    /// Profiles the CPU of the threads that poll tasks: `hz` samples a second per thread
    /// (99 is a good rate; at most 10,000), each attributed to the task group and scope whose
    /// poll it interrupted, and threads outside any poll counted as idle (`TASKSCOPE_PROFILE_HZ`;
    /// 0, the default, is off and starts nothing). The profile is in
    /// [`Snapshot::profile`](crate::Snapshot::profile), the stream, recordings and reports
    /// (`--format pprof`, `--format folded`). Linux on x86_64 and aarch64, like
    /// [`stacks`](Self::stacks), which profiling turns on.
    pub fn profile_hz(mut self, hz: u32) -> Self {
        self.profile_hz = hz.min(crate::threads::profiler::MAX_HZ);
        self
    }

    /// No live stream server.
    pub fn no_server(mut self) -> Self {
        self.bind = Ok(None);
        self
    }

    /// Allows a stream address beyond loopback; clients must then present `token`.
    pub fn allow_remote(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Records the stream to a file, readable by `taskscope replay` and `taskscope report`.
    pub fn record(mut self, path: impl Into<PathBuf>) -> Self {
        self.record = Some(path.into());
        self
    }

    /// Serves Prometheus metrics at `http://ADDR/metrics` (off by default; a bare port is on
    /// loopback). Like the stream, beyond loopback only with an access token
    /// ([`allow_remote`](Builder::allow_remote)), which every scrape must present as
    /// `Authorization: Bearer TOKEN`.
    pub fn prometheus(mut self, addr: &str) -> Self {
        self.prometheus = Some(addr.to_string());
        self
    }

    /// Caps the recording at about `bytes`: the full file is renamed `PATH.1` (replacing an older
    /// one) and a new one started, so about twice the cap stays on disk.
    ///
    /// A file is rotated at the first collector tick (100 ms) that finds it at or past the cap,
    /// so it can exceed the cap by one tick's frames; a new file starts with a key frame (the
    /// whole state). A cap smaller than that rotates at every tick, and `PATH.1` then holds only
    /// the tick before.
    pub fn record_max_bytes(mut self, bytes: u64) -> Self {
        self.record_max_bytes = Some(bytes.max(1));
        self
    }

    /// A poll longer than this is a `blocked_worker` (default 10 ms).
    pub fn blocked_threshold(mut self, threshold: Duration) -> Self {
        self.blocked_threshold = threshold;
        self
    }

    /// How often a busy task's polls are timed and its wakes measured (default 1 ms;
    /// `TASKSCOPE_SAMPLE_US`).
    ///
    /// Timing a poll costs two clock reads (12–14 ns each on the AMD EPYC VM taskscope is
    /// measured on) and binning the sample; measuring a wake, a third read and a
    /// reference-counted waker. So a task measures in windows: the first poll at least this
    /// long after the last window opened opens one, and the next poll — timed — closes it and
    /// takes the first wake in between as its scheduled delay. A task's first poll is timed too,
    /// and so is one poll in 65 on each worker thread; the others are counted but read no clock.
    /// A task polled less often than once per interval thus has every poll timed and every wake
    /// measured; a busier one about one of each per interval, a sample taken by time, whatever
    /// the durations. Polls, wakes and self-wakes stay exact; busy time is then an estimate
    /// (the sampled polls' sum scaled to the polls they stand for, plus the first poll and
    /// blocked untimed polls as measured); the poll-duration histogram holds the timed polls.
    /// Blocked workers
    /// are caught whether the poll was timed or not. `Duration::ZERO` times every poll and
    /// measures every wake.
    ///
    /// ```
    /// let _guard = taskscope::Builder::new()
    ///     .no_server()
    ///     .sample_interval(std::time::Duration::ZERO) // every poll timed
    ///     .init();
    /// ```
    pub fn sample_interval(mut self, interval: Duration) -> Self {
        self.sample_interval = interval;
        self
    }

    /// The name of [`sample_interval`](Builder::sample_interval) until 0.1.6, when it began to
    /// sample poll timing too.
    #[deprecated(
        since = "0.1.6",
        note = "renamed `sample_interval`: it samples poll timing too"
    )]
    pub fn wake_sample_interval(self, interval: Duration) -> Self {
        self.sample_interval(interval)
    }

    /// A lock or semaphore wait longer than this is a `long_wait` (default 1 s).
    pub fn long_wait_threshold(mut self, threshold: Duration) -> Self {
        self.long_wait_threshold = threshold;
        self
    }

    /// A task group whose live tasks reach `alive` (default 10,000) having at least doubled
    /// within two seconds is an `unbounded_spawn`: a fan-out with no bound. A fan-out that a
    /// semaphore or a `JoinSet` keeps at a steady level stays silent, however many tasks it
    /// spawns in all, and so do a server's connections under steady load.
    pub fn unbounded_spawn_alive(mut self, alive: u64) -> Self {
        self.unbounded_alive = alive.max(1);
        self
    }

    /// Writes a report here when the Guard drops; the format follows the extension (`.json`,
    /// `.md`, `.html`, `.csv`, `.prom`).
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

    /// Watches this runtime from the start, as the one `init` is called in is: its event-loop
    /// lag, its workers' busy ratios and the workers blocked by tasks taskscope did not spawn
    /// (a framework's own `tokio::spawn`), with their stacks. For a runtime built by hand and
    /// entered after `init`; runtimes that later run [`spawn`](crate::spawn)ed tasks attach
    /// by themselves.
    ///
    /// ```
    /// let runtime = tokio::runtime::Runtime::new().unwrap();
    /// let guard = taskscope::Builder::new()
    ///     .no_server()
    ///     .attach(runtime.handle())
    ///     .init();
    /// assert_eq!(taskscope::snapshot().runtimes.len(), 1);
    /// # drop(guard);
    /// ```
    pub fn attach(mut self, runtime: &tokio::runtime::Handle) -> Self {
        self.attach.push(runtime.clone());
        self
    }

    /// Starts taskscope, or says why it cannot.
    pub fn try_init(self) -> Result<Guard, Error> {
        if let Some(path) = &self.report {
            check_report_path(path)?;
        }
        let bind = self.bind.clone().map_err(|reason| Error::Bind {
            addr: reason.clone(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidInput, reason),
        })?;
        if let Some(BindAddr::Tcp(addr)) = &bind {
            if !addr.ip().is_loopback() && self.token.is_none() {
                return Err(Error::RemoteWithoutToken(addr.to_string()));
            }
        }
        let shared = shared::global();
        if shared.enabled.swap(true, AcqRel) {
            return Err(Error::AlreadyRunning);
        }
        let mut exporter = Exporter::default();
        let sinks = (|| {
            if let Some(addr) = &bind {
                let token = match addr {
                    BindAddr::Tcp(a) if a.ip().is_loopback() => None,
                    _ => self.token.clone(),
                };
                exporter.server =
                    Some(Server::start(addr, token).map_err(|source| Error::Bind {
                        addr: addr.to_string(),
                        source,
                    })?);
            }
            if let Some(path) = &self.record {
                exporter.recorder = Some(Recorder::create(path, self.record_max_bytes).map_err(
                    |source| Error::Record {
                        path: path.clone(),
                        source,
                    },
                )?);
            }
            Ok(())
        })();
        if let Err(e) = sinks {
            if let Some(server) = exporter.server.take() {
                server.shutdown();
            }
            shared.enabled.store(false, Release);
            return Err(e);
        }
        let local_addr = exporter.server.as_ref().map(|s| s.addr().clone());
        let prometheus = match self
            .prometheus
            .as_deref()
            .map(|addr| start_prometheus(addr, self.token.clone()))
            .transpose()
        {
            Ok(endpoint) => endpoint,
            Err(e) => {
                if let Some(server) = exporter.server.take() {
                    server.shutdown();
                }
                shared.enabled.store(false, Release);
                return Err(e);
            }
        };
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
        crate::state::shared::THRESHOLDS
            .blocked_ns
            .store(threshold_ns, Relaxed);
        let long_wait_ns = u64::try_from(self.long_wait_threshold.as_nanos())
            .unwrap_or(u64::MAX)
            .max(1);
        crate::state::shared::THRESHOLDS
            .long_wait_ns
            .store(long_wait_ns, Relaxed);
        crate::state::shared::THRESHOLDS
            .wake_sample_ticks
            .store(clock::ticks_for(self.sample_interval), Relaxed);
        crate::state::shared::THRESHOLDS
            .unbounded_alive
            .store(self.unbounded_alive, Relaxed);
        if let Err(why) = crate::stacks::set_enabled(self.stacks || self.profile_hz > 0) {
            log_error(&format!(
                "{why}; blocked_worker warnings will not carry stacks{}",
                if self.profile_hz > 0 {
                    " and there is no CPU profile"
                } else {
                    ""
                }
            ));
        }
        attach::GENERATION.fetch_add(1, Relaxed);
        crate::state::registry::lock(shared).reset(self.retained_tasks);
        crate::threads::symbolizer::start_symbolizer(shared);
        if self.profile_hz > 0 && crate::stacks::enabled() {
            crate::threads::profiler::start(shared, self.profile_hz);
        }

        let stop = Arc::new(AtomicBool::new(false));
        let watchdog = {
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("taskscope-watchdog".into())
                .spawn(move || watchdog::run(shared, stop))
        };
        let watchdog = match watchdog {
            Ok(t) => t,
            Err(e) => {
                shared.enabled.store(false, Release);
                return Err(Error::Io(e));
            }
        };
        let collector = {
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("taskscope-collector".into())
                .spawn(move || collector::run(shared, stop, exporter))
        };
        let collector = match collector {
            Ok(t) => t,
            Err(e) => {
                stop.store(true, Release);
                watchdog.thread().unpark();
                let _ = watchdog.join();
                shared.enabled.store(false, Release);
                return Err(Error::Io(e));
            }
        };
        // The runtime `init` is called in, and those named with `attach`, are watched from now
        // on, with nothing spawned through taskscope.
        let runtimes = self
            .attach
            .iter()
            .cloned()
            .chain(Handle::try_current().ok());
        for runtime in runtimes {
            attach::ensure_attached(&runtime, shared);
        }
        Ok(Guard::running(GuardInner {
            shared,
            stop,
            watchdog,
            collector,
            report: self.report,
            local_addr,
            prometheus,
        }))
    }

    /// Starts taskscope; problems are logged (as `tracing` events and on stderr) and taskscope
    /// runs with what it could set up, or not at all — it never panics.
    pub fn init(self) -> Guard {
        match self.clone().try_init() {
            Ok(guard) => guard,
            // A sink that cannot start is dropped; the rest of taskscope runs.
            Err(e @ Error::UnsupportedReportFormat(_)) => {
                log_error(&format!("{e}; running without a report"));
                Builder {
                    report: None,
                    ..self
                }
                .init()
            }
            Err(e @ (Error::Bind { .. } | Error::RemoteWithoutToken(_))) => {
                log_error(&format!("{e}; running without the live stream"));
                self.no_server().init()
            }
            Err(e @ Error::Prometheus { .. }) => {
                log_error(&format!("{e}; running without the Prometheus endpoint"));
                Builder {
                    prometheus: None,
                    ..self
                }
                .init()
            }
            Err(e @ Error::Record { .. }) => {
                log_error(&format!("{e}; running without a recording"));
                Builder {
                    record: None,
                    ..self
                }
                .init()
            }
            Err(e) => {
                log_error(&e);
                Guard::inactive()
            }
        }
    }
}

/// Starts the Prometheus endpoint on `addr` (a bare port is on loopback). Beyond loopback it
/// needs the access token (`allow_remote`), which scrapes must then present.
fn start_prometheus(addr: &str, token: Option<String>) -> Result<Endpoint, Error> {
    use std::net::ToSocketAddrs;
    let error = |source| Error::Prometheus {
        addr: addr.to_string(),
        source,
    };
    let full = match addr.strip_prefix(':').unwrap_or(addr).parse::<u16>() {
        Ok(port) => format!("127.0.0.1:{port}"),
        Err(_) => addr.to_string(),
    };
    let resolved = full
        .to_socket_addrs()
        .map_err(error)?
        .next()
        .ok_or_else(|| {
            error(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "resolves to no address",
            ))
        })?;
    let token = match resolved.ip().is_loopback() {
        true => None,
        false => Some(token.ok_or_else(|| Error::RemoteWithoutToken(resolved.to_string()))?),
    };
    Endpoint::start(resolved, token).map_err(error)
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
