//! A client of taskscope's live stream that reads it as a dashboard would, without decoding it
//! (the cost to the application is in producing and sending the frames). Shared by
//! `examples/overhead.rs` and `benches/console-overhead` (`#[path]` modules: this directory is
//! not an example of its own).

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A thread reading the stream.
pub struct Client {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<u64>,
}

impl Client {
    /// A client of `guard`'s stream through the run, as a dashboard would read it, unless the
    /// command line says `--no-client` (or there is no Guard).
    pub fn unless_no_client(guard: Option<&taskscope::Guard>) -> Option<Client> {
        if std::env::args().any(|a| a == "--no-client") {
            return None;
        }
        guard.map(|g| Client::connect(g.local_addr().expect("the stream is on")))
    }

    /// Connects to the stream at `addr`, and returns once its first bytes arrived.
    pub fn connect(addr: SocketAddr) -> Client {
        let stop = Arc::new(AtomicBool::new(false));
        let mut conn = TcpStream::connect(addr).expect("connects to the stream");
        taskscope_wire::write_frame(
            &mut conn,
            &taskscope_wire::ClientFrame::Hello {
                version: taskscope_wire::WIRE_VERSION,
                token: None,
            },
        )
        .expect("hello sent");
        conn.set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        let (first_tx, first_rx) = std::sync::mpsc::channel();
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut buf = vec![0u8; 1 << 16];
            let mut bytes = 0u64;
            while !flag.load(Ordering::Relaxed) {
                match conn.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        if bytes == 0 {
                            let _ = first_tx.send(());
                        }
                        bytes += n as u64;
                    }
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) => {}
                    Err(_) => break,
                }
            }
            bytes
        });
        first_rx
            .recv_timeout(Duration::from_secs(5))
            .expect("the stream sends its first frame");
        Client { stop, thread }
    }

    /// Stops reading; the bytes read.
    pub fn stop(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("client thread")
    }
}
