//! The optional Prometheus endpoint (`TASKSCOPE_PROMETHEUS`): a minimal HTTP/1.1 server answering
//! `GET /metrics` with `taskscope_report::prometheus::render` of a fresh snapshot.
//!
//! Like the live stream it serves loopback only unless an access token guards it: beyond
//! loopback every scrape must carry `Authorization: Bearer TOKEN` (Prometheus'
//! `authorization: { credentials: TOKEN }`), checked before anything is rendered. Requests are
//! bounded: an 8 KiB head, 2 s for the whole of it (however slowly its bytes come), at most
//! `MAX_CONNECTIONS` served at once, each on a short-lived thread, so a slow or silent client
//! cannot hold up a scrape; a connection past the limit is answered 503 and closed.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::*};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::state::refusals::Refusal;
use crate::state::shared::global;

const MAX_REQUEST: usize = 8 << 10;
/// The time a client has for its whole request head.
const REQUEST_DEADLINE: Duration = Duration::from_secs(2);
/// Connections served at once; more are refused (a scraper opens one every few seconds).
const MAX_CONNECTIONS: usize = 16;

/// The running endpoint.
#[derive(Debug)]
pub(crate) struct Endpoint {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Endpoint {
    /// Listens on `addr`; `token`, required beyond loopback (the caller checks), is what every
    /// scrape must present.
    pub(crate) fn start(addr: SocketAddr, token: Option<String>) -> io::Result<Endpoint> {
        let listener = TcpListener::bind(addr)?;
        let addr = listener.local_addr()?;
        listener.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let token: Arc<Option<String>> = Arc::new(token);
        let serving = Arc::new(AtomicUsize::new(0));
        let thread = {
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("taskscope-prometheus".into())
                .spawn(move || {
                    while !stop.load(Acquire) {
                        match listener.accept() {
                            Ok((conn, _)) => dispatch(conn, &token, &serving),
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                                std::thread::sleep(Duration::from_millis(20))
                            }
                            Err(_) => std::thread::sleep(Duration::from_millis(100)),
                        }
                    }
                })?
        };
        Ok(Endpoint {
            addr,
            stop,
            thread: Some(thread),
        })
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub(crate) fn shutdown(mut self) {
        self.stop.store(true, Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Serves `conn` on a thread of its own, or refuses it when `MAX_CONNECTIONS` are served.
fn dispatch(mut conn: TcpStream, token: &Arc<Option<String>>, serving: &Arc<AtomicUsize>) {
    let _ = conn.set_nonblocking(false);
    let _ = conn.set_write_timeout(Some(REQUEST_DEADLINE));
    if serving.fetch_add(1, AcqRel) >= MAX_CONNECTIONS {
        serving.fetch_sub(1, AcqRel);
        global().refused.count(Refusal::ScrapeLimit);
        let _ = respond(&mut conn, "503 Service Unavailable", "text/plain", "busy\n");
        return;
    }
    let (token, count) = (token.clone(), serving.clone());
    let spawned = std::thread::Builder::new()
        .name("taskscope-prometheus-conn".into())
        .spawn(move || {
            serve(conn, token.as_deref());
            count.fetch_sub(1, AcqRel);
        });
    if spawned.is_err() {
        // No thread to be had: the connection is dropped (closed), and not counted.
        serving.fetch_sub(1, AcqRel);
    }
}

fn serve(mut conn: TcpStream, token: Option<&str>) {
    let deadline = Instant::now() + REQUEST_DEADLINE;
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        // One deadline for the whole head, however slowly its bytes come.
        let Some(left) = deadline.checked_duration_since(Instant::now()) else {
            return;
        };
        let _ = conn.set_read_timeout(Some(left.max(Duration::from_millis(1))));
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
        if head.len() > MAX_REQUEST {
            let _ = respond(
                &mut conn,
                "431 Request Header Fields Too Large",
                "text/plain",
                "request too large\n",
            );
            return;
        }
    }
    let text = String::from_utf8_lossy(&head);
    if let Some(token) = token {
        if !authorized(&text, token) {
            global().refused.count(Refusal::ScrapeUnauthorized);
            let _ = write!(
                conn,
                "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            return;
        }
    }
    let mut parts = text.lines().next().unwrap_or("").split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let _ = match (method, path.split('?').next().unwrap_or("")) {
        ("GET", "/metrics") => {
            let body = taskscope_report::prometheus::render(&crate::export::snapshot::snapshot());
            respond(
                &mut conn,
                "200 OK",
                "text/plain; version=0.0.4; charset=utf-8",
                &body,
            )
        }
        ("GET", _) => respond(
            &mut conn,
            "404 Not Found",
            "text/plain",
            "taskscope serves /metrics\n",
        ),
        _ => respond(
            &mut conn,
            "405 Method Not Allowed",
            "text/plain",
            "GET /metrics\n",
        ),
    };
}

fn respond(conn: &mut TcpStream, status: &str, content_type: &str, body: &str) -> io::Result<()> {
    write!(
        conn,
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    conn.flush()
}

/// Whether the request head carries `Authorization: Bearer TOKEN` (compared in constant time).
fn authorized(head: &str, token: &str) -> bool {
    head.lines().skip(1).any(|line| {
        let Some((name, value)) = line.split_once(':') else {
            return false;
        };
        let Some(given) = value.trim().strip_prefix("Bearer ") else {
            return false;
        };
        name.trim().eq_ignore_ascii_case("authorization") && same(given.trim(), token)
    })
}

fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_right_bearer_token_authorizes() {
        let head = |auth: &str| format!("GET /metrics HTTP/1.1\r\nHost: x\r\n{auth}\r\n\r\n");
        assert!(authorized(&head("Authorization: Bearer s3cret"), "s3cret"));
        assert!(authorized(
            &head("authorization:   Bearer s3cret "),
            "s3cret"
        ));
        assert!(!authorized(&head("Authorization: Bearer s3cre"), "s3cret"));
        assert!(!authorized(&head("Authorization: Basic s3cret"), "s3cret"));
        assert!(!authorized(&head("X-Token: Bearer s3cret"), "s3cret"));
        // The request line is not a header.
        assert!(!authorized(
            "Authorization: Bearer s3cret\r\n\r\n",
            "s3cret"
        ));
    }
}
