//! A live stream source: connects to an instrumented app, rebuilds its state from the frames,
//! and reconnects (showing "disconnected") when the app goes away, instead of exiting.

use std::io::Write;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use taskscope_wire::{
    write_frame, Assembler, ClientFrame, Frame, FrameReader, Snapshot, WIRE_VERSION,
};

use super::feed::{connecting, disconnected, Feed};

/// How often the UI gets a fresh snapshot (tasks change at most once a second on the wire).
const PUBLISH_EVERY: Duration = Duration::from_millis(250);
/// A server that says nothing for this long after we connect is not a taskscope stream.
const HELLO_TIMEOUT: Duration = Duration::from_secs(3);

/// A running connection manager.
#[derive(Debug)]
pub struct Live {
    /// Snapshots and status lines, as they arrive.
    pub feed: Receiver<Feed>,
    watch: Sender<Option<u64>>,
    /// Dump requests (`None`: a source that cannot dump).
    dump: Option<Sender<()>>,
}

impl Live {
    /// A source fed by another connection manager (the console client, which cannot dump).
    pub(crate) fn from_parts(feed: Receiver<Feed>, watch: Sender<Option<u64>>) -> Self {
        Live {
            feed,
            watch,
            dump: None,
        }
    }

    /// Asks the app for a task dump; false if this source cannot dump.
    pub fn dump(&self) -> bool {
        self.dump.as_ref().is_some_and(|d| d.send(()).is_ok())
    }

    /// Asks for a task's details (histograms), or stops asking.
    pub fn watch(&self, task: Option<u64>) {
        let _ = self.watch.send(task);
    }
}

enum Event {
    Frame(Frame),
    Closed(String),
}

/// Connects to `addr` on a background thread, for as long as the receiver lives.
pub fn connect(addr: String, token: Option<String>) -> Live {
    let (feed_tx, feed) = channel();
    let (watch, watch_rx) = channel();
    let (dump, dump_rx) = channel();
    std::thread::Builder::new()
        .name("taskscope-live".into())
        .spawn(move || manage(addr, token, feed_tx, watch_rx, dump_rx))
        .expect("spawn the connection thread");
    Live {
        feed,
        watch,
        dump: Some(dump),
    }
}

fn resolve(addr: &str) -> Result<SocketAddr, String> {
    addr.to_socket_addrs()
        .map_err(|e| format!("{addr}: {e}"))?
        .next()
        .ok_or_else(|| format!("{addr} resolves to no address"))
}

fn manage(
    addr: String,
    token: Option<String>,
    feed: Sender<Feed>,
    watch: Receiver<Option<u64>>,
    dumps: Receiver<()>,
) {
    let mut watching = None;
    loop {
        let _ = connecting(&feed, &addr);
        let why = match session(&addr, token.as_deref(), &feed, &watch, &dumps, &mut watching) {
            Ok(()) => return, // the UI is gone
            Err(why) if why.contains("is not a taskscope stream") => format!(
                "{why} (an app instrumented with console-subscriber? `taskscope console {addr}`, or report from console://{addr})"
            ),
            Err(why) => why,
        };
        if !disconnected(&feed, &addr, &why) {
            return;
        }
        // Wait a second before retrying, still following watch requests.
        match watch.recv_timeout(Duration::from_secs(1)) {
            Ok(task) => watching = task,
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

/// One connection; `Ok` when the UI went away, `Err(why)` when the connection ended.
fn session(
    addr: &str,
    token: Option<&str>,
    feed: &Sender<Feed>,
    watch: &Receiver<Option<u64>>,
    dumps: &Receiver<()>,
    watching: &mut Option<u64>,
) -> Result<(), String> {
    let target = resolve(addr)?;
    let mut stream =
        TcpStream::connect_timeout(&target, Duration::from_secs(2)).map_err(|e| e.to_string())?;
    let hello = ClientFrame::Hello {
        version: WIRE_VERSION,
        token: token.map(str::to_owned),
    };
    write_frame(&mut stream, &hello).map_err(|e| e.to_string())?;
    if let Some(task) = *watching {
        write_frame(&mut stream, &ClientFrame::Watch { task: Some(task) })
            .map_err(|e| e.to_string())?;
    }
    let reading = stream.try_clone().map_err(|e| e.to_string())?;
    let (tx, frames) = channel();
    std::thread::spawn(move || {
        let mut reader = FrameReader::new(reading);
        loop {
            match reader.next_frame::<Frame>() {
                Ok(Some(frame)) => {
                    if tx.send(Event::Frame(frame)).is_err() {
                        return;
                    }
                }
                Ok(None) => {
                    return drop(tx.send(Event::Closed("the app closed the stream".into())))
                }
                Err(e) => return drop(tx.send(Event::Closed(e.to_string()))),
            }
        }
    });

    let mut asm = Assembler::new();
    let connected = Instant::now();
    let mut last_publish = Instant::now() - PUBLISH_EVERY;
    let mut dirty = false;
    loop {
        match frames.recv_timeout(Duration::from_millis(50)) {
            Ok(Event::Frame(frame)) => {
                if let Frame::Refused { reason } = &frame {
                    return Err(format!("{addr} refused this dashboard: {reason}"));
                }
                if let Frame::Dump(dump) = frame {
                    if feed.send(Feed::Dump(Arc::new(*dump))).is_err() {
                        return Ok(());
                    }
                    continue;
                }
                if asm.hello.is_none() && !matches!(frame, Frame::Hello(_)) {
                    return Err(format!("{addr} is not a taskscope stream (no hello)"));
                }
                if let Frame::Hello(h) = &frame {
                    if h.version != WIRE_VERSION {
                        return Err(format!(
                            "the app speaks stream version {}, this dashboard {WIRE_VERSION}",
                            h.version
                        ));
                    }
                    let _ = feed.send(Feed::Status(format!("live: {addr}")));
                }
                asm.apply(frame);
                dirty = true;
            }
            Ok(Event::Closed(why)) => {
                return Err(if asm.hello.is_none() {
                    format!("{addr} is not a taskscope stream: {why}")
                } else {
                    why
                })
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return Err("reader stopped".into()),
        }
        if asm.hello.is_none() && connected.elapsed() > HELLO_TIMEOUT {
            let _ = stream.shutdown(std::net::Shutdown::Both);
            return Err(format!(
                "{addr} is not a taskscope stream (nothing sent in {}s)",
                HELLO_TIMEOUT.as_secs()
            ));
        }
        // Dump requests (the app answers with a Dump frame; taken while connected only).
        while dumps.try_recv().is_ok() {
            if asm.hello.is_some() {
                write_frame(&mut stream, &ClientFrame::Dump { timeout_ms: 5_000 })
                    .map_err(|e| e.to_string())?;
                stream.flush().map_err(|e| e.to_string())?;
            }
        }
        loop {
            match watch.try_recv() {
                Ok(task) => {
                    *watching = task;
                    write_frame(&mut stream, &ClientFrame::Watch { task })
                        .map_err(|e| e.to_string())?;
                    stream.flush().map_err(|e| e.to_string())?;
                }
                Err(std::sync::mpsc::TryRecvError::Empty) => break,
                Err(std::sync::mpsc::TryRecvError::Disconnected) => return Ok(()),
            }
        }
        if dirty && last_publish.elapsed() >= PUBLISH_EVERY {
            let snapshot: Arc<Snapshot> = Arc::new(asm.snapshot().clone());
            if feed.send(Feed::Snapshot(snapshot)).is_err() {
                return Ok(());
            }
            last_publish = Instant::now();
            dirty = false;
        }
    }
}
