//! Spaces and their members.
//!
//! Roles: an owner edits the Space, manages members and invitations; a member enters
//! members-only Rooms and manages Rooms. A Space always keeps at least one owner.

use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::passports::{Passport, passport_columns};
use super::values::{DisplayName, Slug};
use super::{AppError, Result, flag};
use crate::db::Db;
use crate::error::is_unique_violation;

#[derive(Debug, Clone, Serialize)]
pub struct Space {
    pub id: i64,
    pub slug: Slug,
    pub name: DisplayName,
    pub description: String,
    pub listed: bool,
    pub entrance_room_id: Option<i64>,
    pub created_at: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Owner,
    Member,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Owner => "owner",
            Self::Member => "member",
        }
    }

    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "owner" => Ok(Self::Owner),
            "member" => Ok(Self::Member),
            _ => Err(AppError::invalid("role", "Choose owner or member.")),
        }
    }
}

macro_rules! space_columns {
    () => {
        "s.id, s.slug, s.name, s.description, s.listed, s.entrance_room_id, s.created_at"
    };
}

impl Space {
    fn from_row(row: &AnyRow) -> std::result::Result<Self, sqlx::Error> {
        Ok(Self {
            id: row.try_get("id")?,
            slug: Slug::from_db(row.try_get("slug")?),
            name: DisplayName::from_db(row.try_get("name")?),
            description: row.try_get("description")?,
            listed: flag(row, "listed")?,
            entrance_room_id: row.try_get("entrance_room_id")?,
            created_at: row.try_get("created_at")?,
        })
    }
}

/// What a Space is made with, or changed to.
#[derive(Debug, Clone)]
pub struct SpaceFields {
    pub name: DisplayName,
    pub description: String,
    pub listed: bool,
}

pub async fn create(db: &Db, owner: &Passport, slug: &Slug, fields: &SpaceFields) -> Result<Space> {
    let mut tx = db.begin_write().await?;
    super::names::claim(&mut tx, slug.as_str()).await?;
    if super::names::passport_holds(&mut tx, slug.as_str()).await? {
        return Err(super::names::slug_taken_by_passport(slug.as_str()));
    }
    let t = db.now();
    let inserted = sqlx::query(
        "INSERT INTO spaces (slug, domain, name, description, listed, created_at) \
         VALUES ($1, '', $2, $3, $4, $5) RETURNING id",
    )
    .bind(slug.as_str())
    .bind(fields.name.as_str())
    .bind(&fields.description)
    .bind(i64::from(fields.listed))
    .bind(t)
    .fetch_one(&mut *tx)
    .await;
    let id: i64 = match inserted {
        Ok(row) => row.try_get("id")?,
        Err(err) if is_unique_violation(&err) => {
            return Err(AppError::Conflict {
                field: "slug",
                message: format!(
                    "A Space already uses the address /spaces/{slug}; choose another."
                ),
            });
        }
        Err(err) => return Err(err.into()),
    };
    sqlx::query(
        "INSERT INTO space_members (space_id, passport_id, role, created_at) VALUES ($1, $2, 'owner', $3)",
    )
    .bind(id)
    .bind(owner.id)
    .bind(t)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Space {
        id,
        slug: slug.clone(),
        name: fields.name.clone(),
        description: fields.description.clone(),
        listed: fields.listed,
        entrance_room_id: None,
        created_at: t,
    })
}

pub async fn by_slug(db: &Db, slug: &str) -> Result<Space> {
    let row = sqlx::query(concat!(
        "SELECT ",
        space_columns!(),
        " FROM spaces s WHERE s.slug = $1 AND s.domain = ''"
    ))
    .bind(slug)
    .fetch_optional(&db.pool)
    .await?;
    match row {
        Some(row) => Ok(Space::from_row(&row)?),
        None => Err(AppError::NotFound),
    }
}

/// A listed Space with its counts, for the landing page and the API.
#[derive(Debug, Clone, Serialize)]
pub struct SpaceSummary {
    #[serde(flatten)]
    pub space: Space,
    pub members: i64,
    pub listed_rooms: i64,
}

/// Listed Spaces, plus the unlisted ones `viewer` belongs to.
pub async fn directory(db: &Db, viewer: Option<&Passport>) -> Result<Vec<SpaceSummary>> {
    let rows = sqlx::query(concat!(
        "SELECT ",
        space_columns!(),
        ", (SELECT COUNT(*) FROM space_members m WHERE m.space_id = s.id) AS members, \
         (SELECT COUNT(*) FROM rooms r WHERE r.space_id = s.id AND r.listed = 1 AND r.access <> 'members') AS listed_rooms \
         FROM spaces s WHERE s.domain = '' AND (s.listed = 1 OR EXISTS \
         (SELECT 1 FROM space_members m WHERE m.space_id = s.id AND m.passport_id = $1)) \
         ORDER BY s.name, s.id"
    ))
    .bind(viewer.map_or(-1, |p| p.id))
    .fetch_all(&db.pool)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(SpaceSummary {
                space: Space::from_row(row)?,
                members: row.try_get("members")?,
                listed_rooms: row.try_get("listed_rooms")?,
            })
        })
        .collect()
}

pub async fn update(
    conn: &mut sqlx::AnyConnection,
    space: &Space,
    fields: &SpaceFields,
    entrance_room_id: Option<i64>,
) -> Result<()> {
    if let Some(room_id) = entrance_room_id {
        let belongs = sqlx::query("SELECT 1 AS one FROM rooms WHERE id = $1 AND space_id = $2")
            .bind(room_id)
            .bind(space.id)
            .fetch_optional(&mut *conn)
            .await?;
        if belongs.is_none() {
            return Err(AppError::invalid(
                "entrance",
                "Choose one of this Space's Rooms.",
            ));
        }
    }
    sqlx::query(
        "UPDATE spaces SET name = $1, description = $2, listed = $3, entrance_room_id = $4 WHERE id = $5",
    )
    .bind(fields.name.as_str())
    .bind(&fields.description)
    .bind(i64::from(fields.listed))
    .bind(entrance_room_id)
    .bind(space.id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// `passport`'s role in `space`, if a member.
pub async fn role(db: &Db, space: &Space, passport: Option<&Passport>) -> Result<Option<Role>> {
    let Some(passport) = passport else {
        return Ok(None);
    };
    let row =
        sqlx::query("SELECT role FROM space_members WHERE space_id = $1 AND passport_id = $2")
            .bind(space.id)
            .bind(passport.id)
            .fetch_optional(&db.pool)
            .await?;
    row.map(|r| Role::parse(&r.try_get::<String, _>("role")?))
        .transpose()
}

/// Fails unless `passport` owns `space` (operators may act as owners).
pub async fn require_owner(db: &Db, space: &Space, passport: &Passport) -> Result<()> {
    if passport.is_operator || role(db, space, Some(passport)).await? == Some(Role::Owner) {
        Ok(())
    } else {
        Err(AppError::Forbidden("Only the Space's owners can do that."))
    }
}

/// Fails unless `passport` is a member (or owner) of `space`.
pub async fn require_member(db: &Db, space: &Space, passport: &Passport) -> Result<()> {
    if passport.is_operator || role(db, space, Some(passport)).await?.is_some() {
        Ok(())
    } else {
        Err(AppError::Forbidden(
            "Only members of this Space can do that.",
        ))
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Member {
    pub passport: Passport,
    pub role: Role,
    pub since: i64,
}

pub async fn members(db: &Db, space: &Space) -> Result<Vec<Member>> {
    let rows = sqlx::query(concat!(
        "SELECT m.role, m.created_at AS since, ",
        passport_columns!(),
        " FROM space_members m JOIN passports p ON p.id = m.passport_id \
         WHERE m.space_id = $1 ORDER BY m.role DESC, p.display_name, p.id"
    ))
    .bind(space.id)
    .fetch_all(&db.pool)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(Member {
                passport: Passport::from_row(row)?,
                role: Role::parse(&row.try_get::<String, _>("role")?)?,
                since: row.try_get("since")?,
            })
        })
        .collect()
}

pub async fn add_member(db: &Db, space: &Space, passport: &Passport, role: Role) -> Result<()> {
    let t = db.now();
    let existing = self::role(db, space, Some(passport)).await?;
    match existing {
        // Accepting an owner invitation upgrades a member; never downgrade an owner.
        Some(Role::Owner) => Ok(()),
        Some(Role::Member) if role == Role::Member => Ok(()),
        Some(Role::Member) => {
            sqlx::query(
                "UPDATE space_members SET role = 'owner' WHERE space_id = $1 AND passport_id = $2",
            )
            .bind(space.id)
            .bind(passport.id)
            .execute(&db.pool)
            .await?;
            Ok(())
        }
        None => {
            sqlx::query(
                "INSERT INTO space_members (space_id, passport_id, role, created_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(space.id)
            .bind(passport.id)
            .bind(role.as_str())
            .bind(t)
            .execute(&db.pool)
            .await?;
            Ok(())
        }
    }
}

/// Removes `passport` from `space`, refusing to remove the last owner.
pub async fn remove_member(db: &Db, space: &Space, passport: &Passport) -> Result<()> {
    let mut tx = db.begin_write().await?;
    // Changes to one Space's members take turns: on PostgreSQL this no-op update locks the
    // Space's row until commit (SQLite's write transaction already runs alone), so two owners
    // leaving at once cannot both count the other as the owner who stays.
    sqlx::query("UPDATE spaces SET id = id WHERE id = $1")
        .bind(space.id)
        .execute(&mut *tx)
        .await?;
    let role: Option<String> =
        sqlx::query("SELECT role FROM space_members WHERE space_id = $1 AND passport_id = $2")
            .bind(space.id)
            .bind(passport.id)
            .fetch_optional(&mut *tx)
            .await?
            .map(|r| r.try_get("role"))
            .transpose()?;
    let Some(role) = role else {
        return Err(AppError::NotFound);
    };
    if role == "owner" {
        let owners: i64 = sqlx::query(
            "SELECT COUNT(*) AS n FROM space_members WHERE space_id = $1 AND role = 'owner'",
        )
        .bind(space.id)
        .fetch_one(&mut *tx)
        .await?
        .try_get("n")?;
        if owners <= 1 {
            return Err(AppError::Forbidden(
                "A Space needs at least one owner: make someone else an owner first.",
            ));
        }
    }
    sqlx::query("DELETE FROM space_members WHERE space_id = $1 AND passport_id = $2")
        .bind(space.id)
        .bind(passport.id)
        .execute(&mut *tx)
        .await?;
    // A removed member loses the locked rooms they entered as a member, so nothing to undo
    // there; sessions stay valid for the rest of the instance.
    tx.commit().await?;
    Ok(())
}

/// Spaces `passport` belongs to, for the account page and the API.
pub async fn memberships(db: &Db, passport: &Passport) -> Result<Vec<(Space, Role)>> {
    let rows = sqlx::query(concat!(
        "SELECT m.role, ",
        space_columns!(),
        " FROM space_members m JOIN spaces s ON s.id = m.space_id WHERE m.passport_id = $1 ORDER BY s.name"
    ))
    .bind(passport.id)
    .fetch_all(&db.pool)
    .await?;
    rows.iter()
        .map(|row| {
            Ok((
                Space::from_row(row)?,
                Role::parse(&row.try_get::<String, _>("role")?)?,
            ))
        })
        .collect()
}

/// Operators always create Spaces; others when the instance allows it.
pub fn may_create(passport: &Passport, open_space_creation: bool) -> bool {
    passport.is_operator || open_space_creation
}

/// Whether `passport` counts as a member for seeing and entering: members, owners, operators.
pub async fn is_member(db: &Db, space: &Space, passport: Option<&Passport>) -> Result<bool> {
    match passport {
        Some(p) if p.is_operator => Ok(true),
        Some(_) => Ok(role(db, space, passport).await?.is_some()),
        None => Ok(false),
    }
}

/// A Space by its id (for invitations, which point at the id).
pub async fn by_id(db: &Db, id: i64) -> Result<Space> {
    let row = sqlx::query(concat!(
        "SELECT ",
        space_columns!(),
        " FROM spaces s WHERE s.id = $1"
    ))
    .bind(id)
    .fetch_optional(&db.pool)
    .await?;
    match row {
        Some(row) => Ok(Space::from_row(&row)?),
        None => Err(AppError::NotFound),
    }
}

/// Every local Space, for `convene admin list`.
pub async fn all(db: &Db) -> Result<Vec<Space>> {
    let rows = sqlx::query(concat!(
        "SELECT ",
        space_columns!(),
        " FROM spaces s WHERE s.domain = '' ORDER BY s.slug"
    ))
    .fetch_all(&db.pool)
    .await?;
    Ok(rows
        .iter()
        .map(Space::from_row)
        .collect::<std::result::Result<_, _>>()?)
}

/// How many members a Space has.
pub async fn member_count(db: &Db, space: &Space) -> Result<usize> {
    let n: i64 = sqlx::query("SELECT COUNT(*) AS n FROM space_members WHERE space_id = $1")
        .bind(space.id)
        .fetch_one(&db.pool)
        .await?
        .try_get("n")?;
    Ok(usize::try_from(n).unwrap_or(0))
}
