//! Malformed input never panics: thousands of mutated frames and recordings (bit flips, cuts,
//! splices, forged lengths) from valid seeds go through the decoders. A deterministic stand-in
//! for the coverage-guided fuzzing that needs a nightly toolchain (see the README).

use taskscope_wire::recording::{RecordingReader, RecordingWriter};
use taskscope_wire::{
    Frame, FrameReader, Hello, Histogram, Lock, Task, Update, Warning, WarningKind, WIRE_VERSION,
};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn seeds() -> Vec<Frame> {
    let mut h = Histogram::default();
    for v in [10u64, 1_000, 55_555, 9_999_999] {
        h.record(v);
    }
    let mut w = Warning::new(4, WarningKind::LockOrderInversion, 77, "a then b, b then a");
    w.locks = vec!["a".into(), "b".into()];
    vec![
        Frame::Hello(Hello {
            version: WIRE_VERSION,
            pid: 42,
            process: "app".into(),
            start_unix_ms: 1,
        }),
        Frame::Update(Box::new(Update {
            at_ms: 100,
            full: true,
            tasks: vec![Task {
                id: 1,
                name: "t".into(),
                poll_ns: h.clone(),
                ..Task::default()
            }],
            removed_tasks: vec![7, 8],
            locks: Some(vec![Lock {
                id: 2,
                name: "m".into(),
                wait_ns: h,
                ..Lock::default()
            }]),
            ..Update::default()
        })),
        Frame::Warning(Box::new(w)),
        Frame::Dropped { count: 3 },
    ]
}

fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        match rng.below(5) {
            0 if !out.is_empty() => {
                let i = rng.below(out.len());
                out[i] ^= 1 << rng.below(8);
            }
            1 if !out.is_empty() => out.truncate(rng.below(out.len())),
            2 => {
                let i = rng.below(out.len() + 1);
                let junk: Vec<u8> = (0..rng.below(16)).map(|_| rng.next() as u8).collect();
                out.splice(i..i, junk);
            }
            3 if out.len() >= 4 => {
                // Forge a length prefix somewhere.
                let i = rng.below(out.len() - 3);
                out[i..i + 4].copy_from_slice(&(rng.next() as u32).to_le_bytes());
            }
            _ => {
                let i = rng.below(out.len() + 1);
                out.insert(i, rng.next() as u8);
            }
        }
    }
    out
}

#[test]
fn mutated_streams_are_errors_not_panics() {
    let mut stream = Vec::new();
    for f in seeds() {
        taskscope_wire::frame::write_frame(&mut stream, &f).unwrap();
    }
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut errors = 0;
    for _ in 0..20_000 {
        let input = mutate(&mut rng, &stream);
        let mut reader = FrameReader::new(&input[..]);
        loop {
            match reader.next_frame::<Frame>() {
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(e) => {
                    assert!(!e.to_string().is_empty());
                    errors += 1;
                    break;
                }
            }
        }
    }
    assert!(errors > 10_000, "most mutations must be caught ({errors})");
}

#[test]
fn mutated_recordings_keep_their_intact_prefix() {
    let mut w = RecordingWriter::new(Vec::new()).unwrap();
    for (i, f) in seeds().iter().enumerate() {
        w.write(i as u64, f).unwrap();
    }
    let bytes = w.get_mut().clone();
    let whole = RecordingReader::new(&bytes[..]).unwrap().read_all();
    assert_eq!(whole.frames.len(), 4);
    let mut rng = Rng(0x0123_4567_89ab_cdef);
    for _ in 0..20_000 {
        let input = mutate(&mut rng, &bytes);
        let Ok(reader) = RecordingReader::new(&input[..]) else {
            continue;
        };
        let rec = reader.read_all();
        // Every record read is one that was written (checksums catch changed records; a splice
        // may repeat a whole one), and past damage the reader resynchronises.
        for got in &rec.frames {
            assert!(whole.frames.contains(got), "a changed record was accepted");
        }
        if rec.frames.len() < whole.frames.len() {
            assert!(
                rec.stopped.is_some() || !rec.skipped.is_empty() || input.len() < bytes.len(),
                "a shorter read must say why"
            );
        }
        for skipped in &rec.skipped {
            assert!(skipped.len > 0 && skipped.offset + skipped.len <= input.len() as u64);
        }
    }
}
