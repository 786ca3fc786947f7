//! ICE over TCP (RFC 6544) on the media port, for networks that block UDP.
//!
//! Every media thread listens on the TCP port with the same number as the
//! shared UDP port (`SO_REUSEPORT`, so the kernel spreads new connections over
//! the threads), and each connection offers a passive TCP host candidate there
//! beside its UDP one. A client that cannot use UDP connects to it and sends
//! the same STUN, DTLS and SRTP it would send over UDP, each packet preceded by
//! its length in two bytes (RFC 4571 framing). The first frame on a new TCP
//! connection must be a STUN Binding request: its ICE ufrag names the peer
//! connection (see [`crate::udp`]), and the TCP stream then moves, as a plain
//! socket, to the thread that owns that connection's Room. From there on its
//! frames are fed to the sans-IO core as TCP datagrams and what the core writes
//! for that remote address is framed and written back on the stream.
//!
//! Writes never wait: each stream has a bounded backlog of whole frames, and a
//! frame that does not fit is dropped (never half-written, which would corrupt
//! the framing), exactly as a full UDP socket buffer drops a datagram. TCP's
//! own retransmission makes this transport worse for real-time media than UDP;
//! ICE ranks it below UDP, so clients only use it when UDP fails.

use std::io;
use std::net::SocketAddr;
use std::rc::Rc;

use bytes::{BufMut, BytesMut};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::TcpStream;
use tokio::sync::Notify;

/// Bytes of unwritten frames kept per stream before more frames are dropped:
/// about 0.2 s of a 1.5 Mbit/s camera plus audio.
pub(crate) const MAX_BACKLOG: usize = 64 * 1024;
/// How long a new TCP connection may take to send its first frame.
pub(crate) const FIRST_FRAME_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// Largest frame accepted from a client: a datagram above any path MTU.
pub(crate) const MAX_FRAME: usize = 2048;

/// Binds `count` listeners on `addr` (one per media thread).
pub(crate) fn bind_shared(
    addr: SocketAddr,
    count: usize,
) -> io::Result<Vec<std::net::TcpListener>> {
    // As for UDP (see `udp::bind_shared`): a port someone already holds is an
    // error, not a group to join.
    drop(std::net::TcpListener::bind(addr)?);
    (0..count)
        .map(|_| {
            let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
            socket.set_reuse_port(true)?;
            socket.set_nonblocking(true)?;
            socket.bind(&addr.into())?;
            socket.listen(1024)?;
            Ok(socket.into())
        })
        .collect()
}

/// Splits a byte stream into RFC 4571 frames.
#[derive(Debug, Default)]
pub(crate) struct Deframer {
    buffer: BytesMut,
}

impl Deframer {
    pub(crate) fn extend(&mut self, data: &[u8]) {
        self.buffer.extend_from_slice(data);
    }

    /// The next whole frame; `Err` if the peer announced one larger than any
    /// datagram we accept (the stream is then closed: it is not ICE-TCP).
    pub(crate) fn next_frame(&mut self) -> Result<Option<BytesMut>, ()> {
        let Some(header) = self.buffer.get(..2) else {
            return Ok(None);
        };
        let len = usize::from(u16::from_be_bytes([header[0], header[1]]));
        if len > MAX_FRAME {
            return Err(());
        }
        if self.buffer.len() < 2 + len {
            return Ok(None);
        }
        let mut frame = self.buffer.split_to(2 + len);
        let _ = frame.split_to(2);
        Ok(Some(frame))
    }
}

/// Appends `data` to `out` as one frame; `false` if it cannot be framed.
pub(crate) fn frame_into(out: &mut BytesMut, data: &[u8]) -> bool {
    let Ok(len) = u16::try_from(data.len()) else {
        return false;
    };
    out.put_u16(len);
    out.put_slice(data);
    true
}

/// One ICE-TCP stream, owned by the media thread of its connection.
pub(crate) struct TcpConn {
    pub stream: Rc<TcpStream>,
    pub session: u64,
    /// Frames not yet taken by the kernel.
    pub backlog: BytesMut,
    /// Wakes the stream's task: to wait for writability, or to stop (once
    /// the stream is no longer in the thread's table).
    pub kick: Rc<Notify>,
}

impl TcpConn {
    /// Queues one frame; `false` (and nothing queued) if the backlog is full.
    pub(crate) fn queue(&mut self, data: &[u8]) -> bool {
        if self.backlog.len() + 2 + data.len() > MAX_BACKLOG {
            return false;
        }
        frame_into(&mut self.backlog, data)
    }

    /// Writes what the kernel takes now; `true` once the backlog is empty.
    pub(crate) fn write_some(&mut self) -> io::Result<bool> {
        while !self.backlog.is_empty() {
            match self.stream.try_write(&self.backlog) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    let _ = self.backlog.split_to(n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_survive_any_split_of_the_stream_and_oversized_ones_are_refused() {
        let mut stream = BytesMut::new();
        for p in [&b"stun"[..], &b""[..], &[7u8; 1500][..]] {
            assert!(frame_into(&mut stream, p));
        }
        for cut in 0..stream.len() {
            let mut d = Deframer::default();
            let mut got = Vec::new();
            for part in [&stream[..cut], &stream[cut..]] {
                d.extend(part);
                while let Ok(Some(f)) = d.next_frame() {
                    got.push(f.to_vec());
                }
            }
            assert_eq!(got, vec![b"stun".to_vec(), Vec::new(), vec![7u8; 1500]]);
        }
        let mut d = Deframer::default();
        d.extend(&[0xff, 0xff, 1, 2, 3]);
        assert_eq!(d.next_frame(), Err(()));
        assert!(!frame_into(&mut BytesMut::new(), &vec![0u8; 70_000]));
    }
}
