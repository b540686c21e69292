//! The OS threads that may be a runtime's workers: where to look for a worker stuck in a task
//! taskscope did not spawn, whose thread tokio's stable API does not name.

/// A thread of this process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Thread {
    /// Kernel thread id.
    pub(crate) tid: i32,
    /// Its name as the kernel keeps it (at most 15 bytes).
    pub(crate) name: String,
}

impl std::fmt::Display for Thread {
    /// As a warning names a worker: `tokio-rt-worker (thread 4242)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (thread {})", self.name, self.tid)
    }
}

/// Threads looked at per sample at most: each costs a signal and a stack walk.
const MAX_THREADS: usize = 64;

/// tokio's default worker names: the current one and the one of older versions.
const TOKIO_WORKERS: [&str; 2] = ["tokio-rt-worker", "tokio-runtime-worker"];

/// The kernel's copy of a thread name: its first 15 bytes.
fn kernel_name(name: &str) -> &str {
    let mut end = name.len().min(15);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    &name[..end]
}

/// The threads of this process named like one of `names` (tokio's default worker names when
/// `names` is empty: either version's), except those in `exclude` and taskscope's own, at most `MAX_THREADS`.
pub(crate) fn named(names: &[String], exclude: &[i32]) -> Vec<Thread> {
    let wanted: Vec<&str> = if names.is_empty() {
        TOKIO_WORKERS.iter().map(|n| kernel_name(n)).collect()
    } else {
        names.iter().map(|n| kernel_name(n)).collect()
    };
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    let mut threads = Vec::new();
    for entry in dir.flatten() {
        let Some(tid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        if exclude.contains(&tid) {
            continue;
        }
        let Ok(comm) = std::fs::read_to_string(entry.path().join("comm")) else {
            continue; // exited meanwhile
        };
        let name = comm.trim_end_matches('\n');
        if !name.starts_with("taskscope-") && wanted.contains(&name) {
            threads.push(Thread {
                tid,
                name: name.to_owned(),
            });
            if threads.len() == MAX_THREADS {
                break;
            }
        }
    }
    threads
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_names_are_cut_at_15_bytes_on_a_char_boundary() {
        assert_eq!(kernel_name("tokio-runtime-worker"), "tokio-runtime-w");
        assert_eq!(kernel_name("short"), "short");
        assert_eq!(kernel_name("ééééééééé"), "ééééééé");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn finds_threads_by_name_and_leaves_out_the_excluded() {
        let (tx, rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
        let stop_rx = std::sync::Mutex::new(stop_rx);
        std::thread::scope(|s| {
            for _ in 0..2 {
                let tx = tx.clone();
                let stop_rx = &stop_rx;
                std::thread::Builder::new()
                    .name("ts-threads-test-worker".into())
                    .spawn_scoped(s, move || {
                        tx.send(super::super::current_tid()).unwrap();
                        let _ = stop_rx.lock().unwrap().recv();
                    })
                    .unwrap();
            }
            let tids = [rx.recv().unwrap(), rx.recv().unwrap()];
            let names = ["ts-threads-test-worker".to_string()];
            let mut found: Vec<i32> = named(&names, &[]).iter().map(|t| t.tid).collect();
            found.sort_unstable();
            let mut expected = tids.to_vec();
            expected.sort_unstable();
            assert_eq!(found, expected);
            let found = named(&names, &tids[..1]);
            assert_eq!(found.len(), 1);
            assert_eq!(found[0].tid, tids[1]);
            assert_eq!(found[0].name, "ts-threads-test");
            drop(stop_tx);
        });
    }
}
