//! Connection quality: one level per participant (good, fair, poor, lost)
//! that the room client shows on each tile and in the people list, derived
//! from what the SFU measures of that participant's link. Plain data in,
//! plain data out: the media thread samples each connection about once a
//! second and feeds the sample to a [`QualityTracker`], which says when the
//! level to announce changes.
//!
//! # What is measured
//! - **Downlink**: the send-side estimate (GCC over transport-wide feedback)
//!   of what the SFU can send the participant, and the share of those packets
//!   the feedback reports lost.
//! - **Uplink**: the share of the participant's own RTP the SFU expected but
//!   never received (gaps in each stream's sequence numbers, counted before
//!   any retransmission repairs them; a packet counts as lost only once 64
//!   newer ones of its stream arrived without it, so reordering is not loss).
//! - **Round trip**: from the transport-wide feedback, the time from sending
//!   a packet to hearing that it arrived (so it includes the receiver's
//!   feedback interval, up to about 100 ms).
//! - **Jitter** of the participant's audio as it reaches the SFU (RFC 3550's
//!   interarrival jitter, from the kernel's arrival times).
//! - Whether the media connection answers at all (ICE consent).
//!
//! # Thresholds
//! | level | loss (worse direction) | round trip | audio jitter | downlink estimate |
//! |---|---|---|---|---|
//! | good | < 2 % | < 300 ms | < 30 ms | ≥ 500 kbit/s |
//! | fair | < 8 % | < 600 ms | < 60 ms | ≥ 200 kbit/s |
//! | poor | anything worse | | | |
//! | lost | the media connection stopped answering | | | |
//!
//! What is not known (no feedback yet, nothing published) counts as fine:
//! a participant who only listens is not called poor for sending nothing.
//!
//! # Hysteresis
//! A level is announced only after the samples agree on it for a while, so
//! a burst of loss does not flicker the indicator:
//! - a worse level after [`WORSEN_AFTER`] samples in a row at or below it;
//! - a better level after [`IMPROVE_AFTER`] samples in a row at or above it,
//!   each clearing that level's bounds with a margin (half the loss, four
//!   fifths of the round trip and jitter, a fifth more estimate);
//! - never two changes within [`MIN_CHANGE_GAP`], except to `lost`, which is
//!   announced at once. That also bounds the messages a Room sees.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How well a participant's connection carries the meeting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// The media connection stopped answering.
    Lost,
    /// Heavy loss, a long round trip or a very small downlink: pictures
    /// freeze or blur, speech may break up.
    Poor,
    /// Some loss or delay: lower resolution, the odd glitch.
    Fair,
    /// Nothing to worry about.
    Good,
}

impl Level {
    /// The lowercase name used in signaling (`good`, `fair`, `poor`, `lost`).
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Lost => "lost",
            Level::Poor => "poor",
            Level::Fair => "fair",
            Level::Good => "good",
        }
    }
}

/// What the SFU measured of one participant's link over the last interval.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Sample {
    /// The downlink estimate in bits per second, if feedback arrived.
    pub downlink_bps: Option<u64>,
    /// Share (0..=1) of what the SFU sent the participant that was lost.
    pub downlink_loss: Option<f64>,
    /// Share (0..=1) of what the participant sent that never arrived.
    pub uplink_loss: Option<f64>,
    /// Round trip time.
    pub rtt: Option<Duration>,
    /// Interarrival jitter of the participant's audio.
    pub jitter: Option<Duration>,
    /// The media connection stopped answering.
    pub disconnected: bool,
}

/// The bounds a sample must stay within to be at a level.
#[derive(Debug, Clone, Copy)]
struct Bounds {
    max_loss: f64,
    max_rtt: Duration,
    max_jitter: Duration,
    min_downlink_bps: u64,
}

const GOOD: Bounds = Bounds {
    max_loss: 0.02,
    max_rtt: Duration::from_millis(300),
    max_jitter: Duration::from_millis(30),
    min_downlink_bps: 500_000,
};

const FAIR: Bounds = Bounds {
    max_loss: 0.08,
    max_rtt: Duration::from_millis(600),
    max_jitter: Duration::from_millis(60),
    min_downlink_bps: 200_000,
};

/// Samples in a row at a worse level before it is announced.
pub const WORSEN_AFTER: u32 = 2;
/// Samples in a row at a better level before it is announced.
pub const IMPROVE_AFTER: u32 = 4;
/// Shortest time between two announced changes (except to `lost`).
pub const MIN_CHANGE_GAP: Duration = Duration::from_secs(3);
/// How often the media thread samples a connection.
pub const SAMPLE_INTERVAL: Duration = Duration::from_secs(1);

impl Bounds {
    /// Whether `s` is within these bounds; `strict` asks for the margin a
    /// climb back to this level needs.
    fn admit(&self, s: &Sample, strict: bool) -> bool {
        let (loss, rtt, jitter, bps) = if strict {
            (
                self.max_loss / 2.0,
                self.max_rtt * 4 / 5,
                self.max_jitter * 4 / 5,
                self.min_downlink_bps + self.min_downlink_bps / 5,
            )
        } else {
            (
                self.max_loss,
                self.max_rtt,
                self.max_jitter,
                self.min_downlink_bps,
            )
        };
        let worst_loss = s
            .downlink_loss
            .into_iter()
            .chain(s.uplink_loss)
            .fold(0.0_f64, f64::max);
        worst_loss < loss
            && s.rtt.is_none_or(|r| r < rtt)
            && s.jitter.is_none_or(|j| j < jitter)
            && s.downlink_bps.is_none_or(|b| b >= bps)
    }
}

/// The level one sample alone says, with the margin for any level above
/// `current` (the one announced).
pub fn classify(sample: &Sample, current: Option<Level>) -> Level {
    if sample.disconnected {
        return Level::Lost;
    }
    let strict = |level: Level| current.is_some_and(|c| c < level);
    if GOOD.admit(sample, strict(Level::Good)) {
        Level::Good
    } else if FAIR.admit(sample, strict(Level::Fair)) {
        Level::Fair
    } else {
        Level::Poor
    }
}

/// Follows one participant's samples and says when the announced level changes.
#[derive(Debug, Clone, Default)]
pub struct QualityTracker {
    level: Option<Level>,
    /// The level the recent samples lean to, and how many in a row.
    leaning: Option<(Level, u32)>,
    last_change: Option<Duration>,
}

impl QualityTracker {
    /// A tracker with nothing announced yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The level last announced.
    pub fn level(&self) -> Option<Level> {
        self.level
    }

    /// Takes the sample of time `now` (any monotonic scale); returns the level
    /// to announce when it changes. The first sample is announced as it is.
    pub fn observe(&mut self, sample: &Sample, now: Duration) -> Option<Level> {
        let raw = classify(sample, self.level);
        let Some(current) = self.level else {
            return self.change(raw, now);
        };
        if raw == Level::Lost {
            self.leaning = None;
            if current == Level::Lost {
                return None;
            }
            return self.change(Level::Lost, now);
        }
        if raw == current {
            self.leaning = None;
            return None;
        }
        // Samples on the same side of the current level count together; the
        // level announced is the mildest change they all agree on.
        let worse = raw < current;
        let (lean, count) = match self.leaning {
            Some((lean, count)) if (lean < current) == worse => {
                let mildest = if worse { lean.max(raw) } else { lean.min(raw) };
                (mildest, count + 1)
            }
            _ => (raw, 1),
        };
        self.leaning = Some((lean, count));
        let needed = if worse { WORSEN_AFTER } else { IMPROVE_AFTER };
        let rested = self
            .last_change
            .is_none_or(|t| now.saturating_sub(t) >= MIN_CHANGE_GAP);
        if count >= needed && rested {
            self.leaning = None;
            return self.change(lean, now);
        }
        None
    }

    fn change(&mut self, level: Level, now: Duration) -> Option<Level> {
        self.level = Some(level);
        self.last_change = Some(now);
        Some(level)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn lossy(loss: f64) -> Sample {
        Sample {
            downlink_bps: Some(1_500_000),
            downlink_loss: Some(loss),
            uplink_loss: Some(loss),
            rtt: Some(Duration::from_millis(40)),
            jitter: Some(Duration::from_millis(3)),
            disconnected: false,
        }
    }

    /// Feeds one sample a second from second `from` on and collects what is announced.
    fn run(tracker: &mut QualityTracker, from: u64, samples: &[Sample]) -> Vec<(u64, Level)> {
        samples
            .iter()
            .enumerate()
            .filter_map(|(i, s)| {
                let at = from + i as u64;
                tracker.observe(s, secs(at)).map(|l| (at, l))
            })
            .collect()
    }

    #[test]
    fn each_measure_can_lower_the_level() {
        assert_eq!(classify(&Sample::default(), None), Level::Good);
        assert_eq!(classify(&lossy(0.0), None), Level::Good);
        assert_eq!(classify(&lossy(0.05), None), Level::Fair);
        assert_eq!(classify(&lossy(0.2), None), Level::Poor);
        let one_way = Sample {
            uplink_loss: Some(0.15),
            ..Sample::default()
        };
        assert_eq!(
            classify(&one_way, None),
            Level::Poor,
            "the worse direction counts"
        );
        let slow = Sample {
            rtt: Some(Duration::from_millis(450)),
            ..Sample::default()
        };
        assert_eq!(classify(&slow, None), Level::Fair);
        let jittery = Sample {
            jitter: Some(Duration::from_millis(45)),
            ..Sample::default()
        };
        assert_eq!(classify(&jittery, None), Level::Fair);
        let very_jittery = Sample {
            jitter: Some(Duration::from_millis(90)),
            ..Sample::default()
        };
        assert_eq!(classify(&very_jittery, None), Level::Poor);
        let thin = Sample {
            downlink_bps: Some(150_000),
            ..Sample::default()
        };
        assert_eq!(classify(&thin, None), Level::Poor);
        let gone = Sample {
            disconnected: true,
            ..lossy(0.0)
        };
        assert_eq!(classify(&gone, Some(Level::Good)), Level::Lost);
    }

    #[test]
    fn climbing_back_needs_a_margin() {
        // 1.5 % loss is good for someone already good, not for someone fair.
        assert_eq!(classify(&lossy(0.015), Some(Level::Good)), Level::Good);
        assert_eq!(classify(&lossy(0.015), Some(Level::Fair)), Level::Fair);
        assert_eq!(classify(&lossy(0.005), Some(Level::Fair)), Level::Good);
        // 6 % is fair from above, still poor from below.
        assert_eq!(classify(&lossy(0.06), Some(Level::Good)), Level::Fair);
        assert_eq!(classify(&lossy(0.06), Some(Level::Poor)), Level::Poor);
    }

    #[test]
    fn the_first_sample_is_announced_then_only_changes() {
        let mut t = QualityTracker::new();
        let seen = run(&mut t, 0, &[lossy(0.0), lossy(0.0), lossy(0.0)]);
        assert_eq!(seen, vec![(0, Level::Good)]);
    }

    #[test]
    fn a_single_bad_second_does_not_flicker() {
        let mut t = QualityTracker::new();
        let mut samples = vec![lossy(0.0); 5];
        // One bad second, then one fair one, alternating with good ones.
        samples.extend([lossy(0.3), lossy(0.0), lossy(0.05), lossy(0.0)]);
        samples.extend(vec![lossy(0.0); 5]);
        assert_eq!(run(&mut t, 0, &samples), vec![(0, Level::Good)]);
    }

    #[test]
    fn sustained_loss_is_poor_and_recovery_takes_longer() {
        let mut t = QualityTracker::new();
        let mut samples = vec![lossy(0.0); 4];
        samples.extend(vec![lossy(0.2); 6]);
        samples.extend(vec![lossy(0.0); 12]);
        let seen = run(&mut t, 0, &samples);
        // Worse after two seconds; back up (poor → good needs the good
        // margin, so it goes straight to good) after four clean ones.
        assert_eq!(
            seen,
            vec![(0, Level::Good), (5, Level::Poor), (13, Level::Good)]
        );
    }

    #[test]
    fn mixed_bad_samples_announce_the_mildest() {
        let mut t = QualityTracker::new();
        let mut samples = vec![lossy(0.0); 4];
        samples.extend([lossy(0.3), lossy(0.05)]);
        let seen = run(&mut t, 0, &samples);
        assert_eq!(seen, vec![(0, Level::Good), (5, Level::Fair)]);
    }

    #[test]
    fn changes_are_rate_limited_but_lost_is_at_once() {
        let mut t = QualityTracker::new();
        assert_eq!(t.observe(&lossy(0.0), secs(0)), Some(Level::Good));
        // Poor from the start: the second sample would change it, but the
        // last change was under three seconds ago.
        assert_eq!(t.observe(&lossy(0.2), secs(1)), None);
        assert_eq!(t.observe(&lossy(0.2), secs(2)), None);
        assert_eq!(t.observe(&lossy(0.2), secs(3)), Some(Level::Poor));
        let gone = Sample {
            disconnected: true,
            ..lossy(0.0)
        };
        assert_eq!(t.observe(&gone, secs(4)), Some(Level::Lost));
        assert_eq!(t.observe(&gone, secs(5)), None);
        let back: Vec<_> = (6..12)
            .filter_map(|s| t.observe(&lossy(0.0), secs(s)))
            .collect();
        assert_eq!(back, vec![Level::Good]);
        assert_eq!(t.level(), Some(Level::Good));
    }

    #[test]
    fn levels_serialize_lowercase() {
        for level in [Level::Good, Level::Fair, Level::Poor, Level::Lost] {
            let json = serde_json::to_string(&level).expect("json");
            assert_eq!(json, format!("\"{}\"", level.as_str()));
        }
    }
}
