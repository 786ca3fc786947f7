//! Simulcast: which layer of each video a subscriber gets, and how a switch
//! between layers stays seamless. Plain data in, plain data out, like
//! [`crate::core`]: the media thread feeds packets, tile reports and bandwidth
//! estimates, and these types say what to forward, when to ask a publisher for
//! a keyframe and which layers a publisher may stop sending.
//!
//! # The model
//! A browser publishes a camera in up to three layers named by RTP stream id
//! ([`RIDS`]: `q` a quarter, `h` half and `f` full resolution), each on an SSRC
//! of its own. For every (subscriber, video) the SFU forwards at most one layer:
//! - [`allocate`] picks it from the size the subscriber shows the video at (the
//!   smallest layer that fills the tile; nothing for a hidden tile) and the
//!   subscriber's estimated downlink, shared by priority: screen shares first,
//!   then the active speaker, then everyone else in the order given. Audio is
//!   never part of it: the caller takes audio off the estimate first.
//! - [`LayerSwitch`] follows that choice, but moves to a new layer only on a
//!   keyframe of that layer ([`is_keyframe`]): the subscriber's decoder cannot
//!   start a layer from anywhere else. Until the keyframe arrives it keeps
//!   forwarding the old layer, and the caller asks the publisher for one.
//! - [`Rewriter`](crate::core::Rewriter) then sends every layer as the one SSRC
//!   the subscriber knows, with sequence numbers that continue by one across a
//!   switch and timestamps that advance by the wall time between them.
//! - [`needed_layers`] is what every subscriber of a video forwards or waits
//!   for; the rest is paused at the publisher (the room client sets
//!   `encodings[i].active`), so nobody uploads 720p to a room of small tiles.

use std::time::Duration;

use crate::core::KeyframeThrottle;

/// The RTP stream ids the room client gives its layers, lowest first.
pub const RIDS: [&str; 3] = ["q", "h", "f"];
/// Layers a video can have.
pub const MAX_LAYERS: usize = 3;

/// The layer index (0 lowest) of a simulcast RTP stream id. Besides [`RIDS`],
/// `0`, `1`, `2` and `l`/`m` are understood; any other rid has no layer.
pub fn layer_of_rid(rid: &str) -> Option<usize> {
    match rid {
        "q" | "0" | "l" | "low" => Some(0),
        "h" | "1" | "m" | "mid" => Some(1),
        "f" | "2" | "high" => Some(2),
        _ => None,
    }
}

/// A video codec whose keyframes the SFU can recognise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoCodec {
    /// VP8 (RFC 7741).
    Vp8,
    /// H.264 (RFC 6184).
    H264,
    /// Anything else: every packet counts as a keyframe start, so switching
    /// never waits forever (and may show artefacts until the next keyframe).
    Other,
}

impl VideoCodec {
    /// The codec of a MIME type such as `video/VP8`.
    pub fn from_mime(mime: &str) -> Self {
        if mime.eq_ignore_ascii_case("video/vp8") {
            Self::Vp8
        } else if mime.eq_ignore_ascii_case("video/h264") {
            Self::H264
        } else {
            Self::Other
        }
    }
}

/// Whether an RTP payload starts a keyframe: a subscriber's decoder can begin here.
pub fn is_keyframe(codec: VideoCodec, payload: &[u8]) -> bool {
    match codec {
        VideoCodec::Vp8 => vp8_frame(payload).is_some_and(|(key, _)| key),
        VideoCodec::H264 => h264_keyframe(payload),
        VideoCodec::Other => true,
    }
}

/// The frame size a VP8 keyframe's first packet declares.
pub fn vp8_keyframe_size(payload: &[u8]) -> Option<(u16, u16)> {
    vp8_frame(payload).and_then(|(_, size)| size)
}

/// Reads the VP8 payload descriptor (RFC 7741 §4.2) and, when the packet starts
/// a frame, whether that frame is a keyframe and (for a keyframe) its size.
/// `None` for a packet that does not start a frame or is too short.
fn vp8_frame(payload: &[u8]) -> Option<(bool, Option<(u16, u16)>)> {
    let first = *payload.first()?;
    let extended = first & 0x80 != 0;
    let start = first & 0x10 != 0;
    let partition = first & 0x07;
    if !start || partition != 0 {
        return None;
    }
    let mut at = 1;
    if extended {
        let x = *payload.get(at)?;
        at += 1;
        if x & 0x80 != 0 {
            // PictureID: 7 or 15 bits, the M bit says which.
            let pid = *payload.get(at)?;
            at += if pid & 0x80 != 0 { 2 } else { 1 };
        }
        if x & 0x40 != 0 {
            at += 1; // TL0PICIDX
        }
        if x & 0x30 != 0 {
            at += 1; // TID/Y/KEYIDX
        }
    }
    let header = payload.get(at..)?;
    let tag = *header.first()?;
    // The P bit of the frame tag (RFC 6386 §9.1): 0 = keyframe.
    let key = tag & 0x01 == 0;
    if !key {
        return Some((false, None));
    }
    let size = header
        .get(3..10)
        .filter(|h| h[..3] == [0x9d, 0x01, 0x2a])
        .map(|h| {
            (
                u16::from_le_bytes([h[3], h[4]]) & 0x3fff,
                u16::from_le_bytes([h[5], h[6]]) & 0x3fff,
            )
        });
    Some((true, size))
}

/// An H.264 packet that carries an IDR slice or a sequence parameter set at its
/// start: single NAL unit, STAP-A aggregate or the first FU-A fragment.
fn h264_keyframe(payload: &[u8]) -> bool {
    const IDR: u8 = 5;
    const SPS: u8 = 7;
    let Some(&nal) = payload.first() else {
        return false;
    };
    match nal & 0x1f {
        IDR | SPS => true,
        24 => {
            // STAP-A: (16-bit size, NAL unit)*.
            let mut rest = &payload[1..];
            while rest.len() > 2 {
                let size = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
                let Some(&unit) = rest.get(2) else {
                    return false;
                };
                if matches!(unit & 0x1f, IDR | SPS) {
                    return true;
                }
                let Some(next) = rest.get(2 + size..) else {
                    return false;
                };
                rest = next;
            }
            false
        }
        28 => payload
            .get(1)
            .is_some_and(|fu| fu & 0x80 != 0 && matches!(fu & 0x1f, IDR | SPS)),
        _ => false,
    }
}

/// How a subscriber shows one video, as its client reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tile {
    /// Width in device pixels.
    pub width: u32,
    /// Height in device pixels.
    pub height: u32,
    /// On screen at all (not scrolled away, not on another page, not hidden).
    pub visible: bool,
}

/// Who gets their share of a subscriber's downlink first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Priority {
    /// Everyone else.
    Normal,
    /// The Room's active speaker.
    Speaker,
    /// A screen share: text must stay readable.
    Screen,
}

/// One layer of a video as the allocator sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerInfo {
    /// Frame width (0 when unknown).
    pub width: u32,
    /// Frame height (0 when unknown).
    pub height: u32,
    /// What the layer costs, in bits per second.
    pub bitrate: u64,
}

/// The nominal layers of a 720p camera published as [`RIDS`], used until the
/// SFU has measured the real ones.
pub const NOMINAL_LAYERS: [LayerInfo; MAX_LAYERS] = [
    LayerInfo {
        width: 320,
        height: 180,
        bitrate: 150_000,
    },
    LayerInfo {
        width: 640,
        height: 360,
        bitrate: 500_000,
    },
    LayerInfo {
        width: 1280,
        height: 720,
        bitrate: 1_500_000,
    },
];

/// One video offered to a subscriber.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Video {
    /// How the subscriber shows it; `None` until its client says (shown as
    /// large as the video comes: a client that never reports gets the top layer).
    pub tile: Option<Tile>,
    /// Its share of the downlink.
    pub priority: Priority,
    /// The layers the publisher sends, by index (0 lowest); `None` for a layer
    /// that does not exist. A video without simulcast has layer 0 only.
    pub layers: [Option<LayerInfo>; MAX_LAYERS],
    /// The layer chosen for it last time, if any: climbing above it takes
    /// [`CLIMB_HEADROOM`] to spare. A first choice takes none.
    pub previous: Option<usize>,
}

/// The share of a layer's bitrate the budget must have to spare, beyond the
/// layer itself, before a video climbs to it from a lower one; staying or
/// going down needs none. An estimate wanders around what the link takes (a
/// delay-based one overshoots before the queue shows), and without this a
/// subscriber near a layer's cost flips between two layers each time the
/// estimate crosses it, each flip a keyframe and a jump in sharpness.
pub const CLIMB_HEADROOM: f64 = 0.5;

impl Video {
    /// The layer the tile asks for, budget aside: the smallest that fills it
    /// (a tenth of slack, as scaling up that little does not show), else the
    /// largest there is; `None` for a hidden tile or a video with no layers.
    pub fn wanted(&self) -> Option<usize> {
        let available = || (0..MAX_LAYERS).filter(|l| self.layers[*l].is_some());
        let top = available().next_back()?;
        let Some(tile) = self.tile else {
            return Some(top);
        };
        if !tile.visible || tile.width == 0 || tile.height == 0 {
            return None;
        }
        available()
            .find(|l| {
                self.layers[*l].is_some_and(|info| {
                    let known = info.width > 0 && info.height > 0;
                    known
                        && u64::from(info.width) * 10 >= u64::from(tile.width) * 9
                        && u64::from(info.height) * 10 >= u64::from(tile.height) * 9
                })
            })
            .or(Some(top))
    }
}

/// The layer to forward of each of one subscriber's videos, in the order given.
///
/// Without an estimate (`budget: None`) every video gets [`Video::wanted`].
/// With one, every visible video first gets its lowest layer, whatever the
/// budget; what remains then raises videos towards what their tiles want, by
/// priority (higher [`Priority`] first, then in the order given), so the
/// screen share and the speaker are sharp before anyone else gets more than
/// the minimum.
///
/// The lowest layers are not withheld: an estimate starts low and climbs only
/// as feedback shows the link takes more (and reads jitter as a queue), so
/// withholding would leave everyone in a larger Room looking at avatars for
/// the first seconds, or for good on a jittery link; a video without
/// simulcast has no smaller layer to fall back to. The smallest layers are
/// what a congested link can still carry; the estimate only decides how much
/// sharper anyone gets.
pub fn allocate(videos: &[Video], budget: Option<u64>) -> Vec<Option<usize>> {
    let wanted: Vec<Option<usize>> = videos.iter().map(Video::wanted).collect();
    let Some(budget) = budget else {
        return wanted;
    };
    let mut order: Vec<usize> = (0..videos.len()).collect();
    // Stable: equal priorities keep the caller's order.
    order.sort_by_key(|i| std::cmp::Reverse(videos[*i].priority));
    let rate = |v: usize, l: usize| videos[v].layers[l].map_or(0, |info| info.bitrate);
    let mut remaining = budget;
    let mut chosen: Vec<Option<usize>> = vec![None; videos.len()];
    for &v in &order {
        let Some(want) = wanted[v] else {
            continue;
        };
        let Some(lowest) = (0..=want).find(|l| videos[v].layers[*l].is_some()) else {
            continue;
        };
        remaining = remaining.saturating_sub(rate(v, lowest));
        chosen[v] = Some(lowest);
    }
    for &v in &order {
        let (Some(mut current), Some(want)) = (chosen[v], wanted[v]) else {
            continue;
        };
        while let Some(next) = (current + 1..=want).find(|l| videos[v].layers[*l].is_some()) {
            let extra = rate(v, next).saturating_sub(rate(v, current));
            let climbing = videos[v].previous.is_some_and(|p| next > p);
            let headroom = if climbing {
                (rate(v, next) as f64 * CLIMB_HEADROOM) as u64
            } else {
                0
            };
            if extra.saturating_add(headroom) > remaining {
                break;
            }
            remaining -= extra;
            current = next;
        }
        chosen[v] = Some(current);
    }
    chosen
}

/// What to do with one packet of a video for one subscriber.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Forward it (through the subscriber's rewriter).
    Forward,
    /// Drop it: another layer is being forwarded, or none.
    Drop,
}

/// The layer one subscriber receives of one video, and the switch to another.
///
/// The switch to the target layer happens on the first packet that starts a
/// keyframe of it; until then the current layer goes on (or nothing, when there
/// is none yet). Packets of the new layer older than that keyframe are dropped:
/// after the switch they would take sequence numbers the old layer already used.
/// Going to no layer at all (a hidden tile) happens at once. A subscriber
/// that gets nothing yet starts on the first keyframe of any layer up to the
/// target, so a picture shows while the target layer's keyframe is on its way.
#[derive(Debug, Clone, Default)]
pub struct LayerSwitch {
    current: Option<usize>,
    target: Option<usize>,
    /// The publisher sequence number of the keyframe that started `current`.
    started_at: Option<u16>,
    switches: u64,
}

impl LayerSwitch {
    /// Nothing forwarded yet, and nothing wanted.
    pub fn new() -> Self {
        Self::default()
    }

    /// The layer being forwarded.
    pub fn current(&self) -> Option<usize> {
        self.current
    }

    /// The layer wanted.
    pub fn target(&self) -> Option<usize> {
        self.target
    }

    /// Layer switches done so far (starting and stopping included).
    pub fn switches(&self) -> u64 {
        self.switches
    }

    /// Sets the layer wanted. Returns the layer a keyframe is now needed of
    /// (ask the publisher for one), if the switch waits for one.
    pub fn set_target(&mut self, target: Option<usize>) -> Option<usize> {
        self.target = target;
        if target.is_none() && self.current.is_some() {
            self.current = None;
            self.started_at = None;
            self.switches += 1;
        }
        self.awaiting_keyframe()
    }

    /// The packet the current layer started on never reached the subscriber
    /// (its connection could not send yet): what follows cannot be decoded
    /// without it, so wait for another keyframe of a layer up to the target,
    /// as at the start. Returns the layer to ask a keyframe of.
    pub fn restart(&mut self) -> Option<usize> {
        if self.current.take().is_some() {
            self.started_at = None;
        }
        self.awaiting_keyframe()
    }

    /// The layer whose keyframe the switch waits for.
    pub fn awaiting_keyframe(&self) -> Option<usize> {
        self.target.filter(|t| Some(*t) != self.current)
    }

    /// One packet of `layer` with publisher sequence number `seq`; `keyframe`
    /// when it starts a keyframe ([`is_keyframe`]).
    pub fn on_packet(&mut self, layer: usize, seq: u16, keyframe: bool) -> Verdict {
        let starts = match (self.current, self.target) {
            (_, Some(target)) if layer == target => self.current != self.target,
            (None, Some(target)) => layer < target,
            _ => false,
        };
        if starts && keyframe {
            self.current = Some(layer);
            self.started_at = Some(seq);
            self.switches += 1;
            return Verdict::Forward;
        }
        if Some(layer) != self.current {
            return Verdict::Drop;
        }
        if let Some(start) = self.started_at {
            let ahead = seq.wrapping_sub(start);
            if ahead >= 0x8000 {
                // Older than the keyframe the switch happened on.
                return Verdict::Drop;
            }
            if ahead > 0x1000 {
                // Far enough past the switch that nothing that old can still come.
                self.started_at = None;
            }
        }
        Verdict::Forward
    }
}

/// When to ask a publisher for a keyframe of one layer.
///
/// Every request costs the publisher a full intra frame, so requests are
/// throttled ([`KeyframeThrottle`]). A layer the publisher was told to pause
/// sends nothing, and a request for it is lost; worse, it holds back through
/// the throttle the request that matters, the one for the layer's first
/// frames once it is resumed. So while a layer is paused, and after it is
/// resumed until its first packet arrives, requests wait; that first packet
/// then asks at once (unless it starts a keyframe itself, or nobody waits for
/// one), rather than a subscriber waiting for the next allocation pass.
#[derive(Debug, Clone)]
pub struct KeyframeRequests {
    throttle: KeyframeThrottle,
    flow: Flow,
}

/// Whether a layer sends, as far as its keyframe requests go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    /// Sending (or never paused).
    Flowing,
    /// The publisher was told to pause it.
    Paused,
    /// The publisher was told to send it again; no packet since.
    Resumed,
}

impl KeyframeRequests {
    /// At most one request per `min_interval`.
    pub fn new(min_interval: Duration) -> Self {
        Self {
            throttle: KeyframeThrottle::new(min_interval),
            flow: Flow::Flowing,
        }
    }

    /// The publisher is told to stop sending the layer.
    pub fn pause(&mut self) {
        self.flow = Flow::Paused;
    }

    /// The publisher is told to send the layer again.
    pub fn resume(&mut self) {
        if self.flow == Flow::Paused {
            self.flow = Flow::Resumed;
        }
    }

    /// Whether the layer was resumed and its first packet has not come yet:
    /// the next [`KeyframeRequests::on_packet`] may ask.
    pub fn resuming(&self) -> bool {
        self.flow == Flow::Resumed
    }

    /// A subscriber needs a keyframe of the layer at `now`; `true` = ask the
    /// publisher now. A paused or not yet flowing layer asks with its first
    /// packet instead.
    pub fn want(&mut self, now: Duration) -> bool {
        self.flow == Flow::Flowing && self.throttle.request(now)
    }

    /// A packet of the layer arrived at `now`; `keyframe` when it starts one,
    /// `awaited` when a subscriber waits for a keyframe of the layer.
    /// `true` = ask the publisher for a keyframe now: the first packet of a
    /// resumed layer that is not one.
    pub fn on_packet(&mut self, now: Duration, keyframe: bool, awaited: bool) -> bool {
        if self.flow != Flow::Resumed {
            return false;
        }
        self.flow = Flow::Flowing;
        awaited && !keyframe && self.throttle.request(now)
    }
}

/// The layers of one video that its subscribers forward or wait for; the
/// publisher may pause every other one.
pub fn needed_layers<'a>(
    switches: impl IntoIterator<Item = &'a LayerSwitch>,
) -> [bool; MAX_LAYERS] {
    let mut needed = [false; MAX_LAYERS];
    for s in switches {
        for layer in [s.current, s.target].into_iter().flatten() {
            if let Some(n) = needed.get_mut(layer) {
                *n = true;
            }
        }
    }
    needed
}

/// The bitrate of a stream, from its bytes, over windows of at least `window`.
#[derive(Debug, Clone)]
pub struct RateMeter {
    window: Duration,
    bytes: u64,
    since: Option<Duration>,
    rate: Option<u64>,
}

impl RateMeter {
    /// Measures over windows of `window`.
    pub fn new(window: Duration) -> Self {
        Self {
            window,
            bytes: 0,
            since: None,
            rate: None,
        }
    }

    /// `bytes` arrived at `now`.
    pub fn add(&mut self, bytes: usize, now: Duration) {
        let since = *self.since.get_or_insert(now);
        let elapsed = now.saturating_sub(since);
        if elapsed >= self.window {
            let bits = self.bytes.saturating_mul(8);
            let rate = (u128::from(bits) * 1_000_000 / elapsed.as_micros().max(1)) as u64;
            // Half the old, half the new: smooth enough not to flap between layers.
            self.rate = Some(self.rate.map_or(rate, |old| (old + rate) / 2));
            self.bytes = 0;
            self.since = Some(now);
        }
        self.bytes += bytes as u64;
    }

    /// Bits per second over the last windows; `None` until one window has passed.
    pub fn rate(&self) -> Option<u64> {
        self.rate
    }
}

/// The sequence numbers of a stream that arrived lately, to tell a packet that arrived
/// already. Browsers probe their uplink by sending recent packets again as retransmissions,
/// which the SFU unwraps like any repair; forwarded, they would cost every subscriber's
/// downlink the probe's rate for nothing.
#[derive(Debug, Clone, Default)]
pub struct Arrivals {
    /// The newest sequence number seen, once one was.
    newest: Option<u16>,
    /// Bit `i` of the window: `newest - i` arrived.
    seen: [u64; ARRIVALS_WORDS],
}

const ARRIVALS_WORDS: usize = 8;
/// How far back [`Arrivals`] remembers: about 5 s of a 720p layer.
pub const ARRIVALS_WINDOW: u16 = (ARRIVALS_WORDS * 64) as u16;

impl Arrivals {
    /// Records `seq`; false if it arrived before. A packet further than the window from the
    /// newest, either way, starts the record afresh (a restarted encoder), so it is taken.
    pub fn first_time(&mut self, seq: u16) -> bool {
        let Some(newest) = self.newest else {
            self.restart(seq);
            return true;
        };
        let ahead = seq.wrapping_sub(newest);
        let behind = newest.wrapping_sub(seq);
        if ahead != 0 && ahead < ARRIVALS_WINDOW {
            self.shift(ahead);
            self.newest = Some(seq);
            self.mark(0);
            true
        } else if behind < ARRIVALS_WINDOW {
            let known = self.seen[usize::from(behind / 64)] & (1 << (behind % 64)) != 0;
            self.mark(behind);
            !known
        } else {
            self.restart(seq);
            true
        }
    }

    fn restart(&mut self, seq: u16) {
        self.newest = Some(seq);
        self.seen = [0; ARRIVALS_WORDS];
        self.mark(0);
    }

    fn mark(&mut self, behind: u16) {
        self.seen[usize::from(behind / 64)] |= 1 << (behind % 64);
    }

    /// Moves every bit `by` places older, dropping those that leave the window.
    fn shift(&mut self, by: u16) {
        let (words, bits) = (usize::from(by / 64), u32::from(by % 64));
        // Newest first in the array, so each word is read before it is written.
        for i in (0..ARRIVALS_WORDS).rev() {
            self.seen[i] = match i.checked_sub(words) {
                Some(j) => {
                    let carry = match j.checked_sub(1) {
                        Some(k) if bits > 0 => self.seen[k] >> (64 - bits),
                        _ => 0,
                    };
                    (self.seen[j] << bits) | carry
                }
                None => 0,
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrivals_tell_a_packet_sent_again_from_a_late_one() {
        let mut a = Arrivals::default();
        // 65000..65535 and on across the wrap, with 10 and 300 held back.
        let order: Vec<u16> = (65000..=65535)
            .chain(0..700)
            .filter(|&q| q != 10 && q != 300)
            .collect();
        for &q in &order {
            assert!(a.first_time(q), "{q} is new");
        }
        // Late but new: taken once, then refused.
        assert!(a.first_time(300));
        assert!(!a.first_time(300));
        // Recent ones sent again (a probe) are refused, however far back in the window.
        for q in [699, 698, 640, 500, 200] {
            assert!(!a.first_time(q), "{q} arrived before");
        }
        // 10 is out of the window (690 behind): older than that starts afresh.
        assert!(a.first_time(10));
        assert!(!a.first_time(10));
        assert!(a.first_time(11), "after a restart, the rest is new");
        // Jumps of every size keep what is still in the window.
        let mut b = Arrivals::default();
        let mut q = 1000u16;
        b.first_time(q);
        for step in [1u16, 63, 64, 65, 127, 128, 200, 511] {
            let before = q;
            q = q.wrapping_add(step);
            assert!(b.first_time(q));
            assert!(!b.first_time(before), "{before} after a step of {step}");
            assert!(!b.first_time(q));
        }
    }

    /// A VP8 payload: descriptor with a 15-bit picture id, then the frame tag.
    fn vp8(start: bool, key: bool, size: Option<(u16, u16)>) -> Vec<u8> {
        let mut p = vec![0x80 | if start { 0x10 } else { 0 }, 0x80, 0x81, 0x23];
        p.push(if key { 0x10 } else { 0x11 });
        p.extend_from_slice(&[0x02, 0x00]);
        if let Some((w, h)) = size {
            p.extend_from_slice(&[0x9d, 0x01, 0x2a]);
            p.extend_from_slice(&w.to_le_bytes());
            p.extend_from_slice(&h.to_le_bytes());
        }
        p.extend_from_slice(&[0; 20]);
        p
    }

    #[test]
    fn vp8_keyframes_are_recognised_from_the_payload_descriptor() {
        assert!(is_keyframe(
            VideoCodec::Vp8,
            &vp8(true, true, Some((640, 360)))
        ));
        assert_eq!(
            vp8_keyframe_size(&vp8(true, true, Some((640, 360)))),
            Some((640, 360))
        );
        assert!(!is_keyframe(VideoCodec::Vp8, &vp8(true, false, None)));
        // A keyframe's continuation packet does not start it.
        assert!(!is_keyframe(VideoCodec::Vp8, &vp8(false, true, None)));
        // The shortest descriptor: no extension byte.
        assert!(is_keyframe(VideoCodec::Vp8, &[0x10, 0x50, 0, 0]));
        assert!(!is_keyframe(VideoCodec::Vp8, &[0x10, 0x51, 0, 0]));
        // Partition 1 does not start a frame.
        assert!(!is_keyframe(VideoCodec::Vp8, &[0x11, 0x50, 0, 0]));
        // With TL0PICIDX and TID too (I, L, T set; 7-bit picture id).
        assert!(is_keyframe(
            VideoCodec::Vp8,
            &[0x90, 0xe0, 0x05, 0x01, 0x20, 0x00, 0, 0]
        ));
        // Truncated descriptors never read past the end.
        let full = vp8(true, true, Some((1280, 720)));
        for end in 0..5 {
            assert!(!is_keyframe(VideoCodec::Vp8, &full[..end]), "cut at {end}");
        }
        assert_eq!(vp8_keyframe_size(&full[..9]), None);
    }

    #[test]
    fn h264_keyframes_are_recognised_in_each_packetization() {
        assert!(is_keyframe(VideoCodec::H264, &[0x65, 0x88]));
        assert!(is_keyframe(VideoCodec::H264, &[0x67, 0x42]));
        assert!(!is_keyframe(VideoCodec::H264, &[0x41, 0x9a]));
        // STAP-A holding SPS then PPS.
        assert!(is_keyframe(
            VideoCodec::H264,
            &[0x78, 0x00, 0x02, 0x67, 0x42, 0x00, 0x02, 0x68, 0xce]
        ));
        // STAP-A with a lying size.
        assert!(!is_keyframe(VideoCodec::H264, &[0x78, 0xff, 0xff, 0x41]));
        // FU-A: first fragment of an IDR, then a middle one.
        assert!(is_keyframe(VideoCodec::H264, &[0x7c, 0x85, 0x00]));
        assert!(!is_keyframe(VideoCodec::H264, &[0x7c, 0x05, 0x00]));
        assert!(!is_keyframe(VideoCodec::H264, &[]));
    }

    fn camera(tile: Option<Tile>, priority: Priority) -> Video {
        Video {
            tile,
            priority,
            layers: NOMINAL_LAYERS.map(Some),
            previous: None,
        }
    }

    fn tile(width: u32, height: u32) -> Option<Tile> {
        Some(Tile {
            width,
            height,
            visible: true,
        })
    }

    #[test]
    fn the_tile_size_picks_the_smallest_layer_that_fills_it() {
        let small = camera(tile(300, 170), Priority::Normal);
        let medium = camera(tile(600, 340), Priority::Normal);
        let large = camera(tile(1920, 1080), Priority::Normal);
        let hidden = camera(
            Some(Tile {
                width: 1920,
                height: 1080,
                visible: false,
            }),
            Priority::Normal,
        );
        let unreported = camera(None, Priority::Normal);
        let videos = [small, medium, large, hidden, unreported];
        assert_eq!(
            allocate(&videos, None),
            vec![Some(0), Some(1), Some(2), None, Some(2)]
        );
        // Just under a layer's size still takes that layer, not the next.
        assert_eq!(camera(tile(350, 198), Priority::Normal).wanted(), Some(0));
        assert_eq!(camera(tile(360, 202), Priority::Normal).wanted(), Some(1));
        // A video without simulcast has one layer to give.
        let single = Video {
            tile: tile(100, 100),
            priority: Priority::Normal,
            layers: [Some(NOMINAL_LAYERS[2]), None, None],
            previous: None,
        };
        assert_eq!(single.wanted(), Some(0));
        // Layers the publisher does not send are skipped.
        let no_middle = Video {
            layers: [Some(NOMINAL_LAYERS[0]), None, Some(NOMINAL_LAYERS[2])],
            ..camera(tile(600, 340), Priority::Normal)
        };
        assert_eq!(no_middle.wanted(), Some(2));
    }

    #[test]
    fn a_small_budget_goes_to_the_screen_share_then_the_speaker() {
        let big = tile(1280, 720);
        let videos = [
            camera(big, Priority::Normal),
            camera(big, Priority::Speaker),
            camera(big, Priority::Screen),
            camera(big, Priority::Normal),
        ];
        // Plenty: everyone gets full resolution.
        assert_eq!(allocate(&videos, Some(10_000_000)), vec![Some(2); 4]);
        // Four minimums (600k) and then the screen share climbs to full
        // (+1350k), the speaker to half (+350k); nothing is left for the others.
        assert_eq!(
            allocate(&videos, Some(2_300_000)),
            vec![Some(0), Some(1), Some(2), Some(0)]
        );
        // Not even four minimums: everyone keeps the smallest layer, nobody
        // gets more.
        assert_eq!(allocate(&videos, Some(450_000)), vec![Some(0); 4]);
        assert_eq!(allocate(&videos, Some(0)), vec![Some(0); 4]);
        // Hidden tiles cost nothing and leave more for the rest.
        let mut hidden = videos.clone();
        hidden[2].tile = Some(Tile {
            width: 1280,
            height: 720,
            visible: false,
        });
        assert_eq!(
            allocate(&hidden, Some(2_300_000)),
            vec![Some(1), Some(2), None, Some(0)]
        );
    }

    #[test]
    fn an_estimate_wandering_around_a_layers_cost_does_not_flip_between_layers() {
        let on = |previous: Option<usize>| Video {
            previous,
            ..camera(tile(640, 360), Priority::Normal)
        };
        // Low (150k) plus the step to the middle (350k) is exactly 500k.
        assert_eq!(allocate(&[on(None)], Some(520_000)), vec![Some(1)]);
        // From the low layer, 520k is not enough to climb: the middle needs
        // half its rate (250k) to spare.
        assert_eq!(allocate(&[on(Some(0))], Some(520_000)), vec![Some(0)]);
        assert_eq!(allocate(&[on(Some(0))], Some(740_000)), vec![Some(0)]);
        assert_eq!(allocate(&[on(Some(0))], Some(760_000)), vec![Some(1)]);
        // On the middle layer, the estimate dipping towards its cost keeps it;
        // below the cost it goes down at once.
        for budget in [760_000, 600_000, 520_000, 500_000] {
            assert_eq!(
                allocate(&[on(Some(1))], Some(budget)),
                vec![Some(1)],
                "{budget}"
            );
        }
        assert_eq!(allocate(&[on(Some(1))], Some(480_000)), vec![Some(0)]);
        // Stepping up past the previous layer pays headroom only for the climb.
        let big = Video {
            previous: Some(1),
            ..camera(tile(1280, 720), Priority::Normal)
        };
        assert_eq!(
            allocate(std::slice::from_ref(&big), Some(1_600_000)),
            vec![Some(1)]
        );
        assert_eq!(allocate(&[big], Some(2_250_000)), vec![Some(2)]);
    }

    #[test]
    fn a_switch_waits_for_a_keyframe_of_the_new_layer() {
        let mut s = LayerSwitch::new();
        assert_eq!(s.set_target(Some(0)), Some(0), "start needs a keyframe");
        assert_eq!(s.on_packet(0, 10, false), Verdict::Drop);
        assert_eq!(s.on_packet(0, 11, true), Verdict::Forward);
        assert_eq!(s.current(), Some(0));
        assert_eq!(s.awaiting_keyframe(), None);
        assert_eq!(s.on_packet(0, 12, false), Verdict::Forward);
        assert_eq!(s.on_packet(1, 500, true), Verdict::Drop, "not wanted");

        // Up to layer 2: the old layer goes on until layer 2 has a keyframe.
        assert_eq!(s.set_target(Some(2)), Some(2));
        assert_eq!(s.on_packet(2, 900, false), Verdict::Drop);
        assert_eq!(s.on_packet(0, 13, false), Verdict::Forward);
        assert_eq!(
            s.on_packet(0, 14, true),
            Verdict::Forward,
            "old layer's keyframe"
        );
        assert_eq!(s.on_packet(2, 901, true), Verdict::Forward);
        assert_eq!(s.current(), Some(2));
        assert_eq!(s.on_packet(0, 15, false), Verdict::Drop);
        // A reordered packet of the new layer from before its keyframe is dropped.
        assert_eq!(s.on_packet(2, 900, false), Verdict::Drop);
        assert_eq!(s.on_packet(2, 902, false), Verdict::Forward);
        assert_eq!(s.switches(), 2);

        // A hidden tile stops at once.
        assert_eq!(s.set_target(None), None);
        assert_eq!(s.on_packet(2, 903, true), Verdict::Drop);
        // Starting afresh towards layer 2, a keyframe of layer 0 shows a
        // picture at once; layer 2 is still awaited, and taken on its keyframe.
        let mut t = LayerSwitch::new();
        assert_eq!(t.set_target(Some(2)), Some(2));
        assert_eq!(t.on_packet(0, 7, true), Verdict::Forward);
        assert_eq!(t.current(), Some(0));
        assert_eq!(t.awaiting_keyframe(), Some(2));
        assert_eq!(
            t.on_packet(1, 70, true),
            Verdict::Drop,
            "only the target once started"
        );
        assert_eq!(t.on_packet(2, 700, true), Verdict::Forward);
        assert_eq!(t.current(), Some(2));
        assert_eq!(s.set_target(None), None);
        assert_eq!(s.on_packet(2, 903, true), Verdict::Drop);
        assert_eq!(s.current(), None);
        assert_eq!(s.switches(), 3);
    }

    #[test]
    fn a_start_the_subscriber_never_got_waits_for_the_next_keyframe() {
        let mut s = LayerSwitch::new();
        s.set_target(Some(1));
        assert_eq!(s.on_packet(0, 5, true), Verdict::Forward);
        // That keyframe could not be sent: the deltas after it are no use.
        assert_eq!(s.restart(), Some(1), "ask for a keyframe again");
        assert_eq!(s.current(), None);
        assert_eq!(s.on_packet(0, 6, false), Verdict::Drop);
        assert_eq!(s.on_packet(0, 7, true), Verdict::Forward);
        assert_eq!(s.on_packet(1, 50, true), Verdict::Forward);
        assert_eq!(s.current(), Some(1));
        assert_eq!(s.restart(), Some(1));
        assert_eq!(s.on_packet(1, 51, false), Verdict::Drop);
        assert_eq!(s.on_packet(1, 52, true), Verdict::Forward);
        // Nothing wanted, nothing to restart.
        let mut idle = LayerSwitch::new();
        assert_eq!(idle.restart(), None);
    }

    #[test]
    fn a_resumed_layer_asks_for_its_keyframe_with_its_first_packet() {
        let ms = Duration::from_millis;
        let mut top = KeyframeRequests::new(ms(300));
        let mut switch = LayerSwitch::new();
        switch.set_target(Some(0));
        assert_eq!(switch.on_packet(0, 1, true), Verdict::Forward);
        // Nobody took the top layer for a while: the publisher pauses it.
        top.pause();
        // In flight before the publisher stopped: changes nothing.
        assert!(!top.on_packet(ms(10), false, false));
        assert!(!top.resuming());

        // An allocation pass at 0 ms: the subscriber's tile grew, it waits
        // for a keyframe of the top layer, which is resumed. A request now
        // would reach a publisher that sends no such layer.
        assert_eq!(switch.set_target(Some(2)), Some(2));
        assert!(!top.want(ms(0)), "nothing to ask of a paused layer");
        top.resume();
        assert!(top.resuming());
        // The publisher's encoder starts the layer again with a delta frame:
        // its first packet asks at once, not at the next pass (500 ms).
        let awaited = switch.awaiting_keyframe() == Some(2);
        assert_eq!(switch.on_packet(2, 7000, false), Verdict::Drop);
        assert!(top.on_packet(ms(80), false, awaited), "asked on arrival");
        assert!(!top.resuming());
        // Later packets leave asking to the allocation passes, throttled.
        assert!(!top.on_packet(ms(113), false, true));
        assert!(!top.want(ms(300)), "throttled");
        // The keyframe asked for arrives a round trip later: the switch is done.
        assert_eq!(switch.on_packet(2, 7002, true), Verdict::Forward);
        assert_eq!(switch.current(), Some(2));
        assert_eq!(switch.awaiting_keyframe(), None);

        // A layer that resumes on a keyframe of its own needs no request, nor
        // does one that nobody waits for.
        let mut own_keyframe = KeyframeRequests::new(ms(300));
        own_keyframe.pause();
        own_keyframe.resume();
        assert!(!own_keyframe.on_packet(ms(50), true, true));
        assert!(!own_keyframe.resuming());
        let mut unwatched = KeyframeRequests::new(ms(300));
        unwatched.pause();
        unwatched.resume();
        assert!(!unwatched.on_packet(ms(50), false, false));
        // A layer never paused asks as before, throttled.
        let mut flowing = KeyframeRequests::new(ms(300));
        flowing.resume();
        assert!(!flowing.resuming());
        assert!(flowing.want(ms(0)));
        assert!(!flowing.want(ms(100)));
        assert!(!flowing.on_packet(ms(350), false, true));
        assert!(flowing.want(ms(350)));
    }

    #[test]
    fn layers_nobody_forwards_or_waits_for_are_paused() {
        let mut a = LayerSwitch::new();
        let mut b = LayerSwitch::new();
        assert_eq!(needed_layers([&a, &b]), [false; 3], "nobody watching");
        a.set_target(Some(0));
        a.on_packet(0, 1, true);
        assert_eq!(needed_layers([&a, &b]), [true, false, false]);
        // b wants the top layer; a moves up to the middle one and still needs
        // the low one until its keyframe comes.
        b.set_target(Some(2));
        a.set_target(Some(1));
        assert_eq!(needed_layers([&a, &b]), [true, true, true]);
        a.on_packet(1, 40, true);
        assert_eq!(needed_layers([&a, &b]), [false, true, true]);
        b.set_target(None);
        assert_eq!(needed_layers([&a, &b]), [false, true, false]);
    }

    #[test]
    fn sequence_numbers_and_timestamps_stay_continuous_across_switches() {
        use crate::core::{CodecKey, ExtensionPlan, Rewriter, RtpFields, payload_type_map};
        let vp8 = CodecKey::new("video/VP8", "");
        let mut rewriter = Rewriter::new(7);
        rewriter.set_mapping(
            payload_type_map(&[(96, vp8.clone())], &[(98, vp8)]),
            ExtensionPlan::none(),
        );
        let mut switch = LayerSwitch::new();
        switch.set_target(Some(0));
        // Three layers, each its own SSRC, sequence space and timestamp base;
        // 25 frames a second, one packet per frame.
        let ssrcs = [100u32, 200, 300];
        let seq_base = [1000u16, 40000, 65530];
        let ts_base = [5u32, 1_000_000, 4_294_000_000];
        let mut out = Vec::new();
        for frame in 0..90u32 {
            let at = Duration::from_millis(u64::from(frame) * 40);
            if frame == 30 {
                switch.set_target(Some(2));
            }
            if frame == 60 {
                switch.set_target(Some(1));
            }
            for layer in 0..3 {
                // Keyframes every 10 frames, at different frames per layer.
                let keyframe = (frame + layer as u32 * 3).is_multiple_of(10);
                let seq = seq_base[layer].wrapping_add(frame as u16);
                if switch.on_packet(layer, seq, keyframe) == Verdict::Drop {
                    continue;
                }
                let fields = RtpFields {
                    payload_type: 96,
                    sequence_number: seq,
                    timestamp: ts_base[layer].wrapping_add(frame * 3600),
                    ssrc: ssrcs[layer],
                };
                let rewritten = rewriter.rewrite_at(fields, at, 90_000).expect("mapped");
                out.push((frame, layer, rewritten));
            }
        }
        let layers: Vec<usize> = out.iter().map(|(_, l, _)| *l).collect();
        assert!(layers.contains(&0) && layers.contains(&1) && layers.contains(&2));
        assert_eq!(switch.switches(), 3);
        for pair in out.windows(2) {
            let ((f0, _, a), (f1, _, b)) = (&pair[0], &pair[1]);
            assert_eq!(b.ssrc, 7);
            assert_eq!(
                b.sequence_number,
                a.sequence_number.wrapping_add(1),
                "frames {f0} and {f1}"
            );
            // One frame apart on the wall clock is 3600 ticks, switch or not;
            // a new layer's keyframe of the frame just sent on the old layer
            // comes one tick later, so the receiver still sees time move on.
            let ticks = b.timestamp.wrapping_sub(a.timestamp);
            let expected = if f1 == f0 { 1 } else { (f1 - f0) * 3600 };
            assert_eq!(ticks, expected, "frames {f0} and {f1}");
        }
    }

    #[test]
    fn the_rate_meter_measures_after_a_window() {
        let mut m = RateMeter::new(Duration::from_millis(500));
        for i in 0..=50u64 {
            m.add(1250, Duration::from_millis(i * 20));
        }
        // 1250 bytes every 20 ms = 500 kbit/s.
        assert_eq!(m.rate(), Some(500_000));
    }
}
