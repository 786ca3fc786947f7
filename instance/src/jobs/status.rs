//! What admins see of the queue: counts by kind and state, every destination's health, and the
//! dead jobs with their last error. One function fills it for the `/admin/queue` page and for
//! `convene admin queue [--json]`, so both always show the same thing.

use serde::Serialize;
use sqlx::Row;

use super::{DestinationState, JobId};
use crate::db::Db;
use crate::error::Result;

/// How many dead jobs the status lists (the newest first); the counts include them all.
pub const DEAD_LISTED: i64 = 100;

/// The whole picture at `now`.
#[derive(Debug, Clone, Serialize)]
pub struct QueueStatus {
    pub now: i64,
    pub kinds: Vec<KindCounts>,
    pub destinations: Vec<DestinationStatus>,
    pub dead: Vec<DeadJob>,
}

/// Jobs of one kind by state. `queued`, `running` and `retrying` together are the pending jobs.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct KindCounts {
    pub kind: String,
    /// Waiting for their first attempt.
    pub queued: i64,
    /// Leased by a worker now.
    pub running: i64,
    /// Failed at least once, waiting for the next attempt (or for their destination).
    pub retrying: i64,
    pub done: i64,
    pub dead: i64,
}

/// One destination's health and what waits for it.
#[derive(Debug, Clone, Serialize)]
pub struct DestinationStatus {
    pub destination: String,
    pub state: DestinationState,
    pub consecutive_failures: i64,
    pub pending: i64,
    pub last_error: Option<String>,
    pub last_failure_at: Option<i64>,
    pub last_success_at: Option<i64>,
    /// When the next probe may go, while it is failing or unreachable.
    pub next_probe_at: Option<i64>,
}

/// A job the queue gave up on.
#[derive(Debug, Clone, Serialize)]
pub struct DeadJob {
    pub id: JobId,
    pub kind: String,
    pub tag: String,
    pub destination: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub finished_at: Option<i64>,
    /// False when its payload was cleared (e.g. a ballot link after the close): there is
    /// nothing left to send.
    pub retryable: bool,
}

/// Reads the queue's status, all parts from one snapshot of the database (so the counts, the
/// destinations and the dead jobs agree with each other while workers keep going).
pub async fn status(db: &Db) -> Result<QueueStatus> {
    let now = db.now();
    let mut tx = db.pool.begin().await?;
    if db.dialect == convene_migrations::Dialect::Postgres {
        // PostgreSQL's default gives each statement its own snapshot; SQLite's read
        // transaction already keeps one.
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await?;
    }
    let rows = sqlx::query(
        "SELECT kind, \
         CAST(COALESCE(SUM(CASE WHEN state = 'pending' AND attempts = 0 AND (lease_until IS NULL OR lease_until <= $1) THEN 1 ELSE 0 END), 0) AS BIGINT) AS queued, \
         CAST(COALESCE(SUM(CASE WHEN state = 'pending' AND lease_until > $1 THEN 1 ELSE 0 END), 0) AS BIGINT) AS running, \
         CAST(COALESCE(SUM(CASE WHEN state = 'pending' AND attempts > 0 AND (lease_until IS NULL OR lease_until <= $1) THEN 1 ELSE 0 END), 0) AS BIGINT) AS retrying, \
         CAST(COALESCE(SUM(CASE WHEN state = 'done' THEN 1 ELSE 0 END), 0) AS BIGINT) AS done, \
         CAST(COALESCE(SUM(CASE WHEN state = 'dead' THEN 1 ELSE 0 END), 0) AS BIGINT) AS dead \
         FROM jobs GROUP BY kind ORDER BY kind",
    )
    .bind(now)
    .fetch_all(&mut *tx)
    .await?;
    let mut kinds = Vec::with_capacity(rows.len());
    for r in rows {
        kinds.push(KindCounts {
            kind: r.try_get("kind")?,
            queued: r.try_get("queued")?,
            running: r.try_get("running")?,
            retrying: r.try_get("retrying")?,
            done: r.try_get("done")?,
            dead: r.try_get("dead")?,
        });
    }

    // Destinations with a health row, and those with pending jobs that never failed.
    let rows = sqlx::query(
        "SELECT d.id, d.state, d.consecutive_failures, d.last_error, d.last_failure_at, \
         d.last_success_at, d.next_probe_at, \
         (SELECT COUNT(*) FROM jobs j WHERE j.destination = d.id AND j.state = 'pending') AS pending \
         FROM job_destinations d ORDER BY d.id",
    )
    .fetch_all(&mut *tx)
    .await?;
    let mut destinations = Vec::with_capacity(rows.len());
    for r in rows {
        destinations.push(DestinationStatus {
            destination: r.try_get("id")?,
            state: DestinationState::parse(&r.try_get::<String, _>("state")?),
            consecutive_failures: r.try_get("consecutive_failures")?,
            pending: r.try_get("pending")?,
            last_error: r.try_get("last_error")?,
            last_failure_at: r.try_get("last_failure_at")?,
            last_success_at: r.try_get("last_success_at")?,
            next_probe_at: r.try_get("next_probe_at")?,
        });
    }
    let rows = sqlx::query(
        "SELECT destination, COUNT(*) AS pending FROM jobs WHERE state = 'pending' \
         AND destination NOT IN (SELECT id FROM job_destinations) GROUP BY destination ORDER BY destination",
    )
    .fetch_all(&mut *tx)
    .await?;
    for r in rows {
        destinations.push(DestinationStatus {
            destination: r.try_get("destination")?,
            state: DestinationState::Ok,
            consecutive_failures: 0,
            pending: r.try_get("pending")?,
            last_error: None,
            last_failure_at: None,
            last_success_at: None,
            next_probe_at: None,
        });
    }
    destinations.sort_by(|a, b| a.destination.cmp(&b.destination));

    let rows = sqlx::query(
        "SELECT id, kind, tag, destination, attempts, last_error, created_at, finished_at, \
         CAST(CASE WHEN payload IS NULL THEN 0 ELSE 1 END AS BIGINT) AS retryable \
         FROM jobs WHERE state = 'dead' ORDER BY finished_at DESC, id DESC LIMIT $1",
    )
    .bind(DEAD_LISTED)
    .fetch_all(&mut *tx)
    .await?;
    let mut dead = Vec::with_capacity(rows.len());
    for r in rows {
        dead.push(DeadJob {
            id: JobId(r.try_get("id")?),
            kind: r.try_get("kind")?,
            tag: r.try_get("tag")?,
            destination: r.try_get("destination")?,
            attempts: r.try_get("attempts")?,
            last_error: r.try_get("last_error")?,
            created_at: r.try_get("created_at")?,
            finished_at: r.try_get("finished_at")?,
            retryable: r.try_get::<i64, _>("retryable")? != 0,
        });
    }
    tx.commit().await?;
    Ok(QueueStatus {
        now,
        kinds,
        destinations,
        dead,
    })
}

/// Gives a dead job a fresh set of attempts, due now. False if it is not dead or has no
/// payload left to send.
pub async fn retry(db: &Db, id: JobId) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE jobs SET state = 'pending', attempts = 0, run_at = $1, finished_at = NULL, \
         leased_by = NULL, lease_until = NULL WHERE id = $2 AND state = 'dead' AND payload IS NOT NULL",
    )
    .bind(db.now())
    .bind(id.0)
    .execute(&db.pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Jobs of `tag` by state: (done, pending, dead). Used for the delivery counts stewards see.
pub async fn tag_counts(db: &Db, tag: &str) -> Result<(i64, i64, i64)> {
    let r = sqlx::query(
        "SELECT CAST(COALESCE(SUM(CASE WHEN state = 'done' THEN 1 ELSE 0 END), 0) AS BIGINT) AS done, \
         CAST(COALESCE(SUM(CASE WHEN state = 'pending' THEN 1 ELSE 0 END), 0) AS BIGINT) AS pending, \
         CAST(COALESCE(SUM(CASE WHEN state = 'dead' THEN 1 ELSE 0 END), 0) AS BIGINT) AS dead \
         FROM jobs WHERE tag = $1",
    )
    .bind(tag)
    .fetch_one(&db.pool)
    .await?;
    Ok((
        r.try_get("done")?,
        r.try_get("pending")?,
        r.try_get("dead")?,
    ))
}

/// Pending jobs of `kind` (queued, running or retrying), for `/metrics`.
/// Jobs by kind and state, for `/metrics`.
pub async fn counts(db: &Db) -> Result<Vec<(String, String, i64)>> {
    let rows = sqlx::query(
        "SELECT kind, state, COUNT(*) AS n FROM jobs GROUP BY kind, state ORDER BY kind, state",
    )
    .fetch_all(&db.pool)
    .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("kind")?, r.try_get("state")?, r.try_get("n")?)))
        .collect()
}

pub async fn depth(db: &Db, kind: &str) -> Result<i64> {
    Ok(
        sqlx::query("SELECT COUNT(*) AS n FROM jobs WHERE kind = $1 AND state = 'pending'")
            .bind(kind)
            .fetch_one(&db.pool)
            .await?
            .try_get("n")?,
    )
}
