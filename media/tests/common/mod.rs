//! A Convene room client built on webrtc-rs, driving an in-process [`Sfu`]
//! through the session API with strings over channels (as the instance's
//! WebSocket glue does). Shared by the integration tests and the benchmark.

#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use convene_media::signaling::{Candidate, ClientMessage, ServerMessage};
use convene_media::{Claims, CloseReason, Sfu};
use rtc::media_stream::MediaStreamTrack;
use rtc::rtp::extension::HeaderExtension;
use rtc::rtp::extension::audio_level_extension::AudioLevelExtension;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCIceCandidateInit,
    RTCPeerConnectionIceEvent, RTCSessionDescription, SettingEngineBuilder,
};

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

pub struct Handler {
    pub signal: mpsc::UnboundedSender<String>,
    pub received: mpsc::UnboundedSender<Received>,
    pub paused: Arc<AtomicBool>,
    pub resume: Arc<Notify>,
    pub capture: bool,
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
                    resume.notified().await;
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
    pub id: String,
    pub index: u8,
    pub pc: Arc<dyn PeerConnection>,
    pub audio: Arc<TrackLocalStaticRTP>,
    pub video: Arc<TrackLocalStaticRTP>,
    pub audio_ssrc: u32,
    pub video_ssrc: u32,
    /// Client → SFU frames (also used by the pump).
    pub to_sfu: mpsc::UnboundedSender<String>,
    /// Server messages other than negotiation, for the test to inspect.
    pub events: mpsc::UnboundedReceiver<ServerMessage>,
    pub received: mpsc::UnboundedReceiver<Received>,
    pub session: JoinHandle<CloseReason>,
    pub paused: Arc<AtomicBool>,
    resume: Arc<Notify>,
    pump: JoinHandle<()>,
}

/// Joins `room` as `id`, returning once the SFU answered the first offer.
pub async fn join(sfu: &Sfu, room: &str, id: &str, index: u8, capacity: Option<u32>) -> Client {
    let mut claims = Claims::new(
        room,
        id,
        format!("Person {id}"),
        convene_media::token::unix_now(),
        120,
    );
    claims.capacity = capacity;
    let token = sfu.token_key().issue(&claims);
    join_with_token(sfu, room, id, index, &token, true)
        .await
        .expect("join accepted")
}

/// Joins with a given token; `Err` is the SFU's refusal.
pub async fn join_with_token(
    sfu: &Sfu,
    room: &str,
    id: &str,
    index: u8,
    token: &str,
    capture: bool,
) -> convene_media::Result<Client> {
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
) -> convene_media::Result<Client> {
    let first = serde_json::to_string(&ClientMessage::Join {
        token: token.to_owned(),
    })
    .expect("json");
    let (s, r) = (sfu.clone(), room.to_owned());
    let session = sfu_runtime
        .spawn(async move { s.connect(&r, &first).await })
        .await
        .expect("connect task")?;

    // The session's channels: bounded outgoing like a real socket buffer.
    let (in_tx, in_rx) = mpsc::channel::<String>(1024);
    let (out_tx, mut out_rx) = mpsc::channel::<String>(64);
    let session = sfu_runtime.spawn(session.run_channels(in_rx, out_tx));

    let (signal_tx, mut signal_rx) = mpsc::unbounded_channel::<String>();
    let (received_tx, received_rx) = mpsc::unbounded_channel();
    let paused = Arc::new(AtomicBool::new(false));
    let resume = Arc::new(Notify::new());

    let mut me = convene_media::engine::media_engine().expect("engine");
    let registry = convene_media::engine::interceptors(&mut me).expect("interceptors");
    let pc = PeerConnectionBuilder::new()
        .with_media_engine(me)
        .with_interceptor_registry(registry)
        .with_setting_engine(
            SettingEngineBuilder::new()
                .with_multicast_dns_mode(rtc::ice::mdns::MulticastDnsMode::Disabled)
                .with_include_loopback_candidate(true)
                .build(),
        )
        .with_handler(Arc::new(Handler {
            signal: signal_tx.clone(),
            received: received_tx,
            paused: paused.clone(),
            resume: resume.clone(),
            capture,
        }))
        .with_udp_addrs(vec!["127.0.0.1:0".to_owned()])
        .build()
        .await
        .expect("client peer connection");
    let pc: Arc<dyn PeerConnection> = Arc::new(pc);

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
    let video = local_track(
        id,
        "video",
        RtpCodecKind::Video,
        video_ssrc,
        "video/VP8",
        90000,
        0,
    );
    pc.add_track(audio.clone()).await.expect("add audio");
    pc.add_track(video.clone()).await.expect("add video");

    // Forward signaling produced by the handler into the session.
    let fwd_tx = in_tx.clone();
    tokio::spawn(async move {
        while let Some(m) = signal_rx.recv().await {
            if fwd_tx.send(m).await.is_err() {
                break;
            }
        }
    });

    let (events_tx, events_rx) = mpsc::unbounded_channel();
    let (answered_tx, mut answered_rx) = mpsc::channel::<()>(1);
    let pump_pc = pc.clone();
    let pump_signal = signal_tx.clone();
    let pump_paused = paused.clone();
    let pump_resume = resume.clone();
    let pump = tokio::spawn(async move {
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
                pump_resume.notified().await;
            }
            let Some(text) = out_rx.recv().await else {
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
                    let _ = pump_signal.send(serde_json::to_string(&m).expect("json"));
                    or_stop!(pump_pc.set_local_description(offer).await);
                    let _ = events_tx.send(msg);
                }
                ServerMessage::Answer { sdp } => {
                    let desc = or_stop!(RTCSessionDescription::answer(sdp));
                    or_stop!(pump_pc.set_remote_description(desc).await);
                    let _ = answered_tx.try_send(());
                }
                ServerMessage::Offer { sdp } => {
                    let desc = or_stop!(RTCSessionDescription::offer(sdp));
                    or_stop!(pump_pc.set_remote_description(desc).await);
                    let answer = or_stop!(pump_pc.create_answer(None).await);
                    let m = ClientMessage::Answer {
                        sdp: answer.sdp.clone(),
                    };
                    or_stop!(pump_pc.set_local_description(answer).await);
                    let _ = pump_signal.send(serde_json::to_string(&m).expect("json"));
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
                other => {
                    let _ = events_tx.send(other);
                }
            }
        }
    });

    tokio::time::timeout(Duration::from_secs(10), answered_rx.recv())
        .await
        .expect("SFU answered within 10 s")
        .expect("pump alive");

    Ok(Client {
        id: id.to_owned(),
        index,
        pc,
        audio,
        video,
        audio_ssrc,
        video_ssrc,
        to_sfu: signal_tx,
        events: events_rx,
        received: received_rx,
        session,
        paused,
        resume,
        pump,
    })
}

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
        let _ = self.to_sfu.send(text.to_owned());
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
    publish_tracks(
        client.audio.clone(),
        client.video.clone(),
        (client.audio_ssrc, client.video_ssrc, client.index),
        fps,
        per_frame,
        video_size,
        epoch,
    )
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
    tokio::spawn(async move {
        let mut audio_tick = tokio::time::interval(Duration::from_millis(20));
        let mut video_tick =
            tokio::time::interval(Duration::from_micros(1_000_000 / u64::from(fps.max(1))));
        audio_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        video_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let (mut a_seq, mut v_seq) = (0u32, 0u32);
        loop {
            tokio::select! {
                _ = audio_tick.tick() => {
                    let now = epoch.elapsed().as_micros() as u64;
                    let mut p = rtc::rtp::Packet::default();
                    p.header.version = 2;
                    p.header.payload_type = 111;
                    p.header.ssrc = a_ssrc;
                    p.header.sequence_number = a_seq as u16;
                    p.header.timestamp = a_seq.wrapping_mul(960);
                    p.payload = payload(index, 0, a_seq, 160, now);
                    let level = HeaderExtension::AudioLevel(AudioLevelExtension {
                        level: if index == 0 { 10 } else { 90 },
                        voice: true,
                    });
                    if audio.write_rtp_with_extensions(p, &[level]).await.is_ok() {
                        a_seq += 1;
                    }
                }
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

/// The longest run of consecutive sequence numbers at the end of `seqs`, after
/// checking they never go backwards (in order, no duplicates).
pub fn checked_tail_run(seqs: &[u32]) -> usize {
    for w in seqs.windows(2) {
        assert!(
            w[1] > w[0],
            "out of order or duplicated: {} then {}",
            w[0],
            w[1]
        );
    }
    let mut run = usize::from(!seqs.is_empty());
    for w in seqs.windows(2).rev() {
        if w[1] == w[0] + 1 {
            run += 1;
        } else {
            break;
        }
    }
    run
}
