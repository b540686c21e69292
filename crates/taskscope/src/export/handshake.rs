//! A client's hello: its wire version and token, read against one deadline for the whole
//! hello (a peer sending a byte at a time cannot stretch it), a hello cut off half-way refused.

use std::io::{self, Read};
use std::time::{Duration, Instant};

use taskscope_wire::{
    ClientFrame, FrameReader, WireError, MAX_CLIENT_FRAME, MIN_WIRE_VERSION, WIRE_VERSION,
};

use crate::export::conn::Conn;

/// A client must say hello within this long when a token is required.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(2);
/// A write blocked this long during the handshake fails it.
const WRITE_TIMEOUT: Duration = Duration::from_secs(2);

/// Reads from a connection until one deadline, counting what it read.
struct Deadline<'a> {
    conn: &'a mut Box<dyn Conn>,
    until: Instant,
    read: usize,
}

impl Read for Deadline<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        self.conn.set_timeouts(Some(left), Some(WRITE_TIMEOUT))?;
        let n = self.conn.read(buf)?;
        self.read += n;
        Ok(n)
    }
}

/// Checks the client's hello. Without a token, a client that says nothing is accepted (a
/// hand-written client may just read); one that sends anything malformed is not.
/// Returns the client's wire version (a silent client gets version-1 frames only).
///
/// A refusal says why, and whether to tell the client: one that said a well-formed hello is
/// told (its version or its token was wrong); garbage is not answered.
pub(crate) fn handshake(
    conn: &mut Box<dyn Conn>,
    token: Option<&str>,
) -> Result<u32, (String, bool)> {
    // One deadline for the whole hello, however the peer spreads its bytes over it.
    let wait = if token.is_some() {
        HANDSHAKE_TIMEOUT
    } else {
        Duration::from_millis(300)
    };
    let mut deadline = Deadline {
        conn,
        until: Instant::now() + wait,
        read: 0,
    };
    let hello =
        FrameReader::with_limit(&mut deadline, MAX_CLIENT_FRAME).next_frame::<ClientFrame>();
    let partial = deadline.read > 0;
    match hello {
        Ok(Some(ClientFrame::Hello {
            version,
            token: given,
        })) => {
            if !(MIN_WIRE_VERSION..=WIRE_VERSION).contains(&version) {
                return Err((
                    format!(
                        "speaks wire version {version}, this serves {MIN_WIRE_VERSION} to {WIRE_VERSION}"
                    ),
                    true,
                ));
            }
            match token {
                Some(expected) if given.as_deref() != Some(expected) => {
                    Err(("wrong or missing token".into(), true))
                }
                _ => Ok(version),
            }
        }
        Ok(Some(ClientFrame::Watch { .. } | ClientFrame::Dump { .. })) => {
            Err(("asked for something before saying hello".into(), false))
        }
        Ok(None) => Err(("closed before saying hello".into(), false)),
        Err(WireError::Io(e))
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) =>
        {
            match token {
                _ if partial => Err(("sent part of a hello, then nothing".into(), false)),
                Some(_) => Err(("no hello with the required token".into(), false)),
                None => Ok(MIN_WIRE_VERSION),
            }
        }
        Err(e) => Err((format!("sent garbage: {e}"), false)),
    }
}
