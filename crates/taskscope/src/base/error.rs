//! The errors of starting taskscope.

use std::path::PathBuf;

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
    /// The live stream server could not listen.
    Bind {
        /// The address asked for.
        addr: String,
        /// Why it failed (e.g. the port is in use).
        source: std::io::Error,
    },
    /// A stream or Prometheus address beyond loopback without an access token: they show the
    /// process's task names, spans and lock names, so they are loopback-only unless a token
    /// guards them.
    RemoteWithoutToken(String),
    /// The Prometheus endpoint could not listen.
    Prometheus {
        /// The address asked for.
        addr: String,
        /// Why it failed.
        source: std::io::Error,
    },
    /// The recording file could not be created.
    Record {
        /// The file asked for.
        path: PathBuf,
        /// Why it failed.
        source: std::io::Error,
    },
    /// Starting a taskscope thread failed.
    Io(std::io::Error),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::InvalidEnv {
                var,
                value,
                expected,
            } => {
                write!(f, "{var}={value:?} is invalid: expected {expected}")
            }
            Error::UnsupportedReportFormat(path) => write!(
                f,
                "cannot write a report to {}: the format is chosen by the extension: {}",
                path.display(),
                taskscope_report::FORMATS
            ),
            Error::AlreadyRunning => {
                f.write_str("taskscope is already initialised in this process")
            }
            Error::Bind { addr, source } => {
                write!(f, "cannot serve the live stream on {addr}: {source}")
            }
            Error::RemoteWithoutToken(addr) => write!(
                f,
                "refusing to serve on {addr}, beyond loopback, without an access token \
                 (set TASKSCOPE_TOKEN or call Builder::allow_remote)"
            ),
            Error::Record { path, source } => {
                write!(f, "cannot record to {}: {source}", path.display())
            }
            Error::Prometheus { addr, source } => {
                write!(f, "cannot serve Prometheus metrics on {addr}: {source}")
            }
            Error::Io(e) => write!(f, "cannot start taskscope's threads: {e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io(e) => Some(e),
            Error::Bind { source, .. }
            | Error::Record { source, .. }
            | Error::Prometheus { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Logs a problem of starting or stopping taskscope: as a `tracing` event and on stderr.
pub(crate) fn log_error(e: &dyn std::fmt::Display) {
    tracing::error!(target: "taskscope", "{e}");
    eprintln!("taskscope: {e}");
}
