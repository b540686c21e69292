//! Recording files: a header (magic bytes, format version), then records of
//! `[u32 payload length][u64 ms since start][u32 CRC-32][payload: a postcard Frame]`, the CRC
//! covering the length, the timestamp and the payload,
//! append-only, all little-endian.
//!
//! A reader takes every whole, intact record and then says where and why it stopped, so a file
//! cut short by a crash yields everything up to its last flushed record.

use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::path::Path;

use crate::frame::{read_full, Frame, WireError, MAX_FRAME, MIN_WIRE_VERSION, WIRE_VERSION};

/// The first 8 bytes of every recording.
pub const MAGIC: [u8; 8] = *b"TSREC\r\n\x1a";
const HEADER_LEN: u64 = 16;
const RECORD_HEADER: usize = 16;

/// Writes a recording.
#[derive(Debug)]
pub struct RecordingWriter<W: Write> {
    inner: W,
    written: u64,
}

impl<W: Write> RecordingWriter<W> {
    /// Writes the header and returns the writer.
    pub fn new(mut inner: W) -> io::Result<Self> {
        inner.write_all(&MAGIC)?;
        inner.write_all(&WIRE_VERSION.to_le_bytes())?;
        inner.write_all(&0u32.to_le_bytes())?; // flags, none yet
        Ok(RecordingWriter {
            inner,
            written: HEADER_LEN,
        })
    }

    /// Appends one frame, stamped `at_ms` after the start.
    pub fn write(&mut self, at_ms: u64, frame: &Frame) -> io::Result<()> {
        let payload = postcard::to_stdvec(frame).map_err(io::Error::other)?;
        let mut record = Vec::with_capacity(RECORD_HEADER + payload.len());
        record.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        record.extend_from_slice(&at_ms.to_le_bytes());
        record.extend_from_slice(&checksum(&record[..12], &payload).to_le_bytes());
        record.extend_from_slice(&payload);
        self.inner.write_all(&record)?;
        self.written += record.len() as u64;
        Ok(())
    }

    /// Bytes written so far, header included.
    pub fn bytes_written(&self) -> u64 {
        self.written
    }

    /// Flushes buffered records.
    pub fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }

    /// The underlying writer.
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.inner
    }
}

/// Why reading stopped before the end of the file.
#[derive(Debug)]
pub struct Stopped {
    /// Byte offset of the first record not read.
    pub offset: u64,
    /// What was wrong there.
    pub error: WireError,
}

/// Everything readable in a recording.
#[derive(Debug, Default)]
pub struct Recording {
    /// `(ms since start, frame)` for every whole, intact record, in order.
    pub frames: Vec<(u64, Frame)>,
    /// Set when the file does not end cleanly after the last record read.
    pub stopped: Option<Stopped>,
}

/// Reads a recording's records one by one.
#[derive(Debug)]
pub struct RecordingReader<R> {
    inner: R,
    offset: u64,
    done: bool,
}

impl RecordingReader<BufReader<File>> {
    /// Opens a recording file and checks its header.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, WireError> {
        RecordingReader::new(BufReader::new(File::open(path)?))
    }
}

impl<R: Read> RecordingReader<R> {
    /// Checks the header and returns a reader positioned at the first record.
    pub fn new(mut inner: R) -> Result<Self, WireError> {
        let mut header = [0u8; HEADER_LEN as usize];
        let got = read_full(&mut inner, &mut header)?;
        if got < 8 || header[..8] != MAGIC {
            return Err(WireError::BadMagic);
        }
        if got < header.len() {
            return Err(WireError::Truncated { offset: 0 });
        }
        let version = u32::from_le_bytes(header[8..12].try_into().expect("4 bytes"));
        if !(MIN_WIRE_VERSION..=WIRE_VERSION).contains(&version) {
            return Err(WireError::UnsupportedVersion { found: version });
        }
        Ok(RecordingReader {
            inner,
            offset: HEADER_LEN,
            done: false,
        })
    }

    /// The next record: `Ok(None)` at a clean end, `Err` (once) where the file stops being readable.
    pub fn next_record(&mut self) -> Result<Option<(u64, Frame)>, WireError> {
        if self.done {
            return Ok(None);
        }
        let result = self.read_record();
        if !matches!(result, Ok(Some(_))) {
            self.done = true;
        }
        result
    }

    fn read_record(&mut self) -> Result<Option<(u64, Frame)>, WireError> {
        let offset = self.offset;
        let mut head = [0u8; RECORD_HEADER];
        match read_full(&mut self.inner, &mut head)? {
            0 => return Ok(None),
            n if n < RECORD_HEADER => return Err(WireError::Truncated { offset }),
            _ => {}
        }
        let len = u32::from_le_bytes(head[0..4].try_into().expect("4 bytes")) as u64;
        let at_ms = u64::from_le_bytes(head[4..12].try_into().expect("8 bytes"));
        let crc = u32::from_le_bytes(head[12..16].try_into().expect("4 bytes"));
        if len > MAX_FRAME as u64 {
            return Err(WireError::FrameTooLarge {
                offset,
                len,
                max: MAX_FRAME,
            });
        }
        let mut payload = Vec::new();
        let got = (&mut self.inner).take(len).read_to_end(&mut payload)?;
        if (got as u64) < len {
            return Err(WireError::Truncated { offset });
        }
        if checksum(&head[..12], &payload) != crc {
            return Err(WireError::Checksum { offset });
        }
        let frame = postcard::from_bytes(&payload).map_err(|e| WireError::Malformed {
            offset,
            reason: e.to_string(),
        })?;
        self.offset += RECORD_HEADER as u64 + len;
        Ok(Some((at_ms, frame)))
    }

    /// Reads every whole record, then says where and why it stopped, if not at a clean end.
    pub fn read_all(mut self) -> Recording {
        let mut recording = Recording::default();
        loop {
            let offset = self.offset;
            match self.next_record() {
                Ok(Some(record)) => recording.frames.push(record),
                Ok(None) => return recording,
                Err(error) => {
                    recording.stopped = Some(Stopped { offset, error });
                    return recording;
                }
            }
        }
    }
}

/// CRC-32 of a record's length and timestamp fields and its payload.
fn checksum(head: &[u8], payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(head);
    hasher.update(payload);
    hasher.finalize()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::Hello;

    fn recording(frames: usize) -> (Vec<u8>, Vec<u64>) {
        let mut w = RecordingWriter::new(Vec::new()).unwrap();
        let mut ends = Vec::new();
        for i in 0..frames {
            let hello = Hello {
                version: WIRE_VERSION,
                pid: i as u32,
                process: "x".repeat(i),
                start_unix_ms: 0,
            };
            w.write(i as u64 * 10, &Frame::Hello(hello)).unwrap();
            ends.push(w.bytes_written());
        }
        (w.inner, ends)
    }

    #[test]
    fn round_trip() {
        let (bytes, _) = recording(5);
        let rec = RecordingReader::new(&bytes[..]).unwrap().read_all();
        assert!(rec.stopped.is_none());
        assert_eq!(rec.frames.len(), 5);
        assert_eq!(rec.frames[3].0, 30);
    }

    #[test]
    fn a_truncated_tail_keeps_every_whole_record_and_says_where() {
        let (bytes, ends) = recording(5);
        let cut = &bytes[..ends[3] as usize - 3];
        let rec = RecordingReader::new(cut).unwrap().read_all();
        assert_eq!(rec.frames.len(), 3);
        let stopped = rec.stopped.unwrap();
        assert_eq!(stopped.offset, ends[2]);
        assert!(matches!(stopped.error, WireError::Truncated { offset } if offset == ends[2]));
    }

    #[test]
    fn a_corrupted_record_fails_its_checksum() {
        let (mut bytes, ends) = recording(5);
        let victim = ends[1] as usize + 20; // inside the third record's payload
        bytes[victim] ^= 0x55;
        let rec = RecordingReader::new(&bytes[..]).unwrap().read_all();
        assert_eq!(rec.frames.len(), 2);
        let stopped = rec.stopped.unwrap();
        assert!(
            matches!(stopped.error, WireError::Checksum { offset } if offset == ends[1]),
            "{:?}",
            stopped
        );
    }

    #[test]
    fn not_a_recording() {
        assert!(matches!(
            RecordingReader::new(&b"hello world, not taskscope"[..]),
            Err(WireError::BadMagic)
        ));
        let mut other_version = MAGIC.to_vec();
        other_version.extend_from_slice(&99u32.to_le_bytes());
        other_version.extend_from_slice(&0u32.to_le_bytes());
        assert!(matches!(
            RecordingReader::new(&other_version[..]),
            Err(WireError::UnsupportedVersion { found: 99 })
        ));
    }
}
