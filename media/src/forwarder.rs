//! The media threads: every participant's peer connection (the sans-IO `rtc`
//! core), the sockets, and the forwarding between them.
//!
//! Each media thread runs a current-thread tokio runtime and owns the Rooms
//! placed on it ([`MediaThreads::place`]: a new Room goes to the thread with
//! the fewest participants, and stays there while anyone is in it). A Room's
//! connections all live on its thread, so when a datagram arrives it is
//! decrypted and every RTP packet it yields is rewritten and written to each
//! subscriber's connection in the same call: there is no lock, channel or task
//! switch between a publisher's packet and its copies. The copies queue in an
//! [`Outbox`] and leave in one `sendmmsg` once that packet is handled (see
//! [`crate::udp`], which also explains how the one shared media port is read by
//! every thread). Signaling sessions on other threads reach the connections
//! through [`MediaThread`] commands (one round trip per SDP step, rare next to
//! media).
//!
//! Sends are non-blocking: a subscriber whose socket buffer is full loses that
//! packet (video losses ask the publisher for a keyframe), so nobody waits for
//! anybody.
//!
//! # A panic ends one Room
//! All work for a connection (a datagram, a timer, a command) runs under
//! `catch_unwind`. The thread's state is keyed by Room: every connection and
//! track records its Room and only ever touches connections of that Room, so
//! when a panic unwinds out of one Room's work (a bug in the WebRTC stack or
//! here), that Room's connections and tracks are dropped whole, its sessions
//! are told to end with [`crate::CloseReason::Reconnect`] (clients rejoin
//! afresh), the Room is logged and counted, and the thread goes on serving the
//! other Rooms. Only a panic in the thread's own bookkeeping between Rooms
//! (counters, the outbox) would still end the thread.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io::ErrorKind;
use std::net::{IpAddr, SocketAddr};
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use rtc::ice::tcp_type::TcpType;
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::certificate::{CertificateParams, RTCCertificate};
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use rtc::peer_connection::event::{RTCPeerConnectionEvent, RTCTrackEvent};
use rtc::peer_connection::message::{RTCMessage, TaggedRTCMessage};
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::peer_connection::transport::{
    CandidateConfig, CandidateHostConfig, RTCIceCandidate, RTCIceCandidateInit,
};
use rtc::peer_connection::{RTCPeerConnection, RTCPeerConnectionBuilder};
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodingParameters, RTCRtpEncodingParameters, RTCRtpRtxParameters,
    RtpCodecKind,
};
use rtc::rtp_transceiver::{
    RTCRtpReceiverId, RTCRtpSenderId, RTCRtpTransceiverDirection, RTCRtpTransceiverInit,
};
use rtc::sansio::Protocol;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{Notify, mpsc, oneshot};

use crate::core::{self, AUDIO_LEVEL_URI, CodecKey, ExtensionPlan, Rewriter, SpeakerDetector};
use crate::engine::{Estimate, Uplink};
use crate::error::{Error, Result};
use crate::quality::{self, QualityTracker};
use crate::signaling::Kind;
use crate::simulcast::{
    self, Arrivals, KeyframeRequests, LayerInfo, LayerSwitch, MAX_LAYERS, NOMINAL_LAYERS, Priority,
    RateMeter, Tile, Verdict, VideoCodec,
};
use crate::tcp::{self, Deframer, TcpConn};
use crate::udp::{self, Inbox, Outbox, RECV_BATCH, Route, Router, Tag};

/// Minimum gap between keyframe requests relayed to one publisher track.
const KEYFRAME_INTERVAL: Duration = Duration::from_millis(300);
/// How often the active speaker is re-evaluated.
const SPEAKER_INTERVAL: Duration = Duration::from_millis(200);
/// How often each subscriber's layers are chosen again while media flows
/// (tile reports and tracks coming and going choose at once).
const ALLOCATE_INTERVAL: Duration = Duration::from_millis(500);
/// What one forwarded audio track is taken to cost a subscriber's downlink
/// (Opus at its default rate plus packet overhead) before video shares the rest.
const AUDIO_BITRATE: u64 = 50_000;
/// How long a layer must have been unneeded before its publisher is told to
/// pause it: each change costs the browser an encoder reconfiguration, so a
/// subscriber flicking between layers must not make the publisher flap.
const PAUSE_AFTER: Duration = Duration::from_secs(2);
/// How long a layer the publisher was asked for may send nothing before it
/// counts as stalled: browsers drop their upper layers by themselves when
/// their uplink or CPU is short, and a subscriber left waiting on one would
/// see a frozen picture.
const STALLED_AFTER: Duration = Duration::from_millis(2500);
/// How long a stalled layer is not offered to subscribers (even once paused),
/// so they do not keep asking for what the publisher cannot send.
const STALL_BACKOFF: Duration = Duration::from_secs(10);
/// The window a layer's bitrate is measured over.
const LAYER_RATE_WINDOW: Duration = Duration::from_secs(1);
/// `recvmmsg` batches read from one socket before the other tasks get a turn.
const RECV_ROUNDS: usize = 4;
/// Datagrams queued for a media thread by the others (read on their socket of
/// the shared port) before more are dropped.
const HANDOVER_QUEUE: usize = 4096;
/// How long one DTLS certificate serves new connections before a fresh one is made.
const CERTIFICATE_LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// Shortest gap between two runs of one connection's timers.
const MIN_TIMER_GAP: Duration = Duration::from_millis(1);

/// Identifies a published track inside the media thread.
pub(crate) type TrackKey = u64;

/// Hashing for the media thread's maps keyed by its own counters (session
/// ids, [`TrackKey`]s), looked up several times per forwarded packet.
type IdHash = std::hash::BuildHasherDefault<IdHasher>;

/// One multiply per key instead of SipHash's rounds. Not keyed, which is safe
/// only because these keys are counters the SFU hands out itself, never
/// values a client chooses: nobody can pick keys that collide.
#[derive(Default)]
struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u64(&mut self, n: u64) {
        // Fibonacci hashing: spreads consecutive ids over the high bits,
        // which hashbrown's control bytes take.
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// The video a tile report is about.
#[derive(Debug, Clone)]
pub(crate) enum TileOf {
    /// A track the session receives.
    Track(TrackKey),
    /// The subscriber's own mid of the transceiver receiving it.
    Mid(String),
}

/// What the media thread tells a participant's session.
#[derive(Debug)]
pub(crate) enum PcEvent {
    /// A local ICE candidate to trickle to the client.
    Candidate(RTCIceCandidateInit),
    /// Which simulcast layers of the client's track `mid` anyone takes.
    SendLayers { mid: String, rids: Vec<String> },
    /// The client started sending a track.
    Track {
        key: TrackKey,
        mid: String,
        kind: Kind,
    },
    /// A track of the client's ended.
    TrackEnded(TrackKey),
    /// This participant became the Room's active speaker.
    Speaker,
    /// This participant's connection quality changed.
    Quality(quality::Level),
    /// The media connection is up (ICE and DTLS done).
    Connected,
    /// The media connection stopped answering; it may come back.
    Disconnected,
    /// The connection failed.
    Failed,
    /// The Room's media panicked and was torn down: rejoin.
    RoomFailed,
}

/// Counters the media thread keeps for `/metrics`.
#[derive(Default)]
pub(crate) struct Counters {
    pub packets_forwarded: AtomicU64,
    pub bytes_forwarded: AtomicU64,
    pub packets_dropped: AtomicU64,
    pub keyframe_requests: AtomicU64,
    /// Rooms whose media panicked and was ended.
    pub room_failures: AtomicU64,
    /// Simulcast layer switches (a subscriber's video starting, stopping or changing layer).
    pub layer_switches: AtomicU64,
    /// Packets that arrived a second time (a publisher probing its uplink), not forwarded.
    pub duplicates: AtomicU64,
    /// Every connection's downlink estimate, by session: (Room, participant, estimate).
    pub estimates: std::sync::Mutex<HashMap<u64, (String, String, Estimate)>>,
}

/// How the media threads bind sockets: one port shared by every connection
/// when `port_min == port_max` (0 and 0: one the system chooses), else one
/// port of the range per connection.
#[derive(Debug, Clone)]
pub(crate) struct Binding {
    pub bind_ip: IpAddr,
    pub public_ip: Option<IpAddr>,
    pub port_min: u16,
    pub port_max: u16,
}

impl Binding {
    fn shared(&self) -> bool {
        self.port_min == self.port_max
    }
}

/// What another media thread received for a connection of this one.
enum Handover {
    /// A datagram read on that thread's socket of the shared port, and when
    /// it arrived there.
    Datagram {
        from: SocketAddr,
        data: BytesMut,
        at: Instant,
    },
    /// An ICE-TCP stream whose first frame (a Binding request) named one of ours.
    Tcp {
        stream: std::net::TcpStream,
        peer: SocketAddr,
        session: u64,
        first: BytesMut,
        rest: Deframer,
    },
}

/// Everything one media thread starts with.
struct Shard {
    index: usize,
    binding: Binding,
    counters: Arc<Counters>,
    router: Arc<Router>,
    /// Every thread's handover channel, by thread index.
    peers: Arc<[mpsc::Sender<Handover>]>,
    handovers: mpsc::Receiver<Handover>,
    /// This thread's socket on the shared port; `None` with a port range.
    shared: Option<std::net::UdpSocket>,
    /// This thread's ICE-TCP listener on the shared port number.
    tcp: Option<std::net::TcpListener>,
}

/// The media threads and which Room lives on which.
pub(crate) struct MediaThreads {
    threads: Vec<MediaThread>,
    placement: std::sync::Mutex<core::Placement<String>>,
    port: Option<u16>,
}

impl MediaThreads {
    /// Binds the shared port (if one is configured) and starts `count` threads.
    pub(crate) fn start(binding: Binding, count: usize, counters: Arc<Counters>) -> Result<Self> {
        let count = count.max(1);
        let mut shared: Vec<Option<std::net::UdpSocket>> = if binding.shared() {
            udp::bind_shared(binding.bind_ip, binding.port_min, count)
                .map_err(Error::MediaPort)?
                .into_iter()
                .map(Some)
                .collect()
        } else {
            (0..count).map(|_| None).collect()
        };
        let port = match shared.first() {
            Some(Some(s)) => Some(s.local_addr().map_err(io_error)?.port()),
            _ => None,
        };
        // ICE-TCP on the TCP port of the same number. Without it clients that
        // can use UDP lose nothing, so a port taken by someone else is a warning.
        let mut listeners: Vec<Option<std::net::TcpListener>> = match port {
            Some(port) => match tcp::bind_shared(SocketAddr::new(binding.bind_ip, port), count) {
                Ok(listeners) => listeners.into_iter().map(Some).collect(),
                Err(e) => {
                    tracing::warn!(port, "no ICE-TCP on the media port: {e}");
                    (0..count).map(|_| None).collect()
                }
            },
            None => (0..count).map(|_| None).collect(),
        };
        let router = Arc::new(Router::default());
        let (senders, receivers): (Vec<_>, Vec<_>) =
            (0..count).map(|_| mpsc::channel(HANDOVER_QUEUE)).unzip();
        let peers: Arc<[mpsc::Sender<Handover>]> = senders.into();
        let mut threads = Vec::with_capacity(count);
        for (index, handovers) in receivers.into_iter().enumerate() {
            threads.push(MediaThread::start(Shard {
                index,
                binding: binding.clone(),
                counters: counters.clone(),
                router: router.clone(),
                peers: peers.clone(),
                handovers,
                shared: shared.get_mut(index).and_then(Option::take),
                tcp: listeners.get_mut(index).and_then(Option::take),
            })?);
        }
        Ok(Self {
            threads,
            placement: std::sync::Mutex::new(core::Placement::new(count)),
            port,
        })
    }

    /// The shared media port, unless each connection has its own.
    pub(crate) fn port(&self) -> Option<u16> {
        self.port
    }

    /// The thread for one more participant of `room` (see [`core::Placement`]).
    pub(crate) fn place(&self, room: &str) -> usize {
        self.placement
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .place(room.to_owned())
    }

    /// A participant of `room` is gone.
    pub(crate) fn release(&self, room: &str) {
        self.placement
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .release(room);
    }

    /// The thread `index` ([`MediaThreads::place`] returns only valid ones).
    pub(crate) fn thread(&self, index: usize) -> &MediaThread {
        self.threads
            .get(index)
            .or_else(|| self.threads.first())
            .expect("there is at least one media thread")
    }

    /// Makes the next datagram of `room`'s media panic (tests of isolation).
    #[cfg(feature = "test-client")]
    pub(crate) fn inject_fault(&self, room: &str) -> bool {
        let shard = self
            .placement
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .thread_of(room);
        match shard {
            Some(shard) => {
                self.thread(shard).tell(Command::Fault {
                    room: room.to_owned(),
                });
                true
            }
            None => false,
        }
    }
}

type Reply<T> = oneshot::Sender<Result<T>>;

enum Command {
    Open {
        session: u64,
        room: String,
        participant: String,
        events: mpsc::UnboundedSender<PcEvent>,
        reply: Reply<()>,
    },
    Offer {
        session: u64,
        sdp: String,
        rollback: bool,
        reply: Reply<String>,
    },
    CreateOffer {
        session: u64,
        reply: Reply<String>,
    },
    Answer {
        session: u64,
        sdp: String,
        start: Vec<TrackKey>,
        reply: Reply<()>,
    },
    Candidate {
        session: u64,
        init: RTCIceCandidateInit,
    },
    Subscribe {
        session: u64,
        track: TrackKey,
        reply: Reply<()>,
    },
    Unsubscribe {
        session: u64,
        track: TrackKey,
    },
    Tiles {
        session: u64,
        tiles: Vec<(TileOf, Tile, bool)>,
    },
    Close {
        session: u64,
    },
    /// Test hook: the Room's next datagram panics.
    #[cfg(feature = "test-client")]
    Fault {
        room: String,
    },
}

impl Command {
    /// The connection the command is for (0, which no session has, for none).
    fn session(&self) -> u64 {
        match self {
            Command::Open { session, .. }
            | Command::Offer { session, .. }
            | Command::CreateOffer { session, .. }
            | Command::Answer { session, .. }
            | Command::Candidate { session, .. }
            | Command::Subscribe { session, .. }
            | Command::Unsubscribe { session, .. }
            | Command::Tiles { session, .. }
            | Command::Close { session } => *session,
            #[cfg(feature = "test-client")]
            Command::Fault { .. } => 0,
        }
    }
}

/// A handle on the media thread. Cheap to clone; the thread ends when the last
/// handle is dropped.
#[derive(Clone)]
pub(crate) struct MediaThread {
    commands: mpsc::UnboundedSender<Command>,
}

impl MediaThread {
    /// Starts the thread.
    fn start(shard: Shard) -> Result<Self> {
        let (commands, rx) = mpsc::unbounded_channel();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::WebRtc(format!("media runtime: {e}")))?;
        std::thread::Builder::new()
            .name(format!("convene-media-{}", shard.index))
            .spawn(move || {
                let local = tokio::task::LocalSet::new();
                local.block_on(&runtime, run(rx, shard));
            })
            .map_err(|e| Error::WebRtc(format!("media thread: {e}")))?;
        Ok(Self { commands })
    }

    async fn ask<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> Result<T> {
        let (tx, rx) = oneshot::channel();
        self.commands.send(make(tx)).map_err(|_| gone())?;
        rx.await.map_err(|_| gone())?
    }

    fn tell(&self, command: Command) {
        // The thread only stops once every handle is gone, so this cannot fail
        // while a caller holds one; a failure would leave nothing to clean up.
        let _ = self.commands.send(command);
    }

    /// Creates the participant's peer connection and binds its socket.
    pub(crate) async fn open(
        &self,
        session: u64,
        room: &str,
        participant: &str,
        events: mpsc::UnboundedSender<PcEvent>,
    ) -> Result<()> {
        let room = room.to_owned();
        let participant = participant.to_owned();
        self.ask(|reply| Command::Open {
            session,
            room,
            participant,
            events,
            reply,
        })
        .await
    }

    /// Applies a client offer (rolling back ours first if asked) and returns the answer.
    pub(crate) async fn offer(&self, session: u64, sdp: String, rollback: bool) -> Result<String> {
        self.ask(|reply| Command::Offer {
            session,
            sdp,
            rollback,
            reply,
        })
        .await
    }

    /// Creates and applies an offer of ours.
    pub(crate) async fn create_offer(&self, session: u64) -> Result<String> {
        self.ask(|reply| Command::CreateOffer { session, reply })
            .await
    }

    /// Applies the client's answer, then starts forwarding on `start`.
    pub(crate) async fn answer(
        &self,
        session: u64,
        sdp: String,
        start: Vec<TrackKey>,
    ) -> Result<()> {
        self.ask(|reply| Command::Answer {
            session,
            sdp,
            start,
            reply,
        })
        .await
    }

    /// Adds a remote ICE candidate.
    pub(crate) fn candidate(&self, session: u64, init: RTCIceCandidateInit) {
        self.tell(Command::Candidate { session, init });
    }

    /// Adds a sending transceiver for `track` to the session's connection;
    /// nothing is forwarded on it until [`MediaThread::answer`] starts it.
    pub(crate) async fn subscribe(&self, session: u64, track: TrackKey) -> Result<()> {
        self.ask(|reply| Command::Subscribe {
            session,
            track,
            reply,
        })
        .await
    }

    /// Stops forwarding `track` to the session and removes its transceiver.
    pub(crate) fn unsubscribe(&self, session: u64, track: TrackKey) {
        self.tell(Command::Unsubscribe { session, track });
    }

    /// How the session's client shows the videos it receives: (track, tile,
    /// is a screen share). Its layers are chosen again at once.
    pub(crate) fn tiles(&self, session: u64, tiles: Vec<(TileOf, Tile, bool)>) {
        self.tell(Command::Tiles { session, tiles });
    }

    /// Closes the session's connection and forgets its tracks.
    pub(crate) fn close(&self, session: u64) {
        self.tell(Command::Close { session });
    }
}

fn gone() -> Error {
    Error::WebRtc("the media thread has stopped".to_owned())
}

fn rtc_error(e: rtc::shared::error::Error) -> Error {
    Error::WebRtc(e.to_string())
}

/// Everything the media thread owns.
struct Engine {
    /// This thread's index among the media threads.
    shard: usize,
    binding: Binding,
    next_port: usize,
    counters: Arc<Counters>,
    router: Arc<Router>,
    peers: Arc<[mpsc::Sender<Handover>]>,
    /// This thread's socket on the shared port, and the address it announces.
    shared: Option<(Rc<UdpSocket>, SocketAddr)>,
    /// The address the shared sockets are bound to (for connected sockets).
    shared_bound: Option<SocketAddr>,
    /// Connected sockets made since the last look: their reader tasks to start.
    new_connected: Vec<Connected>,
    /// Remote addresses of this thread's connections on the shared port: the
    /// lock-free first look before the shared [`Router`].
    local_addrs: HashMap<SocketAddr, u64>,
    wire: Wire,
    /// Whether connections offer an ICE-TCP candidate (this thread listens).
    tcp_enabled: bool,
    /// Rooms whose next datagram panics (the test hook).
    #[cfg(feature = "test-client")]
    faulty: std::collections::HashSet<String>,
    pcs: HashMap<u64, Pc, IdHash>,
    tracks: HashMap<TrackKey, Track, IdHash>,
    next_track: TrackKey,
    rooms: HashMap<String, Speaking>,
    /// Connections written to since their deadline was last computed.
    touched: Vec<u64>,
    /// Counted locally and published once per burst: atomics per packet cost more.
    forwarded: u64,
    forwarded_bytes: u64,
    dropped: u64,
    keyframe_requests: u64,
    layer_switches: u64,
    duplicates: u64,
    epoch: Instant,
    /// The DTLS certificate of every connection, and when it was made. One for
    /// all, as a browser has one per origin: a key pair per connection would cost
    /// each join a key generation and each participant its own copy.
    certificate: Option<(RTCCertificate, Instant)>,
}

struct Speaking {
    detector: SpeakerDetector<u64>,
    last_evaluated: Duration,
    /// When the Room's layers were last chosen.
    last_allocated: Duration,
    members: usize,
}

/// One participant's connection.
struct Pc {
    core: RTCPeerConnection,
    /// The shared socket, or the connection's own in port-range mode.
    socket: Rc<UdpSocket>,
    /// Our ICE username fragment: how datagrams on the shared port find us.
    ufrag: String,
    /// The address in our candidate: the bound one, or the public one behind a 1:1 NAT.
    advertised: SocketAddr,
    candidate_added: bool,
    /// Whether the connection has been up (ICE and DTLS): before, the core
    /// has no SRTP keys and silently drops what it is asked to send.
    media_ready: bool,
    room: String,
    participant: String,
    events: mpsc::UnboundedSender<PcEvent>,
    wake: Rc<Notify>,
    /// The deadline the connection's task sleeps until.
    armed: Option<Instant>,
    /// Tracks this participant publishes, by the core's track id.
    published: HashMap<String, TrackKey>,
    /// Tracks sent to this participant, by the id of our local track.
    sent: HashMap<String, (TrackKey, RTCRtpSenderId)>,
    /// How the client shows the videos it receives, and which are screen shares.
    tiles: HashMap<TrackKey, (Tile, bool)>,
    /// The downlink estimate from the client's transport-wide feedback.
    estimate: Estimate,
    /// What arrived of the client's own RTP.
    uplink: Uplink,
    /// The connection quality announced for the client, and its inputs.
    quality: QualitySampler,
    failed: bool,
    /// Sockets on the shared port connected to this client's addresses, so
    /// the kernel hands its datagrams to this thread (see [`crate::udp`]);
    /// each with what stops its reader task.
    connected: HashMap<SocketAddr, Rc<Notify>>,
}

/// Samples a connection for its quality about once a second.
#[derive(Default)]
struct QualitySampler {
    tracker: QualityTracker,
    /// When it last sampled, and the uplink's (judged, lost) counts then.
    last: Option<(Duration, (u64, u64))>,
    /// ICE consent lapsed (the connection is `disconnected`).
    disconnected: bool,
}

/// Fewer packets than this in an interval say nothing of uplink loss.
const QUALITY_MIN_PACKETS: u64 = 10;

/// What one look at a connection's quality found.
#[derive(Default)]
struct Sampled {
    /// The sample taken, if one was due.
    sample: Option<quality::Sample>,
    /// The level to announce, if it changed.
    change: Option<quality::Level>,
}

impl QualitySampler {
    /// Samples the connection if a sample is due, and says whether the level changes.
    fn sample(&mut self, now: Duration, estimate: &Estimate, uplink: &Uplink) -> Sampled {
        let counts = uplink.counts();
        let uplink_loss = match self.last {
            Some((at, _)) if now.saturating_sub(at) < quality::SAMPLE_INTERVAL => {
                return Sampled::default();
            }
            Some((_, (judged, lost))) => {
                let judged = counts.0.saturating_sub(judged);
                let lost = counts.1.saturating_sub(lost);
                (judged >= QUALITY_MIN_PACKETS).then(|| lost as f64 / judged as f64)
            }
            // The first interval starts now.
            None => {
                self.last = Some((now, counts));
                return Sampled::default();
            }
        };
        self.last = Some((now, counts));
        let sample = quality::Sample {
            downlink_bps: estimate.get(),
            downlink_loss: estimate.loss(),
            uplink_loss,
            rtt: estimate.rtt(),
            jitter: uplink.jitter(),
            disconnected: self.disconnected,
        };
        Sampled {
            change: self.tracker.observe(&sample, now),
            sample: Some(sample),
        }
    }
}

/// A connected socket's reader task, to be started.
struct Connected {
    session: u64,
    peer: SocketAddr,
    socket: Rc<UdpSocket>,
    stop: Rc<Notify>,
}

/// Addresses per connection that get a connected socket: ICE checks a few
/// candidate pairs; more than this is not a browser.
const CONNECTED_PER_PC: usize = 4;

/// A track someone publishes and the subscribers it is forwarded to.
struct Track {
    publisher: u64,
    participant: String,
    room: String,
    track_id: String,
    /// The publisher's mid of the track.
    mid: String,
    receiver: RTCRtpReceiverId,
    kind: Kind,
    codec: RTCRtpCodec,
    video_codec: VideoCodec,
    codecs: Vec<(u8, CodecKey)>,
    extensions: Vec<(u8, String)>,
    audio_level_id: Option<u8>,
    /// The simulcast layers by index (0 lowest), or the one stream in slot 0.
    layers: [Option<Layer>; MAX_LAYERS],
    /// Whether the track's streams are simulcast layers (named by rid).
    simulcast: bool,
    /// The rids last asked of the publisher (simulcast only).
    announced: Option<Vec<String>>,
    links: Vec<Link>,
}

/// One stream of a track: a simulcast layer, or the track's only stream.
struct Layer {
    /// Known once its first packet arrived.
    ssrc: Option<u32>,
    rid: String,
    meter: RateMeter,
    /// The frame size its last keyframe declared (VP8).
    size: Option<(u16, u16)>,
    keyframes: KeyframeRequests,
    /// Which of its packets arrived, to forward each once.
    arrivals: Arrivals,
    /// Since when no subscriber has needed it (simulcast).
    unneeded_since: Option<Duration>,
    /// When its last packet arrived.
    last_packet: Option<Duration>,
    /// When the publisher was last asked to send it after a pause.
    asked_at: Option<Duration>,
    /// Whether the publisher is asked to send it now.
    asked: bool,
    /// Not offered to subscribers before this: it stalled.
    shunned_until: Option<Duration>,
}

impl Layer {
    fn new(rid: String, ssrc: Option<u32>) -> Self {
        Self {
            ssrc,
            rid,
            meter: RateMeter::new(LAYER_RATE_WINDOW),
            size: None,
            keyframes: KeyframeRequests::new(KEYFRAME_INTERVAL),
            arrivals: Arrivals::default(),
            unneeded_since: None,
            last_packet: None,
            asked_at: None,
            asked: true,
            shunned_until: None,
        }
    }

    /// Whether subscribers may be given this layer now.
    fn usable(&mut self, now: Duration) -> bool {
        if self.stalled(now) {
            self.shunned_until = Some(now + STALL_BACKOFF);
        }
        self.shunned_until.is_none_or(|t| now >= t)
    }

    /// Asked for, yet silent for a while since it last sent or was asked
    /// again: the publisher's browser holds it back. A layer never heard of
    /// is not judged.
    fn stalled(&self, now: Duration) -> bool {
        let heard = self.last_packet.max(self.asked_at);
        self.asked
            && self.ssrc.is_some()
            && heard.is_some_and(|t| now.saturating_sub(t) > STALLED_AFTER)
    }
}

impl Track {
    /// The layer a packet of `ssrc` belongs to. Without simulcast every
    /// packet is the one stream's (a restarted encoder may change its SSRC).
    fn layer_of(&self, ssrc: u32) -> Option<usize> {
        if !self.simulcast {
            return Some(0);
        }
        self.layers
            .iter()
            .position(|l| l.as_ref().is_some_and(|l| l.ssrc == Some(ssrc)))
    }

    /// The layers flowing, as the allocator sees them: measured bitrates and
    /// sizes where known, the nominal ones of their index otherwise. A layer
    /// that stalled is left out, so its subscribers move to one that flows;
    /// unless all did, as a guess beats a black tile.
    ///
    /// A paused layer is offered only when `wake_paused` (the subscriber said
    /// how large it shows the video) and no layer of the track stalled.
    /// Resuming a layer makes the publisher's browser reconfigure its encoder,
    /// which on a busy machine stills every layer for seconds: not worth it
    /// for a tile whose size is not known yet (it may well be small), nor for
    /// a publisher already short of uplink or CPU.
    fn layer_infos(&self, now: Duration, wake_paused: bool) -> [Option<LayerInfo>; MAX_LAYERS] {
        let shunned = |l: &Layer| self.simulcast && l.shunned_until.is_some_and(|t| now < t);
        let known = || self.layers.iter().flatten().filter(|l| l.ssrc.is_some());
        let all_shunned = known().all(shunned);
        let wake_paused = wake_paused && !known().any(shunned);
        let paused = |l: &Layer| self.simulcast && !l.asked;
        // Paused layers all the same when nothing else would be left.
        let wake_paused = wake_paused || known().filter(|l| all_shunned || !shunned(l)).all(paused);
        std::array::from_fn(|i| {
            let layer = self.layers[i].as_ref().filter(|l| {
                l.ssrc.is_some() && (all_shunned || !shunned(l)) && (wake_paused || !paused(l))
            })?;
            // A video without simulcast is all or nothing: until measured,
            // it is taken to be as large as a camera and as cheap as the
            // lowest layer, so a guess never turns it off.
            let nominal = if self.simulcast {
                NOMINAL_LAYERS[i]
            } else {
                LayerInfo {
                    bitrate: NOMINAL_LAYERS[0].bitrate,
                    ..NOMINAL_LAYERS[MAX_LAYERS - 1]
                }
            };
            let (width, height) = layer
                .size
                .map_or((nominal.width, nominal.height), |(w, h)| {
                    (u32::from(w), u32::from(h))
                });
            Some(LayerInfo {
                width,
                height,
                // Measured, but never above twice the nominal rate: a burst
                // of keyframes (each asked-for switch brings one) must not
                // price a layer out of every subscriber's budget.
                bitrate: layer
                    .meter
                    .rate()
                    .filter(|r| *r > 0)
                    .map_or(nominal.bitrate, |r| r.min(2 * nominal.bitrate)),
            })
        })
    }
}

/// One subscriber of a track.
struct Link {
    subscriber: u64,
    sender: RTCRtpSenderId,
    rewriter: Rewriter,
    /// Set once the negotiation that added the track is complete.
    live: bool,
    /// Which layer of a video this subscriber gets.
    switch: LayerSwitch,
    /// A video packet was lost on the way to this subscriber: ask for a keyframe.
    needs_keyframe: bool,
}

async fn run(mut commands: mpsc::UnboundedReceiver<Command>, shard: Shard) {
    let Shard {
        index,
        binding,
        counters,
        router,
        peers,
        mut handovers,
        shared,
        tcp,
    } = shard;
    let mut shared_bound = None;
    let shared = match shared.map(|s| (s.local_addr(), UdpSocket::from_std(s))) {
        Some((Ok(local), Ok(socket))) => {
            shared_bound = Some(local);
            let advertised = SocketAddr::new(binding.public_ip.unwrap_or(local.ip()), local.port());
            Some((Rc::new(socket), advertised))
        }
        Some((Err(e), _) | (_, Err(e))) => {
            // Joins on this thread then fail to connect; the others still serve.
            tracing::error!(thread = index, "media socket unusable: {e}");
            None
        }
        None => None,
    };
    let engine = Rc::new(RefCell::new(Engine {
        shard: index,
        binding,
        next_port: 0,
        counters,
        router,
        peers,
        shared: shared.clone(),
        shared_bound,
        new_connected: Vec::new(),
        local_addrs: HashMap::new(),
        wire: Wire::default(),
        tcp_enabled: false,
        #[cfg(feature = "test-client")]
        faulty: std::collections::HashSet::new(),
        pcs: HashMap::default(),
        tracks: HashMap::default(),
        next_track: 1,
        rooms: HashMap::new(),
        touched: Vec::new(),
        forwarded: 0,
        forwarded_bytes: 0,
        dropped: 0,
        keyframe_requests: 0,
        layer_switches: 0,
        duplicates: 0,
        epoch: Instant::now(),
        certificate: None,
    }));
    // Made now rather than at the first join, which then does not wait for it.
    if let Err(e) = engine.borrow_mut().certificate() {
        tracing::warn!("no DTLS certificate yet: {e}");
    }
    // One set of receive buffers for every socket of the thread: its tasks
    // never hold them across an await.
    let inbox = Rc::new(RefCell::new(Inbox::default()));
    if let Some((socket, _)) = shared {
        tokio::task::spawn_local(shared_reader(engine.clone(), inbox.clone(), socket, None));
        match tcp.map(TcpListener::from_std) {
            Some(Ok(listener)) => {
                engine.borrow_mut().tcp_enabled = true;
                tokio::task::spawn_local(tcp_acceptor(engine.clone(), listener));
            }
            Some(Err(e)) => tracing::warn!(thread = index, "no ICE-TCP listener: {e}"),
            None => {}
        }
    }
    loop {
        tokio::select! {
            command = commands.recv() => {
                let Some(command) = command else {
                    break;
                };
                let session = command.session();
                let mut spawn = None;
                guarded(&engine, session, |e| spawn = e.command(command));
                engine.borrow_mut().settle();
                if let Some((session, socket, wake)) = spawn {
                    tokio::task::spawn_local(connection(
                        engine.clone(),
                        inbox.clone(),
                        session,
                        socket,
                        wake,
                    ));
                }
            }
            Some(first) = handovers.recv() => {
                let mut next = Some(first);
                let mut n = 0;
                while let Some(handover) = next {
                    match handover {
                        Handover::Datagram { from, data, at } => demux(&engine, &data, from, at),
                        Handover::Tcp { stream, peer, session, first, rest } => {
                            match TcpStream::from_std(stream) {
                                Ok(stream) => {
                                    tokio::task::spawn_local(tcp_stream(
                                        engine.clone(), stream, peer, session, first, rest,
                                    ));
                                }
                                Err(e) => tracing::debug!("ICE-TCP stream not adopted: {e}"),
                            }
                        }
                    }
                    n += 1;
                    next = if n < RECV_BATCH { handovers.try_recv().ok() } else { None };
                }
                engine.borrow_mut().settle();
                start_connected(&engine, &inbox);
            }
        }
    }
    // Every handle is gone: close what is left so peers hear of it.
    let mut e = engine.borrow_mut();
    let sessions: Vec<u64> = e.pcs.keys().copied().collect();
    for session in sessions {
        e.close(session);
    }
    e.settle();
}

/// Runs one connection's work; a panic in it ends that connection's Room only.
///
/// Never called with the engine already borrowed (no caller holds a borrow
/// across it), so the borrow here cannot fail; the unwinding drops it.
fn guarded(engine: &RefCell<Engine>, session: u64, work: impl FnOnce(&mut Engine)) {
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| work(&mut engine.borrow_mut())));
    if let Err(payload) = outcome {
        let what = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic".to_owned());
        engine.borrow_mut().room_panicked(session, &what);
    }
}

/// Routes one datagram of the shared port, which arrived `at`, to its
/// connection, here or on its thread.
fn demux(engine: &RefCell<Engine>, data: &[u8], from: SocketAddr, at: Instant) {
    let (route, here) = {
        let mut e = engine.borrow_mut();
        let Some(route) = e.route(data, from) else {
            return;
        };
        (route, e.shard)
    };
    if route.shard == here {
        guarded(engine, route.session, |e| {
            e.datagram(route.session, data, from, TransportProtocol::UDP, at)
        });
        engine.borrow_mut().send_now();
    } else {
        let handover = Handover::Datagram {
            from,
            data: BytesMut::from(data),
            at,
        };
        engine.borrow_mut().hand_over(route.shard, handover);
    }
}

/// Starts the reader tasks of connected sockets made since the last call.
fn start_connected(engine: &Rc<RefCell<Engine>>, inbox: &Rc<RefCell<Inbox>>) {
    let made = std::mem::take(&mut engine.borrow_mut().new_connected);
    for c in made {
        tokio::task::spawn_local(shared_reader(
            engine.clone(),
            inbox.clone(),
            c.socket,
            Some((c.session, c.peer, c.stop)),
        ));
    }
}

/// Reads this thread's socket on the shared port, or (with `connected`) a
/// socket connected to one client's address, until its connection is gone.
/// Both go through [`demux`]: a connected socket's datagrams are for this
/// thread's connection, unless the client's address was since taken over by
/// another connection, which the STUN check that took it over tells.
async fn shared_reader(
    engine: Rc<RefCell<Engine>>,
    inbox: Rc<RefCell<Inbox>>,
    socket: Rc<UdpSocket>,
    connected: Option<(u64, SocketAddr, Rc<Notify>)>,
) {
    loop {
        let ready = match &connected {
            None => socket.readable().await,
            Some((session, peer, stop)) => {
                let live = engine
                    .borrow()
                    .pcs
                    .get(session)
                    .is_some_and(|pc| pc.connected.contains_key(peer));
                if !live {
                    return;
                }
                tokio::select! {
                    ready = socket.readable() => ready,
                    () = stop.notified() => continue,
                }
            }
        };
        if let Err(e) = ready {
            tracing::error!("media socket: {e}");
            return;
        }
        for _ in 0..RECV_ROUNDS {
            let mut received = inbox.borrow_mut();
            let n = match received.recv(&socket) {
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                // An ICMP error for an earlier send to some peer: read on.
                Err(e) if e.kind() == ErrorKind::ConnectionRefused => continue,
                Err(e) => {
                    tracing::debug!("shared media socket: {e}");
                    break;
                }
            };
            for i in 0..n {
                if let Some((data, from, at)) = received.datagram(i) {
                    demux(&engine, data, from, at);
                }
            }
            drop(received);
            engine.borrow_mut().settle();
            start_connected(&engine, &inbox);
        }
    }
}

/// Accepts ICE-TCP connections on this thread's listener.
async fn tcp_acceptor(engine: Rc<RefCell<Engine>>, listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                tokio::task::spawn_local(tcp_first(engine.clone(), stream, peer));
            }
            Err(e) => {
                // Out of descriptors and the like: back off rather than spin.
                tracing::debug!("ICE-TCP accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Reads a new ICE-TCP stream's first frame and takes the stream to the thread
/// of the connection it names; anything else closes it.
async fn tcp_first(engine: Rc<RefCell<Engine>>, stream: TcpStream, peer: SocketAddr) {
    let mut deframer = Deframer::default();
    let mut buf = vec![0u8; tcp::MAX_FRAME];
    let first = tokio::time::timeout(tcp::FIRST_FRAME_TIMEOUT, async {
        loop {
            match deframer.next_frame() {
                Ok(Some(frame)) => return Some(frame),
                Ok(None) => {}
                Err(()) => return None,
            }
            stream.readable().await.ok()?;
            match stream.try_read(&mut buf) {
                Ok(0) => return None,
                Ok(n) => deframer.extend(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(_) => return None,
            }
        }
    })
    .await;
    let Ok(Some(first)) = first else {
        return;
    };
    let (route, here) = {
        let e = engine.borrow();
        let route = core::stun_binding_ufrag(&first).and_then(|u| e.router.by_ufrag(u));
        (route, e.shard)
    };
    let Some(route) = route else {
        return;
    };
    if route.shard == here {
        tcp_stream(engine, stream, peer, route.session, first, deframer).await;
        return;
    }
    match stream.into_std() {
        Ok(stream) => engine.borrow_mut().hand_over(
            route.shard,
            Handover::Tcp {
                stream,
                peer,
                session: route.session,
                first,
                rest: deframer,
            },
        ),
        Err(e) => tracing::debug!("ICE-TCP stream not handed over: {e}"),
    }
}

/// One ICE-TCP stream of a connection of this thread: frames in, backlog out.
async fn tcp_stream(
    engine: Rc<RefCell<Engine>>,
    stream: TcpStream,
    peer: SocketAddr,
    session: u64,
    first: BytesMut,
    mut deframer: Deframer,
) {
    let stream = Rc::new(stream);
    let kick = Rc::new(Notify::new());
    {
        let mut e = engine.borrow_mut();
        if !e.pcs.contains_key(&session) {
            return;
        }
        let conn = TcpConn {
            stream: stream.clone(),
            session,
            backlog: BytesMut::new(),
            kick: kick.clone(),
        };
        // A second stream from the same address replaces the first.
        if let Some(old) = e.wire.tcp.insert(peer, conn) {
            old.kick.notify_one();
        }
    }
    let mut frame = Some(first);
    let mut buf = vec![0u8; tcp::MAX_FRAME];
    loop {
        while let Some(data) = frame.take() {
            guarded(&engine, session, |e| {
                e.datagram(session, &data, peer, TransportProtocol::TCP, Instant::now())
            });
            engine.borrow_mut().send_now();
            match deframer.next_frame() {
                Ok(next) => frame = next,
                Err(()) => {
                    engine.borrow_mut().drop_tcp(peer, &stream);
                    return;
                }
            }
        }
        engine.borrow_mut().settle();
        let wants_write = match engine.borrow().wire.tcp.get(&peer) {
            Some(c) if Rc::ptr_eq(&c.stream, &stream) => !c.backlog.is_empty(),
            // Closed with its connection, or replaced.
            _ => return,
        };
        tokio::select! {
            ready = stream.readable() => {
                if ready.is_err() {
                    break;
                }
                match stream.try_read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        deframer.extend(&buf[..n]);
                        match deframer.next_frame() {
                            Ok(next) => frame = next,
                            Err(()) => break,
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                    Err(_) => break,
                }
            }
            ready = stream.writable(), if wants_write => {
                if ready.is_err() {
                    break;
                }
                engine.borrow_mut().tcp_write(peer);
            }
            () = kick.notified() => {}
        }
    }
    engine.borrow_mut().drop_tcp(peer, &stream);
}

/// One connection's task: its protocol timers, and its own socket in port-range mode.
async fn connection(
    engine: Rc<RefCell<Engine>>,
    inbox: Rc<RefCell<Inbox>>,
    session: u64,
    socket: Option<Rc<UdpSocket>>,
    wake: Rc<Notify>,
) {
    let far = tokio::time::Instant::now() + Duration::from_secs(86_400);
    let sleep = tokio::time::sleep_until(far);
    tokio::pin!(sleep);
    let mut armed: Option<Instant> = None;
    // When the timers last ran: a deadline already past is handled at most once
    // per millisecond, so a timer that does not advance cannot spin the thread
    // (protocol timers are millisecond-grained anyway).
    let mut last_run: Option<Instant> = None;
    loop {
        let deadline = match engine.borrow_mut().deadline(session) {
            Some(d) => d,
            None => return,
        };
        let deadline = match (deadline, last_run) {
            (Some(d), Some(last)) => Some(d.max(last + MIN_TIMER_GAP)),
            (d, _) => d,
        };
        if deadline != armed {
            armed = deadline;
            let at = deadline.map_or(far, tokio::time::Instant::from_std);
            sleep.as_mut().reset(at);
        }
        let readable = async {
            match &socket {
                Some(s) => s.readable().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            ready = readable => {
                let Some(socket) = &socket else {
                    continue;
                };
                if ready.is_err() {
                    engine.borrow_mut().fail(session);
                    return;
                }
                for _ in 0..RECV_ROUNDS {
                    let mut inbox = inbox.borrow_mut();
                    let n = match inbox.recv(socket) {
                        Ok(n) => n,
                        Err(err) if err.kind() == ErrorKind::WouldBlock => break,
                        Err(err) if err.kind() == ErrorKind::ConnectionRefused => continue,
                        Err(err) => {
                            tracing::debug!(session, "media socket: {err}");
                            break;
                        }
                    };
                    for i in 0..n {
                        if let Some((data, from, at)) = inbox.datagram(i) {
                            guarded(&engine, session, |e| {
                                e.datagram(session, data, from, TransportProtocol::UDP, at)
                            });
                            engine.borrow_mut().send_now();
                        }
                    }
                }
                engine.borrow_mut().settle();
            }
            () = &mut sleep => {
                let now = Instant::now();
                guarded(&engine, session, |e| e.timeout(session, now));
                engine.borrow_mut().settle();
                last_run = Some(now);
                armed = None;
            }
            () = wake.notified() => {}
        }
    }
}

impl Engine {
    /// Runs one command; returns a connection task to spawn.
    fn command(&mut self, command: Command) -> Option<(u64, Option<Rc<UdpSocket>>, Rc<Notify>)> {
        match command {
            Command::Open {
                session,
                room,
                participant,
                events,
                reply,
            } => match self.open(session, room, participant, events) {
                Ok((socket, wake)) => {
                    let _ = reply.send(Ok(()));
                    return Some((session, socket, wake));
                }
                Err(e) => {
                    let _ = reply.send(Err(e));
                }
            },
            Command::Offer {
                session,
                sdp,
                rollback,
                reply,
            } => {
                let _ = reply.send(self.on_offer(session, sdp, rollback));
            }
            Command::CreateOffer { session, reply } => {
                let _ = reply.send(self.create_offer(session));
            }
            Command::Answer {
                session,
                sdp,
                start,
                reply,
            } => {
                let result = self.on_answer(session, sdp);
                if result.is_ok() {
                    self.start(session, &start);
                }
                let _ = reply.send(result);
            }
            Command::Candidate { session, init } => {
                if let Some(pc) = self.pcs.get_mut(&session)
                    && let Err(e) = pc.core.add_remote_candidate(init)
                {
                    tracing::debug!(session, "candidate ignored: {e}");
                }
                self.pump(session);
            }
            Command::Subscribe {
                session,
                track,
                reply,
            } => {
                let _ = reply.send(self.subscribe(session, track));
            }
            Command::Unsubscribe { session, track } => self.unsubscribe(session, track),
            Command::Tiles { session, tiles } => {
                if let Some(pc) = self.pcs.get_mut(&session) {
                    for (of, tile, screen) in tiles {
                        let key = match of {
                            TileOf::Track(key) => Some(key),
                            TileOf::Mid(mid) => pc.sent.values().find_map(|(key, sender)| {
                                let theirs = pc.core.rtp_transceiver((*sender).into())?;
                                (theirs.mid().as_deref() == Some(mid.as_str())).then_some(*key)
                            }),
                        };
                        if let Some(key) = key {
                            pc.tiles.insert(key, (tile, screen));
                        }
                    }
                    let room = pc.room.clone();
                    self.allocate_room(&room);
                }
            }
            Command::Close { session } => self.close(session),
            #[cfg(feature = "test-client")]
            Command::Fault { room } => {
                self.faulty.insert(room);
            }
        }
        None
    }

    fn open(
        &mut self,
        session: u64,
        room: String,
        participant: String,
        events: mpsc::UnboundedSender<PcEvent>,
    ) -> Result<(Option<Rc<UdpSocket>>, Rc<Notify>)> {
        // On the shared port the connection is found by its ufrag, so it is
        // chosen here rather than by the ICE agent. RFC 8445 asks for at least
        // 24 bits of randomness in the ufrag and 128 in the password.
        let ufrag = random_ice_string(16);
        let password = random_ice_string(32);
        let (socket, advertised, own) = if self.binding.shared() {
            let (socket, advertised) = self
                .shared
                .clone()
                .ok_or_else(|| Error::WebRtc("this media thread has no socket".to_owned()))?;
            (socket, advertised, false)
        } else {
            let std_socket = self.bind()?;
            let local = std_socket.local_addr().map_err(io_error)?;
            let socket = Rc::new(UdpSocket::from_std(std_socket).map_err(io_error)?);
            let advertised =
                SocketAddr::new(self.binding.public_ip.unwrap_or(local.ip()), local.port());
            (socket, advertised, true)
        };
        let mut media_engine = crate::engine::media_engine()?;
        let (registry, estimate, uplink) = crate::engine::sfu_interceptors(&mut media_engine)?;
        let certificate = self.certificate()?;
        let core = RTCPeerConnectionBuilder::new()
            .with_configuration(
                RTCConfigurationBuilder::new()
                    .with_certificates(vec![certificate])
                    .build(),
            )
            .with_media_engine(media_engine)
            .with_interceptor_registry(registry)
            .with_setting_engine(
                SettingEngineBuilder::new()
                    .with_ice_credentials(ufrag.clone(), password)
                    .build(),
            )
            .build(Instant::now())
            .map_err(rtc_error)?;
        let wake = Rc::new(Notify::new());
        self.rooms
            .entry(room.clone())
            .or_insert_with(|| Speaking {
                detector: SpeakerDetector::new(),
                last_evaluated: Duration::ZERO,
                last_allocated: Duration::ZERO,
                members: 0,
            })
            .members += 1;
        if !own {
            self.router.add_ufrag(
                &ufrag,
                Route {
                    shard: self.shard,
                    session,
                },
            );
        }
        if let Ok(mut estimates) = self.counters.estimates.lock() {
            estimates.insert(
                session,
                (room.clone(), participant.clone(), estimate.clone()),
            );
        }
        self.pcs.insert(
            session,
            Pc {
                core,
                socket: socket.clone(),
                ufrag,
                advertised,
                candidate_added: false,
                media_ready: false,
                room,
                participant,
                events,
                wake: wake.clone(),
                armed: None,
                published: HashMap::new(),
                sent: HashMap::new(),
                tiles: HashMap::new(),
                estimate,
                uplink,
                quality: QualitySampler::default(),
                failed: false,
                connected: HashMap::new(),
            },
        );
        Ok((own.then_some(socket), wake))
    }

    /// The DTLS certificate for a new connection, made afresh once a day.
    fn certificate(&mut self) -> Result<RTCCertificate> {
        if let Some((certificate, made)) = &self.certificate
            && made.elapsed() < CERTIFICATE_LIFETIME
        {
            return Ok(certificate.clone());
        }
        let provider = rtc::crypto::default_provider()
            .map_err(|e| Error::WebRtc(format!("crypto provider: {e}")))?;
        let params = CertificateParams::new(vec!["convene".to_owned()])
            .map_err(|e| Error::WebRtc(format!("certificate parameters: {e}")))?;
        let certificate = RTCCertificate::generate(
            provider.crypto(),
            rtc::crypto::SignatureScheme::EcdsaP256Sha256,
            params,
        )
        .map_err(rtc_error)?;
        self.certificate = Some((certificate.clone(), Instant::now()));
        Ok(certificate)
    }

    /// Binds one UDP socket in the configured port range.
    fn bind(&mut self) -> Result<std::net::UdpSocket> {
        let b = &self.binding;
        let (min, max) = (b.port_min, b.port_max.max(b.port_min));
        let span = usize::from(max - min) + 1;
        let attempts = if min == 0 { 1 } else { span.min(64) };
        let mut last = Error::NoPort;
        for _ in 0..attempts {
            let port = if min == 0 {
                0
            } else {
                let n = self.next_port % span;
                self.next_port = self.next_port.wrapping_add(1);
                min + n as u16
            };
            match udp::bind_one(SocketAddr::new(b.bind_ip, port)) {
                Ok(socket) => return Ok(socket),
                Err(e) => {
                    tracing::debug!(port, "media port not bound: {e}");
                    last = io_error(e);
                }
            }
        }
        if min != 0 {
            return Err(Error::NoPort);
        }
        Err(last)
    }

    fn on_offer(&mut self, session: u64, sdp: String, rollback: bool) -> Result<String> {
        let sdp = self.keep_layer_bindings(session, &sdp);
        let pc = self.pcs.get_mut(&session).ok_or_else(closed)?;
        let now = Instant::now();
        let desc = RTCSessionDescription::offer(sdp)
            .map_err(|_| Error::Protocol("invalid offer".to_owned()))?;
        if rollback {
            let rollback = RTCSessionDescription::rollback(None).map_err(rtc_error)?;
            pc.core
                .set_local_description(now, rollback)
                .map_err(rtc_error)?;
        }
        pc.core
            .set_remote_description(now, desc)
            .map_err(|e| Error::Protocol(format!("offer refused: {e}")))?;
        let answer = pc
            .core
            .create_answer(None)
            .map_err(|e| Error::Protocol(format!("cannot answer: {e}")))?;
        let mut sdp = answer.sdp.clone();
        pc.core
            .set_local_description(now, answer)
            .map_err(rtc_error)?;
        if !pc.candidate_added {
            // Also written into this first answer (see `core::with_candidates`).
            let mut in_answer = Vec::with_capacity(2);
            pc.candidate_added = true;
            let candidate = CandidateHostConfig {
                base_config: CandidateConfig {
                    network: "udp".to_owned(),
                    address: pc.advertised.ip().to_string(),
                    port: pc.advertised.port(),
                    component: 1,
                    ..Default::default()
                },
                ..Default::default()
            }
            .new_candidate_host()
            .map_err(|e| Error::WebRtc(e.to_string()))?;
            let init = RTCIceCandidate::from(&candidate)
                .to_json()
                .map_err(rtc_error)?;
            in_answer.push(init.candidate.clone());
            pc.core.add_local_candidate(init).map_err(rtc_error)?;
            if self.tcp_enabled {
                // Ranked below UDP by ICE's type preferences: only used when UDP fails.
                let candidate = CandidateHostConfig {
                    base_config: CandidateConfig {
                        network: "tcp".to_owned(),
                        address: pc.advertised.ip().to_string(),
                        port: pc.advertised.port(),
                        component: 1,
                        ..Default::default()
                    },
                    tcp_type: TcpType::Passive,
                }
                .new_candidate_host()
                .map_err(|e| Error::WebRtc(e.to_string()))?;
                let init = RTCIceCandidate::from(&candidate)
                    .to_json()
                    .map_err(rtc_error)?;
                in_answer.push(init.candidate.clone());
                pc.core.add_local_candidate(init).map_err(rtc_error)?;
            }
            pc.core
                .add_local_candidate(RTCIceCandidateInit::default())
                .map_err(rtc_error)?;
            sdp = core::with_candidates(&sdp, &in_answer);
        }
        self.pump(session);
        Ok(sdp)
    }

    fn create_offer(&mut self, session: u64) -> Result<String> {
        let pc = self.pcs.get_mut(&session).ok_or_else(closed)?;
        let offer = pc.core.create_offer(None).map_err(rtc_error)?;
        let sdp = offer.sdp.clone();
        pc.core
            .set_local_description(Instant::now(), offer)
            .map_err(rtc_error)?;
        self.pump(session);
        Ok(sdp)
    }

    fn on_answer(&mut self, session: u64, sdp: String) -> Result<()> {
        let sdp = self.keep_layer_bindings(session, &sdp);
        let pc = self.pcs.get_mut(&session).ok_or_else(closed)?;
        let desc = RTCSessionDescription::answer(sdp)
            .map_err(|_| Error::Protocol("invalid answer".to_owned()))?;
        pc.core
            .set_remote_description(Instant::now(), desc)
            .map_err(|e| Error::Protocol(format!("answer refused: {e}")))?;
        self.pump(session);
        Ok(())
    }

    /// `session`'s description as its connection applies it: the layers of its
    /// simulcast tracks already flowing stay bound to their SSRCs
    /// ([`core::keep_flowing_receivers`]).
    fn keep_layer_bindings(&self, session: u64, sdp: &str) -> String {
        core::keep_flowing_receivers(sdp, &self.simulcast_mids(session))
    }

    /// The mids of the m-sections on which `session` publishes simulcast.
    fn simulcast_mids(&self, session: u64) -> Vec<&str> {
        self.tracks
            .values()
            .filter(|t| t.publisher == session && t.simulcast)
            .map(|t| t.mid.as_str())
            .collect()
    }

    /// Starts forwarding `tracks` to `session`: their negotiation is complete,
    /// so the subscriber leg's payload types, extensions and mid are final.
    fn start(&mut self, session: u64, tracks: &[TrackKey]) {
        let Some(pc) = self.pcs.get_mut(&session) else {
            return;
        };
        for key in tracks {
            let Some(track) = self.tracks.get_mut(key) else {
                continue;
            };
            let Some(link) = track.links.iter_mut().find(|l| l.subscriber == session) else {
                continue;
            };
            let mid = pc
                .core
                .rtp_transceiver(link.sender.into())
                .and_then(|t| t.mid().clone());
            let Some(mut sender) = pc.core.rtp_sender(link.sender) else {
                continue;
            };
            let params = sender.get_parameters();
            let theirs: Vec<(u8, CodecKey)> = params
                .rtp_parameters
                .codecs
                .iter()
                .map(|c| {
                    (
                        c.payload_type,
                        CodecKey::new(&c.rtp_codec.mime_type, &c.rtp_codec.sdp_fmtp_line),
                    )
                })
                .collect();
            let their_ext: Vec<(u8, String)> = params
                .rtp_parameters
                .header_extensions
                .iter()
                .filter_map(|e| u8::try_from(e.id).ok().map(|id| (id, e.uri.clone())))
                .collect();
            link.rewriter.set_mapping(
                core::payload_type_map(&track.codecs, &theirs),
                ExtensionPlan::new(&track.extensions, &their_ext, mid.as_deref()),
            );
            link.live = true;
        }
        // Choosing the new videos' layers asks their publishers for the
        // keyframes the subscriber's decoder needs to start.
        let room = pc.room.clone();
        self.allocate_room(&room);
    }

    fn subscribe(&mut self, session: u64, key: TrackKey) -> Result<()> {
        let track = self
            .tracks
            .get_mut(&key)
            .ok_or_else(|| Error::WebRtc("track has ended".to_owned()))?;
        let pc = self.pcs.get_mut(&session).ok_or_else(closed)?;
        if track.links.iter().any(|l| l.subscriber == session) {
            return Ok(());
        }
        let ssrc: u32 = rand::random();
        let rtx = (track.kind == Kind::Video).then(|| RTCRtpRtxParameters {
            ssrc: rand::random(),
        });
        let kind = match track.kind {
            Kind::Audio => RtpCodecKind::Audio,
            Kind::Video => RtpCodecKind::Video,
        };
        let publisher = track.participant.clone();
        let local = MediaStreamTrack::new(
            publisher.clone(),
            track.track_id.clone(),
            track.track_id.clone(),
            kind,
            vec![RTCRtpEncodingParameters {
                rtp_coding_parameters: RTCRtpCodingParameters {
                    ssrc: Some(ssrc),
                    rtx,
                    ..Default::default()
                },
                codec: track.codec.clone(),
                ..Default::default()
            }],
        );
        let transceiver = pc
            .core
            .add_transceiver_from_track(
                local,
                Some(RTCRtpTransceiverInit {
                    direction: RTCRtpTransceiverDirection::Sendonly,
                    streams: vec![publisher],
                    send_encodings: vec![],
                }),
            )
            .map_err(rtc_error)?;
        let sender: RTCRtpSenderId = transceiver.into();
        pc.sent.insert(track.track_id.clone(), (key, sender));
        track.links.push(Link {
            subscriber: session,
            sender,
            rewriter: Rewriter::new(ssrc),
            live: false,
            switch: LayerSwitch::new(),
            needs_keyframe: false,
        });
        Ok(())
    }

    fn unsubscribe(&mut self, session: u64, key: TrackKey) {
        if let Some(track) = self.tracks.get_mut(&key) {
            track.links.retain(|l| l.subscriber != session);
        }
        let Some(pc) = self.pcs.get_mut(&session) else {
            return;
        };
        let senders: Vec<RTCRtpSenderId> = pc
            .sent
            .values()
            .filter(|(k, _)| *k == key)
            .map(|(_, s)| *s)
            .collect();
        pc.sent.retain(|_, (k, _)| *k != key);
        for sender in senders {
            if let Err(e) = pc.core.remove_track(sender) {
                tracing::debug!(session, "remove_track: {e}");
            }
        }
        self.pump(session);
    }

    fn close(&mut self, session: u64) {
        let Some(mut pc) = self.pcs.remove(&session) else {
            return;
        };
        let _ = pc.core.close();
        while let Some(out) = pc.core.poll_write() {
            self.wire.send(&pc.socket, out, None);
        }
        pc.wake.notify_one();
        for stop in pc.connected.values() {
            stop.notify_one();
        }
        self.forget_routes(session, &pc.ufrag);
        for key in pc.published.values() {
            self.tracks.remove(key);
        }
        for track in self.tracks.values_mut() {
            track.links.retain(|l| l.subscriber != session);
        }
        if let Some(room) = self.rooms.get_mut(&pc.room) {
            room.detector.remove(&session);
            room.members = room.members.saturating_sub(1);
            if room.members == 0 {
                self.rooms.remove(&pc.room);
            }
        }
        // Layers only this subscriber took may now pause.
        self.allocate_room(&pc.room);
    }

    /// The connection a datagram on the shared port is for (learning the
    /// sender's address from a connectivity check for one of ours).
    fn route(&mut self, data: &[u8], from: SocketAddr) -> Option<Route> {
        if let Some(ufrag) = core::stun_binding_ufrag(data) {
            let route = self.router.by_ufrag(ufrag)?;
            if route.shard == self.shard
                && self.local_addrs.insert(from, route.session) != Some(route.session)
            {
                self.router.learn(from, route);
                self.connect_peer(route.session, from);
            }
            return Some(route);
        }
        if let Some(&session) = self.local_addrs.get(&from) {
            return Some(Route {
                shard: self.shard,
                session,
            });
        }
        self.router.by_addr(&from)
    }

    /// Gives a client address of `session` a socket of its own on the shared
    /// port, connected to it: Linux delivers a datagram to the connected
    /// socket that matches its sender before any other socket of the port, so
    /// from then on the client's datagrams arrive on this thread, with no
    /// hand-over, whichever socket the port's hash would have picked. Sends
    /// still leave from the thread's shared socket, in batches. Failing to
    /// make one (descriptors exhausted, another system) only keeps the
    /// hand-over path.
    fn connect_peer(&mut self, session: u64, peer: SocketAddr) {
        let Some(bound) = self.shared_bound else {
            return;
        };
        let Some(pc) = self.pcs.get_mut(&session) else {
            return;
        };
        if pc.connected.contains_key(&peer) || pc.connected.len() >= CONNECTED_PER_PC {
            return;
        }
        let socket = match udp::bind_connected(bound, peer).and_then(UdpSocket::from_std) {
            Ok(socket) => Rc::new(socket),
            Err(e) => {
                tracing::debug!(%peer, "no connected socket: {e}");
                return;
            }
        };
        let stop = Rc::new(Notify::new());
        pc.connected.insert(peer, stop.clone());
        self.new_connected.push(Connected {
            session,
            peer,
            socket,
            stop,
        });
    }

    /// Passes what arrived here to the thread that owns its connection.
    fn hand_over(&mut self, shard: usize, handover: Handover) {
        if self
            .peers
            .get(shard)
            .is_none_or(|peer| peer.try_send(handover).is_err())
        {
            self.dropped += 1;
        }
    }

    fn forget_routes(&mut self, session: u64, ufrag: &str) {
        if let Ok(mut estimates) = self.counters.estimates.lock() {
            estimates.remove(&session);
        }
        let route = Route {
            shard: self.shard,
            session,
        };
        self.router.forget(route, ufrag);
        self.local_addrs.retain(|_, s| *s != session);
        self.wire.tcp.retain(|_, conn| {
            let keep = conn.session != session;
            if !keep {
                // Its task sees the stream gone and ends, closing it.
                conn.kick.notify_one();
            }
            keep
        });
    }

    /// Writes what an ICE-TCP stream's kernel buffer takes now.
    fn tcp_write(&mut self, peer: SocketAddr) {
        let Some(conn) = self.wire.tcp.get_mut(&peer) else {
            return;
        };
        if let Err(e) = conn.write_some() {
            tracing::debug!(%peer, "ICE-TCP write: {e}");
            if let Some(conn) = self.wire.tcp.remove(&peer) {
                conn.kick.notify_one();
            }
        }
    }

    /// The stream ended: forget it unless it was already replaced.
    fn drop_tcp(&mut self, peer: SocketAddr, stream: &Rc<TcpStream>) {
        if self
            .wire
            .tcp
            .get(&peer)
            .is_some_and(|c| Rc::ptr_eq(&c.stream, stream))
        {
            self.wire.tcp.remove(&peer);
        }
    }

    /// A panic unwound out of work for `session`: its whole Room's media ends
    /// here, so no half-updated state of it is ever used again, and its
    /// sessions end with a reason that makes clients rejoin.
    fn room_panicked(&mut self, session: u64, what: &str) {
        let Some(room) = self.pcs.get(&session).map(|pc| pc.room.clone()) else {
            tracing::error!(session, "media panicked for a closed connection: {what}");
            return;
        };
        tracing::error!(room = %room, "room media panicked; its participants reconnect: {what}");
        self.counters.room_failures.fetch_add(1, Ordering::Relaxed);
        let sessions: Vec<u64> = self
            .pcs
            .iter()
            .filter(|(_, pc)| pc.room == room)
            .map(|(s, _)| *s)
            .collect();
        for session in sessions {
            let Some(pc) = self.pcs.remove(&session) else {
                continue;
            };
            let _ = pc.events.send(PcEvent::RoomFailed);
            pc.wake.notify_one();
            for stop in pc.connected.values() {
                stop.notify_one();
            }
            self.forget_routes(session, &pc.ufrag);
            self.touched.retain(|s| *s != session);
            // The connection may be in any state: even dropping it must not
            // take the thread down.
            let _ = panic::catch_unwind(AssertUnwindSafe(move || drop(pc)));
        }
        self.tracks.retain(|_, t| t.room != room);
        self.rooms.remove(&room);
        #[cfg(feature = "test-client")]
        self.faulty.remove(&room);
    }

    fn fail(&mut self, session: u64) {
        if let Some(pc) = self.pcs.get_mut(&session)
            && !pc.failed
        {
            pc.failed = true;
            let _ = pc.events.send(PcEvent::Failed);
        }
    }

    /// The connection's next deadline (and records it as armed); `None` once closed.
    fn deadline(&mut self, session: u64) -> Option<Option<Instant>> {
        let pc = self.pcs.get_mut(&session)?;
        let at = pc.core.poll_timeout();
        pc.armed = at;
        Some(at)
    }

    fn timeout(&mut self, session: u64, now: Instant) {
        if let Some(pc) = self.pcs.get_mut(&session) {
            if let Err(e) = pc.core.handle_timeout(now) {
                tracing::debug!(session, "timeout: {e}");
            }
            // The connection's timers (reports, consent) run at least every
            // second or so: quality is sampled beside them, off the packet path.
            let at = now.saturating_duration_since(self.epoch);
            let sampled = pc.quality.sample(at, &pc.estimate, &pc.uplink);
            if let Some(sample) = sampled.sample {
                tracing::trace!(participant = %pc.participant, ?sample, "connection quality sample");
            }
            if let Some(level) = sampled.change {
                tracing::debug!(participant = %pc.participant, level = level.as_str(), "connection quality");
                let _ = pc.events.send(PcEvent::Quality(level));
            }
        }
        self.pump(session);
    }

    fn datagram(
        &mut self,
        session: u64,
        data: &[u8],
        from: SocketAddr,
        protocol: TransportProtocol,
        at: Instant,
    ) {
        let Some(pc) = self.pcs.get_mut(&session) else {
            return;
        };
        #[cfg(feature = "test-client")]
        if self.faulty.contains(&pc.room) {
            panic!("fault injected into the media of room {}", pc.room);
        }
        // The kernel's arrival time: the transport-wide feedback reports it,
        // and the rest of the connection's clock may as well agree.
        let now = at;
        let msg = TaggedBytesMut {
            now,
            transport: TransportContext {
                local_addr: pc.advertised,
                peer_addr: from,
                ecn: None,
                transport_protocol: protocol,
            },
            message: BytesMut::from(data),
        };
        if let Err(e) = pc.core.handle_read(msg) {
            tracing::debug!(session, "datagram refused: {e}");
        }
        self.pump(session);
    }

    /// Sends what the connection wrote, hands its events to the session and
    /// forwards what it read.
    fn pump(&mut self, session: u64) {
        // Events first (a track's opening must be known before its first
        // packet is forwarded); the connection's own writes wait for the
        // flush below, which costs one walk of its pipeline instead of two
        // and sends them in the same batch as before.
        self.events(session);
        loop {
            let Some(pc) = self.pcs.get_mut(&session) else {
                return;
            };
            let Some(TaggedRTCMessage { message, .. }) = pc.core.poll_read() else {
                break;
            };
            match message {
                RTCMessage::RtpPacket(track_id, packet) => {
                    if let Some(key) = pc.published.get(&track_id).copied() {
                        // Sent now, not when the packet arrived: the subscriber's
                        // congestion controller takes this as the departure time,
                        // and the wait for this thread is not on its downlink.
                        self.forward(key, packet, Instant::now());
                    }
                }
                RTCMessage::RtcpPacket(track_id, packets) => {
                    let asks_keyframe = packets.iter().any(|p| {
                        let any = p.as_any();
                        any.is::<PictureLossIndication>() || any.is::<FullIntraRequest>()
                    });
                    if asks_keyframe && let Some((key, _)) = pc.sent.get(&track_id).copied() {
                        // The subscriber's decoder lost its place: a keyframe
                        // of the layer it decodes (or is about to).
                        let layer = self.tracks.get(&key).and_then(|t| {
                            let link = t.links.iter().find(|l| l.subscriber == session)?;
                            link.switch.current().or(link.switch.target())
                        });
                        self.request_keyframe(key, layer.unwrap_or(0));
                    }
                }
                _ => {}
            }
        }
        self.flush(session);
        self.events(session);
        if !self.touched.contains(&session) {
            self.touched.push(session);
        }
    }

    /// Queues the connection's outgoing datagrams for the end of the burst.
    fn flush(&mut self, session: u64) {
        let Some(pc) = self.pcs.get_mut(&session) else {
            return;
        };
        while let Some(out) = pc.core.poll_write() {
            if self.wire.send(&pc.socket, out, None) == Sent::Dropped {
                self.dropped += 1;
            }
        }
    }

    fn events(&mut self, session: u64) {
        loop {
            let Some(pc) = self.pcs.get_mut(&session) else {
                return;
            };
            let Some(event) = pc.core.poll_event() else {
                return;
            };
            match event {
                RTCPeerConnectionEvent::OnIceCandidateEvent(e) => {
                    if let Ok(init) = e.candidate.to_json() {
                        let _ = pc.events.send(PcEvent::Candidate(init));
                    }
                }
                RTCPeerConnectionEvent::OnConnectionStateChangeEvent(
                    RTCPeerConnectionState::Failed,
                ) => self.fail(session),
                RTCPeerConnectionEvent::OnConnectionStateChangeEvent(
                    RTCPeerConnectionState::Connected,
                ) => {
                    pc.quality.disconnected = false;
                    let _ = pc.events.send(PcEvent::Connected);
                    if !pc.media_ready {
                        pc.media_ready = true;
                        // Its videos start now, each on a keyframe asked for here.
                        let room = pc.room.clone();
                        self.allocate_room(&room);
                    }
                }
                RTCPeerConnectionEvent::OnConnectionStateChangeEvent(
                    RTCPeerConnectionState::Disconnected,
                ) => {
                    pc.quality.disconnected = true;
                    let _ = pc.events.send(PcEvent::Disconnected);
                }
                RTCPeerConnectionEvent::OnTrack(RTCTrackEvent::OnOpen(init)) => {
                    self.track_opened(
                        session,
                        init.receiver_id,
                        init.track_id,
                        init.ssrc,
                        init.rid.filter(|r| !r.is_empty()),
                    );
                }
                RTCPeerConnectionEvent::OnTrack(RTCTrackEvent::OnClose(track_id)) => {
                    if let Some(key) = pc.published.remove(&track_id) {
                        let _ = pc.events.send(PcEvent::TrackEnded(key));
                        self.tracks.remove(&key);
                    }
                }
                _ => {}
            }
        }
    }

    /// The first packet of a client's track (or of one of its simulcast
    /// layers) arrived: it can be forwarded.
    fn track_opened(
        &mut self,
        session: u64,
        receiver_id: RTCRtpReceiverId,
        track_id: String,
        ssrc: u32,
        rid: Option<String>,
    ) {
        let Some(pc) = self.pcs.get_mut(&session) else {
            return;
        };
        if let Some(key) = pc.published.get(&track_id).copied() {
            // Another simulcast layer of a track already open.
            tracing::debug!(participant = %pc.participant, ?rid, ssrc, "layer opened");
            if let Some(track) = self.tracks.get_mut(&key)
                && let Some(rid) = rid
            {
                let slot = simulcast::layer_of_rid(&rid)
                    .or_else(|| track.layers.iter().position(Option::is_none));
                if let Some(layer) = slot.and_then(|i| track.layers.get_mut(i)) {
                    match layer {
                        Some(layer) => layer.ssrc = Some(ssrc),
                        None => *layer = Some(Layer::new(rid, Some(ssrc))),
                    }
                }
                let room = track.room.clone();
                self.allocate_room(&room);
            }
            return;
        }
        let Some(mid) = pc
            .core
            .rtp_transceiver(receiver_id.into())
            .and_then(|t| t.mid().clone())
        else {
            return;
        };
        let Some(mut receiver) = pc.core.rtp_receiver(receiver_id) else {
            return;
        };
        let kind = match receiver.track().kind() {
            RtpCodecKind::Audio => Kind::Audio,
            RtpCodecKind::Video => Kind::Video,
            _ => return,
        };
        let codec = receiver.track().codec(ssrc).cloned();
        let params = receiver.get_parameters();
        let Some(codec) = codec.or_else(|| {
            params
                .rtp_parameters
                .codecs
                .first()
                .map(|c| c.rtp_codec.clone())
        }) else {
            return;
        };
        let codecs = params
            .rtp_parameters
            .codecs
            .iter()
            .map(|c| {
                (
                    c.payload_type,
                    CodecKey::new(&c.rtp_codec.mime_type, &c.rtp_codec.sdp_fmtp_line),
                )
            })
            .collect();
        let extensions: Vec<(u8, String)> = params
            .rtp_parameters
            .header_extensions
            .iter()
            .filter_map(|e| u8::try_from(e.id).ok().map(|id| (id, e.uri.clone())))
            .collect();
        let audio_level_id = extensions
            .iter()
            .find(|(_, uri)| uri == AUDIO_LEVEL_URI)
            .map(|(id, _)| *id);
        // The layers the offer announced (rids), each known by its SSRC once
        // its first packet arrives; without simulcast the one stream is layer 0.
        let mut layers: [Option<Layer>; MAX_LAYERS] = Default::default();
        let simulcast = rid.is_some();
        if simulcast {
            let rids = receiver
                .track()
                .codings()
                .iter()
                .map(|c| c.rtp_coding_parameters.rid.clone())
                .filter(|r| !r.is_empty())
                .chain(rid.clone());
            for r in rids {
                let slot =
                    simulcast::layer_of_rid(&r).or_else(|| layers.iter().position(Option::is_none));
                if let Some(slot) = slot.and_then(|i| layers.get_mut(i))
                    && slot.is_none()
                {
                    let seen = (Some(&r) == rid.as_ref()).then_some(ssrc);
                    *slot = Some(Layer::new(r, seen));
                }
            }
        } else {
            layers[0] = Some(Layer::new(String::new(), Some(ssrc)));
        }
        let key = self.next_track;
        self.next_track += 1;
        pc.published.insert(track_id, key);
        let _ = pc.events.send(PcEvent::Track {
            key,
            mid: mid.clone(),
            kind,
        });
        tracing::info!(participant = %pc.participant, %mid, ?kind, ?rid, ssrc, "published");
        let room = pc.room.clone();
        self.tracks.insert(
            key,
            Track {
                publisher: session,
                participant: pc.participant.clone(),
                room: pc.room.clone(),
                track_id: format!("{}:{}", pc.participant, mid),
                mid,
                receiver: receiver_id,
                kind,
                video_codec: VideoCodec::from_mime(&codec.mime_type),
                codec,
                codecs,
                extensions,
                audio_level_id,
                layers,
                simulcast,
                announced: None,
                links: Vec::new(),
            },
        );
        self.allocate_room(&room);
    }

    /// One publisher packet to every live subscriber of its track (of a
    /// video, to those whose chosen layer it belongs to).
    fn forward(&mut self, key: TrackKey, packet: rtc::rtp::Packet, now: Instant) {
        let at = now.saturating_duration_since(self.epoch);
        let Some(track) = self.tracks.get_mut(&key) else {
            return;
        };
        let Some(layer) = track.layer_of(packet.header.ssrc) else {
            // A layer whose opening the connection has not reported yet.
            return;
        };
        if let Some(stream) = track.layers.get_mut(layer).and_then(Option::as_mut)
            && !stream.arrivals.first_time(packet.header.sequence_number)
        {
            // Sent again although it had arrived: a browser probing its uplink with
            // retransmissions. Every subscriber has it, or has moved past it.
            self.duplicates += 1;
            return;
        }
        let video = track.kind == Kind::Video;
        let keyframe = video && simulcast::is_keyframe(track.video_codec, &packet.payload);
        if keyframe {
            tracing::debug!(participant = %track.participant, layer, seq = packet.header.sequence_number, "keyframe");
        }
        let mut want_keyframe = false;
        if let Some(stream) = track.layers.get_mut(layer).and_then(Option::as_mut) {
            stream.meter.add(packet.payload.len(), at);
            stream.last_packet = Some(at);
            if stream.keyframes.resuming() {
                // The first packet of a layer just resumed: whoever waits to
                // switch to it asks for its keyframe now, not at the next
                // allocation pass.
                let awaited = track
                    .links
                    .iter()
                    .any(|l| l.live && l.switch.awaiting_keyframe() == Some(layer));
                want_keyframe = stream.keyframes.on_packet(at, keyframe, awaited);
            }
            if keyframe
                && track.video_codec == VideoCodec::Vp8
                && let Some(size) = simulcast::vp8_keyframe_size(&packet.payload)
            {
                stream.size = Some(size);
            }
        }
        let mut allocate = false;
        // One lookup of the Room (keyed by its name) per packet.
        let mut room = self.rooms.get_mut(&track.room);
        if let Some(room) = room.as_deref_mut()
            && at.saturating_sub(room.last_allocated) >= ALLOCATE_INTERVAL
        {
            room.last_allocated = at;
            allocate = true;
        }
        if let Some(id) = track.audio_level_id
            && let Some(level) = packet
                .header
                .extensions
                .iter()
                .find(|e| e.id == id)
                .and_then(|e| core::parse_audio_level(&e.payload))
            && let Some(room) = room
        {
            room.detector.observe(&track.publisher, level.1, at);
            if at.saturating_sub(room.last_evaluated) >= SPEAKER_INTERVAL {
                room.last_evaluated = at;
                if let Some(speaker) = room.detector.evaluate(at)
                    && let Some(pc) = self.pcs.get(&speaker)
                {
                    let _ = pc.events.send(PcEvent::Speaker);
                }
            }
        }
        let ask_on_arrival = std::mem::take(&mut want_keyframe);
        let payload_len = packet.payload.len() as u64;
        let clock_rate = track.codec.clock_rate.max(1);
        let seq = packet.header.sequence_number;
        for link in track.links.iter_mut() {
            if !link.live {
                continue;
            }
            let Some(pc) = self.pcs.get_mut(&link.subscriber) else {
                continue;
            };
            // Not before the subscriber's connection can carry it: a layer
            // started on a keyframe that is never sent shows nothing until
            // the next one.
            if !pc.media_ready {
                continue;
            }
            if video {
                let (before, switches) = (link.switch.current(), link.switch.switches());
                // A video without simulcast starts anywhere, as it always did
                // (the keyframe asked for follows); layers switch on keyframes.
                let verdict = link
                    .switch
                    .on_packet(layer, seq, keyframe || !track.simulcast);
                self.layer_switches += link.switch.switches() - switches;
                if verdict == Verdict::Drop {
                    continue;
                }
                if link.switch.current() != before {
                    // Continue the subscriber's numbering from here, whatever
                    // was skipped while another layer (or none) was sent.
                    link.rewriter.rebase();
                }
            }
            let mut out = core::subscriber_copy(&packet);
            if !link
                .rewriter
                .rewrite_header_at(&mut out.header, Some((at, clock_rate)))
            {
                self.dropped += 1;
                continue;
            }
            let Some(mut sender) = pc.core.rtp_sender(link.sender) else {
                continue;
            };
            if let Err(e) = sender.write_rtp(now, out) {
                tracing::trace!("forward: {e}");
                self.dropped += 1;
                // Not sent at all (the subscriber's DTLS may not be up yet):
                // if this started its layer, what follows cannot be decoded,
                // so its decoder starts on the next keyframe instead.
                if video && link.switch.restart().is_some() {
                    want_keyframe = true;
                }
                continue;
            }
            // Counted, and a loss handled, once the outbox knows whether the
            // kernel took the datagram (see `settle`).
            let tag = Tag {
                track: key,
                subscriber: link.subscriber,
                payload_len,
            };
            // One poll, not a loop: every path that hands a connection work
            // (a datagram, a timeout, a keyframe request, a command) ends by
            // draining its writes, so between those this write is the only
            // one queued, and a second poll would only walk the connection's
            // whole handler and interceptor pipeline again to find nothing
            // (about 2 000 instructions per copy). Should something else be
            // queued after all, it is not lost: the connection's next pump
            // (its next datagram or timer) sends it.
            if let Some(datagram) = pc.core.poll_write() {
                match self.wire.send(&pc.socket, datagram, Some(tag)) {
                    Sent::Queued => {}
                    Sent::Framed => {
                        self.forwarded += 1;
                        self.forwarded_bytes += payload_len;
                    }
                    Sent::Dropped => {
                        self.dropped += 1;
                        link.needs_keyframe |= track.kind == Kind::Video;
                    }
                }
            }
            // A copy after a lost one: the subscriber's decoder needs a keyframe.
            want_keyframe |= std::mem::take(&mut link.needs_keyframe);
            if !self.touched.contains(&link.subscriber) {
                self.touched.push(link.subscriber);
            }
        }
        let room = allocate.then(|| track.room.clone());
        if ask_on_arrival {
            self.send_keyframe_request(key, layer);
        } else if want_keyframe {
            self.request_keyframe(key, layer);
        }
        if let Some(room) = room {
            self.allocate_room(&room);
        }
    }

    /// Chooses again which layer of each video every subscriber in `room`
    /// gets ([`simulcast::allocate`]: tile sizes, downlink estimate,
    /// priorities), asks publishers for the keyframes a switch waits for, and
    /// tells each publisher which layers anyone takes.
    fn allocate_room(&mut self, room: &str) {
        let now = Instant::now().saturating_duration_since(self.epoch);
        let speaker = self
            .rooms
            .get(room)
            .and_then(|r| r.detector.current().copied());
        // Join order (track keys grow), so equal priorities share the same way each time.
        let mut keys: Vec<TrackKey> = self
            .tracks
            .iter()
            .filter(|(_, t)| t.room == room)
            .map(|(k, _)| *k)
            .collect();
        keys.sort_unstable();
        let subscribers: Vec<u64> = self
            .pcs
            .iter()
            .filter(|(_, pc)| pc.room == room)
            .map(|(s, _)| *s)
            .collect();
        for key in &keys {
            if let Some(track) = self.tracks.get_mut(key)
                && track.simulcast
            {
                for layer in track.layers.iter_mut().flatten() {
                    layer.usable(now);
                }
            }
        }
        let mut keyframes = Vec::new();
        for subscriber in subscribers {
            let Some(pc) = self.pcs.get(&subscriber) else {
                continue;
            };
            let mut audio = 0u64;
            let mut chosen_for = Vec::new();
            let mut videos = Vec::new();
            for key in &keys {
                let Some(track) = self.tracks.get(key) else {
                    continue;
                };
                if !track
                    .links
                    .iter()
                    .any(|l| l.subscriber == subscriber && l.live)
                {
                    continue;
                }
                if track.kind == Kind::Audio {
                    audio += AUDIO_BITRATE;
                    continue;
                }
                let tile = pc.tiles.get(key);
                let priority = if tile.is_some_and(|(_, screen)| *screen) {
                    Priority::Screen
                } else if speaker == Some(track.publisher) {
                    Priority::Speaker
                } else {
                    Priority::Normal
                };
                videos.push(simulcast::Video {
                    tile: tile.map(|(t, _)| *t),
                    priority,
                    layers: track.layer_infos(now, tile.is_some()),
                    previous: track
                        .links
                        .iter()
                        .find(|l| l.subscriber == subscriber)
                        .and_then(|l| l.switch.target()),
                });
                chosen_for.push(*key);
            }
            let budget = pc.estimate.get().map(|e| e.saturating_sub(audio));
            let chosen = simulcast::allocate(&videos, budget);
            tracing::debug!(participant = %pc.participant, ?budget, ?videos, ?chosen, "layers chosen");
            for (key, layer) in chosen_for.into_iter().zip(chosen) {
                let Some(link) = self
                    .tracks
                    .get_mut(&key)
                    .and_then(|t| t.links.iter_mut().find(|l| l.subscriber == subscriber))
                else {
                    continue;
                };
                let before = link.switch.switches();
                if let Some(awaited) = link.switch.set_target(layer) {
                    keyframes.push((key, awaited));
                }
                self.layer_switches += link.switch.switches() - before;
            }
        }
        for (key, layer) in keyframes {
            self.request_keyframe(key, layer);
        }
        let mut announce = Vec::new();
        for key in &keys {
            let Some(track) = self.tracks.get_mut(key) else {
                continue;
            };
            if !track.simulcast {
                continue;
            }
            let mut needed = simulcast::needed_layers(track.links.iter().map(|l| &l.switch));
            // While anyone watches the track its lowest layer keeps flowing:
            // it costs the publisher little, and it is what any subscriber
            // falls back to at once when a higher layer stalls.
            if track.links.iter().any(|l| l.switch.target().is_some()) {
                needed[0] = true;
            }
            // A layer not seen yet is never paused: the browser may hold it
            // back itself, and it must come once its uplink allows. One
            // needed again resumes at once; one no longer needed pauses only
            // after a while.
            let rids: Vec<String> = track
                .layers
                .iter_mut()
                .zip(needed)
                .filter_map(|(l, needed)| {
                    let l = l.as_mut()?;
                    let since = if needed {
                        None
                    } else {
                        Some(*l.unneeded_since.get_or_insert(now))
                    };
                    l.unneeded_since = since;
                    let keep = since.is_none_or(|t| now.saturating_sub(t) < PAUSE_AFTER)
                        || l.ssrc.is_none();
                    if keep && !l.asked {
                        l.asked_at = Some(now);
                        l.keyframes.resume();
                    } else if !keep && l.asked {
                        l.keyframes.pause();
                    }
                    l.asked = keep;
                    keep.then(|| l.rid.clone())
                })
                .collect();
            if track.announced.as_ref() == Some(&rids) {
                continue;
            }
            tracing::debug!(participant = %track.participant, mid = %track.mid, ?rids, "layers asked");
            track.announced = Some(rids.clone());
            announce.push((track.publisher, track.mid.clone(), rids));
        }
        for (publisher, mid, rids) in announce {
            if let Some(pc) = self.pcs.get(&publisher) {
                let _ = pc.events.send(PcEvent::SendLayers { mid, rids });
            }
        }
    }

    /// Asks the publisher of a video track for a keyframe of `layer`, unless
    /// asked very recently.
    fn request_keyframe(&mut self, key: TrackKey, layer: usize) {
        let Some(track) = self.tracks.get_mut(&key) else {
            return;
        };
        if track.kind != Kind::Video {
            return;
        }
        let now = Instant::now();
        let Some(stream) = track.layers.get_mut(layer).and_then(Option::as_mut) else {
            return;
        };
        if stream.ssrc.is_none()
            || !stream
                .keyframes
                .want(now.saturating_duration_since(self.epoch))
        {
            return;
        }
        self.send_keyframe_request(key, layer);
    }

    /// Sends the publisher of a video track a keyframe request (PLI) for
    /// `layer`, throttle aside: `request_keyframe` and the first
    /// packet of a resumed layer decide when.
    fn send_keyframe_request(&mut self, key: TrackKey, layer: usize) {
        let Some(track) = self.tracks.get(&key) else {
            return;
        };
        let Some(media_ssrc) = track
            .layers
            .get(layer)
            .and_then(Option::as_ref)
            .and_then(|l| l.ssrc)
        else {
            return;
        };
        let now = Instant::now();
        let publisher = track.publisher;
        let receiver = track.receiver;
        let Some(pc) = self.pcs.get_mut(&publisher) else {
            return;
        };
        let Some(mut r) = pc.core.rtp_receiver(receiver) else {
            return;
        };
        let pli = PictureLossIndication {
            sender_ssrc: 0,
            media_ssrc,
        };
        if let Err(e) = r.write_rtcp(now, vec![Box::new(pli)]) {
            tracing::debug!("keyframe request not sent: {e}");
            return;
        }
        self.keyframe_requests += 1;
        self.flush(publisher);
        if !self.touched.contains(&publisher) {
            self.touched.push(publisher);
        }
    }

    /// Sends what the outbox holds (the copies of the datagram just handled):
    /// one `sendmmsg` per forwarded packet rather than per burst, so a copy
    /// never waits for the rest of the burst to be decrypted and rewritten.
    fn send_now(&mut self) {
        if self.wire.outbox.is_empty() {
            return;
        }
        let tracks = &mut self.tracks;
        let (mut forwarded, mut bytes, mut dropped) = (0, 0, 0);
        self.wire.outbox.flush(|tag, taken| match (tag, taken) {
            (Some(tag), true) => {
                forwarded += 1;
                bytes += tag.payload_len;
            }
            (Some(tag), false) => {
                dropped += 1;
                if let Some(track) = tracks.get_mut(&tag.track)
                    && track.kind == Kind::Video
                    && let Some(link) = track
                        .links
                        .iter_mut()
                        .find(|l| l.subscriber == tag.subscriber)
                {
                    link.needs_keyframe = true;
                }
            }
            (None, true) => {}
            (None, false) => dropped += 1,
        });
        self.forwarded += forwarded;
        self.forwarded_bytes += bytes;
        self.dropped += dropped;
    }

    /// After a burst: publish the counters and wake connections whose next
    /// deadline moved earlier than the one their task sleeps until.
    fn settle(&mut self) {
        for peer in std::mem::take(&mut self.wire.dirty) {
            self.tcp_write(peer);
            if let Some(conn) = self.wire.tcp.get(&peer)
                && !conn.backlog.is_empty()
            {
                // The kernel buffer is full: the stream's task waits for room.
                conn.kick.notify_one();
            }
        }
        self.send_now();
        let c = &self.counters;
        if self.forwarded > 0 {
            c.packets_forwarded
                .fetch_add(std::mem::take(&mut self.forwarded), Ordering::Relaxed);
            c.bytes_forwarded
                .fetch_add(std::mem::take(&mut self.forwarded_bytes), Ordering::Relaxed);
        }
        if self.dropped > 0 {
            c.packets_dropped
                .fetch_add(std::mem::take(&mut self.dropped), Ordering::Relaxed);
        }
        if self.keyframe_requests > 0 {
            c.keyframe_requests.fetch_add(
                std::mem::take(&mut self.keyframe_requests),
                Ordering::Relaxed,
            );
        }
        if self.layer_switches > 0 {
            c.layer_switches
                .fetch_add(std::mem::take(&mut self.layer_switches), Ordering::Relaxed);
        }
        if self.duplicates > 0 {
            c.duplicates
                .fetch_add(std::mem::take(&mut self.duplicates), Ordering::Relaxed);
        }
        for session in std::mem::take(&mut self.touched) {
            let Some(pc) = self.pcs.get_mut(&session) else {
                continue;
            };
            let next = pc.core.poll_timeout();
            let earlier = match (next, pc.armed) {
                (Some(n), Some(a)) => n < a,
                (Some(_), None) => true,
                _ => false,
            };
            if earlier {
                pc.armed = next;
                pc.wake.notify_one();
            }
        }
    }
}

/// Where a datagram the core wrote went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sent {
    /// Queued for the UDP socket: counted when the outbox is flushed.
    Queued,
    /// Framed into its ICE-TCP stream's backlog.
    Framed,
    /// Dropped at once: the stream's backlog is full, or it has no stream.
    Dropped,
}

/// Everything leaving the thread: UDP datagrams for the end of the burst, and
/// the ICE-TCP streams of this thread's connections by remote address.
#[derive(Default)]
struct Wire {
    outbox: Outbox,
    tcp: HashMap<SocketAddr, TcpConn>,
    /// Streams with frames queued since the last `settle`.
    dirty: Vec<SocketAddr>,
}

impl Wire {
    fn send(&mut self, socket: &Rc<UdpSocket>, out: TaggedBytesMut, tag: Option<Tag>) -> Sent {
        let peer = out.transport.peer_addr;
        if out.transport.transport_protocol != TransportProtocol::TCP {
            self.outbox.push(socket, peer, out.message, tag);
            return Sent::Queued;
        }
        let Some(conn) = self.tcp.get_mut(&peer) else {
            return Sent::Dropped;
        };
        if !conn.queue(&out.message) {
            return Sent::Dropped;
        }
        if !self.dirty.contains(&peer) {
            self.dirty.push(peer);
        }
        Sent::Framed
    }
}

/// Random ICE ufrag/password characters (RFC 8445 `ice-char`, alphanumeric part).
fn random_ice_string(len: usize) -> String {
    use rand::Rng;
    rand::thread_rng()
        .sample_iter(rand::distributions::Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

fn io_error(e: std::io::Error) -> Error {
    Error::WebRtc(format!("media socket: {e}"))
}

fn closed() -> Error {
    Error::WebRtc("connection closed".to_owned())
}
