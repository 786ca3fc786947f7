//! Membership across instances (issue 9), in ActivityPub.
//!
//! A Passport's home instance A sends a signed `Join` from the Passport to a Room's actor on
//! B. B answers from the Room: `Accept` for open and locked Rooms (the access code is still
//! asked at the door, like anyone's); for a members-only Room a `TentativeAccept`, and later
//! `Accept` or `Reject` once one of the Space's owners decided, which makes the Passport a
//! member of the Space on B. `Leave` (or `Undo` of the `Join`) ends the membership. Answers
//! are delivery jobs queued in the transaction that records the decision; activities are
//! remembered by id so a replay changes nothing.

use convene_federation::PartnerPolicy;
use convene_federation::delivery::{DeliveryJob, Recipient, plan};
use convene_federation::protocol::activity::{Action, Activity, Response};
use convene_federation::protocol::actor::Actor;
use convene_federation::protocol::{Embedded, Id};
use convene_federation::text::plain_text;
use convene_federation::urls::authority;
use sqlx::Row;

use super::Core;
use super::followers::{answer_id, apply_once, enqueue_deliveries};
use crate::activitypub::{ActorPath, LocalDirectory, person_path};
use crate::domain::passports::{self, Passport};
use crate::domain::rooms::{self, Access, Room};
use crate::domain::spaces::{self, Role, Space};
use crate::error::{AppError, Result};

/// What B answered a Join, as A keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Accept,
    TentativeAccept,
    Reject,
}

impl Answer {
    fn state(self) -> &'static str {
        match self {
            Answer::Accept => "accepted",
            Answer::TentativeAccept => "waiting",
            Answer::Reject => "rejected",
        }
    }
}

/// The local Room a Join names, with its Space, if its actor is public.
async fn local_room(core: &Core, id: &Id) -> Result<(Space, Room)> {
    let Some(ActorPath::Room { space, room }) = LocalDirectory::new(core.clone()).local_path(id)
    else {
        return Err(AppError::NotFound);
    };
    let space = spaces::by_slug(&core.db, &space).await?;
    let room = rooms::by_slug(&core.db, &space, &room).await?;
    if !room.listed {
        return Err(AppError::NotFound);
    }
    Ok((space, room))
}

/// B: `joiner` (verified: the signer, whose actor document was fetched) asks to join a Room.
pub async fn receive_join(core: &Core, join: &Action, joiner: &Actor) -> Result<()> {
    if joiner.id != join.actor {
        return Err(AppError::BadRequest(
            "the Join's actor is not its signer".into(),
        ));
    }
    let (space, room) = local_room(core, &join.object).await?;
    let passport = super::admission::remember_passport(core, joiner).await?;
    let directory = LocalDirectory::new(core.clone());
    let room_id = directory
        .room_id(&space, &room.slug)
        .map_err(AppError::from)?;
    // The Room signs its answers: make its key before the transaction.
    directory.public_key_pem(&room_id).await?;
    let member = spaces::is_member(&core.db, &space, Some(&passport)).await?;
    let blocked =
        super::passport_blocks::is_blocked(&core.db, passport.handle.as_str(), &passport.domain)
            .await?;
    let (answer, reason) = match room.access {
        _ if blocked => (
            Answer::Reject,
            Some("This Passport is blocked on the Room's instance."),
        ),
        Access::Open | Access::Locked => (Answer::Accept, None),
        Access::Members if member => (Answer::Accept, None),
        Access::Members => (Answer::TentativeAccept, None),
    };
    let policy = super::partners::policy(&core.db).await?;
    let joining = Joining {
        join_id: join.id.clone(),
        // Held for the owners: a members-only Room and a Passport that is not a member yet.
        request: (answer == Answer::TentativeAccept).then(|| JoinRequestRow {
            space: space.id,
            room: room.id,
            passport: passport.id,
            inbox: joiner.inbox.clone(),
        }),
        jobs: join_answer_jobs(core, &policy, &room_id, join, &joiner.inbox, answer, reason)?,
        now: core.db.now(),
    };
    let applied = apply_once(core, joining.join_id.clone(), joining, |tx, j| {
            Box::pin(async move {
                if let Some(request) = &j.request {
                    sqlx::query(
                        "INSERT INTO join_requests (space_id, room_id, passport_id, join_id, inbox, created_at) \
                         VALUES ($1, $2, $3, $4, $5, $6) \
                         ON CONFLICT (space_id, passport_id) DO UPDATE SET room_id = $2, join_id = $4, inbox = $5",
                    )
                    .bind(request.space)
                    .bind(request.room)
                    .bind(request.passport)
                    .bind(j.join_id.as_str())
                    .bind(request.inbox.as_str())
                    .bind(j.now)
                    .execute(&mut **tx)
                    .await?;
                }
                enqueue_deliveries(tx, j.now, &j.jobs, "federation:join").await?;
                Ok(())
            })
        })
        .await?;
    if applied {
        core.queue.wake();
        if blocked {
            tracing::info!(joiner = %join.actor, room = %join.object, "join from a blocked Passport rejected");
        } else {
            tracing::info!(joiner = %join.actor, room = %join.object, ?answer, "join from another instance");
        }
    }
    Ok(())
}

/// A `Join` from another instance as [`receive_join`] applies it: the request held for the
/// owners, if it is, and the Room's answer.
struct Joining {
    join_id: Id,
    request: Option<JoinRequestRow>,
    jobs: Vec<DeliveryJob>,
    now: i64,
}

struct JoinRequestRow {
    space: i64,
    room: i64,
    passport: i64,
    inbox: Id,
}

/// The deliveries of the Room's answer to `join`.
fn join_answer_jobs(
    core: &Core,
    policy: &PartnerPolicy,
    room_id: &Id,
    join: &Action,
    inbox: &Id,
    answer: Answer,
    reason: Option<&str>,
) -> Result<Vec<DeliveryJob>> {
    let kind = match answer {
        Answer::Accept => "accept",
        Answer::TentativeAccept => "tentative",
        Answer::Reject => "reject",
    };
    let mut response = Response::new(
        answer_id(room_id, kind, &join.id)?,
        room_id.clone(),
        Activity::Join(join.clone()),
    );
    response.summary = reason.map(str::to_owned);
    let activity = match answer {
        Answer::Accept => Activity::Accept(response),
        Answer::TentativeAccept => Activity::TentativeAccept(response),
        Answer::Reject => Activity::Reject(response),
    };
    plan(
        &activity,
        &room_id.with_suffix("#main-key").map_err(AppError::from)?,
        [Recipient {
            inbox: inbox.clone(),
            shared_inbox: None,
        }],
        policy,
        &core.settings.domain(),
    )
    .map_err(AppError::from)
}

/// B: `actor` leaves (a `Leave` of the Room, or an `Undo` of its `Join`): its membership of
/// the Room's Space and any waiting request end.
pub async fn receive_leave(core: &Core, activity_id: &Id, actor: &Id, room: &Id) -> Result<()> {
    let (space, _room) = local_room(core, room).await?;
    let leave = Leaving {
        actor: actor.clone(),
        host: authority(actor).unwrap_or_default(),
        space: space.id,
    };
    let applied = apply_once(core, activity_id.clone(), leave, |tx, l| {
        Box::pin(async move {
            let passport: Option<i64> =
                sqlx::query("SELECT id FROM passports WHERE actor_url = $1 AND domain = $2")
                    .bind(l.actor.as_str())
                    .bind(&l.host)
                    .fetch_optional(&mut **tx)
                    .await?
                    .map(|r| r.try_get("id"))
                    .transpose()?;
            if let Some(passport) = passport {
                for table in ["join_requests", "space_members"] {
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DELETE FROM {table} WHERE space_id = $1 AND passport_id = $2"
                    )))
                    .bind(l.space)
                    .bind(passport)
                    .execute(&mut **tx)
                    .await?;
                }
            }
            Ok(())
        })
    })
    .await?;
    if !applied {
        return Ok(());
    }
    core.changed();
    super::gathering::reconcile_space(core, &space, convene_media::CloseReason::Removed).await
}

/// A `Leave` as [`receive_leave`] applies it.
struct Leaving {
    actor: Id,
    host: String,
    space: i64,
}

/// A request to join a Space from another instance, waiting for its owners.
#[derive(Debug, Clone)]
pub struct JoinRequest {
    pub id: i64,
    pub passport: Passport,
    pub room_name: String,
    pub created_at: i64,
}

/// B: the Space's waiting requests, oldest first.
pub async fn requests(core: &Core, space: &Space) -> Result<Vec<JoinRequest>> {
    let rows = sqlx::query(
        "SELECT j.id, j.passport_id, j.created_at, r.name AS room_name FROM join_requests j \
         JOIN rooms r ON r.id = j.room_id WHERE j.space_id = $1 ORDER BY j.created_at, j.id",
    )
    .bind(space.id)
    .fetch_all(&core.db.pool)
    .await?;
    let mut out = Vec::new();
    for row in rows {
        let Some(passport) = passports::by_id(&core.db, row.try_get("passport_id")?).await? else {
            continue;
        };
        out.push(JoinRequest {
            id: row.try_get("id")?,
            passport,
            room_name: row.try_get("room_name")?,
            created_at: row.try_get("created_at")?,
        });
    }
    Ok(out)
}

/// B: an owner of `space` lets the request in (the Passport becomes a member) or turns it
/// down; the Room's answer goes to the Passport's instance.
pub async fn decide(
    core: &Core,
    owner: &Passport,
    space: &Space,
    request_id: i64,
    approve: bool,
) -> Result<Passport> {
    spaces::require_owner(&core.db, space, owner).await?;
    let row = sqlx::query(
        "SELECT room_id, passport_id, join_id, inbox FROM join_requests WHERE id = $1 AND space_id = $2",
    )
    .bind(request_id)
    .bind(space.id)
    .fetch_optional(&core.db.pool)
    .await?
    .ok_or(AppError::NotFound)?;
    let passport = passports::by_id(&core.db, row.try_get("passport_id")?)
        .await?
        .ok_or(AppError::NotFound)?;
    let room = rooms::by_id(&core.db, row.try_get("room_id")?)
        .await?
        .ok_or(AppError::NotFound)?;
    let directory = LocalDirectory::new(core.clone());
    let room_id = directory
        .room_id(space, &room.slug)
        .map_err(AppError::from)?;
    let actor_url: Option<String> = sqlx::query("SELECT actor_url FROM passports WHERE id = $1")
        .bind(passport.id)
        .fetch_one(&core.db.pool)
        .await?
        .try_get("actor_url")?;
    let join = Action::new(
        Id::parse(&row.try_get::<String, _>("join_id")?).map_err(AppError::from)?,
        Id::parse(actor_url.as_deref().unwrap_or_default()).map_err(AppError::from)?,
        room_id.clone(),
    );
    let inbox = Id::parse(&row.try_get::<String, _>("inbox")?).map_err(AppError::from)?;
    let (answer, reason) = if approve {
        (Answer::Accept, None)
    } else {
        (
            Answer::Reject,
            Some("The Space's owners did not accept the request."),
        )
    };
    let policy = super::partners::policy(&core.db).await?;
    let jobs = join_answer_jobs(core, &policy, &room_id, &join, &inbox, answer, reason)?;
    let now = core.db.now();
    let mut tx = core.db.begin_write().await?;
    let taken = sqlx::query("DELETE FROM join_requests WHERE id = $1")
        .bind(request_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if taken == 0 {
        return Err(AppError::NotFound);
    }
    if approve {
        sqlx::query(
            "INSERT INTO space_members (space_id, passport_id, role, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (space_id, passport_id) DO NOTHING",
        )
        .bind(space.id)
        .bind(passport.id)
        .bind(Role::Member.as_str())
        .bind(now)
        .execute(&mut *tx)
        .await?;
    }
    enqueue_deliveries(&mut tx, now, &jobs, "federation:join").await?;
    core.queue.commit(tx).await?;
    core.changed();
    Ok(passport)
}

/// A: `passport` asks to join the Room `room` (whose actor's inbox is `inbox`) on another
/// instance; the `Join` goes out from the Passport's actor.
pub async fn ask(
    core: &Core,
    passport: &Passport,
    room: &Id,
    room_name: &str,
    inbox: &Id,
) -> Result<()> {
    let directory = LocalDirectory::new(core.clone());
    let actor = Id::parse(&core.settings.url(&person_path(passport.handle.as_str())))?;
    directory.public_key_pem(&actor).await?;
    let now = core.db.now();
    let join = Action::new(
        actor.with_suffix(&format!("#join-{}", crate::domain::random_token()))?,
        actor.clone(),
        room.clone(),
    );
    let jobs = plan(
        &Activity::Join(join.clone()),
        &actor.with_suffix("#main-key")?,
        [Recipient {
            inbox: inbox.clone(),
            shared_inbox: None,
        }],
        &super::partners::policy(&core.db).await?,
        &core.settings.domain(),
    )
    .map_err(AppError::from)?;
    if jobs.is_empty() {
        return Err(AppError::Forbidden(
            "This instance does not federate with that Room's instance.",
        ));
    }
    let mut tx = core.db.begin_write().await?;
    sqlx::query(
        "INSERT INTO memberships_elsewhere (passport_id, room, room_name, join_id, state, reason, updated_at) \
         VALUES ($1, $2, $3, $4, 'asked', NULL, $5) \
         ON CONFLICT (passport_id, room) DO UPDATE SET room_name = $3, join_id = $4, state = 'asked', \
         reason = NULL, updated_at = $5",
    )
    .bind(passport.id)
    .bind(room.as_str())
    .bind(room_name)
    .bind(join.id.as_str())
    .bind(now)
    .execute(&mut *tx)
    .await?;
    enqueue_deliveries(&mut tx, now, &jobs, "federation:join").await?;
    core.queue.commit(tx).await?;
    Ok(())
}

/// A: a Room's answer to a Join of ours. `Ok(false)` when it answers nothing of ours (another
/// use case may take it).
pub async fn receive_answer(core: &Core, answer: Answer, response: &Response) -> Result<bool> {
    let join_id = match &response.object {
        Embedded::Object(activity) => match activity.as_ref() {
            Activity::Join(join) => join.id.clone(),
            Activity::Invite(invitation) => {
                if answer == Answer::TentativeAccept {
                    return Ok(true);
                }
                return receive_invite_answer(core, answer, response, &invitation.id).await;
            }
            _ => return Ok(false),
        },
        Embedded::Id(id) => {
            if receive_invite_answer(core, answer, response, id).await? {
                return Ok(true);
            }
            id.clone()
        }
    };
    let row = sqlx::query("SELECT room, state FROM memberships_elsewhere WHERE join_id = $1")
        .bind(join_id.as_str())
        .fetch_optional(&core.db.pool)
        .await?;
    let Some(row) = row else {
        return Ok(false);
    };
    if row.try_get::<String, _>("room")? != response.actor.as_str() {
        return Err(AppError::BadRequest(
            "only the Room answers a Join to it".into(),
        ));
    }
    // A TentativeAccept arriving after the final answer changes nothing.
    let state: String = row.try_get("state")?;
    if answer == Answer::TentativeAccept && (state == "accepted" || state == "rejected") {
        return Ok(true);
    }
    let answered = Answered {
        join_id,
        state: answer.state(),
        reason: response.summary.as_deref().map(|s| plain_text(s, 300)),
        now: core.db.now(),
    };
    apply_once(core, response.id.clone(), answered, |tx, a| {
            Box::pin(async move {
                sqlx::query(
                    "UPDATE memberships_elsewhere SET state = $1, reason = $2, updated_at = $3 WHERE join_id = $4",
                )
                .bind(a.state)
                .bind(a.reason.as_deref())
                .bind(a.now)
                .bind(a.join_id.as_str())
                .execute(&mut **tx)
                .await?;
                Ok(())
            })
        })
        .await?;
    Ok(true)
}

/// A Room's answer to a Join of ours, as [`receive_answer`] stores it.
struct Answered {
    join_id: Id,
    state: &'static str,
    reason: Option<String>,
    now: i64,
}

/// A: where `passport`'s request to join `room` stands: the state (`asked`, `waiting`,
/// `accepted`, `rejected`) and the Room's reason, if any.
pub async fn standing(
    core: &Core,
    passport: &Passport,
    room: &Id,
) -> Result<Option<(String, Option<String>)>> {
    let row = sqlx::query(
        "SELECT state, reason FROM memberships_elsewhere WHERE passport_id = $1 AND room = $2",
    )
    .bind(passport.id)
    .bind(room.as_str())
    .fetch_optional(&core.db.pool)
    .await?;
    row.map(|r| Ok((r.try_get("state")?, r.try_get("reason")?)))
        .transpose()
}

/// A: the Rooms elsewhere `passport` asked to join, with where each stands, newest first:
/// (Room id, name, state).
pub async fn elsewhere(core: &Core, passport: &Passport) -> Result<Vec<(String, String, String)>> {
    sqlx::query(
        "SELECT room, room_name, state FROM memberships_elsewhere WHERE passport_id = $1 \
         ORDER BY updated_at DESC, room",
    )
    .bind(passport.id)
    .fetch_all(&core.db.pool)
    .await?
    .iter()
    .map(|r| {
        Ok((
            r.try_get("room")?,
            r.try_get("room_name")?,
            r.try_get("state")?,
        ))
    })
    .collect()
}

/// B: an owner of `space` invites `invitee` (a Passport of another instance, whose actor was
/// fetched): the Space sends it an `Invite`, and its `Accept` makes it a member.
pub async fn invite(
    core: &Core,
    owner: &Passport,
    space: &Space,
    invitee: &Actor,
) -> Result<Passport> {
    spaces::require_owner(&core.db, space, owner).await?;
    if invitee.kind != convene_federation::protocol::actor::ActorKind::Person {
        return Err(AppError::BadRequest(
            "That address is not a person's Passport.".into(),
        ));
    }
    let passport = super::admission::remember_passport(core, invitee).await?;
    if spaces::is_member(&core.db, space, Some(&passport)).await? {
        return Err(AppError::BadRequest(format!(
            "{} is a member already.",
            passport.address(&core.settings.domain())
        )));
    }
    let directory = LocalDirectory::new(core.clone());
    let space_id = directory.space_id(space).map_err(AppError::from)?;
    directory.public_key_pem(&space_id).await?;
    // The invitee is the object (the one who answers), the Space the target.
    let mut invitation = Action::new(
        space_id.with_suffix(&format!("#invite-{}", crate::domain::random_token()))?,
        space_id.clone(),
        invitee.id.clone(),
    );
    invitation.target = Some(space_id.clone());
    let jobs = plan(
        &Activity::Invite(invitation.clone()),
        &space_id.with_suffix("#main-key")?,
        [Recipient {
            inbox: invitee.inbox.clone(),
            shared_inbox: None,
        }],
        &super::partners::policy(&core.db).await?,
        &core.settings.domain(),
    )
    .map_err(AppError::from)?;
    if jobs.is_empty() {
        return Err(AppError::BadRequest(
            "This instance does not federate with that person's instance.".into(),
        ));
    }
    let now = core.db.now();
    let mut tx = core.db.begin_write().await?;
    sqlx::query(
        "INSERT INTO remote_invitations (invite_id, space_id, passport_id, created_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(invitation.id.as_str())
    .bind(space.id)
    .bind(passport.id)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    enqueue_deliveries(&mut tx, now, &jobs, "federation:invite").await?;
    core.queue.commit(tx).await?;
    Ok(passport)
}

/// A: a Space elsewhere (`space`, verified as the signer, its document fetched) invites one of
/// our Passports; the invitation waits on the person's visit page.
pub async fn receive_invite(core: &Core, invitation: &Action, space: &Actor) -> Result<()> {
    if invitation.actor != space.id
        || invitation
            .target
            .as_ref()
            .is_some_and(|target| *target != space.id)
    {
        return Err(AppError::BadRequest(
            "an Invite names the inviting Space as its actor and target".into(),
        ));
    }
    let Some(ActorPath::Person(handle)) =
        LocalDirectory::new(core.clone()).local_path(&invitation.object)
    else {
        return Err(AppError::NotFound);
    };
    let handle = crate::domain::values::Handle::parse(&handle).map_err(|_| AppError::NotFound)?;
    let passport = passports::by_handle(&core.db, &handle)
        .await?
        .ok_or(AppError::NotFound)?;
    let name = space
        .name
        .as_deref()
        .or(space.preferred_username.as_deref())
        .map(|n| plain_text(n, 80))
        .unwrap_or_default();
    let invited = Invited {
        invite_id: invitation.id.clone(),
        passport: passport.id,
        space: space.id.clone(),
        name,
        inbox: space.inbox.clone(),
        now: core.db.now(),
    };
    apply_once(core, invited.invite_id.clone(), invited, |tx, i| {
            Box::pin(async move {
                sqlx::query(
                    "INSERT INTO invitations_elsewhere (invite_id, passport_id, space, space_name, inbox, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (invite_id) DO NOTHING",
                )
                .bind(i.invite_id.as_str())
                .bind(i.passport)
                .bind(i.space.as_str())
                .bind(&i.name)
                .bind(i.inbox.as_str())
                .bind(i.now)
                .execute(&mut **tx)
                .await?;
                Ok(())
            })
        })
        .await
        .map(|_| ())
}

/// An invitation from a Space elsewhere, as [`receive_invite`] stores it.
struct Invited {
    invite_id: Id,
    passport: i64,
    space: Id,
    name: String,
    inbox: Id,
    now: i64,
}

/// An invitation to a Space elsewhere, waiting for the person's answer.
#[derive(Debug, Clone)]
pub struct InvitationElsewhere {
    pub invite_id: String,
    pub space: String,
    pub space_name: String,
}

/// A: `passport`'s invitations to Spaces elsewhere.
pub async fn invitations_elsewhere(
    core: &Core,
    passport: &Passport,
) -> Result<Vec<InvitationElsewhere>> {
    sqlx::query(
        "SELECT invite_id, space, space_name FROM invitations_elsewhere WHERE passport_id = $1 \
         ORDER BY created_at, invite_id",
    )
    .bind(passport.id)
    .fetch_all(&core.db.pool)
    .await?
    .iter()
    .map(|r| {
        Ok(InvitationElsewhere {
            invite_id: r.try_get("invite_id")?,
            space: r.try_get("space")?,
            space_name: r.try_get("space_name")?,
        })
    })
    .collect()
}

/// A: `passport` accepts or declines an invitation; the answer goes from its actor to the
/// inviting Space.
pub async fn answer_invitation(
    core: &Core,
    passport: &Passport,
    invite_id: &str,
    accept: bool,
) -> Result<String> {
    let row = sqlx::query(
        "SELECT space, space_name, inbox FROM invitations_elsewhere WHERE invite_id = $1 AND passport_id = $2",
    )
    .bind(invite_id)
    .bind(passport.id)
    .fetch_optional(&core.db.pool)
    .await?
    .ok_or(AppError::NotFound)?;
    let space = Id::parse(&row.try_get::<String, _>("space")?)?;
    let inbox = Id::parse(&row.try_get::<String, _>("inbox")?)?;
    let actor = Id::parse(&core.settings.url(&person_path(passport.handle.as_str())))?;
    LocalDirectory::new(core.clone())
        .public_key_pem(&actor)
        .await?;
    let mut invitation = Action::new(Id::parse(invite_id)?, space.clone(), actor.clone());
    invitation.target = Some(space.clone());
    let response = Response::new(
        answer_id(
            &actor,
            if accept { "accept" } else { "reject" },
            &invitation.id,
        )?,
        actor.clone(),
        Activity::Invite(invitation),
    );
    let activity = if accept {
        Activity::Accept(response)
    } else {
        Activity::Reject(response)
    };
    let jobs = plan(
        &activity,
        &actor.with_suffix("#main-key")?,
        [Recipient {
            inbox,
            shared_inbox: None,
        }],
        &super::partners::policy(&core.db).await?,
        &core.settings.domain(),
    )
    .map_err(AppError::from)?;
    let now = core.db.now();
    let mut tx = core.db.begin_write().await?;
    sqlx::query("DELETE FROM invitations_elsewhere WHERE invite_id = $1")
        .bind(invite_id)
        .execute(&mut *tx)
        .await?;
    enqueue_deliveries(&mut tx, now, &jobs, "federation:invite").await?;
    core.queue.commit(tx).await?;
    Ok(row.try_get("space_name")?)
}

/// B: a Passport elsewhere answers our Space's `Invite`. `Ok(false)` when the answer is not
/// to an invitation of ours.
async fn receive_invite_answer(
    core: &Core,
    answer: Answer,
    response: &Response,
    invite_id: &Id,
) -> Result<bool> {
    let row = sqlx::query(
        "SELECT i.space_id, i.passport_id, p.actor_url FROM remote_invitations i \
         JOIN passports p ON p.id = i.passport_id WHERE i.invite_id = $1",
    )
    .bind(invite_id.as_str())
    .fetch_optional(&core.db.pool)
    .await?;
    let Some(row) = row else {
        return Ok(false);
    };
    if row.try_get::<Option<String>, _>("actor_url")?.as_deref() != Some(response.actor.as_str()) {
        return Err(AppError::BadRequest(
            "only the invited person answers an invitation".into(),
        ));
    }
    let answered = InvitationAnswered {
        invite_id: invite_id.clone(),
        // Accepted: the person becomes a member of the Space.
        member: (answer == Answer::Accept)
            .then(|| -> Result<(i64, i64)> {
                Ok((row.try_get("space_id")?, row.try_get("passport_id")?))
            })
            .transpose()?,
        now: core.db.now(),
    };
    let applied = apply_once(core, response.id.clone(), answered, |tx, a| {
            Box::pin(async move {
                sqlx::query("DELETE FROM remote_invitations WHERE invite_id = $1")
                    .bind(a.invite_id.as_str())
                    .execute(&mut **tx)
                    .await?;
                if let Some((space, passport)) = a.member {
                    sqlx::query(
                        "INSERT INTO space_members (space_id, passport_id, role, created_at) VALUES ($1, $2, $3, $4) \
                         ON CONFLICT (space_id, passport_id) DO NOTHING",
                    )
                    .bind(space)
                    .bind(passport)
                    .bind(Role::Member.as_str())
                    .bind(a.now)
                    .execute(&mut **tx)
                    .await?;
                }
                Ok(())
            })
        })
        .await?;
    if applied {
        core.changed();
    }
    Ok(true)
}

/// A person's answer to an invitation from here, as [`receive_invite_answer`] applies it.
struct InvitationAnswered {
    invite_id: Id,
    /// The Space and Passport, when the answer makes a member.
    member: Option<(i64, i64)>,
    now: i64,
}
