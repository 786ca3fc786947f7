//! The partner policy: which instances this one federates with (open, allow-list or
//! block-list, see [`convene_federation::policy`]), kept in the database so every process
//! sharing it and `convene admin` agree.
//!
//! The mode is the `federation_policy` row of `instance_settings`; the lists are
//! `federation_partners`. The policy is read per federated request (one small query), so a change
//! from the command line applies to the serving process at once.
//!
//! Blocking an instance also removes its follows here and the follows of its Spaces from
//! here (with the Rooms they announced), and its queued deliveries die when
//! their turn comes ([`crate::activitypub::Deliveries`] checks the policy before each attempt).

use convene_federation::address::normalize_domain;
use convene_federation::fetch::FetchClient;
use convene_federation::nodeinfo::{self, NodeInfo};
use convene_federation::text::plain_text;
use convene_federation::{PartnerPolicy, PolicyMode};
use sqlx::Row;

use super::Core;
use crate::db::Db;
use crate::error::{AppError, Result};

const MODE_KEY: &str = "federation_policy";

/// The policy as stored now, in one query: the mode's row (with an empty domain, which no
/// partner has) and the lists'.
pub async fn policy(db: &Db) -> Result<PartnerPolicy> {
    let rows = sqlx::query(
        "SELECT '' AS domain, value AS status FROM instance_settings WHERE key = $1 \
         UNION ALL SELECT domain, status FROM federation_partners",
    )
    .bind(MODE_KEY)
    .fetch_all(&db.pool)
    .await?;
    let mut mode = None;
    let mut listed = Vec::with_capacity(rows.len());
    for row in rows {
        let domain: String = row.try_get("domain")?;
        let status: String = row.try_get("status")?;
        if domain.is_empty() {
            mode = Some(status);
        } else {
            listed.push((domain, status));
        }
    }
    let mut policy = PartnerPolicy::new(parse_mode(mode.as_deref().unwrap_or("open"))?);
    for (domain, status) in listed {
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
    /// Its Spaces that Passports here followed, now forgotten with their Rooms.
    pub spaces_forgotten: u64,
    /// Memberships of Spaces here held by its people, now ended.
    pub memberships_removed: u64,
}

/// Blocks `domain`: its requests get 403, nothing is delivered to it, its follows and its
/// people's memberships here end, and so do follows of its Spaces from here.
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
    // Its Spaces that people here followed go too, with their Rooms (no Undo: nothing is
    // sent to a blocked instance).
    let spaces_forgotten = super::network::forget_host(&mut tx, &domain).await?;
    // Its people lose what they held here: memberships of Spaces, join requests, visitor
    // sessions and tickets; their media ends below.
    let visitors: Vec<i64> = sqlx::query("SELECT id FROM passports WHERE domain = $1")
        .bind(&domain)
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|row| row.try_get("id"))
        .collect::<std::result::Result<_, _>>()?;
    let memberships_removed = drop_holdings(&mut tx, &visitors).await?;
    tx.commit().await?;
    core.changed();
    end_media(core, &visitors);
    Ok(Blocked {
        domain,
        follows_removed: removed,
        spaces_forgotten,
        memberships_removed,
    })
}

/// Ends what the Passports `passports` (of other instances) hold here: memberships of Spaces,
/// requests to join, visitor sessions and unspent tickets. Returns the memberships ended.
pub(crate) async fn drop_holdings(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    passports: &[i64],
) -> Result<u64> {
    let mut memberships_removed = 0;
    for passport in passports {
        for table in [
            "space_members",
            "join_requests",
            "sessions",
            "admission_tickets",
        ] {
            let removed = sqlx::query(sqlx::AssertSqlSafe(format!(
                "DELETE FROM {table} WHERE passport_id = $1"
            )))
            .bind(passport)
            .execute(&mut **tx)
            .await?
            .rows_affected();
            if table == "space_members" {
                memberships_removed += removed;
            }
        }
    }
    Ok(memberships_removed)
}

/// Ends the media of `passports` in every gathering this process holds, at once; returns how
/// many connections ended.
pub(crate) fn end_media(core: &Core, passports: &[i64]) -> usize {
    let Some(sfu) = &core.sfu else {
        return 0;
    };
    let ids: Vec<String> = passports
        .iter()
        .map(|id| super::gathering::media_participant_id(*id))
        .collect();
    let mut ended = 0;
    for room in sfu.gatherings() {
        for person in sfu.room_admitted(&room) {
            if ids.contains(&person.id) {
                sfu.end_participant(&room, &person.id, convene_media::CloseReason::AccessLost);
                ended += 1;
            }
        }
    }
    ended
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

/// A partner or blocked instance, with what its NodeInfo said when last checked.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Partner {
    pub domain: String,
    /// `partner` or `blocked`.
    pub status: String,
    pub software: Option<String>,
    pub version: Option<String>,
    /// `None` until checked.
    pub reachable: Option<bool>,
    pub check_note: Option<String>,
    pub checked_at: Option<i64>,
    /// For a Convene partner, its listed Spaces at the last check.
    pub public_spaces: Vec<PublicSpace>,
}

/// A listed Space of a partner, for the Network page's directory.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PublicSpace {
    pub name: String,
    /// Its page (and actor), on the partner's host.
    pub url: String,
}

/// The most Spaces of one partner the directory keeps.
const PUBLIC_SPACES_KEPT: usize = 50;

/// Every instance on either list, by domain.
pub async fn list(db: &Db) -> Result<Vec<Partner>> {
    let rows = sqlx::query(
        "SELECT domain, status, software, version, reachable, check_note, checked_at, \
         public_spaces FROM federation_partners ORDER BY domain",
    )
    .fetch_all(&db.pool)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(Partner {
                domain: row.try_get("domain")?,
                status: row.try_get("status")?,
                software: row.try_get("software")?,
                version: row.try_get("version")?,
                reachable: row.try_get::<Option<i64>, _>("reachable")?.map(|r| r != 0),
                check_note: row.try_get("check_note")?,
                checked_at: row.try_get("checked_at")?,
                // Written by `check` only; anything unreadable reads as none.
                public_spaces: row
                    .try_get::<Option<String>, _>("public_spaces")?
                    .and_then(|json| serde_json::from_str(&json).ok())
                    .unwrap_or_default(),
            })
        })
        .collect()
}

/// Reads `domain`'s NodeInfo (`/.well-known/nodeinfo`, then the 2.x document it names) and
/// records its software, version and whether it answered. A failure is recorded, not returned:
/// an unreachable partner is still a partner.
pub async fn check(core: &Core, client: &FetchClient, domain: &str) -> Result<Partner> {
    let domain = domain_arg(domain)?;
    if !list(&core.db).await?.iter().any(|p| p.domain == domain) {
        return Err(AppError::invalid(
            "domain",
            "That instance is on neither list: add it as a partner or block it first.",
        ));
    }
    let scheme = core.settings.public_url.scheme();
    let found = async {
        let links_url =
            url::Url::parse(&format!("{scheme}://{domain}{}", nodeinfo::WELL_KNOWN_PATH))
                .map_err(|_| convene_federation::Error::BadDomain(domain.clone()))?;
        let links = client.get(&links_url, "application/json", None).await?;
        if !links.status.is_success() {
            return Err(convene_federation::Error::Fetch(format!(
                "{} answered {}",
                nodeinfo::WELL_KNOWN_PATH,
                links.status.as_u16()
            )));
        }
        let document = nodeinfo::Links::parse_best(&links.body)?;
        let info = client.get(document.url(), "application/json", None).await?;
        if !info.status.is_success() {
            return Err(convene_federation::Error::Fetch(format!(
                "NodeInfo answered {}",
                info.status.as_u16()
            )));
        }
        NodeInfo::parse(&info.body)
    }
    .await;
    let (software, version, reachable, note) = match found {
        Ok(info) => (
            Some(plain_text(&info.software.name, 64)),
            Some(plain_text(&info.software.version, 64)),
            true,
            None,
        ),
        Err(err) => {
            tracing::info!(%domain, error = %err, "partner NodeInfo");
            (None, None, false, Some(plain_text(&err.to_string(), 200)))
        }
    };
    // Another Convene lists its public Spaces at its API's directory: one cheap GET. When the
    // partner does not answer, the Spaces last seen are kept.
    let public_spaces = if software.as_deref() == Some("convene") {
        public_spaces_of(client, scheme, &domain).await
    } else {
        None
    };
    sqlx::query(
        "UPDATE federation_partners SET software = COALESCE($1, software), \
         version = COALESCE($2, version), reachable = $3, check_note = $4, checked_at = $5, \
         public_spaces = CASE WHEN $3 = 1 THEN $7 ELSE public_spaces END WHERE domain = $6",
    )
    .bind(software)
    .bind(version)
    .bind(i64::from(reachable))
    .bind(note)
    .bind(core.db.now())
    .bind(&domain)
    .bind(public_spaces.and_then(|spaces| serde_json::to_string(&spaces).ok()))
    .execute(&core.db.pool)
    .await?;
    list(&core.db)
        .await?
        .into_iter()
        .find(|p| p.domain == domain)
        .ok_or(AppError::NotFound)
}

/// A Convene partner's listed Spaces (`GET /api/v1/spaces`, unauthenticated): names as plain
/// text, only pages on the partner's own host, at most [`PUBLIC_SPACES_KEPT`].
async fn public_spaces_of(
    client: &FetchClient,
    scheme: &str,
    domain: &str,
) -> Option<Vec<PublicSpace>> {
    #[derive(serde::Deserialize)]
    struct Listing {
        spaces: Vec<Listed>,
    }
    #[derive(serde::Deserialize)]
    struct Listed {
        name: String,
        url: String,
    }
    let url = url::Url::parse(&format!("{scheme}://{domain}/api/v1/spaces")).ok()?;
    let response = match client.get(&url, "application/json", None).await {
        Ok(response) => response,
        Err(err) => {
            tracing::info!(%domain, error = %err, "partner's Spaces");
            return None;
        }
    };
    let listing: Listing = response.json().ok()?;
    Some(
        listing
            .spaces
            .into_iter()
            .filter_map(|space| {
                let page = convene_federation::protocol::Id::parse(&space.url).ok()?;
                (convene_federation::urls::authority(&page).as_deref() == Some(domain)).then(|| {
                    PublicSpace {
                        name: plain_text(&space.name, 200),
                        url: page.to_string(),
                    }
                })
            })
            .take(PUBLIC_SPACES_KEPT)
            .collect(),
    )
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
