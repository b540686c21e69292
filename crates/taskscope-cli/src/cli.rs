//! Command-line interface.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};

use crate::source::{demo, live, replay::Replay, Source};
use crate::tui;

/// taskscope: what your tokio tasks are really doing.
#[derive(Debug, Parser)]
#[command(name = "taskscope", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the built-in demo workload (a blocking call in an async handler, lock contention, a
    /// lock held across .await, a saturated semaphore, a lock-order inversion, a panicking task)
    /// with the dashboard on it.
    Demo {
        /// Print findings instead of opening the dashboard; works without a terminal.
        #[arg(long)]
        headless: bool,
        /// How long to run headless, e.g. `5s`, `1500ms`.
        #[arg(long, default_value = "5s", value_parser = parse_duration)]
        duration: Duration,
        /// Also write a report here when the demo ends (format by extension: .json).
        #[arg(long)]
        report: Option<PathBuf>,
        /// Also record the demo's stream to this file (for `taskscope replay` and `report`).
        #[arg(long)]
        record: Option<PathBuf>,
    },
    /// Attach the dashboard to a running app; reconnects when the app restarts.
    Top {
        /// The app's stream address.
        #[arg(default_value = taskscope::DEFAULT_BIND)]
        addr: String,
        /// Access token, for an app serving beyond loopback (or set TASKSCOPE_TOKEN).
        #[arg(long, env = "TASKSCOPE_TOKEN")]
        token: Option<String>,
    },
    /// The dashboard over a recording: pause (p), step (n), seek ([ ]), speed (- +).
    Replay {
        /// A recording made with TASKSCOPE_RECORD.
        file: PathBuf,
    },
    /// Write a report from recordings or a live app (several sources merge into one report).
    Report {
        /// Recording files, or live apps' addresses (host:port).
        #[arg(required = true)]
        src: Vec<String>,
        /// Where to write; the format follows the extension unless --format says otherwise.
        #[arg(short, long)]
        output: PathBuf,
        /// json, md, html, csv, prom, perfetto (Chrome trace JSON for ui.perfetto.dev) or hlog
        /// (HdrHistogram interval log).
        #[arg(long)]
        format: Option<String>,
        /// For a live app: how long to listen before writing.
        #[arg(long, default_value = "3s", value_parser = parse_duration)]
        duration: Duration,
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
            headless: true,
            duration,
            report,
            record,
        } => {
            let summary = demo::run_headless(duration, report.as_deref(), record.as_deref())
                .context("running the demo")?;
            print!("{summary}");
        }
        Command::Demo {
            headless: false,
            report,
            record,
            ..
        } => {
            tui::check_terminal()?;
            let running = demo::Running::start(report.as_deref(), record.as_deref())
                .context("starting the demo")?;
            let addr = running.addr();
            let source = Source::Live(live::connect(addr.clone(), None));
            tui::run(source, &format!("demo on {addr}"))?;
        }
        Command::Top { addr, token } => {
            tui::check_terminal()?;
            tui::run(
                Source::Live(live::connect(addr.clone(), token)),
                &format!("connecting to {addr}"),
            )?;
        }
        Command::Replay { file } => {
            tui::check_terminal()?;
            let replay = Replay::open(&file)?;
            tui::run(Source::Replay(Box::new(replay)), "replay")?;
        }
        Command::Report {
            src,
            output,
            format,
            duration,
        } => report(&src, &output, format.as_deref(), duration)?,
    }
    Ok(ExitCode::SUCCESS)
}

fn report(
    src: &[String],
    output: &Path,
    format: Option<&str>,
    duration: Duration,
) -> anyhow::Result<()> {
    let format = match format {
        Some(name) => taskscope_report::Format::from_name(name).with_context(|| {
            format!(
                "unknown report format `{name}`: use {}",
                taskscope_report::FORMATS
            )
        })?,
        None => taskscope_report::Format::from_path(output).with_context(|| {
            format!(
                "cannot tell the format of {}: use --format or an extension; formats: {}",
                output.display(),
                taskscope_report::FORMATS
            )
        })?,
    };
    if src.len() > 1 && format == taskscope_report::Format::Perfetto {
        bail!(
            "a trace shows one process: give one recording or address, not {}",
            src.len()
        );
    }
    let snapshots = src
        .iter()
        .map(|src| source_snapshot(src, duration))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let snapshot = taskscope_report::merge::merge(&snapshots);
    let text = format.render(&snapshot);
    std::fs::write(output, text).with_context(|| format!("writing {}", output.display()))?;
    Ok(())
}

/// The final state of a recording (everything before any damage, which is reported), or what a
/// live app showed within `duration`.
fn source_snapshot(src: &str, duration: Duration) -> anyhow::Result<taskscope_wire::Snapshot> {
    if Path::new(src).exists() {
        let mut replay = Replay::open(Path::new(src)).with_context(|| format!("reading {src}"))?;
        if let Some(stopped) = &replay.stopped {
            eprintln!("taskscope: {src}: {stopped}; reporting everything before it");
        }
        Ok(replay.final_snapshot())
    } else {
        live_snapshot(src, duration)
    }
}

/// Listens to a live app for `duration` and returns what it saw.
fn live_snapshot(addr: &str, duration: Duration) -> anyhow::Result<taskscope_wire::Snapshot> {
    let live = live::connect(addr.to_string(), std::env::var("TASKSCOPE_TOKEN").ok());
    let deadline = std::time::Instant::now() + duration;
    let (mut last, mut status) = (None, String::new());
    while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
        match live.feed.recv_timeout(left) {
            Ok(crate::source::Feed::Snapshot(s)) => last = Some(s),
            Ok(crate::source::Feed::Status(s)) => status = s,
            Err(_) => break,
        }
    }
    match last {
        Some(s) => Ok((*s).clone()),
        None => bail!(
            "no data from {addr} in {:.1}s ({status})",
            duration.as_secs_f64()
        ),
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
