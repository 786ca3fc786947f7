//! The forwarding decisions, free of sockets, tasks and clocks.
//!
//! Everything here is plain data in, plain data out; time is passed in as a
//! [`Duration`] since an arbitrary origin. The media thread (`forwarder`) and the
//! sessions in [`crate::sfu`] feed it packets and ask it what to do, so every
//! policy of the SFU (how a packet and its header extensions are rewritten for a
//! subscriber, when a keyframe may be asked for, who is speaking, when an offer
//! may be sent and when forwarding on a new track may start) is unit tested here
//! without a network.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::time::Duration;

use bytes::Bytes;
use rtc::rtp::header::{EXTENSION_PROFILE_ONE_BYTE, EXTENSION_PROFILE_TWO_BYTE, Extension, Header};

/// The RFC 6464 client-to-mixer audio level extension.
pub const AUDIO_LEVEL_URI: &str = "urn:ietf:params:rtp-hdrext:ssrc-audio-level";
/// The RFC 8843 BUNDLE media identification extension: names the m-line a packet belongs to.
pub const MID_URI: &str = "urn:ietf:params:rtp-hdrext:sdes:mid";
/// The RFC 8852 RTP stream id (simulcast layer) extension.
pub const RID_URI: &str = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id";
/// The RFC 8852 repaired RTP stream id extension (RTX of a simulcast layer).
pub const REPAIRED_RID_URI: &str = "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id";
/// The transport-wide congestion control sequence number extension.
pub const TRANSPORT_CC_URI: &str =
    "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01";

/// The part of an RTP header the SFU rewrites per subscriber.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpFields {
    /// Payload type.
    pub payload_type: u8,
    /// Sequence number.
    pub sequence_number: u16,
    /// Media timestamp.
    pub timestamp: u32,
    /// Synchronisation source.
    pub ssrc: u32,
}

/// A codec as both legs name it: payload types differ per leg, this does not.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CodecKey {
    /// Lower-cased MIME type, e.g. `video/vp8`.
    pub mime: String,
    /// H.264 `packetization-mode` (0 when absent); 0 for other codecs.
    pub packetization_mode: u8,
}

impl CodecKey {
    /// The key of a codec given its MIME type and `a=fmtp` line.
    pub fn new(mime: &str, fmtp: &str) -> Self {
        let mime = mime.to_ascii_lowercase();
        let packetization_mode = if mime == "video/h264" {
            fmtp.split(';')
                .filter_map(|p| p.trim().split_once('='))
                .find(|(k, _)| k.eq_ignore_ascii_case("packetization-mode"))
                .and_then(|(_, v)| v.trim().parse().ok())
                .unwrap_or(0)
        } else {
            0
        };
        Self {
            mime,
            packetization_mode,
        }
    }
}

/// Payload-type translation from the publisher's leg to one subscriber's leg.
///
/// A payload type the subscriber did not negotiate maps to nothing, and such
/// packets are dropped: sending them would only make the subscriber's decoder fail.
pub fn payload_type_map(
    publisher: &[(u8, CodecKey)],
    subscriber: &[(u8, CodecKey)],
) -> HashMap<u8, u8> {
    publisher
        .iter()
        .filter_map(|(pt, key)| {
            subscriber
                .iter()
                .find(|(_, k)| k == key)
                .map(|(spt, _)| (*pt, *spt))
        })
        .collect()
}

/// How one subscriber leg gets a publisher's header extensions.
///
/// Extensions are matched by URI and renumbered, except the ones that name an
/// m-line or a stream on the publisher's own connection: the MID is replaced by
/// the subscriber-side mid (added when missing), and RID / repaired RID are
/// removed, because the subscriber's m-line has no simulcast layers. A browser
/// that saw the publisher's mid would route the packet to its own m-line of that
/// name and then refuse the SSRC the SDP gave to another ("Failed to apply
/// demuxer criteria").
#[derive(Debug, Clone)]
pub struct ExtensionPlan {
    /// Index = publisher id (1..=255); value = subscriber id, 0 = drop.
    ids: Vec<u8>,
    /// The subscriber's MID extension id and the subscriber-side mid.
    mid: Option<(u8, Bytes)>,
}

impl ExtensionPlan {
    /// Drops every extension.
    pub fn none() -> Self {
        Self {
            ids: vec![0; 256],
            mid: None,
        }
    }

    /// The plan for the negotiated `(id, uri)` lists of both legs and the mid of
    /// the subscriber's m-line for this track.
    pub fn new(
        publisher: &[(u8, String)],
        subscriber: &[(u8, String)],
        subscriber_mid: Option<&str>,
    ) -> Self {
        let mut ids = vec![0u8; 256];
        for (id, uri) in publisher {
            // The transport-wide sequence number counts the publisher's
            // connection; the subscriber leg numbers its own packets.
            if matches!(
                uri.as_str(),
                MID_URI | RID_URI | REPAIRED_RID_URI | TRANSPORT_CC_URI
            ) {
                continue;
            }
            if let Some((sid, _)) = subscriber.iter().find(|(_, u)| u == uri) {
                ids[usize::from(*id)] = *sid;
            }
        }
        let mid = subscriber_mid.filter(|m| !m.is_empty()).and_then(|m| {
            subscriber
                .iter()
                .find(|(_, u)| u == MID_URI)
                .map(|(sid, _)| (*sid, Bytes::copy_from_slice(m.as_bytes())))
        });
        Self { ids, mid }
    }

    /// The subscriber id for a publisher extension id (0 = drop it). The MID is
    /// not translated by id: [`ExtensionPlan::apply`] writes it afresh.
    pub fn id(&self, publisher_id: u8) -> u8 {
        self.ids[usize::from(publisher_id)]
    }

    /// Rewrites a header's extensions for the subscriber leg in place.
    pub fn apply(&self, header: &mut Header) {
        header.extensions.retain_mut(|e| {
            let id = self.ids[usize::from(e.id)];
            e.id = id;
            id != 0
        });
        if let Some((id, mid)) = &self.mid {
            header.extensions.push(Extension {
                id: *id,
                payload: mid.clone(),
            });
        }
        header.extension = !header.extensions.is_empty();
        // Padding was the publisher's layout; marshalling pads to a word again.
        header.extensions_padding = 0;
        if header.extension {
            let one_byte = header
                .extensions
                .iter()
                .all(|e| (1..=14).contains(&e.id) && (1..=16).contains(&e.payload.len()));
            header.extension_profile = if one_byte {
                EXTENSION_PROFILE_ONE_BYTE
            } else {
                EXTENSION_PROFILE_TWO_BYTE
            };
        }
    }
}

/// A payload type with no counterpart on the subscriber's leg (RTP payload types are 7 bits).
const UNMAPPED: u8 = 0xFF;

/// Per (subscriber, published track) rewrite state: SSRC, payload type, extension
/// ids, and sequence numbers/timestamps kept continuous across publisher restarts.
#[derive(Debug, Clone)]
pub struct Rewriter {
    out_ssrc: u32,
    /// Index = publisher payload type (7 bits); value = subscriber's, or [`UNMAPPED`].
    payload_types: [u8; 128],
    extensions: ExtensionPlan,
    /// The publisher SSRC the offsets below were computed for.
    source_ssrc: Option<u32>,
    seq_offset: u16,
    ts_offset: u32,
    /// Highest sequence number sent so far (wrapping order) and its timestamp.
    last_out: Option<(u16, u32)>,
    /// When that packet was rewritten, if the caller said.
    last_out_at: Option<Duration>,
}

impl Rewriter {
    /// A rewriter sending as `out_ssrc` with no negotiated mapping yet (everything dropped).
    pub fn new(out_ssrc: u32) -> Self {
        Self {
            out_ssrc,
            payload_types: [UNMAPPED; 128],
            extensions: ExtensionPlan::none(),
            source_ssrc: None,
            seq_offset: 0,
            ts_offset: 0,
            last_out: None,
            last_out_at: None,
        }
    }

    /// Installs the subscriber leg's negotiated payload types and extensions.
    ///
    /// Called only once the negotiation that added the track has completed (see
    /// [`Negotiator::next_offer`]): until then nothing is forwarded.
    pub fn set_mapping(&mut self, payload_types: HashMap<u8, u8>, extensions: ExtensionPlan) {
        self.payload_types = [UNMAPPED; 128];
        for (from, to) in payload_types {
            if from < 128 && to < 128 {
                self.payload_types[usize::from(from)] = to;
            }
        }
        self.extensions = extensions;
    }

    /// The next packet starts a new stretch of the stream (a simulcast layer
    /// switch, or a video resumed after a pause): its sequence number follows
    /// the last one sent, whatever the publisher sent in between, as after a
    /// change of source SSRC.
    pub fn rebase(&mut self) {
        self.source_ssrc = None;
    }

    /// Whether any payload type can be forwarded yet.
    pub fn is_negotiated(&self) -> bool {
        self.payload_types.iter().any(|pt| *pt != UNMAPPED)
    }

    /// The subscriber extension id for a publisher extension id (0 = drop it).
    pub fn extension_id(&self, publisher_id: u8) -> u8 {
        self.extensions.id(publisher_id)
    }

    /// Rewrites a whole RTP header for the subscriber; `false` means drop the packet.
    pub fn rewrite_header(&mut self, header: &mut Header) -> bool {
        self.rewrite_header_at(header, None)
    }

    /// [`Rewriter::rewrite_header`] at `now` (with the track's clock rate), so a
    /// change of source SSRC (a simulcast layer switch) advances the timestamp
    /// by the wall time since the last packet; see [`Rewriter::rewrite_at`].
    pub fn rewrite_header_at(&mut self, header: &mut Header, now: Option<(Duration, u32)>) -> bool {
        let fields = RtpFields {
            payload_type: header.payload_type,
            sequence_number: header.sequence_number,
            timestamp: header.timestamp,
            ssrc: header.ssrc,
        };
        let out = match now {
            Some((now, clock_rate)) => self.rewrite_at(fields, now, clock_rate),
            None => self.rewrite_fields(fields, None),
        };
        let Some(out) = out else {
            return false;
        };
        header.payload_type = out.payload_type;
        header.sequence_number = out.sequence_number;
        header.timestamp = out.timestamp;
        header.ssrc = out.ssrc;
        self.extensions.apply(header);
        true
    }

    /// Rewrites `fields` for the subscriber; `None` means drop the packet.
    ///
    /// Sequence numbers are shifted by a fixed offset, so the publisher's gaps stay
    /// visible (the subscriber NACKs them) and reordering survives. When the
    /// publisher's SSRC changes (a restarted encoder or replaced track) the offset
    /// is recomputed so the subscriber sees one continuous stream.
    pub fn rewrite(&mut self, fields: RtpFields) -> Option<RtpFields> {
        self.rewrite_fields(fields, None)
    }

    /// [`Rewriter::rewrite`] for a packet handled at `now` on a track whose RTP
    /// clock runs at `clock_rate`: when the source SSRC changes (a simulcast
    /// layer switch, whose layers each have their own timestamp base), the
    /// timestamp continues from the last one sent by the wall time elapsed
    /// since, so the subscriber's jitter buffer sees frames where they belong.
    pub fn rewrite_at(
        &mut self,
        fields: RtpFields,
        now: Duration,
        clock_rate: u32,
    ) -> Option<RtpFields> {
        self.rewrite_fields(fields, Some((now, clock_rate)))
    }

    fn rewrite_fields(
        &mut self,
        fields: RtpFields,
        now: Option<(Duration, u32)>,
    ) -> Option<RtpFields> {
        let payload_type = *self.payload_types.get(usize::from(fields.payload_type))?;
        if payload_type == UNMAPPED {
            return None;
        }
        if self.source_ssrc != Some(fields.ssrc) {
            match self.last_out {
                None => {
                    self.seq_offset = 0;
                    self.ts_offset = 0;
                }
                Some((seq, ts)) => {
                    self.seq_offset = seq.wrapping_add(1).wrapping_sub(fields.sequence_number);
                    // The wall time since the last packet when known; else one
                    // 90 kHz frame tick later keeps timestamps increasing
                    // without knowing the codec.
                    let gap = match (now, self.last_out_at) {
                        (Some((now, rate)), Some(then)) => {
                            let ticks =
                                now.saturating_sub(then).as_micros() * u128::from(rate) / 1_000_000;
                            u32::try_from(ticks)
                                .unwrap_or(u32::MAX / 4)
                                .clamp(1, u32::MAX / 4)
                        }
                        _ => 3000,
                    };
                    self.ts_offset = ts.wrapping_add(gap).wrapping_sub(fields.timestamp);
                }
            }
            self.source_ssrc = Some(fields.ssrc);
        }
        let sequence_number = fields.sequence_number.wrapping_add(self.seq_offset);
        let timestamp = fields.timestamp.wrapping_add(self.ts_offset);
        let newer = match self.last_out {
            None => true,
            Some((last, _)) => seq_newer(sequence_number, last),
        };
        if newer {
            self.last_out = Some((sequence_number, timestamp));
            if let Some((now, _)) = now {
                self.last_out_at = Some(now);
            }
        }
        Some(RtpFields {
            payload_type,
            sequence_number,
            timestamp,
            ssrc: self.out_ssrc,
        })
    }
}

/// RFC 3550 serial-number comparison: is `a` after `b`?
pub fn seq_newer(a: u16, b: u16) -> bool {
    a != b && a.wrapping_sub(b) < 0x8000
}

/// Limits how often a publisher is asked for a keyframe: every subscriber's PLI
/// would otherwise each cost a full intra frame.
#[derive(Debug, Clone)]
pub struct KeyframeThrottle {
    min_interval: Duration,
    last: Option<Duration>,
    suppressed: u64,
}

impl KeyframeThrottle {
    /// At most one request per `min_interval`.
    pub fn new(min_interval: Duration) -> Self {
        Self {
            min_interval,
            last: None,
            suppressed: 0,
        }
    }

    /// A subscriber asks for a keyframe at `now`; `true` = relay it to the publisher.
    pub fn request(&mut self, now: Duration) -> bool {
        match self.last {
            Some(last) if now.saturating_sub(last) < self.min_interval => {
                self.suppressed += 1;
                false
            }
            _ => {
                self.last = Some(now);
                true
            }
        }
    }

    /// Requests absorbed so far.
    pub fn suppressed(&self) -> u64 {
        self.suppressed
    }
}

/// A subscriber's copy of a publisher's packet: equal to a clone, with room in
/// its extension list for the two extensions the subscriber leg adds (its MID,
/// from [`ExtensionPlan::apply`], and its transport-wide sequence number, from
/// the connection's congestion-control interceptor). A clone's list is exactly
/// as long as the publisher's, so those additions reallocated it for about half
/// of all copies.
pub fn subscriber_copy(packet: &rtc::rtp::Packet) -> rtc::rtp::Packet {
    let h = &packet.header;
    let mut extensions = Vec::with_capacity(h.extensions.len() + 2);
    extensions.extend_from_slice(&h.extensions);
    rtc::rtp::Packet {
        header: Header {
            version: h.version,
            padding: h.padding,
            extension: h.extension,
            marker: h.marker,
            payload_type: h.payload_type,
            sequence_number: h.sequence_number,
            timestamp: h.timestamp,
            ssrc: h.ssrc,
            csrc: h.csrc.clone(),
            extension_profile: h.extension_profile,
            extensions,
            extensions_padding: h.extensions_padding,
        },
        payload: packet.payload.clone(),
    }
}

/// Reads an RFC 6464 audio level byte: `(voice activity, level in -dBov 0..=127)`.
pub fn parse_audio_level(payload: &[u8]) -> Option<(bool, u8)> {
    payload.first().map(|b| (b & 0x80 != 0, b & 0x7f))
}

/// Picks the active speaker from audio levels.
///
/// Loudness is averaged over a window so a cough does not switch the speaker,
/// and a switch needs the newcomer to be clearly louder than the current speaker
/// (or the current speaker to have gone quiet), and the last switch to be
/// `min_dwell` ago: a grid that flickers between two talkers is worse than one
/// that lags a little.
#[derive(Debug, Clone)]
pub struct SpeakerDetector<K> {
    window: Duration,
    min_dwell: Duration,
    /// Loudness (127 - level) must average at least this to count as speaking.
    threshold: f64,
    /// How much louder a newcomer must be than the current speaker.
    margin: f64,
    samples: HashMap<K, VecDeque<(Duration, u8)>>,
    current: Option<K>,
    last_switch: Option<Duration>,
}

impl<K: Clone + Eq + Hash> SpeakerDetector<K> {
    /// Defaults tuned for 20 ms Opus frames: 1 s window, 0.5 s dwell, -60 dBov threshold.
    pub fn new() -> Self {
        Self {
            window: Duration::from_secs(1),
            min_dwell: Duration::from_millis(500),
            threshold: 67.0,
            margin: 6.0,
            samples: HashMap::new(),
            current: None,
            last_switch: None,
        }
    }

    /// Records one audio packet's level (`-dBov`, 0 loudest, 127 silence).
    pub fn observe(&mut self, who: &K, level: u8, now: Duration) {
        let q = self.samples.entry(who.clone()).or_default();
        q.push_back((now, 127u8.saturating_sub(level.min(127))));
        while q
            .front()
            .is_some_and(|(t, _)| now.saturating_sub(*t) > self.window)
        {
            q.pop_front();
        }
    }

    /// Forgets someone who left.
    pub fn remove(&mut self, who: &K) {
        self.samples.remove(who);
        if self.current.as_ref() == Some(who) {
            self.current = None;
        }
    }

    /// The current speaker.
    pub fn current(&self) -> Option<&K> {
        self.current.as_ref()
    }

    fn average(&self, who: &K, now: Duration) -> f64 {
        let Some(q) = self.samples.get(who) else {
            return 0.0;
        };
        let recent: Vec<u8> = q
            .iter()
            .filter(|(t, _)| now.saturating_sub(*t) <= self.window)
            .map(|(_, l)| *l)
            .collect();
        if recent.len() < 5 {
            return 0.0;
        }
        recent.iter().map(|l| f64::from(*l)).sum::<f64>() / recent.len() as f64
    }

    /// Re-evaluates at `now`; returns the new speaker when it changed.
    pub fn evaluate(&mut self, now: Duration) -> Option<K> {
        if self
            .last_switch
            .is_some_and(|t| now.saturating_sub(t) < self.min_dwell)
        {
            return None;
        }
        let (best, best_avg) = self
            .samples
            .keys()
            .map(|k| (k.clone(), self.average(k, now)))
            .max_by(|a, b| a.1.total_cmp(&b.1))?;
        if best_avg < self.threshold || self.current.as_ref() == Some(&best) {
            return None;
        }
        let current_avg = self
            .current
            .as_ref()
            .map(|c| self.average(c, now))
            .unwrap_or(0.0);
        if current_avg >= self.threshold && best_avg < current_avg + self.margin {
            return None;
        }
        self.current = Some(best.clone());
        self.last_switch = Some(now);
        Some(best)
    }
}

impl<K: Clone + Eq + Hash> Default for SpeakerDetector<K> {
    fn default() -> Self {
        Self::new()
    }
}

/// Serialises server-initiated negotiation for one peer connection.
///
/// The client makes the first offer (it knows what it publishes). After that the
/// server offers whenever the tracks it sends change, never with an offer already
/// outstanding. On glare (a client offer while ours is outstanding) the server
/// is the polite side: it rolls back and re-offers once the client's offer is
/// answered.
///
/// It also numbers the server's offers, which is what keeps media off a track
/// the subscriber does not know yet: a track added to the connection is stamped
/// with [`Negotiator::next_offer`], and forwarding on it starts only once
/// [`Negotiator::remote_answer`] reports an answered offer at least that number.
/// Before that the subscriber's browser has no m-line (and no SSRC) for it.
#[derive(Debug, Clone, Default)]
pub struct Negotiator {
    initial_done: bool,
    offer_outstanding: bool,
    needed: bool,
    /// Offers created so far; the outstanding one, if any, is number `offers`.
    offers: u64,
}

/// What the driver must do with a client offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnRemoteOffer {
    /// Apply it and answer.
    Answer,
    /// Roll back our outstanding offer first, then apply it and answer.
    RollbackThenAnswer,
}

impl Negotiator {
    /// The sent tracks changed: an offer is needed.
    pub fn changed(&mut self) {
        self.needed = true;
    }

    /// Whether an offer should be created and sent now; marks it outstanding.
    pub fn should_offer(&mut self) -> bool {
        if self.initial_done && self.needed && !self.offer_outstanding {
            self.needed = false;
            self.offer_outstanding = true;
            self.offers += 1;
            true
        } else {
            false
        }
    }

    /// The client sent an offer.
    pub fn remote_offer(&mut self) -> OnRemoteOffer {
        if self.offer_outstanding {
            self.offer_outstanding = false;
            self.needed = true;
            OnRemoteOffer::RollbackThenAnswer
        } else {
            OnRemoteOffer::Answer
        }
    }

    /// We answered a client offer.
    pub fn answered(&mut self) {
        self.initial_done = true;
    }

    /// The client answered our offer: the number of the offer answered, or `None`
    /// if no offer was outstanding (a protocol error).
    pub fn remote_answer(&mut self) -> Option<u64> {
        std::mem::replace(&mut self.offer_outstanding, false).then_some(self.offers)
    }

    /// The first offer that can carry a track added to the connection now; stamp
    /// the track with it. An outstanding offer was created before the track and
    /// does not carry it, and neither does an answer to a client's offer (an
    /// answer cannot add m-lines).
    pub fn next_offer(&self) -> u64 {
        self.offers + 1
    }

    /// Whether a track stamped `stamp` is known to the client once offer
    /// `answered` has been answered.
    pub fn covers(answered: u64, stamp: u64) -> bool {
        answered >= stamp
    }

    /// Whether an offer of ours awaits an answer.
    pub fn offer_outstanding(&self) -> bool {
        self.offer_outstanding
    }
}

/// A client's description as the SFU applies it, once simulcast tracks of that
/// client flow on the m-sections `flowing` (their mids).
///
/// webrtc-rs 0.21.1 rebuilds every receiver from the remote description each
/// time a negotiation completes (`start_rtp`), and a simulcast receiver comes
/// back with its rids but without the SSRC each layer was bound to. Only the
/// RTP stream id header extension could bind them again, and a browser stops
/// sending it once the SFU's receiver reports acknowledge a layer: so each
/// simulcast publisher's picture would stop the first time the SFU renegotiates
/// its connection to add someone else's tracks. A section with neither an
/// `a=msid` nor an `a=ssrc` line names no incoming track to webrtc-rs, which
/// then leaves that receiver, layer bindings included, as it was. The `a=rid`
/// and `a=simulcast` lines stay: the SFU's answers and offers take the layers
/// from them. Everything else, line endings included, is kept as it came.
pub fn keep_flowing_receivers(sdp: &str, flowing: &[&str]) -> String {
    if flowing.is_empty() {
        return sdp.to_owned();
    }
    let lines: Vec<&str> = sdp.split_inclusive('\n').collect();
    let mut out = String::with_capacity(sdp.len());
    let mut start = 0;
    while start < lines.len() {
        let end = lines[start + 1..]
            .iter()
            .position(|l| l.starts_with("m="))
            .map_or(lines.len(), |i| start + 1 + i);
        let section = &lines[start..end];
        let keep = section[0].starts_with("m=")
            && section.iter().any(|l| {
                l.trim_end()
                    .strip_prefix("a=mid:")
                    .is_some_and(|mid| flowing.contains(&mid))
            });
        for line in section {
            let names_track = ["a=msid:", "a=ssrc:", "a=ssrc-group:"]
                .iter()
                .any(|p| line.starts_with(p));
            if !(keep && names_track) {
                out.push_str(line);
            }
        }
        start = end;
    }
    out
}

/// `sdp` with the SFU's own ICE candidates written into its first media
/// section (the one every other section is bundled with). No
/// `a=end-of-candidates`: the same candidates still follow trickled, and a
/// client may not take candidates after that line.
///
/// The SFU's candidates are known before it answers (one host address and
/// port, over UDP and TCP), and also go out trickled, but only after the
/// answer. Before them, the SFU's own connectivity checks can reach the
/// client: the client then knows the SFU's address only as a peer-reflexive
/// candidate, and a webrtc-rs client waits a second (its acceptance wait for
/// such candidates) before it nominates that pair, which was the 1.2 s
/// instead of 0.2 s that about one join in five took to connect. With the
/// candidates in the answer the address is a host candidate from the start,
/// and any client can begin its checks without waiting for the trickle. An
/// SDP without a media section is returned as it came.
pub fn with_candidates(sdp: &str, candidates: &[String]) -> String {
    let lines: Vec<&str> = sdp.split_inclusive('\n').collect();
    let Some(first) = lines.iter().position(|l| l.starts_with("m=")) else {
        return sdp.to_owned();
    };
    let end = lines[first + 1..]
        .iter()
        .position(|l| l.starts_with("m="))
        .map_or(lines.len(), |i| first + 1 + i);
    let eol = if sdp.contains("\r\n") { "\r\n" } else { "\n" };
    let mut out = String::with_capacity(sdp.len() + candidates.len() * 96);
    for line in &lines[..end] {
        out.push_str(line);
    }
    if !out.ends_with('\n') {
        out.push_str(eol);
    }
    for candidate in candidates {
        let candidate = candidate.trim();
        let candidate = candidate.strip_prefix("a=").unwrap_or(candidate);
        out.push_str("a=");
        out.push_str(candidate);
        out.push_str(eol);
    }
    for line in &lines[end..] {
        out.push_str(line);
    }
    out
}

/// Which media thread each Room lives on.
///
/// A Room is placed when its first participant arrives, on the thread with the
/// fewest participants at that moment (participants rather than Rooms, because
/// a Room of 30 costs about 30 times a Room of one), and stays there until its
/// last participant is gone, so its packets never cross threads. A Room that
/// grows after placement is not moved: moving would need its connections'
/// state to change threads mid-call.
#[derive(Debug, Clone)]
pub struct Placement<R> {
    rooms: HashMap<R, (usize, usize)>,
    load: Vec<usize>,
}

impl<R: Hash + Eq> Placement<R> {
    /// `threads` threads (at least one), all empty.
    pub fn new(threads: usize) -> Self {
        Self {
            rooms: HashMap::new(),
            load: vec![0; threads.max(1)],
        }
    }

    /// One more participant of `room`: its thread.
    pub fn place(&mut self, room: R) -> usize {
        let least = self
            .load
            .iter()
            .enumerate()
            .min_by_key(|(_, load)| **load)
            .map_or(0, |(i, _)| i);
        let entry = self.rooms.entry(room).or_insert((least, 0));
        entry.1 += 1;
        if let Some(load) = self.load.get_mut(entry.0) {
            *load += 1;
        }
        entry.0
    }

    /// One participant of `room` left; the Room is forgotten with its last one.
    pub fn release<Q>(&mut self, room: &Q)
    where
        R: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let Some(entry) = self.rooms.get_mut(room) else {
            return;
        };
        entry.1 = entry.1.saturating_sub(1);
        if let Some(load) = self.load.get_mut(entry.0) {
            *load = load.saturating_sub(1);
        }
        if entry.1 == 0 {
            self.rooms.remove(room);
        }
    }

    /// The thread `room` lives on, if anyone is in it.
    pub fn thread_of<Q>(&self, room: &Q) -> Option<usize>
    where
        R: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.rooms.get(room).map(|(thread, _)| *thread)
    }

    /// Participants per thread.
    pub fn load(&self) -> &[usize] {
        &self.load
    }
}

/// The STUN magic cookie (RFC 5389 §6), bytes 4..8 of every STUN message.
const STUN_MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xA4, 0x42];
/// STUN Binding request message type.
const STUN_BINDING_REQUEST: u16 = 0x0001;
/// STUN USERNAME attribute type.
const STUN_USERNAME: u16 = 0x0006;

/// The local ICE username fragment a STUN Binding request is addressed to.
///
/// ICE puts `"<receiver ufrag>:<sender ufrag>"` in the USERNAME attribute of
/// every connectivity check (RFC 8445 §7.2.2), so on a port shared by every
/// connection this is what names the connection a new remote address belongs
/// to. Returns `None` for anything else (RTP, RTCP, DTLS, STUN responses,
/// truncated or malformed messages); it reads only inside `datagram`, so no
/// input can make it panic. The request's integrity is not checked here: the
/// connection's ICE agent checks it with the password and drops forgeries.
pub fn stun_binding_ufrag(datagram: &[u8]) -> Option<&str> {
    // RFC 7983: STUN messages start with a byte in 0..=3; the header is 20 bytes.
    let header = datagram.get(..20)?;
    if header[0] > 3 || header[4..8] != STUN_MAGIC_COOKIE {
        return None;
    }
    if u16::from_be_bytes([header[0], header[1]]) != STUN_BINDING_REQUEST {
        return None;
    }
    let length = usize::from(u16::from_be_bytes([header[2], header[3]]));
    let mut attributes = datagram.get(20..20 + length)?;
    while attributes.len() >= 4 {
        let kind = u16::from_be_bytes([attributes[0], attributes[1]]);
        let len = usize::from(u16::from_be_bytes([attributes[2], attributes[3]]));
        let value = attributes.get(4..4 + len)?;
        if kind == STUN_USERNAME {
            let username = std::str::from_utf8(value).ok()?;
            let (ours, _) = username.split_once(':')?;
            return (!ours.is_empty()).then_some(ours);
        }
        // Attributes are padded to a multiple of four bytes.
        let padded = (4 + len).div_ceil(4) * 4;
        attributes = attributes.get(padded.min(attributes.len())..)?;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_answer_carries_the_sfus_candidates_in_its_first_section() {
        let sdp = "v=0\r\no=- 1 2 IN IP4 0.0.0.0\r\ns=-\r\na=group:BUNDLE 0 1\r\n\
                   m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=ice-ufrag:abc\r\n\
                   m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:1\r\n";
        let candidates = vec![
            "candidate:1 1 udp 2130706431 127.0.0.1 40000 typ host".to_owned(),
            "a=candidate:2 1 tcp 1671430143 127.0.0.1 40000 typ host tcptype passive".to_owned(),
        ];
        let out = with_candidates(sdp, &candidates);
        assert_eq!(
            out,
            "v=0\r\no=- 1 2 IN IP4 0.0.0.0\r\ns=-\r\na=group:BUNDLE 0 1\r\n\
             m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=ice-ufrag:abc\r\n\
             a=candidate:1 1 udp 2130706431 127.0.0.1 40000 typ host\r\n\
             a=candidate:2 1 tcp 1671430143 127.0.0.1 40000 typ host tcptype passive\r\n\
             m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:1\r\n"
        );
        // Nothing to put them in: unchanged.
        assert_eq!(with_candidates("v=0\r\n", &candidates), "v=0\r\n");
    }

    #[test]
    fn a_subscriber_copy_equals_a_clone_and_has_room_for_two_extensions() {
        let mut packet = rtc::rtp::Packet::default();
        packet.header.version = 2;
        packet.header.marker = true;
        packet.header.payload_type = 96;
        packet.header.sequence_number = 65_535;
        packet.header.timestamp = 90_000;
        packet.header.ssrc = 0x1234_5678;
        packet.header.csrc = vec![7, 9];
        packet.header.extension = true;
        packet.header.extension_profile = EXTENSION_PROFILE_ONE_BYTE;
        packet.header.extensions = vec![
            Extension {
                id: 1,
                payload: Bytes::from_static(b"0"),
            },
            Extension {
                id: 3,
                payload: Bytes::from_static(&[0x9a]),
            },
        ];
        packet.header.extensions_padding = 2;
        packet.payload = Bytes::from_static(b"frame");
        let copy = subscriber_copy(&packet);
        assert_eq!(copy, packet);
        assert!(copy.header.extensions.capacity() >= packet.header.extensions.len() + 2);
        // The payload is shared, not copied.
        assert_eq!(copy.payload.as_ptr(), packet.payload.as_ptr());
    }

    /// Chromium's re-offer of a camera in three layers beside a microphone (trimmed).
    const SIMULCAST_REOFFER: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
        a=group:BUNDLE 0 1\r\na=msid-semantic: WMS s\r\n\
        m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=sendonly\r\n\
        a=msid:s a\r\na=ssrc:11 msid:s a\r\na=rtpmap:111 opus/48000/2\r\n\
        m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\na=sendonly\r\n\
        a=msid:s v\r\na=rtpmap:96 VP8/90000\r\na=rid:q send\r\na=rid:h send\r\n\
        a=rid:f send\r\na=simulcast:send q;h;f\r\na=ssrc-group:FID 21 22\r\n\
        a=ssrc:21 msid:s v\r\n";

    #[test]
    fn a_flowing_simulcast_section_names_no_track_and_keeps_its_layers() {
        let kept = keep_flowing_receivers(SIMULCAST_REOFFER, &["1"]);
        let video = &kept[kept.find("m=video").expect("video section")..];
        for gone in ["a=msid:", "a=ssrc:", "a=ssrc-group:"] {
            assert!(!video.contains(gone), "{gone} left in {video}");
        }
        for kept_line in [
            "a=rid:q send\r\n",
            "a=rid:f send\r\n",
            "a=simulcast:send q;h;f\r\n",
            "a=mid:1\r\n",
        ] {
            assert!(video.contains(kept_line), "{kept_line} lost from {video}");
        }
        // The session and the microphone's section are untouched.
        let before_video = &SIMULCAST_REOFFER[..SIMULCAST_REOFFER.find("m=video").expect("video")];
        assert!(kept.starts_with(before_video), "{kept}");
        assert!(kept.contains("a=msid-semantic: WMS s\r\n"));
    }

    #[test]
    fn nothing_flowing_or_another_mid_changes_nothing() {
        assert_eq!(
            keep_flowing_receivers(SIMULCAST_REOFFER, &[]),
            SIMULCAST_REOFFER
        );
        assert_eq!(
            keep_flowing_receivers(SIMULCAST_REOFFER, &["7"]),
            SIMULCAST_REOFFER
        );
        // A mid is matched whole, not by prefix.
        assert_eq!(
            keep_flowing_receivers(SIMULCAST_REOFFER, &["10"]),
            SIMULCAST_REOFFER
        );
        let lf = SIMULCAST_REOFFER.replace("\r\n", "\n");
        let kept = keep_flowing_receivers(&lf, &["1"]);
        assert!(!kept.contains('\r') && kept.contains("a=simulcast:send q;h;f\n"));
        assert!(!kept.contains("a=msid:s v"));
        assert_eq!(keep_flowing_receivers("", &["1"]), "");
        assert_eq!(keep_flowing_receivers("m=video", &["1"]), "m=video");
    }

    fn vp8() -> CodecKey {
        CodecKey::new("video/VP8", "")
    }

    fn rewriter() -> Rewriter {
        let mut r = Rewriter::new(0xAAAA);
        r.set_mapping(
            payload_type_map(&[(96, vp8())], &[(100, vp8())]),
            ExtensionPlan::new(
                &[(1, AUDIO_LEVEL_URI.into())],
                &[(4, AUDIO_LEVEL_URI.into())],
                None,
            ),
        );
        r
    }

    fn pkt(seq: u16, ts: u32, ssrc: u32) -> RtpFields {
        RtpFields {
            payload_type: 96,
            sequence_number: seq,
            timestamp: ts,
            ssrc,
        }
    }

    #[test]
    fn rewrites_ssrc_payload_type_and_extension_ids() {
        let mut r = rewriter();
        let out = r.rewrite(pkt(10, 1000, 1)).expect("mapped");
        assert_eq!(out.ssrc, 0xAAAA);
        assert_eq!(out.payload_type, 100);
        assert_eq!(out.sequence_number, 10);
        assert_eq!(r.extension_id(1), 4);
        assert_eq!(r.extension_id(2), 0);
    }

    #[test]
    fn unmapped_payload_type_is_dropped() {
        let mut r = rewriter();
        assert!(
            r.rewrite(RtpFields {
                payload_type: 97,
                ..pkt(1, 1, 1)
            })
            .is_none()
        );
        let mut fresh = Rewriter::new(1);
        assert!(!fresh.is_negotiated());
        assert!(fresh.rewrite(pkt(1, 1, 1)).is_none());
    }

    #[test]
    fn sequence_stays_continuous_across_a_publisher_restart_and_keeps_gaps() {
        let mut r = rewriter();
        assert_eq!(
            r.rewrite(pkt(65534, 100, 1)).map(|p| p.sequence_number),
            Some(65534)
        );
        assert_eq!(
            r.rewrite(pkt(65535, 100, 1)).map(|p| p.sequence_number),
            Some(65535)
        );
        // Gap upstream stays a gap downstream (so the subscriber can NACK it).
        assert_eq!(
            r.rewrite(pkt(2, 200, 1)).map(|p| p.sequence_number),
            Some(2)
        );
        // Reordered packet keeps its place.
        assert_eq!(
            r.rewrite(pkt(1, 200, 1)).map(|p| p.sequence_number),
            Some(1)
        );
        // New publisher SSRC starting at a random point continues at 3.
        let out = r.rewrite(pkt(40000, 7, 2)).expect("mapped");
        assert_eq!(out.sequence_number, 3);
        assert!(out.timestamp.wrapping_sub(200) < 0x8000_0000 && out.timestamp != 200);
        assert_eq!(
            r.rewrite(pkt(40001, 8, 2)).map(|p| p.sequence_number),
            Some(4)
        );
    }

    #[test]
    fn a_rebased_stream_continues_after_a_pause_without_a_gap() {
        let mut r = rewriter();
        assert_eq!(
            r.rewrite(pkt(100, 0, 1)).map(|p| p.sequence_number),
            Some(100)
        );
        // 50 packets not forwarded (a hidden tile), then the stream resumes.
        r.rebase();
        let out = r.rewrite(pkt(151, 9000, 1)).expect("mapped");
        assert_eq!(out.sequence_number, 101);
        assert_eq!(
            r.rewrite(pkt(152, 9000, 1)).map(|p| p.sequence_number),
            Some(102)
        );
    }

    #[test]
    fn h264_modes_do_not_mix() {
        let pub_codecs = [
            (
                102,
                CodecKey::new("video/H264", "profile-level-id=42001f;packetization-mode=1"),
            ),
            (127, CodecKey::new("video/H264", "packetization-mode=0")),
        ];
        let sub_codecs = [(125, CodecKey::new("video/h264", "packetization-mode=1"))];
        let m = payload_type_map(&pub_codecs, &sub_codecs);
        assert_eq!(m.get(&102), Some(&125));
        assert_eq!(m.get(&127), None);
    }

    #[test]
    fn keyframe_requests_are_throttled() {
        let mut t = KeyframeThrottle::new(Duration::from_millis(500));
        assert!(t.request(Duration::from_millis(0)));
        assert!(!t.request(Duration::from_millis(100)));
        assert!(!t.request(Duration::from_millis(499)));
        assert!(t.request(Duration::from_millis(500)));
        assert_eq!(t.suppressed(), 2);
    }

    #[test]
    fn audio_level_byte_is_parsed() {
        assert_eq!(parse_audio_level(&[0x80 | 30]), Some((true, 30)));
        assert_eq!(parse_audio_level(&[127]), Some((false, 127)));
        assert_eq!(parse_audio_level(&[]), None);
    }

    fn feed(
        d: &mut SpeakerDetector<&'static str>,
        who: &'static str,
        level: u8,
        from_ms: u64,
        to_ms: u64,
    ) {
        let mut t = from_ms;
        while t < to_ms {
            d.observe(&who, level, Duration::from_millis(t));
            t += 20;
        }
    }

    #[test]
    fn speaker_switches_to_the_clearly_louder_participant_only() {
        let mut d = SpeakerDetector::new();
        feed(&mut d, "ann", 20, 0, 1000);
        feed(&mut d, "bob", 110, 0, 1000);
        assert_eq!(d.evaluate(Duration::from_millis(1000)), Some("ann"));
        // Bob slightly louder than Ann: no flicker.
        feed(&mut d, "ann", 22, 1000, 2000);
        feed(&mut d, "bob", 20, 1000, 2000);
        assert_eq!(d.evaluate(Duration::from_millis(2000)), None);
        // Ann goes quiet: Bob takes over.
        feed(&mut d, "ann", 127, 2000, 3100);
        feed(&mut d, "bob", 20, 2000, 3100);
        assert_eq!(d.evaluate(Duration::from_millis(3100)), Some("bob"));
        // Within the dwell time nothing switches, even if Ann shouts.
        feed(&mut d, "ann", 0, 3100, 3200);
        assert_eq!(d.evaluate(Duration::from_millis(3200)), None);
    }

    #[test]
    fn silence_elects_nobody_and_leavers_are_forgotten() {
        let mut d = SpeakerDetector::new();
        feed(&mut d, "ann", 127, 0, 1000);
        assert_eq!(d.evaluate(Duration::from_millis(1000)), None);
        feed(&mut d, "ann", 10, 1000, 2000);
        assert_eq!(d.evaluate(Duration::from_millis(2000)), Some("ann"));
        d.remove(&"ann");
        assert_eq!(d.current(), None);
    }

    #[test]
    fn negotiation_waits_for_the_client_offer_and_never_overlaps() {
        let mut n = Negotiator::default();
        n.changed();
        assert!(
            !n.should_offer(),
            "no server offer before the client's first offer"
        );
        assert_eq!(n.remote_offer(), OnRemoteOffer::Answer);
        n.answered();
        assert!(n.should_offer());
        n.changed();
        assert!(!n.should_offer(), "second change waits for the answer");
        assert_eq!(n.remote_answer(), Some(1));
        assert!(n.should_offer());
        // Glare: client offers while ours is outstanding.
        assert_eq!(n.remote_offer(), OnRemoteOffer::RollbackThenAnswer);
        n.answered();
        assert!(n.should_offer(), "re-offer after glare");
        assert_eq!(n.remote_answer(), Some(3));
        assert_eq!(
            n.remote_answer(),
            None,
            "an answer without an offer is refused"
        );
    }

    #[test]
    fn a_track_is_not_forwarded_before_the_offer_that_adds_it_is_answered() {
        let mut n = Negotiator::default();
        // Someone already publishes when this subscriber joins: the track is
        // added before the client's first offer, and our answer to that offer
        // does not carry it.
        let early = n.next_offer();
        n.changed();
        assert_eq!(n.remote_offer(), OnRemoteOffer::Answer);
        n.answered();
        assert!(n.should_offer());
        // A track added while offer 1 is outstanding is not in offer 1.
        let late = n.next_offer();
        n.changed();
        let answered = n.remote_answer().expect("offer 1 outstanding");
        assert!(Negotiator::covers(answered, early));
        assert!(!Negotiator::covers(answered, late));
        assert!(n.should_offer());
        // Glare rolls offer 2 back: it was never answered, so nothing it
        // carried may start; the re-offer (3) carries it and its answer starts it.
        let glared = n.next_offer();
        assert_eq!(n.remote_offer(), OnRemoteOffer::RollbackThenAnswer);
        n.answered();
        assert!(n.should_offer());
        let answered = n.remote_answer().expect("offer 3 outstanding");
        assert!(Negotiator::covers(answered, late));
        assert!(Negotiator::covers(answered, glared));
        assert!(!Negotiator::covers(answered, n.next_offer()));
    }

    fn header(extensions: &[(u8, &'static str)]) -> Header {
        Header {
            version: 2,
            payload_type: 96,
            extension: !extensions.is_empty(),
            extension_profile: EXTENSION_PROFILE_ONE_BYTE,
            extensions: extensions
                .iter()
                .map(|(id, v)| Extension {
                    id: *id,
                    payload: Bytes::from_static(v.as_bytes()),
                })
                .collect(),
            extensions_padding: 3,
            ..Default::default()
        }
    }

    fn ext(h: &Header, id: u8) -> Option<&[u8]> {
        h.extensions
            .iter()
            .find(|e| e.id == id)
            .map(|e| e.payload.as_ref())
    }

    #[test]
    fn the_publishers_mid_becomes_the_subscribers_and_rids_are_stripped() {
        let publisher = [
            (1, AUDIO_LEVEL_URI.to_owned()),
            (4, MID_URI.to_owned()),
            (10, RID_URI.to_owned()),
            (11, REPAIRED_RID_URI.to_owned()),
        ];
        let subscriber = [
            (3, MID_URI.to_owned()),
            (5, AUDIO_LEVEL_URI.to_owned()),
            (6, RID_URI.to_owned()),
            (7, REPAIRED_RID_URI.to_owned()),
        ];
        let plan = ExtensionPlan::new(&publisher, &subscriber, Some("7"));
        let mut h = header(&[(1, "\u{1e}"), (4, "0"), (10, "hi"), (11, "lo")]);
        plan.apply(&mut h);
        assert_eq!(
            ext(&h, 3),
            Some(&b"7"[..]),
            "mid rewritten to the subscriber's"
        );
        assert_eq!(ext(&h, 5), Some(&b"\x1e"[..]), "audio level renumbered");
        assert_eq!(h.extensions.len(), 2, "rid and repaired rid removed");
        assert!(h.extension);
        assert_eq!(h.extensions_padding, 0);
        assert_eq!(h.extension_profile, EXTENSION_PROFILE_ONE_BYTE);

        // A packet without a MID gets the subscriber's; a marshalled packet
        // reads back with it.
        let mut h = header(&[]);
        plan.apply(&mut h);
        assert_eq!(ext(&h, 3), Some(&b"7"[..]));
        let packet = rtc::rtp::Packet {
            header: h,
            payload: Bytes::from_static(b"payload"),
        };
        use rtc::shared::marshal::{Marshal, Unmarshal};
        let mut wire = packet.marshal().expect("marshals");
        let back = rtc::rtp::Packet::unmarshal(&mut wire).expect("unmarshals");
        assert_eq!(back.header.get_extension(3).as_deref(), Some(&b"7"[..]));
    }

    #[test]
    fn without_a_negotiated_mid_the_publishers_mid_is_stripped() {
        let publisher = [(4, MID_URI.to_owned()), (10, RID_URI.to_owned())];
        // The subscriber leg (an audio m-line, say) negotiated no MID extension.
        let plan = ExtensionPlan::new(&publisher, &[(2, AUDIO_LEVEL_URI.to_owned())], Some("1"));
        let mut h = header(&[(4, "0"), (10, "hi")]);
        plan.apply(&mut h);
        assert!(h.extensions.is_empty());
        assert!(!h.extension);
        assert_eq!(plan.id(4), 0);
    }

    fn stun_request(username: &[u8], before: &[u8]) -> Vec<u8> {
        let mut attrs = Vec::new();
        attrs.extend_from_slice(before);
        attrs.extend_from_slice(&6u16.to_be_bytes());
        attrs.extend_from_slice(&(username.len() as u16).to_be_bytes());
        attrs.extend_from_slice(username);
        while attrs.len() % 4 != 0 {
            attrs.push(0);
        }
        let mut m = vec![0x00, 0x01];
        m.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
        m.extend_from_slice(&STUN_MAGIC_COOKIE);
        m.extend_from_slice(&[7; 12]);
        m.extend_from_slice(&attrs);
        m
    }

    #[test]
    fn stun_binding_ufrag_names_the_receiving_side_and_ignores_everything_else() {
        let m = stun_request(b"serverUfrag:clientUf", &[]);
        assert_eq!(stun_binding_ufrag(&m), Some("serverUfrag"));
        // An attribute before USERNAME (odd length, so padded) is skipped.
        let m = stun_request(b"abcd:efgh", &[0x80, 0x22, 0x00, 0x03, b'x', b'y', b'z', 0]);
        assert_eq!(stun_binding_ufrag(&m), Some("abcd"));
        // A Binding success response is not a request.
        let mut response = stun_request(b"abcd:efgh", &[]);
        response[0] = 0x01;
        response[1] = 0x01;
        assert_eq!(stun_binding_ufrag(&response), None);
        // Not STUN: RTP (version 2 sets the top bits) and DTLS (content type 20..63).
        let mut rtp = stun_request(b"abcd:efgh", &[]);
        rtp[0] = 0x80;
        assert_eq!(stun_binding_ufrag(&rtp), None);
        assert_eq!(stun_binding_ufrag(&[22, 254, 253, 0, 0]), None);
        // No colon, an empty local part, bad UTF-8: nothing to route by.
        assert_eq!(stun_binding_ufrag(&stun_request(b"abcd", &[])), None);
        assert_eq!(stun_binding_ufrag(&stun_request(b":efgh", &[])), None);
        assert_eq!(
            stun_binding_ufrag(&stun_request(&[0xff, b':', b'a'], &[])),
            None
        );
    }

    #[test]
    fn stun_binding_ufrag_never_reads_past_a_truncated_or_lying_message() {
        let m = stun_request(b"serverUfrag:clientUf", &[]);
        for end in 0..m.len() {
            assert_eq!(stun_binding_ufrag(&m[..end]), None, "cut at {end}");
        }
        // The header claims more attributes than there are.
        let mut long = m.clone();
        long[3] = 0xff;
        assert_eq!(stun_binding_ufrag(&long), None);
        // An attribute claims more bytes than the message holds.
        let mut lying = m;
        lying[23] = 0xff;
        assert_eq!(stun_binding_ufrag(&lying), None);
    }

    #[test]
    fn rooms_go_to_the_least_loaded_thread_and_stay_there_until_empty() {
        let mut p = Placement::new(3);
        // A Room of three on thread 0, then new Rooms fill the emptier threads.
        assert_eq!((p.place("a"), p.place("a"), p.place("a")), (0, 0, 0));
        assert_eq!(p.place("b"), 1);
        assert_eq!(p.place("c"), 2);
        assert_eq!(p.place("d"), 1);
        // A Room's later participants join it wherever it is, however loaded.
        assert_eq!(p.place("a"), 0);
        assert_eq!(p.load(), &[4, 2, 1]);
        assert_eq!(p.thread_of("d"), Some(1));
        for _ in 0..4 {
            p.release("a");
        }
        assert_eq!(p.thread_of("a"), None);
        assert_eq!(p.load(), &[0, 2, 1]);
        // Releasing an unknown Room changes nothing; an empty thread takes the next Room.
        p.release("zzz");
        assert_eq!(p.place("e"), 0);
        // Zero threads means one.
        assert_eq!(Placement::new(0).place("x"), 0);
    }
}
