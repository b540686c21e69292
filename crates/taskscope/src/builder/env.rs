//! The environment variables of DESIGN.md §5 and the README's table: a `Builder` from them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::Builder;
use crate::base::error::Error;
use crate::export::server::parse_bind;

impl Builder {
    /// The defaults overridden by `TASKSCOPE_BIND`, `TASKSCOPE_TOKEN`, `TASKSCOPE_RECORD`,
    /// `TASKSCOPE_REPORT`, `TASKSCOPE_BLOCKED_MS`, `TASKSCOPE_LONG_WAIT_MS`,
    /// `TASKSCOPE_SAMPLE_US` (or its old name `TASKSCOPE_WAKE_SAMPLE_US`),
    /// `TASKSCOPE_UNBOUNDED_SPAWN_ALIVE`, `TASKSCOPE_STACKS`, `TASKSCOPE_PROFILE_HZ` and
    /// `TASKSCOPE_PROMETHEUS`. Returns the
    /// first invalid variable as an error.
    pub fn from_env() -> Result<Self, Error> {
        let (builder, mut errors) = Builder::from_env_lenient();
        match errors.is_empty() {
            true => Ok(builder),
            false => Err(errors.remove(0)),
        }
    }

    /// The defaults overridden by every valid variable, and the errors of the invalid ones.
    pub(super) fn from_env_lenient() -> (Self, Vec<Error>) {
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
        // The variable's name until 0.1.6, when the interval began to sample poll timing too.
        let sample_var = ["TASKSCOPE_SAMPLE_US", "TASKSCOPE_WAKE_SAMPLE_US"]
            .into_iter()
            .find_map(|var| env_string(var).map(|value| (var, value)));
        if let Some((var, value)) = sample_var {
            match value.trim().parse::<u64>() {
                Ok(us) => builder.sample_interval = Duration::from_micros(us),
                Err(_) => errors.push(Error::InvalidEnv {
                    var,
                    value,
                    expected:
                        "a whole number of microseconds (0: time every poll and stamp every wake)",
                }),
            }
        }
        if let Some(value) = env_string("TASKSCOPE_UNBOUNDED_SPAWN_ALIVE") {
            match value.trim().parse::<u64>() {
                Ok(alive) if alive > 0 => builder.unbounded_alive = alive,
                _ => errors.push(Error::InvalidEnv {
                    var: "TASKSCOPE_UNBOUNDED_SPAWN_ALIVE",
                    value,
                    expected: "a whole number of live tasks above 0",
                }),
            }
        }
        if let Some(value) = env_string("TASKSCOPE_PROFILE_HZ") {
            match value.trim().parse::<u32>() {
                Ok(hz) if hz <= crate::threads::profiler::MAX_HZ => builder.profile_hz = hz,
                _ => errors.push(Error::InvalidEnv {
                    var: "TASKSCOPE_PROFILE_HZ",
                    value,
                    expected: "samples a second per thread, 0 (off) to 10000",
                }),
            }
        }
        if let Some(value) = env_string("TASKSCOPE_BIND") {
            match parse_bind(&value) {
                Ok(bind) => builder.bind = Ok(bind),
                Err(_) => errors.push(Error::InvalidEnv {
                    var: "TASKSCOPE_BIND",
                    value,
                    expected: "`off`, host:port, or unix:/path",
                }),
            }
        }
        if let Some(value) = env_string("TASKSCOPE_STACKS") {
            match value.to_ascii_lowercase().as_str() {
                "on" | "1" | "true" => builder.stacks = true,
                "off" | "0" | "false" => builder.stacks = false,
                _ => errors.push(Error::InvalidEnv {
                    var: "TASKSCOPE_STACKS",
                    value,
                    expected: "`on` or `off`",
                }),
            }
        }
        builder.token = env_string("TASKSCOPE_TOKEN");
        builder.prometheus =
            env_string("TASKSCOPE_PROMETHEUS").filter(|v| !v.eq_ignore_ascii_case("off"));
        if let Some(path) = std::env::var_os("TASKSCOPE_RECORD").filter(|p| !p.is_empty()) {
            builder.record = Some(PathBuf::from(path));
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
}

fn env_string(var: &str) -> Option<String> {
    std::env::var_os(var)
        .map(|v| v.to_string_lossy().into_owned())
        .filter(|v| !v.is_empty())
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

pub(super) fn check_report_path(path: &Path) -> Result<(), Error> {
    match taskscope_report::Format::from_path(path) {
        Some(_) => Ok(()),
        None => Err(Error::UnsupportedReportFormat(path.to_path_buf())),
    }
}
