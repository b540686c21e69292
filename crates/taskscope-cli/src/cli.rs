//! Command-line interface.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};

use crate::source::demo;

/// taskscope: what your tokio tasks are really doing.
#[derive(Debug, Parser)]
#[command(name = "taskscope", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the built-in demo workload (a blocking call in an async handler, a panicking task, a
    /// busy task group) instrumented by taskscope, and show what taskscope finds.
    Demo {
        /// Print findings instead of opening the dashboard; works without a terminal.
        #[arg(long)]
        headless: bool,
        /// How long to run, e.g. `5s`, `1500ms`.
        #[arg(long, default_value = "5s", value_parser = parse_duration)]
        duration: Duration,
        /// Also write a report here when the demo ends (format by extension: .json).
        #[arg(long)]
        report: Option<PathBuf>,
    },
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (number, unit) = s.split_at(
        s.find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(s.len()),
    );
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{s}` is not a duration like 5s or 500ms"))?;
    let seconds = match unit {
        "" | "s" => value,
        "ms" => value / 1e3,
        "m" => value * 60.0,
        _ => return Err(format!("unknown unit `{unit}` in `{s}`: use ms, s or m")),
    };
    if !(seconds > 0.0 && seconds < 86_400.0) {
        return Err(format!("`{s}` is out of range"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

pub fn run() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    match cli.command {
        Command::Demo {
            headless,
            duration,
            report,
        } => {
            if !headless {
                if !std::io::stdout().is_terminal() || std::env::var_os("CI").is_some() {
                    bail!("the dashboard needs a terminal; run `taskscope demo --headless` here");
                }
                bail!(
                    "the live dashboard is not part of this build yet; run `taskscope demo --headless` \
                     to see what taskscope finds in the demo"
                );
            }
            let summary =
                demo::run_headless(duration, report.as_deref()).context("running the demo")?;
            print!("{summary}");
            Ok(ExitCode::SUCCESS)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("1500ms"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert!(parse_duration("5h").is_err());
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("").is_err());
    }
}
