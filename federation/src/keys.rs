//! RSA-2048 actor keys: made once per actor, stored by the instance as PEM, used to sign.
//!
//! # The `rsa` timing advisory (RUSTSEC-2023-0071, "Marvin")
//! `rsa` 0.9 (the version `activitypub_federation` 0.7 uses) has a known timing side channel
//! in its private-key operation, with no fix in the 0.9 line. An attacker who can make a server
//! run many private-key operations on inputs of their choice, and time them precisely, can
//! recover a plaintext or forge a signature. How this crate stays out of that situation:
//! - The private key only ever **signs**, and only messages **we** build: the signing string
//!   of our own outbound requests ([`crate::signature::sign_request`]). A remote party cannot
//!   choose what we sign beyond the URL and body of requests we decided to send.
//! - There is **no decryption** anywhere, so there is no decryption oracle to time.
//! - **Signing does not go through `rsa` at all**: the key is handed to `ring`, whose RSA
//!   private-key operation is constant-time assembly and blinded (the same code that signs in
//!   TLS), and about five times faster than `rsa`'s, which matters to every delivery and fetch.
//!   `rsa` only makes new key pairs (which `ring` cannot) and reads and writes PEM.
//! - Remote keys are only used to **verify**, which involves no secret.
//!
//! `rsa` 0.10 fixes the advisory; keys cross as PEM, so moving to it later changes no stored
//! data.

use std::fmt;
use std::sync::Arc;

use rsa::pkcs1::{DecodeRsaPrivateKey, DecodeRsaPublicKey};
use rsa::pkcs8::{
    DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, LineEnding,
};
use rsa::traits::PublicKeyParts;
use rsa::{RsaPrivateKey, RsaPublicKey};

use crate::error::{Error, Result};

/// The size of keys we make.
pub const KEY_BITS: usize = 2048;
/// The smallest remote key we accept; 1024-bit RSA is no longer considered safe.
pub const MIN_REMOTE_KEY_BITS: usize = 2048;

/// One actor's key pair. `Debug` never prints the private key.
#[derive(Clone)]
pub struct ActorKeys {
    private: RsaPrivateKey,
    /// The same key as `ring` signs with it.
    signing: Arc<ring::rsa::KeyPair>,
    public_pem: String,
}

impl ActorKeys {
    /// Makes a new RSA-2048 key pair (slow in unoptimised builds: see the workspace's
    /// `num-bigint-dig` profile override).
    pub fn generate() -> Result<Self> {
        let pair = activitypub_federation::http_signatures::generate_actor_keypair()
            .map_err(|e| Error::Key(e.to_string()))?;
        Self::from_private_pem(&pair.private_key)
    }

    /// Reads a private key stored as PKCS#8 (`BEGIN PRIVATE KEY`) or PKCS#1
    /// (`BEGIN RSA PRIVATE KEY`) PEM.
    pub fn from_private_pem(pem: &str) -> Result<Self> {
        let private = RsaPrivateKey::from_pkcs8_pem(pem)
            .or_else(|_| RsaPrivateKey::from_pkcs1_pem(pem))
            .map_err(|_| Error::Key("stored private key is not an RSA PEM".into()))?;
        let public_pem = RsaPublicKey::from(&private)
            .to_public_key_pem(LineEnding::LF)
            .map_err(|e| Error::Key(e.to_string()))?;
        let pkcs8 = private
            .to_pkcs8_der()
            .map_err(|e| Error::Key(e.to_string()))?;
        let signing = ring::rsa::KeyPair::from_pkcs8(pkcs8.as_bytes())
            .map_err(|e| Error::Key(format!("stored private key cannot sign: {e}")))?;
        Ok(Self {
            private,
            signing: Arc::new(signing),
            public_pem,
        })
    }

    /// The private key as PKCS#8 PEM, for the instance to store. Wiped from memory on drop.
    pub fn private_key_pem(&self) -> Result<rsa::pkcs8::der::zeroize::Zeroizing<String>> {
        self.private
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| Error::Key(e.to_string()))
    }

    /// The public key as SPKI PEM (`BEGIN PUBLIC KEY`), as actor documents publish it.
    pub fn public_key_pem(&self) -> &str {
        &self.public_pem
    }

    /// RSASSA-PKCS1-v1_5 with SHA-256 over `message`, by `ring` (see the module docs).
    pub(crate) fn sign_sha256(&self, message: &[u8]) -> Result<Vec<u8>> {
        let mut signature = vec![0; self.signing.public().modulus_len()];
        self.signing
            .sign(
                &ring::signature::RSA_PKCS1_SHA256,
                &ring::rand::SystemRandom::new(),
                message,
                &mut signature,
            )
            .map_err(|_| Error::Key("signing failed".into()))?;
        Ok(signature)
    }
}

impl fmt::Debug for ActorKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ActorKeys")
            .field("public_pem", &self.public_pem)
            .finish_non_exhaustive()
    }
}

/// Reads a remote actor's public key: SPKI (`BEGIN PUBLIC KEY`, what everyone publishes) or
/// PKCS#1 (`BEGIN RSA PUBLIC KEY`), at least [`MIN_REMOTE_KEY_BITS`] and at most 4096 bits.
pub fn parse_public_key_pem(pem: &str) -> Result<RsaPublicKey> {
    if pem.len() > 16 * 1024 {
        return Err(Error::BadDocument("public key PEM too long".into()));
    }
    let key = RsaPublicKey::from_public_key_pem(pem.trim())
        .or_else(|_| RsaPublicKey::from_pkcs1_pem(pem.trim()))
        .map_err(|_| Error::BadDocument("publicKeyPem is not an RSA public key".into()))?;
    if key.size() * 8 < MIN_REMOTE_KEY_BITS {
        return Err(Error::BadDocument(
            "RSA public key shorter than 2048 bits".into(),
        ));
    }
    Ok(key)
}

/// Whether `signature` is a valid RSASSA-PKCS1-v1_5 SHA-256 signature of `message`.
/// Checks an RSASSA-PKCS1-v1_5 SHA-256 signature of `message` by the key in PKCS#1 DER.
///
/// Verification goes through `ring` (already the TLS provider), whose assembly verifies about
/// ten times faster than the pure-Rust `rsa` crate: inbound activities are mostly this. A
/// public-key operation handles no secret, so the `rsa` timing advisory does not apply here.
pub(crate) fn verify_sha256(pkcs1_der: &[u8], message: &[u8], signature: &[u8]) -> bool {
    ring::signature::UnparsedPublicKey::new(&ring::signature::RSA_PKCS1_2048_8192_SHA256, pkcs1_der)
        .verify(message, signature)
        .is_ok()
}

/// The key as PKCS#1 `RSAPublicKey` DER.
pub(crate) fn pkcs1_der(key: &RsaPublicKey) -> crate::Result<Vec<u8>> {
    use rsa::pkcs1::EncodeRsaPublicKey;
    key.to_pkcs1_der()
        .map(|doc| doc.as_bytes().to_vec())
        .map_err(|e| crate::Error::Key(format!("encoding a public key: {e}")))
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::OnceLock;

    use super::*;

    /// One key pair for all tests in this crate: generation is the slow part.
    pub(crate) fn test_keys() -> &'static ActorKeys {
        static KEYS: OnceLock<ActorKeys> = OnceLock::new();
        KEYS.get_or_init(|| ActorKeys::generate().expect("RSA key generation does not fail"))
    }

    /// A second, unrelated key pair.
    pub(crate) fn other_keys() -> &'static ActorKeys {
        static KEYS: OnceLock<ActorKeys> = OnceLock::new();
        KEYS.get_or_init(|| ActorKeys::generate().expect("RSA key generation does not fail"))
    }

    #[test]
    fn keys_round_trip_through_pem() -> Result<()> {
        let keys = test_keys();
        let pem = keys.private_key_pem()?;
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        let again = ActorKeys::from_private_pem(&pem)?;
        assert_eq!(again.public_key_pem(), keys.public_key_pem());
        assert!(
            keys.public_key_pem()
                .starts_with("-----BEGIN PUBLIC KEY-----")
        );
        let public = parse_public_key_pem(keys.public_key_pem())?;
        assert_eq!(public.size() * 8, KEY_BITS);

        let signature = keys.sign_sha256(b"hello")?;
        let public = pkcs1_der(&public)?;
        assert!(verify_sha256(&public, b"hello", &signature));
        assert!(!verify_sha256(&public, b"hellO", &signature));
        let other = pkcs1_der(&parse_public_key_pem(other_keys().public_key_pem())?)?;
        assert!(!verify_sha256(&other, b"hello", &signature));
        Ok(())
    }

    /// RSASSA-PKCS1-v1_5 is deterministic: `ring`'s signature must be the very bytes `rsa`
    /// makes with the same key, for keys stored as PKCS#8 and as PKCS#1 alike.
    #[test]
    fn ring_signs_what_rsa_would() -> Result<()> {
        use rsa::pkcs1::EncodeRsaPrivateKey;
        use sha2::{Digest, Sha256};

        let keys = test_keys();
        let message = b"(request-target): post /inbox\nhost: example.org";
        let expected = keys
            .private
            .sign(rsa::Pkcs1v15Sign::new::<Sha256>(), &Sha256::digest(message))
            .map_err(|e| Error::Key(e.to_string()))?;
        assert_eq!(keys.sign_sha256(message)?, expected);

        let pkcs1 = keys
            .private
            .to_pkcs1_pem(LineEnding::LF)
            .map_err(|e| Error::Key(e.to_string()))?;
        let again = ActorKeys::from_private_pem(&pkcs1)?;
        assert_eq!(again.sign_sha256(message)?, expected);
        Ok(())
    }

    #[test]
    fn debug_hides_the_private_key() -> Result<()> {
        let shown = format!("{:?}", test_keys());
        assert!(!shown.contains("PRIVATE"));
        assert!(shown.contains("PUBLIC KEY"));
        Ok(())
    }

    #[test]
    fn bad_and_short_keys_are_refused() {
        assert!(ActorKeys::from_private_pem("not a key").is_err());
        assert!(
            parse_public_key_pem("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----")
                .is_err()
        );
        let small = RsaPrivateKey::new(&mut rand::thread_rng(), 1024).map(|k| {
            RsaPublicKey::from(&k)
                .to_public_key_pem(LineEnding::LF)
                .unwrap_or_default()
        });
        assert!(matches!(small, Ok(ref pem) if parse_public_key_pem(pem).is_err()));
    }
}
