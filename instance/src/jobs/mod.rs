//! One durable job queue for everything the instance sends out: mail now, federation
//! deliveries next.
//!
//! # Using it
//! - Enqueue with [`enqueue`] **inside the transaction** that makes the job necessary (the
//!   ballot rows and their ballot mails, the new Room and its announcement), then commit with
//!   [`Queue::commit`], which wakes this process's worker. If the transaction rolls back, the
//!   job never existed; if it commits, the job will run. Other processes sharing the database
//!   find it within [`QueueConfig::poll`].
//! - Run jobs by implementing [`Handler`] for a job kind (one small impl: the kind's name and
//!   an async `run` that returns an [`Outcome`]) and registering it on the [`Worker`] in
//!   `app.rs`. The mail handler is [`crate::mail::Mailer`].
//! - Admins see the queue through [`status::status`] (the `/admin/queue` page and
//!   `convene admin queue`).
//!
//! A new kind, e.g. federation deliveries, is one impl and one line in `app.rs`:
//!
//! ```text
//! struct Deliveries { /* HTTP client, keys */ }
//! impl Handler for Deliveries {
//!     fn kind(&self) -> &'static str { "federation" }
//!     fn run<'a>(&'a self, job: &'a Job) -> BoxFuture<'a, Outcome> {
//!         Box::pin(async move {
//!             // job.payload: the prepared activity; job.destination: "https://remote.example";
//!             // job.key: the activity id, which the remote deduplicates on.
//!             match post_signed(&job.destination, &job.payload).await {
//!                 Ok(()) => Outcome::Done,
//!                 Err(e) if e.is_permanent() => Outcome::Dead(e.to_string()),   // 4xx but 429
//!                 Err(e) => Outcome::Retry { after: e.retry_after(), error: e.to_string() },
//!             }
//!         })
//!     }
//! }
//! // enqueue, in the transaction that created the Room:
//! jobs::enqueue(&mut tx, now, &NewJob { kind: "federation", key: &activity_id,
//!     destination: &inbox_origin, tag: "announce", payload: &json, max_attempts: 10 }).await?;
//! // app.rs:
//! Worker::new(queue).handle(Arc::new(mailer)).handle(Arc::new(deliveries)).spawn(signal)
//! ```
//!
//! # Why it is built this way
//! - **Leases, not locks.** A worker claims a job by writing its worker id and a lease expiry
//!   on the row in one conditional `UPDATE`; another worker (in this or another process) skips
//!   rows whose lease is still running. Nothing is held open while a job runs (an SMTP
//!   exchange, an HTTP delivery), so a slow destination cannot pin database connections, and a
//!   worker that dies (`kill -9`, a crashed node) leaves a lease that simply expires: its jobs
//!   are taken again by whoever comes next. Every claim counts an attempt, so a job that kills
//!   its worker each time still ends dead instead of looping.
//! - **At least once, deduplicated by the destination.** A worker can die after the
//!   destination accepted a job and before the row says so; the job then runs again. Each job
//!   therefore carries a unique idempotency key from which the handler derives what the
//!   destination deduplicates on: mail's `Message-ID`, federation's activity id. The same key
//!   enqueued twice stores one job.
//! - **Per-destination state.** Failures are mostly about where a job goes (an SMTP server that
//!   is down, an instance that went away), not the job. After [`Policy::failing_after`]
//!   consecutive failures a destination is *failing*: its jobs are held, and one job at a
//!   time is tried as a probe after a growing pause; after [`Policy::unreachable_after`] it is
//!   *unreachable* and probed hourly. The first success makes it healthy and releases its held
//!   jobs at once. This stops a thousand ballot mails from each hammering a dead server eight
//!   times, and lets them all go out minutes after it is back.
//! - **Backoff with jitter, `Retry-After` honoured.** A job that fails waits
//!   [`Policy::retry_delay`]: exponential from 30 s to an hour, spread between half and all of
//!   that so retries of a burst do not arrive together, or exactly what the destination asked
//!   for. After `max_attempts` it is **dead**: kept with its last error, listed for admins,
//!   and retried only by hand.
//! - **Finished jobs keep no payload.** When a job is done its payload is cleared in the same
//!   statement, so a sent ballot link or receipt is not left readable in the database.
//!
//! Time comes from the database's [`crate::clock::Clock`], so tests move leases, backoff and
//! probes forward by advancing it.

mod policy;
pub mod status;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use rand::Rng;
use sqlx::Row;
use tokio::sync::Notify;

pub use policy::{DestinationState, Policy};

use crate::db::Db;

/// A transaction on the instance's database.
pub type Tx<'c> = sqlx::Transaction<'c, sqlx::Any>;

/// A job's row id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub struct JobId(pub i64);

/// A job to enqueue.
#[derive(Debug, Clone)]
pub struct NewJob<'a> {
    /// Which [`Handler`] runs it (`"mail"`, later `"federation"`).
    pub kind: &'a str,
    /// Unique across all jobs; a second job with the same key is not stored. The handler
    /// derives the destination's deduplication id from it, so it must not change on retries.
    pub key: &'a str,
    /// Where it goes, as the handler names it (`smtp://host:port`, `https://remote.example`).
    pub destination: &'a str,
    /// What it is about, for delivery counts (`election:3:ballot`).
    pub tag: &'a str,
    /// The handler's input, usually JSON.
    pub payload: &'a str,
    /// Attempts before the job is dead.
    pub max_attempts: i64,
}

/// Stores a job inside the caller's transaction. Returns its id, or `None` if a job with the
/// same idempotency key already exists (then nothing is written).
///
/// The job becomes visible to workers when the transaction commits; commit with
/// [`Queue::commit`] to have this process's worker start on it at once.
pub async fn enqueue(
    tx: &mut Tx<'_>,
    now: i64,
    job: &NewJob<'_>,
) -> crate::error::Result<Option<JobId>> {
    let row = sqlx::query(
        "INSERT INTO jobs (kind, idempotency_key, destination, tag, payload, max_attempts, run_at, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $7) ON CONFLICT (idempotency_key) DO NOTHING RETURNING id",
    )
    .bind(job.kind)
    .bind(job.key)
    .bind(job.destination)
    .bind(job.tag)
    .bind(job.payload)
    .bind(job.max_attempts.max(1))
    .bind(now)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(match row {
        Some(row) => Some(JobId(row.try_get("id")?)),
        None => None,
    })
}

/// Gives up on every job with `tag` that has not run yet (dead, with `reason`), and clears the
/// payload of all of them: used when what they carry must no longer go out or stay readable
/// (ballot links at an election's close).
pub async fn cancel_tagged(
    tx: &mut Tx<'_>,
    now: i64,
    tag: &str,
    reason: &str,
) -> crate::error::Result<()> {
    sqlx::query(
        "UPDATE jobs SET state = 'dead', finished_at = $1, last_error = $2, payload = NULL, \
         leased_by = NULL, lease_until = NULL WHERE tag = $3 AND state = 'pending'",
    )
    .bind(now)
    .bind(reason)
    .bind(tag)
    .execute(&mut **tx)
    .await?;
    sqlx::query("UPDATE jobs SET payload = NULL WHERE tag = $1 AND payload IS NOT NULL")
        .bind(tag)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Tuning of the queue; the defaults suit production.
#[derive(Debug, Clone)]
pub struct QueueConfig {
    /// How long a claimed job is left alone by other workers. A handler is cut off at half of
    /// it, so a lease never runs out while its job is still running.
    pub lease: Duration,
    /// How often a worker looks for jobs without being woken (jobs enqueued by other
    /// processes, retries coming due).
    pub poll: Duration,
    /// Jobs run at the same time by one worker.
    pub parallel: usize,
    pub policy: Policy,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            lease: Duration::from_secs(120),
            poll: Duration::from_secs(2),
            parallel: 8,
            policy: Policy::default(),
        }
    }
}

/// A handle on the queue: cheap to clone, shared by the worker and everyone who enqueues.
#[derive(Clone)]
pub struct Queue {
    db: Db,
    wake: Arc<Notify>,
    worker_id: Arc<str>,
    config: Arc<QueueConfig>,
}

impl Queue {
    /// A queue on `db`, with a worker id unique to this handle (host, process and a random
    /// part, so two instances in one test process do not share leases).
    pub fn new(db: Db, config: QueueConfig) -> Self {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "host".into());
        let nonce: u32 = rand::thread_rng().r#gen();
        Self {
            db,
            wake: Arc::new(Notify::new()),
            worker_id: format!("{host}:{}:{nonce:08x}", std::process::id()).into(),
            config: Arc::new(config),
        }
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    /// The id this process's worker writes into the leases it holds.
    pub fn worker_id(&self) -> &str {
        &self.worker_id
    }

    pub fn config(&self) -> &QueueConfig {
        &self.config
    }

    /// Commits a transaction that enqueued jobs and wakes this process's worker.
    pub async fn commit(&self, tx: Tx<'_>) -> crate::error::Result<()> {
        tx.commit().await?;
        self.wake();
        Ok(())
    }

    /// Wakes this process's worker (after a commit that enqueued jobs). A wake that arrives
    /// while it is busy is kept, so it looks again when it is done.
    pub fn wake(&self) {
        self.wake.notify_one();
    }
}

/// A claimed job, as its handler sees it.
#[derive(Debug, Clone)]
pub struct Job {
    pub id: JobId,
    pub kind: String,
    /// The idempotency key: derive the destination's deduplication id from it.
    pub key: String,
    pub destination: String,
    pub tag: String,
    pub payload: String,
    /// This attempt's number, from 1.
    pub attempt: i64,
    pub max_attempts: i64,
    /// True when the job is the one probe of a failing destination.
    pub probe: bool,
}

/// What became of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The destination has it.
    Done,
    /// Try again later: after `after` if the destination said when (`Retry-After`), otherwise
    /// after the backoff. Counts as a failure of the destination.
    Retry {
        after: Option<Duration>,
        error: String,
    },
    /// Never try again (the destination refused it for good, or it cannot be built); the job is
    /// kept as dead with this error. Says nothing about the destination's health.
    Dead(String),
}

/// Runs the jobs of one kind. Implement it for a new kind of outgoing work and register it
/// with [`Worker::handle`].
pub trait Handler: Send + Sync + 'static {
    /// The `kind` of the jobs it runs.
    fn kind(&self) -> &'static str;

    /// One attempt at `job`. Must not panic on bad payloads: return [`Outcome::Dead`].
    fn run<'a>(&'a self, job: &'a Job) -> BoxFuture<'a, Outcome>;
}

/// What one [`Worker::drain`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Drained {
    pub done: usize,
    pub retried: usize,
    pub dead: usize,
}

/// Claims due jobs of the kinds it has handlers for, runs them, and records their outcomes.
#[derive(Clone)]
pub struct Worker {
    queue: Queue,
    handlers: HashMap<&'static str, Arc<dyn Handler>>,
}

const JOB_COLUMNS: &str =
    "id, kind, idempotency_key, destination, tag, payload, attempts, max_attempts";

impl Worker {
    pub fn new(queue: Queue) -> Self {
        Self {
            queue,
            handlers: HashMap::new(),
        }
    }

    /// Adds the handler of one job kind.
    #[must_use]
    pub fn handle(mut self, handler: Arc<dyn Handler>) -> Self {
        self.handlers.insert(handler.kind(), handler);
        self
    }

    /// Runs until `shutdown` fires: drains, then sleeps until woken or for the poll interval.
    /// Shutdown is checked between batches, so stopping waits for the jobs in hand (at most
    /// half a lease), not for the whole queue.
    pub fn spawn(self, mut shutdown: crate::shutdown::Signal) -> tokio::task::JoinHandle<()> {
        use futures_util::FutureExt;
        tokio::spawn(async move {
            loop {
                loop {
                    if shutdown.clone().wait().now_or_never().is_some() {
                        return;
                    }
                    match self.step().await {
                        Ok(Some(_)) => {}
                        Ok(None) => break,
                        Err(err) => {
                            tracing::error!(error = %format!("{err:#}"), "job queue");
                            break;
                        }
                    }
                }
                tokio::select! {
                    () = self.queue.wake.notified() => {}
                    () = tokio::time::sleep(self.queue.config.poll) => {}
                    () = shutdown.wait() => break,
                }
            }
        })
    }

    /// Runs every job that is due now (and probes due destinations) until none is left.
    pub async fn drain(&self) -> anyhow::Result<Drained> {
        let mut total = Drained::default();
        while let Some(step) = self.step().await? {
            total.done += step.done;
            total.retried += step.retried;
            total.dead += step.dead;
        }
        Ok(total)
    }

    /// Claims and runs one batch; `None` when nothing was due.
    async fn step(&self) -> anyhow::Result<Option<Drained>> {
        let batch = self.claim().await?;
        if batch.is_empty() {
            return Ok(None);
        }
        Ok(Some(self.run_batch(batch).await?))
    }

    fn kinds(&self) -> Vec<&'static str> {
        let mut kinds: Vec<&'static str> = self.handlers.keys().copied().collect();
        kinds.sort_unstable();
        kinds
    }

    /// `$first, $first+1, ...` for the kinds, bound after the other parameters.
    fn kind_placeholders(&self, first: usize) -> String {
        (0..self.handlers.len().max(1))
            .map(|i| format!("${}", first + i))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Claims up to `parallel` jobs: first one probe per failing destination that is due, then
    /// due jobs of healthy destinations.
    async fn claim(&self) -> anyhow::Result<Vec<Job>> {
        if self.handlers.is_empty() {
            return Ok(Vec::new());
        }
        let db = &self.queue.db;
        let now = db.now();
        let lease_until = now + lease_seconds(&self.queue.config);
        let me: &str = &self.queue.worker_id;
        let mut jobs = self.claim_probes(now, lease_until).await?;
        let room = self.queue.config.parallel.max(1).saturating_sub(jobs.len());
        if room > 0 {
            let due = format!(
                "SELECT j.id FROM jobs j LEFT JOIN job_destinations d ON d.id = j.destination \
                 WHERE j.state = 'pending' AND j.run_at <= $3 AND (j.lease_until IS NULL OR j.lease_until <= $3) \
                 AND (d.state IS NULL OR d.state = 'ok') AND j.kind IN ({}) ORDER BY j.run_at, j.id LIMIT $4",
                self.kind_placeholders(5)
            );
            let set = "leased_by = $1, lease_until = $2, attempts = attempts + 1";
            let still_free = "state = 'pending' AND (lease_until IS NULL OR lease_until <= $3)";
            let sql = match db.dialect {
                // The picked ids are materialised once: a plain `IN (SELECT ... LIMIT n)` may be
                // re-run per row by the planner and, with SKIP LOCKED, pick more than n rows.
                // SKIP LOCKED lets concurrent claimers pass each other's rows instead of
                // queueing behind them.
                convene_migrations::Dialect::Postgres => format!(
                    "WITH picked AS MATERIALIZED ({due} FOR UPDATE OF j SKIP LOCKED) \
                     UPDATE jobs SET {set} FROM picked WHERE jobs.id = picked.id AND jobs.{still_free} \
                     RETURNING {}",
                    JOB_COLUMNS
                        .split(", ")
                        .map(|c| format!("jobs.{c} AS {c}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                // SQLite has one writer at a time and evaluates the list once.
                convene_migrations::Dialect::Sqlite => format!(
                    "UPDATE jobs SET {set} WHERE id IN ({due}) AND {still_free} RETURNING {JOB_COLUMNS}"
                ),
            };
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(me)
                .bind(lease_until)
                .bind(now)
                .bind(i64::try_from(room).unwrap_or(8));
            for kind in self.kinds() {
                query = query.bind(kind);
            }
            for row in query.fetch_all(&db.pool).await? {
                jobs.push(job_from(&row, false)?);
            }
        }
        // A job that already had its last attempt and comes back here lost its worker during
        // that attempt (the lease ran out). Running it again would exceed its attempts and, if
        // it is what kills workers, kill another: it is dead.
        let mut runnable = Vec::with_capacity(jobs.len());
        for job in jobs {
            if job.attempt > job.max_attempts {
                self.record(
                    &job,
                    Outcome::Dead(
                        "its worker stopped during the last attempt (the lease expired)".into(),
                    ),
                )
                .await?;
            } else {
                runnable.push(job);
            }
        }
        Ok(runnable)
    }

    /// For each failing destination whose probe is due, takes its probe lease and one of its
    /// jobs. Only the worker that wins the probe lease runs a job there, so a failing
    /// destination sees one attempt at a time however many processes share the queue.
    async fn claim_probes(&self, now: i64, lease_until: i64) -> anyhow::Result<Vec<Job>> {
        let db = &self.queue.db;
        let me: &str = &self.queue.worker_id;
        let sql = format!(
            "SELECT d.id FROM job_destinations d WHERE d.state <> 'ok' AND d.next_probe_at <= $1 \
             AND (d.probe_until IS NULL OR d.probe_until <= $1) AND EXISTS (SELECT 1 FROM jobs j \
             WHERE j.destination = d.id AND j.state = 'pending' AND j.kind IN ({})) ORDER BY d.id LIMIT $2",
            self.kind_placeholders(3)
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(now)
            .bind(i64::try_from(self.queue.config.parallel.max(1)).unwrap_or(8));
        for kind in self.kinds() {
            query = query.bind(kind);
        }
        let due = query.fetch_all(&db.pool).await?;
        let mut jobs = Vec::new();
        for row in due {
            let destination: String = row.try_get("id")?;
            let won = sqlx::query(
                "UPDATE job_destinations SET probe_by = $1, probe_until = $2 WHERE id = $3 \
                 AND state <> 'ok' AND next_probe_at <= $4 AND (probe_until IS NULL OR probe_until <= $4)",
            )
            .bind(me)
            .bind(lease_until)
            .bind(&destination)
            .bind(now)
            .execute(&db.pool)
            .await?;
            if won.rows_affected() != 1 {
                continue;
            }
            let sql = format!(
                "UPDATE jobs SET leased_by = $1, lease_until = $2, attempts = attempts + 1 \
                 WHERE id = (SELECT id FROM jobs WHERE destination = $3 AND state = 'pending' \
                   AND (lease_until IS NULL OR lease_until <= $4) AND kind IN ({}) ORDER BY run_at, id LIMIT 1) \
                 AND state = 'pending' AND (lease_until IS NULL OR lease_until <= $4) \
                 RETURNING {JOB_COLUMNS}",
                self.kind_placeholders(5)
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(me)
                .bind(lease_until)
                .bind(&destination)
                .bind(now);
            for kind in self.kinds() {
                query = query.bind(kind);
            }
            match query.fetch_optional(&db.pool).await? {
                Some(row) => jobs.push(job_from(&row, true)?),
                None => {
                    // Nothing to probe with after all (another worker holds its jobs).
                    sqlx::query(
                        "UPDATE job_destinations SET probe_by = NULL, probe_until = NULL WHERE id = $1 AND probe_by = $2",
                    )
                    .bind(&destination)
                    .bind(me)
                    .execute(&db.pool)
                    .await?;
                }
            }
        }
        Ok(jobs)
    }

    /// Runs claimed jobs side by side, each in its own task (a panicking handler costs its
    /// job an attempt, not the worker) and within half the lease. Each outcome is stored as
    /// soon as it is known, which keeps short the window in which a crash repeats a job.
    async fn run_batch(&self, batch: Vec<Job>) -> anyhow::Result<Drained> {
        use futures_util::{FutureExt, StreamExt};
        let limit = Duration::from_secs(
            u64::try_from(lease_seconds(&self.queue.config) / 2)
                .unwrap_or(1)
                .max(1),
        );
        let mut running = futures_util::stream::FuturesUnordered::new();
        for job in batch {
            let handler = self.handlers.get(job.kind.as_str()).cloned();
            running.push(async move {
                let Some(handler) = handler else {
                    // The claim takes only kinds with a handler; should that ever change, the
                    // job is released for a worker that has one rather than left leased.
                    let error = format!("no handler for jobs of kind {:?}", job.kind);
                    return (job, Outcome::Retry { after: None, error });
                };
                let run_job = job.clone();
                let task = tokio::spawn(async move {
                    match tokio::time::timeout(limit, handler.run(&run_job)).await {
                        Ok(outcome) => outcome,
                        Err(_) => Outcome::Retry {
                            after: None,
                            error: format!("no answer within {} s", limit.as_secs()),
                        },
                    }
                });
                let outcome = match task.await {
                    Ok(outcome) => outcome,
                    Err(err) => Outcome::Retry {
                        after: None,
                        error: format!("the handler failed: {err}"),
                    },
                };
                (job, outcome)
            });
        }
        let mut drained = Drained::default();
        while let Some(first) = running.next().await {
            // Outcomes that are ready together are stored together: one statement marks all
            // the done jobs, which is most of the queue's database work when jobs are quick.
            let mut ready = vec![first];
            while let Some(Some(more)) = running.next().now_or_never() {
                ready.push(more);
            }
            let (done, others): (Vec<_>, Vec<_>) = ready
                .into_iter()
                .partition(|(_, outcome)| *outcome == Outcome::Done);
            let done: Vec<Job> = done.into_iter().map(|(job, _)| job).collect();
            self.record_done(&done).await?;
            drained.done += done.len();
            for (job, outcome) in others {
                match self.record(&job, outcome).await? {
                    Outcome::Done => drained.done += 1,
                    Outcome::Retry { .. } => drained.retried += 1,
                    Outcome::Dead(_) => drained.dead += 1,
                }
            }
        }
        Ok(drained)
    }

    /// Marks jobs done in one statement and tells their destinations (see [`Self::record`]).
    async fn record_done(&self, jobs: &[Job]) -> anyhow::Result<()> {
        if jobs.is_empty() {
            return Ok(());
        }
        let db = &self.queue.db;
        let now = db.now();
        let ids = (0..jobs.len())
            .map(|i| format!("${}", i + 2))
            .collect::<Vec<_>>()
            .join(", ");
        let mut query = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE jobs SET state = 'done', finished_at = $1, payload = NULL, leased_by = NULL, \
             lease_until = NULL, last_error = NULL WHERE id IN ({ids})"
        )))
        .bind(now);
        for job in jobs {
            query = query.bind(job.id.0);
        }
        query.execute(&db.pool).await?;
        let mut destinations: Vec<&str> = jobs.iter().map(|j| j.destination.as_str()).collect();
        destinations.sort_unstable();
        destinations.dedup();
        for destination in destinations {
            destination_answered(db, destination, now).await?;
        }
        Ok(())
    }

    /// Stores an attempt's outcome on the job and its destination; returns what it became
    /// (a retry past the last attempt becomes dead).
    async fn record(&self, job: &Job, outcome: Outcome) -> anyhow::Result<Outcome> {
        let db = &self.queue.db;
        let policy = &self.queue.config.policy;
        let now = db.now();
        let me: &str = &self.queue.worker_id;
        match outcome {
            Outcome::Done => {
                // Whoever holds the lease now, the destination has the job: it is done. The
                // payload goes with the lease (see the module docs).
                sqlx::query(
                    "UPDATE jobs SET state = 'done', finished_at = $1, payload = NULL, leased_by = NULL, \
                     lease_until = NULL, last_error = NULL WHERE id = $2",
                )
                .bind(now)
                .bind(job.id.0)
                .execute(&db.pool)
                .await?;
                destination_answered(db, &job.destination, now).await?;
                Ok(Outcome::Done)
            }
            Outcome::Retry { after, error } => {
                let jitter: f64 = rand::thread_rng().r#gen();
                let dead = job.attempt >= job.max_attempts;
                if dead {
                    mark_dead(db, job, me, now, &error).await?;
                } else {
                    sqlx::query(
                        "UPDATE jobs SET run_at = $1, last_error = $2, leased_by = NULL, lease_until = NULL \
                         WHERE id = $3 AND leased_by = $4 AND state = 'pending'",
                    )
                    .bind(now + policy.retry_delay(job.attempt, after, jitter))
                    .bind(&error)
                    .bind(job.id.0)
                    .bind(me)
                    .execute(&db.pool)
                    .await?;
                }
                destination_failed(db, policy, job, now, after, &error, jitter).await?;
                tracing::warn!(job = job.id.0, kind = %job.kind, destination = %job.destination,
                    attempt = job.attempt, %error, dead, "job failed");
                Ok(if dead {
                    Outcome::Dead(error)
                } else {
                    Outcome::Retry { after, error }
                })
            }
            Outcome::Dead(error) => {
                mark_dead(db, job, me, now, &error).await?;
                if job.probe {
                    // The probe told nothing about the destination: probe again with another job.
                    sqlx::query(
                        "UPDATE job_destinations SET probe_by = NULL, probe_until = NULL, next_probe_at = $1 \
                         WHERE id = $2 AND probe_by = $3",
                    )
                    .bind(now)
                    .bind(&job.destination)
                    .bind(me)
                    .execute(&db.pool)
                    .await?;
                }
                tracing::warn!(job = job.id.0, kind = %job.kind, %error, "job is dead");
                Ok(Outcome::Dead(error))
            }
        }
    }
}

fn lease_seconds(config: &QueueConfig) -> i64 {
    i64::try_from(config.lease.as_secs()).unwrap_or(120).max(2)
}

fn job_from(row: &sqlx::any::AnyRow, probe: bool) -> anyhow::Result<Job> {
    Ok(Job {
        id: JobId(row.try_get("id")?),
        kind: row.try_get("kind")?,
        key: row.try_get("idempotency_key")?,
        destination: row.try_get("destination")?,
        tag: row.try_get("tag")?,
        payload: row
            .try_get::<Option<String>, _>("payload")?
            .unwrap_or_default(),
        attempt: row.try_get("attempts")?,
        max_attempts: row.try_get("max_attempts")?,
        probe,
    })
}

async fn mark_dead(db: &Db, job: &Job, me: &str, now: i64, error: &str) -> anyhow::Result<()> {
    sqlx::query(
        "UPDATE jobs SET state = 'dead', finished_at = $1, last_error = $2, leased_by = NULL, lease_until = NULL \
         WHERE id = $3 AND leased_by = $4 AND state = 'pending'",
    )
    .bind(now)
    .bind(error)
    .bind(job.id.0)
    .bind(me)
    .execute(&db.pool)
    .await?;
    Ok(())
}

/// A success: the destination is healthy. A destination that was held is released, and its
/// waiting jobs become due now rather than at the end of their own backoff.
async fn destination_answered(db: &Db, destination: &str, now: i64) -> anyhow::Result<()> {
    let recovered = sqlx::query(
        "UPDATE job_destinations SET state = 'ok', consecutive_failures = 0, next_probe_at = NULL, \
         probe_by = NULL, probe_until = NULL, last_success_at = $1 WHERE id = $2 AND state <> 'ok'",
    )
    .bind(now)
    .bind(destination)
    .execute(&db.pool)
    .await?;
    if recovered.rows_affected() > 0 {
        tracing::info!(%destination, "destination answers again; releasing its jobs");
        sqlx::query(
            "UPDATE jobs SET run_at = $1 WHERE destination = $2 AND state = 'pending' AND run_at > $1",
        )
        .bind(now)
        .bind(destination)
        .execute(&db.pool)
        .await?;
        return Ok(());
    }
    // A healthy destination's row changes only when it had failures to forget, or once a
    // minute for its last success: not one write per job.
    sqlx::query(
        "UPDATE job_destinations SET consecutive_failures = 0, last_success_at = $1 WHERE id = $2 \
         AND (consecutive_failures <> 0 OR last_success_at IS NULL OR last_success_at < $3)",
    )
    .bind(now)
    .bind(destination)
    .bind(now - 60)
    .execute(&db.pool)
    .await?;
    Ok(())
}

/// A failure: counts it on the destination and moves it to failing or unreachable by the
/// policy. The count is incremented in SQL and the new state written only if nobody counted
/// another failure meanwhile, so concurrent workers never lose a failure or undo a state.
async fn destination_failed(
    db: &Db,
    policy: &Policy,
    job: &Job,
    now: i64,
    retry_after: Option<Duration>,
    error: &str,
    jitter: f64,
) -> anyhow::Result<()> {
    let destination = job.destination.as_str();
    let failures: i64 = sqlx::query(
        "INSERT INTO job_destinations (id, consecutive_failures, last_error, last_failure_at) VALUES ($1, 1, $2, $3) \
         ON CONFLICT (id) DO UPDATE SET consecutive_failures = job_destinations.consecutive_failures + 1, \
         last_error = excluded.last_error, last_failure_at = excluded.last_failure_at RETURNING consecutive_failures",
    )
    .bind(destination)
    .bind(error)
    .bind(now)
    .fetch_one(&db.pool)
    .await?
    .try_get("consecutive_failures")?;
    let (state, next_probe) = policy.after_failure(failures, now, retry_after, jitter);
    // Only the probe's own failure ends the probe lease: a job that was already running when
    // the destination started failing must not let a second probe start beside the first.
    let release = if job.probe {
        ", probe_by = NULL, probe_until = NULL"
    } else {
        ""
    };
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE job_destinations SET state = $1, next_probe_at = $2{release} \
         WHERE id = $3 AND consecutive_failures = $4"
    )))
    .bind(state.as_str())
    .bind(next_probe)
    .bind(destination)
    .bind(failures)
    .execute(&db.pool)
    .await?;
    if state != DestinationState::Ok {
        tracing::warn!(%destination, failures, state = state.as_str(), "destination is held");
    }
    Ok(())
}

#[cfg(test)]
mod tests;
