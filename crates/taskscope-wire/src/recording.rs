//! Recording files: a header (magic bytes, format version), then records of
//! `[u32 payload length][u64 ms since start][u32 CRC-32][payload: a postcard Frame]`, the CRC
//! covering the length, the timestamp and the payload,
//! append-only, all little-endian.
//!
//! A reader takes every whole, intact record. Past a damaged record it resynchronises at the next
//! offset where a record checks out (its CRC-32 and its frame: a false match needs a 32-bit
//! checksum collision on bytes that also decode), says which span it skipped and why, and goes
//! on; a file cut short by a crash yields everything up to its last flushed record and says
//! where it stops.

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

/// A damaged span the reader skipped.
#[derive(Debug)]
pub struct Skipped {
    /// Byte offset where the damage starts (the first record that did not check out).
    pub offset: u64,
    /// Bytes skipped, up to the next intact record.
    pub len: u64,
    /// What was wrong at `offset`.
    pub error: WireError,
}

/// Everything readable in a recording.
#[derive(Debug, Default)]
pub struct Recording {
    /// `(ms since start, frame)` for every whole, intact record, in order.
    pub frames: Vec<(u64, Frame)>,
    /// Damaged spans skipped to read the intact records after them, in order.
    pub skipped: Vec<Skipped>,
    /// Set when the file does not end cleanly: it is cut inside a record, or damaged with no
    /// intact record after the damage.
    pub stopped: Option<Stopped>,
}

/// Reads a recording's records one by one.
#[derive(Debug)]
pub struct RecordingReader<R> {
    inner: R,
    offset: u64,
    done: bool,
    /// The bytes of the record being read, for `read_all` to resynchronise from.
    consumed: Vec<u8>,
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
        if got == 0 {
            return Err(WireError::Empty);
        }
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
        // No flag is defined yet: one set is a format this build cannot read.
        let flags = u32::from_le_bytes(header[12..16].try_into().expect("4 bytes"));
        if flags != 0 {
            return Err(WireError::UnsupportedFlags { found: flags });
        }
        Ok(RecordingReader {
            inner,
            offset: HEADER_LEN,
            done: false,
            consumed: Vec::new(),
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
        let got = read_full(&mut self.inner, &mut head)?;
        self.consumed.clear();
        self.consumed.extend_from_slice(&head[..got]);
        match got {
            0 => return Ok(None),
            n if n < RECORD_HEADER => return Err(WireError::Truncated { offset }),
            _ => {}
        }
        let (len, at_ms) = record_len(&head, offset)?;
        let mut payload = Vec::new();
        let got = (&mut self.inner).take(len).read_to_end(&mut payload)?;
        self.consumed.extend_from_slice(&payload);
        if (got as u64) < len {
            return Err(WireError::Truncated { offset });
        }
        let frame = record_frame(&head, &payload, offset)?;
        self.offset += RECORD_HEADER as u64 + len;
        self.consumed.clear();
        Ok(Some((at_ms, frame)))
    }

    /// Reads every intact record, skipping damaged spans (`Recording::skipped`), and says where
    /// and why it stopped if the file does not end cleanly.
    ///
    /// Records are read from the stream as they come; from the first damage on, the rest of the
    /// input is read into memory to look for the next intact record.
    pub fn read_all(mut self) -> Recording {
        let mut recording = Recording::default();
        loop {
            let offset = self.offset;
            match self.next_record() {
                Ok(Some(record)) => recording.frames.push(record),
                Ok(None) => return recording,
                Err(error @ WireError::Io(_)) => {
                    recording.stopped = Some(Stopped { offset, error });
                    return recording;
                }
                Err(error) => {
                    // The damaged record's bytes were consumed: read them again from the tail.
                    let mut tail = std::mem::take(&mut self.consumed);
                    if let Err(e) = self.inner.read_to_end(&mut tail) {
                        recording.stopped = Some(Stopped {
                            offset,
                            error: WireError::Io(e),
                        });
                        return recording;
                    }
                    resync(&tail, offset, error, &mut recording);
                    return recording;
                }
            }
        }
    }
}

/// Reads the records of `tail` (the input from file offset `base`, where a record failed with
/// `error`), resynchronising past every damaged span.
fn resync(tail: &[u8], base: u64, error: WireError, recording: &mut Recording) {
    let (mut at, mut damage) = (0usize, Some((0usize, error)));
    while at < tail.len() {
        match damage.take() {
            None => match parse(&tail[at..], base + at as u64) {
                Ok((len, record)) => {
                    recording.frames.push(record);
                    at += len;
                }
                Err(error) => damage = Some((at, error)),
            },
            Some((start, error)) => {
                let next = (start + 1..tail.len()).find(|&p| parse(&tail[p..], 0).is_ok());
                match next {
                    Some(next) => {
                        recording.skipped.push(Skipped {
                            offset: base + start as u64,
                            len: (next - start) as u64,
                            error,
                        });
                        at = next;
                    }
                    None => {
                        recording.stopped = Some(Stopped {
                            offset: base + start as u64,
                            error,
                        });
                        return;
                    }
                }
            }
        }
    }
}

/// The record at the start of `bytes` (at file offset `offset`, for errors) and its length.
fn parse(bytes: &[u8], offset: u64) -> Result<(usize, (u64, Frame)), WireError> {
    if bytes.len() < RECORD_HEADER {
        return Err(WireError::Truncated { offset });
    }
    let head = &bytes[..RECORD_HEADER];
    let (len, at_ms) = record_len(head, offset)?;
    let end = RECORD_HEADER + len as usize;
    let Some(payload) = bytes.get(RECORD_HEADER..end) else {
        return Err(WireError::Truncated { offset });
    };
    Ok((end, (at_ms, record_frame(head, payload, offset)?)))
}

/// A record header's payload length (within the limit) and timestamp.
fn record_len(head: &[u8], offset: u64) -> Result<(u64, u64), WireError> {
    let len = u32::from_le_bytes(head[0..4].try_into().expect("4 bytes")) as u64;
    let at_ms = u64::from_le_bytes(head[4..12].try_into().expect("8 bytes"));
    if len > MAX_FRAME as u64 {
        return Err(WireError::FrameTooLarge {
            offset,
            len,
            max: MAX_FRAME,
        });
    }
    Ok((len, at_ms))
}

/// The frame of a record, if its payload matches the header's checksum and decodes.
fn record_frame(head: &[u8], payload: &[u8], offset: u64) -> Result<Frame, WireError> {
    let crc = u32::from_le_bytes(head[12..16].try_into().expect("4 bytes"));
    if checksum(&head[..12], payload) != crc {
        return Err(WireError::Checksum { offset });
    }
    postcard::from_bytes(payload).map_err(|e| WireError::Malformed {
        offset,
        reason: e.to_string(),
    })
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
    fn a_corrupted_record_is_skipped_and_the_records_after_it_are_read() {
        let (mut bytes, ends) = recording(5);
        let victim = ends[1] as usize + 20; // inside the third record's payload
        bytes[victim] ^= 0x55;
        let rec = RecordingReader::new(&bytes[..]).unwrap().read_all();
        assert!(rec.stopped.is_none(), "{:?}", rec.stopped);
        let pids: Vec<u32> = rec
            .frames
            .iter()
            .map(|(_, f)| match f {
                Frame::Hello(h) => h.pid,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(pids, [0, 1, 3, 4]);
        let [skipped] = &rec.skipped[..] else {
            panic!("{:?}", rec.skipped)
        };
        // Exactly the damaged record: from its start to the next one's.
        assert_eq!((skipped.offset, skipped.len), (ends[1], ends[2] - ends[1]));
        assert!(matches!(skipped.error, WireError::Checksum { offset } if offset == ends[1]));
    }

    #[test]
    fn an_overwritten_length_and_damage_to_the_last_record_are_told_apart() {
        // A length that points past the end of the file: the records after it still read.
        let (mut bytes, ends) = recording(6);
        bytes[ends[2] as usize..ends[2] as usize + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        let rec = RecordingReader::new(&bytes[..]).unwrap().read_all();
        assert_eq!(rec.frames.len(), 5, "{:?}", rec.skipped);
        assert_eq!(rec.skipped.len(), 1);
        assert!(rec.stopped.is_none());
        // Damage in the last record: nothing intact after it, so reading stops there.
        let (mut bytes, ends) = recording(3);
        bytes[ends[1] as usize + 18] ^= 0xff;
        let rec = RecordingReader::new(&bytes[..]).unwrap().read_all();
        assert_eq!(rec.frames.len(), 2);
        assert!(rec.skipped.is_empty());
        assert_eq!(rec.stopped.unwrap().offset, ends[1]);
    }

    #[test]
    fn unknown_header_flags_are_refused() {
        let (mut bytes, _) = recording(2);
        bytes[12] = 1;
        let err = RecordingReader::new(&bytes[..]).unwrap_err();
        assert!(
            matches!(err, WireError::UnsupportedFlags { found: 1 }),
            "{err}"
        );
    }

    #[test]
    fn an_empty_file_is_said_to_be_empty() {
        let err = RecordingReader::new(&b""[..]).unwrap_err();
        assert!(matches!(err, WireError::Empty), "{err}");
        assert!(err.to_string().contains("empty"), "{err}");
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
