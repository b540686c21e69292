//! Arbitrary bytes as a stream of server frames and of client frames: errors, never panics,
//! never unbounded allocation.
#![no_main]

use libfuzzer_sys::fuzz_target;
use taskscope_wire::{Assembler, ClientFrame, Frame, FrameReader, MAX_CLIENT_FRAME};

fuzz_target!(|data: &[u8]| {
    let mut reader = FrameReader::new(data);
    let mut asm = Assembler::new();
    while let Ok(Some(frame)) = reader.next_frame::<Frame>() {
        asm.apply(frame);
    }
    let mut reader = FrameReader::with_limit(data, MAX_CLIENT_FRAME);
    while let Ok(Some(_)) = reader.next_frame::<ClientFrame>() {}
});
