//! Capture on Linux (x86_64, aarch64): the real-time signal, its handler and the one-sample
//! hand-over between the sampler and the sampled thread. The safety rules are in the module
//! above (`stacks`).

use std::sync::atomic::{AtomicI32, AtomicU8, AtomicUsize, Ordering::*};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use taskscope_wire::StackFrame;

use super::raw::{RawStack, ACTIVE, MAX_FRAMES};

const IDLE: u8 = 0;
const REQUESTED: u8 = 1;
const WRITING: u8 = 2;
const DONE: u8 = 3;

/// The one sample in flight: written by the handler, read by the sampler.
struct Slot {
    state: AtomicU8,
    tid: AtomicI32,
    pc: AtomicUsize,
    len: AtomicUsize,
    ips: [AtomicUsize; MAX_FRAMES],
}

static SLOT: Slot = Slot {
    state: AtomicU8::new(IDLE),
    tid: AtomicI32::new(0),
    pc: AtomicUsize::new(0),
    len: AtomicUsize::new(0),
    ips: [const { AtomicUsize::new(0) }; MAX_FRAMES],
};

/// The signal in use (0: not installed).
static SIGNAL: AtomicI32 = AtomicI32::new(0);
/// Serialises samplers (one watchdog per Guard, but tests run several in turn).
static SAMPLER: Mutex<()> = Mutex::new(());

pub(super) fn current_tid() -> i32 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() }
}

/// Installs the handler on the first real-time signal no one handles.
pub(super) fn install() -> Result<(), String> {
    if SIGNAL.load(Acquire) != 0 {
        return Ok(());
    }
    let _one = SAMPLER.lock().unwrap_or_else(|e| e.into_inner());
    if SIGNAL.load(Acquire) != 0 {
        return Ok(());
    }
    // glibc keeps the first real-time signals for itself; SIGRTMIN() is past them. Leave a
    // few at each end for applications that count from SIGRTMIN or SIGRTMAX.
    for sig in (libc::SIGRTMIN() + 3)..=(libc::SIGRTMAX() - 3) {
        // SAFETY: querying and setting a handler with valid, zero-initialised structs.
        unsafe {
            let mut old: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(sig, std::ptr::null(), &mut old) != 0 {
                continue;
            }
            if old.sa_sigaction != libc::SIG_DFL {
                continue;
            }
            let mut new: libc::sigaction = std::mem::zeroed();
            new.sa_sigaction = handler as *const () as usize;
            new.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
            libc::sigemptyset(&mut new.sa_mask);
            if libc::sigaction(sig, &new, std::ptr::null_mut()) == 0 {
                SIGNAL.store(sig, Release);
                return Ok(());
            }
        }
    }
    Err("no free real-time signal for stack sampling".into())
}

/// Whether `tid` has the signal in its blocked mask (`SigBlk` of its `/proc` status).
pub(super) fn blocks_signal(tid: i32) -> bool {
    let sig = SIGNAL.load(Acquire);
    if sig <= 0 {
        return false;
    }
    let Ok(status) = std::fs::read_to_string(format!("/proc/self/task/{tid}/status")) else {
        return true; // the thread is gone
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("SigBlk:"))
        .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
        .is_some_and(|mask| mask & (1u64 << (sig - 1)) != 0)
}

/// Whether our handler is still the one installed (an application may install its own).
fn still_ours(sig: i32) -> bool {
    // SAFETY: querying a handler.
    unsafe {
        let mut cur: libc::sigaction = std::mem::zeroed();
        libc::sigaction(sig, std::ptr::null(), &mut cur) == 0
            && cur.sa_sigaction == handler as *const () as usize
    }
}

/// The signal in use, 0 before `install`.
pub(super) fn signal() -> i32 {
    SIGNAL.load(Acquire)
}

extern "C" fn handler(_sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: errno is thread-local; the handler must leave it as it found it.
    let errno = unsafe { *libc::__errno_location() };
    // SAFETY: with SA_SIGINFO the second argument is the signal's information.
    if !info.is_null() && unsafe { (*info).si_code } == libc::SI_TIMER {
        // A profiler's CPU timer fired for this thread.
        super::cpu_timers::on_timer(interrupted_pc(ctx), current_tid());
    } else if SLOT
        .state
        .compare_exchange(REQUESTED, WRITING, Acquire, Relaxed)
        .is_ok()
    {
        if current_tid() == SLOT.tid.load(Relaxed) {
            SLOT.pc.store(interrupted_pc(ctx), Relaxed);
            SLOT.len.store(walk(&SLOT.ips, 0), Relaxed);
            SLOT.state.store(DONE, Release);
        } else {
            // A request for another thread (this one may have reused an old id): put it
            // back for its thread.
            SLOT.state.store(REQUESTED, Release);
        }
    }
    // SAFETY: as above.
    unsafe { *libc::__errno_location() = errno };
}

/// In a signal handler: the return addresses of the calling thread's stack into `ips`,
/// innermost first; how many. With `stop_above` (a stack address; 0: none) the walk ends at
/// the first frame whose stack address is above it: that frame is the last one kept. (The
/// unwinder's frame address is the frame's canonical frame address or, in some unwinders, its
/// stack pointer; either way the frame holding `stop_above` is kept.)
pub(super) fn walk(ips: &[AtomicUsize; MAX_FRAMES], stop_above: usize) -> usize {
    let mut n = 0;
    // SAFETY: `trace_unsynchronized` takes no lock of backtrace's and allocates nothing; it
    // walks with libgcc's unwinder.
    unsafe {
        backtrace::trace_unsynchronized(|frame| {
            ips[n].store(frame.ip() as usize, Relaxed);
            n += 1;
            n < MAX_FRAMES && (stop_above == 0 || (frame.sp() as usize) <= stop_above)
        });
    }
    n
}

fn interrupted_pc(ctx: *mut libc::c_void) -> usize {
    if ctx.is_null() {
        return 0;
    }
    // SAFETY: with SA_SIGINFO the third argument is the interrupted context.
    let uc = unsafe { &*(ctx as *const libc::ucontext_t) };
    #[cfg(target_arch = "x86_64")]
    {
        uc.uc_mcontext.gregs[libc::REG_RIP as usize] as usize
    }
    #[cfg(target_arch = "aarch64")]
    {
        uc.uc_mcontext.pc as usize
    }
}

pub(super) fn capture(tid: i32) -> Option<RawStack> {
    let sig = SIGNAL.load(Acquire);
    if sig == 0 || !still_ours(sig) {
        return None;
    }
    let _one = SAMPLER.lock().unwrap_or_else(|e| e.into_inner());
    if SLOT.state.load(Acquire) != IDLE {
        return None; // a handler from an abandoned request is still writing
    }
    SLOT.tid.store(tid, Relaxed);
    SLOT.state.store(REQUESTED, Release);
    // SAFETY: signals a thread of this process; a thread that exited makes it fail.
    let sent = unsafe {
        libc::syscall(
            libc::SYS_tgkill,
            libc::getpid(),
            libc::c_long::from(tid),
            libc::c_long::from(sig),
        )
    } == 0;
    let deadline = Instant::now() + Duration::from_millis(if sent { 20 } else { 0 });
    loop {
        match SLOT.state.load(Acquire) {
            DONE => break,
            REQUESTED if Instant::now() >= deadline => {
                // Abandon; a late handler finds no request and returns.
                if SLOT
                    .state
                    .compare_exchange(REQUESTED, IDLE, AcqRel, Acquire)
                    .is_ok()
                {
                    return None;
                }
            }
            WRITING if Instant::now() >= deadline + Duration::from_secs(1) => {
                // The unwinder has not finished in a second: stop sampling for good
                // rather than wait on it (the slot stays busy).
                ACTIVE.store(false, Release);
                tracing::error!(target: "taskscope", "stack sampling stopped: a stack walk did not finish");
                return None;
            }
            _ => std::thread::sleep(Duration::from_micros(50)),
        }
    }
    let len = SLOT.len.load(Relaxed).min(MAX_FRAMES);
    let raw = RawStack {
        pc: SLOT.pc.load(Relaxed),
        ips: SLOT.ips[..len].iter().map(|ip| ip.load(Relaxed)).collect(),
        tags: [0; 2],
    };
    SLOT.state.store(IDLE, Release);
    Some(raw)
}

/// Lets go of every file's debug info read so far (ours and backtrace's).
pub(super) fn forget() {
    super::object_symbols::forget();
    backtrace::clear_symbol_cache();
}

/// The functions (inlined ones first) at an address of this process.
pub(super) fn resolve(addr: usize) -> Vec<StackFrame> {
    if let Some(frames) = super::object_symbols::resolve(addr) {
        return frames;
    }
    let mut frames = Vec::new();
    backtrace::resolve(addr as *mut std::ffi::c_void, |symbol| {
        let file = symbol.filename().map(|f| f.display().to_string());
        let line = symbol.lineno();
        let name = symbol
            .name()
            .map_or_else(|| "?".to_string(), |n| format!("{n:#}"));
        frames.push(StackFrame {
            // An inlined function of an optimised build is named without its path.
            function: super::names::qualified(&name, file.as_deref(), line).unwrap_or(name),
            file,
            line,
        });
    });
    if frames.is_empty() {
        // Unresolved: say at least which file (or `[vdso]`) the address is in.
        let function = match mapping_of(addr) {
            Some(mapping) => format!("{addr:#x} ({mapping})"),
            None => format!("{addr:#x}"),
        };
        frames.push(StackFrame {
            function,
            file: None,
            line: None,
        });
    }
    frames
}

/// Where in this process's mappings an address is, from `/proc/self/maps`: a file's name and
/// the offset in it, for `addr2line -e FILE OFFSET` (`libc.so.6+0x9a4f0`), or a pseudo-mapping's
/// name (`[vdso]`).
fn mapping_of(addr: usize) -> Option<String> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    maps.lines().find_map(|line| {
        let mut fields = line.split_whitespace();
        let (start, end) = fields.next()?.split_once('-')?;
        let (start, end) = (
            usize::from_str_radix(start, 16).ok()?,
            usize::from_str_radix(end, 16).ok()?,
        );
        let offset = usize::from_str_radix(fields.nth(1)?, 16).ok()?;
        let path = fields.nth(2)?;
        if !(start <= addr && addr < end) {
            return None;
        }
        Some(match path.starts_with('[') {
            true => path.to_string(),
            false => format!(
                "{}+{:#x}",
                path.rsplit('/').next().unwrap_or(path),
                addr - start + offset
            ),
        })
    })
}

/// `futex`, `epoll_wait`, `epoll_pwait`, `epoll_pwait2` (and `poll`, `ppoll`): where a parked
/// worker waits (the condition variable, the I/O driver).
#[cfg(target_arch = "x86_64")]
const WAITS: [i64; 6] = [202, 232, 281, 441, 7, 271];
#[cfg(target_arch = "aarch64")]
const WAITS: [i64; 5] = [98, 22, 441, 73, 73];

pub(super) fn waits_for_work(tid: i32) -> bool {
    let Ok(text) = std::fs::read_to_string(format!("/proc/self/task/{tid}/syscall")) else {
        return true;
    };
    match text.split_whitespace().next() {
        Some("running") => false,
        Some(number) => number.parse::<i64>().map_or(true, |n| WAITS.contains(&n)),
        None => true,
    }
}

#[cfg(test)]
mod tests {
    use super::mapping_of;

    #[test]
    fn an_address_is_named_by_its_mapping() {
        let vdso = unsafe { libc::getauxval(libc::AT_SYSINFO_EHDR) } as usize;
        if vdso != 0 {
            assert_eq!(mapping_of(vdso).as_deref(), Some("[vdso]"));
        }
        let in_libc = libc::getpid as *const () as usize;
        let mapping = mapping_of(in_libc).expect("libc is mapped");
        assert!(
            mapping.starts_with("libc") && mapping.contains("+0x"),
            "{mapping}"
        );
        assert_eq!(mapping_of(0), None);
    }
}
