//! Remote actors following a Space: what the ActivityPub inbox asks the core to do once a
//! request is verified (the door, `http::federation`, owns the HTTP and signature side).
//!
//! Each use case records the activity's id in `federation_seen_activities` **in the same
//! transaction** as its effect, so a replay (the same id again) changes nothing, and a failure
//! leaves nothing half-written. Answers to the follower (the `Accept`) are delivery jobs on the
//! durable queue, enqueued in that transaction too: if the follow is stored, its `Accept` will
//! go out, re-signed on every attempt by [`crate::activitypub::Deliveries`].
//!
//! The other direction: a Space announces its new, changed and deleted listed Rooms to its
//! followers the way Lemmy communities do (FEP-1b12: an `Announce` of the
//! `Create`/`Update`/`Delete`, with `audience` = the Space), one delivery per remote shared
//! inbox, queued in the transaction that changes the Room (`core::rooms`). A new Room is also
//! announced as a `Note` with its name and link, which Mastodon-like timelines show.

use convene_federation::PartnerPolicy;
use convene_federation::delivery::{DeliveryJob, Recipient, plan};
use convene_federation::directory::fan_out;
use convene_federation::protocol::activity::{
    Action, Activity, Announce, Announced, Delete, Object, Publish, Response, Undo,
};
use convene_federation::protocol::actor::Actor;
use convene_federation::protocol::actor::Actor as ActorDocument;
use convene_federation::protocol::object::{Note, NoteKind};
use convene_federation::protocol::{Embedded, Id, PUBLIC};
use convene_federation::urls::authority;
use futures_util::future::BoxFuture;
use sha2::Digest;
use sqlx::Row;

use super::Core;
use crate::activitypub::{ActorPath, LocalDirectory};
use crate::domain::rooms::Room;
use crate::domain::spaces::Space;
use crate::domain::values::Slug;
use crate::error::{AppError, Result};
use crate::jobs::{self, NewJob, Tx};

/// The job kind of an ActivityPub delivery.
pub const DELIVERY_KIND: &str = "activitypub";
/// Attempts before a delivery is dead (with the queue's backoff, about a day and a half).
const DELIVERY_ATTEMPTS: i64 = 12;

/// What a Follow became.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Followed {
    /// Stored and accepted; the `Accept` is queued.
    Accepted,
    /// Stored, waiting for an owner (an unlisted Space).
    Pending,
    /// Seen before: nothing changed.
    Duplicate,
}

/// `follower` (a verified remote actor, whose document we fetched) follows the local actor the
/// Follow names. Only Spaces take followers. `policy` is the partner policy the inbox checked
/// the Follow with; the `Accept` is planned with it, so that nothing is read from the pool
/// while the transaction holds the write lock (with many Follows at once on SQLite, that read
/// waited for a connection held by writers waiting for the lock, until they gave up).
pub async fn follow(
    core: &Core,
    policy: &PartnerPolicy,
    follow: &Action,
    follower: &Actor,
) -> Result<Followed> {
    if follower.id != follow.actor {
        return Err(AppError::BadRequest(
            "the Follow's actor is not its signer".into(),
        ));
    }
    let directory = LocalDirectory::new(core.clone());
    let Some(path @ ActorPath::Space(_)) = directory.local_path(&follow.object) else {
        return Err(AppError::NotFound);
    };
    let space = directory
        .actor_at(&path)
        .await
        .map_err(AppError::from)?
        .ok_or(AppError::NotFound)?;
    let accepted = !space.manually_approves_followers;
    let new = NewFollower {
        space: space.id.clone(),
        follower: follower.id.clone(),
        host: authority(&follower.id).unwrap_or_default(),
        inbox: follower.inbox.clone(),
        shared_inbox: follower.delivery_inbox().clone(),
        follow_id: follow.id.clone(),
        now: core.db.now(),
        accept: if accepted {
            Some(answer_jobs(
                core,
                policy,
                Answer::Accept,
                follow,
                &follower.inbox,
            )?)
        } else {
            None
        },
    };
    let recorded = apply_once(core, new.follow_id.clone(), new, |tx, f| {
            Box::pin(async move {
                sqlx::query(
                    "INSERT INTO federation_followers \
                     (local_actor, remote_actor, remote_host, inbox, shared_inbox, follow_id, created_at, accepted_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                     ON CONFLICT (local_actor, remote_actor) DO UPDATE SET inbox = $4, shared_inbox = $5, \
                     follow_id = $6, accepted_at = $8",
                )
                .bind(f.space.as_str())
                .bind(f.follower.as_str())
                .bind(&f.host)
                .bind(f.inbox.as_str())
                .bind(f.shared_inbox.as_str())
                .bind(f.follow_id.as_str())
                .bind(f.now)
                .bind(f.accept.is_some().then_some(f.now))
                .execute(&mut **tx)
                .await?;
                if let Some(jobs) = &f.accept {
                    enqueue_deliveries(tx, f.now, jobs, Answer::Accept.tag()).await?;
                }
                Ok(())
            })
        })
        .await?;
    if !recorded {
        return Ok(Followed::Duplicate);
    }
    if accepted {
        core.queue.wake();
    }
    core.changed();
    Ok(if accepted {
        Followed::Accepted
    } else {
        Followed::Pending
    })
}

/// A follow of a local Space as [`follow`] stores it, with the `Accept` to queue if the Space
/// takes followers without approval.
struct NewFollower {
    space: Id,
    follower: Id,
    host: String,
    inbox: Id,
    shared_inbox: Id,
    follow_id: Id,
    now: i64,
    accept: Option<Vec<DeliveryJob>>,
}

/// How a Space answers a Follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    Accept,
    Reject,
}

impl Answer {
    /// The delivery jobs' tag.
    fn tag(self) -> &'static str {
        match self {
            Answer::Accept => "federation:accept",
            Answer::Reject => "federation:reject",
        }
    }
}

/// Queues the Space's `Accept` or `Reject` of `follow` (embedding it) to the follower's inbox.
async fn queue_answer(
    core: &Core,
    tx: &mut Tx<'_>,
    policy: &PartnerPolicy,
    answer: Answer,
    follow: &Action,
    inbox: &Id,
) -> Result<()> {
    let jobs = answer_jobs(core, policy, answer, follow, inbox)?;
    enqueue_deliveries(tx, core.db.now(), &jobs, answer.tag()).await
}

/// The deliveries of the Space's `Accept` or `Reject` of `follow` (embedding it) to the
/// follower's inbox.
fn answer_jobs(
    core: &Core,
    policy: &PartnerPolicy,
    answer: Answer,
    follow: &Action,
    inbox: &Id,
) -> Result<Vec<DeliveryJob>> {
    let space = &follow.object;
    let kind = match answer {
        Answer::Accept => "accept",
        Answer::Reject => "reject",
    };
    let response = Response::new(
        answer_id(space, kind, &follow.id)?,
        space.clone(),
        Activity::Follow(follow.clone()),
    );
    let activity = match answer {
        Answer::Accept => Activity::Accept(response),
        Answer::Reject => Activity::Reject(response),
    };
    plan(
        &activity,
        &space.with_suffix("#main-key").map_err(AppError::from)?,
        [Recipient {
            inbox: inbox.clone(),
            shared_inbox: None,
        }],
        policy,
        &core.settings.domain(),
    )
    .map_err(AppError::from)
}

/// A follow of a local Space waiting for an owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowRequest {
    pub remote_actor: String,
    pub remote_host: String,
    pub created_at: i64,
}

/// The follows of `space` held for an owner (unlisted Spaces), oldest first.
pub async fn follow_requests(core: &Core, space: &Space) -> Result<Vec<FollowRequest>> {
    let space_id = LocalDirectory::new(core.clone())
        .space_id(space)
        .map_err(AppError::from)?;
    let rows = sqlx::query(
        "SELECT remote_actor, remote_host, created_at FROM federation_followers \
         WHERE local_actor = $1 AND accepted_at IS NULL ORDER BY created_at, remote_actor",
    )
    .bind(space_id.as_str())
    .fetch_all(&core.db.pool)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(FollowRequest {
                remote_actor: row.try_get("remote_actor")?,
                remote_host: row.try_get("remote_host")?,
                created_at: row.try_get("created_at")?,
            })
        })
        .collect()
}

/// An owner answers a held follow of `space` by `remote_actor`: approved, it becomes a
/// follower and the `Accept` is queued; rejected, it is forgotten and the `Reject` is queued.
pub async fn answer_follow_request(
    core: &Core,
    actor: super::Actor<'_>,
    space: &Space,
    remote_actor: &str,
    approve: bool,
) -> Result<()> {
    actor.require_owner(&core.db, space).await?;
    let space_id = LocalDirectory::new(core.clone())
        .space_id(space)
        .map_err(AppError::from)?;
    // Read before the transaction: a read on another connection while this one holds the
    // write lock can wait for a pool connection that writers queued behind the lock hold.
    let policy = super::partners::policy(&core.db).await?;
    let now = core.db.now();
    let mut tx = core.db.begin_write().await?;
    let row = sqlx::query(
        "SELECT follow_id, inbox FROM federation_followers \
         WHERE local_actor = $1 AND remote_actor = $2 AND accepted_at IS NULL",
    )
    .bind(space_id.as_str())
    .bind(remote_actor)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(AppError::NotFound)?;
    let follow = Action::new(
        Id::parse(&row.try_get::<String, _>("follow_id")?)?,
        Id::parse(remote_actor)?,
        space_id.clone(),
    );
    let inbox = Id::parse(&row.try_get::<String, _>("inbox")?)?;
    if approve {
        sqlx::query(
            "UPDATE federation_followers SET accepted_at = $1 \
             WHERE local_actor = $2 AND remote_actor = $3",
        )
        .bind(now)
        .bind(space_id.as_str())
        .bind(remote_actor)
        .execute(&mut *tx)
        .await?;
    } else {
        sqlx::query(
            "DELETE FROM federation_followers WHERE local_actor = $1 AND remote_actor = $2",
        )
        .bind(space_id.as_str())
        .bind(remote_actor)
        .execute(&mut *tx)
        .await?;
    }
    let answer = if approve {
        Answer::Accept
    } else {
        Answer::Reject
    };
    queue_answer(core, &mut tx, &policy, answer, &follow, &inbox).await?;
    core.queue.commit(tx).await?;
    core.changed();
    Ok(())
}

/// `actor` takes back a Follow: its follow of the named Space (or of whatever the named Follow
/// id followed) ends. Unknown follows change nothing.
pub async fn undo_follow(core: &Core, undo: &Undo) -> Result<()> {
    let (follow_id, object) = match undo.object.object() {
        Some(Activity::Follow(follow)) => (follow.id.to_string(), follow.object.to_string()),
        // Undo of something else (a Like, an Announce): nothing of ours to take back.
        Some(_) => return ignore(core, &undo.id).await,
        None => match &undo.object {
            Embedded::Id(id) => (id.to_string(), String::new()),
            Embedded::Object(_) => (String::new(), String::new()),
        },
    };
    let unfollow = Unfollow {
        follower: undo.actor.clone(),
        follow_id,
        object,
    };
    let applied = apply_once(core, undo.id.clone(), unfollow, |tx, u| {
        Box::pin(async move {
            sqlx::query(
                "DELETE FROM federation_followers WHERE remote_actor = $1 \
                     AND (follow_id = $2 OR local_actor = $3)",
            )
            .bind(u.follower.as_str())
            .bind(&u.follow_id)
            .bind(&u.object)
            .execute(&mut **tx)
            .await?;
            Ok(())
        })
    })
    .await?;
    if applied {
        core.changed();
    }
    Ok(())
}

/// An `Undo` of a follow, as [`undo_follow`] applies it: the follow is named by its id, or by
/// the Space it followed.
struct Unfollow {
    follower: Id,
    follow_id: String,
    object: String,
}

/// Records an activity we take no action on, so that a replay is recognised as one.
pub async fn ignore(core: &Core, activity_id: &Id) -> Result<()> {
    apply_once(core, activity_id.clone(), (), |_, _| {
        Box::pin(async { Ok(()) })
    })
    .await
    .map(|_| ())
}

/// Applies an inbound activity's effect through the group commit ([`crate::group_commit`]),
/// once: `activity_id` is recorded as seen in the same transaction as `work`, and when it was
/// recorded before (a redelivery) `work` does not run. True if it ran.
pub(crate) async fn apply_once<D, F>(core: &Core, activity_id: Id, data: D, work: F) -> Result<bool>
where
    D: Send + Sync + 'static,
    F: for<'a> Fn(&'a mut crate::group_commit::Tx, &'a D) -> BoxFuture<'a, Result<()>>
        + Send
        + Sync
        + 'static,
{
    let once = Once {
        activity_id,
        now: core.db.now(),
        data,
        work,
    };
    core.db
        .grouped(once, |tx, once| {
            Box::pin(async move {
                if !record_seen(tx, &once.activity_id, once.now).await? {
                    return Ok(false);
                }
                (once.work)(tx, &once.data).await?;
                Ok(true)
            })
        })
        .await
}

/// An inbound activity's effect, for [`apply_once`].
struct Once<D, F> {
    activity_id: Id,
    now: i64,
    data: D,
    work: F,
}

/// Whether `activity_id` was processed before.
pub async fn seen(core: &Core, activity_id: &Id) -> Result<bool> {
    Ok(
        sqlx::query("SELECT 1 AS one FROM federation_seen_activities WHERE activity_id = $1")
            .bind(activity_id.as_str())
            .fetch_optional(&core.db.pool)
            .await?
            .is_some(),
    )
}

/// How long an activity id is remembered. A replay of the same signed request is refused by
/// its `Date` after 12 hours (`convene_federation::signature::MAX_AGE`), but a sender may
/// deliver the same activity again, freshly signed, while it retries: Mastodon's retries span
/// about a week, so a month covers every sender's schedule with room to spare.
pub const SEEN_RETENTION_SECS: i64 = 30 * 24 * 60 * 60;

/// Forgets activity ids older than [`SEEN_RETENTION_SECS`]; run by housekeeping. Returns how
/// many were forgotten.
pub async fn sweep_seen(db: &crate::db::Db) -> Result<u64> {
    let done = sqlx::query("DELETE FROM federation_seen_activities WHERE received_at < $1")
        .bind(db.now() - SEEN_RETENTION_SECS)
        .execute(&db.pool)
        .await?;
    Ok(done.rows_affected())
}

/// Records `activity_id`; false if it was there already.
pub(crate) async fn record_seen(tx: &mut Tx<'_>, activity_id: &Id, now: i64) -> Result<bool> {
    let row = sqlx::query(
        "INSERT INTO federation_seen_activities (activity_id, received_at) VALUES ($1, $2) \
         ON CONFLICT (activity_id) DO NOTHING RETURNING activity_id",
    )
    .bind(activity_id.as_str())
    .bind(now)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row.is_some())
}

/// Queues `jobs` inside `tx`, one per target inbox, destined for the inbox's host so that the
/// queue's per-destination state tracks each remote instance.
pub async fn enqueue_deliveries(
    tx: &mut Tx<'_>,
    now: i64,
    jobs: &[DeliveryJob],
    tag: &str,
) -> Result<()> {
    for job in jobs {
        let payload = serde_json::to_string(job).map_err(anyhow::Error::from)?;
        let key = format!("ap:{}:{}", job.activity_id, job.inbox);
        jobs::enqueue(
            tx,
            now,
            &NewJob {
                kind: DELIVERY_KIND,
                key: &key,
                destination: &job.host(),
                tag,
                payload: &payload,
                max_attempts: DELIVERY_ATTEMPTS,
            },
        )
        .await?;
    }
    Ok(())
}

/// A stable id for our answer to `original`: the same Follow always gets the same Accept id,
/// so a redelivered Follow never yields a second, different Accept.
pub(crate) fn answer_id(actor: &Id, kind: &str, original: &Id) -> Result<Id> {
    let digest = sha2::Sha256::digest(original.as_str().as_bytes());
    let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    actor
        .with_suffix(&format!("#{kind}-{hex}"))
        .map_err(AppError::from)
}

/// What announcing a new Room needs before its transaction starts: the Room actor's key (made
/// on first need, which is slow and must not happen while the transaction holds the lock).
pub struct RoomAnnouncement {
    room_key_pem: String,
}

/// Makes the key of the Room that will be at `slug`.
pub async fn prepare_room_announcement(
    core: &Core,
    space: &Space,
    slug: &Slug,
) -> Result<RoomAnnouncement> {
    let directory = LocalDirectory::new(core.clone());
    let id = directory.room_id(space, slug).map_err(AppError::from)?;
    Ok(RoomAnnouncement {
        room_key_pem: directory.public_key_pem(&id).await?,
    })
}

/// Queues, inside the Room's transaction, the Space's `Announce` of `Create{Room}` to its
/// followers (FEP-1b12: `audience` = the Space), one delivery per remote shared inbox.
pub async fn announce_room_created(
    core: &Core,
    tx: &mut Tx<'_>,
    prepared: RoomAnnouncement,
    space: &Space,
    room: &Room,
) -> Result<()> {
    let directory = LocalDirectory::new(core.clone());
    let space_id = directory.space_id(space).map_err(AppError::from)?;
    let document = ActorDocument::local(
        directory
            .room_actor(space, room, prepared.room_key_pem, 0)
            .map_err(AppError::from)?,
    )
    .map_err(AppError::from)?;
    let create = Activity::Create(Publish {
        id: document
            .id
            .with_suffix(&format!("#create-{}", room.created_at))
            .map_err(AppError::from)?,
        actor: space_id.clone(),
        object: Embedded::Object(Box::new(Object::Actor(Box::new(document)))),
        to: vec![PUBLIC.to_owned()],
        cc: vec![followers_id(&space_id)?.to_string()],
        audience: Some(space_id.clone()),
        published: None,
    });
    announce(core, tx, &directory, &space_id, create).await?;
    // For Mastodon-like timelines, which show Notes and not Groups: a Note with the Room's
    // name and link, announced by the Space the same way.
    let room_id = directory
        .room_id(space, &room.slug)
        .map_err(AppError::from)?;
    let content = maud::html! {
        p { "A new Room in " (space.name) ": " a href=(room_id.as_str()) { (room.name) } }
        @if !room.topic.trim().is_empty() { p { (room.topic.trim()) } }
    }
    .into_string();
    let note = Note {
        kind: NoteKind::Note,
        id: room_id
            .with_suffix(&format!("#note-{}", room.created_at))
            .map_err(AppError::from)?,
        attributed_to: space_id.clone(),
        name: None,
        content: Some(content),
        summary: None,
        url: Some(room_id),
        to: vec![PUBLIC.to_owned()],
        cc: vec![followers_id(&space_id)?.to_string()],
        audience: Some(space_id.clone()),
        published: None,
    };
    announce_object(
        core,
        tx,
        &directory,
        &space_id,
        &note.id.clone(),
        Announced::Note(note),
    )
    .await
}

/// What announcing a changed Room needs before its transaction: the key of the Room's actor
/// at its (possibly new) address, when it is listed after the change.
pub async fn prepare_room_update(
    core: &Core,
    space: &Space,
    slug: &Slug,
    listed: bool,
) -> Result<Option<RoomAnnouncement>> {
    if listed {
        Ok(Some(prepare_room_announcement(core, space, slug).await?))
    } else {
        Ok(None)
    }
}

/// Queues, inside the change's transaction, what followers must hear of a Room changed from
/// `before` to `after`: an `Update` of the Room when it stays listed at the same address; a
/// `Delete` when it becomes unlisted or moves (its actor id is its address); a `Create` when
/// it becomes listed or arrives at its new address.
pub async fn announce_room_changed(
    core: &Core,
    tx: &mut Tx<'_>,
    prepared: Option<RoomAnnouncement>,
    space: &Space,
    before: &Room,
    after: &Room,
) -> Result<()> {
    let moved = before.slug != after.slug;
    if before.listed && (moved || !after.listed) {
        announce_room_deleted(core, tx, space, before).await?;
    }
    let Some(prepared) = prepared.filter(|_| after.listed) else {
        return Ok(());
    };
    if moved || !before.listed {
        return announce_room_created(core, tx, prepared, space, after).await;
    }
    let head_count = core.sfu.as_ref().map_or(0, |sfu| {
        sfu.room_presence(&super::gathering::media_room_id(after))
    });
    announce_room_update(core, tx, prepared, space, after, head_count).await
}

/// Queues the Space's `Announce` of `Update{Room}` with the Room as it is, `head_count` inside.
async fn announce_room_update(
    core: &Core,
    tx: &mut Tx<'_>,
    prepared: RoomAnnouncement,
    space: &Space,
    room: &Room,
    head_count: usize,
) -> Result<()> {
    let directory = LocalDirectory::new(core.clone());
    let space_id = directory.space_id(space).map_err(AppError::from)?;
    let document = ActorDocument::local(
        directory
            .room_actor(space, room, prepared.room_key_pem, head_count)
            .map_err(AppError::from)?,
    )
    .map_err(AppError::from)?;
    let update = Activity::Update(Publish {
        // Unique per change: two edits within a second are two activities.
        id: document
            .id
            .with_suffix(&format!(
                "#update-{}-{}",
                core.db.now(),
                &crate::domain::random_token()[..12]
            ))
            .map_err(AppError::from)?,
        actor: space_id.clone(),
        object: Embedded::Object(Box::new(Object::Actor(Box::new(document)))),
        to: vec![PUBLIC.to_owned()],
        cc: vec![followers_id(&space_id)?.to_string()],
        audience: Some(space_id.clone()),
        published: None,
    });
    announce(core, tx, &directory, &space_id, update).await
}

/// Makes (or reads) the Space's actor as it is, before a change's transaction.
pub async fn prepare_space_update(
    core: &Core,
    space: &Space,
) -> Result<Option<convene_federation::protocol::actor::LocalActor>> {
    LocalDirectory::new(core.clone())
        .actor_at(&ActorPath::Space(space.slug.to_string()))
        .await
        .map_err(AppError::from)
}

/// Queues, inside the change's transaction, an `Update` of the Space's actor with its new
/// name, description and listing to its followers, as Mastodon and Lemmy send profile changes.
pub async fn announce_space_updated(
    core: &Core,
    tx: &mut Tx<'_>,
    prepared: Option<convene_federation::protocol::actor::LocalActor>,
    fields: &crate::domain::spaces::SpaceFields,
) -> Result<()> {
    let Some(mut actor) = prepared else {
        return Ok(());
    };
    actor.name = Some(fields.name.to_string());
    actor.summary = crate::activitypub::summary_html(&fields.description);
    actor.manually_approves_followers = !fields.listed;
    let space_id = actor.id.clone();
    let update = Activity::Update(Publish {
        id: space_id
            .with_suffix(&format!(
                "#update-{}-{}",
                core.db.now(),
                &crate::domain::random_token()[..12]
            ))
            .map_err(AppError::from)?,
        actor: space_id.clone(),
        object: Embedded::Object(Box::new(Object::Actor(Box::new(
            ActorDocument::local(actor).map_err(AppError::from)?,
        )))),
        to: vec![PUBLIC.to_owned()],
        cc: vec![followers_id(&space_id)?.to_string()],
        audience: None,
        published: None,
    });
    let jobs = fan_out(
        &LocalDirectory::new(core.clone()),
        &update,
        Vec::new(),
        &super::partners::policy(&core.db).await?,
        &core.settings.domain(),
    )
    .await
    .map_err(AppError::from)?;
    enqueue_deliveries(tx, core.db.now(), &jobs, "federation:update").await
}

/// How often the head counts of the gatherings this process holds are compared with what the
/// followers last heard.
const HEAD_COUNT_EVERY: std::time::Duration = std::time::Duration::from_secs(2);
/// The least time, by the instance's clock, between two head-count Updates of one Room: people
/// coming and going must not become a stream of deliveries.
pub const HEAD_COUNT_MIN_GAP: i64 = 30;

/// Tells the followers of each listed Room's Space how many people are inside when that
/// changes (an `Update` of the Room), at most once per [`HEAD_COUNT_MIN_GAP`] per Room. Counts
/// come from this process's SFU, so with several processes each announces the gatherings it
/// holds. What followers were last told is kept in memory: after a restart, Rooms with people
/// inside are announced again, which is harmless.
pub fn spawn_head_count_announcer(
    core: Core,
    mut shutdown: crate::shutdown::Signal,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        // Room id → (count announced, when).
        let mut told: std::collections::HashMap<i64, (usize, i64)> =
            std::collections::HashMap::new();
        loop {
            if let Some(sfu) = &core.sfu {
                let inside: std::collections::HashMap<i64, usize> = sfu
                    .presence()
                    .into_iter()
                    .filter_map(|(id, n)| Some((id.strip_prefix("room-")?.parse().ok()?, n)))
                    .collect();
                let rooms: std::collections::BTreeSet<i64> =
                    inside.keys().chain(told.keys()).copied().collect();
                let now = core.db.now();
                for room_id in rooms {
                    let count = inside.get(&room_id).copied().unwrap_or(0);
                    let (last, at) = told.get(&room_id).copied().unwrap_or((0, i64::MIN));
                    if count == last || now.saturating_sub(at) < HEAD_COUNT_MIN_GAP {
                        continue;
                    }
                    match announce_head_count(&core, room_id, count).await {
                        Ok(()) if count == 0 => {
                            told.remove(&room_id);
                        }
                        Ok(()) => {
                            told.insert(room_id, (count, now));
                        }
                        Err(err) => {
                            tracing::warn!(error = %err, room = room_id, "announcing a head count");
                        }
                    }
                }
            }
            tokio::select! {
                () = tokio::time::sleep(HEAD_COUNT_EVERY) => {}
                () = shutdown.wait() => break,
            }
        }
    })
}

/// Queues an `Update` of the Room `room_id` with `head_count` inside, if it is still listed.
async fn announce_head_count(core: &Core, room_id: i64, head_count: usize) -> Result<()> {
    let Some(room) = crate::domain::rooms::by_id(&core.db, room_id).await? else {
        return Ok(());
    };
    if !room.listed {
        return Ok(());
    }
    let space = crate::domain::spaces::by_id(&core.db, room.space_id).await?;
    // Most Spaces have no followers elsewhere: then there is nobody to tell, and no Room key
    // to make.
    let space_id = LocalDirectory::new(core.clone())
        .space_id(&space)
        .map_err(AppError::from)?;
    let followed = sqlx::query(
        "SELECT 1 AS one FROM federation_followers \
         WHERE local_actor = $1 AND accepted_at IS NOT NULL LIMIT 1",
    )
    .bind(space_id.as_str())
    .fetch_optional(&core.db.pool)
    .await?;
    if followed.is_none() {
        return Ok(());
    }
    let prepared = prepare_room_announcement(core, &space, &room.slug).await?;
    let mut tx = core.db.begin_write().await?;
    announce_room_update(core, &mut tx, prepared, &space, &room, head_count).await?;
    core.queue.commit(tx).await
}

/// Queues, inside the deletion's transaction, the Space's `Announce` of `Delete{Room}`.
pub async fn announce_room_deleted(
    core: &Core,
    tx: &mut Tx<'_>,
    space: &Space,
    room: &Room,
) -> Result<()> {
    let directory = LocalDirectory::new(core.clone());
    let space_id = directory.space_id(space).map_err(AppError::from)?;
    let room_id = directory
        .room_id(space, &room.slug)
        .map_err(AppError::from)?;
    let delete = Activity::Delete(Delete {
        id: room_id
            .with_suffix(&format!("#delete-{}", core.db.now()))
            .map_err(AppError::from)?,
        actor: space_id.clone(),
        object: room_id,
        to: vec![PUBLIC.to_owned()],
        cc: vec![followers_id(&space_id)?.to_string()],
        audience: Some(space_id.clone()),
    });
    announce(core, tx, &directory, &space_id, delete).await
}

async fn announce(
    core: &Core,
    tx: &mut Tx<'_>,
    directory: &LocalDirectory,
    space_id: &Id,
    inner: Activity,
) -> Result<()> {
    let inner_id = inner.id().clone();
    announce_object(
        core,
        tx,
        directory,
        space_id,
        &inner_id,
        Announced::Activity(inner),
    )
    .await
}

/// Queues the Space's `Announce` of `object` (whose id is `object_id`) to its followers.
async fn announce_object(
    core: &Core,
    tx: &mut Tx<'_>,
    directory: &LocalDirectory,
    space_id: &Id,
    object_id: &Id,
    object: Announced,
) -> Result<()> {
    let announce = Activity::Announce(Announce::new(
        answer_id(space_id, "announce", object_id)?,
        space_id.clone(),
        &followers_id(space_id)?,
        object,
    ));
    let jobs = fan_out(
        directory,
        &announce,
        Vec::new(),
        &super::partners::policy(&core.db).await?,
        &core.settings.domain(),
    )
    .await
    .map_err(AppError::from)?;
    enqueue_deliveries(tx, core.db.now(), &jobs, "federation:announce").await
}

fn followers_id(actor: &Id) -> Result<Id> {
    actor.with_suffix("/followers").map_err(AppError::from)
}

#[cfg(test)]
mod tests {
    use super::{SEEN_RETENTION_SECS, record_seen, sweep_seen};
    use convene_federation::protocol::Id;
    use sqlx::Row;

    /// Housekeeping forgets activity ids older than the retention and keeps the rest, so the
    /// table stops growing while a redelivery inside the retention is still recognised.
    #[tokio::test]
    async fn old_activity_ids_are_forgotten_and_recent_ones_kept() -> anyhow::Result<()> {
        let dir = std::env::temp_dir().join(format!("convene-seen-{}", std::process::id()));
        let db = crate::db::Db::connect(&format!("sqlite://{}/t.db", dir.display())).await?;
        db.migrate().await?;
        let old = Id::parse("https://a.example/activities/old")?;
        let recent = Id::parse("https://a.example/activities/recent")?;
        let mut tx = db.begin_write().await?;
        assert!(record_seen(&mut tx, &old, db.now()).await?);
        tx.commit().await?;
        db.clock.advance(SEEN_RETENTION_SECS - 60);
        let mut tx = db.begin_write().await?;
        assert!(record_seen(&mut tx, &recent, db.now()).await?);
        tx.commit().await?;
        // Not yet a month after the first.
        assert_eq!(sweep_seen(&db).await?, 0);
        db.clock.advance(120);
        assert_eq!(sweep_seen(&db).await?, 1);
        let left: Vec<String> = sqlx::query("SELECT activity_id FROM federation_seen_activities")
            .fetch_all(&db.pool)
            .await?
            .iter()
            .map(|row| row.try_get("activity_id"))
            .collect::<Result<_, _>>()?;
        assert_eq!(left, vec![recent.to_string()]);
        // The kept id still makes a redelivery a duplicate.
        let mut tx = db.begin_write().await?;
        assert!(!record_seen(&mut tx, &recent, db.now()).await?);
        tx.commit().await?;
        db.close().await;
        let _ = std::fs::remove_dir_all(dir);
        Ok(())
    }
}
