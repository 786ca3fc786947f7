//! The media threads' UDP plumbing: the one media port, which thread a datagram
//! on it belongs to, and sending and receiving in batches.
//!
//! # One port for every connection, several threads
//! Every media thread binds its own socket to the same address and port with
//! `SO_REUSEPORT`. The kernel spreads incoming datagrams over those sockets by a
//! hash of the remote address, so a client's datagrams always reach the same
//! thread, but not necessarily the thread that owns the client's Room. Each
//! thread therefore looks up the owner in the shared [`Router`]:
//!
//! - a STUN Binding request names the connection it is for by the local ICE
//!   username fragment (every connection gets its own, registered here when it
//!   is created), which also teaches the router the client's address;
//! - anything else (DTLS, SRTP, SRTCP) is routed by the remote address learnt so.
//!
//! A datagram for a connection on another thread is handed to that thread over
//! a bounded channel (and dropped if that thread is far behind). That hand-over
//! only happens until the owner has seen the client's first connectivity check:
//! the owner then binds one more socket on the port, `connect`ed to the
//! client's address ([`bind_connected`]). Linux's socket lookup scores a
//! connected socket that matches the sender above every unconnected one of the
//! port, so from then on that client's datagrams arrive on its Room's thread
//! directly (the 30-participant test checks the sockets exist and media flows;
//! on a system that did not prefer them, datagrams would still reach the
//! shared sockets and be handed over as before). Replies and all forwarding leave from the owner's own unconnected
//! socket, which shares the port: a packet to N subscribers still leaves in
//! one `sendmmsg`, which N connected sockets could not do.
//!
//! This was chosen over one reader thread for the port (every datagram would
//! cross threads, and one core would read for all) and over hand-overs alone
//! (with N threads, (N-1)/N of what publishers send would cross a thread, and
//! on a busy machine each crossing waits for the other thread to be
//! scheduled). The cost is one descriptor per client address (at most four
//! per connection), as the per-participant ports of the port-range mode cost.
//!
//! The address table is learnt from Binding requests before the connection's
//! ICE agent has checked their integrity: someone who knows a connection's
//! ufrag (it only travels in that participant's signaling) could point the
//! table at another address, but what arrives from there must still pass ICE,
//! DTLS and SRTP, so the worst is lost packets for that participant.
//!
//! # Batches
//! Everything a thread sends while handling one received datagram (each copy
//! of a forwarded packet, its own ICE/DTLS/RTCP traffic) is queued in an
//! [`Outbox`] and leaves in `sendmmsg` calls of up to [`SEND_BATCH`] datagrams,
//! so a packet to N subscribers costs one system call rather than N. The
//! outbox is flushed after each received datagram, not after a whole
//! `recvmmsg` batch: waiting for the batch would save a few system calls but
//! hold the first packet's copies while up to 31 more are decrypted and
//! rewritten (milliseconds for large Rooms). Reads use `recvmmsg`. Sends never wait: what the kernel does not take is
//! dropped and reported, so a slow subscriber never stalls a Room.
//!
//! # Arrival times
//! Each datagram is handed on with the time the kernel received it
//! (`SO_TIMESTAMPNS`), not the time the thread got round to it. The
//! transport-wide congestion control feedback the SFU sends publishers reports
//! those arrival times, and a publisher's browser reads growth in them as a
//! queue building on its uplink. Stamped when handled instead, every wait for
//! the CPU (a busy machine, a burst of packets decrypted and forwarded one
//! after the other) would look like congestion, and the browser would cut its
//! sending rate until the upper simulcast layers starve.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::sync::RwLock;
use std::time::{Duration, Instant, SystemTime};

use bytes::BytesMut;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::Interest;
use tokio::net::UdpSocket;

/// Datagrams read in one `recvmmsg`.
pub(crate) const RECV_BATCH: usize = 32;
/// Datagrams written in one `sendmmsg`.
pub(crate) const SEND_BATCH: usize = 64;
/// Largest datagram read: above any path MTU, so nothing is truncated.
pub(crate) const MAX_DATAGRAM: usize = 2048;
/// Socket buffers asked for (the kernel caps them at `net.core.[rw]mem_max`):
/// room for bursts of keyframes to many subscribers.
const SOCKET_BUFFER: usize = 4 << 20;
/// The oldest kernel receive time believed: a datagram does not wait in the
/// socket buffer this long (a second was seen on a test machine at a load
/// of 15), so an older stamp means the wall clock was stepped, and the time
/// of reading is used instead.
const MAX_RECEIVE_AGE: Duration = Duration::from_secs(5);

/// Where a connection lives: its media thread and its session id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Route {
    pub shard: usize,
    pub session: u64,
}

/// Which thread and connection a datagram on the shared port belongs to.
#[derive(Default)]
pub(crate) struct Router {
    tables: RwLock<Tables>,
}

#[derive(Default)]
struct Tables {
    ufrags: HashMap<String, Route>,
    addrs: HashMap<SocketAddr, Route>,
}

impl Router {
    /// A new connection's local ICE username fragment.
    pub(crate) fn add_ufrag(&self, ufrag: &str, route: Route) {
        if let Ok(mut t) = self.tables.write() {
            t.ufrags.insert(ufrag.to_owned(), route);
        }
    }

    pub(crate) fn by_ufrag(&self, ufrag: &str) -> Option<Route> {
        self.tables.read().ok()?.ufrags.get(ufrag).copied()
    }

    pub(crate) fn by_addr(&self, addr: &SocketAddr) -> Option<Route> {
        self.tables.read().ok()?.addrs.get(addr).copied()
    }

    /// `addr` sent a connectivity check for `route`'s connection.
    pub(crate) fn learn(&self, addr: SocketAddr, route: Route) {
        // Checks repeat every few seconds: take the write lock only for news.
        if self.by_addr(&addr) == Some(route) {
            return;
        }
        if let Ok(mut t) = self.tables.write() {
            t.addrs.insert(addr, route);
        }
    }

    /// The connection closed: forget its ufrag and addresses.
    pub(crate) fn forget(&self, route: Route, ufrag: &str) {
        if let Ok(mut t) = self.tables.write() {
            if t.ufrags.get(ufrag) == Some(&route) {
                t.ufrags.remove(ufrag);
            }
            t.addrs.retain(|_, r| *r != route);
        }
    }
}

fn udp_socket(addr: SocketAddr, reuse_port: bool) -> io::Result<std::net::UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    // Best effort: a smaller buffer only means earlier drops under bursts.
    let _ = socket.set_recv_buffer_size(SOCKET_BUFFER);
    let _ = socket.set_send_buffer_size(SOCKET_BUFFER);
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    stamp_arrivals(&socket);
    Ok(socket.into())
}

/// Asks the kernel to stamp each datagram with its arrival time (best
/// effort: without it, datagrams count as arriving when read).
fn stamp_arrivals(socket: &Socket) {
    #[cfg(target_os = "linux")]
    if let Err(e) =
        nix::sys::socket::setsockopt(socket, nix::sys::socket::sockopt::ReceiveTimestampns, &true)
    {
        tracing::debug!("SO_TIMESTAMPNS: {e}");
    }
    #[cfg(not(target_os = "linux"))]
    let _ = socket;
}

/// When a datagram the kernel stamped `stamp` (since the Unix epoch, by the
/// wall clock) arrived, given that the wall clock read `wall` when the
/// monotonic clock read `now`. `now` without a stamp, or with one from the
/// future or from longer ago than [`MAX_RECEIVE_AGE`] (the wall clock was
/// stepped in between).
pub(crate) fn arrival(stamp: Option<Duration>, wall: SystemTime, now: Instant) -> Instant {
    let waited = stamp.and_then(|stamp| {
        let wall = wall.duration_since(SystemTime::UNIX_EPOCH).ok()?;
        wall.checked_sub(stamp).filter(|w| *w <= MAX_RECEIVE_AGE)
    });
    waited.and_then(|w| now.checked_sub(w)).unwrap_or(now)
}

/// Binds `count` sockets on one port (`port` 0: one the system chooses), one
/// per media thread.
pub(crate) fn bind_shared(
    ip: IpAddr,
    port: u16,
    count: usize,
) -> io::Result<Vec<std::net::UdpSocket>> {
    if port != 0 {
        // `SO_REUSEPORT` would let a second SFU of the same user (another
        // `convene serve` on this host with the same port) join our group
        // and take half of our datagrams. A plain bind first fails if anyone
        // holds the port, so that second SFU refuses to start instead.
        drop(std::net::UdpSocket::bind(SocketAddr::new(ip, port))?);
    }
    let first = udp_socket(SocketAddr::new(ip, port), true)?;
    let addr = first.local_addr()?;
    let mut sockets = vec![first];
    for _ in 1..count {
        sockets.push(udp_socket(addr, true)?);
    }
    Ok(sockets)
}

/// A socket on the shared port (`bound`) connected to one client address.
pub(crate) fn bind_connected(
    bound: SocketAddr,
    peer: SocketAddr,
) -> io::Result<std::net::UdpSocket> {
    let socket = Socket::new(Domain::for_address(bound), Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&bound.into())?;
    socket.connect(&peer.into())?;
    stamp_arrivals(&socket);
    Ok(socket.into())
}

/// Binds one socket of a connection's own (the port-range mode).
pub(crate) fn bind_one(addr: SocketAddr) -> io::Result<std::net::UdpSocket> {
    udp_socket(addr, false)
}

/// Why a datagram is queued: a forwarded RTP packet is counted (and its loss
/// handled) per subscriber once the kernel took it or not.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tag {
    pub track: u64,
    pub subscriber: u64,
    pub payload_len: u64,
}

struct Outgoing {
    socket: Rc<UdpSocket>,
    to: SocketAddr,
    data: BytesMut,
    tag: Option<Tag>,
}

/// Datagrams waiting for the end of the current burst.
#[derive(Default)]
pub(crate) struct Outbox {
    queue: Vec<Outgoing>,
    batch: Batch,
}

impl Outbox {
    pub(crate) fn push(
        &mut self,
        socket: &Rc<UdpSocket>,
        to: SocketAddr,
        data: BytesMut,
        tag: Option<Tag>,
    ) {
        self.queue.push(Outgoing {
            socket: socket.clone(),
            to,
            data,
            tag,
        });
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Sends everything queued, socket by socket in queue order, and reports
    /// each datagram's tag with whether the kernel took it.
    pub(crate) fn flush(&mut self, mut sent: impl FnMut(Option<Tag>, bool)) {
        let queue = std::mem::take(&mut self.queue);
        let mut start = 0;
        while start < queue.len() {
            let socket = &queue[start].socket;
            let mut end = start + 1;
            while end < queue.len()
                && end - start < SEND_BATCH
                && Rc::ptr_eq(&queue[end].socket, socket)
            {
                end += 1;
            }
            let run = &queue[start..end];
            let mut done = 0;
            while done < run.len() {
                match self.batch.send(socket, &run[done..]) {
                    Ok(n) => {
                        for o in &run[done..done + n] {
                            sent(o.tag, true);
                        }
                        done += n;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        // The socket buffer is full: the rest of this run is lost.
                        for o in &run[done..] {
                            sent(o.tag, false);
                        }
                        done = run.len();
                    }
                    Err(e) => {
                        // The first datagram failed alone (an unreachable peer
                        // and the like): skip it and go on with the rest.
                        tracing::debug!(to = %run[done].to, "media send: {e}");
                        sent(run[done].tag, false);
                        done += 1;
                    }
                }
            }
            start = end;
        }
        // Keep the allocation for the next burst.
        self.queue = queue;
        self.queue.clear();
    }
}

/// One datagram of a batch: its length, sender and kernel receive time.
type Received = (usize, SocketAddr, Option<Duration>);

/// Reused `recvmmsg` buffers.
pub(crate) struct Inbox {
    bufs: Vec<Vec<u8>>,
    got: Vec<Received>,
    /// The wall and monotonic clocks right after the last read.
    read_at: (SystemTime, Instant),
    batch: Batch,
}

impl Default for Inbox {
    fn default() -> Self {
        Self {
            bufs: vec![vec![0; MAX_DATAGRAM]; RECV_BATCH],
            got: Vec::with_capacity(RECV_BATCH),
            read_at: (SystemTime::now(), Instant::now()),
            batch: Batch::default(),
        }
    }
}

impl Inbox {
    /// Reads what is waiting (up to [`RECV_BATCH`] datagrams); `WouldBlock` when nothing is.
    pub(crate) fn recv(&mut self, socket: &UdpSocket) -> io::Result<usize> {
        self.got.clear();
        self.batch.recv(socket, &mut self.bufs, &mut self.got)?;
        self.read_at = (SystemTime::now(), Instant::now());
        Ok(self.got.len())
    }

    /// The `i`th datagram of the last [`Inbox::recv`], its sender and when it
    /// arrived (see "Arrival times" above).
    pub(crate) fn datagram(&self, i: usize) -> Option<(&[u8], SocketAddr, Instant)> {
        let (len, from, stamp) = *self.got.get(i)?;
        let at = arrival(stamp, self.read_at.0, self.read_at.1);
        Some((self.bufs.get(i)?.get(..len)?, from, at))
    }
}

#[cfg(target_os = "linux")]
use linux::Batch;

#[cfg(target_os = "linux")]
mod linux {
    use std::io::{self, IoSlice, IoSliceMut};
    use std::net::SocketAddr;
    use std::os::fd::AsRawFd;

    use std::time::Duration;

    use nix::sys::socket::{
        ControlMessageOwned, MsgFlags, MultiHeaders, SockaddrStorage, recvmmsg, sendmmsg,
    };
    use nix::sys::time::TimeSpec;

    use super::{Interest, Outgoing, RECV_BATCH, Received, SEND_BATCH, UdpSocket};

    /// Preallocated `mmsghdr` arrays for `sendmmsg` and `recvmmsg`.
    pub(crate) struct Batch {
        send: MultiHeaders<SockaddrStorage>,
        recv: MultiHeaders<SockaddrStorage>,
    }

    impl Default for Batch {
        fn default() -> Self {
            Self {
                send: MultiHeaders::preallocate(SEND_BATCH, None),
                // Room for each datagram's SCM_TIMESTAMPNS.
                recv: MultiHeaders::preallocate(RECV_BATCH, Some(nix::cmsg_space!(TimeSpec))),
            }
        }
    }

    impl Batch {
        /// Sends up to [`SEND_BATCH`] of `out` in one call; how many the kernel took.
        pub(super) fn send(&mut self, socket: &UdpSocket, out: &[Outgoing]) -> io::Result<usize> {
            let out = &out[..out.len().min(SEND_BATCH)];
            let slices: Vec<[IoSlice<'_>; 1]> =
                out.iter().map(|o| [IoSlice::new(&o.data)]).collect();
            let addrs: Vec<Option<SockaddrStorage>> = out
                .iter()
                .map(|o| Some(SockaddrStorage::from(o.to)))
                .collect();
            let headers = &mut self.send;
            // try_io clears tokio's readiness on WouldBlock, as try_send_to would.
            socket.try_io(Interest::WRITABLE, || {
                let results = sendmmsg(
                    socket.as_raw_fd(),
                    headers,
                    &slices,
                    &addrs,
                    [],
                    MsgFlags::MSG_DONTWAIT,
                )
                .map_err(io::Error::from)?;
                Ok(results.count())
            })
        }

        pub(super) fn recv(
            &mut self,
            socket: &UdpSocket,
            bufs: &mut [Vec<u8>],
            got: &mut Vec<Received>,
        ) -> io::Result<()> {
            let headers = &mut self.recv;
            socket.try_io(Interest::READABLE, || {
                let mut slices: Vec<[IoSliceMut<'_>; 1]> = bufs
                    .iter_mut()
                    .map(|b| [IoSliceMut::new(b.as_mut_slice())])
                    .collect();
                let results = recvmmsg(
                    socket.as_raw_fd(),
                    headers,
                    slices.iter_mut(),
                    MsgFlags::MSG_DONTWAIT,
                    None,
                )
                .map_err(io::Error::from)?;
                for m in results {
                    // A datagram with no IP address cannot come from a peer.
                    let from = m.address.and_then(|a| {
                        a.as_sockaddr_in()
                            .map(|v4| SocketAddr::from(*v4))
                            .or_else(|| a.as_sockaddr_in6().map(|v6| SocketAddr::from(*v6)))
                    });
                    let stamp = m.cmsgs().ok().and_then(|mut cmsgs| {
                        cmsgs.find_map(|c| match c {
                            ControlMessageOwned::ScmTimestampns(ts) => {
                                let secs = u64::try_from(ts.tv_sec()).ok()?;
                                let nanos = u32::try_from(ts.tv_nsec()).ok()?;
                                Some(Duration::new(secs, nanos))
                            }
                            _ => None,
                        })
                    });
                    got.push((
                        m.bytes,
                        from.unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0))),
                        stamp,
                    ));
                }
                Ok(())
            })
        }
    }
}

#[cfg(not(target_os = "linux"))]
use portable::Batch;

/// Elsewhere, one datagram per system call.
#[cfg(not(target_os = "linux"))]
mod portable {
    use std::io;

    use super::{Outgoing, Received, UdpSocket};

    #[derive(Default)]
    pub(crate) struct Batch;

    impl Batch {
        pub(super) fn send(&mut self, socket: &UdpSocket, out: &[Outgoing]) -> io::Result<usize> {
            let mut n = 0;
            for o in out {
                match socket.try_send_to(&o.data, o.to) {
                    Ok(_) => n += 1,
                    Err(e) if n == 0 => return Err(e),
                    Err(_) => break,
                }
            }
            Ok(n)
        }

        pub(super) fn recv(
            &mut self,
            socket: &UdpSocket,
            bufs: &mut [Vec<u8>],
            got: &mut Vec<Received>,
        ) -> io::Result<()> {
            for buf in bufs.iter_mut() {
                match socket.try_recv_from(buf) {
                    Ok((len, from)) => got.push((len, from, None)),
                    Err(e) if got.is_empty() => return Err(e),
                    Err(_) => break,
                }
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn router_learns_addresses_from_ufrags_and_forgets_a_closed_connection() {
        let router = Router::default();
        let a = Route {
            shard: 0,
            session: 1,
        };
        let b = Route {
            shard: 1,
            session: 2,
        };
        router.add_ufrag("ua", a);
        router.add_ufrag("ub", b);
        let addr: SocketAddr = "127.0.0.1:5000".parse().expect("address");
        assert_eq!(router.by_ufrag("ub"), Some(b));
        assert_eq!(router.by_addr(&addr), None);
        router.learn(addr, b);
        assert_eq!(router.by_addr(&addr), Some(b));
        router.forget(b, "ub");
        assert_eq!((router.by_ufrag("ub"), router.by_addr(&addr)), (None, None));
        assert_eq!(router.by_ufrag("ua"), Some(a));
    }

    #[test]
    fn arrival_is_the_kernel_stamp_on_the_monotonic_clock() {
        let now = Instant::now();
        let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let since_epoch = Duration::from_secs(1_800_000_000);
        let waited = Duration::from_millis(250);
        assert_eq!(arrival(Some(since_epoch - waited), wall, now), now - waited);
        // No stamp, one from the future, one older than any real wait: read time.
        assert_eq!(arrival(None, wall, now), now);
        assert_eq!(arrival(Some(since_epoch + waited), wall, now), now);
        assert_eq!(
            arrival(Some(since_epoch - Duration::from_secs(3600)), wall, now),
            now
        );
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn the_kernel_stamps_what_waited_in_the_socket() {
        let socket =
            UdpSocket::from_std(bind_one("127.0.0.1:0".parse().expect("addr")).expect("bind"))
                .expect("tokio");
        let to = socket.local_addr().expect("addr");
        let sender = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let mut inbox = Inbox::default();
        // The kernel turns receive stamps on for the whole system a moment after
        // the first socket asks (deferred work); a datagram that arrives before
        // that is stamped when it is read. Wait until one is stamped on arrival.
        let mut stamping = false;
        for _ in 0..50 {
            sender.send_to(b"prime", to).expect("send");
            std::thread::sleep(Duration::from_millis(20));
            socket.readable().await.expect("readable");
            inbox.recv(&socket).expect("recv");
            let (_, _, at) = inbox.datagram(0).expect("datagram");
            if Instant::now().duration_since(at) >= Duration::from_millis(15) {
                stamping = true;
                break;
            }
        }
        assert!(stamping, "the kernel never stamped a datagram on arrival");
        sender.send_to(b"early", to).expect("send");
        let sent = Instant::now();
        // The datagram waits while the reader is busy elsewhere.
        std::thread::sleep(Duration::from_millis(120));
        socket.readable().await.expect("readable");
        let n = inbox.recv(&socket).expect("recv");
        assert_eq!(n, 1);
        let (data, _, at) = inbox.datagram(0).expect("datagram");
        assert_eq!(data, b"early");
        let read = Instant::now();
        assert!(
            read.duration_since(at) >= Duration::from_millis(100),
            "stamped {:?} after sending, read {:?} after",
            at.saturating_duration_since(sent),
            read.duration_since(sent)
        );
    }

    #[tokio::test]
    async fn a_batch_reaches_several_peers_and_comes_back_in_one_read() {
        let shared = bind_shared(IpAddr::V4(Ipv4Addr::LOCALHOST), 0, 2).expect("bind");
        let port = shared[0].local_addr().expect("addr").port();
        assert!(
            shared
                .iter()
                .all(|s| s.local_addr().expect("addr").port() == port)
        );
        let sender =
            Rc::new(UdpSocket::from_std(shared.into_iter().next().expect("one")).expect("tokio"));
        let peers: Vec<UdpSocket> = (0..3)
            .map(|_| {
                let s = bind_one("127.0.0.1:0".parse().expect("addr")).expect("bind");
                UdpSocket::from_std(s).expect("tokio")
            })
            .collect();
        let mut outbox = Outbox::default();
        for (i, p) in peers.iter().enumerate() {
            for k in 0..5u8 {
                let tag = Tag {
                    track: i as u64,
                    subscriber: u64::from(k),
                    payload_len: 1,
                };
                let to = p.local_addr().expect("addr");
                outbox.push(&sender, to, BytesMut::from(&[i as u8, k][..]), Some(tag));
            }
        }
        sender.writable().await.expect("writable");
        let mut taken = 0;
        outbox.flush(|tag, ok| {
            assert!(tag.is_some());
            taken += usize::from(ok);
        });
        assert_eq!(taken, 15);
        assert!(outbox.is_empty());
        for (i, p) in peers.iter().enumerate() {
            p.readable().await.expect("readable");
            let mut inbox = Inbox::default();
            let mut seen = Vec::new();
            while seen.len() < 5 {
                match inbox.recv(p) {
                    Ok(n) => {
                        for j in 0..n {
                            let (data, from, _) = inbox.datagram(j).expect("datagram");
                            assert_eq!(from.port(), port);
                            seen.push(data.to_vec());
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        p.readable().await.expect("readable");
                    }
                    Err(e) => panic!("recv: {e}"),
                }
            }
            let want: Vec<Vec<u8>> = (0..5u8).map(|k| vec![i as u8, k]).collect();
            assert_eq!(seen, want);
        }
    }
}
