//! Command-line interface.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};

use crate::source::{console, demo, live, replay::Replay, Source};
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
    /// Print where every task of a running app waits: each task's chain of async fns, each at
    /// its .await line, and the taskscope lock it waits for with its holder (a task dump).
    Dump {
        /// The app's stream address.
        #[arg(default_value = taskscope::DEFAULT_BIND)]
        addr: String,
        /// Access token, for an app serving beyond loopback (or set TASKSCOPE_TOKEN).
        #[arg(long, env = "TASKSCOPE_TOKEN")]
        token: Option<String>,
        /// How long the app may wait for its tasks' trace polls (at most 10s).
        #[arg(long, default_value = "5s", value_parser = parse_duration)]
        timeout: Duration,
        /// Print the dump as JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Attach the dashboard to an app instrumented with console-subscriber (tokio-console's
    /// protocol, `console_subscriber::init()`): its tasks, tokio's locks, semaphores and other
    /// resources, and the warnings taskscope derives from them; reconnects when the app restarts.
    Console {
        /// The app's console-subscriber address (its TOKIO_CONSOLE_BIND).
        #[arg(default_value = console::DEFAULT_ADDR)]
        addr: String,
        #[command(flatten)]
        thresholds: ThresholdArgs,
    },
    /// The dashboard over a recording: pause (p), step (n), seek ([ ]), speed (- +).
    Replay {
        /// A recording made with TASKSCOPE_RECORD.
        file: PathBuf,
    },
    /// Write a report from recordings or a live app (several sources merge into one report).
    Report {
        /// Recording files, live apps' addresses (host:port), or apps instrumented with
        /// console-subscriber (console://host:port).
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
        #[command(flatten)]
        thresholds: ThresholdArgs,
    },
}

/// What counts as a problem in a console-subscriber app (taskscope's own apps decide themselves).
#[derive(Debug, clap::Args)]
struct ThresholdArgs {
    /// console sources: a poll longer than this is a blocked_worker.
    #[arg(long, default_value = "10ms", value_parser = parse_duration)]
    blocked_threshold: Duration,
    /// console sources: a lock or semaphore wait longer than this is a long_wait.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    long_wait: Duration,
}

impl ThresholdArgs {
    fn thresholds(&self) -> console::Thresholds {
        console::Thresholds {
            blocked: self.blocked_threshold,
            long_wait: self.long_wait,
        }
    }
}

/// The prefix that marks a console-subscriber address among `report`'s sources.
const CONSOLE_SCHEME: &str = "console://";

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

/// Parses the command line and runs the command; the exit code says how it went.
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
        Command::Dump {
            addr,
            token,
            timeout,
            json,
        } => {
            let dump = crate::dump::fetch(&addr, token.as_deref(), timeout)?;
            match json {
                true => {
                    // `detached` is not part of the dump's wire form: added here.
                    let mut value = serde_json::to_value(&dump)?;
                    value["detached"] = serde_json::to_value(&dump.detached)?;
                    println!("{}", serde_json::to_string_pretty(&value)?)
                }
                false => print!("{dump}"),
            }
        }
        Command::Console { addr, thresholds } => {
            tui::check_terminal()?;
            tui::run(
                Source::Live(console::connect(addr.clone(), thresholds.thresholds())),
                &format!("connecting to console-subscriber at {addr}"),
            )?;
        }
        Command::Replay { file } => {
            let replay = Replay::open(&file)?;
            tui::check_terminal()?;
            tui::run(Source::Replay(Box::new(replay)), "replay")?;
        }
        Command::Report {
            src,
            output,
            format,
            duration,
            thresholds,
        } => report(
            &src,
            &output,
            format.as_deref(),
            duration,
            thresholds.thresholds(),
        )?,
    }
    Ok(ExitCode::SUCCESS)
}

fn report(
    src: &[String],
    output: &Path,
    format: Option<&str>,
    duration: Duration,
    thresholds: console::Thresholds,
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
        .map(|src| source_snapshot(src, duration, thresholds))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let snapshot = taskscope_report::merge::merge(&snapshots);
    if format.needs_profile() && snapshot.profile.is_none() {
        let which = match src {
            [one] => format!("{one} holds no"),
            _ => "none of the sources holds a".to_string(),
        };
        bail!(
            "{which} CPU profile: run the application with TASKSCOPE_PROFILE_HZ=99 (or \
             taskscope::Builder::profile_hz) to record one"
        );
    }
    let bytes = format.bytes(&snapshot);
    std::fs::write(output, bytes).with_context(|| format!("writing {}", output.display()))?;
    let plural = |n: usize, one: &str| format!("{n} {one}{}", if n == 1 { "" } else { "s" });
    println!(
        "wrote {} ({}, {})",
        output.display(),
        plural(snapshot.task_groups.len(), "task group"),
        plural(snapshot.warnings.len(), "warning")
    );
    Ok(())
}

/// The final state of a recording (everything before any damage, which is reported), or what a
/// live app showed within `duration`.
fn source_snapshot(
    src: &str,
    duration: Duration,
    thresholds: console::Thresholds,
) -> anyhow::Result<taskscope_wire::Snapshot> {
    if let Some(addr) = src.strip_prefix(CONSOLE_SCHEME) {
        let source = console::connect(addr.to_string(), thresholds);
        listen(src, source, duration)
    } else if !Path::new(src).exists() && !src.contains(':') {
        bail!("{src}: no such file (and not an address HOST:PORT of a live app)")
    } else if Path::new(src).exists() {
        let mut replay = Replay::open(Path::new(src)).with_context(|| format!("reading {src}"))?;
        if let Some(stopped) = &replay.stopped {
            eprintln!("taskscope: {src}: {stopped}; reporting every intact record");
        }
        Ok(replay.final_snapshot())
    } else {
        live_snapshot(src, duration)
    }
}

/// Listens to a live app for `duration` and returns what it saw.
fn live_snapshot(addr: &str, duration: Duration) -> anyhow::Result<taskscope_wire::Snapshot> {
    let live = live::connect(addr.to_string(), std::env::var("TASKSCOPE_TOKEN").ok());
    listen(addr, live, duration)
}

/// The last snapshot a connection gave within `duration`; its last status if it gave none.
fn listen(
    addr: &str,
    live: live::Live,
    duration: Duration,
) -> anyhow::Result<taskscope_wire::Snapshot> {
    let deadline = std::time::Instant::now() + duration;
    let (mut last, mut status) = (None, String::new());
    // Why the source lost the connection (`console://` is not part of its address).
    let gone = |status: &str| {
        let source_addr = addr.strip_prefix(CONSOLE_SCHEME).unwrap_or(addr);
        crate::source::feed::disconnected_reason(status, source_addr).map(str::to_owned)
    };
    while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
        match live.feed.recv_timeout(left) {
            Ok(crate::source::Feed::Snapshot(s)) => last = Some(s),
            // A source that cannot connect says why at once; no need to wait out `duration`.
            Ok(crate::source::Feed::Status(s)) => match gone(&s).filter(|_| last.is_none()) {
                Some(why) => bail!("no data from {addr}: {why}"),
                None => status = s,
            },
            Ok(crate::source::Feed::Dump(_)) => {} // never asked for here
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
