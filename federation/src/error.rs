//! Errors of the federation crate, and the HTTP status each one answers with.
//!
//! The instance's inbox and fetch routes turn an [`Error`] into a response with
//! [`Error::status`]. The rule behind the numbers:
//!
//! | status | meaning | variants |
//! |---|---|---|
//! | 400 | the request body or a value in it is malformed | [`Error::BadAddress`], [`Error::BadDomain`], [`Error::BadJson`], [`Error::TooDeep`], [`Error::TooManyItems`], [`Error::BadUrl`], [`Error::UnsupportedActivity`], [`Error::BadDocument`] |
//! | 401 | we cannot tell who sent it: no, bad, stale or replayed signature | every [`SignatureError`] except [`SignatureError::ActorHostMismatch`] |
//! | 403 | we know who signed, and they may not do this | [`SignatureError::ActorHostMismatch`], [`Error::Refused`] |
//! | 413 | the body is over [`crate::json::MAX_BODY_BYTES`] | [`Error::TooLarge`] |
//! | 502 / 504 | a remote server answered badly or not at all (outbound only) | [`Error::Fetch`], [`Error::Timeout`] |
//! | 500 | our own state is broken (a stored key that does not parse, the database) | [`Error::Key`], [`Error::Directory`] |
//!
//! No variant carries more than a short excerpt of remote input, so logging one is safe.

use std::fmt;

/// What can be wrong with federation input or output.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// An address that is not `@name@domain` (or `acct:name@domain`).
    #[error("not an address of the form @name@domain: {0}")]
    BadAddress(String),
    /// A domain that is not a host name with an optional port.
    #[error("not a domain: {0}")]
    BadDomain(String),
    /// A body longer than the limit, refused before parsing.
    #[error("body larger than {limit} bytes")]
    TooLarge { limit: usize },
    /// JSON nested deeper than [`crate::json::MAX_DEPTH`], refused before parsing.
    #[error("JSON nested deeper than {limit} levels")]
    TooDeep { limit: usize },
    /// A JSON array or object with more members than [`crate::json::MAX_ITEMS`].
    #[error("JSON array or object with more than {limit} members")]
    TooManyItems { limit: usize },
    /// Not JSON, or JSON of the wrong shape (a missing field, a wrong type).
    #[error("malformed JSON: {0}")]
    BadJson(String),
    /// An activity type this inbox does not take.
    #[error("activity type not accepted here: {0}")]
    UnsupportedActivity(String),
    /// A URL that is not an absolute `http(s)` URL with a host.
    #[error("not an http(s) URL with a host: {0}")]
    BadUrl(String),
    /// A WebFinger, NodeInfo or actor document without what it must have.
    #[error("unusable document: {0}")]
    BadDocument(String),
    /// An HTTP signature that does not verify; see [`SignatureError`].
    #[error(transparent)]
    Signature(#[from] SignatureError),
    /// Refused by our own rules: a destination address that is private, a blocked domain.
    #[error("refused: {0}")]
    Refused(String),
    /// A remote server could not be reached or answered with something unusable.
    #[error("fetch failed: {0}")]
    Fetch(String),
    /// A remote server did not answer in time.
    #[error("timed out: {0}")]
    Timeout(String),
    /// One of our own keys could not be made, read or used.
    #[error("key error: {0}")]
    Key(String),
    /// The instance's storage behind a [`crate::directory`] trait failed.
    #[error("directory error: {0}")]
    Directory(String),
}

impl Error {
    /// The HTTP status an inbound request that failed with this error should get.
    pub fn status(&self) -> u16 {
        match self {
            Self::BadAddress(_)
            | Self::BadDomain(_)
            | Self::TooDeep { .. }
            | Self::TooManyItems { .. }
            | Self::BadJson(_)
            | Self::UnsupportedActivity(_)
            | Self::BadUrl(_)
            | Self::BadDocument(_) => 400,
            Self::TooLarge { .. } => 413,
            Self::Signature(e) => e.status(),
            Self::Refused(_) => 403,
            Self::Fetch(_) => 502,
            Self::Timeout(_) => 504,
            Self::Key(_) | Self::Directory(_) => 500,
        }
    }
}

/// Why an inbound HTTP signature was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// No `Signature` (or `Authorization: Signature`) header.
    #[error("request is not signed")]
    Missing,
    /// Signed with RFC 9421 (`Signature-Input`) only. We speak draft-cavage; the 401 makes
    /// senders that know both (Mastodon 4.5) fall back to it.
    #[error("RFC 9421 signatures are not supported; sign with draft-cavage HTTP signatures")]
    Rfc9421Only,
    /// The signature header does not parse, or a value in it is unusable.
    #[error("malformed signature header: {0}")]
    Malformed(String),
    /// An `algorithm` other than `rsa-sha256` or `hs2019`.
    #[error("unsupported signature algorithm: {0}")]
    UnsupportedAlgorithm(String),
    /// A header we require to be covered by the signature is not in its `headers` list.
    #[error("the signature does not cover {0}")]
    HeaderNotSigned(String),
    /// The request's `Host` is another server: it was signed for someone else.
    #[error("request addressed to {0}, not to us")]
    WrongHost(String),
    /// The signature covers a header that the request does not have.
    #[error("signed header {0} is absent from the request")]
    SignedHeaderAbsent(String),
    /// `Date` is not an HTTP date.
    #[error("unreadable Date header")]
    BadDate,
    /// `Date` is older than the window we accept.
    #[error("signature expired")]
    Expired,
    /// `Date` is further in the future than clock skew explains.
    #[error("signature dated in the future")]
    FromTheFuture,
    /// No `Digest` header on a request with a body, or no SHA-256 entry in it.
    #[error("no SHA-256 Digest header")]
    DigestMissing,
    /// The `Digest` header does not match the body.
    #[error("Digest does not match the body")]
    DigestMismatch,
    /// The key we were given is not the key the signature names, or its owner is on another
    /// host than the key id.
    #[error("the public key does not belong to the key id")]
    KeyMismatch,
    /// The signature does not verify with the key.
    #[error("bad signature")]
    BadSignature,
    /// This exact signature has been seen before.
    #[error("replayed request")]
    Replayed,
    /// The signer is authenticated but on another host than the actor it speaks for.
    #[error("key on {key_host} may not speak for an actor on {actor_host}")]
    ActorHostMismatch {
        key_host: String,
        actor_host: String,
    },
}

impl SignatureError {
    /// 403 when the signer is known but speaks for someone else, 401 otherwise.
    pub fn status(&self) -> u16 {
        match self {
            Self::ActorHostMismatch { .. } => 403,
            _ => 401,
        }
    }
}

/// Keeps at most 100 characters of remote input for an error message.
pub(crate) fn excerpt(input: impl fmt::Display) -> String {
    input.to_string().chars().take(100).collect()
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_follow_the_table() {
        assert_eq!(Error::BadJson("x".into()).status(), 400);
        assert_eq!(Error::TooLarge { limit: 1 }.status(), 413);
        assert_eq!(Error::from(SignatureError::Rfc9421Only).status(), 401);
        assert_eq!(Error::from(SignatureError::DigestMismatch).status(), 401);
        assert_eq!(
            Error::from(SignatureError::ActorHostMismatch {
                key_host: "a".into(),
                actor_host: "b".into()
            })
            .status(),
            403
        );
        assert_eq!(Error::Refused("blocked".into()).status(), 403);
    }

    #[test]
    fn excerpts_are_short() {
        assert_eq!(excerpt("x".repeat(500)).len(), 100);
    }
}
