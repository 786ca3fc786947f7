//! The instance's domain: Passports, sign-in, Spaces, Rooms, memberships and invitations, with
//! the queries that store them.
//!
//! Functions here check the rules (who may do what, what is valid) and return [`AppError`]s
//! that both the HTML pages and the JSON API present; the HTTP layer only translates.

pub mod auth;
pub mod invitations;
pub mod names;
pub mod passports;
pub mod rooms;
pub mod spaces;
pub mod values;

use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};
use sqlx::Row;
use sqlx::any::AnyRow;

pub use crate::error::{AppError, Result};

/// A fresh 256-bit secret, base64url without padding: session cookies, API and invitation
/// tokens. The thread-local generator is a CSPRNG seeded from the operating system, and
/// avoids a system call per token (browser ids are minted on every cookieless request).
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Compares two secrets in time that depends on their length only, not on where they differ.
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// SHA-256 in hex: what the database keeps of a secret, so a leaked copy cannot sign anyone in.
pub fn sha256_hex(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()))
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// Reads a 0/1 flag column.
fn flag(row: &AnyRow, column: &str) -> std::result::Result<bool, sqlx::Error> {
    Ok(row.try_get::<i64, _>(column)? != 0)
}
