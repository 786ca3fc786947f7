//! The partner policy: which instances this one federates with (open, allow-list or
//! block-list, see [`convene_federation::policy`]), kept in the database so every process
//! sharing it and `convene admin` agree.
//!
//! The mode is the `federation_policy` row of `instance_settings`; the lists are
//! `federation_partners`. The policy is read per federated request (two small queries), so a
//! change from the command line applies to the serving process at once.
//!
//! Blocking an instance also removes its follows here, and its queued deliveries die when
//! their turn comes ([`crate::activitypub::Deliveries`] checks the policy before each attempt).

use convene_federation::address::normalize_domain;
use convene_federation::{PartnerPolicy, PolicyMode};
use sqlx::Row;

use super::Core;
use crate::db::Db;
use crate::error::{AppError, Result};

const MODE_KEY: &str = "federation_policy";

/// The policy as stored now.
pub async fn policy(db: &Db) -> Result<PartnerPolicy> {
    let mode = sqlx::query("SELECT value FROM instance_settings WHERE key = $1")
        .bind(MODE_KEY)
        .fetch_optional(&db.pool)
        .await?
        .map(|row| row.try_get::<String, _>("value"))
        .transpose()?;
    let mut policy = PartnerPolicy::new(parse_mode(mode.as_deref().unwrap_or("open"))?);
    let rows = sqlx::query("SELECT domain, status FROM federation_partners ORDER BY domain")
        .fetch_all(&db.pool)
        .await?;
    for row in rows {
        let domain: String = row.try_get("domain")?;
        let status: String = row.try_get("status")?;
        // Stored domains were normalized on the way in; one that no longer reads is skipped.
        let added = if status == "blocked" {
            policy.block(&domain)
        } else {
            policy.add_partner(&domain)
        };
        if let Err(err) = added {
            tracing::warn!(%domain, error = %err, "unusable partner domain");
        }
    }
    Ok(policy)
}

/// Reads `open`, `allow-list` or `block-list`.
pub fn parse_mode(mode: &str) -> Result<PolicyMode> {
    match mode.trim() {
        "open" => Ok(PolicyMode::Open),
        "allow-list" | "allowlist" => Ok(PolicyMode::AllowList),
        "block-list" | "blocklist" => Ok(PolicyMode::BlockList),
        _ => Err(AppError::invalid(
            "mode",
            "Choose open, allow-list or block-list.",
        )),
    }
}

pub fn mode_name(mode: PolicyMode) -> &'static str {
    match mode {
        PolicyMode::Open => "open",
        PolicyMode::AllowList => "allow-list",
        PolicyMode::BlockList => "block-list",
    }
}

/// Sets the mode.
pub async fn set_mode(core: &Core, mode: PolicyMode) -> Result<()> {
    sqlx::query(
        "INSERT INTO instance_settings (key, value) VALUES ($1, $2) \
         ON CONFLICT (key) DO UPDATE SET value = $2",
    )
    .bind(MODE_KEY)
    .bind(mode_name(mode))
    .execute(&core.db.pool)
    .await?;
    Ok(())
}

fn domain_arg(domain: &str) -> Result<String> {
    normalize_domain(domain)
        .map_err(|_| AppError::invalid("domain", "Give a host name, like social.example.org."))
}

/// Makes `domain` a partner (lifting any block). Returns the normalized domain.
pub async fn allow(core: &Core, domain: &str) -> Result<String> {
    let domain = domain_arg(domain)?;
    upsert(core, &domain, "partner").await?;
    Ok(domain)
}

/// What blocking did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Blocked {
    pub domain: String,
    /// Follows of local actors by the blocked instance's actors, now removed.
    pub follows_removed: u64,
}

/// Blocks `domain`: its requests get 403, nothing is delivered to it, its follows end.
pub async fn block(core: &Core, domain: &str) -> Result<Blocked> {
    let domain = domain_arg(domain)?;
    let mut tx = core.db.begin_write().await?;
    sqlx::query(
        "INSERT INTO federation_partners (domain, status, created_at) VALUES ($1, 'blocked', $2) \
         ON CONFLICT (domain) DO UPDATE SET status = 'blocked'",
    )
    .bind(&domain)
    .bind(core.db.now())
    .execute(&mut *tx)
    .await?;
    let removed = sqlx::query("DELETE FROM federation_followers WHERE remote_host = $1")
        .bind(&domain)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    // Its people lose what they held here: memberships, requests, visitor sessions, tickets.
    let visitors: Vec<i64> = sqlx::query("SELECT id FROM passports WHERE domain = $1")
        .bind(&domain)
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|row| row.try_get("id"))
        .collect::<std::result::Result<_, _>>()?;
    for passport in &visitors {
        for table in [
            "space_members",
            "join_requests",
            "sessions",
            "admission_tickets",
        ] {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DELETE FROM {table} WHERE passport_id = $1"
            )))
            .bind(passport)
            .execute(&mut *tx)
            .await?;
        }
    }
    tx.commit().await?;
    core.changed();
    // And their media ends at once.
    if let Some(sfu) = &core.sfu {
        let ids: Vec<String> = visitors
            .iter()
            .map(|id| super::gathering::media_participant_id(*id))
            .collect();
        for room in sfu.gatherings() {
            for person in sfu.room_admitted(&room) {
                if ids.contains(&person.id) {
                    sfu.end_participant(&room, &person.id, convene_media::CloseReason::AccessLost);
                }
            }
        }
    }
    Ok(Blocked {
        domain,
        follows_removed: removed,
    })
}

/// Takes `domain` off both lists; false if it was on neither.
pub async fn unblock(core: &Core, domain: &str) -> Result<bool> {
    let domain = domain_arg(domain)?;
    let removed = sqlx::query("DELETE FROM federation_partners WHERE domain = $1")
        .bind(&domain)
        .execute(&core.db.pool)
        .await?
        .rows_affected();
    Ok(removed > 0)
}

async fn upsert(core: &Core, domain: &str, status: &str) -> Result<()> {
    sqlx::query(
        "INSERT INTO federation_partners (domain, status, created_at) VALUES ($1, $2, $3) \
         ON CONFLICT (domain) DO UPDATE SET status = $2",
    )
    .bind(domain)
    .bind(status)
    .bind(core.db.now())
    .execute(&core.db.pool)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_read_back_as_written() {
        for mode in [
            PolicyMode::Open,
            PolicyMode::AllowList,
            PolicyMode::BlockList,
        ] {
            assert_eq!(parse_mode(mode_name(mode)).ok(), Some(mode));
        }
        assert!(parse_mode("closed").is_err());
    }
}
