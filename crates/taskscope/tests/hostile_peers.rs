//! Peers that never finish their hello cannot hold the stream server's threads or time: the
//! whole hello has one deadline, a hello cut off half-way is refused (not taken for a silent
//! client and streamed to), connections still saying hello are bounded, and a good client
//! gets in once the bad ones are cut off.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use taskscope_wire::{write_frame, ClientFrame, Frame, FrameReader, WIRE_VERSION};

fn guard() -> (taskscope::Guard, SocketAddr) {
    let guard = loop {
        match taskscope::Builder::new().bind("127.0.0.1:0").try_init() {
            Ok(guard) => break guard,
            Err(taskscope::Error::AlreadyRunning) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => panic!("{e}"),
        }
    };
    let addr = guard.local_addr().expect("the stream is on");
    (guard, addr)
}

/// Reads until the server closes the connection or `limit` passes; returns the bytes read and
/// whether it closed.
fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> (usize, bool) {
    stream
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let (start, mut total, mut buf) = (Instant::now(), 0, [0u8; 4096]);
    while start.elapsed() < limit {
        match stream.read(&mut buf) {
            Ok(0) => return (total, true),
            Ok(n) => total += n,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return (total, true),
            Err(_) => {}
        }
    }
    (total, false)
}

/// Threads of this process whose name starts with `prefix` (Linux; 0 elsewhere).
fn threads_named(prefix: &str) -> usize {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    dir.flatten()
        .filter(|t| {
            std::fs::read_to_string(t.path().join("comm"))
                .is_ok_and(|c| c.trim_end().starts_with(prefix))
        })
        .count()
}

/// A good client: says hello and gets the server's hello back.
fn good_client_gets_its_hello(addr: SocketAddr) -> Result<(), String> {
    let mut stream = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    let hello = ClientFrame::Hello {
        version: WIRE_VERSION,
        token: None,
    };
    write_frame(&mut stream, &hello).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    match FrameReader::new(stream).next_frame::<Frame>() {
        Ok(Some(Frame::Hello(_))) => Ok(()),
        other => Err(format!("{other:?}")),
    }
}

/// A good client gets in within `limit` (retrying: peers still saying hello may hold every
/// place for up to their deadline).
fn good_client_within(addr: SocketAddr, limit: Duration) -> Result<(), String> {
    let deadline = Instant::now() + limit;
    loop {
        match good_client_gets_its_hello(addr) {
            Ok(()) => return Ok(()),
            Err(e) if Instant::now() >= deadline => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

#[test]
fn slow_and_half_sent_hellos_are_cut_off_and_bounded_and_a_good_client_gets_in() {
    let (_guard, addr) = guard();
    let before = taskscope::snapshot().refused;

    // A frame length of 64, then a byte every 100 ms: the hello's one deadline (300 ms without
    // a token) cuts it off, though every read gets a byte in time.
    let mut trickle = TcpStream::connect(addr).unwrap();
    trickle.write_all(&64u32.to_le_bytes()).unwrap();
    let start = Instant::now();
    let mut closed = false;
    for _ in 0..30 {
        if trickle.write_all(&[0]).is_err() {
            closed = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        let (_, gone) = read_until_closed(&mut trickle, Duration::from_millis(1));
        if gone {
            closed = true;
            break;
        }
    }
    assert!(closed, "a trickling peer is cut off");
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );

    // Half a hello (a length of 4096, then 10 bytes), then silence: refused, not streamed to.
    let mut half = TcpStream::connect(addr).unwrap();
    half.write_all(&4096u32.to_le_bytes()).unwrap();
    half.write_all(&[7u8; 10]).unwrap();
    let (bytes, closed) = read_until_closed(&mut half, Duration::from_secs(3));
    assert!(closed, "a half-sent hello is closed");
    assert_eq!(bytes, 0, "and gets no stream");

    // Forty peers that trickle at once: the connections saying hello are bounded, so the
    // server's threads stay few, and a good client gets in once they are cut off.
    let mut peers: Vec<TcpStream> = (0..40)
        .filter_map(|_| TcpStream::connect(addr).ok())
        .collect();
    for p in &mut peers {
        let _ = p.write_all(&64u32.to_le_bytes());
    }
    let mut most = 0;
    for _ in 0..5 {
        for p in &mut peers {
            let _ = p.write_all(&[0]);
        }
        most = most.max(threads_named("taskscope-client"));
        std::thread::sleep(Duration::from_millis(50));
    }
    if cfg!(target_os = "linux") {
        assert!(most <= 8, "{most} client threads for 40 peers saying hello");
    }
    std::thread::sleep(Duration::from_millis(400));
    good_client_within(addr, Duration::from_secs(5)).expect("a good client gets in");
    drop(peers);
    // Every bad peer was turned away once and counted: 42 of them, at the hello limit or for
    // their hello (the good client may have been turned away at the limit while retrying).
    let refused = taskscope::snapshot().refused;
    let (limit, bad) = (
        refused.hello_limit - before.hello_limit,
        refused.bad_hello - before.bad_hello,
    );
    assert!(bad >= 2 && limit >= 1, "{refused:?} after {before:?}");
    assert!(limit + bad >= 42, "{refused:?} after {before:?}");
    assert_eq!(refused.wrong_token, before.wrong_token);
}

/// A small deterministic generator (xorshift), so a failing case can be replayed.
struct Bytes(u64);

impl Bytes {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A hostile hello: random bytes, a plausible length before random bytes, or a real hello
    /// cut short or with bytes flipped.
    fn hello(&mut self) -> Vec<u8> {
        let mut real = Vec::new();
        write_frame(
            &mut real,
            &ClientFrame::Hello {
                version: WIRE_VERSION,
                token: Some("x".repeat((self.next() % 40) as usize)),
            },
        )
        .unwrap();
        let len = (self.next() % 64) as usize;
        let random: Vec<u8> = (0..len).map(|_| self.next() as u8).collect();
        match self.next() % 4 {
            0 => random,
            1 => [(len as u32).to_le_bytes().to_vec(), random].concat(),
            2 => real[..(self.next() as usize % real.len())].to_vec(),
            _ => {
                let at = self.next() as usize % real.len();
                real[at] ^= 1 << (self.next() % 8);
                real
            }
        }
    }
}

#[test]
fn random_and_damaged_hellos_never_stop_the_server_from_serving() {
    let (_guard, addr) = guard();
    let mut bytes = Bytes(0x9e37_79b9_7f4a_7c15);
    for case in 0..150 {
        let hello = bytes.hello();
        let Ok(mut peer) = TcpStream::connect(addr) else {
            continue;
        };
        let _ = peer.write_all(&hello);
        // Whatever it sent, the peer is answered or closed within the hello's deadline (a
        // damaged hello can still be a valid one: then it is streamed to, which is fine).
        let _ = read_until_closed(&mut peer, Duration::from_millis(20));
        if case % 25 == 0 {
            good_client_within(addr, Duration::from_secs(3))
                .unwrap_or_else(|e| panic!("case {case}: {e}"));
        }
    }
    good_client_within(addr, Duration::from_secs(3)).expect("still serving");
}
