//! The database handle: one sqlx `AnyPool` over SQLite or PostgreSQL.
//!
//! Queries are written once in the dialect both databases accept (`$1` placeholders, BIGINT
//! unix-second timestamps, 0/1 flags, `RETURNING`), which keeps one code path and lets the same
//! tests run on both backends.

use std::str::FromStr;

use anyhow::Context;
use convene_migrations::Dialect;

use crate::clock::Clock;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor};

#[derive(Clone, Debug)]
pub struct Db {
    pub pool: AnyPool,
    pub dialect: Dialect,
    /// The instance's one clock; see [`crate::clock`].
    pub clock: Clock,
}

impl Db {
    /// Seconds since the Unix epoch by the instance's clock: the unit of every timestamp column.
    pub fn now(&self) -> i64 {
        self.clock.now()
    }

    /// Begins a transaction that will write. On SQLite it takes the write lock at once
    /// (`BEGIN IMMEDIATE`): a transaction that read first and then tried to write would get
    /// `database is locked` without waiting whenever another writer went ahead, where one that
    /// starts as a writer simply waits its turn (the busy timeout).
    pub async fn begin_write(&self) -> sqlx::Result<sqlx::Transaction<'static, sqlx::Any>> {
        match self.dialect {
            Dialect::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
            Dialect::Postgres => self.pool.begin().await,
        }
    }

    /// Connects (creating the SQLite file and its folder if needed) without migrating.
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        sqlx::any::install_default_drivers();
        let dialect = if url.starts_with("sqlite:") {
            Dialect::Sqlite
        } else {
            Dialect::Postgres
        };
        let url = match dialect {
            Dialect::Sqlite => sqlite_url(url)?,
            Dialect::Postgres => url.to_string(),
        };
        let options = AnyConnectOptions::from_str(&url).context("parsing database_url")?;
        let pool = AnyPoolOptions::new()
            .max_connections(match dialect {
                Dialect::Sqlite => 8,
                Dialect::Postgres => 16,
            })
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if dialect == Dialect::Sqlite {
                        // WAL lets readers proceed while one writer commits; the busy timeout
                        // makes concurrent writers wait instead of failing; secure_delete
                        // overwrites deleted content, so a scrubbed row leaves no old copy in
                        // freed pages.
                        conn.execute(
                            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                             PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000; \
                             PRAGMA secure_delete = ON;",
                        )
                        .await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .with_context(|| format!("connecting to the {dialect:?} database"))?;
        Ok(Self {
            pool,
            dialect,
            clock: Clock::system(),
        })
    }

    /// Applies every migration not yet applied.
    pub async fn migrate(&self) -> anyhow::Result<()> {
        convene_migrations::migrator(self.dialect)
            .run(&self.pool)
            .await
            .context("applying database migrations")
    }
}

/// Makes sure the SQLite file's folder exists and that the file is created on first use.
fn sqlite_url(url: &str) -> anyhow::Result<String> {
    let path = url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:");
    let (file, query) = path.split_once('?').unwrap_or((path, ""));
    if file != ":memory:"
        && let Some(parent) = std::path::Path::new(file).parent()
        && !parent.as_os_str().is_empty()
    {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    let query = if query.contains("mode=") {
        query.to_string()
    } else if query.is_empty() {
        "mode=rwc".to_string()
    } else {
        format!("{query}&mode=rwc")
    };
    Ok(format!("sqlite://{file}?{query}"))
}

#[cfg(test)]
mod tests {
    use sqlx::Row;

    #[tokio::test]
    async fn numbered_parameters_bind_by_number_on_sqlite() -> anyhow::Result<()> {
        let dir = std::env::temp_dir().join(format!("convene-db-test-{}", std::process::id()));
        let db = super::Db::connect(&format!("sqlite://{}/t.db", dir.display())).await?;
        let row = sqlx::query("SELECT ($2 = 1) AS a, $1 AS b, ($2 = 1 OR $1 = 'x') AS c")
            .bind("y")
            .bind(0_i64)
            .fetch_one(&db.pool)
            .await?;
        let a: i64 = row.try_get("a")?;
        let b: String = row.try_get("b")?;
        let c: i64 = row.try_get("c")?;
        assert_eq!((a, b.as_str(), c), (0, "y", 0));
        let _ = std::fs::remove_dir_all(dir);
        Ok(())
    }
}
