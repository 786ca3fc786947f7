//! The tokio driver: rooms, participants, their peer connections and the tasks
//! that move packets between them. Decisions are delegated to [`crate::core`].
//!
//! Tasks per participant:
//! - the **session** task ([`Session::run`]): signaling, and every operation on the
//!   participant's peer connection (so negotiation is serialised);
//! - one **reader** per published track: polls the publisher's track and hands
//!   each packet to every subscriber's queue with `try_send` (never waits);
//! - one **writer** per subscription: drains that queue, rewrites the packet for
//!   the subscriber's leg and writes it to the subscriber's connection;
//! - one **feedback** task per subscription: relays PLI/FIR to the publisher.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use futures_util::{Sink, SinkExt, Stream, StreamExt};
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodingParameters, RTCRtpEncodingParameters, RTCRtpRtxParameters,
    RtpCodecKind,
};
use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCConfigurationBuilder,
    RTCIceCandidateInit, RTCIceCandidateType, RTCIceServer, RTCPeerConnectionIceEvent,
    RTCPeerConnectionState, RTCSessionDescription,
};
use webrtc::rtp_transceiver::RtpSender;

use crate::core::{
    self, AUDIO_LEVEL_URI, Admission, CodecKey, KeyframeThrottle, Negotiator, OnRemoteOffer,
    Rewriter, RtpFields, SpeakerDetector,
};
use crate::error::{Error, Result};
use crate::signaling::{
    Candidate, ClientMessage, IceServer, Kind, ParticipantInfo, RATE_BURST, RATE_PER_SEC,
    RateLimiter, ServerMessage, TrackInfo,
};
use crate::token::{Claims, TokenKey, unix_now};

/// Packets queued per subscription before the forwarder starts dropping.
const SUBSCRIBER_QUEUE: usize = 256;
/// Server → client signaling messages queued before a session counts as stuck.
const OUTBOX: usize = 512;
/// Room events queued per session before it counts as stuck.
const ROOM_EVENTS: usize = 1024;
/// Minimum gap between keyframe requests relayed to one publisher track.
const KEYFRAME_INTERVAL: Duration = Duration::from_millis(300);
/// How often the active speaker is re-evaluated.
const SPEAKER_INTERVAL: Duration = Duration::from_millis(200);
/// How long a deleted Room keeps refusing joins (longer than any token lives).
const ENDED_ROOM_MEMORY: Duration = Duration::from_secs(600);

/// How the SFU binds and what it tells clients.
#[derive(Debug, Clone)]
pub struct SfuConfig {
    /// First UDP port for media (0 with `udp_port_max` 0: any free port).
    pub udp_port_min: u16,
    /// Last UDP port for media, inclusive. Each participant uses one port.
    pub udp_port_max: u16,
    /// The address clients reach when the SFU sits behind a 1:1 NAT; advertised
    /// instead of the bound address in host candidates.
    pub public_ip: Option<IpAddr>,
    /// Address media sockets bind to (`127.0.0.1` for development and tests).
    pub bind_ip: IpAddr,
    /// STUN/TURN servers handed to clients in `welcome` (see README for coturn).
    pub ice_servers: Vec<IceServer>,
    /// Key that verifies media tokens; the web layer signs with the same key.
    pub token_key: TokenKey,
    /// Capacity of a Room whose token carries none.
    pub max_participants_default: u32,
}

impl SfuConfig {
    /// Loopback only, any free port, no ICE servers: for development and tests.
    pub fn loopback(token_key: TokenKey) -> Self {
        Self {
            udp_port_min: 0,
            udp_port_max: 0,
            public_ip: None,
            bind_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            ice_servers: Vec::new(),
            token_key,
            max_participants_default: 50,
        }
    }
}

/// A snapshot of the SFU's counters, for `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Metrics {
    /// Rooms with at least one participant.
    pub gatherings: usize,
    /// Participants across all rooms.
    pub participants: usize,
    /// Published tracks across all rooms.
    pub published_tracks: usize,
    /// RTP packets written to subscribers.
    pub packets_forwarded: u64,
    /// RTP payload bytes written to subscribers.
    pub bytes_forwarded: u64,
    /// Packets not forwarded (full queue, not yet negotiated, unmapped codec).
    pub packets_dropped: u64,
    /// Keyframe requests relayed to publishers.
    pub keyframe_requests: u64,
    /// Joins refused (bad token, full or ended Room).
    pub joins_refused: u64,
}

/// Why a session ended. [`CloseReason::text`] is meant for the WebSocket close frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// The client sent `leave`.
    Left,
    /// The client's socket closed.
    Disconnected,
    /// The same participant joined again from elsewhere.
    Replaced,
    /// The participant was removed from the Space.
    Removed,
    /// The Room was deleted.
    RoomEnded,
    /// The client broke the signaling protocol.
    Protocol(String),
    /// The client did not read its messages fast enough.
    TooSlow,
    /// The media connection failed or could not be negotiated.
    Failed(String),
}

impl CloseReason {
    /// Short text for a close frame (at most 123 bytes, as WebSocket requires).
    pub fn text(&self) -> String {
        let s = match self {
            CloseReason::Left => "left".to_owned(),
            CloseReason::Disconnected => "disconnected".to_owned(),
            CloseReason::Replaced => "joined from another place".to_owned(),
            CloseReason::Removed => "removed from the space".to_owned(),
            CloseReason::RoomEnded => "room has ended".to_owned(),
            CloseReason::Protocol(why) => format!("protocol error: {why}"),
            CloseReason::TooSlow => "not reading messages".to_owned(),
            CloseReason::Failed(why) => format!("media failed: {why}"),
        };
        let mut end = s.len().min(123);
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s[..end].to_owned()
    }

    /// Whether the client should be told with an `error` message before closing.
    fn is_error(&self) -> bool {
        !matches!(self, CloseReason::Left | CloseReason::Disconnected)
    }
}

#[derive(Default)]
struct Counters {
    packets_forwarded: AtomicU64,
    bytes_forwarded: AtomicU64,
    packets_dropped: AtomicU64,
    keyframe_requests: AtomicU64,
    joins_refused: AtomicU64,
}

struct Inner {
    config: SfuConfig,
    rooms: Mutex<HashMap<String, Arc<Room>>>,
    ended_rooms: Mutex<HashMap<String, Instant>>,
    nonces: Mutex<HashMap<String, u64>>,
    next_port: AtomicUsize,
    next_session: AtomicU64,
    counters: Counters,
    epoch: Instant,
}

/// The instance's SFU. Cheap to clone; all clones share the same rooms.
#[derive(Clone)]
pub struct Sfu {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Sfu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sfu")
            .field("metrics", &self.metrics())
            .finish()
    }
}

struct Room {
    id: String,
    state: Mutex<RoomState>,
    speaker: Mutex<SpeakerState>,
}

#[derive(Default)]
struct RoomState {
    members: HashMap<String, Arc<Member>>,
}

struct SpeakerState {
    detector: SpeakerDetector<String>,
    last_evaluated: Duration,
}

/// A participant as the Room sees them.
struct Member {
    session_id: u64,
    info: Mutex<ParticipantInfo>,
    events: mpsc::Sender<RoomEvent>,
    kick: watch::Sender<Option<CloseReason>>,
    published: Mutex<Vec<Arc<Published>>>,
}

impl Member {
    fn kick(&self, reason: CloseReason) {
        self.kick.send_if_modified(|current| {
            if current.is_none() {
                *current = Some(reason);
                true
            } else {
                false
            }
        });
    }

    /// Queues an event for the member's session; a session too far behind is cut off.
    fn notify(&self, event: RoomEvent) {
        if self.events.try_send(event).is_err() {
            self.kick(CloseReason::TooSlow);
        }
    }
}

enum RoomEvent {
    Send(ServerMessage),
    Subscribe(Arc<Published>),
    Unsubscribe(String),
}

enum PcEvent {
    Candidate(RTCIceCandidateInit),
    Track(Arc<dyn TrackRemote>),
    Failed,
}

/// One track a participant publishes.
struct Published {
    publisher: String,
    publisher_session: u64,
    mid: String,
    track_id: String,
    kind: Kind,
    remote: Arc<dyn TrackRemote>,
    media_ssrc: u32,
    codec: RTCRtpCodec,
    codecs: Vec<(u8, CodecKey)>,
    extensions: Vec<(u8, String)>,
    audio_level_id: Option<u8>,
    subscribers: RwLock<Vec<Link>>,
    keyframes: Mutex<KeyframeThrottle>,
}

struct Link {
    subscriber_session: u64,
    queue: mpsc::Sender<rtc::rtp::Packet>,
    /// Set when a packet was dropped for this subscriber, so the next admitted
    /// video packet is preceded by a keyframe request.
    needs_keyframe: bool,
}

impl Published {
    fn info(&self) -> TrackInfo {
        TrackInfo {
            participant: self.publisher.clone(),
            stream_id: self.publisher.clone(),
            track_id: self.track_id.clone(),
            mid: self.mid.clone(),
            kind: self.kind,
        }
    }

    /// Asks the publisher for a keyframe unless one was asked for very recently.
    async fn request_keyframe(&self, sfu: &Inner) {
        if self.kind != Kind::Video {
            return;
        }
        let now = sfu.epoch.elapsed();
        let allowed = self
            .keyframes
            .lock()
            .map(|mut t| t.request(now))
            .unwrap_or(false);
        if allowed {
            sfu.counters
                .keyframe_requests
                .fetch_add(1, Ordering::Relaxed);
            let pli = PictureLossIndication {
                sender_ssrc: 0,
                media_ssrc: self.media_ssrc,
            };
            if let Err(e) = self.remote.write_rtcp(vec![Box::new(pli)]).await {
                tracing::debug!(track = %self.track_id, "keyframe request not sent: {e}");
            }
        }
    }
}

impl Sfu {
    /// Creates the SFU. Nothing is bound until participants join.
    pub fn new(config: SfuConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                config,
                rooms: Mutex::new(HashMap::new()),
                ended_rooms: Mutex::new(HashMap::new()),
                nonces: Mutex::new(HashMap::new()),
                next_port: AtomicUsize::new(0),
                next_session: AtomicU64::new(1),
                counters: Counters::default(),
                epoch: Instant::now(),
            }),
        }
    }

    /// The key media tokens are signed with (for the web layer's `issue`).
    pub fn token_key(&self) -> &TokenKey {
        &self.inner.config.token_key
    }

    /// Admits a participant to `room` from the first signaling frame of a socket.
    ///
    /// `room` is the Room the socket was opened on (from the URL); a token for any
    /// other Room is refused. `first_frame` is the `{"type":"join","token":…}` message (a bare token is
    /// accepted too). On success the participant is in the Room (counted by
    /// presence and capacity) and the returned [`Session`] must be [`run`](Session::run).
    /// On error, send [`Error::to_frame`] and close the socket: nothing was admitted.
    pub async fn connect(&self, room: &str, first_frame: &str) -> Result<Session> {
        let result = self.admit(room, first_frame).await;
        if let Err(e) = &result {
            self.inner
                .counters
                .joins_refused
                .fetch_add(1, Ordering::Relaxed);
            tracing::info!("join refused: {e}");
        }
        result
    }

    async fn admit(&self, room: &str, first_frame: &str) -> Result<Session> {
        let token = match ClientMessage::parse(first_frame) {
            Ok(ClientMessage::Join { token }) => token,
            Ok(_) => return Err(Error::Protocol("the first message must be join".to_owned())),
            Err(_) if !first_frame.trim_start().starts_with('{') => first_frame.trim().to_owned(),
            Err(e) => return Err(e),
        };
        let now = unix_now();
        let claims = self.inner.config.token_key.verify(&token, now)?;
        if claims.room != room {
            return Err(Error::WrongRoom);
        }
        {
            let mut nonces = self.inner.nonces.lock().map_err(|_| poisoned())?;
            nonces.retain(|_, expires| *expires > now);
            if nonces.contains_key(&claims.nonce) {
                return Err(Error::ReusedToken);
            }
            nonces.insert(claims.nonce.clone(), claims.expires_at);
        }
        if self.room_ended(&claims.room) {
            return Err(Error::RoomEnded);
        }

        let session_id = self.inner.next_session.fetch_add(1, Ordering::Relaxed);
        let (pc_tx, pc_rx) = mpsc::unbounded_channel();
        let pc = self.build_peer_connection(pc_tx).await?;
        let (events_tx, events_rx) = mpsc::channel(ROOM_EVENTS);
        let (kick_tx, kick_rx) = watch::channel(None);
        let member = Arc::new(Member {
            session_id,
            info: Mutex::new(ParticipantInfo {
                id: claims.participant.clone(),
                display_name: claims.display_name.clone(),
                handle: claims.handle.clone(),
                audio_muted: false,
                video_muted: false,
                screensharing: false,
            }),
            events: events_tx,
            kick: kick_tx,
            published: Mutex::new(Vec::new()),
        });

        let joined = self.join_room(&claims, &member);
        let (room, others) = match joined {
            Ok(v) => v,
            Err(e) => {
                let _ = pc.close().await;
                return Err(e);
            }
        };
        tracing::info!(room = %claims.room, participant = %claims.participant, "joined");
        Ok(Session {
            sfu: self.clone(),
            room,
            claims,
            session_id,
            member,
            others,
            pc,
            pc_events: pc_rx,
            room_events: events_rx,
            kick: kick_rx,
            finished: false,
        })
    }

    /// Inserts the member under the Room lock (capacity is checked atomically) and
    /// returns the Room and the others' infos for `welcome`.
    fn join_room(
        &self,
        claims: &Claims,
        member: &Arc<Member>,
    ) -> Result<(Arc<Room>, Vec<ParticipantInfo>)> {
        let mut rooms = self.inner.rooms.lock().map_err(|_| poisoned())?;
        if self.room_ended(&claims.room) {
            return Err(Error::RoomEnded);
        }
        let room = rooms
            .entry(claims.room.clone())
            .or_insert_with(|| {
                Arc::new(Room {
                    id: claims.room.clone(),
                    state: Mutex::new(RoomState::default()),
                    speaker: Mutex::new(SpeakerState {
                        detector: SpeakerDetector::new(),
                        last_evaluated: Duration::ZERO,
                    }),
                })
            })
            .clone();
        let mut state = room.state.lock().map_err(|_| poisoned())?;
        let capacity = claims
            .capacity
            .unwrap_or(self.inner.config.max_participants_default) as usize;
        let others_count = state
            .members
            .keys()
            .filter(|id| **id != claims.participant)
            .count();
        if others_count >= capacity {
            drop(state);
            if rooms.get(&claims.room).is_some_and(|r| {
                r.state
                    .lock()
                    .map(|s| s.members.is_empty())
                    .unwrap_or(false)
            }) {
                rooms.remove(&claims.room);
            }
            return Err(Error::RoomFull);
        }
        if let Some(old) = state.members.remove(&claims.participant) {
            old.kick(CloseReason::Replaced);
            // The replaced session's own cleanup will not find itself any more, so
            // its departure is announced here.
            for m in state.members.values() {
                for p in lock_vec(&old.published) {
                    m.notify(RoomEvent::Unsubscribe(p.track_id.clone()));
                }
            }
        }
        let mut others = Vec::new();
        let joined = ServerMessage::ParticipantJoined {
            id: claims.participant.clone(),
            display_name: claims.display_name.clone(),
            handle: claims.handle.clone(),
        };
        for m in state.members.values() {
            if let Ok(info) = m.info.lock() {
                others.push(info.clone());
            }
            m.notify(RoomEvent::Send(joined.clone()));
            for p in lock_vec(&m.published) {
                member.notify(RoomEvent::Subscribe(p));
            }
        }
        state
            .members
            .insert(claims.participant.clone(), member.clone());
        drop(state);
        Ok((room, others))
    }

    fn room_ended(&self, room: &str) -> bool {
        self.inner
            .ended_rooms
            .lock()
            .map(|m| m.contains_key(room))
            .unwrap_or(true)
    }

    async fn build_peer_connection(
        &self,
        events: mpsc::UnboundedSender<PcEvent>,
    ) -> Result<Arc<dyn PeerConnection>> {
        let cfg = &self.inner.config;
        let (min, max) = (cfg.udp_port_min, cfg.udp_port_max.max(cfg.udp_port_min));
        let span = usize::from(max - min) + 1;
        let attempts = if min == 0 { 1 } else { span.min(64) };
        let mut last_error = Error::NoPort;
        for _ in 0..attempts {
            let port = if min == 0 {
                0
            } else {
                let n = self.inner.next_port.fetch_add(1, Ordering::Relaxed) % span;
                min + n as u16
            };
            match self
                .try_build(SocketAddr::new(cfg.bind_ip, port), events.clone())
                .await
            {
                Ok(pc) => return Ok(pc),
                Err(e) => {
                    tracing::debug!(port, "peer connection not built: {e}");
                    last_error = e;
                }
            }
        }
        if min != 0 {
            return Err(Error::NoPort);
        }
        Err(last_error)
    }

    async fn try_build(
        &self,
        addr: SocketAddr,
        events: mpsc::UnboundedSender<PcEvent>,
    ) -> Result<Arc<dyn PeerConnection>> {
        let cfg = &self.inner.config;
        let mut media_engine = crate::engine::media_engine()?;
        let registry = crate::engine::interceptors(&mut media_engine)?;
        let mut settings = SettingEngineBuilder::new()
            .with_multicast_dns_mode(rtc::ice::mdns::MulticastDnsMode::Disabled)
            .with_include_loopback_candidate(addr.ip().is_loopback());
        if let Some(public) = cfg.public_ip {
            settings =
                settings.with_nat_1to1_ips(vec![public.to_string()], RTCIceCandidateType::Host);
        }
        let pc = PeerConnectionBuilder::new()
            .with_configuration(RTCConfigurationBuilder::new().build())
            .with_media_engine(media_engine)
            .with_interceptor_registry(registry)
            .with_setting_engine(settings.build())
            .with_handler(Arc::new(PcHandler { events }))
            .with_udp_addrs(vec![addr])
            .build()
            .await?;
        Ok(Arc::new(pc))
    }

    /// How many people are in `room` right now.
    pub fn room_presence(&self, room: &str) -> usize {
        self.inner
            .rooms
            .lock()
            .ok()
            .and_then(|rooms| rooms.get(room).cloned())
            .and_then(|r| r.state.lock().ok().map(|s| s.members.len()))
            .unwrap_or(0)
    }

    /// Who is in `room` right now (for the Room page), ordered by name.
    pub fn room_participants(&self, room: &str) -> Vec<ParticipantInfo> {
        let room = self
            .inner
            .rooms
            .lock()
            .ok()
            .and_then(|r| r.get(room).cloned());
        let mut people: Vec<ParticipantInfo> = room
            .map(|r| r.members())
            .unwrap_or_default()
            .iter()
            .filter_map(|m| m.info.lock().ok().map(|i| i.clone()))
            .collect();
        people.sort_by(|a, b| a.display_name.cmp(&b.display_name).then(a.id.cmp(&b.id)));
        people
    }

    /// People per Room, for every Room with someone in it.
    pub fn presence(&self) -> HashMap<String, usize> {
        let rooms: Vec<Arc<Room>> = self
            .inner
            .rooms
            .lock()
            .map(|r| r.values().cloned().collect())
            .unwrap_or_default();
        rooms
            .into_iter()
            .filter_map(|r| {
                let n = r.state.lock().ok()?.members.len();
                (n > 0).then(|| (r.id.clone(), n))
            })
            .collect()
    }

    /// The Room was deleted: everyone in it is disconnected and no one may join it again.
    pub fn end_room(&self, room: &str) {
        if let Ok(mut ended) = self.inner.ended_rooms.lock() {
            ended.retain(|_, at| at.elapsed() < ENDED_ROOM_MEMORY);
            ended.insert(room.to_owned(), Instant::now());
        }
        let room = self
            .inner
            .rooms
            .lock()
            .ok()
            .and_then(|r| r.get(room).cloned());
        if let Some(room) = room {
            for m in room.members() {
                m.kick(CloseReason::RoomEnded);
            }
        }
    }

    /// The person was removed from the Space: their session in `room` ends.
    pub fn remove_participant(&self, room: &str, participant: &str) {
        let room = self
            .inner
            .rooms
            .lock()
            .ok()
            .and_then(|r| r.get(room).cloned());
        if let Some(member) =
            room.and_then(|r| r.state.lock().ok()?.members.get(participant).cloned())
        {
            member.kick(CloseReason::Removed);
        }
    }

    /// Current counters.
    pub fn metrics(&self) -> Metrics {
        let rooms: Vec<Arc<Room>> = self
            .inner
            .rooms
            .lock()
            .map(|r| r.values().cloned().collect())
            .unwrap_or_default();
        let mut m = Metrics::default();
        for room in rooms {
            let members = room.members();
            if !members.is_empty() {
                m.gatherings += 1;
                m.participants += members.len();
                m.published_tracks += members
                    .iter()
                    .map(|x| lock_vec(&x.published).len())
                    .sum::<usize>();
            }
        }
        let c = &self.inner.counters;
        m.packets_forwarded = c.packets_forwarded.load(Ordering::Relaxed);
        m.bytes_forwarded = c.bytes_forwarded.load(Ordering::Relaxed);
        m.packets_dropped = c.packets_dropped.load(Ordering::Relaxed);
        m.keyframe_requests = c.keyframe_requests.load(Ordering::Relaxed);
        m.joins_refused = c.joins_refused.load(Ordering::Relaxed);
        m
    }
}

impl Room {
    fn members(&self) -> Vec<Arc<Member>> {
        self.state
            .lock()
            .map(|s| s.members.values().cloned().collect())
            .unwrap_or_default()
    }

    fn others(&self, session_id: u64) -> Vec<Arc<Member>> {
        self.members()
            .into_iter()
            .filter(|m| m.session_id != session_id)
            .collect()
    }

    fn broadcast(&self, message: &ServerMessage, except: Option<u64>) {
        for m in self.members() {
            if Some(m.session_id) != except {
                m.notify(RoomEvent::Send(message.clone()));
            }
        }
    }

    /// Feeds an audio level and announces a new active speaker.
    fn observe_level(&self, who: &str, level: u8, now: Duration) {
        let changed = {
            let Ok(mut s) = self.speaker.lock() else {
                return;
            };
            s.detector.observe(&who.to_owned(), level, now);
            if now.saturating_sub(s.last_evaluated) < SPEAKER_INTERVAL {
                return;
            }
            s.last_evaluated = now;
            s.detector.evaluate(now)
        };
        if let Some(participant) = changed {
            self.broadcast(&ServerMessage::ActiveSpeaker { participant }, None);
        }
    }
}

fn lock_vec<T: Clone>(m: &Mutex<Vec<T>>) -> Vec<T> {
    m.lock().map(|v| v.clone()).unwrap_or_default()
}

fn poisoned() -> Error {
    Error::WebRtc("internal state lock poisoned".to_owned())
}

struct PcHandler {
    events: mpsc::UnboundedSender<PcEvent>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for PcHandler {
    async fn on_ice_candidate(&self, event: RTCPeerConnectionIceEvent) {
        if let Ok(init) = event.candidate.to_json() {
            let _ = self.events.send(PcEvent::Candidate(init));
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        if matches!(state, RTCPeerConnectionState::Failed) {
            let _ = self.events.send(PcEvent::Failed);
        }
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let _ = self.events.send(PcEvent::Track(track));
    }
}

/// One admitted participant's signaling session. Run it with [`Session::run`];
/// dropping it unrun removes the participant again.
pub struct Session {
    sfu: Sfu,
    room: Arc<Room>,
    claims: Claims,
    session_id: u64,
    member: Arc<Member>,
    others: Vec<ParticipantInfo>,
    pc: Arc<dyn PeerConnection>,
    pc_events: mpsc::UnboundedReceiver<PcEvent>,
    room_events: mpsc::Receiver<RoomEvent>,
    kick: watch::Receiver<Option<CloseReason>>,
    finished: bool,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("room", &self.claims.room)
            .field("participant", &self.claims.participant)
            .finish()
    }
}

/// A subscription of this session to someone else's track.
struct Subscription {
    published: Arc<Published>,
    sender: Arc<dyn RtpSender>,
    track: Arc<TrackLocalStaticRTP>,
    writer: JoinHandle<()>,
    feedback: Option<JoinHandle<()>>,
    /// Negotiated in an answer already (keyframe asked for, feedback task running).
    live: bool,
}

/// Mutable state of a running session.
struct Live {
    negotiator: Negotiator,
    subscriptions: HashMap<String, Subscription>,
    outbox: mpsc::Sender<String>,
    negotiated: watch::Sender<u64>,
    limiter: RateLimiter,
    published_mids: HashSet<String>,
}

impl Session {
    /// The Room this session is in.
    pub fn room(&self) -> &str {
        &self.claims.room
    }

    /// The participant id from the token.
    pub fn participant(&self) -> &str {
        &self.claims.participant
    }

    /// Runs the session until it ends, reading client text frames from `incoming`
    /// and writing server text frames to `outgoing`. Returns why it ended; send
    /// [`CloseReason::text`] in the close frame. Before returning, an `error`
    /// message is written for reasons that are not the client's own doing.
    pub async fn run<I, O>(mut self, mut incoming: I, mut outgoing: O) -> CloseReason
    where
        I: Stream<Item = String> + Unpin,
        O: Sink<String> + Unpin,
    {
        let (outbox, mut outbox_rx) = mpsc::channel::<String>(OUTBOX);
        let (negotiated, _) = watch::channel(0u64);
        let epoch = Instant::now();
        let mut live = Live {
            negotiator: Negotiator::default(),
            subscriptions: HashMap::new(),
            outbox,
            negotiated,
            limiter: RateLimiter::new(RATE_BURST, RATE_PER_SEC, 0.0),
            published_mids: HashSet::new(),
        };
        let welcome = ServerMessage::Welcome {
            you: self.claims.participant.clone(),
            participants: std::mem::take(&mut self.others),
            ice_servers: self.sfu.inner.config.ice_servers.clone(),
        };
        let reason = {
            let writer = async {
                while let Some(text) = outbox_rx.recv().await {
                    if outgoing.send(text).await.is_err() {
                        break;
                    }
                }
            };
            tokio::pin!(writer);
            let main = async {
                if let Err(r) = self.push(&live, welcome) {
                    return r;
                }
                loop {
                    let step = tokio::select! {
                        frame = incoming.next() => match frame {
                            None => Err(CloseReason::Disconnected),
                            Some(text) => {
                                let now = epoch.elapsed().as_secs_f64();
                                if !live.limiter.allow(now) {
                                    Err(CloseReason::Protocol(Error::RateLimited.reason()))
                                } else {
                                    match ClientMessage::parse(&text) {
                                        Ok(msg) => self.on_client(&mut live, msg).await,
                                        Err(e) => Err(CloseReason::Protocol(e.reason())),
                                    }
                                }
                            }
                        },
                        Some(event) = self.room_events.recv() => self.on_room(&mut live, event).await,
                        Some(event) = self.pc_events.recv() => self.on_pc(&mut live, event).await,
                        changed = self.kick.changed() => match changed {
                            Ok(()) => Err(self.kick.borrow().clone().unwrap_or(CloseReason::Removed)),
                            Err(_) => Err(CloseReason::Removed),
                        },
                    };
                    if let Err(reason) = step {
                        return reason;
                    }
                }
            };
            tokio::select! {
                reason = main => reason,
                () = &mut writer => CloseReason::Disconnected,
            }
        };
        tracing::info!(room = %self.claims.room, participant = %self.claims.participant, reason = %reason.text(), "session ended");
        self.finish(&mut live).await;
        if reason.is_error() {
            let frame = ServerMessage::Error {
                reason: reason.text(),
            }
            .to_json();
            let _ = tokio::time::timeout(Duration::from_millis(500), outgoing.send(frame)).await;
        }
        reason
    }

    /// [`run`](Self::run) over tokio channels: `incoming` carries client frames,
    /// `outgoing` server frames. Handy when the socket is pumped elsewhere.
    pub async fn run_channels(
        self,
        incoming: mpsc::Receiver<String>,
        outgoing: mpsc::Sender<String>,
    ) -> CloseReason {
        let incoming = Box::pin(futures_util::stream::unfold(
            incoming,
            |mut rx| async move { rx.recv().await.map(|m| (m, rx)) },
        ));
        let outgoing = Box::pin(futures_util::sink::unfold(
            outgoing,
            |tx, m: String| async move { tx.send(m).await.map(|()| tx) },
        ));
        self.run(incoming, outgoing).await
    }

    fn push(&self, live: &Live, message: ServerMessage) -> Result<(), CloseReason> {
        live.outbox
            .try_send(message.to_json())
            .map_err(|_| CloseReason::TooSlow)
    }

    async fn on_client(&mut self, live: &mut Live, msg: ClientMessage) -> Result<(), CloseReason> {
        match msg {
            ClientMessage::Join { .. } => {
                return Err(CloseReason::Protocol("already joined".to_owned()));
            }
            ClientMessage::Offer { sdp } => {
                let desc = RTCSessionDescription::offer(sdp)
                    .map_err(|_| CloseReason::Protocol("invalid offer".to_owned()))?;
                if live.negotiator.remote_offer() == OnRemoteOffer::RollbackThenAnswer {
                    let rollback = RTCSessionDescription::rollback(None)
                        .map_err(|e| CloseReason::Failed(e.to_string()))?;
                    self.pc
                        .set_local_description(rollback)
                        .await
                        .map_err(|e| CloseReason::Failed(e.to_string()))?;
                }
                self.pc
                    .set_remote_description(desc)
                    .await
                    .map_err(|e| CloseReason::Protocol(format!("offer refused: {e}")))?;
                let answer = self
                    .pc
                    .create_answer(None)
                    .await
                    .map_err(|e| CloseReason::Protocol(format!("cannot answer: {e}")))?;
                let sdp = answer.sdp.clone();
                self.pc
                    .set_local_description(answer)
                    .await
                    .map_err(|e| CloseReason::Failed(e.to_string()))?;
                self.push(live, ServerMessage::Answer { sdp })?;
                live.negotiator.answered();
                self.negotiation_done(live).await;
                self.maybe_offer(live).await?;
            }
            ClientMessage::Answer { sdp } => {
                if !live.negotiator.remote_answer() {
                    return Err(CloseReason::Protocol("answer without an offer".to_owned()));
                }
                let desc = RTCSessionDescription::answer(sdp)
                    .map_err(|_| CloseReason::Protocol("invalid answer".to_owned()))?;
                self.pc
                    .set_remote_description(desc)
                    .await
                    .map_err(|e| CloseReason::Protocol(format!("answer refused: {e}")))?;
                self.negotiation_done(live).await;
                self.maybe_offer(live).await?;
            }
            ClientMessage::Candidate(c) => {
                if c.candidate.is_empty() {
                    return Ok(());
                }
                let init = RTCIceCandidateInit {
                    candidate: c.candidate,
                    sdp_mid: c.sdp_mid,
                    sdp_mline_index: c.sdp_mline_index,
                    ..Default::default()
                };
                if let Err(e) = self.pc.add_ice_candidate(init).await {
                    tracing::debug!(participant = %self.claims.participant, "candidate ignored: {e}");
                }
            }
            ClientMessage::Mute { kind, muted } => {
                if let Ok(mut info) = self.member.info.lock() {
                    match kind {
                        Kind::Audio => info.audio_muted = muted,
                        Kind::Video => info.video_muted = muted,
                    }
                }
                let m = ServerMessage::Mute {
                    participant: self.claims.participant.clone(),
                    kind,
                    muted,
                };
                self.room.broadcast(&m, Some(self.session_id));
            }
            ClientMessage::Screenshare { active } => {
                if let Ok(mut info) = self.member.info.lock() {
                    info.screensharing = active;
                }
                let m = ServerMessage::Screenshare {
                    participant: self.claims.participant.clone(),
                    active,
                };
                self.room.broadcast(&m, Some(self.session_id));
            }
            ClientMessage::Chat { text } => {
                let at = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_millis() as u64)
                    .unwrap_or(0);
                let m = ServerMessage::Chat {
                    from: self.claims.participant.clone(),
                    display_name: self.claims.display_name.clone(),
                    text,
                    at,
                };
                self.room.broadcast(&m, None);
            }
            ClientMessage::Leave => return Err(CloseReason::Left),
            ClientMessage::Ping => self.push(live, ServerMessage::Pong)?,
        }
        Ok(())
    }

    /// After an answer (ours or theirs) is applied: new subscriptions are bound,
    /// so their writers refresh the mapping, feedback starts and a keyframe is
    /// requested so the subscriber's picture starts promptly.
    async fn negotiation_done(&mut self, live: &mut Live) {
        live.negotiated.send_modify(|g| *g += 1);
        let inner = self.sfu.inner.clone();
        for sub in live.subscriptions.values_mut() {
            if sub.live {
                continue;
            }
            sub.live = true;
            sub.feedback = Some(tokio::spawn(feedback(
                sub.track.clone(),
                sub.published.clone(),
                inner.clone(),
            )));
            sub.published.request_keyframe(&inner).await;
        }
    }

    async fn maybe_offer(&mut self, live: &mut Live) -> Result<(), CloseReason> {
        if !live.negotiator.should_offer() {
            return Ok(());
        }
        let offer = self
            .pc
            .create_offer(None)
            .await
            .map_err(|e| CloseReason::Failed(e.to_string()))?;
        let sdp = offer.sdp.clone();
        self.pc
            .set_local_description(offer)
            .await
            .map_err(|e| CloseReason::Failed(e.to_string()))?;
        self.push(live, ServerMessage::Offer { sdp })
    }

    async fn on_room(&mut self, live: &mut Live, event: RoomEvent) -> Result<(), CloseReason> {
        match event {
            RoomEvent::Send(m) => self.push(live, m)?,
            RoomEvent::Subscribe(published) => {
                if live.subscriptions.contains_key(&published.track_id) {
                    return Ok(());
                }
                match self.subscribe(live, published.clone()).await {
                    Ok(sub) => {
                        live.subscriptions.insert(published.track_id.clone(), sub);
                        live.negotiator.changed();
                        self.push(live, ServerMessage::TrackPublished(published.info()))?;
                        self.maybe_offer(live).await?;
                    }
                    Err(e) => {
                        tracing::warn!(track = %published.track_id, "subscription failed: {e}");
                    }
                }
            }
            RoomEvent::Unsubscribe(track_id) => {
                if let Some(sub) = live.subscriptions.remove(&track_id) {
                    sub.writer.abort();
                    if let Some(f) = &sub.feedback {
                        f.abort();
                    }
                    if let Ok(mut links) = sub.published.subscribers.write() {
                        links.retain(|l| l.subscriber_session != self.session_id);
                    }
                    if let Err(e) = self.pc.remove_track(&sub.sender).await {
                        tracing::debug!("remove_track: {e}");
                    }
                    live.negotiator.changed();
                    self.push(live, ServerMessage::TrackUnpublished(sub.published.info()))?;
                    self.maybe_offer(live).await?;
                }
            }
        }
        Ok(())
    }

    async fn subscribe(&self, live: &Live, published: Arc<Published>) -> Result<Subscription> {
        let ssrc: u32 = rand::random();
        let rtx = (published.kind == Kind::Video).then(|| RTCRtpRtxParameters {
            ssrc: rand::random(),
        });
        let kind = match published.kind {
            Kind::Audio => RtpCodecKind::Audio,
            Kind::Video => RtpCodecKind::Video,
        };
        let track = Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
            published.publisher.clone(),
            published.track_id.clone(),
            published.track_id.clone(),
            kind,
            vec![RTCRtpEncodingParameters {
                rtp_coding_parameters: RTCRtpCodingParameters {
                    ssrc: Some(ssrc),
                    rtx,
                    ..Default::default()
                },
                codec: published.codec.clone(),
                ..Default::default()
            }],
        )));
        let transceiver = self
            .pc
            .add_transceiver_from_track(
                track.clone(),
                Some(RTCRtpTransceiverInit {
                    direction: RTCRtpTransceiverDirection::Sendonly,
                    streams: vec![published.publisher.clone()],
                    send_encodings: vec![],
                }),
            )
            .await?;
        let sender = transceiver
            .sender()
            .await?
            .ok_or_else(|| Error::WebRtc("transceiver without sender".to_owned()))?;
        let (tx, rx) = mpsc::channel(SUBSCRIBER_QUEUE);
        let writer = tokio::spawn(forward(
            rx,
            track.clone(),
            sender.clone(),
            published.clone(),
            ssrc,
            live.negotiated.subscribe(),
            self.sfu.inner.clone(),
        ));
        if let Ok(mut links) = published.subscribers.write() {
            links.push(Link {
                subscriber_session: self.session_id,
                queue: tx,
                needs_keyframe: false,
            });
        }
        Ok(Subscription {
            published,
            sender,
            track,
            writer,
            feedback: None,
            live: false,
        })
    }

    async fn on_pc(&mut self, live: &mut Live, event: PcEvent) -> Result<(), CloseReason> {
        match event {
            PcEvent::Candidate(init) => self.push(
                live,
                ServerMessage::Candidate(Candidate {
                    candidate: init.candidate,
                    sdp_mid: init.sdp_mid,
                    sdp_mline_index: init.sdp_mline_index,
                }),
            ),
            PcEvent::Failed => Err(CloseReason::Failed("connection failed".to_owned())),
            PcEvent::Track(remote) => {
                if let Err(e) = self.publish(live, remote).await {
                    tracing::warn!(participant = %self.claims.participant, "track not published: {e}");
                }
                Ok(())
            }
        }
    }

    async fn publish(&mut self, live: &mut Live, remote: Arc<dyn TrackRemote>) -> Result<()> {
        let track_id = remote.track_id().await;
        let mut found = None;
        for t in self.pc.get_transceivers().await {
            if let Ok(Some(receiver)) = t.receiver().await
                && receiver.track().track_id().await == track_id
            {
                found = Some((
                    t.mid().await?.unwrap_or_default(),
                    receiver.get_parameters().await?,
                ));
                break;
            }
        }
        let (mid, params) =
            found.ok_or_else(|| Error::WebRtc("track without transceiver".to_owned()))?;
        if !live.published_mids.insert(mid.clone()) {
            return Ok(());
        }
        let kind = match remote.kind().await {
            RtpCodecKind::Audio => Kind::Audio,
            RtpCodecKind::Video => Kind::Video,
            _ => return Err(Error::Protocol("unsupported media kind".to_owned())),
        };
        let media_ssrc = remote.ssrcs().await.first().copied().unwrap_or(0);
        let codec = match remote.codec(media_ssrc).await {
            Some(c) => c,
            None => params
                .rtp_parameters
                .codecs
                .first()
                .map(|c| c.rtp_codec.clone())
                .ok_or_else(|| Error::WebRtc("track without codec".to_owned()))?,
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
        let published = Arc::new(Published {
            publisher: self.claims.participant.clone(),
            publisher_session: self.session_id,
            track_id: format!("{}:{}", self.claims.participant, mid),
            mid,
            kind,
            remote: remote.clone(),
            media_ssrc,
            codec,
            codecs,
            extensions,
            audio_level_id,
            subscribers: RwLock::new(Vec::new()),
            keyframes: Mutex::new(KeyframeThrottle::new(KEYFRAME_INTERVAL)),
        });
        tracing::info!(track = %published.track_id, kind = ?kind, "published");
        // Registered under the Room lock so a participant joining at the same time
        // either sees it in the list or receives the Subscribe event, never neither.
        {
            let state = self.room.state.lock().map_err(|_| poisoned())?;
            if let Ok(mut mine) = self.member.published.lock() {
                mine.push(published.clone());
            }
            for m in state.members.values() {
                if m.session_id != self.session_id {
                    m.notify(RoomEvent::Subscribe(published.clone()));
                }
            }
        }
        tokio::spawn(read_published(
            published,
            self.room.clone(),
            self.sfu.inner.clone(),
        ));
        Ok(())
    }

    async fn finish(&mut self, live: &mut Live) {
        self.finished = true;
        for (_, sub) in live.subscriptions.drain() {
            sub.writer.abort();
            if let Some(f) = sub.feedback {
                f.abort();
            }
            if let Ok(mut links) = sub.published.subscribers.write() {
                links.retain(|l| l.subscriber_session != self.session_id);
            }
        }
        leave_room(
            &self.sfu,
            &self.room,
            &self.member,
            &self.claims.participant,
        );
        let _ = self.pc.close().await;
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if !self.finished {
            leave_room(
                &self.sfu,
                &self.room,
                &self.member,
                &self.claims.participant,
            );
            let pc = self.pc.clone();
            if let Ok(handle) = tokio::runtime::Handle::try_current() {
                handle.spawn(async move {
                    let _ = pc.close().await;
                });
            }
        }
    }
}

/// Removes the member (if still theirs) and tells the others.
fn leave_room(sfu: &Sfu, room: &Arc<Room>, member: &Arc<Member>, participant: &str) {
    let published =
        std::mem::take(&mut *member.published.lock().unwrap_or_else(|e| e.into_inner()));
    let still_member = {
        let Ok(mut state) = room.state.lock() else {
            return;
        };
        let ours = state
            .members
            .get(participant)
            .is_some_and(|m| m.session_id == member.session_id);
        if ours {
            state.members.remove(participant);
        }
        ours
    };
    for p in &published {
        if let Ok(mut links) = p.subscribers.write() {
            links.clear();
        }
    }
    if let Ok(mut s) = room.speaker.lock() {
        s.detector.remove(&participant.to_owned());
    }
    for m in room.others(member.session_id) {
        for p in &published {
            m.notify(RoomEvent::Unsubscribe(p.track_id.clone()));
        }
        if still_member {
            m.notify(RoomEvent::Send(ServerMessage::ParticipantLeft {
                id: participant.to_owned(),
            }));
        }
    }
    if let Ok(mut rooms) = sfu.inner.rooms.lock()
        && room.members().is_empty()
        && rooms.get(&room.id).is_some_and(|r| Arc::ptr_eq(r, room))
    {
        rooms.remove(&room.id);
    }
}

/// Reader: the publisher's packets to every subscriber's queue, never waiting.
async fn read_published(published: Arc<Published>, room: Arc<Room>, sfu: Arc<Inner>) {
    while let Some(event) = published.remote.poll().await {
        let TrackRemoteEvent::OnRtpPacket(packet) = event else {
            if matches!(event, TrackRemoteEvent::OnEnded) {
                break;
            }
            continue;
        };
        if let Some(id) = published.audio_level_id
            && let Some(payload) = packet.header.get_extension(id)
            && let Some((_, level)) = core::parse_audio_level(&payload)
        {
            room.observe_level(&published.publisher, level, sfu.epoch.elapsed());
        }
        let mut want_keyframe = false;
        let mut dropped = 0u64;
        if let Ok(mut links) = published.subscribers.write() {
            for link in links.iter_mut() {
                let queued = SUBSCRIBER_QUEUE - link.queue.capacity();
                match core::admit(published.kind, queued, SUBSCRIBER_QUEUE) {
                    Admission::Admit => {
                        if link.queue.try_send(packet.clone()).is_err() {
                            dropped += 1;
                        } else if std::mem::take(&mut link.needs_keyframe) {
                            want_keyframe = true;
                        }
                    }
                    Admission::Drop { request_keyframe } => {
                        dropped += 1;
                        link.needs_keyframe |= request_keyframe;
                    }
                }
            }
        }
        if dropped > 0 {
            sfu.counters
                .packets_dropped
                .fetch_add(dropped, Ordering::Relaxed);
        }
        if want_keyframe {
            published.request_keyframe(&sfu).await;
        }
    }
    // The publisher's track ended (renegotiated away or connection closed).
    let still_listed = room
        .state
        .lock()
        .ok()
        .and_then(|s| s.members.get(&published.publisher).cloned())
        .filter(|m| m.session_id == published.publisher_session);
    if let Some(member) = still_listed {
        let removed = member
            .published
            .lock()
            .map(|mut v| {
                let before = v.len();
                v.retain(|p| p.track_id != published.track_id);
                before != v.len()
            })
            .unwrap_or(false);
        if removed {
            for m in room.others(published.publisher_session) {
                m.notify(RoomEvent::Unsubscribe(published.track_id.clone()));
            }
        }
    }
}

/// Writer: one subscriber's queue for one track, rewritten for its leg.
async fn forward(
    mut queue: mpsc::Receiver<rtc::rtp::Packet>,
    track: Arc<TrackLocalStaticRTP>,
    sender: Arc<dyn RtpSender>,
    published: Arc<Published>,
    ssrc: u32,
    mut negotiated: watch::Receiver<u64>,
    sfu: Arc<Inner>,
) {
    let mut rewriter = Rewriter::new(ssrc);
    while let Some(mut packet) = queue.recv().await {
        if negotiated.has_changed().unwrap_or(false) || !rewriter.is_negotiated() {
            negotiated.borrow_and_update();
            if let Ok(params) = sender.get_parameters().await {
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
                rewriter.set_mapping(
                    core::payload_type_map(&published.codecs, &theirs),
                    core::extension_map(&published.extensions, &their_ext),
                );
            }
        }
        let h = &mut packet.header;
        let Some(out) = rewriter.rewrite(RtpFields {
            payload_type: h.payload_type,
            sequence_number: h.sequence_number,
            timestamp: h.timestamp,
            ssrc: h.ssrc,
        }) else {
            sfu.counters.packets_dropped.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        h.payload_type = out.payload_type;
        h.sequence_number = out.sequence_number;
        h.timestamp = out.timestamp;
        h.ssrc = out.ssrc;
        let mut extensions = std::mem::take(&mut h.extensions);
        extensions.retain_mut(|e| {
            let id = rewriter.extension_id(e.id);
            e.id = id;
            id != 0
        });
        h.extension = !extensions.is_empty();
        h.extensions = extensions;
        let bytes = packet.payload.len() as u64;
        match track.write_rtp(packet).await {
            Ok(()) => {
                sfu.counters
                    .packets_forwarded
                    .fetch_add(1, Ordering::Relaxed);
                sfu.counters
                    .bytes_forwarded
                    .fetch_add(bytes, Ordering::Relaxed);
            }
            Err(_) => {
                sfu.counters.packets_dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Feedback: PLI/FIR from the subscriber become a (throttled) PLI to the publisher.
async fn feedback(track: Arc<TrackLocalStaticRTP>, published: Arc<Published>, sfu: Arc<Inner>) {
    while let Some(event) = track.poll().await {
        if let TrackLocalEvent::OnRtcpPacket(packets) = event
            && packets.iter().any(|p| {
                let any = p.as_any();
                any.is::<PictureLossIndication>() || any.is::<FullIntraRequest>()
            })
        {
            published.request_keyframe(&sfu).await;
        }
    }
}

impl Error {
    /// The `error` signaling frame to send before closing a refused socket.
    pub fn to_frame(&self) -> String {
        ServerMessage::Error {
            reason: self.reason(),
        }
        .to_json()
    }
}

/// Converts configured ICE servers to webrtc's type (for clients built in Rust).
pub fn to_rtc_ice_servers(servers: &[IceServer]) -> Vec<RTCIceServer> {
    servers
        .iter()
        .map(|s| RTCIceServer {
            urls: s.urls.clone(),
            username: s.username.clone().unwrap_or_default(),
            credential: s.credential.clone().unwrap_or_default(),
        })
        .collect()
}
