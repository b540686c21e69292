//! A client's hello: its wire version and token, read against one deadline for the whole
//! hello (a peer sending a byte at a time cannot stretch it), a hello cut off half-way refused.

use std::io::{self, Read};
use std::time::{Duration, Instant};

use taskscope_wire::{
    ClientFrame, FrameReader, WireError, MAX_CLIENT_FRAME, MIN_WIRE_VERSION, WIRE_VERSION,
};

use crate::export::conn::Conn;
use crate::state::refusals::Refusal;

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

/// Why a hello was refused, whether to tell the client (see [`handshake`]), and the count it
/// goes to.
#[derive(Debug)]
pub(crate) struct HelloRefused {
    pub(crate) why: String,
    pub(crate) tell: bool,
    pub(crate) reason: Refusal,
}

fn refused(why: impl Into<String>, tell: bool, reason: Refusal) -> HelloRefused {
    HelloRefused {
        why: why.into(),
        tell,
        reason,
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
) -> Result<u32, HelloRefused> {
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
                return Err(refused(
                    format!(
                        "speaks wire version {version}, this serves {MIN_WIRE_VERSION} to {WIRE_VERSION}"
                    ),
                    true,
                    Refusal::BadHello,
                ));
            }
            match token {
                Some(expected) if given.as_deref() != Some(expected) => {
                    Err(refused("wrong or missing token", true, Refusal::WrongToken))
                }
                _ => Ok(version),
            }
        }
        Ok(Some(ClientFrame::Watch { .. } | ClientFrame::Dump { .. })) => Err(refused(
            "asked for something before saying hello",
            false,
            Refusal::BadHello,
        )),
        Ok(None) => Err(refused(
            "closed before saying hello",
            false,
            Refusal::BadHello,
        )),
        Err(WireError::Io(e))
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) =>
        {
            match token {
                _ if partial => Err(refused(
                    "sent part of a hello, then nothing",
                    false,
                    Refusal::BadHello,
                )),
                Some(_) => Err(refused(
                    "no hello with the required token",
                    false,
                    Refusal::WrongToken,
                )),
                None => Ok(MIN_WIRE_VERSION),
            }
        }
        Err(e) => Err(refused(
            format!("sent garbage: {e}"),
            false,
            Refusal::BadHello,
        )),
    }
}

#[cfg(test)]
mod tests {
    //! Property tests of the handshake: for thousands of generated inputs — random bytes,
    //! every cut of a valid hello, valid hellos with a byte changed, hellos of every version
    //! and token — delivered in random chunk sizes and ending in silence or a close, the
    //! handshake never panics, and it accepts exactly the inputs whose first frame is a hello
    //! of a served version with the right token (or, without a token, silence).
    use super::*;
    use std::io::Write;

    /// A peer that sends `data` in chunks of the sizes `chunks` draws, then goes silent
    /// (`WouldBlock`, a read timeout) or closes.
    struct Scripted {
        data: Vec<u8>,
        at: usize,
        rng: u64,
        close_at_end: bool,
    }

    impl Read for Scripted {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.at == self.data.len() {
                return match self.close_at_end {
                    true => Ok(0),
                    false => Err(io::ErrorKind::WouldBlock.into()),
                };
            }
            let chunk = 1 + (next(&mut self.rng) as usize % 7);
            let n = chunk.min(buf.len()).min(self.data.len() - self.at);
            buf[..n].copy_from_slice(&self.data[self.at..self.at + n]);
            self.at += n;
            Ok(n)
        }
    }

    impl Write for Scripted {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Conn for Scripted {
        fn try_clone_box(&self) -> io::Result<Box<dyn Conn>> {
            Err(io::ErrorKind::Unsupported.into())
        }
        fn shutdown_both(&self) {}
        fn set_timeouts(&self, _: Option<Duration>, _: Option<Duration>) -> io::Result<()> {
            Ok(())
        }
    }

    fn next(x: &mut u64) -> u64 {
        *x ^= *x << 13;
        *x ^= *x >> 7;
        *x ^= *x << 17;
        *x
    }

    fn hello(version: u32, token: Option<&str>) -> Vec<u8> {
        taskscope_wire::encode(&ClientFrame::Hello {
            version,
            token: token.map(str::to_owned),
        })
    }

    /// What the handshake must answer for `input`: the version it accepts, or `None`.
    fn expected(input: &[u8], token: Option<&str>) -> Option<u32> {
        if input.is_empty() {
            return token.is_none().then_some(MIN_WIRE_VERSION);
        }
        match FrameReader::with_limit(input, MAX_CLIENT_FRAME).next_frame::<ClientFrame>() {
            Ok(Some(ClientFrame::Hello {
                version,
                token: given,
            })) if (MIN_WIRE_VERSION..=WIRE_VERSION).contains(&version)
                && token.is_none_or(|t| given.as_deref() == Some(t)) =>
            {
                Some(version)
            }
            _ => None,
        }
    }

    #[test]
    fn the_handshake_accepts_exactly_the_well_formed_hellos() {
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        let mut inputs: Vec<Vec<u8>> = Vec::new();
        for version in 0..=WIRE_VERSION + 2 {
            for token in [None, Some("secret"), Some("wrong")] {
                let valid = hello(version, token);
                for cut in 0..=valid.len() {
                    inputs.push(valid[..cut].to_vec());
                }
                for i in 0..valid.len() {
                    let mut changed = valid.clone();
                    changed[i] ^= 1 << (next(&mut rng) % 8);
                    inputs.push(changed);
                }
                let mut trailing = valid.clone();
                trailing.extend_from_slice(b"junk after the hello");
                inputs.push(trailing);
            }
        }
        for _ in 0..3_000 {
            let len = (next(&mut rng) % 48) as usize;
            inputs.push((0..len).map(|_| next(&mut rng) as u8).collect());
        }
        let mut accepted = 0;
        for (i, input) in inputs.iter().enumerate() {
            for token in [None, Some("secret")] {
                for close_at_end in [false, true] {
                    let mut conn: Box<dyn Conn> = Box::new(Scripted {
                        data: input.clone(),
                        at: 0,
                        rng: rng ^ i as u64,
                        close_at_end,
                    });
                    let got = handshake(&mut conn, token).ok();
                    let want = expected(input, token).filter(|_| {
                        // A silent peer that closes has sent nothing at all: without a token
                        // it is a reader that said goodbye, refused as "closed".
                        !(input.is_empty() && close_at_end)
                    });
                    assert_eq!(
                        got, want,
                        "input {input:?}, token {token:?}, close at end {close_at_end}"
                    );
                    accepted += usize::from(got.is_some());
                }
            }
        }
        // The generator reached both answers plenty of times.
        assert!(
            accepted > 100,
            "{accepted} accepted of {}",
            inputs.len() * 4
        );
    }
}
