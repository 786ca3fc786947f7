//! Rooms: create, change (name, address, access, capacity), delete, and unlock with a code.
//! Creating, changing and deleting a listed Room is announced to the Space's followers elsewhere.

use convene_media::CloseReason;

use super::{Actor, Core, followers, gathering};
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
    // A listed Room is announced to the Space's followers; its key is made before the
    // transaction, which then holds only quick writes.
    let announcement = if fields.listed {
        Some(followers::prepare_room_announcement(core, space, slug).await?)
    } else {
        None
    };
    let mut tx = core.db.begin_write().await?;
    let room = rooms::create(&mut tx, core.db.now(), space, slug, fields).await?;
    if let Some(announcement) = announcement {
        followers::announce_room_created(core, &mut tx, announcement, space, &room).await?;
    }
    core.queue.commit(tx).await?;
    core.changed();
    Ok(room)
}

/// Changes a Room (members), and tells the Space's followers (an `Update`, or a `Delete` and
/// a `Create` when it moves or its listing changes). When its access becomes stricter (members-only, locked, or a new
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
    fields.check()?;
    let prepared = followers::prepare_room_update(core, space, slug, fields.listed).await?;
    let mut tx = core.db.begin_write().await?;
    rooms::update(&mut tx, room, slug, fields).await?;
    let after = Room {
        slug: slug.clone(),
        name: fields.name.clone(),
        topic: fields.topic.clone(),
        access: fields.access,
        access_code: fields.access_code.clone(),
        listed: fields.listed,
        capacity: fields.capacity,
        ..room.clone()
    };
    followers::announce_room_changed(core, &mut tx, prepared, space, room, &after).await?;
    core.queue.commit(tx).await?;
    core.changed();
    gathering::reconcile_room(core, room.id, CloseReason::AccessLost).await
}

/// Deletes a Room (members); its gathering ends for everyone in it.
pub async fn delete(core: &Core, actor: Actor<'_>, space: &Space, room: &Room) -> Result<()> {
    actor.require_member(&core.db, space).await?;
    let mut tx = core.db.begin_write().await?;
    rooms::delete(&mut tx, room).await?;
    if room.listed {
        followers::announce_room_deleted(core, &mut tx, space, room).await?;
    }
    core.queue.commit(tx).await?;
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
