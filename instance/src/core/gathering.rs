//! Entering a Room's gathering, and staying in it only while allowed.
//!
//! - [`issue_token`]: after the Room's rules and capacity are checked, a media token bound to
//!   the Room and the person, recorded as a grant in `media_grants`.
//! - [`admit`]: the signaling door spends the grant (single use across restarts and processes)
//!   and checks that the person may still enter before the SFU sees the token.
//! - [`reconcile_room`]: everyone inside whose grant no longer holds (the Room became
//!   members-only, its code changed, they were removed from the Space, the Room is gone)
//!   leaves. Use cases call it right after a change; [`spawn_reconciler`] runs it for every
//!   live gathering every few seconds for changes made elsewhere.

use std::time::Duration;

use convene_media::signaling::{ClientMessage, ServerMessage};
use convene_media::{Claims, CloseReason};
use sqlx::Row;

use super::Core;
use crate::db::Db;
use crate::domain::rooms::{self, Access, Entry, Room};
use crate::domain::spaces::Space;
use crate::error::{AppError, Result};
use crate::shutdown;

/// How long a media token is valid.
pub const TOKEN_TTL_SECS: u64 = 120;
/// How often live gatherings are checked against the database.
pub const RECONCILE_EVERY: Duration = Duration::from_secs(2);
/// How long spent grants are kept (they justify the presence of whoever is inside).
const GRANT_RETENTION: i64 = 7 * 24 * 3600;

/// This process as a media node: several `convene serve` processes may share one database,
/// and each gathering lives on exactly one of them.
#[derive(Debug)]
pub struct Node {
    /// Random, new at each start: a restarted process does not inherit a dead one's claims.
    pub id: String,
    /// Where the other processes reach this one.
    pub url: String,
    /// How long a claim lasts unless renewed, in seconds.
    pub lease_seconds: i64,
}

impl Node {
    pub fn new(url: &str, lease_seconds: u64) -> Self {
        Self {
            id: crate::domain::random_token(),
            url: url.trim_end_matches('/').to_string(),
            lease_seconds: i64::try_from(lease_seconds).unwrap_or(30),
        }
    }
}

/// Where a Room's gathering lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Home {
    /// On this process's SFU.
    Here,
    /// On another process, reached at this URL.
    Elsewhere(String),
}

/// Claims the Room's gathering for this process unless another live process holds it.
pub async fn claim(core: &Core, room_id: i64) -> Result<Home> {
    let now = core.db.now();
    let node = &core.node;
    sqlx::query(
        "INSERT INTO gathering_nodes (room_id, node_id, node_url, lease_until) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (room_id) DO UPDATE SET node_id = excluded.node_id, node_url = excluded.node_url, \
         lease_until = excluded.lease_until \
         WHERE gathering_nodes.lease_until < $5 OR gathering_nodes.node_id = excluded.node_id",
    )
    .bind(room_id)
    .bind(&node.id)
    .bind(&node.url)
    .bind(now + node.lease_seconds)
    .bind(now)
    .execute(&core.db.pool)
    .await?;
    let row = sqlx::query("SELECT node_id, node_url FROM gathering_nodes WHERE room_id = $1")
        .bind(room_id)
        .fetch_optional(&core.db.pool)
        .await?;
    Ok(match row {
        Some(row) if row.try_get::<String, _>("node_id")? != node.id => {
            Home::Elsewhere(row.try_get("node_url")?)
        }
        _ => Home::Here,
    })
}

/// Renews this process's claims on the gatherings it has people in.
async fn renew_claims(core: &Core, room_ids: &[i64]) -> Result<()> {
    let now = core.db.now();
    for room_id in room_ids {
        sqlx::query(
            "UPDATE gathering_nodes SET lease_until = $1 WHERE room_id = $2 AND node_id = $3",
        )
        .bind(now + core.node.lease_seconds)
        .bind(room_id)
        .bind(&core.node.id)
        .execute(&core.db.pool)
        .await?;
    }
    Ok(())
}

/// How many gatherings this process holds now, for `/metrics`.
pub async fn claimed_here(core: &Core) -> Result<i64> {
    Ok(sqlx::query(
        "SELECT COUNT(*) AS n FROM gathering_nodes WHERE node_id = $1 AND lease_until >= $2",
    )
    .bind(&core.node.id)
    .bind(core.db.now())
    .fetch_one(&core.db.pool)
    .await?
    .try_get("n")?)
}

/// A live gathering as the operators' page shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldGathering {
    pub space_name: String,
    pub space_slug: String,
    pub room_name: String,
    pub room_slug: String,
    /// The process holding it: its node URL, and whether it is this process.
    pub node_url: String,
    pub here: bool,
    /// People whose media is connected (known only for gatherings held here).
    pub seated: Option<usize>,
    /// When the holder's claim runs out unless renewed.
    pub lease_until: i64,
}

/// Every gathering with a live claim, by node, for the operators' page: several processes
/// sharing the database each hold some.
pub async fn held_gatherings(core: &Core) -> Result<Vec<HeldGathering>> {
    let rows = sqlx::query(
        "SELECT g.room_id, g.node_id, g.node_url, g.lease_until, r.name AS room_name, \
                r.slug AS room_slug, s.name AS space_name, s.slug AS space_slug \
         FROM gathering_nodes g JOIN rooms r ON r.id = g.room_id JOIN spaces s ON s.id = r.space_id \
         WHERE g.lease_until >= $1 ORDER BY g.node_url, s.name, r.name",
    )
    .bind(core.db.now())
    .fetch_all(&core.db.pool)
    .await?;
    rows.into_iter()
        .map(|row| {
            let here = row.try_get::<String, _>("node_id")? == core.node.id;
            let room_id: i64 = row.try_get("room_id")?;
            Ok(HeldGathering {
                space_name: row.try_get("space_name")?,
                space_slug: row.try_get("space_slug")?,
                room_name: row.try_get("room_name")?,
                room_slug: row.try_get("room_slug")?,
                node_url: row.try_get("node_url")?,
                here,
                seated: core
                    .sfu
                    .as_ref()
                    .filter(|_| here)
                    .map(|sfu| sfu.room_presence(&media_room_id_of(room_id))),
                lease_until: row.try_get("lease_until")?,
            })
        })
        .collect()
}

/// The SFU's id for a Room: its database id, so a deleted and re-created Room is another Room.
pub fn media_room_id(room: &Room) -> String {
    media_room_id_of(room.id)
}

fn media_room_id_of(room_id: i64) -> String {
    format!("room-{room_id}")
}

/// The Room's database id from the SFU's id.
fn room_id_from_media(media_id: &str) -> Option<i64> {
    media_id.strip_prefix("room-")?.parse().ok()
}

/// The SFU's id for a Passport.
pub fn media_participant_id(passport_id: i64) -> String {
    format!("p{passport_id}")
}

/// The SFU's id for a guest: their session, so the same browser rejoining replaces itself.
pub fn media_guest_id(session_hash: &str) -> String {
    format!("g{}", session_hash.get(..16).unwrap_or(session_hash))
}

/// Media tokens one client may take for guests in [`GUEST_TOKEN_WINDOW`] seconds: enough for
/// a family behind one address to rejoin a few times, too few to fill Rooms with phantoms.
pub const GUEST_TOKENS_PER_CLIENT: i64 = 30;
pub const GUEST_TOKEN_WINDOW: i64 = 10 * 60;

/// Who a media token is for.
pub struct Entrant<'a> {
    /// `None` for a guest.
    pub passport_id: Option<i64>,
    /// The browser session the token is issued in (guests always have one).
    pub session_hash: Option<&'a str>,
    pub display_name: String,
    /// `@name@domain`, absent for guests.
    pub handle: Option<String>,
    /// Who asks (`ip:ADDRESS`); guests are limited per client.
    pub client_key: &'a str,
}

/// A token and what the client needs with it.
pub struct Issued {
    pub token: String,
    pub participant: String,
}

/// Issues a media token for `room` once the door has let the entrant in (`entry`), if the Room
/// has a seat for them.
pub async fn issue_token(
    core: &Core,
    room: &Room,
    entry: Entry,
    entrant: &Entrant<'_>,
) -> Result<Issued> {
    if entry != Entry::Enter {
        return Err(AppError::Forbidden(
            "This Room is locked: enter its access code first.",
        ));
    }
    let room_id = media_room_id(room);
    let participant = match (entrant.passport_id, entrant.session_hash) {
        (Some(id), _) => media_participant_id(id),
        (None, Some(hash)) => media_guest_id(hash),
        (None, None) => return Err(AppError::Unauthenticated),
    };
    let capacity = u32::try_from(room.capacity).unwrap_or(u32::MAX);
    // The holder's SFU enforces capacity for a gathering held elsewhere (the token carries it).
    let here = claim(core, room.id).await? == Home::Here;
    if let Some(sfu) = core.sfu.as_ref().filter(|_| here) {
        let inside = sfu.room_participants(&room_id);
        let rejoining = inside.iter().any(|p| p.id == participant);
        if !rejoining && inside.len() >= room.capacity as usize {
            return Err(AppError::Conflict {
                field: "room",
                message: format!("The Room is full ({capacity} people). Try again later."),
            });
        }
    }
    let sfu = core
        .sfu
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("this process runs no SFU"))?;
    let now = core.db.now();
    if entrant.passport_id.is_none() {
        let taken: i64 = sqlx::query(
            "SELECT COUNT(*) AS n FROM media_grants \
             WHERE client_key = $1 AND passport_id IS NULL AND issued_at > $2",
        )
        .bind(entrant.client_key)
        .bind(now - GUEST_TOKEN_WINDOW)
        .fetch_one(&core.db.pool)
        .await?
        .try_get("n")?;
        if taken >= GUEST_TOKENS_PER_CLIENT {
            return Err(AppError::RateLimited {
                retry_after: u64::try_from(GUEST_TOKEN_WINDOW).unwrap_or(600),
            });
        }
    }
    let mut claims = Claims::new(
        room_id,
        participant.clone(),
        entrant.display_name.clone(),
        u64::try_from(now).unwrap_or(0),
        TOKEN_TTL_SECS,
    );
    claims.handle = entrant.handle.clone();
    claims.capacity = Some(capacity);
    sqlx::query(
        "INSERT INTO media_grants (nonce, room_id, participant, passport_id, session_hash, issued_at, expires_at, client_key) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&claims.nonce)
    .bind(room.id)
    .bind(&participant)
    .bind(entrant.passport_id)
    .bind(entrant.session_hash)
    .bind(now)
    .bind(i64::try_from(claims.expires_at).unwrap_or(i64::MAX))
    .bind(entrant.client_key)
    .execute(&core.db.pool)
    .await?;
    Ok(Issued {
        token: sfu.token_key().issue(&claims),
        participant,
    })
}

/// Why the door refused a join: sent to the client as the SFU's own refusals are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal(pub &'static str);

impl Refusal {
    /// The `error` signaling frame for the client.
    pub fn to_frame(&self) -> String {
        ServerMessage::Error {
            reason: self.0.to_owned(),
        }
        .to_json()
    }
}

/// Checks the first signaling frame at the door of the Room whose SFU id is `media_room`
/// (`None` when the URL names no Room: refused as the SFU refuses another Room's token).
///
/// Tokens that fail the SFU's own checks (malformed, forged, expired, another Room) are left
/// to the SFU, which refuses them with its reasons. A well-formed token for this Room must
/// match an unspent grant, which is spent here, and the person must still be allowed in.
pub async fn admit(
    core: &Core,
    media_room: Option<&str>,
    first_frame: &str,
) -> Result<(), Refusal> {
    let Some(sfu) = &core.sfu else {
        return Err(Refusal("media is not served here"));
    };
    let token = match ClientMessage::parse(first_frame) {
        Ok(ClientMessage::Join { token }) => token,
        Ok(_) => return Ok(()),
        Err(_) => first_frame.trim().to_owned(),
    };
    let Ok(claims) = sfu
        .token_key()
        .verify(&token, convene_media::token::unix_now())
    else {
        return Ok(());
    };
    let Some(media_room) = media_room else {
        return Err(Refusal("media token is for another room"));
    };
    if claims.room != media_room {
        return Ok(());
    }
    let Some(room_id) = room_id_from_media(media_room) else {
        return Err(Refusal("media token is for another room"));
    };
    let checked = async {
        let spent = sqlx::query(
            "UPDATE media_grants SET used_at = $1 WHERE nonce = $2 AND room_id = $3 AND used_at IS NULL \
             RETURNING passport_id, session_hash",
        )
        .bind(core.db.now())
        .bind(&claims.nonce)
        .bind(room_id)
        .fetch_optional(&core.db.pool)
        .await?;
        let Some(row) = spent else {
            return Ok::<_, AppError>(Some(Refusal("media token was already used")));
        };
        let grant = Grant {
            passport_id: row.try_get("passport_id")?,
            session_hash: row.try_get("session_hash")?,
        };
        let Some(room) = rooms::by_id(&core.db, room_id).await? else {
            return Ok(Some(Refusal("room has ended")));
        };
        if !grant.holds(&core.db, &room).await? {
            return Ok(Some(Refusal("no longer allowed in this room")));
        }
        Ok(None)
    }
    .await;
    match checked {
        Ok(None) => Ok(()),
        Ok(Some(refusal)) => Err(refusal),
        Err(err) => {
            tracing::error!(error = %err, room = media_room, "checking a media grant");
            Err(Refusal(
                "the instance could not check this token; try again",
            ))
        }
    }
}

/// What a spent token said about its holder.
struct Grant {
    passport_id: Option<i64>,
    session_hash: Option<String>,
}

impl Grant {
    /// Whether the holder may still be in `room`, by the same table as the Room's door.
    async fn holds(&self, db: &Db, room: &Room) -> Result<bool> {
        if let Some(passport_id) = self.passport_id {
            // A Passport of another instance, blocked (itself or its instance) since it came
            // in, holds nothing here. The serving process ends such media at once; this also
            // catches blocks made from `convene admin`.
            if let Some(row) = sqlx::query("SELECT handle, domain FROM passports WHERE id = $1")
                .bind(passport_id)
                .fetch_optional(&db.pool)
                .await?
            {
                let handle: String = row.try_get("handle")?;
                let domain: String = row.try_get("domain")?;
                if !domain.is_empty()
                    && (!super::partners::policy(db).await?.allows(&domain)
                        || super::passport_blocks::is_blocked(db, &handle, &domain).await?)
                {
                    return Ok(false);
                }
            }
            let row = sqlx::query(
                "SELECT (SELECT COUNT(*) FROM space_members WHERE space_id = $1 AND passport_id = $2) \
                 + (SELECT COUNT(*) FROM passports WHERE id = $2 AND is_operator = 1) AS n",
            )
            .bind(room.space_id)
            .bind(passport_id)
            .fetch_one(&db.pool)
            .await?;
            if row.try_get::<i64, _>("n")? > 0 {
                return Ok(true);
            }
        }
        Ok(match room.access {
            Access::Open => true,
            Access::Members => false,
            Access::Locked => rooms::is_unlocked(db, room, self.session_hash.as_deref()).await?,
        })
    }
}

/// Ends the media of everyone in the Room's gathering who may no longer be there, for
/// `reason`; ends the gathering if the Room is gone.
pub async fn reconcile_room(core: &Core, room_id: i64, reason: CloseReason) -> Result<()> {
    let Some(sfu) = &core.sfu else {
        return Ok(());
    };
    let media_id = media_room_id_of(room_id);
    let inside = sfu.room_admitted(&media_id);
    if inside.is_empty() {
        return Ok(());
    }
    let Some(room) = rooms::by_id(&core.db, room_id).await? else {
        sfu.end_room(&media_id);
        return Ok(());
    };
    for person in inside {
        let row = sqlx::query(
            "SELECT passport_id, session_hash FROM media_grants \
             WHERE room_id = $1 AND participant = $2 AND used_at IS NOT NULL \
             ORDER BY used_at DESC LIMIT 1",
        )
        .bind(room_id)
        .bind(&person.id)
        .fetch_optional(&core.db.pool)
        .await?;
        let holds = match row {
            Some(row) => {
                Grant {
                    passport_id: row.try_get("passport_id")?,
                    session_hash: row.try_get("session_hash")?,
                }
                .holds(&core.db, &room)
                .await?
            }
            None => false,
        };
        if !holds {
            tracing::info!(room = room_id, participant = %person.id, "access lost; media ends");
            sfu.end_participant(&media_id, &person.id, reason.clone());
        }
    }
    Ok(())
}

/// [`reconcile_room`] for every Room of a Space.
pub async fn reconcile_space(core: &Core, space: &Space, reason: CloseReason) -> Result<()> {
    for room in rooms::visible(&core.db, space, true).await? {
        reconcile_room(core, room.id, reason.clone()).await?;
    }
    Ok(())
}

/// Checks every live gathering every [`RECONCILE_EVERY`], and forgets old grants hourly.
pub fn spawn_reconciler(core: Core, mut shutdown: shutdown::Signal) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut rounds: u64 = 0;
        loop {
            if let Some(sfu) = &core.sfu {
                let present: Vec<i64> = sfu
                    .gatherings()
                    .into_iter()
                    .filter_map(|id| room_id_from_media(&id))
                    .collect();
                if let Err(err) = renew_claims(&core, &present).await {
                    tracing::warn!(error = %err, "renewing gathering claims");
                }
                for room_id in present {
                    if let Err(err) = reconcile_room(&core, room_id, CloseReason::AccessLost).await
                    {
                        tracing::warn!(error = %err, room = room_id, "reconciling a gathering");
                    }
                }
            }
            if rounds.is_multiple_of(1800)
                && let Err(err) = sweep_grants(&core.db).await
            {
                tracing::warn!(error = %err, "housekeeping: media grants");
            }
            rounds += 1;
            tokio::select! {
                () = tokio::time::sleep(RECONCILE_EVERY) => {}
                () = shutdown.wait() => break,
            }
        }
    })
}

/// Forgets unspent expired grants and spent ones older than [`GRANT_RETENTION`].
async fn sweep_grants(db: &Db) -> Result<()> {
    let now = db.now();
    sqlx::query(
        "DELETE FROM media_grants WHERE (used_at IS NULL AND expires_at < $1) OR issued_at < $2",
    )
    .bind(now)
    .bind(now - GRANT_RETENTION)
    .execute(&db.pool)
    .await?;
    Ok(())
}
