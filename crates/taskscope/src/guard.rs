//! `Guard`: keeps taskscope running; stopping it joins the threads, raises
//! `tasks_alive_at_exit`, sends the last frames and writes the report.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering::*};
use std::sync::Arc;
use std::thread::JoinHandle;

use taskscope_wire::{Snapshot, TaskState, Warning, WarningKind};

use crate::base::error::log_error;
use crate::export::prometheus::Endpoint;
use crate::export::server::BindAddr;
use crate::export::Exporter;
use crate::state::registry;
use crate::state::shared::Shared;
use crate::{base::clock, threads::watchdog};

/// Keeps taskscope running; dropping it stops taskscope and writes the report.
#[derive(Debug)]
#[must_use = "taskscope stops when the Guard is dropped"]
pub struct Guard {
    inner: Option<GuardInner>,
}

/// What a running Guard stops: its threads, sinks and report.
#[derive(Debug)]
pub(crate) struct GuardInner {
    pub(crate) shared: &'static Shared,
    pub(crate) stop: Arc<AtomicBool>,
    pub(crate) watchdog: JoinHandle<()>,
    pub(crate) collector: JoinHandle<Exporter>,
    pub(crate) report: Option<PathBuf>,
    pub(crate) local_addr: Option<BindAddr>,
    pub(crate) prometheus: Option<Endpoint>,
}

impl Guard {
    /// The Guard of a taskscope that started.
    pub(crate) fn running(inner: GuardInner) -> Guard {
        Guard { inner: Some(inner) }
    }

    /// A Guard of nothing (`init()` could not start taskscope).
    pub(crate) fn inactive() -> Guard {
        Guard { inner: None }
    }

    /// Whether this Guard runs taskscope (false when `init()` could not start it).
    pub fn is_active(&self) -> bool {
        self.inner.is_some()
    }

    /// The live stream's TCP address (with the real port when bound to port 0).
    pub fn local_addr(&self) -> Option<std::net::SocketAddr> {
        match self.inner.as_ref()?.local_addr.as_ref()? {
            BindAddr::Tcp(addr) => Some(*addr),
            #[cfg(unix)]
            BindAddr::Unix(_) => None,
        }
    }

    /// The Prometheus endpoint's address, if one was asked for.
    pub fn prometheus_addr(&self) -> Option<std::net::SocketAddr> {
        self.inner.as_ref()?.prometheus.as_ref().map(Endpoint::addr)
    }

    /// Stops taskscope now and returns the final snapshot (the one the report is made of).
    pub fn finish(mut self) -> Option<Snapshot> {
        self.stop()
    }

    fn stop(&mut self) -> Option<Snapshot> {
        let inner = self.inner.take()?;
        inner.stop.store(true, Release);
        crate::threads::profiler::stop();
        inner.watchdog.thread().unpark();
        inner.collector.thread().unpark();
        let _ = inner.watchdog.join();
        if let Some(endpoint) = inner.prometheus {
            endpoint.shutdown();
        }
        let exporter = inner.collector.join().ok();
        let shared = inner.shared;
        let _ = watchdog::scan(shared);
        crate::threads::symbolizer::stop_symbolizer();
        let snapshot = {
            let mut registry = crate::state::registry::lock(shared);
            registry.retire_all_finished(shared);
            alive_at_exit(shared, &mut registry);
            // The last frames: streamed, and flushed and synced to the recording.
            if let Some(mut exporter) = exporter {
                exporter.finish(shared, &mut registry);
            }
            crate::export::snapshot::build(shared, &registry)
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
    // Retained finished tasks are done: only the live ones can be alive.
    let mut alive: Vec<_> = registry
        .view()
        .live_tasks(shared)
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
    let report = taskscope_report::Format::from_path(path)
        .unwrap_or(taskscope_report::Format::Json)
        .bytes(snapshot);
    std::fs::write(path, report)
}
