//! `taskscope dump [ADDR]`: asks a running app for a task dump over its stream (a client
//! request of wire version 6) and returns it, for the command to print.

use std::net::{TcpStream, ToSocketAddrs};
use std::sync::mpsc::{channel, RecvTimeoutError};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use taskscope_wire::{write_frame, ClientFrame, Frame, FrameReader, TaskDump, WIRE_VERSION};

/// The first stream version whose apps answer dump requests.
const DUMP_VERSION: u32 = 6;
/// A server that says nothing for this long after we connect is not a taskscope stream.
const HELLO_TIMEOUT: Duration = Duration::from_secs(3);

/// Asks the app at `addr` for a dump whose trace polls may take up to `wait`.
pub fn fetch(addr: &str, token: Option<&str>, wait: Duration) -> anyhow::Result<TaskDump> {
    let target = addr
        .to_socket_addrs()
        .with_context(|| format!("{addr} is not an address"))?
        .next()
        .ok_or_else(|| anyhow!("{addr} resolves to no address"))?;
    let mut stream = TcpStream::connect_timeout(&target, Duration::from_secs(2))
        .with_context(|| format!("connecting to {addr}"))?;
    write_frame(
        &mut stream,
        &ClientFrame::Hello {
            version: WIRE_VERSION,
            token: token.map(str::to_owned),
        },
    )?;
    let reading = stream.try_clone()?;
    let (tx, frames) = channel();
    std::thread::spawn(move || {
        let mut reader = FrameReader::new(reading);
        loop {
            let frame = reader.next_frame::<Frame>();
            let end = !matches!(frame, Ok(Some(_)));
            if tx.send(frame).is_err() || end {
                return;
            }
        }
    });
    let hello_by = Instant::now() + HELLO_TIMEOUT;
    let mut answer_by = None;
    let mut detached = Vec::new();
    let result = loop {
        let by = answer_by.unwrap_or(hello_by);
        let left = by.saturating_duration_since(Instant::now());
        let frame = match frames.recv_timeout(left) {
            Ok(Ok(Some(frame))) => frame,
            Ok(Ok(None)) => break Err(anyhow!("{addr} closed the stream before answering")),
            Ok(Err(e)) => break Err(anyhow!("{addr}: {e}")),
            Err(RecvTimeoutError::Timeout) if answer_by.is_none() => {
                break Err(anyhow!(
                    "{addr} is not a taskscope stream (no hello within {}s)",
                    HELLO_TIMEOUT.as_secs()
                ))
            }
            Err(_) => break Err(anyhow!("{addr} sent no dump within {:?}", by - hello_by)),
        };
        match frame {
            Frame::Refused { reason } => break Err(anyhow!("{addr} refused: {reason}")),
            Frame::Hello(hello) if answer_by.is_none() => {
                if hello.version < DUMP_VERSION {
                    break Err(anyhow!(
                        "{addr} runs a taskscope that cannot dump tasks (stream version {}; \
                         dumps need version {DUMP_VERSION} or later)",
                        hello.version
                    ));
                }
                let timeout_ms = wait.as_millis().min(u128::from(u64::MAX)) as u64;
                write_frame(&mut stream, &ClientFrame::Dump { timeout_ms })?;
                answer_by = Some(Instant::now() + wait + Duration::from_secs(10));
            }
            _ if answer_by.is_none() => {
                break Err(anyhow!("{addr} is not a taskscope stream (no hello)"))
            }
            Frame::Dump(mut dump) => {
                dump.detached = detached;
                break Ok(*dump);
            }
            // The detached tasks (version 8): the key frame has them.
            Frame::Detached(ids) => detached = ids,
            _ => {} // the stream's updates meanwhile
        }
    };
    let _ = stream.shutdown(std::net::Shutdown::Both);
    result
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_wrong_address_is_a_clear_error() {
        let e = super::fetch(
            "no-such-host.invalid:1",
            None,
            super::Duration::from_secs(1),
        )
        .unwrap_err();
        assert!(format!("{e:#}").contains("no-such-host.invalid:1"), "{e:#}");
    }
}
