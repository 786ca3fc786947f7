//! Rooms in a Space and the rules for entering them.
//!
//! | access  | a member of the Space | anyone else                                        |
//! |---------|-----------------------|----------------------------------------------------|
//! | open    | enters                | enters (a guest gives a display name)              |
//! | members | enters                | 404: the Room's existence is not revealed           |
//! | locked  | enters                | enters after the access code, remembered per session |
//!
//! Unlisted Rooms are left out of the Space page for non-members but work by link. Wrong codes
//! are limited to [`CODE_TRIES`] per client and [`ROOM_CODE_TRIES`] per Room in [`CODE_WINDOW`].

use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::spaces::Space;
use super::values::{AccessCode, DisplayName, Slug};
use super::{AppError, Result, flag};
use crate::db::Db;
use crate::error::is_unique_violation;

pub const CODE_TRIES: i64 = 5;
pub const ROOM_CODE_TRIES: i64 = 100;
pub const CODE_WINDOW: i64 = 10 * 60;
pub const DEFAULT_CAPACITY: i64 = 12;
pub const MAX_CAPACITY: i64 = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    Open,
    Members,
    Locked,
}

impl Access {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Members => "members",
            Self::Locked => "locked",
        }
    }

    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "open" => Ok(Self::Open),
            "members" => Ok(Self::Members),
            "locked" => Ok(Self::Locked),
            _ => Err(AppError::invalid(
                "access",
                "Choose open, members or locked.",
            )),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Room {
    pub id: i64,
    pub space_id: i64,
    pub slug: Slug,
    pub name: DisplayName,
    pub topic: String,
    pub access: Access,
    #[serde(skip)]
    pub access_code: Option<AccessCode>,
    pub listed: bool,
    pub capacity: i64,
    pub created_at: i64,
}

macro_rules! room_columns {
    () => {
        "r.id, r.space_id, r.slug, r.name, r.topic, r.access, r.access_code, r.listed, r.capacity, r.created_at"
    };
}

impl Room {
    fn from_row(row: &AnyRow) -> std::result::Result<Self, sqlx::Error> {
        let access: String = row.try_get("access")?;
        Ok(Self {
            id: row.try_get("id")?,
            space_id: row.try_get("space_id")?,
            slug: Slug::from_db(row.try_get("slug")?),
            name: DisplayName::from_db(row.try_get("name")?),
            topic: row.try_get("topic")?,
            access: Access::parse(&access).map_err(|_| sqlx::Error::ColumnDecode {
                index: "access".into(),
                source: format!("unknown access mode {access:?}").into(),
            })?,
            access_code: row
                .try_get::<Option<String>, _>("access_code")?
                .map(AccessCode::from_db),
            listed: flag(row, "listed")?,
            capacity: row.try_get("capacity")?,
            created_at: row.try_get("created_at")?,
        })
    }
}

/// A Room's settings, validated together (a locked Room needs a code).
#[derive(Debug, Clone)]
pub struct RoomFields {
    pub name: DisplayName,
    pub topic: String,
    pub access: Access,
    pub access_code: Option<AccessCode>,
    pub listed: bool,
    pub capacity: i64,
}

impl RoomFields {
    pub fn check(&self) -> Result<()> {
        if self.access == Access::Locked && self.access_code.is_none() {
            return Err(AppError::invalid(
                "access_code",
                "A locked Room needs an access code.",
            ));
        }
        if !(1..=MAX_CAPACITY).contains(&self.capacity) {
            return Err(AppError::invalid(
                "capacity",
                format!("Capacity is a number from 1 to {MAX_CAPACITY}."),
            ));
        }
        Ok(())
    }
}

/// Adds a Room, inside the caller's transaction (so that its announcement to the Space's
/// followers is queued with it, or neither happens).
pub async fn create(
    conn: &mut sqlx::AnyConnection,
    t: i64,
    space: &Space,
    slug: &Slug,
    fields: &RoomFields,
) -> Result<Room> {
    fields.check()?;
    let code = stored_code(fields);
    let inserted = sqlx::query(
        "INSERT INTO rooms (space_id, slug, name, topic, access, access_code, listed, capacity, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
    )
    .bind(space.id)
    .bind(slug.as_str())
    .bind(fields.name.as_str())
    .bind(&fields.topic)
    .bind(fields.access.as_str())
    .bind(code.clone())
    .bind(i64::from(fields.listed))
    .bind(fields.capacity)
    .bind(t)
    .fetch_one(&mut *conn)
    .await;
    let id: i64 = match inserted {
        Ok(row) => row.try_get("id")?,
        Err(err) if is_unique_violation(&err) => {
            return Err(AppError::Conflict {
                field: "slug",
                message: format!(
                    "This Space already has a Room at /{slug}; choose another address."
                ),
            });
        }
        Err(err) => return Err(err.into()),
    };
    // The first Room becomes the entrance unless one is set.
    sqlx::query(
        "UPDATE spaces SET entrance_room_id = $1 WHERE id = $2 AND entrance_room_id IS NULL",
    )
    .bind(id)
    .bind(space.id)
    .execute(&mut *conn)
    .await?;
    Ok(Room {
        id,
        space_id: space.id,
        slug: slug.clone(),
        name: fields.name.clone(),
        topic: fields.topic.clone(),
        access: fields.access,
        access_code: code.map(AccessCode::from_db),
        listed: fields.listed,
        capacity: fields.capacity,
        created_at: t,
    })
}

/// Keeps a code only for locked Rooms, so that switching to open forgets it.
fn stored_code(fields: &RoomFields) -> Option<String> {
    match fields.access {
        Access::Locked => fields.access_code.as_ref().map(|c| c.as_str().to_string()),
        _ => None,
    }
}

/// Changes a Room's settings and address (`slug`; old links stop working), inside the caller's
/// transaction (which also queues its announcement, see `core::rooms::update`).
pub async fn update(
    conn: &mut sqlx::AnyConnection,
    room: &Room,
    slug: &Slug,
    fields: &RoomFields,
) -> Result<()> {
    fields.check()?;
    let updated = sqlx::query(
        "UPDATE rooms SET name = $1, topic = $2, access = $3, access_code = $4, listed = $5, capacity = $6, slug = $8 WHERE id = $7",
    )
    .bind(fields.name.as_str())
    .bind(&fields.topic)
    .bind(fields.access.as_str())
    .bind(stored_code(fields))
    .bind(i64::from(fields.listed))
    .bind(fields.capacity)
    .bind(room.id)
    .bind(slug.as_str())
    .execute(&mut *conn)
    .await;
    match updated {
        Ok(_) => {}
        Err(err) if is_unique_violation(&err) => {
            return Err(AppError::Conflict {
                field: "slug",
                message: format!(
                    "This Space already has a Room at /{slug}; choose another address."
                ),
            });
        }
        Err(err) => return Err(err.into()),
    }
    // A changed code must be entered again.
    if fields.access != Access::Locked
        || fields.access_code.as_ref().map(AccessCode::as_str)
            != room.access_code.as_ref().map(AccessCode::as_str)
    {
        sqlx::query("DELETE FROM session_unlocks WHERE room_id = $1")
            .bind(room.id)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Deletes a Room, inside the caller's transaction (see [`create`]).
pub async fn delete(conn: &mut sqlx::AnyConnection, room: &Room) -> Result<()> {
    sqlx::query("UPDATE spaces SET entrance_room_id = NULL WHERE entrance_room_id = $1")
        .bind(room.id)
        .execute(&mut *conn)
        .await?;
    sqlx::query("DELETE FROM rooms WHERE id = $1")
        .bind(room.id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

pub async fn by_slug(db: &Db, space: &Space, slug: &str) -> Result<Room> {
    let row = sqlx::query(concat!(
        "SELECT ",
        room_columns!(),
        " FROM rooms r WHERE r.space_id = $1 AND r.slug = $2"
    ))
    .bind(space.id)
    .bind(slug)
    .fetch_optional(&db.pool)
    .await?;
    match row {
        Some(row) => Ok(Room::from_row(&row)?),
        None => Err(AppError::NotFound),
    }
}

/// A Room by its id, if it still exists.
pub async fn by_id(db: &Db, id: i64) -> Result<Option<Room>> {
    let row = sqlx::query(concat!(
        "SELECT ",
        room_columns!(),
        " FROM rooms r WHERE r.id = $1"
    ))
    .bind(id)
    .fetch_optional(&db.pool)
    .await?;
    Ok(row.as_ref().map(Room::from_row).transpose()?)
}

/// The Rooms of `space` a viewer sees on its page: members see all; others see the listed
/// Rooms that are not members-only.
pub async fn visible(db: &Db, space: &Space, is_member: bool) -> Result<Vec<Room>> {
    let rows = sqlx::query(concat!(
        "SELECT ",
        room_columns!(),
        " FROM rooms r WHERE r.space_id = $1 AND ($2 = 1 OR (r.listed = 1 AND r.access <> 'members')) \
         ORDER BY r.name, r.id"
    ))
    .bind(space.id)
    .bind(i64::from(is_member))
    .fetch_all(&db.pool)
    .await?;
    Ok(rows
        .iter()
        .map(Room::from_row)
        .collect::<std::result::Result<_, _>>()?)
}

/// The Space of each of `room_ids` (unknown ids are left out).
pub async fn space_ids(db: &Db, room_ids: &[i64]) -> Result<std::collections::HashMap<i64, i64>> {
    if room_ids.is_empty() {
        return Ok(std::collections::HashMap::new());
    }
    // The list holds integers only, so building the IN clause cannot inject SQL.
    let list = room_ids
        .iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT id, space_id FROM rooms WHERE id IN ({list})"
    )))
    .fetch_all(&db.pool)
    .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("id")?, r.try_get("space_id")?)))
        .collect()
}

/// What a visitor may do at a Room's door.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    /// May enter now.
    Enter,
    /// Locked: must give the access code first.
    NeedsCode,
}

/// Decides entry; `Err(NotFound)` for a members-only Room seen by a non-member.
pub fn entry(room: &Room, is_member: bool, unlocked: bool) -> Result<Entry> {
    match (room.access, is_member) {
        (_, true) | (Access::Open, false) => Ok(Entry::Enter),
        (Access::Members, false) => Err(AppError::NotFound),
        (Access::Locked, false) if unlocked => Ok(Entry::Enter),
        (Access::Locked, false) => Ok(Entry::NeedsCode),
    }
}

pub async fn is_unlocked(db: &Db, room: &Room, session_hash: Option<&str>) -> Result<bool> {
    let Some(hash) = session_hash else {
        return Ok(false);
    };
    let row =
        sqlx::query("SELECT 1 AS one FROM session_unlocks WHERE token_hash = $1 AND room_id = $2")
            .bind(hash)
            .bind(room.id)
            .fetch_optional(&db.pool)
            .await?;
    Ok(row.is_some())
}

/// Checks an access code attempt from `client_key` (a session or address), rate limited.
/// On success the Room is remembered as unlocked for `session_hash`.
pub async fn unlock(
    db: &Db,
    room: &Room,
    client_key: &str,
    session_hash: &str,
    attempt: &str,
) -> Result<()> {
    code_limit(db, room, client_key).await?;
    let t = db.now();
    let right = room
        .access_code
        .as_ref()
        .is_some_and(|code| code.matches(attempt));
    if !right {
        sqlx::query("INSERT INTO access_attempts (room_id, client_key, at) VALUES ($1, $2, $3)")
            .bind(room.id)
            .bind(client_key)
            .bind(t)
            .execute(&db.pool)
            .await?;
        return Err(AppError::invalid("code", "That access code is not right."));
    }
    sqlx::query(
        "INSERT INTO session_unlocks (token_hash, room_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
    )
    .bind(session_hash)
    .bind(room.id)
    .execute(&db.pool)
    .await?;
    Ok(())
}

/// `Err(RateLimited)` when `client_key` (or everyone together) has tried too many wrong codes
/// for the Room lately.
pub async fn code_limit(db: &Db, room: &Room, client_key: &str) -> Result<()> {
    let t = db.now();
    let since = t - CODE_WINDOW;
    let row = sqlx::query(
        "SELECT \
           (SELECT COUNT(*) FROM access_attempts WHERE room_id = $1 AND client_key = $2 AND at > $3) AS mine, \
           (SELECT COUNT(*) FROM access_attempts WHERE room_id = $1 AND at > $3) AS all_tries, \
           (SELECT MIN(at) FROM access_attempts WHERE room_id = $1 AND client_key = $2 AND at > $3) AS oldest",
    )
    .bind(room.id)
    .bind(client_key)
    .bind(since)
    .fetch_one(&db.pool)
    .await?;
    let mine: i64 = row.try_get("mine")?;
    let all: i64 = row.try_get("all_tries")?;
    if mine >= CODE_TRIES || all >= ROOM_CODE_TRIES {
        let oldest: Option<i64> = row.try_get("oldest")?;
        let retry_after = oldest.map_or(CODE_WINDOW, |o| (o + CODE_WINDOW - t).max(1));
        return Err(AppError::RateLimited {
            retry_after: u64::try_from(retry_after).unwrap_or(1),
        });
    }
    Ok(())
}

/// Forgets old failed attempts; run by housekeeping.
pub async fn sweep_attempts(db: &Db) -> Result<()> {
    sqlx::query("DELETE FROM access_attempts WHERE at < $1")
        .bind(db.now() - CODE_WINDOW)
        .execute(&db.pool)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room(access: Access) -> Room {
        Room {
            id: 1,
            space_id: 1,
            slug: Slug::from_db("hall".into()),
            name: DisplayName::from_db("Hall".into()),
            topic: String::new(),
            access,
            access_code: None,
            listed: true,
            capacity: 12,
            created_at: 0,
        }
    }

    #[test]
    fn entry_follows_the_access_table() {
        assert_eq!(
            entry(&room(Access::Open), false, false).ok(),
            Some(Entry::Enter)
        );
        assert!(matches!(
            entry(&room(Access::Members), false, false),
            Err(AppError::NotFound)
        ));
        assert_eq!(
            entry(&room(Access::Members), true, false).ok(),
            Some(Entry::Enter)
        );
        assert_eq!(
            entry(&room(Access::Locked), false, false).ok(),
            Some(Entry::NeedsCode)
        );
        assert_eq!(
            entry(&room(Access::Locked), false, true).ok(),
            Some(Entry::Enter)
        );
        assert_eq!(
            entry(&room(Access::Locked), true, false).ok(),
            Some(Entry::Enter)
        );
    }

    #[test]
    fn a_locked_room_needs_a_code() {
        let fields = RoomFields {
            name: DisplayName::from_db("Hall".into()),
            topic: String::new(),
            access: Access::Locked,
            access_code: None,
            listed: true,
            capacity: 12,
        };
        assert!(fields.check().is_err());
        let fields = RoomFields {
            capacity: 0,
            access: Access::Open,
            ..fields
        };
        assert!(fields.check().is_err());
    }
}
