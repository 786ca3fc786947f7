//! Rooms: create, change (name, address, access, capacity), delete, and unlock with a code.

use convene_media::CloseReason;

use super::{Actor, Core, gathering};
use crate::domain::rooms::{self, Room, RoomFields};
use crate::domain::spaces::Space;
use crate::domain::values::Slug;
use crate::error::Result;

/// Adds a Room to the Space (members).
pub async fn create(
    core: &Core,
    actor: Actor<'_>,
    space: &Space,
    slug: &Slug,
    fields: &RoomFields,
) -> Result<Room> {
    actor.require_member(&core.db, space).await?;
    let room = rooms::create(&core.db, space, slug, fields).await?;
    core.changed();
    Ok(room)
}

/// Changes a Room (members). When its access becomes stricter (members-only, locked, or a new
/// code), everyone inside who may no longer enter leaves at once, and media tokens issued
/// before the change stop working.
pub async fn update(
    core: &Core,
    actor: Actor<'_>,
    space: &Space,
    room: &Room,
    slug: &Slug,
    fields: &RoomFields,
) -> Result<()> {
    actor.require_member(&core.db, space).await?;
    rooms::update(&core.db, room, slug, fields).await?;
    core.changed();
    gathering::reconcile_room(core, room.id, CloseReason::AccessLost).await
}

/// Deletes a Room (members); its gathering ends for everyone in it.
pub async fn delete(core: &Core, actor: Actor<'_>, space: &Space, room: &Room) -> Result<()> {
    actor.require_member(&core.db, space).await?;
    rooms::delete(&core.db, room).await?;
    core.changed();
    if let Some(sfu) = &core.sfu {
        sfu.end_room(&gathering::media_room_id(room));
    }
    Ok(())
}

/// Checks an access code for the session `session_hash`, rate limited per `client_key`.
pub async fn unlock(
    core: &Core,
    room: &Room,
    client_key: &str,
    session_hash: &str,
    attempt: &str,
) -> Result<()> {
    rooms::unlock(&core.db, room, client_key, session_hash, attempt).await
}
