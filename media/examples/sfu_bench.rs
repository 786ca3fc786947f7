//! Load generator and benchmark for the SFU, on loopback.
//!
//! `cargo run --release -p convene-media --example sfu_bench [-- --seconds 10] [--only 8]`
//!
//! Rooms of 4, 6 and 8 publishers, each sending synthetic VP8 (30 fps, 3
//! packets of ~1000 bytes per frame) and Opus (50 packets/s, 160 bytes) through
//! the SFU to everyone else. The SFU (sessions, forwarding tasks and its peer
//! connection drivers) runs on its own single-threaded tokio runtime, the
//! clients on another, so the SFU's CPU time is read from its thread alone
//! (`/proc/thread-self/schedstat`). Latency is measured from the send
//! timestamp carried in every payload to arrival at the subscriber, and
//! compared to a direct webrtc-rs peer-to-peer pair with the same traffic.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use convene_media::signaling::{Candidate, ClientMessage};
use convene_media::testing::{
    self as common, Handler, decode, join_on, local_track, publish_tracks,
};
use convene_media::{Claims, Sfu, SfuConfig, TokenKey};
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use tokio::sync::{Notify, mpsc};
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, RTCIceCandidateInit, SettingEngineBuilder,
};

const FPS: u32 = 30;
const PER_FRAME: u32 = 3;
const VIDEO_BYTES: usize = 1000;

fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))?
                .split_whitespace()
                .nth(1)?
                .parse::<u64>()
                .ok()
        })
        .map_or(0, |kb| kb * 1024)
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// CPU time consumed by the SFU runtime's one worker thread.
struct SfuCpu {
    ns: Arc<AtomicU64>,
}

impl SfuCpu {
    /// Samples the worker's CPU time from inside the worker itself.
    async fn read(&self, handle: &tokio::runtime::Handle) -> u64 {
        let ns = self.ns.clone();
        handle
            .spawn(async move {
                let v = thread_cpu_ns();
                ns.store(v, Ordering::Relaxed);
                v
            })
            .await
            .unwrap_or(0)
    }
}

struct RoomResult {
    publishers: usize,
    forwarded_pps: f64,
    cpu_us_per_packet: f64,
    p50_us: u64,
    p99_us: u64,
    mem_per_participant: f64,
    received: usize,
}

async fn run_room(n: usize, seconds: u64, sfu_rt: &tokio::runtime::Handle) -> RoomResult {
    let sfu = Sfu::new(SfuConfig::loopback(TokenKey::generate()));
    let cpu = SfuCpu {
        ns: Arc::new(AtomicU64::new(0)),
    };
    let epoch = Instant::now();
    let room = format!("bench/{n}");
    let rss_before = rss_bytes();
    let mut clients = Vec::new();
    for i in 0..n {
        let id = format!("p{i}");
        let claims = Claims::new(&room, &id, &id, convene_media::token::unix_now(), 120);
        let token = sfu.token_key().issue(&claims);
        let c = join_on(sfu_rt, &sfu, &room, &id, i as u8, &token, true)
            .await
            .expect("join");
        clients.push(c);
    }
    let publishers: Vec<_> = clients
        .iter()
        .map(|c| common::start_publishing(c, FPS, PER_FRAME, VIDEO_BYTES, epoch))
        .collect();
    // Warm up: negotiation, keyframes, steady state.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rss_after = rss_bytes();
    for c in clients.iter_mut() {
        while c.received.try_recv().is_ok() {}
    }

    let m0 = sfu.metrics();
    let cpu0 = cpu.read(sfu_rt).await;
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let cpu1 = cpu.read(sfu_rt).await;
    let m1 = sfu.metrics();
    let elapsed = t0.elapsed().as_secs_f64();

    let mut latencies = Vec::new();
    let mut received = 0;
    for c in clients.iter_mut() {
        while let Ok(r) = c.received.try_recv() {
            received += 1;
            if let Some((_, _, _, sent)) = decode(&r.payload) {
                let arrived = r.at.duration_since(epoch).as_micros() as u64;
                latencies.push(arrived.saturating_sub(sent));
            }
        }
    }
    latencies.sort_unstable();
    for p in publishers {
        p.abort();
    }
    for c in clients {
        c.close().await;
    }
    let forwarded = (m1.packets_forwarded - m0.packets_forwarded) as f64;
    RoomResult {
        publishers: n,
        forwarded_pps: forwarded / elapsed,
        cpu_us_per_packet: (cpu1.saturating_sub(cpu0)) as f64 / 1000.0 / forwarded.max(1.0),
        p50_us: percentile(&latencies, 0.5),
        p99_us: percentile(&latencies, 0.99),
        mem_per_participant: rss_after.saturating_sub(rss_before) as f64 / n as f64,
        received,
    }
}

/// Two webrtc-rs peers connected directly, one publishing the same traffic.
async fn baseline(seconds: u64) -> (u64, u64) {
    let epoch = Instant::now();
    let build = |signal: mpsc::UnboundedSender<String>, received| async move {
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
                signal,
                received,
                paused: Arc::new(AtomicBool::new(false)),
                resume: Arc::new(Notify::new()),
                capture: true,
            }))
            .with_udp_addrs(vec!["127.0.0.1:0".to_owned()])
            .build()
            .await
            .expect("pc");
        Arc::new(pc) as Arc<dyn PeerConnection>
    };
    let (a_sig, mut a_sig_rx) = mpsc::unbounded_channel();
    let (b_sig, mut b_sig_rx) = mpsc::unbounded_channel();
    let (a_recv, _a_rx) = mpsc::unbounded_channel();
    let (b_recv, mut b_rx) = mpsc::unbounded_channel();
    let a = build(a_sig, a_recv).await;
    let b = build(b_sig, b_recv).await;
    let (a_ssrc, v_ssrc) = (rand::random(), rand::random());
    let audio = local_track(
        "a",
        "audio",
        RtpCodecKind::Audio,
        a_ssrc,
        "audio/opus",
        48000,
        2,
    );
    let video = local_track(
        "a",
        "video",
        RtpCodecKind::Video,
        v_ssrc,
        "video/VP8",
        90000,
        0,
    );
    a.add_track(audio.clone()).await.expect("track");
    a.add_track(video.clone()).await.expect("track");
    let offer = a.create_offer(None).await.expect("offer");
    a.set_local_description(offer.clone()).await.expect("local");
    b.set_remote_description(offer).await.expect("remote");
    let answer = b.create_answer(None).await.expect("answer");
    b.set_local_description(answer.clone())
        .await
        .expect("local");
    a.set_remote_description(answer).await.expect("remote");
    for (rx, to) in [(&mut a_sig_rx, b.clone()), (&mut b_sig_rx, a.clone())] {
        let mut rx = std::mem::replace(rx, mpsc::unbounded_channel().1);
        tokio::spawn(async move {
            while let Some(text) = rx.recv().await {
                if let Ok(ClientMessage::Candidate(Candidate {
                    candidate,
                    sdp_mid,
                    sdp_mline_index,
                })) = serde_json::from_str(&text)
                {
                    let _ = to
                        .add_ice_candidate(RTCIceCandidateInit {
                            candidate,
                            sdp_mid,
                            sdp_mline_index,
                            ..Default::default()
                        })
                        .await;
                }
            }
        });
    }
    let publisher = publish_tracks(
        audio,
        video,
        (a_ssrc, v_ssrc, 0),
        FPS,
        PER_FRAME,
        VIDEO_BYTES,
        epoch,
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    while b_rx.try_recv().is_ok() {}
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let mut latencies = Vec::new();
    while let Ok(r) = b_rx.try_recv() {
        if let Some((_, _, _, sent)) = decode(&r.payload) {
            latencies.push((r.at.duration_since(epoch).as_micros() as u64).saturating_sub(sent));
        }
    }
    publisher.abort();
    let _ = a.close().await;
    let _ = b.close().await;
    latencies.sort_unstable();
    eprintln!("baseline: {} packets received", latencies.len());
    (percentile(&latencies, 0.5), percentile(&latencies, 0.99))
}

fn main() {
    let seconds: u64 = std::env::args()
        .skip_while(|a| a != "--seconds")
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    // `--only 8` measures one room size in a fresh process: RSS growth of later
    // rooms is understated because the allocator reuses the previous room's pages.
    let sizes: Vec<usize> = match std::env::args()
        .skip_while(|a| a != "--only")
        .nth(1)
        .and_then(|s| s.parse().ok())
    {
        Some(n) => vec![n],
        None => vec![4, 6, 8],
    };
    let sfu_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("sfu")
        .enable_all()
        .build()
        .expect("sfu runtime");
    let clients_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("clients")
        .enable_all()
        .build()
        .expect("client runtime");
    let handle = sfu_rt.handle().clone();
    clients_rt.block_on(async move {
        let (base_p50, base_p99) = baseline(seconds).await;
        let mut results = Vec::new();
        for n in sizes {
            let r = run_room(n, seconds, &handle).await;
            eprintln!("room of {n}: {} packets received by clients", r.received);
            results.push(r);
        }
        println!("\nSFU benchmark, loopback, {seconds} s per room, video {FPS} fps x {PER_FRAME} packets x {VIDEO_BYTES} B + Opus 50 pps per publisher");
        println!("direct peer-to-peer baseline latency: p50 {base_p50} µs, p99 {base_p99} µs\n");
        println!("| publishers | forwarded packets/s | SFU CPU µs/packet | latency p50 / p99 (µs) | added p50 / p99 (µs) | memory per participant |");
        println!("|---:|---:|---:|---:|---:|---:|");
        for r in results {
            println!(
                "| {} | {:.0} | {:.2} | {} / {} | {} / {} | {:.2} MB |",
                r.publishers,
                r.forwarded_pps,
                r.cpu_us_per_packet,
                r.p50_us,
                r.p99_us,
                r.p50_us as i64 - base_p50 as i64,
                r.p99_us as i64 - base_p99 as i64,
                r.mem_per_participant / 1_000_000.0,
            );
        }
        println!("\nTargets: ≤ 10 µs CPU per forwarded packet, p99 added latency < 5000 µs, < 5 MB per participant.");
        println!("Memory is the process RSS growth per participant and includes the in-process client's own peer connection.");
    });
}
