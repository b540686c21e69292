//! What the measuring examples share: their command-line options, medians, and the CPU time of
//! taskscope's own threads. Each example uses part of it.
#![allow(dead_code)]

use std::str::FromStr;

/// The value after `name` on the command line (`--rounds 5`), or `default`.
pub fn arg<T: FromStr>(name: &str, default: T) -> T {
    text_arg(name)
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The text after `name` on the command line, if given.
pub fn text_arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    let at = args.iter().position(|a| a == name)?;
    args.get(at + 1).cloned()
}

/// Whether `name` is on the command line (`--no-client`).
pub fn flag(name: &str) -> bool {
    std::env::args().any(|a| a == name)
}

/// The median of some measurements (the upper one of an even count).
pub fn median(values: impl IntoIterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = values.into_iter().collect();
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// The `/proc/self/task/TID` directories of this process's threads whose name starts with
/// `prefix` (Linux; none elsewhere).
fn threads_named(prefix: &str) -> Vec<std::path::PathBuf> {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    dir.flatten()
        .map(|entry| entry.path())
        .filter(|path| {
            std::fs::read_to_string(path.join("comm"))
                .unwrap_or_default()
                .trim_end()
                .starts_with(prefix)
        })
        .collect()
}

/// CPU seconds used so far by this process's threads whose name starts with `prefix` (Linux;
/// 0 elsewhere), in the kernel's 10 ms ticks.
pub fn thread_cpu(prefix: &str) -> f64 {
    let mut ticks = 0u64;
    for path in threads_named(prefix) {
        let stat = std::fs::read_to_string(path.join("stat")).unwrap_or_default();
        // Fields after the ")" of the command name: utime is field 14, stime 15.
        let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.len() > 12 {
            ticks +=
                fields[11].parse::<u64>().unwrap_or(0) + fields[12].parse::<u64>().unwrap_or(0);
        }
    }
    ticks as f64 / 100.0 // USER_HZ
}

/// Like `thread_cpu`, to the nanosecond: from `/proc/self/task/TID/schedstat`.
pub fn thread_cpu_precise(prefix: &str) -> f64 {
    let ns: u64 = threads_named(prefix)
        .iter()
        .filter_map(|path| {
            let stat = std::fs::read_to_string(path.join("schedstat")).ok()?;
            stat.split_whitespace().next()?.parse::<u64>().ok()
        })
        .sum();
    ns as f64 / 1e9
}

/// The per-poll workload of the overhead comparisons: a task that yields `yields` times.
pub async fn yielder(yields: u32) {
    for _ in 0..yields {
        tokio::task::yield_now().await;
    }
}

/// `tasks` tasks made by `make`, each spawned with `spawn` (the variant's way to spawn).
pub fn spawn_all<F: std::future::Future<Output = ()> + Send + 'static>(
    tasks: u32,
    mut make: impl FnMut() -> F,
    spawn: impl Fn(F) -> Joined,
) -> Vec<Joined> {
    (0..tasks).map(|_| spawn(make())).collect()
}

/// A handle of tokio's or of taskscope's, awaited as a user awaits it.
pub enum Joined {
    /// `tokio::spawn`'s.
    Tokio(tokio::task::JoinHandle<()>),
    /// `taskscope::spawn`'s.
    Taskscope(taskscope::JoinHandle<()>),
}

impl Joined {
    /// Waits for the task; panics if it did.
    pub async fn join(self) {
        match self {
            Joined::Tokio(h) => h.await.unwrap(),
            Joined::Taskscope(h) => h.await.unwrap(),
        }
    }
}

/// Prints a per-poll table of one runtime flavour: each variant's median ns/poll and its
/// overhead over the first row (bare tokio).
pub fn print_poll_table<'a>(multi: bool, rows: impl IntoIterator<Item = (&'a str, f64)>) {
    let rows: Vec<(&str, f64)> = rows.into_iter().collect();
    let bare = rows.first().map_or(1.0, |r| r.1);
    let flavour = if multi {
        "multi-thread runtime, 2 workers"
    } else {
        "current-thread runtime"
    };
    println!("{flavour}");
    println!("| variant | ns/poll | overhead vs bare | ratio |");
    println!("|---|---:|---:|---:|");
    for (name, m) in rows {
        println!(
            "| {name} | {m:.1} | {:+.1} ns | {:.2}x |",
            m - bare,
            m / bare
        );
    }
    println!();
}
