//! One namespace for Passports and Spaces: on the fediverse both are `@name@domain`
//! (WebFinger resolves `acct:name@domain` to exactly one actor), so a Space may not take a
//! Passport's handle and a Passport may not take a Space's slug.
//!
//! The checks run inside the transaction that inserts the new row, on the connection of that
//! transaction, after [`claim`]ing the name. On SQLite that transaction holds the write lock
//! from its start, so the check and the insert cannot interleave with another creation; on
//! PostgreSQL, where the two tables have no shared unique key, the claim is a transaction-scoped
//! advisory lock on the name, so a second creation of the same name waits for the first to
//! commit and then sees it. Clashes stored before these checks are found and resolved by
//! [`crate::core::handles`].

use sqlx::AnyConnection;

use super::{AppError, Result};

/// Takes the name for the rest of the caller's transaction (PostgreSQL: an advisory lock on
/// its hash; SQLite: nothing, the write transaction already excludes every other writer).
pub async fn claim(conn: &mut AnyConnection, name: &str) -> Result<()> {
    if conn.backend_name() == "PostgreSQL" {
        sqlx::query("SELECT 1 AS one FROM (SELECT pg_advisory_xact_lock(hashtext($1))) AS claimed")
            .bind(format!("convene-name:{name}"))
            .fetch_one(conn)
            .await?;
    }
    Ok(())
}

/// Whether a local Passport holds `name` as its handle.
pub async fn passport_holds(conn: &mut AnyConnection, name: &str) -> Result<bool> {
    Ok(
        sqlx::query("SELECT 1 AS one FROM passports WHERE handle = $1 AND domain = ''")
            .bind(name)
            .fetch_optional(conn)
            .await?
            .is_some(),
    )
}

/// Whether a local Space holds `name` as its slug.
pub async fn space_holds(conn: &mut AnyConnection, name: &str) -> Result<bool> {
    Ok(
        sqlx::query("SELECT 1 AS one FROM spaces WHERE slug = $1 AND domain = ''")
            .bind(name)
            .fetch_optional(conn)
            .await?
            .is_some(),
    )
}

/// The error for a handle a Space already uses.
pub fn handle_taken_by_space(name: &str) -> AppError {
    AppError::Conflict {
        field: "handle",
        message: format!("@{name} is the address of a Space here; choose another handle."),
    }
}

/// The error for a slug a Passport already uses.
pub fn slug_taken_by_passport(name: &str) -> AppError {
    AppError::Conflict {
        field: "slug",
        message: format!(
            "@{name} is a person's address here, and Spaces share those addresses; choose another."
        ),
    }
}
