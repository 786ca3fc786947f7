//! The Room signaling protocol: JSON text messages over the Room's WebSocket.
//!
//! Every message is one JSON object with a `"type"` field. Field names are
//! `snake_case` except the ICE candidate fields, which keep the browser's
//! `RTCIceCandidateInit` spelling (`sdpMid`, `sdpMLineIndex`) so the browser can
//! pass them straight through.
//!
//! # Client → server
//!
//! | `type` | fields | meaning |
//! |---|---|---|
//! | `join` | `token` | first message, exactly once: the media token from the web layer |
//! | `offer` | `sdp` | the client's offer (the first one publishes its camera/mic; later ones e.g. add a screen share) |
//! | `answer` | `sdp` | answer to a server `offer` |
//! | `candidate` | `candidate`, `sdpMid`, `sdpMLineIndex` | trickled ICE candidate (`candidate: ""` = end of candidates) |
//! | `mute` | `kind` (`"audio"`/`"video"`), `muted` | the client muted/unmuted its mic or camera |
//! | `screenshare` | `active` | the client started/stopped sharing its screen |
//! | `chat` | `text` | in-room text chat (1..=2000 characters) |
//! | `tiles` | `tiles[]` (`mid` or `track_id`, `width`, `height`, `visible`, optional `screen`) | how the client shows each video it receives: size in device pixels, whether it is on screen, whether it is a screen share; a tile names its video by the client's own mid of the receiving transceiver, or by the track id of `track-published`; videos left out keep their last report (at most 128 tiles) |
//! | `leave` | | the client leaves; the server ends the session |
//! | `ping` | | keep-alive; answered with `pong` |
//!
//! # Server → client
//!
//! | `type` | fields | meaning |
//! |---|---|---|
//! | `welcome` | `you`, `participants[]`, `ice_servers[]` | join accepted. `you` is your participant id; `participants` are the others already present (`id`, `display_name`, `handle`, `audio_muted`, `video_muted`, `screensharing`); `ice_servers` (`urls[]`, `username`, `credential`) go into `new RTCPeerConnection({iceServers})` |
//! | `offer` | `sdp` | server-initiated (re)negotiation: apply it and send an `answer` |
//! | `answer` | `sdp` | answer to the client's `offer` |
//! | `candidate` | `candidate`, `sdpMid`, `sdpMLineIndex` | the server's ICE candidates |
//! | `participant-joined` | `id`, `display_name`, `handle` | someone entered |
//! | `participant-left` | `id` | someone left (their tracks are gone too) |
//! | `track-published` | `participant`, `stream_id`, `track_id`, `mid`, `kind` | a track of `participant` is now offered to you |
//! | `track-unpublished` | `participant`, `stream_id`, `track_id`, `mid`, `kind` | that track was removed |
//! | `mute` | `participant`, `kind`, `muted` | someone muted/unmuted |
//! | `screenshare` | `participant`, `active` | someone started/stopped a screen share |
//! | `active-speaker` | `participant` | the loudest speaker changed (and, to a newcomer, who it is) |
//! | `quality` | `participant`, `level` (`good`/`fair`/`poor`/`lost`) | someone's connection quality changed (yours included); sent to a newcomer for everyone whose level is known; see [`crate::quality`] for what it means and how often it may change |
//! | `send-layers` | `mid`, `rids[]` | send only these simulcast layers (by rid) of your track `mid`; set `encodings[i].active` of the others to false |
//! | `chat` | `from`, `display_name`, `text`, `at` (unix ms) | a chat line (also echoed to its author) |
//! | `pong` | | answer to `ping` |
//! | `error` | `reason` | the session is about to be closed for `reason` |
//!
//! # Flow
//!
//! 1. The client opens the WebSocket and sends `join`. A bad token gets `error` and a close.
//! 2. The server sends `welcome`. The client creates its `RTCPeerConnection` with
//!    `ice_servers`, adds its microphone/camera tracks (or none) and sends an `offer`;
//!    the server replies with an `answer`. Candidates trickle both ways.
//! 3. Whenever the set of tracks the client should receive changes (someone joins,
//!    publishes, leaves), the server sends an `offer`; the client answers. The server
//!    never has two offers outstanding. If the client sends an `offer` while a server
//!    offer is outstanding (glare), the server is the polite side: it rolls its offer
//!    back, answers the client's, and re-offers afterwards. The client may therefore
//!    treat an incoming `offer` during its own pending offer the same way (ignore it
//!    as the impolite side: the server's answer will come).
//! 4. **Labelling remote media:** every track the server sends carries the msid
//!    `<stream_id> <track_id>` where `stream_id` is the publisher's participant id, so
//!    in the browser `ontrack` gives `event.streams[0].id == participant`. `track_id`
//!    is `<participant>:<mid of the publisher's m-line>` and matches `track-published`.
//!
//! # Simulcast
//!
//! The client publishes its camera as up to three simulcast layers with rids
//! `q`, `h` and `f` (a quarter, half and full resolution). For each video a
//! participant receives, the SFU forwards one layer, chosen from the `tiles`
//! report (the smallest layer that fills the tile; nothing for a tile that is
//! not visible; the top layer for a video never reported) and the
//! participant's estimated downlink. A video never reported is shown as large
//! as it comes. `send-layers` tells a publisher which layers anyone takes; the
//! others may stop (they are asked for again before anyone needs them).
//!
//! # Limits
//!
//! A message longer than [`MAX_MESSAGE_BYTES`] (64 KiB, SDP included), invalid
//! JSON, an unknown `type`, an out-of-range field or a burst beyond the rate limit
//! ([`RATE_BURST`] messages, refilled at [`RATE_PER_SEC`]/s) ends the session: the
//! server sends `error {reason}` and returns the same reason as the close reason.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Largest accepted signaling message (bytes of the text frame).
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;
/// Longest chat line, in characters.
pub const MAX_CHAT_CHARS: usize = 2000;
/// Longest ICE candidate line.
pub const MAX_CANDIDATE_BYTES: usize = 1024;
/// Messages a socket may send in a burst.
pub const RATE_BURST: f64 = 60.0;
/// Sustained messages per second a socket may send.
pub const RATE_PER_SEC: f64 = 20.0;
/// Most tiles one `tiles` report may list.
pub const MAX_TILES: usize = 128;
/// Largest tile side accepted, in device pixels.
pub const MAX_TILE_SIDE: u32 = 16384;

/// A media kind in `mute` and `track-*` messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Microphone or other sound.
    Audio,
    /// Camera or screen.
    Video,
}

/// An ICE candidate as the browser's `RTCIceCandidateInit` spells it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Candidate {
    /// The `candidate:` line, or empty for end-of-candidates.
    pub candidate: String,
    /// The media section id this candidate belongs to.
    #[serde(rename = "sdpMid", default)]
    pub sdp_mid: Option<String>,
    /// The media section index this candidate belongs to.
    #[serde(rename = "sdpMLineIndex", default)]
    pub sdp_mline_index: Option<u16>,
}

/// A message from the browser (or any client) to the SFU.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum ClientMessage {
    /// First message: the media token.
    Join {
        /// Token from [`TokenKey::issue`](crate::TokenKey::issue).
        token: String,
    },
    /// A client offer.
    Offer {
        /// Session description.
        sdp: String,
    },
    /// Answer to a server offer.
    Answer {
        /// Session description.
        sdp: String,
    },
    /// Trickled ICE candidate.
    Candidate(Candidate),
    /// Mute state of the client's own audio or video.
    Mute {
        /// Which of the client's media.
        kind: Kind,
        /// Muted or not.
        muted: bool,
    },
    /// Screen share started or stopped.
    Screenshare {
        /// Sharing or not.
        active: bool,
    },
    /// Chat line.
    Chat {
        /// The text, 1..=2000 characters.
        text: String,
    },
    /// How the client shows the videos it receives.
    Tiles {
        /// One entry per received video; videos left out keep their last report.
        tiles: Vec<TileReport>,
    },
    /// Leaving the Room.
    Leave,
    /// Keep-alive.
    Ping,
}

/// How a client shows one received video.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TileReport {
    /// The mid of the client's transceiver that receives the video (reliable
    /// in every browser: a transceiver the client created itself keeps its own
    /// track id whatever the server's msid says).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mid: Option<String>,
    /// Or the track id of the video (`participant:mid`, as in `track-published`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub track_id: String,
    /// Width in device pixels.
    pub width: u32,
    /// Height in device pixels.
    pub height: u32,
    /// Whether the tile is on screen.
    pub visible: bool,
    /// Whether it shows a screen share (which gets the downlink first).
    #[serde(default)]
    pub screen: bool,
}

impl ClientMessage {
    /// Parses and validates one text frame. Any error ends the session.
    pub fn parse(text: &str) -> Result<Self> {
        if text.len() > MAX_MESSAGE_BYTES {
            return Err(Error::Protocol("message too large".to_owned()));
        }
        let message: ClientMessage = serde_json::from_str(text)
            .map_err(|e| Error::Protocol(format!("not a valid message: {e}")))?;
        message.validate()?;
        Ok(message)
    }

    fn validate(&self) -> Result<()> {
        let bad = |what: &str| Err(Error::Protocol(what.to_owned()));
        match self {
            ClientMessage::Offer { sdp } | ClientMessage::Answer { sdp } => {
                if !sdp.starts_with("v=0") {
                    return bad("sdp must start with v=0");
                }
            }
            ClientMessage::Candidate(c) => {
                if c.candidate.len() > MAX_CANDIDATE_BYTES {
                    return bad("candidate too long");
                }
                if !c.candidate.is_empty()
                    && !c.candidate.starts_with("candidate:")
                    && !c.candidate.starts_with("a=candidate:")
                {
                    return bad("candidate must start with candidate:");
                }
                if c.sdp_mid.as_ref().is_some_and(|m| m.len() > 64) {
                    return bad("sdpMid too long");
                }
            }
            ClientMessage::Chat { text } => {
                let chars = text.chars().count();
                if text.trim().is_empty() || chars > MAX_CHAT_CHARS {
                    return bad("chat text must have 1 to 2000 characters");
                }
            }
            ClientMessage::Join { token } => {
                if token.len() > crate::token::MAX_TOKEN_LEN {
                    return bad("token too long");
                }
            }
            ClientMessage::Tiles { tiles } => {
                if tiles.len() > MAX_TILES {
                    return bad("too many tiles");
                }
                if tiles.iter().any(|t| {
                    (t.track_id.is_empty() && t.mid.as_ref().is_none_or(String::is_empty))
                        || t.track_id.len() > 256
                        || t.mid.as_ref().is_some_and(|m| m.len() > 64)
                        || t.width > MAX_TILE_SIDE
                        || t.height > MAX_TILE_SIDE
                }) {
                    return bad("tile out of range");
                }
            }
            ClientMessage::Mute { .. }
            | ClientMessage::Screenshare { .. }
            | ClientMessage::Leave
            | ClientMessage::Ping => {}
        }
        Ok(())
    }
}

/// Someone in the Room, as listed in `welcome`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParticipantInfo {
    /// Participant id (also the stream id of their media).
    pub id: String,
    /// Name to show.
    pub display_name: String,
    /// Handle, absent for guests.
    pub handle: Option<String>,
    /// Microphone muted.
    pub audio_muted: bool,
    /// Camera muted.
    pub video_muted: bool,
    /// Sharing their screen.
    pub screensharing: bool,
}

/// A STUN/TURN server for the browser's `RTCPeerConnection`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IceServer {
    /// `stun:` / `turn:` / `turns:` URLs.
    pub urls: Vec<String>,
    /// TURN username.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// TURN credential.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// Identifies one published track in `track-published`/`track-unpublished`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackInfo {
    /// Publisher's participant id.
    pub participant: String,
    /// msid stream id on the receiving side (= `participant`).
    pub stream_id: String,
    /// msid track id on the receiving side (`participant:mid`).
    pub track_id: String,
    /// The publisher's media section id.
    pub mid: String,
    /// Audio or video.
    pub kind: Kind,
}

/// A message from the SFU to a client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum ServerMessage {
    /// Join accepted.
    Welcome {
        /// Your participant id.
        you: String,
        /// The others already in the Room.
        participants: Vec<ParticipantInfo>,
        /// ICE servers for the client's peer connection.
        ice_servers: Vec<IceServer>,
    },
    /// Server-initiated offer.
    Offer {
        /// Session description.
        sdp: String,
    },
    /// Answer to the client's offer.
    Answer {
        /// Session description.
        sdp: String,
    },
    /// Server ICE candidate.
    Candidate(Candidate),
    /// Someone joined.
    ParticipantJoined {
        /// Participant id.
        id: String,
        /// Name to show.
        display_name: String,
        /// Handle, absent for guests.
        handle: Option<String>,
    },
    /// Someone left.
    ParticipantLeft {
        /// Participant id.
        id: String,
    },
    /// A track is offered to you.
    TrackPublished(TrackInfo),
    /// A track was removed.
    TrackUnpublished(TrackInfo),
    /// Someone's mute state.
    Mute {
        /// Who.
        participant: String,
        /// Which media.
        kind: Kind,
        /// Muted or not.
        muted: bool,
    },
    /// Someone's screen share.
    Screenshare {
        /// Who.
        participant: String,
        /// Sharing or not.
        active: bool,
    },
    /// The loudest speaker changed.
    ActiveSpeaker {
        /// Who.
        participant: String,
    },
    /// A chat line.
    Chat {
        /// Author's participant id.
        from: String,
        /// Author's display name.
        display_name: String,
        /// The text.
        text: String,
        /// When the SFU received it, unix milliseconds.
        at: u64,
    },
    /// Someone's connection quality changed (or, to a newcomer, what it is).
    Quality {
        /// Who (possibly you).
        participant: String,
        /// The new level.
        level: crate::quality::Level,
    },
    /// Which simulcast layers of one of your tracks anyone takes.
    SendLayers {
        /// Your media section id of the track.
        mid: String,
        /// The rids to keep sending; pause the others.
        rids: Vec<String>,
    },
    /// Answer to `ping`.
    Pong,
    /// The session is ending for this reason.
    Error {
        /// Why.
        reason: String,
    },
}

impl ServerMessage {
    /// The JSON text frame.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("server messages serialize: strings, bools, integers")
    }
}

/// Token-bucket rate limit for one socket. Time is passed in (seconds on any
/// monotonic scale), so the policy is testable without a clock.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    tokens: f64,
    burst: f64,
    per_sec: f64,
    last: f64,
}

impl RateLimiter {
    /// A full bucket of `burst` tokens refilled at `per_sec`, starting at time `now`.
    pub fn new(burst: f64, per_sec: f64, now: f64) -> Self {
        Self {
            tokens: burst,
            burst,
            per_sec,
            last: now,
        }
    }

    /// Takes one token at time `now`; `false` when the bucket is empty.
    pub fn allow(&mut self, now: f64) -> bool {
        let elapsed = (now - self.last).max(0.0);
        self.last = self.last.max(now);
        self.tokens = (self.tokens + elapsed * self.per_sec).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_client_message() {
        let cases = [
            (
                r#"{"type":"join","token":"a.b"}"#,
                ClientMessage::Join {
                    token: "a.b".into(),
                },
            ),
            (
                r#"{"type":"offer","sdp":"v=0\r\n"}"#,
                ClientMessage::Offer {
                    sdp: "v=0\r\n".into(),
                },
            ),
            (
                r#"{"type":"answer","sdp":"v=0\r\n"}"#,
                ClientMessage::Answer {
                    sdp: "v=0\r\n".into(),
                },
            ),
            (
                r#"{"type":"candidate","candidate":"candidate:1 1 udp 1 127.0.0.1 9 typ host","sdpMid":"0","sdpMLineIndex":0}"#,
                ClientMessage::Candidate(Candidate {
                    candidate: "candidate:1 1 udp 1 127.0.0.1 9 typ host".into(),
                    sdp_mid: Some("0".into()),
                    sdp_mline_index: Some(0),
                }),
            ),
            (
                r#"{"type":"mute","kind":"audio","muted":true}"#,
                ClientMessage::Mute {
                    kind: Kind::Audio,
                    muted: true,
                },
            ),
            (
                r#"{"type":"screenshare","active":false}"#,
                ClientMessage::Screenshare { active: false },
            ),
            (
                r#"{"type":"chat","text":"hi"}"#,
                ClientMessage::Chat { text: "hi".into() },
            ),
            (
                r#"{"type":"tiles","tiles":[{"track_id":"p:1","width":320,"height":180,"visible":true}]}"#,
                ClientMessage::Tiles {
                    tiles: vec![TileReport {
                        mid: None,
                        track_id: "p:1".into(),
                        width: 320,
                        height: 180,
                        visible: true,
                        screen: false,
                    }],
                },
            ),
            (r#"{"type":"leave"}"#, ClientMessage::Leave),
            (r#"{"type":"ping"}"#, ClientMessage::Ping),
        ];
        for (text, expected) in cases {
            assert_eq!(ClientMessage::parse(text).expect(text), expected);
        }
    }

    #[test]
    fn refuses_garbage_and_out_of_range_fields() {
        let long_chat = format!(
            r#"{{"type":"chat","text":"{}"}}"#,
            "x".repeat(MAX_CHAT_CHARS + 1)
        );
        let huge_sdp = format!(
            r#"{{"type":"offer","sdp":"v=0{}"}}"#,
            "a".repeat(MAX_MESSAGE_BYTES)
        );
        for text in [
            "",
            "nonsense",
            "{}",
            r#"{"type":"dance"}"#,
            r#"{"type":"offer"}"#,
            r#"{"type":"offer","sdp":"hello"}"#,
            r#"{"type":"mute","kind":"smell","muted":true}"#,
            r#"{"type":"chat","text":"   "}"#,
            r#"{"type":"candidate","candidate":"rm -rf /"}"#,
            r#"{"type":"tiles","tiles":[{"track_id":"p:1","width":-1,"height":1,"visible":true}]}"#,
            r#"{"type":"tiles","tiles":[{"track_id":"p:1","width":99999,"height":1,"visible":true}]}"#,
            r#"{"type":"tiles","tiles":[{"track_id":"","width":1,"height":1,"visible":true}]}"#,
            r#"{"type":"tiles"}"#,
            long_chat.as_str(),
            huge_sdp.as_str(),
        ] {
            assert!(ClientMessage::parse(text).is_err(), "accepted {:.80}", text);
        }
    }

    #[test]
    fn server_messages_use_the_documented_names() {
        let m = ServerMessage::TrackPublished(TrackInfo {
            participant: "p".into(),
            stream_id: "p".into(),
            track_id: "p:0".into(),
            mid: "0".into(),
            kind: Kind::Video,
        });
        let v: serde_json::Value = serde_json::from_str(&m.to_json()).expect("json");
        assert_eq!(v["type"], "track-published");
        assert_eq!(v["kind"], "video");
        let c = ServerMessage::Candidate(Candidate {
            candidate: "candidate:x".into(),
            sdp_mid: Some("0".into()),
            sdp_mline_index: Some(0),
        });
        let v: serde_json::Value = serde_json::from_str(&c.to_json()).expect("json");
        assert_eq!(v["sdpMid"], "0");
        assert_eq!(v["sdpMLineIndex"], 0);
        let s = ServerMessage::ActiveSpeaker {
            participant: "p".into(),
        }
        .to_json();
        assert!(s.contains(r#""type":"active-speaker""#));
        let l = ServerMessage::SendLayers {
            mid: "1".into(),
            rids: vec!["q".into()],
        }
        .to_json();
        assert_eq!(l, r#"{"type":"send-layers","mid":"1","rids":["q"]}"#);
        let q = ServerMessage::Quality {
            participant: "p".into(),
            level: crate::quality::Level::Poor,
        }
        .to_json();
        assert_eq!(q, r#"{"type":"quality","participant":"p","level":"poor"}"#);
    }

    #[test]
    fn rate_limiter_allows_bursts_then_refills() {
        let mut r = RateLimiter::new(3.0, 1.0, 0.0);
        assert!(r.allow(0.0) && r.allow(0.0) && r.allow(0.0));
        assert!(!r.allow(0.0));
        assert!(!r.allow(0.5));
        assert!(r.allow(1.1));
        assert!(!r.allow(1.1));
        // Refill never exceeds the burst.
        assert!(r.allow(100.0) && r.allow(100.0) && r.allow(100.0));
        assert!(!r.allow(100.0));
    }
}
