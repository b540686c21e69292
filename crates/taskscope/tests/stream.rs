//! The live stream end to end over real sockets: a client sees tasks, locks, semaphores and a
//! `blocked_worker` warning sent while the application's runtime is blocked; several clients at
//! once; garbage and oversized frames on the port; access tokens beyond loopback; recordings.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver};
use std::sync::Arc;
use std::time::{Duration, Instant};

use taskscope::{TaskKind, WarningKind};
use taskscope_wire::recording::RecordingReader;
use taskscope_wire::{write_frame, Assembler, ClientFrame, Frame, FrameReader, WIRE_VERSION};

/// The tests of this file each need the process's one Guard: wait for the others.
fn exclusive(builder: impl Fn() -> taskscope::Builder) -> taskscope::Guard {
    loop {
        match builder().try_init() {
            Ok(guard) => return guard,
            Err(taskscope::Error::AlreadyRunning) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => panic!("{e}"),
        }
    }
}

fn connect(addr: SocketAddr, token: Option<&str>) -> (TcpStream, Receiver<Frame>) {
    connect_with(addr, WIRE_VERSION, token)
}

/// Connects saying `version` (and `token`), and reads frames on a thread of its own.
fn connect_with(
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
fn wait_for<T>(
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
fn runtime_thread() -> tokio::runtime::Handle {
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

#[test]
fn a_client_sees_tasks_locks_semaphores_and_a_blocked_worker_while_the_runtime_is_blocked() {
    let guard = exclusive(|| {
        taskscope::Builder::new()
            .bind("127.0.0.1:0")
            .blocked_threshold(Duration::from_millis(20))
    });
    let addr = guard.local_addr().expect("bound");
    let (_stream, rx) = connect(addr, None);
    let mut asm = Assembler::new();

    let rt = runtime_thread();
    let released = Arc::new(AtomicBool::new(false));
    let flag = released.clone();
    rt.spawn(async move {
        let lock = taskscope::sync::Mutex::named("stream-lock", 0);
        let sem = taskscope::sync::Semaphore::named("stream-sem", 2);
        *lock.lock().await += 1;
        drop(sem.acquire().await.unwrap());
        taskscope::spawn_named("stream-task", async {})
            .await
            .unwrap();
        std::mem::forget((lock, sem));
        tokio::time::sleep(Duration::from_millis(300)).await;
        // Blocks the only worker of this runtime.
        taskscope::spawn_named("stream-blocker", async move {
            std::thread::sleep(Duration::from_millis(700));
            flag.store(true, Ordering::SeqCst);
        })
        .await
        .unwrap();
    });

    let hello = wait_for(&rx, &mut asm, Duration::from_secs(3), |a, _| {
        a.hello.clone()
    })
    .expect("hello");
    assert_eq!(hello.pid, std::process::id());
    let seen = wait_for(&rx, &mut asm, Duration::from_secs(3), |a, _| {
        let s = a.snapshot();
        let task = s.tasks.iter().any(|t| t.name == "stream-task");
        let lock = s
            .locks
            .iter()
            .any(|l| l.name == "stream-lock" && l.acquisitions == 1);
        let sem = s
            .semaphores
            .iter()
            .any(|x| x.name == "stream-sem" && x.permits == 2);
        (task && lock && sem).then_some(())
    });
    assert!(
        seen.is_some(),
        "tasks, locks and semaphores arrive: {:#?}",
        asm.snapshot()
    );
    let warning = wait_for(
        &rx,
        &mut asm,
        Duration::from_secs(3),
        |_, frame| match frame {
            Frame::Warning(w)
                if w.kind == WarningKind::BlockedWorker
                    && w.task_name.as_deref() == Some("stream-blocker") =>
            {
                Some((**w).clone())
            }
            _ => None,
        },
    )
    .expect("blocked_worker frame");
    assert!(warning.ongoing);
    assert!(
        !released.load(Ordering::SeqCst),
        "sent while the runtime was still blocked"
    );
    drop(guard);
}

#[test]
fn two_clients_at_once_and_garbage_or_oversized_frames_do_not_disturb_them() {
    let guard = exclusive(|| taskscope::Builder::new().bind("127.0.0.1:0"));
    let addr = guard.local_addr().unwrap();
    let (_a, rx_a) = connect(addr, None);
    let (_b, rx_b) = connect(addr, None);

    // A client that speaks HTTP at us, and one that claims a 4 GiB frame.
    let mut garbage = TcpStream::connect(addr).unwrap();
    garbage
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut oversized = TcpStream::connect(addr).unwrap();
    oversized.write_all(&u32::MAX.to_le_bytes()).unwrap();
    for conn in [&mut garbage, &mut oversized] {
        conn.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        let mut buf = [0u8; 64];
        // The server closes the connection without sending anything.
        let n = conn.read(&mut buf).unwrap_or(0);
        assert_eq!(n, 0, "closed without a frame");
    }

    let rt = runtime_thread();
    rt.spawn(async {
        for _ in 0..3 {
            taskscope::spawn_named("seen-by-both", async {})
                .await
                .unwrap();
        }
    });
    for rx in [&rx_a, &rx_b] {
        let mut asm = Assembler::new();
        let group = wait_for(rx, &mut asm, Duration::from_secs(5), |a, _| {
            a.snapshot()
                .task_groups
                .iter()
                .find(|g| g.name == "seen-by-both" && g.completed == 3)
                .cloned()
        });
        assert!(group.is_some(), "{:#?}", asm.snapshot().task_groups);
    }
    drop(guard);
}

#[test]
fn a_client_that_stops_reading_is_dropped_and_others_keep_receiving() {
    let guard = exclusive(|| taskscope::Builder::new().bind("127.0.0.1:0"));
    let addr = guard.local_addr().unwrap();
    // Says hello, then never reads (with a small receive buffer, so the stall shows quickly).
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(&addr.into()).unwrap();
    let mut stalled: TcpStream = socket.into();
    write_frame(
        &mut stalled,
        &ClientFrame::Hello {
            version: WIRE_VERSION,
            token: None,
        },
    )
    .unwrap();
    let (_ok, rx) = connect(addr, None);

    // Lots of changing tasks: big updates fill the stalled client's socket and queue.
    let rt = runtime_thread();
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    rt.spawn(async move {
        let tasks: Vec<_> = (0..3000)
            .map(|i| {
                let s = s.clone();
                taskscope::spawn_named(format!("busy-{}", i % 50), async move {
                    while !s.load(Ordering::Relaxed) {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                })
            })
            .collect();
        for t in tasks {
            let _ = t.await;
        }
    });
    let started = Instant::now();
    let mut updates = 0;
    let mut asm = Assembler::new();
    while started.elapsed() < Duration::from_secs(8) {
        if let Ok(frame) = rx.recv_timeout(Duration::from_millis(500)) {
            if matches!(frame, Frame::Update(_)) {
                updates += 1;
            }
            asm.apply(frame);
        }
    }
    // The collector ticks every 100 ms (slower here: 3,000 tasks change every tick, in a debug
    // build); the reading client kept getting them while the other one stalled.
    assert!(updates >= 25, "only {updates} updates in 8 s");
    assert!(
        asm.snapshot().tasks.len() >= 3000,
        "{}",
        asm.snapshot().tasks.len()
    );
    // The stalled client was shed: frames dropped for it (announced with `Dropped` before a key
    // frame) or, once its writes timed out, disconnected — never waited for.
    stalled
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let mut reader = FrameReader::new(stalled);
    let deadline = Instant::now() + Duration::from_secs(20);
    let shed = loop {
        match reader.next_frame::<Frame>() {
            Ok(Some(Frame::Dropped { count })) => break format!("{count} frames dropped"),
            Ok(Some(_)) if Instant::now() < deadline => continue,
            Ok(Some(_)) => break String::new(),
            Ok(None) => break "disconnected".to_string(),
            Err(e) => break format!("disconnected: {e}"),
        }
    };
    eprintln!("stalled client: {shed}");
    assert!(!shed.is_empty(), "the stalled client was never shed");
    stop.store(true, Ordering::SeqCst);
    drop(guard);
}

#[test]
fn beyond_loopback_a_token_is_required() {
    let err = taskscope::Builder::new()
        .bind("0.0.0.0:0")
        .try_init()
        .unwrap_err();
    assert!(
        matches!(err, taskscope::Error::RemoteWithoutToken(_)),
        "{err}"
    );
    assert!(err.to_string().contains("token"));

    let guard = exclusive(|| {
        taskscope::Builder::new()
            .bind("0.0.0.0:0")
            .allow_remote("s3cret")
    });
    let port = guard.local_addr().unwrap().port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let before = taskscope::snapshot().refused;
    let (_wrong, rx_wrong) = connect(addr, Some("guess"));
    // Told why, and nothing else.
    match rx_wrong.recv_timeout(Duration::from_secs(3)) {
        Ok(Frame::Refused { reason }) => assert!(reason.contains("token"), "{reason}"),
        other => panic!("{other:?}"),
    }
    assert!(
        rx_wrong.recv_timeout(Duration::from_secs(1)).is_err(),
        "no frame without the right token"
    );
    // Counted, in the snapshot and on the stream.
    let refused = taskscope::snapshot().refused;
    assert_eq!(refused.wrong_token - before.wrong_token, 1);
    assert_eq!(refused.total() - before.total(), 1);
    let (_right, rx_right) = connect(addr, Some("s3cret"));
    let frame = rx_right
        .recv_timeout(Duration::from_secs(3))
        .expect("served");
    assert!(matches!(frame, Frame::Hello(_)));
    let streamed = std::iter::from_fn(|| rx_right.recv_timeout(Duration::from_secs(3)).ok())
        .find_map(|frame| match frame {
            Frame::Refusals(refused) => Some(refused),
            _ => None,
        });
    assert_eq!(streamed, Some(refused), "the stream says who was refused");
    drop(guard);
}

#[test]
fn a_recording_holds_the_stream_and_a_truncated_one_keeps_its_whole_records() {
    let dir = std::env::temp_dir().join(format!("taskscope-rec-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("app.tsrec");
    let guard = exclusive(|| {
        taskscope::Builder::new()
            .no_server()
            .record(&path)
            .blocked_threshold(Duration::from_millis(20))
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        // Alive at the end, its handle dropped: the recording lists it as detached.
        drop(taskscope::spawn_named(
            "recorded-detached",
            std::future::pending::<()>(),
        ));
        for _ in 0..5 {
            taskscope::spawn_named("recorded", async {
                tokio::time::sleep(Duration::from_millis(30)).await
            })
            .await
            .unwrap();
        }
        taskscope::spawn_named("recorded-blocker", async {
            std::thread::sleep(Duration::from_millis(60))
        })
        .await
        .unwrap();
    });
    drop(guard); // flushes and syncs the last frames
    let rec = RecordingReader::open(&path).unwrap().read_all();
    assert!(rec.stopped.is_none(), "{:?}", rec.stopped);
    let mut asm = Assembler::new();
    for (_, frame) in rec.frames.clone() {
        asm.apply(frame);
    }
    let snap = asm.snapshot();
    assert_eq!(snap.process.pid, std::process::id());
    let detached = snap
        .tasks
        .iter()
        .find(|t| t.name == "recorded-detached")
        .unwrap();
    assert_eq!(snap.detached, [detached.id]);
    assert_eq!(
        snap.task_groups
            .iter()
            .find(|g| g.name == "recorded")
            .map(|g| g.completed),
        Some(5)
    );
    assert!(snap
        .warnings_of(WarningKind::BlockedWorker)
        .any(|w| w.task_name.as_deref() == Some("recorded-blocker")));

    // Cut the file in the middle of its last record: every record before it is still read.
    let bytes = std::fs::read(&path).unwrap();
    let cut = &bytes[..bytes.len() - 5];
    let partial = RecordingReader::new(cut).unwrap().read_all();
    assert_eq!(partial.frames.len(), rec.frames.len() - 1);
    let stopped = partial.stopped.expect("says where it stopped");
    assert!(
        stopped
            .error
            .to_string()
            .contains(&format!("byte {}", stopped.offset)),
        "{}",
        stopped.error
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

fn http_get(addr: SocketAddr, request: &[u8]) -> String {
    let mut conn = TcpStream::connect(addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    conn.write_all(request).unwrap();
    let mut response = String::new();
    let _ = conn.read_to_string(&mut response);
    response
}

#[test]
fn the_prometheus_endpoint_serves_real_histograms() {
    let guard = exclusive(|| {
        taskscope::Builder::new()
            .no_server()
            .prometheus("127.0.0.1:0")
    });
    let addr = guard.prometheus_addr().expect("endpoint");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        for _ in 0..3 {
            taskscope::spawn_named("prom-task", async { tokio::task::yield_now().await })
                .await
                .unwrap();
        }
        let m = taskscope::sync::Mutex::named("prom-lock", ());
        drop(m.lock().await);
        std::mem::forget(m);
    });
    let response = http_get(addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
    assert!(response.contains("# TYPE taskscope_poll_duration_seconds histogram"));
    assert!(
        response.contains("taskscope_tasks_spawned_total{group=\"prom-task\""),
        "{response}"
    );
    let count = response
        .lines()
        .find(|l| l.starts_with("taskscope_poll_duration_seconds_count{group=\"prom-task\""))
        .expect("count line");
    assert!(count.ends_with(" 6"), "3 tasks x 2 polls: {count}");
    assert!(response.contains("taskscope_lock_wait_seconds_bucket{lock=\"prom-lock\""));
    assert!(!response.contains("task_id"), "never task ids as labels");
    assert!(http_get(addr, b"GET /other HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404"));
    assert!(http_get(addr, b"\x00\x01garbage\r\n\r\n").starts_with("HTTP/1.1 405"));
    // Still serving after the bad requests.
    assert!(http_get(addr, b"GET /metrics HTTP/1.0\r\n\r\n").starts_with("HTTP/1.1 200 OK"));
    drop(guard);
}

#[test]
fn a_slow_client_does_not_hold_up_scrapes_and_is_cut_off_at_the_deadline() {
    let guard = exclusive(|| taskscope::Builder::new().no_server().prometheus("0"));
    let addr = guard.prometheus_addr().expect("endpoint");
    // A bare port is on loopback.
    assert!(addr.ip().is_loopback(), "{addr}");
    // A client that trickles its request, a byte every 300 ms.
    let mut slow = TcpStream::connect(addr).unwrap();
    let trickle = std::thread::spawn(move || {
        for byte in b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n" {
            if slow.write_all(&[*byte]).is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(300));
        }
        let mut rest = Vec::new();
        slow.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let _ = slow.read_to_end(&mut rest);
        rest
    });
    std::thread::sleep(Duration::from_millis(100));
    // Served while the slow client is still sending (it needs 10 s for its request; a scrape
    // that waited for it would see nothing within `http_get`'s 5 s).
    for _ in 0..3 {
        let response = http_get(addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
    }
    // The slow client is closed when its 2 s are up, answered nothing.
    let answer = trickle.join().unwrap();
    assert!(answer.is_empty(), "{}", String::from_utf8_lossy(&answer));
    drop(guard);
}

#[test]
fn the_prometheus_endpoint_beyond_loopback_needs_the_token_and_checks_it() {
    // Refused without a token.
    let refused = loop {
        match taskscope::Builder::new()
            .no_server()
            .prometheus("0.0.0.0:0")
            .try_init()
        {
            Err(taskscope::Error::AlreadyRunning) => std::thread::sleep(Duration::from_millis(10)),
            other => break other,
        }
    };
    match refused {
        Err(e @ taskscope::Error::RemoteWithoutToken(_)) => {
            assert!(e.to_string().contains("without an access token"), "{e}")
        }
        other => panic!("{other:?}"),
    }
    let guard = exclusive(|| {
        taskscope::Builder::new()
            .no_server()
            .allow_remote("s3cret")
            .prometheus("0.0.0.0:0")
    });
    let port = guard.prometheus_addr().expect("endpoint").port();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let before = taskscope::snapshot().refused;
    let denied = http_get(addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(denied.starts_with("HTTP/1.1 401"), "{denied}");
    assert!(!denied.contains("taskscope_"), "{denied}");
    let wrong = http_get(
        addr,
        b"GET /metrics HTTP/1.1\r\nAuthorization: Bearer guess\r\n\r\n",
    );
    assert!(wrong.starts_with("HTTP/1.1 401"), "{wrong}");
    let served = http_get(
        addr,
        b"GET /metrics HTTP/1.1\r\nAuthorization: Bearer s3cret\r\n\r\n",
    );
    assert!(served.starts_with("HTTP/1.1 200 OK"), "{served}");
    // The scrape counts the two it refused.
    let counted = format!(
        "taskscope_refused_peers_total{{reason=\"scrape_unauthorized\"}} {}",
        before.scrape_unauthorized + 2
    );
    assert!(served.contains(&counted), "{served}");
    let refused = taskscope::snapshot().refused;
    assert_eq!(refused.scrape_unauthorized - before.scrape_unauthorized, 2);
    assert_eq!(refused.total() - before.total(), 2);
    drop(guard);
}

#[test]
fn a_watched_task_comes_with_its_histograms_and_unix_sockets_work() {
    let path = std::env::temp_dir().join(format!("taskscope-{}.sock", std::process::id()));
    let guard = exclusive(|| taskscope::Builder::new().bind(&format!("unix:{}", path.display())));
    assert!(guard.local_addr().is_none(), "not a TCP address");
    let mut stream =
        std::os::unix::net::UnixStream::connect(&path).expect("the Unix socket serves");
    write_frame(
        &mut stream,
        &ClientFrame::Hello {
            version: WIRE_VERSION,
            token: None,
        },
    )
    .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _enter = rt.enter();
    let watched = taskscope::spawn_named("watched", async {
        loop {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    let driver = std::thread::spawn(move || {
        rt.block_on(async { tokio::time::sleep(Duration::from_secs(2)).await })
    });

    let mut reader = FrameReader::new(stream.try_clone().unwrap());
    let mut asm = Assembler::new();
    let deadline = Instant::now() + Duration::from_secs(3);
    let id = loop {
        assert!(Instant::now() < deadline, "the task never showed up");
        asm.apply(reader.next_frame::<Frame>().unwrap().unwrap());
        if let Some(t) = asm.snapshot().tasks.iter().find(|t| t.name == "watched") {
            break t.id;
        }
    };
    write_frame(&mut stream, &ClientFrame::Watch { task: Some(id) }).unwrap();
    let detail = loop {
        assert!(
            Instant::now() < deadline + Duration::from_secs(2),
            "no detail for the watched task"
        );
        if let Frame::TaskDetail(task) = reader.next_frame::<Frame>().unwrap().unwrap() {
            break task;
        }
    };
    assert_eq!(detail.id, id);
    assert!(
        detail.poll_ns.count() > 10 && detail.scheduled_ns.count() > 10,
        "{detail:?}"
    );
    watched.abort();
    drop(guard);
    assert!(!path.exists(), "the socket file is removed at shutdown");
    let _ = driver.join();
}

#[test]
fn a_size_capped_recording_rotates_and_both_files_read() {
    let dir = std::env::temp_dir().join(format!("taskscope-rotate-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("app.tsrec");
    let guard = exclusive(|| {
        taskscope::Builder::new()
            .no_server()
            .record(&path)
            .record_max_bytes(4096)
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        for i in 0..60 {
            taskscope::spawn_named(format!("rotating-{i}"), async {
                tokio::time::sleep(Duration::from_millis(25)).await
            })
            .await
            .unwrap();
        }
    });
    drop(guard);
    let mut old = path.clone().into_os_string();
    old.push(".1");
    for file in [path.clone(), old.into()] {
        let rec = RecordingReader::open(&file).unwrap().read_all();
        assert!(
            rec.stopped.is_none(),
            "{}: {:?}",
            file.display(),
            rec.stopped
        );
        // Each file starts afresh: a hello and a key frame, readable on its own.
        assert!(
            matches!(rec.frames.first(), Some((_, Frame::Hello(_)))),
            "{}",
            file.display()
        );
        assert!(
            matches!(&rec.frames[1].1, Frame::Update(u) if u.full),
            "{}",
            file.display()
        );
    }
    assert!(
        std::fs::metadata(&path).unwrap().len() < 64 * 1024,
        "the cap bounds the file"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[inline(never)]
fn stream_nap() -> u32 {
    // Long enough for the first symbolisation (reading this test binary's debug info) on a
    // loaded machine: the stack must reach the client while the worker is still blocked.
    std::thread::sleep(Duration::from_millis(1500));
    std::hint::black_box(1)
}

#[cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
#[test]
fn a_version_2_client_gets_the_blocked_stack_while_blocked_and_a_version_1_client_works_without() {
    let guard = exclusive(|| {
        taskscope::Builder::new()
            .bind("127.0.0.1:0")
            .blocked_threshold(Duration::from_millis(20))
            .stacks(true)
    });
    let addr = guard.local_addr().expect("bound");
    let (_new, rx2) = connect_with(addr, WIRE_VERSION, None);
    let (_old, rx1) = connect_with(addr, 1, None);
    let (mut asm2, mut asm1) = (Assembler::new(), Assembler::new());
    let rt = runtime_thread();
    let released = Arc::new(AtomicBool::new(false));
    let flag = released.clone();
    std::thread::sleep(Duration::from_millis(200));
    rt.spawn(async move {
        taskscope::spawn_named("stack-blocker", async move {
            stream_nap();
            flag.store(true, Ordering::SeqCst);
        })
        .await
        .unwrap();
    });
    let stack = wait_for(
        &rx2,
        &mut asm2,
        Duration::from_secs(3),
        |a, frame| match frame {
            Frame::Stacks { warning, stacks } => {
                let w = a.snapshot().warnings.iter().find(|w| w.id == *warning)?;
                (w.task_name.as_deref() == Some("stack-blocker")).then(|| stacks[0].clone())
            }
            _ => None,
        },
    )
    .expect("a Stacks frame");
    assert!(
        !released.load(Ordering::SeqCst),
        "sent while the worker was still blocked"
    );
    assert!(
        stack.frames[0].function.ends_with("stream_nap"),
        "{stack:#?}"
    );
    // The version-1 client saw the same warning, and never a frame it could not read.
    let seen = wait_for(&rx1, &mut asm1, Duration::from_secs(3), |a, frame| {
        assert!(!matches!(frame, Frame::Stacks { .. } | Frame::Polls(_)));
        a.snapshot()
            .warnings
            .iter()
            .any(|w| w.task_name.as_deref() == Some("stack-blocker"))
            .then_some(())
    });
    assert!(seen.is_some());
    drop(guard);
}

#[test]
fn a_version_3_client_gets_scopes_and_an_older_one_gets_them_as_async_tasks() {
    let dir = std::env::temp_dir().join(format!("taskscope-scopes-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("scopes.tsrec");
    let guard = exclusive(|| taskscope::Builder::new().bind("127.0.0.1:0").record(&path));
    let addr = guard.local_addr().expect("bound");
    let rt = runtime_thread();
    let (done_tx, done_rx) = channel();
    rt.spawn(async move {
        for _ in 0..3 {
            taskscope::scope("GET /streamed", tokio::task::yield_now()).await;
        }
        done_tx.send(()).unwrap();
    });
    done_rx.recv().unwrap();
    // Retired (the collector's tick) before the clients' key frames are made.
    std::thread::sleep(Duration::from_millis(400));
    let (_new, rx3) = connect_with(addr, WIRE_VERSION, None);
    let (_old, rx2) = connect_with(addr, 2, None);
    let (mut asm3, mut asm2) = (Assembler::new(), Assembler::new());
    let latency = wait_for(&rx3, &mut asm3, Duration::from_secs(3), |a, _| {
        let snap = a.snapshot();
        let group = snap.group("GET /streamed")?;
        let scope = snap.scope("GET /streamed")?;
        (group.kind == TaskKind::Scope).then(|| scope.latency_ns.count())
    });
    assert_eq!(latency, Some(3));
    let seen = wait_for(&rx2, &mut asm2, Duration::from_secs(3), |a, frame| {
        assert!(!matches!(frame, Frame::Scopes(_)), "a version-3 frame");
        if let Frame::Update(update) = frame {
            assert!(update.tasks.iter().all(|t| t.kind != TaskKind::Scope));
        }
        let group = a.snapshot().group("GET /streamed")?;
        assert_eq!(group.kind, TaskKind::Async);
        Some(group.completed)
    });
    assert_eq!(seen, Some(3));
    drop(guard);
    // The recording has them too.
    let recording = RecordingReader::open(&path).unwrap().read_all();
    let mut asm = Assembler::new();
    for (_, frame) in recording.frames {
        asm.apply(frame);
    }
    let scope = asm
        .snapshot()
        .scope("GET /streamed")
        .expect("scopes recorded");
    assert_eq!(scope.latency_ns.count(), 3);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[cfg(target_os = "linux")]
#[test]
fn a_recording_that_cannot_be_written_is_a_warning_and_a_writable_one_is_not() {
    // /dev/full: it opens, and every write fails with ENOSPC.
    let guard = exclusive(|| {
        taskscope::Builder::new()
            .bind("127.0.0.1:0")
            .record("/dev/full")
    });
    let (_stream, rx) = connect(guard.local_addr().unwrap(), None);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        taskscope::spawn_named("recorded", async { tokio::task::yield_now().await })
            .await
            .unwrap();
    });
    // On the stream, while the app runs.
    let mut asm = Assembler::new();
    let streamed = wait_for(
        &rx,
        &mut asm,
        Duration::from_secs(5),
        |_, frame| match frame {
            Frame::Warning(w) if w.kind == WarningKind::RecordingStopped => Some(w.message.clone()),
            _ => None,
        },
    )
    .expect("a recording_stopped warning on the stream");
    assert!(
        streamed.contains("/dev/full") && streamed.contains("No space left"),
        "{streamed}"
    );
    // The app goes on.
    rt.block_on(async {
        taskscope::spawn_named("after", async {}).await.unwrap();
    });
    let snap = guard.finish().unwrap();
    let stopped: Vec<_> = snap.warnings_of(WarningKind::RecordingStopped).collect();
    assert_eq!(stopped.len(), 1, "said once: {stopped:#?}");
    assert_eq!(snap.group("after").unwrap().completed, 1);

    // The safe twin: a writable file records, and raises nothing.
    let dir = std::env::temp_dir().join(format!("taskscope-recstop-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("ok.tsrec");
    let guard = exclusive(|| taskscope::Builder::new().no_server().record(&path));
    rt.block_on(async {
        taskscope::spawn_named("recorded", async {}).await.unwrap();
    });
    std::thread::sleep(Duration::from_millis(300));
    let snap = guard.finish().unwrap();
    assert_eq!(snap.warnings_of(WarningKind::RecordingStopped).count(), 0);
    let rec = RecordingReader::open(&path).unwrap().read_all();
    assert!(rec.stopped.is_none() && !rec.frames.is_empty());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_task_whose_longest_poll_grows_reaches_the_client_with_its_histograms() {
    let guard = exclusive(|| taskscope::Builder::new().bind("127.0.0.1:0"));
    let (_stream, rx) = connect(guard.local_addr().unwrap(), None);
    let rt = runtime_thread();
    let (block, blocked) = tokio::sync::oneshot::channel::<()>();
    let _task = rt.spawn(async move {
        taskscope::spawn_named("grows", async move {
            for _ in 0..20 {
                tokio::task::yield_now().await;
            }
            let _ = blocked.await;
            std::thread::sleep(Duration::from_millis(40)); // one long poll
            std::future::pending::<()>().await; // and alive after it
        })
        .await
    });
    let mut asm = Assembler::new();
    let id = wait_for(&rx, &mut asm, Duration::from_secs(5), |asm, _| {
        let t = asm.snapshot().tasks.iter().find(|t| t.name == "grows")?;
        (t.polls >= 21).then_some(t.id)
    })
    .expect("the task on the stream");
    let short = asm.snapshot().task(id).unwrap().poll_ns.max;
    assert!(short < 40_000_000, "{short}");
    block.send(()).unwrap();
    // Not watched: its histograms come with its counters once its longest poll grew.
    let max = wait_for(&rx, &mut asm, Duration::from_secs(5), |asm, _| {
        let t = asm.snapshot().task(id)?;
        (t.poll_ns.max >= 40_000_000).then_some(t.poll_ns.max)
    });
    assert!(max.is_some(), "{:?}", asm.snapshot().task(id));
    drop(guard);
}
