//! Following from here: a Passport follows a Space on another instance, and the instance keeps
//! that Space's Rooms as the Space announces them (the Network page shows both).
//!
//! The flow, each step one use case:
//! 1. [`follow`]: the Passport pastes `@space@host`, `space@host` or a URL; the instance
//!    resolves it (WebFinger, then a GET of the actor signed by the instance actor), stores the
//!    Space in `remote_spaces` and the follow in `remote_follows` (`pending`), and queues a
//!    `Follow` from the Passport's actor to the Space's inbox, all in one transaction.
//! 2. [`answered`]: the Space's `Accept` or `Reject` (delivered to the inbox) settles it.
//! 3. [`announced`]: the Space's FEP-1b12 `Announce` of `Create`/`Update`/`Delete` of a Room
//!    keeps `remote_rooms`; an `Update` of the Space's own actor refreshes `remote_spaces`
//!    ([`updated`] for one sent directly).
//! 4. [`unfollow`]: queues `Undo(Follow)` and forgets the follow (and the Space, once nobody
//!    here follows it).
//!
//! Trust: announcements are taken only from Spaces someone here follows (403 otherwise), only
//! when the announced activity is the Space's own and embedded (not only named), and only about
//! objects on the Space's host: a Room must be `attributedTo` the announcing Space. Names and
//! summaries are stored as plain text ([`convene_federation::text::plain_text`]).
//!
//! Like the other inbox use cases, each records the activity id in
//! `federation_seen_activities` in the transaction of its effect, so a replay changes nothing.

use convene_federation::Address;
use convene_federation::delivery::{Recipient, plan};
use convene_federation::fetch::{FetchClient, Signer};
use convene_federation::protocol::Embedded;
use convene_federation::protocol::Id;
use convene_federation::protocol::activity::{
    Action, Activity, Announce, Delete, Object, Publish, Response, Undo,
};
use convene_federation::protocol::actor::{AccessMode, Actor as RemoteActor, ActorKind};
use convene_federation::text::plain_text;
use convene_federation::urls::authority;
use convene_federation::webfinger;
use sqlx::Row;

use super::Core;
use super::followers::{apply_once, enqueue_deliveries};
use crate::activitypub::{LocalDirectory, person_path};
use crate::domain::passports::Passport;
use crate::error::{AppError, Result};
use crate::jobs::Tx;

/// The longest name we keep from a remote Space or Room, in characters.
const NAME_CHARS: usize = 200;
/// The longest summary we keep, in characters.
const SUMMARY_CHARS: usize = 1_000;

/// What a Space answered to a follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Accepted,
    Rejected,
}

impl Answer {
    fn state(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Rejected => "rejected",
        }
    }
}

/// A Space elsewhere a Passport follows, with its Rooms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowedSpace {
    pub actor_id: String,
    pub handle: String,
    pub name: String,
    pub summary: String,
    pub page_url: String,
    /// `pending`, `accepted` or `rejected`.
    pub state: String,
    pub rooms: Vec<RemoteRoom>,
}

/// A Room of a Space elsewhere, as last announced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteRoom {
    pub actor_id: String,
    pub name: String,
    pub page_url: String,
    pub access_mode: String,
    pub capacity: i64,
    pub head_count: i64,
}

fn handle_error(message: impl Into<String>) -> AppError {
    AppError::invalid("handle", message)
}

/// The instance actor's key id and keys, which sign fetches.
async fn instance_signer(core: &Core) -> Result<(Id, convene_federation::ActorKeys)> {
    use convene_federation::directory::Directory;
    let directory = LocalDirectory::new(core.clone());
    let actor = Id::parse(&core.settings.url(crate::activitypub::INSTANCE_ACTOR_PATH))?;
    let keys = directory.keys_of(&actor).await?;
    Ok((actor.with_suffix("#main-key")?, keys))
}

/// Finds the actor a person pasted: a handle through WebFinger, a URL directly; then fetches
/// it with a signed GET and checks that it is a Space (a Group that is not a Room).
pub async fn resolve(core: &Core, client: &FetchClient, input: &str) -> Result<RemoteActor> {
    let input = input.trim();
    if input.is_empty() {
        return Err(handle_error(
            "Give the Space's address, like @garden@social.example, or its link.",
        ));
    }
    let local = core.settings.domain().to_ascii_lowercase();
    let actor_url = if input.starts_with("http://") || input.starts_with("https://") {
        Id::parse(input).map_err(|_| handle_error("That link is not a web address."))?
    } else {
        let address = Address::parse(input).map_err(|_| {
            handle_error("Write the address as @name@instance.example, or paste a link.")
        })?;
        if address.is_local_to(&local) {
            return Err(handle_error(
                "That Space is on this instance: find it under Spaces.",
            ));
        }
        refuse_unless_allowed(core, address.domain()).await?;
        // Instances in development run on http://localhost:PORT; production ones on https.
        let scheme = core.settings.public_url.scheme();
        let url = webfinger::query_url(&address, scheme)
            .map_err(|_| handle_error("That instance's name is not valid."))?;
        let response = client
            .get(&url, webfinger::JRD_CONTENT_TYPE, None)
            .await
            .map_err(|e| {
                tracing::info!(error = %e, %address, "WebFinger");
                handle_error(format!("{} could not be reached.", address.domain()))
            })?;
        if !response.status.is_success() {
            return Err(handle_error(format!(
                "{} does not know {address}.",
                address.domain()
            )));
        }
        webfinger::parse(&response.body, &address)
            .map_err(|_| handle_error(format!("{} did not describe {address}.", address.domain())))?
            .actor
    };
    let host = authority(&actor_url).unwrap_or_default();
    if host == local {
        return Err(handle_error(
            "That Space is on this instance: find it under Spaces.",
        ));
    }
    refuse_unless_allowed(core, &host).await?;
    let (key_id, keys) = instance_signer(core).await?;
    let signer = Signer {
        key_id: key_id.url(),
        keys: &keys,
    };
    let response = client
        .get_activity(actor_url.url(), Some(signer))
        .await
        .map_err(|e| {
            tracing::info!(error = %e, actor = %actor_url, "fetching a Space");
            handle_error(format!("{host} could not be reached."))
        })?;
    if !response.status.is_success() {
        return Err(handle_error(format!(
            "{host} answered {} for that Space.",
            response.status.as_u16()
        )));
    }
    let actor = RemoteActor::parse(&response.body)
        .map_err(|_| handle_error("That is not a Space this instance can follow."))?;
    if authority(&actor.id) != Some(host) {
        return Err(handle_error(
            "That page names an actor on another instance.",
        ));
    }
    if actor.kind != ActorKind::Group || actor.room_properties().is_some() {
        return Err(handle_error(
            "That is not a Space (a group): only Spaces can be followed here.",
        ));
    }
    Ok(actor)
}

async fn refuse_unless_allowed(core: &Core, host: &str) -> Result<()> {
    if super::partners::policy(&core.db).await?.allows(host) {
        Ok(())
    } else {
        Err(handle_error(format!(
            "This instance does not federate with {host}."
        )))
    }
}

/// The `name@host` a remote actor goes by.
fn handle_of(actor: &RemoteActor) -> String {
    let host = authority(&actor.id).unwrap_or_default();
    let name = actor
        .preferred_username
        .as_deref()
        .map(|n| plain_text(n, 64))
        .filter(|n| !n.is_empty())
        .or_else(|| {
            actor
                .id
                .path_segments()
                .and_then(|mut s| s.next_back().map(str::to_owned))
        })
        .unwrap_or_default();
    format!("@{name}@{host}")
}

/// Stores (or refreshes) a remote Space from its actor document.
async fn store_space(tx: &mut Tx<'_>, actor: &RemoteActor, now: i64) -> Result<()> {
    let name = actor
        .name
        .as_deref()
        .or(actor.preferred_username.as_deref())
        .map(|n| plain_text(n, NAME_CHARS))
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| handle_of(actor));
    let summary = actor
        .summary
        .as_deref()
        .map(|s| plain_text(s, SUMMARY_CHARS))
        .unwrap_or_default();
    let page = actor.url.as_ref().unwrap_or(&actor.id);
    let shared = actor
        .endpoints
        .as_ref()
        .and_then(|e| e.shared_inbox.as_ref());
    sqlx::query(
        "INSERT INTO remote_spaces \
         (actor_id, host, handle, name, summary, page_url, inbox, shared_inbox, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
         ON CONFLICT (actor_id) DO UPDATE SET handle = $3, name = $4, summary = $5, \
         page_url = $6, inbox = $7, shared_inbox = $8, updated_at = $9",
    )
    .bind(actor.id.as_str())
    .bind(authority(&actor.id).unwrap_or_default())
    .bind(handle_of(actor))
    .bind(&name)
    .bind(&summary)
    .bind(page.as_str())
    .bind(actor.inbox.as_str())
    .bind(shared.map(|s| s.as_str()))
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// `passport` follows the Space named by `input`: resolved, stored, and a `Follow` queued.
/// Following again a Space whose answer is still awaited (or was a refusal) sends a new Follow.
pub async fn follow(
    core: &Core,
    client: &FetchClient,
    passport: &Passport,
    input: &str,
) -> Result<FollowedSpace> {
    let space = resolve(core, client, input).await?;
    let directory = LocalDirectory::new(core.clone());
    let person = Id::parse(&core.settings.url(&person_path(passport.handle.as_str())))?;
    // The Passport's key must exist before the Space fetches it to check the Follow; making
    // it is slow, so it happens before the transaction.
    directory.public_key_pem(&person).await?;
    let now = core.db.now();
    let mut tx = core.db.begin_write().await?;
    let existing =
        sqlx::query("SELECT state FROM remote_follows WHERE passport_id = $1 AND space_actor = $2")
            .bind(passport.id)
            .bind(space.id.as_str())
            .fetch_optional(&mut *tx)
            .await?
            .map(|row| row.try_get::<String, _>("state"))
            .transpose()?;
    store_space(&mut tx, &space, now).await?;
    if existing.as_deref() == Some("accepted") {
        tx.commit().await?;
        return followed_space(core, passport, space.id.as_str())
            .await?
            .ok_or(AppError::NotFound);
    }
    let follow_id = person.with_suffix(&format!("#follow-{}", crate::domain::random_token()))?;
    sqlx::query(
        "INSERT INTO remote_follows (passport_id, space_actor, follow_id, state, created_at) \
         VALUES ($1, $2, $3, 'pending', $4) \
         ON CONFLICT (passport_id, space_actor) DO UPDATE SET follow_id = $3, state = 'pending', \
         created_at = $4, answered_at = NULL",
    )
    .bind(passport.id)
    .bind(space.id.as_str())
    .bind(follow_id.as_str())
    .bind(now)
    .execute(&mut *tx)
    .await?;
    let follow = Activity::Follow(Action::new(follow_id, person.clone(), space.id.clone()));
    let jobs = plan(
        &follow,
        &person.with_suffix("#main-key")?,
        [Recipient {
            inbox: space.inbox.clone(),
            shared_inbox: None,
        }],
        &super::partners::policy(&core.db).await?,
        &core.settings.domain(),
    )?;
    enqueue_deliveries(&mut tx, now, &jobs, "federation:follow").await?;
    core.queue.commit(tx).await?;
    followed_space(core, passport, space.id.as_str())
        .await?
        .ok_or(AppError::NotFound)
}

/// `passport` stops following the Space `space_actor`: an `Undo(Follow)` is queued (unless the
/// Space refused the follow) and the follow forgotten; so is the Space and its Rooms once
/// nobody here follows it.
pub async fn unfollow(core: &Core, passport: &Passport, space_actor: &str) -> Result<()> {
    let now = core.db.now();
    let person = Id::parse(&core.settings.url(&person_path(passport.handle.as_str())))?;
    let mut tx = core.db.begin_write().await?;
    let row = sqlx::query(
        "SELECT f.follow_id, f.state, s.inbox FROM remote_follows f \
         JOIN remote_spaces s ON s.actor_id = f.space_actor \
         WHERE f.passport_id = $1 AND f.space_actor = $2",
    )
    .bind(passport.id)
    .bind(space_actor)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(AppError::NotFound)?;
    let follow_id: String = row.try_get("follow_id")?;
    let state: String = row.try_get("state")?;
    let inbox: String = row.try_get("inbox")?;
    sqlx::query("DELETE FROM remote_follows WHERE passport_id = $1 AND space_actor = $2")
        .bind(passport.id)
        .bind(space_actor)
        .execute(&mut *tx)
        .await?;
    forget_unfollowed_space(&mut tx, space_actor).await?;
    if state != "rejected" {
        let space = Id::parse(space_actor)?;
        let follow = Action::new(Id::parse(&follow_id)?, person.clone(), space.clone());
        let undo = Activity::Undo(Undo {
            id: person.with_suffix(&format!("#undo-{}", crate::domain::random_token()))?,
            actor: person.clone(),
            object: Embedded::Object(Box::new(Activity::Follow(follow))),
            to: vec![space.to_string()],
            cc: Vec::new(),
            audience: None,
        });
        let jobs = plan(
            &undo,
            &person.with_suffix("#main-key")?,
            [Recipient {
                inbox: Id::parse(&inbox)?,
                shared_inbox: None,
            }],
            &super::partners::policy(&core.db).await?,
            &core.settings.domain(),
        )?;
        enqueue_deliveries(&mut tx, now, &jobs, "federation:unfollow").await?;
    }
    core.queue.commit(tx).await?;
    Ok(())
}

/// Deletes a remote Space and its Rooms when no follow of it is left.
async fn forget_unfollowed_space(tx: &mut Tx<'_>, space_actor: &str) -> Result<()> {
    let left = sqlx::query("SELECT 1 AS one FROM remote_follows WHERE space_actor = $1")
        .bind(space_actor)
        .fetch_optional(&mut **tx)
        .await?;
    if left.is_none() {
        delete_space(tx, space_actor).await?;
    }
    Ok(())
}

/// Deletes a remote Space with its Rooms and follows (children first: no reliance on cascades).
async fn delete_space(tx: &mut Tx<'_>, space_actor: &str) -> Result<()> {
    for sql in [
        "DELETE FROM remote_rooms WHERE space_actor = $1",
        "DELETE FROM remote_follows WHERE space_actor = $1",
        "DELETE FROM remote_spaces WHERE actor_id = $1",
    ] {
        sqlx::query(sql)
            .bind(space_actor)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// Forgets every Space on `host` with its Rooms and the follows of it (the host was blocked).
pub(crate) async fn forget_host(tx: &mut Tx<'_>, host: &str) -> Result<u64> {
    let spaces = sqlx::query("SELECT actor_id FROM remote_spaces WHERE host = $1")
        .bind(host)
        .fetch_all(&mut **tx)
        .await?;
    for row in &spaces {
        delete_space(tx, &row.try_get::<String, _>("actor_id")?).await?;
    }
    Ok(spaces.len() as u64)
}

/// The Spaces elsewhere `passport` follows (or asked to), by name, with their Rooms once the
/// follow is accepted.
pub async fn followed(core: &Core, passport: &Passport) -> Result<Vec<FollowedSpace>> {
    let rows = sqlx::query(
        "SELECT s.actor_id, s.handle, s.name, s.summary, s.page_url, f.state \
         FROM remote_follows f JOIN remote_spaces s ON s.actor_id = f.space_actor \
         WHERE f.passport_id = $1 ORDER BY s.name, s.actor_id",
    )
    .bind(passport.id)
    .fetch_all(&core.db.pool)
    .await?;
    let mut spaces = Vec::with_capacity(rows.len());
    for row in rows {
        let actor_id: String = row.try_get("actor_id")?;
        let state: String = row.try_get("state")?;
        // Rooms are for followers: someone still waiting, or refused, sees none (another
        // person's follow may be what keeps them here).
        let rooms = if state == "accepted" {
            rooms_of(core, &actor_id).await?
        } else {
            Vec::new()
        };
        spaces.push(FollowedSpace {
            rooms,
            state,
            actor_id,
            handle: row.try_get("handle")?,
            name: row.try_get("name")?,
            summary: row.try_get("summary")?,
            page_url: row.try_get("page_url")?,
        });
    }
    Ok(spaces)
}

async fn followed_space(
    core: &Core,
    passport: &Passport,
    space_actor: &str,
) -> Result<Option<FollowedSpace>> {
    Ok(followed(core, passport)
        .await?
        .into_iter()
        .find(|s| s.actor_id == space_actor))
}

async fn rooms_of(core: &Core, space_actor: &str) -> Result<Vec<RemoteRoom>> {
    let rows = sqlx::query(
        "SELECT actor_id, name, page_url, access_mode, capacity, head_count FROM remote_rooms \
         WHERE space_actor = $1 ORDER BY name, actor_id",
    )
    .bind(space_actor)
    .fetch_all(&core.db.pool)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(RemoteRoom {
                actor_id: row.try_get("actor_id")?,
                name: row.try_get("name")?,
                page_url: row.try_get("page_url")?,
                access_mode: row.try_get("access_mode")?,
                capacity: row.try_get("capacity")?,
                head_count: row.try_get("head_count")?,
            })
        })
        .collect()
}

/// The Space's `Accept` or `Reject` of a follow from here. An answer to a Follow we did not
/// send (or from another actor than the followed Space) changes nothing.
pub async fn answered(
    core: &Core,
    activity_id: &Id,
    answer: &Response,
    outcome: Answer,
) -> Result<()> {
    let follow_id = match &answer.object {
        Embedded::Object(inner) => match inner.as_ref() {
            Activity::Follow(follow) => follow.id.clone(),
            // An answer to something else (a Join, in part 2): not ours to settle here.
            _ => return super::followers::ignore(core, activity_id).await,
        },
        Embedded::Id(id) => id.clone(),
    };
    let answered = Answered {
        follow_id,
        space: answer.actor.clone(),
        state: outcome.state(),
        now: core.db.now(),
    };
    apply_once(core, activity_id.clone(), answered, |tx, a| {
            Box::pin(async move {
                let changed = sqlx::query(
                    "UPDATE remote_follows SET state = $1, answered_at = $2 \
                     WHERE follow_id = $3 AND space_actor = $4",
                )
                .bind(a.state)
                .bind(a.now)
                .bind(a.follow_id.as_str())
                .bind(a.space.as_str())
                .execute(&mut **tx)
                .await?
                .rows_affected();
                if changed == 0 {
                    tracing::info!(follow_id = %a.follow_id, actor = %a.space, "an answer to no follow of ours");
                }
                Ok(())
            })
        })
        .await
        .map(|_| ())
}

/// A Space's answer to a follow from here, as [`answered`] stores it.
struct Answered {
    follow_id: Id,
    space: Id,
    state: &'static str,
    now: i64,
}

/// Whether someone here follows (or asked to follow) `space`.
async fn is_followed(core: &Core, space: &Id) -> Result<bool> {
    Ok(sqlx::query(
        "SELECT 1 AS one FROM remote_follows WHERE space_actor = $1 AND state <> 'rejected'",
    )
    .bind(space.as_str())
    .fetch_optional(&core.db.pool)
    .await?
    .is_some())
}

/// A Space's FEP-1b12 `Announce`: of `Create`/`Update` of one of its Rooms (stored), of
/// `Delete` of one (removed), or of `Update` of itself (refreshed). Anything else announced
/// (a Note for timelines, an activity only named) is recorded as seen and left.
pub async fn announced(core: &Core, activity_id: &Id, announce: &Announce) -> Result<()> {
    let space = &announce.actor;
    if !is_followed(core, space).await? {
        return Err(AppError::Forbidden("nobody here follows this Space"));
    }
    if announce.audience.as_ref().is_some_and(|a| a != space) {
        return Err(AppError::BadRequest(
            "the Announce's audience is not its actor".into(),
        ));
    }
    let inner = match announce.trusted_activity() {
        Ok(Some(inner)) => inner,
        Ok(None) => return super::followers::ignore(core, activity_id).await,
        Err(err) => {
            tracing::info!(error = %err, "announced activity refused");
            return Err(AppError::Forbidden(
                "the announced activity is not the Space's own",
            ));
        }
    };
    if inner.actor() != space {
        // A member's activity repeated by the Space: nothing the Network page keeps.
        return super::followers::ignore(core, activity_id).await;
    }
    let from_space = FromSpace {
        space: space.clone(),
        activity: inner.clone(),
        now: core.db.now(),
    };
    let applied = apply_once(core, activity_id.clone(), from_space, |tx, a| {
        Box::pin(async move {
            let space = &a.space;
            match &a.activity {
                Activity::Create(publish) | Activity::Update(publish) => {
                    publish_from_space(tx, space, publish, a.now).await?;
                }
                Activity::Delete(Delete { object, .. }) if object == space => {
                    delete_space(tx, space.as_str()).await?;
                }
                Activity::Delete(Delete { object, .. }) => {
                    sqlx::query(
                        "DELETE FROM remote_rooms WHERE actor_id = $1 AND space_actor = $2",
                    )
                    .bind(object.as_str())
                    .bind(space.as_str())
                    .execute(&mut **tx)
                    .await?;
                }
                _ => {}
            }
            Ok(())
        })
    })
    .await?;
    if applied {
        core.changed();
    }
    Ok(())
}

/// A followed Space's own activity (announced, or sent directly), as it is applied.
struct FromSpace {
    space: Id,
    activity: Activity,
    now: i64,
}

/// An `Update` sent directly (not announced): of a followed Space's own actor, it refreshes
/// the stored Space; anything else is recorded as seen and left.
pub async fn updated(core: &Core, activity_id: &Id, update: &Publish) -> Result<()> {
    let about_itself = match &update.object {
        Embedded::Object(object) => object.id() == &update.actor,
        Embedded::Id(_) => false,
    };
    if !about_itself || !is_followed(core, &update.actor).await? {
        return super::followers::ignore(core, activity_id).await;
    }
    let from_space = FromSpace {
        space: update.actor.clone(),
        activity: Activity::Update(update.clone()),
        now: core.db.now(),
    };
    apply_once(core, activity_id.clone(), from_space, |tx, a| {
        Box::pin(async move {
            if let Activity::Update(update) = &a.activity {
                publish_from_space(tx, &a.space, update, a.now).await?;
            }
            Ok(())
        })
    })
    .await
    .map(|_| ())
}

/// A Create or Update by `space` of itself or of one of its Rooms.
async fn publish_from_space(
    tx: &mut Tx<'_>,
    space: &Id,
    publish: &Publish,
    now: i64,
) -> Result<()> {
    let Embedded::Object(object) = &publish.object else {
        return Ok(());
    };
    let Object::Actor(actor) = object.as_ref() else {
        return Ok(());
    };
    actor
        .validate()
        .map_err(|e| AppError::BadRequest(format!("the announced actor: {e}")))?;
    if &actor.id == space {
        if actor.kind == ActorKind::Group {
            store_space(tx, actor, now).await?;
        }
        return Ok(());
    }
    let Some(room) = actor.room_properties() else {
        return Ok(());
    };
    if actor.attributed_to.as_ref() != Some(space) {
        return Err(AppError::Forbidden(
            "the Room does not belong to the Space announcing it",
        ));
    }
    let name = actor
        .name
        .as_deref()
        .or(actor.preferred_username.as_deref())
        .map(|n| plain_text(n, NAME_CHARS))
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "Room".to_owned());
    let access = match room.access_mode {
        AccessMode::Open => "open",
        AccessMode::MembersOnly => "members-only",
        AccessMode::Locked => "locked",
    };
    let page = actor.url.as_ref().unwrap_or(&actor.id);
    sqlx::query(
        "INSERT INTO remote_rooms \
         (actor_id, space_actor, name, page_url, access_mode, capacity, head_count, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
         ON CONFLICT (actor_id) DO UPDATE SET space_actor = $2, name = $3, page_url = $4, \
         access_mode = $5, capacity = $6, head_count = $7, updated_at = $8",
    )
    .bind(actor.id.as_str())
    .bind(space.as_str())
    .bind(&name)
    .bind(page.as_str())
    .bind(access)
    .bind(i64::from(room.capacity))
    .bind(i64::from(room.head_count))
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
