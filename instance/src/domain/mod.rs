//! The instance's domain: Passports, sign-in, Spaces, Rooms, memberships and invitations, with
//! the queries that store them.
//!
//! Functions here check the rules (who may do what, what is valid) and return [`AppError`]s
//! that both the HTML pages and the JSON API present; the HTTP layer only translates.

pub mod auth;
pub mod invitations;
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
/// tokens.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// SHA-256 in hex: what the database keeps of a secret, so a leaked copy cannot sign anyone in.
pub fn sha256_hex(secret: &str) -> String {
    let digest = Sha256::digest(secret.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Reads a 0/1 flag column.
fn flag(row: &AnyRow, column: &str) -> std::result::Result<bool, sqlx::Error> {
    Ok(row.try_get::<i64, _>(column)? != 0)
}
