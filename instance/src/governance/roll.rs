//! The two constituencies and the Worker roles that make the second one.
//!
//! Residents are this instance's Passport Holders: local Passports with a verified email,
//! created at least `min_account_age_seconds` ago (so nobody can sign up a crowd the day before
//! a vote). Workers are local Passports marked `maintainer` or `contributor`. A person may be on
//! both rolls: they vote in both, but stand in only one at a time (see
//! [`super::elections`]).

use convene_governance::circle::Constituency;
use serde::Serialize;
use sqlx::Row;

use super::Tx;
use crate::db::Db;
use crate::domain::passports::Passport;
use crate::domain::values::Handle;
use crate::error::{AppError, Result};

/// Someone on a roll.
#[derive(Debug, Clone, Serialize)]
pub struct Voter {
    pub passport_id: i64,
    pub handle: String,
    pub display_name: String,
    pub email: String,
}

/// What makes a Passport a Worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkerRole {
    Maintainer,
    Contributor,
}

impl WorkerRole {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Maintainer => "maintainer",
            Self::Contributor => "contributor",
        }
    }

    /// `maintainer`, `contributor`, or `none` / empty for no role.
    pub fn parse_optional(s: &str) -> Result<Option<Self>> {
        match s.trim() {
            "maintainer" => Ok(Some(Self::Maintainer)),
            "contributor" => Ok(Some(Self::Contributor)),
            "" | "none" => Ok(None),
            _ => Err(AppError::invalid(
                "role",
                "Choose maintainer, contributor or no role.",
            )),
        }
    }
}

/// The condition (on `passports p`) for each roll; `$1` is the latest allowed creation time.
fn roll_condition(c: Constituency) -> &'static str {
    match c {
        Constituency::Resident => {
            "p.domain = '' AND p.email IS NOT NULL AND p.email_verified_at IS NOT NULL AND p.created_at <= $1"
        }
        Constituency::Worker => {
            "p.domain = '' AND p.email IS NOT NULL AND p.worker_role IN ('maintainer', 'contributor') AND $1 = $1"
        }
    }
}

async fn min_age(db: &Db) -> Result<i64> {
    Ok(
        sqlx::query("SELECT min_account_age_seconds FROM circle_settings WHERE id = 1")
            .fetch_one(&db.pool)
            .await?
            .try_get("min_account_age_seconds")?,
    )
}

/// Everyone on a constituency's roll now.
pub async fn eligible(db: &Db, c: Constituency) -> Result<Vec<Voter>> {
    let cutoff = db.now() - min_age(db).await?;
    let sql = format!(
        "SELECT p.id, p.handle, p.display_name, p.email FROM passports p WHERE {} ORDER BY p.id",
        roll_condition(c)
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(cutoff)
        .fetch_all(&db.pool)
        .await?;
    rows.iter()
        .map(|r| {
            Ok(Voter {
                passport_id: r.try_get("id")?,
                handle: r.try_get("handle")?,
                display_name: r.try_get("display_name")?,
                email: r.try_get("email")?,
            })
        })
        .collect()
}

/// True if the Passport is on the constituency's roll now.
pub async fn is_eligible(db: &Db, c: Constituency, passport_id: i64) -> Result<bool> {
    let cutoff = db.now() - min_age(db).await?;
    let sql = format!(
        "SELECT COUNT(*) AS n FROM passports p WHERE p.id = $2 AND {}",
        roll_condition(c)
    );
    let n: i64 = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(cutoff)
        .bind(passport_id)
        .fetch_one(&db.pool)
        .await?
        .try_get("n")?;
    Ok(n > 0)
}

/// A change of a Worker role, as the audit log shows it.
#[derive(Debug, Clone, Serialize)]
pub struct RoleChange {
    pub handle: String,
    pub display_name: String,
    pub old_role: Option<String>,
    pub new_role: Option<String>,
    pub changed_by: Option<String>,
    pub reason: String,
    pub at: i64,
}

/// Sets (or clears) a Passport's Worker role and records the change with who made it. The
/// caller has checked that `by` may (an operator or a steward).
pub async fn set_worker_role(
    db: &Db,
    by: &Passport,
    handle: &str,
    role: Option<WorkerRole>,
    reason: &str,
) -> Result<RoleChange> {
    let handle = Handle::parse(handle.trim().trim_start_matches('@'))
        .map_err(|e| AppError::invalid("handle", e.0))?;
    let reason = crate::domain::values::parse_text(reason, 300)
        .map_err(|e| AppError::invalid("reason", e.0))?;
    let mut tx: Tx = db.begin_write().await?;
    let row = sqlx::query(
        "SELECT id, display_name, worker_role FROM passports WHERE handle = $1 AND domain = ''",
    )
    .bind(handle.as_str())
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| AppError::invalid("handle", format!("There is no Passport @{handle} here.")))?;
    let id: i64 = row.try_get("id")?;
    let old: Option<String> = row.try_get("worker_role")?;
    let new = role.map(|r| r.as_str().to_string());
    if old == new {
        return Err(AppError::invalid(
            "role",
            format!("@{handle} already has that role."),
        ));
    }
    sqlx::query("UPDATE passports SET worker_role = $1 WHERE id = $2")
        .bind(new.as_deref())
        .bind(id)
        .execute(&mut *tx)
        .await?;
    let t = db.now();
    sqlx::query(
        "INSERT INTO worker_role_log (passport_id, old_role, new_role, changed_by, reason, at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id)
    .bind(old.as_deref())
    .bind(new.as_deref())
    .bind(by.id)
    .bind(&reason)
    .bind(t)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(RoleChange {
        handle: handle.to_string(),
        display_name: row.try_get("display_name")?,
        old_role: old,
        new_role: new,
        changed_by: Some(by.handle.to_string()),
        reason,
        at: t,
    })
}

/// The audit log of Worker roles, newest first.
pub async fn role_log(db: &Db, limit: i64) -> Result<Vec<RoleChange>> {
    let rows = sqlx::query(
        "SELECT p.handle, p.display_name, l.old_role, l.new_role, b.handle AS by_handle, l.reason, l.at \
         FROM worker_role_log l JOIN passports p ON p.id = l.passport_id \
         LEFT JOIN passports b ON b.id = l.changed_by ORDER BY l.id DESC LIMIT $1",
    )
    .bind(limit)
    .fetch_all(&db.pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(RoleChange {
                handle: r.try_get("handle")?,
                display_name: r.try_get("display_name")?,
                old_role: r.try_get("old_role")?,
                new_role: r.try_get("new_role")?,
                changed_by: r.try_get("by_handle")?,
                reason: r.try_get("reason")?,
                at: r.try_get("at")?,
            })
        })
        .collect()
}

/// Current Workers with their role.
pub async fn workers(db: &Db) -> Result<Vec<(String, String, String)>> {
    let rows = sqlx::query(
        "SELECT handle, display_name, worker_role FROM passports \
         WHERE domain = '' AND worker_role IN ('maintainer', 'contributor') ORDER BY handle",
    )
    .fetch_all(&db.pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get("handle")?,
                r.try_get("display_name")?,
                r.try_get("worker_role")?,
            ))
        })
        .collect()
}
