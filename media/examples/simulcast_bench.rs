//! A Room of 12 with and without simulcast: what each subscriber receives and
//! what the SFU spends per forwarded packet.
//!
//! `cargo run --release -p convene-media --example simulcast_bench [-- --seconds 10] [--people 12]`
//!
//! One in-process SFU (as in `convene serve`: its media on its own threads,
//! signaling on tokio) and 12 webrtc-rs participants on loopback, each
//! publishing Opus (50 packets/s) and VP8 video at 30 fps, everyone
//! subscribing to everyone else. Three phases, each with a fresh Room:
//!
//! - **single**: no simulcast; each camera is one stream of 1,200-byte frames
//!   (the top layer's size), forwarded to everyone, as without simulcast;
//! - **simulcast, small tiles**: each camera in three layers (200, 600 and
//!   1,200-byte frames; 320x180, 640x360 and 1280x720), every subscriber
//!   showing the others in 320x180 tiles (a grid of 12 on a laptop screen);
//! - **simulcast, large tiles**: the same layers, every tile 1280x720 (each
//!   person's video full screen), so only the downlink estimate limits layers.
//!
//! After a warm-up (tile reports sent, layers settled) each phase is measured
//! for `--seconds`: per subscriber, the video payload received (kbit/s, p50
//! and max over subscribers) and the share of packets of each layer; for the
//! SFU, packets forwarded per second and the CPU time of its media threads
//! (`convene-media-*`, from `/proc/self/task/*/schedstat`) per forwarded packet. The
//! clients run in the same process, so their CPU is not the SFU's and is not
//! counted.

use std::time::{Duration, Instant};

use convene_media::signaling::{ClientMessage, TileReport};
use convene_media::testing::{self, Client};
use convene_media::{Sfu, SfuConfig, TokenKey};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const LIMIT: Duration = Duration::from_secs(60);
const WARM_UP: Duration = Duration::from_secs(6);

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Single,
    Small,
    Large,
}

impl Phase {
    fn label(self) -> &'static str {
        match self {
            Phase::Single => "single stream",
            Phase::Small => "simulcast, 320x180 tiles",
            Phase::Large => "simulcast, 1280x720 tiles",
        }
    }
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let value = |name: &str| -> Option<u64> {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
    };
    let seconds = value("--seconds").unwrap_or(10);
    let people = value("--people").unwrap_or(12).clamp(2, 32) as usize;
    let runtime = tokio::runtime::Runtime::new()?;
    println!(
        "Room of {people}, {seconds} s per phase; load average {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!(
        "| phase | video downlink per subscriber, kbit/s: p50 / max | layers received (low / mid / top) | forwarded packets/s | SFU media CPU µs/packet |"
    );
    println!("|---|---:|---|---:|---:|");
    for phase in [Phase::Single, Phase::Small, Phase::Large] {
        let row = runtime.block_on(run_phase(phase, people, Duration::from_secs(seconds)))?;
        println!("{row}");
    }
    Ok(())
}

async fn run_phase(phase: Phase, people: usize, window: Duration) -> Result<String> {
    let sfu = Sfu::new(SfuConfig::loopback(TokenKey::generate()))?;
    let room = format!("bench/{}", phase.label().len());
    let epoch = Instant::now();
    let mut clients: Vec<Client> = Vec::new();
    let mut publishing = Vec::new();
    for i in 0..people {
        let id = format!("p{i}");
        let index = u8::try_from(i)?;
        let client = if phase == Phase::Single {
            let c = testing::join(&sfu, &room, &id, index, None).await;
            publishing.push(testing::start_publishing(&c, 30, 1, 1200, epoch));
            c
        } else {
            let c = testing::join_simulcast(&sfu, &room, &id, index).await;
            publishing.push(testing::publish_simulcast(&c, 30, epoch));
            c
        };
        clients.push(client);
    }
    // Each subscriber learns the others' video tracks and reports its tiles.
    let (width, height) = match phase {
        Phase::Single | Phase::Large => (1280, 720),
        Phase::Small => (320, 180),
    };
    let mut video_tracks: Vec<Vec<String>> = Vec::new();
    for client in &mut clients {
        let tracks: Vec<String> = client
            .others_cameras(people - 1, LIMIT)
            .await
            .into_iter()
            .map(|t| t.track_id)
            .collect();
        client.send(&ClientMessage::Tiles {
            tiles: tracks
                .iter()
                .map(|track_id| TileReport {
                    mid: None,
                    track_id: track_id.clone(),
                    width,
                    height,
                    visible: true,
                    screen: false,
                })
                .collect(),
        });
        video_tracks.push(tracks);
    }
    tokio::time::sleep(WARM_UP).await;
    for client in &mut clients {
        while client.received.try_recv().is_ok() {}
    }
    let before = (sfu.metrics().packets_forwarded, media_cpu()?);
    let started = Instant::now();
    let mut bytes = vec![0u64; people];
    let mut layers = [0u64; 3];
    while started.elapsed() < window {
        tokio::time::sleep(Duration::from_millis(100)).await;
        for (i, client) in clients.iter_mut().enumerate() {
            while let Ok(r) = client.received.try_recv() {
                if !video_tracks[i].contains(&r.track_id) {
                    continue;
                }
                bytes[i] += r.payload.len() as u64;
                if phase != Phase::Single
                    && let Some((layer, _, _)) = testing::decode_simulcast(&r.payload)
                {
                    layers[usize::from(layer.min(2))] += 1;
                }
            }
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let forwarded = sfu.metrics().packets_forwarded - before.0;
    let cpu = media_cpu()? - before.1;
    for p in publishing {
        p.abort();
    }
    for client in clients {
        client.close().await;
    }
    let mut kbps: Vec<f64> = bytes
        .iter()
        .map(|b| *b as f64 * 8.0 / elapsed / 1000.0)
        .collect();
    kbps.sort_by(f64::total_cmp);
    let total: u64 = layers.iter().sum();
    let shares = if phase == Phase::Single {
        "one stream".to_owned()
    } else {
        let pct = |n: u64| 100.0 * n as f64 / total.max(1) as f64;
        format!(
            "{:.0} % / {:.0} % / {:.0} %",
            pct(layers[0]),
            pct(layers[1]),
            pct(layers[2])
        )
    };
    Ok(format!(
        "| {} | {:.0} / {:.0} | {shares} | {:.0} | {:.2} |",
        phase.label(),
        kbps[kbps.len() / 2],
        kbps[kbps.len() - 1],
        forwarded as f64 / elapsed,
        cpu.as_secs_f64() * 1e6 / forwarded.max(1) as f64,
    ))
}

/// Time on CPU of this process's SFU media threads so far (`schedstat`, in ns).
fn media_cpu() -> Result<Duration> {
    let mut nanos = 0u64;
    for task in std::fs::read_dir("/proc/self/task")? {
        let path = task?.path();
        let comm = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        if !comm.starts_with("convene-media") {
            continue;
        }
        let schedstat = std::fs::read_to_string(path.join("schedstat")).unwrap_or_default();
        nanos += schedstat
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
    }
    Ok(Duration::from_nanos(nanos))
}
