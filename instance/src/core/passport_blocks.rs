//! Passports of other instances that this instance's operators block, one by one, where
//! blocking their whole instance would be too much.
//!
//! A blocked Passport gets no ticket ([`super::admission::grant`]), cannot spend one it
//! already holds ([`super::admission::redeem`]), and its `Join`s are rejected; blocking it
//! ends what it holds here at once: memberships, requests to join, visitor sessions, unspent
//! tickets and its media in every Room. The block is kept by address, so a Passport can be
//! blocked before it ever comes.

use convene_federation::Address;
use sqlx::Row;

use super::Core;
use crate::db::Db;
use crate::error::{AppError, Result};

/// What blocking a Passport did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BlockedPassport {
    /// `@name@domain`.
    pub address: String,
    /// Memberships of Spaces here it held, now ended.
    pub memberships_removed: u64,
    /// Whether it was in a Room (its media ended).
    pub media_ended: usize,
}

/// Reads an address to block, refusing this instance's own Passports (their operators have
/// other means).
fn remote_address(core: &Core, input: &str) -> Result<Address> {
    let address = Address::parse(input).map_err(|_| AppError::Conflict {
        field: "address",
        message: "Write the Passport's address like @ada@example.org.".into(),
    })?;
    if address.is_local_to(&core.settings.domain()) {
        return Err(AppError::Conflict {
            field: "address",
            message: "That is a Passport of this instance; only Passports of other instances are blocked here.".into(),
        });
    }
    Ok(address)
}

/// Whether the Passport `handle@domain` (of another instance) is blocked here.
pub async fn is_blocked(db: &Db, handle: &str, domain: &str) -> Result<bool> {
    if domain.is_empty() {
        return Ok(false);
    }
    let row = sqlx::query("SELECT 1 AS n FROM blocked_passports WHERE handle = $1 AND domain = $2")
        .bind(handle.to_ascii_lowercase())
        .bind(domain.to_ascii_lowercase())
        .fetch_optional(&db.pool)
        .await?;
    Ok(row.is_some())
}

/// Blocks the Passport at `input` (`@ada@elsewhere`) and ends what it holds here.
pub async fn block(core: &Core, input: &str) -> Result<BlockedPassport> {
    let address = remote_address(core, input)?;
    let mut tx = core.db.begin_write().await?;
    sqlx::query(
        "INSERT INTO blocked_passports (handle, domain, created_at) VALUES ($1, $2, $3) \
         ON CONFLICT (handle, domain) DO NOTHING",
    )
    .bind(address.name())
    .bind(address.domain())
    .bind(core.db.now())
    .execute(&mut *tx)
    .await?;
    let passports: Vec<i64> =
        sqlx::query("SELECT id FROM passports WHERE lower(handle) = $1 AND domain = $2")
            .bind(address.name())
            .bind(address.domain())
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|row| row.try_get("id"))
            .collect::<std::result::Result<_, _>>()?;
    let memberships_removed = super::partners::drop_holdings(&mut tx, &passports).await?;
    tx.commit().await?;
    core.changed();
    let media_ended = super::partners::end_media(core, &passports);
    tracing::info!(%address, memberships_removed, media_ended, "Passport blocked");
    Ok(BlockedPassport {
        address: address.to_string(),
        memberships_removed,
        media_ended,
    })
}

/// Lifts the block on `input`; false if it was not blocked.
pub async fn unblock(core: &Core, input: &str) -> Result<bool> {
    let address = remote_address(core, input)?;
    let removed = sqlx::query("DELETE FROM blocked_passports WHERE handle = $1 AND domain = $2")
        .bind(address.name())
        .bind(address.domain())
        .execute(&core.db.pool)
        .await?
        .rows_affected();
    Ok(removed > 0)
}

/// The blocked addresses, oldest first.
pub async fn list(db: &Db) -> Result<Vec<String>> {
    sqlx::query("SELECT handle, domain FROM blocked_passports ORDER BY created_at, handle")
        .fetch_all(&db.pool)
        .await?
        .iter()
        .map(|row| {
            Ok(format!(
                "@{}@{}",
                row.try_get::<String, _>("handle")?,
                row.try_get::<String, _>("domain")?
            ))
        })
        .collect()
}
