//! A workload of known CPU shares for the CPU profile: `checksum` and `parse`, sized in rounds
//! to take a given CPU time, and the CPU time each really took, measured around every call —
//! the truth a profile is held to (`examples/cpu_profile.rs`, `tests/axum_profile.rs`,
//! `crates/taskscope/tests/profile.rs`).
#![allow(dead_code)]

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// Hashes bytes, `rounds` times 256.
#[inline(never)]
pub fn checksum(rounds: u64) -> u64 {
    let mut sum = 0u64;
    for _ in 0..rounds {
        for i in 0..256u64 {
            sum = black_box(sum.rotate_left(5) ^ i.wrapping_mul(0x9e37_79b9));
        }
    }
    sum
}

/// Parses numbers, `rounds` times three.
#[inline(never)]
pub fn parse(rounds: u64) -> u64 {
    let mut sum = 0u64;
    for _ in 0..rounds {
        for text in ["12", "345", "6789"] {
            sum += black_box(text).parse::<u64>().unwrap_or(0);
        }
    }
    sum
}

/// The rounds of `work` that take `spend` of CPU here: the fastest of several tries, which a
/// busy machine slows least. (Work is measured in rounds, not in time: a thread preempted in
/// one function must not have the other spend its share.)
pub fn rounds_for(work: fn(u64) -> u64, spend: Duration) -> u64 {
    let tries = 200;
    let fastest = (0..30)
        .map(|_| {
            let start = Instant::now();
            black_box(work(tries));
            start.elapsed()
        })
        .min()
        .unwrap();
    (spend.as_nanos() * u128::from(tries) / fastest.as_nanos().max(1)).max(1) as u64
}

/// CPU time of the calling thread, in nanoseconds.
pub fn cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid clock id and a valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// The workload, sized once: rounds of each function per call of [`Work::run`], and the CPU
/// time each took in all.
pub struct Work {
    rounds: std::sync::OnceLock<(u64, u64)>,
    checksum: Duration,
    parse: Duration,
    spent: [AtomicU64; 2],
}

impl Work {
    /// A workload whose calls spend `checksum` in `checksum`, then `parse` in `parse`.
    pub const fn new(checksum: Duration, parse: Duration) -> Work {
        Work {
            rounds: std::sync::OnceLock::new(),
            checksum,
            parse,
            spent: [AtomicU64::new(0), AtomicU64::new(0)],
        }
    }

    /// Sizes the calls (done by the first `run` otherwise).
    pub fn calibrate(&self) -> (u64, u64) {
        *self.rounds.get_or_init(|| {
            (
                rounds_for(checksum, self.checksum),
                rounds_for(parse, self.parse),
            )
        })
    }

    /// One call: `checksum`, then `parse`, each one's CPU time counted.
    pub fn run(&self) -> u64 {
        let (c, p) = self.calibrate();
        let t0 = cpu_ns();
        let a = checksum(c);
        let t1 = cpu_ns();
        let b = parse(p);
        let t2 = cpu_ns();
        self.spent[0].fetch_add(t1 - t0, Relaxed);
        self.spent[1].fetch_add(t2 - t1, Relaxed);
        a ^ b
    }

    /// The CPU time `checksum` and `parse` took so far, in nanoseconds.
    pub fn spent(&self) -> [u64; 2] {
        self.spent.each_ref().map(|s| s.load(Relaxed))
    }

    /// The CPU time the two functions took so far, in nanoseconds.
    pub fn spent_ns(&self) -> u64 {
        self.spent.iter().map(|s| s.load(Relaxed)).sum()
    }

    /// The share of `checksum` in the CPU time the two functions took so far.
    pub fn checksum_share(&self) -> f64 {
        let [c, p] = self.spent.each_ref().map(|s| s.load(Relaxed) as f64);
        c / (c + p).max(1.0)
    }
}
