//! The database handle: one sqlx `AnyPool` over SQLite or PostgreSQL.
//!
//! Queries are written once in the dialect both databases accept (`$1` placeholders, BIGINT
//! unix-second timestamps, 0/1 flags, `RETURNING`), which keeps one code path and lets the same
//! tests run on both backends.

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use convene_migrations::Dialect;

use crate::clock::Clock;
use crate::group_commit::GroupCommit;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor};

#[derive(Clone, Debug)]
pub struct Db {
    pub pool: AnyPool,
    /// SQLite only: the one connection write transactions take turns on (see
    /// [`Db::begin_write`]); `None` on PostgreSQL, whose writers run side by side.
    writer: Option<AnyPool>,
    pub dialect: Dialect,
    /// The instance's one clock; see [`crate::clock`].
    pub clock: Clock,
    /// How long reads waited for a connection, for `/metrics`.
    pub pool_waits: Arc<PoolWaits>,
    /// Small writes applied together ([`crate::group_commit`]).
    pub(crate) group: GroupCommit,
}

/// Time spent waiting for a pool connection, measured by [`Db::measure_pool_wait`].
///
/// sqlx keeps no statistics of its own about waiting, and the domain functions take the pool
/// rather than a connection, so the hot read paths (the page cache's loader) ask for a
/// connection first and time that: with one load per Space in flight, a long wait here means
/// the pool is saturated by something else.
#[derive(Debug, Default)]
pub struct PoolWaits {
    pub acquires: AtomicU64,
    pub wait_micros: AtomicU64,
    pub max_wait_micros: AtomicU64,
}

/// The pool size when no setting says otherwise, for a machine with `cores` cores. SQLite
/// runs each connection on a thread of its own and commits one writer at a time, so more
/// connections than a few per core only add threads; PostgreSQL does its work in other
/// processes (or on other machines), so a request waiting on it holds a connection longer.
pub fn default_max_connections(dialect: Dialect, cores: usize) -> u32 {
    let cores = u32::try_from(cores).unwrap_or(u32::MAX);
    match dialect {
        Dialect::Sqlite => cores.saturating_mul(2).clamp(4, 16),
        Dialect::Postgres => cores.saturating_mul(4).clamp(8, 32),
    }
}

/// The database a URL names.
pub fn dialect_of(url: &str) -> Dialect {
    if url.starts_with("sqlite:") {
        Dialect::Sqlite
    } else {
        Dialect::Postgres
    }
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
    ///
    /// SQLite commits one writer at a time, and a connection that finds the write lock taken
    /// sleeps in its busy handler (1, 2, 5, 10 … 100 ms) and polls again: with many writers at
    /// once most of their time went to those sleeps, and the lock stood idle between them.
    /// So this process's write transactions queue, in order, for one connection of their own,
    /// and only writers of other processes (`convene admin`) ever meet the busy handler.
    pub async fn begin_write(&self) -> sqlx::Result<sqlx::Transaction<'static, sqlx::Any>> {
        match (&self.writer, self.dialect) {
            (Some(writer), _) => writer.begin_with("BEGIN IMMEDIATE").await,
            (None, Dialect::Sqlite) => self.pool.begin_with("BEGIN IMMEDIATE").await,
            (None, Dialect::Postgres) => self.pool.begin().await,
        }
    }

    /// The same database for the group-commit task, without its queue (which the task must
    /// not keep open).
    pub(crate) fn without_group(&self) -> Self {
        Self {
            group: GroupCommit::default(),
            ..self.clone()
        }
    }

    /// What the group-commit task did ([`crate::group_commit`]).
    pub fn group_commit(&self) -> &GroupCommit {
        &self.group
    }

    /// Waits for a connection as a query would, records how long that took in
    /// [`Db::pool_waits`], and gives the connection back to the pool.
    pub async fn measure_pool_wait(&self) -> Result<Duration, sqlx::Error> {
        let started = Instant::now();
        let connection = self.pool.acquire().await?;
        let waited = started.elapsed();
        drop(connection);
        let micros = u64::try_from(waited.as_micros()).unwrap_or(u64::MAX);
        self.pool_waits.acquires.fetch_add(1, Ordering::Relaxed);
        self.pool_waits
            .wait_micros
            .fetch_add(micros, Ordering::Relaxed);
        self.pool_waits
            .max_wait_micros
            .fetch_max(micros, Ordering::Relaxed);
        Ok(waited)
    }

    /// The pool's lines for `/metrics`, in the Prometheus text format.
    pub fn metrics(&self) -> String {
        let w = &self.pool_waits;
        let max = self.pool.options().get_max_connections();
        format!(
            "# HELP convene_db_pool_max_connections Connections the pool may open.\n\
             # TYPE convene_db_pool_max_connections gauge\n\
             convene_db_pool_max_connections {max}\n\
             # HELP convene_db_pool_connections Connections open now.\n\
             # TYPE convene_db_pool_connections gauge\n\
             convene_db_pool_connections {}\n\
             # HELP convene_db_pool_idle_connections Open connections not in use now.\n\
             # TYPE convene_db_pool_idle_connections gauge\n\
             convene_db_pool_idle_connections {}\n\
             # HELP convene_db_pool_acquires_total Timed waits for a connection (page cache loads).\n\
             # TYPE convene_db_pool_acquires_total counter\n\
             convene_db_pool_acquires_total {}\n\
             # HELP convene_db_pool_wait_seconds_total Time those loads waited for a connection.\n\
             # TYPE convene_db_pool_wait_seconds_total counter\n\
             convene_db_pool_wait_seconds_total {:.6}\n\
             # HELP convene_db_pool_wait_max_seconds The longest of those waits.\n\
             # TYPE convene_db_pool_wait_max_seconds gauge\n\
             convene_db_pool_wait_max_seconds {:.6}\n",
            self.pool.size(),
            self.pool.num_idle(),
            w.acquires.load(Ordering::Relaxed),
            w.wait_micros.load(Ordering::Relaxed) as f64 / 1e6,
            w.max_wait_micros.load(Ordering::Relaxed) as f64 / 1e6,
        )
    }

    /// Connects (creating the SQLite file and its folder if needed) without migrating, with
    /// the default pool size for this machine.
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self::connect_with(url, default_max_connections(dialect_of(url), cores)).await
    }

    /// Connects with a pool of at most `max_connections` connections.
    pub async fn connect_with(url: &str, max_connections: u32) -> anyhow::Result<Self> {
        sqlx::any::install_default_drivers();
        let dialect = dialect_of(url);
        let url = match dialect {
            Dialect::Sqlite => sqlite_url(url)?,
            Dialect::Postgres => url.to_string(),
        };
        let options = AnyConnectOptions::from_str(&url).context("parsing database_url")?;
        let pool = pool_options(dialect)
            .max_connections(max_connections.max(1))
            .connect_with(options.clone())
            .await
            .with_context(|| format!("connecting to the {dialect:?} database"))?;
        let in_memory = url.contains(":memory:");
        let writer = match dialect {
            // A write transaction waits here for its turn rather than in SQLite's busy
            // handler; the wait is bounded like the busy timeout's, a little longer. (An
            // in-memory database is one per connection, so it cannot have a writer apart.)
            Dialect::Sqlite if !in_memory => Some(
                pool_options(dialect)
                    .max_connections(1)
                    .acquire_timeout(Duration::from_secs(30))
                    .connect_with(options)
                    .await
                    .with_context(|| format!("connecting to the {dialect:?} database"))?,
            ),
            Dialect::Sqlite | Dialect::Postgres => None,
        };
        Ok(Self {
            pool,
            writer,
            dialect,
            clock: Clock::system(),
            pool_waits: Arc::new(PoolWaits::default()),
            group: GroupCommit::default(),
        })
    }

    /// Closes the pool and the writer's connection, waiting for connections in use to return.
    pub async fn close(&self) {
        self.group.close();
        if let Some(writer) = &self.writer {
            writer.close().await;
        }
        self.pool.close().await;
    }

    /// Applies every migration not yet applied.
    pub async fn migrate(&self) -> anyhow::Result<()> {
        convene_migrations::migrator(self.dialect)
            .run(&self.pool)
            .await
            .context("applying database migrations")
    }
}

/// Pool options for `dialect`: each SQLite connection is set up for WAL, foreign keys and the
/// busy timeout as it opens.
fn pool_options(dialect: Dialect) -> AnyPoolOptions {
    AnyPoolOptions::new().after_connect(move |conn, _| {
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

    fn scratch(name: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("convene-db-{name}-{}", std::process::id()))
    }

    /// A write transaction that reads through the pool while it holds the write lock: with
    /// the writer on a connection of its own the read goes ahead even when the pool has one
    /// connection. (With writers on the pool's own connections, that read waited for a
    /// connection the transaction itself held, and timed out.)
    #[tokio::test]
    async fn a_write_transaction_can_read_through_the_pool_while_it_holds_the_lock()
    -> anyhow::Result<()> {
        let dir = scratch("read-in-write");
        let db = super::Db::connect_with(&format!("sqlite://{}/t.db", dir.display()), 1).await?;
        sqlx::query("CREATE TABLE t (n BIGINT)")
            .execute(&db.pool)
            .await?;
        let mut tx = db.begin_write().await?;
        sqlx::query("INSERT INTO t (n) VALUES (1)")
            .execute(&mut *tx)
            .await?;
        let read = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            sqlx::query("SELECT COUNT(*) AS n FROM t").fetch_one(&db.pool),
        )
        .await
        .expect("the read waited for the writer's connection")?;
        // WAL: the reader sees the last commit, not the open transaction.
        assert_eq!(read.try_get::<i64, _>("n")?, 0);
        tx.commit().await?;
        db.close().await;
        let _ = std::fs::remove_dir_all(dir);
        Ok(())
    }

    /// More writers at once than SQLite's busy timeout (5 s) covers, each holding the write
    /// lock for a while: they take turns, and none fails with `database is locked`.
    #[tokio::test]
    async fn writers_take_turns_beyond_the_busy_timeout() -> anyhow::Result<()> {
        const WRITERS: i64 = 30;
        let dir = scratch("turns");
        let db = super::Db::connect(&format!("sqlite://{}/t.db", dir.display())).await?;
        sqlx::query("CREATE TABLE t (n BIGINT)")
            .execute(&db.pool)
            .await?;
        let mut tasks = tokio::task::JoinSet::new();
        for n in 0..WRITERS {
            let db = db.clone();
            tasks.spawn(async move {
                let mut tx = db.begin_write().await?;
                sqlx::query("INSERT INTO t (n) VALUES ($1)")
                    .bind(n)
                    .execute(&mut *tx)
                    .await?;
                // 30 × 200 ms holds the lock for 6 s in all, past the busy timeout.
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                tx.commit().await?;
                Ok::<_, sqlx::Error>(())
            });
        }
        while let Some(result) = tasks.join_next().await {
            result??;
        }
        let row = sqlx::query("SELECT COUNT(*) AS n, SUM(n) AS s FROM t")
            .fetch_one(&db.pool)
            .await?;
        assert_eq!(row.try_get::<i64, _>("n")?, WRITERS);
        assert_eq!(row.try_get::<i64, _>("s")?, WRITERS * (WRITERS - 1) / 2);
        db.close().await;
        let _ = std::fs::remove_dir_all(dir);
        Ok(())
    }
}
