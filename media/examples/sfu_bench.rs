//! Load generator and benchmark: Convene's SFU and Janus's VideoRoom under the
//! same synthetic load, on loopback, in one run.
//!
//! `cargo run --release -p convene-media --example sfu_bench [-- --seconds 10] [--only 8] [--no-janus]`
//!
//! `… --example sfu_bench -- --saturate [--seconds 4] [--max-rooms 12]`: the
//! saturation run instead. Rooms of 8 publishers are added to one server, one
//! Room at a time; after each, the whole server is measured for `--seconds`
//! (after a 2 s warm-up) and the run stops once p99 added latency passes 50 ms,
//! more than 0.1 % of packets are lost, a Room cannot join within a minute, or
//! `--max-rooms` is reached. It reports the most participants each server held
//! within both limits and the CPU per forwarded packet near 50 % and 90 % of
//! that. Loss is counted per received stream from its sequence numbers (a
//! stream that never arrived counts as wholly lost). The clients run in this
//! process on one thread; their CPU share is printed beside each step, since on
//! a small machine the load generator can saturate before the server does.
//!
//! `… --example sfu_bench -- --impair loss=2%,jitter=20ms[,delay=30ms] [--seconds 10]`:
//! Rooms of 4 and 8 (or `--only N`) with every participant behind a lossy,
//! jittery link, both ways ([`convene_media::impairment`]: in the clients'
//! interceptor chains, since this kernel has no `tc netem`, and the namespace's
//! veth carries nothing anyway: both ends of every flow are local addresses).
//! It reports per server the video packets lost on the wire, recovered by
//! NACK/RTX, and still missing; retransmissions and NACKs; freezes (WebRTC's
//! rule); and latency against a direct pair behind the same links.
//!
//! Instructions per forwarded packet, repeatable on a busy machine: run
//! `… --example sfu_bench -- --no-janus --only 8 --seconds 80` with
//! `CONVENE_BENCH_WRAP="valgrind --tool=callgrind --instr-atstart=no"` and
//! `CONVENE_BENCH_METRICS=1`; once packets flow, `callgrind_control -i on` the
//! server, `callgrind_control -d` it some seconds later, and divide the dump's
//! total by the growth of the forwarded counter (stderr, `metrics <ms>
//! <forwarded> <dropped>`) between the two moments. Under valgrind the server
//! forwards fewer packets per second than it is sent, but the count per packet
//! moved by about 1 % between runs and rates.
//!
//! Rooms of 4, 6 and 8 publishers, each sending synthetic VP8 (30 fps, 3
//! packets of ~1000 bytes per frame) and Opus (50 packets/s, 160 bytes with an
//! audio level) to everyone else. Every server runs as a child process of the
//! benchmark, fresh for each room, and is measured from outside the same way:
//! CPU time from `/proc/<pid>/stat` (all threads), memory as the growth from the
//! idle server to the warmed-up room, divided by the participants, of the RSS
//! (`VmRSS`: code paged in once counts too) and of anonymous memory (`RssAnon`:
//! heap and stacks only).
//!
//! - **Convene**: this binary re-executed with `--serve`: the SFU behind a
//!   WebSocket that does what the instance's `…/signal` route does, on tokio's
//!   default multi-threaded runtime, as in `convene serve` (the SFU's media runs
//!   on its own thread beside it).
//! - **Janus** 1.x (`apt-get install janus`): started with a configuration
//!   written to a temporary folder (VideoRoom plugin, WebSocket transport on
//!   127.0.0.1, ICE on `lo` only; `support/janus.rs`, shared with
//!   `freeze_bench`). Each participant has a publisher handle and
//!   one multistream subscriber handle for everyone else's media, as Janus's
//!   own clients do.
//!
//! Clients are webrtc-rs peers ([`convene_media::testing`]) in this process.
//! Forwarded packets are counted where they arrive, at the subscribers, so both
//! servers are counted alike. Latency is measured from the send time carried in
//! every payload to arrival at the subscriber and compared to a direct
//! webrtc-rs peer-to-peer pair with the same traffic.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use convene_media::impairment::{Impairment, LinkLog, MediaKey};
use convene_media::signaling::{Candidate, ClientMessage};
use convene_media::testing::{
    self, Handler, Link, Received, client_peer_connection, client_peer_connection_behind, decode,
    local_track, publish_tracks,
};
use convene_media::{Claims, Sfu, SfuConfig, TokenKey};
use futures_util::{SinkExt, StreamExt};
use janus::Janus;
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use tokio::io::AsyncBufReadExt;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use webrtc::peer_connection::{PeerConnection, RTCIceCandidateInit};

#[path = "support/janus.rs"]
mod janus;

/// The allocator of the `convene` binary (mimalloc), so the SFU process allocates
/// as it does there; built without transparent huge pages (see `Cargo.toml`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const FPS: u32 = 30;
const PER_FRAME: u32 = 3;
const VIDEO_BYTES: usize = 1000;
const WARMUP: Duration = Duration::from_secs(3);
const ROOM: &str = "bench";
/// Read buffer of a signaling WebSocket.
const SIGNALING_BUFFER: usize = 4096;
const JANUS_ROOM: u64 = 4242;
/// Linux's USER_HZ: the unit of utime and stime in `/proc/<pid>/stat`.
const CLOCK_TICKS_PER_SEC: f64 = 100.0;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--serve") {
        serve();
        return;
    }
    let value = |flag: &str| {
        args.iter()
            .skip_while(|a| *a != flag)
            .nth(1)
            .and_then(|s| s.parse::<u64>().ok())
    };
    let seconds = value("--seconds").unwrap_or(10);
    let sizes: Vec<usize> = match value("--only") {
        Some(n) => vec![n as usize],
        None => vec![4, 6, 8],
    };
    let saturation = args.iter().any(|a| a == "--saturate");
    let max_rooms = value("--max-rooms").unwrap_or(12) as usize;
    let mut with_janus = !args.iter().any(|a| a == "--no-janus");
    if with_janus && std::env::var_os(NETNS_ENV).is_none() {
        match in_private_network(&args) {
            Ok(code) => std::process::exit(code),
            Err(why) => {
                eprintln!("{why}; measuring Convene only");
                with_janus = false;
            }
        }
    }
    // Clients on one thread; the servers are other processes and take the rest.
    let clients = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("clients")
        .enable_all()
        .build()
        .expect("client runtime");
    let impair = args
        .iter()
        .skip_while(|a| *a != "--impair")
        .nth(1)
        .map(|spec| parse_impairment(spec));
    if let Some(Err(why)) = &impair {
        eprintln!("--impair: {why}");
        std::process::exit(2);
    }
    if let Some(Ok((impairment, label))) = impair {
        let sizes = match value("--only") {
            Some(n) => vec![n as usize],
            None => vec![4, 8],
        };
        clients.block_on(impaired_bench(
            seconds, sizes, with_janus, impairment, label,
        ));
    } else if saturation {
        let window = value("--seconds").unwrap_or(4);
        clients.block_on(saturation_bench(window, max_rooms, with_janus));
    } else {
        clients.block_on(bench(seconds, sizes, with_janus));
    }
}

/// Set (to the media address) once the benchmark runs in its private network.
const NETNS_ENV: &str = "CONVENE_BENCH_MEDIA_IP";
/// The address of the private network's one interface besides `lo`.
const PRIVATE_IP: &str = "10.99.0.1";

/// Re-runs the benchmark in a network namespace of its own, with `lo` and one
/// veth pair that exists only inside it.
///
/// Janus gathers ICE candidates with libnice, which never offers loopback
/// addresses: on `lo` alone it finds nothing and refuses every offer. A private
/// namespace gives it a non-loopback address while nothing can leave the
/// machine (there is no route out), and both servers are measured in it.
fn in_private_network(args: &[String]) -> Result<i32, String> {
    let exe = std::env::current_exe().map_err(|e| format!("own path: {e}"))?;
    let script = format!(
        "ip link set lo up && ip link add cb0 type veth peer name cb1 && \
         ip addr add {PRIVATE_IP}/32 dev cb0 && ip link set cb1 up && ip link set cb0 up && \
         exec \"$0\" \"$@\""
    );
    let status = std::process::Command::new("unshare")
        .args(["--user", "--map-root-user", "--net", "sh", "-c", &script])
        .arg(exe)
        .args(args.iter().skip(1))
        .env(NETNS_ENV, PRIVATE_IP)
        .status()
        .map_err(|e| format!("cannot run unshare for a private network: {e}"))?;
    match status.code() {
        Some(code) if code != 0 && code != 101 => Err(format!(
            "no private network namespace (unshare exited with {code})"
        )),
        Some(code) => Ok(code),
        None => Err("the benchmark was killed".to_owned()),
    }
}

/// Where Janus and its clients put media: the private network's address.
fn janus_media_ip() -> String {
    std::env::var(NETNS_ENV).unwrap_or_else(|_| PRIVATE_IP.to_owned())
}

async fn bench(seconds: u64, sizes: Vec<usize>, with_janus: bool) {
    let (base_p50, base_p99) = baseline(seconds).await;
    let janus = if with_janus { janus::install() } else { None };
    if with_janus && janus.is_none() {
        eprintln!(
            "Janus not found (binary `janus` and its plugin folder): `apt-get install -y janus`; measuring Convene only"
        );
    }
    let mut rows = Vec::new();
    for n in sizes {
        let convene = run_room(Target::Convene, n, seconds).await;
        eprintln!("convene, room of {n}: {convene:?}");
        let janus = match &janus {
            Some(lib) => {
                let r = run_room(Target::Janus(lib.clone()), n, seconds).await;
                eprintln!("janus, room of {n}: {r:?}");
                Some(r)
            }
            None => None,
        };
        rows.push((convene, janus));
    }

    let mib = |b: f64| b / 1_048_576.0;
    println!(
        "\nSFU benchmark, loopback, {seconds} s per room after {} s warm-up, per publisher VP8 {FPS} fps x {PER_FRAME} packets x {VIDEO_BYTES} B + Opus 50 pps",
        WARMUP.as_secs()
    );
    println!("direct peer-to-peer baseline latency: p50 {base_p50} µs, p99 {base_p99} µs\n");
    println!(
        "| publishers | server | forwarded packets/s | server CPU µs/packet | latency p50 / p99 (µs) | added p50 / p99 (µs) | memory per participant: RSS / anonymous |"
    );
    println!("|---:|---|---:|---:|---:|---:|---:|");
    for (c, j) in &rows {
        for r in std::iter::once(c).chain(j.iter()) {
            println!(
                "| {} | {} | {:.0} | {:.2} | {} / {} | {} / {} | {:.2} / {:.2} MiB |",
                r.publishers,
                r.server,
                r.forwarded_pps,
                r.cpu_us_per_packet,
                r.p50_us,
                r.p99_us,
                r.p50_us as i64 - base_p50 as i64,
                r.p99_us as i64 - base_p99 as i64,
                mib(r.rss_per_participant),
                mib(r.anon_per_participant),
            );
        }
    }
    if rows.iter().any(|(_, j)| j.is_some()) {
        println!(
            "\nRatios Convene / Janus (below 1 is better for Convene, except forwarded packets/s where 1 means both delivered everything):\n"
        );
        println!(
            "| publishers | forwarded packets/s | CPU per packet | added latency p50 | added latency p99 | memory per participant: RSS / anonymous |"
        );
        println!("|---:|---:|---:|---:|---:|---:|");
        for (c, j) in &rows {
            let Some(j) = j else { continue };
            let added = |r: &RoomResult, base: u64, p: fn(&RoomResult) -> u64| {
                (p(r) as f64 - base as f64).max(1.0)
            };
            println!(
                "| {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} / {:.2} |",
                c.publishers,
                c.forwarded_pps / j.forwarded_pps.max(1.0),
                c.cpu_us_per_packet / j.cpu_us_per_packet.max(f64::MIN_POSITIVE),
                added(c, base_p50, |r| r.p50_us) / added(j, base_p50, |r| r.p50_us),
                added(c, base_p99, |r| r.p99_us) / added(j, base_p99, |r| r.p99_us),
                c.rss_per_participant / j.rss_per_participant.max(1.0),
                c.anon_per_participant / j.anon_per_participant.max(1.0),
            );
        }
    }
    println!(
        "\nTargets: ≤ 10 µs server CPU per forwarded packet, p99 added latency < 5000 µs, < 5 MB per participant."
    );
}

// ---------------------------------------------------------------------------
// The saturation run.

/// Publishers per Room in the saturation run.
const SATURATION_ROOM: usize = 8;
/// A step fails when p99 added latency passes this...
const SATURATION_P99_US: u64 = 50_000;
/// ...or more than this fraction of packets is lost.
const SATURATION_LOSS: f64 = 0.001;
const SATURATION_WARMUP: Duration = Duration::from_secs(2);
/// Longest a Room of 8 may take to join before the server counts as saturated.
const SATURATION_JOIN_LIMIT: Duration = Duration::from_secs(60);
/// Packets per second each publisher sends of video and of audio.
const NOMINAL_PPS: [f64; 2] = [50.0, (FPS * PER_FRAME) as f64];

/// One server with `participants` people in Rooms of 8, measured.
#[derive(Debug, Clone)]
struct Step {
    participants: usize,
    forwarded_pps: f64,
    cpu_us_per_packet: f64,
    /// Server CPU time over wall time (1.0 = one core busy).
    server_cores: f64,
    /// This process's (the clients') CPU time over wall time.
    client_cores: f64,
    p50_added_us: u64,
    p99_added_us: u64,
    loss: f64,
    /// The machine's one-minute load average at the end of the step: on a
    /// shared machine, what else competed for the cores.
    load: f64,
}

impl Step {
    fn within_limits(&self) -> bool {
        self.p99_added_us <= SATURATION_P99_US && self.loss <= SATURATION_LOSS
    }
}

async fn saturation_bench(window: u64, max_rooms: usize, with_janus: bool) {
    let (base_p50, base_p99) = baseline(window.max(4)).await;
    let janus = if with_janus { janus::install() } else { None };
    let mut runs = vec![(
        "Convene",
        saturate(Target::Convene, window, max_rooms, (base_p50, base_p99)).await,
    )];
    if let Some(lib) = janus {
        runs.push((
            "Janus",
            saturate(Target::Janus(lib), window, max_rooms, (base_p50, base_p99)).await,
        ));
    }
    println!(
        "\nSFU saturation, Rooms of {SATURATION_ROOM} publishers added one at a time, {window} s measured after {} s warm-up per step; VP8 {FPS} fps x {PER_FRAME} packets x {VIDEO_BYTES} B + Opus 50 pps per publisher",
        SATURATION_WARMUP.as_secs()
    );
    println!("direct peer-to-peer baseline latency: p50 {base_p50} µs, p99 {base_p99} µs\n");
    println!(
        "| server | participants | forwarded packets/s | server CPU µs/packet | server cores | client cores | added p50 / p99 (µs) | loss | load average | within limits |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|");
    for (name, steps) in &runs {
        for s in steps {
            println!(
                "| {name} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {} / {} | {:.3} % | {:.1} | {} |",
                s.participants,
                s.forwarded_pps,
                s.cpu_us_per_packet,
                s.server_cores,
                s.client_cores,
                s.p50_added_us,
                s.p99_added_us,
                s.loss * 100.0,
                s.load,
                if s.within_limits() { "yes" } else { "no" },
            );
        }
    }
    println!(
        "\n| server | most participants within limits | CPU µs/packet near 50 % of that | near 90 % |"
    );
    println!("|---|---:|---:|---:|");
    let mut summary = Vec::new();
    for (name, steps) in &runs {
        let held = steps
            .iter()
            .take_while(|s| s.within_limits())
            .map(|s| s.participants)
            .max()
            .unwrap_or(0);
        let near = |fraction: f64| {
            let want = held as f64 * fraction;
            steps
                .iter()
                .filter(|s| s.participants <= held)
                .min_by(|a, b| {
                    let da = (a.participants as f64 - want).abs();
                    let db = (b.participants as f64 - want).abs();
                    da.total_cmp(&db)
                })
                .map(|s| (s.participants, s.cpu_us_per_packet))
        };
        let (half, ninety) = (near(0.5), near(0.9));
        let show =
            |x: Option<(usize, f64)>| x.map_or("-".to_owned(), |(p, c)| format!("{c:.2} (at {p})"));
        println!("| {name} | {held} | {} | {} |", show(half), show(ninety));
        summary.push((held, half, ninety));
    }
    if let [(c_held, c_half, c_ninety), (j_held, j_half, j_ninety)] = summary.as_slice() {
        let ratio = |a: Option<(usize, f64)>, b: Option<(usize, f64)>| match (a, b) {
            (Some((_, a)), Some((_, b))) if b > 0.0 => format!("{:.2}", a / b),
            _ => "-".to_owned(),
        };
        println!(
            "\nRatios Convene / Janus: participants held {:.2}, CPU per packet near 50 % {}, near 90 % {}",
            *c_held as f64 / (*j_held).max(1) as f64,
            ratio(*c_half, *j_half),
            ratio(*c_ninety, *j_ninety),
        );
    }
}

/// Adds Rooms of 8 to one fresh server until it saturates; one [`Step`] per Room.
async fn saturate(target: Target, window: u64, max_rooms: usize, base: (u64, u64)) -> Vec<Step> {
    let epoch = Instant::now();
    let server = match &target {
        Target::Convene => Server::convene().await,
        Target::Janus(lib) => Server::janus(lib).await,
    };
    let name = match &target {
        Target::Convene => "convene",
        Target::Janus(_) => "janus",
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let endpoint = server.endpoint();
    let mut people: Vec<(u8, Participant)> = Vec::new();
    let mut steps = Vec::new();
    for room in 0..max_rooms {
        let endpoint = endpoint.clone();
        let target = target.clone();
        // In a task of its own so a client that panics (its webrtc-rs setup
        // does, on failure) ends the run, not the benchmark.
        let added = tokio::spawn(async move {
            let mut joined = Vec::new();
            match target {
                Target::Convene => {
                    let room = format!("sat{room}");
                    for i in 0..SATURATION_ROOM as u8 {
                        joined.push((
                            i,
                            convene_participant_in(&endpoint, &room, i, epoch, None).await?,
                        ));
                    }
                }
                Target::Janus(_) => {
                    let room = JANUS_ROOM + 1 + room as u64;
                    let mut publishers = Vec::new();
                    for i in 0..SATURATION_ROOM as u8 {
                        publishers.push(janus_publisher_in(&endpoint, room, i, epoch, None).await?);
                    }
                    for (i, p) in publishers.into_iter().enumerate() {
                        let i = i as u8;
                        joined.push((i, janus_subscriber_in(room, i, SATURATION_ROOM, p).await?));
                    }
                }
            }
            Ok::<_, String>(joined)
        });
        match tokio::time::timeout(SATURATION_JOIN_LIMIT, added).await {
            Ok(Ok(Ok(joined))) => people.extend(joined),
            outcome => {
                let why = match outcome {
                    Ok(Ok(Err(refused))) => refused,
                    Ok(Err(panicked)) => panicked.to_string(),
                    _ => format!("not within {SATURATION_JOIN_LIMIT:?}"),
                };
                eprintln!("{name}: Room {} could not join ({why}); stopping", room + 1);
                break;
            }
        }
        tokio::time::sleep(SATURATION_WARMUP).await;
        for (_, p) in people.iter_mut() {
            while p.received.try_recv().is_ok() {}
        }
        let (cpu0, me0) = (proc_cpu_secs(server.pid), proc_cpu_secs(std::process::id()));
        let t0 = Instant::now();
        let start = t0.duration_since(epoch).as_micros() as u64;
        tokio::time::sleep(Duration::from_secs(window)).await;
        let (cpu1, me1) = (proc_cpu_secs(server.pid), proc_cpu_secs(std::process::id()));
        let elapsed = t0.elapsed().as_secs_f64();
        // Packets sent in the last 200 ms may still be on their way: not counted.
        let end = start + (window * 1_000_000).saturating_sub(200_000);
        let counted_secs = (end - start) as f64 / 1e6;
        let mut latencies = Vec::new();
        let (mut expected, mut received) = (0.0f64, 0.0f64);
        for (index, p) in people.iter_mut() {
            let mut streams: HashMap<(u8, u8), (u32, u32, u64)> = HashMap::new();
            while let Ok(r) = p.received.try_recv() {
                let Some((sender, kind, seq, sent)) = decode(&r.payload) else {
                    continue;
                };
                if sent < start || sent >= end {
                    continue;
                }
                let arrived = r.at.duration_since(epoch).as_micros() as u64;
                latencies.push(arrived.saturating_sub(sent));
                let s = streams.entry((sender, kind)).or_insert((seq, seq, 0));
                s.0 = s.0.min(seq);
                s.1 = s.1.max(seq);
                s.2 += 1;
            }
            for sender in (0..SATURATION_ROOM as u8).filter(|s| s != index) {
                for kind in [0u8, 1] {
                    match streams.get(&(sender, kind)) {
                        Some((lo, hi, n)) => {
                            expected += f64::from(hi - lo + 1);
                            received += *n as f64;
                        }
                        None => expected += NOMINAL_PPS[usize::from(kind)] * counted_secs,
                    }
                }
            }
        }
        latencies.sort_unstable();
        let forwarded = latencies.len() as f64;
        let step = Step {
            participants: people.len(),
            forwarded_pps: forwarded / counted_secs,
            cpu_us_per_packet: (cpu1 - cpu0) * 1e6 / (forwarded / counted_secs * elapsed).max(1.0),
            server_cores: (cpu1 - cpu0) / elapsed,
            client_cores: (me1 - me0) / elapsed,
            p50_added_us: percentile(&latencies, 0.5).saturating_sub(base.0),
            p99_added_us: percentile(&latencies, 0.99).saturating_sub(base.1),
            loss: if expected > 0.0 {
                (1.0 - received / expected).max(0.0)
            } else {
                1.0
            },
            load: load_average(),
        };
        eprintln!("{name}: {step:?}");
        let done = !step.within_limits();
        steps.push(step);
        if done {
            break;
        }
    }
    for (_, p) in people {
        p.publisher.abort();
        for pc in p.connections {
            let _ = pc.close().await;
        }
    }
    server.stop().await;
    steps
}

/// The server under test.
#[derive(Clone)]
enum Target {
    Convene,
    /// Janus, with the folder holding its plugins and transports.
    Janus(PathBuf),
}

#[derive(Debug)]
struct RoomResult {
    server: &'static str,
    publishers: usize,
    forwarded_pps: f64,
    cpu_us_per_packet: f64,
    p50_us: u64,
    p99_us: u64,
    /// Growth of the resident set (code paged in, heap, stacks) per participant.
    rss_per_participant: f64,
    /// Growth of anonymous resident memory (heap and stacks, not the code and
    /// libraries paged in once) per participant.
    anon_per_participant: f64,
}

/// What one participant holds on to while the room runs.
struct Participant {
    received: mpsc::UnboundedReceiver<Received>,
    /// What the participant's lossy link did, in the `--impair` run.
    log: Option<Arc<LinkLog>>,
    publisher: JoinHandle<()>,
    connections: Vec<Arc<dyn PeerConnection>>,
    /// Tasks and sockets kept alive for the duration (signaling, clients).
    _keep: Vec<Box<dyn std::any::Any + Send>>,
}

async fn run_room(target: Target, n: usize, seconds: u64) -> RoomResult {
    let epoch = Instant::now();
    let (server, name) = match &target {
        Target::Convene => (Server::convene().await, "Convene"),
        Target::Janus(lib) => (Server::janus(lib).await, "Janus"),
    };
    // Let the idle server settle before its baseline size is taken.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (rss_idle, anon_idle) = (proc_rss(server.pid), proc_anon(server.pid));
    let mut people = Vec::new();
    match &target {
        Target::Convene => {
            for i in 0..n {
                people.push(convene_participant(&server, i as u8, epoch, None).await);
            }
        }
        Target::Janus(_) => {
            let mut publishers = Vec::new();
            for i in 0..n {
                publishers.push(janus_publisher(&server, i as u8, epoch, None).await);
            }
            for (i, p) in publishers.into_iter().enumerate() {
                people.push(janus_subscriber(i as u8, n, p).await);
            }
        }
    }
    tokio::time::sleep(WARMUP).await;
    let (rss_room, anon_room) = (proc_rss(server.pid), proc_anon(server.pid));
    for p in people.iter_mut() {
        while p.received.try_recv().is_ok() {}
    }
    let cpu0 = proc_cpu_secs(server.pid);
    let t0 = Instant::now();
    let window_start = t0.duration_since(epoch).as_micros() as u64;
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let cpu1 = proc_cpu_secs(server.pid);
    let elapsed = t0.elapsed().as_secs_f64();
    let mut latencies = Vec::new();
    for p in people.iter_mut() {
        while let Ok(r) = p.received.try_recv() {
            if let Some((_, _, _, sent)) = decode(&r.payload)
                && sent >= window_start
            {
                let arrived = r.at.duration_since(epoch).as_micros() as u64;
                latencies.push(arrived.saturating_sub(sent));
            }
        }
    }
    latencies.sort_unstable();
    for p in people {
        p.publisher.abort();
        for pc in p.connections {
            let _ = pc.close().await;
        }
    }
    server.stop().await;
    let forwarded = latencies.len() as f64;
    RoomResult {
        server: name,
        publishers: n,
        forwarded_pps: forwarded / elapsed,
        cpu_us_per_packet: (cpu1 - cpu0) * 1e6 / forwarded.max(1.0),
        p50_us: percentile(&latencies, 0.5),
        p99_us: percentile(&latencies, 0.99),
        rss_per_participant: rss_room.saturating_sub(rss_idle) as f64 / n as f64,
        anon_per_participant: anon_room.saturating_sub(anon_idle) as f64 / n as f64,
    }
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// The one-minute load average (`/proc/loadavg`), 0 if unreadable.
fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}

/// User plus system CPU time of a process, all threads, in seconds.
fn proc_cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name start at field 3 (state).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (ticks(11) + ticks(12)) as f64 / CLOCK_TICKS_PER_SEC
}

/// Resident set size of a process, bytes.
fn proc_rss(pid: u32) -> u64 {
    proc_status_kb(pid, "VmRSS:")
}

/// Anonymous resident memory of a process (heap, stacks), bytes.
fn proc_anon(pid: u32) -> u64 {
    proc_status_kb(pid, "RssAnon:")
}

/// A `kB` field of `/proc/<pid>/status`, in bytes.
fn proc_status_kb(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))?
                .split_whitespace()
                .nth(1)?
                .parse::<u64>()
                .ok()
        })
        .map_or(0, |kb| kb * 1024)
}

/// A server child process and how to reach it.
struct Server {
    process: Process,
    pid: u32,
    port: u16,
    key: TokenKey,
}

/// The server's process, to stop it.
enum Process {
    Convene(tokio::process::Child),
    Janus(Janus),
}

/// What clients need to reach a server; cheap to clone into tasks.
#[derive(Clone)]
struct Endpoint {
    port: u16,
    key: TokenKey,
}

impl Server {
    fn endpoint(&self) -> Endpoint {
        Endpoint {
            port: self.port,
            key: self.key.clone(),
        }
    }

    /// This benchmark re-executed with `--serve`: the SFU behind a WebSocket.
    async fn convene() -> Self {
        let key: [u8; 32] = rand::random();
        let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
        let exe = std::env::current_exe().expect("the benchmark's own path");
        // CONVENE_BENCH_WRAP runs the server under a profiler, e.g.
        // `heaptrack -o /tmp/sfu`: its numbers are then the profiler's, and a wrapper
        // that does not exec its program leaves the server running after the room.
        let wrap = std::env::var("CONVENE_BENCH_WRAP").unwrap_or_default();
        let mut words = wrap.split_whitespace();
        let mut command = match words.next() {
            Some(program) => {
                let mut c = tokio::process::Command::new(program);
                c.args(words).arg(exe);
                c
            }
            None => tokio::process::Command::new(exe),
        };
        let mut child = command
            .arg("--serve")
            .env("CONVENE_BENCH_KEY", hex)
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("SFU child process starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        let port = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                let line = lines
                    .next_line()
                    .await
                    .expect("child stdout")
                    .expect("the SFU child reports its port before exiting");
                // A profiler wrapping the child may print first.
                if let Some(port) = line
                    .strip_prefix("listening ")
                    .and_then(|p| p.trim().parse::<u16>().ok())
                {
                    break port;
                }
            }
        })
        .await
        .expect("the SFU child reports its port");
        let pid = child.id().expect("running child");
        Self {
            process: Process::Convene(child),
            pid,
            port,
            key: TokenKey::from_bytes(key),
        }
    }

    /// Janus with a configuration of its own in a temporary folder.
    async fn janus(lib: &Path) -> Self {
        let janus = Janus::start(lib, janus_media_ip())
            .await
            .unwrap_or_else(|why| panic!("Janus does not start: {why}"));
        Self {
            pid: janus.pid(),
            port: janus.port(),
            // Janus takes no token: the key is never used.
            key: TokenKey::generate(),
            process: Process::Janus(janus),
        }
    }

    async fn stop(self) {
        match self.process {
            Process::Convene(mut child) => {
                let _ = child.kill().await;
            }
            Process::Janus(janus) => janus.stop().await,
        }
    }
}

// ---------------------------------------------------------------------------
// Convene: the child process and its clients.

/// `--serve`: one SFU on a loopback WebSocket, glued the way the instance's
/// `…/signal` route glues it; prints `listening <port>` when ready.
fn serve() {
    let hex = std::env::var("CONVENE_BENCH_KEY").expect("CONVENE_BENCH_KEY");
    let mut key = [0u8; 32];
    for (i, b) in key.iter_mut().enumerate() {
        *b = hex
            .get(2 * i..2 * i + 2)
            .and_then(|h| u8::from_str_radix(h, 16).ok())
            .expect("a 64-digit hex key");
    }
    // Worker threads of the signaling runtime (media has a thread of its own):
    // tokio's default (one per core) unless CONVENE_BENCH_SFU_THREADS says otherwise.
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = std::env::var("CONVENE_BENCH_SFU_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        builder.worker_threads(n);
    }
    let runtime = builder.enable_all().build().expect("server runtime");
    runtime.block_on(async move {
        let mut config = SfuConfig::loopback(TokenKey::from_bytes(key));
        // CONVENE_BENCH_MEDIA_THREADS overrides the SFU's media threads (one per core).
        config.media_threads = std::env::var("CONVENE_BENCH_MEDIA_THREADS")
            .ok()
            .and_then(|v| v.parse().ok());
        let sfu = Sfu::new(config).expect("the SFU binds a loopback port");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let port = listener.local_addr().expect("local address").port();
        println!("listening {port}");
        // CONVENE_BENCH_METRICS: the forwarded and dropped packet counters on
        // stderr every 250 ms (wall-clock milliseconds first), so a profiler
        // started and stopped from outside can be divided by the packets
        // forwarded between the two.
        if std::env::var_os("CONVENE_BENCH_METRICS").is_some() {
            let sfu = sfu.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_millis(250)).await;
                    let m = sfu.metrics();
                    let ms = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|d| d.as_millis())
                        .unwrap_or_default();
                    eprintln!("metrics {ms} {} {}", m.packets_forwarded, m.packets_dropped);
                }
            });
        }
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let sfu = sfu.clone();
            tokio::spawn(async move {
                // Signaling frames are small: tungstenite's default 128 KiB read and
                // write buffers would be a tenth of a participant's memory. The
                // instance's route wants the same sizes on its WebSocketUpgrade.
                let config = WebSocketConfig::default()
                    .read_buffer_size(SIGNALING_BUFFER)
                    .write_buffer_size(0);
                // The Room is the path's last segment (`/signal/<room>`), as in the
                // instance's route; a bare `/signal` is the one-room benchmark's.
                let room = Arc::new(Mutex::new(ROOM.to_owned()));
                let seen = room.clone();
                // The callback's signature (and its large error type) is tungstenite's.
                #[allow(clippy::result_large_err)]
                let callback =
                    move |request: &tokio_tungstenite::tungstenite::handshake::server::Request,
                          response| {
                        if let Some(r) = request.uri().path().strip_prefix("/signal/")
                            && let Ok(mut slot) = seen.lock()
                        {
                            *slot = r.to_owned();
                        }
                        Ok(response)
                    };
                let Ok(ws) =
                    tokio_tungstenite::accept_hdr_async_with_config(tcp, callback, Some(config))
                        .await
                else {
                    return;
                };
                let room = room.lock().map(|r| r.clone()).unwrap_or_default();
                let (mut sink, mut stream) = ws.split();
                let first = loop {
                    match stream.next().await {
                        Some(Ok(Message::Text(t))) => break t.as_str().to_owned(),
                        Some(Ok(_)) => {}
                        _ => return,
                    }
                };
                let session = match sfu.connect(&room, &first).await {
                    Ok(s) => s,
                    Err(e) => {
                        let _ = sink.send(Message::text(e.to_frame())).await;
                        return;
                    }
                };
                let incoming = Box::pin(stream.filter_map(|m| async move {
                    match m {
                        Ok(Message::Text(t)) => Some(t.as_str().to_owned()),
                        _ => None,
                    }
                }));
                let outgoing = Box::pin((&mut sink).with(|t: String| async move {
                    Ok::<_, tokio_tungstenite::tungstenite::Error>(Message::text(t))
                }));
                session.run(incoming, outgoing).await;
            });
        }
    });
}

/// Bridges a WebSocket to the test client's string channels.
fn bridge<S>(ws: S) -> (mpsc::Sender<String>, mpsc::Receiver<String>)
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>>
        + futures_util::Sink<Message>
        + Send
        + 'static,
{
    let (mut sink, mut stream) = ws.split();
    let (to_server, mut outgoing) = mpsc::channel::<String>(256);
    let (incoming, from_server) = mpsc::channel::<String>(256);
    tokio::spawn(async move {
        while let Some(text) = outgoing.recv().await {
            if sink.send(Message::text(text)).await.is_err() {
                break;
            }
        }
    });
    tokio::spawn(async move {
        while let Some(Ok(frame)) = stream.next().await {
            if let Message::Text(t) = frame
                && incoming.send(t.as_str().to_owned()).await.is_err()
            {
                break;
            }
        }
    });
    (to_server, from_server)
}

async fn convene_participant(
    server: &Server,
    index: u8,
    epoch: Instant,
    link: Option<Link>,
) -> Participant {
    convene_participant_in(&server.endpoint(), ROOM, index, epoch, link)
        .await
        .unwrap_or_else(|why| panic!("p{index} not admitted: {why}"))
}

async fn convene_participant_in(
    server: &Endpoint,
    room: &str,
    index: u8,
    epoch: Instant,
    link: Option<Link>,
) -> Result<Participant, String> {
    let id = format!("p{index}");
    let token = server.key.issue(&Claims::new(
        room,
        &id,
        &id,
        convene_media::token::unix_now(),
        3600,
    ));
    let (ws, _) =
        tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{}/signal/{room}", server.port))
            .await
            .map_err(|e| format!("signaling socket: {e}"))?;
    let (to_server, from_server) = bridge(ws);
    let join = serde_json::to_string(&ClientMessage::Join { token }).expect("json");
    to_server
        .send(join)
        .await
        .map_err(|_| "signaling closed".to_owned())?;
    let log = link.as_ref().map(|l| l.log.clone());
    let mut client = match link {
        Some(link) => testing::start_behind(&id, index, true, to_server, from_server, link).await?,
        None => testing::start(&id, index, true, to_server, from_server).await?,
    };
    let publisher = testing::start_publishing(&client, FPS, PER_FRAME, VIDEO_BYTES, epoch);
    let received = std::mem::replace(&mut client.received, mpsc::unbounded_channel().1);
    Ok(Participant {
        received,
        log,
        publisher,
        connections: vec![client.pc.clone()],
        _keep: vec![Box::new(client)],
    })
}

// ---------------------------------------------------------------------------
// Janus's clients (the session and its requests: `support/janus.rs`).

/// A Janus participant halfway: publishing, not yet subscribed.
struct JanusPublisher {
    session: Arc<janus::Session>,
    /// The link the subscriber connection sits behind too.
    link: Option<Link>,
    pc: Arc<dyn PeerConnection>,
    publisher: JoinHandle<()>,
}

async fn janus_publisher(
    server: &Server,
    index: u8,
    epoch: Instant,
    link: Option<Link>,
) -> JanusPublisher {
    janus_publisher_in(&server.endpoint(), JANUS_ROOM, index, epoch, link)
        .await
        .unwrap_or_else(|why| panic!("p{index} does not publish: {why}"))
}

async fn janus_publisher_in(
    server: &Endpoint,
    room: u64,
    index: u8,
    epoch: Instant,
    link: Option<Link>,
) -> Result<JanusPublisher, String> {
    let session = janus::Session::open(server.port).await?;
    let handle = session.join_as_publisher(room, index).await?;
    let (signal, candidates) = mpsc::unbounded_channel();
    let pc = client_peer_connection_behind(
        Handler::new(signal, mpsc::unbounded_channel().0),
        &janus_media_ip(),
        link.clone(),
    )
    .await;
    let (a_ssrc, v_ssrc) = (rand::random(), rand::random());
    let id = format!("p{index}");
    let audio = local_track(
        &id,
        "audio",
        RtpCodecKind::Audio,
        a_ssrc,
        "audio/opus",
        48000,
        2,
    );
    let video = local_track(
        &id,
        "video",
        RtpCodecKind::Video,
        v_ssrc,
        "video/VP8",
        90000,
        0,
    );
    pc.add_track(audio.clone()).await.expect("audio track");
    pc.add_track(video.clone()).await.expect("video track");
    session.publish(handle, &pc, candidates).await?;
    let publisher = publish_tracks(
        audio,
        video,
        (a_ssrc, v_ssrc, index),
        FPS,
        PER_FRAME,
        VIDEO_BYTES,
        epoch,
    );
    Ok(JanusPublisher {
        session,
        link,
        pc,
        publisher,
    })
}

/// Subscribes `index` to everyone else's feeds on one multistream handle.
async fn janus_subscriber(index: u8, n: usize, p: JanusPublisher) -> Participant {
    janus_subscriber_in(JANUS_ROOM, index, n, p)
        .await
        .unwrap_or_else(|why| panic!("p{index} does not subscribe: {why}"))
}

async fn janus_subscriber_in(
    room: u64,
    index: u8,
    n: usize,
    p: JanusPublisher,
) -> Result<Participant, String> {
    let feeds: Vec<u64> = (0..n as u8)
        .filter(|i| *i != index)
        .map(janus::feed_id)
        .collect();
    let (signal, candidates) = mpsc::unbounded_channel();
    let (received_tx, received) = mpsc::unbounded_channel();
    // The subscriber connection shares the publisher's link and its log (a
    // participant has one access link), with draws of its own.
    let link = p.link.clone().map(|mut l| {
        l.impairment.seed = l.impairment.seed.wrapping_mul(31).wrapping_add(7);
        l
    });
    let log = link.as_ref().map(|l| l.log.clone());
    let pc =
        client_peer_connection_behind(Handler::new(signal, received_tx), &janus_media_ip(), link)
            .await;
    p.session.subscribe(room, &feeds, &pc, candidates).await?;
    Ok(Participant {
        received,
        log,
        publisher: p.publisher,
        connections: vec![p.pc, pc],
        _keep: vec![Box::new(p.session)],
    })
}

// ---------------------------------------------------------------------------
// The direct peer-to-peer baseline.

/// Two webrtc-rs peers connected directly, one publishing the same traffic.
async fn baseline(seconds: u64) -> (u64, u64) {
    baseline_behind(seconds, None).await
}

/// [`baseline`] with both peers behind a link doing `impairment`, so a packet
/// crosses two impaired legs as it does through a server.
async fn baseline_behind(seconds: u64, impairment: Option<Impairment>) -> (u64, u64) {
    let epoch = Instant::now();
    let build = |signal: mpsc::UnboundedSender<String>, received, seed: u64| {
        let link = impairment.clone().map(|mut i| {
            i.seed = seed;
            Link::new(i)
        });
        async move {
            match link {
                Some(link) => {
                    client_peer_connection_behind(
                        Handler::new(signal, received),
                        "127.0.0.1",
                        Some(link),
                    )
                    .await
                }
                None => client_peer_connection(Handler::new(signal, received)).await,
            }
        }
    };
    let (a_sig, mut a_sig_rx) = mpsc::unbounded_channel();
    let (b_sig, mut b_sig_rx) = mpsc::unbounded_channel();
    let (a_recv, _a_rx) = mpsc::unbounded_channel();
    let (b_recv, mut b_rx) = mpsc::unbounded_channel();
    let a = build(a_sig, a_recv, 11).await;
    let b = build(b_sig, b_recv, 12).await;
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
    let mut seen = std::collections::HashSet::new();
    while let Ok(r) = b_rx.try_recv() {
        if let Some((_, kind, seq, sent)) = decode(&r.payload)
            && seen.insert((kind, seq))
        {
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

// ---------------------------------------------------------------------------
// The run under loss and jitter (`--impair`).

/// The one-way delay of each impaired leg when `--impair` names none.
const DEFAULT_DELAY_MS: u64 = 30;
/// Packets sent in the last part of the measured window still count: the run
/// waits this long after it, so their retransmissions can arrive.
const REPAIR_TAIL: Duration = Duration::from_secs(1);
/// WebRTC's freeze rule (`freezeCount`): a gap between displayed frames longer
/// than max(3 × the mean frame interval, the mean + 150 ms). With the nominal
/// 30 fps, 183 ms.
fn freeze_threshold_us() -> u64 {
    let mean = 1_000_000 / u64::from(FPS);
    (3 * mean).max(mean + 150_000)
}

/// Parses `loss=2%,jitter=20ms[,delay=30ms][,seed=N]`.
fn parse_impairment(spec: &str) -> Result<(Impairment, String), String> {
    let (mut loss, mut jitter, mut delay, mut seed) = (None, None, DEFAULT_DELAY_MS, 1u64);
    for part in spec.split(',').filter(|p| !p.is_empty()) {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| format!("`{part}`: expected key=value"))?;
        let ms = |v: &str| {
            v.strip_suffix("ms")
                .and_then(|n| n.parse::<u64>().ok())
                .ok_or_else(|| format!("`{part}`: expected milliseconds such as 20ms"))
        };
        match k {
            "loss" => {
                let pct = v
                    .strip_suffix('%')
                    .and_then(|n| n.parse::<f64>().ok())
                    .filter(|p| (0.0..=100.0).contains(p))
                    .ok_or_else(|| format!("`{part}`: expected a percentage such as 2%"))?;
                loss = Some(pct / 100.0);
            }
            "jitter" => jitter = Some(ms(v)?),
            "delay" => delay = ms(v)?,
            "seed" => {
                seed = v
                    .parse()
                    .map_err(|_| format!("`{part}`: expected a number"))?
            }
            _ => return Err(format!("`{k}`: unknown; use loss, jitter, delay, seed")),
        }
    }
    let loss = loss.ok_or("loss=…% is required")?;
    let jitter = jitter.unwrap_or(0);
    if jitter > delay {
        return Err(format!(
            "jitter {jitter} ms exceeds delay {delay} ms: the delay would be cut at zero"
        ));
    }
    let label = format!(
        "{}% loss, delay {delay} ms ± {jitter} ms (uniform) per leg",
        loss * 100.0
    );
    Ok((
        Impairment::symmetric(
            loss,
            Duration::from_millis(delay),
            Duration::from_millis(jitter),
            seed,
        ),
        label,
    ))
}

/// One server, one Room, under loss and jitter.
#[derive(Debug, Default)]
struct Impaired {
    server: &'static str,
    publishers: usize,
    /// Video packets the subscribers should have had (every subscribed stream).
    video_sent: u64,
    /// Of those, dropped by a link on the way (publisher's uplink or
    /// subscriber's downlink), first transmission.
    video_lost: u64,
    /// Lost ones that arrived anyway (retransmitted).
    video_recovered: u64,
    /// Never arrived within the window and its tail.
    video_residual: u64,
    /// Of those, packets no link lost: the server did not send them.
    video_withheld: u64,
    /// RTX packets that reached subscribers (each retransmitted copy counts).
    rtx_received: u64,
    /// Of those, copies of packets that had not been lost (spurious).
    rtx_spurious: u64,
    audio_sent: u64,
    audio_lost: u64,
    audio_residual: u64,
    /// NACKs the participants sent, and the sequence numbers they asked for,
    /// per participant per second.
    nacks_per_s: f64,
    nacked_per_s: f64,
    /// NACKs the server sent the participants (asking publishers to resend).
    server_nacks_per_s: f64,
    server_nacked_per_s: f64,
    /// Video packets the publishers' uplinks lost (first transmissions), per second.
    uplink_lost_per_s: f64,
    streams: usize,
    freezes: u64,
    freeze_us: u64,
    /// Frames never complete.
    frames_lost: u64,
    frames: u64,
    window_s: f64,
    p50_us: u64,
    p99_us: u64,
    /// Latency of the recovered packets.
    recovered_p50_us: u64,
}

async fn impaired_bench(
    seconds: u64,
    sizes: Vec<usize>,
    with_janus: bool,
    impairment: Impairment,
    label: String,
) {
    let (base_p50, base_p99) = baseline_behind(seconds, Some(impairment.clone())).await;
    let janus = if with_janus { janus::install() } else { None };
    if with_janus && janus.is_none() {
        eprintln!("Janus not found: `apt-get install -y janus`; measuring Convene only");
    }
    let mut rows = Vec::new();
    for n in sizes {
        let c = impaired_room(Target::Convene, n, seconds, &impairment).await;
        eprintln!("{c:?}");
        let j = match &janus {
            Some(lib) => {
                let r = impaired_room(Target::Janus(lib.clone()), n, seconds, &impairment).await;
                eprintln!("{r:?}");
                Some(r)
            }
            None => None,
        };
        rows.push((c, j));
    }
    println!(
        "\nSFU under {label}, on every participant's link both ways (RTP and RTCP); {seconds} s measured after {} s warm-up, then {} s for late repairs; per publisher VP8 {FPS} fps x {PER_FRAME} packets x {VIDEO_BYTES} B + Opus 50 pps",
        WARMUP.as_secs(),
        REPAIR_TAIL.as_secs()
    );
    println!(
        "direct peer-to-peer under the same links: latency p50 {base_p50} µs, p99 {base_p99} µs; load average {:.2}\n",
        load_average()
    );
    println!(
        "| publishers | server | video packets due | lost on the wire | recovered by NACK/RTX | residual loss | of which not lost on a link (not sent by the server) | RTX received per lost packet (spurious) | NACKs per participant/s (seqs) | uplink video lost/s | server NACKs to publishers/s (seqs) | audio lost / residual | freezes per stream-minute | frozen time | frames never complete | latency p50 / p99 (ms) | added p50 / p99 (ms) | recovered packets' latency p50 (ms) |"
    );
    println!(
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    let pct = |a: u64, b: u64| 100.0 * a as f64 / (b.max(1)) as f64;
    let ms = |us: u64| us as f64 / 1000.0;
    for (c, j) in &rows {
        for r in std::iter::once(c).chain(j.iter()) {
            let stream_minutes = r.streams as f64 * r.window_s / 60.0;
            println!(
                "| {} | {} | {} | {} ({:.2} %) | {} ({:.1} % of lost) | {} ({:.3} %) | {} | {:.2} ({}) | {:.2} ({:.1}) | {:.1} | {:.2} ({:.1}) | {:.2} % / {:.3} % | {:.2} | {:.2} % | {} of {} | {:.1} / {:.1} | {:.1} / {:.1} | {:.1} |",
                r.publishers,
                r.server,
                r.video_sent,
                r.video_lost,
                pct(r.video_lost, r.video_sent),
                r.video_recovered,
                pct(r.video_recovered, r.video_lost),
                r.video_residual,
                pct(r.video_residual, r.video_sent),
                r.video_withheld,
                r.rtx_received as f64 / r.video_lost.max(1) as f64,
                r.rtx_spurious,
                r.nacks_per_s,
                r.nacked_per_s,
                r.uplink_lost_per_s,
                r.server_nacks_per_s,
                r.server_nacked_per_s,
                pct(r.audio_lost, r.audio_sent),
                pct(r.audio_residual, r.audio_sent),
                r.freezes as f64 / stream_minutes.max(f64::MIN_POSITIVE),
                100.0 * r.freeze_us as f64 / (r.streams as f64 * r.window_s * 1e6).max(1.0),
                r.frames_lost,
                r.frames,
                ms(r.p50_us),
                ms(r.p99_us),
                (r.p50_us as f64 - base_p50 as f64) / 1000.0,
                (r.p99_us as f64 - base_p99 as f64) / 1000.0,
                ms(r.recovered_p50_us),
            );
        }
    }
    if rows.iter().any(|(_, j)| j.is_some()) {
        println!(
            "\nRatios Convene / Janus, this run (below 1 is better for Convene; latency is compared whole, since both cross the same links):\n"
        );
        println!(
            "| publishers | residual video loss | frozen time | freezes | latency p50 | latency p99 | recovered packets' latency p50 | RTX per lost packet |"
        );
        println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
        let ratio = |a: f64, b: f64| {
            if b > 0.0 {
                format!("{:.2}", a / b)
            } else if a == 0.0 {
                "both 0".to_owned()
            } else {
                "Janus 0".to_owned()
            }
        };
        for (c, j) in &rows {
            let Some(j) = j else { continue };
            let share = |r: &Impaired| r.video_residual as f64 / r.video_sent.max(1) as f64;
            let frozen = |r: &Impaired| r.freeze_us as f64 / r.streams.max(1) as f64;
            let freezes = |r: &Impaired| r.freezes as f64 / r.streams.max(1) as f64;
            let rtx = |r: &Impaired| r.rtx_received as f64 / r.video_lost.max(1) as f64;
            println!(
                "| {} | {} | {} | {} | {} | {} | {} | {} |",
                c.publishers,
                ratio(share(c), share(j)),
                ratio(frozen(c), frozen(j)),
                ratio(freezes(c), freezes(j)),
                ratio(c.p50_us as f64, j.p50_us as f64),
                ratio(c.p99_us as f64, j.p99_us as f64),
                ratio(c.recovered_p50_us as f64, j.recovered_p50_us as f64),
                ratio(rtx(c), rtx(j)),
            );
        }
    }
    println!(
        "\nFreeze: a gap longer than {} ms between displayed frames (WebRTC's rule at {FPS} fps); frames are displayed in order once all {PER_FRAME} packets are in, and a frame that never completes is skipped without waiting.",
        freeze_threshold_us() / 1000
    );
}

/// Counters of a [`LinkLog`] read at one moment.
fn nack_counters(log: &LinkLog) -> [u64; 4] {
    [
        log.nacks_sent.load(Ordering::Relaxed),
        log.nacked_seqs.load(Ordering::Relaxed),
        log.nacks_received.load(Ordering::Relaxed),
        log.nacked_seqs_received.load(Ordering::Relaxed),
    ]
}

async fn impaired_room(
    target: Target,
    n: usize,
    seconds: u64,
    impairment: &Impairment,
) -> Impaired {
    let epoch = Instant::now();
    let (server, name) = match &target {
        Target::Convene => (Server::convene().await, "Convene"),
        Target::Janus(lib) => (Server::janus(lib).await, "Janus"),
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let link = |i: usize| {
        let mut imp = impairment.clone();
        imp.seed = impairment
            .seed
            .wrapping_mul(1000)
            .wrapping_add(i as u64 + 1);
        Link::new(imp)
    };
    let mut people = Vec::new();
    match &target {
        Target::Convene => {
            for i in 0..n {
                people.push(convene_participant(&server, i as u8, epoch, Some(link(i))).await);
            }
        }
        Target::Janus(_) => {
            let mut publishers = Vec::new();
            for i in 0..n {
                publishers.push(janus_publisher(&server, i as u8, epoch, Some(link(i))).await);
            }
            for (i, p) in publishers.into_iter().enumerate() {
                people.push(janus_subscriber(i as u8, n, p).await);
            }
        }
    }
    tokio::time::sleep(WARMUP).await;
    for p in people.iter_mut() {
        while p.received.try_recv().is_ok() {}
    }
    let logs: Vec<Arc<LinkLog>> = people
        .iter()
        .map(|p| p.log.clone().expect("every participant is behind a link"))
        .collect();
    let before: Vec<[u64; 4]> = logs.iter().map(|l| nack_counters(l)).collect();
    let t0 = Instant::now();
    let start = t0.duration_since(epoch).as_micros() as u64;
    let end = start + seconds * 1_000_000;
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let after: Vec<[u64; 4]> = logs.iter().map(|l| nack_counters(l)).collect();
    let counted = t0.elapsed().as_secs_f64();
    tokio::time::sleep(REPAIR_TAIL).await;
    // First arrival (µs since epoch) of each packet sent inside the window, per subscriber.
    let mut arrivals: Vec<HashMap<MediaKey, (u64, u64)>> = Vec::new();
    for p in people.iter_mut() {
        let mut first = HashMap::new();
        while let Ok(r) = p.received.try_recv() {
            let Some((sender, kind, seq, sent)) = decode(&r.payload) else {
                continue;
            };
            if sent < start || sent >= end {
                continue;
            }
            let at = r.at.duration_since(epoch).as_micros() as u64;
            first.entry((sender, kind, seq)).or_insert((at, sent));
        }
        arrivals.push(first);
    }
    for p in people {
        p.publisher.abort();
        for pc in p.connections {
            let _ = pc.close().await;
        }
    }
    server.stop().await;

    // What each publisher sent inside the window, from every subscriber's arrivals.
    let mut range: HashMap<(u8, u8), (u32, u32)> = HashMap::new();
    for first in &arrivals {
        for (sender, kind, seq) in first.keys() {
            let r = range.entry((*sender, *kind)).or_insert((*seq, *seq));
            r.0 = r.0.min(*seq);
            r.1 = r.1.max(*seq);
        }
    }
    let dropped_up: Vec<std::collections::HashSet<(u8, u8, u32)>> = logs
        .iter()
        .map(|l| l.dropped_up.lock().map(|s| s.clone()).unwrap_or_default())
        .collect();
    let uplink_lost = dropped_up
        .iter()
        .flatten()
        .filter(|(p, kind, seq)| {
            *kind == 1
                && range
                    .get(&(*p, 1))
                    .is_some_and(|(lo, hi)| (lo..=hi).contains(&seq))
        })
        .count();
    let mut r = Impaired {
        uplink_lost_per_s: uplink_lost as f64 / counted.max(f64::MIN_POSITIVE),
        server: name,
        publishers: n,
        window_s: counted,
        ..Default::default()
    };
    let mut latencies = Vec::new();
    let mut recovered_latencies = Vec::new();
    let threshold = freeze_threshold_us();
    for (s, first) in arrivals.iter().enumerate() {
        let down = logs[s]
            .dropped_down
            .lock()
            .map(|d| d.clone())
            .unwrap_or_default();
        let rtx = logs[s]
            .rtx_down
            .lock()
            .map(|d| d.clone())
            .unwrap_or_default();
        latencies.extend(first.values().map(|(at, sent)| at.saturating_sub(*sent)));
        for p in (0..n as u8).filter(|p| usize::from(*p) != s) {
            for kind in [0u8, 1] {
                let Some(&(lo, hi)) = range.get(&(p, kind)) else {
                    // Nobody received this stream: all of it is missing, none
                    // of it lost on a link (a dropped packet would be in the
                    // range of someone), and a video was frozen throughout.
                    let due = (NOMINAL_PPS[usize::from(kind)] * counted) as u64;
                    if kind == 0 {
                        r.audio_sent += due;
                        r.audio_residual += due;
                    } else {
                        r.video_sent += due;
                        r.video_residual += due;
                        r.video_withheld += due;
                        r.streams += 1;
                        r.freezes += 1;
                        r.freeze_us += end - start;
                        r.frames += due / u64::from(PER_FRAME);
                        r.frames_lost += due / u64::from(PER_FRAME);
                    }
                    continue;
                };
                let (mut sent, mut lost, mut recovered, mut residual) = (0u64, 0u64, 0u64, 0u64);
                for seq in lo..=hi {
                    let key = (p, kind, seq);
                    sent += 1;
                    let was_lost = dropped_up[usize::from(p)].contains(&key) || down.contains(&key);
                    let arrived = first.get(&key);
                    lost += u64::from(was_lost);
                    if let Some((at, t)) = arrived {
                        if was_lost {
                            recovered += 1;
                            recovered_latencies.push(at.saturating_sub(*t));
                        }
                    } else {
                        residual += 1;
                        if kind == 1 && !was_lost {
                            r.video_withheld += 1;
                        }
                    }
                    if kind == 1
                        && let Some(copies) = rtx.get(&key)
                    {
                        r.rtx_received += u64::from(*copies);
                        if !was_lost {
                            r.rtx_spurious += u64::from(*copies);
                        }
                    }
                }
                if kind == 0 {
                    r.audio_sent += sent;
                    r.audio_lost += lost;
                    r.audio_residual += residual;
                    continue;
                }
                r.video_sent += sent;
                r.video_lost += lost;
                r.video_recovered += recovered;
                r.video_residual += residual;
                // Frames displayed in order, each once complete.
                r.streams += 1;
                let per = PER_FRAME;
                let (f_lo, f_hi) = (lo.div_ceil(per), (hi + 1) / per);
                // From the window's start: a stream that shows nothing for
                // its first 183 ms is frozen too.
                let mut shown: Option<u64> = Some(start);
                for f in f_lo..f_hi {
                    r.frames += 1;
                    let complete = (f * per..(f + 1) * per)
                        .map(|q| first.get(&(p, 1, q)).map(|(at, _)| *at))
                        .collect::<Option<Vec<u64>>>()
                        .and_then(|ats| ats.into_iter().max());
                    let Some(done) = complete else {
                        r.frames_lost += 1;
                        continue;
                    };
                    let at = shown.map_or(done, |s| done.max(s));
                    if let Some(prev) = shown
                        && at - prev > threshold
                    {
                        r.freezes += 1;
                        r.freeze_us += at - prev;
                    }
                    shown = Some(at);
                }
                // And to its end: one that stops showing early was frozen since.
                if let Some(last) = shown
                    && end.saturating_sub(last) > threshold
                {
                    r.freezes += 1;
                    r.freeze_us += end - last;
                }
            }
        }
    }
    let (mut nacks, mut seqs, mut server_nacks, mut server_seqs) = (0u64, 0u64, 0u64, 0u64);
    for (b, a) in before.iter().zip(&after) {
        nacks += a[0] - b[0];
        seqs += a[1] - b[1];
        server_nacks += a[2] - b[2];
        server_seqs += a[3] - b[3];
    }
    let per = (n as f64 * counted).max(f64::MIN_POSITIVE);
    r.nacks_per_s = nacks as f64 / per;
    r.nacked_per_s = seqs as f64 / per;
    r.server_nacks_per_s = server_nacks as f64 / counted.max(f64::MIN_POSITIVE);
    r.server_nacked_per_s = server_seqs as f64 / counted.max(f64::MIN_POSITIVE);
    latencies.sort_unstable();
    recovered_latencies.sort_unstable();
    r.p50_us = percentile(&latencies, 0.5);
    r.p99_us = percentile(&latencies, 0.99);
    r.recovered_p50_us = percentile(&recovered_latencies, 0.5);
    r
}
