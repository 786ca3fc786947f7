//! Convene's media server: a selective forwarding unit (SFU) on webrtc-rs.
//!
//! Each participant of a Room has one WebRTC peer connection to the SFU. What a
//! participant publishes (microphone, camera, screen) arrives on that connection
//! and is forwarded, packet by packet and without decoding, to every other
//! participant of the same Room over theirs.
//!
//! # Where to start
//! - [`token`]: the web layer checks a Room's access rules and issues a signed,
//!   short-lived, single-use [`token::Claims`] with [`TokenKey::issue`].
//! - [`signaling`]: the JSON protocol on the Room's WebSocket (a table of every message).
//! - [`Sfu`]: one per instance. [`Sfu::connect`] admits a participant from the
//!   first signaling frame; [`Session::run`] then runs that participant's
//!   signaling over any `Stream<Item = String>` + `Sink<String>` (an axum
//!   WebSocket split in two, or channels in tests) until a [`CloseReason`].
//! - `testing` (cargo feature `test-client`): a webrtc-rs room client that the
//!   crate's tests, its benchmark and the instance's end-to-end tests share.
//! - [`core`]: the forwarding decisions (rewriting, header extensions, keyframe
//!   throttling, speaker detection, negotiation order) as pure code with unit tests.
//! - [`simulcast`]: which layer of each video a subscriber gets (tile sizes,
//!   bandwidth estimate, priorities), keyframe-only switching and the layers a
//!   publisher may pause, as pure code with unit tests.
//! - [`quality`]: each participant's connection quality (good, fair, poor,
//!   lost) from loss, round trip and downlink estimate, with hysteresis.
//! - `forwarder`: the media threads (one per core by default), each owning the
//!   peer connections (the sans-IO `rtc` core under webrtc-rs) of the Rooms
//!   placed on it, and forwarding their packets.
//! - `udp`: the one media port all connections share, how each thread finds the
//!   owner of a datagram on it, and `sendmmsg`/`recvmmsg` batches; `tcp`: ICE
//!   over TCP (RFC 6544) on the same port number, for networks without UDP.
//!
//! # Invariants
//! - No media without a verified, unexpired, unused token for that very Room.
//! - The forwarding path never waits for a subscriber: a packet is rewritten and
//!   sent on each subscriber's socket without blocking, and a full socket buffer
//!   drops it (a lost video packet asks the publisher for a keyframe), so one
//!   stuck participant cannot slow the Room or the publisher.
//! - Nothing is forwarded on a track before the subscriber has answered the offer
//!   that added it, and forwarded packets carry the subscriber's own mid (never
//!   the publisher's mid or rid), so a browser never routes them to a wrong m-line.
//! - Negotiation is serialised by each participant's session task, which avoids
//!   glare by construction.
//! - A Room's connections all live on one media thread, so its packets never
//!   cross threads after they are read; a panic in a Room's media ends that
//!   Room's sessions with [`CloseReason::Reconnect`] and nothing else.
//!
//! # Why this shape
//! The crate knows nothing of HTTP, databases or other Convene crates; the
//! instance glues a WebSocket to [`Session::run`] and maps its own Room and person
//! ids to the opaque strings used here. Media runs on threads of its own, each
//! with whole Rooms on it: forwarding a packet is then a plain loop with no
//! locks, channels or task switches, every core can forward, and the instance's
//! HTTP runtime is never slowed by media.

pub mod core;
pub mod engine;
pub mod error;
mod forwarder;
#[doc(hidden)]
pub mod fuzzing;
#[cfg(feature = "test-client")]
pub mod impairment;
pub mod quality;
pub mod sfu;
#[cfg(feature = "test-client")]
pub mod shaping;
pub mod signaling;
pub mod simulcast;
mod tcp;
#[cfg(feature = "test-client")]
pub mod testing;
pub mod token;
mod udp;

pub use error::{Error, Result};
pub use sfu::{CloseReason, DownlinkEstimate, Metrics, Session, Sfu, SfuConfig};
pub use signaling::{IceServer, ParticipantInfo};
pub use token::{Claims, TokenKey};
