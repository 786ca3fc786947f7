//! The WebRTC configuration every Convene peer connection uses: codecs, header
//! extensions and the interceptor chain.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use bytes::Bytes;

use rtc::interceptor::{
    Attribute, BandwidthEstimator, CongestionControlBuilder, EstimatorStats, Gcc, Interceptor,
    Packet, PacketReport, Registry, Slot, StreamInfo, TaggedPacket, TwccSenderBuilder,
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
/// [`KeyframeRequestTap`] so PLI/FIR from subscribers reach the SFU.
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
    Ok(registry
        .with(Slot::from(RTX_DECODER_SLOT), RtxDecoder::default())
        .with(Slot::from(14_000), KeyframeRequestTap::default()))
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
/// feedback is never limited by a guess).
#[derive(Debug, Clone, Default)]
pub struct Estimate(Arc<AtomicU64>);

impl Estimate {
    /// Bits per second, `None` until feedback arrived.
    pub fn get(&self) -> Option<u64> {
        match self.0.load(Ordering::Relaxed) {
            0 => None,
            bps => Some(bps),
        }
    }

    fn set(&self, bps: f64) {
        self.0.store(bps.max(1.0) as u64, Ordering::Relaxed);
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
pub fn sfu_interceptors(media_engine: &mut MediaEngine) -> Result<(Registry, Estimate)> {
    let estimate = Estimate::default();
    let registry = interceptors(media_engine)?
        .with(
            Slot::CongestionControl,
            CongestionControlBuilder::new(Published {
                inner: Gcc::new(INITIAL_ESTIMATE, MIN_ESTIMATE, MAX_ESTIMATE),
                estimate: estimate.clone(),
            })
            .build(),
        )
        .with(Slot::TwccSender, TwccSenderBuilder::new().build());
    Ok((registry, estimate))
}

/// Hands inbound PLI and FIR to the application (the SFU relays them to the
/// publisher); every other inbound RTCP ends in the interceptors that act on it.
/// It sits application-most, so NACK and reports have already been handled.
#[derive(Default)]
pub struct KeyframeRequestTap {
    read: VecDeque<TaggedPacket>,
    write: VecDeque<TaggedPacket>,
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for KeyframeRequestTap {
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
            if requests.is_empty() {
                return Ok(());
            }
            msg.message.packet = Packet::Rtcp(requests);
            msg.message.add(Attribute::DeliverToApplication);
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

impl Interceptor for KeyframeRequestTap {
    fn bind_local_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _info: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}

/// Below the NACK generator (7 000), above the FEC decoder (6 000): where a
/// repaired packet must reappear for the generator to count it as arrived.
pub const RTX_DECODER_SLOT: usize = 6_500;

/// Turns each retransmission (an RFC 4588 RTX packet) back into the packet it
/// repairs before the NACK generator sees it.
///
/// webrtc-rs unwraps RTX only on its way to the application, above every
/// interceptor, so its NACK generator never learns that a retransmission
/// arrived: it asks again for the same packet every 100 ms until the packet
/// leaves its 512-packet window (about 6 s of video), and each ask within the
/// sender's history is answered with another copy. Unwrapped here, the
/// repaired packet marks its sequence number as received like any other, and
/// the application-side unwrapping finds nothing left to do.
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
mod tests {
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
