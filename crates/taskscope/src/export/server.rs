//! The live stream server: loopback TCP (or a Unix socket) on its own OS threads.
//!
//! Each client gets a bounded queue of encoded frames; the collector only ever `try_send`s, so a
//! slow or stopped client never slows the application: when its queue is full its frames are
//! dropped and counted, and once it drains it gets a `Dropped` frame and a fresh key frame. A
//! client that sends anything but a valid hello is disconnected with a log line; lengths a client
//! sends are bounded by `MAX_CLIENT_FRAME`.

use std::io::{self, Write};
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::*};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::export::conn::{refuse, Conn};
use crate::export::handshake::{handshake, HelloRefused};
use crate::state::refusals::Refusal;
use crate::state::shared::global;
use taskscope_wire::{encode, ClientFrame, Frame, FrameReader, MAX_CLIENT_FRAME, WIRE_VERSION};

/// Frames queued per client: about 3 s of updates at the 100 ms tick (frames of a big app are
/// large: the queue bounds the memory a stalled client can pin).
const CLIENT_QUEUE: usize = 32;
/// Kernel send buffer per client (Linux doubles it for bookkeeping).
const SEND_BUFFER: usize = 256 << 10;
/// Dashboards at once; more are refused (each costs two threads).
const MAX_CLIENTS: usize = 16;
/// Connections still saying hello at once (each costs a thread until its hello's deadline);
/// more are refused at once, so that peers that never finish cannot pile up threads.
const MAX_HANDSHAKES: usize = 8;
/// A write blocked this long means the client stopped reading: it is dropped.
const WRITE_TIMEOUT: Duration = Duration::from_secs(2);

/// Where to listen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BindAddr {
    Tcp(SocketAddr),
    #[cfg(unix)]
    Unix(PathBuf),
}

impl std::fmt::Display for BindAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BindAddr::Tcp(addr) => write!(f, "{addr}"),
            #[cfg(unix)]
            BindAddr::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

/// Parses `TASKSCOPE_BIND`-style values: `off`, `host:port`, `unix:/path` or `/path`.
pub(crate) fn parse_bind(value: &str) -> Result<Option<BindAddr>, String> {
    let value = value.trim();
    if value.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    if let Some(path) = value
        .strip_prefix("unix:")
        .or_else(|| value.starts_with('/').then_some(value))
    {
        #[cfg(unix)]
        return Ok(Some(BindAddr::Unix(PathBuf::from(path))));
        #[cfg(not(unix))]
        return Err(format!(
            "Unix sockets are not available on this platform: {path}"
        ));
    }
    let addr = value
        .to_socket_addrs()
        .map_err(|e| format!("`{value}` is not an address to listen on: {e}"))?
        .next()
        .ok_or_else(|| format!("`{value}` resolves to no address"))?;
    Ok(Some(BindAddr::Tcp(addr)))
}

enum Listener {
    Tcp(TcpListener),
    #[cfg(unix)]
    Unix(std::os::unix::net::UnixListener),
}

/// Encoded frames for every client (`v1`), for clients of version 2 or later (`v2`) and of
/// version 3 or later (`v3`).
#[derive(Debug, Default)]
pub(crate) struct Published {
    pub(crate) v1: Vec<Arc<Vec<u8>>>,
    /// For each wire version older than this build's whose clients must get something else
    /// than `v1` (scope tasks as `async` ones, no warning kinds of later versions:
    /// `Frame::for_version`): the version and what its clients, and older ones without an
    /// entry of their own, get instead. Oldest first.
    pub(crate) older: Vec<(u32, Vec<Arc<Vec<u8>>>)>,
    pub(crate) v2: Vec<Arc<Vec<u8>>>,
    pub(crate) v3: Vec<Arc<Vec<u8>>>,
}

impl Published {
    /// `frames` encoded for every client, with a copy for older clients where they need one.
    pub(crate) fn new(frames: &[Frame], v2: &[Frame], v3: &[Frame]) -> Published {
        let v1: Vec<Arc<Vec<u8>>> = frames.iter().map(|f| Arc::new(encode(f))).collect();
        // What a version must not get as it is, no older one may get either: a client takes
        // the first entry at or above its version (none: `v1`).
        let older = (2..WIRE_VERSION)
            .filter_map(|version| {
                let copies: Vec<Option<Option<Frame>>> =
                    frames.iter().map(|f| f.for_version(version)).collect();
                copies.iter().any(Option::is_some).then(|| {
                    let frames = copies
                        .into_iter()
                        .zip(&v1)
                        .filter_map(|(copy, same)| match copy {
                            None => Some(same.clone()),
                            Some(None) => None,
                            Some(Some(copy)) => Some(Arc::new(encode(&copy))),
                        })
                        .collect();
                    (version, frames)
                })
            })
            .collect();
        Published {
            v1,
            older,
            v2: v2.iter().map(|f| Arc::new(encode(f))).collect(),
            v3: v3.iter().map(|f| Arc::new(encode(f))).collect(),
        }
    }

    fn for_version(&self, version: u32) -> &[Arc<Vec<u8>>] {
        self.older
            .iter()
            .find(|(older, _)| version <= *older)
            .map_or(&self.v1, |(_, frames)| frames)
    }
}

#[derive(Debug)]
struct Client {
    tx: SyncSender<Arc<Vec<u8>>>,
    alive: Arc<AtomicBool>,
    /// The task this client watches (0: none).
    watching: Arc<AtomicU64>,
    needs_key: bool,
    dropped: u64,
    /// The client's wire version: frames of later versions are not sent to it.
    version: u32,
}

/// The running server.
#[derive(Debug)]
pub(crate) struct Server {
    addr: BindAddr,
    clients: Arc<Mutex<Vec<Client>>>,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

impl Server {
    /// Listens on `addr`; clients must present `token` when one is given.
    pub(crate) fn start(addr: &BindAddr, token: Option<String>) -> io::Result<Server> {
        let (listener, addr) = match addr {
            BindAddr::Tcp(a) => {
                let l = TcpListener::bind(a)?;
                let local = l.local_addr()?;
                l.set_nonblocking(true)?;
                (Listener::Tcp(l), BindAddr::Tcp(local))
            }
            #[cfg(unix)]
            BindAddr::Unix(path) => {
                // A socket file left by a crashed process is replaced; anything else is an error.
                if let Ok(meta) = std::fs::symlink_metadata(path) {
                    use std::os::unix::fs::FileTypeExt;
                    if meta.file_type().is_socket() {
                        std::fs::remove_file(path)?;
                    }
                }
                let l = std::os::unix::net::UnixListener::bind(path)?;
                l.set_nonblocking(true)?;
                (Listener::Unix(l), BindAddr::Unix(path.clone()))
            }
        };
        let clients = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let acceptor = {
            let (clients, stop) = (clients.clone(), stop.clone());
            std::thread::Builder::new()
                .name("taskscope-server".into())
                .spawn(move || accept_loop(listener, clients, stop, token))?
        };
        Ok(Server {
            addr,
            clients,
            stop,
            acceptor: Some(acceptor),
        })
    }

    /// The address actually bound (with the real port when asked for port 0).
    pub(crate) fn addr(&self) -> &BindAddr {
        &self.addr
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Client>> {
        self.clients.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn has_clients(&self) -> bool {
        let mut clients = self.lock();
        clients.retain(|c| c.alive.load(Acquire));
        !clients.is_empty()
    }

    pub(crate) fn needs_key_frame(&self) -> bool {
        self.lock().iter().any(|c| c.needs_key)
    }

    /// The tasks some client watches.
    pub(crate) fn watched(&self) -> Vec<u64> {
        let mut ids: Vec<u64> = self
            .lock()
            .iter()
            .map(|c| c.watching.load(Relaxed))
            .filter(|&t| t != 0)
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// Queues a task's detail for the clients watching it (dropped for a client that is full).
    pub(crate) fn publish_detail(&self, task: u64, frame: &Frame) {
        let detail = Published::new(std::slice::from_ref(frame), &[], &[]);
        for client in self.lock().iter_mut() {
            if client.watching.load(Relaxed) == task && !client.needs_key {
                for encoded in detail.for_version(client.version) {
                    let _ = client.tx.try_send(encoded.clone());
                }
            }
        }
    }

    /// Queues this tick's frames for every client, never blocking. A client that needs a key
    /// frame gets `key` first (when it has room for all of it).
    /// Sends `frames` (and `key` frames first to clients that need a key frame) to every
    /// client; the `*_v2` frames only to clients of wire version 2 or later.
    pub(crate) fn publish(&self, key: Option<&Published>, frames: &Published) {
        let mut clients = self.lock();
        clients.retain(|c| c.alive.load(Acquire));
        for client in clients.iter_mut() {
            let (v2, v3) = (client.version >= 2, client.version >= 3);
            if client.needs_key {
                let Some(key) = key else { continue };
                let mut batch: Vec<Arc<Vec<u8>>> = Vec::with_capacity(key.v1.len() + 1);
                if client.dropped > 0 {
                    batch.push(Arc::new(encode(&Frame::Dropped {
                        count: client.dropped,
                    })));
                }
                batch.extend(key.for_version(client.version).iter().cloned());
                if v2 {
                    batch.extend(key.v2.iter().cloned());
                }
                if v3 {
                    batch.extend(key.v3.iter().cloned());
                }
                if !send_all(client, &batch) {
                    continue;
                }
                client.needs_key = false;
            }
            if !send_all(client, frames.for_version(client.version))
                || (v2 && !send_all(client, &frames.v2))
                || (v3 && !send_all(client, &frames.v3))
            {
                client.needs_key = true;
            }
        }
    }

    /// Stops accepting, disconnects every client and removes a Unix socket file.
    pub(crate) fn shutdown(mut self) {
        self.stop.store(true, Release);
        if let Some(a) = self.acceptor.take() {
            let _ = a.join();
        }
        for c in self.lock().drain(..) {
            c.alive.store(false, Release);
        }
        #[cfg(unix)]
        if let BindAddr::Unix(path) = &self.addr {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Sends frames in order; on a full queue counts the rest as dropped and returns false.
fn send_all(client: &mut Client, frames: &[Arc<Vec<u8>>]) -> bool {
    for (i, frame) in frames.iter().enumerate() {
        match client.tx.try_send(frame.clone()) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                client.dropped += (frames.len() - i) as u64;
                return false;
            }
            Err(TrySendError::Disconnected(_)) => {
                client.alive.store(false, Release);
                return false;
            }
        }
    }
    true
}

fn accept_loop(
    listener: Listener,
    clients: Arc<Mutex<Vec<Client>>>,
    stop: Arc<AtomicBool>,
    token: Option<String>,
) {
    let handshaking = Arc::new(AtomicUsize::new(0));
    while !stop.load(Acquire) {
        let accepted: io::Result<(Box<dyn Conn>, String)> = match &listener {
            Listener::Tcp(l) => l.accept().and_then(|(s, peer)| {
                s.set_nonblocking(false)?;
                let _ = s.set_nodelay(true);
                // Bound what the kernel buffers for a client that stops reading: with the frame
                // queue, this caps the memory a stalled dashboard can pin.
                let _ = socket2::SockRef::from(&s).set_send_buffer_size(SEND_BUFFER);
                Ok((Box::new(s) as Box<dyn Conn>, peer.to_string()))
            }),
            #[cfg(unix)]
            Listener::Unix(l) => l.accept().and_then(|(s, _)| {
                s.set_nonblocking(false)?;
                Ok((Box::new(s) as Box<dyn Conn>, "unix client".to_string()))
            }),
        };
        match accepted {
            Ok((conn, peer)) => {
                let n = clients.lock().unwrap_or_else(|e| e.into_inner()).len();
                if n >= MAX_CLIENTS {
                    tracing::warn!(target: "taskscope", "refusing {peer}: {MAX_CLIENTS} clients already connected");
                    global().refused.count(Refusal::ClientLimit);
                    let mut conn = conn;
                    refuse(
                        &mut conn,
                        &format!("{MAX_CLIENTS} clients are connected already"),
                    );
                    continue;
                }
                if handshaking.load(Acquire) >= MAX_HANDSHAKES {
                    tracing::warn!(target: "taskscope", "refusing {peer}: {MAX_HANDSHAKES} connections are saying hello already");
                    global().refused.count(Refusal::HelloLimit);
                    let mut conn = conn;
                    let why = format!("{MAX_HANDSHAKES} connections are saying hello; try again");
                    refuse(&mut conn, &why);
                    continue;
                }
                handshaking.fetch_add(1, AcqRel);
                let pending = Pending(handshaking.clone());
                let (clients, token, stop) = (clients.clone(), token.clone(), stop.clone());
                let spawned = std::thread::Builder::new()
                    .name("taskscope-client".into())
                    .spawn(move || serve_client(conn, peer, pending, clients, token, stop));
                if let Err(e) = spawned {
                    tracing::warn!(target: "taskscope", "cannot serve a client: {e}");
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(20))
            }
            Err(e) => {
                tracing::warn!(target: "taskscope", "accept failed: {e}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// A connection counted among those saying hello until it is dropped.
struct Pending(Arc<AtomicUsize>);

impl Drop for Pending {
    fn drop(&mut self) {
        self.0.fetch_sub(1, AcqRel);
    }
}

fn serve_client(
    mut conn: Box<dyn Conn>,
    peer: String,
    pending: Pending,
    clients: Arc<Mutex<Vec<Client>>>,
    token: Option<String>,
    stop: Arc<AtomicBool>,
) {
    let hello = handshake(&mut conn, token.as_deref());
    drop(pending);
    let version = match hello {
        Ok(version) => version,
        Err(HelloRefused { why, tell, reason }) => {
            tracing::warn!(target: "taskscope", "closing stream client {peer}: {why}");
            global().refused.count(reason);
            match tell {
                true => refuse(&mut conn, &why),
                false => conn.shutdown_both(),
            }
            return;
        }
    };
    let (tx, rx) = sync_channel(CLIENT_QUEUE);
    let dump_tx = tx.clone();
    let alive = Arc::new(AtomicBool::new(true));
    let watching = Arc::new(AtomicU64::new(0));
    {
        // The limit again, now that the hello is done: others may have finished theirs meanwhile.
        let mut clients = clients.lock().unwrap_or_else(|e| e.into_inner());
        if clients.len() >= MAX_CLIENTS {
            drop(clients);
            tracing::warn!(target: "taskscope", "refusing {peer}: {MAX_CLIENTS} clients already connected");
            global().refused.count(Refusal::ClientLimit);
            refuse(
                &mut conn,
                &format!("{MAX_CLIENTS} clients are connected already"),
            );
            return;
        }
        clients.push(Client {
            tx,
            alive: alive.clone(),
            watching: watching.clone(),
            needs_key: true,
            dropped: 0,
            version,
        });
    }

    // After its hello a client may only say what it watches; anything else is a protocol
    // error, and end of input is a goodbye.
    if let Ok(reading) = conn.try_clone_box() {
        let (alive, peer, dump_tx) = (alive.clone(), peer.clone(), dump_tx);
        let _ = std::thread::Builder::new()
            .name("taskscope-client-read".into())
            .spawn(move || watch_client(reading, peer, alive, watching, dump_tx));
    }
    write_loop(&mut conn, rx, &alive, &stop);
    alive.store(false, Release);
    conn.shutdown_both();
}

fn write_loop(
    conn: &mut Box<dyn Conn>,
    rx: Receiver<Arc<Vec<u8>>>,
    alive: &AtomicBool,
    stop: &AtomicBool,
) {
    let _ = conn.set_timeouts(None, Some(WRITE_TIMEOUT));
    while alive.load(Acquire) && !stop.load(Acquire) {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(frame) => {
                if conn.write_all(&frame).and_then(|()| conn.flush()).is_err() {
                    return; // gone, or stopped reading for WRITE_TIMEOUT
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return,
        }
    }
}

fn watch_client(
    mut conn: Box<dyn Conn>,
    peer: String,
    alive: Arc<AtomicBool>,
    watching: Arc<AtomicU64>,
    tx: SyncSender<Arc<Vec<u8>>>,
) {
    // Blocking reads: the writer side shuts the socket down when the client goes, which ends them.
    let _ = conn.set_timeouts(None, None);
    let mut reader = FrameReader::with_limit(&mut *conn, MAX_CLIENT_FRAME);
    loop {
        match reader.next_frame::<ClientFrame>() {
            Ok(Some(ClientFrame::Watch { task })) => watching.store(task.unwrap_or(0), Relaxed),
            Ok(Some(ClientFrame::Dump { timeout_ms })) => {
                // This thread is not a runtime worker: it may wait for the trace polls.
                let timeout = Duration::from_millis(timeout_ms.min(MAX_DUMP_WAIT_MS));
                let dump = crate::dump::task_dump(timeout);
                if tx.send(Arc::new(dump_frame(dump))).is_err() {
                    break; // the client is gone
                }
            }
            Ok(Some(ClientFrame::Hello { .. })) => {}
            Ok(None) => break,
            Err(e) => {
                if alive.load(Acquire) {
                    tracing::warn!(target: "taskscope", "closing stream client {peer}: {e}");
                }
                break;
            }
        }
    }
    alive.store(false, Release);
    conn.shutdown_both();
}

/// The longest a client may have a dump wait for its trace polls.
const MAX_DUMP_WAIT_MS: u64 = 10_000;

/// A dump as one frame: tasks beyond what fits in a frame are left out, and counted.
fn dump_frame(mut dump: taskscope_wire::TaskDump) -> Vec<u8> {
    loop {
        let encoded = encode(&Frame::Dump(Box::new(dump.clone())));
        if encoded.len() <= taskscope_wire::MAX_FRAME || dump.tasks.is_empty() {
            return encoded;
        }
        let keep = dump.tasks.len() / 2;
        dump.omitted += (dump.tasks.len() - keep) as u64;
        dump.tasks.truncate(keep);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use taskscope_wire::{Warning, WarningKind};

    #[test]
    fn each_client_gets_only_the_warning_kinds_its_version_decodes() {
        let warning = |kind| Frame::Warning(Box::new(Warning::new(1, kind, 0, "found")));
        let frames = [
            warning(WarningKind::LongWait),
            warning(WarningKind::RecordingStopped),
            warning(WarningKind::UnboundedSpawn),
            warning(WarningKind::StaleUpdate),
        ];
        let published = Published::new(&frames, &[], &[]);
        let kinds = |version| -> Vec<WarningKind> {
            published
                .for_version(version)
                .iter()
                .map(|bytes| match FrameReader::new(&bytes[..]).next_frame() {
                    Ok(Some(Frame::Warning(w))) => w.kind,
                    other => panic!("{other:?}"),
                })
                .collect()
        };
        use WarningKind::*;
        assert_eq!(
            kinds(WIRE_VERSION),
            [LongWait, RecordingStopped, UnboundedSpawn, StaleUpdate]
        );
        assert_eq!(kinds(4), [LongWait, RecordingStopped, UnboundedSpawn]);
        assert_eq!(kinds(3), [LongWait, RecordingStopped]);
        assert_eq!(kinds(2), [LongWait]);
        assert_eq!(kinds(1), [LongWait]);
    }
}
