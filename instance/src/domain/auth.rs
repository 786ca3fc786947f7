//! Sign-in by email code, server-side sessions and personal access tokens.
//!
//! Codes are six digits, valid for [`CODE_TTL`] seconds, single use, and die after
//! [`CODE_ATTEMPTS`] wrong tries; an address gets at most [`CODES_PER_HOUR`] codes an hour.
//! Only SHA-256 hashes of codes, session cookies and API tokens are stored.

use rand::Rng;
use serde::Serialize;
use sqlx::Row;

use super::passports::{self, NewPassport, Passport, passport_columns};
use super::values::{DisplayName, Email, Handle};
use super::{AppError, Result, random_token, sha256_hex};
use crate::db::Db;

pub const CODE_TTL: i64 = 15 * 60;
pub const CODE_ATTEMPTS: i64 = 5;
pub const CODES_PER_HOUR: i64 = 5;
pub const SESSION_TTL: i64 = 30 * 24 * 3600;
pub const GUEST_SESSION_TTL: i64 = 24 * 3600;

/// What a verified code was for.
#[derive(Debug, Clone)]
pub enum CodePurpose {
    SignIn,
    SignUp {
        handle: Handle,
        display_name: DisplayName,
    },
}

/// Creates a code for `email` and returns it (to be emailed), enforcing the hourly limit.
pub async fn issue_code(db: &Db, email: &Email, purpose: &CodePurpose) -> Result<String> {
    let t = db.now();
    let recent: i64 =
        sqlx::query("SELECT COUNT(*) AS n FROM login_codes WHERE email = $1 AND created_at > $2")
            .bind(email.as_str())
            .bind(t - 3600)
            .fetch_one(&db.pool)
            .await?
            .try_get("n")?;
    if recent >= CODES_PER_HOUR {
        return Err(AppError::RateLimited { retry_after: 3600 });
    }
    let code = format!("{:06}", rand::rngs::OsRng.gen_range(0..1_000_000u32));
    let (kind, handle, name) = match purpose {
        CodePurpose::SignIn => ("signin", None, None),
        CodePurpose::SignUp {
            handle,
            display_name,
        } => (
            "signup",
            Some(handle.as_str().to_string()),
            Some(display_name.as_str().to_string()),
        ),
    };
    sqlx::query(
        "INSERT INTO login_codes (email, code_hash, purpose, handle, display_name, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(email.as_str())
    .bind(sha256_hex(&format!("{}:{code}", email.as_str())))
    .bind(kind)
    .bind(handle)
    .bind(name)
    .bind(t)
    .bind(t + CODE_TTL)
    .execute(&db.pool)
    .await?;
    Ok(code)
}

/// Checks a code typed for `email`. On success the code is spent and the Passport returned
/// (created first, for a sign-up).
pub async fn redeem_code(db: &Db, email: &Email, code: &str) -> Result<Passport> {
    let code = code.trim().replace([' ', '-'], "");
    if code.len() != 6 || !code.chars().all(|c| c.is_ascii_digit()) {
        return Err(AppError::invalid(
            "code",
            "Enter the 6-digit code from the email.",
        ));
    }
    let t = db.now();
    // Only the newest live code counts: asking for a new code retires the older ones.
    let row = sqlx::query(
        "SELECT id, code_hash, purpose, handle, display_name, attempts, expires_at, used_at \
         FROM login_codes WHERE email = $1 ORDER BY id DESC LIMIT 1",
    )
    .bind(email.as_str())
    .fetch_optional(&db.pool)
    .await?;
    let Some(row) = row else {
        return Err(AppError::invalid(
            "code",
            "There is no code for this address. Ask for a new one.",
        ));
    };
    let id: i64 = row.try_get("id")?;
    if row.try_get::<Option<i64>, _>("used_at")?.is_some() {
        return Err(AppError::invalid(
            "code",
            "That code has been used already. Ask for a new one.",
        ));
    }
    if row.try_get::<i64, _>("expires_at")? < t {
        return Err(AppError::invalid(
            "code",
            "That code has expired. Ask for a new one.",
        ));
    }
    if row.try_get::<i64, _>("attempts")? >= CODE_ATTEMPTS {
        return Err(AppError::invalid(
            "code",
            "Too many wrong tries for this code. Ask for a new one.",
        ));
    }
    let expected: String = row.try_get("code_hash")?;
    if sha256_hex(&format!("{}:{code}", email.as_str())) != expected {
        sqlx::query("UPDATE login_codes SET attempts = attempts + 1 WHERE id = $1")
            .bind(id)
            .execute(&db.pool)
            .await?;
        return Err(AppError::invalid(
            "code",
            "That code is not right. Check the email and try again.",
        ));
    }
    // Spend the code atomically so that two racing requests cannot both use it.
    let spent =
        sqlx::query("UPDATE login_codes SET used_at = $1 WHERE id = $2 AND used_at IS NULL")
            .bind(t)
            .bind(id)
            .execute(&db.pool)
            .await?;
    if spent.rows_affected() != 1 {
        return Err(AppError::invalid(
            "code",
            "That code has been used already. Ask for a new one.",
        ));
    }
    let purpose: String = row.try_get("purpose")?;
    if purpose == "signup" {
        let handle: Option<String> = row.try_get("handle")?;
        let name: Option<String> = row.try_get("display_name")?;
        let (Some(handle), Some(name)) = (handle, name) else {
            return Err(AppError::Internal(anyhow::anyhow!(
                "sign-up code {id} without handle or name"
            )));
        };
        if let Some(existing) = passports::by_email(db, email).await? {
            return Ok(existing);
        }
        passports::create(
            db,
            NewPassport {
                email: email.clone(),
                handle: Handle::from_db(handle),
                display_name: DisplayName::from_db(name),
                operator: false,
            },
        )
        .await
    } else {
        passports::by_email(db, email)
            .await?
            .ok_or(AppError::invalid(
                "code",
                "No Passport uses this address. Sign up instead.",
            ))
    }
}

/// A visitor's session: a signed-in Passport, or a guest who unlocked rooms.
#[derive(Debug, Clone)]
pub struct Session {
    pub token_hash: String,
    /// The signed-in Passport of this instance.
    pub passport: Option<Passport>,
    /// A Passport of another instance, admitted by ticket to visit this instance's Rooms. It
    /// may enter Rooms under its address and nothing more: pages treat it as a guest.
    pub visiting: Option<Passport>,
    pub guest_name: Option<String>,
}

/// Starts a session and returns the cookie secret.
pub async fn start_session(db: &Db, passport: Option<&Passport>) -> Result<String> {
    let token = random_token();
    let t = db.now();
    // A visitor from another instance gets a guest's lifetime: its instance admits it anew.
    let ttl = if passport.is_some_and(|p| p.domain.is_empty()) {
        SESSION_TTL
    } else {
        GUEST_SESSION_TTL
    };
    sqlx::query(
        "INSERT INTO sessions (token_hash, passport_id, created_at, expires_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(sha256_hex(&token))
    .bind(passport.map(|p| p.id))
    .bind(t)
    .bind(t + ttl)
    .execute(&db.pool)
    .await?;
    Ok(token)
}

/// Looks up a live session by its cookie secret.
pub async fn session(db: &Db, token: &str) -> Result<Option<Session>> {
    let hash = sha256_hex(token);
    let row = sqlx::query(concat!(
        "SELECT s.passport_id, s.guest_name, ",
        passport_columns!(),
        " FROM sessions s LEFT JOIN passports p ON p.id = s.passport_id \
         WHERE s.token_hash = $1 AND s.expires_at > $2"
    ))
    .bind(&hash)
    .bind(db.now())
    .fetch_optional(&db.pool)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let passport = match row.try_get::<Option<i64>, _>("passport_id")? {
        Some(_) => Some(Passport::from_row(&row)?),
        None => None,
    };
    let (passport, visiting) = match passport {
        Some(p) if !p.domain.is_empty() => (None, Some(p)),
        other => (other, None),
    };
    Ok(Some(Session {
        token_hash: hash,
        passport,
        visiting,
        guest_name: row.try_get("guest_name")?,
    }))
}

pub async fn end_session(db: &Db, token_hash: &str) -> Result<()> {
    sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
        .bind(token_hash)
        .execute(&db.pool)
        .await?;
    Ok(())
}

pub async fn set_guest_name(db: &Db, token_hash: &str, name: &DisplayName) -> Result<()> {
    sqlx::query("UPDATE sessions SET guest_name = $1 WHERE token_hash = $2")
        .bind(name.as_str())
        .bind(token_hash)
        .execute(&db.pool)
        .await?;
    Ok(())
}

/// Removes expired sessions and codes; run now and then by the housekeeping task.
pub async fn sweep(db: &Db) -> Result<()> {
    let t = db.now();
    sqlx::query("DELETE FROM sessions WHERE expires_at < $1")
        .bind(t)
        .execute(&db.pool)
        .await?;
    sqlx::query("DELETE FROM login_codes WHERE expires_at < $1")
        .bind(t - 24 * 3600)
        .execute(&db.pool)
        .await?;
    Ok(())
}

/// A personal access token, as listed (never with its secret).
#[derive(Debug, Clone, Serialize)]
pub struct ApiToken {
    pub id: i64,
    pub name: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

/// Creates a token and returns it with its secret, which is shown once.
pub async fn create_api_token(
    db: &Db,
    passport: &Passport,
    name: &str,
) -> Result<(ApiToken, String)> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 60 {
        return Err(AppError::invalid(
            "name",
            "Give the token a name of 1 to 60 characters.",
        ));
    }
    let secret = format!("cvn_{}", random_token());
    let t = db.now();
    let id: i64 = sqlx::query(
        "INSERT INTO api_tokens (passport_id, name, token_hash, created_at) VALUES ($1, $2, $3, $4) RETURNING id",
    )
    .bind(passport.id)
    .bind(name)
    .bind(sha256_hex(&secret))
    .bind(t)
    .fetch_one(&db.pool)
    .await?
    .try_get("id")?;
    Ok((
        ApiToken {
            id,
            name: name.to_string(),
            created_at: t,
            last_used_at: None,
        },
        secret,
    ))
}

pub async fn api_tokens(db: &Db, passport: &Passport) -> Result<Vec<ApiToken>> {
    let rows = sqlx::query(
        "SELECT id, name, created_at, last_used_at FROM api_tokens \
         WHERE passport_id = $1 AND revoked_at IS NULL ORDER BY id",
    )
    .bind(passport.id)
    .fetch_all(&db.pool)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(ApiToken {
                id: row.try_get("id")?,
                name: row.try_get("name")?,
                created_at: row.try_get("created_at")?,
                last_used_at: row.try_get("last_used_at")?,
            })
        })
        .collect()
}

pub async fn revoke_api_token(db: &Db, passport: &Passport, id: i64) -> Result<()> {
    let done = sqlx::query(
        "UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND passport_id = $3 AND revoked_at IS NULL",
    )
    .bind(db.now())
    .bind(id)
    .bind(passport.id)
    .execute(&db.pool)
    .await?;
    if done.rows_affected() == 0 {
        return Err(AppError::NotFound);
    }
    Ok(())
}

/// The Passport behind a bearer token, recording its use.
pub async fn passport_for_api_token(db: &Db, secret: &str) -> Result<Option<Passport>> {
    let hash = sha256_hex(secret);
    let row = sqlx::query(concat!(
        "SELECT t.id AS token_id, ",
        passport_columns!(),
        " FROM api_tokens t JOIN passports p ON p.id = t.passport_id \
         WHERE t.token_hash = $1 AND t.revoked_at IS NULL"
    ))
    .bind(&hash)
    .fetch_optional(&db.pool)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let token_id: i64 = row.try_get("token_id")?;
    sqlx::query("UPDATE api_tokens SET last_used_at = $1 WHERE id = $2")
        .bind(db.now())
        .bind(token_id)
        .execute(&db.pool)
        .await?;
    Ok(Some(Passport::from_row(&row)?))
}
