//! A lossy, jittery access link for the test client (cargo feature
//! `test-client`): an interceptor at the wire-most end of a client's chain
//! that drops and delays RTP and RTCP in both directions, and records what it
//! did to each synthetic media packet ([`testing::payload`](crate::testing::payload)).
//!
//! Why here and not `tc netem`: it runs the same on every machine (the kernel
//! this was built on has no netem), it can drop chosen packets for a test that
//! must not depend on timing, and because it sits below the NACK generator and
//! responder, everything above it (NACKs, retransmissions, reports) meets the
//! loss as it would on a real link. What it does not touch: ICE and DTLS,
//! which never pass through interceptors.
//!
//! The server side is not impaired: each client sits behind its own bad access
//! link, and a forwarded packet crosses two of them (the publisher's uplink and
//! the subscriber's downlink).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rtc::interceptor::{Interceptor, Packet, StreamInfo, TaggedPacket};
use rtc::rtcp::transport_feedbacks::transport_layer_nack::TransportLayerNack;
use rtc::sansio::Protocol;

use crate::testing::{decode, decode_simulcast};

/// A synthetic media packet: (sender index, kind 0 audio / 1 video, sequence).
pub type MediaKey = (u8, u8, u32);

/// Which packets a direction of the link loses.
#[derive(Debug, Clone, Default)]
pub enum Loss {
    /// None.
    #[default]
    None,
    /// Each RTP or RTCP packet independently with this probability.
    Random(f64),
    /// The first transmission of exactly these media packets (a retransmission
    /// of them passes): a deterministic loss for tests.
    Chosen(HashSet<MediaKey>),
}

/// One direction of the link.
#[derive(Debug, Clone, Default)]
pub struct Direction {
    /// What is lost.
    pub loss: Loss,
    /// Mean one-way delay added.
    pub delay: Duration,
    /// Each packet's delay is uniform in `delay ± jitter` (as netem's), so
    /// packets may overtake each other.
    pub jitter: Duration,
}

/// The link's two directions, as the client sees them.
#[derive(Debug, Clone, Default)]
pub struct Impairment {
    /// Client to server.
    pub up: Direction,
    /// Server to client.
    pub down: Direction,
    /// Seed of the loss and jitter draws.
    pub seed: u64,
}

impl Impairment {
    /// The same random loss and jitter both ways.
    pub fn symmetric(loss: f64, delay: Duration, jitter: Duration, seed: u64) -> Self {
        let d = Direction {
            loss: Loss::Random(loss),
            delay,
            jitter,
        };
        Self {
            up: d.clone(),
            down: d,
            seed,
        }
    }
}

/// What the link did, shared with whoever reads the results.
#[derive(Debug, Default)]
pub struct LinkLog {
    /// Media packets whose original transmission (not an RTX copy) was dropped
    /// on the way up.
    pub dropped_up: Mutex<HashSet<MediaKey>>,
    /// Likewise on the way down.
    pub dropped_down: Mutex<HashSet<MediaKey>>,
    /// Media packets that arrived (past the link) inside an RTX packet (RFC
    /// 4588), with how many times.
    pub rtx_down: Mutex<HashMap<MediaKey, u32>>,
    /// RTP packets dropped up / down.
    pub rtp_dropped: [AtomicU64; 2],
    /// RTCP compounds dropped up / down.
    pub rtcp_dropped: [AtomicU64; 2],
    /// Generic NACKs this client sent (offered to the link), and the sequence
    /// numbers they asked for.
    pub nacks_sent: AtomicU64,
    /// Sequence numbers asked for by [`LinkLog::nacks_sent`].
    pub nacked_seqs: AtomicU64,
    /// Generic NACKs that reached this client.
    pub nacks_received: AtomicU64,
    /// Sequence numbers asked for by [`LinkLog::nacks_received`].
    pub nacked_seqs_received: AtomicU64,
}

/// The kind of a [`MediaKey`] naming a simulcast test frame
/// ([`vp8_payload`](crate::testing::vp8_payload)): its first field is then
/// the layer, its last the frame number.
pub const SIMULCAST_KIND: u8 = 2;

/// The synthetic media key a payload carries, and whether it came inside an
/// RTX packet (two bytes of original sequence number in front).
pub fn media_key(payload: &[u8]) -> Option<(MediaKey, bool)> {
    if let Some(key) = key_of(payload) {
        return Some((key, false));
    }
    Some((key_of(payload.get(2..)?)?, true))
}

fn key_of(payload: &[u8]) -> Option<MediaKey> {
    if let Some((s, k, q, _)) = decode(payload) {
        return Some((s, k, q));
    }
    simulcast_key(payload)
}

/// A simulcast test frame: the VP8 descriptor byte, the layer, frame and
/// keyframe flag after the frame tag, then nothing but the padding.
fn simulcast_key(payload: &[u8]) -> Option<MediaKey> {
    if payload.first() != Some(&0x10) {
        return None;
    }
    let (layer, frame, _) = decode_simulcast(payload)?;
    let header = if crate::simulcast::is_keyframe(crate::simulcast::VideoCodec::Vp8, payload) {
        17
    } else {
        10
    };
    payload
        .get(header..)?
        .iter()
        .all(|b| *b == 0xAB)
        .then_some((layer, SIMULCAST_KIND, frame))
}

/// The interceptor; build it with [`ImpairedLink::new`] and register it at
/// [`SLOT`].
pub struct ImpairedLink {
    impairment: Impairment,
    log: Arc<LinkLog>,
    rng: u64,
    /// Held packets per direction (0 = up/write, 1 = down/read), by release time.
    held: [VecDeque<(Instant, u64, TaggedPacket)>; 2],
    ready: [VecDeque<TaggedPacket>; 2],
    order: u64,
}

/// Wire-most: below the congestion controller (1 000), so every packet the
/// chain sends or receives meets the link.
pub const SLOT: usize = 500;

const UP: usize = 0;
const DOWN: usize = 1;

impl ImpairedLink {
    /// A link doing `impairment`, recording into `log`.
    pub fn new(impairment: Impairment, log: Arc<LinkLog>) -> Self {
        let rng = impairment.seed | 1;
        Self {
            impairment,
            log,
            rng,
            held: [VecDeque::new(), VecDeque::new()],
            ready: [VecDeque::new(), VecDeque::new()],
            order: 0,
        }
    }

    /// xorshift64*: uniform in [0, 1).
    fn draw(&mut self) -> f64 {
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        (self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }

    fn direction(&self, way: usize) -> &Direction {
        if way == UP {
            &self.impairment.up
        } else {
            &self.impairment.down
        }
    }

    fn pass(&mut self, way: usize, mut msg: TaggedPacket) {
        let key = match &msg.message.packet {
            Packet::Rtp(p) => media_key(&p.payload),
            _ => None,
        };
        let carrier = matches!(&msg.message.packet, Packet::Rtcp(v) if v.is_empty());
        if way == UP
            && let Packet::Rtcp(packets) = &msg.message.packet
        {
            for nack in packets
                .iter()
                .filter_map(|p| p.as_any().downcast_ref::<TransportLayerNack>())
            {
                self.log.nacks_sent.fetch_add(1, Ordering::Relaxed);
                let seqs: usize = nack.nacks.iter().map(|n| n.packet_list().len()).sum();
                self.log
                    .nacked_seqs
                    .fetch_add(seqs as u64, Ordering::Relaxed);
            }
        }
        let lost = match &self.direction(way).loss {
            Loss::None => false,
            Loss::Random(p) => {
                let p = *p;
                !carrier && self.draw() < p
            }
            Loss::Chosen(keys) => matches!(key, Some((k, false)) if keys.contains(&k)),
        };
        if lost {
            let rtp = matches!(msg.message.packet, Packet::Rtp(_));
            let counters = if rtp {
                &self.log.rtp_dropped
            } else {
                &self.log.rtcp_dropped
            };
            counters[way].fetch_add(1, Ordering::Relaxed);
            // A retransmitted copy lost again is not a new loss of the packet.
            if let Some((k, false)) = key {
                let set = if way == UP {
                    &self.log.dropped_up
                } else {
                    &self.log.dropped_down
                };
                if let Ok(mut s) = set.lock() {
                    s.insert(k);
                }
                if let Loss::Chosen(keys) = &mut self.impairment_mut(way).loss {
                    // Only the first transmission is chosen to be lost.
                    keys.remove(&k);
                }
            }
            return;
        }
        let d = self.direction(way).clone();
        let delay = if d.jitter.is_zero() {
            d.delay
        } else {
            let spread = d.jitter.as_secs_f64() * (2.0 * self.draw() - 1.0);
            Duration::from_secs_f64((d.delay.as_secs_f64() + spread).max(0.0))
        };
        if delay.is_zero() {
            self.arrive(way, msg);
            return;
        }
        let at = msg.now + delay;
        msg.now = at;
        self.order += 1;
        let held = &mut self.held[way];
        let i = held.partition_point(|(t, o, _)| (*t, *o) <= (at, self.order));
        held.insert(i, (at, self.order, msg));
    }

    fn impairment_mut(&mut self, way: usize) -> &mut Direction {
        if way == UP {
            &mut self.impairment.up
        } else {
            &mut self.impairment.down
        }
    }

    /// A packet past the link.
    fn arrive(&mut self, way: usize, msg: TaggedPacket) {
        if way == DOWN {
            match &msg.message.packet {
                Packet::Rtp(p) => {
                    if let Some((k, true)) = media_key(&p.payload)
                        && let Ok(mut m) = self.log.rtx_down.lock()
                    {
                        *m.entry(k).or_default() += 1;
                    }
                }
                Packet::Rtcp(packets) => {
                    for nack in packets
                        .iter()
                        .filter_map(|p| p.as_any().downcast_ref::<TransportLayerNack>())
                    {
                        self.log.nacks_received.fetch_add(1, Ordering::Relaxed);
                        let seqs: usize = nack.nacks.iter().map(|n| n.packet_list().len()).sum();
                        self.log
                            .nacked_seqs_received
                            .fetch_add(seqs as u64, Ordering::Relaxed);
                    }
                }
                _ => {}
            }
        }
        self.ready[way].push_back(msg);
    }
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for ImpairedLink {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = rtc::shared::error::Error;
    type Time = Instant;

    fn handle_read(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        self.pass(DOWN, msg);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<Self::Rout> {
        self.ready[DOWN].pop_front()
    }

    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        self.pass(UP, msg);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<Self::Wout> {
        self.ready[UP].pop_front()
    }

    fn handle_timeout(&mut self, now: Instant) -> Result<(), Self::Error> {
        for way in [UP, DOWN] {
            while self.held[way].front().is_some_and(|(t, _, _)| *t <= now) {
                if let Some((_, _, msg)) = self.held[way].pop_front() {
                    self.arrive(way, msg);
                }
            }
        }
        Ok(())
    }

    fn poll_timeout(&mut self) -> Option<Instant> {
        self.held
            .iter()
            .filter_map(|h| h.front().map(|(t, _, _)| *t))
            .min()
    }
}

impl Interceptor for ImpairedLink {
    fn bind_local_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _info: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_are_uniform_enough_for_a_two_percent_loss() {
        let mut link = ImpairedLink::new(Impairment::default(), Arc::default());
        let n = 200_000;
        let below = (0..n).filter(|_| link.draw() < 0.02).count();
        let rate = below as f64 / n as f64;
        assert!((0.018..0.022).contains(&rate), "{rate}");
    }

    #[test]
    fn rtx_payloads_are_told_apart() {
        let p = crate::testing::payload(3, 1, 77, 100, 5);
        assert_eq!(media_key(&p), Some(((3, 1, 77), false)));
        let mut rtx = vec![0u8, 77];
        rtx.extend_from_slice(&p);
        assert_eq!(media_key(&rtx), Some(((3, 1, 77), true)));
        assert_eq!(media_key(b"not media"), None);
    }

    #[test]
    fn simulcast_frames_have_keys_of_their_own() {
        for keyframe in [false, true] {
            let p = crate::testing::vp8_payload(1, 4242, keyframe, 600);
            assert_eq!(media_key(&p), Some(((1, SIMULCAST_KIND, 4242), false)));
            let mut rtx = vec![0u8, 9];
            rtx.extend_from_slice(&p);
            assert_eq!(media_key(&rtx), Some(((1, SIMULCAST_KIND, 4242), true)));
        }
        let mut altered = crate::testing::vp8_payload(0, 1, false, 200).to_vec();
        altered[150] = 0;
        assert_eq!(media_key(&altered), None);
    }
}
