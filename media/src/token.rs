//! Media tokens: the web layer's proof that a person may enter a Room.
//!
//! The web layer checks a Room's access rules (open, members-only, locked) and
//! then issues a short-lived token with [`TokenKey::issue`]; the browser hands it
//! to the SFU as the first signaling message. The SFU trusts nothing else about
//! who is joining, so everything it needs (room, participant, names, capacity)
//! travels signed inside the token.
//!
//! Format: `base64url(JSON claims) "." base64url(HMAC-SHA256(key, first part))`,
//! unpadded. A compact, self-contained format keeps the SFU free of any database
//! access. Single use is not visible in the token: the [`Sfu`](crate::Sfu)
//! remembers each accepted `nonce` until the token would have expired anyway.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::error::{Error, Result};

type HmacSha256 = Hmac<Sha256>;

/// The longest token accepted; anything longer is refused before decoding.
pub const MAX_TOKEN_LEN: usize = 4096;

/// What a media token asserts. Issued by the web layer, verified by the SFU.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Opaque id of the Room (the instance decides its shape, e.g. `space/room`).
    pub room: String,
    /// Stable id of the person or guest; a second join with the same id replaces the first.
    pub participant: String,
    /// Name shown to the others.
    pub display_name: String,
    /// The person's handle (`@name@host`), absent for guests.
    #[serde(default)]
    pub handle: Option<String>,
    /// How many participants the Room admits; `None` uses `SfuConfig::max_participants_default`.
    #[serde(default)]
    pub capacity: Option<u32>,
    /// Unix seconds after which the token is refused.
    pub expires_at: u64,
    /// Random value making the token single use.
    pub nonce: String,
}

impl Claims {
    /// Claims valid for `ttl_secs` from `now` (unix seconds), with a fresh random nonce.
    pub fn new(
        room: impl Into<String>,
        participant: impl Into<String>,
        display_name: impl Into<String>,
        now: u64,
        ttl_secs: u64,
    ) -> Self {
        let nonce: [u8; 16] = rand::random();
        Self {
            room: room.into(),
            participant: participant.into(),
            display_name: display_name.into(),
            handle: None,
            capacity: None,
            expires_at: now.saturating_add(ttl_secs),
            nonce: URL_SAFE_NO_PAD.encode(nonce),
        }
    }
}

/// The instance's secret for signing media tokens (32 bytes).
#[derive(Clone)]
pub struct TokenKey([u8; 32]);

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey(..)")
    }
}

impl TokenKey {
    /// A fresh random key. Tokens do not survive a restart with a new key, which is
    /// fine: they live about two minutes.
    pub fn generate() -> Self {
        Self(rand::random())
    }

    /// A key from stored bytes (e.g. read from the instance's secrets).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    fn mac(&self) -> HmacSha256 {
        HmacSha256::new_from_slice(&self.0).expect("HMAC-SHA256 accepts keys of any length")
    }

    /// Signs `claims` into a compact token.
    pub fn issue(&self, claims: &Claims) -> String {
        let json = serde_json::to_vec(claims).expect("claims serialize: only strings and integers");
        let payload = URL_SAFE_NO_PAD.encode(json);
        let mut mac = self.mac();
        mac.update(payload.as_bytes());
        let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        format!("{payload}.{signature}")
    }

    /// Checks the signature and expiry of `token` at `now` (unix seconds) and returns its claims.
    ///
    /// Does not check single use; [`Sfu::connect`](crate::Sfu::connect) does.
    pub fn verify(&self, token: &str, now: u64) -> Result<Claims> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(Error::MalformedToken);
        }
        let (payload, signature) = token.split_once('.').ok_or(Error::MalformedToken)?;
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| Error::MalformedToken)?;
        let mut mac = self.mac();
        mac.update(payload.as_bytes());
        // Signature first: nothing of an unsigned payload is even parsed.
        mac.verify_slice(&signature)
            .map_err(|_| Error::ForgedToken)?;
        let json = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| Error::MalformedToken)?;
        let claims: Claims = serde_json::from_slice(&json).map_err(|_| Error::MalformedToken)?;
        if claims.expires_at <= now {
            return Err(Error::ExpiredToken);
        }
        Ok(claims)
    }
}

/// Seconds since the Unix epoch, for callers of [`TokenKey::verify`].
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> Claims {
        let mut c = Claims::new("space/room", "p1", "Ada", 1_000, 120);
        c.handle = Some("@ada@example.org".to_owned());
        c
    }

    #[test]
    fn issued_token_verifies_to_the_same_claims() {
        let key = TokenKey::generate();
        let c = claims();
        let token = key.issue(&c);
        assert_eq!(key.verify(&token, 1_010).expect("valid"), c);
    }

    #[test]
    fn token_signed_by_another_key_is_forged() {
        let token = TokenKey::generate().issue(&claims());
        assert!(matches!(
            TokenKey::generate().verify(&token, 1_010),
            Err(Error::ForgedToken)
        ));
    }

    #[test]
    fn tampered_payload_is_forged() {
        let key = TokenKey::from_bytes([7; 32]);
        let token = key.issue(&claims());
        let (_, sig) = token.split_once('.').expect("two parts");
        let mut other = claims();
        other.room = "space/other".to_owned();
        let other_payload = key.issue(&other);
        let (payload, _) = other_payload.split_once('.').expect("two parts");
        assert!(matches!(
            key.verify(&format!("{payload}.{sig}"), 1_010),
            Err(Error::ForgedToken)
        ));
    }

    #[test]
    fn expired_token_is_refused() {
        let key = TokenKey::generate();
        let token = key.issue(&claims());
        assert!(matches!(
            key.verify(&token, 1_120),
            Err(Error::ExpiredToken)
        ));
        assert!(key.verify(&token, 1_119).is_ok());
    }

    #[test]
    fn malformed_tokens_are_refused() {
        let key = TokenKey::generate();
        for bad in [
            "",
            "abc",
            "a.b.c",
            "!!!.???",
            &"x".repeat(MAX_TOKEN_LEN + 1),
        ] {
            assert!(
                matches!(
                    key.verify(bad, 0),
                    Err(Error::MalformedToken | Error::ForgedToken)
                ),
                "{bad:?} accepted"
            );
        }
        // Correctly signed garbage is malformed, not forged.
        let payload = URL_SAFE_NO_PAD.encode(b"not json");
        let mut mac = key.mac();
        mac.update(payload.as_bytes());
        let sig = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        assert!(matches!(
            key.verify(&format!("{payload}.{sig}"), 0),
            Err(Error::MalformedToken)
        ));
    }
}
