//! Errors of the media crate.
//!
//! Each variant names what went wrong for the caller (the web layer or the
//! signaling session), never an internal detail a client could use to probe the
//! SFU. `Error::reason` gives the short, stable text sent to clients in
//! `error` messages and WebSocket close frames.

/// What can go wrong admitting a participant, running signaling or forwarding media.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The media token is not in the `payload.signature` shape or its payload is not valid JSON claims.
    #[error("malformed media token")]
    MalformedToken,
    /// The media token's signature does not match: it was not issued by this instance's key.
    #[error("media token signature is invalid")]
    ForgedToken,
    /// The media token's `expires_at` is in the past.
    #[error("media token has expired")]
    ExpiredToken,
    /// The media token was already used to join once (tokens are single use).
    #[error("media token was already used")]
    ReusedToken,
    /// The token is for another Room than the one being joined.
    #[error("media token is for another room")]
    WrongRoom,
    /// The Room already holds as many participants as its capacity allows.
    #[error("room is full")]
    RoomFull,
    /// The Room was deleted; nobody may join it any more.
    #[error("room has ended")]
    RoomEnded,
    /// A signaling message broke the protocol (bad JSON, unknown type, out of order, too big, invalid field).
    #[error("invalid signaling message: {0}")]
    Protocol(String),
    /// A signaling socket sent more messages than its rate limit allows.
    #[error("too many signaling messages")]
    RateLimited,
    /// The WebRTC stack refused an operation (bad SDP or candidate, closed connection).
    #[error("webrtc: {0}")]
    WebRtc(String),
    /// No UDP port of the configured range could be bound.
    #[error("no free UDP port in the configured range")]
    NoPort,
    /// The shared media port could not be bound when the SFU started (in use, or not allowed).
    #[error("cannot bind the media port: {0}")]
    MediaPort(std::io::Error),
}

impl Error {
    /// A short, stable reason to show a client (close frame text or `error.reason`).
    pub fn reason(&self) -> String {
        match self {
            Error::WebRtc(_) => "media negotiation failed".to_owned(),
            other => other.to_string(),
        }
    }
}

impl From<webrtc::error::Error> for Error {
    fn from(error: webrtc::error::Error) -> Self {
        Error::WebRtc(error.to_string())
    }
}

/// Result with the media crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
