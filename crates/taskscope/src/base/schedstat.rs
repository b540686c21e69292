//! How long a thread has been on a CPU, and runnable but not running — waiting for a CPU
//! because the machine is oversubscribed or the VM's host took the CPU — from Linux's
//! per-thread `schedstat`.

/// Nanoseconds thread `tid` (a kernel thread id of this process) has spent waiting on a run
/// queue since it started; `None` where the kernel does not say (not Linux, no schedstats).
pub(crate) fn runqueue_wait_ns(tid: i32) -> Option<u64> {
    field(tid, 1)
}

/// Nanoseconds thread `tid` of this process has spent on a CPU since it started; `None` where
/// the kernel does not say.
pub(crate) fn on_cpu_ns(tid: i32) -> Option<u64> {
    field(tid, 0)
}

/// Field `n` of the thread's `schedstat`: "time on a CPU, time waiting on a run queue,
/// timeslices", in nanoseconds.
fn field(tid: i32, n: usize) -> Option<u64> {
    if tid <= 0 {
        return None;
    }
    let text = std::fs::read_to_string(format!("/proc/self/task/{tid}/schedstat")).ok()?;
    text.split_whitespace().nth(n)?.parse().ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_thread_of_this_process_has_a_run_queue_wait_on_linux() {
        let tid = crate::stacks::current_tid();
        let wait = super::runqueue_wait_ns(tid);
        assert_eq!(wait.is_some(), cfg!(target_os = "linux") && tid > 0);
        assert_eq!(super::runqueue_wait_ns(0), None);
        assert_eq!(super::on_cpu_ns(tid).is_some(), wait.is_some());
    }
}
