//! The Prometheus endpoint over real sockets: real histograms in the text format, a slow
//! client that cannot hold up scrapes, and the token beyond loopback.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

mod common;
use common::exclusive;

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
