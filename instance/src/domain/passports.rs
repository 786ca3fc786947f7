//! Passports: people's accounts on this instance (and, with federation, cached remote ones).

use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::values::{DisplayName, Email, Handle};
use super::{AppError, Result, flag};
use crate::db::Db;
use crate::error::is_unique_violation;

#[derive(Debug, Clone, Serialize)]
pub struct Passport {
    pub id: i64,
    pub handle: Handle,
    /// '' for Passports of this instance.
    #[serde(skip)]
    pub domain: String,
    #[serde(skip)]
    pub email: Option<Email>,
    pub display_name: DisplayName,
    pub is_operator: bool,
    pub created_at: i64,
}

/// The columns [`Passport::from_row`] reads, for queries that alias `passports` as `p`.
macro_rules! passport_columns {
    () => {
        "p.id, p.handle, p.domain, p.email, p.display_name, p.is_operator, p.created_at"
    };
}
pub(crate) use passport_columns;

impl Passport {
    pub(crate) fn from_row(row: &AnyRow) -> std::result::Result<Self, sqlx::Error> {
        Ok(Self {
            id: row.try_get("id")?,
            handle: Handle::from_db(row.try_get("handle")?),
            domain: row.try_get("domain")?,
            email: row
                .try_get::<Option<String>, _>("email")?
                .map(Email::from_db),
            display_name: DisplayName::from_db(row.try_get("display_name")?),
            is_operator: flag(row, "is_operator")?,
            created_at: row.try_get("created_at")?,
        })
    }

    /// `@name@domain`, the way the Passport is shown everywhere.
    pub fn address(&self, local_domain: &str) -> String {
        let domain = if self.domain.is_empty() {
            local_domain
        } else {
            &self.domain
        };
        format!("@{}@{}", self.handle, domain)
    }
}

pub struct NewPassport {
    pub email: Email,
    pub handle: Handle,
    pub display_name: DisplayName,
    /// Make this Passport an operator even if it is not the first.
    pub operator: bool,
}

/// Creates a local, verified Passport. The first Passport on an instance becomes its operator.
pub async fn create(db: &Db, new: NewPassport) -> Result<Passport> {
    let mut tx = db.begin_write().await?;
    super::names::claim(&mut tx, new.handle.as_str()).await?;
    if super::names::space_holds(&mut tx, new.handle.as_str()).await? {
        return Err(super::names::handle_taken_by_space(new.handle.as_str()));
    }
    let existing: i64 = sqlx::query("SELECT COUNT(*) AS n FROM passports WHERE domain = ''")
        .fetch_one(&mut *tx)
        .await?
        .try_get("n")?;
    let operator = new.operator || existing == 0;
    let t = db.now();
    let result = sqlx::query(
        "INSERT INTO passports (handle, domain, email, display_name, is_operator, email_verified_at, created_at) \
         VALUES ($1, '', $2, $3, $4, $5, $5) RETURNING id",
    )
    .bind(new.handle.as_str())
    .bind(new.email.as_str())
    .bind(new.display_name.as_str())
    .bind(i64::from(operator))
    .bind(t)
    .fetch_one(&mut *tx)
    .await;
    let id: i64 = match result {
        Ok(row) => row.try_get("id")?,
        Err(err) if is_unique_violation(&err) => {
            return Err(taken(db, &new.handle, &new.email).await);
        }
        Err(err) => return Err(err.into()),
    };
    tx.commit().await?;
    Ok(Passport {
        id,
        handle: new.handle,
        domain: String::new(),
        email: Some(new.email),
        display_name: new.display_name,
        is_operator: operator,
        created_at: t,
    })
}

/// Which of handle or email made an insert clash, as a field error.
async fn taken(db: &Db, handle: &Handle, email: &Email) -> AppError {
    match by_handle(db, handle).await {
        Ok(Some(_)) => AppError::Conflict {
            field: "handle",
            message: format!("@{handle} is already taken; choose another handle."),
        },
        Ok(None) => match by_email(db, email).await {
            Ok(Some(_)) => AppError::Conflict {
                field: "email",
                message: "A Passport already uses this email address; sign in instead.".into(),
            },
            Ok(None) => AppError::Conflict {
                field: "handle",
                message: "That Passport already exists.".into(),
            },
            Err(err) => err,
        },
        Err(err) => err,
    }
}

/// Checks that a handle is free before a sign-up code is sent. (Whether an email address
/// is taken is never said: see `core::accounts`.)
pub async fn check_handle_available(db: &Db, handle: &Handle) -> Result<()> {
    let mut conn = db.pool.acquire().await?;
    if super::names::space_holds(&mut conn, handle.as_str()).await? {
        return Err(AppError::invalid(
            "handle",
            format!("@{handle} is the address of a Space here; choose another handle."),
        ));
    }
    drop(conn);
    if by_handle(db, handle).await?.is_some() {
        return Err(AppError::invalid(
            "handle",
            format!("@{handle} is already taken; choose another handle."),
        ));
    }
    Ok(())
}

pub async fn by_handle(db: &Db, handle: &Handle) -> Result<Option<Passport>> {
    let row = sqlx::query(concat!(
        "SELECT ",
        passport_columns!(),
        " FROM passports p WHERE p.handle = $1 AND p.domain = ''"
    ))
    .bind(handle.as_str())
    .fetch_optional(&db.pool)
    .await?;
    Ok(row.as_ref().map(Passport::from_row).transpose()?)
}

pub async fn by_email(db: &Db, email: &Email) -> Result<Option<Passport>> {
    let row = sqlx::query(concat!(
        "SELECT ",
        passport_columns!(),
        " FROM passports p WHERE p.email = $1 AND p.domain = ''"
    ))
    .bind(email.as_str())
    .fetch_optional(&db.pool)
    .await?;
    Ok(row.as_ref().map(Passport::from_row).transpose()?)
}

pub async fn by_id(db: &Db, id: i64) -> Result<Option<Passport>> {
    let row = sqlx::query(concat!(
        "SELECT ",
        passport_columns!(),
        " FROM passports p WHERE p.id = $1"
    ))
    .bind(id)
    .fetch_optional(&db.pool)
    .await?;
    Ok(row.as_ref().map(Passport::from_row).transpose()?)
}

/// A Passport of another instance by its handle there and that instance's domain.
pub async fn by_address(db: &Db, handle: &str, domain: &str) -> Result<Option<Passport>> {
    let row = sqlx::query(concat!(
        "SELECT ",
        passport_columns!(),
        " FROM passports p WHERE p.handle = $1 AND p.domain = $2 AND p.domain <> ''"
    ))
    .bind(handle)
    .bind(domain)
    .fetch_optional(&db.pool)
    .await?;
    Ok(row.as_ref().map(Passport::from_row).transpose()?)
}

pub async fn rename(db: &Db, id: i64, name: &DisplayName) -> Result<()> {
    sqlx::query("UPDATE passports SET display_name = $1 WHERE id = $2")
        .bind(name.as_str())
        .bind(id)
        .execute(&db.pool)
        .await?;
    Ok(())
}

pub async fn list_local(db: &Db) -> Result<Vec<Passport>> {
    let rows = sqlx::query(concat!(
        "SELECT ",
        passport_columns!(),
        " FROM passports p WHERE p.domain = '' ORDER BY p.id"
    ))
    .fetch_all(&db.pool)
    .await?;
    Ok(rows
        .iter()
        .map(Passport::from_row)
        .collect::<std::result::Result<_, _>>()?)
}
