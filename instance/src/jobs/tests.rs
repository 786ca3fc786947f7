//! The queue against a real SQLite database, with a settable clock and scripted handlers:
//! leases, retries, dead jobs, destination holds and probes, and idempotency keys.

use std::sync::Mutex;

use super::*;
use crate::clock::Clock;

/// A handler that answers from a script (then `Done`) and records what it ran.
struct Scripted {
    kind: &'static str,
    answers: Mutex<Vec<Outcome>>,
    ran: Mutex<Vec<(i64, i64, bool)>>,
}

impl Scripted {
    fn new(kind: &'static str, answers: Vec<Outcome>) -> Arc<Self> {
        Arc::new(Self {
            kind,
            answers: Mutex::new(answers),
            ran: Mutex::new(Vec::new()),
        })
    }

    fn ran(&self) -> Vec<(i64, i64, bool)> {
        self.ran.lock().map(|r| r.clone()).unwrap_or_default()
    }

    fn answer_all(&self, outcome: Outcome) {
        if let Ok(mut a) = self.answers.lock() {
            *a = std::iter::repeat_n(outcome, 1000).collect();
        }
    }

    fn answer_done(&self) {
        if let Ok(mut a) = self.answers.lock() {
            a.clear();
        }
    }
}

impl Handler for Scripted {
    fn kind(&self) -> &'static str {
        self.kind
    }

    fn run<'a>(&'a self, job: &'a Job) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            if let Ok(mut ran) = self.ran.lock() {
                ran.push((job.id.0, job.attempt, job.probe));
            }
            let mut answers = self.answers.lock().expect("script lock");
            // The healthy destination of the tests always answers; the script is for the rest.
            if answers.is_empty() || job.destination == "smtp://up" {
                Outcome::Done
            } else {
                answers.remove(0)
            }
        })
    }
}

struct Fixture {
    db: Db,
    queue: Queue,
    dir: std::path::PathBuf,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn fixture() -> Fixture {
    let dir = std::env::temp_dir().join(format!(
        "convene-jobs-test-{}-{:08x}",
        std::process::id(),
        rand::thread_rng().r#gen::<u32>()
    ));
    let mut db = Db::connect(&format!("sqlite://{}/t.db", dir.display()))
        .await
        .expect("connect");
    db.clock = Clock::system();
    db.migrate().await.expect("migrate");
    let queue = Queue::new(db.clone(), QueueConfig::default());
    Fixture { db, queue, dir }
}

async fn put(f: &Fixture, key: &str, destination: &str) -> Option<JobId> {
    let mut tx = f.db.pool.begin().await.expect("begin");
    let id = enqueue(
        &mut tx,
        f.db.now(),
        &NewJob {
            kind: "test",
            key,
            destination,
            tag: "t",
            payload: "{}",
            max_attempts: 4,
        },
    )
    .await
    .expect("enqueue");
    f.queue.commit(tx).await.expect("commit");
    id
}

async fn job_state(db: &Db, id: JobId) -> (String, i64, i64, Option<String>) {
    let r = sqlx::query("SELECT state, attempts, run_at, payload FROM jobs WHERE id = $1")
        .bind(id.0)
        .fetch_one(&db.pool)
        .await
        .expect("job row");
    (
        r.try_get("state").expect("state"),
        r.try_get("attempts").expect("attempts"),
        r.try_get("run_at").expect("run_at"),
        r.try_get("payload").expect("payload"),
    )
}

async fn destination(db: &Db, id: &str) -> Option<(String, i64)> {
    sqlx::query("SELECT state, consecutive_failures FROM job_destinations WHERE id = $1")
        .bind(id)
        .fetch_optional(&db.pool)
        .await
        .expect("destination row")
        .map(|r| {
            (
                r.try_get("state").expect("state"),
                r.try_get("consecutive_failures").expect("failures"),
            )
        })
}

fn retry(error: &str) -> Outcome {
    Outcome::Retry {
        after: None,
        error: error.into(),
    }
}

#[tokio::test]
async fn an_idempotency_key_is_stored_once_and_a_rolled_back_job_never_runs() {
    let f = fixture().await;
    assert!(put(&f, "k1", "d").await.is_some());
    assert!(
        put(&f, "k1", "d").await.is_none(),
        "the same key again stores nothing"
    );
    let mut tx = f.db.pool.begin().await.expect("begin");
    let new = NewJob {
        kind: "test",
        key: "k2",
        destination: "d",
        tag: "t",
        payload: "{}",
        max_attempts: 3,
    };
    enqueue(&mut tx, f.db.now(), &new).await.expect("enqueue");
    tx.rollback().await.expect("rollback");
    let h = Scripted::new("test", vec![]);
    let worker = Worker::new(f.queue.clone()).handle(h.clone());
    let drained = worker.drain().await.expect("drain");
    assert_eq!(drained.done, 1);
    assert_eq!(h.ran().len(), 1, "only the committed job ran");
}

#[tokio::test]
async fn a_done_job_keeps_no_payload() {
    let f = fixture().await;
    let id = put(&f, "k", "d").await.expect("stored");
    let h = Scripted::new("test", vec![]);
    Worker::new(f.queue.clone())
        .handle(h)
        .drain()
        .await
        .expect("drain");
    let (state, attempts, _, payload) = job_state(&f.db, id).await;
    assert_eq!((state.as_str(), attempts, payload), ("done", 1, None));
}

#[tokio::test]
async fn a_failed_job_backs_off_honours_retry_after_and_dies_after_its_attempts() {
    let f = fixture().await;
    let id = put(&f, "k", "d").await.expect("stored");
    let h = Scripted::new(
        "test",
        vec![
            retry("first"),
            Outcome::Retry {
                after: Some(Duration::from_secs(777)),
                error: "busy".into(),
            },
        ],
    );
    let worker = Worker::new(f.queue.clone()).handle(h.clone());
    let t0 = f.db.now();
    assert_eq!(worker.drain().await.expect("drain").retried, 1);
    let (state, attempts, run_at, _) = job_state(&f.db, id).await;
    assert_eq!((state.as_str(), attempts), ("pending", 1));
    assert!(
        (t0 + 15..=t0 + 31).contains(&run_at),
        "30 s with jitter: {}",
        run_at - t0
    );
    // Not due yet: nothing runs.
    assert_eq!(worker.drain().await.expect("drain"), Drained::default());
    f.db.clock.advance(31);
    let t1 = f.db.now();
    assert_eq!(worker.drain().await.expect("drain").retried, 1);
    let (_, attempts, run_at, _) = job_state(&f.db, id).await;
    assert_eq!(attempts, 2);
    assert!(
        (t1 + 777..=t1 + 778).contains(&run_at),
        "Retry-After honoured: {}",
        run_at - t1
    );
    // Two more failures use up the four attempts; the job is dead and keeps its payload.
    h.answer_all(retry("still down"));
    for _ in 0..2 {
        f.db.clock.advance(4000);
        worker.drain().await.expect("drain");
    }
    let (state, attempts, _, payload) = job_state(&f.db, id).await;
    assert_eq!((state.as_str(), attempts), ("dead", 4));
    assert_eq!(
        payload.as_deref(),
        Some("{}"),
        "a dead job can be retried by hand"
    );
    f.db.clock.advance(100_000);
    assert_eq!(
        worker.drain().await.expect("drain"),
        Drained::default(),
        "dead jobs stay dead"
    );
    let status = status::status(&f.db).await.expect("status");
    assert_eq!(status.dead.len(), 1);
    assert_eq!(status.dead[0].last_error.as_deref(), Some("still down"));
    assert!(status::retry(&f.db, id).await.expect("retry"));
    h.answer_done();
    assert_eq!(worker.drain().await.expect("drain").done, 1);
}

#[tokio::test]
async fn a_leased_job_is_not_taken_twice_and_an_expired_lease_is_taken_over() {
    let f = fixture().await;
    let id = put(&f, "k", "d").await.expect("stored");
    let crashed = Worker::new(f.queue.clone()).handle(Scripted::new("test", vec![]));
    // The first worker claims and then "dies": it never records an outcome.
    let claimed = crashed.claim().await.expect("claim");
    assert_eq!(claimed.len(), 1);
    let other_queue = Queue::new(f.db.clone(), QueueConfig::default());
    let h = Scripted::new("test", vec![]);
    let other = Worker::new(other_queue).handle(h.clone());
    assert_eq!(
        other.drain().await.expect("drain"),
        Drained::default(),
        "leased"
    );
    f.db.clock.advance(121);
    assert_eq!(other.drain().await.expect("drain").done, 1, "lease expired");
    assert_eq!(h.ran(), vec![(id.0, 2, false)], "the second attempt");
}

#[tokio::test]
async fn a_job_whose_worker_dies_on_its_last_attempt_is_dead_not_run_again() {
    let f = fixture().await;
    let id = put(&f, "k", "d").await.expect("stored");
    for _ in 0..4 {
        let q = Queue::new(f.db.clone(), QueueConfig::default());
        let w = Worker::new(q).handle(Scripted::new("test", vec![]));
        assert_eq!(w.claim().await.expect("claim").len(), 1);
        f.db.clock.advance(121);
    }
    let h = Scripted::new("test", vec![]);
    Worker::new(f.queue.clone())
        .handle(h.clone())
        .drain()
        .await
        .expect("drain");
    assert!(h.ran().is_empty());
    assert_eq!(job_state(&f.db, id).await.0, "dead");
}

#[tokio::test]
async fn two_workers_claim_disjoint_jobs() {
    let f = fixture().await;
    for i in 0..40 {
        put(&f, &format!("k{i}"), "d").await;
    }
    let a = Worker::new(Queue::new(f.db.clone(), QueueConfig::default()))
        .handle(Scripted::new("test", vec![]));
    let b = Worker::new(Queue::new(f.db.clone(), QueueConfig::default()))
        .handle(Scripted::new("test", vec![]));
    let mut seen = std::collections::HashSet::new();
    for _ in 0..5 {
        let (x, y) = tokio::join!(a.claim(), b.claim());
        for job in x.expect("claim a").into_iter().chain(y.expect("claim b")) {
            assert!(seen.insert(job.id), "job {:?} claimed twice", job.id);
        }
    }
    assert_eq!(seen.len(), 40);
}

#[tokio::test]
async fn a_failing_destination_is_held_probed_one_job_at_a_time_and_released_when_it_answers() {
    let f = fixture().await;
    let h = Scripted::new("test", vec![]);
    h.answer_all(retry("connection refused"));
    let worker = Worker::new(f.queue.clone()).handle(h.clone());
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(
            put(&f, &format!("down{i}"), "smtp://down")
                .await
                .expect("stored"),
        );
    }
    let healthy = put(&f, "up", "smtp://up").await.expect("stored");
    // The first pass tries all three (the destination was healthy) and fails three times.
    worker.drain().await.expect("drain");
    assert_eq!(
        destination(&f.db, "smtp://down").await,
        Some(("failing".into(), 3))
    );
    assert_eq!(destination(&f.db, "smtp://up").await, None, "never failed");
    assert_eq!(
        job_state(&f.db, healthy).await.0,
        "done",
        "other destinations are not held"
    );
    // A new job for the failing destination is held even though it is due.
    let held = put(&f, "down-new", "smtp://down").await.expect("stored");
    let before = h.ran().len();
    worker.drain().await.expect("drain");
    assert_eq!(
        h.ran().len(),
        before,
        "held: nothing runs before the probe is due"
    );
    assert_eq!(job_state(&f.db, held).await.1, 0);
    // When the probe is due, exactly one job runs (a probe), and fails again.
    f.db.clock.advance(31);
    worker.drain().await.expect("drain");
    let ran = h.ran();
    assert_eq!(ran.len(), before + 1, "{ran:?}");
    assert!(ran.last().is_some_and(|r| r.2), "it ran as a probe");
    assert_eq!(
        destination(&f.db, "smtp://down").await,
        Some(("failing".into(), 4))
    );
    // Failures go on: unreachable after ten.
    for _ in 0..10 {
        f.db.clock.advance(4000);
        worker.drain().await.expect("drain");
    }
    assert_eq!(
        destination(&f.db, "smtp://down").await.map(|d| d.0),
        Some("unreachable".into())
    );
    // It answers again: the probe succeeds and every held job goes out in the same drain.
    h.answer_done();
    f.db.clock.advance(3600);
    let drained = worker.drain().await.expect("drain");
    assert_eq!(
        destination(&f.db, "smtp://down").await,
        Some(("ok".into(), 0))
    );
    let states: Vec<String> = {
        let mut v = Vec::new();
        for id in ids.iter().chain([&held]) {
            v.push(job_state(&f.db, *id).await.0);
        }
        v
    };
    // Each job had at most four attempts; those that used them up are dead, the rest done.
    assert!(
        states.iter().all(|s| s == "done" || s == "dead"),
        "{states:?}"
    );
    assert!(drained.done >= 1, "{drained:?}");
    assert_eq!(
        job_state(&f.db, held).await.0,
        "done",
        "the held job was released"
    );
    let status = status::status(&f.db).await.expect("status");
    let down = status
        .destinations
        .iter()
        .find(|d| d.destination == "smtp://down")
        .expect("listed");
    assert_eq!(down.state, DestinationState::Ok);
    assert_eq!(down.pending, 0);
}

#[tokio::test]
async fn a_dead_outcome_of_a_probe_lets_another_job_probe_at_once() {
    let f = fixture().await;
    let h = Scripted::new("test", vec![]);
    h.answer_all(retry("down"));
    let worker = Worker::new(f.queue.clone()).handle(h.clone());
    for i in 0..4 {
        put(&f, &format!("k{i}"), "d").await;
    }
    worker.drain().await.expect("drain");
    assert_eq!(
        destination(&f.db, "d").await.map(|d| d.0),
        Some("failing".into())
    );
    // The next probe's job is refused for good (a bad address); the destination's health
    // is unknown, so the next job probes in the same drain, succeeds, and releases the rest.
    if let Ok(mut a) = h.answers.lock() {
        *a = vec![Outcome::Dead("550 no such user".into())];
    }
    f.db.clock.advance(60);
    let drained = worker.drain().await.expect("drain");
    assert_eq!(drained.dead, 1, "{drained:?}");
    assert_eq!(drained.done, 3, "{drained:?}");
    assert_eq!(
        destination(&f.db, "d").await.map(|d| d.0),
        Some("ok".into())
    );
}

#[tokio::test]
async fn cancelled_jobs_are_dead_without_payload_and_cannot_be_retried() {
    let f = fixture().await;
    let id = put(&f, "k", "d").await.expect("stored");
    let mut tx = f.db.pool.begin().await.expect("begin");
    cancel_tagged(&mut tx, f.db.now(), "t", "voting closed")
        .await
        .expect("cancel");
    tx.commit().await.expect("commit");
    let (state, _, _, payload) = job_state(&f.db, id).await;
    assert_eq!((state.as_str(), payload), ("dead", None));
    assert!(!status::retry(&f.db, id).await.expect("retry"));
    let status = status::status(&f.db).await.expect("status");
    assert!(!status.dead[0].retryable);
    assert_eq!(status.kinds[0].dead, 1);
}

/// Migration 0003 on a database with an old outbox: unsent rows become pending mail jobs that
/// the mailer sends (here to its default folder), sent rows count as done without their text,
/// given-up rows are dead, and the old table is gone.
async fn old_outbox_rows_become_jobs(database_url: &str, dir: &std::path::Path) {
    let db = Db::connect(database_url).await.expect("connect");
    convene_migrations::migrator(db.dialect)
        .run_to(2, &db.pool)
        .await
        .expect("migrate to 0002");
    for (recipient, body, sent, failed) in [
        ("wait@example.org", "still to send", None, None),
        ("sent@example.org", "your code 123456", Some(100_i64), None),
        ("gone@example.org", "never went", None, Some(200_i64)),
    ] {
        sqlx::query(
            "INSERT INTO email_outbox (recipient, subject, body, kind, created_at, attempts, next_attempt_at, sent_at, failed_at, last_error) \
             VALUES ($1, 'Hello', $2, 'election:1:results', 50, 1, 60, $3, $4, $5)",
        )
        .bind(recipient)
        .bind(body)
        .bind(sent)
        .bind(failed)
        .bind(failed.map(|_| "550 gone"))
        .execute(&db.pool)
        .await
        .expect("old row");
    }
    db.migrate().await.expect("migrate 0003");
    let rows = sqlx::query(
        "SELECT idempotency_key, state, payload, last_error FROM jobs ORDER BY idempotency_key",
    )
    .fetch_all(&db.pool)
    .await
    .expect("jobs");
    let got: Vec<(String, String, Option<String>)> = rows
        .iter()
        .map(|r| {
            (
                r.try_get("idempotency_key").expect("key"),
                r.try_get("state").expect("state"),
                r.try_get("payload").expect("payload"),
            )
        })
        .collect();
    assert_eq!(got.len(), 3, "{got:?}");
    assert_eq!(
        (got[0].1.as_str(), got[0].2.is_some()),
        ("pending", true),
        "{got:?}"
    );
    assert_eq!(
        (got[1].1.as_str(), got[1].2.is_none()),
        ("done", true),
        "{got:?}"
    );
    assert_eq!(
        (got[2].1.as_str(), got[2].2.is_some()),
        ("dead", true),
        "{got:?}"
    );
    assert!(
        sqlx::query("SELECT COUNT(*) AS n FROM email_outbox")
            .fetch_one(&db.pool)
            .await
            .is_err(),
        "the old table is dropped"
    );
    let (done, pending, dead) = status::tag_counts(&db, "election:1:results")
        .await
        .expect("counts");
    assert_eq!(
        (done, pending, dead),
        (1, 1, 1),
        "stewards' delivery counts survive"
    );

    // The mailer adopts the unsent row and sends it to the default folder.
    let settings = crate::config::Settings::resolve(
        &crate::config::ConfigArgs {
            data_dir: Some(dir.to_path_buf()),
            database_url: Some(database_url.to_string()),
            ..crate::config::ConfigArgs::default()
        },
        crate::config::FileConfig::default(),
    )
    .expect("settings");
    let queue = Queue::new(db.clone(), QueueConfig::default());
    let mailer = crate::mail::Mailer::new(&settings, queue).expect("mailer");
    assert_eq!(mailer.adopt_pending().await.expect("adopt"), 1);
    assert_eq!(mailer.drain().await.expect("drain"), 1);
    let files: Vec<String> = std::fs::read_dir(settings.mail_folder())
        .expect("mail folder")
        .filter_map(|e| e.ok())
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .collect();
    assert_eq!(files.len(), 1);
    assert!(
        files[0].contains("still to send") && files[0].contains("Message-ID: <"),
        "{}",
        files[0]
    );
    db.pool.close().await;
}

#[tokio::test]
async fn migration_0003_moves_the_old_outbox_into_jobs_on_sqlite() {
    let f = fixture().await;
    let dir = f.dir.join("old");
    old_outbox_rows_become_jobs(&format!("sqlite://{}/old.db", dir.display()), &dir).await;
}

#[tokio::test]
async fn migration_0003_moves_the_old_outbox_into_jobs_on_postgres() {
    let Ok(base) = std::env::var("CONVENE_TEST_POSTGRES_URL") else {
        assert!(
            std::env::var("CONVENE_TEST_REQUIRE_ALL").as_deref() != Ok("1"),
            "CONVENE_TEST_REQUIRE_ALL=1 but CONVENE_TEST_POSTGRES_URL is not set"
        );
        eprintln!("SKIPPED migration_0003 on PostgreSQL: set CONVENE_TEST_POSTGRES_URL");
        return;
    };
    sqlx::any::install_default_drivers();
    let name = format!("convene_m3_{:08x}", rand::thread_rng().r#gen::<u32>());
    let pool = sqlx::AnyPool::connect(&base).await.expect("connect");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&pool)
        .await
        .expect("create database");
    pool.close().await;
    let url = match base.rfind('/') {
        Some(at) => format!("{}/{name}", &base[..at]),
        None => panic!("no database in {base}"),
    };
    let f = fixture().await;
    old_outbox_rows_become_jobs(&url, &f.dir.join("pg")).await;
}

/// A handler that panics costs its job an attempt, not the worker.
struct Panics;

impl Handler for Panics {
    fn kind(&self) -> &'static str {
        "test"
    }

    fn run<'a>(&'a self, _job: &'a Job) -> BoxFuture<'a, Outcome> {
        Box::pin(async { panic!("a handler bug") })
    }
}

#[tokio::test]
async fn a_panicking_handler_makes_a_retry_and_the_worker_goes_on() {
    let f = fixture().await;
    let id = put(&f, "k", "d").await.expect("stored");
    let worker = Worker::new(f.queue.clone()).handle(Arc::new(Panics));
    let drained = worker.drain().await.expect("the worker survives");
    assert_eq!(drained.retried, 1);
    let (state, attempts, _, _) = job_state(&f.db, id).await;
    assert_eq!((state.as_str(), attempts), ("pending", 1));
    let s = status::status(&f.db).await.expect("status");
    assert_eq!(s.kinds[0].retrying, 1);
}
