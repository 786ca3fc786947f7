//! Group commit: small write transactions that arrive together are applied in one.
//!
//! Each activity an inbox takes is a small write (its id remembered, a follower added, a Room
//! refreshed) that must be durable before the sender is answered. One transaction each means a
//! `BEGIN`, a `COMMIT` and a turn on SQLite's one writer (or a WAL flush on PostgreSQL) per
//! activity, and with many senders at once most of the database's work is those. So such
//! writes go to one task per database, which takes every one waiting (up to [`MAX_BATCH`]),
//! runs them in turn in one transaction and commits once; each caller gets its own result after
//! that commit, so an answer still means "stored".
//!
//! A unit of work must only touch the database through the transaction it is given, because it
//! may run more than once. Batches go optimistically: each unit runs straight into the shared
//! transaction. When one of them fails (its use case refused the activity, or a statement
//! failed), the batch is rolled back and runs again in one transaction with a savepoint around
//! each unit, so the failing unit's writes are undone alone and the others still commit
//! together. Only if that transaction fails as a whole (its commit, say) does each unit run
//! alone, exactly as without grouping. So a refusal never takes another sender's activity with
//! it, never leaves a partial write, and costs the others one rerun, not a commit each.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::future::BoxFuture;
use tokio::sync::{mpsc, oneshot};

use crate::db::Db;
use crate::error::{AppError, Result};

/// The transaction a unit of work runs in.
pub type Tx = sqlx::Transaction<'static, sqlx::Any>;

/// The most units one transaction applies.
pub const MAX_BATCH: usize = 128;

/// One caller's work and the way back to it, with its type erased for the queue.
trait Unit: Send {
    /// Runs the work in `tx` and keeps its result; true if it succeeded.
    fn run<'t>(&'t mut self, tx: &'t mut Tx) -> BoxFuture<'t, bool>;
    /// Hands the kept result to the caller once its transaction committed, or `failed`.
    fn finish(self: Box<Self>, failed: Option<AppError>);
}

struct Pending<D, T, F> {
    data: D,
    work: F,
    result: Option<Result<T>>,
    reply: oneshot::Sender<Result<T>>,
}

impl<D, T, F> Unit for Pending<D, T, F>
where
    D: Send + Sync + 'static,
    T: Send + 'static,
    F: for<'a> Fn(&'a mut Tx, &'a D) -> BoxFuture<'a, Result<T>> + Send + 'static,
{
    fn run<'t>(&'t mut self, tx: &'t mut Tx) -> BoxFuture<'t, bool> {
        Box::pin(async move {
            let result = (self.work)(tx, &self.data).await;
            let ok = result.is_ok();
            self.result = Some(result);
            ok
        })
    }

    fn finish(self: Box<Self>, failed: Option<AppError>) {
        let result = match (failed, self.result) {
            (Some(err), _) => Err(err),
            (None, Some(result)) => result,
            (None, None) => Err(AppError::Internal(anyhow::anyhow!("the write never ran"))),
        };
        // The caller may have gone (its request was cancelled); the write stands regardless.
        let _ = self.reply.send(result);
    }
}

/// The queue to a database's group-commit task, started on first use.
#[derive(Clone, Default)]
pub struct GroupCommit {
    queue: Arc<Mutex<Queue>>,
    stats: Arc<GroupStats>,
}

/// The way to the task, once started; none for good once closed.
#[derive(Default)]
struct Queue {
    sender: Option<mpsc::UnboundedSender<Box<dyn Unit>>>,
    closed: bool,
}

/// What the group-commit task did, for `/metrics`.
#[derive(Debug, Default)]
pub struct GroupStats {
    /// Transactions committed, each holding one unit or more.
    pub commits: AtomicU64,
    /// Units written by those transactions.
    pub units: AtomicU64,
    /// Batches rolled back because a unit failed, and run again behind savepoints.
    pub fallbacks: AtomicU64,
}

impl std::fmt::Debug for GroupCommit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCommit").finish_non_exhaustive()
    }
}

impl GroupCommit {
    /// What the task did so far.
    pub fn stats(&self) -> &GroupStats {
        &self.stats
    }

    /// The lines for `/metrics`, in the Prometheus text format.
    pub fn metrics(&self) -> String {
        let s = &self.stats;
        format!(
            "# HELP convene_db_group_commits_total Write transactions committed by the group-commit task (inbox writes applied together).\n\
             # TYPE convene_db_group_commits_total counter\n\
             convene_db_group_commits_total {}\n\
             # HELP convene_db_grouped_writes_total Writes those transactions applied.\n\
             # TYPE convene_db_grouped_writes_total counter\n\
             convene_db_grouped_writes_total {}\n\
             # HELP convene_db_group_fallbacks_total Batches rolled back because one write failed, then run again with a savepoint around each write.\n\
             # TYPE convene_db_group_fallbacks_total counter\n\
             convene_db_group_fallbacks_total {}\n",
            s.commits.load(Ordering::Relaxed),
            s.units.load(Ordering::Relaxed),
            s.fallbacks.load(Ordering::Relaxed),
        )
    }

    /// Stops taking work: the task applies what it has and ends. Later work runs alone.
    pub fn close(&self) {
        if let Ok(mut queue) = self.queue.lock() {
            queue.sender = None;
            queue.closed = true;
        }
    }
}

impl Db {
    /// Runs `work` on `data` in a write transaction shared with other such writes that are
    /// waiting (see the module docs), and returns its result once that transaction committed.
    /// `work` may run twice and must write only through the transaction it is given.
    pub async fn grouped<D, T, F>(&self, data: D, work: F) -> Result<T>
    where
        D: Send + Sync + 'static,
        T: Send + 'static,
        F: for<'a> Fn(&'a mut Tx, &'a D) -> BoxFuture<'a, Result<T>> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let unit: Box<dyn Unit> = Box::new(Pending {
            data,
            work,
            result: None,
            reply,
        });
        let unit = match self.group_queue() {
            Some(queue) => match queue.send(unit) {
                Ok(()) => None,
                Err(mpsc::error::SendError(unit)) => Some(unit),
            },
            None => Some(unit),
        };
        if let Some(unit) = unit {
            // No task to take it (the database is closing, or its runtime is gone): alone.
            alone(self, unit).await;
        }
        answer
            .await
            .map_err(|_| AppError::Internal(anyhow::anyhow!("the database's writer stopped")))?
    }

    /// The queue to this database's task, starting the task on the current runtime if there
    /// is none yet or the one there was has ended (its runtime shut down).
    fn group_queue(&self) -> Option<mpsc::UnboundedSender<Box<dyn Unit>>> {
        let mut queue = self.group.queue.lock().ok()?;
        if queue.closed {
            return None;
        }
        if let Some(sender) = queue.sender.as_ref().filter(|sender| !sender.is_closed()) {
            return Some(sender.clone());
        }
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        let (sender, receiver) = mpsc::unbounded_channel();
        // The task's handle on the database must not hold the queue, or it would never close.
        let db = self.without_group();
        runtime.spawn(apply_batches(db, self.group.stats.clone(), receiver));
        queue.sender = Some(sender.clone());
        Some(sender)
    }
}

/// Takes every unit waiting, applies them in one transaction, repeats until the queue closes.
async fn apply_batches(
    db: Db,
    stats: Arc<GroupStats>,
    mut queue: mpsc::UnboundedReceiver<Box<dyn Unit>>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
        if batch.len() == 1 {
            if let Some(unit) = batch.pop()
                && alone(&db, unit).await
            {
                stats.commits.fetch_add(1, Ordering::Relaxed);
                stats.units.fetch_add(1, Ordering::Relaxed);
            }
            continue;
        }
        match together(&db, &mut batch).await {
            Ok(()) => {
                stats.commits.fetch_add(1, Ordering::Relaxed);
                stats.units.fetch_add(batch.len() as u64, Ordering::Relaxed);
                batch.drain(..).for_each(|unit| unit.finish(None));
            }
            Err(err) => {
                tracing::debug!(error = %err, units = batch.len(), "batch rolled back; it runs again behind savepoints");
                stats.fallbacks.fetch_add(1, Ordering::Relaxed);
                match guarded(&db, &mut batch).await {
                    Ok(written) => {
                        stats.commits.fetch_add(1, Ordering::Relaxed);
                        stats.units.fetch_add(written, Ordering::Relaxed);
                        batch.drain(..).for_each(|unit| unit.finish(None));
                    }
                    Err(err) => {
                        tracing::debug!(error = %err, units = batch.len(), "guarded batch failed; each unit runs alone");
                        for unit in batch.drain(..) {
                            if alone(&db, unit).await {
                                stats.commits.fetch_add(1, Ordering::Relaxed);
                                stats.units.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Runs every unit of `batch` in one transaction and commits it; an error if any unit failed
/// or the commit did (then nothing of the batch was written).
async fn together(db: &Db, batch: &mut [Box<dyn Unit>]) -> Result<()> {
    let mut tx = db.begin_write().await?;
    for unit in batch.iter_mut() {
        if !unit.run(&mut tx).await {
            tx.rollback().await?;
            return Err(AppError::BadRequest("a unit of the batch failed".into()));
        }
    }
    tx.commit().await?;
    Ok(())
}

/// Runs every unit of `batch` in one transaction, each behind a savepoint that is rolled back
/// if the unit fails (PostgreSQL needs that to go on after a failed statement), and commits;
/// the number of units written. A failed unit keeps its own error for its caller. An error
/// only if the transaction as a whole failed; then nothing of the batch was written.
async fn guarded(db: &Db, batch: &mut [Box<dyn Unit>]) -> Result<u64> {
    let mut tx = db.begin_write().await?;
    let mut written = 0;
    for unit in batch.iter_mut() {
        sqlx::raw_sql("SAVEPOINT unit").execute(&mut *tx).await?;
        if unit.run(&mut tx).await {
            written += 1;
        } else {
            sqlx::raw_sql("ROLLBACK TO SAVEPOINT unit")
                .execute(&mut *tx)
                .await?;
        }
        sqlx::raw_sql("RELEASE SAVEPOINT unit")
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(written)
}

/// Runs `unit` in a transaction of its own: committed if it succeeded, else rolled back.
/// True if it committed.
async fn alone(db: &Db, mut unit: Box<dyn Unit>) -> bool {
    let mut tx = match db.begin_write().await {
        Ok(tx) => tx,
        Err(err) => {
            unit.finish(Some(err.into()));
            return false;
        }
    };
    if unit.run(&mut tx).await {
        match tx.commit().await {
            Ok(()) => {
                unit.finish(None);
                true
            }
            Err(err) => {
                unit.finish(Some(err.into()));
                false
            }
        }
    } else {
        // Dropping the transaction rolls it back; the unit's own error goes to its caller.
        drop(tx);
        unit.finish(None);
        false
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use sqlx::Row;

    use super::*;

    fn scratch(name: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("convene-group-{name}-{}", std::process::id()))
    }

    async fn database(name: &str) -> anyhow::Result<(Db, std::path::PathBuf)> {
        let dir = scratch(name);
        let _ = std::fs::remove_dir_all(&dir);
        let db = Db::connect(&format!("sqlite://{}/t.db", dir.display())).await?;
        create_table(&db).await?;
        Ok((db, dir))
    }

    /// A fresh PostgreSQL database from `CONVENE_TEST_POSTGRES_URL`, or `None` (and a SKIPPED
    /// line) without one, unless every test must run.
    async fn postgres(name: &str) -> anyhow::Result<Option<Db>> {
        let Some(base) = std::env::var("CONVENE_TEST_POSTGRES_URL")
            .ok()
            .filter(|url| !url.is_empty())
        else {
            assert!(
                std::env::var("CONVENE_TEST_REQUIRE_ALL").as_deref() != Ok("1"),
                "CONVENE_TEST_REQUIRE_ALL=1 but CONVENE_TEST_POSTGRES_URL is not set ({name})"
            );
            eprintln!("SKIPPED {name} on PostgreSQL: set CONVENE_TEST_POSTGRES_URL");
            return Ok(None);
        };
        let Some(at) = base.rfind('/') else {
            anyhow::bail!("CONVENE_TEST_POSTGRES_URL has no database part: {base}");
        };
        let database = format!("convene_group_{name}_{}", rand::random::<u32>());
        let server = Db::connect(&base).await?;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {database}")))
            .execute(&server.pool)
            .await?;
        server.close().await;
        let db = Db::connect(&format!("{}/{database}", &base[..at])).await?;
        create_table(&db).await?;
        Ok(Some(db))
    }

    async fn create_table(db: &Db) -> anyhow::Result<()> {
        sqlx::query("CREATE TABLE t (n BIGINT PRIMARY KEY, note TEXT)")
            .execute(&db.pool)
            .await?;
        Ok(())
    }

    /// Inserts `n` and a second row `n + 1000`. When `fail_odd`, an odd `n` fails between the
    /// two, after a partial write: refused by the use case when `n % 4 == 1`, and by the
    /// database when `n % 4 == 3` (it inserts `n` again, which PostgreSQL answers by aborting
    /// the transaction).
    fn insert_pair<'a>(
        tx: &'a mut Tx,
        (n, fail_odd): &'a (i64, bool),
    ) -> BoxFuture<'a, Result<i64>> {
        Box::pin(async move {
            sqlx::query("INSERT INTO t (n) VALUES ($1)")
                .bind(*n)
                .execute(&mut **tx)
                .await?;
            if *fail_odd && n % 4 == 1 {
                return Err(AppError::BadRequest(format!("{n} is refused")));
            }
            let second = if *fail_odd && n % 4 == 3 {
                *n
            } else {
                n + 1000
            };
            sqlx::query("INSERT INTO t (n) VALUES ($1)")
                .bind(second)
                .execute(&mut **tx)
                .await?;
            Ok(*n)
        })
    }

    async fn stored(db: &Db) -> anyhow::Result<Vec<i64>> {
        Ok(sqlx::query("SELECT n FROM t ORDER BY n")
            .fetch_all(&db.pool)
            .await?
            .iter()
            .map(|row| row.try_get("n"))
            .collect::<Result<_, _>>()?)
    }

    /// Many writes at once share transactions, each caller gets its own result, and every
    /// write is stored when its caller hears of it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn writes_that_arrive_together_share_a_commit() -> anyhow::Result<()> {
        const WRITES: i64 = 400;
        let (db, dir) = database("together").await?;
        let mut tasks = tokio::task::JoinSet::new();
        for n in 0..WRITES {
            let db = db.clone();
            tasks.spawn(async move {
                let got = db.grouped((n, false), insert_pair).await?;
                assert_eq!(got, n);
                // Answered means committed: another connection sees both rows.
                let seen = sqlx::query("SELECT COUNT(*) AS c FROM t WHERE n = $1 OR n = $2")
                    .bind(n)
                    .bind(n + 1000)
                    .fetch_one(&db.pool)
                    .await?;
                assert_eq!(seen.try_get::<i64, _>("c")?, 2);
                Ok::<_, anyhow::Error>(())
            });
        }
        while let Some(done) = tasks.join_next().await {
            done??;
        }
        assert_eq!(stored(&db).await?.len(), 2 * WRITES as usize);
        let stats = db.group_commit().stats();
        let commits = stats.commits.load(Ordering::Relaxed);
        assert_eq!(stats.units.load(Ordering::Relaxed), WRITES as u64);
        assert!(
            commits < WRITES as u64 / 2,
            "{commits} commits for {WRITES} writes: they were not grouped"
        );
        assert_eq!(stats.fallbacks.load(Ordering::Relaxed), 0);
        db.close().await;
        let _ = std::fs::remove_dir_all(dir);
        Ok(())
    }

    /// Writes that fail after writing part of their work, among others in the same batches:
    /// each failing caller gets its own error, nothing of those writes is stored, every other
    /// write is stored whole, and the others still share commits.
    async fn failing_writes_take_nothing_else_with_them(db: Db) -> anyhow::Result<()> {
        const WRITES: i64 = 200;
        let mut tasks = tokio::task::JoinSet::new();
        for n in 0..WRITES {
            let db = db.clone();
            tasks.spawn(async move { (n, db.grouped((n, true), insert_pair).await) });
        }
        while let Some(done) = tasks.join_next().await {
            let (n, result) = done?;
            match result {
                Ok(got) => assert!(n % 2 == 0 && got == n),
                Err(AppError::BadRequest(why)) => assert!(n % 4 == 1, "{why}"),
                Err(AppError::Internal(why)) => assert!(n % 4 == 3, "{n}: {why}"),
                Err(other) => panic!("{n}: {other}"),
            }
        }
        let expected: Vec<i64> = (0..WRITES)
            .filter(|n| n % 2 == 0)
            .chain((0..WRITES).filter(|n| n % 2 == 0).map(|n| n + 1000))
            .collect();
        assert_eq!(stored(&db).await?, expected);
        let stats = db.group_commit().stats();
        let commits = stats.commits.load(Ordering::Relaxed);
        assert!(stats.fallbacks.load(Ordering::Relaxed) > 0);
        assert_eq!(stats.units.load(Ordering::Relaxed), WRITES as u64 / 2);
        // One commit for each good write would be 100.
        assert!(
            commits < WRITES as u64 / 4,
            "{commits} commits for {} good writes: failures broke the batches up",
            WRITES / 2
        );
        db.close().await;
        Ok(())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn failing_writes_take_nothing_else_with_them_on_sqlite() -> anyhow::Result<()> {
        let (db, dir) = database("failing").await?;
        failing_writes_take_nothing_else_with_them(db).await?;
        let _ = std::fs::remove_dir_all(dir);
        Ok(())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn failing_writes_take_nothing_else_with_them_on_postgres() -> anyhow::Result<()> {
        match postgres("failing").await? {
            Some(db) => failing_writes_take_nothing_else_with_them(db).await,
            None => Ok(()),
        }
    }

    /// After the queue closed (the instance is stopping), a write still runs, alone.
    #[tokio::test]
    async fn a_write_after_closing_runs_alone() -> anyhow::Result<()> {
        let (db, dir) = database("closed").await?;
        assert_eq!(db.grouped((1, false), insert_pair).await?, 1);
        db.group_commit().close();
        assert_eq!(db.grouped((2, false), insert_pair).await?, 2);
        assert_eq!(stored(&db).await?, vec![1, 2, 1001, 1002]);
        // The second went past the (closed) task.
        let stats = db.group_commit().stats();
        assert_eq!(stats.units.load(Ordering::Relaxed), 1);
        db.close().await;
        let _ = std::fs::remove_dir_all(dir);
        Ok(())
    }
}
