//! A client's connection, TCP or Unix socket alike, and how a refused client is told why.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::Duration;

use taskscope_wire::{encode, Frame};

/// A connected client stream.
pub(crate) trait Conn: Read + Write + Send + 'static {
    fn try_clone_box(&self) -> io::Result<Box<dyn Conn>>;
    fn shutdown_both(&self);
    fn set_timeouts(&self, read: Option<Duration>, write: Option<Duration>) -> io::Result<()>;
}

/// `Conn` for a std socket type: both have the same inherent methods.
macro_rules! conn_for {
    ($stream:ty) => {
        impl Conn for $stream {
            fn try_clone_box(&self) -> io::Result<Box<dyn Conn>> {
                Ok(Box::new(self.try_clone()?))
            }
            fn shutdown_both(&self) {
                let _ = self.shutdown(Shutdown::Both);
            }
            fn set_timeouts(
                &self,
                read: Option<Duration>,
                write: Option<Duration>,
            ) -> io::Result<()> {
                self.set_read_timeout(read)?;
                self.set_write_timeout(write)
            }
        }
    };
}

conn_for!(TcpStream);
#[cfg(unix)]
conn_for!(std::os::unix::net::UnixStream);

/// Tells a client why it is refused (a frame small enough for the socket's buffer, written
/// with a short timeout: it never holds up the caller) and closes the connection.
pub(crate) fn refuse(conn: &mut Box<dyn Conn>, reason: &str) {
    let _ = conn.set_timeouts(None, Some(Duration::from_millis(100)));
    let frame = encode(&Frame::Refused {
        reason: reason.to_string(),
    });
    let _ = conn.write_all(&frame);
    conn.shutdown_both();
}
