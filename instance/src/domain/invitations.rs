//! Email invitations to a Space: valid for [`INVITATION_TTL`], revocable by owners, and
//! accepted only by the Passport that uses the invited address.

use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::passports::Passport;
use super::spaces::{self, Role, Space};
use super::values::Email;
use super::{AppError, Result, random_token, sha256_hex};
use crate::db::Db;

pub const INVITATION_TTL: i64 = 14 * 24 * 3600;

#[derive(Debug, Clone, Serialize)]
pub struct Invitation {
    pub id: i64,
    pub space_id: i64,
    pub email: Email,
    pub role: Role,
    pub invited_by: Option<i64>,
    pub created_at: i64,
    pub expires_at: i64,
    pub state: InvitationState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum InvitationState {
    Pending,
    Accepted,
    Declined,
    Revoked,
    Expired,
}

impl Invitation {
    fn from_row(row: &AnyRow, now: i64) -> std::result::Result<Self, sqlx::Error> {
        let role: String = row.try_get("role")?;
        let expires_at: i64 = row.try_get("expires_at")?;
        let state = if row.try_get::<Option<i64>, _>("accepted_at")?.is_some() {
            InvitationState::Accepted
        } else if row.try_get::<Option<i64>, _>("revoked_at")?.is_some() {
            InvitationState::Revoked
        } else if row.try_get::<Option<i64>, _>("declined_at")?.is_some() {
            InvitationState::Declined
        } else if expires_at < now {
            InvitationState::Expired
        } else {
            InvitationState::Pending
        };
        Ok(Self {
            id: row.try_get("id")?,
            space_id: row.try_get("space_id")?,
            email: Email::from_db(row.try_get("email")?),
            role: if role == "owner" {
                Role::Owner
            } else {
                Role::Member
            },
            invited_by: row.try_get("invited_by")?,
            created_at: row.try_get("created_at")?,
            expires_at,
            state,
        })
    }
}

const COLUMNS: &str = "id, space_id, email, role, invited_by, created_at, expires_at, accepted_at, declined_at, revoked_at";

/// Creates an invitation and returns it with the secret for its link.
pub async fn create(
    tx: &mut crate::jobs::Tx<'_>,
    now: i64,
    space: &Space,
    by: &Passport,
    email: &Email,
    role: Role,
) -> Result<(Invitation, String)> {
    let secret = random_token();
    let t = now;
    // A fresh invitation to the same address replaces the pending one.
    sqlx::query(
        "UPDATE invitations SET revoked_at = $1 WHERE space_id = $2 AND email = $3 \
         AND accepted_at IS NULL AND declined_at IS NULL AND revoked_at IS NULL",
    )
    .bind(t)
    .bind(space.id)
    .bind(email.as_str())
    .execute(&mut **tx)
    .await?;
    let id: i64 = sqlx::query(
        "INSERT INTO invitations (space_id, email, role, token_hash, invited_by, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
    )
    .bind(space.id)
    .bind(email.as_str())
    .bind(role.as_str())
    .bind(sha256_hex(&secret))
    .bind(by.id)
    .bind(t)
    .bind(t + INVITATION_TTL)
    .fetch_one(&mut **tx)
    .await?
    .try_get("id")?;
    Ok((
        Invitation {
            id,
            space_id: space.id,
            email: email.clone(),
            role,
            invited_by: Some(by.id),
            created_at: t,
            expires_at: t + INVITATION_TTL,
            state: InvitationState::Pending,
        },
        secret,
    ))
}

pub async fn by_secret(db: &Db, secret: &str) -> Result<Invitation> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM invitations WHERE token_hash = $1"
    )))
    .bind(sha256_hex(secret))
    .fetch_optional(&db.pool)
    .await?;
    match row {
        Some(row) => Ok(Invitation::from_row(&row, db.now())?),
        None => Err(AppError::NotFound),
    }
}

/// Pending invitations of a Space, for its owners.
pub async fn pending(db: &Db, space: &Space) -> Result<Vec<Invitation>> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM invitations WHERE space_id = $1 AND accepted_at IS NULL \
         AND declined_at IS NULL AND revoked_at IS NULL AND expires_at > $2 ORDER BY id"
    )))
    .bind(space.id)
    .bind(db.now())
    .fetch_all(&db.pool)
    .await?;
    Ok(rows
        .iter()
        .map(|row| Invitation::from_row(row, db.now()))
        .collect::<std::result::Result<_, _>>()?)
}

fn require_pending(invitation: &Invitation) -> Result<()> {
    match invitation.state {
        InvitationState::Pending => Ok(()),
        InvitationState::Accepted => {
            Err(AppError::Gone("This invitation has been accepted already."))
        }
        InvitationState::Declined => Err(AppError::Gone("This invitation was declined.")),
        InvitationState::Revoked => Err(AppError::Gone(
            "This invitation was withdrawn by the Space's owners.",
        )),
        InvitationState::Expired => Err(AppError::Gone(
            "This invitation has expired. Ask for a new one.",
        )),
    }
}

/// Accepts: the Passport must use the invited address; the membership is created.
pub async fn accept(db: &Db, invitation: &Invitation, passport: &Passport) -> Result<Space> {
    require_pending(invitation)?;
    if passport.email.as_ref() != Some(&invitation.email) {
        return Err(AppError::Forbidden(
            "This invitation was sent to another email address. Sign in with the Passport that uses it.",
        ));
    }
    let done = sqlx::query(
        "UPDATE invitations SET accepted_at = $1 WHERE id = $2 AND accepted_at IS NULL \
         AND declined_at IS NULL AND revoked_at IS NULL",
    )
    .bind(db.now())
    .bind(invitation.id)
    .execute(&db.pool)
    .await?;
    if done.rows_affected() != 1 {
        return Err(AppError::Gone("This invitation has been used already."));
    }
    let space = spaces::by_id(db, invitation.space_id).await?;
    spaces::add_member(db, &space, passport, invitation.role).await?;
    Ok(space)
}

pub async fn decline(db: &Db, invitation: &Invitation) -> Result<()> {
    require_pending(invitation)?;
    sqlx::query("UPDATE invitations SET declined_at = $1 WHERE id = $2 AND accepted_at IS NULL")
        .bind(db.now())
        .bind(invitation.id)
        .execute(&db.pool)
        .await?;
    Ok(())
}

pub async fn revoke(db: &Db, space: &Space, id: i64) -> Result<()> {
    let done = sqlx::query(
        "UPDATE invitations SET revoked_at = $1 WHERE id = $2 AND space_id = $3 \
         AND accepted_at IS NULL AND declined_at IS NULL AND revoked_at IS NULL",
    )
    .bind(db.now())
    .bind(id)
    .bind(space.id)
    .execute(&db.pool)
    .await?;
    if done.rows_affected() == 0 {
        return Err(AppError::NotFound);
    }
    Ok(())
}
