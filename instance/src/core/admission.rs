//! Entering a Room on another instance with one's Passport (issue 9): both halves of admission.
//!
//! On the Passport's home instance A, [`preview`] reads a Room elsewhere from its actor (what
//! it is, who is inside) and [`visit`] asks the Room's instance B for a ticket, signed by A's
//! instance actor. On B, [`grant`] checks the request against the partner policy and the
//! Room's rules and capacity and stores a single-use ticket; [`redeem`] spends it for a visitor
//! session. Tickets are never inside activities (those are queued and retried for hours); the
//! browser carries one straight to B, which drops it from the URL at once.
//!
//! A visitor session names a Passport of another instance: it enters Rooms under its address
//! (`@ada@home`) and, everywhere else, is a guest (see [`crate::domain::auth::Session`]).

use std::time::Duration;

use convene_federation::admission::{
    self, TICKET_TTL, TicketGrant, TicketRequest, check_ticket_request, new_ticket, ticket_digest,
};
use convene_federation::directory::Directory;
use convene_federation::fetch::{FetchClient, Signer};
use convene_federation::protocol::Id;
use convene_federation::protocol::actor::{AccessMode, Actor, ActorKind};
use convene_federation::receive::FetchKeySource;
use convene_federation::signature::VerifiedRequest;
use convene_federation::text::plain_text;
use convene_federation::urls::authority;
use convene_federation::{Address, webfinger};
use sqlx::Row;

use super::Core;
use crate::activitypub::{
    ActorPath, INSTANCE_ACTOR_PATH, LocalDirectory, person_path, system_time,
};
use crate::domain::auth;
use crate::domain::passports::{self, Passport};
use crate::domain::rooms::{self, Access, Room};
use crate::domain::spaces::{self, Space};
use crate::error::{AppError, Result};

/// The longest name kept for a visiting Passport.
const NAME_CHARS: usize = 80;

/// A Room on another instance, as its actor describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteRoom {
    pub id: Id,
    pub name: String,
    /// The Room's Space, by name when its actor could be read.
    pub space: Option<String>,
    pub host: String,
    pub access: AccessMode,
    pub capacity: u32,
    pub head_count: u32,
    /// Where Joins to it go.
    pub inbox: Id,
}

/// How long a Room elsewhere's head count is shown before its actor is read again.
pub const HEAD_COUNT_TTL_SECS: i64 = 15;
/// The longest a page waits for the head counts of Rooms elsewhere; slower instances show as
/// unknown for now, never a hanging page.
const HEAD_COUNT_WAIT: Duration = Duration::from_secs(3);

/// Who is inside a Room elsewhere, as its actor said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeadCount {
    pub inside: u32,
    pub capacity: u32,
}

/// Head counts of Rooms on other instances, each kept [`HEAD_COUNT_TTL_SECS`] (by the
/// instance's clock) so that a page listing them does not fetch every actor on every view.
/// A Room that could not be read is remembered as unknown for the same time.
#[derive(Debug, Default)]
pub struct HeadCounts {
    known: std::sync::Mutex<std::collections::HashMap<String, (i64, Option<HeadCount>)>>,
}

/// The most Rooms whose counts are kept; beyond it the oldest half is forgotten.
const HEAD_COUNTS_KEPT: usize = 4096;

impl HeadCounts {
    fn fresh(&self, room: &str, now: i64) -> Option<Option<HeadCount>> {
        let known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        known
            .get(room)
            .filter(|(at, _)| now - at < HEAD_COUNT_TTL_SECS)
            .map(|(_, count)| *count)
    }

    fn keep(&self, room: &str, now: i64, count: Option<HeadCount>) {
        let mut known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        if known.len() >= HEAD_COUNTS_KEPT {
            let mut ages: Vec<i64> = known.values().map(|(at, _)| *at).collect();
            ages.sort_unstable();
            let cut = ages[ages.len() / 2];
            known.retain(|_, (at, _)| *at > cut);
        }
        known.insert(room.to_owned(), (now, count));
    }
}

/// The live head counts of `rooms` (Room actor URLs on other instances), in order: read from
/// their actors concurrently, with what was read in the last [`HEAD_COUNT_TTL_SECS`] reused.
/// `None` for a Room that could not be read in time (unreachable, gone, or no longer a Room).
pub async fn head_counts(
    core: &Core,
    client: &FetchClient,
    counts: &HeadCounts,
    rooms: &[String],
) -> Vec<Option<HeadCount>> {
    let now = core.db.now();
    let reads = rooms.iter().map(|room| async move {
        if let Some(known) = counts.fresh(room, now) {
            return known;
        }
        let read = tokio::time::timeout(HEAD_COUNT_WAIT, lookup(core, client, room)).await;
        let count = match read {
            Ok(Ok((_, _, actor))) if actor.access_mode.is_some() => Some(HeadCount {
                inside: actor.head_count.unwrap_or(0),
                capacity: actor.capacity.unwrap_or(0),
            }),
            Ok(Ok(_)) => {
                tracing::info!(%room, "a Room elsewhere is no longer a Room");
                None
            }
            Ok(Err(err)) => {
                tracing::info!(%room, error = %err, "head count of a Room elsewhere");
                None
            }
            Err(_) => {
                tracing::info!(%room, "head count of a Room elsewhere: no answer in time");
                None
            }
        };
        counts.keep(room, now, count);
        count
    });
    futures_util::future::join_all(reads).await
}

/// The instance actor of this instance, as the signer of fetches and ticket requests.
async fn instance_signer(core: &Core) -> Result<(Id, convene_federation::ActorKeys)> {
    let actor = Id::parse(&core.settings.url(INSTANCE_ACTOR_PATH))?;
    let keys = LocalDirectory::new(core.clone()).keys_of(&actor).await?;
    Ok((actor.with_suffix("#main-key")?, keys))
}

/// Reads what `input` names (a Room's URL, or the address of its Space's actor when it is a
/// Room) on another instance: A's "Visit a Room elsewhere".
pub async fn preview(core: &Core, client: &FetchClient, input: &str) -> Result<RemoteRoom> {
    let (id, keys, actor) = lookup(core, client, input).await?;
    let (Some(access), true) = (actor.access_mode, actor.kind == ActorKind::Group) else {
        return Err(AppError::BadRequest(
            "That address is not a Room. Paste the link of a Room's page.".into(),
        ));
    };
    let space = match &actor.attributed_to {
        Some(space) if authority(space) == authority(&id) => keys
            .fetch_actor(&space.with_suffix("#main-key")?)
            .await
            .ok()
            .map(|s| display_name(&s)),
        _ => None,
    };
    Ok(RemoteRoom {
        name: display_name(&actor),
        space,
        host: authority(&id).unwrap_or_default(),
        access,
        capacity: actor.capacity.unwrap_or(0),
        head_count: actor.head_count.unwrap_or(0),
        inbox: actor.inbox.clone(),
        id,
    })
}

/// The actor `input` names on another instance (its URL, or an address found by WebFinger),
/// fetched with a signed GET: its id, the fetcher (for more of that instance's actors) and
/// the document.
async fn lookup(
    core: &Core,
    client: &FetchClient,
    input: &str,
) -> Result<(Id, FetchKeySource, Actor)> {
    let input = input.trim();
    let id = if input.starts_with("http://") || input.starts_with("https://") {
        Id::parse(input).map_err(|_| bad_input())?
    } else {
        let address = Address::parse(input).map_err(|_| bad_input())?;
        let scheme = core.settings.public_url.scheme().to_owned();
        let url = webfinger::query_url(&address, &scheme)?;
        let jrd = client
            .get(&url, "application/jrd+json", None)
            .await
            .map_err(unreadable)?;
        if !jrd.status.is_success() {
            return Err(AppError::BadRequest(format!(
                "{input} could not be found ({}).",
                jrd.status
            )));
        }
        webfinger::parse(&jrd.body, &address)
            .map_err(unreadable)?
            .actor
    };
    if authority(&id).is_none_or(|host| host == core.settings.domain().to_ascii_lowercase()) {
        return Err(AppError::BadRequest(
            "That is on this instance: no need to go elsewhere for it.".into(),
        ));
    }
    let keys = FetchKeySource {
        client: client.clone(),
        signer: Some(instance_signer(core).await?),
    };
    let actor = keys
        .fetch_actor(&id.with_suffix("#main-key")?)
        .await
        .map_err(unreadable)?;
    if actor.id != id {
        return Err(AppError::BadRequest(
            "That instance describes another address.".into(),
        ));
    }
    Ok((id, keys, actor))
}

/// A person's actor on another instance, from their address (`@ada@example.org`).
pub async fn resolve_person(core: &Core, client: &FetchClient, address: &str) -> Result<Actor> {
    if !address.contains('@') {
        return Err(AppError::BadRequest(
            "Write the address like @ada@example.org.".into(),
        ));
    }
    let (_, _, actor) = lookup(core, client, address).await?;
    if actor.kind != ActorKind::Person {
        return Err(AppError::BadRequest(
            "That address is not a person's Passport.".into(),
        ));
    }
    Ok(actor)
}

/// A remote instance that could not be read is the visitor's problem to hear about, not a
/// failure of this instance.
fn unreadable(err: convene_federation::Error) -> AppError {
    AppError::BadRequest(format!("That Room could not be read: {err}"))
}

fn bad_input() -> AppError {
    AppError::BadRequest("Paste the link of a Room's page on another instance.".into())
}

fn display_name(actor: &Actor) -> String {
    let name = actor
        .name
        .as_deref()
        .or(actor.preferred_username.as_deref())
        .unwrap_or_default();
    let name = plain_text(name, NAME_CHARS);
    if name.trim().is_empty() {
        authority(&actor.id).unwrap_or_default()
    } else {
        name
    }
}

/// A's side: asks the Room's instance for a ticket for `passport`, signed by this instance's
/// actor. The browser is then sent to [`TicketGrant::enter_url`].
pub async fn visit(
    core: &Core,
    client: &FetchClient,
    passport: &Passport,
    room: &Id,
) -> Result<TicketGrant> {
    if !passport.domain.is_empty() {
        return Err(AppError::Forbidden(
            "Only this instance's own Passports visit other instances from here.",
        ));
    }
    let request = TicketRequest {
        passport: Id::parse(&core.settings.url(&person_path(passport.handle.as_str())))?,
        room: room.clone(),
    };
    let (key_id, keys) = instance_signer(core).await?;
    let signer = Signer {
        key_id: key_id.url(),
        keys: &keys,
    };
    admission::request_ticket(client, signer, &request, system_time(core))
        .await
        .map_err(|err| match err {
            convene_federation::Error::Refused(why) => {
                AppError::BadRequest(format!("The Room's instance did not let you in: {why}"))
            }
            other => {
                AppError::BadRequest(format!("The Room's instance could not be asked: {other}"))
            }
        })
}

/// B's side: `signer` (a verified request) asks a ticket for `request.passport`, whose actor
/// document `passport_actor` was fetched from its own instance. Checks that the signer is the
/// Passport's instance and the Room is here, the Room's rules and seats; stores the ticket's
/// digest and returns the grant.
pub async fn grant(
    core: &Core,
    signer: &VerifiedRequest,
    request: &TicketRequest,
    passport_actor: &Actor,
) -> Result<TicketGrant> {
    check_ticket_request(signer, request, &core.settings.domain()).map_err(|_| {
        AppError::Forbidden("Only a Passport's own instance asks tickets for it, for Rooms here.")
    })?;
    if passport_actor.id != request.passport || passport_actor.kind != ActorKind::Person {
        return Err(AppError::Forbidden(
            "The ticket must name a person's actor.",
        ));
    }
    let room = local_room(core, &request.room).await?;
    let passport = remember_passport(core, passport_actor).await?;
    if super::passport_blocks::is_blocked(&core.db, passport.handle.as_str(), &passport.domain)
        .await?
    {
        tracing::info!(passport = %request.passport, "ticket refused: the Passport is blocked");
        return Err(AppError::Forbidden(
            "This Passport is blocked on this instance.",
        ));
    }
    if room.access == Access::Members {
        let space = spaces::by_id(&core.db, room.space_id).await?;
        if !spaces::is_member(&core.db, &space, Some(&passport)).await? {
            return Err(AppError::Forbidden(
                "This Room is for its Space's members: ask to join it first.",
            ));
        }
    }
    if let Some(sfu) = &core.sfu {
        let inside = sfu.room_participants(&super::gathering::media_room_id(&room));
        if inside.len() >= usize::try_from(room.capacity).unwrap_or(usize::MAX) {
            return Err(AppError::Conflict {
                field: "room",
                message: format!("{} is full. Try again later.", room.name),
            });
        }
    }
    let ticket = new_ticket();
    let now = core.db.now();
    let ttl = i64::try_from(TICKET_TTL.as_secs()).unwrap_or(120);
    let mut tx = core.db.begin_write().await?;
    sqlx::query("DELETE FROM admission_tickets WHERE expires_at <= $1")
        .bind(now)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO admission_tickets (digest, passport_id, room_id, expires_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(ticket_digest(&ticket))
    .bind(passport.id)
    .bind(room.id)
    .bind(now + ttl)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    tracing::info!(passport = %request.passport, room = %request.room, "admission ticket granted");
    let expires_at = system_time(core) + Duration::from_secs(TICKET_TTL.as_secs());
    Ok(TicketGrant {
        enter_url: Id::parse(&format!(
            "{}?ticket={ticket}",
            core.settings.url(ENTER_PATH)
        ))?,
        ticket,
        passport: request.passport.clone(),
        room: request.room.clone(),
        expires_at: expires_at.into(),
    })
}

/// Where browsers bring tickets.
pub const ENTER_PATH: &str = "/enter";

/// The Room `id` names on this instance, if it is one whose actor is public.
async fn local_room(core: &Core, id: &Id) -> Result<Room> {
    let directory = LocalDirectory::new(core.clone());
    let Some(ActorPath::Room { space, room }) = directory.local_path(id) else {
        return Err(AppError::NotFound);
    };
    let space = spaces::by_slug(&core.db, &space).await?;
    let room = rooms::by_slug(&core.db, &space, &room).await?;
    // An unlisted Room is for those who know its link: it has no actor, so no visitors.
    if !room.listed {
        return Err(AppError::NotFound);
    }
    Ok(room)
}

/// Stores (or refreshes) a Passport of another instance from its actor document.
pub(crate) async fn remember_passport(core: &Core, actor: &Actor) -> Result<Passport> {
    let host = authority(&actor.id).unwrap_or_default();
    let handle: String = actor
        .preferred_username
        .as_deref()
        .unwrap_or_default()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.'))
        .take(64)
        .collect();
    if handle.is_empty() || host.is_empty() {
        return Err(AppError::BadRequest(
            "the Passport's actor has no usable preferredUsername".into(),
        ));
    }
    let name = display_name(actor);
    sqlx::query(
        "INSERT INTO passports (handle, domain, display_name, actor_url, created_at) \
         VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (handle, domain) DO UPDATE SET display_name = excluded.display_name, \
         actor_url = excluded.actor_url",
    )
    .bind(&handle)
    .bind(&host)
    .bind(&name)
    .bind(actor.id.as_str())
    .bind(core.db.now())
    .execute(&core.db.pool)
    .await?;
    let id: i64 = sqlx::query("SELECT id FROM passports WHERE handle = $1 AND domain = $2")
        .bind(&handle)
        .bind(&host)
        .fetch_one(&core.db.pool)
        .await?
        .try_get("id")?;
    passports::by_id(&core.db, id)
        .await?
        .ok_or_else(|| AppError::Internal(anyhow::anyhow!("a stored Passport vanished")))
}

/// What [`redeem`] gives: a visitor session for the ticket's Passport, and the Room to go to.
pub struct Redeemed {
    /// The session cookie's secret.
    pub session_token: String,
    pub space: Space,
    pub room: Room,
}

/// B's side: spends `ticket` (once, whatever the process) for a visitor session.
pub async fn redeem(core: &Core, ticket: &str) -> Result<Redeemed> {
    if ticket.is_empty() || ticket.len() > 256 {
        return Err(AppError::BadRequest("This entry link is not valid.".into()));
    }
    let spent = sqlx::query(
        "DELETE FROM admission_tickets WHERE digest = $1 RETURNING passport_id, room_id, expires_at",
    )
    .bind(ticket_digest(ticket))
    .fetch_optional(&core.db.pool)
    .await?;
    let Some(row) = spent else {
        return Err(AppError::Gone(
            "This entry link was already used or never existed. Start again from your own instance.",
        ));
    };
    if row.try_get::<i64, _>("expires_at")? <= core.db.now() {
        return Err(AppError::Gone(
            "This entry link has expired. Start again from your own instance.",
        ));
    }
    let passport = passports::by_id(&core.db, row.try_get("passport_id")?)
        .await?
        .ok_or(AppError::NotFound)?;
    let room = rooms::by_id(&core.db, row.try_get("room_id")?)
        .await?
        .ok_or(AppError::Gone("This Room was deleted."))?;
    let space = spaces::by_id(&core.db, room.space_id).await?;
    // What held when the ticket was granted may have changed in its two minutes: the
    // instance or the Passport blocked, the membership of a members-only Room ended.
    if !passport.domain.is_empty() {
        let policy = super::partners::policy(&core.db).await?;
        if !policy.allows(&passport.domain)
            || super::passport_blocks::is_blocked(
                &core.db,
                passport.handle.as_str(),
                &passport.domain,
            )
            .await?
        {
            tracing::info!(passport = %passport.handle, domain = %passport.domain, "ticket refused at the door: blocked since it was granted");
            return Err(AppError::Forbidden(
                "This Passport is no longer welcome on this instance.",
            ));
        }
        if room.access == Access::Members
            && !spaces::is_member(&core.db, &space, Some(&passport)).await?
        {
            tracing::info!(passport = %passport.handle, domain = %passport.domain, room = room.id, "ticket refused at the door: no longer a member");
            return Err(AppError::Forbidden(
                "You are no longer a member of this Room's Space. Ask its owners to join again.",
            ));
        }
    }
    let session_token = auth::start_session(&core.db, Some(&passport)).await?;
    Ok(Redeemed {
        session_token,
        space,
        room,
    })
}
