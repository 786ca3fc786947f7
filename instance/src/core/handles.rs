//! Handle clashes: a local Passport and a local Space under one name.
//!
//! On the fediverse both are `@name@domain`, so WebFinger must name one actor per name. New
//! names are checked when a Passport or a Space is made ([`crate::domain::names`]); this
//! module finds clashes stored before that check existed and resolves them: the one made **later** is renamed `{name}2` (or 3, 4, ...:
//! the first number free in both namespaces), since whoever held the name first is the one
//! others have been addressing. Digits keep the new name valid both as a handle and as a slug.
//!
//! A rename moves what is keyed by the actor's URL with it (its key pair, a Space's Rooms'
//! keys, a Space's followers), so follows from elsewhere still arrive; remote servers that
//! cached the old URL see it answer 404 and resolve the new handle again.
//!
//! `convene serve` warns at start while clashes are stored; `convene admin federation clashes`
//! lists them and `--resolve` renames.

use serde::Serialize;
use sqlx::Row;

use super::Core;
use crate::db::Db;
use crate::error::Result;

/// A name held by both a local Passport and a local Space.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Clash {
    pub name: String,
    pub passport_id: i64,
    pub passport_created_at: i64,
    pub space_id: i64,
    pub space_created_at: i64,
}

impl Clash {
    /// Which of the two gives way: the later one (the Space on a tie, so people keep their
    /// handles).
    pub fn later(&self) -> Holder {
        if self.passport_created_at > self.space_created_at {
            Holder::Passport
        } else {
            Holder::Space
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Holder {
    Passport,
    Space,
}

/// What resolving a clash did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Renamed {
    pub holder: Holder,
    pub id: i64,
    pub from: String,
    pub to: String,
}

/// Every stored clash, by name.
pub async fn clashes(db: &Db) -> Result<Vec<Clash>> {
    let rows = sqlx::query(
        "SELECT p.handle AS name, p.id AS passport_id, p.created_at AS passport_created_at, \
         s.id AS space_id, s.created_at AS space_created_at \
         FROM passports p JOIN spaces s ON s.slug = p.handle AND s.domain = '' \
         WHERE p.domain = '' ORDER BY p.handle",
    )
    .fetch_all(&db.pool)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(Clash {
                name: row.try_get("name")?,
                passport_id: row.try_get("passport_id")?,
                passport_created_at: row.try_get("passport_created_at")?,
                space_id: row.try_get("space_id")?,
                space_created_at: row.try_get("space_created_at")?,
            })
        })
        .collect()
}

/// Renames the later holder of every clash; see the module docs.
pub async fn resolve(core: &Core) -> Result<Vec<Renamed>> {
    let mut renamed = Vec::new();
    for clash in clashes(&core.db).await? {
        renamed.push(resolve_one(core, &clash).await?);
    }
    if !renamed.is_empty() {
        core.pages.invalidate();
    }
    Ok(renamed)
}

/// Names are at most 30 characters as handles (40 as slugs); the suffix must fit.
const MAX_NAME: usize = 30;

async fn resolve_one(core: &Core, clash: &Clash) -> Result<Renamed> {
    let mut tx = core.db.begin_write().await?;
    let mut to = String::new();
    for n in 2..10_000 {
        let suffix = n.to_string();
        let keep = MAX_NAME.saturating_sub(suffix.len()).min(clash.name.len());
        let candidate = format!("{}{suffix}", &clash.name[..keep]);
        crate::domain::names::claim(&mut tx, &candidate).await?;
        let taken = sqlx::query(
            "SELECT 1 AS one FROM passports WHERE handle = $1 AND domain = '' \
             UNION ALL SELECT 1 AS one FROM spaces WHERE slug = $1 AND domain = ''",
        )
        .bind(&candidate)
        .fetch_optional(&mut *tx)
        .await?
        .is_some();
        if !taken {
            to = candidate;
            break;
        }
    }
    if to.is_empty() {
        return Err(anyhow::anyhow!("no free name for @{}", clash.name).into());
    }
    let holder = clash.later();
    let (old_path, new_path, id) = match holder {
        Holder::Passport => {
            sqlx::query("UPDATE passports SET handle = $1 WHERE id = $2")
                .bind(&to)
                .bind(clash.passport_id)
                .execute(&mut *tx)
                .await?;
            (
                crate::activitypub::person_path(&clash.name),
                crate::activitypub::person_path(&to),
                clash.passport_id,
            )
        }
        Holder::Space => {
            sqlx::query("UPDATE spaces SET slug = $1 WHERE id = $2")
                .bind(&to)
                .bind(clash.space_id)
                .execute(&mut *tx)
                .await?;
            (
                convene_web::routes::space(&clash.name),
                convene_web::routes::space(&to),
                clash.space_id,
            )
        }
    };
    // What is keyed by the actor's URL (and, for a Space, its Rooms' URLs) follows it. Those
    // columns hold only our own URLs, so rows are found by path: `convene admin` may run
    // without the serving process's public URL.
    for (table, column) in [
        ("actor_keys", "actor_id"),
        ("federation_followers", "local_actor"),
    ] {
        let select = format!("SELECT DISTINCT {column} AS url FROM {table} WHERE {column} LIKE $1");
        let rows = sqlx::query(sqlx::AssertSqlSafe(select))
            .bind(format!("%{old_path}%"))
            .fetch_all(&mut *tx)
            .await?;
        let update = format!("UPDATE {table} SET {column} = $1 WHERE {column} = $2");
        for row in rows {
            let url: String = row.try_get("url")?;
            if let Some(moved) = moved_url(&url, &old_path, &new_path) {
                sqlx::query(sqlx::AssertSqlSafe(update.clone()))
                    .bind(moved)
                    .bind(&url)
                    .execute(&mut *tx)
                    .await?;
            }
        }
    }
    tx.commit().await?;
    tracing::warn!(from = %clash.name, %to, ?holder, "renamed to resolve a handle clash");
    Ok(Renamed {
        holder,
        id,
        from: clash.name.clone(),
        to,
    })
}

/// `url` with its path `old_path` (or a path below it) moved to `new_path`; `None` when its
/// path is elsewhere.
fn moved_url(url: &str, old_path: &str, new_path: &str) -> Option<String> {
    let after_scheme = url.find("://")? + 3;
    let path_start = after_scheme + url[after_scheme..].find('/')?;
    let rest = url[path_start..].strip_prefix(old_path)?;
    if !(rest.is_empty() || rest.starts_with('/')) {
        return None;
    }
    Some(format!("{}{new_path}{rest}", &url[..path_start]))
}

#[cfg(test)]
mod tests {
    use super::moved_url;

    #[test]
    fn urls_move_with_their_actor_and_nothing_else_does() {
        let moved = |url| moved_url(url, "/spaces/olive", "/spaces/olive2");
        assert_eq!(
            moved("https://c.example/spaces/olive").as_deref(),
            Some("https://c.example/spaces/olive2")
        );
        assert_eq!(
            moved("http://localhost:8080/spaces/olive/rooms/den").as_deref(),
            Some("http://localhost:8080/spaces/olive2/rooms/den")
        );
        for other in [
            "https://c.example/spaces/olives",
            "https://c.example/people/olive",
            "https://c.example/spaces/x/spaces/olive",
            "not a url",
        ] {
            assert_eq!(moved(other), None, "{other}");
        }
    }
}
