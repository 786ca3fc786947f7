//! A Room of 12 with one person on a 500 kbit/s link: how long their videos
//! freeze, with and without simulcast, and beside Janus's VideoRoom.
//!
//! `sudo cargo run --release -p convene-media --example freeze_bench [-- --seconds 30] [--no-janus | --janus-only]`
//!
//! # The Room
//! Twelve webrtc-rs participants, each publishing a camera (VP8, 30 fps, one
//! packet per frame) and a microphone as WebRTC's Opus with DTX does in a
//! quiet Room: `p0` talks (a 160-byte frame every 20 ms), everyone else is
//! silent (a 40-byte comfort-noise packet every 400 ms; see
//! [`testing::Microphone`]). Eleven of them (`p0`…`p10`) are on loopback,
//! unshaped, and show everyone in 320x180 tiles (a laptop's grid of 12). The
//! twelfth, `phone`, sits in a network namespace the benchmark creates,
//! behind a veth pair whose SFU end holds everything sent to it to 500 kbit/s
//! with a real token bucket (`tc qdisc … tbf rate 500kbit burst 4kb latency
//! 100ms`). It shows a page of six 320x180 tiles, the speaker first, and
//! reports the other five as off the page (hidden), as the room client does
//! when not everyone fits.
//!
//! # The phases (a fresh server and Room each)
//! - **Convene, single stream**: no simulcast; each camera one stream of
//!   1,200-byte frames (about 290 kbit/s).
//! - **Convene, simulcast**: three layers of 200, 600 and 1,200-byte frames
//!   (320x180, 640x360, 1280x720); the SFU picks each subscriber's layer from
//!   its tiles and its downlink estimate.
//! - **Janus, simulcast** (when `janus` is installed; `--no-janus` skips it):
//!   Janus 1.x VideoRoom, the same publishers sending the same three layers
//!   (rid simulcast; their offers list the rids highest first, as Janus's
//!   janus.js does, since Janus numbers substreams from the last rid listed
//!   up), every subscriber on one multistream handle asking
//!   (`configure` with `substream`) for the layer its tile wants: the lowest
//!   for a 320x180 tile, as Janus's clients choose it. Janus has no downlink
//!   estimate of its own, so what the client asks for is what it gets; the
//!   phone's off-page videos are switched off (`send: false`), as a client
//!   that hides them would. Janus runs with its ICE on the veth's outer
//!   address (libnice offers no loopback candidates), configured and spoken
//!   to as in `sfu_bench` (`support/janus.rs`).
//!
//! # What is measured, per subscriber, over `--seconds` after a 12 s warm-up
//! - **Freeze time**, after WebRTC's `freezeCount` / `totalFreezesDuration`:
//!   on each video the subscriber shows (its visible tiles), a new frame is
//!   one whose frame number is above every one shown before; a gap between
//!   two new frames longer than max(3 × the mean frame interval, the mean +
//!   150 ms) is a freeze, and its whole length counts. The mean interval is
//!   the publishers' nominal one (33 ms at 30 fps), so the threshold is
//!   183 ms. The window's start and end count as frames shown, so a video
//!   that shows nothing at all is frozen for the whole window. Reported as the
//!   share of the shown videos' time spent frozen, and freezes per
//!   video-minute. The synthetic VP8 is not decoded: a frame after an
//!   unrepaired loss counts as shown, where a browser would wait for a
//!   keyframe, so these freeze times are a lower bound for a real decoder.
//! - **Video received**: payload kbit/s of the videos shown; frames shown per
//!   video per second.
//! - **Layers**: the share of packets of each layer among those videos.
//! - For Convene, the phone's downlink estimate at the end of the window.
//!
//! It needs root, `ip` and `tc` with `tbf` (as `media/tests/shaped_downlink.rs`):
//! without them it prints `SKIPPED` and why, and exits successfully.

use std::collections::HashMap;
use std::net::IpAddr;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use convene_media::shaping::{Veth, is_root};
use convene_media::signaling::{ClientMessage, Kind, ServerMessage, TileReport};
use convene_media::testing::{self, Client, Handler, Microphone, Received, SimulcastTracks};
use convene_media::{Sfu, SfuConfig, TokenKey};
use janus::{Janus, feed_id};
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use webrtc::peer_connection::PeerConnection;

#[path = "support/janus.rs"]
mod janus;

type Result<T, E = String> = std::result::Result<T, E>;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// People in the Room, the shaped one included.
const PEOPLE: usize = 12;
/// What the shaped participant's downlink carries.
const RATE: &str = "500kbit";
const FPS: u32 = 30;
/// The single stream's frame: the top layer's size.
const SINGLE_BYTES: usize = 1200;
/// Tiles on the phone's page.
const PAGE: usize = 6;
const TILE: (u32, u32) = (320, 180);
const WARM_UP: Duration = Duration::from_secs(12);
const LIMIT: Duration = Duration::from_secs(60);
const JANUS_ROOM: u64 = 4343;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    ConveneSingle,
    ConveneSimulcast,
    JanusSimulcast,
}

impl Phase {
    fn label(self) -> &'static str {
        match self {
            Phase::ConveneSingle => "Convene, single stream",
            Phase::ConveneSimulcast => "Convene, simulcast",
            Phase::JanusSimulcast => "Janus VideoRoom, simulcast (substream by tile)",
        }
    }

    fn simulcast(self) -> bool {
        self != Phase::ConveneSingle
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let seconds = args
        .iter()
        .position(|a| a == "--seconds")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(30u64);
    let with_janus = !args.iter().any(|a| a == "--no-janus");
    if !is_root() {
        println!("SKIPPED freeze_bench: shaping a link needs root");
        return;
    }
    let veth = match Veth::create("convene-freeze", "cvfrz", 214, "phone0") {
        Ok(v) => v,
        Err(e) => {
            println!("SKIPPED freeze_bench: no network namespace with a veth pair: {e}");
            return;
        }
    };
    if let Err(e) = veth.shape(RATE) {
        println!("SKIPPED freeze_bench: no tbf qdisc: {e}");
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    println!(
        "Room of {PEOPLE}, the phone's downlink {RATE}, {seconds} s per phase after {WARM_UP:?}; load average {}",
        load_average()
    );
    let mut phases = if args.iter().any(|a| a == "--janus-only") {
        Vec::new()
    } else {
        vec![Phase::ConveneSingle, Phase::ConveneSimulcast]
    };
    if with_janus {
        match janus::install() {
            Some(_) => phases.push(Phase::JanusSimulcast),
            None => println!("Janus not installed (`apt-get install janus`): Convene only"),
        }
    }
    println!(
        "| phase | phone: frozen | phone: freezes per video-minute | phone: frames/s per video | phone: video kbit/s | phone: layers low / mid / top | phone: estimate kbit/s | link: kbit/s into the phone | link: packets dropped | others: frozen p50 / max | others: video kbit/s p50 |"
    );
    println!("|---|---:|---:|---:|---:|---|---:|---:|---:|");
    for phase in phases {
        match run_phase(&runtime, &veth, phase, Duration::from_secs(seconds)) {
            Ok(row) => println!("{row}"),
            Err(e) => println!("| {} | failed: {e} |", phase.label()),
        }
    }
}

// ---------------------------------------------------------------------------
// What a subscriber saw.

/// One video packet as a subscriber received it.
struct Seen {
    at: Instant,
    /// Which of the subscriber's shown videos.
    video: usize,
    /// The publisher's frame number.
    frame: u32,
    /// The simulcast layer (0 without simulcast).
    layer: u8,
    bytes: usize,
}

/// A subscriber's videos over the window.
#[derive(Default)]
struct Watched {
    videos: usize,
    frozen: Duration,
    freezes: u64,
    frames: u64,
    bytes: u64,
    layers: [u64; 3],
}

impl Watched {
    fn frozen_share(&self, window: Duration) -> f64 {
        self.frozen.as_secs_f64() / (window.as_secs_f64() * self.videos.max(1) as f64)
    }

    fn kbps(&self, window: Duration) -> f64 {
        self.bytes as f64 * 8.0 / window.as_secs_f64() / 1000.0
    }
}

/// WebRTC's freeze threshold at the nominal frame rate: max(3 × mean, mean + 150 ms).
fn freeze_threshold() -> Duration {
    let mean = Duration::from_secs(1) / FPS;
    (3 * mean).max(mean + Duration::from_millis(150))
}

/// Freezes, frames and bytes of `videos` shown videos from what arrived.
fn watch(seen: &[Seen], videos: usize, start: Instant, end: Instant) -> Watched {
    let threshold = freeze_threshold();
    let mut w = Watched {
        videos,
        ..Default::default()
    };
    // Per video: the newest frame shown and when.
    let mut shown: Vec<(Option<u32>, Instant)> = vec![(None, start); videos];
    for s in seen.iter().filter(|s| s.at >= start && s.at < end) {
        let Some((newest, last)) = shown.get_mut(s.video) else {
            continue;
        };
        w.bytes += s.bytes as u64;
        w.layers[usize::from(s.layer.min(2))] += 1;
        if newest.is_some_and(|n| s.frame <= n) {
            continue;
        }
        *newest = Some(s.frame);
        w.frames += 1;
        let gap = s.at.duration_since(*last);
        if gap > threshold {
            w.freezes += 1;
            w.frozen += gap;
        }
        *last = s.at;
    }
    for (_, last) in shown {
        let gap = end.duration_since(last);
        if gap > threshold {
            w.freezes += 1;
            w.frozen += gap;
        }
    }
    w
}

/// The video packet `r` as [`Seen`], if it is one of `shown` (track ids).
fn seen(r: &Received, shown: &[String], simulcast: bool) -> Option<Seen> {
    let video = shown.iter().position(|t| *t == r.track_id)?;
    let (frame, layer) = if simulcast {
        let (layer, frame, _) = testing::decode_simulcast(&r.payload)?;
        (frame, layer)
    } else {
        let (_, kind, seq, _) = testing::decode(&r.payload)?;
        if kind != 1 {
            return None;
        }
        (seq, 0)
    };
    Some(Seen {
        at: r.at,
        video,
        frame,
        layer,
        bytes: r.payload.len(),
    })
}

// ---------------------------------------------------------------------------
// One phase.

/// What the phone's thread hands back: the videos it showed and what arrived.
type PhoneSeen = Result<(Vec<String>, Vec<Received>)>;

fn run_phase(
    runtime: &tokio::runtime::Runtime,
    veth: &Veth,
    phase: Phase,
    window: Duration,
) -> Result<String> {
    let epoch = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let (ready_tx, ready) = std::sync::mpsc::channel();
    let janus = match phase {
        Phase::JanusSimulcast => {
            let lib = janus::install().ok_or("Janus is not installed")?;
            Some(runtime.block_on(Janus::start(&lib, veth.outer_ip))?)
        }
        _ => None,
    };
    let sfu = match phase {
        Phase::JanusSimulcast => None,
        _ => {
            let _inside = runtime.enter();
            Some(
                Sfu::new(SfuConfig {
                    bind_ip: veth.outer_ip,
                    ..SfuConfig::loopback(TokenKey::generate())
                })
                .map_err(|e| format!("SFU: {e}"))?,
            )
        }
    };
    let room = format!("freeze/{}", phase.label().len());
    // The unshaped eleven first, then the phone from its namespace.
    let mut others: Vec<Other> = Vec::new();
    for i in 0..PEOPLE - 1 {
        let index = u8::try_from(i).map_err(|e| e.to_string())?;
        let microphone = if i == 0 {
            Microphone::Talking
        } else {
            Microphone::Silent
        };
        let other = runtime.block_on(async {
            match (&sfu, &janus) {
                (Some(sfu), _) => {
                    Ok(Other::convene(sfu, &room, index, phase, microphone, epoch).await)
                }
                (None, Some(janus)) => {
                    Other::janus(janus, veth.outer_ip, index, microphone, epoch).await
                }
                _ => Err("no server".to_owned()),
            }
        })?;
        others.push(other);
    }
    let phone = match (&sfu, &janus) {
        (Some(sfu), _) => phone_convene(
            veth,
            sfu.clone(),
            runtime.handle().clone(),
            (room.clone(), phase, epoch),
            ready_tx,
            stop.clone(),
        ),
        (None, Some(janus)) => {
            // Signaling from the root namespace, where Janus listens on
            // loopback (as the phone's signaling with Convene is in process):
            // only media crosses the shaped link.
            let session = runtime.block_on(janus::Session::open(janus.port()))?;
            phone_janus(veth, session, epoch, ready_tx, stop.clone())
        }
        _ => return Err("no server".to_owned()),
    };
    // Everyone subscribes and reports (or asks for) what they show.
    for other in &mut others {
        runtime.block_on(other.subscribe(&janus, veth.outer_ip))?;
    }
    if ready.recv_timeout(LIMIT).is_err() {
        stop.store(true, Ordering::Release);
        return match phone.join() {
            Ok(Err(e)) => Err(format!("the phone did not start: {e}")),
            _ => Err("the phone did not start in time".to_owned()),
        };
    }
    let (others_seen, start, link_before) = runtime.block_on(async {
        tokio::time::sleep(WARM_UP).await;
        for o in &mut others {
            o.drain(None);
        }
        let start = Instant::now();
        let link_before = veth.counters();
        let mut seen: Vec<Vec<Seen>> = others.iter().map(|_| Vec::new()).collect();
        while start.elapsed() < window {
            tokio::time::sleep(Duration::from_millis(100)).await;
            for (o, s) in others.iter_mut().zip(seen.iter_mut()) {
                o.drain(Some(s));
            }
        }
        (seen, start, link_before)
    });
    let end = Instant::now();
    // What the shaped link carried to the phone in the window, and what it dropped.
    let link = match (veth.counters(), link_before) {
        (Ok(after), Ok(before)) => Some(after.since(before)),
        _ => None,
    };
    let estimate = sfu.as_ref().and_then(|sfu| {
        sfu.downlink_estimates()
            .iter()
            .find(|e| e.participant == "phone")
            .map(|e| e.bits_per_second / 1000)
    });
    stop.store(true, Ordering::Release);
    let phone_result = phone.join().map_err(|_| "the phone's thread panicked")?;
    runtime.block_on(async {
        for o in others {
            o.close().await;
        }
    });
    if let Some(janus) = janus {
        runtime.block_on(janus.stop());
    }
    let (phone_shown, phone_received) = phone_result?;
    let phone_seen: Vec<Seen> = phone_received
        .iter()
        .filter_map(|r| seen(r, &phone_shown, phase.simulcast()))
        .collect();
    let phone = watch(&phone_seen, phone_shown.len(), start, end);
    let others: Vec<Watched> = others_seen
        .iter()
        .map(|s| watch(s, PEOPLE - 1, start, end))
        .collect();
    let mut frozen: Vec<f64> = others.iter().map(|w| w.frozen_share(window)).collect();
    frozen.sort_by(f64::total_cmp);
    let mut kbps: Vec<f64> = others.iter().map(|w| w.kbps(window)).collect();
    kbps.sort_by(f64::total_cmp);
    let total: u64 = phone.layers.iter().sum();
    let pct = |n: u64| 100.0 * n as f64 / total.max(1) as f64;
    let minutes = window.as_secs_f64() / 60.0 * phone.videos.max(1) as f64;
    Ok(format!(
        "| {} | {:.1} % | {:.1} | {:.1} | {:.0} | {} | {} | {} | {} | {:.1} % / {:.1} % | {:.0} |",
        phase.label(),
        100.0 * phone.frozen_share(window),
        phone.freezes as f64 / minutes,
        phone.frames as f64 / window.as_secs_f64() / phone.videos.max(1) as f64,
        phone.kbps(window),
        if phase.simulcast() {
            format!(
                "{:.0} % / {:.0} % / {:.0} %",
                pct(phone.layers[0]),
                pct(phone.layers[1]),
                pct(phone.layers[2])
            )
        } else {
            "one stream".to_owned()
        },
        estimate.map_or("–".to_owned(), |e| e.to_string()),
        link.map_or("–".to_owned(), |l| format!(
            "{:.0}",
            l.bytes as f64 * 8.0 / 1000.0 / window.as_secs_f64()
        )),
        link.map_or("–".to_owned(), |l| format!(
            "{:.1} % ({} of {})",
            100.0 * l.dropped as f64 / (l.packets + l.dropped).max(1) as f64,
            l.dropped,
            l.packets + l.dropped
        )),
        100.0 * frozen.get(frozen.len() / 2).copied().unwrap_or(0.0),
        100.0 * frozen.last().copied().unwrap_or(0.0),
        kbps.get(kbps.len() / 2).copied().unwrap_or(0.0),
    ))
}

/// An unshaped participant on loopback.
struct Other {
    index: u8,
    phase: Phase,
    publishing: JoinHandle<()>,
    /// The videos it shows (track ids, the publishers' order), once subscribed.
    shown: Vec<String>,
    received: mpsc::UnboundedReceiver<Received>,
    convene: Option<Client>,
    janus: Option<JanusPeer>,
}

impl Other {
    async fn convene(
        sfu: &Sfu,
        room: &str,
        index: u8,
        phase: Phase,
        microphone: Microphone,
        epoch: Instant,
    ) -> Self {
        let id = format!("p{index}");
        let mut client = if phase.simulcast() {
            testing::join_simulcast(sfu, room, &id, index).await
        } else {
            testing::join(sfu, room, &id, index, None).await
        };
        let publishing = if phase.simulcast() {
            testing::publish_simulcast_with(&client, FPS, microphone, epoch)
        } else {
            testing::start_publishing_with(&client, (FPS, 1, SINGLE_BYTES), microphone, epoch)
        };
        // The client's captures go through this Other's receiver.
        let (_, empty) = mpsc::unbounded_channel();
        let received = std::mem::replace(&mut client.received, empty);
        Self {
            index,
            phase,
            publishing,
            shown: Vec::new(),
            received,
            convene: Some(client),
            janus: None,
        }
    }

    async fn janus(
        janus: &Janus,
        ip: IpAddr,
        index: u8,
        microphone: Microphone,
        epoch: Instant,
    ) -> Result<Self> {
        let session = janus::Session::open(janus.port()).await?;
        let (peer, publishing) = janus_publish(session, ip, index, microphone, epoch).await?;
        Ok(Self {
            index,
            phase: Phase::JanusSimulcast,
            publishing,
            shown: Vec::new(),
            received: mpsc::unbounded_channel().1,
            convene: None,
            janus: Some(peer),
        })
    }

    /// Subscribes to everyone else's camera, each in a 320x180 tile.
    async fn subscribe(&mut self, janus: &Option<Janus>, ip: IpAddr) -> Result<()> {
        if let Some(client) = &mut self.convene {
            let tracks: Vec<String> = client
                .others_cameras(PEOPLE - 1, LIMIT)
                .await
                .into_iter()
                .map(|t| t.track_id)
                .collect();
            client.send(&ClientMessage::Tiles {
                tiles: tracks.iter().map(|t| tile(t, true)).collect(),
            });
            self.shown = tracks;
            return Ok(());
        }
        let (Some(peer), Some(_)) = (&self.janus, janus) else {
            return Err("neither Convene nor Janus".to_owned());
        };
        let feeds: Vec<u64> = (0..PEOPLE as u8)
            .filter(|i| *i != self.index)
            .map(feed_id)
            .collect();
        let (shown, received, pc) = janus_subscribe(&peer.session, ip, &feeds, &feeds).await?;
        self.shown = shown;
        self.received = received;
        if let Some(peer) = &mut self.janus {
            peer.subscriber = Some(pc);
        }
        Ok(())
    }

    /// Moves what arrived into `into` (or drops it).
    fn drain(&mut self, mut into: Option<&mut Vec<Seen>>) {
        while let Ok(r) = self.received.try_recv() {
            if let Some(into) = into.as_deref_mut()
                && let Some(s) = seen(&r, &self.shown, self.phase.simulcast())
            {
                into.push(s);
            }
        }
    }

    async fn close(self) {
        self.publishing.abort();
        if let Some(client) = self.convene {
            client.close().await;
        }
        if let Some(peer) = self.janus {
            let _ = peer.publisher.close().await;
            if let Some(pc) = peer.subscriber {
                let _ = pc.close().await;
            }
        }
    }
}

fn tile(track_id: &str, visible: bool) -> TileReport {
    TileReport {
        mid: None,
        track_id: track_id.to_owned(),
        width: TILE.0,
        height: TILE.1,
        visible,
        screen: false,
    }
}

/// The phone on Convene: enters the namespace on a thread of its own, joins
/// from there (publishing a silent microphone and its camera), shows a page
/// of six with the speaker first, and keeps what arrives until `stop`.
fn phone_convene(
    veth: &Veth,
    sfu: Sfu,
    sfu_runtime: tokio::runtime::Handle,
    (room, phase, epoch): (String, Phase, Instant),
    ready: std::sync::mpsc::Sender<()>,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<PhoneSeen> {
    let (ns, ip) = (format!("/run/netns/{}", veth.ns), veth.inner_ip);
    std::thread::spawn(move || {
        let runtime = enter_namespace(&ns)?;
        runtime.block_on(async move {
            let who = (room.as_str(), "phone", (PEOPLE - 1) as u8);
            let mut phone = if phase.simulcast() {
                testing::join_simulcast_from(&sfu_runtime, &sfu, who, ip).await
            } else {
                testing::join_from(&sfu_runtime, &sfu, who, ip).await
            };
            let publishing = if phase.simulcast() {
                testing::publish_simulcast_with(&phone, FPS, Microphone::Silent, epoch)
            } else {
                testing::start_publishing_with(
                    &phone,
                    (FPS, 1, SINGLE_BYTES),
                    Microphone::Silent,
                    epoch,
                )
            };
            let mut tracks: Vec<(String, String)> = Vec::new();
            while tracks.len() < PEOPLE - 1 {
                if let ServerMessage::TrackPublished(t) = phone
                    .wait_event(LIMIT, |e| {
                        matches!(e, ServerMessage::TrackPublished(t) if t.kind == Kind::Video && t.participant != "phone")
                    })
                    .await
                {
                    tracks.push((t.participant, t.track_id));
                }
            }
            // The speaker first, then in the order people joined.
            tracks.sort_by_key(|(p, _)| {
                p.trim_start_matches('p').parse::<u32>().unwrap_or(u32::MAX)
            });
            let shown: Vec<String> = tracks.iter().take(PAGE).map(|(_, t)| t.clone()).collect();
            phone.send(&ClientMessage::Tiles {
                tiles: tracks
                    .iter()
                    .enumerate()
                    .map(|(i, (_, t))| tile(t, i < PAGE))
                    .collect(),
            });
            let _ = ready.send(());
            let received = keep_until(&mut phone.received, &stop).await;
            publishing.abort();
            phone.close().await;
            Ok((shown, received))
        })
    })
}

/// Enters the network namespace at `ns` (this thread only) and makes a runtime there.
fn enter_namespace(ns: &str) -> Result<tokio::runtime::Runtime> {
    let file = std::fs::File::open(ns).map_err(|e| format!("{ns}: {e}"))?;
    nix::sched::setns(file.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
        .map_err(|e| format!("setns: {e}"))?;
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("runtime: {e}"))
}

/// Everything `received` gets until `stop`.
async fn keep_until(
    received: &mut mpsc::UnboundedReceiver<Received>,
    stop: &AtomicBool,
) -> Vec<Received> {
    let mut kept = Vec::new();
    while !stop.load(Ordering::Acquire) {
        while let Ok(r) = received.try_recv() {
            kept.push(r);
        }
        // Draining, not synchronisation: packets carry their arrival time.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    kept
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

// ---------------------------------------------------------------------------
// Janus's clients (the session and its requests: `support/janus.rs`).

/// A participant's Janus session: its publishing connection, and its
/// subscribing one once subscribed.
struct JanusPeer {
    session: Arc<janus::Session>,
    publisher: Arc<dyn PeerConnection>,
    subscriber: Option<Arc<dyn PeerConnection>>,
}

/// Joins the Janus room as publisher `index` (creating the room first for
/// index 0) and publishes three simulcast layers and a microphone from `ip`.
async fn janus_publish(
    session: Arc<janus::Session>,
    ip: IpAddr,
    index: u8,
    microphone: Microphone,
    epoch: Instant,
) -> Result<(JanusPeer, JoinHandle<()>)> {
    let handle = session.join_as_publisher(JANUS_ROOM, index).await?;
    let (signal, candidates) = mpsc::unbounded_channel();
    let pc = testing::client_peer_connection_on(
        Handler::new(signal, mpsc::unbounded_channel().0),
        &ip.to_string(),
    )
    .await;
    let id = format!("p{index}");
    let audio_ssrc: u32 = rand::random();
    let audio = testing::local_track(
        &id,
        "audio",
        RtpCodecKind::Audio,
        audio_ssrc,
        "audio/opus",
        48000,
        2,
    );
    let layers: Vec<(String, u32)> = convene_media::simulcast::RIDS
        .iter()
        .map(|rid| ((*rid).to_owned(), rand::random()))
        .collect();
    // Janus numbers rid substreams in the SDP's order from the highest down
    // (its own janus.js lists `h`, `m`, `l`): listed lowest first, `substream: 0`
    // would be the top layer. So the offer lists them from the top, as
    // janus.js does; the layers themselves are the same.
    let highest_first: Vec<(String, u32)> = layers.iter().rev().cloned().collect();
    let video = testing::simulcast_track(&id, &highest_first);
    pc.add_track(audio.clone())
        .await
        .map_err(|e| format!("audio track: {e}"))?;
    pc.add_track(video.clone())
        .await
        .map_err(|e| format!("video track: {e}"))?;
    session.publish(handle, &pc, candidates).await?;
    let publishing = testing::publish_simulcast_tracks(
        SimulcastTracks {
            pc: pc.clone(),
            audio,
            audio_ssrc,
            video,
            layers,
            index,
        },
        FPS,
        microphone,
        epoch,
    );
    Ok((
        JanusPeer {
            session,
            publisher: pc,
            subscriber: None,
        },
        publishing,
    ))
}

/// Subscribes on one multistream handle to `feeds`, showing `shown` of them
/// (the others' video switched off) and asking for substream 0 of each
/// shown one, as a client with 320x180 tiles does. Returns the shown videos'
/// track ids (in `shown`'s order), what arrives, and the connection.
async fn janus_subscribe(
    session: &Arc<janus::Session>,
    ip: IpAddr,
    feeds: &[u64],
    shown: &[u64],
) -> Result<(
    Vec<String>,
    mpsc::UnboundedReceiver<Received>,
    Arc<dyn PeerConnection>,
)> {
    let (signal, candidates) = mpsc::unbounded_channel();
    let (received_tx, received) = mpsc::unbounded_channel();
    let pc = testing::client_peer_connection_on(Handler::new(signal, received_tx), &ip.to_string())
        .await;
    let (handle, joined) = session
        .subscribe(JANUS_ROOM, feeds, &pc, candidates)
        .await?;
    // Which mid carries which feed's video, and that mid's msid track id.
    let mut video_mid: HashMap<u64, String> = HashMap::new();
    for s in joined["plugindata"]["data"]["streams"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if s["type"] == "video"
            && let (Some(feed), Some(mid)) = (s["feed_id"].as_u64(), s["mid"].as_str())
        {
            video_mid.insert(feed, mid.to_owned());
        }
    }
    let track_of_mid = msid_tracks(joined["jsep"]["sdp"].as_str().unwrap_or_default());
    let configure: Vec<Value> = feeds
        .iter()
        .filter_map(|f| {
            let mid = video_mid.get(f)?;
            Some(if shown.contains(f) {
                json!({"mid": mid, "substream": 0})
            } else {
                json!({"mid": mid, "send": false})
            })
        })
        .collect();
    session
        .message(
            handle,
            json!({"request": "configure", "streams": configure}),
            None,
        )
        .await?;
    let shown_tracks = shown
        .iter()
        .map(|f| {
            video_mid
                .get(f)
                .and_then(|mid| track_of_mid.get(mid))
                .cloned()
                .ok_or_else(|| format!("no video of feed {f} in Janus's offer"))
        })
        .collect::<Result<Vec<String>>>()?;
    Ok((shown_tracks, received, pc))
}

/// `mid` → msid track id of each m-line of `sdp`.
fn msid_tracks(sdp: &str) -> HashMap<String, String> {
    let mut map = HashMap::new();
    for section in sdp.split("\nm=").skip(1) {
        let mid = section
            .lines()
            .find_map(|l| l.trim().strip_prefix("a=mid:"));
        let track = section.lines().find_map(|l| {
            l.trim()
                .strip_prefix("a=msid:")
                .and_then(|m| m.split_whitespace().nth(1))
        });
        if let (Some(mid), Some(track)) = (mid, track) {
            map.insert(mid.to_owned(), track.to_owned());
        }
    }
    map
}

/// The phone on Janus: from its namespace, publishes (silent) and subscribes
/// to everyone, showing the first six (the speaker first) at substream 0 and
/// switching the others' video off.
fn phone_janus(
    veth: &Veth,
    session: Arc<janus::Session>,
    epoch: Instant,
    ready: std::sync::mpsc::Sender<()>,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<PhoneSeen> {
    let (ns, ip) = (format!("/run/netns/{}", veth.ns), veth.inner_ip);
    std::thread::spawn(move || {
        let runtime = enter_namespace(&ns)?;
        runtime.block_on(async move {
            let index = (PEOPLE - 1) as u8;
            let (peer, publishing) =
                janus_publish(session, ip, index, Microphone::Silent, epoch).await?;
            let feeds: Vec<u64> = (0..(PEOPLE - 1) as u8).map(feed_id).collect();
            let page: Vec<u64> = feeds.iter().take(PAGE).copied().collect();
            let (shown, mut received, pc) =
                janus_subscribe(&peer.session, ip, &feeds, &page).await?;
            let _ = ready.send(());
            let kept = keep_until(&mut received, &stop).await;
            publishing.abort();
            let _ = pc.close().await;
            let _ = peer.publisher.close().await;
            Ok((shown, kept))
        })
    })
}
