//! A Convene room client on webrtc-rs, for tests and benchmarks (cargo feature
//! `test-client`, off by default).
//!
//! A [`Client`] is one participant: a real webrtc-rs peer connection that
//! publishes a synthetic Opus and VP8 track and answers the SFU's offers, plus a
//! pump that speaks the [`signaling`](crate::signaling) protocol over two string
//! channels. Those channels can be wired to an in-process [`Sfu`] session
//! ([`join`], [`join_on`]) or to anything else that carries text frames, such as
//! the instance's WebSocket ([`start`]), so the same client checks the SFU alone
//! and the whole instance end to end.
//!
//! Every media payload encodes its sender, kind, sequence and send time
//! ([`payload`], [`decode`]), so a receiver checks that what arrives is intact,
//! labelled with the right publisher and in order, but for packets repaired
//! after a loss ([`drain`], [`checked_tail_run`]), and a benchmark reads
//! latency from it.
//!
//! This is test code: it panics (with a message) when the server breaks the
//! protocol, which is what a test wants.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rtc::interceptor::Slot;
use rtc::media_stream::MediaStreamTrack;
use rtc::rtp::extension::HeaderExtension;
use rtc::rtp::extension::audio_level_extension::AudioLevelExtension;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodingParameters, RTCRtpEncodingParameters, RTCRtpRtxParameters,
    RtpCodecKind,
};
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::task::JoinHandle;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCIceCandidateInit,
    RTCPeerConnectionIceEvent, RTCSessionDescription, SettingEngineBuilder,
};

use crate::impairment::{ImpairedLink, Impairment, LinkLog};
use crate::signaling::{Candidate, ClientMessage, Kind, ServerMessage, TrackInfo};
use crate::{Claims, CloseReason, Sfu};

/// How long [`start`] waits for the SFU to answer the first offer.
pub const JOIN_LIMIT: Duration = Duration::from_secs(10);
/// How often a stalled client looks whether it may read again.
const PAUSE_POLL: Duration = Duration::from_millis(50);

/// Bytes at the front of every synthetic payload: sender index, kind, sequence.
pub const HEADER: usize = 6;

/// One received RTP packet, as the test sees it.
#[derive(Debug, Clone)]
pub struct Received {
    /// msid stream id of the track it came on (the publisher's participant id).
    pub stream_id: String,
    /// msid track id.
    pub track_id: String,
    /// RTP sequence number on the subscriber leg.
    pub rtp_seq: u16,
    /// RTP timestamp on the subscriber leg.
    pub rtp_ts: u32,
    /// SSRC on the subscriber leg.
    pub ssrc: u32,
    /// The payload.
    pub payload: Bytes,
    /// When it arrived.
    pub at: Instant,
}

/// Encodes (sender index, kind, sequence, send time) into a payload of `size` bytes.
pub fn payload(sender: u8, kind: u8, seq: u32, size: usize, sent_at_us: u64) -> Bytes {
    let mut v = vec![0u8; size.max(HEADER + 8)];
    v[0] = sender;
    v[1] = kind;
    v[2..6].copy_from_slice(&seq.to_be_bytes());
    v[6..14].copy_from_slice(&sent_at_us.to_be_bytes());
    for (i, b) in v.iter_mut().enumerate().skip(14) {
        *b = (i as u8) ^ sender;
    }
    Bytes::from(v)
}

/// Decodes what [`payload`] wrote; `None` if the bytes were altered.
pub fn decode(p: &[u8]) -> Option<(u8, u8, u32, u64)> {
    if p.len() < 14 {
        return None;
    }
    let sender = p[0];
    if p.iter()
        .enumerate()
        .skip(14)
        .any(|(i, b)| *b != (i as u8) ^ sender)
    {
        return None;
    }
    let seq = u32::from_be_bytes(p[2..6].try_into().ok()?);
    let at = u64::from_be_bytes(p[6..14].try_into().ok()?);
    Some((sender, p[1], seq, at))
}

/// The client peer connection's events: candidates go out as signaling, each
/// remote track is read (and captured) by a task of its own.
pub struct Handler {
    /// Where candidates go (as `candidate` frames).
    pub signal: mpsc::UnboundedSender<String>,
    /// Where received packets go.
    pub received: mpsc::UnboundedSender<Received>,
    /// While set, remote tracks are not read.
    pub paused: Arc<AtomicBool>,
    /// Woken when reading resumes.
    pub resume: Arc<Notify>,
    /// Whether packets are sent to `received` (benchmarks of many tracks may not).
    pub capture: bool,
}

impl Handler {
    /// A handler that captures every packet and is never paused, for a peer
    /// connection the caller sets up itself (against another server, or
    /// directly to another peer).
    pub fn new(
        signal: mpsc::UnboundedSender<String>,
        received: mpsc::UnboundedSender<Received>,
    ) -> Self {
        Self {
            signal,
            received,
            paused: Arc::new(AtomicBool::new(false)),
            resume: Arc::new(Notify::new()),
            capture: true,
        }
    }
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_candidate(&self, event: RTCPeerConnectionIceEvent) {
        if let Ok(init) = event.candidate.to_json() {
            let m = ClientMessage::Candidate(Candidate {
                candidate: init.candidate,
                sdp_mid: init.sdp_mid,
                sdp_mline_index: init.sdp_mline_index,
            });
            let _ = self.signal.send(serde_json::to_string(&m).expect("json"));
        }
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let received = self.received.clone();
        let paused = self.paused.clone();
        let resume = self.resume.clone();
        let capture = self.capture;
        tokio::spawn(async move {
            let stream_id = track.stream_id().await;
            let track_id = track.track_id().await;
            loop {
                while paused.load(Ordering::Acquire) {
                    // Bounded, so a wake-up between the check and the wait is not lost.
                    let _ = tokio::time::timeout(PAUSE_POLL, resume.notified()).await;
                }
                let Some(event) = track.poll().await else {
                    break;
                };
                if let TrackRemoteEvent::OnRtpPacket(p) = event
                    && capture
                {
                    let _ = received.send(Received {
                        stream_id: stream_id.clone(),
                        track_id: track_id.clone(),
                        rtp_seq: p.header.sequence_number,
                        rtp_ts: p.header.timestamp,
                        ssrc: p.header.ssrc,
                        payload: p.payload.clone(),
                        at: Instant::now(),
                    });
                }
            }
        });
    }
}

/// A participant: a webrtc-rs peer connection plus its signaling pump.
pub struct Client {
    /// Participant id (as the SFU knows it).
    pub id: String,
    /// Index written into every payload this client publishes.
    pub index: u8,
    /// The peer connection to the SFU.
    pub pc: Arc<dyn PeerConnection>,
    /// The published microphone.
    pub audio: Arc<TrackLocalStaticRTP>,
    /// The published camera.
    pub video: Arc<TrackLocalStaticRTP>,
    /// SSRC of [`Client::audio`].
    pub audio_ssrc: u32,
    /// SSRC of [`Client::video`].
    pub video_ssrc: u32,
    /// With [`join_simulcast`]: the camera's layers (rid, SSRC), lowest first.
    pub simulcast: Vec<(String, u32)>,
    /// With [`join_simulcast`]: what the SFU's transport-wide congestion
    /// control feedback said of the packets this client sent (as a browser
    /// does, it numbers them transport-wide and reads the feedback).
    pub feedback: Feedback,
    /// Client → server frames (also used by the pump).
    pub to_server: mpsc::UnboundedSender<String>,
    /// Server messages other than negotiation (welcome included), for the test to inspect.
    pub events: mpsc::UnboundedReceiver<ServerMessage>,
    /// Media packets received, when capturing.
    pub received: mpsc::UnboundedReceiver<Received>,
    /// The SFU session, when it runs in process ([`join_on`]).
    pub session: Option<JoinHandle<CloseReason>>,
    /// While set, neither signaling nor media is read (a stuck participant).
    pub paused: Arc<AtomicBool>,
    resume: Arc<Notify>,
    pump: JoinHandle<()>,
}

/// How a client's peer connection reaches the SFU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// UDP on loopback, as every browser tries first.
    Udp,
    /// No UDP socket at all, as behind a firewall that blocks UDP: only ICE-TCP
    /// candidates (RFC 6544), so media flows over the SFU's passive TCP candidate.
    TcpOnly,
    /// UDP from this local address rather than loopback, such as one inside a
    /// network namespace that the joining thread entered.
    UdpFrom(std::net::IpAddr),
}

/// Joins `room` of an in-process `sfu` as `id` with a fresh token, returning
/// once the SFU answered the first offer.
pub async fn join(sfu: &Sfu, room: &str, id: &str, index: u8, capacity: Option<u32>) -> Client {
    join_over(sfu, room, id, index, capacity, Transport::Udp).await
}

/// Like [`join`], over `transport`.
pub async fn join_over(
    sfu: &Sfu,
    room: &str,
    id: &str,
    index: u8,
    capacity: Option<u32>,
    transport: Transport,
) -> Client {
    join_fresh(sfu, (room, id, index), capacity, (transport, false, None)).await
}

/// Joins with a fresh token for `id` (allowing `capacity` seats if given) and
/// the client `options` of [`join_inner`].
async fn join_fresh(
    sfu: &Sfu,
    (room, id, index): (&str, &str, u8),
    capacity: Option<u32>,
    options: (Transport, bool, Option<Link>),
) -> Client {
    let mut claims = Claims::new(
        room,
        id,
        format!("Person {id}"),
        crate::token::unix_now(),
        120,
    );
    claims.capacity = capacity;
    let token = sfu.token_key().issue(&claims);
    join_inner(
        &tokio::runtime::Handle::current(),
        sfu,
        (room, id, index),
        &token,
        true,
        options,
    )
    .await
    .expect("join accepted")
}

/// Like [`join`], with the client's media behind `link` (loss and delay in
/// its own interceptor chain, see [`crate::impairment`]).
pub async fn join_behind(sfu: &Sfu, room: &str, id: &str, index: u8, link: Link) -> Client {
    join_fresh(
        sfu,
        (room, id, index),
        None,
        (Transport::Udp, false, Some(link)),
    )
    .await
}

/// Like [`join_simulcast`], with the client's media behind `link`.
pub async fn join_simulcast_behind(
    sfu: &Sfu,
    room: &str,
    id: &str,
    index: u8,
    link: Link,
) -> Client {
    join_fresh(
        sfu,
        (room, id, index),
        None,
        (Transport::Udp, true, Some(link)),
    )
    .await
}

/// Like [`join`], publishing the camera as three simulcast layers (rids
/// [`RIDS`](crate::simulcast::RIDS)); send media with [`publish_simulcast`].
pub async fn join_simulcast(sfu: &Sfu, room: &str, id: &str, index: u8) -> Client {
    join_fresh(sfu, (room, id, index), None, (Transport::Udp, true, None)).await
}

/// Like [`join`], the client's media from `ip` (see [`Transport::UdpFrom`]) and
/// the SFU side (connect, session) on `sfu_runtime`: a client in a network
/// namespace runs on a runtime of that namespace's thread, the SFU on another.
pub async fn join_from(
    sfu_runtime: &tokio::runtime::Handle,
    sfu: &Sfu,
    who: (&str, &str, u8),
    ip: std::net::IpAddr,
) -> Client {
    join_from_inner(sfu_runtime, sfu, who, ip, false).await
}

/// [`join_from`] publishing the camera as simulcast layers, as [`join_simulcast`].
pub async fn join_simulcast_from(
    sfu_runtime: &tokio::runtime::Handle,
    sfu: &Sfu,
    who: (&str, &str, u8),
    ip: std::net::IpAddr,
) -> Client {
    join_from_inner(sfu_runtime, sfu, who, ip, true).await
}

async fn join_from_inner(
    sfu_runtime: &tokio::runtime::Handle,
    sfu: &Sfu,
    (room, id, index): (&str, &str, u8),
    ip: std::net::IpAddr,
    simulcast: bool,
) -> Client {
    let claims = Claims::new(
        room,
        id,
        format!("Person {id}"),
        crate::token::unix_now(),
        120,
    );
    let token = sfu.token_key().issue(&claims);
    join_inner(
        sfu_runtime,
        sfu,
        (room, id, index),
        &token,
        true,
        (Transport::UdpFrom(ip), simulcast, None),
    )
    .await
    .expect("join accepted")
}

/// Joins an in-process `sfu` with a given token; `Err` is the SFU's refusal.
pub async fn join_with_token(
    sfu: &Sfu,
    room: &str,
    id: &str,
    index: u8,
    token: &str,
    capture: bool,
) -> crate::Result<Client> {
    join_on(
        &tokio::runtime::Handle::current(),
        sfu,
        room,
        id,
        index,
        token,
        capture,
    )
    .await
}

/// Like [`join_with_token`], with the SFU side (connect, session, and so every
/// SFU task and peer connection driver) running on `sfu_runtime`.
pub async fn join_on(
    sfu_runtime: &tokio::runtime::Handle,
    sfu: &Sfu,
    room: &str,
    id: &str,
    index: u8,
    token: &str,
    capture: bool,
) -> crate::Result<Client> {
    join_inner(
        sfu_runtime,
        sfu,
        (room, id, index),
        token,
        capture,
        (Transport::Udp, false, None),
    )
    .await
}

async fn join_inner(
    sfu_runtime: &tokio::runtime::Handle,
    sfu: &Sfu,
    (room, id, index): (&str, &str, u8),
    token: &str,
    capture: bool,
    (transport, simulcast, link): (Transport, bool, Option<Link>),
) -> crate::Result<Client> {
    let first = serde_json::to_string(&ClientMessage::Join {
        token: token.to_owned(),
    })
    .expect("client messages serialize");
    let (s, r) = (sfu.clone(), room.to_owned());
    let session = sfu_runtime
        .spawn(async move { s.connect(&r, &first).await })
        .await
        .expect("connect task")?;
    // The session's channels: bounded outgoing like a real socket buffer.
    let (in_tx, in_rx) = mpsc::channel::<String>(1024);
    let (out_tx, out_rx) = mpsc::channel::<String>(64);
    let session = sfu_runtime.spawn(session.run_channels(in_rx, out_tx));
    let mut client = start_with(
        id,
        index,
        capture,
        in_tx,
        out_rx,
        (transport, simulcast, link),
    )
    .await
    .unwrap_or_else(|why| panic!("{id}: admitted but not connected: {why}"));
    client.session = Some(session);
    until_seated(sfu, room, id).await;
    Ok(client)
}

/// Waits (up to [`JOIN_LIMIT`]) until `id`'s media connected and holds a seat in `room`, so
/// that counts of who is inside include it.
pub async fn until_seated(sfu: &Sfu, room: &str, id: &str) {
    let deadline = tokio::time::Instant::now() + JOIN_LIMIT;
    while !sfu.room_participants(room).iter().any(|p| p.id == id) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{id}: media did not connect within {JOIN_LIMIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Starts a client on any text transport after its `join` frame was sent:
/// `to_server` carries client frames, `from_server` the server's. Waits for
/// `welcome`, offers the two tracks and returns once the server answered.
/// `Err` carries the server's `error` reason, or says the transport closed or
/// nothing came within [`JOIN_LIMIT`].
pub async fn start(
    id: &str,
    index: u8,
    capture: bool,
    to_server: mpsc::Sender<String>,
    from_server: mpsc::Receiver<String>,
) -> Result<Client, String> {
    start_over(id, index, capture, to_server, from_server, Transport::Udp).await
}

/// Like [`start`], over `transport`.
pub async fn start_over(
    id: &str,
    index: u8,
    capture: bool,
    to_server: mpsc::Sender<String>,
    from_server: mpsc::Receiver<String>,
    transport: Transport,
) -> Result<Client, String> {
    start_with(
        id,
        index,
        capture,
        to_server,
        from_server,
        (transport, false, None),
    )
    .await
}

/// Like [`start`], with the client's media behind `link`.
pub async fn start_behind(
    id: &str,
    index: u8,
    capture: bool,
    to_server: mpsc::Sender<String>,
    from_server: mpsc::Receiver<String>,
    link: Link,
) -> Result<Client, String> {
    start_with(
        id,
        index,
        capture,
        to_server,
        from_server,
        (Transport::Udp, false, Some(link)),
    )
    .await
}

async fn start_with(
    id: &str,
    index: u8,
    capture: bool,
    to_server: mpsc::Sender<String>,
    mut from_server: mpsc::Receiver<String>,
    (transport, simulcast, link): (Transport, bool, Option<Link>),
) -> Result<Client, String> {
    let (signal_tx, mut signal_rx) = mpsc::unbounded_channel::<String>();
    let (received_tx, received_rx) = mpsc::unbounded_channel();
    let feedback = Feedback::default();
    let paused = Arc::new(AtomicBool::new(false));
    let resume = Arc::new(Notify::new());

    let handler = Handler {
        signal: signal_tx.clone(),
        received: received_tx,
        paused: paused.clone(),
        resume: resume.clone(),
        capture,
    };
    let pc = match (transport, link) {
        (Transport::Udp, link) if simulcast || link.is_some() => {
            let feedback = simulcast.then(|| feedback.clone());
            client_peer_connection_with(handler, "127.0.0.1", link, feedback).await
        }
        (Transport::UdpFrom(ip), link) => {
            client_peer_connection_with(handler, &ip.to_string(), link, None).await
        }
        (Transport::Udp, _) => client_peer_connection(handler).await,
        (Transport::TcpOnly, _) => client_peer_connection_tcp_only(handler).await,
    };
    let audio_ssrc: u32 = rand::random();
    let video_ssrc: u32 = rand::random();
    let audio = local_track(
        id,
        "audio",
        RtpCodecKind::Audio,
        audio_ssrc,
        "audio/opus",
        48000,
        2,
    );
    let layers: Vec<(String, u32)> = if simulcast {
        crate::simulcast::RIDS
            .iter()
            .map(|rid| ((*rid).to_owned(), rand::random()))
            .collect()
    } else {
        Vec::new()
    };
    let video = if simulcast {
        simulcast_track(id, &layers)
    } else {
        local_track(
            id,
            "video",
            RtpCodecKind::Video,
            video_ssrc,
            "video/VP8",
            90000,
            0,
        )
    };
    pc.add_track(audio.clone()).await.expect("add audio");
    pc.add_track(video.clone()).await.expect("add video");

    // Frames produced by the handler and the pump go out in order.
    tokio::spawn(async move {
        while let Some(m) = signal_rx.recv().await {
            if to_server.send(m).await.is_err() {
                break;
            }
        }
    });

    let (events_tx, events_rx) = mpsc::unbounded_channel();
    let (ready_tx, ready_rx) = oneshot::channel::<Result<(), String>>();
    let pump_pc = pc.clone();
    let pump_signal = signal_tx.clone();
    let pump_paused = paused.clone();
    let pump_resume = resume.clone();
    let pump = tokio::spawn(async move {
        let mut ready = Some(ready_tx);
        // A closed connection ends the pump; the test sees the missing answer.
        macro_rules! or_stop {
            ($e:expr) => {
                match $e {
                    Ok(v) => v,
                    Err(e) => {
                        eprintln!("client pump stops: {e}");
                        break;
                    }
                }
            };
        }
        loop {
            while pump_paused.load(Ordering::Acquire) {
                let _ = tokio::time::timeout(PAUSE_POLL, pump_resume.notified()).await;
            }
            let Some(text) = from_server.recv().await else {
                if let Some(r) = ready.take() {
                    let _ = r.send(Err("the server closed the connection".to_owned()));
                }
                break;
            };
            let Ok(msg) = serde_json::from_str::<ServerMessage>(&text) else {
                panic!("server sent an undocumented message: {text}");
            };
            match msg {
                ServerMessage::Welcome { .. } => {
                    let offer = or_stop!(pump_pc.create_offer(None).await);
                    let m = ClientMessage::Offer {
                        sdp: offer.sdp.clone(),
                    };
                    // The offer goes out before any candidate that setting it gathers.
                    let _ = pump_signal.send(to_json(&m));
                    or_stop!(pump_pc.set_local_description(offer).await);
                    let _ = events_tx.send(msg);
                }
                ServerMessage::Answer { sdp } => {
                    let desc = or_stop!(RTCSessionDescription::answer(sdp));
                    or_stop!(pump_pc.set_remote_description(desc).await);
                    if let Some(r) = ready.take() {
                        let _ = r.send(Ok(()));
                    }
                }
                ServerMessage::Offer { sdp } => {
                    let desc = or_stop!(RTCSessionDescription::offer(sdp));
                    or_stop!(pump_pc.set_remote_description(desc).await);
                    let answer = or_stop!(pump_pc.create_answer(None).await);
                    let m = ClientMessage::Answer {
                        sdp: answer.sdp.clone(),
                    };
                    or_stop!(pump_pc.set_local_description(answer).await);
                    let _ = pump_signal.send(to_json(&m));
                }
                ServerMessage::Candidate(c) => {
                    let init = RTCIceCandidateInit {
                        candidate: c.candidate,
                        sdp_mid: c.sdp_mid,
                        sdp_mline_index: c.sdp_mline_index,
                        ..Default::default()
                    };
                    let _ = pump_pc.add_ice_candidate(init).await;
                }
                ServerMessage::Error { reason } if ready.is_some() => {
                    if let Some(r) = ready.take() {
                        let _ = r.send(Err(reason));
                    }
                }
                other => {
                    let _ = events_tx.send(other);
                }
            }
        }
    });

    let outcome = match tokio::time::timeout(JOIN_LIMIT, ready_rx).await {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(_)) => Err("the client pump stopped".to_owned()),
        Err(_) => Err(format!("no answer within {JOIN_LIMIT:?}")),
    };
    if let Err(why) = outcome {
        pump.abort();
        let _ = pc.close().await;
        return Err(why);
    }
    Ok(Client {
        id: id.to_owned(),
        index,
        pc,
        audio,
        video,
        audio_ssrc,
        video_ssrc,
        simulcast: layers,
        feedback,
        to_server: signal_tx,
        events: events_rx,
        received: received_rx,
        session: None,
        paused,
        resume,
        pump,
    })
}

/// A webrtc-rs peer connection on loopback with Convene's media configuration.
pub async fn client_peer_connection(handler: Handler) -> Arc<dyn PeerConnection> {
    client_peer_connection_on(handler, "127.0.0.1").await
}

/// Like [`client_peer_connection`], with its UDP socket on `ip` (a local address).
pub async fn client_peer_connection_on(handler: Handler, ip: &str) -> Arc<dyn PeerConnection> {
    client_peer_connection_with(handler, ip, None, None).await
}

/// A lossy access link for a client: what it does and where it records it.
#[derive(Debug, Clone)]
pub struct Link {
    /// The loss and delay in each direction.
    pub impairment: Impairment,
    /// What the link dropped and which media came back as retransmissions.
    pub log: Arc<LinkLog>,
    /// The client probes its uplink as browsers do with RTX: every this many packets of each
    /// simulcast layer, the one before is sent again as a retransmission nobody asked for.
    pub probe_every: Option<u32>,
}

impl Link {
    /// A link doing `impairment` with a fresh log.
    pub fn new(impairment: Impairment) -> Self {
        Self {
            impairment,
            log: Arc::default(),
            probe_every: None,
        }
    }
}

/// What transport-wide feedback reported of a client's packets, by SSRC.
#[derive(Debug, Clone, Default)]
pub struct Feedback(Arc<std::sync::Mutex<HashMap<u32, Fates>>>);

/// How many of one SSRC's packets feedback reported, arrived or lost.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Fates {
    /// Reported as arrived.
    pub arrived: u64,
    /// Reported as not arrived.
    pub lost: u64,
}

impl Feedback {
    /// The reports so far, by SSRC.
    pub fn by_ssrc(&self) -> HashMap<u32, Fates> {
        self.0.lock().map(|m| m.clone()).unwrap_or_default()
    }
}

/// The congestion controller's seat in a test client's chain, keeping what
/// the feedback says instead of estimating anything.
struct Recorder {
    feedback: Feedback,
}

impl rtc::interceptor::BandwidthEstimator for Recorder {
    fn on_reports(&mut self, _now: Instant, reports: &[rtc::interceptor::PacketReport]) {
        let Ok(mut fates) = self.feedback.0.lock() else {
            return;
        };
        for r in reports {
            let f = fates.entry(r.ssrc).or_default();
            if r.arrived {
                f.arrived += 1;
            } else {
                f.lost += 1;
            }
        }
    }

    fn target_bitrate(&self) -> f64 {
        crate::engine::INITIAL_ESTIMATE
    }
}

/// Like [`client_peer_connection_on`], behind `link` if given (an
/// [`ImpairedLink`] at the wire-most end of the chain).
pub async fn client_peer_connection_behind(
    handler: Handler,
    ip: &str,
    link: Option<Link>,
) -> Arc<dyn PeerConnection> {
    client_peer_connection_with(handler, ip, link, None).await
}

/// A client peer connection on `ip`: behind `link` if given, and with
/// `feedback`, numbering what it sends transport-wide and recording the
/// feedback there.
async fn client_peer_connection_with(
    handler: Handler,
    ip: &str,
    link: Option<Link>,
    feedback: Option<Feedback>,
) -> Arc<dyn PeerConnection> {
    let mut me = crate::engine::media_engine().expect("media engine");
    let mut registry = crate::engine::interceptors(&mut me).expect("interceptors");
    let probe_every = link.as_ref().and_then(|l| l.probe_every);
    if let Some(link) = link {
        registry = registry.with(
            Slot::from(crate::impairment::SLOT),
            ImpairedLink::new(link.impairment, link.log),
        );
    }
    if let Some(feedback) = feedback {
        registry = registry
            .with(
                Slot::from(REPAIR_NAMER_SLOT),
                RepairNamer {
                    probe_every,
                    ..Default::default()
                },
            )
            .with(
                rtc::interceptor::Slot::CongestionControl,
                rtc::interceptor::CongestionControlBuilder::new(Recorder { feedback }).build(),
            )
            .with(
                rtc::interceptor::Slot::TwccSender,
                rtc::interceptor::TwccSenderBuilder::new().build(),
            );
    }
    let pc = PeerConnectionBuilder::new()
        .with_media_engine(me)
        .with_interceptor_registry(registry)
        .with_setting_engine(
            SettingEngineBuilder::new()
                .with_multicast_dns_mode(rtc::ice::mdns::MulticastDnsMode::Disabled)
                .with_include_loopback_candidate(true)
                .build(),
        )
        .with_handler(Arc::new(handler))
        .with_udp_addrs(vec![format!("{ip}:0")])
        .build()
        .await
        .expect("client peer connection on a local address");
    Arc::new(pc)
}

/// Below the NACK responder (4 000), which sends the RTX packets.
const REPAIR_NAMER_SLOT: usize = 3_500;

/// Names each retransmission of a simulcast layer as a browser does: mid and
/// repaired rid (RFC 8852) header extensions on its RTX packets, taken from
/// the mid and rid its layer's own packets carried. webrtc-rs sends them
/// bare, and no description names a layer's RTX SSRC.
///
/// With `probe_every`, it also probes as Chromium does once RTX is negotiated: it sends
/// packets that already went out again as retransmissions nobody asked for.
#[derive(Default)]
struct RepairNamer {
    /// RTX SSRC → the SSRC it repairs.
    repairs: HashMap<u32, u32>,
    /// Probe with every this many packets of a layer.
    probe_every: Option<u32>,
    /// Layer SSRC → (RTX SSRC, RTX payload type, the layer's last packet, packets sent).
    probes: HashMap<u32, (u32, u8, Option<rtc::rtp::Packet>, u32)>,
    /// The next sequence number of the probes on each RTX SSRC, far from the repairs'.
    probe_seq: u16,
    /// Ids of the mid, rid and repaired rid extensions.
    ids: Option<(u8, u8, u8)>,
    /// Layer SSRC → (mid, rid) as its packets named it.
    names: HashMap<u32, (Bytes, Bytes)>,
    read: std::collections::VecDeque<rtc::interceptor::TaggedPacket>,
    write: std::collections::VecDeque<rtc::interceptor::TaggedPacket>,
}

impl rtc::sansio::Protocol<rtc::interceptor::TaggedPacket, rtc::interceptor::TaggedPacket, ()>
    for RepairNamer
{
    type Rout = rtc::interceptor::TaggedPacket;
    type Wout = rtc::interceptor::TaggedPacket;
    type Eout = ();
    type Error = rtc::shared::error::Error;
    type Time = Instant;

    fn handle_read(
        &mut self,
        msg: rtc::interceptor::TaggedPacket,
    ) -> std::result::Result<(), Self::Error> {
        self.read.push_back(msg);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<Self::Rout> {
        self.read.pop_front()
    }

    fn handle_write(
        &mut self,
        mut msg: rtc::interceptor::TaggedPacket,
    ) -> std::result::Result<(), Self::Error> {
        if let (rtc::interceptor::Packet::Rtp(p), Some((mid_id, rid_id, repaired_id))) =
            (&mut msg.message.packet, self.ids)
        {
            let ssrc = p.header.ssrc;
            if let Some((mid, rid)) = self
                .repairs
                .get(&ssrc)
                .and_then(|layer| self.names.get(layer))
            {
                p.header.set_extension(mid_id, mid.clone())?;
                p.header.set_extension(repaired_id, rid.clone())?;
            } else if let Some(rid) = p.header.get_extension(rid_id) {
                let mid = p.header.get_extension(mid_id).unwrap_or_default();
                self.names.insert(ssrc, (mid, rid));
            }
        }
        let probe = self.probe(&msg);
        self.write.push_back(msg);
        if let Some(probe) = probe {
            self.write.push_back(probe);
        }
        Ok(())
    }

    fn poll_write(&mut self) -> Option<Self::Wout> {
        self.write.pop_front()
    }
}

impl RepairNamer {
    /// Keeps `msg` if it is a layer's packet, and every `probe_every` of them returns the one
    /// before, sent again on the layer's RTX stream (RFC 4588) and named as a repair.
    fn probe(
        &mut self,
        msg: &rtc::interceptor::TaggedPacket,
    ) -> Option<rtc::interceptor::TaggedPacket> {
        let every = self.probe_every?;
        let rtc::interceptor::Packet::Rtp(p) = &msg.message.packet else {
            return None;
        };
        let (_, _, repaired_id) = self.ids?;
        let (mid, rid) = self.names.get(&p.header.ssrc)?.clone();
        let mid_id = self.ids?.0;
        let (rtx, rtx_payload_type, last, sent) = self.probes.get_mut(&p.header.ssrc)?;
        *sent += 1;
        let again = last.replace(p.clone())?;
        if *sent % every != 0 {
            return None;
        }
        let mut r = rtc::rtp::Packet::default();
        r.header.version = 2;
        r.header.ssrc = *rtx;
        r.header.payload_type = *rtx_payload_type;
        r.header.timestamp = again.header.timestamp;
        r.header.marker = again.header.marker;
        self.probe_seq = self.probe_seq.wrapping_add(1);
        r.header.sequence_number = 40_000u16.wrapping_add(self.probe_seq);
        r.header.set_extension(mid_id, mid).ok()?;
        r.header.set_extension(repaired_id, rid).ok()?;
        let mut payload = again.header.sequence_number.to_be_bytes().to_vec();
        payload.extend_from_slice(&again.payload);
        r.payload = Bytes::from(payload);
        Some(rtc::interceptor::TaggedPacket {
            now: msg.now,
            transport: msg.transport,
            message: rtc::interceptor::AttributedPacket::new(rtc::interceptor::Packet::Rtp(r)),
        })
    }
}

impl rtc::interceptor::Interceptor for RepairNamer {
    fn bind_local_stream(&mut self, info: &rtc::interceptor::StreamInfo) {
        let id = |uri: &str| {
            info.rtp_header_extensions
                .iter()
                .find(|e| e.uri == uri)
                .and_then(|e| u8::try_from(e.id).ok())
        };
        if let (Some(mid), Some(rid), Some(repaired)) = (
            id(crate::core::MID_URI),
            id(crate::core::RID_URI),
            id(crate::core::REPAIRED_RID_URI),
        ) {
            self.ids = Some((mid, rid, repaired));
        }
        if let Some(rtx) = info.ssrc_rtx {
            self.repairs.insert(rtx, info.ssrc);
            if let Some(rtx_payload_type) = info.payload_type_rtx {
                self.probes
                    .insert(info.ssrc, (rtx, rtx_payload_type, None, 0));
            }
        }
    }
    fn unbind_local_stream(&mut self, info: &rtc::interceptor::StreamInfo) {
        if let Some(rtx) = info.ssrc_rtx {
            self.repairs.remove(&rtx);
        }
        self.probes.remove(&info.ssrc);
    }
    fn bind_remote_stream(&mut self, _info: &rtc::interceptor::StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &rtc::interceptor::StreamInfo) {}
}

/// A client peer connection with no UDP socket: ICE-TCP from loopback only.
pub async fn client_peer_connection_tcp_only(handler: Handler) -> Arc<dyn PeerConnection> {
    let mut me = crate::engine::media_engine().expect("media engine");
    let registry = crate::engine::interceptors(&mut me).expect("interceptors");
    let pc = PeerConnectionBuilder::new()
        .with_media_engine(me)
        .with_interceptor_registry(registry)
        .with_setting_engine(
            SettingEngineBuilder::new()
                .with_multicast_dns_mode(rtc::ice::mdns::MulticastDnsMode::Disabled)
                .with_include_loopback_candidate(true)
                .build(),
        )
        .with_handler(Arc::new(handler))
        .with_udp_addrs(Vec::<String>::new())
        .with_tcp_addrs(vec!["127.0.0.1:0".to_owned()])
        .build()
        .await
        .expect("client peer connection over TCP");
    Arc::new(pc)
}

fn to_json(m: &ClientMessage) -> String {
    serde_json::to_string(m).expect("client messages serialize")
}

/// A local track with one encoding of `mime` on `ssrc`.
pub fn local_track(
    stream: &str,
    name: &str,
    kind: RtpCodecKind,
    ssrc: u32,
    mime: &str,
    clock_rate: u32,
    channels: u16,
) -> Arc<TrackLocalStaticRTP> {
    Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
        stream.to_owned(),
        format!("{stream}-{name}"),
        name.to_owned(),
        kind,
        vec![RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters {
                ssrc: Some(ssrc),
                // Video retransmits on an RTX stream of its own, as browsers do.
                rtx: (kind == RtpCodecKind::Video).then(|| RTCRtpRtxParameters {
                    ssrc: ssrc.wrapping_add(1),
                }),
                ..Default::default()
            },
            codec: RTCRtpCodec {
                mime_type: mime.to_owned(),
                clock_rate,
                channels,
                sdp_fmtp_line: String::new(),
                rtcp_feedback: vec![],
            },
            ..Default::default()
        }],
    )))
}

impl Client {
    /// Stops reading both signaling and media (a stuck participant).
    pub fn stall(&self) {
        self.paused.store(true, Ordering::Release);
    }

    /// Sends one raw frame to the SFU.
    pub fn send_raw(&self, text: &str) {
        let _ = self.to_server.send(text.to_owned());
    }

    /// Sends a client message.
    pub fn send(&self, m: &ClientMessage) {
        self.send_raw(&serde_json::to_string(m).expect("json"));
    }

    /// Waits for the next event matching `f`, failing after `limit`.
    pub async fn wait_event<F: FnMut(&ServerMessage) -> bool>(
        &mut self,
        limit: Duration,
        mut f: F,
    ) -> ServerMessage {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some(m)) if f(&m) => return m,
                Ok(Some(_)) => {}
                Ok(None) => panic!("{}: event stream ended", self.id),
                Err(_) => panic!("{}: no matching event within {limit:?}", self.id),
            }
        }
    }

    /// Waits until `count` others' cameras are published, failing after `limit` for each;
    /// returns them as they were announced.
    pub async fn others_cameras(&mut self, count: usize, limit: Duration) -> Vec<TrackInfo> {
        let me = self.id.clone();
        let mut cameras = Vec::with_capacity(count);
        while cameras.len() < count {
            if let ServerMessage::TrackPublished(t) = self
                .wait_event(limit, |e| {
                    matches!(e, ServerMessage::TrackPublished(t) if t.kind == Kind::Video && t.participant != me)
                })
                .await
            {
                cameras.push(t);
            }
        }
        cameras
    }

    /// Reads signaling and media again after [`Client::stall`].
    pub fn unstall(&self) {
        self.paused.store(false, Ordering::Release);
        self.resume.notify_waiters();
    }

    /// Stops the pump and closes the peer connection (without `leave`).
    pub async fn close(self) {
        self.pump.abort();
        let _ = self.pc.close().await;
    }
}

/// Starts a publisher task: audio at 50 pps (160-byte payloads with an audio
/// level), video at `fps` with `per_frame` packets of `video_size` bytes.
pub fn start_publishing(
    client: &Client,
    fps: u32,
    per_frame: u32,
    video_size: usize,
    epoch: Instant,
) -> JoinHandle<()> {
    start_publishing_with(
        client,
        (fps, per_frame, video_size),
        Microphone::Continuous,
        epoch,
    )
}

/// [`start_publishing`] with the audio of `microphone`; the video as
/// `(fps, per_frame, video_size)`.
pub fn start_publishing_with(
    client: &Client,
    (fps, per_frame, video_size): (u32, u32, usize),
    microphone: Microphone,
    epoch: Instant,
) -> JoinHandle<()> {
    let mic = MicrophoneLoop::new(
        microphone,
        client.audio_ssrc,
        client.index,
        if client.index == 0 { 10 } else { 90 },
    );
    publish_loop(
        client.audio.clone(),
        client.video.clone(),
        mic,
        (client.video_ssrc, client.index),
        (fps, per_frame, video_size),
        epoch,
    )
}

/// How a test publisher's microphone sends, as 20 ms Opus frames.
///
/// WebRTC's Opus encoder with DTX (discontinuous transmission, on in browsers
/// for voice) sends every frame while someone talks, and while they are
/// silent only a comfort-noise update every 400 ms, a packet of a few dozen
/// bytes; the frames in between (a byte or two each) are not sent at all. In
/// a quiet Room, where one or two people talk, the audio a subscriber
/// receives is then mostly the talkers'.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Microphone {
    /// Every frame, whatever is said, as Opus without DTX: 50 packets/s of
    /// 160 bytes, a constant audio level (what test publishers always sent).
    Continuous,
    /// Opus with DTX, the person talking: every frame, a loud voice.
    Talking,
    /// Opus with DTX, the person silent: a comfort-noise packet of
    /// [`DTX_BYTES`] every [`DTX_INTERVAL`], its audio level silence.
    Silent,
}

/// A comfort-noise update's size (payload bytes) under DTX.
pub const DTX_BYTES: usize = 40;
/// How often a silent DTX microphone sends its comfort-noise update.
pub const DTX_INTERVAL: Duration = Duration::from_millis(400);
/// Opus frames of 20 ms per comfort-noise update.
const DTX_FRAMES: u32 = 20;
/// The size of a voiced test Opus frame (64 kbit/s).
const VOICE_BYTES: usize = 160;

/// The microphone side of a publishing loop: one call per 20 ms frame.
struct MicrophoneLoop {
    microphone: Microphone,
    ssrc: u32,
    index: u8,
    /// The audio level (-dBov) of [`Microphone::Continuous`].
    level: u8,
    /// 20 ms frames so far, sent or not: the RTP timestamp follows them.
    frame: u32,
    /// Packets sent: the RTP and payload sequence follow them.
    seq: u32,
}

impl MicrophoneLoop {
    fn new(microphone: Microphone, ssrc: u32, index: u8, level: u8) -> Self {
        Self {
            microphone,
            ssrc,
            index,
            level,
            frame: 0,
            seq: 0,
        }
    }

    /// What frame number `frame` sends, if anything: (payload bytes, audio
    /// level in -dBov, voice).
    fn packet(&self, frame: u32) -> Option<(usize, u8, bool)> {
        match self.microphone {
            Microphone::Continuous => Some((VOICE_BYTES, self.level, true)),
            Microphone::Talking => Some((VOICE_BYTES, 30, true)),
            Microphone::Silent if frame.is_multiple_of(DTX_FRAMES) => Some((DTX_BYTES, 127, false)),
            Microphone::Silent => None,
        }
    }

    /// The next 20 ms frame: sent, or (silent under DTX) skipped.
    async fn tick(&mut self, track: &TrackLocalStaticRTP, epoch: Instant) {
        let frame = self.frame;
        self.frame = self.frame.wrapping_add(1);
        let Some((size, level, voice)) = self.packet(frame) else {
            return;
        };
        let now = epoch.elapsed().as_micros() as u64;
        let mut p = rtc::rtp::Packet::default();
        p.header.version = 2;
        p.header.payload_type = 111;
        p.header.ssrc = self.ssrc;
        p.header.sequence_number = self.seq as u16;
        p.header.timestamp = frame.wrapping_mul(960);
        p.payload = payload(self.index, 0, self.seq, size, now);
        let level = HeaderExtension::AudioLevel(AudioLevelExtension { level, voice });
        if track.write_rtp_with_extensions(p, &[level]).await.is_ok() {
            self.seq += 1;
        }
    }
}

/// The publishing loop of [`start_publishing`] on any pair of local tracks.
pub fn publish_tracks(
    audio: Arc<TrackLocalStaticRTP>,
    video: Arc<TrackLocalStaticRTP>,
    (a_ssrc, v_ssrc, index): (u32, u32, u8),
    fps: u32,
    per_frame: u32,
    video_size: usize,
    epoch: Instant,
) -> JoinHandle<()> {
    let mic = MicrophoneLoop::new(
        Microphone::Continuous,
        a_ssrc,
        index,
        if index == 0 { 10 } else { 90 },
    );
    publish_loop(
        audio,
        video,
        mic,
        (v_ssrc, index),
        (fps, per_frame, video_size),
        epoch,
    )
}

/// The loop of [`publish_tracks`] with any microphone.
fn publish_loop(
    audio: Arc<TrackLocalStaticRTP>,
    video: Arc<TrackLocalStaticRTP>,
    mut mic: MicrophoneLoop,
    (v_ssrc, index): (u32, u8),
    (fps, per_frame, video_size): (u32, u32, usize),
    epoch: Instant,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut audio_tick = tokio::time::interval(Duration::from_millis(20));
        let mut video_tick =
            tokio::time::interval(Duration::from_micros(1_000_000 / u64::from(fps.max(1))));
        audio_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        video_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut v_seq = 0u32;
        loop {
            tokio::select! {
                _ = audio_tick.tick() => mic.tick(&audio, epoch).await,
                _ = video_tick.tick() => {
                    for i in 0..per_frame {
                        let now = epoch.elapsed().as_micros() as u64;
                        let mut p = rtc::rtp::Packet::default();
                        p.header.version = 2;
                        p.header.payload_type = 96;
                        p.header.ssrc = v_ssrc;
                        p.header.sequence_number = v_seq as u16;
                        p.header.timestamp = (v_seq / per_frame.max(1)).wrapping_mul(3000);
                        p.header.marker = i + 1 == per_frame;
                        p.payload = payload(index, 1, v_seq, video_size, now);
                        if video.write_rtp(p).await.is_err() {
                            break;
                        }
                        v_seq += 1;
                    }
                }
            }
        }
    })
}

/// A VP8 camera track sent as simulcast layers `(rid, ssrc)`.
pub fn simulcast_track(stream: &str, layers: &[(String, u32)]) -> Arc<TrackLocalStaticRTP> {
    let codings = layers
        .iter()
        .map(|(rid, ssrc)| RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters {
                rid: rid.clone(),
                ssrc: Some(*ssrc),
                ..Default::default()
            },
            codec: RTCRtpCodec {
                mime_type: "video/VP8".to_owned(),
                clock_rate: 90000,
                channels: 0,
                sdp_fmtp_line: String::new(),
                rtcp_feedback: vec![],
            },
            ..Default::default()
        })
        .collect();
    Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
        stream.to_owned(),
        format!("{stream}-video"),
        "video".to_owned(),
        RtpCodecKind::Video,
        codings,
    )))
}

/// An RTP header extension of raw bytes (a mid or rid).
struct Sdes(Bytes);

impl rtc::shared::marshal::MarshalSize for Sdes {
    fn marshal_size(&self) -> usize {
        self.0.len()
    }
}

impl rtc::shared::marshal::Marshal for Sdes {
    fn marshal_to(&self, buf: &mut [u8]) -> rtc::shared::error::Result<usize> {
        let n = self.0.len();
        buf.get_mut(..n)
            .ok_or(rtc::shared::error::Error::ErrBufferTooSmall)?
            .copy_from_slice(&self.0);
        Ok(n)
    }
}

/// The frame sizes of the simulcast test layers, lowest first.
pub const SIMULCAST_SIZES: [(u16, u16); 3] = [(320, 180), (640, 360), (1280, 720)];

/// A one-packet VP8 frame of simulcast `layer` numbered `frame`: a real VP8
/// payload descriptor and frame tag (a keyframe declares its size), then the
/// layer and frame number ([`decode_simulcast`]), padded to `size` bytes.
pub fn vp8_payload(layer: u8, frame: u32, keyframe: bool, size: usize) -> Bytes {
    // Descriptor: start of partition 0, no extensions.
    let mut v = vec![0x10];
    if keyframe {
        let (w, h) = SIMULCAST_SIZES[usize::from(layer.min(2))];
        v.extend_from_slice(&[0x50, 0x00, 0x00, 0x9d, 0x01, 0x2a]);
        v.extend_from_slice(&w.to_le_bytes());
        v.extend_from_slice(&h.to_le_bytes());
    } else {
        v.extend_from_slice(&[0x51, 0x00, 0x00]);
    }
    v.push(layer);
    v.extend_from_slice(&frame.to_be_bytes());
    v.push(u8::from(keyframe));
    v.resize(size.max(v.len()), 0xAB);
    Bytes::from(v)
}

/// Reads what [`vp8_payload`] wrote: (layer, frame number, keyframe).
pub fn decode_simulcast(p: &[u8]) -> Option<(u8, u32, bool)> {
    let at = if crate::simulcast::is_keyframe(crate::simulcast::VideoCodec::Vp8, p) {
        11
    } else {
        4
    };
    let layer = *p.get(at)?;
    let frame = u32::from_be_bytes(p.get(at + 1..at + 5)?.try_into().ok()?);
    let key = *p.get(at + 5)? == 1;
    Some((layer, frame, key))
}

/// Starts publishing a [`join_simulcast`] client: audio as [`start_publishing`]
/// does, and each video layer one VP8 frame of one packet per tick at `fps`
/// (200, 600 and 1200 bytes from low to high). Each layer sends a keyframe
/// first and then only when the SFU asks for one (PLI), so a layer switch
/// shows that the SFU asked.
pub fn publish_simulcast(client: &Client, fps: u32, epoch: Instant) -> JoinHandle<()> {
    publish_simulcast_naming(client, fps, epoch, u32::MAX)
}

/// Like [`publish_simulcast`], naming each layer (mid and rid header
/// extensions) on its first `named_frames` frames only, as a browser does once
/// the receiver's reports show that it knows the layer's SSRC: from then on the
/// SFU can tell the layers apart by SSRC alone.
pub fn publish_simulcast_naming(
    client: &Client,
    fps: u32,
    epoch: Instant,
    named_frames: u32,
) -> JoinHandle<()> {
    publish_simulcast_inner(client, fps, epoch, named_frames, Microphone::Continuous)
}

/// [`publish_simulcast`] with the audio of `microphone`.
pub fn publish_simulcast_with(
    client: &Client,
    fps: u32,
    microphone: Microphone,
    epoch: Instant,
) -> JoinHandle<()> {
    publish_simulcast_inner(client, fps, epoch, u32::MAX, microphone)
}

fn publish_simulcast_inner(
    client: &Client,
    fps: u32,
    epoch: Instant,
    named_frames: u32,
    microphone: Microphone,
) -> JoinHandle<()> {
    let tracks = SimulcastTracks {
        pc: client.pc.clone(),
        audio: client.audio.clone(),
        audio_ssrc: client.audio_ssrc,
        video: client.video.clone(),
        layers: client.simulcast.clone(),
        index: client.index,
    };
    publish_simulcast_loop(tracks, fps, epoch, named_frames, microphone)
}

/// The tracks a simulcast publisher sends on, when it is not a [`Client`]
/// (a peer connection to another server, say).
pub struct SimulcastTracks {
    /// The connection the tracks are on (its local description names the video's mid).
    pub pc: Arc<dyn PeerConnection>,
    /// The microphone.
    pub audio: Arc<TrackLocalStaticRTP>,
    /// SSRC of the microphone.
    pub audio_ssrc: u32,
    /// The camera ([`simulcast_track`]).
    pub video: Arc<TrackLocalStaticRTP>,
    /// The camera's layers (rid, SSRC), lowest first.
    pub layers: Vec<(String, u32)>,
    /// Index written into every audio payload.
    pub index: u8,
}

/// [`publish_simulcast_with`] on tracks of any connection.
pub fn publish_simulcast_tracks(
    tracks: SimulcastTracks,
    fps: u32,
    microphone: Microphone,
    epoch: Instant,
) -> JoinHandle<()> {
    publish_simulcast_loop(tracks, fps, epoch, u32::MAX, microphone)
}

fn publish_simulcast_loop(
    tracks: SimulcastTracks,
    fps: u32,
    epoch: Instant,
    named_frames: u32,
    microphone: Microphone,
) -> JoinHandle<()> {
    let SimulcastTracks {
        pc,
        audio,
        audio_ssrc,
        video,
        layers,
        index,
    } = tracks;
    let mut mic = MicrophoneLoop::new(microphone, audio_ssrc, index, 90);
    tokio::spawn(async move {
        let mid = video_mid(pc.as_ref()).await;
        let wanted: Arc<Vec<AtomicBool>> =
            Arc::new(layers.iter().map(|_| AtomicBool::new(true)).collect());
        let (pli_video, pli_wanted, pli_layers) = (video.clone(), wanted.clone(), layers.clone());
        let plis = tokio::spawn(async move {
            while let Some(event) = pli_video.poll().await {
                let webrtc::media_stream::track_local::TrackLocalEvent::OnRtcpPacket(packets) =
                    event
                else {
                    continue;
                };
                for p in packets {
                    let Some(pli) = p
                        .as_any()
                        .downcast_ref::<rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication>()
                    else {
                        continue;
                    };
                    if let Some(i) = pli_layers.iter().position(|(_, s)| *s == pli.media_ssrc) {
                        pli_wanted[i].store(true, Ordering::Release);
                    }
                }
            }
        });
        let mut audio_tick = tokio::time::interval(Duration::from_millis(20));
        let mut video_tick =
            tokio::time::interval(Duration::from_micros(1_000_000 / u64::from(fps.max(1))));
        audio_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        video_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let seq_base: Vec<u16> = layers.iter().map(|_| rand::random()).collect();
        let ts_base: Vec<u32> = layers.iter().map(|_| rand::random()).collect();
        let mut frame = 0u32;
        loop {
            tokio::select! {
                _ = audio_tick.tick() => mic.tick(&audio, epoch).await,
                _ = video_tick.tick() => {
                    for (i, (rid, ssrc)) in layers.iter().enumerate() {
                        let keyframe = wanted[i].swap(false, Ordering::AcqRel);
                        let mut p = rtc::rtp::Packet::default();
                        p.header.version = 2;
                        p.header.payload_type = 96;
                        p.header.ssrc = *ssrc;
                        p.header.sequence_number = seq_base[i].wrapping_add(frame as u16);
                        p.header.timestamp = ts_base[i].wrapping_add(frame.wrapping_mul(3000));
                        p.header.marker = true;
                        p.payload = vp8_payload(i as u8, frame, keyframe, [200, 600, 1200][i.min(2)]);
                        let extensions = if frame < named_frames {
                            vec![
                                HeaderExtension::Custom {
                                    uri: crate::core::MID_URI.into(),
                                    extension: Box::new(Sdes(Bytes::from(mid.clone()))),
                                },
                                HeaderExtension::Custom {
                                    uri: crate::core::RID_URI.into(),
                                    extension: Box::new(Sdes(Bytes::from(rid.clone()))),
                                },
                            ]
                        } else {
                            Vec::new()
                        };
                        if let Err(e) = video.write_rtp_with_extensions(p, &extensions).await {
                            eprintln!("simulcast layer {rid} not sent: {e}");
                        }
                    }
                    frame += 1;
                }
            }
            if plis.is_finished() {
                break;
            }
        }
    })
}

/// The mid of the video m-line of `pc`'s local description.
async fn video_mid(pc: &dyn PeerConnection) -> String {
    let sdp = pc
        .local_description()
        .await
        .map(|d| d.sdp)
        .unwrap_or_default();
    sdp.split("m=")
        .find(|section| section.starts_with("video"))
        .and_then(|section| {
            section
                .lines()
                .find_map(|l| l.trim().strip_prefix("a=mid:").map(str::to_owned))
        })
        .expect("the client's offer has a video m-line with a mid")
}

/// Per (publisher index, kind): the sequence numbers seen, in arrival order.
pub type Tally = HashMap<(u8, u8), Vec<u32>>;

/// Drains what `client` received so far into `tally`, checking every payload is
/// intact and arrived on the stream labelled with its publisher's id.
pub fn drain(client: &mut Client, ids: &[String], tally: &mut Tally) {
    while let Ok(r) = client.received.try_recv() {
        let (sender, kind, seq, _) = decode(&r.payload)
            .unwrap_or_else(|| panic!("{}: corrupted payload from {}", client.id, r.stream_id));
        assert_eq!(
            ids.get(usize::from(sender)),
            Some(&r.stream_id),
            "{}: payload of sender {sender} arrived on stream {}",
            client.id,
            r.stream_id
        );
        tally.entry((sender, kind)).or_default().push(seq);
    }
}

/// How far behind the newest packet a repaired one may arrive: a retransmission
/// answers a NACK within a few round trips, never thousands of packets later.
const REPAIR_WINDOW: u32 = 1024;

/// The longest run of consecutive sequence numbers ending at the newest in
/// `seqs`, after checking what arrived: no packet twice, and none behind the
/// newest except one that fills a gap (a lost packet the SFU repaired by
/// NACK and RTX, which comes after the packets sent later), at most
/// [`REPAIR_WINDOW`] behind.
pub fn checked_tail_run(seqs: &[u32]) -> usize {
    let mut seen = std::collections::HashSet::with_capacity(seqs.len());
    let mut newest = None;
    for &seq in seqs {
        assert!(seen.insert(seq), "duplicated: {seq} in {seqs:?}");
        match newest {
            Some(n) if seq < n => assert!(
                n - seq <= REPAIR_WINDOW,
                "out of order: {seq} arrived after {n}, too late to be a repair"
            ),
            _ => newest = Some(seq),
        }
    }
    let Some(newest) = newest else { return 0 };
    (0..=newest)
        .rev()
        .take_while(|seq| seen.contains(seq))
        .count()
}

/// Waits until `client` has received at least `run` consecutive packets of
/// both kinds from each publisher index in `from`, checking integrity, labels
/// and order of everything on the way; panics after `limit`.
pub async fn receive_from(
    client: &mut Client,
    ids: &[String],
    from: &[u8],
    run: usize,
    tally: &mut Tally,
    limit: Duration,
) {
    let deadline = Instant::now() + limit;
    loop {
        drain(client, ids, tally);
        let done = from.iter().all(|s| {
            [0u8, 1].iter().all(|k| {
                tally
                    .get(&(*s, *k))
                    .is_some_and(|seqs| checked_tail_run(seqs) >= run)
            })
        });
        if done {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} did not receive {run} in-order packets from {from:?}: {:?}",
            client.id,
            tally
                .iter()
                .map(|(k, v)| (*k, v.len(), checked_tail_run(v)))
                .collect::<Vec<_>>()
        );
        // Polling interval for a failure bound, not synchronisation: packets
        // arrive on their own schedule.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[cfg(test)]
mod tail_run_tests {
    use super::checked_tail_run;

    #[test]
    fn the_run_ends_at_the_newest_and_a_repair_fills_its_gap() {
        assert_eq!(checked_tail_run(&[]), 0);
        assert_eq!(checked_tail_run(&[1, 2, 3, 4]), 4);
        // 3 was lost and repaired after 4 and 5 went out.
        assert_eq!(checked_tail_run(&[1, 2, 4, 5, 3, 6]), 6);
        // 3 never came: the run is what follows the gap.
        assert_eq!(checked_tail_run(&[1, 2, 4, 5, 6]), 3);
    }

    #[test]
    #[should_panic(expected = "duplicated")]
    fn a_packet_twice_is_refused() {
        checked_tail_run(&[1, 2, 3, 2, 4]);
    }

    #[test]
    #[should_panic(expected = "too late to be a repair")]
    fn a_packet_from_far_behind_is_refused() {
        checked_tail_run(&[1, 2, 3000, 3]);
    }
}

#[cfg(test)]
mod microphone_tests {
    use super::*;

    /// (packets, payload bytes, silent ones) over `frames` 20 ms frames.
    fn sent(microphone: Microphone, frames: u32) -> (u32, usize, u32) {
        let mic = MicrophoneLoop::new(microphone, 1, 3, 90);
        (0..frames).filter_map(|f| mic.packet(f)).fold(
            (0, 0, 0),
            |(n, bytes, silent), (size, level, voice)| {
                (
                    n + 1,
                    bytes + size,
                    silent + u32::from(level == 127 && !voice),
                )
            },
        )
    }

    #[test]
    fn a_silent_dtx_microphone_sends_a_comfort_noise_packet_every_400_ms() {
        // Ten seconds: 500 frames of 20 ms.
        assert_eq!(sent(Microphone::Continuous, 500), (500, 500 * 160, 0));
        assert_eq!(sent(Microphone::Talking, 500), (500, 500 * 160, 0));
        let (packets, bytes, silent) = sent(Microphone::Silent, 500);
        assert_eq!(packets as u128, 10_000 / DTX_INTERVAL.as_millis());
        assert_eq!(silent, packets, "every one marked silence");
        // Well under a kilobit per second of payload, where a talker sends 64.
        assert!(bytes * 8 / 10 < 1000, "{bytes} bytes in 10 s");
    }
}
