//! Arbitrary bytes as a recording: whatever is read is whole and checksummed; the rest is an
//! error naming where it stopped.
#![no_main]

use libfuzzer_sys::fuzz_target;
use taskscope_wire::recording::RecordingReader;
use taskscope_wire::Assembler;

fuzz_target!(|data: &[u8]| {
    if let Ok(reader) = RecordingReader::new(data) {
        let rec = reader.read_all();
        let mut asm = Assembler::new();
        for (_, frame) in rec.frames {
            asm.apply(frame);
        }
        if let Some(stopped) = rec.stopped {
            assert!(stopped.error.to_string().len() > 5);
        }
    }
});
