//! Rooms, participants and their signaling sessions. Media lives on the media
//! threads ([`crate::forwarder`]), each Room on one of them; decisions are
//! delegated to [`crate::core`].
//!
//! Each participant has one **session** task ([`Session::run`]): signaling, and
//! every negotiation step on the participant's peer connection (so negotiation
//! is serialised). The session asks the media thread to apply descriptions and
//! to add or remove the tracks it forwards to this participant; the packets
//! themselves never pass through a session.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{Sink, SinkExt, Stream, StreamExt};
use rtc::peer_connection::transport::RTCIceCandidateInit;
use tokio::sync::{mpsc, watch};
use webrtc::peer_connection::RTCIceServer;

use crate::core::{Negotiator, OnRemoteOffer};
use crate::error::{Error, Result};
use crate::forwarder::{Binding, Counters, MediaThread, MediaThreads, PcEvent, TileOf, TrackKey};
use crate::quality;
use crate::signaling::{
    Candidate, ClientMessage, IceServer, Kind, ParticipantInfo, RATE_BURST, RATE_PER_SEC,
    RateLimiter, ServerMessage, TrackInfo,
};
use crate::simulcast::Tile;
use crate::token::{Claims, TokenKey, unix_now};

/// Server → client signaling messages queued before a session counts as stuck.
const OUTBOX: usize = 512;
/// Room events queued per session before it counts as stuck.
const ROOM_EVENTS: usize = 1024;
/// How long a deleted Room keeps refusing joins (longer than any token lives).
const ENDED_ROOM_MEMORY: Duration = Duration::from_secs(600);

/// How the SFU binds and what it tells clients.
#[derive(Debug, Clone)]
pub struct SfuConfig {
    /// First UDP port for media. When it equals `udp_port_max`, every
    /// participant shares that one port (0 and 0: one the system chooses),
    /// demultiplexed by ICE ufrag and remote address: the one port a firewall
    /// must open.
    pub udp_port_min: u16,
    /// Last UDP port for media, inclusive. Above `udp_port_min`, each
    /// participant binds a port of its own from the range.
    pub udp_port_max: u16,
    /// Media threads; `None`: one per available core. Each Room lives on one.
    pub media_threads: Option<usize>,
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
    /// How long a participant may hold a seat without a media connection: after joining,
    /// and after their media stops answering. Past it the session closes, so a seat is held
    /// by people whose media flows, not by sockets that never connect.
    pub media_grace: Duration,
}

/// The default [`SfuConfig::media_grace`]: ICE over a slow TURN relay takes a few seconds;
/// a minute of silence means the person is gone.
pub const MEDIA_GRACE: Duration = Duration::from_secs(20);

impl SfuConfig {
    /// Loopback only, any free port, no ICE servers: for development and tests.
    pub fn loopback(token_key: TokenKey) -> Self {
        Self {
            udp_port_min: 0,
            udp_port_max: 0,
            media_threads: None,
            public_ip: None,
            bind_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            ice_servers: Vec::new(),
            token_key,
            max_participants_default: 50,
            media_grace: MEDIA_GRACE,
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
    /// Rooms whose media panicked and was ended (their people rejoin).
    pub room_failures: u64,
    /// Simulcast layer switches: a subscriber's video starting, stopping or changing layer.
    pub layer_switches: u64,
    /// Packets that arrived a second time (a publisher probing its uplink with
    /// retransmissions), not forwarded.
    pub duplicates: u64,
    /// Participants at each connection quality last measured (good, fair, poor, lost, in
    /// that order); those not measured yet are in none.
    pub quality: [usize; 4],
}

impl Metrics {
    /// The levels in the order of [`Metrics::quality`].
    pub const QUALITY_LEVELS: [quality::Level; 4] = [
        quality::Level::Good,
        quality::Level::Fair,
        quality::Level::Poor,
        quality::Level::Lost,
    ];
}

/// One participant's estimated downlink, for `/metrics`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DownlinkEstimate {
    /// The Room (the opaque id the instance gave the SFU).
    pub room: String,
    /// The participant.
    pub participant: String,
    /// Bits per second the SFU estimates it can send them, from their
    /// transport-wide congestion control feedback.
    pub bits_per_second: u64,
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
    /// The Room's access changed (members-only, a new code) and the person no longer qualifies.
    AccessLost,
    /// The client broke the signaling protocol.
    Protocol(String),
    /// The client did not read its messages fast enough.
    TooSlow,
    /// The media connection failed or could not be negotiated.
    Failed(String),
    /// The Room's media hit an internal error and was restarted: join again.
    Reconnect,
    /// Others took the last seats while this person's media was still connecting.
    RoomFull,
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
            CloseReason::AccessLost => "no longer allowed in this room".to_owned(),
            CloseReason::Protocol(why) => format!("protocol error: {why}"),
            CloseReason::TooSlow => "not reading messages".to_owned(),
            CloseReason::Failed(why) => format!("media failed: {why}"),
            CloseReason::Reconnect => "reconnecting: the room's media restarted".to_owned(),
            CloseReason::RoomFull => "room is full".to_owned(),
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

struct Inner {
    config: SfuConfig,
    rooms: Mutex<HashMap<String, Arc<Room>>>,
    ended_rooms: Mutex<HashMap<String, Instant>>,
    nonces: Mutex<HashMap<String, u64>>,
    next_session: AtomicU64,
    counters: Arc<Counters>,
    joins_refused: AtomicU64,
    media: MediaThreads,
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
    /// The active speaker last announced, for newcomers.
    speaker: Mutex<Option<String>>,
}

#[derive(Default)]
struct RoomState {
    members: HashMap<String, Arc<Member>>,
}

/// A participant as the Room sees them.
struct Member {
    session_id: u64,
    info: Mutex<ParticipantInfo>,
    events: mpsc::Sender<RoomEvent>,
    kick: watch::Sender<Option<CloseReason>>,
    published: Mutex<Vec<Arc<Published>>>,
    /// The member's media connected and holds a seat (set under the Room lock).
    seated: AtomicBool,
    /// The connection quality last announced for the member.
    quality: Mutex<Option<quality::Level>>,
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

/// One track a participant publishes.
struct Published {
    publisher: String,
    mid: String,
    track_id: String,
    kind: Kind,
    key: TrackKey,
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
}

impl Sfu {
    /// Creates the SFU: binds the shared media port (when one is configured;
    /// with a port range nothing is bound until participants join) and starts
    /// the media threads, which run until the last clone of this `Sfu` and the
    /// last [`Session`] are gone.
    ///
    /// Fails with [`Error::MediaPort`] when the port cannot be bound (taken by
    /// another process, or a privileged port), or when the operating system
    /// refuses a thread.
    pub fn new(config: SfuConfig) -> Result<Self> {
        let counters = Arc::new(Counters::default());
        let binding = Binding {
            bind_ip: config.bind_ip,
            public_ip: config.public_ip,
            port_min: config.udp_port_min,
            port_max: config.udp_port_max,
        };
        let threads = config.media_threads.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        });
        let media = MediaThreads::start(binding, threads, counters.clone())?;
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                rooms: Mutex::new(HashMap::new()),
                ended_rooms: Mutex::new(HashMap::new()),
                nonces: Mutex::new(HashMap::new()),
                next_session: AtomicU64::new(1),
                counters,
                joins_refused: AtomicU64::new(0),
                media,
            }),
        })
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
            self.inner.joins_refused.fetch_add(1, Ordering::Relaxed);
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
        let shard = self.inner.media.place(&claims.room);
        let opened = self
            .inner
            .media
            .thread(shard)
            .open(session_id, &claims.room, &claims.participant, pc_tx)
            .await;
        if let Err(e) = opened {
            self.inner.media.release(&claims.room);
            return Err(e);
        }
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
            seated: AtomicBool::new(false),
            quality: Mutex::new(None),
        });

        let joined = self.join_room(&claims, &member);
        let (room, others) = match joined {
            Ok(v) => v,
            Err(e) => {
                self.inner.media.thread(shard).close(session_id);
                self.inner.media.release(&claims.room);
                return Err(e);
            }
        };
        tracing::info!(room = %claims.room, participant = %claims.participant, "joined");
        Ok(Session {
            sfu: self.clone(),
            room,
            claims,
            session_id,
            shard,
            member,
            others,
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
                    speaker: Mutex::new(None),
                })
            })
            .clone();
        let mut state = room.state.lock().map_err(|_| poisoned())?;
        // Only seats with connected media count: a join that never connects media holds
        // nothing, and whoever connects when the Room is full is turned away then.
        let others_seated = state
            .members
            .iter()
            .filter(|(id, m)| **id != claims.participant && m.seated.load(Ordering::Acquire))
            .count();
        if others_seated >= self.capacity(claims) {
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

    fn capacity(&self, claims: &Claims) -> usize {
        claims
            .capacity
            .unwrap_or(self.inner.config.max_participants_default) as usize
    }

    fn room_ended(&self, room: &str) -> bool {
        self.inner
            .ended_rooms
            .lock()
            .map(|m| m.contains_key(room))
            .unwrap_or(true)
    }

    /// How many people are in `room` right now: those whose media connected.
    pub fn room_presence(&self, room: &str) -> usize {
        self.room(room).map_or(0, |r| r.seated().len())
    }

    /// Who is in `room` right now (for the Room page and capacity), ordered by name: those
    /// whose media connected.
    pub fn room_participants(&self, room: &str) -> Vec<ParticipantInfo> {
        let seated = self.room(room).map(|r| r.seated()).unwrap_or_default();
        infos(&seated)
    }

    /// Everyone admitted to `room`, seated or still connecting media (for access checks).
    pub fn room_admitted(&self, room: &str) -> Vec<ParticipantInfo> {
        let members = self.room(room).map(|r| r.members()).unwrap_or_default();
        infos(&members)
    }

    /// People seated per Room, for every Room with someone seated in it.
    pub fn presence(&self) -> HashMap<String, usize> {
        self.live_rooms()
            .into_iter()
            .filter_map(|r| {
                let n = r.seated().len();
                (n > 0).then(|| (r.id.clone(), n))
            })
            .collect()
    }

    /// Every Room with anyone admitted, seated or not.
    pub fn gatherings(&self) -> Vec<String> {
        self.live_rooms()
            .into_iter()
            .filter(|r| r.state.lock().is_ok_and(|s| !s.members.is_empty()))
            .map(|r| r.id.clone())
            .collect()
    }

    fn room(&self, room: &str) -> Option<Arc<Room>> {
        self.inner
            .rooms
            .lock()
            .ok()
            .and_then(|r| r.get(room).cloned())
    }

    fn live_rooms(&self) -> Vec<Arc<Room>> {
        self.inner
            .rooms
            .lock()
            .map(|r| r.values().cloned().collect())
            .unwrap_or_default()
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
        self.end_participant(room, participant, CloseReason::Removed);
    }

    /// The person's session in `room` ends for `reason`.
    pub fn end_participant(&self, room: &str, participant: &str, reason: CloseReason) {
        let room = self
            .inner
            .rooms
            .lock()
            .ok()
            .and_then(|r| r.get(room).cloned());
        if let Some(member) =
            room.and_then(|r| r.state.lock().ok()?.members.get(participant).cloned())
        {
            member.kick(reason);
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
                for member in &members {
                    let level = member.quality.lock().ok().and_then(|q| *q);
                    if let Some(i) = level
                        .and_then(|l| Metrics::QUALITY_LEVELS.iter().position(|known| *known == l))
                    {
                        m.quality[i] += 1;
                    }
                }
            }
        }
        let c = &self.inner.counters;
        m.packets_forwarded = c.packets_forwarded.load(Ordering::Relaxed);
        m.bytes_forwarded = c.bytes_forwarded.load(Ordering::Relaxed);
        m.packets_dropped = c.packets_dropped.load(Ordering::Relaxed);
        m.keyframe_requests = c.keyframe_requests.load(Ordering::Relaxed);
        m.joins_refused = self.inner.joins_refused.load(Ordering::Relaxed);
        m.room_failures = c.room_failures.load(Ordering::Relaxed);
        m.layer_switches = c.layer_switches.load(Ordering::Relaxed);
        m.duplicates = c.duplicates.load(Ordering::Relaxed);
        m
    }

    /// Every participant's downlink estimate, for those whose client has sent
    /// congestion control feedback yet; ordered by Room and participant.
    pub fn downlink_estimates(&self) -> Vec<DownlinkEstimate> {
        let mut all: Vec<DownlinkEstimate> = self
            .inner
            .counters
            .estimates
            .lock()
            .map(|m| {
                m.values()
                    .filter_map(|(room, participant, estimate)| {
                        Some(DownlinkEstimate {
                            room: room.clone(),
                            participant: participant.clone(),
                            bits_per_second: estimate.get()?,
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        all.sort_by(|a, b| (&a.room, &a.participant).cmp(&(&b.room, &b.participant)));
        all
    }

    /// The one UDP port every participant's media uses, unless each has its own.
    pub fn media_port(&self) -> Option<u16> {
        self.inner.media.port()
    }

    /// Test hook: makes the next datagram of `room`'s media panic, as a bug in
    /// the WebRTC stack would. Returns whether anyone is in the Room.
    #[cfg(feature = "test-client")]
    pub fn inject_media_fault(&self, room: &str) -> bool {
        self.inner.media.inject_fault(room)
    }
}

impl Room {
    fn members(&self) -> Vec<Arc<Member>> {
        self.state
            .lock()
            .map(|s| s.members.values().cloned().collect())
            .unwrap_or_default()
    }

    fn seated(&self) -> Vec<Arc<Member>> {
        self.members()
            .into_iter()
            .filter(|m| m.seated.load(Ordering::Acquire))
            .collect()
    }

    /// Gives `member` a seat once its media connected, unless the others' seats already
    /// fill the Room.
    fn take_seat(&self, member: &Member, capacity: usize) -> Result<(), CloseReason> {
        let state = self.state.lock().map_err(|_| CloseReason::Reconnect)?;
        let others = state
            .members
            .values()
            .filter(|m| m.session_id != member.session_id && m.seated.load(Ordering::Acquire))
            .count();
        if others >= capacity {
            return Err(CloseReason::RoomFull);
        }
        member.seated.store(true, Ordering::Release);
        Ok(())
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
}

/// The members' infos, ordered by name.
fn infos(members: &[Arc<Member>]) -> Vec<ParticipantInfo> {
    let mut people: Vec<ParticipantInfo> = members
        .iter()
        .filter_map(|m| m.info.lock().ok().map(|i| i.clone()))
        .collect();
    people.sort_by(|a, b| a.display_name.cmp(&b.display_name).then(a.id.cmp(&b.id)));
    people
}

fn lock_vec<T: Clone>(m: &Mutex<Vec<T>>) -> Vec<T> {
    m.lock().map(|v| v.clone()).unwrap_or_default()
}

fn poisoned() -> Error {
    Error::WebRtc("internal state lock poisoned".to_owned())
}

/// One admitted participant's signaling session. Run it with [`Session::run`];
/// dropping it unrun removes the participant again.
pub struct Session {
    sfu: Sfu,
    room: Arc<Room>,
    claims: Claims,
    session_id: u64,
    /// The media thread the Room lives on.
    shard: usize,
    member: Arc<Member>,
    others: Vec<ParticipantInfo>,
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
    /// The first of our offers that carries it ([`Negotiator::next_offer`]).
    stamp: u64,
    /// Forwarding has started: the client applied an answer that covers it.
    live: bool,
}

/// Mutable state of a running session.
struct Live {
    /// When the session closes unless media connects (again); `None` while media flows.
    media_deadline: Option<tokio::time::Instant>,
    negotiator: Negotiator,
    subscriptions: HashMap<String, Subscription>,
    outbox: mpsc::Sender<String>,
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
        let epoch = Instant::now();
        let mut live = Live {
            negotiator: Negotiator::default(),
            subscriptions: HashMap::new(),
            outbox,
            limiter: RateLimiter::new(RATE_BURST, RATE_PER_SEC, 0.0),
            published_mids: HashSet::new(),
            media_deadline: Some(tokio::time::Instant::now() + self.sfu.inner.config.media_grace),
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
                // Who speaks and the others' connection quality, as last
                // announced; changes from now on come as they happen.
                let speaker = self.room.speaker.lock().ok().and_then(|s| s.clone());
                if let Some(participant) = speaker.filter(|s| *s != self.claims.participant)
                    && let Err(r) = self.push(&live, ServerMessage::ActiveSpeaker { participant })
                {
                    return r;
                }
                for other in self.room.others(self.session_id) {
                    let level = other.quality.lock().ok().and_then(|q| *q);
                    let id = other.info.lock().ok().map(|i| i.id.clone());
                    if let (Some(level), Some(participant)) = (level, id)
                        && let Err(r) =
                            self.push(&live, ServerMessage::Quality { participant, level })
                    {
                        return r;
                    }
                }
                loop {
                    let deadline = live.media_deadline;
                    let step = tokio::select! {
                        () = async {
                            match deadline {
                                Some(at) => tokio::time::sleep_until(at).await,
                                None => std::future::pending().await,
                            }
                        } => Err(CloseReason::Failed("no media connection".to_owned())),
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
                        Some(event) = self.pc_events.recv() => self.on_pc(&mut live, event),
                        changed = self.kick.changed() => match changed {
                            Ok(()) => Err(self.kick.borrow().clone().unwrap_or(CloseReason::Removed)),
                            Err(_) => Err(CloseReason::Removed),
                        },
                    };
                    if let Err(reason) = step {
                        return self.true_reason(reason);
                    }
                }
            };
            tokio::select! {
                reason = main => reason,
                () = &mut writer => CloseReason::Disconnected,
            }
        };
        tracing::info!(room = %self.claims.room, participant = %self.claims.participant, reason = %reason.text(), "session ended");
        self.finish(&mut live);
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

    /// A media command can fail because the Room's media was just torn down
    /// after a panic; the event saying so is then already queued, and the
    /// client must hear "reconnect" rather than a failure of its own.
    fn true_reason(&mut self, reason: CloseReason) -> CloseReason {
        while let Ok(event) = self.pc_events.try_recv() {
            if matches!(event, PcEvent::RoomFailed) {
                return CloseReason::Reconnect;
            }
        }
        reason
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
                let rollback = live.negotiator.remote_offer() == OnRemoteOffer::RollbackThenAnswer;
                let answer = self
                    .media()
                    .offer(self.session_id, sdp, rollback)
                    .await
                    .map_err(refused)?;
                self.push(live, ServerMessage::Answer { sdp: answer })?;
                live.negotiator.answered();
                self.maybe_offer(live).await?;
            }
            ClientMessage::Answer { sdp } => {
                let Some(answered) = live.negotiator.remote_answer() else {
                    return Err(CloseReason::Protocol("answer without an offer".to_owned()));
                };
                // Only tracks the answered offer carried may start: the client has
                // no m-line for the others yet.
                let mut start = Vec::new();
                for sub in live.subscriptions.values_mut() {
                    if !sub.live && Negotiator::covers(answered, sub.stamp) {
                        sub.live = true;
                        start.push(sub.published.key);
                    }
                }
                self.media()
                    .answer(self.session_id, sdp, start)
                    .await
                    .map_err(refused)?;
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
                self.media().candidate(self.session_id, init);
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
            ClientMessage::Tiles { tiles } => {
                // Tiles of videos this session does not receive are ignored:
                // they may have just been unpublished.
                let tiles = tiles
                    .into_iter()
                    .filter_map(|t| {
                        let of = match t.mid {
                            Some(mid) if !mid.is_empty() => TileOf::Mid(mid),
                            _ => TileOf::Track(live.subscriptions.get(&t.track_id)?.published.key),
                        };
                        let tile = Tile {
                            width: t.width,
                            height: t.height,
                            visible: t.visible,
                        };
                        Some((of, tile, t.screen))
                    })
                    .collect::<Vec<_>>();
                if !tiles.is_empty() {
                    self.media().tiles(self.session_id, tiles);
                }
            }
            ClientMessage::Leave => return Err(CloseReason::Left),
            ClientMessage::Ping => self.push(live, ServerMessage::Pong)?,
        }
        Ok(())
    }

    fn media(&self) -> &MediaThread {
        self.sfu.inner.media.thread(self.shard)
    }

    async fn maybe_offer(&mut self, live: &mut Live) -> Result<(), CloseReason> {
        if !live.negotiator.should_offer() {
            return Ok(());
        }
        let sdp = self
            .media()
            .create_offer(self.session_id)
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
                match self.media().subscribe(self.session_id, published.key).await {
                    Ok(()) => {
                        live.subscriptions.insert(
                            published.track_id.clone(),
                            Subscription {
                                published: published.clone(),
                                stamp: live.negotiator.next_offer(),
                                live: false,
                            },
                        );
                        live.negotiator.changed();
                        self.push(live, ServerMessage::TrackPublished(published.info()))?;
                        self.maybe_offer(live).await?;
                    }
                    Err(e) => {
                        tracing::debug!(track = %published.track_id, "not subscribed: {e}");
                    }
                }
            }
            RoomEvent::Unsubscribe(track_id) => {
                if let Some(sub) = live.subscriptions.remove(&track_id) {
                    self.media().unsubscribe(self.session_id, sub.published.key);
                    live.negotiator.changed();
                    self.push(live, ServerMessage::TrackUnpublished(sub.published.info()))?;
                    self.maybe_offer(live).await?;
                }
            }
        }
        Ok(())
    }

    fn on_pc(&mut self, live: &mut Live, event: PcEvent) -> Result<(), CloseReason> {
        match event {
            PcEvent::Candidate(init) => self.push(
                live,
                ServerMessage::Candidate(Candidate {
                    candidate: init.candidate,
                    sdp_mid: init.sdp_mid,
                    sdp_mline_index: init.sdp_mline_index,
                }),
            ),
            PcEvent::Connected => {
                live.media_deadline = None;
                if !self.member.seated.load(Ordering::Acquire) {
                    let capacity = self.sfu.capacity(&self.claims);
                    self.room.take_seat(&self.member, capacity)?;
                }
                Ok(())
            }
            PcEvent::Disconnected => {
                live.media_deadline =
                    Some(tokio::time::Instant::now() + self.sfu.inner.config.media_grace);
                Ok(())
            }
            PcEvent::Failed => Err(CloseReason::Failed("connection failed".to_owned())),
            PcEvent::SendLayers { mid, rids } => {
                self.push(live, ServerMessage::SendLayers { mid, rids })
            }
            PcEvent::RoomFailed => Err(CloseReason::Reconnect),
            PcEvent::Track { key, mid, kind } => {
                self.publish(live, key, mid, kind);
                Ok(())
            }
            PcEvent::TrackEnded(key) => {
                self.unpublish(key);
                Ok(())
            }
            PcEvent::Quality(level) => {
                if let Ok(mut q) = self.member.quality.lock() {
                    *q = Some(level);
                }
                // Everyone, the participant included: "your connection is
                // poor" is what they most want to know.
                let m = ServerMessage::Quality {
                    participant: self.claims.participant.clone(),
                    level,
                };
                self.room.broadcast(&m, None);
                Ok(())
            }
            PcEvent::Speaker => {
                if let Ok(mut speaker) = self.room.speaker.lock() {
                    *speaker = Some(self.claims.participant.clone());
                }
                let m = ServerMessage::ActiveSpeaker {
                    participant: self.claims.participant.clone(),
                };
                self.room.broadcast(&m, None);
                Ok(())
            }
        }
    }

    /// The client's track is flowing: the others subscribe to it.
    fn publish(&mut self, live: &mut Live, key: TrackKey, mid: String, kind: Kind) {
        if !live.published_mids.insert(mid.clone()) {
            return;
        }
        let published = Arc::new(Published {
            publisher: self.claims.participant.clone(),
            track_id: format!("{}:{}", self.claims.participant, mid),
            mid,
            kind,
            key,
        });
        // Registered under the Room lock so a participant joining at the same time
        // either sees it in the list or receives the Subscribe event, never neither.
        let Ok(state) = self.room.state.lock() else {
            return;
        };
        if let Ok(mut mine) = self.member.published.lock() {
            mine.push(published.clone());
        }
        for m in state.members.values() {
            if m.session_id != self.session_id {
                m.notify(RoomEvent::Subscribe(published.clone()));
            }
        }
    }

    /// The client's track ended (renegotiated away): the others drop it.
    fn unpublish(&mut self, key: TrackKey) {
        let removed = self.member.published.lock().ok().and_then(|mut v| {
            let i = v.iter().position(|p| p.key == key)?;
            Some(v.remove(i))
        });
        if let Some(published) = removed {
            for m in self.room.others(self.session_id) {
                m.notify(RoomEvent::Unsubscribe(published.track_id.clone()));
            }
        }
    }

    fn finish(&mut self, live: &mut Live) {
        self.finished = true;
        live.subscriptions.clear();
        self.media().close(self.session_id);
        self.sfu.inner.media.release(&self.claims.room);
        leave_room(
            &self.sfu,
            &self.room,
            &self.member,
            &self.claims.participant,
        );
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if !self.finished {
            self.media().close(self.session_id);
            self.sfu.inner.media.release(&self.claims.room);
            leave_room(
                &self.sfu,
                &self.room,
                &self.member,
                &self.claims.participant,
            );
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
            if let Ok(mut speaker) = room.speaker.lock()
                && speaker.as_deref() == Some(participant)
            {
                *speaker = None;
            }
        }
        ours
    };
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

/// A description the media thread refused: the client's doing when it is a
/// protocol error, the connection's otherwise.
fn refused(e: Error) -> CloseReason {
    match e {
        Error::Protocol(why) => CloseReason::Protocol(why),
        other => CloseReason::Failed(other.to_string()),
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
