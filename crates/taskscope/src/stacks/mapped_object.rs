//! An object file mapped for reading its DWARF, whose resident pages are handed back to the
//! kernel as the reader moves on.
//!
//! Reading the DWARF of a whole program touches a few bytes of every compilation unit (its
//! header, its line program's header, its range list: 1,699 units in the `blocking` example),
//! and the kernel maps 64 KiB of an already-cached file around each touched page: setting up
//! the lookups of the 29.8 MB release `blocking` binary made 21 MB of it resident, counted in
//! the app's RSS. The pages of a read-only private file mapping can be dropped at any time
//! (`MADV_DONTNEED`: the next read faults them in again from the file), so the reader drops them
//! every 32,768 reads and after each lookup: what stays resident is what the parsed
//! tables hold on the heap.

use std::borrow::Cow;
use std::cell::Cell;
use std::fmt;
use std::fs::File;
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};

use gimli::{EndianSlice, Reader, ReaderOffsetId, RunTimeEndian};

/// Reads between two hand-backs of the mapping's pages.
const READS_PER_TRIM: u32 = 32768;

/// A read-only mapping of a whole file.
pub(super) struct Mapping {
    bytes: &'static [u8],
    reads: AtomicU32,
}

impl Mapping {
    /// Maps `path` for reading; `None` when it cannot be opened or mapped (or is empty).
    pub(super) fn open(path: &str) -> Option<Mapping> {
        let file = File::open(path).ok()?;
        let len = usize::try_from(file.metadata().ok()?.len()).ok()?;
        if len == 0 {
            return None;
        }
        use std::os::fd::AsRawFd;
        // SAFETY: a fresh read-only private mapping of an open file; the file can be closed
        // after. Unmapped in `Drop`, after every slice of it is gone (see `Symbols`' fields).
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_PRIVATE,
                file.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return None;
        }
        // SAFETY: `len` readable bytes at `ptr`, valid until `Drop`.
        let bytes = unsafe { std::slice::from_raw_parts(ptr as *const u8, len) };
        Some(Mapping {
            bytes,
            reads: AtomicU32::new(0),
        })
    }

    /// The file's bytes. `'static` only in name: they live as long as the mapping, and every
    /// holder of a slice of them is dropped before it.
    pub(super) fn bytes(&self) -> &'static [u8] {
        self.bytes
    }

    /// Hands the mapping's resident pages back (they are read again from the file on use).
    pub(super) fn trim(&self) {
        // SAFETY: the range is our own read-only private file mapping: dropping its pages
        // changes no byte a reader sees.
        unsafe {
            libc::madvise(
                self.bytes.as_ptr() as *mut libc::c_void,
                self.bytes.len(),
                libc::MADV_DONTNEED,
            );
        }
    }

    fn count_read(&self) {
        if self.reads.fetch_add(1, Relaxed) % READS_PER_TRIM == READS_PER_TRIM - 1 {
            self.trim();
        }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: the mapping `open` made; nothing reads it any more.
        unsafe { libc::munmap(self.bytes.as_ptr() as *mut libc::c_void, self.bytes.len()) };
    }
}

thread_local! {
    /// The mapping this thread's DWARF reads are counted against, while [`reading`] runs.
    static READING: Cell<*const Mapping> = const { Cell::new(std::ptr::null()) };
}

/// Runs `f`, in which this thread's [`MappedReader`]s read `mapping`: their reads are counted
/// against it and trim it. (Kept out of the readers, which the parsed tables hold by the
/// hundred thousand: 8 bytes more in each was heap too.)
pub(super) fn reading<T>(mapping: &Mapping, f: impl FnOnce() -> T) -> T {
    /// Puts the outer mapping back, also when `f` unwinds.
    struct Restore(*const Mapping);
    impl Drop for Restore {
        fn drop(&mut self) {
            READING.with(|r| r.set(self.0));
        }
    }
    let _restore = Restore(READING.with(|r| r.replace(mapping)));
    f()
}

fn count_read() {
    let mapping = READING.with(Cell::get);
    // SAFETY: non-null only while `reading` runs, whose borrow keeps the mapping alive.
    if let Some(mapping) = unsafe { mapping.as_ref() } {
        mapping.count_read();
    }
}

/// A DWARF reader over a mapped section that counts its reads (see [`reading`]).
#[derive(Clone, Copy)]
pub(super) struct MappedReader {
    slice: EndianSlice<'static, RunTimeEndian>,
}

impl MappedReader {
    /// A reader of `bytes` (a section of a mapped file, or data decompressed from one).
    pub(super) fn new(bytes: &'static [u8], endian: RunTimeEndian) -> Self {
        MappedReader {
            slice: EndianSlice::new(bytes, endian),
        }
    }

    fn wrap(&self, slice: EndianSlice<'static, RunTimeEndian>) -> Self {
        MappedReader { slice }
    }
}

impl fmt::Debug for MappedReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.slice.fmt(f)
    }
}

impl Reader for MappedReader {
    type Endian = RunTimeEndian;
    type Offset = usize;

    fn endian(&self) -> RunTimeEndian {
        self.slice.endian()
    }
    fn len(&self) -> usize {
        self.slice.len()
    }
    fn empty(&mut self) {
        self.slice.empty()
    }
    fn truncate(&mut self, len: usize) -> gimli::Result<()> {
        self.slice.truncate(len)
    }
    fn offset_from(&self, base: &Self) -> usize {
        Reader::offset_from(&self.slice, &base.slice)
    }
    fn offset_id(&self) -> ReaderOffsetId {
        self.slice.offset_id()
    }
    fn lookup_offset_id(&self, id: ReaderOffsetId) -> Option<usize> {
        self.slice.lookup_offset_id(id)
    }
    fn find(&self, byte: u8) -> gimli::Result<usize> {
        Reader::find(&self.slice, byte)
    }
    fn skip(&mut self, len: usize) -> gimli::Result<()> {
        self.slice.skip(len)
    }
    fn split(&mut self, len: usize) -> gimli::Result<Self> {
        count_read();
        let slice = Reader::split(&mut self.slice, len)?;
        Ok(self.wrap(slice))
    }
    fn to_slice(&self) -> gimli::Result<Cow<'_, [u8]>> {
        Ok(Cow::Borrowed(self.slice.slice()))
    }
    fn to_string(&self) -> gimli::Result<Cow<'_, str>> {
        Reader::to_string(&self.slice)
    }
    fn to_string_lossy(&self) -> gimli::Result<Cow<'_, str>> {
        Reader::to_string_lossy(&self.slice)
    }
    fn read_slice(&mut self, buf: &mut [u8]) -> gimli::Result<()> {
        count_read();
        self.slice.read_slice(buf)
    }
    fn read_u8(&mut self) -> gimli::Result<u8> {
        count_read();
        self.slice.read_u8()
    }
}

#[cfg(test)]
mod tests {
    use super::Mapping;

    /// The resident kB of the mapping that starts at `start` (from `/proc/self/smaps`).
    fn resident_kb(start: usize) -> u64 {
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let mut lines = smaps.lines();
        while let Some(line) = lines.next() {
            let range = line.split_whitespace().next().unwrap_or("");
            let Some((lo, _)) = range.split_once('-') else {
                continue;
            };
            if usize::from_str_radix(lo, 16) != Ok(start) {
                continue;
            }
            for line in lines.by_ref() {
                if let Some(kb) = line.strip_prefix("Rss:") {
                    return kb.trim().trim_end_matches(" kB").parse().unwrap();
                }
            }
        }
        panic!("no mapping at {start:#x}")
    }

    #[test]
    fn a_trimmed_mapping_holds_no_resident_page_and_reads_the_same_bytes() {
        let exe = std::fs::read_link("/proc/self/exe").unwrap();
        let on_disk = std::fs::read(&exe).unwrap();
        let mapping = Mapping::open(exe.to_str().unwrap()).unwrap();
        let start = mapping.bytes().as_ptr() as usize;
        let sum = |bytes: &[u8]| bytes.iter().step_by(4096).map(|&b| b as u64).sum::<u64>();
        let first = sum(mapping.bytes());
        assert!(resident_kb(start) > 0, "every page was read");
        mapping.trim();
        assert_eq!(resident_kb(start), 0);
        assert_eq!(sum(mapping.bytes()), first);
        assert_eq!(mapping.bytes(), &on_disk[..]);
    }
}
