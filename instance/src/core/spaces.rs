//! Spaces and their members: create and edit a Space, invite, accept, decline, revoke, remove
//! a member, leave.

use convene_media::CloseReason;

use sqlx::Row;

use super::{Actor, Core, gathering};
use crate::domain::invitations::{self, Invitation};
use crate::domain::passports::Passport;
use crate::domain::spaces::{self, Role, Space, SpaceFields};
use crate::domain::values::{Email, Slug};
use crate::error::{AppError, Result};
use crate::mail;

/// Invitations one Space may send in [`INVITATION_WINDOW`] seconds: a large community's
/// mail-out fits, a runaway script does not turn the instance into a spam source.
pub const INVITATIONS_PER_HOUR: i64 = 100;
const INVITATION_WINDOW: i64 = 3600;

/// Creates a Space owned by `by`, if the instance lets them create Spaces.
pub async fn create(
    core: &Core,
    actor: Actor<'_>,
    owner: &Passport,
    slug: &Slug,
    fields: &SpaceFields,
) -> Result<Space> {
    if let Actor::Person(by) = actor
        && (by.id != owner.id || !spaces::may_create(by, core.settings.open_space_creation))
    {
        return Err(AppError::Forbidden(
            "Only the instance's operators may create Spaces here.",
        ));
    }
    let space = spaces::create(&core.db, owner, slug, fields).await?;
    core.changed();
    Ok(space)
}

/// Changes a Space's name, description, listing and entrance Room (owners).
pub async fn update(
    core: &Core,
    actor: Actor<'_>,
    space: &Space,
    fields: &SpaceFields,
    entrance_room_id: Option<i64>,
) -> Result<()> {
    actor.require_owner(&core.db, space).await?;
    let prepared = super::followers::prepare_space_update(core, space).await?;
    let mut tx = core.db.begin_write().await?;
    spaces::update(&mut tx, space, fields, entrance_room_id).await?;
    super::followers::announce_space_updated(core, &mut tx, prepared, fields).await?;
    core.queue.commit(tx).await?;
    core.changed();
    Ok(())
}

/// Invites `email` to the Space (owners) and queues the invitation mail.
pub async fn invite(
    core: &Core,
    by: &Passport,
    space: &Space,
    email: &Email,
    role: Role,
) -> Result<Invitation> {
    spaces::require_owner(&core.db, space, by).await?;
    let sent: i64 = sqlx::query(
        "SELECT COUNT(*) AS n FROM invitations WHERE space_id = $1 AND created_at > $2",
    )
    .bind(space.id)
    .bind(core.db.now() - INVITATION_WINDOW)
    .fetch_one(&core.db.pool)
    .await?
    .try_get("n")?;
    if sent >= INVITATIONS_PER_HOUR {
        return Err(AppError::RateLimited {
            retry_after: u64::try_from(INVITATION_WINDOW).unwrap_or(3600),
        });
    }
    // The invitation and its mail commit together: no invitation without its mail, and no
    // mail for an invitation that was rolled back.
    let mut tx = core.db.begin_write().await?;
    let (invitation, secret) =
        invitations::create(&mut tx, core.db.now(), space, by, email, role).await?;
    let settings = &core.settings;
    let link = settings.url(&convene_web::routes::invitation(&secret));
    let body = format!(
        "Hello,\n\n{} ({}) invited you to join the Space \"{}\" on {} as {}.\n\n\
         Accept or decline here:\n{link}\n\n\
         The invitation is valid for 14 days. If you did not expect it, ignore this email.\n",
        by.display_name,
        by.address(&settings.domain()),
        space.name,
        settings.instance_name,
        role.as_str(),
    );
    core.mailer
        .enqueue_in(
            &mut tx,
            mail::Email {
                to: email.as_str(),
                subject: &format!("Invitation to {} on {}", space.name, settings.instance_name),
                body: &body,
                kind: "invitation",
            },
        )
        .await?;
    core.queue.commit(tx).await?;
    Ok(invitation)
}

/// Withdraws a pending invitation (owners).
pub async fn revoke_invitation(
    core: &Core,
    actor: Actor<'_>,
    space: &Space,
    id: i64,
) -> Result<()> {
    actor.require_owner(&core.db, space).await?;
    invitations::revoke(&core.db, space, id).await
}

/// `by` accepts an invitation sent to their address and becomes a member.
pub async fn accept_invitation(
    core: &Core,
    by: &Passport,
    invitation: &Invitation,
) -> Result<Space> {
    let space = invitations::accept(&core.db, invitation, by).await?;
    core.changed();
    Ok(space)
}

/// Whoever holds the link declines the invitation.
pub async fn decline_invitation(core: &Core, invitation: &Invitation) -> Result<()> {
    invitations::decline(&core.db, invitation).await
}

/// Removes `target` from the Space: owners remove anyone, a member removes themself (leaves).
/// The person's media ends in every Room of the Space they may no longer enter.
pub async fn remove_member(
    core: &Core,
    actor: Actor<'_>,
    space: &Space,
    target: &Passport,
) -> Result<()> {
    if actor.passport_id() != Some(target.id) {
        actor.require_owner(&core.db, space).await?;
    }
    spaces::remove_member(&core.db, space, target).await?;
    core.changed();
    gathering::reconcile_space(core, space, CloseReason::Removed).await
}
