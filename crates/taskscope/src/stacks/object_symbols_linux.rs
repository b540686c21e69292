//! The functions and lines at an address of the executable or a shared library it loaded, read
//! with addr2line's loader from the file's own DWARF and symbol table. It parses the
//! abbreviations the compilation units share once, where backtrace's resolver parses them again
//! for every unit, and it reads no separate debug file (backtrace also finds and decompresses
//! `/usr/lib/debug/.build-id/…` files: a 31 MB allocation for libc's on Debian). In the
//! `blocking` example's release build the first symbolisation took the peak RSS from 5.9 to
//! 77 MB with backtrace's resolver. A library's frames are named from its symbol table.

use std::collections::HashMap;
use std::ffi::CStr;
use std::sync::Mutex;

use taskscope_wire::StackFrame;

/// An object the dynamic linker loaded: its file, load bias and loaded address ranges.
#[derive(Debug)]
struct Object {
    path: String,
    bias: usize,
    ranges: Vec<(usize, usize)>,
}

/// The loaded objects (read once) and a loader per file, opened at its first lookup (`None`
/// for a file that cannot be read).
#[derive(Default)]
struct Objects {
    objects: Option<Vec<Object>>,
    loaders: HashMap<String, Option<addr2line::Loader>>,
}

// SAFETY: a `Loader` holds a memory map and lazily filled caches behind `&self`; it is only ever
// used under the mutex below, from one thread at a time.
unsafe impl Send for Objects {}

static OBJECTS: Mutex<Option<Objects>> = Mutex::new(None);

/// The frames at `addr` (inlined ones first) when it is in a loaded object with a readable
/// file; `None` to ask backtrace's resolver (the vDSO, an object loaded after the first lookup).
pub(super) fn resolve(addr: usize) -> Option<Vec<StackFrame>> {
    let mut guard = OBJECTS.lock().unwrap_or_else(|e| e.into_inner());
    let state = guard.get_or_insert_with(Objects::default);
    let objects = state.objects.get_or_insert_with(loaded_objects);
    let object = objects
        .iter()
        .find(|o| o.ranges.iter().any(|&(lo, hi)| lo <= addr && addr < hi))?;
    let (path, probe) = (object.path.clone(), (addr - object.bias) as u64);
    let loader = state
        .loaders
        .entry(path.clone())
        .or_insert_with(|| addr2line::Loader::new(&path).ok())
        .as_ref()?;
    let mut frames = Vec::new();
    let mut iter = loader.find_frames(probe).ok();
    while let Some(Ok(Some(frame))) = iter.as_mut().map(|i| i.next()) {
        let (file, line) = match &frame.location {
            Some(l) => (l.file.map(str::to_string), l.line),
            None => (None, None),
        };
        let name = frame
            .function
            .as_ref()
            .and_then(|f| f.demangle().ok())
            .map(|n| n.into_owned())
            .or_else(|| loader.find_symbol(probe).map(demangle))
            .unwrap_or_else(|| "?".to_string());
        frames.push(StackFrame {
            // An inlined function of an optimised build is named without its path.
            function: super::names::qualified(&name, file.as_deref(), line).unwrap_or(name),
            file,
            line,
        });
    }
    if frames.is_empty() {
        let file = path.rsplit('/').next().unwrap_or(&path);
        frames.push(StackFrame {
            function: match loader.find_symbol(probe) {
                Some(symbol) => demangle(symbol),
                None => format!("{addr:#x} ({file}+{probe:#x})"),
            },
            file: None,
            line: None,
        });
    }
    Some(frames)
}

/// Drops the loaders (their maps and parsed tables) and the list of objects.
pub(super) fn forget() {
    *OBJECTS.lock().unwrap_or_else(|e| e.into_inner()) = None;
}

fn demangle(symbol: &str) -> String {
    format!("{:#}", rustc_demangle::demangle(symbol))
}

/// Every object the dynamic linker has loaded that has a file, with its `PT_LOAD` ranges.
fn loaded_objects() -> Vec<Object> {
    unsafe extern "C" fn each(
        info: *mut libc::dl_phdr_info,
        _size: libc::size_t,
        data: *mut libc::c_void,
    ) -> libc::c_int {
        // SAFETY: `dl_iterate_phdr` passes a valid entry and our `data`, the vector below.
        let (info, seen) = unsafe { (&*info, &mut *(data as *mut Vec<Object>)) };
        let bias = info.dlpi_addr as usize;
        let name = match info.dlpi_name.is_null() {
            true => String::new(),
            // SAFETY: a NUL-terminated string the dynamic linker owns for the call.
            false => unsafe { CStr::from_ptr(info.dlpi_name) }
                .to_string_lossy()
                .into_owned(),
        };
        let path = match name.is_empty() && seen.is_empty() {
            // The first entry, unnamed, is the executable.
            true => std::fs::read_link("/proc/self/exe")
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            false => name,
        };
        let mut ranges = Vec::new();
        for i in 0..info.dlpi_phnum as usize {
            // SAFETY: `dlpi_phdr` points at `dlpi_phnum` program headers.
            let phdr = unsafe { &*info.dlpi_phdr.add(i) };
            if phdr.p_type == libc::PT_LOAD {
                let start = bias + phdr.p_vaddr as usize;
                ranges.push((start, start + phdr.p_memsz as usize));
            }
        }
        // The vDSO (no file to read) is left out: backtrace's resolver reads it from memory.
        seen.push(Object { path, bias, ranges });
        0
    }
    let mut objects: Vec<Object> = Vec::new();
    // SAFETY: the callback writes only through `data`, which outlives the call.
    unsafe { libc::dl_iterate_phdr(Some(each), &mut objects as *mut _ as *mut libc::c_void) };
    objects.retain(|o| o.path.starts_with('/'));
    objects
}

#[cfg(test)]
mod tests {
    use super::resolve;

    #[inline(never)]
    fn marker() -> usize {
        std::hint::black_box(7)
    }

    #[test]
    fn functions_of_the_executable_and_of_libc_are_found() {
        let frames = resolve(marker as *const () as usize).expect("in the executable");
        let last = frames.last().unwrap();
        assert!(last.function.ends_with("marker"), "{frames:?}");
        assert!(
            last.file
                .as_deref()
                .is_some_and(|f| f.ends_with("object_symbols_linux.rs")),
            "{frames:?}"
        );
        let frames = resolve(libc::getpid as *const () as usize).expect("in libc");
        assert!(frames[0].function.contains("getpid"), "{frames:?}");
    }
}
