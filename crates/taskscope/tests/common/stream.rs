//! A client of taskscope's live stream for the tests: connect (saying a wire version and a
//! token), read frames on a thread of its own, wait for what a test looks for; and a runtime on
//! a thread of its own, which a test can block while it watches the stream.

use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

use taskscope_wire::{write_frame, Assembler, ClientFrame, Frame, FrameReader, WIRE_VERSION};

/// Connects saying this build's wire version (and `token`).
pub fn connect(addr: SocketAddr, token: Option<&str>) -> (TcpStream, Receiver<Frame>) {
    connect_with(addr, WIRE_VERSION, token)
}

/// Connects saying `version` (and `token`), and reads frames on a thread of its own.
pub fn connect_with(
    addr: SocketAddr,
    version: u32,
    token: Option<&str>,
) -> (TcpStream, Receiver<Frame>) {
    let mut stream = TcpStream::connect(addr).unwrap();
    write_frame(
        &mut stream,
        &ClientFrame::Hello {
            version,
            token: token.map(str::to_owned),
        },
    )
    .unwrap();
    let (tx, rx) = channel();
    let reading = stream.try_clone().unwrap();
    std::thread::spawn(move || {
        let mut reader = FrameReader::new(reading);
        while let Ok(Some(frame)) = reader.next_frame::<Frame>() {
            if tx.send(frame).is_err() {
                break;
            }
        }
    });
    (stream, rx)
}

/// Applies frames until `found` returns something, or the timeout.
pub fn wait_for<T>(
    rx: &Receiver<Frame>,
    asm: &mut Assembler,
    timeout: Duration,
    mut found: impl FnMut(&Assembler, &Frame) -> Option<T>,
) -> Option<T> {
    let deadline = Instant::now() + timeout;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        let Ok(frame) = rx.recv_timeout(left) else {
            return None;
        };
        asm.apply(frame.clone());
        if let Some(x) = found(asm, &frame) {
            return Some(x);
        }
    }
    None
}

/// A current-thread runtime on its own thread, so it can be blocked while the test watches.
pub fn runtime_thread() -> tokio::runtime::Handle {
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        tx.send(rt.handle().clone()).unwrap();
        rt.block_on(std::future::pending::<()>());
    });
    rx.recv().unwrap()
}
