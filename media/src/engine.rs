//! The WebRTC configuration every Convene peer connection uses: codecs, header
//! extensions and the interceptor chain.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;

use rtc::interceptor::{
    Attribute, AttributedPacket, BandwidthEstimator, CongestionControlBuilder, EstimatorStats, Gcc,
    Interceptor, Packet, PacketReport, Registry, Slot, StreamInfo, TaggedPacket, TwccSenderBuilder,
};
use rtc::interceptor::{NackGeneratorBuilder, NackResponderBuilder};
use rtc::peer_connection::configuration::interceptor_registry::{
    configure_rtcp_reports, configure_simulcast_extension_headers, configure_twcc_receiver_only,
};
use rtc::peer_connection::configuration::media_engine::{
    MIME_TYPE_H264, MIME_TYPE_OPUS, MIME_TYPE_RTX, MIME_TYPE_VP8, MediaEngine,
};
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::transport_feedbacks::transport_layer_nack::{
    TransportLayerNack, nack_pairs_from_sequence_numbers,
};
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RTCRtpHeaderExtensionCapability, RtpCodecKind,
};
use rtc::sansio::Protocol;

use crate::core::{AUDIO_LEVEL_URI, MID_URI, REPAIRED_RID_URI, RID_URI};
use crate::error::{Error, Result};

/// Packets kept per outgoing stream for retransmission on NACK: 0.7 s of video
/// at 90 packets/s, 0.35 s at 180 packets/s (a 1.5 Mbit/s camera): longer than
/// the round trip after which a retransmission still arrives in time to be
/// shown, and than the 200 ms minimum Janus keeps by default. Each slot keeps a
/// forwarded packet alive, so this is most of a subscriber's memory. A power of
/// two, as the responder requires.
pub const NACK_HISTORY_PACKETS: u16 = 64;

fn codec(
    mime: &str,
    clock_rate: u32,
    channels: u16,
    fmtp: &str,
    pt: u8,
    video: bool,
) -> RTCRtpCodecParameters {
    let rtcp_feedback = if video && mime != MIME_TYPE_RTX {
        vec![
            RTCPFeedback {
                typ: "ccm".to_owned(),
                parameter: "fir".to_owned(),
            },
            RTCPFeedback {
                typ: "nack".to_owned(),
                parameter: String::new(),
            },
            RTCPFeedback {
                typ: "nack".to_owned(),
                parameter: "pli".to_owned(),
            },
        ]
    } else {
        vec![]
    };
    RTCRtpCodecParameters {
        rtp_codec: RTCRtpCodec {
            mime_type: mime.to_owned(),
            clock_rate,
            channels,
            sdp_fmtp_line: fmtp.to_owned(),
            rtcp_feedback,
        },
        payload_type: pt,
    }
}

/// Opus for audio; VP8 first, then H.264 (constrained baseline, packetization
/// mode 1) for video, each with RTX; the audio-level extension for speaker
/// detection. Deliberately narrow: every codec here must be forwardable to every
/// browser, so VP9/AV1 are left out rather than stranding a subscriber.
pub fn media_engine() -> Result<MediaEngine> {
    let mut m = MediaEngine::default();
    let wrap = |e: rtc::shared::error::Error| Error::WebRtc(e.to_string());
    m.register_codec(
        codec(
            MIME_TYPE_OPUS,
            48000,
            2,
            "minptime=10;useinbandfec=1",
            111,
            false,
        ),
        RtpCodecKind::Audio,
    )
    .map_err(wrap)?;
    for c in [
        codec(MIME_TYPE_VP8, 90000, 0, "", 96, true),
        codec(MIME_TYPE_RTX, 90000, 0, "apt=96", 97, true),
        codec(
            MIME_TYPE_H264,
            90000,
            0,
            "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
            102,
            true,
        ),
        codec(MIME_TYPE_RTX, 90000, 0, "apt=102", 103, true),
        codec(
            MIME_TYPE_H264,
            90000,
            0,
            "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f",
            125,
            true,
        ),
        codec(MIME_TYPE_RTX, 90000, 0, "apt=125", 105, true),
    ] {
        m.register_codec(c, RtpCodecKind::Video).map_err(wrap)?;
    }
    m.register_header_extension(
        RTCRtpHeaderExtensionCapability {
            uri: AUDIO_LEVEL_URI.to_owned(),
        },
        RtpCodecKind::Audio,
        None,
    )
    .map_err(wrap)?;
    Ok(m)
}

/// NACK generator/responder (with a short history), RTCP reports and TWCC, plus
/// [`RtxDecoder`], which also lets PLI/FIR from subscribers reach the SFU.
pub fn interceptors(media_engine: &mut MediaEngine) -> Result<Registry> {
    let webrtc = |e: rtc::shared::error::Error| Error::WebRtc(e.to_string());
    // webrtc-rs's defaults, except a shorter retransmission history: the default
    // 1024 packets (11 s of 90 pps video) per outgoing stream keeps every
    // forwarded payload alive for seconds no NACK ever asks about.
    let registry = Registry::new()
        .with(
            Slot::NackResponder,
            NackResponderBuilder::new()
                .with_size(NACK_HISTORY_PACKETS)
                .build(),
        )
        .with(Slot::NackGenerator, NackGeneratorBuilder::new().build());
    configure_simulcast_extension_headers(media_engine).map_err(webrtc)?;
    let registry = configure_twcc_receiver_only(registry, media_engine).map_err(webrtc)?;
    let registry = configure_rtcp_reports(registry);
    Ok(registry.with(Slot::from(RTX_DECODER_SLOT), RtxDecoder::default()))
}

/// Where the downlink estimate starts before any feedback: a 360p layer and
/// some, so a new subscriber starts sharp on a good link, and a poor link
/// shows itself within a few feedback rounds.
pub const INITIAL_ESTIMATE: f64 = 1_000_000.0;
/// The floor of the estimate: below it a subscriber gets audio and the lowest layers only.
pub const MIN_ESTIMATE: f64 = 100_000.0;
/// The ceiling of the estimate.
pub const MAX_ESTIMATE: f64 = 50_000_000.0;

/// A subscriber's downlink estimate in bits per second, as the congestion
/// controller inside its connection last published it; 0 until the first
/// transport-wide feedback, which means "not known" (a client that sends no
/// feedback is never limited by a guess). Beside it, what the same feedback
/// says of loss and round trip, for the connection quality.
#[derive(Debug, Clone, Default)]
pub struct Estimate(Arc<EstimateCells>);

#[derive(Debug, Default)]
struct EstimateCells {
    bps: AtomicU64,
    /// Smoothed loss in millionths, plus one (0: not known).
    loss_ppm: AtomicU64,
    /// Round trip in microseconds (0: not known).
    rtt_us: AtomicU64,
}

impl Estimate {
    /// Bits per second, `None` until feedback arrived.
    pub fn get(&self) -> Option<u64> {
        match self.0.bps.load(Ordering::Relaxed) {
            0 => None,
            bps => Some(bps),
        }
    }

    /// The share (0..=1) of packets sent to the participant that feedback
    /// reported lost (smoothed), `None` until feedback arrived.
    pub fn loss(&self) -> Option<f64> {
        match self.0.loss_ppm.load(Ordering::Relaxed) {
            0 => None,
            ppm => Some((ppm - 1) as f64 / 1e6),
        }
    }

    /// The round trip the latest feedback implies (sending a packet to
    /// hearing it arrived), `None` until feedback arrived.
    pub fn rtt(&self) -> Option<std::time::Duration> {
        match self.0.rtt_us.load(Ordering::Relaxed) {
            0 => None,
            us => Some(std::time::Duration::from_micros(us)),
        }
    }

    fn set(&self, bps: f64) {
        self.0.bps.store(bps.max(1.0) as u64, Ordering::Relaxed);
    }

    fn set_link(&self, loss: Option<f64>, rtt: Option<std::time::Duration>) {
        if let Some(loss) = loss {
            let ppm = (loss.clamp(0.0, 1.0) * 1e6) as u64 + 1;
            self.0.loss_ppm.store(ppm, Ordering::Relaxed);
        }
        if let Some(rtt) = rtt {
            let us = u64::try_from(rtt.as_micros()).unwrap_or(u64::MAX).max(1);
            // Smoothed like TCP's SRTT (an eighth of each new sample), so
            // one late feedback packet does not make a link look slow.
            let old = self.0.rtt_us.load(Ordering::Relaxed);
            let next = if old == 0 { us } else { (old * 7 + us) / 8 };
            self.0.rtt_us.store(next, Ordering::Relaxed);
        }
    }
}

/// What the SFU received of a participant's own RTP: of the packets each
/// stream's sequence numbers say were sent, how many have been judged and how
/// many of those never came, counted before retransmissions repair anything,
/// so it is what the participant's uplink lost; and the interarrival jitter
/// of their audio. Read by the connection quality.
#[derive(Debug, Clone, Default)]
pub struct Uplink(Arc<UplinkCells>);

#[derive(Debug, Default)]
struct UplinkCells {
    judged: AtomicU64,
    lost: AtomicU64,
    /// The largest audio stream's interarrival jitter, in microseconds (0: not known).
    jitter_us: AtomicU64,
}

impl Uplink {
    /// (judged, lost) so far: a packet is judged once [`REORDER_WINDOW`]
    /// newer ones of its stream arrived, and lost if it had not come by then.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.0.judged.load(Ordering::Relaxed),
            self.0.lost.load(Ordering::Relaxed),
        )
    }

    /// The interarrival jitter (RFC 3550 §6.4.1) of the participant's audio,
    /// the largest of their audio streams; `None` while they send no audio.
    /// Audio because its packets go out evenly: a video frame's packets
    /// leave in a burst and read as jitter that is not the network's.
    pub fn jitter(&self) -> Option<std::time::Duration> {
        match self.0.jitter_us.load(Ordering::Relaxed) {
            0 => None,
            us => Some(std::time::Duration::from_micros(us)),
        }
    }
}

/// Where [`UplinkMonitor`] sits: wire-most of the SFU's own interceptors,
/// below the RTX decoder, so a repaired packet does not hide the loss.
pub const UPLINK_MONITOR_SLOT: usize = 6_200;

/// Packets of a stream that may overtake a missing one before it counts as
/// lost: reordering by a jittery link is not loss.
pub const REORDER_WINDOW: u64 = 64;
/// A jump further ahead than this starts the stream's count afresh (a
/// restarted encoder, a long pause) rather than calling everything between lost.
const MAX_JUMP: u64 = 1024;

/// Counts what arrives of each inbound RTP stream against what its sequence
/// numbers say was sent (RFC 3550's expected and received, A.3), judging each
/// packet only once [`REORDER_WINDOW`] newer ones arrived.
#[derive(Default)]
pub struct UplinkMonitor {
    counts: Uplink,
    /// SSRC → where its sequence numbers are.
    streams: HashMap<u32, StreamSeq>,
    /// Audio SSRC → clock rate, and the jitter state: the last packet's
    /// (arrival, RTP timestamp) and the jitter in seconds.
    audio: HashMap<u32, AudioJitter>,
    read: VecDeque<TaggedPacket>,
    write: VecDeque<TaggedPacket>,
}

/// One stream's sequence numbers: the highest (extended) seen, the first
/// counted, and which of the last 128 arrived.
#[derive(Debug)]
struct StreamSeq {
    first: u64,
    highest: u64,
    seen: u128,
}

impl StreamSeq {
    fn starting_at(ext: u64) -> Self {
        Self {
            first: ext,
            highest: ext,
            seen: 1 << (ext % 128),
        }
    }
}

/// One audio stream's interarrival jitter.
#[derive(Debug)]
struct AudioJitter {
    clock_rate: u32,
    last: Option<(Instant, u32)>,
    jitter: f64,
}

/// Streams tracked at most: more is not a browser.
const UPLINK_STREAMS: usize = 64;

impl UplinkMonitor {
    /// A monitor publishing to `counts`.
    pub fn new(counts: Uplink) -> Self {
        Self {
            counts,
            ..Self::default()
        }
    }

    fn observe_timing(&mut self, ssrc: u32, timestamp: u32, arrival: Instant) {
        let Some(stream) = self.audio.get_mut(&ssrc) else {
            return;
        };
        if let Some((last_arrival, last_timestamp)) = stream.last {
            let arrived = arrival
                .saturating_duration_since(last_arrival)
                .as_secs_f64()
                - last_arrival
                    .saturating_duration_since(arrival)
                    .as_secs_f64();
            let stamped = f64::from(timestamp.wrapping_sub(last_timestamp) as i32)
                / f64::from(stream.clock_rate);
            let d = (arrived - stamped).abs();
            // A gap of seconds (a muted microphone, a stall) is no jitter.
            if d < 1.0 {
                stream.jitter += (d - stream.jitter) / 16.0;
            }
        }
        stream.last = Some((arrival, timestamp));
        let worst = self.audio.values().map(|a| a.jitter).fold(0.0, f64::max);
        self.counts
            .0
            .jitter_us
            .store(((worst * 1e6) as u64).max(1), Ordering::Relaxed);
    }

    fn observe(&mut self, ssrc: u32, seq: u16) {
        let Some(stream) = self.streams.get_mut(&ssrc) else {
            if self.streams.len() < UPLINK_STREAMS {
                self.streams
                    .insert(ssrc, StreamSeq::starting_at(u64::from(seq) + (1 << 16)));
            }
            return;
        };
        // The extended number nearest the highest (wrap-around either way).
        let highest = stream.highest;
        let base = highest & !0xffff;
        let ext = [base.saturating_sub(1 << 16), base, base + (1 << 16)]
            .iter()
            .map(|b| b + u64::from(seq))
            .min_by_key(|e| e.abs_diff(highest))
            .unwrap_or(highest);
        if ext <= highest {
            // Late, but not yet judged: it arrived after all.
            if highest - ext < REORDER_WINDOW {
                stream.seen |= 1 << (ext % 128);
            }
            return;
        }
        if ext - highest > MAX_JUMP {
            *stream = StreamSeq::starting_at(ext);
            return;
        }
        let (mut judged, mut lost) = (0, 0);
        for next in highest + 1..=ext {
            if let Some(old) = next
                .checked_sub(REORDER_WINDOW)
                .filter(|o| *o >= stream.first)
            {
                judged += 1;
                if stream.seen & (1 << (old % 128)) == 0 {
                    lost += 1;
                }
            }
            stream.seen &= !(1 << (next % 128));
        }
        stream.seen |= 1 << (ext % 128);
        stream.highest = ext;
        let cells = &self.counts.0;
        cells.judged.fetch_add(judged, Ordering::Relaxed);
        cells.lost.fetch_add(lost, Ordering::Relaxed);
    }
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for UplinkMonitor {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = rtc::shared::error::Error;
    type Time = Instant;

    fn handle_read(&mut self, msg: TaggedPacket) -> std::result::Result<(), Self::Error> {
        if let Packet::Rtp(p) = &msg.message.packet {
            self.observe(p.header.ssrc, p.header.sequence_number);
            self.observe_timing(p.header.ssrc, p.header.timestamp, msg.now);
        }
        self.read.push_back(msg);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<Self::Rout> {
        self.read.pop_front()
    }

    fn handle_write(&mut self, msg: TaggedPacket) -> std::result::Result<(), Self::Error> {
        self.write.push_back(msg);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<Self::Wout> {
        self.write.pop_front()
    }
}

impl Interceptor for UplinkMonitor {
    fn bind_local_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _info: &StreamInfo) {}
    fn bind_remote_stream(&mut self, info: &StreamInfo) {
        let audio = info.mime_type.to_ascii_lowercase().starts_with("audio/");
        if audio && info.clock_rate > 0 && self.audio.len() < UPLINK_STREAMS {
            self.audio.insert(
                info.ssrc,
                AudioJitter {
                    clock_rate: info.clock_rate,
                    last: None,
                    jitter: 0.0,
                },
            );
        }
    }
    fn unbind_remote_stream(&mut self, info: &StreamInfo) {
        self.streams.remove(&info.ssrc);
        self.audio.remove(&info.ssrc);
    }
}

/// Google Congestion Control publishing its target to an [`Estimate`] after
/// every update: the estimator is boxed inside the connection's interceptor
/// chain, so the number is pushed out rather than read.
struct Published {
    inner: Gcc,
    estimate: Estimate,
}

impl BandwidthEstimator for Published {
    fn on_reports(&mut self, now: Instant, reports: &[PacketReport]) {
        self.inner.on_reports(now, reports);
        if !reports.is_empty() {
            self.estimate.set(self.inner.target_bitrate());
            // The latest packet reported as arrived left most recently: the
            // time since is the round trip plus the feedback's own wait.
            let rtt = reports
                .iter()
                .filter(|r| r.arrived)
                .map(|r| now.saturating_duration_since(r.departure))
                .min();
            self.estimate.set_link(self.inner.stats().packet_loss, rtt);
        }
    }

    fn target_bitrate(&self) -> f64 {
        self.inner.target_bitrate()
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.inner.handle_timeout(now);
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.inner.poll_timeout()
    }

    fn stats(&self) -> EstimatorStats {
        self.inner.stats()
    }
}

/// The SFU side's chain: [`interceptors`] plus send-side bandwidth estimation
/// of what the SFU sends the participant. Its packets get transport-wide
/// sequence numbers, the participant's browser reports their arrival
/// (transport-cc feedback), and GCC turns that into the [`Estimate`] the
/// layer choice shares out. No pacer: the SFU forwards at once and meets the
/// estimate by choosing layers, so a pacer would only add queueing delay.
///
/// Also counts what arrives of the participant's own RTP ([`Uplink`]).
pub fn sfu_interceptors(media_engine: &mut MediaEngine) -> Result<(Registry, Estimate, Uplink)> {
    let estimate = Estimate::default();
    let uplink = Uplink::default();
    let registry = interceptors(media_engine)?
        .with(
            Slot::from(RETRANSMIT_GATE_SLOT),
            RetransmitGate::new(estimate.clone()),
        )
        .with(
            Slot::from(UPLINK_MONITOR_SLOT),
            UplinkMonitor::new(uplink.clone()),
        )
        .with(
            Slot::CongestionControl,
            CongestionControlBuilder::new(Published {
                inner: Gcc::new(INITIAL_ESTIMATE, MIN_ESTIMATE, MAX_ESTIMATE),
                estimate: estimate.clone(),
            })
            .build(),
        )
        .with(Slot::TwccSender, TwccSenderBuilder::new().build());
    Ok((registry, estimate, uplink))
}

/// Where [`RetransmitGate`] sits: just wire-ward of the NACK responder
/// (4 000), so each NACK passes it first.
pub const RETRANSMIT_GATE_SLOT: usize = 3_900;

/// How long a packet is not sent again after it was, while the round trip is
/// not known yet.
const RESEND_GAP_UNKNOWN_RTT: Duration = Duration::from_millis(100);
/// The shortest gap between two retransmissions of one packet, however short
/// the round trip.
const MIN_RESEND_GAP: Duration = Duration::from_millis(10);
/// How many times one packet is sent again at most. Where loss is random, a
/// packet whose request or copy is lost four times running is rare; where
/// loss comes from a full link, every further copy only adds to what is
/// dropped: through a 500 kbit/s link full of the lowest layers, unlimited
/// retransmission had the SFU offer the link twice what Janus did, and lose
/// 60 % of it there. Two was too few for 2 % loss each way with 20 ms of
/// jitter (a few packets in a thousand never repaired); three repaired them
/// all and offered the full link what Janus did.
const MAX_RESENDS: u32 = 3;
/// How long a retransmission is remembered: longer than the responder keeps
/// a packet (64 packets of a stream: 2 s of a 30 fps layer).
const RESENT_MEMORY: Duration = Duration::from_secs(3);

/// Lets a NACK's request for a packet through to the responder at most once
/// per round trip, as a browser's sender does, and [`MAX_RESENDS`] times in
/// all.
///
/// A receiver asks again for a packet still missing on a timer of its own
/// (webrtc-rs every 100 ms, a browser after about a round trip). On a
/// congested downlink the first retransmission is still queued, or lost,
/// when the next request comes, and the responder answers every request: each
/// answer adds to the queue that caused the loss. On a 500 kbit/s link full
/// of the lowest layers, that doubled what the SFU sent into the link, and
/// most of it was dropped there. A request for a packet sent again less than a
/// round trip ago cannot have seen that retransmission's fate, so it is left
/// out.
pub struct RetransmitGate {
    estimate: Estimate,
    /// (media SSRC, sequence number) → when a request for it last went
    /// through, and how many have.
    resent: HashMap<(u32, u16), (Instant, u32)>,
    last_pruned: Option<Instant>,
    read: VecDeque<TaggedPacket>,
    write: VecDeque<TaggedPacket>,
}

impl RetransmitGate {
    /// A gate that learns the round trip from `estimate`.
    pub fn new(estimate: Estimate) -> Self {
        Self {
            estimate,
            resent: HashMap::new(),
            last_pruned: None,
            read: VecDeque::new(),
            write: VecDeque::new(),
        }
    }

    /// `nack` without the packets resent less than `gap` before `now` or
    /// [`MAX_RESENDS`] times already; `None` if nothing is left to ask for.
    fn admit(
        &mut self,
        now: Instant,
        gap: Duration,
        nack: &TransportLayerNack,
    ) -> Option<TransportLayerNack> {
        let mut wanted = Vec::new();
        for pair in &nack.nacks {
            for seq in pair.packet_list() {
                let key = (nack.media_ssrc, seq);
                let times = match self.resent.get(&key) {
                    Some(&(at, times))
                        if times >= MAX_RESENDS || now.saturating_duration_since(at) < gap =>
                    {
                        continue;
                    }
                    Some(&(_, times)) => times,
                    None => 0,
                };
                self.resent.insert(key, (now, times + 1));
                wanted.push(seq);
            }
        }
        (!wanted.is_empty()).then(|| TransportLayerNack {
            sender_ssrc: nack.sender_ssrc,
            media_ssrc: nack.media_ssrc,
            nacks: nack_pairs_from_sequence_numbers(&wanted),
        })
    }

    fn prune(&mut self, now: Instant) {
        if self
            .last_pruned
            .is_some_and(|at| now.saturating_duration_since(at) < RESENT_MEMORY)
        {
            return;
        }
        self.last_pruned = Some(now);
        self.resent
            .retain(|_, (at, _)| now.saturating_duration_since(*at) < RESENT_MEMORY);
    }
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for RetransmitGate {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = rtc::shared::error::Error;
    type Time = Instant;

    fn handle_read(&mut self, mut msg: TaggedPacket) -> std::result::Result<(), Self::Error> {
        if let Packet::Rtcp(packets) = &mut msg.message.packet
            && packets
                .iter()
                .any(|p| p.as_any().is::<TransportLayerNack>())
        {
            let now = msg.now;
            self.prune(now);
            let gap = self
                .estimate
                .rtt()
                .map_or(RESEND_GAP_UNKNOWN_RTT, |rtt| rtt.max(MIN_RESEND_GAP));
            let mut kept: Vec<Box<dyn rtc::rtcp::Packet>> = Vec::with_capacity(packets.len());
            for p in packets.drain(..) {
                match p.as_any().downcast_ref::<TransportLayerNack>() {
                    Some(nack) => {
                        if let Some(nack) = self.admit(now, gap, nack) {
                            kept.push(Box::new(nack));
                        }
                    }
                    None => kept.push(p),
                }
            }
            if kept.is_empty() {
                return Ok(());
            }
            *packets = kept;
        }
        self.read.push_back(msg);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<Self::Rout> {
        self.read.pop_front()
    }

    fn handle_write(&mut self, msg: TaggedPacket) -> std::result::Result<(), Self::Error> {
        self.write.push_back(msg);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<Self::Wout> {
        self.write.pop_front()
    }
}

impl Interceptor for RetransmitGate {
    fn bind_local_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_local_stream(&mut self, info: &StreamInfo) {
        self.resent.retain(|(ssrc, _), _| *ssrc != info.ssrc);
    }
    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}

/// Below the NACK generator (7 000), above the FEC decoder (6 000): where a
/// repaired packet must reappear for the generator to count it as arrived.
pub const RTX_DECODER_SLOT: usize = 6_500;

/// Turns each retransmission (an RFC 4588 RTX packet) back into the packet it
/// repairs before the NACK generator sees it, and hands inbound PLI and FIR to
/// the application (the SFU relays them to the publisher).
///
/// webrtc-rs unwraps RTX only on its way to the application, above every
/// interceptor, so its NACK generator never learns that a retransmission
/// arrived: it asks again for the same packet every 100 ms until the packet
/// leaves its 512-packet window (about 6 s of video), and each ask within the
/// sender's history is answered with another copy. Unwrapped here, the
/// repaired packet marks its sequence number as received like any other, and
/// the application-side unwrapping finds nothing left to do.
///
/// An RTCP compound that asks for a keyframe goes on up whole, for the
/// interceptors above, followed by a compound of its requests alone marked
/// for the application; the chain's last interceptor ends every RTCP packet
/// not so marked. This
/// used to be a second interceptor of its own at the top of the chain, and
/// every RTP packet, each forwarded copy included, paid for one more stage
/// (its queue and the moves in and out of it, about 2 % of the SFU's
/// instructions per forwarded packet).
///
/// A simulcast layer's RTX stream is named in no description (a browser
/// signals no SSRCs for rid-based layers, and webrtc-rs binds a layer by its
/// rid but never the stream repairing it), so it is learnt here as a browser
/// names it: the layer's packets carry the mid and rid header extensions
/// until the receiver reports them, its RTX packets the mid and repaired rid
/// (RFC 8852) until theirs are, which for an SSRC nobody bound is never.
#[derive(Default)]
pub struct RtxDecoder {
    /// RTX SSRC → (primary SSRC, primary payload type, RTX payload type).
    repairs: HashMap<u32, (u32, u8, u8)>,
    /// Bound incoming streams → the ids of their mid, rid and repaired rid
    /// header extensions.
    named: HashMap<u32, Names>,
    /// Layers as their packets named them: (mid, rid, SSRC, payload type).
    layers: Vec<(Bytes, Bytes, u32, u8)>,
    read: VecDeque<TaggedPacket>,
    write: VecDeque<TaggedPacket>,
}

/// Header extension ids of one incoming stream.
#[derive(Debug, Clone, Copy, Default)]
struct Names {
    mid: Option<u8>,
    rid: Option<u8>,
    repaired_rid: Option<u8>,
}

impl RtxDecoder {
    /// Learns the layer `p` belongs to, or the layer it repairs.
    fn learn(&mut self, p: &rtc::rtp::Packet) {
        let ssrc = p.header.ssrc;
        let ext = |id: Option<u8>| id.and_then(|id| p.header.get_extension(id));
        if let Some(names) = self.named.get(&ssrc).copied() {
            if let Some(rid) = ext(names.rid) {
                let mid = ext(names.mid).unwrap_or_default();
                let payload_type = p.header.payload_type;
                self.layers
                    .retain(|l| l.2 != ssrc && (l.0 != mid || l.1 != rid));
                self.layers.push((mid, rid, ssrc, payload_type));
            }
            return;
        }
        if self.repairs.contains_key(&ssrc) {
            return;
        }
        // The ids are the connection's: any bound stream has them.
        let Some(names) = self
            .named
            .values()
            .find(|n| n.repaired_rid.is_some())
            .copied()
        else {
            return;
        };
        let Some(repairs) = ext(names.repaired_rid) else {
            return;
        };
        let mid = ext(names.mid).unwrap_or_default();
        if let Some(&(_, _, primary, payload_type)) = self
            .layers
            .iter()
            .find(|l| l.1 == repairs && (l.0 == mid || l.0.is_empty() || mid.is_empty()))
            && p.header.payload_type != payload_type
        {
            tracing::debug!(
                rtx = ssrc,
                layer = primary,
                "a layer's retransmissions found"
            );
            self.repairs
                .insert(ssrc, (primary, payload_type, p.header.payload_type));
        }
    }
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for RtxDecoder {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = rtc::shared::error::Error;
    type Time = Instant;

    fn handle_read(&mut self, mut msg: TaggedPacket) -> std::result::Result<(), Self::Error> {
        if let Packet::Rtcp(packets) = &msg.message.packet {
            let requests: Vec<Box<dyn rtc::rtcp::Packet>> = packets
                .iter()
                .filter(|p| {
                    let any = p.as_any();
                    any.is::<PictureLossIndication>() || any.is::<FullIntraRequest>()
                })
                .cloned()
                .collect();
            if !requests.is_empty() {
                // The requests alone, first in their own compound: the
                // connection names an RTCP compound's track after its first
                // packet's SSRC.
                let mut ask = TaggedPacket {
                    now: msg.now,
                    transport: msg.transport,
                    message: AttributedPacket::new(Packet::Rtcp(requests)),
                };
                ask.message.add(Attribute::DeliverToApplication);
                self.read.push_back(msg);
                self.read.push_back(ask);
                return Ok(());
            }
        }
        if let Packet::Rtp(p) = &msg.message.packet
            && !self.named.is_empty()
        {
            self.learn(p);
        }
        if let Packet::Rtp(p) = &mut msg.message.packet
            && let Some(&(ssrc, payload_type, rtx_payload_type)) =
                self.repairs.get(&p.header.ssrc)
            && p.header.payload_type == rtx_payload_type
            // Shorter is padding only (a bandwidth probe): nothing to repair.
            && p.payload.len() >= 2
        {
            p.header.sequence_number = u16::from_be_bytes([p.payload[0], p.payload[1]]);
            p.header.ssrc = ssrc;
            p.header.payload_type = payload_type;
            p.header.padding = false;
            p.payload = p.payload.slice(2..);
        }
        self.read.push_back(msg);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<Self::Rout> {
        self.read.pop_front()
    }

    fn handle_write(&mut self, msg: TaggedPacket) -> std::result::Result<(), Self::Error> {
        self.write.push_back(msg);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<Self::Wout> {
        self.write.pop_front()
    }
}

impl Interceptor for RtxDecoder {
    fn bind_local_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _info: &StreamInfo) {}

    fn bind_remote_stream(&mut self, info: &StreamInfo) {
        if let (Some(rtx), Some(rtx_payload_type)) = (info.ssrc_rtx, info.payload_type_rtx) {
            self.repairs
                .insert(rtx, (info.ssrc, info.payload_type, rtx_payload_type));
        }
        let id = |uri: &str| {
            info.rtp_header_extensions
                .iter()
                .find(|e| e.uri == uri)
                .and_then(|e| u8::try_from(e.id).ok())
        };
        let names = Names {
            mid: id(MID_URI),
            rid: id(RID_URI),
            repaired_rid: id(REPAIRED_RID_URI),
        };
        if names.rid.is_some() {
            self.named.insert(info.ssrc, names);
        }
    }

    fn unbind_remote_stream(&mut self, info: &StreamInfo) {
        if let Some(rtx) = info.ssrc_rtx {
            self.repairs.remove(&rtx);
        }
        self.named.remove(&info.ssrc);
        self.layers.retain(|l| l.2 != info.ssrc);
        self.repairs.retain(|_, r| r.0 != info.ssrc);
    }
}

#[cfg(test)]
mod simulcast_rtx_tests {
    use super::*;
    use rtc::interceptor::{AttributedPacket, RTPHeaderExtension};

    fn packet(
        ssrc: u32,
        payload_type: u8,
        seq: u16,
        ext: &[(u8, &str)],
        payload: &[u8],
    ) -> TaggedPacket {
        let mut p = rtc::rtp::Packet::default();
        p.header.version = 2;
        p.header.ssrc = ssrc;
        p.header.payload_type = payload_type;
        p.header.sequence_number = seq;
        for (id, value) in ext {
            p.header
                .set_extension(*id, Bytes::copy_from_slice(value.as_bytes()))
                .expect("a one-byte extension");
        }
        p.payload = Bytes::copy_from_slice(payload);
        TaggedPacket {
            now: Instant::now(),
            transport: Default::default(),
            message: AttributedPacket::new(Packet::Rtp(p)),
        }
    }

    fn read(d: &mut RtxDecoder, p: TaggedPacket) -> rtc::rtp::Packet {
        d.handle_read(p).expect("read");
        match d.poll_read().expect("passed on").message.packet {
            Packet::Rtp(p) => p,
            other => panic!("not RTP: {other:?}"),
        }
    }

    #[test]
    fn a_simulcast_layers_rtx_is_learnt_from_its_repaired_rid() {
        let (mid, rid, rrid) = (1u8, 2u8, 3u8);
        let mut d = RtxDecoder::default();
        for ssrc in [100, 200] {
            d.bind_remote_stream(&StreamInfo {
                ssrc,
                payload_type: 96,
                rtp_header_extensions: [(MID_URI, mid), (RID_URI, rid), (REPAIRED_RID_URI, rrid)]
                    .map(|(uri, id)| RTPHeaderExtension {
                        uri: uri.to_owned(),
                        id: u16::from(id),
                    })
                    .to_vec(),
                ..Default::default()
            });
        }
        // The layers name themselves on their first packets.
        read(&mut d, packet(100, 96, 7, &[(mid, "1"), (rid, "q")], b"q7"));
        read(
            &mut d,
            packet(200, 96, 40, &[(mid, "1"), (rid, "h")], b"h40"),
        );
        // A retransmission of "h" 41 on an SSRC nobody declared.
        let repaired = read(
            &mut d,
            packet(900, 97, 5, &[(mid, "1"), (rrid, "h")], b"\x00\x29h41"),
        );
        assert_eq!(
            (
                repaired.header.ssrc,
                repaired.header.payload_type,
                repaired.header.sequence_number
            ),
            (200, 96, 41)
        );
        assert_eq!(&repaired.payload[..], b"h41");
        // Once learnt, later RTX packets need no naming.
        let again = read(&mut d, packet(900, 97, 6, &[], b"\x00\x2ah42"));
        assert_eq!((again.header.ssrc, again.header.sequence_number), (200, 42));
        // A repaired rid of no known layer, or no name at all, is left alone.
        let unknown = read(
            &mut d,
            packet(901, 97, 1, &[(mid, "1"), (rrid, "f")], b"\x00\x01f"),
        );
        assert_eq!(
            (unknown.header.ssrc, unknown.header.payload_type),
            (901, 97)
        );
        let bare = read(&mut d, packet(902, 97, 1, &[], b"\x00\x01"));
        assert_eq!(bare.header.ssrc, 902);
        // The layer gone, so is its repair.
        d.unbind_remote_stream(&StreamInfo {
            ssrc: 200,
            ..Default::default()
        });
        let after = read(&mut d, packet(900, 97, 7, &[], b"\x00\x2bh43"));
        assert_eq!(after.header.ssrc, 900);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_uplink_monitor_counts_gaps_across_wraparound_but_not_reordering() {
        let uplink = Uplink::default();
        let mut m = UplinkMonitor::new(uplink.clone());
        // Stream 1: 65500..=65535 then 0..=199 across the wrap, with 3 and 7
        // missing, 10 and 11 swapped, a late duplicate of 65534, and 20 a
        // whole 60 packets late (still within the window).
        let mut order: Vec<u16> = (65500..=65535).collect();
        for q in 0..200u16 {
            match q {
                3 | 7 | 20 => {}
                10 => order.extend([11, 10]),
                11 => {}
                80 => order.extend([80, 20]),
                _ => order.push(q),
            }
        }
        order.insert(40, 65534);
        for seq in order {
            m.observe(1, seq);
        }
        // Stream 2: 100..=299 complete.
        for seq in 100..300 {
            m.observe(2, seq);
        }
        let (judged, lost) = uplink.counts();
        // Judged: all but the newest REORDER_WINDOW of each stream.
        assert_eq!(judged, (236 - REORDER_WINDOW) + (200 - REORDER_WINDOW));
        assert_eq!(lost, 2, "3 and 7");
        // A restarted encoder (a jump of thousands) counts nothing lost.
        m.observe(2, 30_000);
        for seq in 30_001..30_200 {
            m.observe(2, seq);
        }
        assert_eq!(uplink.counts().1, 2);
    }

    #[test]
    fn audio_jitter_follows_uneven_arrivals() {
        let uplink = Uplink::default();
        let mut m = UplinkMonitor::new(uplink.clone());
        m.audio.insert(
            7,
            AudioJitter {
                clock_rate: 48_000,
                last: None,
                jitter: 0.0,
            },
        );
        let start = Instant::now();
        let ms = std::time::Duration::from_millis;
        // Evenly spaced: 20 ms of audio every 20 ms.
        for i in 0..50u32 {
            m.observe_timing(7, i * 960, start + ms(20 * u64::from(i)));
        }
        assert!(
            uplink.jitter().is_some_and(|j| j < ms(1)),
            "{:?}",
            uplink.jitter()
        );
        // Then each packet 30 ms early or late in turn: a jitter of tens of ms.
        for i in 50..250u32 {
            let skew = if i % 2 == 0 { 30 } else { 0 };
            m.observe_timing(7, i * 960, start + ms(20 * u64::from(i) + skew));
        }
        let j = uplink.jitter().expect("measured");
        assert!(j > ms(20) && j < ms(40), "{j:?}");
        // Video is not measured.
        m.observe_timing(9, 0, start);
        assert!(!m.audio.contains_key(&9));
    }

    #[test]
    fn loss_and_round_trip_are_unknown_until_set() {
        let e = Estimate::default();
        assert_eq!((e.get(), e.loss(), e.rtt()), (None, None, None));
        e.set_link(Some(0.0), Some(std::time::Duration::from_millis(80)));
        assert_eq!(e.loss(), Some(0.0));
        e.set_link(Some(0.25), Some(std::time::Duration::from_millis(160)));
        assert_eq!(e.loss(), Some(0.25));
        // Smoothed: an eighth of the way from 80 to 160 ms.
        assert_eq!(e.rtt(), Some(std::time::Duration::from_millis(90)));
    }

    use rtc::rtcp::receiver_report::ReceiverReport;
    use rtc::shared::TransportContext;

    fn inbound(packets: Vec<Box<dyn rtc::rtcp::Packet>>) -> TaggedPacket {
        TaggedPacket {
            now: Instant::now(),
            transport: TransportContext::default(),
            message: AttributedPacket::new(Packet::Rtcp(packets)),
        }
    }

    fn rtcp(msg: &TaggedPacket) -> &[Box<dyn rtc::rtcp::Packet>] {
        match &msg.message.packet {
            Packet::Rtcp(p) => p,
            _ => &[],
        }
    }

    fn nack(seqs: &[u16]) -> Box<dyn rtc::rtcp::Packet> {
        Box::new(TransportLayerNack {
            sender_ssrc: 1,
            media_ssrc: 42,
            nacks: nack_pairs_from_sequence_numbers(seqs),
        })
    }

    /// What of a compound read at `now` reaches the responder: the sequence
    /// numbers asked for, and the number of other packets.
    fn through(
        gate: &mut RetransmitGate,
        now: Instant,
        packets: Vec<Box<dyn rtc::rtcp::Packet>>,
    ) -> (Vec<u16>, usize) {
        let mut msg = inbound(packets);
        msg.now = now;
        gate.handle_read(msg).expect("read");
        let Some(out) = gate.poll_read() else {
            return (Vec::new(), 0);
        };
        let mut asked = Vec::new();
        let mut others = 0;
        for p in rtcp(&out) {
            match p.as_any().downcast_ref::<TransportLayerNack>() {
                Some(n) => asked.extend(n.nacks.iter().flat_map(|pair| pair.packet_list())),
                None => others += 1,
            }
        }
        (asked, others)
    }

    #[test]
    fn a_packet_is_resent_once_a_round_trip_and_three_times_at_most() {
        let estimate = Estimate::default();
        let mut gate = RetransmitGate::new(estimate.clone());
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        // The round trip not known yet: 100 ms apart.
        assert_eq!(
            through(&mut gate, t0, vec![nack(&[10, 11, 12])]),
            (vec![10, 11, 12], 0)
        );
        // Asked again 50 ms later: only what is new goes through. A report
        // beside a NACK that is wholly held back still goes on.
        assert_eq!(
            through(
                &mut gate,
                ms(50),
                vec![Box::new(ReceiverReport::default()), nack(&[10, 11, 13])]
            ),
            (vec![13], 1)
        );
        // Nothing left: the compound ends here.
        assert_eq!(
            through(&mut gate, ms(60), vec![nack(&[10, 12])]),
            (vec![], 0)
        );
        assert!(gate.poll_read().is_none());
        // A round trip later, once more; after the third resend, never again.
        assert_eq!(
            through(&mut gate, ms(120), vec![nack(&[10])]),
            (vec![10], 0)
        );
        assert_eq!(
            through(&mut gate, ms(230), vec![nack(&[10])]),
            (vec![10], 0)
        );
        assert_eq!(
            through(&mut gate, ms(500), vec![nack(&[10, 11])]),
            (vec![11], 0)
        );
        // A known round trip sets the gap: 300 ms here.
        estimate.set_link(None, Some(Duration::from_millis(300)));
        assert_eq!(
            through(&mut gate, ms(700), vec![nack(&[20])]),
            (vec![20], 0)
        );
        assert_eq!(through(&mut gate, ms(860), vec![nack(&[20])]), (vec![], 0));
        assert_eq!(
            through(&mut gate, ms(1_000), vec![nack(&[20])]),
            (vec![20], 0)
        );
        // Other SSRCs are their own.
        let mut other = TransportLayerNack {
            sender_ssrc: 1,
            media_ssrc: 43,
            nacks: nack_pairs_from_sequence_numbers(&[10]),
        };
        other.media_ssrc = 43;
        assert_eq!(
            through(&mut gate, ms(870), vec![Box::new(other)]),
            (vec![10], 0)
        );
        // Remembered for a while, then forgotten with the responder's history.
        assert_eq!(
            through(&mut gate, ms(4_000), vec![nack(&[10])]),
            (vec![10], 0)
        );
    }

    #[test]
    fn a_keyframe_request_reaches_the_application_alone_and_the_chain_whole() {
        let mut tap = RtxDecoder::default();
        let report = ReceiverReport {
            ssrc: 1,
            ..Default::default()
        };
        let pli = PictureLossIndication {
            sender_ssrc: 1,
            media_ssrc: 42,
        };
        tap.handle_read(inbound(vec![Box::new(report), Box::new(pli)]))
            .expect("read");
        let whole = tap.poll_read().expect("the compound goes on");
        assert_eq!(rtcp(&whole).len(), 2);
        assert!(!whole.message.has(&Attribute::DeliverToApplication));
        let ask = tap.poll_read().expect("the request for the application");
        let ask_packets = rtcp(&ask);
        assert_eq!(ask_packets.len(), 1);
        assert!(ask_packets[0].as_any().is::<PictureLossIndication>());
        // The connection names the compound's track after this SSRC.
        assert_eq!(ask_packets[0].destination_ssrc(), vec![42]);
        assert!(ask.message.has(&Attribute::DeliverToApplication));
        assert!(tap.poll_read().is_none());

        // Other RTCP goes on unmarked, for the interceptors only.
        tap.handle_read(inbound(vec![Box::new(ReceiverReport::default())]))
            .expect("read");
        let other = tap.poll_read().expect("passes");
        assert!(!other.message.has(&Attribute::DeliverToApplication));
        assert!(tap.poll_read().is_none());
    }
}
