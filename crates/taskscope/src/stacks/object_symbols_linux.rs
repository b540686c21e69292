//! The functions and lines at an address of the executable or a shared library it loaded, read
//! with addr2line from the file's own DWARF and symbol table. The abbreviations the compilation
//! units share are parsed once (backtrace's resolver parses them again for every unit), no
//! separate debug file is read (backtrace also finds and decompresses `/usr/lib/debug/.build-id/…`
//! files: a 31 MB allocation for libc's on Debian), and the file's pages are given back as they
//! are read ([`Mapping`]). In the `blocking` example's release build the first symbolisation took
//! the peak RSS from 5.9 to 77 MB with backtrace's resolver. A library's frames are named from
//! its symbol table.

use std::borrow::Cow;
use std::collections::HashMap;
use std::ffi::CStr;
use std::sync::Mutex;

use object::{Object as _, ObjectSection as _};
use taskscope_wire::StackFrame;

use super::mapped_object::{reading, MappedReader, Mapping};

/// An object the dynamic linker loaded: its file, load bias and loaded address ranges.
#[derive(Debug)]
struct Object {
    path: String,
    bias: usize,
    ranges: Vec<(usize, usize)>,
}

/// The parsed DWARF and symbol table of one file. The fields drop in order: the tables, then the
/// sections decompressed on the heap, then the mapping every slice of them points into.
struct Symbols {
    context: addr2line::Context<MappedReader>,
    symbols: object::SymbolMap<object::SymbolMapName<'static>>,
    _decompressed: Vec<Box<[u8]>>,
    mapping: Box<Mapping>,
}

impl Symbols {
    /// Maps and parses `path`; `None` for a file that cannot be read or parsed.
    fn open(path: &str) -> Option<Symbols> {
        let mapping = Box::new(Mapping::open(path)?);
        // SAFETY: the box's contents do not move, and `Symbols` drops the box after every
        // reader that holds this reference.
        let map: &'static Mapping = unsafe { &*(&*mapping as *const Mapping) };
        let object = object::File::parse(map.bytes()).ok()?;
        let endian = match object.is_little_endian() {
            true => gimli::RunTimeEndian::Little,
            false => gimli::RunTimeEndian::Big,
        };
        let mut decompressed: Vec<Box<[u8]>> = Vec::new();
        let mut load = |id: gimli::SectionId| -> Result<MappedReader, gimli::Error> {
            let bytes: &'static [u8] = match object.section_by_name(id.name()) {
                None => &[],
                Some(section) => match section.uncompressed_data() {
                    Ok(Cow::Borrowed(bytes)) => bytes,
                    Ok(Cow::Owned(bytes)) => {
                        let bytes = bytes.into_boxed_slice();
                        // SAFETY: the heap block does not move when the box does, and
                        // `Symbols` keeps the box until after the readers.
                        let view: &'static [u8] = unsafe { &*(&*bytes as *const [u8]) };
                        decompressed.push(bytes);
                        view
                    }
                    Err(_) => &[],
                },
            };
            Ok(MappedReader::new(bytes, endian))
        };
        let (context, symbols) = reading(map, || {
            let mut dwarf = gimli::Dwarf::load(&mut load).ok()?;
            dwarf.populate_abbreviations_cache(gimli::AbbreviationsCacheStrategy::Duplicates);
            let context = addr2line::Context::from_dwarf(dwarf).ok()?;
            Some((context, object.symbol_map()))
        })?;
        map.trim();
        Some(Symbols {
            context,
            symbols,
            _decompressed: decompressed,
            mapping,
        })
    }

    fn symbol(&self, probe: u64) -> Option<&'static str> {
        self.symbols.containing(probe).map(|s| s.name())
    }
}

/// The loaded objects (read once) and the symbols of each file, read at its first lookup
/// (`None` for a file that cannot be read).
#[derive(Default)]
struct Objects {
    objects: Option<Vec<Object>>,
    files: HashMap<String, Option<Symbols>>,
}

// SAFETY: `Symbols` holds a memory map and lazily filled caches behind `&self`; they are only
// ever used under the mutex below, from one thread at a time.
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
    let symbols = state
        .files
        .entry(path.clone())
        .or_insert_with(|| Symbols::open(&path))
        .as_ref()?;
    let frames = reading(&symbols.mapping, || frames_at(symbols, addr, probe, &path));
    symbols.mapping.trim();
    Some(frames)
}

/// The frames at `probe` in `symbols`' file (`addr` and `path` name an unresolved one).
fn frames_at(symbols: &Symbols, addr: usize, probe: u64, path: &str) -> Vec<StackFrame> {
    let mut frames = Vec::new();
    let mut iter = symbols.context.find_frames(probe).skip_all_loads().ok();
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
            .or_else(|| symbols.symbol(probe).map(demangle))
            .unwrap_or_else(|| "?".to_string());
        frames.push(StackFrame {
            // An inlined function of an optimised build is named without its path.
            function: super::names::qualified(&name, file.as_deref(), line).unwrap_or(name),
            file,
            line,
        });
    }
    if frames.is_empty() {
        let name = path.rsplit('/').next().unwrap_or(path);
        frames.push(StackFrame {
            function: match symbols.symbol(probe) {
                Some(symbol) => demangle(symbol),
                None => format!("{addr:#x} ({name}+{probe:#x})"),
            },
            file: None,
            line: None,
        });
    }
    frames
}

/// Drops the parsed files (their maps and parsed tables) and the list of objects.
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

    #[test]
    fn after_the_debug_info_is_let_go_it_is_read_again_with_the_same_answer() {
        let addr = marker as *const () as usize;
        let first = resolve(addr).expect("in the executable");
        super::forget();
        let again = resolve(addr).expect("read again");
        assert_eq!(first, again);
    }
}
