//! The live stream end to end over real sockets: a client sees tasks, locks, semaphores and a
//! `blocked_worker` warning sent while the application's runtime is blocked; several clients at
//! once; garbage and oversized frames on the port; access tokens beyond loopback; recordings.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::channel;
use std::sync::Arc;
use std::time::{Duration, Instant};

use taskscope::{TaskKind, WarningKind};
use taskscope_wire::recording::RecordingReader;
use taskscope_wire::{write_frame, Assembler, ClientFrame, Frame, FrameReader, WIRE_VERSION};

mod common;
use common::exclusive;
use common::stream::{connect, connect_with, runtime_thread, wait_for};

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
